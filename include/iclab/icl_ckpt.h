/* Checkpoints of the toy ICL model in GGUF: weights, Adam moments, the step, the training RNG state
 * and the whole training config in one file, so one format serves training, resuming and analysis.
 * Architecture name "iclab-regression"; tensors use llama.cpp-style names (blk.N.attn_qkv.weight),
 * Adam moments are "adam.m.<name>" / "adam.v.<name>"; config fields are "iclab.<field>" metadata. */
#ifndef ICL_CKPT_H
#define ICL_CKPT_H
#include "iclab/icl_train.h"

typedef struct icl_ckpt_state {
    int64_t step;  /* optimizer steps completed */
    icl_rng rng;   /* the training-data generator, positioned for the next step */
} icl_ckpt_state;

/* Saves weights, Adam moments (and their step count), the state and the config, atomically. */
int icl_ckpt_save(const char *path, const icl_model *m, const icl_train_config *c, const icl_ckpt_state *s,
                  icl_err *err);
/* Loads a checkpoint: reads the config, builds the model (icl_model_init) and fills weights, moments
 * and state. Every tensor's presence, type and shape is checked against the config. On failure
 * nothing is left allocated. */
int icl_ckpt_load(const char *path, icl_model *m, icl_train_config *c, icl_ckpt_state *s, icl_err *err);
/* Reads only the config and step of a checkpoint. */
int icl_ckpt_peek(const char *path, icl_train_config *c, int64_t *step, icl_err *err);

/* Finds the checkpoint with the highest step in run_dir/checkpoints; path gets its file name.
 * Returns 0 if one is found, -1 with err set if none. */
int icl_ckpt_latest(const char *run_dir, char *path, size_t n, int64_t *step, icl_err *err);
/* run_dir/checkpoints/step_%09lld.gguf */
void icl_ckpt_path(const char *run_dir, int64_t step, char *path, size_t n);

#endif
