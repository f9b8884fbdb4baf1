/* The toy regression transformer: a stack of pre-norm blocks (GPT-2 variant: learned absolute
 * positions, LayerNorm, causal multi-head attention, GELU MLP, final norm) with a continuous read-in
 * D->C and read-out C->d_out, forward, backward and Adam/AdamW. The blocks are the engine's one
 * block implementation (src/arch, the same code that runs GGUF language models and trains the
 * mini-LM), run on a view of this model's parameter buffer; the read-in, positions, final norm,
 * read-out and the loss are the toy's own ends.
 *
 * Memory: parameters, gradients and the two Adam moments are each ONE contiguous buffer laid out by
 * a size table (icl_param_spec); activations are one buffer that keeps every layer's residual
 * stream and intermediate, so any layer can be read after a forward pass without copying. */
#ifndef ICL_MODEL_H
#define ICL_MODEL_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_rng.h"

typedef struct icl_model_config {
    int n_layer;  /* L */
    int n_head;   /* H; n_embd must be divisible by it */
    int n_embd;   /* C */
    int n_ctx;    /* maximum tokens per sequence (size of the position table) */
    int d_in;     /* D: width of the input vectors */
    int d_out;    /* width of the read-out (1 for scalar regression) */
    int mlp_mult; /* MLP hidden width = mlp_mult * C (4 in GPT-2) */
} icl_model_config;

/* Parameter tensors, in buffer order. Per-layer tensors are stacked (L, ...). */
enum {
    ICL_P_WIN,   /* (C, D)      read-in weight */
    ICL_P_BIN,   /* (C)         read-in bias */
    ICL_P_WPE,   /* (n_ctx, C)  position embedding */
    ICL_P_LN1W,  /* (L, C) */
    ICL_P_LN1B,  /* (L, C) */
    ICL_P_QKVW,  /* (L, 3C, C) */
    ICL_P_QKVB,  /* (L, 3C) */
    ICL_P_ATTW,  /* (L, C, C)   attention output projection */
    ICL_P_ATTB,  /* (L, C) */
    ICL_P_LN2W,  /* (L, C) */
    ICL_P_LN2B,  /* (L, C) */
    ICL_P_FCW,   /* (L, 4C, C) */
    ICL_P_FCB,   /* (L, 4C) */
    ICL_P_PROJW, /* (L, C, 4C)  MLP output projection */
    ICL_P_PROJB, /* (L, C) */
    ICL_P_LNFW,  /* (C) */
    ICL_P_LNFB,  /* (C) */
    ICL_P_WOUT,  /* (d_out, C)  read-out weight */
    ICL_P_BOUT,  /* (d_out) */
    ICL_NPARAMS
};

typedef struct icl_param_spec {
    const char *name;  /* GGUF tensor name; per-layer ones contain "%d" for the layer */
    int per_layer;     /* 1 if stacked over layers */
    int ndim;          /* dims of ONE layer's slice, PyTorch order (outermost first) */
    int64_t shape[2];
} icl_param_spec;

/* Activation tensors, in buffer order (N = B*T). */
enum {
    ICL_A_INP,     /* (B,T,D)     input tokens */
    ICL_A_RESID,   /* (L+1,B,T,C) residual stream: [0] after the embedding, [l+1] after block l */
    ICL_A_LN1,     /* (L,B,T,C) */
    ICL_A_LN1MEAN, /* (L,B,T) */
    ICL_A_LN1RSTD, /* (L,B,T) */
    ICL_A_QKV,     /* (L,B,T,3C) */
    ICL_A_ATTY,    /* (L,B,T,C)   attention output before the projection (heads concatenated) */
    ICL_A_ATT,     /* (L,B,H,T,T) attention probabilities */
    ICL_A_ATTOUT,  /* (L,B,T,C)   attention output after the projection (what is added to the stream) */
    ICL_A_RESID2,  /* (L,B,T,C)   residual after attention */
    ICL_A_LN2,     /* (L,B,T,C) */
    ICL_A_LN2MEAN, /* (L,B,T) */
    ICL_A_LN2RSTD, /* (L,B,T) */
    ICL_A_FCH,     /* (L,B,T,4C) */
    ICL_A_FCGELU,  /* (L,B,T,4C) */
    ICL_A_MLPOUT,  /* (L,B,T,C)   MLP output (what is added to the stream) */
    ICL_A_LNF,     /* (B,T,C) */
    ICL_A_LNFMEAN, /* (B,T) */
    ICL_A_LNFRSTD, /* (B,T) */
    ICL_A_OUT,     /* (B,T,d_out) read-out at every position */
    ICL_NACTS
};

/* ---- hooks: read or intervene on the residual stream during a forward pass
 *
 * A hook names a site of one layer, a set of token positions (the same for every sequence of the
 * batch) and an action. Sites: the residual stream entering the block (RESID_PRE) or leaving it
 * (RESID_POST), the attention output after its projection (ATTN_OUT), the MLP output (MLP_OUT), or
 * one head's output before the attention projection (HEAD_OUT, channels [h*hs, (h+1)*hs)).
 * Actions: CAPTURE copies the vectors out; REPLACE writes a vector; ADD adds one; ZERO zeroes.
 * With no hooks the forward pass does no extra work. Backward is refused while a hook other than
 * CAPTURE is set (the gradient would not describe the intervened model). */
typedef enum { ICL_SITE_RESID_PRE, ICL_SITE_ATTN_OUT, ICL_SITE_MLP_OUT, ICL_SITE_RESID_POST, ICL_SITE_HEAD_OUT } icl_site;
typedef enum { ICL_HOOK_CAPTURE, ICL_HOOK_REPLACE, ICL_HOOK_ADD, ICL_HOOK_ZERO } icl_hook_action;

typedef struct icl_hook {
    icl_site site;
    int layer;            /* 0..L-1 */
    int head;             /* HEAD_OUT only */
    const int *positions; /* n_positions token indices in [0, T); NULL = every position */
    int n_positions;
    icl_hook_action action;
    /* REPLACE/ADD: the vector(s), width w (C, or hs for HEAD_OUT): one (w) for every sequence and
     * position if per_sequence is 0, else (B, n_positions, w). */
    const float *vec;
    int per_sequence;
    /* CAPTURE: destination (B, n_positions, w), filled during the forward pass. */
    float *out;
} icl_hook;

typedef struct icl_model {
    icl_model_config cfg;
    size_t param_sizes[ICL_NPARAMS]; /* floats per tensor (all layers) */
    size_t n_params;
    float *params, *grads, *adam_m, *adam_v; /* each n_params floats, one allocation each */
    float *p[ICL_NPARAMS], *g[ICL_NPARAMS];  /* views into params / grads */
    int64_t adam_t;                          /* Adam steps taken (bias correction) */

    int B, T;                               /* shape of the current activations */
    int cap_BT;                             /* activations allocated for B*T <= cap_BT tokens */
    size_t act_sizes[ICL_NACTS];
    float *acts;
    float *a[ICL_NACTS];
    float *scratch; /* backward: gradients of activations, reused across layers */
    size_t scratch_floats;
    struct icl_lm *view;   /* the engine's view of params (blocks only) */
    const icl_hook *hooks; /* set with icl_model_set_hooks; NULL = none */
    int n_hooks;
    int have_targets; /* last forward had targets; backward is allowed */
    const float *targets; /* (B,T,d_out) or via mask: see icl_model_forward */
    const float *target_mask;
    int fwd_bf16; /* the last forward ran the bf16 blocks (its backward must too) */
    int bf16; /* 1: the blocks' linear layers multiply in bf16 (icl_bf16.h; set with icl_model_set_bf16) */
} icl_model;

extern const icl_param_spec icl_param_specs[ICL_NPARAMS];

/* Checks the configuration (positive sizes, C divisible by H, limits that keep sizes sane). */
int icl_model_config_validate(const icl_model_config *cfg, icl_err *err);
/* Allocates parameters, gradients and Adam moments (zeroed). */
int icl_model_init(icl_model *m, const icl_model_config *cfg, icl_err *err);
void icl_model_free(icl_model *m);
/* GPT-2 initialisation for the blocks: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
 * biases 0, norms 1; the read-in and read-out get PyTorch's default Linear init, as in Garg et al. */
void icl_model_init_weights(icl_model *m, icl_rng *rng);
/* Shape of one layer's slice of parameter tensor `i` in floats. */
size_t icl_model_param_layer_size(const icl_model *m, int i);

/* Forward pass over tokens (B,T,D). If targets is non-NULL, the loss is the mean over the entries with
 * mask 1 of (out - target)^2, with targets and mask shaped (B,T,d_out); the loss is stored in *loss.
 * Grows the activation buffer if needed. */
int icl_model_forward(icl_model *m, const float *tokens, int B, int T, const float *targets, const float *mask,
                      float *loss, icl_err *err);
/* Installs hooks for the following forward passes (the array must outlive them); n = 0 removes
 * them. Checks sites, layers, heads and (against the model's context) positions. */
int icl_model_set_hooks(icl_model *m, const icl_hook *hooks, int n, icl_err *err);

/* on = 1: the blocks' linear layers (q|k|v, attention output, MLP up and down) multiply in bf16
 * with fp32 accumulation on AMX tiles from the next forward on (the read-in, read-out, norms,
 * attention, loss, gradients' sums and Adam stay fp32; so do forward passes with hooks, which the
 * analyses run). -1 with a one-line reason where the CPU cannot. on = 0: fp32 (the default). */
int icl_model_set_bf16(icl_model *m, int on, icl_err *err);

/* Backward pass of the last forward (which must have had targets): ACCUMULATES into m->grads. */
int icl_model_backward(icl_model *m, icl_err *err);
void icl_model_zero_grad(icl_model *m);

typedef struct icl_adam_config {
    float lr, beta1, beta2, eps, weight_decay; /* weight_decay > 0 gives AdamW (decoupled) */
} icl_adam_config;
/* One Adam/AdamW step on all parameters with the current gradients (PyTorch's update rule). */
void icl_adam_step(icl_model *m, const icl_adam_config *c, float lr);
/* Global L2 norm of the gradients (double accumulation, fixed order). */
double icl_grad_norm(const icl_model *m);
/* Multiplies all gradients by s. */
void icl_grad_scale(icl_model *m, float s);

#endif
