/* The Llama-block and LM-head kernels: each fast kernel against its _ref, every backward against
 * central finite differences, the results' independence of the thread count, and a two-layer
 * Llama-style model built from the kernels against PyTorch (tests/ref/kernels_lm_ref.py).
 * Tolerances (measured values in brackets, this machine):
 *   fast vs _ref, same algorithm (RMSNorm, RoPE, embedding backward): bit-identical; also GQA with
 *     Hq == Hkv vs icl_attention_forward/backward, and 1 vs 3 threads for every fast kernel.
 *   fast vs _ref in double: relative L2 <= 1e-6 for SwiGLU (only the polynomial exp differs) and
 *     cross-entropy, <= 1e-5 for attention (fp32 sums).
 *   finite differences: central, step 1e-2 (1e-3 for cross-entropy, whose probe is computed in
 *     double here), divided by the step as rounded to float; probe loss sum(out .* R) in double
 *     through the _ref forward: relative L2 over the whole gradient <= 1e-4 [worst 2.3e-5: the
 *     fp32 outputs and the O(h^2) truncation]. FD_VERBOSE=1 prints every error.
 *   against PyTorch (float64, from the same float32 parameters): loss relative 1e-6 [1.1e-7],
 *     logits relative L2 1e-5 [3.4e-7], every parameter gradient relative L2 1e-5 [9.7e-7]. */
#include <omp.h>
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
static float *copyv(const float *a, size_t n) {
    float *p = malloc(n * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}
static int same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

static double dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double fd_worst = 0; /* the largest finite-difference error seen, printed at the end */

/* Central differences of f with respect to every element of x (step h), against grad. */
typedef double (*loss_fn)(void *ctx);
static double fd_check_h(loss_fn f, void *ctx, float *x, size_t n, const float *grad, float h) {
    float *num = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        float keep = x[i], xp = keep + h, xm = keep - h; /* the steps as rounded to float */
        x[i] = xp;
        double lp = f(ctx);
        x[i] = xm;
        double lm = f(ctx);
        x[i] = keep;
        num[i] = (float)((lp - lm) / ((double)xp - xm));
    }
    double e = icl_rel_l2(grad, num, n);
    if (e > fd_worst) fd_worst = e;
    if (getenv("FD_VERBOSE")) fprintf(stderr, "fd %g\n", e);
    free(num);
    return e;
}
static double fd_check(loss_fn f, void *ctx, float *x, size_t n, const float *grad) {
    return fd_check_h(f, ctx, x, n, grad, 1e-2f);
}
#define FD_TOL 1e-4

/* ---------------------------------------------------------------- rmsnorm */
typedef struct { float *out, *rstd, *inp, *w, *R; int N, C; } rms_ctx;
static double rms_loss(void *p) {
    rms_ctx *c = p;
    icl_rmsnorm_forward_ref(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void test_rmsnorm(int N, int C) {
    size_t n = (size_t)N * C;
    rms_ctx c = {zeros(n), zeros(N), randv(n, 1), randv(C, 1), randv(n, 1), N, C};
    for (int i = 0; i < C; i++) c.w[i] += 1.0f;
    float *out2 = zeros(n), *rstd2 = zeros(N);
    icl_rmsnorm_forward(out2, rstd2, c.inp, c.w, N, C, 1e-5f);
    rms_loss(&c);
    CHECK_MSG(same_bits(c.out, out2, n) && same_bits(c.rstd, rstd2, N), "rmsnorm fast != ref N%d C%d", N, C);
    double maxe = 0;
    for (int r = 0; r < N; r++) {
        double ss = 0;
        for (int j = 0; j < C; j++) ss += (double)c.inp[r * C + j] * c.inp[r * C + j];
        for (int j = 0; j < C; j++) {
            double want = c.inp[r * C + j] / sqrt(ss / C + 1e-5) * c.w[j];
            maxe = fmax(maxe, fabs(want - c.out[r * C + j]) / (fabs(want) + 1e-3));
        }
    }
    CHECK_MSG(maxe < 1e-6, "rmsnorm forward relative error %g", maxe);
    /* backward accumulates: start both from the same non-zero values */
    float *di = randv(n, 1), *dw = randv(C, 1), *di2 = copyv(di, n), *dw2 = copyv(dw, C);
    float *di0 = copyv(di, n), *dw0 = copyv(dw, C);
    icl_rmsnorm_backward(di, dw, c.R, c.inp, c.w, c.rstd, N, C);
    icl_rmsnorm_backward_ref(di2, dw2, c.R, c.inp, c.w, c.rstd, N, C);
    CHECK_MSG(same_bits(di, di2, n) && same_bits(dw, dw2, C), "rmsnorm backward fast != ref");
    for (size_t i = 0; i < n; i++) di[i] -= di0[i];
    for (int i = 0; i < C; i++) dw[i] -= dw0[i];
    CHECK_MSG(fd_check(rms_loss, &c, c.inp, n, di) < FD_TOL, "rmsnorm dinp fd");
    CHECK_MSG(fd_check(rms_loss, &c, c.w, C, dw) < FD_TOL, "rmsnorm dw fd");
    free(c.out); free(c.rstd); free(c.inp); free(c.w); free(c.R); free(out2); free(rstd2);
    free(di); free(dw); free(di2); free(dw2); free(di0); free(dw0);
}

/* ---------------------------------------------------------------- rope */
typedef struct { float *x, *y, *R; const int32_t *pos; size_t ld, n; int N, H, hd, rd, neox; } rope_ctx;
static double rope_loss(void *p) {
    rope_ctx *c = p;
    memcpy(c->y, c->x, c->n * sizeof(float));
    icl_rope_forward_ref(c->y, c->ld, c->pos, c->N, c->H, c->hd, c->rd, 10000.0f, c->neox);
    return dot(c->y, c->R, c->n);
}
/* N rows of H heads (hd wide, rope_dim rotated), inside rows of ld = H*hd + 5 floats; positions
 * t within sequences of T (or, with offset, far apart so that no position repeats). */
static void test_rope(int N, int T, int H, int hd, int rd, int neox, int offset) {
    size_t ld = (size_t)H * hd + 5, n = (size_t)N * ld;
    int32_t *pos = malloc(sizeof(int32_t) * N);
    for (int r = 0; r < N; r++) pos[r] = r % T + offset * r;
    rope_ctx c = {randv(n, 1), zeros(n), randv(n, 1), pos, ld, n, N, H, hd, rd, neox};
    float *a = copyv(c.x, n), *b = copyv(c.x, n);
    icl_rope_forward(a, ld, pos, N, H, hd, rd, 10000.0f, neox);
    icl_rope_forward_ref(b, ld, pos, N, H, hd, rd, 10000.0f, neox);
    CHECK_MSG(same_bits(a, b, n), "rope fast != ref N%d H%d hd%d rd%d neox%d", N, H, hd, rd, neox);
    /* against the formula in double; channels past rope_dim and past the heads are untouched */
    double maxe = 0;
    int untouched = 1;
    for (int r = 0; r < N; r++)
        for (int h = 0; h < H; h++) {
            const float *x = c.x + r * ld + h * hd, *y = a + r * ld + h * hd;
            for (int i = 0; i < rd / 2; i++) {
                double ang = pos[r] * pow(10000.0, -2.0 * i / rd);
                int i0 = neox ? i : 2 * i, i1 = neox ? i + rd / 2 : 2 * i + 1;
                maxe = fmax(maxe, fabs(x[i0] * cos(ang) - x[i1] * sin(ang) - y[i0]));
                maxe = fmax(maxe, fabs(x[i0] * sin(ang) + x[i1] * cos(ang) - y[i1]));
            }
            for (int i = rd; i < hd; i++) untouched &= x[i] == y[i];
        }
    for (int r = 0; r < N; r++)
        for (size_t i = (size_t)H * hd; i < ld; i++) untouched &= c.x[r * ld + i] == a[r * ld + i];
    CHECK_MSG(maxe < 2e-6, "rope forward max error %g", maxe);
    CHECK_MSG(untouched, "rope changed channels it must not rotate");
    /* backward: fast == ref, and rotating back restores the input */
    memcpy(b, a, n * sizeof(float));
    icl_rope_backward(a, ld, pos, N, H, hd, rd, 10000.0f, neox);
    icl_rope_backward_ref(b, ld, pos, N, H, hd, rd, 10000.0f, neox);
    CHECK_MSG(same_bits(a, b, n), "rope backward fast != ref");
    CHECK_MSG(icl_rel_l2(a, c.x, n) < 1e-6, "rope backward(forward(x)) != x: %g", icl_rel_l2(a, c.x, n));
    /* the backward is the gradient: dx = R^T dy with dy = R (probe weights) */
    float *g = copyv(c.R, n);
    icl_rope_backward(g, ld, pos, N, H, hd, rd, 10000.0f, neox);
    CHECK_MSG(fd_check(rope_loss, &c, c.x, n, g) < FD_TOL, "rope fd");
    free(c.x); free(c.y); free(c.R); free(a); free(b); free(g); free(pos);
}

/* ---------------------------------------------------------------- swiglu */
typedef struct { float *out, *gate, *up, *R; size_t n; } swi_ctx;
static double swi_loss(void *p) {
    swi_ctx *c = p;
    icl_swiglu_forward_ref(c->out, c->gate, c->up, c->n);
    return dot(c->out, c->R, c->n);
}
static void test_swiglu(size_t n) {
    swi_ctx c = {zeros(n), randv(n, 3), randv(n, 1), randv(n, 1), n};
    c.gate[0] = -100.0f; c.gate[1] = 100.0f; c.gate[2] = 0.0f; /* the tails and zero */
    float *g0 = copyv(c.gate, n), *u0 = copyv(c.up, n), *out2 = zeros(n), *a = copyv(c.gate, n);
    icl_swiglu_forward(out2, c.gate, c.up, n);
    swi_loss(&c);
    CHECK_MSG(same_bits(c.gate, g0, n) && same_bits(c.up, u0, n), "swiglu changed its inputs");
    CHECK_MSG(icl_rel_l2(out2, c.out, n) < 1e-6, "swiglu fast vs ref %g", icl_rel_l2(out2, c.out, n));
    icl_silu_mul(a, c.up, n);
    CHECK_MSG(same_bits(a, out2, n), "swiglu forward != icl_silu_mul");
    float *dg = zeros(n), *du = zeros(n), *dg2 = zeros(n), *du2 = zeros(n);
    icl_swiglu_backward(dg, du, c.R, c.gate, c.up, n);
    icl_swiglu_backward_ref(dg2, du2, c.R, c.gate, c.up, n);
    CHECK_MSG(icl_rel_l2(dg, dg2, n) < 1e-6 && icl_rel_l2(du, du2, n) < 1e-6, "swiglu backward fast vs ref %g %g",
              icl_rel_l2(dg, dg2, n), icl_rel_l2(du, du2, n));
    CHECK_MSG(fd_check(swi_loss, &c, c.gate, n, dg) < FD_TOL, "swiglu dgate fd");
    CHECK_MSG(fd_check(swi_loss, &c, c.up, n, du) < FD_TOL, "swiglu dup fd");
    free(c.out); free(c.gate); free(c.up); free(c.R); free(g0); free(u0); free(out2); free(a);
    free(dg); free(du); free(dg2); free(du2);
}

/* GeGLU: fast vs the double reference, the bits of icl_gelu_mul, finite differences. */
static double geg_loss(void *p) {
    swi_ctx *c = p;
    icl_geglu_forward_ref(c->out, c->gate, c->up, c->n);
    return dot(c->out, c->R, c->n);
}
static void test_geglu(size_t n) {
    swi_ctx c = {zeros(n), randv(n, 3), randv(n, 1), randv(n, 1), n};
    c.gate[0] = -30.0f; c.gate[1] = 30.0f; c.gate[2] = 0.0f;
    float *out2 = zeros(n), *a = copyv(c.gate, n);
    icl_geglu_forward(out2, c.gate, c.up, n);
    geg_loss(&c);
    CHECK_MSG(icl_rel_l2(out2, c.out, n) < 1e-6, "geglu fast vs ref %g", icl_rel_l2(out2, c.out, n));
    icl_gelu_mul(a, c.up, n);
    CHECK_MSG(same_bits(a, out2, n), "geglu forward != icl_gelu_mul");
    float *dg = zeros(n), *du = zeros(n), *dg2 = zeros(n), *du2 = zeros(n);
    icl_geglu_backward(dg, du, c.R, c.gate, c.up, n);
    icl_geglu_backward_ref(dg2, du2, c.R, c.gate, c.up, n);
    CHECK_MSG(icl_rel_l2(dg, dg2, n) < 1e-5 && icl_rel_l2(du, du2, n) < 1e-6, "geglu backward fast vs ref %g %g",
              icl_rel_l2(dg, dg2, n), icl_rel_l2(du, du2, n));
    CHECK_MSG(fd_check(geg_loss, &c, c.gate, n, dg) < FD_TOL, "geglu dgate fd");
    CHECK_MSG(fd_check(geg_loss, &c, c.up, n, du) < FD_TOL, "geglu dup fd");
    free(c.out); free(c.gate); free(c.up); free(c.R); free(out2); free(a);
    free(dg); free(du); free(dg2); free(du2);
}

/* ---------------------------------------------------------------- grouped-query attention */
typedef struct { float *out, *att, *qkv, *R; int B, T, Hq, Hkv, hd; } gqa_ctx;
static size_t gqa_ld(const gqa_ctx *c) { return (size_t)(c->Hq + 2 * c->Hkv) * c->hd; }
static double gqa_loss(void *p) {
    gqa_ctx *c = p;
    size_t ld = gqa_ld(c);
    float *k = c->qkv + (size_t)c->Hq * c->hd, *v = k + (size_t)c->Hkv * c->hd;
    icl_gqa_forward_ref(c->out, c->att, c->qkv, ld, k, v, ld, c->B, c->T, c->Hq, c->Hkv, c->hd, 1.0f / sqrtf((float)c->hd));
    return dot(c->out, c->R, (size_t)c->B * c->T * c->Hq * c->hd);
}
/* On a packed qkv buffer, and once more on separate q, k, v buffers (contiguous strides). */
static void test_gqa(int B, int T, int Hq, int Hkv, int hd) {
    size_t ld = (size_t)(Hq + 2 * Hkv) * hd, N = (size_t)B * T, nout = N * Hq * hd, natt = (size_t)B * Hq * T * T;
    size_t qd = (size_t)Hq * hd, kd = (size_t)Hkv * hd;
    float scale = 1.0f / sqrtf((float)hd);
    gqa_ctx c = {zeros(nout), zeros(natt), randv(N * ld, 1), randv(nout, 1), B, T, Hq, Hkv, hd};
    float *out2 = zeros(nout), *att2 = zeros(natt);
    gqa_loss(&c);
    icl_gqa_forward(out2, att2, c.qkv, ld, c.qkv + qd, c.qkv + qd + kd, ld, B, T, Hq, Hkv, hd, scale);
    CHECK_MSG(icl_rel_l2(out2, c.out, nout) < 1e-5 && icl_rel_l2(att2, c.att, natt) < 1e-5,
              "gqa forward B%d T%d Hq%d Hkv%d hd%d: %g %g", B, T, Hq, Hkv, hd, icl_rel_l2(out2, c.out, nout),
              icl_rel_l2(att2, c.att, natt));
    int causal = 1;
    for (size_t r = 0; r < (size_t)B * Hq; r++)
        for (int t = 0; t < T; t++)
            for (int t2 = t + 1; t2 < T; t2++) causal &= att2[(r * T + t) * T + t2] == 0.0f;
    CHECK_MSG(causal, "gqa: probabilities above the diagonal");
    /* separate buffers give the same bits as the packed one */
    float *q = zeros(N * qd), *k = zeros(N * kd), *v = zeros(N * kd), *out3 = zeros(nout), *att3 = zeros(natt);
    for (size_t r = 0; r < N; r++) {
        memcpy(q + r * qd, c.qkv + r * ld, qd * sizeof(float));
        memcpy(k + r * kd, c.qkv + r * ld + qd, kd * sizeof(float));
        memcpy(v + r * kd, c.qkv + r * ld + qd + kd, kd * sizeof(float));
    }
    icl_gqa_forward(out3, att3, q, qd, k, v, kd, B, T, Hq, Hkv, hd, scale);
    CHECK_MSG(same_bits(out2, out3, nout) && same_bits(att2, att3, natt), "gqa: separate buffers differ from packed");
    /* backward: fast (from the fast forward's att) vs ref in double; both accumulate */
    float *dqkv = randv(N * ld, 1), *dqkv0 = copyv(dqkv, N * ld), *dqkv2 = copyv(dqkv, N * ld);
    icl_gqa_backward(dqkv, dqkv + qd, dqkv + qd + kd, c.R, c.qkv, ld, c.qkv + qd, c.qkv + qd + kd, ld, att2, B, T, Hq,
                     Hkv, hd, scale);
    icl_gqa_backward_ref(dqkv2, dqkv2 + qd, dqkv2 + qd + kd, c.R, c.qkv, ld, c.qkv + qd, c.qkv + qd + kd, ld, c.att, B, T,
                         Hq, Hkv, hd, scale);
    for (size_t i = 0; i < N * ld; i++) {
        dqkv[i] -= dqkv0[i];
        dqkv2[i] -= dqkv0[i];
    }
    CHECK_MSG(icl_rel_l2(dqkv, dqkv2, N * ld) < 1e-5, "gqa backward fast vs ref %g", icl_rel_l2(dqkv, dqkv2, N * ld));
    float *dgm = copyv(dqkv0, N * ld);
    icl_gqa_backward_gemm(dgm, dgm + qd, dgm + qd + kd, c.R, c.qkv, ld, c.qkv + qd, c.qkv + qd + kd, ld, att2, B, T, Hq,
                          Hkv, hd, scale);
    for (size_t i = 0; i < N * ld; i++) dgm[i] -= dqkv0[i];
    CHECK_MSG(icl_rel_l2(dgm, dqkv2, N * ld) < 1e-5, "gqa backward gemm vs ref %g", icl_rel_l2(dgm, dqkv2, N * ld));
    free(dgm);
    float *dq = zeros(N * qd), *dk = zeros(N * kd), *dv = zeros(N * kd), *dsep = zeros(N * ld);
    icl_gqa_backward(dq, dk, dv, c.R, q, qd, k, v, kd, att3, B, T, Hq, Hkv, hd, scale);
    float *dpk = zeros(N * ld); /* the packed result with zero start, to compare with separate buffers */
    icl_gqa_backward(dpk, dpk + qd, dpk + qd + kd, c.R, c.qkv, ld, c.qkv + qd, c.qkv + qd + kd, ld, att2, B, T, Hq, Hkv,
                     hd, scale);
    for (size_t r = 0; r < N; r++) {
        memcpy(dsep + r * ld, dq + r * qd, qd * sizeof(float));
        memcpy(dsep + r * ld + qd, dk + r * kd, kd * sizeof(float));
        memcpy(dsep + r * ld + qd + kd, dv + r * kd, kd * sizeof(float));
    }
    CHECK_MSG(same_bits(dsep, dpk, N * ld), "gqa backward: separate buffers differ from packed");
    CHECK_MSG(fd_check(gqa_loss, &c, c.qkv, N * ld, dpk) < FD_TOL, "gqa fd B%d T%d Hq%d Hkv%d", B, T, Hq, Hkv);
    free(c.out); free(c.att); free(c.qkv); free(c.R); free(out2); free(att2); free(q); free(k); free(v); free(out3);
    free(att3); free(dqkv); free(dqkv0); free(dqkv2); free(dq); free(dk); free(dv); free(dsep); free(dpk);
}

/* The blocked (sgemm) backward on contexts longer than its 64-row blocks, on separate buffers with
 * strides, against the double reference; and the same bits at 1 and 2 threads. */
static void test_gqa_gemm_long(int B, int T, int Hq, int Hkv, int hd) {
    size_t qd = (size_t)Hq * hd, kd = (size_t)Hkv * hd, N = (size_t)B * T, natt = (size_t)B * Hq * T * T;
    float scale = 0.3f, *q = randv(N * qd, 1), *k = randv(N * kd, 1), *v = randv(N * kd, 1), *dy = randv(N * qd, 1);
    float *out = zeros(N * qd), *att = zeros(natt);
    icl_gqa_forward(out, att, q, qd, k, v, kd, B, T, Hq, Hkv, hd, scale);
    float *g1 = zeros(N * (qd + 2 * kd)), *g2 = zeros(N * (qd + 2 * kd)), *g3 = zeros(N * (qd + 2 * kd));
    icl_gqa_backward_ref(g1, g1 + N * qd, g1 + N * (qd + kd), dy, q, qd, k, v, kd, att, B, T, Hq, Hkv, hd, scale);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    icl_gqa_backward_gemm(g2, g2 + N * qd, g2 + N * (qd + kd), dy, q, qd, k, v, kd, att, B, T, Hq, Hkv, hd, scale);
    omp_set_num_threads(2);
    icl_gqa_backward_gemm(g3, g3 + N * qd, g3 + N * (qd + kd), dy, q, qd, k, v, kd, att, B, T, Hq, Hkv, hd, scale);
    omp_set_num_threads(threads);
    size_t n = N * (qd + 2 * kd);
    CHECK_MSG(icl_rel_l2(g2, g1, n) < 1e-5, "gqa backward gemm T%d vs ref %g", T, icl_rel_l2(g2, g1, n));
    CHECK_MSG(same_bits(g2, g3, n), "gqa backward gemm: 1 and 2 threads differ");
    free(q); free(k); free(v); free(dy); free(out); free(att); free(g1); free(g2); free(g3);
}

/* Hq == Hkv on a packed buffer is multi-head attention: the same bits as icl_attention_*. */
static void test_gqa_is_mha(int B, int T, int C, int H) {
    size_t n = (size_t)B * T * C, natt = (size_t)B * H * T * T;
    float *qkv = randv(3 * n, 1), *dout = randv(n, 1);
    float *o1 = zeros(n), *a1 = zeros(natt), *o2 = zeros(n), *a2 = zeros(natt);
    float *d1 = randv(3 * n, 1), *d2 = copyv(d1, 3 * n);
    icl_attention_forward(o1, a1, qkv, B, T, C, H);
    icl_gqa_forward(o2, a2, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, B, T, H, H, C / H, 1.0f / sqrtf((float)(C / H)));
    CHECK_MSG(same_bits(o1, o2, n) && same_bits(a1, a2, natt), "gqa(Hq == Hkv) != icl_attention_forward");
    icl_attention_backward(d1, dout, qkv, a1, B, T, C, H);
    icl_gqa_backward(d2, d2 + C, d2 + 2 * C, dout, qkv, 3 * C, qkv + C, qkv + 2 * C, 3 * C, a2, B, T, H, H, C / H,
                     1.0f / sqrtf((float)(C / H)));
    CHECK_MSG(same_bits(d1, d2, 3 * n), "gqa backward (Hq == Hkv) != icl_attention_backward");
    free(qkv); free(dout); free(o1); free(a1); free(o2); free(a2); free(d1); free(d2);
}

/* ---------------------------------------------------------------- embedding */
typedef struct { float *out, *wte, *R; const int32_t *tok; int N, C; } emb_ctx;
static double emb_loss(void *p) {
    emb_ctx *c = p;
    icl_embedding_forward(c->out, c->wte, c->tok, c->N, c->C);
    return dot(c->out, c->R, (size_t)c->N * c->C);
}
static void test_embedding(int N, int V, int C) {
    int32_t *tok = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(icl_rng_u64(&rng) % (uint64_t)(V / 2)); /* repeats */
    emb_ctx c = {zeros((size_t)N * C), randv((size_t)V * C, 1), randv((size_t)N * C, 1), tok, N, C};
    emb_loss(&c);
    int ok = 1;
    for (int i = 0; i < N; i++) ok &= same_bits(c.out + (size_t)i * C, c.wte + (size_t)tok[i] * C, C);
    CHECK_MSG(ok, "embedding forward");
    float *d1 = randv((size_t)V * C, 1), *d2 = copyv(d1, (size_t)V * C), *d0 = copyv(d1, (size_t)V * C);
    icl_embedding_backward(d1, c.R, tok, N, C);
    icl_embedding_backward_ref(d2, c.R, tok, N, C);
    CHECK_MSG(same_bits(d1, d2, (size_t)V * C), "embedding backward fast != ref");
    for (size_t i = 0; i < (size_t)V * C; i++) d1[i] -= d0[i];
    CHECK_MSG(fd_check(emb_loss, &c, c.wte, (size_t)V * C, d1) < FD_TOL, "embedding fd");
    free(tok); free(c.out); free(c.wte); free(c.R); free(d1); free(d2); free(d0);
}

/* ---------------------------------------------------------------- cross-entropy */
typedef struct { float *logits; const int32_t *tgt; int N, V; } ce_ctx;
/* The loss in double here (the kernels return it rounded to float, too coarse for differences). */
static double ce_loss(void *p) {
    ce_ctx *c = p;
    double total = 0;
    int count = 0;
    for (int r = 0; r < c->N; r++) {
        const float *l = c->logits + (size_t)r * c->V;
        if (c->tgt[r] < 0) continue;
        double m = l[0], s = 0;
        for (int i = 1; i < c->V; i++) m = fmax(m, l[i]);
        for (int i = 0; i < c->V; i++) s += exp(l[i] - m);
        total += m + log(s) - l[c->tgt[r]];
        count++;
    }
    return total / count;
}
static void test_cross_entropy(int N, int V, float spread) {
    size_t n = (size_t)N * V;
    int32_t *tgt = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) tgt[i] = i % 3 == 1 ? -1 : (int32_t)(icl_rng_u64(&rng) % (uint64_t)V);
    ce_ctx c = {randv(n, spread), tgt, N, V};
    c.logits[0] += 1000.0f; /* a large logit: max-subtraction keeps it finite */
    float *d1 = zeros(n), *d2 = zeros(n), *din = copyv(c.logits, n);
    const float dloss = 0.75f;
    float l1 = icl_cross_entropy(d1, c.logits, tgt, N, V, dloss);
    float l2 = icl_cross_entropy_ref(d2, c.logits, tgt, N, V, dloss);
    CHECK_MSG(isfinite(l1) && fabs(l1 - l2) <= 1e-6 * fabs(l2), "cross-entropy loss fast %.9g ref %.9g", l1, l2);
    CHECK_MSG(icl_rel_l2(d1, d2, n) < 1e-6, "cross-entropy dlogits fast vs ref %g", icl_rel_l2(d1, d2, n));
    /* in place, and without gradient: the same bits */
    float l3 = icl_cross_entropy(din, din, tgt, N, V, dloss), l4 = icl_cross_entropy(NULL, c.logits, tgt, N, V, dloss);
    CHECK_MSG(same_bits(din, d1, n) && l3 == l1 && l4 == l1, "cross-entropy in place / without dlogits differs");
    /* rows without a target have zero gradient; every counted row's gradient sums to zero */
    int ok = 1;
    for (int r = 0; r < N; r++) {
        double s = 0;
        for (int i = 0; i < V; i++) s += d1[(size_t)r * V + i];
        if (tgt[r] < 0)
            for (int i = 0; i < V; i++) ok &= d1[(size_t)r * V + i] == 0.0f;
        ok &= fabs(s) < 1e-6;
    }
    CHECK_MSG(ok, "cross-entropy gradient rows");
    for (size_t i = 0; i < n; i++) d1[i] /= dloss;
    CHECK_MSG(fd_check_h(ce_loss, &c, c.logits, n, d1, 1e-3f) < FD_TOL, "cross-entropy fd");
    /* no counted row: loss 0, gradient 0 */
    for (int i = 0; i < N; i++) tgt[i] = -1;
    float l0 = icl_cross_entropy(d1, c.logits, tgt, N, V, 1.0f);
    ok = l0 == 0.0f;
    for (size_t i = 0; i < n; i++) ok &= d1[i] == 0.0f;
    CHECK_MSG(ok, "cross-entropy without targets");
    free(tgt); free(c.logits); free(d1); free(d2); free(din);
}

/* ---------------------------------------------------------------- thread count */
/* Each fast kernel on shapes large enough for its parallel regions, with 1 and 3 threads: the
 * same bits. */
static void test_threads(void) {
    int N = 512, C = 128, V = 1024, B = 2, T = 64, Hq = 4, Hkv = 2, hd = 16;
    size_t n = (size_t)N * C, ld = (size_t)(Hq + 2 * Hkv) * hd, nq = (size_t)B * T * Hq * hd;
    size_t natt = (size_t)B * Hq * T * T;
    float *x = randv(n, 1), *w = randv(C, 1), *R = randv((size_t)N * V, 1), *qkv = randv((size_t)B * T * ld, 1);
    float *gate = randv(100000, 2), *up = randv(100000, 1);
    int32_t *pos = malloc(sizeof(int32_t) * N), *tok = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) {
        pos[i] = i % 64;
        tok[i] = i % 5 == 0 ? -1 : (int32_t)(icl_rng_u64(&rng) % (uint64_t)V);
    }
    float *res[2][12];
    float loss[2];
    int threads = omp_get_max_threads();
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(k ? 3 : 1);
        float **r = res[k];
        r[0] = zeros(n); r[1] = zeros(N); r[2] = zeros(n); r[3] = zeros(C);
        icl_rmsnorm_forward(r[0], r[1], x, w, N, C, 1e-6f);
        icl_rmsnorm_backward(r[2], r[3], R, x, w, r[1], N, C);
        r[4] = copyv(x, n);
        icl_rope_forward(r[4], 8 * 16, pos, N, 8, 16, 16, 10000.0f, 0);
        icl_rope_backward(r[4], 8 * 16, pos, N, 8, 16, 12, 500000.0f, 1);
        r[5] = zeros(100000); r[6] = zeros(100000); r[7] = zeros(100000);
        icl_swiglu_forward(r[5], gate, up, 100000);
        icl_swiglu_backward(r[6], r[7], R, gate, up, 100000);
        r[8] = zeros(nq); r[9] = zeros(natt); r[10] = zeros((size_t)B * T * ld);
        icl_gqa_forward(r[8], r[9], qkv, ld, qkv + Hq * hd, qkv + (Hq + Hkv) * hd, ld, B, T, Hq, Hkv, hd, 0.25f);
        icl_gqa_backward(r[10], r[10] + Hq * hd, r[10] + (Hq + Hkv) * hd, R, qkv, ld, qkv + Hq * hd,
                         qkv + (Hq + Hkv) * hd, ld, r[9], B, T, Hq, Hkv, hd, 0.25f);
        r[11] = zeros((size_t)N * V + (size_t)V * C);
        int32_t *tok0 = malloc(sizeof(int32_t) * N);
        for (int i = 0; i < N; i++) tok0[i] = tok[i] < 0 ? 0 : tok[i];
        icl_embedding_backward(r[11] + (size_t)N * V, x, tok0, N, C);
        loss[k] = icl_cross_entropy(r[11], R, tok, N, V, 1.0f);
        free(tok0);
    }
    omp_set_num_threads(threads);
    size_t sizes[12] = {n, N, n, C, n, 100000, 100000, 100000, nq, natt, (size_t)B * T * ld, (size_t)N * V + (size_t)V * C};
    for (int i = 0; i < 12; i++) {
        CHECK_MSG(same_bits(res[0][i], res[1][i], sizes[i]), "result %d differs between 1 and 3 threads", i);
        free(res[0][i]);
        free(res[1][i]);
    }
    CHECK_MSG(loss[0] == loss[1], "cross-entropy loss differs between 1 and 3 threads");
    free(x); free(w); free(R); free(qkv); free(gate); free(up); free(pos); free(tok);
}

/* ---------------------------------------------------------------- a Llama model against PyTorch */

typedef struct {
    int V, C, L, Hq, Hkv, hd, F, B, T, rd[2], N, QKV;
    float theta, eps;
    int32_t *tok, *tgt, *pos;
} lm_shape;

/* The parameters, in the fixture's order (tests/ref/kernels_lm_ref.py); the C model packs wq, wk,
 * wv into one (Hq+2Hkv)*hd x C matrix per layer so that RoPE and attention run on a packed qkv. */
typedef struct { float *wte, *an[2], *wqkv[2], *wo[2], *fn[2], *wg[2], *wu[2], *wd[2], *nf, *head; } lm_params;

static size_t lm_nparams(const lm_shape *s) {
    size_t per = (size_t)2 * s->C + (size_t)s->QKV * s->C + (size_t)s->C * s->Hq * s->hd + (size_t)3 * s->F * s->C;
    return (size_t)s->V * s->C + s->L * per + s->C + (size_t)s->V * s->C;
}

/* Points p's members into a flat array in the fixture's order (wq, wk, wv are consecutive rows). */
static void lm_bind(lm_params *p, float *base, const lm_shape *s) {
    float *q = base;
    p->wte = q; q += (size_t)s->V * s->C;
    for (int l = 0; l < s->L; l++) {
        p->an[l] = q; q += s->C;
        p->wqkv[l] = q; q += (size_t)s->QKV * s->C;
        p->wo[l] = q; q += (size_t)s->C * s->Hq * s->hd;
        p->fn[l] = q; q += s->C;
        p->wg[l] = q; q += (size_t)s->F * s->C;
        p->wu[l] = q; q += (size_t)s->F * s->C;
        p->wd[l] = q; q += (size_t)s->C * s->F;
    }
    p->nf = q; q += s->C;
    p->head = q;
}

typedef void (*lin_f_fn)(float *, const float *, const float *, const float *, int, int, int);
typedef void (*lin_b_fn)(float *, float *, float *, const float *, const float *, const float *, int, int, int);

/* Forward and backward of the model with the fast kernels (ref = 0) or the _ref kernels (ref = 1).
 * Writes logits (N,V) and the gradients (zeroed here) into g; returns the loss. */
static float lm_run(const lm_shape *s, const lm_params *p, const lm_params *g, float *logits, int ref) {
    int N = s->N, C = s->C, F = s->F, QKV = s->QKV, Q = s->Hq * s->hd, KV = s->Hkv * s->hd, L = s->L, V = s->V;
    float scale = 1.0f / sqrtf((float)s->hd);
    lin_f_fn lin_f = ref ? icl_linear_forward_ref : icl_linear_forward;
    lin_b_fn lin_b = ref ? icl_linear_backward_ref : icl_linear_backward;
    void (*rms_f)(float *, float *, const float *, const float *, int, int, float) =
        ref ? icl_rmsnorm_forward_ref : icl_rmsnorm_forward;
    void (*rms_b)(float *, float *, const float *, const float *, const float *, const float *, int, int) =
        ref ? icl_rmsnorm_backward_ref : icl_rmsnorm_backward;
    void (*rope_f)(float *, size_t, const int32_t *, int, int, int, int, float, int) =
        ref ? icl_rope_forward_ref : icl_rope_forward;
    void (*rope_b)(float *, size_t, const int32_t *, int, int, int, int, float, int) =
        ref ? icl_rope_backward_ref : icl_rope_backward;
    /* activations per layer: x (input), h, rstd1, qkv (rotated), y (attention out), att, x1, h2,
     * rstd2, gate, up, m (swiglu) */
    float *x[3], *h[2], *r1[2], *qkv[2], *y[2], *att[2], *x1[2], *h2[2], *r2[2], *gt[2], *up[2], *m[2];
    size_t natt = (size_t)s->B * s->Hq * s->T * s->T;
    for (int l = 0; l <= L; l++) x[l] = zeros((size_t)N * C);
    for (int l = 0; l < L; l++) {
        h[l] = zeros((size_t)N * C); r1[l] = zeros(N); qkv[l] = zeros((size_t)N * QKV); y[l] = zeros((size_t)N * Q);
        att[l] = zeros(natt); x1[l] = zeros((size_t)N * C); h2[l] = zeros((size_t)N * C); r2[l] = zeros(N);
        gt[l] = zeros((size_t)N * F); up[l] = zeros((size_t)N * F); m[l] = zeros((size_t)N * F);
    }
    float *xf = zeros((size_t)N * C), *rf = zeros(N), *tmp = zeros((size_t)N * C);
    icl_embedding_forward(x[0], p->wte, s->tok, N, C);
    for (int l = 0; l < L; l++) {
        int neox = l % 2;
        rms_f(h[l], r1[l], x[l], p->an[l], N, C, s->eps);
        lin_f(qkv[l], h[l], p->wqkv[l], NULL, N, C, QKV);
        rope_f(qkv[l], QKV, s->pos, N, s->Hq, s->hd, s->rd[l], s->theta, neox);
        rope_f(qkv[l] + Q, QKV, s->pos, N, s->Hkv, s->hd, s->rd[l], s->theta, neox);
        (ref ? icl_gqa_forward_ref : icl_gqa_forward)(y[l], att[l], qkv[l], QKV, qkv[l] + Q, qkv[l] + Q + KV, QKV, s->B,
                                                      s->T, s->Hq, s->Hkv, s->hd, scale);
        lin_f(tmp, y[l], p->wo[l], NULL, N, Q, C);
        icl_add(x1[l], x[l], tmp, (size_t)N * C);
        rms_f(h2[l], r2[l], x1[l], p->fn[l], N, C, s->eps);
        lin_f(gt[l], h2[l], p->wg[l], NULL, N, C, F);
        lin_f(up[l], h2[l], p->wu[l], NULL, N, C, F);
        (ref ? icl_swiglu_forward_ref : icl_swiglu_forward)(m[l], gt[l], up[l], (size_t)N * F);
        lin_f(tmp, m[l], p->wd[l], NULL, N, F, C);
        icl_add(x[l + 1], x1[l], tmp, (size_t)N * C);
    }
    rms_f(xf, rf, x[L], p->nf, N, C, s->eps);
    lin_f(logits, xf, p->head, NULL, N, C, V);

    /* backward */
    memset(g->wte, 0, lm_nparams(s) * sizeof(float));
    float *dlog = zeros((size_t)N * V), *dx = zeros((size_t)N * C), *dh = zeros((size_t)N * C);
    float *dF = zeros((size_t)N * F), *dF2 = zeros((size_t)N * F), *dy = zeros((size_t)N * Q), *dqkv = zeros((size_t)N * QKV);
    float loss = (ref ? icl_cross_entropy_ref : icl_cross_entropy)(dlog, logits, s->tgt, N, V, 1.0f);
    lin_b(dh, g->head, NULL, dlog, xf, p->head, N, C, V);
    rms_b(dx, g->nf, dh, x[L], p->nf, rf, N, C); /* dx was zero: now the gradient at the stream's end */
    for (int l = L - 1; l >= 0; l--) {
        int neox = l % 2;
        /* MLP: the residual passes dx through; the branch adds into it */
        lin_b(dF, g->wd[l], NULL, dx, m[l], p->wd[l], N, F, C);
        (ref ? icl_swiglu_backward_ref : icl_swiglu_backward)(dF, dF2, dF, gt[l], up[l], (size_t)N * F);
        lin_b(dh, g->wg[l], NULL, dF, h2[l], p->wg[l], N, C, F);
        lin_b(tmp, g->wu[l], NULL, dF2, h2[l], p->wu[l], N, C, F);
        icl_accumulate(dh, tmp, (size_t)N * C);
        rms_b(dx, g->fn[l], dh, x1[l], p->fn[l], r2[l], N, C);
        /* attention */
        lin_b(dy, g->wo[l], NULL, dx, y[l], p->wo[l], N, Q, C);
        memset(dqkv, 0, (size_t)N * QKV * sizeof(float));
        (ref ? icl_gqa_backward_ref : icl_gqa_backward)(dqkv, dqkv + Q, dqkv + Q + KV, dy, qkv[l], QKV, qkv[l] + Q,
                                                        qkv[l] + Q + KV, QKV, att[l], s->B, s->T, s->Hq, s->Hkv, s->hd,
                                                        scale);
        rope_b(dqkv, QKV, s->pos, N, s->Hq, s->hd, s->rd[l], s->theta, neox);
        rope_b(dqkv + Q, QKV, s->pos, N, s->Hkv, s->hd, s->rd[l], s->theta, neox);
        lin_b(dh, g->wqkv[l], NULL, dqkv, h[l], p->wqkv[l], N, C, QKV);
        rms_b(dx, g->an[l], dh, x[l], p->an[l], r1[l], N, C);
    }
    (ref ? icl_embedding_backward_ref : icl_embedding_backward)(g->wte, dx, s->tok, N, C);

    for (int l = 0; l <= L; l++) free(x[l]);
    for (int l = 0; l < L; l++) {
        free(h[l]); free(r1[l]); free(qkv[l]); free(y[l]); free(att[l]); free(x1[l]); free(h2[l]); free(r2[l]);
        free(gt[l]); free(up[l]); free(m[l]);
    }
    free(xf); free(rf); free(tmp); free(dlog); free(dx); free(dh); free(dF); free(dF2); free(dy); free(dqkv);
    return loss;
}

static int read_all(FILE *f, void *p, size_t size, size_t n) { return fread(p, size, n, f) == n; }

static void test_llama_vs_pytorch(void) {
    FILE *f = fopen("tests/fixtures/kernels_lm_ref.bin", "rb");
    CHECK_MSG(f != NULL, "tests/fixtures/kernels_lm_ref.bin missing (run tests/ref/kernels_lm_ref.py)");
    if (!f) return;
    int hdr[12];
    float tf[2];
    lm_shape s = {0};
    int ok = read_all(f, hdr, sizeof(int), 12) && read_all(f, tf, sizeof(float), 2);
    s.V = hdr[0]; s.C = hdr[1]; s.L = hdr[2]; s.Hq = hdr[3]; s.Hkv = hdr[4]; s.hd = hdr[5]; s.F = hdr[6];
    s.B = hdr[7]; s.T = hdr[8]; s.rd[0] = hdr[9]; s.rd[1] = hdr[10];
    s.theta = tf[0]; s.eps = tf[1];
    s.N = s.B * s.T;
    s.QKV = (s.Hq + 2 * s.Hkv) * s.hd;
    CHECK(ok && s.L == 2 && (size_t)hdr[11] == lm_nparams(&s));
    if (!ok || s.L != 2 || (size_t)hdr[11] != lm_nparams(&s)) {
        fclose(f);
        return;
    }
    size_t np = lm_nparams(&s), nl = (size_t)s.N * s.V;
    s.tok = malloc(sizeof(int32_t) * s.N);
    s.tgt = malloc(sizeof(int32_t) * s.N);
    s.pos = malloc(sizeof(int32_t) * s.N);
    for (int i = 0; i < s.N; i++) s.pos[i] = i % s.T;
    float *params = zeros(np), *loss_ref = zeros(1), *logits_ref = zeros(nl), *grads_ref = zeros(np);
    ok = read_all(f, s.tok, sizeof(int32_t), s.N) && read_all(f, s.tgt, sizeof(int32_t), s.N) &&
         read_all(f, params, sizeof(float), np) && read_all(f, loss_ref, sizeof(float), 1) &&
         read_all(f, logits_ref, sizeof(float), nl) && read_all(f, grads_ref, sizeof(float), np);
    fclose(f);
    CHECK_MSG(ok, "fixture truncated");
    lm_params p, g, gr;
    lm_bind(&p, params, &s);
    lm_bind(&gr, grads_ref, &s);
    float *grads = zeros(np), *logits = zeros(nl);
    lm_bind(&g, grads, &s);
    static const char *names[] = {"wte", "attn_norm", "wqkv", "wo", "ffn_norm", "w_gate", "w_up", "w_down", "norm_f", "lm_head"};
    for (int ref = 0; ok && ref < 2; ref++) {
        float loss = lm_run(&s, &p, &g, logits, ref);
        const char *kind = ref ? "ref kernels" : "fast kernels";
        CHECK_MSG(fabs(loss - loss_ref[0]) <= 1e-6 * fabs(loss_ref[0]), "%s: loss %.9g vs PyTorch %.9g", kind, loss,
                  loss_ref[0]);
        double el = icl_rel_l2(logits, logits_ref, nl);
        CHECK_MSG(el <= 1e-5, "%s: logits relative error %.3g", kind, el);
        /* every parameter tensor; wq, wk, wv compared as the packed wqkv rows they are */
        double worst = 0;
        for (int l = -1; l <= s.L; l++) {
            const float *a[8], *b[8];
            size_t n[8];
            int k = 0, first = 0;
            if (l == -1) { /* embedding */
                a[k] = g.wte; b[k] = gr.wte; n[k++] = (size_t)s.V * s.C;
            } else if (l == s.L) {
                first = 8;
                a[k] = g.nf; b[k] = gr.nf; n[k++] = s.C;
                a[k] = g.head; b[k] = gr.head; n[k++] = (size_t)s.V * s.C;
            } else {
                first = 1;
                a[k] = g.an[l]; b[k] = gr.an[l]; n[k++] = s.C;
                a[k] = g.wqkv[l]; b[k] = gr.wqkv[l]; n[k++] = (size_t)s.QKV * s.C;
                a[k] = g.wo[l]; b[k] = gr.wo[l]; n[k++] = (size_t)s.C * s.Hq * s.hd;
                a[k] = g.fn[l]; b[k] = gr.fn[l]; n[k++] = s.C;
                a[k] = g.wg[l]; b[k] = gr.wg[l]; n[k++] = (size_t)s.F * s.C;
                a[k] = g.wu[l]; b[k] = gr.wu[l]; n[k++] = (size_t)s.F * s.C;
                a[k] = g.wd[l]; b[k] = gr.wd[l]; n[k++] = (size_t)s.C * s.F;
            }
            for (int i = 0; i < k; i++) {
                double e = icl_rel_l2(a[i], b[i], n[i]);
                worst = fmax(worst, e);
                CHECK_MSG(e <= 1e-5, "%s: gradient of %s (layer %d): relative error %.3g", kind, names[first + i], l, e);
            }
            if (l >= 0 && l < s.L) { /* q, k, v rows separately: the GQA sums over shared kv heads */
                size_t qn = (size_t)s.Hq * s.hd * s.C, kn = (size_t)s.Hkv * s.hd * s.C;
                double eq = icl_rel_l2(g.wqkv[l], gr.wqkv[l], qn), ek = icl_rel_l2(g.wqkv[l] + qn, gr.wqkv[l] + qn, kn),
                       ev = icl_rel_l2(g.wqkv[l] + qn + kn, gr.wqkv[l] + qn + kn, kn);
                worst = fmax(worst, fmax(eq, fmax(ek, ev)));
                CHECK_MSG(eq <= 1e-5 && ek <= 1e-5 && ev <= 1e-5, "%s: layer %d wq/wk/wv relative errors %.3g %.3g %.3g",
                          kind, l, eq, ek, ev);
            }
        }
        printf("%s vs PyTorch: loss %.8f (ref %.8f), logits error %.3g, worst gradient error %.3g\n", kind, loss,
               loss_ref[0], el, worst);
    }
    free(s.tok); free(s.tgt); free(s.pos); free(params); free(loss_ref); free(logits_ref); free(grads_ref);
    free(grads); free(logits);
}

int main(void) {
    icl_rng_seed(&rng, 11);
    test_rmsnorm(5, 13);
    test_rmsnorm(3, 70); /* more than one 16-column block */
    test_rope(6, 3, 2, 8, 8, 0, 0);   /* adjacent pairs, whole head */
    test_rope(6, 3, 2, 8, 8, 1, 0);   /* NeoX halves */
    test_rope(5, 5, 3, 10, 6, 0, 0);  /* partial rotation */
    test_rope(5, 5, 3, 10, 4, 1, 0);
    test_rope(4, 2, 2, 6, 6, 1, 37);  /* positions that do not repeat: the per-row path */
    test_swiglu(301);
    test_geglu(301);
    test_gqa(2, 5, 4, 2, 3);
    test_gqa(1, 7, 6, 2, 4);
    test_gqa(2, 4, 3, 1, 5);           /* multi-query */
    test_gqa(1, 6, 2, 2, 4);           /* Hq == Hkv */
    test_gqa(1, 19, 2, 1, 17);         /* more than 16 positions and channels */
    test_gqa_gemm_long(2, 150, 4, 2, 8); /* three row blocks, the last one partial */
    test_gqa_is_mha(2, 5, 8, 2);
    test_gqa_is_mha(1, 21, 48, 3);
    test_embedding(13, 10, 7);
    test_cross_entropy(7, 11, 1.0f);
    test_cross_entropy(5, 37, 5.0f);   /* more than 16 classes, peaked */
    test_threads();
    test_llama_vs_pytorch();
    printf("worst finite-difference error %.3g (tolerance %g)\n", fd_worst, FD_TOL);
    return icl_test_finish();
}
