/* Reference in-context estimators (oracle least squares, min-norm least squares, ridge, Lasso,
 * zero) for the synthetic regression tasks; see include/iclab/icl_estim.h for the definitions and
 * numerical choices. Small dense linear algebra is written here (one-sided Jacobi SVD, Cholesky,
 * the Lasso homotopy and coordinate descent) because the problems are tiny (k <= K points, p <= D features) and numpy /
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
 * A = A0 V with orthogonal columns, i.e. A0 = (A / |A|) diag(|A|) V^T is a thin SVD. The squared
 * column norms (nrm, c doubles of scratch) are recomputed at the start of every sweep and updated
 * exactly within it (a rotation that zeroes a_i.a_j changes them by -+ t * a_i.a_j). */
static void jacobi_orthogonalise(double *A, int m, int c, double *V, double *nrm) {
    for (int i = 0; i < c * c; i++) V[i] = 0.0;
    for (int i = 0; i < c; i++) V[i * c + i] = 1.0;
    for (int sweep = 0; sweep < JACOBI_MAX_SWEEPS; sweep++) {
        int rotated = 0;
        for (int i = 0; i < c; i++) nrm[i] = dot(A + (size_t)i * m, A + (size_t)i * m, m);
        for (int i = 0; i < c - 1; i++) {
            for (int j = i + 1; j < c; j++) {
                double *ai = A + (size_t)i * m, *aj = A + (size_t)j * m;
                double alpha = nrm[i], beta = nrm[j], gamma = dot(ai, aj, m);
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
                nrm[i] = alpha - t * gamma;
                nrm[j] = beta + t * gamma;
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
    double *A;   /* (K*D + K + 2D) Jacobi matrix; Lasso polish vectors */
    double *V;   /* (min(K,D)^2) Jacobi rotations; Lasso polish Gram matrix */
    double *w;   /* (D) fitted weights */
    double *Xc;  /* (D,K) column-major full design for Lasso */
    double *r;   /* (K) Lasso residual */
    double *cn;  /* (D) Lasso column norms */
    int *cols;   /* (D) oracle feature coordinates */
    double *nrm; /* (D) Jacobi column norms */
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
    free(ws->nrm);
    memset(ws, 0, sizeof *ws);
}

static int ws_alloc(workspace *ws, int K, int D) {
    memset(ws, 0, sizeof *ws);
    size_t mn = (size_t)(K < D ? K : D); /* the Jacobi runs on min(n, p) <= min(K, D) columns */
    ws->X = malloc((size_t)K * D * sizeof(double));
    ws->y = malloc((size_t)K * sizeof(double));
    ws->A = malloc(((size_t)K * D + K + 2 * (size_t)D) * sizeof(double));
    ws->V = malloc(mn * mn * sizeof(double));
    ws->w = malloc((size_t)D * sizeof(double));
    ws->Xc = malloc((size_t)K * D * sizeof(double));
    ws->r = malloc((size_t)K * sizeof(double));
    ws->cn = malloc((size_t)D * sizeof(double));
    ws->cols = malloc((size_t)D * sizeof(int));
    ws->nrm = malloc((size_t)D * sizeof(double));
    if (!ws->X || !ws->y || !ws->A || !ws->V || !ws->w || !ws->Xc || !ws->r || !ws->cn || !ws->cols || !ws->nrm) {
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
    jacobi_orthogonalise(A, m, c, V, ws->nrm);
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

/* Exact Lasso solution on the current support: with A = {j : w_j != 0} and s = sign(w_A), solves
 * X_A^T X_A w_A = X_A^T y - n alpha s (Cholesky) and accepts it only if it satisfies every KKT
 * condition: sign(w_A) == s, |X_j^T r - n alpha s_j| small on A and |X_j^T r| <= n alpha off A
 * (r = y - X_A w_A; tolerances 1e-9 n alpha + 1e-11 |X_j| |y|). KKT conditions are sufficient for
 * optimality, so an accepted w is a Lasso solution whatever path led to it. Returns 1 if accepted
 * (w overwritten), 0 otherwise (w untouched). */
/* In-place lower Cholesky factor of the (m,m) Gram matrix G; returns 0 when a pivot falls below
 * 1e-10 of its original diagonal (lost to cancellation: the active set is degenerate), else 1. */
static int cholesky_lower(double *G, int m, const double *diag) {
    for (int j = 0; j < m; j++)
        for (int i = j; i < m; i++) {
            double v = G[(size_t)i * m + j];
            for (int k = 0; k < j; k++) v -= G[(size_t)i * m + k] * G[(size_t)j * m + k];
            if (i == j) {
                if (!(v > 1e-10 * diag[j])) return 0;
                G[(size_t)j * m + j] = sqrt(v);
            } else {
                G[(size_t)i * m + j] = v / G[(size_t)j * m + j];
            }
        }
    return 1;
}

static int lasso_polish(const double *Xc, int ld, const double *y, int n, int p, double alpha, workspace *ws, double *w) {
    int *act = ws->cols, m = 0;
    for (int j = 0; j < p; j++)
        if (w[j] != 0.0) act[m++] = j;
    if (m == 0 || m > n) return 0; /* more active columns than points: X_A^T X_A is singular */
    double *G = ws->V, *rhs = ws->A, *wa = rhs + m, *r = wa + m, *diag = r + n;
    const double thr = alpha * n;
    for (int a = 0; a < m; a++) {
        const double *xa = Xc + (size_t)act[a] * ld;
        for (int c = 0; c <= a; c++) G[(size_t)a * m + c] = dot(xa, Xc + (size_t)act[c] * ld, n);
        diag[a] = G[(size_t)a * m + a];
        rhs[a] = dot(xa, y, n) - (w[act[a]] > 0 ? thr : -thr);
    }
    if (!cholesky_lower(G, m, diag)) return 0;
    for (int i = 0; i < m; i++) { /* L z = rhs */
        double v = rhs[i];
        for (int k = 0; k < i; k++) v -= G[(size_t)i * m + k] * wa[k];
        wa[i] = v / G[(size_t)i * m + i];
    }
    for (int i = m - 1; i >= 0; i--) { /* L^T w_A = z */
        double v = wa[i];
        for (int k = i + 1; k < m; k++) v -= G[(size_t)k * m + i] * wa[k];
        wa[i] = v / G[(size_t)i * m + i];
    }
    for (int a = 0; a < m; a++)
        if (!((wa[a] > 0) == (w[act[a]] > 0) && wa[a] != 0.0)) return 0;
    for (int i = 0; i < n; i++) r[i] = y[i];
    for (int a = 0; a < m; a++) {
        const double *xa = Xc + (size_t)act[a] * ld;
        for (int i = 0; i < n; i++) r[i] -= wa[a] * xa[i];
    }
    const double ynorm = sqrt(dot(y, y, n));
    for (int j = 0, a = 0; j < p; j++) {
        const double *xj = Xc + (size_t)j * ld;
        double g = dot(xj, r, n), tol = 1e-9 * thr + 1e-11 * sqrt(ws->cn[j]) * ynorm;
        if (a < m && act[a] == j) {
            if (fabs(g - (wa[a] > 0 ? thr : -thr)) > tol) return 0;
            a++;
        } else if (fabs(g) > thr + tol) {
            return 0;
        }
    }
    for (int a = 0; a < m; a++) w[act[a]] = wa[a];
    return 1;
}

/* Homotopy (LARS with the Lasso modification): follows the piecewise-linear solution path of
 * 1/2||y - Xw||^2 + lam ||w||_1 from lam = max_j |X_j^T y| (w = 0) down to lam = n alpha, adding a
 * coordinate when its correlation reaches lam and removing one whose weight crosses zero. It is
 * used only to find the support and signs: the caller then computes the exact solution on them
 * with lasso_polish, which verifies the KKT conditions. Returns 1 when it reached the target, 0 when
 * it gave up (a singular active Gram matrix, e.g. duplicate columns, or too many steps); w then
 * holds the last point of the path. The inactive correlations are recomputed from the residual at
 * every step, so rounding does not accumulate along the path. */
static int lasso_homotopy(const double *Xc, int ld, const double *y, int n, int p, double alpha, workspace *ws, double *w) {
    double *G = ws->V, *u = ws->A, *d = u + n, *cor = d + p, *diag = cor + p;
    int *act = ws->cols, m = 0;
    const double target = alpha * n;
    for (int j = 0; j < p; j++) w[j] = 0.0;
    double lam = 0.0;
    for (int j = 0; j < p; j++) {
        cor[j] = dot(Xc + (size_t)j * ld, y, n);
        if (ws->cn[j] > 0.0 && fabs(cor[j]) > lam) lam = fabs(cor[j]), act[0] = j;
    }
    if (lam <= target) return 1; /* w = 0 is the solution */
    m = 1;
    for (int step = 0; step < 8 * p + 16; step++) {
        if (m > n) return 0;
        /* Direction of w_A as lam decreases: d_A = (X_A^T X_A)^{-1} sign_A (Cholesky). */
        for (int a = 0; a < m; a++) {
            const double *xa = Xc + (size_t)act[a] * ld;
            for (int c = 0; c <= a; c++) G[(size_t)a * m + c] = dot(xa, Xc + (size_t)act[c] * ld, n);
            diag[a] = G[(size_t)a * m + a];
        }
        if (!cholesky_lower(G, m, diag)) return 0;
        for (int i = 0; i < m; i++) {
            double v = cor[act[i]] >= 0 ? 1.0 : -1.0; /* active correlations equal +-lam: their sign */
            if (w[act[i]] != 0.0) v = w[act[i]] > 0 ? 1.0 : -1.0;
            for (int k = 0; k < i; k++) v -= G[(size_t)i * m + k] * d[k];
            d[i] = v / G[(size_t)i * m + i];
        }
        for (int i = m - 1; i >= 0; i--) {
            double v = d[i];
            for (int k = i + 1; k < m; k++) v -= G[(size_t)k * m + i] * d[k];
            d[i] = v / G[(size_t)i * m + i];
        }
        for (int i = 0; i < n; i++) u[i] = 0.0;
        for (int a = 0; a < m; a++) {
            const double *xa = Xc + (size_t)act[a] * ld;
            for (int i = 0; i < n; i++) u[i] += d[a] * xa[i];
        }
        /* Correlations with the current residual. */
        for (int i = 0; i < n; i++) ws->r[i] = y[i];
        for (int a = 0; a < m; a++) {
            const double *xa = Xc + (size_t)act[a] * ld;
            for (int i = 0; i < n; i++) ws->r[i] -= w[act[a]] * xa[i];
        }
        double gamma = lam - target;
        int event = 0, who = -1, sign = 0; /* event 1: join, 2: drop */
        /* A just-dropped coordinate sits on the boundary (|c_j| = lam) but moves inside, i.e. its
         * denominator below is negative, so it is not re-added; "tiny" guards the rounding of
         * events at gamma ~ 0. */
        const double tiny = 1e-14 * lam;
        for (int j = 0; j < p; j++) {
            int active = 0;
            for (int a = 0; a < m; a++) active |= act[a] == j;
            if (active) continue;
            if (ws->cn[j] == 0.0) continue;
            const double *xj = Xc + (size_t)j * ld;
            double c = dot(xj, ws->r, n), aj = dot(xj, u, n);
            cor[j] = c;
            if (1.0 - aj > 0.0) {
                double g = (lam - c) / (1.0 - aj);
                if (g > tiny && g < gamma) gamma = g, event = 1, who = j, sign = 1;
            }
            if (1.0 + aj > 0.0) {
                double g = (lam + c) / (1.0 + aj);
                if (g > tiny && g < gamma) gamma = g, event = 1, who = j, sign = -1;
            }
        }
        for (int a = 0; a < m; a++) {
            int j = act[a];
            if (d[a] == 0.0 || w[j] == 0.0) continue;
            double g = -w[j] / d[a];
            if (g > tiny && g < gamma) gamma = g, event = 2, who = a, sign = 0;
        }
        for (int a = 0; a < m; a++) w[act[a]] += gamma * d[a];
        lam -= gamma;
        if (event == 0) return 1;
        if (event == 1) {
            act[m++] = who;
            cor[who] = sign * lam;
            w[who] = 0.0;
        } else {
            w[act[who]] = 0.0;
            act[who] = act[--m];
        }
    }
    return 0;
}

/* Lasso on the first n rows of the column-major design Xc (column j at Xc + j*ld); objective
 * 1/(2n)||y - Xw||^2 + alpha ||w||_1. With `exact`, the homotopy finds the support and lasso_polish
 * the exact, KKT-verified solution on it; when either fails (or without `exact`), cyclic coordinate
 * descent runs from w (the path's last point, or the caller's start). With `exact`, after a sweep
 * that left the support and signs unchanged, lasso_polish tries the exact solution on that support
 * (again after 1, 2, 4, ... 64 more sweeps while it is refused), which ends the slow linear
 * convergence of coordinate descent on correlated, under-determined designs. */
static void lasso_fit(const double *Xc, int ld, const double *y, int n, int p, double alpha, int exact, workspace *ws,
                      double *w) {
    double *r = ws->r, *cn = ws->cn;
    for (int j = 0; j < p; j++) cn[j] = dot(Xc + (size_t)j * ld, Xc + (size_t)j * ld, n);
    /* Exact path first; coordinate descent only when it fails (degenerate designs). */
    if (exact && lasso_homotopy(Xc, ld, y, n, p, alpha, ws, w)) {
        int zero = 1;
        for (int j = 0; j < p; j++) zero &= w[j] == 0.0;
        if (zero || lasso_polish(Xc, ld, y, n, p, alpha, ws, w)) return;
    }
    for (int i = 0; i < n; i++) r[i] = y[i];
    for (int j = 0; j < p; j++) {
        if (cn[j] == 0.0) w[j] = 0.0; /* such a coordinate is unidentified; the penalty sets it to 0 */
        if (w[j] == 0.0) continue;
        const double *xj = Xc + (size_t)j * ld;
        for (int i = 0; i < n; i++) r[i] -= w[j] * xj[i];
    }
    double thr = alpha * n;
    int next_polish = 0, gap = 1;
    for (int sweep = 0; sweep < LASSO_MAX_SWEEPS; sweep++) {
        double dmax = 0.0, wmax = 0.0;
        int support_changed = 0;
        for (int j = 0; j < p; j++) {
            if (cn[j] == 0.0) continue;
            const double *xj = Xc + (size_t)j * ld;
            double rho = dot(xj, r, n) + w[j] * cn[j];
            double wn = rho > thr ? (rho - thr) / cn[j] : rho < -thr ? (rho + thr) / cn[j] : 0.0;
            double dw = wn - w[j];
            if (dw != 0.0) {
                if ((wn > 0) != (w[j] > 0) || (wn < 0) != (w[j] < 0)) support_changed = 1;
                for (int i = 0; i < n; i++) r[i] -= dw * xj[i];
                w[j] = wn;
            }
            if (fabs(dw) > dmax) dmax = fabs(dw);
            if (fabs(wn) > wmax) wmax = fabs(wn);
        }
        if (dmax == 0.0 || dmax <= LASSO_TOL * wmax) break;
        if (exact && !support_changed && sweep >= next_polish) {
            if (lasso_polish(Xc, ld, y, n, p, alpha, ws, w)) break;
            next_polish = sweep + gap;
            if (gap < 64) gap *= 2;
        }
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
            lasso_fit(ws->Xc, K, ws->y, k, D, param, 1, ws, ws->w);
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

int icl_lasso_fit(const double *X, int n, int p, const double *y, double alpha, int cd_only, double *w, icl_err *err) {
    if (!X || !y || !w) return icl_errf(err, "lasso fit: NULL argument");
    if (n < 1 || p < 1 || n > 65536 || p > 65536) return icl_errf(err, "lasso fit: bad shape %d x %d", n, p);
    if (!(alpha > 0.0 && alpha < INFINITY)) return icl_errf(err, "lasso fit: alpha %g must be finite and > 0", alpha);
    workspace ws;
    if (ws_alloc(&ws, n, p)) return icl_errf(err, "lasso fit: out of memory");
    for (int i = 0; i < n; i++)
        for (int j = 0; j < p; j++) ws.Xc[(size_t)j * n + i] = X[(size_t)i * p + j];
    if (!cd_only)
        for (int j = 0; j < p; j++) w[j] = 0.0;
    lasso_fit(ws.Xc, n, y, n, p, alpha, !cd_only, &ws, w);
    ws_free(&ws);
    return 0;
}

int icl_ridge_fit(const double *X, int n, int p, const double *y, double lambda, double *w, icl_err *err) {
    if (!X || !y || !w) return icl_errf(err, "ridge fit: NULL argument");
    if (n < 1 || p < 1 || n > 65536 || p > 65536) return icl_errf(err, "ridge fit: bad shape %d x %d", n, p);
    if (!(lambda >= 0.0 && lambda < INFINITY)) return icl_errf(err, "ridge fit: lambda %g must be finite and >= 0", lambda);
    workspace ws;
    if (ws_alloc(&ws, n, p)) return icl_errf(err, "ridge fit: out of memory");
    ridge_fit(X, y, n, p, lambda, &ws, w);
    ws_free(&ws);
    return 0;
}
