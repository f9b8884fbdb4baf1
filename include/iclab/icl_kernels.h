/* The transformer's compute kernels, forward and backward, fp32. Each fast kernel has a simple
 * reference beside it (suffix _ref) and tests/test_kernels.c holds them together and checks every
 * backward against finite differences. Shapes in comments: N = rows (B*T), C = channels.
 * Backward kernels ACCUMULATE (+=) into parameter gradients, and into input gradients where the
 * residual stream needs it (layernorm, attention); the linear and GELU input gradients are written
 * (=), which saves zeroing them. All kernels give the same bits for the same
 * thread count; reductions over rows are done per column so they do not depend on it at all. */
#ifndef ICL_KERNELS_H
#define ICL_KERNELS_H
#include <stddef.h>

/* out (N,OC) = inp (N,IC) @ w^T (w: (OC,IC), PyTorch Linear layout) + b (OC, may be NULL). */
void icl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
/* dinp (N,IC) = dout @ w (dinp may be NULL); dw (OC,IC) += dout^T @ inp; db (OC) += column sums of dout (may be NULL). */
void icl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                         int IC, int OC);
void icl_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
void icl_linear_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                             int IC, int OC);

/* LayerNorm over C with eps 1e-5: out = (x-mean)*rstd*w + b; saves mean, rstd (N) for backward. */
void icl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                           int C);
/* dinp += ..., dw += ..., db += ... */
void icl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C);

/* GELU, tanh approximation (GPT-2's); out and inp must not overlap. */
void icl_gelu_forward(float *out, const float *inp, size_t n);
/* a = silu(a) * b = a / (1 + exp(-a)) * b (SwiGLU's gate times up), exp by the same polynomial
 * as GELU's tanh (relative error below 3e-7). */
void icl_silu_mul(float *a, const float *b, size_t n);
/* a = gelu(a) * b (GeGLU, tanh GELU as icl_gelu_forward). a and b must not overlap. */
void icl_gelu_mul(float *a, const float *b, size_t n);
/* dinp = gelu'(inp) * dout */
void icl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n);

/* Causal multi-head self-attention core (no projections).
 * qkv (B,T,3C) holds q | k | v per token, head h at channels [h*hs, (h+1)*hs) of each.
 * out (B,T,C) = softmax(q k^T / sqrt(hs) + causal mask) v per head; att (B,H,T,T) keeps the probabilities. */
void icl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H);
void icl_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int C, int H);
/* dqkv (B,T,3C) += the gradient of the loss through the attention core, given dout (B,T,C). */
void icl_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int H);

/* out = a + b (n) */
void icl_add(float *out, const float *a, const float *b, size_t n);
/* out += a (n) */
void icl_accumulate(float *out, const float *a, size_t n);

#endif
