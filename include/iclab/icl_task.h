/* Synthetic in-context regression tasks with a latent concept per sequence (paper §1.1, §1.6).
 *
 * Two task kinds:
 *
 * ICL_TASK_BASES (the paper's default, "mixture of sparse linear regression"): each sequence picks a
 * basis (its concept) uniformly; the weight vector W ~ N(0, I_D) is masked to that basis' `rank`
 * coordinates; x ~ N(0, I_D); y = W.x + N(0, noise_var).
 *   - groups == 0: disjoint bases, basis k = coordinates [k*rank, (k+1)*rank) (the paper gives no
 *     assignment; this partition is our documented choice). Coordinates past n_bases*rank are unused.
 *   - groups == G > 0: overlapping bases (paper §1.6, App. E.2: 8 bases, 2 groups, D = 16). The D
 *     coordinates are cut into G blocks of m = D/G; the n_bases/G bases of group g live in block g.
 *     Basis j (0-based) of a group with P = n_bases/G bases is the cyclic window of `rank`
 *     consecutive block coordinates starting at floor(j*m/P), wrapping inside the block. Basis
 *     index = g*P + j. Example (D=16, 8 bases, G=2, rank 4): basis 0 = {0,1,2,3}, 1 = {2,3,4,5},
 *     2 = {4,5,6,7}, 3 = {6,7,0,1}, 4 = {8,9,10,11}, ... 7 = {14,15,8,9}. The windows are distinct
 *     because their starts are (P <= m) and rank < m when P > 1; validation enforces both.
 *
 * ICL_TASK_FAMILIES (paper §1.6, after Kim et al. arXiv 2410.05448): four regression families with
 * equal probability, concept 0..3 = linear, quadratic, sparse, leaky-relu. Each family's noise-free
 * y is scaled to E[y^2] = D (the same as dense linear regression with W ~ N(0, I)), so one MSE
 * normalisation serves all four. The stored w always satisfies the formula below exactly:
 *   linear:     y = w.x,               w ~ N(0, I_D)
 *   quadratic:  y = w.(x*x),           w ~ N(0, I_D / 3)    (E[x^4] = 3, hence E[y^2] = D)
 *   sparse:     y = w.x,               w has sparse_k non-zero coordinates on a support drawn
 *                                      uniformly per sequence, each ~ N(0, D / sparse_k)
 *   leaky-relu: y = leaky(w.x),        leaky(z) = z for z >= 0, leaky_slope*z otherwise,
 *                                      w ~ N(0, 2/(1+slope^2) I_D)  (E[leaky(z)^2] = (1+s^2)/2 Var z)
 * Differences from Kim et al., on purpose: their quadratic task is x^T W x with a full D x D W;
 * ours is the diagonal form w.(x*x) so that every family is described by one D-vector; they keep
 * each family at its natural scale, we equalise E[y^2]. Their leaky slope is 0.5, which we keep as
 * the default (leaky_slope). Every family gets the same additive N(0, noise_var) noise.
 *
 * Token layouts (icl_task_config.tokens), always 2K tokens x_1, y_1, x_2, y_2, ...:
 *   ICL_TOKENS_SEPARATE (Garg et al., the paper's): width D; x token = x_k, y token = [y_k,0..0].
 *   ICL_TOKENS_PAIRS: width D+1; x token = [x_k, 0], y token = [x_k, y_k]. The y token carries its
 *     own x, so the model need not learn to bind each y to the x before it (the previous-token step
 *     behind the long loss plateau of the separate layout); the prediction is still read at the x
 *     tokens and the "y token" of demonstration k is still token 2k+1.
 */
#ifndef ICL_TASK_H
#define ICL_TASK_H
#include <stddef.h>
#include "iclab/icl_err.h"
#include "iclab/icl_rng.h"

typedef enum {
    ICL_TASK_BASES = 0,   /* mixture of sparse linear regression: the concept is the basis (paper default) */
    ICL_TASK_FAMILIES = 1 /* mixture of regression families: linear, quadratic, 4-sparse linear, leaky-ReLU (paper §1.6) */
} icl_task_kind;

/* Concept indices of ICL_TASK_FAMILIES. */
enum { ICL_FAMILY_LINEAR = 0, ICL_FAMILY_QUADRATIC = 1, ICL_FAMILY_SPARSE = 2, ICL_FAMILY_LEAKY_RELU = 3, ICL_N_FAMILIES = 4 };

/* How an (x, y) pair becomes tokens; see the header comment. */
enum { ICL_TOKENS_SEPARATE = 0, ICL_TOKENS_PAIRS = 1 };

typedef struct icl_task_config {
    icl_task_kind kind;
    int dim;          /* D, default 16; 1..1024 */
    int n_bases;      /* number of concepts for ICL_TASK_BASES, default 4; 1..1024 */
    int rank;         /* dimensions per basis, default 4 */
    int groups;       /* 0: disjoint bases (coordinates [k*rank,(k+1)*rank)); G>0: overlapping bases in G groups, see above */
    int n_points;     /* K in-context (x,y) pairs per sequence, default 20; 1..65536 */
    double noise_var; /* variance of the additive noise on y, default 0.01; 0..1e6 */
    /* Fields below are additions to the lead's API (FAMILIES only). */
    int sparse_k;       /* non-zero coordinates of the sparse family, default 4; 1..dim */
    double leaky_slope; /* negative-side slope of the leaky-relu family, default 0.5 (Kim et al.); 0..1 */
    int tokens;         /* ICL_TOKENS_SEPARATE (default) or ICL_TOKENS_PAIRS */
} icl_task_config;

/* Fills the paper's defaults: BASES, D=16, 4 disjoint bases of rank 4, K=20, noise 0.01,
 * sparse_k 4, leaky_slope 0.5. */
void icl_task_config_default(icl_task_config *c);

/* Checks every field's range and their consistency. BASES: 1 <= rank <= dim; groups == 0 needs
 * n_bases*rank <= dim; groups > 0 needs groups | dim, groups | n_bases, rank <= dim/groups,
 * n_bases/groups <= dim/groups and, when a group holds more than one basis, rank < dim/groups
 * (so the windows are distinct). FAMILIES: 1 <= sparse_k <= dim, 0 <= leaky_slope <= 1 (the
 * basis fields are ignored). Returns 0, or -1 with err set. */
int icl_task_validate(const icl_task_config *c, icl_err *err);

/* Number of latent concepts: n_bases for BASES, 4 for FAMILIES. */
int icl_task_n_concepts(const icl_task_config *c);

/* Human-readable concept name: "basis 1".."basis N" (1-based, as in the paper) or "linear",
 * "quadratic", "sparse", "leaky-relu". An out-of-range concept gives "concept <i>?". Always
 * NUL-terminates when n > 0. */
void icl_task_concept_name(const icl_task_config *c, int concept, char *buf, size_t n);

/* Coordinate mask of a concept: D floats of 0/1. BASES: 1 on the basis' coordinates. FAMILIES:
 * all ones (the sparse family has no fixed support). An out-of-range concept gives all zeros. */
void icl_task_basis_mask(const icl_task_config *c, int concept, float *mask);

/* E[y^2] of the noise-free y under the task: rank for BASES, D for FAMILIES (every family is
 * scaled to D, so this is also their mean). MSE / y_scale = 1.0 means "as bad as predicting 0".
 * Returns 0 for an invalid config. */
double icl_task_y_scale(const icl_task_config *c);

typedef struct icl_batch {
    int B, K, D;
    float *x;       /* (B,K,D) inputs */
    float *y;       /* (B,K)   targets (noisy) */
    float *w;       /* (B,D)   the sequence's true weight vector (FAMILIES: the family's weights, see above) */
    int *concept;   /* (B)     latent concept label in [0, n_concepts) */
} icl_batch;

/* Allocates a batch of B sequences shaped by the config (K = n_points, D = dim). Returns 0, or -1
 * with err set (bad config, B < 1, out of memory); on failure *b is left empty (safe to free). */
int icl_batch_alloc(icl_batch *b, int B, const icl_task_config *c, icl_err *err);
/* Frees the arrays and zeroes the struct; safe on a zeroed or already freed batch. */
void icl_batch_free(icl_batch *b);

/* Samples all b->B sequences. Per sequence, in this order, using only `rng`:
 *   1. concept = icl_rng_below(n_concepts) (always drawn, then replaced by force_concept when
 *      force_concept >= 0, so forcing does not shift the rest of the stream);
 *   2. FAMILIES sparse only: the support, sparse_k draws of a partial Fisher-Yates shuffle of 0..D-1
 *      (draw i = icl_rng_below(D - i));
 *   3. D normals for w (coordinate order), then masked / scaled as documented above;
 *   4. K*D normals for x, row-major (point k, coordinate d);
 *   5. K normals for the noise, scaled by sqrt(noise_var) (drawn even when noise_var == 0).
 * y is computed in double and rounded to float. Same rng state => same batch bit for bit.
 * force_concept must be -1 (random) or a valid concept. b must come from icl_batch_alloc with the
 * same dim and n_points. Returns 0, or -1 with err set. */
int icl_task_sample(const icl_task_config *c, icl_rng *rng, int force_concept, icl_batch *b, icl_err *err);

/* Width of one token: D for ICL_TOKENS_SEPARATE, D+1 for ICL_TOKENS_PAIRS (0 for an invalid
 * config). It is the model's d_in. */
int icl_task_token_width(const icl_task_config *c);

/* Token sequence (B, 2K, width): token 2k is demonstration k's x token, 2k+1 its y token, laid out
 * as the header comment says; width == b->D gives the separate layout, width == b->D + 1 the pairs
 * layout (callers pass the model's d_in). Any other width writes nothing. */
void icl_batch_tokens(const icl_batch *b, int width, float *tokens);

/* The noise-free target f(x) of sequence `seq` at point `k`, from the stored w, concept and x
 * (double precision). Useful for tests and for the Bayes-optimal reference. */
double icl_task_clean_y(const icl_task_config *c, const icl_batch *b, int seq, int k);

#endif
