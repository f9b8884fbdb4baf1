/* Causal tests on the toy model (paper §1.4, Figs. 7 and 18): mean-activation patching between
 * concepts, single-head ablation, and which reference algorithm the model's predictions follow.
 * All work on a loaded model and fixed probe sets derived from the run's seed; MSE is normalised
 * by the task's E[y^2] as everywhere in iclab. */
#ifndef ICL_CAUSAL_H
#define ICL_CAUSAL_H
#include "iclab/icl_estim.h"
#include "iclab/icl_model.h"
#include "iclab/icl_train.h"

/* Where a patch acts, in the interleaved sequence x_1 y_1 ... x_K y_K (token 2k is x_{k+1}, 2k+1 its y):
 * the y token of the last demonstration before the final query (2K-3: the paper's site, where TD
 * is measured), every demonstration's y token, the final query's x token (2K-2: where the last
 * prediction is read, so it tests whether the query's own stream carries the concept the prediction
 * uses), or every token of the sequence. The values are the --at names' order in iclab patch. */
typedef enum { ICL_PATCH_AT_LAST_Y, ICL_PATCH_AT_ALL_Y, ICL_PATCH_AT_QUERY, ICL_PATCH_AT_ALL_TOKENS, ICL_PATCH_N_SITES } icl_patch_site;

/* The --at name of a site ("last-y", "all-y", "query", "all-tokens"); NULL if out of range. */
const char *icl_patch_site_name(int at);

/* What a patch does to the stream at its tokens: replace it by the target concept's mean (the paper's
 * Fig. 7), shift it by the difference of the two concepts' means, or transport it from its own
 * concept's distribution onto the target's (below). */
typedef enum { ICL_PATCH_REPLACE, ICL_PATCH_SHIFT, ICL_PATCH_TRANSPORT } icl_patch_mode;

/* Mean-activation patching (paper Fig. 7), as a spec: for source concept s and target concept t,
 * the residual stream entering block `layer` (0..L-1, so `layer` blocks have run: the numbering of
 * icl_decode.h) at the tokens of site `at` of each concept-s sequence is replaced by the mean over
 * concept-t sequences (a separate set) of that same vector at that same token. With mode SHIFT the
 * vector is not replaced but moved by the difference of the two means (h + mean_t - mean_s): the
 * sequence keeps its own data and only its concept direction changes, so a self-shift changes
 * nothing and a cross-shift measures how much the prediction depends on that direction. With mode
 * TRANSPORT it is carried by the optimal transport map between Gaussians fitted to the two concepts
 * there: h -> mean_t + T (h - mean_s), the smallest move that gives concept-s vectors concept t's
 * mean and covariance. A concept can be encoded in which directions vary (a sequence's weights lie
 * in its basis's plane, with either sign) while the concepts' means coincide; then shift and
 * replacement carry no concept and transport does. The separate set is split in halves per concept:
 * the source's Gaussian comes from its first half, the target's from the second, so a self-transport
 * moves the stream by the two halves' sampling difference only: the noise floor a cross-transport
 * must rise above (equal to it while the concepts' distributions coincide). The MSE
 * compared is that of the final prediction (all_positions = 0), or the mean over every position's
 * prediction (all_positions = 1: the paper's test loss, Fig. 2, and where a concept matters most,
 * before the demonstrations determine the weights). per_concept sequences each. */
typedef struct icl_patch_spec {
    int layer, at, mode, all_positions, per_concept; /* at: an icl_patch_site; mode: an icl_patch_mode */
} icl_patch_spec;

/* Runs the patching of spec: delta[s*nc+t] is the change of the MSE, base[s] the unpatched MSE.
 * delta_se (NULL: not wanted) gets each change's standard error over the sequences: the same
 * sequences are scored unpatched and patched, so it is the standard error of the mean per-sequence
 * change (NaN for one sequence per concept; else exactly 0 for a self-shift). It says whether a
 * small difference between two patches is more than the probe set's noise. */
int icl_patch_matrix(icl_model *m, const icl_train_config *c, const icl_patch_spec *spec, double *delta, double *delta_se,
                     double *base, icl_err *err);

/* The optimal transport map between two Gaussians N(mu_a, A) -> N(mu_b, B) (A, B (n,n) symmetric
 * positive definite): x -> mu_b + T (x - mu_a) with T (n,n) = A^-1/2 (A^1/2 B A^1/2)^1/2 A^-1/2, the
 * one symmetric positive definite T with T A T = B, which moves the points least in mean squared
 * distance among all maps carrying the one distribution onto the other. Returns 0 or -1 with err. */
int icl_gaussian_transport(const double *A, const double *B, int n, double *T, icl_err *err);

/* The paper's patching layer carried over to a model of n_layer blocks: the paper patches the
 * stream after 5 of its 12 blocks (§1.4, where the concepts first separate clearly), so here after
 * round(5 n_layer / 12) blocks, at least 1 and at most n_layer - 1 (0 for a one-block model):
 * 4 blocks -> 2, 8 -> 3, 12 -> 5. The default of iclab patch and the layer the run analysis
 * (iclab demo, iclab sweep --analyse) patches at: one rule for every run, not a layer picked per run. */
int icl_patch_paper_layer(int n_layer);

/* Zeroes one head's output (all positions) at a time: delta[(l*H + h)*nc + k] = change of the MSE
 * (mean over positions) on concept k. base (nc) is the unablated MSE. */
int icl_head_ablation(icl_model *m, const icl_train_config *c, int per_concept, double *delta, double *base, icl_err *err);

/* The reference estimators' predictions on the probe set of icl_algorithm_distance and on the
 * redrawn set of icl_offbasis_sensitivity. They depend on the configuration (task and seed) and
 * per_concept only, not on the model, so a caller testing many checkpoints of one run computes them
 * once (Lasso on every prefix of every sequence is most of the work) and passes them in; NULL makes
 * each call compute its own. moved[] stays NULL where off-basis sensitivity does not apply. */
typedef struct icl_estimator_refs {
    int per_concept;
    float *probe[ICL_N_ESTIMATORS]; /* (nc * per_concept, K) */
    float *moved[ICL_N_ESTIMATORS];
} icl_estimator_refs;
int icl_estimator_refs_init(icl_estimator_refs *refs, const icl_train_config *c, int per_concept, icl_err *err);
void icl_estimator_refs_free(icl_estimator_refs *refs);

/* Distance between the model's predictions and each reference estimator's, per concept:
 * dist[k*ICL_N_ESTIMATORS + e] = mean over sequences and positions of (model - estimator)^2 / y_scale,
 * on per_concept sequences of each concept. Positions where an estimator is undefined or
 * ill-conditioned (least squares at exactly as many points as unknowns) are skipped for it. */
int icl_algorithm_distance(icl_model *m, const icl_train_config *c, int per_concept, const icl_estimator_refs *refs, double *dist,
                           icl_err *err);

/* Off-basis sensitivity (basis tasks only): how much the predictions on concept-k sequences move when
 * the coordinates that belong to OTHER bases (and not to k's) are redrawn from N(0, 1) in every x of
 * the sequence. y does not change (W is zero there), so a learner that has decoded the basis and
 * regresses on it alone (the oracle) moves by 0, while any basis-agnostic learner (least squares,
 * ridge or Lasso on all D, or on the union of the bases) moves. sens[k*(1+ICL_N_ESTIMATORS) + 0] is
 * the model's, sens[k*(1+ICL_N_ESTIMATORS) + 1 + e] estimator e's: the mean over sequences and
 * positions of (pred - pred')^2 / y_scale, skipping, for least squares, the ill-conditioned position
 * (as icl_algorithm_distance). The redraw uses its own random stream of the run's seed, so the
 * result is reproducible. Errors for family tasks and for a single basis (nothing to redraw). */
int icl_offbasis_sensitivity(icl_model *m, const icl_train_config *c, int per_concept, const icl_estimator_refs *refs, double *sens,
                             icl_err *err);

#endif
