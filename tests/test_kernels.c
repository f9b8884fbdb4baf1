/* Every kernel against its naive reference and every backward against central finite differences.
 * Tolerances: fast vs reference forward 1e-5 relative (BLAS vs double loops); finite differences with
 * step 1e-2 on an fp32 forward: 2e-3 relative L2 over the whole gradient. */
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_kernels.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"

static icl_rng rng;

static float *randv(size_t n, float s) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = (float)(s * icl_rng_normal(&rng));
    return p;
}
static float *zeros(size_t n) { return calloc(n, sizeof(float)); }

/* A scalar probe loss sum(out .* R) over a kernel's output, as a function of one input array. */
typedef double (*loss_fn)(void *ctx);

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Central differences of f with respect to every element of x; compares with the analytic grad. */
static double fd_check(loss_fn f, void *ctx, float *x, size_t n, const float *grad) {
    float *num = malloc(n * sizeof(float));
    const float h = 1e-2f;
    for (size_t i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        num[i] = (float)((lp - lm) / (2 * h));
    }
    double e = icl_rel_l2(grad, num, n);
    free(num);
    return e;
}

/* ---- linear */
typedef struct { float *out, *inp, *w, *b, *R; int N, IC, OC; } lin_ctx;
static double lin_loss(void *p) {
    lin_ctx *c = p;
    icl_linear_forward(c->out, c->inp, c->w, c->b, c->N, c->IC, c->OC);
    return dot(c->out, c->R, (size_t)c->N * c->OC);
}
static void test_linear(int N, int IC, int OC) {
    lin_ctx c = {zeros((size_t)N * OC), randv((size_t)N * IC, 1), randv((size_t)OC * IC, 0.5f), randv(OC, 0.5f),
                 randv((size_t)N * OC, 1), N, IC, OC};
    float *ref = zeros((size_t)N * OC);
    icl_linear_forward(c.out, c.inp, c.w, c.b, N, IC, OC);
    icl_linear_forward_ref(ref, c.inp, c.w, c.b, N, IC, OC);
    CHECK_MSG(icl_rel_l2(c.out, ref, (size_t)N * OC) < 1e-5, "linear forward %dx%dx%d", N, IC, OC);
    float *di = zeros((size_t)N * IC), *dw = zeros((size_t)OC * IC), *db = zeros(OC);
    float *di2 = zeros((size_t)N * IC), *dw2 = zeros((size_t)OC * IC), *db2 = zeros(OC);
    icl_linear_backward(di, dw, db, c.R, c.inp, c.w, N, IC, OC);
    icl_linear_backward_ref(di2, dw2, db2, c.R, c.inp, c.w, N, IC, OC);
    CHECK(icl_rel_l2(di, di2, (size_t)N * IC) < 1e-5);
    CHECK(icl_rel_l2(dw, dw2, (size_t)OC * IC) < 1e-5);
    CHECK(icl_rel_l2(db, db2, OC) < 1e-5);
    CHECK_MSG(fd_check(lin_loss, &c, c.inp, (size_t)N * IC, di) < 2e-3, "linear dinp fd");
    CHECK_MSG(fd_check(lin_loss, &c, c.w, (size_t)OC * IC, dw) < 2e-3, "linear dw fd");
    CHECK_MSG(fd_check(lin_loss, &c, c.b, OC, db) < 2e-3, "linear db fd");
    free(c.out); free(c.inp); free(c.w); free(c.b); free(c.R); free(ref);
    free(di); free(dw); free(db); free(di2); free(dw2); free(db2);
}

/* ---- layernorm */
typedef struct { float *out, *mean, *rstd, *inp, *w, *b, *R; int N, C; } ln_ctx;
static double ln_loss(void *p) {
    ln_ctx *c = p;
    icl_layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void test_layernorm(int N, int C) {
    ln_ctx c = {zeros((size_t)N * C), zeros(N), zeros(N), randv((size_t)N * C, 1), randv(C, 1), randv(C, 1),
                randv((size_t)N * C, 1), N, C};
    for (int i = 0; i < N * C; i++) c.inp[i] += 0.5f; /* non-zero mean */
    ln_loss(&c);
    /* reference: double-precision normalisation */
    double maxe = 0;
    for (int n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (int j = 0; j < C; j++) m += c.inp[n * C + j];
        m /= C;
        for (int j = 0; j < C; j++) v += (c.inp[n * C + j] - m) * (c.inp[n * C + j] - m);
        v /= C;
        for (int j = 0; j < C; j++) {
            double r = (c.inp[n * C + j] - m) / sqrt(v + 1e-5) * c.w[j] + c.b[j];
            maxe = fmax(maxe, fabs(r - c.out[n * C + j]));
        }
    }
    CHECK_MSG(maxe < 1e-5, "layernorm forward max error %g", maxe);
    float *di = zeros((size_t)N * C), *dw = zeros(C), *db = zeros(C);
    icl_layernorm_backward(di, dw, db, c.R, c.inp, c.w, c.mean, c.rstd, N, C);
    CHECK_MSG(fd_check(ln_loss, &c, c.inp, (size_t)N * C, di) < 2e-3, "layernorm dinp fd");
    CHECK_MSG(fd_check(ln_loss, &c, c.w, C, dw) < 2e-3, "layernorm dw fd");
    CHECK_MSG(fd_check(ln_loss, &c, c.b, C, db) < 2e-3, "layernorm db fd");
    free(c.out); free(c.mean); free(c.rstd); free(c.inp); free(c.w); free(c.b); free(c.R); free(di); free(dw); free(db);
}

/* ---- silu: the polynomial exp against libm, in double */
static void test_silu(void) {
    enum { n = 20000 };
    static float a[n], b[n];
    double worst = 0;
    for (int i = 0; i < n; i++) {
        a[i] = -100.0f + 200.0f * i / n;
        b[i] = 1.0f + 0.001f * (i % 7);
    }
    static float a0[n];
    memcpy(a0, a, sizeof a);
    icl_silu_mul(a, b, n);
    for (int i = 0; i < n; i++) {
        double x = a0[i], want = x / (1.0 + exp(-x)) * b[i];
        double e = fabs(a[i] - want) / (fabs(want) + 1e-30);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst < 1e-6, "silu relative error %g", worst);
    /* gelu(a) * b equals icl_gelu_forward then the product, to the last bit */
    static float g[n], a2[n];
    memcpy(a2, a0, sizeof a0);
    icl_gelu_forward(g, a0, n);
    icl_gelu_mul(a2, b, n);
    int same = 1;
    for (int i = 0; i < n; i++) same &= a2[i] == g[i] * b[i];
    CHECK_MSG(same, "icl_gelu_mul differs from gelu then multiply");
}

/* ---- gelu */
typedef struct { float *out, *inp, *R; size_t n; } gelu_ctx;
static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    icl_gelu_forward(c->out, c->inp, c->n);
    return dot(c->out, c->R, c->n);
}
static void test_gelu(void) {
    size_t n = 301;
    gelu_ctx c = {zeros(n), randv(n, 2), randv(n, 1), n};
    gelu_loss(&c);
    double maxe = 0;
    for (size_t i = 0; i < n; i++) {
        double x = c.inp[i];
        double r = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
        maxe = fmax(maxe, fabs(r - c.out[i]));
    }
    CHECK_MSG(maxe < 1e-6, "gelu forward max error %g", maxe);
    float *di = zeros(n);
    icl_gelu_backward(di, c.inp, c.R, n);
    CHECK_MSG(fd_check(gelu_loss, &c, c.inp, n, di) < 2e-3, "gelu fd");
    free(c.out); free(c.inp); free(c.R); free(di);
}

/* ---- attention */
typedef struct { float *out, *att, *qkv, *R; int B, T, C, H; } att_ctx;
static double att_loss(void *p) {
    att_ctx *c = p;
    icl_attention_forward(c->out, c->att, c->qkv, c->B, c->T, c->C, c->H);
    return dot(c->out, c->R, (size_t)c->B * c->T * c->C);
}
static void test_attention(int B, int T, int C, int H) {
    size_t n = (size_t)B * T * C;
    att_ctx c = {zeros(n), zeros((size_t)B * H * T * T), randv(3 * n, 1), randv(n, 1), B, T, C, H};
    float *out2 = zeros(n), *att2 = zeros((size_t)B * H * T * T);
    att_loss(&c);
    icl_attention_forward_ref(out2, att2, c.qkv, B, T, C, H);
    CHECK_MSG(icl_rel_l2(c.out, out2, n) < 1e-5, "attention forward B%d T%d C%d H%d", B, T, C, H);
    CHECK(icl_rel_l2(c.att, att2, (size_t)B * H * T * T) < 1e-5);
    /* causality: probabilities above the diagonal are exactly zero, rows sum to one */
    int ok = 1;
    for (int r = 0; r < B * H; r++)
        for (int t = 0; t < T; t++) {
            double s = 0;
            for (int t2 = 0; t2 < T; t2++) {
                float p = c.att[((size_t)r * T + t) * T + t2];
                if (t2 > t && p != 0) ok = 0;
                s += p;
            }
            if (fabs(s - 1) > 1e-5) ok = 0;
        }
    CHECK(ok);
    float *dqkv = zeros(3 * n);
    icl_attention_backward(dqkv, c.R, c.qkv, c.att, B, T, C, H);
    CHECK_MSG(fd_check(att_loss, &c, c.qkv, 3 * n, dqkv) < 2e-3, "attention fd");
    free(c.out); free(c.att); free(c.qkv); free(c.R); free(out2); free(att2); free(dqkv);
}

int main(void) {
    icl_rng_seed(&rng, 7);
    test_linear(7, 5, 3);
    test_linear(33, 17, 64);
    test_layernorm(5, 13);
    test_layernorm(3, 70); /* more than one 64-column block */
    test_silu();
    test_gelu();
    test_attention(2, 5, 8, 2);
    test_attention(1, 7, 12, 3);
    /* big enough that BLAS uses its blocked paths */
    int N = 300, IC = 96, OC = 130;
    float *inp = randv((size_t)N * IC, 1), *w = randv((size_t)OC * IC, 1), *b = randv(OC, 1);
    float *o1 = zeros((size_t)N * OC), *o2 = zeros((size_t)N * OC);
    icl_linear_forward(o1, inp, w, b, N, IC, OC);
    icl_linear_forward_ref(o2, inp, w, b, N, IC, OC);
    CHECK(icl_rel_l2(o1, o2, (size_t)N * OC) < 1e-5);
    free(inp); free(w); free(b); free(o1); free(o2);
    return icl_test_finish();
}
