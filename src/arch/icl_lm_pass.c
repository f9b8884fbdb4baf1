/* Training passes over any icl_lm (see icl_lm_internal.h): the forward runs the block functions of
 * icl_lm_eval.c on buffers that keep every activation, the backward runs icl_lm_backward.c's block
 * backward in reverse layer order. Used by the mini-LM trainer (icl_lmtrain.c, gradients of every
 * weight) and by LoRA finetuning (icl_lora.c, the base frozen in its stored type).
 * Shapes: L layers, B sequences, T tokens, N = B*T rows, C = n_embd, H / Hkv heads, hd = head_dim,
 * qd = H*hd, kvd = Hkv*hd, ldq = qd + 2*kvd, F = n_ff, V = n_vocab. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_kernels.h"

/* Activations of one (B,T) forward, in buffer order. */
enum {
    A_X,      /* (L+1,N,C) residual stream entering layer l; [L] after the last block */
    A_XN1,    /* (L,N,C)   attention norm output */
    A_RSTD1,  /* (L,N) */
    A_QKV,    /* (L,N,ldq) q|k|v after biases and RoPE */
    A_ATTY,   /* (L,N,qd)  heads' outputs before attn_output */
    A_PROBS,  /* (L,B,H,T,T) attention probabilities */
    A_X1,     /* (L,N,C)   stream after the attention sub-block */
    A_XN2,    /* (L,N,C)   MLP norm output */
    A_RSTD2,  /* (L,N) */
    A_GATE,   /* (L,N,F)   gate (GELU MLP: gelu(up)) */
    A_UP,     /* (L,N,F) */
    A_M,      /* (L,N,F)   act(gate) * up (gated MLPs only) */
    A_PA_IN,  /* (L,N,C)   post-norm models: the attention output before its norm */
    A_PA_RSTD,/* (L,N) */
    A_PF_IN,  /* (L,N,C)   the MLP output before its norm */
    A_PF_RSTD,/* (L,N) */
    A_XF,     /* (M,C)     head-rows mode: the final stream's rows with a target, gathered */
    A_XNF,    /* (M,C)     final norm output of the head's rows (M = N unless head-rows mode) */
    A_RSTDF,  /* (M) */
    A_LOGITS, /* (M,V)     logits; the backward turns them into their gradient in place */
    A_PROJ,   /* (N,C)     a sub-block's output before the residual add (scratch) */
    A_POS,    /* (N) int32 position of each row within its sequence */
    A_TOK,    /* (N) int32 */
    A_ROPE,   /* (T,rope_dim/2,2) cos and sin of each position's RoPE angles (lm_run.rope_cs) */
    A_TGT,    /* (N) int32 */
    A_HROWS,  /* (M) int32 head-rows mode: the rows with a target, ascending */
    A_HTGT,   /* (M) int32 their targets */
    G_X,      /* (N,C) gradient of the stream */
    G_H,      /* (N,C) gradient of a norm's output */
    G_TMP,    /* (N,C) */
    G_F1,     /* (N,F) */
    G_F2,     /* (N,F) */
    G_Y,      /* (N,qd) */
    G_QKV,    /* (N,ldq) */
    N_ACTS
};

struct lm_pass {
    const icl_lm *lm;
    lm_lora *lora;
    double *inv_freq; /* (rope_dim/2) */
    float *mem;       /* the activations, one allocation */
    size_t cap;       /* floats allocated */
    float *a[N_ACTS];
    int B, T, has_fwd, has_tgt;
    int head_rows_only; /* the head runs on the rows with a target only (lm_pass_head_rows_only) */
    int n_head;         /* rows the last forward's head ran on (M) */
};

int lm_pass_init(lm_pass **out, const icl_lm *lm, icl_err *err) {
    *out = NULL;
    if (lm->norm != LM_NORM_RMS)
        return icl_errf(err, "%s: training passes need RMSNorm models (LayerNorm models train as the toy model)",
                        lm->hp.arch_name);
    for (int l = 0; l < lm->hp.n_layer; l++)
        if (lm_block_backward_check(lm, l, err)) return -1;
    for (int l = 0; l < lm->hp.n_layer; l++) /* the activations keep both post-norms' inputs, or none */
        if (!lm->layers[l].post_attn_norm != !lm->layers[0].post_attn_norm ||
            !lm->layers[l].post_ffn_norm != !lm->layers[0].post_attn_norm)
            return icl_errf(err, "%s: post-norms on some layers only", lm->hp.arch_name);
    lm_pass *p = calloc(1, sizeof *p);
    if (!p || !(p->inv_freq = malloc(sizeof(double) * (size_t)(lm->hp.rope_dim / 2 + 1)))) {
        free(p);
        return icl_errf(err, "out of memory");
    }
    p->lm = lm;
    lm_rope_init(lm, p->inv_freq);
    *out = p;
    return 0;
}

void lm_pass_free(lm_pass *p) {
    if (!p) return;
    free(p->mem);
    free(p->inv_freq);
    free(p);
}

void lm_pass_set_lora(lm_pass *p, lm_lora *lora) { p->lora = lora; }
void lm_pass_head_rows_only(lm_pass *p, int on) { p->head_rows_only = on; }

/* Sizes the activation buffer for (B,T): one allocation described by a size table. */
static int alloc_acts(lm_pass *p, int B, int T, icl_err *err) {
    const icl_lm_hparams *hp = &p->lm->hp;
    size_t L = hp->n_layer, N = (size_t)B * T, C = hp->n_embd, F = hp->n_ff, V = hp->n_vocab, H = hp->n_head;
    size_t qd = H * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim, ldq = qd + 2 * kvd;
    size_t gated = p->lm->mlp != LM_MLP_GELU, post = p->lm->layers[0].post_attn_norm != NULL;
    size_t sz[N_ACTS] = {
        [A_X] = (L + 1) * N * C, [A_XN1] = L * N * C, [A_RSTD1] = L * N, [A_QKV] = L * N * ldq, [A_ATTY] = L * N * qd,
        [A_PROBS] = L * B * H * T * T, [A_X1] = L * N * C, [A_XN2] = L * N * C, [A_RSTD2] = L * N, [A_GATE] = L * N * F,
        [A_UP] = L * N * F, [A_M] = gated * L * N * F, [A_PA_IN] = post * L * N * C, [A_PA_RSTD] = post * L * N,
        [A_PF_IN] = post * L * N * C, [A_PF_RSTD] = post * L * N, [A_XF] = N * C, [A_XNF] = N * C, [A_RSTDF] = N,
        [A_LOGITS] = N * V,
        [A_PROJ] = N * C, [A_POS] = N, [A_TOK] = N,
        [A_ROPE] = hp->rope_base > 0 ? (size_t)T * (hp->rope_dim / 2) * 2 : 0, [A_TGT] = N, [A_HROWS] = N, [A_HTGT] = N, [G_X] = N * C, [G_H] = N * C, [G_TMP] = N * C,
        [G_F1] = N * F, [G_F2] = N * F, [G_Y] = N * qd, [G_QKV] = N * ldq};
    size_t total = 0;
    for (int i = 0; i < N_ACTS; i++) total += (sz[i] + 15) & ~(size_t)15;
    if (total > p->cap) {
        free(p->mem);
        p->mem = NULL;
        p->cap = 0;
        if (posix_memalign((void **)&p->mem, 64, total * sizeof(float)))
            return icl_errf(err, "out of memory for the activations of %d x %d tokens (%.1f MiB)", B, T,
                            total * 4.0 / 1048576);
        p->cap = total;
    }
    size_t o = 0;
    for (int i = 0; i < N_ACTS; i++) {
        p->a[i] = p->mem + o;
        o += (sz[i] + 15) & ~(size_t)15;
    }
    if (p->lora && lm_lora_reserve(p->lora, N, p->lm, 1, err)) return -1;
    return 0;
}

/* The block code's run settings: no cache and the probabilities kept (attention needs no scratch);
 * the rows' positions for the RoPE backward. */
static lm_run run_of(const lm_pass *p) {
    return (lm_run){p->lm, NULL, 0, p->inv_freq, omp_get_max_threads(), NULL, NULL, 0, 0,
                    (const int32_t *)(const void *)p->a[A_POS], p->lora,
                    p->lm->hp.rope_base > 0 ? p->a[A_ROPE] : NULL, p->T};
}

/* Layer l's attention and MLP sub-block buffers in the activations of the last (B,T). */
static void layer_io(const lm_pass *p, int l, lm_block_io *at, lm_block_io *ml) {
    const icl_lm_hparams *hp = &p->lm->hp;
    size_t n = (size_t)p->B * p->T, C = hp->n_embd, F = hp->n_ff, H = hp->n_head;
    size_t qd = H * hp->head_dim, ldq = qd + 2 * (size_t)hp->n_head_kv * hp->head_dim, L = (size_t)l;
    *at = (lm_block_io){.x = p->a[A_X] + L * n * C, .x_out = p->a[A_X1] + L * n * C, .xn = p->a[A_XN1] + L * n * C,
                        .rstd = p->a[A_RSTD1] + L * n, .qkv = p->a[A_QKV] + L * n * ldq, .att = p->a[A_ATTY] + L * n * qd,
                        .probs = p->a[A_PROBS] + L * (size_t)p->B * H * p->T * p->T, .proj = p->a[A_PROJ]};
    *ml = (lm_block_io){.x = at->x_out, .x_out = p->a[A_X] + (L + 1) * n * C, .xn = p->a[A_XN2] + L * n * C,
                        .rstd = p->a[A_RSTD2] + L * n, .proj = p->a[A_PROJ], .ff_a = p->a[A_GATE] + L * n * F,
                        .ff_b = p->a[A_UP] + L * n * F,
                        .ff_m = p->lm->mlp != LM_MLP_GELU ? p->a[A_M] + L * n * F : NULL};
    if (p->lm->layers[l].post_attn_norm) {
        at->post_in = p->a[A_PA_IN] + L * n * C, at->post_rstd = p->a[A_PA_RSTD] + L * n;
        ml->post_in = p->a[A_PF_IN] + L * n * C, ml->post_rstd = p->a[A_PF_RSTD] + L * n;
    }
}

int lm_pass_forward(lm_pass *p, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                    icl_err *err) {
    const icl_lm *lm = p->lm;
    const icl_lm_hparams *hp = &lm->hp;
    p->has_fwd = 0;
    if (B <= 0 || T <= 0 || !tokens) return icl_errf(err, "empty batch");
    if (T > hp->n_ctx_train) return icl_errf(err, "sequences of %d tokens exceed the context of %d", T, hp->n_ctx_train);
    if ((size_t)B * T > (size_t)1 << 30) return icl_errf(err, "batch too large");
    int N = B * T, V = hp->n_vocab;
    for (int i = 0; i < N; i++) {
        if (tokens[i] < 0 || tokens[i] >= V)
            return icl_errf(err, "token id %d at %d is outside the vocabulary [0, %d)", tokens[i], i, V);
        if (targets && (targets[i] < -1 || targets[i] >= V))
            return icl_errf(err, "target %d at %d is neither -1 nor in [0, %d)", targets[i], i, V);
    }
    if (alloc_acts(p, B, T, err)) return -1;
    p->B = B;
    p->T = T;
    size_t L = hp->n_layer, C = hp->n_embd, n = (size_t)N;
    int32_t *pos = (int32_t *)(void *)p->a[A_POS], *tok = (int32_t *)(void *)p->a[A_TOK],
            *tgt = (int32_t *)(void *)p->a[A_TGT];
    for (int i = 0; i < N; i++) {
        pos[i] = i % T;
        tok[i] = tokens[i];
        tgt[i] = targets ? targets[i] : -1;
    }
    p->has_tgt = targets != NULL;
    if (hp->rope_base > 0) lm_rope_table(lm, p->inv_freq, T, p->a[A_ROPE]);
    lm_run r = run_of(p);
    for (int b = 0; b < B; b++)
        if (lm_embed(lm, p->a[A_X] + (size_t)b * T * C, p->a[A_PROJ], tok + (size_t)b * T, T, 0, err)) return -1;
    for (size_t l = 0; l < L; l++) {
        lm_block_io at, ml;
        layer_io(p, (int)l, &at, &ml);
        if (lm_attn_block(&r, (int)l, &at, B, T, 0, err) || lm_mlp_block(&r, (int)l, &ml, B, T, 0, err)) return -1;
    }
    /* the head: on every row, or (head-rows mode) on the rows with a target gathered, which for
     * finetuning on answer tokens is most of a step's work saved (rows without one add nothing) */
    const float *xf = p->a[A_X] + L * n * C;
    const int32_t *htgt = tgt;
    p->n_head = N;
    int with_target = 0;
    for (int i = 0; targets && i < N; i++) with_target += tgt[i] >= 0;
    if (p->head_rows_only && targets && with_target < N) {
        int32_t *rows = (int32_t *)(void *)p->a[A_HROWS], *ht = (int32_t *)(void *)p->a[A_HTGT];
        int M = 0;
        for (int i = 0; i < N; i++)
            if (tgt[i] >= 0) {
                memcpy(p->a[A_XF] + (size_t)M * C, xf + (size_t)i * C, C * sizeof(float));
                rows[M] = i;
                ht[M++] = tgt[i];
            }
        p->n_head = M;
        xf = p->a[A_XF];
        htgt = ht;
    }
    if (p->n_head > 0 && lm_head_rows(lm, p->a[A_XNF], p->a[A_RSTDF], xf, p->n_head, p->a[A_LOGITS], err)) return -1;
    if (loss) *loss = targets ? icl_cross_entropy(NULL, p->a[A_LOGITS], htgt, p->n_head, V, 1.0f) : 0.0f;
    p->has_fwd = 1;
    return 0;
}

const float *lm_pass_logits(const lm_pass *p) { return p->has_fwd && p->n_head == p->B * p->T ? p->a[A_LOGITS] : NULL; }

const float *lm_pass_stream(const lm_pass *p, int l) {
    if (!p->has_fwd || l < 0 || l > p->lm->hp.n_layer) return NULL;
    return p->a[A_X] + (size_t)l * p->B * p->T * p->lm->hp.n_embd;
}

int lm_pass_backward(lm_pass *p, const lm_grads *g, int stop_layer, icl_err *err) {
    if (!p->has_fwd || !p->has_tgt) return icl_errf(err, "backward needs a forward pass with targets first");
    const icl_lm *lm = p->lm;
    const icl_lm_hparams *hp = &lm->hp;
    int N = p->B * p->T, C = hp->n_embd, V = hp->n_vocab, L = hp->n_layer;
    if (stop_layer < 0 || stop_layer >= L) return icl_errf(err, "stop layer %d out of range [0, %d)", stop_layer, L);
    size_t n = (size_t)N;
    const int32_t *tok = (const int32_t *)(const void *)p->a[A_TOK], *tgt = (const int32_t *)(const void *)p->a[A_TGT];
    int nh = p->n_head, gathered = nh < N;
    const float *xf = gathered ? p->a[A_XF] : p->a[A_X] + (size_t)L * n * C;
    if (gathered) tgt = (const int32_t *)(const void *)p->a[A_HTGT];
    float *dlog = p->a[A_LOGITS], *dx = p->a[G_X];
    lm_grad_scratch s = {p->a[G_H], p->a[G_TMP], p->a[G_QKV], p->a[G_Y], p->a[G_F1], p->a[G_F2]};
    lm_run r = run_of(p);
    /* head: the logits become their gradient in place (the forward's logits are gone after this) */
    float cap = hp->final_softcap;
    if (cap > 0) { /* soft-capped logits l = cap tanh(z / cap): dz = dl (1 - (l / cap)^2), row by row */
        int count = 0;
        for (int i = 0; i < nh; i++) count += tgt[i] >= 0;
        float *row = malloc(sizeof(float) * (size_t)V);
        if (!row) return icl_errf(err, "out of memory");
        for (int i = 0; i < nh; i++) {
            float *l = dlog + (size_t)i * V;
            if (tgt[i] < 0) {
                memset(l, 0, sizeof(float) * (size_t)V);
                continue;
            }
            icl_cross_entropy(row, l, tgt + i, 1, V, 1.0f / (float)count);
            for (int j = 0; j < V; j++) l[j] = row[j] * (1.0f - (l[j] / cap) * (l[j] / cap));
        }
        free(row);
    } else {
        icl_cross_entropy(dlog, dlog, tgt, nh, V, 1.0f);
    }
    p->has_fwd = 0;
    int tied = lm->output.data == lm->tok_embd.data;
    float *g_head = tied ? g->tok_embd : g->output;
    if (lm->output.type != ICL_GGML_F32 && g_head) return icl_errf(err, "the trained LM head must be F32");
    if (nh > 0 && lm_linear_backward(s.dh, g_head, NULL, dlog, V, p->a[A_XNF], &lm->output, nh, err)) return -1;
    memset(dx, 0, n * C * sizeof(float));
    if (gathered) { /* the gathered rows' gradient, then back to their rows */
        memset(s.tmp, 0, (size_t)nh * C * sizeof(float));
        icl_rmsnorm_backward(s.tmp, g->out_norm, s.dh, xf, lm->out_norm, p->a[A_RSTDF], nh, C);
        const int32_t *rows = (const int32_t *)(const void *)p->a[A_HROWS];
        for (int k = 0; k < nh; k++) memcpy(dx + (size_t)rows[k] * C, s.tmp + (size_t)k * C, C * sizeof(float));
    } else {
        icl_rmsnorm_backward(dx, g->out_norm, s.dh, xf, lm->out_norm, p->a[A_RSTDF], N, C);
    }
    static const lm_layer_grads frozen;
    for (int l = L - 1; l >= stop_layer; l--) {
        lm_block_io at, ml;
        layer_io(p, l, &at, &ml);
        const lm_layer_grads *gl = g->layers ? &g->layers[l] : &frozen;
        if (lm_mlp_block_backward(&r, l, &ml, gl, dx, &s, p->B, p->T, err) ||
            lm_attn_block_backward(&r, l, &at, gl, dx, l > stop_layer || g->tok_embd, &s, p->B, p->T, err))
            return -1;
    }
    if (stop_layer == 0 && g->tok_embd) {
        if (lm->tok_embd.type != ICL_GGML_F32 || hp->embd_scale != 1.0f || lm->pos_embd.data)
            return icl_errf(err, "the trained embedding must be an unscaled F32 token table");
        icl_embedding_backward(g->tok_embd, dx, tok, N, C);
    }
    return 0;
}
