/* Internal interface between the icl_qmat dispatcher (icl_qmat.c) and its x86 SIMD kernels
 * (icl_qmat_x86.c). Not installed with the public headers.
 *
 * Every kernel computes each weight exactly as icl_quant_dequantize_row does (the same float
 * operations in the same order, no fused multiply-add), so an unpack is bit-exact with it and a dot
 * product differs from the exact dot of the dequantized row only by fp32 accumulation. Accumulators
 * are split into at least 16 lanes, each summing at most ceil(n / 16) products in a fixed order. */
#ifndef ICL_QMAT_SIMD_H
#define ICL_QMAT_SIMD_H
#include <stdint.h>

/* sum_i w[i] * x[i] over n elements of a packed row (n a multiple of the block size). */
typedef float (*icl_qdot_fn)(const uint8_t *row, const float *x, int64_t n);
/* Dequantizes n elements of a packed row into dst. */
typedef void (*icl_qunpack_fn)(const uint8_t *row, float *dst, int64_t n);

typedef struct {
    icl_qdot_fn dot;
    icl_qunpack_fn unpack;
} icl_qkernel;

/* Fill *k with the AVX2 (resp. AVX-512) kernels for ggml type `type` and return 1, or return 0 when
 * the path has no code for the type or was not compiled in (non-x86 builds). They do not check the
 * CPU: the caller must. */
int icl_qmat_avx2_kernel(int type, icl_qkernel *k);
int icl_qmat_avx512_kernel(int type, icl_qkernel *k);

/* The AVX-512 prefill micro-kernel (icl_qmat_gemm.c): 8 weight rows x 32 tokens. */
enum { ICL_QGEMM_NR = 8, ICL_QGEMM_NT = 32 };
/* 1 if the kernel is compiled in (x86-64); the caller still checks the CPU for AVX-512. */
int icl_qmat_gemm_available(void);
/* Packs x (T, K) k-major per block of 32 tokens into xp (ceil(T/32)*32*K floats), zero-padded. */
void icl_qmat_gemm_pack_x(const float *x, int64_t T, int64_t K, float *xp);
/* y[t][r] = sum_k w[r*ldw + k] * x[t][k] for r < nrows (<= 8), t < T, reading 8 rows of w (rows
 * past nrows must be readable: pass zero rows) and the packed x. */
void icl_qmat_gemm_rows(const float *w, int64_t ldw, int nrows, int64_t K, const float *xp, int64_t T, float *y,
                        int64_t ldy);

#endif
