/* What the LM loader (icl_lm.c), the forward pass (icl_lm_eval.c), the backward pass
 * (icl_lm_backward.c) and the trainers (icl_lmtrain.c, the toy model icl_model.c) share: the
 * weights as the engine sees them, and the block functions. There is one transformer block in
 * iclab; an architecture is a row of settings (icl_lm.c's table: norm kind, MLP kind, biases,
 * positions, attention options), and a trainer is a view of its parameter buffer as an icl_lm. */
#ifndef ICL_LM_INTERNAL_H
#define ICL_LM_INTERNAL_H
#include "iclab/icl_lm.h"

/* A weight matrix as stored: `rows` packed rows of `cols` elements (ggml ne = [cols, rows]). */
typedef struct lm_mat {
    int type;
    int64_t rows, cols;
    uint64_t row_bytes;
    const void *data; /* NULL: absent */
} lm_mat;

typedef enum { LM_NORM_RMS, LM_NORM_LAYER, LM_NORM_LAYER_NOPARAM } lm_norm_kind;
typedef enum { LM_MLP_SWIGLU, LM_MLP_GEGLU, LM_MLP_GELU } lm_mlp_kind;

typedef struct lm_layer {
    const float *attn_norm, *attn_norm_b, *post_attn_norm; /* (C) */
    const float *ffn_norm, *ffn_norm_b, *post_ffn_norm;    /* (C) */
    lm_mat wq, wk, wv, wqkv, wo;                           /* wqkv (q|k|v, C) replaces wq/wk/wv (gpt2) */
    const float *bq, *bk, *bv, *bqkv, *bo;                 /* optional biases */
    lm_mat gate, up, down;
    const float *b_up, *b_down, *b_gate;
} lm_layer;

struct icl_lm {
    icl_gguf *g;
    icl_lm_hparams hp;
    lm_norm_kind norm;
    lm_mlp_kind mlp;
    lm_mat tok_embd, pos_embd, output; /* output may alias tok_embd (tied) */
    const float *out_norm, *out_norm_b, *rope_freqs;
    lm_layer *layers;
    /* 1: the block multiplies, normalises and attends with the training kernels of icl_kernels.h
     * (icl_linear_forward, icl_layernorm_forward, icl_gqa_forward: tuned for small training
     * shapes, and the ones whose backward kernels the gradients are written for) when a forward
     * keeps its activations (no KV cache). 0: the inference kernels (icl_qmatmul on the stored
     * type), which a model trained and then evaluated must share to give the same bits. */
    int train_kernels;
    /* with train_kernels: 1 runs the blocks' F32 products on the bf16 kernels of icl_bf16.h (bf16
     * inputs, fp32 sums; the toy model's --bf16), 0 on the fp32 ones */
    int bf16;
    float *vecs; /* fp32 copies of every 1-D tensor, one allocation */
    uint64_t vec_bytes, weight_bytes;
};

/* ---------------------------------------------------------------- the block code (icl_lm_eval.c)
 * One implementation of the forward pass, shared by icl_lm_eval (a context with a KV cache) and
 * training (icl_lmtrain.c, no cache, activations kept for the backward). Every function works on
 * buffers passed in; the caller owns them. Shapes: T = tokens of one sequence, S = sequences, rows
 * = S*T, C = n_embd, qd = n_head*head_dim, kvd = n_head_kv*head_dim, ldq = qd + 2*kvd, F = n_ff. */

/* LoRA adapters on a block's matrices (icl_lora.h): y = W x + scale * B A drop(x), with drop the
 * adapter's dropout while training. Matrices are numbered per layer as below. */
enum { LM_T_Q, LM_T_K, LM_T_V, LM_T_O, LM_T_GATE, LM_T_UP, LM_T_DOWN, LM_T_N };
typedef struct lm_lora {
    int rank;
    float scale;             /* alpha / rank */
    float dropout;           /* probability of dropping an input element on the adapter path; 0 = none */
    uint64_t drop_key;       /* the masks are a hash of (key, layer, matrix, element): set per step */
    int training;            /* 1: dropout on and xa kept (a training forward); 0: plain application */
    const float **a, **b;    /* (n_layer * LM_T_N): A (rank, in), B (out, rank); NULL: no adapter there */
    float **ga, **gb;        /* gradients (added into), or NULL when not training */
    float *xa;               /* (n_layer * LM_T_N, xa_rows, rank): A drop(x) kept for the backward, or NULL */
    size_t xa_rows;
    float *xd, *tmp;         /* scratch: (rows, widest input), (rows, rank) */
    size_t scratch_rows;
} lm_lora;

/* y (N, out; row stride ldy) += the adapter path of matrix t of layer l for input x (N, in); with
 * a->xa the product A drop(x) is kept for the backward. No-op where there is no adapter. */
void lm_lora_forward(lm_lora *a, int l, int t, const float *x, int N, int in, float *y, size_t ldy, int out);
/* The adapter path's backward given dout (N, out; row stride ldo) and the forward's x: the A and B
 * gradients, and dinp (N, in) += its input gradient (dinp NULL: not wanted). No-op where there is no
 * adapter. */
void lm_lora_backward(lm_lora *a, int l, int t, const float *dout, size_t ldo, const float *x, int N, int in, int out,
                      float *dinp);
/* Sizes a's scratch for passes of `rows` rows of lm (and, with keep, the xa it keeps). */
int lm_lora_reserve(lm_lora *a, size_t rows, const icl_lm *lm, int keep, icl_err *err);
/* Applies a (NULL: none) in the context's following evals; a must outlive them. */
int lm_ctx_set_lora(icl_lm_ctx *c, lm_lora *a, icl_err *err);
/* 1 if layer l has an adapter on matrix t. */
static inline int lm_lora_has(const lm_lora *a, int l, int t) {
    return a && a->a[(size_t)l * LM_T_N + t];
}

/* What a forward pass runs with besides the weights: hooks, RoPE angles, attention scratch. */
typedef struct lm_run {
    const icl_lm *lm;
    const icl_hook *hooks; /* n_hooks of them, applied to each sequence at its positions p0.. */
    int n_hooks;
    const double *inv_freq; /* (rope_dim/2): lm_rope_init */
    int n_threads;          /* attention runs on at most this many threads */
    float *scores;          /* (n_threads, score_ld): one query's scores (per-query path) */
    float *score_tiles;     /* (n_threads, tile_ld): a head's (T, keys) scores (prefill path) */
    size_t score_ld, tile_ld;
    const int32_t *positions; /* backward with RoPE: (rows) each row's position */
    lm_lora *lora;            /* adapters applied by every block, or NULL */
    /* (rope_cs_n, rope_dim/2, 2): (float)cos and sin of position p times inv_freq[i] for positions
     * [0, rope_cs_n), the bits rope() would compute (training passes fill it once per forward, so
     * that every layer, sequence and the backward look the angles up), or NULL */
    const float *rope_cs;
    int rope_cs_n;
} lm_run;

/* The buffers of one block. The attention sub-block reads x, writes xn (and rstd), qkv (q|k|v after
 * biases and RoPE), att (the heads' outputs before the output projection), proj, and x_out = x +
 * proj; the MLP sub-block reads x, writes xn (rstd), ff_a (gate, or GELU output), ff_b (up), ff_m
 * (silu(gate)*up; ff_m == ff_a computes it in place over the gate), proj, x_out. x_out == x adds
 * in place. */
typedef struct lm_block_io {
    float *x, *x_out;        /* (rows, C) */
    float *xn;               /* (rows, C) */
    float *rstd;             /* (rows) 1/rms (1/std) of each normed row, or NULL */
    float *mean;             /* (rows) LayerNorm's row means (needed with train_kernels), or NULL */
    float *qkv;              /* (rows, ldq) */
    float *att;              /* (rows, qd) */
    float *probs;            /* (S, n_head, T, T) attention probabilities, zero above the diagonal, or NULL */
    float *proj;             /* (rows, C) */
    float *post_in, *post_rstd; /* post-norm models (Gemma-2), training: (rows, C) the sub-block's output
                                   before its norm and (rows) that norm's rstd; NULL otherwise */
    float *ff_a, *ff_b, *ff_m; /* (rows, F) */
    float *k_cache, *v_cache;  /* this layer's cache (n_ctx rows of kvd; S = 1): k and v of positions p0..
                                  are stored there and attention reads every cached key; NULL: attention
                                  reads the keys inside qkv (p0 must be 0) */
} lm_block_io;

/* The gradients of one layer's weights, laid out as the weights (NULL: not trained, e.g. a frozen
 * base weight, or absent). q|k|v is one (q_dim + 2 kv_dim, C) matrix and one bias: the weights
 * must be adjacent rows in memory (a fused attn_qkv, or attn_q, attn_k, attn_v one after the
 * other, as trainers lay them out). */
typedef struct lm_layer_grads {
    float *attn_norm, *attn_norm_b, *wqkv, *bqkv, *wo, *bo;
    float *ffn_norm, *ffn_norm_b, *gate, *up, *down, *b_gate, *b_up, *b_down;
    float *post_attn_norm, *post_ffn_norm;
} lm_layer_grads;

/* Scratch of the backward pass of one block (rows = S*T): dh, tmp (rows, C), dqkv (rows, ldq),
 * dy (rows, qd), df1, df2 (rows, F). dy and tmp may be one buffer (the attention backward uses
 * dy, the MLP backward tmp). */
typedef struct lm_grad_scratch {
    float *dh, *tmp, *dqkv, *dy, *df1, *df2;
} lm_grad_scratch;

/* The hooks of (site, layer) on S sequences of T rows of buf (row stride ld, sequence stride T*ld)
 * at positions p0..: a capture's out and a per-sequence vec hold sequence s's rows after those of
 * sequences 0..s-1. */
void lm_hooks(const lm_run *r, icl_site site, int layer, float *buf, size_t ld, int p0, int S, int T);

/* inv_freq (rope_dim/2) = the RoPE angle per position of each rotated pair. */
void lm_rope_init(const icl_lm *lm, double *inv_freq);
/* cs (n, rope_dim/2, 2) = the cos and sin rope() applies at positions 0..n-1 (see lm_run.rope_cs). */
void lm_rope_table(const icl_lm *lm, const double *inv_freq, int n, float *cs);
/* out (T,C) = norm(in) with weight w and bias b (either may be NULL) by the model's norm kind;
 * rstd (T), if not NULL, receives each row's 1/sqrt(var + eps) as used. */
void lm_norm_rows(const icl_lm *lm, float *out, float *rstd, const float *in, const float *w, const float *b, int T);
/* x (T,C) = the stream entering layer 0 for tokens at positions p0..; scratch (T,C) for gpt2's
 * position rows. */
int lm_embed(const icl_lm *lm, float *x, float *scratch, const int32_t *tok, int T, int p0, icl_err *err);
/* Layer l's attention / MLP sub-block on S sequences of T tokens at positions p0.. (hooks fire). */
int lm_attn_block(const lm_run *r, int l, const lm_block_io *io, int S, int T, int p0, icl_err *err);
int lm_mlp_block(const lm_run *r, int l, const lm_block_io *io, int S, int T, int p0, icl_err *err);
/* dst (nr, n_vocab) = head(final_norm(x)) for nr rows of x; xn (nr, C) and rstd (nr, or NULL) keep
 * the normed rows. */
/* Backward of layer l's MLP / attention sub-block whose forward ran on io (S sequences of T tokens
 * from position 0, no cache, probabilities kept): dx (rows, C) holds the gradient of io->x_out on
 * entry and that of io->x on return (the residual path plus the branch); weight gradients are
 * ADDED into g. Fails with a clear message for what has no backward yet (a post-norm, soft-capping,
 * sliding windows, clamping, q/k/v weights that are not one matrix, weights not stored as F32). */
int lm_mlp_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                          const lm_grad_scratch *s, int S, int T, icl_err *err);
/* need_dx 0 (the lowest layer a backward reaches, with nothing trained below it): dx on return is
 * left unspecified, and the products that only feed it (q, k, v's input gradients, unless the
 * attention norm is trained) are skipped. */
int lm_attn_block_backward(const lm_run *r, int l, const lm_block_io *io, const lm_layer_grads *g, float *dx,
                           int need_dx, const lm_grad_scratch *s, int S, int T, icl_err *err);
/* dinp (N, in) = dout W and, unless NULL, gw += dout^T inp (W must then be F32), gb += the column
 * sums of dout (N, out; row stride ldo); W in any stored type (frozen weights are dequantized). */
int lm_linear_backward(float *dinp, float *gw, float *gb, const float *dout, size_t ldo, const float *inp,
                       const lm_mat *W, int N, icl_err *err);
/* 0 if layer l's block can run backward (see above), else -1 with the reason. */
int lm_block_backward_check(const icl_lm *lm, int l, icl_err *err);

int lm_head_rows(const icl_lm *lm, float *xn, float *rstd, const float *x, int nr, float *dst, icl_err *err);

/* ---------------------------------------------------------------- training passes (icl_lm_pass.c)
 * A forward pass over any icl_lm (a trainer's F32 view or a loaded GGUF, weights in their stored
 * type) that keeps every activation, and its backward into the gradients asked for. */

/* Gradients of a whole model (NULL entries are not trained: frozen or absent). */
typedef struct lm_grads {
    float *tok_embd, *out_norm, *out_norm_b, *output;
    lm_layer_grads *layers; /* (n_layer), or NULL */
} lm_grads;

typedef struct lm_pass lm_pass;
int lm_pass_init(lm_pass **p, const icl_lm *lm, icl_err *err);
void lm_pass_free(lm_pass *p);
/* Adapters for the following passes (NULL: none); the pass sizes lora's xa and scratch per batch. */
void lm_pass_set_lora(lm_pass *p, lm_lora *lora);
/* on != 0: the following forwards run the LM head (final norm, output matrix, cross-entropy) only
 * on the rows with a target, the same loss and gradients for a fraction of the work when few rows
 * have one (finetuning on answer tokens); lm_pass_logits then gives NULL. */
void lm_pass_head_rows_only(lm_pass *p, int on);
/* Forward of B sequences of T tokens (positions 0..T-1 each). With targets ((B,T), -1 = no loss at
 * that row) *loss is the mean cross-entropy over the rows with a target. */
int lm_pass_forward(lm_pass *p, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                    icl_err *err);
/* (B*T, n_vocab) logits of the last forward, or NULL (none, or head-rows mode with rows left out). */
const float *lm_pass_logits(const lm_pass *p);
/* The residual stream entering layer l (l = n_layer: after the last block), (B*T, C), or NULL. */
const float *lm_pass_stream(const lm_pass *p, int l);
/* Backward of the last forward (with targets) into g and the adapters' gradients: layers from the
 * last down to stop_layer (the lowest one with anything to train; the embedding's gradient only when
 * stop_layer is 0). Consumes the forward. */
int lm_pass_backward(lm_pass *p, const lm_grads *g, int stop_layer, icl_err *err);

#endif
