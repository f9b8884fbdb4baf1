/* bf16 kernels (icl_bf16.h) against references:
 *  - against the double-precision product of the bf16-rounded inputs: the only differences are
 *    fp32 accumulation order, so |err| <= 1e-5 * sum_k |a_ik b_kj| (K up to 600: K * 2^-24 ~ 4e-5
 *    is the worst case, the random-sign typical case is far below);
 *  - against the fp32 product of the unrounded inputs: each input moves by at most 2^-9 relative
 *    (bf16 has 8 significant bits, round to nearest), a product by at most ~2^-8, so
 *    |err| <= 2^-7 * sum_k |a_ik b_kj| holds with a margin;
 *  - the same bits at 1 and 2 threads; the linear layers' contracts (bias, +=, NULL outputs);
 *  - the toy model in --bf16 mode: loss and gradients within bf16 bounds of fp32 mode.
 * Skips (printing SKIP [ci-ok]) where the CPU has no AMX-BF16. */
#include "icl_test.h"
#include "iclab/icl_bf16.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_model.h"
#include "iclab/icl_rng.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 4.0f;
    }
}

/* sum_k |op(A)_ik op(B)_kj| for each (i, j), in double on the unrounded inputs */
static void abs_sum(double *S, const float *A, size_t lda, int tA, const float *B, size_t ldb, int tB, int M, int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float x = tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float y = tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += fabs((double)x * y);
            }
            S[(size_t)i * N + j] = s;
        }
}

static void check_gemm(int M, int N, int K, int tA, int tB, int acc) {
    size_t lda = tA ? M : K, ldb = tB ? K : N;
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N);
    float *C = malloc(sizeof(float) * (size_t)M * N), *R = malloc(sizeof(float) * (size_t)M * N);
    float *F = malloc(sizeof(float) * (size_t)M * N), *C1 = malloc(sizeof(float) * (size_t)M * N);
    double *S = malloc(sizeof(double) * (size_t)M * N);
    fill(A, (size_t)M * K, 1u + M);
    fill(B, (size_t)K * N, 7u + N);
    fill(C, (size_t)M * N, 3u);
    memcpy(R, C, sizeof(float) * (size_t)M * N);
    memcpy(C1, C, sizeof(float) * (size_t)M * N);
    abs_sum(S, A, lda, tA, B, ldb, tB, M, N, K);
    /* the fp32 product on unrounded inputs, in double */
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = acc ? C[(size_t)i * N + j] : 0;
            for (int k = 0; k < K; k++)
                s += (double)(tA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            F[(size_t)i * N + j] = (float)s;
        }
    icl_err err = {{0}};
    int rc = icl_bf16_gemm(C, N, acc, A, lda, tA, B, ldb, tB, M, N, K, &err);
    CHECK_MSG(rc == 0, "gemm: %s", err.msg);
    icl_bf16_gemm_ref(R, N, acc, A, lda, tA, B, ldb, tB, M, N, K);
    double worst_ref = 0, worst_f32 = 0;
    for (size_t i = 0; i < (size_t)M * N; i++) {
        double base = S[i] + (acc ? 4.0 : 0.0); /* the added C (|C| <= 2) rounds once more */
        double e1 = fabs((double)C[i] - R[i]) / base, e2 = fabs((double)C[i] - F[i]) / base;
        if (e1 > worst_ref) worst_ref = e1;
        if (e2 > worst_f32) worst_f32 = e2;
    }
    CHECK_MSG(worst_ref <= 1e-5, "%dx%dx%d tA%d tB%d acc%d: vs bf16 reference %.3g of sum|ab|", M, N, K, tA, tB, acc,
              worst_ref);
    CHECK_MSG(worst_f32 <= 1.0 / 128, "%dx%dx%d tA%d tB%d acc%d: vs fp32 %.3g of sum|ab|", M, N, K, tA, tB, acc,
              worst_f32);
    /* one thread: the same bits */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    rc = icl_bf16_gemm(C1, N, acc, A, lda, tA, B, ldb, tB, M, N, K, &err);
    omp_set_num_threads(nt);
    CHECK(rc == 0 && memcmp(C1, C, sizeof(float) * (size_t)M * N) == 0);
    printf("gemm %4dx%4dx%4d tA%d tB%d acc%d: max err vs bf16 ref %.2e, vs fp32 %.2e (of sum|ab|)\n", M, N, K, tA, tB,
           acc, worst_ref, worst_f32);
    free(A), free(B), free(C), free(R), free(F), free(C1), free(S);
}

static void check_linear(int N, int IC, int OC) {
    size_t ni = (size_t)N * IC, no = (size_t)N * OC, nw = (size_t)OC * IC;
    float *inp = malloc(sizeof(float) * ni), *w = malloc(sizeof(float) * nw), *b = malloc(sizeof(float) * OC);
    float *dout = malloc(sizeof(float) * no), *out = malloc(sizeof(float) * no), *out_r = malloc(sizeof(float) * no);
    float *dinp = malloc(sizeof(float) * ni), *dinp_r = malloc(sizeof(float) * ni);
    float *dw = calloc(nw, sizeof(float)), *dw_r = calloc(nw, sizeof(float));
    float *db = calloc(OC, sizeof(float)), *db_r = calloc(OC, sizeof(float));
    fill(inp, ni, 11), fill(w, nw, 12), fill(b, OC, 13), fill(dout, no, 14);
    icl_err err = {{0}};
    /* a bias can cancel the product (N = 1): the relative bound is for the product alone there */
    const float *bias = N > 1 ? b : NULL;
    CHECK(icl_linear_forward_bf16(out, inp, w, bias, N, IC, OC, &err) == 0);
    CHECK(icl_linear_backward_bf16(dinp, dw, db, dout, inp, w, N, IC, OC, &err) == 0);
    /* twice into dw: += */
    CHECK(icl_linear_backward_bf16(NULL, dw, NULL, dout, inp, w, N, IC, OC, &err) == 0);
    icl_linear_forward_ref(out_r, inp, w, bias, N, IC, OC);
    icl_linear_backward_ref(dinp_r, dw_r, db_r, dout, inp, w, N, IC, OC);
    icl_linear_backward_ref(NULL, dw_r, NULL, dout, inp, w, N, IC, OC);
    double e_out = icl_rel_l2(out, out_r, no), e_dinp = icl_rel_l2(dinp, dinp_r, ni), e_dw = icl_rel_l2(dw, dw_r, nw);
    double e_db = icl_rel_l2(db, db_r, OC);
    /* relative L2 of a sum of products of bf16-rounded random inputs: ~2^-9, bound 2^-7 */
    CHECK_MSG(e_out < 1.0 / 128 && e_dinp < 1.0 / 128 && e_dw < 1.0 / 128, "linear %dx%dx%d: %.3g %.3g %.3g", N, IC, OC,
              e_out, e_dinp, e_dw);
    CHECK(e_db < 1e-5);
    printf("linear N=%d IC=%d OC=%d: rel L2 vs fp32 out %.2e dinp %.2e dw %.2e db %.2e\n", N, IC, OC, e_out, e_dinp,
           e_dw, e_db);
    free(inp), free(w), free(b), free(dout), free(out), free(out_r), free(dinp), free(dinp_r), free(dw), free(dw_r);
    free(db), free(db_r);
}

/* The toy model in bf16 mode against fp32 mode: loss and gradients within bf16 bounds, the same
 * bits when repeated, and a forward with hooks (the analyses') on the fp32 path. */
static void check_model(void) {
    icl_model_config mc = {2, 4, 64, 20, 4, 1, 4};
    icl_model m;
    icl_err err = {{0}};
    if (icl_model_init(&m, &mc, &err)) {
        CHECK_MSG(0, "model: %s", err.msg);
        return;
    }
    icl_rng rng;
    icl_rng_seed(&rng, 5);
    icl_model_init_weights(&m, &rng);
    int B = 8, T = 20, D = 4;
    float *tok = malloc(sizeof(float) * (size_t)B * T * D), *tg = malloc(sizeof(float) * (size_t)B * T);
    for (int i = 0; i < B * T * D; i++) tok[i] = (float)icl_rng_normal(&rng);
    for (int i = 0; i < B * T; i++) tg[i] = (float)icl_rng_normal(&rng);
    float *g32 = malloc(sizeof(float) * m.n_params), *g16 = malloc(sizeof(float) * m.n_params);
    float l32 = 0, l16 = 0, l16b = 0, lh = 0;
    icl_model_zero_grad(&m);
    CHECK(icl_model_forward(&m, tok, B, T, tg, NULL, &l32, &err) == 0 && icl_model_backward(&m, &err) == 0);
    memcpy(g32, m.grads, sizeof(float) * m.n_params);
    CHECK(icl_model_set_bf16(&m, 1, &err) == 0);
    icl_model_zero_grad(&m);
    CHECK(icl_model_forward(&m, tok, B, T, tg, NULL, &l16, &err) == 0 && icl_model_backward(&m, &err) == 0);
    memcpy(g16, m.grads, sizeof(float) * m.n_params);
    icl_model_zero_grad(&m);
    CHECK(icl_model_forward(&m, tok, B, T, tg, NULL, &l16b, &err) == 0 && icl_model_backward(&m, &err) == 0);
    CHECK(l16b == l16 && memcmp(g16, m.grads, sizeof(float) * m.n_params) == 0);
    /* the products' inputs move by 2^-9 relative: the loss and gradients by a few times that */
    double el = fabs((double)l16 - l32) / l32, eg = icl_rel_l2(g16, g32, m.n_params);
    CHECK_MSG(el < 1e-2 && eg < 3e-2, "toy model bf16 vs fp32: loss %.3g, gradients %.3g", el, eg);
    CHECK(l16 != l32); /* the bf16 path did run */
    icl_hook h = {.site = ICL_SITE_RESID_POST, .layer = 0, .positions = (const int[]){3}, .n_positions = 1,
                  .action = ICL_HOOK_CAPTURE, .out = NULL};
    float *capb = malloc(sizeof(float) * (size_t)B * 64);
    h.out = capb;
    CHECK(icl_model_set_hooks(&m, &h, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, tg, NULL, &lh, &err) == 0);
    CHECK(lh == l32); /* hooks: the fp32 path */
    printf("toy model bf16 vs fp32: loss %.6f vs %.6f (rel %.2e), gradients rel L2 %.2e\n", l16, l32, el, eg);
    free(capb), free(tok), free(tg), free(g32), free(g16);
    icl_model_free(&m);
}

int main(void) {
    CHECK(icl_bf16_round(1.0f) == 1.0f);
    CHECK(icl_bf16_round(1.0f + 1.0f / 256) == 1.0f);                 /* tie to even (down) */
    CHECK(icl_bf16_round(1.0f + 3.0f / 256) == 1.0f + 4.0f / 256);    /* tie to even (up) */
    CHECK(icl_bf16_round(1.0f + 1.0f / 256 + 1.0f / 65536) == 1.0f + 2.0f / 256);
    CHECK(isnan(icl_bf16_round(NAN)));
    icl_err err = {{0}};
    if (icl_bf16_init(&err)) {
        printf("SKIP [ci-ok] bf16 kernels: %s\n", err.msg);
        return icl_test_finish();
    }
    omp_set_num_threads(2);
    static const int shapes[][3] = {{1, 1, 1}, {16, 16, 32}, {33, 17, 1}, {37, 45, 70}, {100, 31, 257}, {64, 96, 600}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tA = 0; tA < 2; tA++)
            for (int tB = 0; tB < 2; tB++) check_gemm(shapes[s][0], shapes[s][1], shapes[s][2], tA, tB, (tA + tB + (int)s) & 1);
    check_linear(1, 1, 1);
    check_linear(37, 5, 19);
    check_linear(200, 64, 192);
    check_linear(300, 256, 1024);
    check_model();
    return icl_test_finish();
}
