/* Multinomial logistic-regression probe fitted by L-BFGS, stratified split, held-out accuracy;
 * see icl_probe.h. */
#include "iclab/icl_probe.h"
#include "iclab/icl_rng.h"
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEM 10 /* L-BFGS memory */

void icl_logreg_opts_default(icl_logreg_opts *o) {
    o->C = 1.0;
    o->standardize = 0;
    o->max_iter = 2000;
    o->tol = 1e-8;
}

void icl_logreg_free(icl_logreg *m) {
    if (!m) return;
    free(m->W); free(m->b); free(m->mu); free(m->scale);
    memset(m, 0, sizeof *m);
}

typedef struct problem {
    const double *X; /* (n,d) features, standardised if asked */
    const int *y;
    int n, d, K;
    double lam;      /* 1 / (C n) */
    double *Z;       /* (n,K) scratch */
} problem;

/* Objective and gradient at x = [W (K,d), b (K)]. */
static double objective(const problem *p, const double *x, double *g) {
    int n = p->n, d = p->d, K = p->K;
    const double *W = x, *b = x + (size_t)K * d;
    double *Z = p->Z;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, K, d, 1.0, p->X, d, W, d, 0.0, Z, K);
    double loss = 0;
    for (int i = 0; i < n; i++) {
        double *z = Z + (size_t)i * K, mx = -INFINITY, s = 0;
        for (int c = 0; c < K; c++) {
            z[c] += b[c];
            if (z[c] > mx) mx = z[c];
        }
        for (int c = 0; c < K; c++) s += exp(z[c] - mx);
        double lse = mx + log(s);
        loss += lse - z[p->y[i]];
        for (int c = 0; c < K; c++) z[c] = exp(z[c] - lse) / n; /* P / n */
        z[p->y[i]] -= 1.0 / n;                                /* (P - Y) / n */
    }
    double *gW = g, *gb = g + (size_t)K * d;
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, d, n, 1.0, Z, K, p->X, d, 0.0, gW, d);
    double reg = 0;
    for (size_t t = 0; t < (size_t)K * d; t++) {
        gW[t] += p->lam * W[t];
        reg += W[t] * W[t];
    }
    for (int c = 0; c < K; c++) gb[c] = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < K; c++) gb[c] += Z[(size_t)i * K + c];
    return loss / n + 0.5 * p->lam * reg;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double maxabs(const double *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* L-BFGS from x = 0. Returns 0 or -1 (memory). */
static int lbfgs(const problem *p, double *x, int max_iter, double tol, int *iters, double *gfinal) {
    size_t P = (size_t)p->K * p->d + p->K;
    double *g = malloc(sizeof(double) * P), *gn = malloc(sizeof(double) * P), *xn = malloc(sizeof(double) * P);
    double *dir = malloc(sizeof(double) * P), *S = malloc(sizeof(double) * P * MEM), *Yv = malloc(sizeof(double) * P * MEM);
    if (!g || !gn || !xn || !dir || !S || !Yv) {
        free(g); free(gn); free(xn); free(dir); free(S); free(Yv);
        return -1;
    }
    double rho[MEM], alpha[MEM];
    int head = 0, used = 0, it = 0;
    memset(x, 0, sizeof(double) * P);
    double f = objective(p, x, g);
    for (it = 0; it < max_iter; it++) {
        if (maxabs(g, P) < tol) break;
        /* two-loop recursion: dir = -H g */
        for (size_t t = 0; t < P; t++) dir[t] = -g[t];
        for (int q = 0; q < used; q++) {
            int s = (head - 1 - q + MEM) % MEM;
            alpha[s] = rho[s] * dot(S + s * P, dir, P);
            for (size_t t = 0; t < P; t++) dir[t] -= alpha[s] * Yv[s * P + t];
        }
        if (used) {
            int s = (head - 1 + MEM) % MEM;
            double gamma = dot(S + s * P, Yv + s * P, P) / dot(Yv + s * P, Yv + s * P, P);
            for (size_t t = 0; t < P; t++) dir[t] *= gamma;
        } else {
            double gn1 = 0; /* first step: a unit-length move at most */
            for (size_t t = 0; t < P; t++) gn1 += fabs(g[t]);
            if (gn1 > 1)
                for (size_t t = 0; t < P; t++) dir[t] /= gn1;
        }
        for (int q = used - 1; q >= 0; q--) {
            int s = (head - 1 - q + MEM) % MEM;
            double beta = rho[s] * dot(Yv + s * P, dir, P);
            for (size_t t = 0; t < P; t++) dir[t] += (alpha[s] - beta) * S[s * P + t];
        }
        double gd = dot(g, dir, P);
        if (!(gd < 0)) { /* not a descent direction: forget the curvature pairs */
            for (size_t t = 0; t < P; t++) dir[t] = -g[t];
            gd = dot(g, dir, P);
            used = 0;
        }
        /* backtracking Armijo line search */
        double step = 1.0, fn = f;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (size_t t = 0; t < P; t++) xn[t] = x[t] + step * dir[t];
            fn = objective(p, xn, gn);
            if (fn <= f + 1e-4 * step * gd) { ok = 1; break; }
            step *= 0.5;
        }
        if (!ok) break; /* no decrease possible at double precision: converged as far as it goes */
        /* curvature pair */
        double *sv = S + (size_t)head * P, *yv = Yv + (size_t)head * P;
        for (size_t t = 0; t < P; t++) {
            sv[t] = xn[t] - x[t];
            yv[t] = gn[t] - g[t];
        }
        double sy = dot(sv, yv, P);
        if (sy > 1e-300) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % MEM;
            if (used < MEM) used++;
        }
        memcpy(x, xn, sizeof(double) * P);
        memcpy(g, gn, sizeof(double) * P);
        f = fn;
    }
    *iters = it;
    *gfinal = maxabs(g, P);
    free(g); free(gn); free(xn); free(dir); free(S); free(Yv);
    return 0;
}

/* Copies X into double, standardised with (mu, scale) when given; checks finiteness. */
static int to_double(const float *X, int N, int d, const double *mu, const double *scale, double *out,
                     icl_err *err) {
    for (int i = 0; i < N; i++)
        for (int t = 0; t < d; t++) {
            float v = X[(size_t)i * d + t];
            if (!isfinite(v)) return icl_errf(err, "X[%d][%d] is not finite (NaN or Inf)", i, t);
            out[(size_t)i * d + t] = mu ? ((double)v - mu[t]) / scale[t] : (double)v;
        }
    return 0;
}

int icl_logreg_fit(const float *X, const int *y, int N, int d, int K, const icl_logreg_opts *opts,
                   icl_logreg *m, icl_err *err) {
    if (!X || !y || !m) return icl_errf(err, "icl_logreg_fit: NULL argument");
    memset(m, 0, sizeof *m);
    icl_logreg_opts o;
    if (opts) o = *opts;
    else icl_logreg_opts_default(&o);
    if (N < 2 || d < 1) return icl_errf(err, "logistic regression needs N >= 2 and d >= 1 (got %d, %d)", N, d);
    if (K < 2) return icl_errf(err, "need at least two classes (K = %d)", K);
    if (!(o.C > 0) || !isfinite(o.C)) return icl_errf(err, "C must be positive, got %g", o.C);
    if (o.max_iter < 1 || !(o.tol > 0)) return icl_errf(err, "bad max_iter %d or tol %g", o.max_iter, o.tol);
    int *cnt = calloc((size_t)K, sizeof(int));
    if (!cnt) return icl_errf(err, "out of memory");
    for (int i = 0; i < N; i++) {
        if (y[i] < 0 || y[i] >= K) {
            free(cnt);
            return icl_errf(err, "label %d of point %d out of range [0, %d)", y[i], i, K);
        }
        cnt[y[i]]++;
    }
    for (int c = 0; c < K; c++)
        if (!cnt[c]) {
            free(cnt);
            return icl_errf(err, "class %d has no training points", c);
        }
    free(cnt);
    size_t P = (size_t)K * d + K;
    double *Xd = malloc(sizeof(double) * (size_t)N * d), *Z = malloc(sizeof(double) * (size_t)N * K);
    double *x = malloc(sizeof(double) * P);
    m->W = malloc(sizeof(double) * (size_t)K * d);
    m->b = malloc(sizeof(double) * K);
    int rc = -1;
    /* The features are always centred on the training mean before fitting: with an unpenalised
     * intercept this is an exact reparametrisation (b absorbs W mu), but it decouples b from W and
     * makes L-BFGS converge much faster on data with large offsets. */
    double *mu = calloc((size_t)d, sizeof(double)), *scale = malloc(sizeof(double) * d);
    if (!Xd || !Z || !x || !m->W || !m->b || !mu || !scale) {
        free(mu); free(scale);
        icl_errf(err, "out of memory for logistic regression on %d x %d", N, d);
        goto done;
    }
    m->d = d; m->K = K;
    for (int i = 0; i < N; i++)
        for (int t = 0; t < d; t++) mu[t] += X[(size_t)i * d + t];
    for (int t = 0; t < d; t++) mu[t] /= N;
    for (int t = 0; t < d; t++) scale[t] = 1.0;
    if (o.standardize) {
        for (int t = 0; t < d; t++) scale[t] = 0;
        for (int i = 0; i < N; i++)
            for (int t = 0; t < d; t++) {
                double v = X[(size_t)i * d + t] - mu[t];
                scale[t] += v * v;
            }
        for (int t = 0; t < d; t++) {
            double sd = sqrt(scale[t] / N);
            scale[t] = sd > 0 && isfinite(sd) ? sd : 1.0; /* constant feature: scale 1 */
        }
    }
    if (to_double(X, N, d, mu, scale, Xd, err)) { free(mu); free(scale); goto done; }
    problem pb = {Xd, y, N, d, K, 1.0 / (o.C * N), Z};
    if (lbfgs(&pb, x, o.max_iter, o.tol, &m->iters, &m->grad)) {
        free(mu); free(scale);
        icl_errf(err, "out of memory in L-BFGS");
        goto done;
    }
    m->converged = m->grad < o.tol;
    memcpy(m->W, x, sizeof(double) * (size_t)K * d);
    for (int c = 0; c < K; c++) {
        m->b[c] = x[(size_t)K * d + c];
        if (!o.standardize) m->b[c] -= dot(m->W + (size_t)c * d, mu, d); /* back to raw features */
    }
    double bm = 0;
    for (int c = 0; c < K; c++) bm += m->b[c];
    bm /= K;
    for (int c = 0; c < K; c++) m->b[c] -= bm;
    if (o.standardize) { m->mu = mu; m->scale = scale; }
    else { free(mu); free(scale); }
    rc = 0;
done:
    free(Xd); free(Z); free(x);
    if (rc) icl_logreg_free(m);
    return rc;
}

int icl_logreg_predict_proba(const icl_logreg *m, const float *X, int N, int d, double *P, icl_err *err) {
    if (!m || !m->W || !X || !P) return icl_errf(err, "icl_logreg_predict_proba: NULL argument");
    if (d != m->d) return icl_errf(err, "probe was fitted on %d dimensions, got %d", m->d, d);
    if (N < 1) return icl_errf(err, "no points to predict");
    int K = m->K;
    double *x = malloc(sizeof(double) * d);
    if (!x) return icl_errf(err, "out of memory");
    for (int i = 0; i < N; i++) {
        if (to_double(X + (size_t)i * d, 1, d, m->mu, m->scale, x, err)) {
            free(x);
            return icl_err_prefix(err, "point %d: ", i);
        }
        double *pr = P + (size_t)i * K, mx = -INFINITY, s = 0;
        for (int c = 0; c < K; c++) {
            pr[c] = m->b[c] + dot(m->W + (size_t)c * d, x, d);
            if (pr[c] > mx) mx = pr[c];
        }
        for (int c = 0; c < K; c++) s += (pr[c] = exp(pr[c] - mx));
        for (int c = 0; c < K; c++) pr[c] /= s;
    }
    free(x);
    return 0;
}

int icl_logreg_predict(const icl_logreg *m, const float *X, int N, int d, int *pred, icl_err *err) {
    if (!m || !pred) return icl_errf(err, "icl_logreg_predict: NULL argument");
    double *P = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1) * (m->K > 0 ? m->K : 1));
    if (!P) return icl_errf(err, "out of memory");
    int rc = icl_logreg_predict_proba(m, X, N, d, P, err);
    if (!rc)
        for (int i = 0; i < N; i++) {
            int best = 0;
            for (int c = 1; c < m->K; c++)
                if (P[(size_t)i * m->K + c] > P[(size_t)i * m->K + best]) best = c;
            pred[i] = best;
        }
    free(P);
    return rc;
}

int icl_stratified_split(const int *labels, int N, int n_classes, double test_frac, uint64_t seed,
                         unsigned char *is_test, icl_err *err) {
    if (!labels || !is_test) return icl_errf(err, "icl_stratified_split: NULL argument");
    if (N < 1 || n_classes < 1) return icl_errf(err, "stratified split: bad sizes N=%d, classes=%d", N, n_classes);
    if (!(test_frac > 0 && test_frac < 1)) return icl_errf(err, "test fraction must be in (0, 1), got %g", test_frac);
    for (int i = 0; i < N; i++)
        if (labels[i] < 0 || labels[i] >= n_classes)
            return icl_errf(err, "label %d of point %d out of range [0, %d)", labels[i], i, n_classes);
    int *idx = malloc(sizeof(int) * N);
    if (!idx) return icl_errf(err, "out of memory");
    icl_rng r;
    icl_rng_seed(&r, seed);
    memset(is_test, 0, (size_t)N);
    for (int c = 0; c < n_classes; c++) {
        int n = 0;
        for (int i = 0; i < N; i++)
            if (labels[i] == c) idx[n++] = i;
        if (n < 2) continue;
        for (int i = n - 1; i > 0; i--) {
            int j = (int)icl_rng_below(&r, (uint64_t)i + 1);
            int t = idx[i]; idx[i] = idx[j]; idx[j] = t;
        }
        int nt = (int)floor(test_frac * n + 0.5);
        if (nt < 1) nt = 1;
        if (nt > n - 1) nt = n - 1;
        for (int i = 0; i < nt; i++) is_test[idx[i]] = 1;
    }
    free(idx);
    return 0;
}

int icl_probe_accuracy(const float *X, const int *labels, int N, int d, int n_classes, double test_frac,
                       uint64_t seed, const icl_logreg_opts *opts, icl_probe_result *res, icl_err *err) {
    if (!X || !labels || !res) return icl_errf(err, "icl_probe_accuracy: NULL argument");
    if (d < 1) return icl_errf(err, "probe needs at least 1 dimension, got %d", d);
    unsigned char *is_test = malloc((size_t)(N > 0 ? N : 1));
    int *map = malloc(sizeof(int) * (size_t)(n_classes > 0 ? n_classes : 1));
    int *cnt = calloc((size_t)(n_classes > 0 ? n_classes : 1), sizeof(int));
    float *Xtr = malloc(sizeof(float) * (size_t)(N > 0 ? N : 1) * d);
    int *ytr = malloc(sizeof(int) * (size_t)(N > 0 ? N : 1)), *pred = malloc(sizeof(int) * (size_t)(N > 0 ? N : 1));
    icl_logreg m;
    memset(&m, 0, sizeof m);
    int rc = -1;
    if (!is_test || !map || !cnt || !Xtr || !ytr || !pred) { icl_errf(err, "out of memory"); goto done; }
    if (icl_stratified_split(labels, N, n_classes, test_frac, seed, is_test, err)) goto done;
    int ntr = 0, nte = 0, K = 0;
    for (int i = 0; i < N; i++) cnt[labels[i]]++;
    for (int c = 0; c < n_classes; c++) map[c] = cnt[c] >= 2 ? K++ : -1; /* n_c >= 2: in train and test */
    if (K < 2) { icl_errf(err, "need at least two classes with at least 2 points each for a probe"); goto done; }
    for (int i = 0; i < N; i++) {
        if (is_test[i]) { nte++; continue; }
        if (map[labels[i]] < 0) continue; /* a singleton class: no test point, no probe class */
        memcpy(Xtr + (size_t)ntr * d, X + (size_t)i * d, sizeof(float) * d);
        ytr[ntr++] = map[labels[i]];
    }
    if (icl_logreg_fit(Xtr, ytr, ntr, d, K, opts, &m, err)) goto done;
    if (icl_logreg_predict(&m, X, N, d, pred, err)) goto done;
    int hit_tr = 0, hit_te = 0, ntr_all = 0;
    memset(cnt, 0, sizeof(int) * n_classes);
    for (int i = 0; i < N; i++) {
        int ok = map[labels[i]] >= 0 && pred[i] == map[labels[i]];
        if (is_test[i]) { hit_te += ok; cnt[labels[i]]++; }
        else if (map[labels[i]] >= 0) { hit_tr += ok; ntr_all++; }
    }
    int maxc = 0;
    for (int c = 0; c < n_classes; c++)
        if (cnt[c] > maxc) maxc = cnt[c];
    res->n_train = ntr_all;
    res->n_test = nte;
    res->train_acc = (double)hit_tr / ntr_all;
    res->test_acc = (double)hit_te / nte;
    res->chance = (double)maxc / nte;
    res->converged = m.converged;
    rc = 0;
done:
    icl_logreg_free(&m);
    free(is_test); free(map); free(cnt); free(Xtr); free(ytr); free(pred);
    return rc;
}
