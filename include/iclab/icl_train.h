/* Training the toy ICL model: configuration (with the paper's defaults and CPU presets), checkpoints
 * in GGUF (weights, Adam moments, step, RNG state and config in one file, for training, resuming and
 * analysis alike), and the training loop that writes a run folder:
 *
 *   RUN/config.json              the full configuration
 *   RUN/train.csv                step,loss,loss_norm,lr,grad_norm,elapsed_s
 *   RUN/eval.csv                 step,concept,name,mse          (held-out normalised MSE, mean over positions; concept -1 = all)
 *   RUN/eval_positions.csv       step,concept,position,mse      (per in-context position)
 *   RUN/estimators.csv           estimator,concept,position,mse (reference estimators on the same held-out set)
 *   RUN/checkpoints/step_NNNNNNNNN.gguf
 *
 * MSE is normalised by the task's E[y^2] (icl_task_y_scale) so 1.0 = predicting 0. */
#ifndef ICL_TRAIN_H
#define ICL_TRAIN_H
#include <stdint.h>
#include <stdio.h>
#include "iclab/icl_model.h"
#include "iclab/icl_task.h"
#include "iclab/icl_rng.h"

typedef enum { ICL_LR_CONSTANT = 0, ICL_LR_COSINE = 1 } icl_lr_schedule;

typedef struct icl_train_config {
    icl_task_config task;
    int n_layer, n_head, n_embd; /* the model; d_in = task.dim, n_ctx = 2 * n_points, d_out = 1 */
    int64_t steps;
    int batch;
    float lr, beta1, beta2, eps, weight_decay; /* weight_decay > 0 = AdamW */
    int64_t warmup;                            /* linear warm-up steps (0 = none) */
    icl_lr_schedule schedule;                  /* after warm-up: constant, or cosine decay to lr_min */
    float lr_min;
    float grad_clip;  /* clip the global gradient norm to this (0 = off) */
    int64_t dense_steps; /* curriculum: steps 0..dense_steps-1 train on all D coordinates (see icl_train_sample) */
    int curriculum;      /* what those steps train on: ICL_CURRICULUM_DENSE or ICL_CURRICULUM_FAMILIES */
    uint64_t seed;
    int threads;      /* OpenMP/BLAS threads; results are bit-identical for the same seed and threads */
    int64_t eval_every;
    int eval_size;    /* held-out sequences (the paper: 1000) */
    int64_t ckpt_every; /* a checkpoint every N steps (0 = none) ... */
    int ckpt_log;       /* ... plus this many log-spaced ones from step 1 to the end (dense early) */
    int64_t log_every;  /* train.csv row every N steps */
    int bf16;           /* 1: the blocks' linear layers multiply in bf16 on AMX tiles (icl_model_set_bf16) */
} icl_train_config;

/* Every config field, for serialisation (JSON, GGUF metadata) and command-line flags. */
typedef enum { ICL_FIELD_INT, ICL_FIELD_I64, ICL_FIELD_U64, ICL_FIELD_F32, ICL_FIELD_F64 } icl_field_type;
typedef struct icl_config_field {
    const char *key;  /* serialised name, e.g. "task.dim" */
    const char *flag; /* command-line flag without dashes, e.g. "dim" */
    icl_field_type type;
    size_t offset;    /* in icl_train_config */
    const char *help;
} icl_config_field;
extern const icl_config_field icl_train_fields[];
extern const int icl_train_n_fields;
/* Sets a field from text, checking the syntax (range checks are icl_train_config_validate's). */
int icl_config_field_parse(icl_train_config *c, const icl_config_field *f, const char *text, icl_err *err);
/* Formats a field's value ("%d", "%.9g", ...). */
void icl_config_field_format(const icl_train_config *c, const icl_config_field *f, char *buf, size_t n);

/* The paper's setup: 12 layers, width 256, 8 heads, Adam lr 1e-4, betas (0.9, 0.9999), batch 128,
 * 80K steps, the default task (D=16, 4 bases of rank 4, 20 points, noise 0.01). */
void icl_train_config_default(icl_train_config *c);
/* Applies a named preset on top of the defaults: "paper", "small" (a CPU-sized model), "tiny"
 * (seconds, for tests), "demo" (what `iclab demo` trains). Unknown names are an error. */
int icl_train_config_preset(icl_train_config *c, const char *name, icl_err *err);
const char *icl_train_presets(void); /* "paper, small, tiny, demo" for help texts */
int icl_train_config_validate(const icl_train_config *c, icl_err *err);
/* The model shape a training config implies. */
void icl_train_model_config(const icl_train_config *c, icl_model_config *m);
/* Writes the config as a JSON object (one line per field). */
int icl_train_config_write_json(const icl_train_config *c, const char *path, icl_err *err);
/* Reads such a JSON object back (name is used in messages): the defaults, then every field given
 * ("key": number, each key known and at most once), then icl_train_config_validate. Strict: one
 * object of numbers, nothing after it. 0, or -1 with err set. */
int icl_train_config_parse_json(icl_train_config *c, const char *text, size_t len, const char *name, icl_err *err);

/* ---- training */

/* Samples the training batch of step `step` from rng. Before dense_steps (a curriculum: learn
 * plain regression first, then the concepts) the sequences use all D coordinates, with E[y^2]
 * equal to the task's:
 *   ICL_CURRICULUM_DENSE: dense linear regression. BASES draws W ~ N(0, (rank/D) I_D) and scales
 *     the noise with it (variance noise_var*rank/D); FAMILIES uses its linear family, already at
 *     that scale.
 *   ICL_CURRICULUM_FAMILIES: the mixture of regression families (icl_task.h: linear, quadratic,
 *     sparse, leaky-ReLU; the sparse family with `rank` non-zeros for BASES) drawn by
 *     icl_task_sample, then for BASES y, w and the noise scaled by sqrt(rank/D). Kim et al. (arXiv
 *     2410.05448) find that such task diversity shortens the loss plateau; a FAMILIES task trains
 *     on itself.
 * The concept labels are 0 during the curriculum. From dense_steps on it is icl_task_sample.
 * Returns 0, or -1 with err set. */
enum { ICL_CURRICULUM_DENSE = 0, ICL_CURRICULUM_FAMILIES = 1 };
int icl_train_sample(const icl_train_config *c, int64_t step, icl_rng *rng, icl_batch *b, icl_err *err);


typedef enum { ICL_RUN_NEW = 0, ICL_RUN_RESUME = 1, ICL_RUN_OVERWRITE = 2 } icl_run_mode;

typedef struct icl_train_options {
    icl_run_mode mode;
    FILE *progress;       /* progress bar and messages (NULL = quiet) */
    int64_t stop_after;   /* stop (with a checkpoint) once this step is reached, < steps; 0 = run to the end */
    int local;            /* 1: train on this process alone even under mpirun (a sweep's runs); 0: data parallel over the ranks */
} icl_train_options;

/* Trains into run_dir. NEW refuses an existing non-empty run_dir; OVERWRITE replaces an existing
 * iclab run (one with config.json) and refuses other folders; RESUME continues from the latest
 * checkpoint of run_dir, bit-identical to an uninterrupted run with the same seed and threads.
 * SIGINT/SIGTERM stop the run cleanly after the current step with a checkpoint. */
int icl_train(const char *run_dir, const icl_train_config *c, const icl_train_options *opt, icl_err *err);
/* Data parallel: launched by mpirun with N > 1 ranks (after icl_dist_init), icl_train splits every
 * step's global batch of c->batch sequences into N slices of batch/N (rank r takes sequences
 * r*batch/N ..), sums the gradients over the ranks (icl_dist_sum_f32, n_params floats) and averages
 * them, so every rank holds the same weights; N must divide the batch. Only rank 0 evaluates and
 * writes files (plus RUN/data_parallel.json with N); a resume must use the same N. Results match
 * one rank within float rounding and are bit-identical between runs with the same N (docs/sweep.md). */

/* 1 if the last icl_train stopped because of SIGINT/SIGTERM (its error says so too). */
int icl_train_interrupted(void);
/* 1 if the last icl_train failed on more than one rank inside the training loop, where the other
 * ranks may be waiting for this one: the caller must then end the job (icl_dist_abort). Failures
 * before the loop are reported on every rank together and need no abort. */
int icl_train_failed_alone(void);

/* Evaluates the model on the held-out set of the config (seeded from c->seed): normalised MSE per
 * concept and position, mse (n_concepts, K), and per concept, mean (n_concepts); uses the model's
 * thread settings. Sequence counts per concept go to counts (n_concepts) if non-NULL. */
int icl_eval_heldout(icl_model *m, const icl_train_config *c, double *mse, double *mean, int *counts, icl_err *err);

/* The held-out set itself (c->eval_size sequences), the same on every call for the same config. */
int icl_heldout_batch(const icl_train_config *c, icl_batch *b, icl_err *err);

/* Checkpoint step numbers of the schedule (sorted, unique, including 0 and c->steps); returns the count
 * and fills steps (capacity cap). */
int icl_ckpt_schedule(const icl_train_config *c, int64_t *steps, int cap);

#endif
