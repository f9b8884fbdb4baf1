/* Linear probe: multinomial (softmax) logistic regression with an L2 penalty, as scikit-learn's
 * LogisticRegression(multi_class='multinomial', C=1.0, penalty='l2', fit_intercept=True), and the
 * held-out accuracy of such a probe on a seeded stratified train/test split.
 *
 * Model: K weight rows W (K,d) and intercepts b (K); p(c|x) = softmax(W x + b)_c. Fit minimises
 *   (1/n) sum_i [logsumexp(W x_i + b) - (W x_i + b)_{y_i}] + |W|^2 / (2 C n),
 * the same minimiser as sklearn's C sum_i loss_i + |W|^2 / 2 (the intercept is not penalised).
 * Solver: L-BFGS (memory 10) with backtracking Armijo line search, all in double, from W = b = 0;
 * deterministic. Stops when max|gradient| of the objective above is below tol, or after max_iter.
 * The features are centred on the training mean internally (exact with an unpenalised intercept,
 * and much better conditioned); tolerances much below 1e-10 can be beyond what the line search
 * resolves, so max_iter then ends the fit. scikit-learn's lbfgs stops earlier still (scipy's
 * relative-decrease test), up to ~1e-3 in probability off the optimum on tests/fixtures.
 * W is unique (strictly convex in W); b only up to a common constant, so b is reported centred
 * (sum_c b_c = 0), which leaves the probabilities unchanged. For two classes this is still the
 * two-row softmax (sklearn does the same for multi_class='multinomial').
 *
 * Features: used as given by default, like sklearn. With standardize = 1 each feature is first
 * z-scored with the training mean and population standard deviation (a constant feature keeps
 * scale 1), like sklearn's StandardScaler in a pipeline; the stored model applies the same
 * transform at prediction. Hidden states with a few huge dimensions converge much faster so.
 *
 * Split: icl_stratified_split puts round(test_frac * n_c) of each class's n_c points (at least one,
 * and at most n_c - 1, when n_c >= 2; none when n_c == 1) into the test set, chosen by a Fisher-Yates
 * shuffle of the class's indices with icl_rng seeded by `seed`, classes in label order. */
#ifndef ICL_PROBE_H
#define ICL_PROBE_H
#include <stdint.h>
#include "iclab/icl_err.h"

typedef struct icl_logreg_opts {
    double C;        /* inverse L2 strength (sklearn's C); default 1.0 */
    int standardize; /* z-score features on the training data first; default 0 */
    int max_iter;    /* L-BFGS iterations; default 2000 */
    double tol;      /* max |gradient| of the mean objective; default 1e-8 */
} icl_logreg_opts;

typedef struct icl_logreg {
    int d, K;
    double *W;      /* (K,d) weights, on the standardised features when standardize */
    double *b;      /* (K) intercepts, centred */
    double *mu;     /* (d) feature means, NULL when not standardised */
    double *scale;  /* (d) feature scales, NULL when not standardised */
    int iters;      /* L-BFGS iterations used */
    double grad;    /* final max |gradient| */
    int converged;  /* grad < tol */
} icl_logreg;

/* Defaults: C 1, no standardisation, 2000 iterations, tol 1e-8. */
void icl_logreg_opts_default(icl_logreg_opts *o);

/* Fits on X (N,d) with labels y (N) in [0, K); every class must occur, K >= 2. opts may be NULL
 * (defaults). Not converging within max_iter is not an error (see m->converged). On success the
 * caller frees m with icl_logreg_free. Returns 0, or -1 with err set (bad sizes or labels, a class
 * without points, NaN/Inf, C <= 0, memory). */
int icl_logreg_fit(const float *X, const int *y, int N, int d, int K, const icl_logreg_opts *opts,
                   icl_logreg *m, icl_err *err);

/* Class probabilities P (N,K) for X (N,d). */
int icl_logreg_predict_proba(const icl_logreg *m, const float *X, int N, int d, double *P, icl_err *err);

/* Most probable class (N); the smallest class on an exact tie (as numpy's argmax). */
int icl_logreg_predict(const icl_logreg *m, const float *X, int N, int d, int *pred, icl_err *err);

void icl_logreg_free(icl_logreg *m);

/* Seeded stratified split (see above): is_test (N) gets 1 for test points, 0 for training.
 * labels in [0, n_classes); 0 < test_frac < 1. Returns 0, or -1 with err set. */
int icl_stratified_split(const int *labels, int N, int n_classes, double test_frac, uint64_t seed,
                         unsigned char *is_test, icl_err *err);

typedef struct icl_probe_result {
    double train_acc, test_acc; /* accuracies of the fitted probe */
    double chance;              /* share of the largest class in the test set */
    int n_train, n_test;
    int converged;              /* the fit reached tol */
} icl_probe_result;

/* Probe accuracy: stratified split (test_frac, e.g. 0.5, and seed), fit on the training part,
 * accuracy on both parts. Classes with fewer than 2 points are left out (they cannot be in both
 * parts); needs two classes with at least 2 points each. opts may be NULL (defaults; for hidden
 * states consider standardize = 1). Returns 0, or -1 with err set. */
int icl_probe_accuracy(const float *X, const int *labels, int N, int d, int n_classes, double test_frac,
                       uint64_t seed, const icl_logreg_opts *opts, icl_probe_result *res, icl_err *err);

#endif
