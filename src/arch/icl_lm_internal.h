/* What the LM loader (icl_lm.c) and the forward pass (icl_lm_eval.c) share: the mapped weights. */
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
    float *vecs; /* fp32 copies of every 1-D tensor, one allocation */
    uint64_t vec_bytes, weight_bytes;
};

#endif
