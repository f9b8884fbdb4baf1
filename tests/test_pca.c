/* Tests for PCA: scikit-learn fixtures (variances to 1e-5 relative, components and projections up to
 * sign to 1e-4), the sign convention, orthonormality, transform = fit projection, bad input. */
#include "iclab/icl_file.h"
#include "iclab/icl_pca.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_fixture(const char *path) {
    char *buf; size_t n; icl_err err;
    int rc = icl_read_file(path, &buf, &n, &err);
    CHECK_MSG(rc == 0, "reading %s: %s", path, err.msg);
    if (rc) return;
    int32_t hdr[3];
    CHECK(n > 20 && memcmp(buf, "ICLPCA1\0", 8) == 0);
    memcpy(hdr, buf + 8, 12);
    int N = hdr[0], d = hdr[1], m = hdr[2];
    size_t off = 20;
    float *X = malloc(sizeof(float) * N * d);
    double *ev = malloc(sizeof(double) * m), *ratio = malloc(sizeof(double) * m);
    double *comp = malloc(sizeof(double) * m * d), *Z = malloc(sizeof(double) * N * m);
    memcpy(X, buf + off, sizeof(float) * N * d); off += sizeof(float) * N * d;
    memcpy(ev, buf + off, sizeof(double) * m); off += sizeof(double) * m;
    memcpy(ratio, buf + off, sizeof(double) * m); off += sizeof(double) * m;
    memcpy(comp, buf + off, sizeof(double) * m * d); off += sizeof(double) * m * d;
    memcpy(Z, buf + off, sizeof(double) * N * m); off += sizeof(double) * N * m;
    CHECK(off == n);

    icl_pca p;
    double *proj = malloc(sizeof(double) * N * m), *proj2 = malloc(sizeof(double) * N * m);
    rc = icl_pca_fit(X, N, d, m, &p, proj, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (rc) return;
    double max_ev = 0, max_ratio = 0, max_comp = 0, max_proj = 0;
    for (int c = 0; c < m; c++) {
        max_ev = fmax(max_ev, fabs(p.explained_variance[c] - ev[c]) / ev[c]);
        max_ratio = fmax(max_ratio, fabs(p.explained_variance_ratio[c] - ratio[c]) / ratio[c]);
        /* sign: align with sklearn's */
        double dot = 0;
        for (int t = 0; t < d; t++) dot += p.components[c * d + t] * comp[c * d + t];
        double s = dot < 0 ? -1 : 1;
        CHECK_NEAR(fabs(dot), 1.0, 1e-8);
        for (int t = 0; t < d; t++) max_comp = fmax(max_comp, fabs(s * p.components[c * d + t] - comp[c * d + t]));
        double zs = 0;
        for (int i = 0; i < N; i++) zs = fmax(zs, fabs(Z[i * m + c]));
        for (int i = 0; i < N; i++) max_proj = fmax(max_proj, fabs(s * proj[i * m + c] - Z[i * m + c]) / zs);
        /* our sign convention: the largest-|.| loading is positive */
        int big = 0;
        for (int t = 1; t < d; t++)
            if (fabs(p.components[c * d + t]) > fabs(p.components[c * d + big])) big = t;
        CHECK(p.components[c * d + big] > 0);
        /* orthonormal */
        for (int c2 = 0; c2 <= c; c2++) {
            double dd = 0;
            for (int t = 0; t < d; t++) dd += p.components[c * d + t] * p.components[c2 * d + t];
            CHECK_NEAR(dd, c == c2 ? 1.0 : 0.0, 1e-10);
        }
    }
    printf("%s (N=%d d=%d m=%d): max rel diff explained variance %.2e, ratio %.2e; max abs diff "
           "components (up to sign) %.2e, projections (rel to range) %.2e\n",
           path, N, d, m, max_ev, max_ratio, max_comp, max_proj);
    CHECK(max_ev < 1e-5);
    CHECK(max_ratio < 1e-5);
    CHECK(max_comp < 1e-4);
    CHECK(max_proj < 1e-4);
    /* transform of the fitted points = the fit's projection */
    CHECK(icl_pca_transform(&p, X, N, d, proj2, &err) == 0);
    double mt = 0;
    for (int i = 0; i < N * m; i++) mt = fmax(mt, fabs(proj[i] - proj2[i]));
    CHECK(mt < 1e-9);
    CHECK(icl_pca_transform(&p, X, N, d + 1, proj2, &err) == -1);
    icl_pca_free(&p);
    free(X); free(ev); free(ratio); free(comp); free(Z); free(proj); free(proj2); free(buf);
}

static void test_errors_and_edges(void) {
    icl_err err; icl_pca p;
    float X[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13};
    CHECK(icl_pca_fit(X, 1, 12, 1, &p, NULL, &err) == -1);
    CHECK(icl_pca_fit(X, 4, 3, 4, &p, NULL, &err) == -1); /* m > min(N, d) */
    printf("error: %s\n", err.msg);
    CHECK(icl_pca_fit(X, 4, 3, 0, &p, NULL, &err) == -1);
    CHECK(icl_pca_fit(X, 4, 0, 1, &p, NULL, &err) == -1);
    X[5] = NAN;
    CHECK(icl_pca_fit(X, 4, 3, 1, &p, NULL, &err) == -1);
    CHECK(strstr(err.msg, "X[1][2]") != NULL);
    printf("error: %s\n", err.msg);
    X[5] = 6;
    /* points on a line: one component carries all variance; m = min(N, d) works */
    float L[10] = {0, 0, 1, 2, 2, 4, 3, 6, 4, 8};
    CHECK(icl_pca_fit(L, 5, 2, 2, &p, NULL, &err) == 0);
    CHECK_NEAR(p.explained_variance_ratio[0], 1.0, 1e-12);
    CHECK_NEAR(p.explained_variance[1], 0.0, 1e-12);
    CHECK_NEAR(p.components[0], 1 / sqrt(5.0), 1e-12);
    CHECK_NEAR(p.components[1], 2 / sqrt(5.0), 1e-12);
    CHECK_NEAR(p.explained_variance[0], 5.0 * 2.5, 1e-10); /* var of t*(1,2), t=0..4: 2.5 * 5 */
    icl_pca_free(&p);
    icl_pca_free(&p); /* double free safe on zeroed struct */
    /* variances come out in decreasing order on both paths */
    int N = 300, d = 40;
    float *A = malloc(sizeof(float) * N * d);
    icl_rng r; icl_rng_seed(&r, 3);
    for (int i = 0; i < N * d; i++) A[i] = (float)(icl_rng_normal(&r) * (1 + (i % d) * 0.1));
    icl_pca p1, p2;
    CHECK(icl_pca_fit(A, N, d, 5, &p1, NULL, &err) == 0); /* scatter (N > d) */
    /* the first 30 rows: N <= d, the Gram path */
    CHECK(icl_pca_fit(A, 30, d, 5, &p2, NULL, &err) == 0);
    CHECK(p1.explained_variance[0] >= p1.explained_variance[1] && p1.explained_variance[3] >= p1.explained_variance[4]);
    CHECK(p2.explained_variance[0] >= p2.explained_variance[1]);
    icl_pca_free(&p1); icl_pca_free(&p2);
    free(A);
}

int main(void) {
    check_fixture("tests/fixtures/analysis_pca_tall.bin");
    check_fixture("tests/fixtures/analysis_pca_wide.bin");
    test_errors_and_edges();
    return icl_test_finish();
}
