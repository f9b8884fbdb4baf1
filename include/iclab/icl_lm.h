/* Pretrained language models from GGUF files: architectures llama (Llama-2/3/3.1), qwen2, gemma2,
 * gpt2 and olmo mapped onto one decoder-only transformer with a KV cache, batched prefill, hooks on
 * every layer, and generation.
 *
 * The file is memory-mapped and weight matrices stay in their stored type (icl_qmat multiplies
 * them as they are); only the 1-D tensors (norms, biases, RoPE factors) are copied to fp32.
 * Conventions follow llama.cpp's GGUF files: llama's Q/K rows are stored permuted for RoPE on
 * adjacent pairs, the other RoPE architectures rotate halves; Gemma's RMSNorm weights are stored
 * with the +1 already added (as llama.cpp's converter writes them).
 *
 * Hooks are the same icl_hook records the toy model takes (icl_model.h): a site of a layer, token
 * positions and an action. Here positions are absolute positions in the sequence (0 = first token
 * of the context); a hook fires when its positions pass through icl_lm_eval, so a prompt evaluated
 * in several chunks fills a capture piece by piece. A capture's out is (n_positions, w); REPLACE
 * and ADD use the one vector vec (w) at every position, or with per_sequence = 1 one row of vec
 * (n_positions, w) per position. With positions NULL the hook covers every position and the rows
 * of out/vec are absolute positions. */
#ifndef ICL_LM_H
#define ICL_LM_H
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_model.h"
#include "iclab/icl_rng.h"

typedef enum { ICL_LM_LLAMA, ICL_LM_QWEN2, ICL_LM_GEMMA2, ICL_LM_GPT2, ICL_LM_OLMO } icl_lm_arch;

typedef struct icl_lm_hparams {
    icl_lm_arch arch;
    const char *arch_name;
    int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
    float eps;             /* norm epsilon */
    float rope_base;       /* 0: no RoPE (gpt2) */
    float rope_scale;      /* angles are multiplied by this (linear scaling: 1/factor); 1 otherwise */
    int rope_dim;          /* channels of a head that rotate (from the front) */
    int rope_neox;         /* 1: rotate halves (i, i + rope_dim/2); 0: adjacent pairs (2i, 2i+1) */
    float attn_softcap;    /* 0 = none; else s -> cap * tanh(s / cap) */
    float final_softcap;   /* same on the logits */
    int sliding_window;    /* 0 = none; else layers with even index see keys j with i - j < window */
    float embd_scale;      /* embeddings are multiplied by this (gemma2: sqrt(n_embd)); 1 otherwise */
    float q_scale;         /* attention scores are q.k * q_scale */
    float clamp_kqv;       /* 0 = none; else q, k, v are clamped to [-c, c] (OLMo) */
} icl_lm_hparams;

typedef struct icl_lm icl_lm;         /* the loaded weights (read-only, shareable by contexts) */
typedef struct icl_lm_ctx icl_lm_ctx; /* a sequence: KV cache, scratch, hooks, logits */

/* Opens and maps path and maps its architecture onto the engine. Fails with a clear message for
 * an unknown architecture, a missing or misshapen tensor (named), a tensor type with no matrix
 * product, or inconsistent hyperparameters. */
int icl_lm_load(icl_lm **lm, const char *path, icl_err *err);
void icl_lm_free(icl_lm *lm);
const icl_lm_hparams *icl_lm_hp(const icl_lm *lm);
/* The GGUF the model was loaded from (for its tokenizer and metadata). */
const icl_gguf *icl_lm_gguf(const icl_lm *lm);
/* Bytes of mapped weight data and of fp32 copies made at load. */
uint64_t icl_lm_weight_bytes(const icl_lm *lm);

/* A context of n_ctx positions (0 = the model's training context, capped at 4096) evaluating at
 * most n_batch tokens per internal step (0 = 512). KV cache pages become resident as they fill. */
int icl_lm_ctx_init(icl_lm_ctx **c, const icl_lm *lm, int n_ctx, int n_batch, icl_err *err);
void icl_lm_ctx_free(icl_lm_ctx *c);
/* Forgets the sequence: the next eval starts at position 0. */
void icl_lm_ctx_reset(icl_lm_ctx *c);
/* Keeps the first n_past positions (0 <= n_past <= the current count) and forgets the rest, so a
 * sequence can branch after a shared prefix (e.g. teacher-forced answer tokens, then greedy
 * decoding from where the model disagrees). Fails on a context that stopped early. */
int icl_lm_ctx_rewind(icl_lm_ctx *c, int n_past, icl_err *err);
int icl_lm_ctx_n_past(const icl_lm_ctx *c);
/* The model the context runs. */
const icl_lm *icl_lm_ctx_model(const icl_lm_ctx *c);
int icl_lm_ctx_n_ctx(const icl_lm_ctx *c);
/* Bytes held by the context (KV cache + scratch). */
uint64_t icl_lm_ctx_bytes(const icl_lm_ctx *c);

/* Installs hooks for the following evals (the array and its buffers must outlive them); n = 0
 * removes them. Checks sites, layers and heads; positions must be >= 0 (positions never reached
 * are simply not touched). HEAD_OUT is the head's attention output before the output projection
 * (width head_dim); ATTN_OUT/MLP_OUT are what the block adds to the residual stream (after
 * Gemma-2's post-norms). */
int icl_lm_set_hooks(icl_lm_ctx *c, const icl_hook *hooks, int n, icl_err *err);

enum { ICL_LM_LOGITS_NONE = 0, ICL_LM_LOGITS_LAST = 1, ICL_LM_LOGITS_ALL = 2, ICL_LM_LOGITS_TAIL = 3 };
typedef struct icl_lm_eval_opts {
    int logits;     /* ICL_LM_LOGITS_*: which positions' logits to compute */
    int stop_layer; /* -1: run every layer; l >= 0: stop after layer l (no later layer, no head;
                       the context can then not be continued: reset it) */
    int n_tail;     /* LOGITS_TAIL: the logits of the last n_tail positions of the eval (fewer if
                       the eval is shorter), e.g. a prompt's last token and an answer fed after it */
} icl_lm_eval_opts;

/* Evaluates n tokens at positions n_past .. n_past+n-1, appending them to the cache, in steps of
 * at most n_batch tokens. Fails (with nothing changed) if the tokens would pass n_ctx, a token id
 * is out of range, or the context was stopped early and not reset. */
int icl_lm_eval(icl_lm_ctx *c, const int32_t *tokens, int n, const icl_lm_eval_opts *opts, icl_err *err);
/* Logits (n_vocab) of the last evaluated position (LOGITS_LAST), (n, n_vocab) of every position
 * of the last eval (LOGITS_ALL), or (min(n_tail, n), n_vocab) of its last positions (LOGITS_TAIL);
 * NULL if none were asked for. */
const float *icl_lm_logits(const icl_lm_ctx *c);

/* Picks the next token from logits: temperature <= 0 is greedy (lowest id among ties); otherwise
 * softmax(logits / temperature), restricted to the top_k (0 = all) most likely and then to the
 * smallest set with probability >= top_p (1 = all), drawn from rng. */
int32_t icl_lm_sample(const float *logits, int n_vocab, float temperature, int top_k, float top_p, icl_rng *rng);

#endif
