/* Principal component analysis of a plain float matrix X (N points, d dims, row-major (N,d)):
 * centred, top-m components, explained variance (divided by N-1, as scikit-learn's PCA) and
 * its ratio to the total variance, projected coordinates.
 *
 * Method: everything in double. The centred data Xc is formed once; if N <= d the N x N Gram
 * Xc Xc^T is decomposed, else the d x d scatter Xc^T Xc, with LAPACK dsyevr (OpenBLAS) computing
 * only the m largest eigenpairs; components from the Gram are Xc^T u / sqrt(lambda).
 * Squaring the data costs accuracy only for components whose variance is below ~1e-10 of the
 * largest one; the tests match sklearn (SVD) to 1e-5 relative on the variances.
 *
 * Sign convention: each component is flipped so that its largest-|.| loading is positive (the
 * first such index on an exact tie). sklearn instead makes the largest-|.| entry of each column of
 * U positive (svd_flip), i.e. it fixes the sign by the scores, so the two agree only up to sign.
 *
 * With a BLAS using several threads the last bits may depend on the thread count. */
#ifndef ICL_PCA_H
#define ICL_PCA_H
#include "iclab/icl_err.h"

typedef struct icl_pca {
    int d, m;
    double *mean;                     /* (d) column means of the fitted data */
    double *components;               /* (m,d) unit loading vectors, by decreasing variance */
    double *explained_variance;       /* (m) variance along each component (sum of squares / (N-1)) */
    double *explained_variance_ratio; /* (m) explained_variance / total_variance */
    double total_variance;            /* sum of the per-column variances (/(N-1)) */
} icl_pca;

/* Fits the top m components (1 <= m <= min(N, d); N >= 2; X finite). proj (N,m), may be NULL,
 * receives the coordinates of the fitted points. On success the caller owns pca's arrays and frees
 * them with icl_pca_free; on failure nothing needs freeing. Returns 0, or -1 with err set. */
int icl_pca_fit(const float *X, int N, int d, int m, icl_pca *pca, double *proj, icl_err *err);

/* Projects N new points X (N,d) (d must equal the fitted d): proj (N,m) = (X - mean) components^T. */
int icl_pca_transform(const icl_pca *pca, const float *X, int N, int d, double *proj, icl_err *err);

/* All eigenpairs of the symmetric n x n matrix A (row-major; destroyed), largest first: vals (n),
 * vecs (n,n) one eigenvector per row. LAPACK dsyevr, as the PCA. Returns 0, or -1 with err set. */
int icl_sym_eigen(double *A, int n, double *vals, double *vecs, icl_err *err);

/* Frees the arrays of a fitted pca (safe on a zeroed struct). */
void icl_pca_free(icl_pca *pca);

#endif
