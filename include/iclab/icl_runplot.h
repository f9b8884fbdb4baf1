/* Figures of a training run, drawn from its CSV files alone (so they can be redrawn at any time):
 *   figures/mse_by_concept.{png,svg}   held-out MSE per concept over training (log steps), with the
 *                                      reference estimators' mean MSE as horizontal lines
 *   figures/mse_by_position.{png,svg}  MSE by in-context position per concept at early, middle and
 *                                      final evaluations, against the estimators
 *   figures/train_loss.{png,svg}       training loss (normalised) and learning rate */
#ifndef ICL_RUNPLOT_H
#define ICL_RUNPLOT_H
#include "iclab/icl_err.h"

/* Writes the figures into run_dir/figures. Returns 0, or -1 with err set (missing or malformed CSV,
 * unwritable folder). */
int icl_run_figures(const char *run_dir, icl_err *err);

#endif
