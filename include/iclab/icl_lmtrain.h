/* Training a Llama-style language model on the inference engine's own block code.
 *
 * The model is the `llama` architecture of icl_lm.h: token embedding, n_layer pre-norm blocks
 * [RMSNorm -> q/k/v projections -> RoPE on adjacent pairs (2i, 2i+1), as llama.cpp's GGUF llama
 * files store Q/K -> causal grouped-query attention -> output projection -> residual -> RMSNorm ->
 * SwiGLU MLP -> residual], final RMSNorm and an LM head, untied or tied to the embedding. No biases.
 *
 * Memory: parameters, gradients and the two AdamW moments are each ONE contiguous fp32 buffer laid
 * out by the size table below (icl_lmtrain_tensor_spec), in llama.cpp's tensor names and in layer
 * order: token_embd.weight, then per layer blk.N.attn_norm, attn_q, attn_k, attn_v, attn_output,
 * ffn_norm, ffn_gate, ffn_up, ffn_down (.weight), then output_norm.weight and output.weight
 * (absent when tied). A matrix of ggml shape ne = [cols, rows] is rows x cols, row-major (PyTorch's
 * Linear layout: out_features x in_features); attn_q, attn_k, attn_v of a layer are adjacent, so
 * they form one (qd + 2 kvd) x C matrix.
 *
 * One engine: icl_lmtrain_lm() is an icl_lm whose F32 weights point into the parameter buffer, so
 * icl_lm_eval, hooks and capture run the model being trained, and the training forward pass calls
 * the same block functions (src/arch/icl_lm_internal.h) with buffers that keep the activations
 * for the backward. The training forward gives the same bits as icl_lm_eval of each sequence
 * whenever the matrix products of a row do not depend on how many rows are multiplied with it (the
 * AVX-512 product kernel from 8 rows on; tests/test_lmtrain.c checks it).
 *
 * Results depend on the seed and the data only, never on the thread count. */
#ifndef ICL_LMTRAIN_H
#define ICL_LMTRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_lm.h"

typedef struct icl_lmtrain_config {
    int n_vocab, n_embd, n_layer;
    int n_head, n_head_kv; /* n_embd a multiple of n_head, n_head a multiple of n_head_kv; head_dim = n_embd/n_head, even */
    int n_ff;              /* SwiGLU hidden width */
    int n_ctx;             /* longest training sequence (and the GGUF's context_length) */
    float rope_theta;      /* RoPE base (10000 in Llama-2) */
    float eps;             /* RMSNorm epsilon (1e-5) */
    int tied;              /* 1: the LM head is token_embd (no output.weight) */
} icl_lmtrain_config;

/* Parameter tensors, in buffer order within a layer (see above). */
enum {
    ICL_LT_TOKEN_EMBD,  /* (V, C) */
    ICL_LT_ATTN_NORM,   /* (C) per layer */
    ICL_LT_ATTN_Q,      /* (qd, C) */
    ICL_LT_ATTN_K,      /* (kvd, C) */
    ICL_LT_ATTN_V,      /* (kvd, C) */
    ICL_LT_ATTN_OUTPUT, /* (C, qd) */
    ICL_LT_FFN_NORM,    /* (C) */
    ICL_LT_FFN_GATE,    /* (F, C) */
    ICL_LT_FFN_UP,      /* (F, C) */
    ICL_LT_FFN_DOWN,    /* (C, F) */
    ICL_LT_OUTPUT_NORM, /* (C) */
    ICL_LT_OUTPUT,      /* (V, C); no elements when tied */
    ICL_LT_N
};

/* One row of the size table. */
typedef struct icl_lmtrain_tinfo {
    const char *name; /* GGUF name; per-layer ones contain "%d" for the layer */
    int per_layer;
    int n_dims;       /* 1 or 2 */
    int64_t ne[2];    /* ggml order: ne[0] = columns (input features), ne[1] = rows (1 for vectors) */
} icl_lmtrain_tinfo;

/* Which of the four buffers icl_lmtrain_tensor points into. */
enum { ICL_LT_PARAMS, ICL_LT_GRADS, ICL_LT_ADAM_M, ICL_LT_ADAM_V };

typedef struct icl_lmtrain icl_lmtrain;

/* AdamW with linear warm-up and cosine decay. Weight decay (decoupled, PyTorch's AdamW) applies to
 * the matrices only, not to the RMSNorm weights. */
typedef struct icl_lmtrain_opt {
    float lr, lr_min;       /* peak learning rate; the cosine ends at lr_min */
    float beta1, beta2, eps, weight_decay;
    float grad_clip;        /* clip the global gradient L2 norm to this (0 = off) */
    int64_t warmup, steps;  /* lr rises linearly over the first `warmup` steps, then decays to lr_min at `steps` */
} icl_lmtrain_opt;

/* lr 3e-3, lr_min 3e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1, clip 1, warm-up 100 of 1000 steps. */
void icl_lmtrain_opt_defaults(icl_lmtrain_opt *o);
/* The learning rate of optimizer step `step` (0-based): lr*(step+1)/warmup during the warm-up,
 * then lr_min + (lr - lr_min)(1 + cos(pi f))/2 with f = (step - warmup)/(steps - warmup), f <= 1. */
float icl_lmtrain_lr(const icl_lmtrain_opt *o, int64_t step);

/* Checks a configuration: positive sizes, divisibility, even head_dim, theta > 1, 0 < eps < 1. */
int icl_lmtrain_check(const icl_lmtrain_config *cfg, icl_err *err);
/* Allocates the model (parameters, gradients and AdamW moments zeroed; call icl_lmtrain_init_weights). */
int icl_lmtrain_init(icl_lmtrain **m, const icl_lmtrain_config *cfg, icl_err *err);
void icl_lmtrain_free(icl_lmtrain *m);
/* GPT-2's initialisation: matrices and the embedding normal(0, 0.02), attn_output and ffn_down
 * scaled by 1/sqrt(2 n_layer), norm weights 1; from icl_rng seeded with seed. Resets the optimizer. */
void icl_lmtrain_init_weights(icl_lmtrain *m, uint64_t seed);

const icl_lmtrain_config *icl_lmtrain_cfg(const icl_lmtrain *m);
size_t icl_lmtrain_n_params(const icl_lmtrain *m);
/* The size table row of tensor kind k (ICL_LT_*) for this model. */
icl_lmtrain_tinfo icl_lmtrain_tensor_spec(const icl_lmtrain *m, int k);
/* The tensor (kind k, layer; layer ignored for the others) in buffer `buf` (ICL_LT_PARAMS ...);
 * *n (may be NULL) receives its element count. NULL for output when tied. */
float *icl_lmtrain_tensor(icl_lmtrain *m, int buf, int k, int layer, size_t *n);
/* The whole buffer `buf` (n_params floats). */
float *icl_lmtrain_buffer(icl_lmtrain *m, int buf);
/* Optimizer steps taken. */
int64_t icl_lmtrain_steps_done(const icl_lmtrain *m);
/* Sets the optimizer step count (resuming from a saved state: AdamW's bias correction and the
 * learning-rate schedule continue from it). */
void icl_lmtrain_set_steps_done(icl_lmtrain *m, int64_t steps);

/* The model as the inference engine sees it (weights in the parameter buffer, always current).
 * Owned by m; its icl_lm_gguf is NULL (no tokenizer). */
const icl_lm *icl_lmtrain_lm(const icl_lmtrain *m);

/* Forward pass over B sequences of T tokens (tokens (B,T), ids in [0, n_vocab), T <= n_ctx),
 * keeping every activation for the backward. targets (B,T) may be NULL (no loss); a target of -1
 * counts no loss at that position; *loss (may be NULL) = mean cross-entropy over the counted
 * positions (0 if none). */
int icl_lmtrain_forward(icl_lmtrain *m, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                        icl_err *err);
/* After a forward: the logits (B,T,n_vocab) (until the backward, which overwrites them). */
const float *icl_lmtrain_logits(const icl_lmtrain *m);
/* After a forward: the residual stream (B,T,n_embd) entering layer l (l = n_layer: after the last
 * block, before the final norm). */
const float *icl_lmtrain_stream(const icl_lmtrain *m, int l);
/* Backward of the last forward (which must have had targets): ADDS the gradient of the loss to
 * the gradient buffer. */
int icl_lmtrain_backward(icl_lmtrain *m, icl_err *err);
void icl_lmtrain_zero_grad(icl_lmtrain *m);
/* L2 norm of the gradient buffer (double sum in buffer order). */
double icl_lmtrain_grad_norm(const icl_lmtrain *m);
/* One AdamW update of every parameter at learning rate lr (bias-corrected; increments the step). */
void icl_lmtrain_adamw(icl_lmtrain *m, const icl_lmtrain_opt *o, float lr);
/* A whole training step: zero the gradients, forward, backward, clip, AdamW at icl_lmtrain_lr of
 * the current step. *loss and *grad_norm (before clipping) may be NULL. Fails on a non-finite loss. */
int icl_lmtrain_step(icl_lmtrain *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                     const icl_lmtrain_opt *o, float *loss, double *grad_norm, icl_err *err);

/* Writes the model as a GGUF icl_lm_load (and llama.cpp) opens: architecture llama, llama.*
 * hyperparameters, every tensor F32 under its llama.cpp name. Q/K rows are written as trained: the
 * model rotates adjacent pairs, which is the file's convention. tokenizer_gguf (may be NULL: no
 * tokenizer, the file then serves iclab's engine only) is a GGUF whose tokenizer.* keys are copied
 * (e.g. the tokenizer `iclab mkcorpus` writes, or a vocabulary GGUF of build/vocab); its token count must equal
 * n_vocab. Atomic: on failure the target is left as it was. */
int icl_lmtrain_save(const icl_lmtrain *m, const char *path, const char *tokenizer_gguf, icl_err *err);

#endif
