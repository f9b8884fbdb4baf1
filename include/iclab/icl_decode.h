/* Concept decodability of a trained run (paper §1.4, §2): for checkpoints x layers, capture the
 * residual stream of a fixed probe set at one token and measure how well it separates the concepts
 * (leave-one-out kNN task decodability, TD). Layer numbering: 0 = the embedding (input to block 1),
 * l = the residual stream after block l (so "layer 5" is the paper's 1-indexed layer 5). */
#ifndef ICL_DECODE_H
#define ICL_DECODE_H
#include <stdint.h>
#include <stdio.h>
#include "iclab/icl_knn.h"
#include "iclab/icl_model.h"
#include "iclab/icl_train.h"

typedef struct icl_decode_config {
    int per_concept;  /* probe sequences per concept (paper: 100) */
    int demo;         /* 1-based demonstration whose y-token is read (paper: 20, the last); 0 = the last */
    char at[32];      /* or a named single position (icl_token_positions: "x:K", "y:K", "last"); "" = use demo */
    int k;            /* neighbours (paper: 10) */
    icl_metric metric;
    int save_reps;    /* write decode/reps_step_N.npy (L+1, N, C) */
    int probe;        /* also a held-out linear probe per layer (multinomial logistic regression, half the points) */
    int n_embed;      /* 2-D PCA and UMAP embeddings of every layer at this many log-spaced checkpoints */
    char table[32];   /* the TD table's file name in decode/, without .csv/.jsonl: "td" (the default, what
                       * reports read as the run's TD); another name keeps a second reading beside it */
} icl_decode_config;

void icl_decode_config_default(icl_decode_config *d);

/* The probe set: per_concept sequences of each concept in concept-major order, from a seed stream of
 * the run's seed that training and evaluation never use. */
int icl_probe_batch(const icl_train_config *c, int per_concept, icl_batch *b, icl_err *err);

/* Named token positions of a toy sequence of K (x, y) pairs, for hooks: "all", "last" (the last
 * token), "x" / "y" (every x or y token), "x:k" / "y:k" (the x or y token of 1-based demonstration
 * k). Fills pos (capacity cap) and returns the count, or -1 with err set. */
int icl_token_positions(const char *spec, int K, int *pos, int cap, icl_err *err);

/* Token index of the y-token of 1-based demonstration `demo` (0 = last), or -1 if out of range. */
int icl_decode_position(const icl_train_config *c, int demo);

/* Captures the residual stream at token `pos` of every sequence of b, for layers 0..L (see above):
 * reps (L+1, b->B, C). Runs the forward pass in chunks of `chunk` sequences with capture hooks. */
int icl_capture_layers(icl_model *m, const icl_batch *b, int pos, int chunk, float *reps, icl_err *err);

/* Decodes the checkpoints of run_dir with the given steps (all when steps == NULL): writes
 * run_dir/decode/td.csv and td.jsonl (or dc->table's name; step, layer, concept, name, td, chance, probe_acc, token; concept
 * -1 is the overall value; NaN/null where no probe ran; token is where the states were read, "y:K"
 * for the y-token of demonstration K, or the --at spec), decode/labels.npy, the representations if
 * asked (reps_step_N.npy), and pca_step_N.npy / umap_step_N.npy (L+1, N, 2) at n_embed checkpoints. */
int icl_decode_run(const char *run_dir, const icl_decode_config *dc, const int64_t *steps, int n_steps, FILE *progress,
                   icl_err *err);

/* Held-out linear-probe accuracy per class, acc[0..nc), and overall, acc[nc], for points X (N,d):
 * multinomial logistic regression on standardised features, fitted on a seeded stratified half
 * and scored on the other half (NaN for a class with no test point). */
int icl_probe_per_class(const float *X, const int *labels, int N, int d, int nc, uint64_t seed, double *acc,
                        icl_err *err);

#endif
