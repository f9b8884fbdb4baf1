/* Reference in-context estimators for the synthetic regression tasks (paper §1.1 "Theoretical
 * references"): what a learner that knows the basis (oracle least squares), one that does not
 * (D-dimensional least squares / ridge) and a sparsity-seeking one (Lasso) predict at each position
 * of a sequence. The transformer's per-position MSE curve is compared with these.
 *
 * Numerics (all double precision, own code, no LAPACK):
 *  - Least squares and ridge go through a thin SVD of the (k x p) design, computed by one-sided
 *    Jacobi on the shorter side. LS is the minimum-norm solution (pseudo-inverse): singular values
 *    at or below max(k,p) * DBL_EPSILON * s_max are dropped, numpy.linalg.lstsq's default cut-off.
 *    Ridge minimises ||y - Xw||^2 + lambda ||w||^2 (sklearn Ridge's objective, no intercept).
 *  - Lasso minimises 1/(2k) ||y - Xw||^2 + alpha ||w||_1 (sklearn Lasso's objective, no intercept).
 *    Each fit runs the homotopy (LARS with the Lasso modification) down to lambda = k * alpha to
 *    find the support and signs, then solves the KKT equations on that support exactly and accepts
 *    the result only if every KKT condition holds (relative tolerance 1e-9), so an accepted answer is
 *    the exact Lasso solution, not an approximation. When that fails (degenerate designs such as
 *    duplicate columns), cyclic coordinate descent takes over from the path's last point; it retries
 *    the exact solve whenever a sweep leaves the support and signs unchanged, and stops after a sweep whose largest coordinate change is <= 1e-10 * max_j |w_j| (or 0), or after
 *    100000 sweeps. On the default task the homotopy succeeds for every fit we have tried.
 *  - Sequences are processed in parallel (OpenMP); each sequence's arithmetic is sequential, so the
 *    results do not depend on the thread count.
 *
 * The oracle, per task:
 *  - BASES: least squares on the coordinates of icl_task_basis_mask(concept) (min-norm when fewer
 *    points than the rank).
 *  - FAMILIES: least squares on the family's own features: x for linear and leaky-relu (for
 *    leaky-relu this is the best linear fit, not the Bayes-optimal predictor), x*x for quadratic,
 *    and x restricted to the true support (the non-zero coordinates of w) for sparse.
 */
#ifndef ICL_ESTIM_H
#define ICL_ESTIM_H
#include "iclab/icl_err.h"
#include "iclab/icl_task.h"

typedef enum {
    ICL_EST_ORACLE_LS = 0, /* least squares on the true basis coordinates (min-norm when underdetermined) */
    ICL_EST_LS = 1,        /* least squares on all D coordinates (min-norm, pseudo-inverse) */
    ICL_EST_RIDGE = 2,     /* ridge on all D, penalty lambda */
    ICL_EST_LASSO = 3,     /* Lasso on all D, penalty alpha (sklearn's objective: 1/(2n)||y-Xw||^2 + alpha||w||_1), no intercept */
    ICL_EST_ZERO = 4       /* always predicts 0 */
} icl_estimator;
#define ICL_N_ESTIMATORS 5

/* Defaults tuned on the paper's task (D=16, 4 disjoint bases of rank 4, K=20, noise 0.01): the
 * values minimising the normalised MSE averaged over the 20 positions on 1000 sequences (seed 1),
 * over the grid 10^(-4..1) in steps of 10^(1/4). Ridge: 0.443 at lambda 10^-1.5 (0.444 at 10^-1.75
 * and 10^-1.25; the Bayes choice noise_var / (rank/D) = 0.04 lies between). Lasso: 0.361 at alpha
 * 0.01 (0.362 at 10^-2.25 and 10^-1.75). Both optima are flat. */
#define ICL_RIDGE_LAMBDA_DEFAULT 0.0316 /* 10^-1.5 */
#define ICL_LASSO_ALPHA_DEFAULT 0.01

/* Short name: "oracle-ls", "ls", "ridge", "lasso", "zero"; "unknown" otherwise. */
const char *icl_estimator_name(icl_estimator e);
/* Parses a name as printed by icl_estimator_name; returns 0 or -1 with err set. */
int icl_estimator_parse(const char *name, icl_estimator *e, icl_err *err);
/* The default param of an estimator: ICL_RIDGE_LAMBDA_DEFAULT, ICL_LASSO_ALPHA_DEFAULT, else 0. */
double icl_estimator_default_param(icl_estimator e);

/* In-context predictions: for every sequence b and position k (0-based), fit on pairs 0..k-1 of that
 * sequence and predict y_k from x_k (k=0 predicts 0). pred is (B,K). param = lambda for ridge
 * (>= 0; 0 gives least squares) / alpha for Lasso (> 0); ignored otherwise. The oracle uses
 * icl_task_basis_mask of b->concept[b] (see above for FAMILIES). b->D must equal c->dim; b->K may
 * differ from c->n_points. Returns 0, or -1 with err set (bad config, mismatched batch, concept
 * out of range, bad param, out of memory). */
int icl_estimate(const icl_task_config *c, const icl_batch *b, icl_estimator e, double param, float *pred, icl_err *err);

/* Per-position normalised MSE of an estimator on a batch: curve[k] = mean over sequences of
 * (pred - y)^2 / icl_task_y_scale(c), k = 0..K-1 (y is the noisy target, so the floor is about
 * noise_var / y_scale). Returns 0 or -1 with err set. */
int icl_estimate_curve(const icl_task_config *c, const icl_batch *b, icl_estimator e, double param, double *curve,
                       icl_err *err);

/* Single fits, for other analyses and for the tests. X is (n,p) row-major, y (n), w (p) out.
 * icl_ridge_fit: ridge with penalty lambda >= 0 (lambda = 0: min-norm least squares), as above.
 * icl_lasso_fit: the Lasso as above; cd_only = 0 runs the exact homotopy path (w is overwritten),
 * cd_only = 1 runs plain coordinate descent only, starting from the w passed in (initialise it),
 * with the stopping rule above. Each allocates its own workspace. Return 0 or -1 with err set. */
int icl_ridge_fit(const double *X, int n, int p, const double *y, double lambda, double *w, icl_err *err);
int icl_lasso_fit(const double *X, int n, int p, const double *y, double alpha, int cd_only, double *w, icl_err *err);

#endif
