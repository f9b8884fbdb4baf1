/* Tests for UMAP. umap-learn is not available, so: a, b against scipy's curve_fit (as umap-learn
 * computes them), the smooth-kNN equations, and properties of embeddings of data with known
 * clusters (neighbourhood label purity, trustworthiness - the test's own implementation, checked
 * first against sklearn.manifold.trustworthiness on a fixture), determinism across runs and thread
 * counts, seed sensitivity, bad input. */
#include "iclab/icl_file.h"
#include "iclab/icl_knn.h"
#include "iclab/icl_rng.h"
#include "iclab/icl_umap.h"
#include "icl_test.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- scores ---------------------------------------------------------------------------------- */
typedef struct dj { double d; int j; } dj;
static int dj_cmp(const void *a, const void *b) {
    const dj *x = a, *y = b;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    return x->j - y->j;
}

/* Sorted (distance, index) of all other points from point i; A (N,dim) float. */
static void ranked(const float *A, int N, int dim, int i, dj *out) {
    int n = 0;
    for (int j = 0; j < N; j++) {
        if (j == i) continue;
        double s = 0;
        for (int c = 0; c < dim; c++) {
            double v = (double)A[i * dim + c] - A[j * dim + c];
            s += v * v;
        }
        out[n].d = s; out[n].j = j; n++;
    }
    qsort(out, n, sizeof(dj), dj_cmp);
}

/* sklearn.manifold.trustworthiness: 1 - 2/(n k (2n - 3k - 1)) sum_i sum_{j in kNN_emb(i)} max(0, r(i,j) - k),
 * r(i,j) the rank of j among i's neighbours in the original space (1 = nearest). */
static double trustworthiness(const float *X, int dX, const float *Y, int dY, int N, int k) {
    dj *a = malloc(sizeof(dj) * N), *b = malloc(sizeof(dj) * N);
    int *rank = malloc(sizeof(int) * N);
    double t = 0;
    for (int i = 0; i < N; i++) {
        ranked(X, N, dX, i, a);
        for (int r = 0; r < N - 1; r++) rank[a[r].j] = r + 1;
        ranked(Y, N, dY, i, b);
        for (int r = 0; r < k; r++)
            if (rank[b[r].j] > k) t += rank[b[r].j] - k;
    }
    free(a); free(b); free(rank);
    return 1.0 - t * (2.0 / ((double)N * k * (2.0 * N - 3.0 * k - 1.0)));
}

/* Mean fraction of each point's k nearest embedded neighbours that share its label. */
static double label_purity(const float *Y, int dY, const int *lab, int N, int k) {
    dj *b = malloc(sizeof(dj) * N);
    double s = 0;
    for (int i = 0; i < N; i++) {
        ranked(Y, N, dY, i, b);
        int same = 0;
        for (int r = 0; r < k; r++) same += lab[b[r].j] == lab[i];
        s += (double)same / k;
    }
    free(b);
    return s / N;
}

/* ---- fixtures --------------------------------------------------------------------------------- */
static void test_ab(void) {
    char *buf; size_t n; icl_err err;
    int rc = icl_read_file("tests/fixtures/analysis_umap_ab.txt", &buf, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    char *p = buf;
    int lines = 0;
    double sp, md, ra, rb;
    int used;
    while (sscanf(p, "%lf %lf %lf %lf%n", &sp, &md, &ra, &rb, &used) == 4) {
        p += used;
        double a, b;
        CHECK(icl_umap_find_ab(sp, md, &a, &b, &err) == 0);
        printf("a, b for spread %g min_dist %g: %.6f %.6f (scipy %.6f %.6f)\n", sp, md, a, b, ra, rb);
        CHECK(fabs(a - ra) <= 1e-5 * ra && fabs(b - rb) <= 1e-5 * rb);
        lines++;
    }
    CHECK(lines == 6);
    free(buf);
    double a, b;
    CHECK(icl_umap_find_ab(1.0, 3.0, &a, &b, &err) == -1);
    CHECK(icl_umap_find_ab(0.0, 0.1, &a, &b, &err) == -1);
    CHECK(icl_umap_find_ab(1.0, -0.1, &a, &b, &err) == -1);
}

static void test_trust_reference(void) {
    char *buf; size_t n; icl_err err;
    int rc = icl_read_file("tests/fixtures/analysis_umap_trust.bin", &buf, &n, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(memcmp(buf, "ICLTW1\0\0", 8) == 0);
    int32_t h[3];
    memcpy(h, buf + 8, 12);
    int N = h[0], dX = h[1], dY = h[2];
    size_t off = 20;
    float *X = malloc(sizeof(float) * N * dX), *Y1 = malloc(sizeof(float) * N * dY), *Y2 = malloc(sizeof(float) * N * dY);
    double ref[4];
    memcpy(X, buf + off, sizeof(float) * N * dX); off += sizeof(float) * N * dX;
    memcpy(Y1, buf + off, sizeof(float) * N * dY); off += sizeof(float) * N * dY;
    memcpy(Y2, buf + off, sizeof(float) * N * dY); off += sizeof(float) * N * dY;
    memcpy(ref, buf + off, sizeof ref); off += sizeof ref;
    CHECK(off == n);
    double t[4] = {trustworthiness(X, dX, Y1, dY, N, 5), trustworthiness(X, dX, Y1, dY, N, 15),
                   trustworthiness(X, dX, Y2, dY, N, 5), trustworthiness(X, dX, Y2, dY, N, 15)};
    for (int i = 0; i < 4; i++) CHECK_NEAR(t[i], ref[i], 1e-12);
    printf("trustworthiness implementation = sklearn's: %.6f %.6f %.6f %.6f\n", t[0], t[1], t[2], t[3]);
    free(X); free(Y1); free(Y2); free(buf);
}

static void test_smooth_knn(void) {
    int N = 200, d = 8, k = 15;
    float *X = malloc(sizeof(float) * N * d);
    icl_rng r; icl_rng_seed(&r, 1);
    for (int i = 0; i < N * d; i++) X[i] = (float)icl_rng_normal(&r);
    memcpy(X + 7 * d, X + 3 * d, sizeof(float) * d); /* a duplicate: rho skips the zero distance */
    int *idx1 = malloc(sizeof(int) * N * (k - 1));
    double *d1 = malloc(sizeof(double) * N * (k - 1)), *dist = malloc(sizeof(double) * N * k);
    double *sigma = malloc(sizeof(double) * N), *rho = malloc(sizeof(double) * N);
    icl_err err;
    CHECK(icl_knn(X, N, d, k - 1, ICL_METRIC_EUCLIDEAN, idx1, d1, &err) == 0);
    for (int i = 0; i < N; i++) {
        dist[i * k] = 0;
        memcpy(dist + i * k + 1, d1 + i * (k - 1), sizeof(double) * (k - 1));
    }
    CHECK(icl_umap_smooth_knn(dist, N, k, sigma, rho, &err) == 0);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double s = 0;
        for (int j = 1; j < k; j++) {
            double dd = dist[i * k + j] - rho[i];
            s += dd > 0 ? exp(-dd / sigma[i]) : 1.0;
        }
        worst = fmax(worst, fabs(s - log2(k)));
        int first = 1;
        while (dist[i * k + first] == 0) first++;
        CHECK(rho[i] == dist[i * k + first]);
    }
    printf("smooth kNN: max |sum exp(-(d - rho)/sigma) - log2(k)| = %.2e\n", worst);
    CHECK(worst < 1e-4);
    CHECK(dist[7 * k + 1] == 0 && rho[7] > 0);
    dist[5] = NAN;
    CHECK(icl_umap_smooth_knn(dist, N, k, sigma, rho, &err) == -1);
    free(X); free(idx1); free(d1); free(dist); free(sigma); free(rho);
}

/* ---- embeddings ------------------------------------------------------------------------------- */
/* C Gaussian clusters of n points in d dims; centres at distance `sep` scale. */
static void clusters(float *X, int *lab, int C, int n, int d, double sep, uint64_t seed) {
    icl_rng r; icl_rng_seed(&r, seed);
    double *cent = malloc(sizeof(double) * C * d);
    for (int i = 0; i < C * d; i++) cent[i] = sep * icl_rng_normal(&r);
    for (int i = 0; i < C * n; i++) {
        lab[i] = i % C; /* interleaved, so indices carry no cluster information */
        for (int t = 0; t < d; t++) X[i * d + t] = (float)(cent[lab[i] * d + t] + icl_rng_normal(&r));
    }
    free(cent);
}

static void test_clusters(void) {
    int C = 4, n = 100, d = 50, N = C * n, k = 15;
    float *X = malloc(sizeof(float) * N * d), *E1 = malloc(sizeof(float) * N * 2), *E2 = malloc(sizeof(float) * N * 2);
    float *E3 = malloc(sizeof(float) * N * 2);
    int *lab = malloc(sizeof(int) * N);
    clusters(X, lab, C, n, d, 2.0, 7); /* centres ~20 apart, clusters ~10 wide: well separated */
    icl_umap_opts o;
    icl_umap_opts_default(&o);
    icl_err err;
    CHECK(icl_umap(X, N, d, &o, E1, &err) == 0);
    double pur = label_purity(E1, 2, lab, N, k), tw = trustworthiness(X, d, E1, 2, N, k);
    printf("4 separated clusters, 400 x 50: 15-NN label purity %.4f, trustworthiness(15) %.4f\n", pur, tw);
    CHECK(pur > 0.99);
    CHECK(tw > 0.90);
    /* same seed: identical bytes, also with one thread */
    CHECK(icl_umap(X, N, d, &o, E2, &err) == 0);
    CHECK(memcmp(E1, E2, sizeof(float) * N * 2) == 0);
    int nt = omp_get_max_threads();
    omp_set_num_threads(1);
    CHECK(icl_umap(X, N, d, &o, E2, &err) == 0);
    omp_set_num_threads(nt);
    CHECK(memcmp(E1, E2, sizeof(float) * N * 2) == 0);
    /* another seed: a different embedding of the same quality */
    o.seed = 43;
    CHECK(icl_umap(X, N, d, &o, E3, &err) == 0);
    CHECK(memcmp(E1, E3, sizeof(float) * N * 2) != 0);
    CHECK(label_purity(E3, 2, lab, N, k) > 0.99);
    /* random and PCA initialisations also separate them */
    o.seed = 42;
    o.init = ICL_UMAP_INIT_RANDOM;
    CHECK(icl_umap(X, N, d, &o, E3, &err) == 0);
    pur = label_purity(E3, 2, lab, N, k);
    printf("  random init: purity %.4f\n", pur);
    CHECK(pur > 0.95);
    o.init = ICL_UMAP_INIT_PCA;
    CHECK(icl_umap(X, N, d, &o, E3, &err) == 0);
    pur = label_purity(E3, 2, lab, N, k);
    printf("  PCA init: purity %.4f\n", pur);
    CHECK(pur > 0.99);
    /* cosine metric */
    o.init = ICL_UMAP_INIT_SPECTRAL;
    o.metric = ICL_METRIC_COSINE;
    CHECK(icl_umap(X, N, d, &o, E3, &err) == 0);
    pur = label_purity(E3, 2, lab, N, k);
    printf("  cosine: purity %.4f\n", pur);
    CHECK(pur > 0.99);
    free(X); free(E1); free(E2); free(E3); free(lab);
}

/* Clusters close enough that the k-NN graph is connected: exercises the single-component spectral
 * path. With n_epochs = 1 the SGD does nothing (umap-learn's first epoch samples no edge), so the
 * output is the initialisation itself, which should already separate the clusters. */
static void test_connected(void) {
    int C = 3, n = 80, d = 10, N = C * n, k = 15;
    float *X = malloc(sizeof(float) * N * d), *E = malloc(sizeof(float) * N * 2);
    int *lab = malloc(sizeof(int) * N);
    clusters(X, lab, C, n, d, 1.0, 11);
    icl_umap_opts o;
    icl_umap_opts_default(&o);
    o.n_epochs = 1;
    icl_err err;
    CHECK(icl_umap(X, N, d, &o, E, &err) == 0);
    double lo0 = 1e30, hi0 = -1e30;
    for (int i = 0; i < N; i++) { lo0 = fmin(lo0, E[2 * i]); hi0 = fmax(hi0, E[2 * i]); }
    double pur0 = label_purity(E, 2, lab, N, k);
    o.n_epochs = 0;
    CHECK(icl_umap(X, N, d, &o, E, &err) == 0);
    double pur = label_purity(E, 2, lab, N, k), tw = trustworthiness(X, d, E, 2, N, k);
    double pur_x = label_purity(X, d, lab, N, k); /* what the data themselves allow */
    printf("3 touching clusters, 240 x 10: 15-NN label purity in the data %.4f; spectral init alone %.4f "
           "(axis 0 in [%.3f, %.3f]); after SGD %.4f, trustworthiness(15) %.4f\n", pur_x, pur0, lo0, hi0, pur,
           tw);
    CHECK(lo0 >= 0 && hi0 <= 10.0001 && hi0 > 9.999); /* init mapped to [0, 10] */
    CHECK(pur0 > pur_x - 0.1);
    CHECK(pur > pur_x - 0.05);
    CHECK(tw > 0.85);
    free(X); free(E); free(lab);
}

static void test_errors(void) {
    float X[40];
    for (int i = 0; i < 40; i++) X[i] = (float)(i % 7);
    float E[80];
    icl_err err;
    icl_umap_opts o;
    icl_umap_opts_default(&o);
    CHECK(icl_umap(X, 3, 2, &o, E, &err) == -1);
    printf("error: %s\n", err.msg);
    CHECK(icl_umap(X, 10, 0, &o, E, &err) == -1);
    o.n_components = 9;
    CHECK(icl_umap(X, 10, 4, &o, E, &err) == -1);
    o.n_components = 2;
    o.min_dist = 5;
    CHECK(icl_umap(X, 10, 4, &o, E, &err) == -1);
    o.min_dist = 0.1;
    o.n_neighbors = 1;
    CHECK(icl_umap(X, 10, 4, &o, E, &err) == -1);
    o.n_neighbors = 15; /* more than N: reduced to N - 1 */
    CHECK(icl_umap(X, 10, 4, &o, E, &err) == 0);
    o.init = ICL_UMAP_INIT_PCA;
    CHECK(icl_umap(X, 20, 1, &o, E, &err) == -1); /* 2 components from 1-D data */
    o.init = ICL_UMAP_INIT_SPECTRAL;
    X[13] = NAN;
    CHECK(icl_umap(X, 10, 4, &o, E, &err) == -1);
    printf("error: %s\n", err.msg);
    X[13] = 1;
    /* many identical points: no crash, finite output */
    float Z[4 * 30];
    for (int i = 0; i < 120; i++) Z[i] = i < 60 ? 1.0f : 2.0f;
    CHECK(icl_umap(Z, 30, 4, NULL, E, &err) == 0);
    int finite = 1;
    for (int i = 0; i < 60; i++) finite &= isfinite(E[i]);
    CHECK(finite);
}

int main(void) {
    test_ab();
    test_trust_reference();
    test_smooth_knn();
    test_clusters();
    test_connected();
    test_errors();
    return icl_test_finish();
}
