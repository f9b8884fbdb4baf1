/* Prefill matrix product on AVX-512 without BLAS: y = x W^T for many tokens, with the weights read
 * as stored (F32 rows in place, other types unpacked 8 rows at a time into a small fp32 buffer)
 * and the activations packed once per call. BLAS would pack the weights again on every call; for
 * a model whose weights stream from memory once per prefill that copy cost a sixth of the time.
 *
 * Micro-kernel: 8 weight rows x 32 tokens. The activations are packed k-major per block of 32
 * tokens, xp[(b*K + k)*32 + j] = x[b*32 + j][k], so at each k two vector loads bring 32 tokens and
 * each row's weight is broadcast: 16 accumulators, 16 fused multiply-adds per k. Each output is one
 * chain of multiply-adds in k order, so it does not depend on the thread count. */
#include <stdint.h>
#include <string.h>
#include "icl_qmat_simd.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define GEMM_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

void icl_qmat_gemm_pack_x(const float *x, int64_t T, int64_t K, float *xp) {
    /* 16 k at a time for every token of a block: the 16 destination rows (2 KiB) stay in L1 while
     * each token's 16 contiguous values are spread over them. */
    int64_t nb = (T + ICL_QGEMM_NT - 1) / ICL_QGEMM_NT;
    for (int64_t b = 0; b < nb; b++) {
        float *blk = xp + (size_t)b * K * ICL_QGEMM_NT;
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            int64_t kn = K - k0 < 16 ? K - k0 : 16;
            for (int64_t j = 0; j < ICL_QGEMM_NT; j++) {
                int64_t t = b * ICL_QGEMM_NT + j;
                float *dst = blk + (size_t)k0 * ICL_QGEMM_NT + j;
                if (t < T) {
                    const float *src = x + (size_t)t * K + k0;
                    for (int64_t i = 0; i < kn; i++) dst[(size_t)i * ICL_QGEMM_NT] = src[i];
                } else {
                    for (int64_t i = 0; i < kn; i++) dst[(size_t)i * ICL_QGEMM_NT] = 0.0f;
                }
            }
        }
    }
}

GEMM_ATTR void icl_qmat_gemm_rows(const float *w, int64_t ldw, int nrows, int64_t K, const float *xp, int64_t T,
                                  float *y, int64_t ldy) {
    const float *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    const float *w4 = w + 4 * ldw, *w5 = w + 5 * ldw, *w6 = w + 6 * ldw, *w7 = w + 7 * ldw;
    int64_t nb = (T + ICL_QGEMM_NT - 1) / ICL_QGEMM_NT;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = xp + (size_t)b * K * ICL_QGEMM_NT;
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00;
        __m512 a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
        for (int64_t k = 0; k < K; k++) {
            __m512 x0 = _mm512_loadu_ps(xb + (size_t)k * ICL_QGEMM_NT), x1 = _mm512_loadu_ps(xb + (size_t)k * ICL_QGEMM_NT + 16);
            __m512 v;
            v = _mm512_set1_ps(w0[k]), a00 = _mm512_fmadd_ps(v, x0, a00), a01 = _mm512_fmadd_ps(v, x1, a01);
            v = _mm512_set1_ps(w1[k]), a10 = _mm512_fmadd_ps(v, x0, a10), a11 = _mm512_fmadd_ps(v, x1, a11);
            v = _mm512_set1_ps(w2[k]), a20 = _mm512_fmadd_ps(v, x0, a20), a21 = _mm512_fmadd_ps(v, x1, a21);
            v = _mm512_set1_ps(w3[k]), a30 = _mm512_fmadd_ps(v, x0, a30), a31 = _mm512_fmadd_ps(v, x1, a31);
            v = _mm512_set1_ps(w4[k]), a40 = _mm512_fmadd_ps(v, x0, a40), a41 = _mm512_fmadd_ps(v, x1, a41);
            v = _mm512_set1_ps(w5[k]), a50 = _mm512_fmadd_ps(v, x0, a50), a51 = _mm512_fmadd_ps(v, x1, a51);
            v = _mm512_set1_ps(w6[k]), a60 = _mm512_fmadd_ps(v, x0, a60), a61 = _mm512_fmadd_ps(v, x1, a61);
            v = _mm512_set1_ps(w7[k]), a70 = _mm512_fmadd_ps(v, x0, a70), a71 = _mm512_fmadd_ps(v, x1, a71);
        }
        /* acc[r][j]: row r, token j of the block; written out transposed into y's rows */
        float acc[ICL_QGEMM_NR][ICL_QGEMM_NT];
        _mm512_storeu_ps(acc[0], a00), _mm512_storeu_ps(acc[0] + 16, a01);
        _mm512_storeu_ps(acc[1], a10), _mm512_storeu_ps(acc[1] + 16, a11);
        _mm512_storeu_ps(acc[2], a20), _mm512_storeu_ps(acc[2] + 16, a21);
        _mm512_storeu_ps(acc[3], a30), _mm512_storeu_ps(acc[3] + 16, a31);
        _mm512_storeu_ps(acc[4], a40), _mm512_storeu_ps(acc[4] + 16, a41);
        _mm512_storeu_ps(acc[5], a50), _mm512_storeu_ps(acc[5] + 16, a51);
        _mm512_storeu_ps(acc[6], a60), _mm512_storeu_ps(acc[6] + 16, a61);
        _mm512_storeu_ps(acc[7], a70), _mm512_storeu_ps(acc[7] + 16, a71);
        int64_t nt = T - b * ICL_QGEMM_NT < ICL_QGEMM_NT ? T - b * ICL_QGEMM_NT : ICL_QGEMM_NT;
        for (int64_t j = 0; j < nt; j++) {
            float *yt = y + (size_t)(b * ICL_QGEMM_NT + j) * ldy;
            for (int r = 0; r < nrows; r++) yt[r] = acc[r][j];
        }
    }
}

int icl_qmat_gemm_available(void) { return 1; }
#else
void icl_qmat_gemm_pack_x(const float *x, int64_t T, int64_t K, float *xp) { (void)x, (void)T, (void)K, (void)xp; }
void icl_qmat_gemm_rows(const float *w, int64_t ldw, int nrows, int64_t K, const float *xp, int64_t T, float *y,
                        int64_t ldy) {
    (void)w, (void)ldw, (void)nrows, (void)K, (void)xp, (void)T, (void)y, (void)ldy;
}
int icl_qmat_gemm_available(void) { return 0; }
#endif
