/* Tests for exact kNN and Task Decodability: scikit-learn leave-one-out fixtures (both tie rules),
 * a brute-force double reference, screening-bound stress cases, thread independence, bad input. */
#include "iclab/icl_knn.h"
#include "iclab/icl_file.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- brute-force reference: plain double loops, sort by (distance, index) ---------------------- */
typedef struct rc { double D; int j; } rc;
static int rc_cmp(const void *a, const void *b) {
    const rc *x = a, *y = b;
    if (x->D != y->D) return x->D < y->D ? -1 : 1;
    return x->j - y->j;
}

/* Reference distance of points i and j. */
static double ref_dist(const float *X, int d, icl_metric m, int i, int j) {
    double D = 0;
    if (m == ICL_METRIC_EUCLIDEAN) {
        for (int t = 0; t < d; t++) {
            double v = (double)X[i * d + t] - X[j * d + t];
            D += v * v;
        }
        return sqrt(D);
    }
    /* 1 - cos as half the squared distance of the unit vectors: no cancellation */
    double a = 0, b = 0;
    for (int t = 0; t < d; t++) {
        a += (double)X[i * d + t] * X[i * d + t];
        b += (double)X[j * d + t] * X[j * d + t];
    }
    if (a == 0 || b == 0) return 1.0;
    a = sqrt(a); b = sqrt(b);
    for (int t = 0; t < d; t++) {
        double v = X[i * d + t] / a - X[j * d + t] / b;
        D += v * v;
    }
    return 0.5 * D;
}

static void ref_knn(const float *X, int N, int d, int k, icl_metric m, int *idx, double *dist) {
    rc *c = malloc(sizeof(rc) * N);
    for (int i = 0; i < N; i++) {
        int n = 0;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            c[n].D = ref_dist(X, d, m, i, j); c[n].j = j; n++;
        }
        qsort(c, n, sizeof(rc), rc_cmp);
        for (int t = 0; t < k; t++) {
            idx[i * k + t] = c[t].j;
            if (dist) dist[i * k + t] = c[t].D;
        }
    }
    free(c);
}

/* ---- fixtures ------------------------------------------------------------------------------- */
static int32_t rd_i32(const unsigned char *p) { int32_t v; memcpy(&v, p, 4); return v; }

static void check_fixture(const char *path) {
    char *buf; size_t n; icl_err err;
    int rc0 = icl_read_file(path, &buf, &n, &err);
    CHECK_MSG(rc0 == 0, "reading %s: %s", path, err.msg);
    if (rc0) return;
    const unsigned char *p = (const unsigned char *)buf;
    CHECK(n > 24 && memcmp(p, "ICLTD1\0\0", 8) == 0);
    int N = rd_i32(p + 8), d = rd_i32(p + 12), K = rd_i32(p + 16), ncase = rd_i32(p + 20);
    size_t off = 24;
    float *X = malloc(sizeof(float) * N * d);
    int *lab = malloc(sizeof(int) * N), *pred = malloc(sizeof(int) * N);
    memcpy(X, p + off, sizeof(float) * N * d); off += sizeof(float) * N * d;
    memcpy(lab, p + off, sizeof(int) * N); off += sizeof(int) * N;
    for (int c = 0; c < ncase; c++) {
        int k = rd_i32(p + off), metric = rd_i32(p + off + 4);
        off += 8;
        const unsigned char *psk = p + off, *prule = p + off + 4 * N, *ptie = p + off + 8 * N;
        off += 12 * (size_t)N;
        CHECK(off <= n);
        double per[16]; icl_td_stats st;
        int r = icl_td(X, lab, N, d, K, k, (icl_metric)metric, pred, per, &st, &err);
        CHECK_MSG(r == 0, "%s", err.msg);
        int same_rule = 0, same_sk = 0, free_pts = 0, tie_pts = 0, tie_diff_sk = 0, correct = 0;
        for (int i = 0; i < N; i++) {
            int sk = rd_i32(psk + 4 * i), rule = rd_i32(prule + 4 * i), tie = rd_i32(ptie + 4 * i);
            same_rule += pred[i] == rule;
            if (!tie) { free_pts++; same_sk += pred[i] == sk; }
            else { tie_pts++; tie_diff_sk += pred[i] != sk; }
            correct += sk == lab[i];
        }
        printf("%s k=%d %s: TD %.4f; = lower-index rule on %d/%d; = sklearn on %d/%d points without a "
               "boundary tie (%d with one, sklearn differs on %d)\n",
               path, k, icl_metric_name((icl_metric)metric), st.overall, same_rule, N, same_sk, free_pts,
               tie_pts, tie_diff_sk);
        CHECK(same_rule == N);
        CHECK(same_sk == free_pts);
        if (tie_pts == 0) CHECK_NEAR(st.overall, (double)correct / N, 1e-12); /* = sklearn's TD */
        /* per-class TD recomputed from the predictions */
        for (int cl = 0; cl < K; cl++) {
            int tot = 0, hit = 0;
            for (int i = 0; i < N; i++)
                if (lab[i] == cl) { tot++; hit += pred[i] == cl; }
            CHECK_NEAR(per[cl], (double)hit / tot, 1e-12);
        }
    }
    CHECK(off == n);
    free(X); free(lab); free(pred); free(buf);
}

/* ---- random data against the reference --------------------------------------------------------- */
static void fill(float *X, int N, int d, double offset, double scale, uint64_t seed) {
    icl_rng r; icl_rng_seed(&r, seed);
    for (int i = 0; i < N * d; i++) X[i] = (float)(offset + scale * icl_rng_normal(&r));
}

static void check_against_ref(const float *X, int N, int d, int k, icl_metric m, const char *what) {
    int *idx = malloc(sizeof(int) * N * k), *ridx = malloc(sizeof(int) * N * k);
    double *dist = malloc(sizeof(double) * N * k), *rdist = malloc(sizeof(double) * N * k);
    icl_err err;
    int r = icl_knn(X, N, d, k, m, idx, dist, &err);
    CHECK_MSG(r == 0, "%s: %s", what, err.msg);
    ref_knn(X, N, d, k, m, ridx, rdist);
    /* A slot must hold the reference's neighbour, or (when distances tie in exact arithmetic but
     * differ by double rounding, e.g. equal angles between rows of different norms) one whose
     * reference distance equals the reference's to 1e-13 relative. */
    int same = 0, tied = 0; double maxrel = 0;
    for (int i = 0; i < N * k; i++) {
        double rel = fabs(dist[i] - rdist[i]) / (fabs(rdist[i]) + 1e-300);
        if (rdist[i] != 0 && rel > maxrel) maxrel = rel;
        if (idx[i] == ridx[i]) { same++; continue; }
        double dm = ref_dist(X, d, m, i / k, idx[i]);
        if (fabs(dm - rdist[i]) <= 1e-13 * fabs(rdist[i])) tied++;
    }
    printf("%s: %d/%d neighbour slots equal to the reference, %d more at a rounding-level tie, "
           "max rel distance diff %.2e\n", what, same, N * k, tied, maxrel);
    CHECK_MSG(same + tied == N * k, "%s", what);
    CHECK_MSG(maxrel < 1e-9, "%s: %g", what, maxrel);
    free(idx); free(ridx); free(dist); free(rdist);
}

static void test_random(void) {
    int N = 300, d = 40;
    float *X = malloc(sizeof(float) * N * d);
    fill(X, N, d, 0.0, 1.0, 1);
    check_against_ref(X, N, d, 10, ICL_METRIC_EUCLIDEAN, "gaussian euclidean");
    check_against_ref(X, N, d, 10, ICL_METRIC_COSINE, "gaussian cosine");
    /* a huge common offset with tiny spread: distances are 1e-8 of the norms */
    fill(X, N, d, 1.0e4, 1e-3, 2);
    check_against_ref(X, N, d, 7, ICL_METRIC_EUCLIDEAN, "offset 1e4, spread 1e-3, euclidean");
    /* cosine with nearly parallel vectors: angular gaps near float32 resolution force recomputation */
    fill(X, N, d, 100.0, 1e-2, 3);
    check_against_ref(X, N, d, 7, ICL_METRIC_COSINE, "nearly parallel, cosine");
    /* quantised values: lots of exact distance ties resolved by the lower index; duplicate rows */
    icl_rng r; icl_rng_seed(&r, 4);
    for (int i = 0; i < N * d; i++) X[i] = (float)((int)icl_rng_below(&r, 3) - 1) * 0.1f;
    for (int t = 0; t < 30; t++) {
        int a = (int)icl_rng_below(&r, N), b = (int)icl_rng_below(&r, N);
        memcpy(X + b * d, X + a * d, sizeof(float) * d);
    }
    memset(X + 5 * d, 0, sizeof(float) * d); /* a zero row: cosine distance 1 to all */
    check_against_ref(X, N, d, 10, ICL_METRIC_EUCLIDEAN, "ternary with duplicates, euclidean");
    check_against_ref(X, N, d, 10, ICL_METRIC_COSINE, "ternary with duplicates and a zero row, cosine");
    /* every point identical: all distances 0, neighbours are the lowest other indices */
    for (int i = 0; i < N * d; i++) X[i] = 1.5f;
    int idx[3 * 300];
    icl_err err;
    CHECK(icl_knn(X, N, d, 3, ICL_METRIC_EUCLIDEAN, idx, NULL, &err) == 0);
    CHECK(idx[0] == 1 && idx[1] == 2 && idx[2] == 3);
    CHECK(idx[3 * 7 + 0] == 0 && idx[3 * 7 + 1] == 1 && idx[3 * 7 + 2] == 2);
    free(X);
}

/* More than 4096 points: the Gram matrix is computed in row blocks (sgemm) instead of one ssyrk.
 * Rows from the first, a middle and the last block are checked against the reference. */
static void test_block_path(void) {
    int N = 4500, d = 3, k = 6;
    float *X = malloc(sizeof(float) * N * d);
    int *idx = malloc(sizeof(int) * N * k);
    double *dist = malloc(sizeof(double) * N * k);
    rc *c = malloc(sizeof(rc) * N);
    fill(X, N, d, 5.0, 1.0, 21);
    for (int i = 0; i < N * d; i++) X[i] = roundf(X[i] * 8) / 8; /* coarse grid: exact ties too */
    icl_err err;
    CHECK(icl_knn(X, N, d, k, ICL_METRIC_EUCLIDEAN, idx, dist, &err) == 0);
    int rows[6] = {0, 1, 2100, 2200, 4498, 4499}, bad = 0;
    for (int r = 0; r < 6; r++) {
        int i = rows[r], n = 0;
        for (int j = 0; j < N; j++)
            if (j != i) { c[n].D = ref_dist(X, d, ICL_METRIC_EUCLIDEAN, i, j); c[n].j = j; n++; }
        qsort(c, n, sizeof(rc), rc_cmp);
        for (int t = 0; t < k; t++) bad += idx[i * k + t] != c[t].j || dist[i * k + t] != c[t].D;
    }
    printf("block path (N=%d): %d mismatches in 6 checked rows\n", N, bad);
    CHECK(bad == 0);
    free(X); free(idx); free(dist); free(c);
}

/* ---- vote rule, stats, layers, threads -------------------------------------------------------- */
static void test_vote_and_stats(void) {
    icl_err err;
    /* votes: 2x label 2, 2x label 1, 1x label 0 -> tie between 1 and 2 -> smallest = 1 */
    int labels[6] = {0, 1, 1, 2, 2, 0};
    /* row 0: 2x label 2, 2x label 1, 1x label 0 -> tie between 1 and 2 -> 1; row 1: 2x label 2,
     * 2x label 0 -> 0, whatever the order of the voters; other rows arbitrary */
    int idx[6 * 4] = {3, 1, 4, 2, /**/ 4, 3, 5, 0, /**/ 0, 1, 2, 3, /**/ 0, 1, 2, 3, /**/ 0, 1, 2, 3,
                      /**/ 5, 4, 3, 2};
    int pred[6];
    CHECK(icl_knn_vote(idx, labels, 6, 4, 3, pred, &err) == 0);
    CHECK(pred[0] == 1 && pred[1] == 0 && pred[5] == 2);
    int five[6 * 5];
    for (int i = 0; i < 6; i++) {
        int t = 0;
        for (int j = 0; j < 6; j++)
            if (j != i) five[i * 5 + t++] = j;
    }
    CHECK(icl_knn_vote(five, labels, 6, 5, 3, pred, &err) == 0);
    CHECK(pred[0] == 1 && pred[1] == 0 && pred[3] == 0); /* (1,2,2,0)... ties -> smallest */
    idx[5] = 9;
    CHECK(icl_knn_vote(idx, labels, 6, 4, 3, pred, &err) == -1);

    /* two tight 1-D clusters plus an absent class: TD 1, per-class NaN for the absent one */
    float X[8] = {0, 0.1f, 0.2f, 0.3f, 10, 10.1f, 10.2f, 10.3f};
    int lab[8] = {0, 0, 0, 0, 2, 2, 2, 2};
    double per[3]; icl_td_stats st; int p8[8];
    CHECK(icl_td(X, lab, 8, 1, 3, 3, ICL_METRIC_EUCLIDEAN, p8, per, &st, &err) == 0);
    CHECK_NEAR(st.overall, 1.0, 0);
    CHECK(per[0] == 1.0 && isnan(per[1]) && per[2] == 1.0);
    CHECK(st.n_present == 2);
    CHECK_NEAR(st.chance_uniform, 0.5, 0);
    CHECK_NEAR(st.chance_majority, 0.5, 0);
    /* 3 of class 0, 1 of class 1 with k=3: class 1's point sees only class 0 -> per-class 0 */
    int lab2[8] = {0, 0, 0, 1, 2, 2, 2, 2};
    CHECK(icl_td(X, lab2, 8, 1, 3, 3, ICL_METRIC_EUCLIDEAN, p8, per, &st, &err) == 0);
    CHECK(per[1] == 0.0 && p8[3] == 0);
    CHECK_NEAR(st.overall, 7.0 / 8, 1e-15);
    CHECK_NEAR(st.chance_uniform, 1.0 / 3, 1e-15);
    CHECK_NEAR(st.chance_majority, 0.5, 0);
}

static void test_layers_and_threads(void) {
    int L = 3, N = 200, d = 24, K = 4, k = 10;
    float *X = malloc(sizeof(float) * L * N * d);
    int *lab = malloc(sizeof(int) * N), *pl = malloc(sizeof(int) * L * N), *p1 = malloc(sizeof(int) * N);
    icl_rng r; icl_rng_seed(&r, 9);
    for (int i = 0; i < N; i++) lab[i] = i % K;
    for (int l = 0; l < L; l++)
        for (int i = 0; i < N; i++)
            for (int t = 0; t < d; t++)
                X[((size_t)l * N + i) * d + t] = (float)(icl_rng_normal(&r) + (t == lab[i] ? 0.8 * l : 0));
    double ov[3], per[3 * 4], per1[4];
    icl_err err; icl_td_stats st;
    CHECK(icl_td_layers(X, L, lab, N, d, K, k, ICL_METRIC_EUCLIDEAN, ov, per, pl, &st, &err) == 0);
    for (int l = 0; l < L; l++) {
        icl_td_stats s1;
        CHECK(icl_td(X + (size_t)l * N * d, lab, N, d, K, k, ICL_METRIC_EUCLIDEAN, p1, per1, &s1, &err) == 0);
        CHECK(memcmp(p1, pl + l * N, sizeof(int) * N) == 0);
        CHECK(s1.overall == ov[l]);
        for (int c = 0; c < K; c++) CHECK(per1[c] == per[l * K + c]);
    }
    printf("layers: TD %.3f %.3f %.3f (chance %.3f)\n", ov[0], ov[1], ov[2], st.chance_uniform);
    CHECK(ov[2] > ov[0] + 0.3); /* the signal grows with the layer */
    /* thread count does not change anything */
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    int *q = malloc(sizeof(int) * N * k), *q2 = malloc(sizeof(int) * N * k);
    double *dd = malloc(sizeof(double) * N * k), *dd2 = malloc(sizeof(double) * N * k);
    CHECK(icl_knn(X, N, d, k, ICL_METRIC_COSINE, q, dd, &err) == 0);
    omp_set_num_threads(nt > 1 ? nt : 2);
    CHECK(icl_knn(X, N, d, k, ICL_METRIC_COSINE, q2, dd2, &err) == 0);
    omp_set_num_threads(nt);
    CHECK(memcmp(q, q2, sizeof(int) * N * k) == 0);
    CHECK(memcmp(dd, dd2, sizeof(double) * N * k) == 0);
    free(q); free(q2); free(dd); free(dd2);
    free(X); free(lab); free(pl); free(p1);
}

/* ---- bad input ------------------------------------------------------------------------------- */
static void test_errors(void) {
    float X[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    int lab[6] = {0, 1, 0, 1, 0, 1};
    int pred[6], idx[30];
    icl_err err;
    err.msg[0] = 0;
    CHECK(icl_td(X, lab, 6, 2, 2, 6, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "k+1") != NULL);
    printf("error: %s\n", err.msg);
    CHECK(icl_td(X, lab, 6, 0, 2, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "dimension") != NULL);
    CHECK(icl_td(X, lab, 6, 2, 2, 0, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(icl_td(X, lab, 6, 2, 1, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "need at least two classes") != NULL);
    int one[6] = {1, 1, 1, 1, 1, 1};
    CHECK(icl_td(X, one, 6, 2, 3, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "need at least two classes") != NULL);
    printf("error: %s\n", err.msg);
    int out[6] = {0, 1, 2, 1, 0, 1};
    CHECK(icl_td(X, out, 6, 2, 2, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "out of range") != NULL);
    int neg[6] = {0, 1, -1, 1, 0, 1};
    CHECK(icl_td(X, neg, 6, 2, 2, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    float Xn[12];
    memcpy(Xn, X, sizeof Xn);
    Xn[7] = NAN;
    CHECK(icl_td(Xn, lab, 6, 2, 2, 2, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "X[3][1]") != NULL);
    printf("error: %s\n", err.msg);
    Xn[7] = INFINITY;
    CHECK(icl_td(Xn, lab, 6, 2, 2, 2, ICL_METRIC_COSINE, pred, NULL, NULL, &err) == -1);
    CHECK(icl_knn(Xn, 6, 2, 2, ICL_METRIC_COSINE, idx, NULL, &err) == -1);
    CHECK(icl_knn(X, 1, 2, 1, ICL_METRIC_EUCLIDEAN, idx, NULL, &err) == -1);
    CHECK(icl_knn(X, 6, 2, 1, (icl_metric)7, idx, NULL, &err) == -1);
    CHECK(icl_td_layers(X, 0, lab, 6, 2, 2, 2, ICL_METRIC_EUCLIDEAN, NULL, NULL, NULL, NULL, &err) == -1);
    /* the layer is named */
    float X2[24];
    memcpy(X2, X, sizeof X); memcpy(X2 + 12, X, sizeof X);
    X2[12 + 3] = NAN;
    CHECK(icl_td_layers(X2, 2, lab, 6, 2, 2, 2, ICL_METRIC_EUCLIDEAN, NULL, NULL, NULL, NULL, &err) == -1);
    CHECK(strstr(err.msg, "layer 1") != NULL);
    printf("error: %s\n", err.msg);
    icl_metric m;
    CHECK(icl_metric_parse("cosine", &m, &err) == 0 && m == ICL_METRIC_COSINE);
    CHECK(icl_metric_parse("manhattan", &m, &err) == -1);
    /* k = N-1 is the largest allowed: every other point votes */
    CHECK(icl_td(X, lab, 6, 2, 2, 5, ICL_METRIC_EUCLIDEAN, pred, NULL, NULL, &err) == 0);
}

int main(void) {
    check_fixture("tests/fixtures/analysis_td_int.bin");
    check_fixture("tests/fixtures/analysis_td_float.bin");
    test_random();
    test_block_path();
    test_vote_and_stats();
    test_layers_and_threads();
    test_errors();
    return icl_test_finish();
}
