/* Causal tests on the toy model (paper §1.4, Figs. 7 and 18): mean-activation patching between
 * concepts, single-head ablation, and which reference algorithm the model's predictions follow.
 * All work on a loaded model and fixed probe sets derived from the run's seed; MSE is normalised
 * by the task's E[y^2] as everywhere in iclab. */
#ifndef ICL_CAUSAL_H
#define ICL_CAUSAL_H
#include "iclab/icl_model.h"
#include "iclab/icl_train.h"

/* Mean-activation patching at the query: for source concept s and target concept t, the residual
 * stream after `layer` blocks (0..L-1, the numbering of icl_decode.h: the paper's "layer 5" is 5)
 * at the final x token of each concept-s sequence is replaced by the
 * mean over concept-t sequences (a separate set) of that same vector; delta[s*nc+t] is the change
 * of the MSE of the final prediction. base[s] is the unpatched MSE. per_concept sequences each. */
int icl_patch_matrix(icl_model *m, const icl_train_config *c, int layer, int per_concept, double *delta, double *base,
                     icl_err *err);

/* Zeroes one head's output (all positions) at a time: delta[(l*H + h)*nc + k] = change of the MSE
 * (mean over positions) on concept k. base (nc) is the unablated MSE. */
int icl_head_ablation(icl_model *m, const icl_train_config *c, int per_concept, double *delta, double *base, icl_err *err);

/* Distance between the model's predictions and each reference estimator's, per concept:
 * dist[k*ICL_N_ESTIMATORS + e] = mean over sequences and positions of (model - estimator)^2 / y_scale,
 * on per_concept sequences of each concept. Positions where an estimator is undefined or
 * ill-conditioned (least squares at exactly as many points as unknowns) are skipped for it. */
int icl_algorithm_distance(icl_model *m, const icl_train_config *c, int per_concept, double *dist, icl_err *err);

#endif
