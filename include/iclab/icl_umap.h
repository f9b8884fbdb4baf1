/* UMAP (McInnes, Healy & Melville 2018) in C, following the published algorithm and umap-learn's
 * defaults, for plots of hidden states (paper §1.4: n_neighbors 15, min_dist 0.1, 2-D).
 *
 * Steps:
 *  1. exact k-NN graph (icl_knn; brute force, N up to a few thousand), each point counted as its
 *     own first neighbour as umap-learn does, so n_neighbors = 15 means 14 others;
 *  2. smooth k-NN distances: rho_i = distance to the nearest non-identical neighbour
 *     (local_connectivity 1), sigma_i by binary search (64 steps, tolerance 1e-5) so that
 *     sum_{j>0} exp(-max(d_ij - rho_i, 0) / sigma_i) = log2(n_neighbors), floored at 1e-3 times the
 *     mean neighbour distance; memberships w_ij = exp(-max(d_ij - rho_i, 0) / sigma_i);
 *  3. fuzzy union: w = p + p^T - p o p^T;
 *  4. edges with w < max(w) / n_epochs dropped (as umap-learn);
 *  5. initialisation: spectral (default): the leading non-trivial eigenvectors of the normalised
 *     adjacency D^-1/2 W D^-1/2 of each connected component, by subspace iteration with
 *     Rayleigh-Ritz (own code, deterministic; up to 3000 iterations, relative residual 1e-6 - an
 *     unconverged result is still used, it is only a starting point); several components are laid
 *     out around umap-learn's meta positions (+-unit axes when there are at most 2*dim of them,
 *     else a PCA of the component centroids) at half the distance to the nearest other component;
 *     components smaller than 2*dim get uniform random positions there. Then scaled so
 *     max |coordinate| = 10, plus N(0, 1e-4) noise, then each axis mapped to [0, 10] (umap-learn).
 *     Alternatives: PCA (top components of X) or uniform random in [-10, 10], each then treated
 *     the same way;
 *  6. a, b fitted to min_dist/spread by Levenberg-Marquardt least squares of 1/(1 + a x^2b) against
 *     the target curve on 300 points of [0, 3 spread] (umap-learn's find_ab_params);
 *  7. SGD over n_epochs (umap-learn: 500 when N <= 10000, else 200), edge e sampled every
 *     max(w)/w_e epochs, negative_sample_rate 5 repulsive samples per positive one, learning rate
 *     decaying linearly from 1, gradients clipped to +-4, both ends of an attractive edge moved.
 *
 * Determinism: every random choice comes from icl_rng seeded with opts.seed; the SGD and the
 * eigen-solver are single-threaded and the k-NN graph is exact, so the same input and seed give
 * identical bytes whatever the number of threads (tested). The PCA initialisation is the exception:
 * it uses multithreaded BLAS, whose last bits may depend on the thread count.
 *
 * Cost: 0.35 s for 400 x 256 and 0.7 s for 700 x 4096 (2 cores, 500 epochs), ~3 s for 3000 points;
 * the SGD dominates beyond the k-NN search. */
#ifndef ICL_UMAP_H
#define ICL_UMAP_H
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_knn.h"

typedef enum icl_umap_init {
    ICL_UMAP_INIT_SPECTRAL = 0,
    ICL_UMAP_INIT_PCA = 1,
    ICL_UMAP_INIT_RANDOM = 2,
} icl_umap_init;

typedef struct icl_umap_opts {
    int n_neighbors;            /* 15 (including the point itself) */
    double min_dist;            /* 0.1 */
    double spread;              /* 1.0 */
    int n_components;           /* 2 */
    int n_epochs;               /* 0 = auto: 500 if N <= 10000, else 200 */
    double learning_rate;       /* 1.0 */
    int negative_sample_rate;   /* 5 */
    double repulsion_strength;  /* 1.0 (gamma) */
    icl_metric metric;          /* Euclidean */
    icl_umap_init init;         /* spectral */
    uint64_t seed;              /* 42 */
} icl_umap_opts;

/* Fills the defaults above. */
void icl_umap_opts_default(icl_umap_opts *o);

/* Embeds X (N,d) (finite; N >= 4) into emb (N, n_components) float. opts may be NULL (defaults).
 * n_neighbors >= N is reduced to N - 1, as umap-learn does. Returns 0, or -1 with err set. */
int icl_umap(const float *X, int N, int d, const icl_umap_opts *opts, float *emb, icl_err *err);

/* a, b of the low-dimensional similarity 1 / (1 + a r^(2b)) for the given spread and min_dist
 * (0 <= min_dist < 3 spread). umap-learn's values for (1, 0.1) are a = 1.577, b = 0.8951. */
int icl_umap_find_ab(double spread, double min_dist, double *a, double *b, icl_err *err);

/* Step 2 alone: dist (N,k) are each point's k nearest distances in ascending order, the point
 * itself first (0); fills sigma (N) and rho (N). Returns 0, or -1 with err set. */
int icl_umap_smooth_knn(const double *dist, int N, int k, double *sigma, double *rho, icl_err *err);

#endif
