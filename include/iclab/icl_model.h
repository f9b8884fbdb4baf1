/* The transformer engine: a stack of pre-norm blocks (GPT-2 variant: learned absolute positions,
 * LayerNorm, causal multi-head attention, GELU MLP, final norm) with a continuous read-in D->C and
 * read-out C->d_out, forward, backward and Adam/AdamW.
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
    int have_targets; /* last forward had targets; backward is allowed */
    const float *targets; /* (B,T,d_out) or via mask: see icl_model_forward */
    const float *target_mask;
} icl_model;

extern const icl_param_spec icl_param_specs[ICL_NPARAMS];

/* Checks the configuration (positive sizes, C divisible by H, limits that keep sizes sane). */
int icl_model_config_validate(const icl_model_config *cfg, icl_err *err);
/* Allocates parameters, gradients and Adam moments (zeroed). */
int icl_model_init(icl_model *m, const icl_model_config *cfg, icl_err *err);
void icl_model_free(icl_model *m);
/* GPT-2 initialisation: weights N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)), biases 0, norms 1. */
void icl_model_init_weights(icl_model *m, icl_rng *rng);
/* Shape of one layer's slice of parameter tensor `i` in floats. */
size_t icl_model_param_layer_size(const icl_model *m, int i);

/* Forward pass over tokens (B,T,D). If targets is non-NULL, the loss is the mean over the entries with
 * mask 1 of (out - target)^2, with targets and mask shaped (B,T,d_out); the loss is stored in *loss.
 * Grows the activation buffer if needed. */
int icl_model_forward(icl_model *m, const float *tokens, int B, int T, const float *targets, const float *mask,
                      float *loss, icl_err *err);
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
