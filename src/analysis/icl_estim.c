/* Reference in-context estimators (oracle least squares, min-norm least squares, ridge, Lasso,
 * zero) for the synthetic regression tasks; see include/iclab/icl_estim.h for the definitions and
 * numerical choices. Small dense linear algebra is written here (one-sided Jacobi SVD and
 * coordinate descent) because the problems are tiny (k <= K points, p <= D features) and numpy /
 * sklearn are the references the tests compare against. */
#include "iclab/icl_estim.h"
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JACOBI_MAX_SWEEPS 100
#define JACOBI_TOL 1e-15 /* rotate a column pair while |a_i.a_j| > tol * |a_i| |a_j| */
#define LASSO_TOL 1e-10
#define LASSO_MAX_SWEEPS 100000

static const char *const est_names[ICL_N_ESTIMATORS] = {"oracle-ls", "ls", "ridge", "lasso", "zero"};

const char *icl_estimator_name(icl_estimator e) {
    if ((int)e < 0 || (int)e >= ICL_N_ESTIMATORS) return "unknown";
    return est_names[e];
}

int icl_estimator_parse(const char *name, icl_estimator *e, icl_err *err) {
    if (!name || !e) return icl_errf(err, "estimator: NULL name");
    for (int i = 0; i < ICL_N_ESTIMATORS; i++)
        if (strcmp(name, est_names[i]) == 0) {
            *e = (icl_estimator)i;
            return 0;
        }
    return icl_errf(err, "estimator: unknown name '%s' (oracle-ls, ls, ridge, lasso, zero)", name);
}

double icl_estimator_default_param(icl_estimator e) {
    if (e == ICL_EST_RIDGE) return ICL_RIDGE_LAMBDA_DEFAULT;
    if (e == ICL_EST_LASSO) return ICL_LASSO_ALPHA_DEFAULT;
    return 0.0;
}

static double dot(const double *a, const double *b, int n) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* One-sided (Hestenes) Jacobi: rotates the c columns of A (m x c, column-major) until they are
 * mutually orthogonal, accumulating the rotations in V (c x c, column-major, starts as I). Then
 * A = A0 V with orthogonal columns, i.e. A0 = (A / |A|) diag(|A|) V^T is a thin SVD. */
static void jacobi_orthogonalise(double *A, int m, int c, double *V) {
    for (int i = 0; i < c * c; i++) V[i] = 0.0;
    for (int i = 0; i < c; i++) V[i * c + i] = 1.0;
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        int rotated = 0;
        for (int i = 0; i < c - 1; i++) {
            for (int j = i + 1; j < c; j++) {
                double *ai = A + (size_t)i * m, *aj = A + (size_t)j * m;
                double alpha = dot(ai, ai, m), beta = dot(aj, aj, m), gamma = dot(ai, aj, m);
                if (gamma == 0.0 || fabs(gamma) <= JACOBI_TOL * sqrt(alpha * beta)) continue;
                /* Rotation that zeroes the off-diagonal of the 2x2 Gram [[alpha,gamma],[gamma,beta]];
                 * the smaller root of t^2 + 2 zeta t - 1 = 0 keeps the rotation angle <= pi/4. */
                double zeta = (beta - alpha) / (2.0 * gamma);
                double t = (zeta >= 0.0 ? 1.0 : -1.0) / (fabs(zeta) + sqrt(1.0 + zeta * zeta));
                double cs = 1.0 / sqrt(1.0 + t * t), sn = cs * t;
                for (int r = 0; r < m; r++) {
                    double u = ai[r], v = aj[r];
                    ai[r] = cs * u - sn * v;
                    aj[r] = sn * u + cs * v;
                }
                double *vi = V + (size_t)i * c, *vj = V + (size_t)j * c;
                for (int r = 0; r < c; r++) {
                    double u = vi[r], v = vj[r];
                    vi[r] = cs * u - sn * v;
                    vj[r] = sn * u + cs * v;
                }
                rotated = 1;
            }
        }
        if (!rotated) break;
    }
}

/* Workspace of one thread: sized for n <= K points and p <= D features. */
typedef struct {
    double *X;   /* (K,D) features of the fit, row-major, first n rows used */
    double *y;   /* (K) */
    double *A;   /* (K*D) Jacobi matrix */
    double *V;   /* (min(K,D)^2) Jacobi rotations */
    double *w;   /* (D) fitted weights */
    double *Xc;  /* (D,K) column-major full design for Lasso */
    double *r;   /* (K) Lasso residual */
    double *cn;  /* (D) Lasso column norms */
    int *cols;   /* (D) oracle feature coordinates */
} workspace;

static void ws_free(workspace *ws) {
    free(ws->X);
    free(ws->y);
    free(ws->A);
    free(ws->V);
    free(ws->w);
    free(ws->Xc);
    free(ws->r);
    free(ws->cn);
    free(ws->cols);
    memset(ws, 0, sizeof *ws);
}

static int ws_alloc(workspace *ws, int K, int D) {
    memset(ws, 0, sizeof *ws);
    size_t mn = (size_t)(K < D ? K : D); /* the Jacobi runs on min(n, p) <= min(K, D) columns */
    ws->X = malloc((size_t)K * D * sizeof(double));
    ws->y = malloc((size_t)K * sizeof(double));
    ws->A = malloc((size_t)K * D * sizeof(double));
    ws->V = malloc(mn * mn * sizeof(double));
    ws->w = malloc((size_t)D * sizeof(double));
    ws->Xc = malloc((size_t)K * D * sizeof(double));
    ws->r = malloc((size_t)K * sizeof(double));
    ws->cn = malloc((size_t)D * sizeof(double));
    ws->cols = malloc((size_t)D * sizeof(int));
    if (!ws->X || !ws->y || !ws->A || !ws->V || !ws->w || !ws->Xc || !ws->r || !ws->cn || !ws->cols) {
        ws_free(ws);
        return -1;
    }
    return 0;
}

/* Ridge / min-norm least squares on X (n x p, row-major), y (n): w = sum_i g_i (h_i . y) / (s_i^2 + lambda)
 * over the thin SVD X = sum_i s_i u_i v_i^T, with (g_i, h_i) = (v_i, s_i u_i) when the Jacobi runs on the
 * columns of X and (s_i v_i, u_i) when it runs on the columns of X^T. lambda == 0 drops the singular
 * values at or below max(n,p) * eps * s_max (min-norm least squares). */
static void ridge_fit(const double *X, const double *y, int n, int p, double lambda, workspace *ws, double *w) {
    for (int j = 0; j < p; j++) w[j] = 0.0;
    if (n < 1 || p < 1) return;
    double *A = ws->A, *V = ws->V;
    int on_cols = n >= p; /* orthogonalise the shorter side: fewer column pairs */
    int m = on_cols ? n : p, c = on_cols ? p : n;
    if (on_cols) {
        for (int i = 0; i < n; i++)
            for (int j = 0; j < p; j++) A[(size_t)j * n + i] = X[(size_t)i * p + j];
    } else {
        memcpy(A, X, (size_t)n * p * sizeof(double)); /* column i of X^T = row i of X */
    }
    jacobi_orthogonalise(A, m, c, V);
    double smax2 = 0.0;
    for (int i = 0; i < c; i++) {
        double s2 = dot(A + (size_t)i * m, A + (size_t)i * m, m);
        if (s2 > smax2) smax2 = s2;
    }
    if (smax2 == 0.0) return;
    double cut = (double)(n > p ? n : p) * DBL_EPSILON;
    double cut2 = cut * cut * smax2;
    for (int i = 0; i < c; i++) {
        const double *ai = A + (size_t)i * m, *vi = V + (size_t)i * c;
        double s2 = dot(ai, ai, m);
        if (s2 == 0.0 || (lambda == 0.0 && s2 <= cut2)) continue;
        if (on_cols) { /* h = a_i (n), g = v_i (p) */
            double coef = dot(ai, y, n) / (s2 + lambda);
            for (int j = 0; j < p; j++) w[j] += coef * vi[j];
        } else { /* h = v_i (n), g = a_i (p) */
            double coef = dot(vi, y, n) / (s2 + lambda);
            for (int j = 0; j < p; j++) w[j] += coef * ai[j];
        }
    }
}

/* Lasso by cyclic coordinate descent on the first n rows of the column-major design Xc (column j
 * at Xc + j*ld), warm-started from w. Objective 1/(2n)||y - Xw||^2 + alpha ||w||_1. */
static void lasso_fit(const double *Xc, int ld, const double *y, int n, int p, double alpha, workspace *ws, double *w) {
    double *r = ws->r, *cn = ws->cn;
    for (int j = 0; j < p; j++) cn[j] = dot(Xc + (size_t)j * ld, Xc + (size_t)j * ld, n);
    for (int i = 0; i < n; i++) r[i] = y[i];
    for (int j = 0; j < p; j++) {
        if (cn[j] == 0.0) w[j] = 0.0; /* such a coordinate is unidentified; the penalty sets it to 0 */
        if (w[j] == 0.0) continue;
        const double *xj = Xc + (size_t)j * ld;
        for (int i = 0; i < n; i++) r[i] -= w[j] * xj[i];
    }
    double thr = alpha * n;
    for (int sweep = 0; sweep < LASSO_MAX_SWEEPS; sweep++) {
        double dmax = 0.0, wmax = 0.0;
        for (int j = 0; j < p; j++) {
            if (cn[j] == 0.0) continue;
            const double *xj = Xc + (size_t)j * ld;
            double rho = dot(xj, r, n) + w[j] * cn[j];
            double wn = rho > thr ? (rho - thr) / cn[j] : rho < -thr ? (rho + thr) / cn[j] : 0.0;
            double dw = wn - w[j];
            if (dw != 0.0) {
                for (int i = 0; i < n; i++) r[i] -= dw * xj[i];
                w[j] = wn;
            }
            if (fabs(dw) > dmax) dmax = fabs(dw);
            if (fabs(wn) > wmax) wmax = fabs(wn);
        }
        if (dmax == 0.0 || dmax <= LASSO_TOL * wmax) break;
    }
}

/* All K predictions of sequence s. */
static void estimate_sequence(const icl_task_config *c, const icl_batch *b, int s, icl_estimator e, double param,
                              workspace *ws, float *pred) {
    const int K = b->K, D = b->D;
    const float *xs = b->x + (size_t)s * K * D, *ys = b->y + (size_t)s * K;
    for (int k = 0; k < K; k++) pred[k] = 0.0f;
    if (e == ICL_EST_ZERO || K < 2) return;
    for (int i = 0; i < K; i++) ws->y[i] = ys[i];

    if (e == ICL_EST_LASSO) {
        for (int i = 0; i < K; i++)
            for (int j = 0; j < D; j++) ws->Xc[(size_t)j * K + i] = xs[(size_t)i * D + j];
        for (int j = 0; j < D; j++) ws->w[j] = 0.0;
        for (int k = 1; k < K; k++) {
            lasso_fit(ws->Xc, K, ws->y, k, D, param, ws, ws->w); /* warm start from position k-1 */
            double p = 0.0;
            for (int j = 0; j < D; j++) p += ws->w[j] * xs[(size_t)k * D + j];
            pred[k] = (float)p;
        }
        return;
    }

    /* Features: the oracle's own columns (and squares for the quadratic family), else all D. */
    int p = 0, square = 0;
    if (e == ICL_EST_ORACLE_LS) {
        int concept = b->concept[s];
        if (c->kind == ICL_TASK_FAMILIES && concept == ICL_FAMILY_SPARSE) {
            const float *w = b->w + (size_t)s * D;
            for (int j = 0; j < D; j++)
                if (w[j] != 0.0f) ws->cols[p++] = j;
        } else {
            float mask[1024];
            icl_task_basis_mask(c, concept, mask);
            for (int j = 0; j < D; j++)
                if (mask[j] != 0.0f) ws->cols[p++] = j;
            square = c->kind == ICL_TASK_FAMILIES && concept == ICL_FAMILY_QUADRATIC;
        }
    } else {
        for (int j = 0; j < D; j++) ws->cols[p++] = j;
    }
    if (p == 0) return;
    for (int i = 0; i < K; i++)
        for (int q = 0; q < p; q++) {
            double v = xs[(size_t)i * D + ws->cols[q]];
            ws->X[(size_t)i * p + q] = square ? v * v : v;
        }
    double lambda = e == ICL_EST_RIDGE ? param : 0.0;
    for (int k = 1; k < K; k++) {
        ridge_fit(ws->X, ws->y, k, p, lambda, ws, ws->w);
        pred[k] = (float)dot(ws->w, ws->X + (size_t)k * p, p);
    }
}

int icl_estimate(const icl_task_config *c, const icl_batch *b, icl_estimator e, double param, float *pred, icl_err *err) {
    if (icl_task_validate(c, err)) return icl_err_prefix(err, "estimate: ");
    if (!b || !pred || !b->x || !b->y || !b->w || !b->concept) return icl_errf(err, "estimate: NULL batch or output");
    if ((int)e < 0 || (int)e >= ICL_N_ESTIMATORS) return icl_errf(err, "estimate: unknown estimator %d", (int)e);
    if (b->D != c->dim) return icl_errf(err, "estimate: batch has D=%d but the config says %d", b->D, c->dim);
    if (b->B < 1 || b->K < 1) return icl_errf(err, "estimate: empty batch (B=%d, K=%d)", b->B, b->K);
    if (e == ICL_EST_RIDGE && !(param >= 0.0 && param < INFINITY))
        return icl_errf(err, "estimate: ridge lambda %g must be finite and >= 0", param);
    if (e == ICL_EST_LASSO && !(param > 0.0 && param < INFINITY))
        return icl_errf(err, "estimate: lasso alpha %g must be finite and > 0", param);
    if (e == ICL_EST_ORACLE_LS) {
        int nc = icl_task_n_concepts(c);
        for (int s = 0; s < b->B; s++)
            if (b->concept[s] < 0 || b->concept[s] >= nc)
                return icl_errf(err, "estimate: sequence %d has concept %d, outside 0..%d", s, b->concept[s], nc - 1);
    }
    int failed = 0;
#pragma omp parallel
    {
        workspace ws;
        int ok = ws_alloc(&ws, b->K, b->D) == 0;
        if (!ok) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 4)
        for (int s = 0; s < b->B; s++)
            if (ok) estimate_sequence(c, b, s, e, param, &ws, pred + (size_t)s * b->K);
        ws_free(&ws);
    }
    if (failed) return icl_errf(err, "estimate: out of memory for the workspace (K=%d, D=%d)", b->K, b->D);
    return 0;
}

int icl_estimate_curve(const icl_task_config *c, const icl_batch *b, icl_estimator e, double param, double *curve,
                       icl_err *err) {
    if (!curve) return icl_errf(err, "estimate curve: NULL output");
    if (!b || b->B < 1 || b->K < 1) return icl_errf(err, "estimate curve: empty batch");
    float *pred = malloc((size_t)b->B * b->K * sizeof(float));
    if (!pred) return icl_errf(err, "estimate curve: out of memory");
    if (icl_estimate(c, b, e, param, pred, err)) {
        free(pred);
        return -1;
    }
    double scale = icl_task_y_scale(c);
    for (int k = 0; k < b->K; k++) {
        double s = 0.0;
        for (int q = 0; q < b->B; q++) {
            double d = (double)pred[(size_t)q * b->K + k] - (double)b->y[(size_t)q * b->K + k];
            s += d * d;
        }
        curve[k] = s / b->B / scale;
    }
    free(pred);
    return 0;
}
