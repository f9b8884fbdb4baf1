/* Patching, head ablation and algorithm identification on the toy model (see icl_causal.h). */
#include "iclab/icl_causal.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_decode.h"
#include "iclab/icl_estim.h"
#include "iclab/icl_pca.h"
#include <cblas.h>

enum { STREAM_PATCH_MEAN = 4, STREAM_OFFBASIS = 5 }; /* the probe set itself is stream 3 (icl_decode.c) */

/* Forward over the whole batch in chunks; pred (B,K) = the model's predictions at the x tokens. */
static int predict(icl_model *m, const icl_batch *b, int chunk, const icl_hook *hooks, int n_hooks, float *pred,
                   icl_err *err) {
    if (n_hooks > 8) return icl_errf(err, "at most 8 hooks per prediction pass");
    int K = b->K, D = b->D, T = 2 * K, W = m->cfg.d_in;
    float *tokens = malloc(sizeof(float) * (size_t)chunk * T * W);
    if (!tokens) return icl_errf(err, "out of memory");
    int r = 0;
    for (int first = 0; first < b->B && !r; first += chunk) {
        int n = b->B - first < chunk ? b->B - first : chunk;
        icl_batch view = {.B = n, .K = K, .D = D, .x = b->x + (size_t)first * K * D, .y = b->y + (size_t)first * K};
        icl_batch_tokens(&view, W, tokens);
        /* per-sequence vectors and capture buffers hold the whole batch: point them at this chunk */
        icl_hook hk[8];
        for (int i = 0; i < n_hooks && i < 8; i++) {
            hk[i] = hooks[i];
            int w = hk[i].site == ICL_SITE_HEAD_OUT ? m->cfg.n_embd / m->cfg.n_head : m->cfg.n_embd;
            size_t np = hk[i].positions ? (size_t)hk[i].n_positions : (size_t)T;
            if (hk[i].per_sequence) hk[i].vec += (size_t)first * np * w;
            if (hk[i].action == ICL_HOOK_CAPTURE) hk[i].out += (size_t)first * np * w;
        }
        r = icl_model_set_hooks(m, n_hooks ? hk : NULL, n_hooks, err) || icl_model_forward(m, tokens, n, T, NULL, NULL, NULL, err);
        for (int i = 0; i < n && !r; i++)
            for (int k = 0; k < K; k++) pred[(size_t)(first + i) * K + k] = m->a[ICL_A_OUT][(size_t)i * T + 2 * k];
    }
    icl_model_set_hooks(m, NULL, 0, NULL);
    free(tokens);
    return r ? -1 : 0;
}

static double sq(double x) { return x * x; }

const char *icl_patch_site_name(int at) {
    static const char *const names[ICL_PATCH_N_SITES] = {"last-y", "all-y", "query", "all-tokens"};
    return at >= 0 && at < ICL_PATCH_N_SITES ? names[at] : NULL;
}

int icl_patch_paper_layer(int n_layer) {
    /* round half up; for n_layer >= 2 this is already within 1..n_layer-1 */
    return n_layer <= 1 ? 0 : (5 * n_layer + 6) / 12;
}

/* Sequence i's squared error, normalised: of its final prediction, or the mean over its positions. */
static double seq_error(const float *pred, const float *y, int i, int K, int all_positions, double scale) {
    if (!all_positions) return sq(pred[(size_t)i * K + K - 1] - y[(size_t)i * K + K - 1]) / scale;
    double e = 0;
    for (int k = 0; k < K; k++) e += sq(pred[(size_t)i * K + k] - y[(size_t)i * K + k]);
    return e / K / scale;
}

/* out (n,n) = A^power for a symmetric positive definite A (n,n; kept), through its eigenpairs. */
static int sym_power(const double *A, int n, double power, double *out, icl_err *err) {
    double *a = malloc(sizeof(double) * (size_t)n * n), *vals = malloc(sizeof(double) * n), *vecs = malloc(sizeof(double) * (size_t)n * n);
    int r = (!a || !vals || !vecs) ? icl_errf(err, "out of memory") : 0;
    if (!r) memcpy(a, A, sizeof(double) * (size_t)n * n), r = icl_sym_eigen(a, n, vals, vecs, err);
    if (!r) {
        /* out = (V^T D)(D V) with D = diag(vals^(power/2)) and V's rows the eigenvectors; the callers'
         * matrices are positive definite, so a value below 1e-12 of the largest is round-off */
        for (int j = 0; j < n; j++) {
            double f = pow(vals[j] > 1e-12 * vals[0] ? vals[j] : 1e-12 * vals[0], power * 0.5);
            for (int k = 0; k < n; k++) a[(size_t)j * n + k] = vecs[(size_t)j * n + k] * f;
        }
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, n, n, 1.0, a, n, a, n, 0.0, out, n);
    }
    free(a); free(vals); free(vecs);
    return r;
}

/* Moments of the captured stream cap (N, np, C) by group (group[i] in 0..n_groups-1): mean (n_groups,
 * np, C) and covariance (n_groups, np, C, C), plus a ridge of 1e-6 of its mean variance so that it is
 * positive definite where the stream is confined to a subspace (the first tokens see few inputs).
 * Every group needs two members or more. */
static int group_moments(const float *cap, const int *group, int n_groups, int N, int np, int C, double *mean, double *cov,
                         icl_err *err) {
    size_t cc = (size_t)C * C, ng = (size_t)n_groups * np;
    double *d = malloc(sizeof(double) * C);
    int *count = calloc(n_groups, sizeof(int));
    if (!d || !count) { free(d); free(count); return icl_errf(err, "out of memory"); }
    memset(mean, 0, sizeof(double) * ng * C);
    memset(cov, 0, sizeof(double) * ng * cc);
    for (int i = 0; i < N; i++) {
        count[group[i]]++;
        for (size_t j = 0; j < (size_t)np * C; j++) mean[(size_t)group[i] * np * C + j] += cap[(size_t)i * np * C + j];
    }
    for (size_t j = 0; j < ng * C; j++) mean[j] /= count[j / ((size_t)np * C)];
    for (int i = 0; i < N; i++)
        for (int p = 0; p < np; p++) {
            const float *x = cap + ((size_t)i * np + p) * C;
            const double *mu = mean + ((size_t)group[i] * np + p) * C;
            for (int j = 0; j < C; j++) d[j] = x[j] - mu[j];
            cblas_dger(CblasRowMajor, C, C, 1.0, d, 1, d, 1, cov + ((size_t)group[i] * np + p) * cc, C);
        }
    for (size_t g = 0; g < ng; g++) {
        double *S = cov + g * cc, tr = 0;
        int n = count[g / np];
        for (size_t j = 0; j < cc; j++) S[j] /= n - 1;
        for (int j = 0; j < C; j++) tr += S[(size_t)j * C + j];
        for (int j = 0; j < C; j++) S[(size_t)j * C + j] += 1e-6 * (tr > 0 ? tr / C : 1);
    }
    free(d);
    free(count);
    return 0;
}

int icl_gaussian_transport(const double *A, const double *B, int n, double *T, icl_err *err) {
    size_t nn = (size_t)n * n;
    double *ah = malloc(sizeof(double) * nn), *aih = malloc(sizeof(double) * nn), *t1 = malloc(sizeof(double) * nn),
           *mid = malloc(sizeof(double) * nn);
    int r = (!ah || !aih || !t1 || !mid) ? icl_errf(err, "out of memory") : 0;
    if (!r) r = sym_power(A, n, 0.5, ah, err) || sym_power(A, n, -0.5, aih, err);
    if (!r) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, ah, n, B, n, 0.0, t1, n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, t1, n, ah, n, 0.0, mid, n);
        for (int i = 0; i < n; i++) /* symmetric up to round-off: make it exactly so for the eigen-solver */
            for (int j = 0; j < i; j++) mid[(size_t)i * n + j] = mid[(size_t)j * n + i] = 0.5 * (mid[(size_t)i * n + j] + mid[(size_t)j * n + i]);
        r = sym_power(mid, n, 0.5, t1, err);
    }
    if (!r) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, aih, n, t1, n, 0.0, mid, n);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, mid, n, aih, n, 0.0, T, n);
    }
    free(ah); free(aih); free(t1); free(mid);
    return r;
}

int icl_patch_matrix(icl_model *m, const icl_train_config *c, const icl_patch_spec *spec, double *delta, double *delta_se,
                     double *base, icl_err *err) {
    const int layer = spec->layer, at = spec->at, mode = spec->mode, per_concept = spec->per_concept;
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points, C = m->cfg.n_embd;
    if (layer < 0 || layer >= m->cfg.n_layer) return icl_errf(err, "layer %d out of range 0..%d", layer, m->cfg.n_layer - 1);
    if (!icl_patch_site_name(at)) return icl_errf(err, "patch site %d out of range 0..%d", at, ICL_PATCH_N_SITES - 1);
    if (mode < ICL_PATCH_REPLACE || mode > ICL_PATCH_TRANSPORT) return icl_errf(err, "patch mode %d out of range 0..2", mode);
    if (K < 2) return icl_errf(err, "patching needs at least two points per sequence");
    if (mode == ICL_PATCH_TRANSPORT && per_concept < 4) return icl_errf(err, "transport patching needs at least 4 sequences per concept");
    icl_batch probe = {0}, meanset = {0};
    icl_train_config mc = *c;
    mc.seed = c->seed ^ 0x9e3779b97f4a7c15ULL * STREAM_PATCH_MEAN; /* a different probe stream for the means */
    /* the tokens patched (the final y token, 2K-1, follows the last prediction, so all-y leaves it out) */
    int N = nc * per_concept, np = at == ICL_PATCH_AT_ALL_Y ? K - 1 : at == ICL_PATCH_AT_ALL_TOKENS ? 2 * K : 1;
    int *ys = malloc(sizeof(int) * (size_t)np);
    for (int i = 0; ys && i < np; i++)
        ys[i] = at == ICL_PATCH_AT_ALL_Y ? 2 * i + 1 : at == ICL_PATCH_AT_ALL_TOKENS ? i : at == ICL_PATCH_AT_QUERY ? 2 * K - 2 : 2 * K - 3;
    size_t w = (size_t)np * C; /* floats per sequence */
    float *means = calloc((size_t)nc * w, sizeof(float)), *cap = malloc(sizeof(float) * (size_t)N * w);
    float *pred = malloc(sizeof(float) * (size_t)N * K);
    const int keeps_own = mode != ICL_PATCH_REPLACE, transport = mode == ICL_PATCH_TRANSPORT;
    float *own = keeps_own ? malloc(sizeof(float) * (size_t)N * w) : NULL; /* each probe sequence's own stream */
    double *seq_base = malloc(sizeof(double) * (size_t)N);                 /* each probe sequence's unpatched error */
    size_t cc = (size_t)C * C;
    /* transport: the mean set's moments in two halves per concept (group 2k + half), the maps
     * (nc, np, C, C) from each concept's first half onto the target's second half, a sequence's groups */
    double *tmean = transport ? malloc(sizeof(double) * 2 * nc * w) : NULL, *cov = transport ? malloc(sizeof(double) * 2 * nc * w * C) : NULL;
    double *maps = transport ? malloc(sizeof(double) * nc * w * C) : NULL, *dv = transport ? malloc(sizeof(double) * C) : NULL;
    int *group = transport ? malloc(sizeof(int) * (size_t)N) : NULL;
    int r = (!ys || !means || !cap || !pred || !seq_base || (keeps_own && !own) || (transport && (!tmean || !cov || !maps || !dv || !group)))
                ? icl_errf(err, "out of memory") : 0;
    if (!r) r = icl_probe_batch(c, per_concept, &probe, err) || icl_probe_batch(&mc, per_concept, &meanset, err);
    double scale = icl_task_y_scale(&c->task);
    if (!r) { /* per-concept, per-position means of the stream entering `layer`, on the mean set */
        icl_hook h = {.site = ICL_SITE_RESID_PRE, .layer = layer, .positions = ys, .n_positions = np, .action = ICL_HOOK_CAPTURE, .out = cap};
        r = predict(m, &meanset, c->batch, &h, 1, pred, err);
        for (int i = 0; i < N && !r; i++)
            for (size_t j = 0; j < w; j++) means[(size_t)meanset.concept[i] * w + j] += cap[(size_t)i * w + j] / per_concept;
        if (!r && transport) {
            int *seen = calloc(nc, sizeof(int));
            if (!seen) r = icl_errf(err, "out of memory");
            for (int i = 0; i < N && !r; i++) group[i] = 2 * meanset.concept[i] + (2 * seen[meanset.concept[i]]++ >= per_concept);
            free(seen);
            if (!r) r = group_moments(cap, group, 2 * nc, N, np, C, tmean, cov, err);
        }
    }
    if (!r) {
        icl_hook h = {.site = ICL_SITE_RESID_PRE, .layer = layer, .positions = ys, .n_positions = np, .action = ICL_HOOK_CAPTURE, .out = own};
        r = predict(m, &probe, c->batch, &h, keeps_own, pred, err);
    }
    for (int s = 0; s < nc && !r; s++) {
        base[s] = 0;
        for (int i = s * per_concept; i < (s + 1) * per_concept; i++) {
            seq_base[i] = seq_error(pred, probe.y, i, K, spec->all_positions, scale);
            base[s] += seq_base[i];
        }
        base[s] /= per_concept;
    }
    for (int t = 0; t < nc && !r; t++) {
        /* every sequence gets concept t's mean at each patched token (reusing cap as the vectors); with
         * shift its own stream moved by t's mean minus its concept's (exactly itself when t is it); with
         * transport its own stream carried from its concept's distribution (first half of the mean
         * set) onto t's (second half). A self-transport is not the identity: it moves the stream by the
         * two halves' sampling difference, the noise floor the cross-transports are compared with. */
        const float *mt = means + (size_t)t * w;
        for (int s = 0; s < nc && transport && !r; s++)
            for (int p = 0; p < np && !r; p++)
                r = icl_gaussian_transport(cov + (((size_t)2 * s * np) + p) * cc, cov + (((size_t)(2 * t + 1) * np) + p) * cc, C,
                                       maps + ((size_t)s * np + p) * cc, err);
        for (int i = 0; i < N && !r; i++) {
            float *v = cap + (size_t)i * w;
            const float *ms = means + (size_t)probe.concept[i] * w, *o = own ? own + (size_t)i * w : NULL;
            if (mode == ICL_PATCH_REPLACE) memcpy(v, mt, sizeof(float) * w);
            else if (mode == ICL_PATCH_SHIFT)
                for (size_t j = 0; j < w; j++) v[j] = o[j] + (mt[j] - ms[j]);
            else
                for (int p = 0; p < np; p++) { /* v = mu_t + T (o - mu_s) at token p */
                    size_t at_p = (size_t)p * C;
                    const double *mu_s = tmean + (size_t)2 * probe.concept[i] * w + at_p, *mu_t = tmean + (size_t)(2 * t + 1) * w + at_p;
                    for (int j = 0; j < C; j++) dv[j] = o[at_p + j] - mu_s[j];
                    const double *T = maps + ((size_t)probe.concept[i] * np + p) * cc;
                    for (int j = 0; j < C; j++) {
                        double acc = mu_t[j];
                        for (int k = 0; k < C; k++) acc += T[(size_t)j * C + k] * dv[k];
                        v[at_p + j] = (float)acc;
                    }
                }
        }
        if (r) break;
        icl_hook h = {.site = ICL_SITE_RESID_PRE, .layer = layer, .positions = ys, .n_positions = np, .action = ICL_HOOK_REPLACE,
                      .vec = cap, .per_sequence = 1};
        r = predict(m, &probe, c->batch, &h, 1, pred, err);
        for (int s = 0; s < nc && !r; s++) {
            /* the change is paired (the same sequences unpatched and patched), so its standard error is
             * that of the per-sequence changes: two passes, the mean first, for accuracy */
            double e = 0, v = 0;
            for (int i = s * per_concept; i < (s + 1) * per_concept; i++) e += seq_error(pred, probe.y, i, K, spec->all_positions, scale);
            double d = e / per_concept - base[s];
            delta[(size_t)s * nc + t] = d;
            if (!delta_se) continue;
            for (int i = s * per_concept; i < (s + 1) * per_concept; i++)
                v += sq(seq_error(pred, probe.y, i, K, spec->all_positions, scale) - seq_base[i] - d);
            delta_se[(size_t)s * nc + t] = per_concept > 1 ? sqrt(v / (per_concept - 1) / per_concept) : NAN;
        }
    }
    icl_batch_free(&probe);
    icl_batch_free(&meanset);
    free(ys);
    free(means);
    free(cap);
    free(pred);
    free(own);
    free(seq_base);
    free(tmean);
    free(cov);
    free(maps);
    free(dv);
    free(group);
    return r ? -1 : 0;
}

/* Mean normalised MSE over positions of each concept's sequences. */
static void concept_mse(const icl_batch *b, const float *pred, int nc, int per_concept, double scale, double *out) {
    int K = b->K;
    for (int k = 0; k < nc; k++) {
        double e = 0;
        for (int i = k * per_concept; i < (k + 1) * per_concept; i++)
            for (int p = 0; p < K; p++) e += sq(pred[(size_t)i * K + p] - b->y[(size_t)i * K + p]) / scale;
        out[k] = e / ((double)per_concept * K);
    }
}

int icl_head_ablation(icl_model *m, const icl_train_config *c, int per_concept, double *delta, double *base, icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points, L = m->cfg.n_layer, H = m->cfg.n_head;
    icl_batch probe = {0};
    float *pred = malloc(sizeof(float) * (size_t)nc * per_concept * K);
    double *e = malloc(sizeof(double) * nc);
    int r = (!pred || !e) ? icl_errf(err, "out of memory") : icl_probe_batch(c, per_concept, &probe, err);
    double scale = icl_task_y_scale(&c->task);
    if (!r) r = predict(m, &probe, c->batch, NULL, 0, pred, err);
    if (!r) concept_mse(&probe, pred, nc, per_concept, scale, base);
    for (int l = 0; l < L && !r; l++)
        for (int h = 0; h < H && !r; h++) {
            icl_hook z = {.site = ICL_SITE_HEAD_OUT, .layer = l, .head = h, .action = ICL_HOOK_ZERO};
            r = predict(m, &probe, c->batch, &z, 1, pred, err);
            if (r) break;
            concept_mse(&probe, pred, nc, per_concept, scale, e);
            for (int k = 0; k < nc; k++) delta[((size_t)l * H + h) * nc + k] = e[k] - base[k];
        }
    icl_batch_free(&probe);
    free(pred);
    free(e);
    return r ? -1 : 0;
}

/* The position an estimator is skipped at: min-norm least squares is unbounded at exactly as many
 * points as unknowns (the basis rank for the oracle, D for least squares); -1 for the others and
 * for the model (e < 0). */
static int skip_position(const icl_train_config *c, int e) {
    return e == ICL_EST_ORACLE_LS ? c->task.rank : e == ICL_EST_LS ? c->task.dim : -1;
}

/* Mean over concept k's sequences (a block of per_concept rows of K) and positions but `skip` of
 * (a - b)^2 / scale. */
static double concept_mean_sq(const float *a, const float *b, int k, int per_concept, int K, int skip, double scale) {
    double s = 0;
    long cnt = 0;
    for (int i = k * per_concept; i < (k + 1) * per_concept; i++)
        for (int p = 0; p < K; p++) {
            if (p == skip) continue;
            s += sq(a[(size_t)i * K + p] - b[(size_t)i * K + p]) / scale;
            cnt++;
        }
    return cnt ? s / cnt : NAN;
}

/* The off-basis probe set: a copy of probe with, in every concept-k sequence, the coordinates that
 * belong to other bases (and not to k's) redrawn from N(0, 1), from the run's own stream. */
static int offbasis_batch(const icl_train_config *c, int per_concept, const icl_batch *probe, icl_batch *moved, icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points, D = c->task.dim;
    size_t n = (size_t)nc * per_concept * K;
    float *own = malloc(sizeof(float) * D), *other = malloc(sizeof(float) * D), *mask = malloc(sizeof(float) * D);
    int r = (!own || !other || !mask) ? icl_errf(err, "out of memory") : icl_batch_alloc(moved, probe->B, &c->task, err);
    if (!r) {
        memcpy(moved->x, probe->x, sizeof(float) * n * D);
        memcpy(moved->y, probe->y, sizeof(float) * n);
        memcpy(moved->w, probe->w, sizeof(float) * (size_t)probe->B * D);
        memcpy(moved->concept, probe->concept, sizeof(int) * probe->B);
        icl_rng rng;
        icl_rng_seed_stream(&rng, c->seed, STREAM_OFFBASIS);
        for (int k = 0; k < nc; k++) {
            icl_task_basis_mask(&c->task, k, own);
            for (int d = 0; d < D; d++) other[d] = 0;
            for (int j = 0; j < nc; j++) {
                if (j == k) continue;
                icl_task_basis_mask(&c->task, j, mask);
                for (int d = 0; d < D; d++) other[d] = other[d] != 0 || mask[d] != 0;
            }
            for (int i = k * per_concept; i < (k + 1) * per_concept; i++)
                for (int p = 0; p < K; p++)
                    for (int d = 0; d < D; d++)
                        if (other[d] != 0 && own[d] == 0) moved->x[((size_t)i * K + p) * D + d] = (float)icl_rng_normal(&rng);
        }
    }
    free(own);
    free(other);
    free(mask);
    return r ? -1 : 0;
}

static int offbasis_ok(const icl_train_config *c, icl_err *err) {
    if (c->task.kind != ICL_TASK_BASES) return icl_errf(err, "off-basis sensitivity needs a basis task");
    if (icl_task_n_concepts(&c->task) < 2) return icl_errf(err, "off-basis sensitivity needs at least two bases");
    return 0;
}

void icl_estimator_refs_free(icl_estimator_refs *refs) {
    for (int e = 0; e < ICL_N_ESTIMATORS; e++) free(refs->probe[e]), free(refs->moved[e]);
    memset(refs, 0, sizeof *refs);
}

/* The references, on the redrawn set too when with_moved. */
static int refs_init(icl_estimator_refs *refs, const icl_train_config *c, int per_concept, int with_moved, icl_err *err) {
    memset(refs, 0, sizeof *refs);
    refs->per_concept = per_concept;
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points;
    size_t n = (size_t)nc * per_concept * K;
    icl_batch probe = {0}, moved = {0};
    int r = icl_probe_batch(c, per_concept, &probe, err);
    if (!r && with_moved) r = offbasis_batch(c, per_concept, &probe, &moved, err);
    for (int e = 0; e < ICL_N_ESTIMATORS && !r; e++) {
        double param = icl_estimator_default_param((icl_estimator)e);
        refs->probe[e] = malloc(sizeof(float) * n);
        if (with_moved) refs->moved[e] = malloc(sizeof(float) * n);
        if (!refs->probe[e] || (with_moved && !refs->moved[e])) r = icl_errf(err, "out of memory");
        if (!r) r = icl_estimate(&c->task, &probe, (icl_estimator)e, param, refs->probe[e], err);
        if (!r && with_moved) r = icl_estimate(&c->task, &moved, (icl_estimator)e, param, refs->moved[e], err);
    }
    icl_batch_free(&probe);
    icl_batch_free(&moved);
    if (r) icl_estimator_refs_free(refs);
    return r ? -1 : 0;
}

int icl_estimator_refs_init(icl_estimator_refs *refs, const icl_train_config *c, int per_concept, icl_err *err) {
    return refs_init(refs, c, per_concept, !offbasis_ok(c, NULL), err);
}

/* The references a call uses: the caller's (checked to fit), or its own computed into *own (which the
 * caller frees), with the redrawn set only when with_moved. NULL on error. */
static const icl_estimator_refs *refs_for(const icl_estimator_refs *refs, icl_estimator_refs *own, const icl_train_config *c,
                                          int per_concept, int with_moved, icl_err *err) {
    memset(own, 0, sizeof *own);
    if (!refs) return refs_init(own, c, per_concept, with_moved, err) ? NULL : own;
    if (refs->per_concept != per_concept || (with_moved && !refs->moved[0])) {
        icl_errf(err, "estimator references for %d sequences per concept, not %d", refs->per_concept, per_concept);
        return NULL;
    }
    return refs;
}

int icl_algorithm_distance(icl_model *m, const icl_train_config *c, int per_concept, const icl_estimator_refs *refs, double *dist,
                           icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points;
    icl_estimator_refs own;
    const icl_estimator_refs *use = refs_for(refs, &own, c, per_concept, 0, err);
    if (!use) return -1;
    icl_batch probe = {0};
    float *pred = malloc(sizeof(float) * (size_t)nc * per_concept * K);
    int r = !pred ? icl_errf(err, "out of memory") : icl_probe_batch(c, per_concept, &probe, err);
    double scale = icl_task_y_scale(&c->task);
    if (!r) r = predict(m, &probe, c->batch, NULL, 0, pred, err);
    for (int e = 0; e < ICL_N_ESTIMATORS && !r; e++)
        for (int k = 0; k < nc; k++)
            dist[(size_t)k * ICL_N_ESTIMATORS + e] = concept_mean_sq(pred, use->probe[e], k, per_concept, K, skip_position(c, e), scale);
    icl_batch_free(&probe);
    icl_estimator_refs_free(&own);
    free(pred);
    return r ? -1 : 0;
}

int icl_offbasis_sensitivity(icl_model *m, const icl_train_config *c, int per_concept, const icl_estimator_refs *refs, double *sens,
                             icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points;
    if (offbasis_ok(c, err)) return -1;
    icl_estimator_refs own;
    const icl_estimator_refs *use = refs_for(refs, &own, c, per_concept, 1, err);
    if (!use) return -1;
    icl_batch probe = {0}, moved = {0};
    size_t n = (size_t)nc * per_concept * K;
    float *pred = malloc(sizeof(float) * n), *pred2 = malloc(sizeof(float) * n);
    int r = (!pred || !pred2) ? icl_errf(err, "out of memory") : icl_probe_batch(c, per_concept, &probe, err);
    if (!r) r = offbasis_batch(c, per_concept, &probe, &moved, err);
    if (!r) r = predict(m, &probe, c->batch, NULL, 0, pred, err) || predict(m, &moved, c->batch, NULL, 0, pred2, err);
    double scale = icl_task_y_scale(&c->task);
    for (int k = 0; k < nc && !r; k++) {
        sens[(size_t)k * (1 + ICL_N_ESTIMATORS)] = concept_mean_sq(pred, pred2, k, per_concept, K, skip_position(c, -1), scale);
        for (int e = 0; e < ICL_N_ESTIMATORS; e++)
            sens[(size_t)k * (1 + ICL_N_ESTIMATORS) + 1 + e] =
                concept_mean_sq(use->probe[e], use->moved[e], k, per_concept, K, skip_position(c, e), scale);
    }
    icl_batch_free(&probe);
    icl_batch_free(&moved);
    icl_estimator_refs_free(&own);
    free(pred);
    free(pred2);
    return r ? -1 : 0;
}
