/* Synthetic in-context regression tasks with latent concepts: configuration, basis masks, batch
 * sampling and the Garg-style token layout. See include/iclab/icl_task.h for the definitions. */
#include "iclab/icl_task.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Largest number of floats a batch's x may hold; keeps every size computation far from overflow. */
#define ICL_TASK_MAX_ELEMS ((size_t)1 << 32)

static const char *const family_names[ICL_N_FAMILIES] = {"linear", "quadratic", "sparse", "leaky-relu"};

void icl_task_config_default(icl_task_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = ICL_TASK_BASES;
    c->dim = 16;
    c->n_bases = 4;
    c->rank = 4;
    c->groups = 0;
    c->n_points = 20;
    c->noise_var = 0.01;
    c->sparse_k = 4;
    c->leaky_slope = 0.5;
}

int icl_task_validate(const icl_task_config *c, icl_err *err) {
    if (!c) return icl_errf(err, "task config: NULL");
    if (c->kind != ICL_TASK_BASES && c->kind != ICL_TASK_FAMILIES)
        return icl_errf(err, "task config: unknown kind %d (0 = bases, 1 = families)", (int)c->kind);
    if (c->dim < 1 || c->dim > 1024) return icl_errf(err, "task config: dim %d out of range 1..1024", c->dim);
    if (c->tokens != ICL_TOKENS_SEPARATE && c->tokens != ICL_TOKENS_PAIRS)
        return icl_errf(err, "task config: unknown token layout %d (0 = separate, 1 = pairs)", c->tokens);
    if (c->n_points < 1 || c->n_points > 65536)
        return icl_errf(err, "task config: n_points %d out of range 1..65536", c->n_points);
    if (!(c->noise_var >= 0.0 && c->noise_var <= 1e6)) /* also rejects NaN */
        return icl_errf(err, "task config: noise_var %g out of range 0..1e6", c->noise_var);
    if (c->kind == ICL_TASK_FAMILIES) {
        if (c->sparse_k < 1 || c->sparse_k > c->dim)
            return icl_errf(err, "task config: sparse_k %d out of range 1..dim (%d)", c->sparse_k, c->dim);
        if (!(c->leaky_slope >= 0.0 && c->leaky_slope <= 1.0))
            return icl_errf(err, "task config: leaky_slope %g out of range 0..1", c->leaky_slope);
        return 0;
    }
    if (c->n_bases < 1 || c->n_bases > 1024)
        return icl_errf(err, "task config: n_bases %d out of range 1..1024", c->n_bases);
    if (c->rank < 1 || c->rank > c->dim)
        return icl_errf(err, "task config: rank %d out of range 1..dim (%d)", c->rank, c->dim);
    if (c->groups < 0) return icl_errf(err, "task config: groups %d must be >= 0", c->groups);
    if (c->groups == 0) {
        if ((long)c->n_bases * c->rank > c->dim)
            return icl_errf(err, "task config: %d disjoint bases of rank %d need %ld coordinates, dim is %d",
                            c->n_bases, c->rank, (long)c->n_bases * c->rank, c->dim);
        return 0;
    }
    int G = c->groups;
    if (c->dim % G) return icl_errf(err, "task config: groups %d must divide dim %d", G, c->dim);
    if (c->n_bases % G) return icl_errf(err, "task config: groups %d must divide n_bases %d", G, c->n_bases);
    int m = c->dim / G, P = c->n_bases / G;
    if (c->rank > m) return icl_errf(err, "task config: rank %d exceeds the group block of %d coordinates", c->rank, m);
    if (P > m)
        return icl_errf(err, "task config: %d bases per group exceed the %d distinct windows of a %d-coordinate block", P,
                        m, m);
    if (P > 1 && c->rank == m)
        return icl_errf(err, "task config: rank %d fills the whole %d-coordinate block, so its %d bases would coincide",
                        c->rank, m, P);
    return 0;
}

int icl_task_n_concepts(const icl_task_config *c) {
    if (!c) return 0;
    return c->kind == ICL_TASK_FAMILIES ? ICL_N_FAMILIES : c->n_bases;
}

void icl_task_concept_name(const icl_task_config *c, int concept, char *buf, size_t n) {
    if (!buf || n == 0) return;
    int nc = icl_task_n_concepts(c);
    if (concept < 0 || concept >= nc)
        snprintf(buf, n, "concept %d?", concept);
    else if (c->kind == ICL_TASK_FAMILIES)
        snprintf(buf, n, "%s", family_names[concept]);
    else
        snprintf(buf, n, "basis %d", concept + 1);
}

void icl_task_basis_mask(const icl_task_config *c, int concept, float *mask) {
    if (!c || !mask || c->dim < 1 || c->dim > 1024) return;
    int D = c->dim;
    for (int d = 0; d < D; d++) mask[d] = 0.0f;
    if (concept < 0 || concept >= icl_task_n_concepts(c)) return;
    if (c->kind == ICL_TASK_FAMILIES) {
        for (int d = 0; d < D; d++) mask[d] = 1.0f;
        return;
    }
    if (icl_task_validate(c, NULL)) return; /* an inconsistent config has no meaningful basis */
    if (c->groups == 0) {
        for (int t = 0; t < c->rank; t++) mask[concept * c->rank + t] = 1.0f;
        return;
    }
    int m = D / c->groups, P = c->n_bases / c->groups;
    int g = concept / P, j = concept % P;
    int start = (int)(((long)j * m) / P);
    for (int t = 0; t < c->rank; t++) mask[g * m + (start + t) % m] = 1.0f;
}

double icl_task_y_scale(const icl_task_config *c) {
    if (icl_task_validate(c, NULL)) return 0.0;
    return c->kind == ICL_TASK_FAMILIES ? (double)c->dim : (double)c->rank;
}

void icl_batch_free(icl_batch *b) {
    if (!b) return;
    free(b->x);
    free(b->y);
    free(b->w);
    free(b->concept);
    memset(b, 0, sizeof *b);
}

int icl_batch_alloc(icl_batch *b, int B, const icl_task_config *c, icl_err *err) {
    if (!b) return icl_errf(err, "batch alloc: NULL batch");
    memset(b, 0, sizeof *b);
    if (icl_task_validate(c, err)) return -1;
    if (B < 1) return icl_errf(err, "batch alloc: batch size %d must be >= 1", B);
    size_t nx = (size_t)B * (size_t)c->n_points * (size_t)c->dim;
    if (nx > ICL_TASK_MAX_ELEMS)
        return icl_errf(err, "batch alloc: %d x %d x %d inputs is too large", B, c->n_points, c->dim);
    b->x = malloc(nx * sizeof(float));
    b->y = malloc((size_t)B * c->n_points * sizeof(float));
    b->w = malloc((size_t)B * c->dim * sizeof(float));
    b->concept = malloc((size_t)B * sizeof(int));
    if (!b->x || !b->y || !b->w || !b->concept) {
        icl_batch_free(b);
        return icl_errf(err, "batch alloc: out of memory for %d sequences", B);
    }
    b->B = B;
    b->K = c->n_points;
    b->D = c->dim;
    return 0;
}

static double leaky(double z, double slope) { return z >= 0.0 ? z : slope * z; }

/* f(x) for one point, from the stored (float) weights; see the header for each family. */
static double clean_y(const icl_task_config *c, int concept, const float *w, const float *x, int D) {
    double s = 0.0;
    if (c->kind == ICL_TASK_FAMILIES && concept == ICL_FAMILY_QUADRATIC) {
        for (int d = 0; d < D; d++) s += (double)w[d] * ((double)x[d] * (double)x[d]);
        return s;
    }
    for (int d = 0; d < D; d++) s += (double)w[d] * (double)x[d];
    if (c->kind == ICL_TASK_FAMILIES && concept == ICL_FAMILY_LEAKY_RELU) s = leaky(s, c->leaky_slope);
    return s;
}

double icl_task_clean_y(const icl_task_config *c, const icl_batch *b, int seq, int k) {
    if (!c || !b || seq < 0 || seq >= b->B || k < 0 || k >= b->K || b->D != c->dim) return 0.0;
    return clean_y(c, b->concept[seq], b->w + (size_t)seq * b->D, b->x + ((size_t)seq * b->K + k) * b->D, b->D);
}

int icl_task_sample(const icl_task_config *c, icl_rng *rng, int force_concept, icl_batch *b, icl_err *err) {
    if (icl_task_validate(c, err)) return -1;
    if (!rng || !b || !b->x || !b->y || !b->w || !b->concept) return icl_errf(err, "task sample: NULL rng or unallocated batch");
    if (b->D != c->dim || b->K != c->n_points)
        return icl_errf(err, "task sample: batch is K=%d D=%d but the config says K=%d D=%d", b->K, b->D, c->n_points,
                        c->dim);
    int nc = icl_task_n_concepts(c);
    if (force_concept < -1 || force_concept >= nc)
        return icl_errf(err, "task sample: forced concept %d out of range -1..%d", force_concept, nc - 1);
    const int D = c->dim, K = c->n_points;
    const double sigma = sqrt(c->noise_var);
    float *mask = malloc((size_t)D * sizeof(float));
    int *perm = malloc((size_t)D * sizeof(int));
    if (!mask || !perm) {
        free(mask);
        free(perm);
        return icl_errf(err, "task sample: out of memory");
    }
    for (int s = 0; s < b->B; s++) {
        int concept = (int)icl_rng_below(rng, (uint64_t)nc);
        if (force_concept >= 0) concept = force_concept;
        b->concept[s] = concept;
        float *w = b->w + (size_t)s * D;
        double wscale = 1.0;
        if (c->kind == ICL_TASK_BASES) {
            icl_task_basis_mask(c, concept, mask);
        } else {
            for (int d = 0; d < D; d++) mask[d] = 1.0f;
            switch (concept) {
            case ICL_FAMILY_QUADRATIC: wscale = sqrt(1.0 / 3.0); break;
            case ICL_FAMILY_SPARSE:
                /* Partial Fisher-Yates: the first sparse_k entries of perm are a uniform subset. */
                for (int d = 0; d < D; d++) perm[d] = d;
                for (int i = 0; i < c->sparse_k; i++) {
                    int j = i + (int)icl_rng_below(rng, (uint64_t)(D - i));
                    int t = perm[i];
                    perm[i] = perm[j];
                    perm[j] = t;
                }
                for (int d = 0; d < D; d++) mask[d] = 0.0f;
                for (int i = 0; i < c->sparse_k; i++) mask[perm[i]] = 1.0f;
                wscale = sqrt((double)D / c->sparse_k);
                break;
            case ICL_FAMILY_LEAKY_RELU: wscale = sqrt(2.0 / (1.0 + c->leaky_slope * c->leaky_slope)); break;
            default: break;
            }
        }
        for (int d = 0; d < D; d++) {
            double z = icl_rng_normal(rng);
            w[d] = mask[d] != 0.0f ? (float)(wscale * z) : 0.0f;
        }
        float *x = b->x + (size_t)s * K * D;
        for (size_t i = 0; i < (size_t)K * D; i++) x[i] = (float)icl_rng_normal(rng);
        float *y = b->y + (size_t)s * K;
        for (int k = 0; k < K; k++) {
            double e = sigma * icl_rng_normal(rng);
            y[k] = (float)(clean_y(c, concept, w, x + (size_t)k * D, D) + e);
        }
    }
    free(mask);
    free(perm);
    return 0;
}

int icl_task_token_width(const icl_task_config *c) {
    if (icl_task_validate(c, NULL)) return 0;
    return c->dim + (c->tokens == ICL_TOKENS_PAIRS);
}

void icl_batch_tokens(const icl_batch *b, int width, float *tokens) {
    if (!b || !tokens || !b->x || !b->y) return;
    const int D = b->D, K = b->K;
    const int pairs = width == D + 1;
    if (!pairs && width != D) return;
    for (int s = 0; s < b->B; s++) {
        for (int k = 0; k < K; k++) {
            float *tx = tokens + ((size_t)s * 2 * K + 2 * (size_t)k) * width;
            float *ty = tx + width;
            const float *x = b->x + ((size_t)s * K + k) * D;
            float y = b->y[(size_t)s * K + k];
            memcpy(tx, x, (size_t)D * sizeof(float));
            if (pairs) {
                tx[D] = 0.0f;
                memcpy(ty, x, (size_t)D * sizeof(float));
                ty[D] = y;
            } else {
                ty[0] = y;
                for (int d = 1; d < D; d++) ty[d] = 0.0f;
            }
        }
    }
}
