/* Tests of the synthetic task generator (icl_task.h): config validation, basis masks (disjoint and
 * overlapping), the statistics of sampled batches for both task kinds, the token layout, seed
 * reproducibility and the dense curriculum of icl_train_sample. Statistical tolerances are stated
 * next to each check; they are several standard errors wide for the sample sizes used, and the
 * seeds are fixed, so the test is deterministic. */
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_task.h"
#include "iclab/icl_train.h"
#include "icl_test.h"

static void test_validate(void) {
    icl_task_config c;
    icl_err err;
    icl_task_config_default(&c);
    CHECK(c.kind == ICL_TASK_BASES && c.dim == 16 && c.n_bases == 4 && c.rank == 4 && c.groups == 0 &&
          c.n_points == 20 && c.noise_var == 0.01 && c.sparse_k == 4 && c.leaky_slope == 0.5);
    CHECK(icl_task_validate(&c, &err) == 0);
    CHECK(icl_task_n_concepts(&c) == 4);
    CHECK(icl_task_y_scale(&c) == 4.0);

    /* Each bad config must be rejected with a message. */
    struct {
        const char *what;
        int field, value;
    } bad_int[] = {
        {"dim 0", 0, 0},         {"dim 1025", 0, 1025},     {"rank 0", 1, 0},      {"rank > dim", 1, 17},
        {"5 bases x 4 > 16", 2, 5}, {"n_bases 0", 2, 0},    {"groups -1", 3, -1},  {"groups 3 !| 16", 3, 3},
        {"n_points 0", 4, 0},    {"kind 7", 5, 7},
    };
    for (size_t i = 0; i < sizeof bad_int / sizeof *bad_int; i++) {
        icl_task_config_default(&c);
        int *f[] = {&c.dim, &c.rank, &c.n_bases, &c.groups, &c.n_points};
        if (bad_int[i].field == 5)
            c.kind = (icl_task_kind)bad_int[i].value;
        else
            *f[bad_int[i].field] = bad_int[i].value;
        err.msg[0] = 0;
        CHECK_MSG(icl_task_validate(&c, &err) == -1 && err.msg[0], "%s accepted", bad_int[i].what);
        icl_batch b;
        CHECK_MSG(icl_batch_alloc(&b, 4, &c, &err) == -1 && b.x == NULL, "alloc with %s accepted", bad_int[i].what);
    }
    icl_task_config_default(&c);
    c.noise_var = -1;
    CHECK(icl_task_validate(&c, &err) == -1);
    c.noise_var = NAN;
    CHECK(icl_task_validate(&c, &err) == -1);
    CHECK(icl_task_validate(NULL, &err) == -1);

    /* Overlapping groups: the paper's 8 bases in 2 groups is valid; inconsistent groupings are not. */
    icl_task_config_default(&c);
    c.n_bases = 8;
    c.groups = 2;
    CHECK(icl_task_validate(&c, &err) == 0);
    c.n_bases = 6; /* 2 | 6, fine: 3 bases per group */
    CHECK(icl_task_validate(&c, &err) == 0);
    c.n_bases = 7; /* 2 does not divide 7 */
    CHECK(icl_task_validate(&c, &err) == -1);
    c.n_bases = 8;
    c.rank = 8; /* fills the block: the 4 bases of a group would coincide */
    CHECK(icl_task_validate(&c, &err) == -1);
    c.rank = 9; /* larger than the block */
    CHECK(icl_task_validate(&c, &err) == -1);
    c.rank = 2;
    c.n_bases = 18; /* 9 bases per 8-coordinate block: more than the 8 distinct windows */
    CHECK(icl_task_validate(&c, &err) == -1);
    c.n_bases = 16;
    CHECK(icl_task_validate(&c, &err) == 0);

    /* FAMILIES ignores the basis fields but checks its own. */
    icl_task_config_default(&c);
    c.kind = ICL_TASK_FAMILIES;
    c.n_bases = 99;
    CHECK(icl_task_validate(&c, &err) == 0);
    CHECK(icl_task_n_concepts(&c) == 4);
    CHECK(icl_task_y_scale(&c) == 16.0);
    c.sparse_k = 0;
    CHECK(icl_task_validate(&c, &err) == -1);
    c.sparse_k = 17;
    CHECK(icl_task_validate(&c, &err) == -1);
    c.sparse_k = 4;
    c.leaky_slope = 2.0;
    CHECK(icl_task_validate(&c, &err) == -1);

    icl_task_config_default(&c);
    icl_batch b;
    CHECK(icl_batch_alloc(&b, 0, &c, &err) == -1);
    icl_batch_free(&b);
    icl_batch_free(&b); /* freeing twice is safe */
}

static void test_names_masks(void) {
    icl_task_config c;
    icl_task_config_default(&c);
    char buf[32];
    icl_task_concept_name(&c, 0, buf, sizeof buf);
    CHECK(strcmp(buf, "basis 1") == 0);
    icl_task_concept_name(&c, 3, buf, sizeof buf);
    CHECK(strcmp(buf, "basis 4") == 0);
    icl_task_concept_name(&c, 4, buf, sizeof buf);
    CHECK(strcmp(buf, "concept 4?") == 0);
    icl_task_concept_name(&c, 0, buf, 3); /* truncates, still terminated */
    CHECK(strcmp(buf, "ba") == 0);

    float mask[1024];
    for (int k = 0; k < 4; k++) {
        icl_task_basis_mask(&c, k, mask);
        int ok = 1;
        for (int d = 0; d < 16; d++) ok &= mask[d] == ((d / 4 == k) ? 1.0f : 0.0f);
        CHECK_MSG(ok, "disjoint basis %d is not coordinates [%d,%d)", k, 4 * k, 4 * k + 4);
    }
    icl_task_basis_mask(&c, -1, mask);
    float s = 0;
    for (int d = 0; d < 16; d++) s += mask[d];
    CHECK(s == 0.0f);

    /* Overlapping: 8 bases, 2 groups of 8 coordinates, rank 4, cyclic windows starting at 2j. */
    c.n_bases = 8;
    c.groups = 2;
    float all[8][16];
    for (int k = 0; k < 8; k++) {
        icl_task_basis_mask(&c, k, all[k]);
        int n = 0, inside = 1;
        for (int d = 0; d < 16; d++) {
            n += all[k][d] != 0.0f;
            if (all[k][d] != 0.0f && d / 8 != k / 4) inside = 0;
        }
        CHECK_MSG(n == 4 && inside, "overlapping basis %d: %d coordinates, inside its block: %d", k, n, inside);
    }
    for (int a = 0; a < 8; a++)
        for (int b = a + 1; b < 8; b++) CHECK_MSG(memcmp(all[a], all[b], sizeof all[a]) != 0, "bases %d and %d coincide", a, b);
    const int ex3[] = {6, 7, 0, 1}, ex7[] = {14, 15, 8, 9}; /* the examples in icl_task.h */
    for (int t = 0; t < 4; t++) CHECK(all[3][ex3[t]] == 1.0f && all[7][ex7[t]] == 1.0f);
    /* Every coordinate of a block is used by exactly 2 of its 4 bases (the windows tile it evenly). */
    for (int d = 0; d < 16; d++) {
        int n = 0;
        for (int k = 0; k < 8; k++) n += all[k][d] != 0.0f;
        CHECK(n == 2);
    }

    c.kind = ICL_TASK_FAMILIES;
    const char *fam[] = {"linear", "quadratic", "sparse", "leaky-relu"};
    for (int k = 0; k < 4; k++) {
        icl_task_concept_name(&c, k, buf, sizeof buf);
        CHECK(strcmp(buf, fam[k]) == 0);
        icl_task_basis_mask(&c, k, mask);
        float t = 0;
        for (int d = 0; d < 16; d++) t += mask[d];
        CHECK(t == 16.0f);
    }
}

/* Paper task statistics on 20000 sequences (400000 points, 6.4M x values). */
static void test_bases_stats(void) {
    icl_task_config c;
    icl_task_config_default(&c);
    icl_err err;
    icl_batch b;
    icl_rng rng;
    icl_rng_seed(&rng, 11);
    const int B = 20000, K = c.n_points, D = c.dim;
    CHECK(icl_batch_alloc(&b, B, &c, &err) == 0);
    CHECK(icl_task_sample(&c, &rng, -1, &b, &err) == 0);

    int count[4] = {0};
    long outside_nonzero = 0;
    double w1 = 0, w2 = 0, w4 = 0;
    long nw = 0;
    float mask[16];
    for (int s = 0; s < B; s++) {
        int k = b.concept[s];
        if (k < 0 || k > 3) {
            CHECK_MSG(0, "concept %d out of range", k);
            continue;
        }
        count[k]++;
        icl_task_basis_mask(&c, k, mask);
        for (int d = 0; d < D; d++) {
            double w = b.w[(size_t)s * D + d];
            if (mask[d] == 0.0f) {
                outside_nonzero += w != 0.0;
            } else {
                w1 += w, w2 += w * w, w4 += w * w * w * w, nw++;
            }
        }
    }
    /* Concept shares: standard error sqrt(.25*.75/20000) = 0.003; tolerance 0.015. */
    for (int k = 0; k < 4; k++) CHECK_NEAR(count[k] / (double)B, 0.25, 0.015);
    CHECK(outside_nonzero == 0);
    CHECK(nw == (long)B * 4);
    /* W inside the basis ~ N(0,1): 80000 values; SE of mean 0.0035, of variance 0.005, of E[w^4] 0.035. */
    CHECK_NEAR(w1 / nw, 0.0, 0.02);
    CHECK_NEAR(w2 / nw, 1.0, 0.03);
    CHECK_NEAR(w4 / nw, 3.0, 0.15);

    /* x ~ N(0, I): 6.4M values, SE 0.0004 for the mean and 0.0006 for the variance; tolerance 0.005. */
    double x1 = 0, x2 = 0;
    size_t nx = (size_t)B * K * D;
    for (size_t i = 0; i < nx; i++) x1 += b.x[i], x2 += (double)b.x[i] * b.x[i];
    CHECK_NEAR(x1 / nx, 0.0, 0.005);
    CHECK_NEAR(x2 / nx, 1.0, 0.005);
    /* Coordinates are uncorrelated: E[x_0 x_1] ~ 0 (SE 0.0016 over 400000 points). */
    double x01 = 0;
    for (size_t p = 0; p < (size_t)B * K; p++) x01 += (double)b.x[p * D] * b.x[p * D + 1];
    CHECK_NEAR(x01 / ((double)B * K), 0.0, 0.008);

    /* Residual y - W.x ~ N(0, noise_var): 400000 values, SE of the variance 0.2%; tolerance 2%. */
    double r1 = 0, r2 = 0, c2 = 0, maxdiff = 0;
    for (int s = 0; s < B; s++)
        for (int k = 0; k < K; k++) {
            double f = 0;
            for (int d = 0; d < D; d++) f += (double)b.w[(size_t)s * D + d] * b.x[((size_t)s * K + k) * D + d];
            double r = b.y[(size_t)s * K + k] - f;
            r1 += r, r2 += r * r, c2 += f * f;
            double diff = fabs(f - icl_task_clean_y(&c, &b, s, k));
            if (diff > maxdiff) maxdiff = diff;
        }
    double n = (double)B * K;
    CHECK_NEAR(r1 / n, 0.0, 0.001);
    CHECK_NEAR(r2 / n / c.noise_var, 1.0, 0.02);
    CHECK(maxdiff < 1e-12);
    /* E[(W.x)^2] = rank = icl_task_y_scale; correlated within a sequence, so a 5% tolerance (about 4 SE). */
    CHECK_NEAR(c2 / n / icl_task_y_scale(&c), 1.0, 0.05);
    icl_batch_free(&b);
}

/* Families: each family's noise-free E[y^2] ~ D, the sparse support, and y against our own formulas. */
static void test_families_stats(void) {
    icl_task_config c;
    icl_task_config_default(&c);
    c.kind = ICL_TASK_FAMILIES;
    icl_err err;
    icl_batch b;
    icl_rng rng;
    icl_rng_seed(&rng, 12);
    const int B = 20000, K = c.n_points, D = c.dim;
    CHECK(icl_batch_alloc(&b, B, &c, &err) == 0);
    CHECK(icl_task_sample(&c, &rng, -1, &b, &err) == 0);
    int count[4] = {0};
    double ey2[4] = {0}, r2 = 0, maxdiff = 0;
    long support[16] = {0}, bad_support = 0, zero_dense = 0;
    for (int s = 0; s < B; s++) {
        int f = b.concept[s];
        if (f < 0 || f > 3) {
            CHECK_MSG(0, "family %d out of range", f);
            continue;
        }
        count[f]++;
        const float *w = b.w + (size_t)s * D;
        int nz = 0;
        for (int d = 0; d < D; d++) {
            nz += w[d] != 0.0f;
            if (f == ICL_FAMILY_SPARSE && w[d] != 0.0f) support[d]++;
        }
        if (f == ICL_FAMILY_SPARSE && nz != c.sparse_k) bad_support++;
        if (f != ICL_FAMILY_SPARSE && nz != D) zero_dense++;
        for (int k = 0; k < K; k++) {
            const float *x = b.x + ((size_t)s * K + k) * D;
            double lin = 0, quad = 0;
            for (int d = 0; d < D; d++) lin += (double)w[d] * x[d], quad += (double)w[d] * x[d] * x[d];
            double clean = f == ICL_FAMILY_QUADRATIC ? quad
                         : f == ICL_FAMILY_LEAKY_RELU ? (lin >= 0 ? lin : 0.5 * lin)
                                                      : lin;
            ey2[f] += clean * clean;
            double r = b.y[(size_t)s * K + k] - clean;
            r2 += r * r;
            double diff = fabs(clean - icl_task_clean_y(&c, &b, s, k));
            if (diff > maxdiff) maxdiff = diff;
        }
    }
    for (int f = 0; f < 4; f++) {
        CHECK_NEAR(count[f] / (double)B, 0.25, 0.015);
        /* ~5000 sequences per family; E[y^2] within 8% of D (several SE; quadratic has the heaviest tails). */
        CHECK_MSG(fabs(ey2[f] / ((double)count[f] * K) / D - 1.0) < 0.08, "family %d: E[y^2]/D = %.4f", f,
                  ey2[f] / ((double)count[f] * K) / D);
    }
    CHECK(bad_support == 0);
    CHECK(zero_dense == 0);
    /* Uniform support: each coordinate in sparse_k/D = 1/4 of the ~5000 sparse sequences (SE 0.006). */
    for (int d = 0; d < D; d++) CHECK_NEAR(support[d] / (double)count[ICL_FAMILY_SPARSE], 0.25, 0.03);
    CHECK_NEAR(r2 / ((double)B * K) / c.noise_var, 1.0, 0.02);
    CHECK(maxdiff < 1e-12);
    icl_batch_free(&b);
}

static void test_reproducibility_and_tokens(void) {
    icl_task_config c;
    icl_task_config_default(&c);
    c.n_bases = 8;
    c.groups = 2;
    icl_err err;
    icl_batch a, b;
    icl_rng r1, r2;
    CHECK(icl_batch_alloc(&a, 64, &c, &err) == 0);
    CHECK(icl_batch_alloc(&b, 64, &c, &err) == 0);
    size_t nx = (size_t)64 * c.n_points * c.dim * sizeof(float), ny = (size_t)64 * c.n_points * sizeof(float),
           nw = (size_t)64 * c.dim * sizeof(float);
    icl_rng_seed(&r1, 5);
    icl_rng_seed(&r2, 5);
    CHECK(icl_task_sample(&c, &r1, -1, &a, &err) == 0);
    CHECK(icl_task_sample(&c, &r2, -1, &b, &err) == 0);
    CHECK(memcmp(a.x, b.x, nx) == 0 && memcmp(a.y, b.y, ny) == 0 && memcmp(a.w, b.w, nw) == 0 &&
          memcmp(a.concept, b.concept, 64 * sizeof(int)) == 0);
    CHECK(memcmp(r1.s, r2.s, sizeof r1.s) == 0);
    /* Overlapping bases: W is zero outside the sequence's window. */
    long outside = 0;
    float mask[16];
    for (int s = 0; s < 64; s++) {
        icl_task_basis_mask(&c, a.concept[s], mask);
        for (int d = 0; d < 16; d++) outside += mask[d] == 0.0f && a.w[s * 16 + d] != 0.0f;
    }
    CHECK(outside == 0);

    /* A different seed gives a different batch. */
    icl_rng_seed(&r2, 6);
    CHECK(icl_task_sample(&c, &r2, -1, &b, &err) == 0);
    CHECK(memcmp(a.x, b.x, nx) != 0 && memcmp(a.y, b.y, ny) != 0);
    /* The same generator continues with fresh data. */
    CHECK(icl_task_sample(&c, &r1, -1, &b, &err) == 0);
    CHECK(memcmp(a.x, b.x, nx) != 0);

    /* Forcing the concept changes only the concept (the stream stays aligned): x identical. */
    icl_rng_seed(&r2, 5);
    CHECK(icl_task_sample(&c, &r2, 6, &b, &err) == 0);
    int all6 = 1;
    for (int s = 0; s < 64; s++) all6 &= b.concept[s] == 6;
    CHECK(all6);
    CHECK(memcmp(a.x, b.x, nx) == 0);
    CHECK(icl_task_sample(&c, &r2, 8, &b, &err) == -1);
    CHECK(icl_task_sample(&c, &r2, -2, &b, &err) == -1);
    icl_task_config other = c;
    other.dim = 8;
    other.n_bases = 2;
    other.groups = 0;
    CHECK(icl_task_sample(&other, &r2, -1, &b, &err) == -1); /* batch shaped for D=16 */
    icl_batch_free(&a);
    icl_batch_free(&b);

    /* Token layout on a tiny batch. */
    icl_task_config t;
    icl_task_config_default(&t);
    t.dim = 4;
    t.n_bases = 1;
    t.n_points = 3;
    CHECK(icl_batch_alloc(&a, 2, &t, &err) == 0);
    icl_rng_seed(&r1, 9);
    CHECK(icl_task_sample(&t, &r1, -1, &a, &err) == 0);
    float tok[2 * 6 * 4];
    for (size_t i = 0; i < sizeof tok / sizeof *tok; i++) tok[i] = 123.0f;
    icl_batch_tokens(&a, 4, tok);
    int ok = 1;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++)
            for (int d = 0; d < 4; d++) {
                ok &= tok[(s * 6 + 2 * k) * 4 + d] == a.x[(s * 3 + k) * 4 + d];
                ok &= tok[(s * 6 + 2 * k + 1) * 4 + d] == (d == 0 ? a.y[s * 3 + k] : 0.0f);
            }
    CHECK(ok);
    /* Pairs layout: width D+1, x token [x, 0], y token [x, y]; an unknown width writes nothing. */
    t.tokens = ICL_TOKENS_PAIRS;
    CHECK(icl_task_token_width(&t) == 5);
    float tp[2 * 6 * 5];
    icl_batch_tokens(&a, 5, tp);
    ok = 1;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++)
            for (int d = 0; d < 5; d++) {
                float x = d < 4 ? a.x[(s * 3 + k) * 4 + d] : 0.0f;
                ok &= tp[(s * 6 + 2 * k) * 5 + d] == x;
                ok &= tp[(s * 6 + 2 * k + 1) * 5 + d] == (d < 4 ? x : a.y[s * 3 + k]);
            }
    CHECK(ok);
    for (size_t i = 0; i < sizeof tok / sizeof *tok; i++) tok[i] = 123.0f;
    icl_batch_tokens(&a, 7, tok);
    ok = 1;
    for (size_t i = 0; i < sizeof tok / sizeof *tok; i++) ok &= tok[i] == 123.0f;
    CHECK(ok);
    t.tokens = 2;
    CHECK(icl_task_validate(&t, NULL) != 0);
    CHECK(icl_task_token_width(&t) == 0);
    icl_batch_free(&a);
}

/* noise_var == 0 gives y == W.x up to float rounding. */
static void test_noiseless(void) {
    icl_task_config c;
    icl_task_config_default(&c);
    c.noise_var = 0;
    icl_err err;
    icl_batch b;
    icl_rng rng;
    icl_rng_seed(&rng, 3);
    CHECK(icl_batch_alloc(&b, 100, &c, &err) == 0);
    CHECK(icl_task_sample(&c, &rng, -1, &b, &err) == 0);
    double maxrel = 0;
    for (int s = 0; s < 100; s++)
        for (int k = 0; k < c.n_points; k++) {
            double f = icl_task_clean_y(&c, &b, s, k), r = fabs(b.y[s * c.n_points + k] - f) / (fabs(f) + 1e-30);
            if (r > maxrel) maxrel = r;
        }
    CHECK(maxrel <= 6e-8); /* float rounding of y */
    icl_batch_free(&b);
}

/* The dense curriculum of icl_train_sample: before dense_steps every coordinate of W is used, with
 * E[w^2] = rank/D so E[y^2] stays the task's; from dense_steps on the batch is the task's own,
 * bit for bit what icl_task_sample draws from the same rng state. Families use the linear family. */
static void test_dense_curriculum(void) {
    icl_train_config tc;
    icl_train_config_default(&tc);
    tc.task.dim = 8, tc.task.n_bases = 2, tc.task.rank = 2, tc.task.n_points = 6;
    tc.dense_steps = 5;
    icl_err err;
    CHECK(icl_train_config_validate(&tc, &err) == 0);
    const int B = 4000, D = 8, K = 6;
    icl_batch b, ref;
    CHECK(icl_batch_alloc(&b, B, &tc.task, &err) == 0 && icl_batch_alloc(&ref, B, &tc.task, &err) == 0);
    icl_rng rng;
    icl_rng_seed(&rng, 5);
    CHECK(icl_train_sample(&tc, 4, &rng, &b, &err) == 0);
    long zeros = 0;
    double w2 = 0, y2 = 0;
    for (size_t i = 0; i < (size_t)B * D; i++) zeros += b.w[i] == 0.0f, w2 += (double)b.w[i] * b.w[i];
    for (size_t i = 0; i < (size_t)B * K; i++) y2 += (double)b.y[i] * b.y[i];
    CHECK(zeros == 0);
    /* 32000 values of N(0, 1/4): SE of the variance 0.002; tolerance 0.01. */
    CHECK_NEAR(w2 / ((double)B * D), 2.0 / 8.0, 0.01);
    /* E[y^2] = rank + scaled noise = 2.0025; correlated within a sequence, 5% tolerance. */
    CHECK_NEAR(y2 / ((double)B * K) / icl_task_y_scale(&tc.task), 1.0, 0.05);
    /* at dense_steps: the task itself, the same draws as icl_task_sample */
    icl_rng r1, r2;
    icl_rng_seed(&r1, 9), icl_rng_seed(&r2, 9);
    CHECK(icl_train_sample(&tc, 5, &r1, &b, &err) == 0 && icl_task_sample(&tc.task, &r2, -1, &ref, &err) == 0);
    CHECK(!memcmp(b.w, ref.w, sizeof(float) * B * D) && !memcmp(b.y, ref.y, sizeof(float) * B * K) &&
          !memcmp(b.concept, ref.concept, sizeof(int) * B));
    /* families: the dense phase is the linear family */
    tc.task.kind = ICL_TASK_FAMILIES;
    icl_batch_free(&b);
    CHECK(icl_batch_alloc(&b, 64, &tc.task, &err) == 0);
    CHECK(icl_train_sample(&tc, 0, &rng, &b, &err) == 0);
    int linear = 1;
    for (int i = 0; i < 64; i++) linear &= b.concept[i] == ICL_FAMILY_LINEAR;
    CHECK(linear);
    /* dense_steps past the run is refused */
    tc.dense_steps = tc.steps + 1;
    CHECK(icl_train_config_validate(&tc, &err) == -1 && strstr(err.msg, "dense-steps"));
    icl_batch_free(&b);
    icl_batch_free(&ref);
}

/* The families curriculum on a BASES task: every family present in about its quarter share (the
 * sparse one with exactly `rank` non-zeros, the quadratic and leaky-ReLU ones not linear in x), the
 * task's E[y^2], concept labels 0; an unknown curriculum is refused. */
static void test_families_curriculum(void) {
    icl_train_config tc;
    icl_train_config_default(&tc);
    tc.task.dim = 8, tc.task.n_bases = 4, tc.task.rank = 2, tc.task.n_points = 6, tc.task.noise_var = 0;
    tc.dense_steps = 5, tc.curriculum = ICL_CURRICULUM_FAMILIES;
    icl_err err;
    CHECK(icl_train_config_validate(&tc, &err) == 0);
    const int B = 4000, D = 8, K = 6;
    icl_batch b;
    CHECK(icl_batch_alloc(&b, B, &tc.task, &err) == 0);
    icl_rng rng;
    icl_rng_seed(&rng, 11);
    CHECK(icl_train_sample(&tc, 0, &rng, &b, &err) == 0);
    int sparse = 0, nonlinear = 0, labels = 0;
    double y2 = 0;
    for (int i = 0; i < B; i++) {
        const float *w = b.w + (size_t)i * D;
        int nz = 0;
        for (int d = 0; d < D; d++) nz += w[d] != 0.0f;
        sparse += nz == tc.task.rank;
        double dev = 0;
        for (int k = 0; k < K; k++) {
            const float *x = b.x + ((size_t)i * K + k) * D;
            double lin = 0;
            for (int d = 0; d < D; d++) lin += (double)w[d] * x[d];
            dev = fmax(dev, fabs(lin - b.y[(size_t)i * K + k]));
            y2 += (double)b.y[(size_t)i * K + k] * b.y[(size_t)i * K + k];
        }
        nonlinear += dev > 1e-3;
        labels += b.concept[i] != 0;
    }
    /* shares of 4000 draws: SE 0.007; tolerance 0.04. Nonlinear: all quadratic ones and the
     * leaky-ReLU ones with a negative w.x among 6 points (1 - 2^-6), so 0.25 + 0.246. */
    CHECK_NEAR(sparse / (double)B, 0.25, 0.04);
    CHECK_NEAR(nonlinear / (double)B, 0.496, 0.04);
    CHECK(labels == 0);
    /* E[y^2] = rank: each family's E[y^2] = D, scaled by rank/D; correlated within a sequence, 5% */
    CHECK_NEAR(y2 / ((double)B * K) / icl_task_y_scale(&tc.task), 1.0, 0.05);
    tc.curriculum = 2;
    CHECK(icl_train_config_validate(&tc, &err) == -1 && strstr(err.msg, "curriculum"));
    icl_batch_free(&b);
}

int main(void) {
    test_validate();
    test_names_masks();
    test_bases_stats();
    test_families_stats();
    test_reproducibility_and_tokens();
    test_noiseless();
    test_dense_curriculum();
    test_families_curriculum();
    return icl_test_finish();
}
