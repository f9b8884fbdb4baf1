/* bf16 matrix products for training on CPUs with AMX-BF16 tiles: both operands rounded to bf16
 * (round to nearest even), products accumulated in fp32 by the tile unit, the result written in
 * fp32. Master weights, gradients' other terms and the optimiser stay fp32; only the three
 * products of a linear layer use these kernels (icl_model's --bf16 mode).
 *
 * Every element of a result is one fixed chain of tile dot products over K in ascending blocks of
 * 32, so the bits do not depend on the thread count at all. Each fast kernel has a reference
 * (suffix _ref) that computes the same products in double on the bf16-rounded inputs;
 * tests/test_bf16.c holds them together. */
#ifndef ICL_BF16_H
#define ICL_BF16_H
#include <stddef.h>
#include "iclab/icl_err.h"

/* 0 if this CPU and kernel let us use AMX-BF16 tiles (asks Linux for the tile state once per
 * process: arch_prctl(ARCH_REQ_XCOMP_PERM)); -1 with a one-line reason otherwise. Thread-safe. */
int icl_bf16_init(icl_err *err);

/* x rounded to bf16 (round to nearest even; NaN stays NaN), returned as the fp32 it represents. */
float icl_bf16_round(float x);

/* C (M,N; row stride ldc) = op(A) op(B), or += with accumulate. op(A) (M,K) is A (M,K; stride lda),
 * or with transA A stored as (K,M). op(B) (K,N) is B (K,N; stride ldb), or with transB B stored as
 * (N,K). Inputs rounded to bf16, fp32 accumulation. Needs icl_bf16_init to have succeeded (returns
 * -1 otherwise, or when out of memory). M, N, K >= 1. */
int icl_bf16_gemm(float *C, size_t ldc, int accumulate, const float *A, size_t lda, int transA, const float *B,
                  size_t ldb, int transB, int M, int N, int K, icl_err *err);
/* The same product in double on the bf16-rounded inputs, rounded once to fp32 (any CPU). */
void icl_bf16_gemm_ref(float *C, size_t ldc, int accumulate, const float *A, size_t lda, int transA, const float *B,
                       size_t ldb, int transB, int M, int N, int K);

/* The contracts of icl_linear_forward / icl_linear_backward (icl_kernels.h) with bf16 products:
 * out (N,OC) = inp (N,IC) w^T (w: (OC,IC)) + b (OC, may be NULL; added in fp32);
 * dinp (N,IC) = dout w (NULL: skipped), dw (OC,IC) += dout^T inp (NULL: skipped), db (OC) += the
 * column sums of dout in fp32 (NULL: skipped). Return 0, or -1 (tiles unavailable, no memory). */
int icl_linear_forward_bf16(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC,
                            icl_err *err);
int icl_linear_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                             int N, int IC, int OC, icl_err *err);

#endif
