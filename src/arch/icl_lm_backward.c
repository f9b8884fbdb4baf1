/* The backward pass of the one transformer block (see icl_lm_internal.h): the forward's kernels of
 * icl_kernels.h in reverse, for every setting the trainers use (RMSNorm or LayerNorm, with or
 * without biases, SwiGLU or GELU MLP, RoPE or none, grouped-query attention). Shapes: rows = S*T,
 * C = n_embd, qd = n_head*head_dim, kvd = n_head_kv*head_dim, ldq = qd + 2*kvd, F = n_ff. */
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_quant.h"

static const float *f32(const lm_mat *m) { return (const float *)m->data; }

/* The q|k|v weight as one (ldq, C) matrix: a fused attn_qkv, or attn_q, attn_k, attn_v adjacent. */
static const float *qkv_weight(const icl_lm *lm, const lm_layer *L) {
    if (L->wqkv.data) return L->wqkv.type == ICL_GGML_F32 ? f32(&L->wqkv) : NULL;
    if (L->wq.type != ICL_GGML_F32 || L->wk.type != ICL_GGML_F32 || L->wv.type != ICL_GGML_F32) return NULL;
    size_t C = lm->hp.n_embd, qd = (size_t)lm->hp.n_head * lm->hp.head_dim;
    size_t kvd = (size_t)lm->hp.n_head_kv * lm->hp.head_dim;
    const float *q = f32(&L->wq);
    return f32(&L->wk) == q + qd * C && f32(&L->wv) == q + (qd + kvd) * C ? q : NULL;
}

int lm_block_backward_check(const icl_lm *lm, int l, icl_err *err) {
    const icl_lm_hparams *hp = &lm->hp;
    const lm_layer *L = &lm->layers[l];
    if (L->post_attn_norm || L->post_ffn_norm) return icl_errf(err, "%s: post-norms have no backward yet", hp->arch_name);
    if (hp->attn_softcap > 0 || hp->sliding_window > 0 || hp->clamp_kqv > 0)
        return icl_errf(err, "%s: soft-capping, sliding windows and clamping have no backward yet", hp->arch_name);
    if (lm->mlp == LM_MLP_GEGLU || lm->norm == LM_NORM_LAYER_NOPARAM)
        return icl_errf(err, "%s: GeGLU and parameter-free norms have no backward yet", hp->arch_name);
    if (!qkv_weight(lm, L) || L->bq || L->bk || L->bv)
        return icl_errf(err, "layer %d: the backward needs q|k|v as one F32 matrix with one bias", l);
    if (L->wo.type != ICL_GGML_F32 || L->up.type != ICL_GGML_F32 || L->down.type != ICL_GGML_F32 ||
        (lm->mlp == LM_MLP_SWIGLU && L->gate.type != ICL_GGML_F32))
        return icl_errf(err, "layer %d: the backward needs F32 weights", l);
    return 0;
}

/* dx += the gradient through the block's norm of x (gradient of its output: dh); weight grads too. */
static void norm_backward(const icl_lm *lm, const lm_block_io *io, const float *w, float *gw, float *gb,
                          const float *dh, float *dx, int N) {
    int C = lm->hp.n_embd;
    if (lm->norm == LM_NORM_LAYER) icl_layernorm_backward(dx, gw, gb, dh, io->x, w, io->mean, io->rstd, N, C);
    else icl_rmsnorm_backward(dx, gw, dh, io->x, w, io->rstd, N, C);
}

int lm_mlp_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                          const lm_grad_scratch *s, int S, int T, icl_err *err) {
    const icl_lm *lm = r->lm;
    const lm_layer *L = &lm->layers[l];
    if (lm_block_backward_check(lm, l, err)) return -1;
    int N = S * T, C = lm->hp.n_embd, F = lm->hp.n_ff;
    size_t nf = (size_t)N * F;
    int gelu = lm->mlp == LM_MLP_GELU;
    /* down: its input was gelu(up) (ff_a) or silu(gate)*up (ff_m) */
    icl_linear_backward(s->df1, g->down, g->b_down, dx, gelu ? io->ff_a : io->ff_m, f32(&L->down), N, F, C);
    if (gelu) {
        icl_gelu_backward(s->df2, io->ff_b, s->df1, nf);
        icl_linear_backward(s->dh, g->up, g->b_up, s->df2, io->xn, f32(&L->up), N, C, F);
    } else {
        icl_swiglu_backward(s->df1, s->df2, s->df1, io->ff_a, io->ff_b, nf);
        icl_linear_backward(s->dh, g->gate, g->b_gate, s->df1, io->xn, f32(&L->gate), N, C, F);
        icl_linear_backward(s->tmp, g->up, g->b_up, s->df2, io->xn, f32(&L->up), N, C, F);
        icl_accumulate(s->dh, s->tmp, (size_t)N * C);
    }
    norm_backward(lm, io, L->ffn_norm, g->ffn_norm, g->ffn_norm_b, s->dh, dx, N);
    return 0;
}

int lm_attn_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                           const lm_grad_scratch *s, int S, int T, icl_err *err) {
    const icl_lm *lm = r->lm;
    const icl_lm_hparams *hp = &lm->hp;
    const lm_layer *L = &lm->layers[l];
    if (lm_block_backward_check(lm, l, err)) return -1;
    int N = S * T, C = hp->n_embd, H = hp->n_head, Hkv = hp->n_head_kv, hd = hp->head_dim;
    int qd = H * hd, kvd = Hkv * hd, ldq = qd + 2 * kvd;
    icl_linear_backward(s->dy, g->wo, g->bo, dx, io->att, f32(&L->wo), N, qd, C);
    float *dq = s->dqkv, *dk = dq + qd, *dv = dk + kvd;
    const float *q = io->qkv, *k = q + qd, *v = k + kvd;
    memset(s->dqkv, 0, (size_t)N * ldq * sizeof(float));
    icl_gqa_backward(dq, dk, dv, s->dy, q, ldq, k, v, ldq, io->probs, S, T, H, Hkv, hd, hp->q_scale);
    if (hp->rope_base > 0) {
        /* positions 0..T-1 of each sequence; the rotation's angles are the forward's (lm_rope_init) */
        if (hp->rope_scale != 1.0f || lm->rope_freqs || hp->rope_dim != hd || hp->rope_neox)
            return icl_errf(err, "%s: RoPE scaling, partial or half-rotation RoPE have no backward yet", hp->arch_name);
        const int32_t *pos = r->positions;
        if (!pos) return icl_errf(err, "RoPE backward needs the rows' positions");
        icl_rope_backward(dq, ldq, pos, N, H, hd, hd, hp->rope_base, 0);
        icl_rope_backward(dk, ldq, pos, N, Hkv, hd, hd, hp->rope_base, 0);
    }
    icl_linear_backward(s->dh, g->wqkv, g->bqkv, s->dqkv, io->xn, qkv_weight(lm, L), N, C, ldq);
    norm_backward(lm, io, L->attn_norm, g->attn_norm, g->attn_norm_b, s->dh, dx, N);
    return 0;
}
