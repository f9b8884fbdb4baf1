/* Figures and the HTML report of a training run, drawn from its CSV files alone (so they can be
 * redrawn at any time, and a run copied elsewhere still renders):
 *   figures/mse_by_concept     held-out MSE per concept over training (log steps), each concept's
 *                              loss drop marked, the reference estimators' levels as lines
 *   figures/mse_by_position    MSE by in-context position per concept at three evaluations,
 *                              against the estimators
 *   figures/train_loss         training loss (normalised)
 *   figures/td_over_training   (after iclab decode) TD per concept over training at the best layer
 *   figures/td_heatmap         (after iclab decode) overall TD, layer x checkpoint
 *   figures/patching           (after iclab patch) change of MSE, source x target concept
 *   figures/head_ablation      (after iclab patch) change of MSE per head and concept
 * each as .png and .svg; report.html embeds them with the config and an automatic summary. */
#ifndef ICL_RUNPLOT_H
#define ICL_RUNPLOT_H
#include "iclab/icl_err.h"

/* The paper's phases read from a run folder (eval.csv, estimators.csv, config.json and, when present,
 * decode/td.csv and causal/patch.csv), per concept and for the run. Phase (c) is the paper's end
 * state (Fig. 2: every concept separated, each decoded by its own algorithm); here it holds at a
 * checkpoint when, for every concept, all three of:
 *   - its TD at its best layer (the layer where its TD is highest at that checkpoint) >= ICL_PHASE_TD,
 *   - its held-out MSE (mean of the 5 evaluations nearest the step) is below that of the best
 *     basis-agnostic estimator (ridge or Lasso on all D coordinates),
 *   - patching its sequences with its own concept's representation raises the MSE less than patching
 *     them with any other concept's: read from transport patching (causal/patch_transport.csv,
 *     iclab patch --transport: the stream carried onto another concept's Gaussian, the self cell
 *     the two halves' noise floor; the condition is that every other concept's transport exceeds
 *     the self transport by more than 2 standard errors and by more than ICL_PHASE_TRANSPORT_SIZE
 *     times the unpatched MSE of the concept's sequences) where that table exists, else from shift
 *     patching (causal/patch_shift.csv, the stream moved by mean_t - mean_s, so the self-patch is 0
 *     and the condition is that every other concept's shift raises the MSE), else from replacement
 *     (causal/patch.csv). Shift and transport keep each sequence's data in the patched tokens, which
 *     replacement erases when the patched tokens carry the data (pair tokens); transport also
 *     carries a concept that lives in the covariance when the concepts' means coincide;
 *     docs/reproduction.md has the measurements.
 * Events are NaN when they do not happen (or cannot be read: no decode, no patch). */
#define ICL_PHASE_TD 0.9
/* Transport patching's size threshold: a cross-transport must raise the MSE by more than this
 * fraction of the unpatched MSE. Significance alone is not enough: in the loss plateau, before any
 * concept is learned, carrying a stream onto another concept's Gaussian already changes the data a
 * generic learner reads, by 0-7 % of the MSE at 1,600 sequences per concept, while at the end of
 * the reproduce preset's runs the change is 1.5-49 times the MSE (docs/reproduction.md). */
#define ICL_PHASE_TRANSPORT_SIZE 0.5
#define ICL_PHASE_MAX_CONCEPTS 64
typedef struct icl_phase_concept {
    char name[48];
    double drop_step;    /* its loss drop: the first evaluation after the curve's highest point (after a curriculum of
                            N steps: searched from step 2N, past the settling on the task) at or below the midpoint
                            of that maximum and the final MSE, if the curve fell by at least 0.1 */
    double beat_step;    /* from here on its MSE stays below `agnostic` */
    double agnostic;     /* the best basis-agnostic estimator's MSE on it (estimators.csv) */
    double own_step;     /* from here on redrawing the other bases' coordinates moves its predictions less than
                            ridge's and Lasso's (causal/offbasis.csv) */
    double td_half_step; /* from here on its TD at the run's TD layer stays at least halfway from chance to its maximum */
    double td_lag;       /* td_half_step - drop_step: how long after its loss drop its TD rose (negative: before) */
    double final_mse;    /* at the last evaluation (mean of the last 3) */
    double td_best;      /* at the last decoded checkpoint: its TD at its best layer */
    int td_best_layer;
    double td_best_last; /* the same read at the sequence's last token (decode/td_last.csv, written when td.csv
                            reads another token); NaN without that file */
    double self_patch;   /* at the last patched checkpoint of the table that decides the own-mean condition
                            (transport, shift or replacement patching, above): the MSE change with its own concept
                            (a self-shift is exactly 0) */
    double cross_patch;  /* and the smallest change with another concept's mean */
    double cross_patch_se; /* its standard error over the probe sequences (NaN for tables without delta_se) */
    double cross_patch_z;  /* shift and transport patching: the smallest margin of a cross change over the self
                              change in standard errors, (cross - self) / sqrt(se_cross^2 + se_self^2) (for shift,
                              self and its SE are exactly 0); above 2, every other concept costs more than the own
                              one by more than the probe set's noise. NaN for replacement or without delta_se */
    double cross_patch_rel; /* shift and transport patching: the smallest (cross - self) over the other concepts,
                               divided by the unpatched MSE of its sequences (base_mse): how large the smallest
                               cross effect is. NaN for replacement */
    double replace_self, replace_cross; /* the same from replacement patching (the paper's), at its last checkpoint;
                                           equal to the two above when there is no shift table */
} icl_phase_concept;

typedef struct icl_run_phases {
    int n_concepts;
    double plateau_step;       /* the first evaluation (> 0) with the held-out MSE over all concepts below 0.5 */
    double last_eval_step, td_step, patch_step; /* the last evaluation, decoded and patched checkpoints (NaN: none) */
    int td_layer;              /* the layer with the highest final overall TD: td_half_step is read there */
    int separation_layer;      /* the shallowest layer whose overall TD at the last decoded checkpoint is >= ICL_PHASE_TD,
                                  else td_layer (-1: not decoded): where the concepts are told apart, as the paper's
                                  layer 5 of 12 is where they first separate clearly (Fig. 11); the run analysis
                                  transport-patches there */
    double td_chance;
    int n_separated;           /* concepts with td_best >= ICL_PHASE_TD */
    int n_below_agnostic;      /* concepts whose final MSE is below their agnostic level */
    int n_self_cheaper;        /* concepts whose self_patch < cross_patch */
    int n_self_clear;          /* of those, concepts whose cross_patch_z > 2 (shift or transport with delta_se; transport
                                  also needs cross_patch_rel > ICL_PHASE_TRANSPORT_SIZE) */
    int n_replace_cheaper;     /* concepts whose replace_self < replace_cross */
    int patch_kind;            /* the patching the own-mean condition was read from: an icl_patch_mode (icl_causal.h),
                                  ICL_PATCH_REPLACE, _SHIFT or _TRANSPORT */
    int patch_se;              /* 1: shift or transport, and that table has standard errors (delta_se), so
                                  cross_patch_z and n_self_clear are read */
    int phase_c;               /* 1: every concept meets all three at the last checkpoint that was both decoded
                                  and patched; 0: not; -1: the run has not been decoded and patched */
    double phase_c_step;       /* the first checkpoint (decoded and patched) at which phase (c) held; NaN if none */
    double plateau_own_step;   /* transport patching only: the first patched checkpoint (> 0) before plateau_step at
                                  which the own-concept condition already held for every concept, NaN if none: the
                                  test then picks up the data's statistics too, not only a learned concept code
                                  (docs/reproduction.md), and only the size of the effect sets the end apart */
    icl_phase_concept c[ICL_PHASE_MAX_CONCEPTS];
} icl_run_phases;

/* Reads the phases of the run in run_dir (see above). Needs eval.csv; the rest is optional. Returns
 * 0, or -1 with err set (missing or malformed eval.csv). */
int icl_run_phases_read(const char *run_dir, icl_run_phases *p, icl_err *err);

/* Writes the figures that the run's files allow into run_dir/figures. Returns 0, or -1 with err set
 * (missing or malformed CSV, unwritable folder). */
int icl_run_figures(const char *run_dir, icl_err *err);

/* Writes the figures and run_dir/report.html (self-contained: opens offline). */
int icl_run_report(const char *run_dir, icl_err *err);

#endif
