/* The backward pass of the one transformer block (see icl_lm_internal.h): the forward's kernels of
 * icl_kernels.h in reverse, for RMSNorm or LayerNorm, with or without biases, SwiGLU or GELU MLP,
 * RoPE (any scaling, either pair convention) or none, grouped-query attention, fused or separate
 * q/k/v, trained weights in F32 or frozen ones in any stored type, and LoRA adapters on any matrix.
 * Shapes: rows = S*T, C = n_embd, qd = n_head*head_dim, kvd = n_head_kv*head_dim, ldq = qd + 2*kvd,
 * F = n_ff. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_bf16.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_quant.h"

static const float *f32(const lm_mat *m) { return m->type == ICL_GGML_F32 ? (const float *)m->data : NULL; }

/* The q|k|v weight as one F32 (ldq, C) matrix: a fused attn_qkv, or attn_q, attn_k, attn_v adjacent
 * (as trainers lay them out); NULL otherwise. */
static const float *qkv_fused(const icl_lm *lm, const lm_layer *L) {
    if (L->wqkv.data) return f32(&L->wqkv);
    if (L->bq || L->bk || L->bv || !f32(&L->wq) || !f32(&L->wk) || !f32(&L->wv)) return NULL;
    size_t C = lm->hp.n_embd, qd = (size_t)lm->hp.n_head * lm->hp.head_dim;
    size_t kvd = (size_t)lm->hp.n_head_kv * lm->hp.head_dim;
    const float *q = f32(&L->wq);
    return f32(&L->wk) == q + qd * C && f32(&L->wv) == q + (qd + kvd) * C ? q : NULL;
}

int lm_block_backward_check(const icl_lm *lm, int l, icl_err *err) {
    const icl_lm_hparams *hp = &lm->hp;
    const lm_layer *L = &lm->layers[l];
    if (hp->clamp_kqv > 0) return icl_errf(err, "%s: clamped q/k/v have no backward yet", hp->arch_name);
    if (lm->norm == LM_NORM_LAYER_NOPARAM)
        return icl_errf(err, "%s: parameter-free norms have no backward yet", hp->arch_name);
    if (L->wqkv.data && !f32(&L->wqkv))
        return icl_errf(err, "layer %d: a fused q|k|v matrix must be F32 for the backward", l);
    return 0;
}

/* A frozen weight in F32: the stored data, or a dequantized copy in *tmp (freed by the caller). */
static const float *weight_f32(const lm_mat *W, float **tmp, icl_err *err) {
    *tmp = NULL;
    if (W->type == ICL_GGML_F32) return (const float *)W->data;
    float *w = malloc(sizeof(float) * (size_t)W->rows * (size_t)W->cols);
    if (!w) {
        icl_errf(err, "out of memory dequantizing a %lld x %lld weight", (long long)W->rows, (long long)W->cols);
        return NULL;
    }
    for (int64_t r = 0; r < W->rows; r++)
        if (icl_quant_dequantize_row(W->type, (const char *)W->data + (size_t)r * W->row_bytes, w + (size_t)r * W->cols,
                                     W->cols, err)) {
            free(w);
            return NULL;
        }
    *tmp = w;
    return w;
}

int lm_linear_backward(float *dinp, float *gw, float *gb, const float *dout, size_t ldo, const float *inp,
                       const lm_mat *W, int N, icl_err *err) {
    int out = (int)W->rows, in = (int)W->cols;
    if (gw && W->type != ICL_GGML_F32) return icl_errf(err, "a trained weight must be F32");
    if (ldo == (size_t)out && W->type == ICL_GGML_F32) { /* the training kernel (fixed thread split) */
        icl_linear_backward(dinp, gw, gb, dout, inp, (const float *)W->data, N, in, out);
        return 0;
    }
    float *tmp;
    const float *w = weight_f32(W, &tmp, err);
    if (!w) return -1;
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dout, (int)ldo, w, in, 0.0f, dinp, in);
    if (gw) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dout, (int)ldo, inp, in, 1.0f, gw, in);
    if (gb)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) gb[o] += dout[(size_t)n * ldo + o];
    free(tmp);
    return 0;
}

/* lm_linear_backward inside a block: the bf16 kernels where the view asks for them (icl_lm.bf16). */
static int block_linear_backward(const icl_lm *lm, float *dinp, float *gw, float *gb, const float *dout, size_t ldo,
                                 const float *inp, const lm_mat *W, int N, icl_err *err) {
    if (!dinp && !gw && !gb) return 0; /* a frozen matrix whose input gradient is not wanted */
    if (lm->bf16 && lm->train_kernels && ldo == (size_t)W->rows && W->type == ICL_GGML_F32)
        return icl_linear_backward_bf16(dinp, gw, gb, dout, inp, (const float *)W->data, N, (int)W->cols,
                                        (int)W->rows, err);
    return lm_linear_backward(dinp, gw, gb, dout, ldo, inp, W, N, err);
}

/* dinp (N, in) = the input gradient of matrix t of layer l (weight W, trained into gw/gb unless
 * NULL) and of its adapter; dout has row stride ldo; accumulate: add into dinp instead. dinp NULL
 * (then accumulate 0): the weight and adapter gradients only. */
static int matrix_backward(const lm_run *r, int l, int t, float *dinp, int accumulate, float *tmp, float *gw,
                           float *gb, const float *dout, size_t ldo, const float *inp, const lm_mat *W, int N,
                           icl_err *err) {
    float *d = accumulate ? tmp : dinp;
    if (block_linear_backward(r->lm, d, gw, gb, dout, ldo, inp, W, N, err)) return -1;
    if (lm_lora_has(r->lora, l, t)) lm_lora_backward(r->lora, l, t, dout, ldo, inp, N, (int)W->cols, (int)W->rows, d);
    if (accumulate) icl_accumulate(dinp, tmp, (size_t)N * W->cols);
    return 0;
}

/* dx += the gradient through the block's norm of x (gradient of its output: dh); weight grads too. */
static void norm_backward(const icl_lm *lm, const lm_block_io *io, const float *w, float *gw, float *gb,
                          const float *dh, float *dx, int N) {
    int C = lm->hp.n_embd;
    if (lm->norm == LM_NORM_LAYER) icl_layernorm_backward(dx, gw, gb, dh, io->x, w, io->mean, io->rstd, N, C);
    else icl_rmsnorm_backward(dx, gw, dh, io->x, w, io->rstd, N, C);
}

/* The gradient of a sub-block's output before Gemma-2's post-norm, into dh; dx (rows, C) is that
 * of the normed output. Returns dx itself when the block has no post-norm. */
static const float *post_norm_backward(const icl_lm *lm, const lm_block_io *io, const float *w, float *gw,
                                       const float *dx, float *dh, int N) {
    if (!w) return dx;
    memset(dh, 0, sizeof(float) * (size_t)N * lm->hp.n_embd);
    icl_rmsnorm_backward(dh, gw, dx, io->post_in, w, io->post_rstd, N, lm->hp.n_embd);
    return dh;
}

int lm_mlp_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                          const lm_grad_scratch *s, int S, int T, icl_err *err) {
    const icl_lm *lm = r->lm;
    const lm_layer *L = &lm->layers[l];
    if (lm_block_backward_check(lm, l, err)) return -1;
    int N = S * T, C = lm->hp.n_embd;
    size_t nf = (size_t)N * lm->hp.n_ff;
    int gelu = lm->mlp == LM_MLP_GELU;
    if (L->post_ffn_norm && !io->post_in) return icl_errf(err, "the forward did not keep the post-norm's input");
    const float *dout = post_norm_backward(lm, io, L->post_ffn_norm, g->post_ffn_norm, dx, s->dh, N);
    /* down: its input was gelu(up) (ff_a) or act(gate)*up (ff_m) */
    if (matrix_backward(r, l, LM_T_DOWN, s->df1, 0, NULL, g->down, g->b_down, dout, C, gelu ? io->ff_a : io->ff_m,
                        &L->down, N, err))
        return -1;
    if (gelu) {
        icl_gelu_backward(s->df2, io->ff_b, s->df1, nf);
        if (matrix_backward(r, l, LM_T_UP, s->dh, 0, NULL, g->up, g->b_up, s->df2, L->up.rows, io->xn, &L->up, N, err))
            return -1;
    } else {
        if (lm->mlp == LM_MLP_GEGLU) icl_geglu_backward(s->df1, s->df2, s->df1, io->ff_a, io->ff_b, nf);
        else icl_swiglu_backward(s->df1, s->df2, s->df1, io->ff_a, io->ff_b, nf);
        if (matrix_backward(r, l, LM_T_GATE, s->dh, 0, NULL, g->gate, g->b_gate, s->df1, L->gate.rows, io->xn, &L->gate,
                            N, err) ||
            matrix_backward(r, l, LM_T_UP, s->dh, 1, s->tmp, g->up, g->b_up, s->df2, L->up.rows, io->xn, &L->up, N, err))
            return -1;
    }
    norm_backward(lm, io, L->ffn_norm, g->ffn_norm, g->ffn_norm_b, s->dh, dx, N);
    return 0;
}

/* Rotates the q or k heads of each row back by its position's RoPE angles (the forward's table). */
static void rope_backward(const lm_run *r, float *x, size_t ld, int n_heads, int S, int T) {
    const icl_lm_hparams *hp = &r->lm->hp;
    int half = hp->rope_dim / 2, hd = hp->head_dim, N = S * T;
#pragma omp parallel for schedule(static) if ((size_t)N * n_heads * hd >= 32768)
    for (int n = 0; n < N; n++) {
        double pos = r->positions[n];
        const float *row = r->rope_cs && r->positions[n] < r->rope_cs_n
                               ? r->rope_cs + (size_t)r->positions[n] * half * 2 : NULL;
        for (int i = 0; i < half; i++) {
            float c, sn;
            if (row) {
                c = row[2 * i], sn = -row[2 * i + 1];
            } else {
                double a = pos * r->inv_freq[i];
                c = (float)cos(a), sn = -(float)sin(a);
            }
            int i0 = hp->rope_neox ? i : 2 * i, i1 = hp->rope_neox ? i + half : 2 * i + 1;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)n * ld + (size_t)h * hd, a0 = v[i0], a1 = v[i1];
                v[i0] = a0 * c - a1 * sn;
                v[i1] = a0 * sn + a1 * c;
            }
        }
    }
}

/* Attention with Gemma-2's soft-capped scores c = cap tanh(q.k scale / cap): the raw scores are
 * recomputed for the capping's derivative. Parallel over (sequence, kv head) as icl_gqa_backward,
 * so no two threads write one gradient row. */
static void softcap_attention_backward(const icl_lm_hparams *hp, const float *dy, const float *q, const float *k,
                                       const float *v, size_t ld, const float *probs, int S, int T, float *dq, float *dk,
                                       float *dv) {
    int H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim, group = H / Hkv;
    size_t qd = (size_t)H * hd;
    float cap = hp->attn_softcap, scale = hp->q_scale;
#pragma omp parallel
    {
        float *dpre = malloc(sizeof(float) * (size_t)T);
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < S; b++)
            for (int gk = 0; gk < Hkv; gk++) {
                if (!dpre) continue;
                for (int h = gk * group; h < (gk + 1) * group; h++)
                    for (int t = 0; t < T; t++) {
                        const float *p = probs + (((size_t)b * H + h) * T + t) * T;
                        const float *dyt = dy + ((size_t)b * T + t) * qd + (size_t)h * hd;
                        const float *qt = q + ((size_t)b * T + t) * ld + (size_t)h * hd;
                        float *dqt = dq + ((size_t)b * T + t) * ld + (size_t)h * hd;
                        double dot = 0;
                        for (int j = 0; j <= t; j++) {
                            const float *vj = v + ((size_t)b * T + j) * ld + (size_t)gk * hd;
                            float da = 0;
                            for (int i = 0; i < hd; i++) da += dyt[i] * vj[i];
                            dpre[j] = da;
                            dot += (double)p[j] * da;
                        }
                        for (int j = 0; j <= t; j++) {
                            if (p[j] == 0) continue; /* masked (window) or underflowed: no gradient */
                            const float *kj = k + ((size_t)b * T + j) * ld + (size_t)gk * hd;
                            float *dkj = dk + ((size_t)b * T + j) * ld + (size_t)gk * hd;
                            float *dvj = dv + ((size_t)b * T + j) * ld + (size_t)gk * hd;
                            float raw = 0;
                            for (int i = 0; i < hd; i++) raw += qt[i] * kj[i];
                            float th = tanhf(raw * scale / cap);
                            float g = p[j] * (dpre[j] - (float)dot) * (1.0f - th * th) * scale;
                            for (int i = 0; i < hd; i++) {
                                dqt[i] += g * kj[i];
                                dkj[i] += g * qt[i];
                                dvj[i] += p[j] * dyt[i];
                            }
                        }
                    }
            }
        free(dpre);
    }
}

int lm_attn_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                           int need_dx, const lm_grad_scratch *s, int S, int T, icl_err *err) {
    const icl_lm *lm = r->lm;
    const icl_lm_hparams *hp = &lm->hp;
    const lm_layer *L = &lm->layers[l];
    if (lm_block_backward_check(lm, l, err)) return -1;
    int N = S * T, C = hp->n_embd, H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim;
    int qd = H * hd, kvd = Hkv * hd, ldq = qd + 2 * kvd;
    if (L->post_attn_norm && !io->post_in) return icl_errf(err, "the forward did not keep the post-norm's input");
    const float *dout = post_norm_backward(lm, io, L->post_attn_norm, g->post_attn_norm, dx, s->dh, N);
    if (matrix_backward(r, l, LM_T_O, s->dy, 0, NULL, g->wo, g->bo, dout, C, io->att, &L->wo, N, err)) return -1;
    float *dq = s->dqkv, *dk = dq + qd, *dv = dk + kvd;
    const float *q = io->qkv, *k = q + qd, *v = k + kvd;
    memset(s->dqkv, 0, (size_t)N * ldq * sizeof(float));
    /* sliding windows need nothing more: the kept probabilities are zero outside the window */
    if (hp->attn_softcap > 0) softcap_attention_backward(hp, s->dy, q, k, v, ldq, io->probs, S, T, dq, dk, dv);
    else if (lm->train_kernels) /* the toy model keeps its row loops' bits (its contexts are short) */
        icl_gqa_backward(dq, dk, dv, s->dy, q, ldq, k, v, ldq, io->probs, S, T, H, Hkv, hd, hp->q_scale);
    else icl_gqa_backward_gemm(dq, dk, dv, s->dy, q, ldq, k, v, ldq, io->probs, S, T, H, Hkv, hd, hp->q_scale);
    if (hp->rope_base > 0) {
        if (!r->positions || !r->inv_freq) return icl_errf(err, "RoPE backward needs the rows' positions");
        rope_backward(r, dq, ldq, H, S, T);
        rope_backward(r, dk, ldq, Hkv, S, T);
    }
    /* q, k, v's input gradient dh: wanted by the layers below or by the attention norm's weights */
    float *dh = need_dx || g->attn_norm || g->attn_norm_b ? s->dh : NULL;
    const float *fused = qkv_fused(lm, L);
    int lora_qkv = lm_lora_has(r->lora, l, LM_T_Q) || lm_lora_has(r->lora, l, LM_T_K) || lm_lora_has(r->lora, l, LM_T_V);
    if (fused && !lora_qkv) {
        lm_mat W = {ICL_GGML_F32, ldq, C, (uint64_t)C * sizeof(float), fused};
        if (block_linear_backward(lm, dh, g->wqkv, g->bqkv, s->dqkv, ldq, io->xn, &W, N, err)) return -1;
    } else if (L->wqkv.data) {
        return icl_errf(err, "layer %d: adapters on q, k, v need separate q, k, v matrices", l);
    } else {
        /* three products into dh; the gradients of adjacent q|k|v rows are one buffer */
        float *gk = g->wqkv ? g->wqkv + (size_t)qd * C : NULL, *gv = g->wqkv ? g->wqkv + (size_t)(qd + kvd) * C : NULL;
        float *gbk = g->bqkv ? g->bqkv + qd : NULL, *gbv = g->bqkv ? g->bqkv + qd + kvd : NULL;
        if (matrix_backward(r, l, LM_T_Q, dh, 0, NULL, g->wqkv, g->bqkv, dq, ldq, io->xn, &L->wq, N, err) ||
            matrix_backward(r, l, LM_T_K, dh, dh != NULL, s->tmp, gk, gbk, dk, ldq, io->xn, &L->wk, N, err) ||
            matrix_backward(r, l, LM_T_V, dh, dh != NULL, s->tmp, gv, gbv, dv, ldq, io->xn, &L->wv, N, err))
            return -1;
    }
    if (dh) norm_backward(lm, io, L->attn_norm, g->attn_norm, g->attn_norm_b, dh, dx, N);
    return 0;
}
