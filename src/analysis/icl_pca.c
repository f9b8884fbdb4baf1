/* PCA through the symmetric eigenproblem of the Gram or scatter matrix (LAPACK dsyevr), in
 * double; see icl_pca.h. */
#include "iclab/icl_pca.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LAPACK (in libopenblas): m largest eigenpairs of a symmetric matrix. Hidden Fortran string
 * lengths are passed at the end, as gfortran expects. */
void dsyevr_(const char *jobz, const char *range, const char *uplo, const int *n, double *a, const int *lda,
             const double *vl, const double *vu, const int *il, const int *iu, const double *abstol, int *m,
             double *w, double *z, const int *ldz, int *isuppz, double *work, const int *lwork, int *iwork,
             const int *liwork, int *info, size_t, size_t, size_t);

void icl_pca_free(icl_pca *pca) {
    if (!pca) return;
    free(pca->mean); free(pca->components); free(pca->explained_variance); free(pca->explained_variance_ratio);
    memset(pca, 0, sizeof *pca);
}

/* Top-m eigenpairs of the symmetric n x n matrix A (destroyed), largest first: vals (m),
 * vecs (m,n) row per eigenvector. */
static int top_eigen(double *A, int n, int m, double *vals, double *vecs, icl_err *err) {
    int il = n - m + 1, iu = n, found = 0, info = 0, lwork = -1, liwork = -1, iwq = 0;
    double vl = 0, vu = 0, abstol = 0, wq = 0;
    double *w = malloc(sizeof(double) * n), *z = malloc(sizeof(double) * (size_t)n * m);
    int *isuppz = malloc(sizeof(int) * 2 * (size_t)m);
    if (!w || !z || !isuppz) { free(w); free(z); free(isuppz); return icl_errf(err, "out of memory in PCA"); }
    dsyevr_("V", "I", "U", &n, A, &n, &vl, &vu, &il, &iu, &abstol, &found, w, z, &n, isuppz, &wq, &lwork, &iwq,
            &liwork, &info, 1, 1, 1);
    lwork = (int)wq;
    liwork = iwq;
    double *work = malloc(sizeof(double) * (size_t)(lwork > 1 ? lwork : 1));
    int *iwork = malloc(sizeof(int) * (size_t)(liwork > 1 ? liwork : 1));
    if (!work || !iwork) info = -1000;
    else
        dsyevr_("V", "I", "U", &n, A, &n, &vl, &vu, &il, &iu, &abstol, &found, w, z, &n, isuppz, work, &lwork,
                iwork, &liwork, &info, 1, 1, 1);
    int rc = 0;
    if (info == -1000) rc = icl_errf(err, "out of memory in PCA");
    else if (info != 0 || found != m) rc = icl_errf(err, "PCA eigen-solver failed (dsyevr info %d, %d of %d values)", info, found, m);
    else
        for (int c = 0; c < m; c++) { /* ascending from LAPACK -> descending */
            vals[c] = w[m - 1 - c];
            memcpy(vecs + (size_t)c * n, z + (size_t)(m - 1 - c) * n, sizeof(double) * n);
        }
    free(w); free(z); free(isuppz); free(work); free(iwork);
    return rc;
}

int icl_sym_eigen(double *A, int n, double *vals, double *vecs, icl_err *err) {
    if (!A || !vals || !vecs || n < 1) return icl_errf(err, "icl_sym_eigen: bad argument");
    return top_eigen(A, n, n, vals, vecs, err);
}

int icl_pca_fit(const float *X, int N, int d, int m, icl_pca *pca, double *proj, icl_err *err) {
    if (!X || !pca) return icl_errf(err, "icl_pca_fit: NULL argument");
    memset(pca, 0, sizeof *pca);
    if (N < 2) return icl_errf(err, "PCA needs at least 2 points, got %d", N);
    if (d < 1) return icl_errf(err, "PCA needs at least 1 dimension, got %d", d);
    int mn = N < d ? N : d;
    if (m < 1 || m > mn) return icl_errf(err, "PCA: %d components requested, need 1..min(N, d) = %d", m, mn);
    for (size_t i = 0; i < (size_t)N * d; i++)
        if (!isfinite(X[i]))
            return icl_errf(err, "X[%zu][%zu] is not finite (NaN or Inf)", i / (size_t)d, i % (size_t)d);
    int n = mn; /* size of the eigenproblem */
    double *Xc = malloc(sizeof(double) * (size_t)N * d), *A = malloc(sizeof(double) * (size_t)n * n);
    double *vals = malloc(sizeof(double) * m), *vecs = malloc(sizeof(double) * (size_t)m * n);
    pca->mean = calloc((size_t)d, sizeof(double));
    pca->components = malloc(sizeof(double) * (size_t)m * d);
    pca->explained_variance = malloc(sizeof(double) * m);
    pca->explained_variance_ratio = malloc(sizeof(double) * m);
    int rc = -1;
    if (!Xc || !A || !vals || !vecs || !pca->mean || !pca->components || !pca->explained_variance ||
        !pca->explained_variance_ratio) {
        icl_errf(err, "out of memory for PCA of %d x %d", N, d);
        goto done;
    }
    pca->d = d; pca->m = m;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < d; t++) pca->mean[t] += X[(size_t)i * d + t];
    for (int t = 0; t < d; t++) pca->mean[t] /= N;
    double ss = 0;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < d; t++) {
            double v = X[(size_t)i * d + t] - pca->mean[t];
            Xc[(size_t)i * d + t] = v;
            ss += v * v;
        }
    pca->total_variance = ss / (N - 1);
    if (N <= d) /* Gram: A = Xc Xc^T (N,N) */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, N, d, 1.0, Xc, d, 0.0, A, N);
    else /* scatter: A = Xc^T Xc (d,d) */
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, d, N, 1.0, Xc, d, 0.0, A, d);
    /* row-major upper == column-major lower: tell LAPACK "U" after mirroring to be safe */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < i; j++) A[(size_t)i * n + j] = A[(size_t)j * n + i];
    if (top_eigen(A, n, m, vals, vecs, err)) goto done;
    for (int c = 0; c < m; c++) {
        double lam = vals[c] > 0 ? vals[c] : 0;
        double *v = pca->components + (size_t)c * d;
        if (N <= d) {
            /* v = Xc^T u / |Xc^T u| (normalising explicitly rather than by sqrt(lambda) keeps it
             * a unit vector even for a tiny lambda) */
            cblas_dgemv(CblasRowMajor, CblasTrans, N, d, 1.0, Xc, d, vecs + (size_t)c * n, 1, 0.0, v, 1);
            double nv = cblas_dnrm2(d, v, 1);
            if (nv > 0)
                for (int t = 0; t < d; t++) v[t] /= nv;
        } else {
            memcpy(v, vecs + (size_t)c * n, sizeof(double) * d);
        }
        int big = 0;
        for (int t = 1; t < d; t++)
            if (fabs(v[t]) > fabs(v[big])) big = t;
        if (v[big] < 0)
            for (int t = 0; t < d; t++) v[t] = -v[t];
        pca->explained_variance[c] = lam / (N - 1);
        pca->explained_variance_ratio[c] = pca->total_variance > 0 ? pca->explained_variance[c] / pca->total_variance : 0;
    }
    if (proj) cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, m, d, 1.0, Xc, d, pca->components, d, 0.0, proj, m);
    rc = 0;
done:
    free(Xc); free(A); free(vals); free(vecs);
    if (rc) icl_pca_free(pca);
    return rc;
}

int icl_pca_transform(const icl_pca *pca, const float *X, int N, int d, double *proj, icl_err *err) {
    if (!pca || !X || !proj || !pca->components) return icl_errf(err, "icl_pca_transform: NULL argument");
    if (d != pca->d) return icl_errf(err, "PCA was fitted on %d dimensions, got %d", pca->d, d);
    if (N < 1) return icl_errf(err, "PCA transform: no points");
    int m = pca->m;
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < m; c++) {
            const double *v = pca->components + (size_t)c * d;
            double s = 0;
            for (int t = 0; t < d; t++) s += ((double)X[(size_t)i * d + t] - pca->mean[t]) * v[t];
            if (!isfinite(s)) return icl_errf(err, "point %d is not finite (NaN or Inf)", i);
            proj[(size_t)i * m + c] = s;
        }
    }
    return 0;
}
