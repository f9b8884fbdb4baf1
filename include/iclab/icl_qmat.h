/* Matrix products whose weights stay in their stored ggml type (F32, F16, BF16, Q8_0, Q4_0, the
 * K-quants): what a pretrained GGUF model runs on. Nothing is converted to fp32 at load; a product
 * reads the packed rows and either dots them directly with fp32 activations (few tokens: memory
 * bound) or, for many tokens, unpacks a few rows at a time to fp32 (paid once per row, shared by
 * every token) and multiplies them with an fp32 matrix kernel: iclab's own AVX-512 kernel, which
 * reads F32 rows in place, or BLAS on per-thread tiles on other CPUs.
 *
 * Each dot product has a portable C path and, where the CPU has them, AVX2 and AVX-512 paths,
 * chosen at run time; icl_qdot_with lets tests run each path and hold them together.
 * Results depend on the path and the thread count, never on anything else. */
#ifndef ICL_QMAT_H
#define ICL_QMAT_H
#include <stdint.h>
#include "iclab/icl_err.h"

typedef enum { ICL_SIMD_PORTABLE = 0, ICL_SIMD_AVX2 = 1, ICL_SIMD_AVX512 = 2 } icl_simd;

/* The fastest path this CPU supports (the one icl_qdot and icl_qmatmul use). */
icl_simd icl_simd_best(void);
/* "portable", "avx2" or "avx512". */
const char *icl_simd_name(icl_simd s);

/* 1 if `type` has a dot product / matrix product here: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K
 * with fast paths; any other type icl_quant_can_dequantize accepts through a dequantizing fallback. */
int icl_qmat_supported(int type);

/* sum_i dequant(row)[i] * x[i] over n elements (n a multiple of the type's block size), on the best
 * path. The caller guarantees the type is supported and n is valid. */
float icl_qdot(int type, const void *row, const float *x, int64_t n);
/* The same on a chosen path: returns 0 and sets *out, or -1 if this CPU lacks the path or the type
 * has no code on it (tests skip such combinations). */
int icl_qdot_with(icl_simd path, int type, const void *row, const float *x, int64_t n, float *out);
/* Dequantizes n elements of a row to fp32 on a chosen path (what icl_qmatmul's tiles hold); bit-exact
 * with icl_quant_dequantize_row on every path. Returns 0, or -1 as icl_qdot_with does. */
int icl_qunpack_with(icl_simd path, int type, const void *row, float *dst, int64_t n);

/* y (T, ldy) [:, 0:rows] = x (T, cols) @ W^T, where W is `rows` packed rows of `cols` elements of
 * `type`, row after row (row stride icl_quant_row_bytes(type, cols)). ldy >= rows lets the result
 * land in a slice of a wider buffer. Threads (OpenMP) split the rows. From 8 tokens on: with
 * AVX-512, the 8-row x 32-token kernel of icl_qmat_gemm.c (F32 rows read in place, others unpacked
 * 8 rows at a time, x packed once per call); otherwise F32 weights (4-byte aligned) go straight to
 * BLAS and other types through per-thread fp32 tiles. With fewer tokens (T == 1 included) every
 * output is an icl_qdot. Returns 0, or -1 with a message for
 * an unsupported type or a bad shape. */
int icl_qmatmul(int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T, float *y,
                int64_t ldy, icl_err *err);
/* The same on a chosen path (PORTABLE and AVX2 take the BLAS strategies for many tokens): -1 if
 * this CPU lacks the path. */
int icl_qmatmul_with(icl_simd path, int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T,
                     float *y, int64_t ldy, icl_err *err);
/* Reference: dequantizes each row to fp32 and accumulates in double, one thread. Same contract. */
int icl_qmatmul_ref(int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T, float *y,
                    int64_t ldy, icl_err *err);

#endif
