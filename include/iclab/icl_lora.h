/* LoRA on the engine (paper §4.2, Table 1, Fig. 24): low-rank adapters on chosen weight matrices of
 * a chosen layer range of any GGUF model the engine runs, trained with the base frozen in its
 * stored type (quantized bases work), applied when evaluating, and saved as a GGUF LoRA adapter in
 * the layout llama.cpp loads with --lora.
 *
 * An adapter on a matrix W (out, in) adds (alpha / rank) B A x to W x, with A (rank, in) and
 * B (out, rank), as PEFT's LoRA: A starts uniform in +-1/sqrt(in) (PyTorch's Linear
 * initialisation, which PEFT uses), B at zero, so a fresh adapter changes nothing. While training,
 * dropout with probability `dropout` acts on the adapter's input only (inverted: kept elements are
 * scaled by 1/(1-p)); its masks are a hash of (seed, step, layer, matrix, element), so a run is
 * reproducible and resumable bit for bit.
 *
 * Adapter file: general.architecture = the base's, general.type = "adapter", adapter.type =
 * "lora", adapter.lora.alpha; tensors blk.N.<name>.weight.lora_a (ggml ne = [in, rank]) and
 * .lora_b (ne = [rank, out]) in F32, names attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up,
 * ffn_down; plus iclab.lora.* keys (rank, dropout, layer range) that llama.cpp ignores. */
#ifndef ICL_LORA_H
#define ICL_LORA_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_lm.h"
#include "iclab/icl_lmtrain.h"

/* The matrices an adapter can sit on (bits of icl_lora_cfg.targets). */
enum {
    ICL_LORA_Q = 1 << 0, ICL_LORA_K = 1 << 1, ICL_LORA_V = 1 << 2, ICL_LORA_O = 1 << 3,
    ICL_LORA_GATE = 1 << 4, ICL_LORA_UP = 1 << 5, ICL_LORA_DOWN = 1 << 6, ICL_LORA_ALL = (1 << 7) - 1
};

typedef struct icl_lora_cfg {
    int rank;               /* 16 (the paper) */
    float alpha;            /* 16: the update is (alpha / rank) B A */
    float dropout;          /* 0.1: on the adapter's input while training */
    int layer_lo, layer_hi; /* adapters on layers [layer_lo, layer_hi); hi = -1: to the last */
    unsigned targets;       /* ICL_LORA_* bits (ALL: every matrix the model has) */
} icl_lora_cfg;

/* rank 16, alpha 16, dropout 0.1, every layer, every matrix. */
void icl_lora_cfg_default(icl_lora_cfg *c);
/* "first:K", "last:K", "A-B" (inclusive, 0-based) or "all" for a model of n_layer layers into
 * [*lo, *hi); a range outside the model is an error. */
int icl_lora_parse_layers(const char *spec, int n_layer, int *lo, int *hi, icl_err *err);
/* A comma list of q, k, v, o, gate, up, down, or "all". */
int icl_lora_parse_targets(const char *spec, unsigned *targets, icl_err *err);

typedef struct icl_lora icl_lora;

/* A fresh adapter for lm (A random from seed, B zero). Errors: rank < 1 or above the matrices'
 * smallest side, alpha <= 0, dropout outside [0, 1), a layer range outside the model, a target the
 * model lacks when named explicitly (ALL takes the ones it has), adapters on q/k/v of a model whose
 * q|k|v is one fused matrix, a model whose blocks have no backward. */
int icl_lora_init(icl_lora **a, const icl_lm *lm, const icl_lora_cfg *cfg, uint64_t seed, icl_err *err);
void icl_lora_free(icl_lora *a);
const icl_lora_cfg *icl_lora_config(const icl_lora *a);
/* Every A and B in one buffer (layer order, then q, k, v, o, gate, up, down, A before B) and the
 * gradients laid out alike. */
size_t icl_lora_n_params(const icl_lora *a);
float *icl_lora_params(icl_lora *a);
float *icl_lora_grads(icl_lora *a);
/* A (rank, in) and B (out, rank) of matrix bit `target` (one ICL_LORA_* bit) of layer l, or NULL
 * where there is no adapter; *in / *out (may be NULL) get the matrix's sides. */
float *icl_lora_a(icl_lora *a, int layer, unsigned target, int *in, int *out);
float *icl_lora_b(icl_lora *a, int layer, unsigned target);

/* Writes the adapter file (atomically) for the base lm. */
int icl_lora_save(const icl_lora *a, const icl_lm *lm, const char *path, icl_err *err);
/* Reads an adapter file and checks it fits lm (architecture, layers, every tensor's shape): an
 * adapter for another model is refused with the reason. */
int icl_lora_load(icl_lora **a, const char *path, const icl_lm *lm, icl_err *err);

/* Applies a (NULL: none) in the context's following evals (no dropout); a must outlive them and be
 * for the context's model. */
int icl_lm_ctx_set_lora(icl_lm_ctx *c, icl_lora *a, icl_err *err);

/* Writes a copy of the GGUF at base_path with the adapter merged into its weights (W + (alpha/rank)
 * B A; the adapted matrices must be F32) to out_path, atomically. */
int icl_lora_merge(const icl_lora *a, const char *base_path, const char *out_path, icl_err *err);

/* ---- training: AdamW on the adapters, the base frozen */
typedef struct icl_lora_trainer icl_lora_trainer;
/* Trains a on lm; seed drives the dropout masks. */
int icl_lora_trainer_init(icl_lora_trainer **t, const icl_lm *lm, icl_lora *a, uint64_t seed, icl_err *err);
void icl_lora_trainer_free(icl_lora_trainer *t);
/* One step on B sequences of T tokens with targets (-1: no loss at that position, e.g. everything
 * but the answer): forward with dropout, backward down to the lowest adapted layer, gradient
 * clipping, AdamW at icl_lmtrain_lr(o, step) (weight decay on every adapter matrix). */
int icl_lora_train_step(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T,
                        const icl_lmtrain_opt *o, float *loss, double *grad_norm, icl_err *err);
/* The mean loss of a batch without dropout and without changing anything. */
int icl_lora_eval_loss(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                       icl_err *err);
/* Forward and backward only (gradients of the batch ADDED to icl_lora_grads; dropout as training
 * does at the current step): for gradient checks. */
int icl_lora_train_grad(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                        icl_err *err);
/* Steps taken, and setting it when resuming; the two AdamW moments (icl_lora_n_params each). */
int64_t icl_lora_trainer_steps(const icl_lora_trainer *t);
void icl_lora_trainer_set_steps(icl_lora_trainer *t, int64_t steps);
float *icl_lora_trainer_moment(icl_lora_trainer *t, int which);

#endif
