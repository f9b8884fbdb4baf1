/* The transformer's compute kernels, forward and backward, fp32. Each fast kernel has a simple
 * reference beside it (suffix _ref) and tests/test_kernels.c holds them together and checks every
 * backward against finite differences. Shapes in comments: N = rows (B*T), C = channels.
 * Backward kernels ACCUMULATE (+=) into parameter gradients, and into input gradients where the
 * residual stream needs it (layernorm, attention); the linear and GELU input gradients are written
 * (=), which saves zeroing them. Every kernel gives the same bits whatever the thread count:
 * matrix products run as BLAS calls on fixed blocks (icl_sgemm_blocks) and reductions over rows
 * are done per column. */
#ifndef ICL_KERNELS_H
#define ICL_KERNELS_H
#include <stddef.h>
#include <stdint.h>

/* Row-major C (M,N) = alpha op(A) op(B) + beta C, op(X) = X^T where transX is non-zero, computed as
 * one single-threaded sgemm per block of ICL_GEMM_BLOCK rows of C, the blocks spread over the
 * OpenMP threads (threads <= 0: omp_get_max_threads()). BLAS kernels pick their code by the shape
 * of the call, so an element's bits would otherwise depend on how the rows were cut between threads;
 * with fixed blocks they depend only on M, N, K and the inputs. */
#define ICL_GEMM_BLOCK 64
void icl_sgemm_blocks(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int threads);

/* out (N,OC) = inp (N,IC) @ w^T (w: (OC,IC), PyTorch Linear layout) + b (OC, may be NULL). */
void icl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
/* dinp (N,IC) = dout @ w (dinp may be NULL); dw (OC,IC) += dout^T @ inp (dw NULL: a frozen weight);
 * db (OC) += column sums of dout (may be NULL). */
void icl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                         int IC, int OC);
void icl_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC);
void icl_linear_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                             int IC, int OC);

/* LayerNorm over C: out = (x-mean)*rstd*w + b with rstd = 1/sqrt(var + eps) (GPT-2: eps 1e-5); saves
 * mean, rstd (N) for backward. */
void icl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                           int C, float eps);
/* dinp += ..., dw += ..., db += ... (dw NULL: frozen weight and bias, only dinp; db NULL: no bias) */
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

/* ---------------------------------------------------------------- Llama block and LM head
 * Kernels of a Llama-style block (RMSNorm, RoPE, SwiGLU, grouped-query attention) and of the
 * language-model ends (token embedding, cross-entropy). Shapes: B sequences of T tokens, N = B*T
 * rows, C channels; Hq query heads and Hkv key/value heads of hd channels each. Token ids and
 * targets are int32. tests/test_kernels_lm.c holds each fast kernel against its _ref and against
 * finite differences, and a whole block against PyTorch (tests/ref/kernels_lm_ref.py). */

/* RMSNorm over C: out (N,C) = x * rstd * w, rstd (N) = 1/sqrt(mean(x^2) + eps), saved for backward.
 * The sum of squares is taken in double and rstd rounded to float, then out = (x*rstd)*w in float:
 * the same bits as the inference engine's norm (src/arch/icl_lm_eval.c, norm_rows). */
void icl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
void icl_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps);
/* dinp (N,C) += d/dx, dw (C) += sum over rows of dout * x * rstd (dw NULL: a frozen weight); rstd
 * from the forward. */
void icl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                          int N, int C);
void icl_rmsnorm_backward_ref(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                              const float *rstd, int N, int C);

/* Rotary position embedding, in place, on N rows of n_heads heads of head_dim channels: row r's
 * head h starts at x + r*ld + h*head_dim (ld >= n_heads*head_dim, so q or k can be rotated inside
 * a packed qkv buffer). pos (N) is each row's position (>= 0; t within its sequence). The first
 * rope_dim (even, <= head_dim) channels of each head are rotated in pairs, pair i by the angle
 * pos * theta^(-2i/rope_dim): neox = 0 pairs channels (2i, 2i+1) (llama.cpp's "normal" mode, GGUF
 * llama), neox = 1 pairs (i, i + rope_dim/2) (GPT-NeoX, Qwen2, Gemma). Angles in double, cos and
 * sin rounded to float, as the inference engine does (same bits with rope_scale 1 and no
 * frequency factors). */
void icl_rope_forward(float *x, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                      float theta, int neox);
void icl_rope_forward_ref(float *x, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                          float theta, int neox);
/* The transpose: dx (same layout as x) <- R^T dx in place, turning the gradient of the rotated
 * values into the gradient of the values before rotation. */
void icl_rope_backward(float *dx, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                       float theta, int neox);
void icl_rope_backward_ref(float *dx, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                           float theta, int neox);

/* SwiGLU: out (n) = silu(gate) * up = gate / (1 + exp(-gate)) * up; gate and up are left as they
 * are (the backward needs them). exp by the polynomial of icl_silu_mul: the same bits as the
 * inference kernel. out must not overlap gate or up. */
void icl_swiglu_forward(float *out, const float *gate, const float *up, size_t n);
void icl_swiglu_forward_ref(float *out, const float *gate, const float *up, size_t n);
/* dgate = dout * up * silu'(gate), dup = dout * silu(gate) (written, =). */
void icl_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
void icl_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* GeGLU (Gemma's MLP): out = gelu_tanh(gate) * up (the bits of icl_gelu_mul, the gate kept);
 * backward: dgate = dout * up * gelu'(gate), dup = dout * gelu(gate) (dgate may alias dout). The
 * references work in double, the derivative by central differences. */
void icl_geglu_forward(float *out, const float *gate, const float *up, size_t n);
void icl_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);
void icl_geglu_forward_ref(float *out, const float *gate, const float *up, size_t n);
void icl_geglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n);

/* Causal grouped-query attention core (no projections). q (B,T,Hq*hd) with row stride ldq; k, v
 * (B,T,Hkv*hd) with row stride ldkv (floats from one token to the next): for a packed qkv
 * (B,T,(Hq+2Hkv)*hd) buffer, q = qkv, k = qkv + Hq*hd, v = k + Hkv*hd, ldq = ldkv = (Hq+2Hkv)*hd.
 * Hq is a multiple of Hkv; query head h reads kv head h / (Hq/Hkv). out (B,T,Hq*hd), contiguous,
 * = softmax(scale * q k^T + causal mask) v per head (scale usually 1/sqrt(hd)); att (B,Hq,T,T)
 * keeps the probabilities, zero above the diagonal. With Hq == Hkv, a packed buffer and scale
 * 1/sqrtf(hd) it gives the same bits as icl_attention_forward (and the backward as
 * icl_attention_backward). */
void icl_gqa_forward(float *out, float *att, const float *q, size_t ldq, const float *k, const float *v, size_t ldkv,
                     int B, int T, int Hq, int Hkv, int hd, float scale);
void icl_gqa_forward_ref(float *out, float *att, const float *q, size_t ldq, const float *k, const float *v,
                         size_t ldkv, int B, int T, int Hq, int Hkv, int hd, float scale);
/* dq, dk, dv (the layouts and strides of q, k, v; may be one packed buffer) += the gradients given
 * dout (B,T,Hq*hd); dk and dv sum over the query heads sharing a kv head, in head order. Parallel
 * over (sequence, kv head) pairs. */
void icl_gqa_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq, const float *k,
                      const float *v, size_t ldkv, const float *att, int B, int T, int Hq, int Hkv, int hd,
                      float scale);
/* The same gradients as sgemm calls on blocks of 64 query rows: several times faster for long
 * contexts (hundreds of positions), different rounding (within 1e-5 relative of the reference). */
void icl_gqa_backward_gemm(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq,
                           const float *k, const float *v, size_t ldkv, const float *att, int B, int T, int Hq,
                           int Hkv, int hd, float scale);
void icl_gqa_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq,
                          const float *k, const float *v, size_t ldkv, const float *att, int B, int T, int Hq, int Hkv,
                          int hd, float scale);

/* Token embedding: out (N,C) = rows tokens[r] of wte (V,C), tokens in [0,V). */
void icl_embedding_forward(float *out, const float *wte, const int32_t *tokens, int N, int C);
/* dwte (V,C) += row r of dout at row tokens[r]; rows sharing a token are added in row order. */
void icl_embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C);
void icl_embedding_backward_ref(float *dwte, const float *dout, const int32_t *tokens, int N, int C);

/* Cross-entropy of logits (N,V) against targets (N): a target in [0,V) counts, a negative one
 * (-1) means no loss at that row. Returns the mean over the counted rows of
 * logsumexp(logits) - logits[target] (0 when no row counts), max-subtracted, sums in double.
 * If dlogits (N,V) is not NULL it is written (=) with dloss * (softmax - onehot(target)) / count,
 * zero on rows that do not count; dlogits may be logits itself (computed in place, fused with
 * the forward). */
float icl_cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float dloss);
float icl_cross_entropy_ref(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float dloss);

/* One AdamW update of n parameters p with gradients g and moments m, v (PyTorch's rule, decoupled
 * weight decay wd, none when 0): bc1 = 1 - beta1^t and bc2_sqrt = sqrt(1 - beta2^t) of the step t.
 * Element-wise, so the result does not depend on the thread count. */
void icl_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float beta1,
                      float beta2, float eps, float bc1, float bc2_sqrt);

#endif
