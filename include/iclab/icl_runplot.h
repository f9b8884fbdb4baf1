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

/* Writes the figures that the run's files allow into run_dir/figures. Returns 0, or -1 with err set
 * (missing or malformed CSV, unwritable folder). */
int icl_run_figures(const char *run_dir, icl_err *err);

/* Writes the figures and run_dir/report.html (self-contained: opens offline). */
int icl_run_report(const char *run_dir, icl_err *err);

#endif
