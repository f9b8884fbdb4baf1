/* UMAP: exact k-NN graph, smooth-kNN memberships, fuzzy union, spectral initialisation by subspace
 * iteration, and single-threaded SGD with negative sampling; see icl_umap.h for the algorithm and
 * its defaults. */
#include "iclab/icl_umap.h"
#include "iclab/icl_pca.h"
#include "iclab/icl_rng.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

void icl_umap_opts_default(icl_umap_opts *o) {
    o->n_neighbors = 15;
    o->min_dist = 0.1;
    o->spread = 1.0;
    o->n_components = 2;
    o->n_epochs = 0;
    o->learning_rate = 1.0;
    o->negative_sample_rate = 5;
    o->repulsion_strength = 1.0;
    o->metric = ICL_METRIC_EUCLIDEAN;
    o->init = ICL_UMAP_INIT_SPECTRAL;
    o->seed = 42;
}

/* ---- a, b from min_dist ------------------------------------------------------------------------ */
#define AB_N 300

static double ab_cost(const double *x, const double *y, double a, double b) {
    double c = 0;
    for (int i = 0; i < AB_N; i++) {
        double u = x[i] > 0 ? pow(x[i], 2 * b) : 0.0;
        double r = 1.0 / (1.0 + a * u) - y[i];
        c += r * r;
    }
    return c;
}

int icl_umap_find_ab(double spread, double min_dist, double *a, double *b, icl_err *err) {
    if (!a || !b) return icl_errf(err, "icl_umap_find_ab: NULL argument");
    if (!(spread > 0) || !isfinite(spread) || !(min_dist >= 0) || !(min_dist < 3 * spread))
        return icl_errf(err, "UMAP needs spread > 0 and 0 <= min_dist < 3 spread (got %g, %g)", spread, min_dist);
    double x[AB_N], y[AB_N];
    for (int i = 0; i < AB_N; i++) {
        x[i] = 3.0 * spread * i / (AB_N - 1);
        y[i] = x[i] < min_dist ? 1.0 : exp(-(x[i] - min_dist) / spread);
    }
    /* Levenberg-Marquardt from (1, 1), as scipy's curve_fit starts */
    double pa = 1, pb = 1, lam = 1e-3, cost = ab_cost(x, y, pa, pb);
    for (int it = 0; it < 2000; it++) {
        double JJ[3] = {0, 0, 0}, Jr[2] = {0, 0};
        for (int i = 0; i < AB_N; i++) {
            double u = x[i] > 0 ? pow(x[i], 2 * pb) : 0.0;
            double f = 1.0 / (1.0 + pa * u), r = f - y[i];
            double ja = -u * f * f, jb = x[i] > 0 ? -pa * u * 2.0 * log(x[i]) * f * f : 0.0;
            JJ[0] += ja * ja; JJ[1] += ja * jb; JJ[2] += jb * jb;
            Jr[0] += ja * r; Jr[1] += jb * r;
        }
        double m00 = JJ[0] * (1 + lam), m11 = JJ[2] * (1 + lam), m01 = JJ[1];
        double det = m00 * m11 - m01 * m01;
        if (!(fabs(det) > 0)) break;
        double da = -(m11 * Jr[0] - m01 * Jr[1]) / det, db = -(m00 * Jr[1] - m01 * Jr[0]) / det;
        double na = pa + da, nb = pb + db;
        double nc = na > 0 && nb > 0 ? ab_cost(x, y, na, nb) : INFINITY;
        if (nc < cost) {
            int small = fabs(da) <= 1e-13 * fabs(pa) && fabs(db) <= 1e-13 * fabs(pb);
            pa = na; pb = nb; cost = nc;
            lam = fmax(lam / 10, 1e-15);
            if (small) break;
        } else {
            lam *= 10;
            if (lam > 1e16) break; /* no further decrease at double precision */
        }
    }
    if (!(pa > 0) || !(pb > 0) || !isfinite(pa) || !isfinite(pb))
        return icl_errf(err, "UMAP: fitting a, b for min_dist %g failed", min_dist);
    *a = pa;
    *b = pb;
    return 0;
}

/* ---- smooth kNN distances ---------------------------------------------------------------------- */
int icl_umap_smooth_knn(const double *dist, int N, int k, double *sigma, double *rho, icl_err *err) {
    if (!dist || !sigma || !rho) return icl_errf(err, "icl_umap_smooth_knn: NULL argument");
    if (N < 1 || k < 2) return icl_errf(err, "smooth kNN needs N >= 1 and k >= 2 (got %d, %d)", N, k);
    const double target = log2((double)k), tol = 1e-5, min_scale = 1e-3;
    double mean_all = 0;
    for (size_t t = 0; t < (size_t)N * k; t++) {
        if (!isfinite(dist[t]) || dist[t] < 0) return icl_errf(err, "smooth kNN: bad distance %g", dist[t]);
        mean_all += dist[t];
    }
    mean_all /= (double)N * k;
    for (int i = 0; i < N; i++) {
        const double *di = dist + (size_t)i * k;
        /* local_connectivity = 1: rho is the first non-zero distance */
        rho[i] = 0;
        for (int j = 0; j < k; j++)
            if (di[j] > 0) { rho[i] = di[j]; break; }
        double lo = 0, hi = INFINITY, mid = 1.0;
        for (int it = 0; it < 64; it++) {
            double psum = 0;
            for (int j = 1; j < k; j++) {
                double dd = di[j] - rho[i];
                psum += dd > 0 ? exp(-dd / mid) : 1.0;
            }
            if (fabs(psum - target) < tol) break;
            if (psum > target) {
                hi = mid;
                mid = (lo + hi) / 2;
            } else {
                lo = mid;
                mid = isinf(hi) ? mid * 2 : (lo + hi) / 2;
            }
        }
        sigma[i] = mid;
        double mean_i = 0;
        for (int j = 0; j < k; j++) mean_i += di[j];
        mean_i /= k;
        double floor_ = min_scale * (rho[i] > 0 ? mean_i : mean_all);
        if (sigma[i] < floor_) sigma[i] = floor_;
    }
    return 0;
}

/* ---- fuzzy graph ------------------------------------------------------------------------------- */
typedef struct dedge { int r, c, t; double w; } dedge; /* t: 0 = p_rc, 1 = p_cr (transpose) */

static int dedge_cmp(const void *pa, const void *pb) {
    const dedge *a = pa, *b = pb;
    if (a->r != b->r) return a->r < b->r ? -1 : 1;
    if (a->c != b->c) return a->c < b->c ? -1 : 1;
    return a->t - b->t;
}

typedef struct graph {
    int n, nnz;
    int *ptr, *col; /* CSR, columns ascending */
    double *w;
} graph;

static void graph_free(graph *g) { free(g->ptr); free(g->col); free(g->w); memset(g, 0, sizeof *g); }

/* Symmetric fuzzy union of the directed memberships of idx/dist (N,k; self first). */
static int fuzzy_graph(const int *idx, const double *dist, int N, int k, graph *g, icl_err *err) {
    double *sigma = malloc(sizeof(double) * N), *rho = malloc(sizeof(double) * N);
    dedge *e = malloc(sizeof(dedge) * 2 * (size_t)N * k);
    int rc = -1;
    memset(g, 0, sizeof *g);
    if (!sigma || !rho || !e) { icl_errf(err, "out of memory for the UMAP graph"); goto done; }
    if (icl_umap_smooth_knn(dist, N, k, sigma, rho, err)) goto done;
    size_t ne = 0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < k; j++) {
            int c = idx[(size_t)i * k + j];
            if (c == i) continue; /* membership 0, eliminated */
            double dd = dist[(size_t)i * k + j] - rho[i];
            double v = (dd <= 0 || sigma[i] == 0) ? 1.0 : exp(-dd / sigma[i]);
            if (!(v > 0)) continue;
            e[ne++] = (dedge){i, c, 0, v};
            e[ne++] = (dedge){c, i, 1, v};
        }
    qsort(e, ne, sizeof(dedge), dedge_cmp);
    g->n = N;
    g->ptr = calloc((size_t)N + 1, sizeof(int));
    g->col = malloc(sizeof(int) * (ne > 0 ? ne : 1));
    g->w = malloc(sizeof(double) * (ne > 0 ? ne : 1));
    if (!g->ptr || !g->col || !g->w) { icl_errf(err, "out of memory for the UMAP graph"); goto done; }
    int nnz = 0;
    for (size_t s = 0; s < ne;) {
        size_t t = s;
        double p = 0, q = 0;
        while (t < ne && e[t].r == e[s].r && e[t].c == e[s].c) {
            if (e[t].t == 0) p = e[t].w;
            else q = e[t].w;
            t++;
        }
        g->col[nnz] = e[s].c;
        g->w[nnz] = p + q - p * q;
        g->ptr[e[s].r + 1]++;
        nnz++;
        s = t;
    }
    for (int i = 0; i < N; i++) g->ptr[i + 1] += g->ptr[i];
    g->nnz = nnz;
    rc = 0;
done:
    free(sigma); free(rho); free(e);
    if (rc) graph_free(g);
    return rc;
}

/* Drops edges below wmax / n_epochs, in place. */
static void graph_prune(graph *g, int n_epochs) {
    double wmax = 0;
    for (int t = 0; t < g->nnz; t++) wmax = fmax(wmax, g->w[t]);
    double thr = wmax / n_epochs;
    int out = 0, start = 0;
    for (int i = 0; i < g->n; i++) {
        int end = g->ptr[i + 1];
        for (int t = start; t < end; t++)
            if (!(g->w[t] < thr)) { g->col[out] = g->col[t]; g->w[out] = g->w[t]; out++; }
        start = end;
        g->ptr[i + 1] = out;
    }
    g->nnz = out;
}

/* Connected components, numbered by their smallest node; returns the count. */
static int components(const graph *g, int *comp, int *queue) {
    int nc = 0;
    for (int i = 0; i < g->n; i++) comp[i] = -1;
    for (int s = 0; s < g->n; s++) {
        if (comp[s] >= 0) continue;
        int qh = 0, qt = 0;
        queue[qt++] = s;
        comp[s] = nc;
        while (qh < qt) {
            int u = queue[qh++];
            for (int t = g->ptr[u]; t < g->ptr[u + 1]; t++)
                if (comp[g->col[t]] < 0) { comp[g->col[t]] = nc; queue[qt++] = g->col[t]; }
        }
        nc++;
    }
    return nc;
}

/* ---- small dense symmetric eigenproblems (cyclic Jacobi) ----------------------------------------- */
/* A (n,n) symmetric, destroyed; vals (n) and V (n,n) with eigenvector c in column c, sorted by
 * decreasing eigenvalue. */
static void jacobi_eig(double *A, int n, double *vals, double *V) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) V[i * n + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, tot = 0;
        for (int i = 0; i < n; i++)
            for (int j = 0; j < n; j++) {
                tot += A[i * n + j] * A[i * n + j];
                if (i != j) off += A[i * n + j] * A[i * n + j];
            }
        if (off <= 1e-30 * tot || off == 0) break;
        for (int p = 0; p < n - 1; p++)
            for (int q = p + 1; q < n; q++) {
                double apq = A[p * n + q];
                if (apq == 0) continue;
                double th = (A[q * n + q] - A[p * n + p]) / (2 * apq);
                double t = (th >= 0 ? 1.0 : -1.0) / (fabs(th) + sqrt(th * th + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (int k = 0; k < n; k++) { /* columns p, q */
                    double akp = A[k * n + p], akq = A[k * n + q];
                    A[k * n + p] = c * akp - s * akq;
                    A[k * n + q] = s * akp + c * akq;
                }
                for (int k = 0; k < n; k++) { /* rows p, q */
                    double apk = A[p * n + k], aqk = A[q * n + k];
                    A[p * n + k] = c * apk - s * aqk;
                    A[q * n + k] = s * apk + c * aqk;
                }
                for (int k = 0; k < n; k++) {
                    double vkp = V[k * n + p], vkq = V[k * n + q];
                    V[k * n + p] = c * vkp - s * vkq;
                    V[k * n + q] = s * vkp + c * vkq;
                }
            }
    }
    for (int i = 0; i < n; i++) vals[i] = A[i * n + i];
    for (int i = 0; i < n; i++) { /* selection sort, descending; columns follow */
        int best = i;
        for (int j = i + 1; j < n; j++)
            if (vals[j] > vals[best]) best = j;
        if (best != i) {
            double t = vals[i]; vals[i] = vals[best]; vals[best] = t;
            for (int k = 0; k < n; k++) { double u = V[k * n + i]; V[k * n + i] = V[k * n + best]; V[k * n + best] = u; }
        }
    }
}

/* ---- spectral layout of one component --------------------------------------------------------- */
typedef struct comp_ctx {
    const graph *g;
    const int *nodes; /* (n) global ids, ascending */
    const int *local; /* (N) global -> local */
    int n;
    const double *dis; /* (n) D^-1/2 */
} comp_ctx;

/* Z = A Q for A = (I + D^-1/2 W D^-1/2) / 2, Q and Z (n,p) row-major. */
static void comp_matvec(const comp_ctx *cx, const double *Q, double *Z, int p) {
    for (int u = 0; u < cx->n; u++) {
        int gu = cx->nodes[u];
        double *z = Z + (size_t)u * p;
        for (int c = 0; c < p; c++) z[c] = 0;
        for (int t = cx->g->ptr[gu]; t < cx->g->ptr[gu + 1]; t++) {
            int v = cx->local[cx->g->col[t]];
            double wv = cx->g->w[t] * cx->dis[v];
            const double *q = Q + (size_t)v * p;
            for (int c = 0; c < p; c++) z[c] += wv * q[c];
        }
        const double *qu = Q + (size_t)u * p;
        for (int c = 0; c < p; c++) z[c] = 0.5 * (qu[c] + cx->dis[u] * z[c]);
    }
}

/* Removes the v0 component from every column and orthonormalises (modified Gram-Schmidt, twice);
 * a column that vanishes is replaced by a random one. */
static void orthonormalise(double *Q, int n, int p, const double *v0, icl_rng *rng) {
    for (int c = 0; c < p; c++) {
        for (int attempt = 0; attempt < 5; attempt++) {
            double before = 0;
            for (int u = 0; u < n; u++) before += Q[(size_t)u * p + c] * Q[(size_t)u * p + c];
            for (int pass = 0; pass < 2; pass++) {
                double s = 0;
                for (int u = 0; u < n; u++) s += v0[u] * Q[(size_t)u * p + c];
                for (int u = 0; u < n; u++) Q[(size_t)u * p + c] -= s * v0[u];
                for (int c2 = 0; c2 < c; c2++) {
                    s = 0;
                    for (int u = 0; u < n; u++) s += Q[(size_t)u * p + c2] * Q[(size_t)u * p + c];
                    for (int u = 0; u < n; u++) Q[(size_t)u * p + c] -= s * Q[(size_t)u * p + c2];
                }
            }
            double nr = 0;
            for (int u = 0; u < n; u++) nr += Q[(size_t)u * p + c] * Q[(size_t)u * p + c];
            if (nr > 1e-20 * before && nr > 0) {
                nr = 1 / sqrt(nr);
                for (int u = 0; u < n; u++) Q[(size_t)u * p + c] *= nr;
                break;
            }
            for (int u = 0; u < n; u++) Q[(size_t)u * p + c] = icl_rng_normal(rng);
        }
    }
}

/* The dim leading non-trivial eigenvectors of the component's normalised adjacency, into out
 * (n,dim). Sets *converged. Returns 0, or -1 on memory failure. */
static int spectral_component(const comp_ctx *cx, int dim, icl_rng *rng, double *out, int *converged) {
    int n = cx->n, p = dim + 4;
    if (p > n - 1) p = n - 1;
    size_t np_ = (size_t)n * p;
    double *Q = malloc(sizeof(double) * np_), *Z = malloc(sizeof(double) * np_);
    double *Qr = malloc(sizeof(double) * np_), *Zr = malloc(sizeof(double) * np_);
    double *v0 = malloc(sizeof(double) * n), *H = malloc(sizeof(double) * p * p), *V = malloc(sizeof(double) * p * p);
    double *th = malloc(sizeof(double) * p);
    int rc = -1;
    *converged = 0;
    if (!Q || !Z || !Qr || !Zr || !v0 || !H || !V || !th) goto done;
    /* the trivial eigenvector (eigenvalue 1) is D^1/2 1, known exactly: deflate it */
    double nv = 0;
    for (int u = 0; u < n; u++) { v0[u] = 1.0 / cx->dis[u]; nv += v0[u] * v0[u]; }
    nv = 1 / sqrt(nv);
    for (int u = 0; u < n; u++) v0[u] *= nv;
    for (size_t t = 0; t < np_; t++) Q[t] = icl_rng_normal(rng);
    orthonormalise(Q, n, p, v0, rng);
    const int max_it = 3000, rr_every = 10;
    const double tol = 1e-6;
    for (int it = 1; it <= max_it; it++) {
        comp_matvec(cx, Q, Z, p);
        if (it % rr_every && it < max_it) {
            memcpy(Q, Z, sizeof(double) * np_);
            orthonormalise(Q, n, p, v0, rng);
            continue;
        }
        /* Rayleigh-Ritz: H = Q^T A Q; Qr = Q V, Zr = A Qr = Z V */
        for (int a = 0; a < p; a++)
            for (int b = 0; b < p; b++) {
                double sum = 0;
                for (int u = 0; u < n; u++) sum += Q[(size_t)u * p + a] * Z[(size_t)u * p + b];
                H[a * p + b] = sum;
            }
        for (int a = 0; a < p; a++)
            for (int b = 0; b < a; b++) H[a * p + b] = H[b * p + a] = 0.5 * (H[a * p + b] + H[b * p + a]);
        jacobi_eig(H, p, th, V);
        for (int u = 0; u < n; u++)
            for (int c = 0; c < p; c++) {
                double sq = 0, sz = 0;
                for (int a = 0; a < p; a++) {
                    sq += Q[(size_t)u * p + a] * V[a * p + c];
                    sz += Z[(size_t)u * p + a] * V[a * p + c];
                }
                Qr[(size_t)u * p + c] = sq;
                Zr[(size_t)u * p + c] = sz;
            }
        double res = 0;
        for (int c = 0; c < dim; c++) {
            double r2 = 0;
            for (int u = 0; u < n; u++) {
                double v = Zr[(size_t)u * p + c] - th[c] * Qr[(size_t)u * p + c];
                r2 += v * v;
            }
            res = fmax(res, sqrt(r2));
        }
        if (res < tol || it == max_it) {
            *converged = res < tol;
            for (int u = 0; u < n; u++)
                for (int c = 0; c < dim; c++) out[(size_t)u * dim + c] = Qr[(size_t)u * p + c];
            break;
        }
        memcpy(Q, Zr, sizeof(double) * np_);
        orthonormalise(Q, n, p, v0, rng);
    }
    rc = 0;
done:
    free(Q); free(Z); free(Qr); free(Zr); free(v0); free(H); free(V); free(th);
    return rc;
}

/* ---- initialisation ---------------------------------------------------------------------------- */
/* Meta positions of ncomp components (ncomp, dim): umap-learn's +-unit axes when there are at most
 * 2*dim components, else the top principal axes of the component centroids in data space, scaled
 * to max |coordinate| 1. */
static int meta_layout(const float *X, int N, int d, const int *comp, int ncomp, int dim, icl_rng *rng,
                       double *meta) {
    memset(meta, 0, sizeof(double) * (size_t)ncomp * dim);
    if (ncomp <= 2 * dim) {
        int k = (ncomp + 1) / 2;
        for (int c = 0; c < ncomp; c++) meta[(size_t)c * dim + (c % k)] = c < k ? 1.0 : -1.0;
        return 0;
    }
    int ok = 0;
    if (ncomp <= 1000) {
        double *cen = calloc((size_t)ncomp * d, sizeof(double)), *G = malloc(sizeof(double) * ncomp * ncomp);
        double *V = malloc(sizeof(double) * ncomp * ncomp), *vals = malloc(sizeof(double) * ncomp);
        int *cnt = calloc((size_t)ncomp, sizeof(int));
        if (!cen || !G || !V || !vals || !cnt) {
            free(cen); free(G); free(V); free(vals); free(cnt);
            return -1;
        }
        for (int i = 0; i < N; i++) {
            cnt[comp[i]]++;
            for (int t = 0; t < d; t++) cen[(size_t)comp[i] * d + t] += X[(size_t)i * d + t];
        }
        for (int c = 0; c < ncomp; c++)
            for (int t = 0; t < d; t++) cen[(size_t)c * d + t] /= cnt[c];
        for (int t = 0; t < d; t++) { /* centre the centroids */
            double m = 0;
            for (int c = 0; c < ncomp; c++) m += cen[(size_t)c * d + t];
            m /= ncomp;
            for (int c = 0; c < ncomp; c++) cen[(size_t)c * d + t] -= m;
        }
        for (int a = 0; a < ncomp; a++)
            for (int b = 0; b <= a; b++) {
                double s = 0;
                for (int t = 0; t < d; t++) s += cen[(size_t)a * d + t] * cen[(size_t)b * d + t];
                G[a * ncomp + b] = G[b * ncomp + a] = s;
            }
        jacobi_eig(G, ncomp, vals, V);
        double mx = 0;
        for (int c = 0; c < ncomp; c++)
            for (int j = 0; j < dim && j < ncomp; j++) {
                double v = V[c * ncomp + j] * sqrt(fmax(vals[j], 0));
                meta[(size_t)c * dim + j] = v;
                mx = fmax(mx, fabs(v));
            }
        if (mx > 0) {
            for (size_t t = 0; t < (size_t)ncomp * dim; t++) meta[t] /= mx;
            ok = 1;
        }
        free(cen); free(G); free(V); free(vals); free(cnt);
    }
    if (!ok)
        for (size_t t = 0; t < (size_t)ncomp * dim; t++) meta[t] = 2 * icl_rng_uniform(rng) - 1;
    return 0;
}

/* Spectral layout of the whole graph into emb (N,dim), component by component. */
static int spectral_init(const graph *g, const float *X, int d, int dim, icl_rng *rng, double *emb,
                         int *all_converged, icl_err *err) {
    int N = g->n, rc = -1;
    int *comp = malloc(sizeof(int) * N), *queue = malloc(sizeof(int) * N), *local = malloc(sizeof(int) * N);
    int *nodes = malloc(sizeof(int) * N);
    double *dis = malloc(sizeof(double) * N), *lay = malloc(sizeof(double) * (size_t)N * dim), *meta = NULL;
    *all_converged = 1;
    if (!comp || !queue || !local || !nodes || !dis || !lay) goto oom;
    int ncomp = components(g, comp, queue);
    meta = malloc(sizeof(double) * (size_t)ncomp * dim);
    if (!meta) goto oom;
    if (ncomp > 1 && meta_layout(X, N, d, comp, ncomp, dim, rng, meta)) goto oom;
    for (int c = 0; c < ncomp; c++) {
        int n = 0;
        for (int i = 0; i < N; i++)
            if (comp[i] == c) { local[i] = n; nodes[n++] = i; }
        double range = 1.0, off[64] = {0};
        if (ncomp > 1) {
            double best = INFINITY;
            for (int c2 = 0; c2 < ncomp; c2++) {
                double s = 0;
                for (int j = 0; j < dim; j++) {
                    double v = meta[(size_t)c * dim + j] - meta[(size_t)c2 * dim + j];
                    s += v * v;
                }
                if (s > 0 && s < best) best = s;
            }
            range = isinf(best) ? 1.0 : sqrt(best) / 2;
            for (int j = 0; j < dim; j++) off[j] = meta[(size_t)c * dim + j];
        }
        int use_random = n < 2 * dim || n <= dim + 1;
        if (!use_random) {
            for (int u = 0; u < n; u++) {
                double deg = 0;
                for (int t = g->ptr[nodes[u]]; t < g->ptr[nodes[u] + 1]; t++) deg += g->w[t];
                dis[u] = 1 / sqrt(deg);
            }
            comp_ctx cx = {g, nodes, local, n, dis};
            int conv;
            if (spectral_component(&cx, dim, rng, lay, &conv)) goto oom;
            if (!conv) *all_converged = 0;
            double mx = 0;
            for (size_t t = 0; t < (size_t)n * dim; t++) mx = fmax(mx, fabs(lay[t]));
            if (!(mx > 0)) use_random = 1;
            else
                for (int u = 0; u < n; u++)
                    for (int j = 0; j < dim; j++)
                        emb[(size_t)nodes[u] * dim + j] = lay[(size_t)u * dim + j] * (ncomp > 1 ? range / mx : 1.0) + off[j];
        }
        if (use_random)
            for (int u = 0; u < n; u++)
                for (int j = 0; j < dim; j++)
                    emb[(size_t)nodes[u] * dim + j] = (2 * icl_rng_uniform(rng) - 1) * range + off[j];
    }
    rc = 0;
    goto done;
oom:
    icl_errf(err, "out of memory in the UMAP spectral initialisation");
done:
    free(comp); free(queue); free(local); free(nodes); free(dis); free(lay); free(meta);
    return rc;
}

/* ---- optimisation ------------------------------------------------------------------------------ */
static inline double clip4(double v) { return v > 4 ? 4 : (v < -4 ? -4 : v); }

/* umap-learn's optimize_layout_euclidean with move_other: every attractive edge (head, tail) is
 * sampled once per epochs_per_sample epochs, each time with negative_sample_rate random repulsive
 * partners for its head. */
static int optimise(const graph *g, double *emb, int dim, int n_epochs, double a, double b, double gamma,
                    double lr0, int neg_rate, icl_rng *rng, icl_err *err) {
    int E = g->nnz, N = g->n;
    int *head = malloc(sizeof(int) * (E ? E : 1));
    double *eps = malloc(sizeof(double) * (E ? E : 1)), *next = malloc(sizeof(double) * (E ? E : 1));
    double *epsn = malloc(sizeof(double) * (E ? E : 1)), *nextn = malloc(sizeof(double) * (E ? E : 1));
    if (!head || !eps || !next || !epsn || !nextn) {
        free(head); free(eps); free(next); free(epsn); free(nextn);
        return icl_errf(err, "out of memory in UMAP optimisation");
    }
    double wmax = 0;
    for (int t = 0; t < E; t++) wmax = fmax(wmax, g->w[t]);
    for (int i = 0; i < N; i++)
        for (int t = g->ptr[i]; t < g->ptr[i + 1]; t++) head[t] = i;
    for (int t = 0; t < E; t++) {
        eps[t] = wmax / g->w[t]; /* = n_epochs / (n_epochs * w / wmax) */
        next[t] = eps[t];
        epsn[t] = neg_rate > 0 ? eps[t] / neg_rate : INFINITY;
        nextn[t] = epsn[t];
    }
    double lr = lr0;
    for (int n = 0; n < n_epochs; n++) {
        for (int t = 0; t < E; t++) {
            if (next[t] > n) continue;
            int j = head[t], k = g->col[t];
            double *cur = emb + (size_t)j * dim, *oth = emb + (size_t)k * dim;
            double d2 = 0;
            for (int c = 0; c < dim; c++) d2 += (cur[c] - oth[c]) * (cur[c] - oth[c]);
            double gc = 0;
            if (d2 > 0) {
                double pb = pow(d2, b);
                gc = -2.0 * a * b * (pb / d2) / (a * pb + 1.0);
            }
            for (int c = 0; c < dim; c++) {
                double gd = clip4(gc * (cur[c] - oth[c]));
                cur[c] += gd * lr;
                oth[c] -= gd * lr;
            }
            next[t] += eps[t];
            int nneg = neg_rate > 0 ? (int)((n - nextn[t]) / epsn[t]) : 0;
            for (int q = 0; q < nneg; q++) {
                int kk = (int)icl_rng_below(rng, (uint64_t)N);
                oth = emb + (size_t)kk * dim;
                d2 = 0;
                for (int c = 0; c < dim; c++) d2 += (cur[c] - oth[c]) * (cur[c] - oth[c]);
                if (d2 > 0) {
                    gc = 2.0 * gamma * b / ((0.001 + d2) * (a * pow(d2, b) + 1.0));
                } else if (j == kk) {
                    continue;
                } else {
                    gc = 0;
                }
                if (gc > 0)
                    for (int c = 0; c < dim; c++) cur[c] += clip4(gc * (cur[c] - oth[c])) * lr;
            }
            if (nneg > 0) nextn[t] += nneg * epsn[t];
        }
        lr = lr0 * (1.0 - (double)n / n_epochs);
    }
    free(head); free(eps); free(next); free(epsn); free(nextn);
    return 0;
}

/* ---- driver ------------------------------------------------------------------------------------ */
int icl_umap(const float *X, int N, int d, const icl_umap_opts *opts, float *emb, icl_err *err) {
    if (!X || !emb) return icl_errf(err, "icl_umap: NULL argument");
    icl_umap_opts o;
    if (opts) o = *opts;
    else icl_umap_opts_default(&o);
    int dim = o.n_components;
    if (N < 4) return icl_errf(err, "UMAP needs at least 4 points, got %d", N);
    if (d < 1) return icl_errf(err, "UMAP needs at least 1 dimension, got %d", d);
    if (dim < 1 || dim > 64 || dim > N - 2)
        return icl_errf(err, "UMAP: n_components must be in 1..min(64, N-2), got %d", dim);
    if (o.n_neighbors < 2) return icl_errf(err, "UMAP: n_neighbors must be at least 2, got %d", o.n_neighbors);
    if (o.n_epochs < 0) return icl_errf(err, "UMAP: n_epochs must be >= 0 (0 = auto), got %d", o.n_epochs);
    if (!(o.learning_rate > 0) || !isfinite(o.learning_rate) || o.negative_sample_rate < 0 ||
        !(o.repulsion_strength >= 0) || !isfinite(o.repulsion_strength))
        return icl_errf(err, "UMAP: bad learning rate, negative sample rate or repulsion strength");
    if (o.metric != ICL_METRIC_EUCLIDEAN && o.metric != ICL_METRIC_COSINE)
        return icl_errf(err, "UMAP: unknown metric %d", (int)o.metric);
    if (o.init != ICL_UMAP_INIT_SPECTRAL && o.init != ICL_UMAP_INIT_PCA && o.init != ICL_UMAP_INIT_RANDOM)
        return icl_errf(err, "UMAP: unknown init %d", (int)o.init);
    if (o.init == ICL_UMAP_INIT_PCA && dim > d)
        return icl_errf(err, "UMAP: PCA init needs n_components <= d (%d > %d)", dim, d);
    double a, b;
    if (icl_umap_find_ab(o.spread, o.min_dist, &a, &b, err)) return -1;
    int n_epochs = o.n_epochs ? o.n_epochs : (N <= 10000 ? 500 : 200);
    int k = o.n_neighbors < N ? o.n_neighbors : N - 1; /* umap-learn: at most N - 1 */

    int *idx1 = malloc(sizeof(int) * (size_t)N * (k - 1)), *idx = malloc(sizeof(int) * (size_t)N * k);
    double *dist1 = malloc(sizeof(double) * (size_t)N * (k - 1)), *dist = malloc(sizeof(double) * (size_t)N * k);
    double *E = malloc(sizeof(double) * (size_t)N * dim);
    graph g;
    memset(&g, 0, sizeof g);
    int rc = -1;
    if (!idx1 || !idx || !dist1 || !dist || !E) { icl_errf(err, "out of memory for UMAP of %d points", N); goto done; }
    if (icl_knn(X, N, d, k - 1, o.metric, idx1, dist1, err)) { icl_err_prefix(err, "UMAP: "); goto done; }
    for (int i = 0; i < N; i++) { /* the point itself first, as umap-learn's neighbour lists */
        idx[(size_t)i * k] = i;
        dist[(size_t)i * k] = 0;
        memcpy(idx + (size_t)i * k + 1, idx1 + (size_t)i * (k - 1), sizeof(int) * (k - 1));
        memcpy(dist + (size_t)i * k + 1, dist1 + (size_t)i * (k - 1), sizeof(double) * (k - 1));
    }
    if (fuzzy_graph(idx, dist, N, k, &g, err)) goto done;
    graph_prune(&g, n_epochs);

    icl_rng rng_init, rng_sgd;
    icl_rng_seed_stream(&rng_init, o.seed, 1);
    icl_rng_seed_stream(&rng_sgd, o.seed, 2);
    if (o.init == ICL_UMAP_INIT_RANDOM) {
        for (size_t t = 0; t < (size_t)N * dim; t++) E[t] = 20 * icl_rng_uniform(&rng_init) - 10;
    } else {
        if (o.init == ICL_UMAP_INIT_SPECTRAL) {
            int conv;
            if (spectral_init(&g, X, d, dim, &rng_init, E, &conv, err)) goto done;
        } else {
            icl_pca p;
            if (icl_pca_fit(X, N, d, dim, &p, E, err)) { icl_err_prefix(err, "UMAP PCA init: "); goto done; }
            icl_pca_free(&p);
        }
        double mx = 0;
        for (size_t t = 0; t < (size_t)N * dim; t++) mx = fmax(mx, fabs(E[t]));
        double ex = mx > 0 ? 10.0 / mx : 1.0;
        for (size_t t = 0; t < (size_t)N * dim; t++) E[t] = E[t] * ex + 1e-4 * icl_rng_normal(&rng_init);
    }
    for (int j = 0; j < dim; j++) { /* each axis to [0, 10] */
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < N; i++) { lo = fmin(lo, E[(size_t)i * dim + j]); hi = fmax(hi, E[(size_t)i * dim + j]); }
        double sc = hi > lo ? 10.0 / (hi - lo) : 0.0;
        for (int i = 0; i < N; i++) E[(size_t)i * dim + j] = (E[(size_t)i * dim + j] - lo) * sc;
    }
    if (optimise(&g, E, dim, n_epochs, a, b, o.repulsion_strength, o.learning_rate, o.negative_sample_rate,
                 &rng_sgd, err))
        goto done;
    for (size_t t = 0; t < (size_t)N * dim; t++) {
        if (!isfinite(E[t])) { icl_errf(err, "UMAP produced a non-finite coordinate"); goto done; }
        emb[t] = (float)E[t];
    }
    rc = 0;
done:
    graph_free(&g);
    free(idx1); free(idx); free(dist1); free(dist); free(E);
    return rc;
}
