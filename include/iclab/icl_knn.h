/* Exact k-nearest neighbours and Task Decodability (paper §2): leave-one-out k-NN majority vote over
 * task labels on a plain float matrix X of N points in d dimensions, row-major (N,d).
 *
 * Exactness. Distances are first estimated from a Gram matrix of float32 products (BLAS sgemm on
 * 128 x 128 tiles, 256 columns at a time, the chunks summed in double) of the centred rows
 * (Euclidean) or of the centred unit rows (cosine), each with a rigorous rounding bound (the
 * worst-case bound of a 256-term float32 dot product for any summation order, plus the rest).
 * A point is dropped only if its lower bound exceeds the k-th smallest upper bound of its row;
 * whenever more than k points survive, the survivors' distances are recomputed directly in double
 * from the original rows (sum of squared differences; for cosine |x/|x| - y/|y||^2 / 2, which equals
 * 1 - cos without its cancellation for near-parallel rows) and the k smallest are taken. So the
 * neighbour set is the one exact distances give, not one that depends on BLAS blocking or the
 * thread count. On hidden-state-like data (700 x 4096) about 4% of the rows need a recomputation.
 *
 * Ties.
 *  (a) Equal distances at the k-th neighbour: the lower point index wins (stable). Identical rows
 *      always give bit-identical recomputed distances, so duplicates tie exactly.
 *      scikit-learn has no rule here: which of several points at exactly the k-th distance it keeps
 *      depends on its search (kd-tree traversal for d <= 15, chunked/threaded heaps for brute
 *      force); on the integer fixture tests/fixtures/analysis_td_int.bin its prediction differs
 *      from this rule's on 2-7 of the ~55 points per k that have such a tie. So tests compare with
 *      sklearn wherever the k-th and (k+1)-th distances differ, and with this rule (numpy
 *      reference) everywhere.
 *      On general float data exact ties need duplicates; a near-tie closer than sklearn's own
 *      float64 Gram-trick rounding (~1e-16 relative) may be ordered differently by sklearn.
 *  (b) Equal vote counts: the SMALLEST tied label wins. This is exactly scikit-learn's
 *      KNeighborsClassifier(weights='uniform') rule (scipy mode / argmax take the first maximum),
 *      so away from (a)-ties leave-one-out predictions are identical to fitting sklearn on the other
 *      N-1 points and predicting the held-out one (checked on every such point of both fixtures).
 *      For cosine, sklearn rounds distances to float32 when given float32 input; the fixture feeds
 *      it the same values as float64, matching the double-precision cosine distance used here.
 *      Rule (a) applies to bit-equal distances: for cosine, distances that are equal in exact
 *      arithmetic between rows of different norms can differ in the last bit after normalisation.
 * Cosine distance of a zero row to anything is 1 (as sklearn's normalize leaves zeros at zero).
 *
 * Threads: a few OpenMP parallel regions per layer (preparation; Gram tiles with single-threaded
 * BLAS calls, then rows); results do not depend on the thread count. On a machine shared with other busy
 * processes, OMP_WAIT_POLICY=passive avoids threads spinning at barriers (measured: 2.5 s -> 1.3 s
 * for bench_td under contention). Memory: one N x N double Gram up to N = 4096, else row blocks of
 * 64 MiB. */
#ifndef ICL_KNN_H
#define ICL_KNN_H
#include "iclab/icl_err.h"

typedef enum icl_metric {
    ICL_METRIC_EUCLIDEAN = 0,
    ICL_METRIC_COSINE = 1, /* 1 - x.y / (|x| |y|) */
} icl_metric;

/* Parses "euclidean" / "cosine" into *m. Returns 0, or -1 with err set. */
int icl_metric_parse(const char *name, icl_metric *m, icl_err *err);
/* "euclidean" / "cosine". */
const char *icl_metric_name(icl_metric m);

/* Exact k nearest neighbours of every point among the OTHER N-1 points (a point is never its own
 * neighbour, duplicates of it are). X (N,d) must be finite; 1 <= k <= N-1.
 * idx (N,k) receives neighbour indices, each row sorted by (distance, index) ascending.
 * dist (N,k), may be NULL, receives the distances computed in double: Euclidean distance (not
 * squared) or cosine distance. Returns 0, or -1 with err set (bad sizes, non-finite input, memory). */
int icl_knn(const float *X, int N, int d, int k, icl_metric metric, int *idx, double *dist,
            icl_err *err);

/* Summary of one TD evaluation. */
typedef struct icl_td_stats {
    double overall;         /* fraction of the N points whose vote equals their label */
    double chance_uniform;  /* 1 / n_present */
    double chance_majority; /* share of the largest class (what always guessing it scores) */
    int n_present;          /* classes with at least one point */
} icl_td_stats;

/* Task decodability, paper §2: for every point, majority vote of the labels of its k nearest
 * neighbours among the other N-1 points (ties as above); TD = fraction whose vote equals the label.
 * labels (N) in [0, n_classes); at least two classes must occur ("need at least two classes").
 * pred (N), may be NULL: the vote for each point.
 * per_class (n_classes), may be NULL: TD over each class's points; NaN for a class with no points.
 * stats, may be NULL: overall TD and chance levels.
 * Errors: N < k+1, k < 1, d < 1, n_classes < 2, a label out of range, one class only, NaN/Inf in X. */
int icl_td(const float *X, const int *labels, int N, int d, int n_classes, int k, icl_metric metric,
           int *pred, double *per_class, icl_td_stats *stats, icl_err *err);

/* The same over L layers at once: X is (L,N,d) contiguous, one label set for all layers.
 * overall (L), may be NULL; per_class (L,n_classes), may be NULL; pred (L,N), may be NULL;
 * stats, may be NULL: chance levels (overall is that of the last layer). Reuses buffers across
 * layers; on error the message names the layer. */
int icl_td_layers(const float *X, int L, const int *labels, int N, int d, int n_classes, int k,
                  icl_metric metric, double *overall, double *per_class, int *pred,
                  icl_td_stats *stats, icl_err *err);

/* The vote rule alone, for callers that already have neighbour lists: idx (N,k) neighbour indices,
 * labels (N) in [0, n_classes); fills pred (N) with the majority label, smallest label on ties.
 * Returns 0, or -1 with err set (bad index or label). */
int icl_knn_vote(const int *idx, const int *labels, int N, int k, int n_classes, int *pred,
                 icl_err *err);

#endif
