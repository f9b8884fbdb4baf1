/* Exact k-nearest neighbours (float32 Gram screening with rigorous rounding bounds, then exact
 * double recomputation of the ambiguous candidates) and leave-one-out k-NN Task Decodability.
 * See icl_knn.h for the tie rules and why they match scikit-learn. */
#include "iclab/icl_knn.h"
#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define U32 0x1.0p-24 /* unit roundoff of float32 */
#define U64 0x1.0p-53 /* unit roundoff of double */

int icl_metric_parse(const char *name, icl_metric *m, icl_err *err) {
    if (name && !strcmp(name, "euclidean")) { *m = ICL_METRIC_EUCLIDEAN; return 0; }
    if (name && !strcmp(name, "cosine")) { *m = ICL_METRIC_COSINE; return 0; }
    return icl_errf(err, "unknown metric '%s' (expected euclidean or cosine)", name ? name : "(null)");
}

const char *icl_metric_name(icl_metric m) { return m == ICL_METRIC_COSINE ? "cosine" : "euclidean"; }

/* ---- exact double kernels -------------------------------------------------------------------
 * Eight independent accumulators let the compiler vectorise without -ffast-math while keeping
 * the summation order fixed (so identical rows give bit-identical results). */
static double sqdist_exact(const float *a, double sa, const float *b, double sb, int d) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int t = 0;
    for (; t + 8 <= d; t += 8)
        for (int u = 0; u < 8; u++) {
            double v = (double)a[t + u] * sa - (double)b[t + u] * sb;
            acc[u] += v * v;
        }
    for (; t < d; t++) {
        double v = (double)a[t] * sa - (double)b[t] * sb;
        acc[0] += v * v;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double dot_exact(const float *a, const float *b, int d) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int t = 0;
    for (; t + 8 <= d; t += 8)
        for (int u = 0; u < 8; u++) acc[u] += (double)a[t + u] * (double)b[t + u];
    for (; t < d; t++) acc[0] += (double)a[t] * (double)b[t];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

/* ---- workspace ------------------------------------------------------------------------------ */
typedef struct knn_ws {
    int N, d, R;   /* R: Gram rows per block (R == N: one ssyrk) */
    float *Y;      /* (N,d) centred rows (Euclidean) or unit rows (cosine), float32 */
    double *r;     /* (N) |Y_i| */
    double rmax;   /* max |Y_i| */
    double *nn;    /* (N) |Y_i|^2 */
    double *xn;    /* (N) |X_i| */
    double *sc;    /* (N) row scale: 1 (Euclidean), 1/|X_i| or 0 for a zero row (cosine) */
    int nzero;     /* rows with scale 0 (zero rows, cosine) */
    double *mean;  /* (d) column means of the scaled rows */
    double *G;     /* (R,N) Gram block, chunk results summed in double */
} knn_ws;

static void ws_free(knn_ws *w) {
    free(w->Y); free(w->r); free(w->nn); free(w->xn); free(w->sc); free(w->mean); free(w->G);
    memset(w, 0, sizeof *w);
}

/* Gram memory budget: one N x N block up to 128 MiB, else row blocks of about 64 MiB. */
static int ws_alloc(knn_ws *w, int N, int d, icl_err *err) {
    memset(w, 0, sizeof *w);
    w->N = N; w->d = d;
    size_t full = (size_t)N * (size_t)N * sizeof(double);
    if (full <= ((size_t)128 << 20)) w->R = N;
    else {
        size_t R = ((size_t)64 << 20) / ((size_t)N * sizeof(double));
        w->R = R < 64 ? 64 : (int)R;
        if (w->R > N) w->R = N;
    }
    w->Y = malloc((size_t)N * d * sizeof(float));
    w->r = malloc((size_t)N * sizeof(double));
    w->nn = malloc((size_t)N * sizeof(double));
    w->xn = malloc((size_t)N * sizeof(double));
    w->sc = malloc((size_t)N * sizeof(double));
    w->mean = malloc((size_t)d * sizeof(double));
    w->G = malloc((size_t)w->R * N * sizeof(double));
    if (!w->Y || !w->r || !w->nn || !w->xn || !w->sc || !w->mean || !w->G) {
        ws_free(w);
        return icl_errf(err, "out of memory for kNN on %d x %d points", N, d);
    }
    return 0;
}

/* Checks finiteness (a row's sum of squares in double is finite iff every entry is, since
 * float32 squares cannot overflow a double) and builds the screening rows Y. */
static int ws_prepare(knn_ws *w, const float *X, icl_metric metric, icl_err *err) {
    int N = w->N, d = w->d;
    int bad_row = -1;
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < N; i++) {
        double s = dot_exact(X + (size_t)i * d, X + (size_t)i * d, d);
        w->xn[i] = sqrt(s);
        if (!isfinite(s)) {
#pragma omp critical(icl_knn_bad)
            if (bad_row < 0 || i < bad_row) bad_row = i;
        }
    }
    if (bad_row >= 0) {
        const float *x = X + (size_t)bad_row * d;
        int col = 0;
        while (col < d && isfinite(x[col])) col++;
        return icl_errf(err, "X[%d][%d] is not finite (NaN or Inf)", bad_row, col < d ? col : 0);
    }
    /* Both metrics screen with Euclidean distances between centred rows: the rows themselves, or
     * the unit rows for cosine (1 - cos = |u_i - u_j|^2 / 2). Centring makes the Gram entries the
     * size of the distances rather than of the norms, so the rounding bounds stay tight even when
     * all points share a large offset (as hidden states do). */
    for (int i = 0; i < N; i++)
        w->sc[i] = metric == ICL_METRIC_EUCLIDEAN ? 1.0 : (w->xn[i] > 0 ? 1.0 / w->xn[i] : 0.0);
    w->nzero = 0;
    for (int i = 0; i < N; i++) w->nzero += w->sc[i] == 0;
    /* column sums in a fixed order (each thread owns whole column strips) */
#pragma omp parallel for schedule(dynamic, 1)
    for (int t0 = 0; t0 < d; t0 += 256) {
        int t1 = t0 + 256 < d ? t0 + 256 : d;
        for (int t = t0; t < t1; t++) w->mean[t] = 0;
        for (int i = 0; i < N; i++) {
            const float *x = X + (size_t)i * d;
            double s = w->sc[i];
            for (int t = t0; t < t1; t++) w->mean[t] += (double)x[t] * s;
        }
        for (int t = t0; t < t1; t++) w->mean[t] /= N;
    }
#pragma omp parallel for schedule(dynamic, 16)
    for (int i = 0; i < N; i++) {
        const float *x = X + (size_t)i * d;
        float *y = w->Y + (size_t)i * d;
        double s = w->sc[i];
        for (int t = 0; t < d; t++) y[t] = (float)((double)x[t] * s - w->mean[t]);
        w->nn[i] = dot_exact(y, y, d);
        w->r[i] = sqrt(w->nn[i]);
    }
    w->rmax = 0;
    for (int i = 0; i < N; i++)
        if (w->r[i] > w->rmax) w->rmax = w->r[i];
    return 0;
}

/* Columns per float32 Gram product. The worst-case rounding bound of a float32 dot product grows
 * with its length (gamma_n = n u), so summing chunks of KC columns in double gives a bound of
 * gamma_KC |y_i||y_j| (Cauchy-Schwarz over the chunks) instead of gamma_d |y_i||y_j|: 16x tighter
 * for d = 4096, which keeps the exact recomputation down to rows with genuinely close neighbours. */
#define KC 256

/* Gram tiles are TB x TB; each thread computes whole tiles with single-threaded BLAS (OpenBLAS
 * runs serially inside an OpenMP parallel region), so a layer needs a handful of barriers rather
 * than one per BLAS call: on a shared, busy machine every barrier can cost a time slice. */
#define TB 128

/* Computes Gram tile (a, b) of the row block starting at r0: rows r0 + a*TB.., columns b*TB..,
 * summing float32 products of KC-column chunks in double. tile: TB*TB float scratch. */
static void gram_tile(knn_ws *w, int r0, int nr, int a, int b, float *tile) {
    int N = w->N, d = w->d;
    int i0 = a * TB, j0 = b * TB;
    int mi = nr - i0 < TB ? nr - i0 : TB, mj = N - j0 < TB ? N - j0 : TB;
    for (int t0 = 0; t0 < d; t0 += KC) {
        int kc = d - t0 < KC ? d - t0 : KC;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mi, mj, kc, 1.0f, w->Y + (size_t)(r0 + i0) * d + t0, d,
                    w->Y + (size_t)j0 * d + t0, d, 0.0f, tile, TB);
        for (int ii = 0; ii < mi; ii++) {
            double *g = w->G + (size_t)(i0 + ii) * N + j0;
            const float *tf = tile + (size_t)ii * TB;
            if (t0 == 0)
                for (int jj = 0; jj < mj; jj++) g[jj] = tf[jj];
            else
                for (int jj = 0; jj < mj; jj++) g[jj] += tf[jj];
        }
    }
}

/* ---- per-row selection ---------------------------------------------------------------------- */
typedef struct cand { double D; int j; } cand;

static int cand_cmp(const void *pa, const void *pb) {
    const cand *a = pa, *b = pb;
    if (a->D < b->D) return -1;
    if (a->D > b->D) return 1;
    return (a->j > b->j) - (a->j < b->j);
}

/* k-th smallest (1-based, k <= n) of v[0..n): one pass keeping the k smallest in a sorted buffer
 * best[k]. A value enters only if it beats the current k-th, which for k << n is rare, so this is
 * close to one comparison per element (a quickselect costs several passes). */
static double kth_smallest(const double *v, int n, int k, double *best) {
    int f = 0;
    for (int j = 0; j < n; j++) {
        double x = v[j];
        if (f == k && !(x < best[k - 1])) continue;
        int p = f < k ? f++ : k - 1;
        while (p > 0 && best[p - 1] > x) { best[p] = best[p - 1]; p--; }
        best[p] = x;
    }
    return best[k - 1];
}

typedef struct row_buf {
    double *lo, *hi, *tmp;
    cand *c;
} row_buf;

/* Exact squared distance between the scaled rows, the quantity every comparison uses:
 * |x_i - x_j|^2 (Euclidean) or |x_i/|x_i| - x_j/|x_j||^2 = 2 (1 - cos) (cosine; 2 if a row is zero). */
static inline double exact_e(const float *X, const knn_ws *w, icl_metric metric, int i, int j) {
    int d = w->d;
    if (metric == ICL_METRIC_COSINE && (w->sc[i] == 0 || w->sc[j] == 0)) return 2.0;
    return sqdist_exact(X + (size_t)i * d, w->sc[i], X + (size_t)j * d, w->sc[j], d);
}

/* Neighbours of row i (global index) whose Gram row is g (N floats). Writes k indices to out_idx
 * (sorted by (distance, index) when `sorted`), and distances to out_dist when non-NULL.
 * Screening: for every j, |s_j - sqrt(a_j)| <= sqrt-of(e2_j) + dl, where s_j = sqrt(E_ij) is the
 * exact distance of the scaled rows, a_j = |y_i|^2 + |y_j|^2 - 2 G_ij the Gram estimate, e2_j its
 * worst-case error (gamma_KC |y_i||y_j| for any summation order, plus the double arithmetic) and dl
 * the float32 rounding of y (plus, for cosine, the error of x/|x|), taken at its row maximum so
 * that everything stays in squared units: s_j <= sqrt(a_j + e2_j) + dl and
 * s_j >= sqrt(max(a_j - e2_j, 0)) - dl. j is dropped when its lower bound exceeds the k-th smallest
 * upper bound (plus the rounding of the exact recomputation). */
static void knn_row(const float *X, const knn_ws *w, icl_metric metric, int i, const double *g, int k,
                    int sorted, row_buf *b, int *out_idx, double *out_dist) {
    int N = w->N, d = w->d;
    int kc = d < KC ? d : KC, nchunk = (d + KC - 1) / KC;
    double gamma = (double)kc * U32 / (1.0 - (double)kc * U32);
    double dnorm = metric == ICL_METRIC_COSINE ? 1.01 * (d + 10) * U64 : 0.0;
    double ri = w->r[i], nni = w->nn[i];
    /* chunk products: gamma_KC sum_c |y_ic||y_jc| <= gamma_KC |y_i||y_j|; their double sum adds
     * nchunk u64 (1 + gamma) |y_i||y_j| */
    double c1 = 1.01 * 2.0 * (gamma + (nchunk + 2) * U64 * (1.0 + gamma)) * ri, c2 = (d + 4) * U64 * 1.01;
    double dl = 1.01 * U32 * (ri + w->rmax) + 2.0 * dnorm + 1e-300;
    const double *nn = w->nn, *r = w->r;
    double *hq = b->hi, *lq = b->lo;
    for (int j = 0; j < N; j++) { /* branch-free so it vectorises */
        double gj = g[j];
        double a = nni + nn[j] - 2.0 * gj;
        double e2 = c1 * r[j] + c2 * (nni + nn[j] + 2.0 * fabs(gj));
        double h = a + e2, l = a - e2;
        hq[j] = h <= DBL_MAX ? h : INFINITY; /* NaN or overflow: no information */
        lq[j] = l <= DBL_MAX ? l : -INFINITY;
    }
    if (w->nzero) { /* a zero row is at cosine distance 1 (E = 2) from everything */
        for (int j = 0; j < N; j++)
            if (w->sc[i] == 0 || w->sc[j] == 0) hq[j] = lq[j] = 2.0;
    }
    double hqi = hq[i];
    hq[i] = INFINITY; /* never its own neighbour (k <= N-1 finite entries remain) */
    double hk = kth_smallest(hq, N, k, b->tmp);
    hq[i] = hqi;
    double thr = sqrt(hk) + dl;
    /* slack for the rounding of the exact recomputation itself (both sides) */
    thr += 2.0 * (d + 8) * U64 * thr + 4.0 * dnorm + 1e-300;
    double lim = thr + dl; /* s_j's lower bound <= thr  <=>  max(lq, 0) <= lim^2 */
    lim = lim * lim * (1.0 + 4.0 * U64);
    int m = 0;
    for (int j = 0; j < N; j++) {
        if (j == i) continue;
        if (lq[j] <= lim) b->c[m++].j = j;
    }
    int need_exact = m > k || sorted || out_dist;
    if (need_exact) {
        for (int t = 0; t < m; t++) b->c[t].D = exact_e(X, w, metric, i, b->c[t].j);
        if (m > k || sorted) qsort(b->c, (size_t)m, sizeof(cand), cand_cmp);
    }
    for (int t = 0; t < k; t++) {
        out_idx[t] = b->c[t].j;
        if (out_dist) {
            double E = b->c[t].D;
            out_dist[t] = metric == ICL_METRIC_EUCLIDEAN ? sqrt(E) : 0.5 * E;
        }
    }
}

/* kNN of all rows with a prepared workspace: per row block, one parallel region computes the
 * Gram tiles (upper triangle only when the block is the whole square), mirrors, and selects. */
static int knn_run(const float *X, knn_ws *w, icl_metric metric, int k, int sorted, int *idx,
                   double *dist, icl_err *err) {
    int N = w->N;
    int oom = 0;
    for (int r0 = 0; r0 < N; r0 += w->R) {
        int nr = N - r0 < w->R ? N - r0 : w->R;
        int sym = nr == N;
        int ta = (nr + TB - 1) / TB, tb = (N + TB - 1) / TB;
        int ntile = sym ? ta * (ta + 1) / 2 : ta * tb;
#pragma omp parallel
        {
            row_buf b;
            float *tile = malloc((size_t)TB * TB * sizeof(float));
            b.lo = malloc((size_t)N * sizeof(double));
            b.hi = malloc((size_t)N * sizeof(double));
            b.tmp = malloc((size_t)N * sizeof(double));
            b.c = malloc((size_t)N * sizeof(cand));
            int ok = tile && b.lo && b.hi && b.tmp && b.c;
            if (!ok) {
#pragma omp atomic write
                oom = 1;
            }
#pragma omp for schedule(dynamic, 1)
            for (int t = 0; t < ntile; t++) {
                if (!ok) continue;
                int a, bb;
                if (sym) { /* t -> (a, bb) with a <= bb, row-major over the upper triangle */
                    a = 0;
                    int rem = t;
                    while (rem >= ta - a) { rem -= ta - a; a++; }
                    bb = a + rem;
                } else {
                    a = t / tb;
                    bb = t % tb;
                }
                gram_tile(w, r0, nr, a, bb, tile);
            }
            if (sym) {
                /* mirror the upper triangle into the lower one, in 64 x 64 blocks for the cache */
#pragma omp for schedule(dynamic, 1)
                for (int bi = 0; bi < N; bi += 64)
                    for (int bj = 0; bj <= bi; bj += 64)
                        for (int i = bi; i < bi + 64 && i < N; i++)
                            for (int j = bj; j < bj + 64 && j < i; j++)
                                w->G[(size_t)i * N + j] = w->G[(size_t)j * N + i];
            }
#pragma omp for schedule(dynamic, 8)
            for (int t = 0; t < nr; t++) {
                if (!ok || oom) continue;
                int i = r0 + t;
                knn_row(X, w, metric, i, w->G + (size_t)t * N, k, sorted, &b, idx + (size_t)i * k,
                        dist ? dist + (size_t)i * k : NULL);
            }
            free(tile); free(b.lo); free(b.hi); free(b.tmp); free(b.c);
        }
        if (oom) return icl_errf(err, "out of memory in kNN search");
    }
    return 0;
}

static int check_sizes(int N, int d, int k, icl_err *err) {
    if (N < 2) return icl_errf(err, "kNN needs at least 2 points, got %d", N);
    if (d < 1) return icl_errf(err, "kNN needs at least 1 dimension, got %d", d);
    if (k < 1) return icl_errf(err, "k must be at least 1, got %d", k);
    if (k > N - 1)
        return icl_errf(err, "k = %d needs at least k+1 = %d points (leave-one-out), got %d", k, k + 1, N);
    return 0;
}

int icl_knn(const float *X, int N, int d, int k, icl_metric metric, int *idx, double *dist,
            icl_err *err) {
    if (!X || !idx) return icl_errf(err, "icl_knn: NULL argument");
    if (metric != ICL_METRIC_EUCLIDEAN && metric != ICL_METRIC_COSINE)
        return icl_errf(err, "unknown metric %d", (int)metric);
    if (check_sizes(N, d, k, err)) return -1;
    knn_ws w;
    if (ws_alloc(&w, N, d, err)) return -1;
    int rc = ws_prepare(&w, X, metric, err);
    if (!rc) rc = knn_run(X, &w, metric, k, 1, idx, dist, err);
    ws_free(&w);
    return rc;
}

/* ---- Task decodability ---------------------------------------------------------------------- */
int icl_knn_vote(const int *idx, const int *labels, int N, int k, int n_classes, int *pred,
                 icl_err *err) {
    if (!idx || !labels || !pred) return icl_errf(err, "icl_knn_vote: NULL argument");
    if (N < 1 || k < 1 || n_classes < 1) return icl_errf(err, "icl_knn_vote: bad sizes");
    int *cnt = calloc((size_t)n_classes, sizeof(int));
    if (!cnt) return icl_errf(err, "out of memory");
    for (int i = 0; i < N; i++) {
        for (int c = 0; c < n_classes; c++) cnt[c] = 0;
        for (int t = 0; t < k; t++) {
            int j = idx[(size_t)i * k + t];
            if (j < 0 || j >= N) { free(cnt); return icl_errf(err, "neighbour index %d out of range", j); }
            int lab = labels[j];
            if (lab < 0 || lab >= n_classes) {
                free(cnt);
                return icl_errf(err, "label %d of point %d out of range [0, %d)", lab, j, n_classes);
            }
            cnt[lab]++;
        }
        int best = 0; /* first maximum = smallest tied label, as sklearn */
        for (int c = 1; c < n_classes; c++)
            if (cnt[c] > cnt[best]) best = c;
        pred[i] = best;
    }
    free(cnt);
    return 0;
}

/* Validates labels and fills the chance levels. */
static int td_labels(const int *labels, int N, int n_classes, int *count, icl_td_stats *st,
                     icl_err *err) {
    if (n_classes < 2) return icl_errf(err, "need at least two classes (n_classes = %d)", n_classes);
    for (int c = 0; c < n_classes; c++) count[c] = 0;
    for (int i = 0; i < N; i++) {
        if (labels[i] < 0 || labels[i] >= n_classes)
            return icl_errf(err, "label %d of point %d out of range [0, %d)", labels[i], i, n_classes);
        count[labels[i]]++;
    }
    int present = 0, maxc = 0;
    for (int c = 0; c < n_classes; c++) {
        if (count[c]) present++;
        if (count[c] > maxc) maxc = count[c];
    }
    if (present < 2) return icl_errf(err, "need at least two classes (all %d points have label %d)", N, labels[0]);
    st->n_present = present;
    st->chance_uniform = 1.0 / present;
    st->chance_majority = (double)maxc / N;
    st->overall = NAN;
    return 0;
}

static double td_score(const int *labels, const int *pred, int N, int n_classes, const int *count,
                       double *per_class, int *hit) {
    int total = 0;
    for (int c = 0; c < n_classes; c++) hit[c] = 0;
    for (int i = 0; i < N; i++)
        if (pred[i] == labels[i]) { hit[labels[i]]++; total++; }
    if (per_class)
        for (int c = 0; c < n_classes; c++) per_class[c] = count[c] ? (double)hit[c] / count[c] : NAN;
    return (double)total / N;
}

int icl_td_layers(const float *X, int L, const int *labels, int N, int d, int n_classes, int k,
                  icl_metric metric, double *overall, double *per_class, int *pred,
                  icl_td_stats *stats, icl_err *err) {
    if (!X || !labels) return icl_errf(err, "icl_td: NULL argument");
    if (L < 1) return icl_errf(err, "icl_td: need at least one layer, got %d", L);
    if (metric != ICL_METRIC_EUCLIDEAN && metric != ICL_METRIC_COSINE)
        return icl_errf(err, "unknown metric %d", (int)metric);
    if (check_sizes(N, d, k, err)) return -1;
    if (n_classes < 2) return icl_errf(err, "need at least two classes (n_classes = %d)", n_classes);
    int *count = malloc((size_t)n_classes * sizeof(int));
    int *hit = malloc((size_t)n_classes * sizeof(int));
    int *idx = malloc((size_t)N * k * sizeof(int));
    int *pbuf = malloc((size_t)N * sizeof(int));
    knn_ws w;
    memset(&w, 0, sizeof w);
    int rc = -1;
    icl_td_stats st;
    if (!count || !hit || !idx || !pbuf) { icl_errf(err, "out of memory"); goto done; }
    if (td_labels(labels, N, n_classes, count, &st, err)) goto done;
    if (ws_alloc(&w, N, d, err)) goto done;
    for (int l = 0; l < L; l++) {
        const float *Xl = X + (size_t)l * N * d;
        if (ws_prepare(&w, Xl, metric, err) || knn_run(Xl, &w, metric, k, 0, idx, NULL, err)) {
            if (L > 1) icl_err_prefix(err, "layer %d: ", l);
            goto done;
        }
        int *pl = pred ? pred + (size_t)l * N : pbuf;
        if (icl_knn_vote(idx, labels, N, k, n_classes, pl, err)) goto done;
        st.overall = td_score(labels, pl, N, n_classes, count,
                              per_class ? per_class + (size_t)l * n_classes : NULL, hit);
        if (overall) overall[l] = st.overall;
    }
    if (stats) *stats = st;
    rc = 0;
done:
    ws_free(&w);
    free(count); free(hit); free(idx); free(pbuf);
    return rc;
}

int icl_td(const float *X, const int *labels, int N, int d, int n_classes, int k, icl_metric metric,
           int *pred, double *per_class, icl_td_stats *stats, icl_err *err) {
    return icl_td_layers(X, 1, labels, N, d, n_classes, k, metric, NULL, per_class, pred, stats, err);
}
