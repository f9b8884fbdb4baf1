/* Figures and report of a training run from its CSV files (see icl_runplot.h). */
#include "iclab/icl_runplot.h"
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_causal.h"
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_report.h"

#define MAX_CONCEPTS 64
#define MAX_FIGS 24

/* Everything read from a run folder; tables that are absent have n_rows == 0. */
typedef struct run_data {
    icl_csv eval, pos, est, train, td, patch, heads, algo, offbasis;
    icl_csv patch_shift;     /* causal/patch_shift.csv: when present it decides phase (c)'s own-mean condition */
    icl_csv patch_transport; /* causal/patch_transport.csv: when present it decides instead (icl_runplot.h) */
    icl_csv td_last; /* decode/td_last.csv: TD at the last token, kept beside td.csv when that reads another */
    char config[8192];
    int nc;                          /* concepts */
    char names[MAX_CONCEPTS][48];    /* concept names from eval.csv */
    double dense_steps;              /* the curriculum's length (0 = none), from config.json */
    int families_curriculum;         /* it trained on the mixture of regression families, not on dense regression */
    int logx;                        /* step axes: logarithmic, but linear after a curriculum (its events come late) */
    double drop_step[MAX_CONCEPTS];  /* step at which each concept's MSE fell (NaN if it did not) */
    double agnostic[MAX_CONCEPTS];   /* the best basis-agnostic estimator's MSE on the concept (ridge or Lasso) */
    double beat_step[MAX_CONCEPTS];  /* step from which on the concept's MSE stays below agnostic[] (NaN if never) */
    double td_step[MAX_CONCEPTS];    /* step from which on its TD at td_layer stays halfway from chance to its maximum or above */
    double td_level[MAX_CONCEPTS];   /* that halfway level */
    double td_max[MAX_CONCEPTS];
    double td_chance[MAX_CONCEPTS];
    double td_from[MAX_CONCEPTS];    /* the last checkpoint before td_step with TD at most a quarter of the way up */
    int td_layer;                    /* the layer with the highest final overall TD */
    int separation_layer;            /* the shallowest with a final overall TD >= ICL_PHASE_TD, else td_layer */
    double switch_step;              /* from when on the model is closer to the oracle than to Lasso (NaN if never) */
    double own_step[MAX_CONCEPTS];   /* from when on its predictions depend on the other bases' coordinates less than
                                        ridge's and Lasso's do (offbasis.csv; NaN if never, or if always) */
    char td_where[96];               /* where decode read the states, for captions ("the y-token of demonstration 8 of 12") */
    char cap_td[512], cap_umap[512];
} run_data;

static double col(const icl_csv *t, int r, const char *name) { return icl_csv_num(t, r, icl_csv_col(t, name)); }

static double last_step(const icl_csv *t) {
    double s = NAN;
    for (int r = 0; r < t->n_rows; r++) s = isnan(s) ? col(t, r, "step") : fmax(s, col(t, r, "step"));
    return s;
}

static int read_optional(icl_csv *t, const char *run, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", run, name);
    memset(t, 0, sizeof *t);
    return icl_path_exists(path) ? icl_csv_read(t, path, NULL) : 0;
}

/* Mean over positions of an estimator's MSE on a concept (-1: all). For the least-squares
 * estimators the unbounded point (their maximum, where the number of examples equals the number of
 * unknowns) is skipped; the others are averaged over every position, as the model's MSE is. */
static double estimator_level(const icl_csv *est, const char *name, int concept) {
    double s = 0, worst = 0;
    int n = 0;
    for (int r = 0; r < est->n_rows; r++)
        if (!strcmp(icl_csv_str(est, r, icl_csv_col(est, "estimator")), name) && col(est, r, "concept") == concept) {
            double v = col(est, r, "mse");
            s += v;
            worst = fmax(worst, v);
            n++;
        }
    int skip = !strcmp(name, "oracle-ls") || !strcmp(name, "ls");
    return n > skip ? (s - skip * worst) / (n - skip) : NAN;
}

static const struct { const char *name, *label; } ESTIMATORS[] = {
    {"oracle-ls", "oracle-basis LS"}, {"lasso", "Lasso (all D)"}, {"ridge", "ridge (all D)"}};

/* One concept's held-out MSE over training from eval.csv, into st (steps) and v (MSE), each with
 * room for every row; returns the count. */
static int concept_series(const run_data *d, int concept, double *st, double *v) {
    const icl_csv *ev = &d->eval;
    int n = 0;
    for (int r = 0; r < ev->n_rows; r++)
        if ((int)col(ev, r, "concept") == concept) st[n] = col(ev, r, "step"), v[n++] = col(ev, r, "mse");
    return n;
}

/* The mean of v[i] and its two neighbours on either side: one concept's held-out MSE is noisy (a
 * quarter of the held-out set with 4 concepts), so the readings below smooth it this way. */
static double centred_mean(const double *v, int n, int i) {
    double s = 0;
    int m = 0;
    for (int j = i - 2; j <= i + 2; j++)
        if (j >= 0 && j < n) s += v[j], m++;
    return m ? s / m : NAN;
}

/* Per concept: the first evaluation after the curve's maximum where the MSE is below the midpoint
 * of its maximum and its final value, if the curve fell by at least 0.1 overall. With a
 * curriculum only the evaluations from twice its length on count: the drops of interest are those
 * on the concepts' task, not the learning of basis-agnostic regression nor the settling after the
 * switch to the task (which takes about as long again as the curriculum in the demo runs). */
static void find_drops(run_data *d) {
    double *v = malloc(sizeof(double) * (d->eval.n_rows + 1)), *st = malloc(sizeof(double) * (d->eval.n_rows + 1));
    for (int k = 0; k < d->nc; k++) {
        d->drop_step[k] = NAN;
        if (!v || !st) continue;
        int n = concept_series(d, k, st, v), top = -1;
        for (int i = 0; i < n; i++)
            if (st[i] >= 2 * d->dense_steps && (top < 0 || v[i] > v[top])) top = i;
        if (top < 0 || !(v[top] - v[n - 1] >= 0.1)) continue;
        double mid = 0.5 * (v[top] + v[n - 1]);
        for (int i = top + 1; i < n && isnan(d->drop_step[k]); i++)
            if (v[i] <= mid) d->drop_step[k] = st[i];
    }
    free(v);
    free(st);
}

/* Per concept: from which evaluation on its MSE (centred_mean) stays below that of every
 * basis-agnostic estimator (ridge and Lasso on all D coordinates, estimators.csv). Beating them
 * needs the basis: it is the loss side of the paper's Obs. 2, the switch to a concept-specific
 * algorithm. */
static void find_beats(run_data *d) {
    double *v = malloc(sizeof(double) * (d->eval.n_rows + 1)), *st = malloc(sizeof(double) * (d->eval.n_rows + 1));
    for (int k = 0; k < d->nc; k++) {
        d->agnostic[k] = fmin(estimator_level(&d->est, "ridge", k), estimator_level(&d->est, "lasso", k));
        d->beat_step[k] = NAN;
        if (!isfinite(d->agnostic[k]) || !v || !st) continue;
        int n = concept_series(d, k, st, v);
        for (int i = n - 1; i >= 0 && centred_mean(v, n, i) < d->agnostic[k]; i--) d->beat_step[k] = st[i];
    }
    free(v);
    free(st);
}

/* A concept's held-out MSE (centred_mean) at the evaluation nearest `step`; NaN if it has none. */
static double mse_near(const run_data *d, int concept, double step) {
    double *v = malloc(sizeof(double) * (d->eval.n_rows + 1)), *st = malloc(sizeof(double) * (d->eval.n_rows + 1)), m = NAN;
    if (v && st) {
        int n = concept_series(d, concept, st, v), near = 0;
        for (int i = 1; i < n; i++)
            if (fabs(st[i] - step) < fabs(st[near] - step)) near = i;
        if (n) m = centred_mean(v, n, near);
    }
    free(v);
    free(st);
    return m;
}

#define TD_CLEAR 0.2 /* how far above chance a TD must get to count as a rise (see find_td) */

static void find_td(run_data *d) {
    const icl_csv *td = &d->td;
    double best = -1, last_step = -1;
    for (int r = 0; r < td->n_rows; r++) last_step = fmax(last_step, col(td, r, "step"));
    d->td_layer = -1;
    for (int r = 0; r < td->n_rows; r++)
        if (col(td, r, "step") == last_step && col(td, r, "concept") == -1 && col(td, r, "td") > best) {
            best = col(td, r, "td");
            d->td_layer = (int)col(td, r, "layer");
        }
    d->separation_layer = d->td_layer;
    for (int r = 0; r < td->n_rows; r++)
        if (col(td, r, "step") == last_step && col(td, r, "concept") == -1 && col(td, r, "td") >= ICL_PHASE_TD &&
            col(td, r, "layer") < d->separation_layer)
            d->separation_layer = (int)col(td, r, "layer");
    for (int k = 0; k < d->nc; k++) {
        double mx = -1, chance = 0;
        for (int r = 0; r < td->n_rows; r++)
            if ((int)col(td, r, "layer") == d->td_layer && (int)col(td, r, "concept") == k) {
                mx = fmax(mx, col(td, r, "td"));
                chance = col(td, r, "chance");
            }
        d->td_max[k] = mx;
        d->td_chance[k] = chance;
        d->td_level[k] = 0.5 * (chance + mx);
        d->td_step[k] = NAN;
        /* never clearly above chance: with 100 probe points per concept TD's standard error is
         * about 0.05, and the maximum over dozens of checkpoints runs a few of those above chance */
        if (!(mx > chance + TD_CLEAR)) continue;
        /* the first checkpoint from which on TD stays at or above the level (so ties at the untrained
         * start, or a dip, do not count as the rise) */
        for (int r = td->n_rows - 1; r >= 0; r--) {
            if ((int)col(td, r, "layer") != d->td_layer || (int)col(td, r, "concept") != k) continue;
            if (col(td, r, "td") < d->td_level[k]) break;
            d->td_step[k] = col(td, r, "step");
        }
        /* where the rise began: the loss change from there to td_step is what the rise came with */
        d->td_from[k] = NAN;
        for (int r = 0; r < td->n_rows; r++)
            if ((int)col(td, r, "layer") == d->td_layer && (int)col(td, r, "concept") == k && col(td, r, "step") < d->td_step[k] &&
                col(td, r, "td") <= chance + 0.25 * (mx - chance))
                d->td_from[k] = col(td, r, "step");
    }
}

/* Mean over concepts of the distance to estimator `name` at each algo.csv step; returns the count. */
static int algo_series(const icl_csv *a, const char *name, double *x, double *y, int cap) {
    int n = 0;
    for (int r = 0; r < a->n_rows; r++) {
        if (strcmp(icl_csv_str(a, r, icl_csv_col(a, "estimator")), name)) continue;
        double s = col(a, r, "step");
        int i = 0;
        while (i < n && x[i] != s) i++;
        if (i == n) {
            if (n == cap) break;
            x[n] = s;
            y[n++] = 0;
        }
        y[i] += col(a, r, "distance");
    }
    return n;
}

/* The first step after which the model stays closer to the oracle than to Lasso. */
static void find_switch(run_data *d) {
    d->switch_step = NAN;
    int cap = d->algo.n_rows + 1;
    double *xo = malloc(sizeof(double) * cap), *yo = malloc(sizeof(double) * cap);
    double *xl = malloc(sizeof(double) * cap), *yl = malloc(sizeof(double) * cap);
    int no = algo_series(&d->algo, "oracle-ls", xo, yo, cap), nl = algo_series(&d->algo, "lasso", xl, yl, cap);
    if (no > 1 && no == nl) {
        for (int i = no - 1; i >= 0 && yo[i] < yl[i]; i--) d->switch_step = xo[i];
        if (yo[0] < yl[0]) d->switch_step = NAN; /* closer from the start: no switch */
    }
    free(xo); free(yo); free(xl); free(yl);
}

/* offbasis.csv's sensitivity of predictor `who` on a concept (-1: mean over concepts) at a step; NaN if absent. */
static double offbasis_at(const run_data *d, const char *who, double step, int concept) {
    const icl_csv *o = &d->offbasis;
    double s = 0;
    int n = 0;
    for (int r = 0; r < o->n_rows; r++)
        if (col(o, r, "step") == step && (concept < 0 || (int)col(o, r, "concept") == concept) &&
            !strcmp(icl_csv_str(o, r, icl_csv_col(o, "predictor")), who))
            s += col(o, r, "sensitivity"), n++;
    return n ? s / n : NAN;
}

/* Per concept: the first checkpoint from which on redrawing the other bases' coordinates moves the
 * model's predictions less than it moves ridge's and Lasso's, the basis-agnostic estimators. The
 * model then reads its concept's own coordinates more selectively than any algorithm that does not
 * know the basis: the decoding side of the paper's Obs. 2. A model that was never above (one that
 * predicts a constant is insensitive to everything) gets NaN. */
static void find_own_basis(run_data *d) {
    const icl_csv *o = &d->offbasis;
    for (int k = 0; k < d->nc; k++) {
        d->own_step[k] = NAN;
        double prev = INFINITY;
        int found_above = 0;
        for (int r = o->n_rows - 1; r >= 0 && !found_above; r--) { /* steps are written in ascending order */
            double st = col(o, r, "step");
            if (st == prev || (int)col(o, r, "concept") != k) continue;
            prev = st;
            double m = offbasis_at(d, "model", st, k), a = fmin(offbasis_at(d, "ridge", st, k), offbasis_at(d, "lasso", st, k));
            if (!(m < a)) found_above = 1;
            else d->own_step[k] = st;
        }
        if (!found_above) d->own_step[k] = NAN;
    }
}

/* A numeric field of the run's config.json (0 when absent: fields added later default to 0). */
static double config_num(const run_data *d, const char *key) {
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(d->config, pat);
    return p ? atof(p + strlen(pat)) : 0;
}

static int load_run(run_data *d, const char *run, icl_err *err) {
    memset(d, 0, sizeof *d);
    char path[4400];
    snprintf(path, sizeof path, "%s/eval.csv", run);
    if (icl_csv_read(&d->eval, path, err)) return -1;
    snprintf(path, sizeof path, "%s/eval_positions.csv", run);
    if (icl_csv_read(&d->pos, path, err)) return -1;
    if (icl_csv_col(&d->eval, "step") < 0 || icl_csv_col(&d->eval, "concept") < 0 || icl_csv_col(&d->eval, "mse") < 0 ||
        icl_csv_col(&d->eval, "name") < 0)
        return icl_errf(err, "%s/eval.csv lacks the step, concept, name or mse column", run);
    read_optional(&d->est, run, "estimators.csv");
    read_optional(&d->train, run, "train.csv");
    read_optional(&d->td, run, "decode/td.csv");
    read_optional(&d->td_last, run, "decode/td_last.csv");
    read_optional(&d->patch, run, "causal/patch.csv");
    read_optional(&d->patch_shift, run, "causal/patch_shift.csv");
    read_optional(&d->patch_transport, run, "causal/patch_transport.csv");
    read_optional(&d->heads, run, "causal/heads.csv");
    read_optional(&d->algo, run, "causal/algo.csv");
    read_optional(&d->offbasis, run, "causal/offbasis.csv");
    for (int r = 0; r < d->eval.n_rows; r++) {
        int k = (int)col(&d->eval, r, "concept");
        if (k >= 0 && k < MAX_CONCEPTS) {
            if (k + 1 > d->nc) d->nc = k + 1;
            snprintf(d->names[k], sizeof d->names[k], "%s", icl_csv_str(&d->eval, r, icl_csv_col(&d->eval, "name")));
        }
    }
    snprintf(path, sizeof path, "%s/config.json", run);
    char *cfg;
    size_t n;
    if (icl_read_file(path, &cfg, &n, NULL) == 0) {
        snprintf(d->config, sizeof d->config, "%s", cfg);
        free(cfg);
    }
    /* decode/td.csv's token column (absent in folders decoded before it existed: the last y-token) */
    int tc = icl_csv_col(&d->td, "token"), demo = 0, npts = (int)config_num(d, "task.n_points");
    const char *tok = d->td.n_rows && tc >= 0 ? icl_csv_str(&d->td, 0, tc) : "";
    if (!tok[0] || (sscanf(tok, "y:%d", &demo) == 1 && demo == npts))
        snprintf(d->td_where, sizeof d->td_where, "the y-token of the last demonstration");
    else if (sscanf(tok, "y:%d", &demo) == 1)
        snprintf(d->td_where, sizeof d->td_where, "the y-token of demonstration %d of %d", demo, npts);
    else snprintf(d->td_where, sizeof d->td_where, "token %s", tok);
    snprintf(d->cap_td, sizeof d->cap_td, "Task decodability (leave-one-out 10-NN on the representation at %s) per concept "
             "over training at the layer where it ends highest, with the same events marked as in the MSE figure.", d->td_where);
    snprintf(d->cap_umap, sizeof d->cap_umap, "UMAP (n_neighbors 15, min_dist 0.1) of the probe set's representations at %s, "
             "at every layer and log-spaced checkpoints, coloured by concept (the paper's Fig. 11).", d->td_where);
    d->dense_steps = config_num(d, "train.dense_steps");
    d->families_curriculum = config_num(d, "train.curriculum") == 1;
    d->logx = !(d->dense_steps > 0);
    find_drops(d);
    find_beats(d);
    find_td(d);
    find_switch(d);
    find_own_basis(d);
    return 0;
}

static void free_run(run_data *d) {
    icl_csv *all[] = {&d->eval, &d->pos, &d->est, &d->train, &d->td, &d->td_last, &d->patch, &d->patch_shift, &d->patch_transport, &d->heads, &d->algo, &d->offbasis};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) icl_csv_free(all[i]);
}

/* ---------------------------------------------------------------- the paper's phases */

/* A concept's TD at its best layer at checkpoint `step` of a TD table (decode/td.csv); NaN if not decoded there. */
static double td_best_at(const icl_csv *td, int concept, double step, int *layer) {
    double best = NAN;
    *layer = -1;
    for (int r = 0; r < td->n_rows; r++)
        if (col(td, r, "step") == step && (int)col(td, r, "concept") == concept && !(col(td, r, "td") <= best)) {
            best = col(td, r, "td");
            *layer = (int)col(td, r, "layer");
        }
    return best;
}

/* The patching table that decides phase (c)'s own-mean condition (see icl_runplot.h). */
static const icl_csv *deciding_patch(const run_data *d) {
    return d->patch_transport.n_rows ? &d->patch_transport : d->patch_shift.n_rows ? &d->patch_shift : &d->patch;
}

/* Which kind of patching a table of run d is (an icl_patch_mode). */
static int patch_kind(const run_data *d, const icl_csv *t) {
    return t == &d->patch_transport ? ICL_PATCH_TRANSPORT : t == &d->patch_shift ? ICL_PATCH_SHIFT : ICL_PATCH_REPLACE;
}

/* Patching concept k's sequences at checkpoint `step` of patching table t: the MSE change with its
 * own mean (*self) and the smallest with another concept's (*cross); NaN where t has no such rows.
 * cross_se (may be NULL) gets the standard error of that smallest change; z (with_z: shift and
 * transport patching, which keep the sequence's data) the smallest margin of another concept's change
 * over the self change in standard errors, (cross_t - self) / sqrt(se_t^2 + se_self^2), over the
 * other concepts: how clearly every other concept costs more than the own one (for shift, where the
 * self change is exactly 0 without noise, cross_t / se_t). NaN without a delta_se column (tables
 * written before it) and for replacement. rel (may be NULL; with_z) gets the smallest cross_t - self
 * over the other concepts as a fraction of the unpatched MSE of concept k's sequences (base_mse). */
static void patch_at_se(const icl_csv *t, int k, double step, int with_z, double *self, double *cross, double *cross_se, double *z,
                        double *rel) {
    double se_min = NAN, zmin = NAN, self_se = NAN, relmin = NAN;
    int zok = with_z, relok = with_z;
    *self = *cross = NAN;
    for (int r = 0; r < t->n_rows; r++)
        if (col(t, r, "step") == step && (int)col(t, r, "source") == k && (int)col(t, r, "target") == k)
            *self = col(t, r, "delta_mse"), self_se = col(t, r, "delta_se");
    for (int r = 0; r < t->n_rows; r++) {
        if (col(t, r, "step") != step || (int)col(t, r, "source") != k || (int)col(t, r, "target") == k) continue;
        double v = col(t, r, "delta_mse"), se = col(t, r, "delta_se");
        if (!(v >= *cross)) *cross = v, se_min = se;
        double zi = (v - *self) / (self_se == 0 ? se : sqrt(se * se + self_se * self_se));
        if (isnan(zi)) zok = 0;
        else if (!(zi >= zmin)) zmin = zi;
        double ri = (v - *self) / col(t, r, "base_mse");
        if (isnan(ri)) relok = 0;
        else if (!(ri >= relmin)) relmin = ri;
    }
    if (cross_se) *cross_se = se_min;
    if (z) *z = zok ? zmin : NAN;
    if (rel) *rel = relok ? relmin : NAN;
}

static void patch_at(const icl_csv *t, int k, double step, double *self, double *cross) {
    patch_at_se(t, k, step, 0, self, cross, NULL, NULL, NULL);
}

/* The own-concept condition of phase (c) for one concept, read from patching of the given kind
 * (icl_runplot.h): the own concept is the cheapest; for transport, whose self cell is a noise floor,
 * every other concept costs more by more than 2 standard errors and by a sizeable part of the MSE. */
static int own_cheaper(int kind, double self, double cross, double z, double rel) {
    return kind == ICL_PATCH_TRANSPORT ? z > 2 && rel > ICL_PHASE_TRANSPORT_SIZE : self < cross;
}

/* Whether phase (c) holds at a checkpoint (see icl_runplot.h): every concept separated, below the
 * basis-agnostic estimators and cheaper to patch with its own mean than with any other (transport:
 * by more than 2 standard errors, since its self cell is a noise floor, not 0, and by more than
 * ICL_PHASE_TRANSPORT_SIZE of the MSE). */
static int phase_c_at(const run_data *d, double step) {
    const icl_csv *t = deciding_patch(d);
    const int kind = patch_kind(d, t);
    for (int k = 0; k < d->nc; k++) {
        int layer;
        double self, cross, z, rel;
        patch_at_se(t, k, step, kind == ICL_PATCH_TRANSPORT, &self, &cross, NULL, &z, &rel);
        int own = own_cheaper(kind, self, cross, z, rel);
        if (!(td_best_at(&d->td, k, step, &layer) >= ICL_PHASE_TD) || !(mse_near(d, k, step) < d->agnostic[k]) || !own) return 0;
    }
    return d->nc > 0;
}

/* The checkpoints that were both decoded and patched (by the deciding table), ascending, into steps
 * (room for td.n_rows). */
static int common_checkpoints(const run_data *d, double *steps) {
    const icl_csv *patch = deciding_patch(d);
    int n = 0;
    for (int r = 0; r < d->td.n_rows; r++) {
        double s = col(&d->td, r, "step");
        if (n && steps[n - 1] == s) continue;
        for (int q = 0; q < patch->n_rows; q++)
            if (col(patch, q, "step") == s) {
                steps[n++] = s;
                break;
            }
    }
    return n;
}

static void phases_from(const run_data *d, icl_run_phases *p) {
    memset(p, 0, sizeof *p);
    p->n_concepts = d->nc < ICL_PHASE_MAX_CONCEPTS ? d->nc : ICL_PHASE_MAX_CONCEPTS;
    p->plateau_step = NAN;
    for (int r = 0; r < d->eval.n_rows && isnan(p->plateau_step); r++)
        if (col(&d->eval, r, "concept") == -1 && col(&d->eval, r, "step") > 0 && col(&d->eval, r, "mse") < 0.5)
            p->plateau_step = col(&d->eval, r, "step");
    p->last_eval_step = last_step(&d->eval);
    p->td_step = d->td.n_rows ? last_step(&d->td) : NAN;
    const icl_csv *patch = deciding_patch(d);
    p->patch_step = patch->n_rows ? last_step(patch) : NAN;
    p->patch_kind = patch_kind(d, patch);
    p->patch_se = p->patch_kind != ICL_PATCH_REPLACE && icl_csv_col(patch, "delta_se") >= 0;
    double replace_step = d->patch.n_rows ? last_step(&d->patch) : NAN;
    p->td_layer = d->td_layer;
    p->separation_layer = d->separation_layer;
    p->td_chance = d->td.n_rows ? col(&d->td, 0, "chance") : NAN;
    for (int k = 0; k < p->n_concepts; k++) {
        icl_phase_concept *c = &p->c[k];
        snprintf(c->name, sizeof c->name, "%s", d->names[k]);
        c->drop_step = d->drop_step[k];
        c->beat_step = d->beat_step[k];
        c->agnostic = d->agnostic[k];
        c->own_step = d->own_step[k];
        c->td_half_step = d->td.n_rows ? d->td_step[k] : NAN;
        c->td_lag = c->td_half_step - c->drop_step;
        c->final_mse = mse_near(d, k, p->last_eval_step);
        c->td_best = d->td.n_rows ? td_best_at(&d->td, k, p->td_step, &c->td_best_layer) : NAN;
        if (!d->td.n_rows) c->td_best_layer = -1;
        int last_layer;
        c->td_best_last = d->td_last.n_rows ? td_best_at(&d->td_last, k, p->td_step, &last_layer) : NAN;
        patch_at_se(patch, k, p->patch_step, p->patch_kind != ICL_PATCH_REPLACE, &c->self_patch, &c->cross_patch, &c->cross_patch_se,
                    &c->cross_patch_z, &c->cross_patch_rel);
        patch_at(&d->patch, k, replace_step, &c->replace_self, &c->replace_cross);
        p->n_separated += c->td_best >= ICL_PHASE_TD;
        p->n_below_agnostic += c->final_mse < c->agnostic;
        p->n_self_cheaper += c->self_patch < c->cross_patch;
        /* for transport own_cheaper already asks z > 2, and z > 2 puts every cross cell above the self */
        p->n_self_clear += c->cross_patch_z > 2 &&
                           own_cheaper(p->patch_kind, c->self_patch, c->cross_patch, c->cross_patch_z, c->cross_patch_rel);
        p->n_replace_cheaper += c->replace_self < c->replace_cross;
    }
    p->plateau_own_step = NAN;
    for (int r = 0; p->patch_kind == ICL_PATCH_TRANSPORT && r < patch->n_rows && isnan(p->plateau_own_step); r++) {
        double step = col(patch, r, "step");
        if (!(step > 0 && step < p->plateau_step) || (r && col(patch, r - 1, "step") == step)) continue;
        int all = d->nc > 0;
        for (int k = 0; k < d->nc && all; k++) {
            double self, cross, z, rel;
            patch_at_se(patch, k, step, 1, &self, &cross, NULL, &z, &rel);
            all = own_cheaper(ICL_PATCH_TRANSPORT, self, cross, z, rel);
        }
        if (all) p->plateau_own_step = step;
    }
    p->phase_c = -1;
    p->phase_c_step = NAN;
    double *steps = malloc(sizeof(double) * (d->td.n_rows + 1));
    int n = steps ? common_checkpoints(d, steps) : 0;
    for (int i = 0; i < n && isnan(p->phase_c_step); i++)
        if (phase_c_at(d, steps[i])) p->phase_c_step = steps[i];
    if (n) p->phase_c = phase_c_at(d, steps[n - 1]);
    free(steps);
}

int icl_run_phases_read(const char *run_dir, icl_run_phases *p, icl_err *err) {
    run_data *d = malloc(sizeof *d);
    if (!d) return icl_errf(err, "out of memory");
    int r = load_run(d, run_dir, err);
    if (!r) phases_from(d, p);
    free_run(d);
    free(d);
    return r;
}

/* ---------------------------------------------------------------- figures */

/* Series of (step, value) for rows of t where key column == key (and layer column == layer if >= 0). */
static size_t select_series(const icl_csv *t, const char *key_col, int key, int layer, const char *val_col, double *x, double *y) {
    size_t n = 0;
    int ck = icl_csv_col(t, key_col), cl = icl_csv_col(t, "layer"), cs = icl_csv_col(t, "step"), cv = icl_csv_col(t, val_col);
    for (int r = 0; r < t->n_rows; r++)
        if ((int)icl_csv_num(t, r, ck) == key && (layer < 0 || (int)icl_csv_num(t, r, cl) == layer)) {
            x[n] = icl_csv_num(t, r, cs);
            y[n++] = icl_csv_num(t, r, cv);
        }
    return n;
}

/* A vertical marker whose label is drawn as text at height y (data units), so that markers close
 * together get their labels at different heights instead of overprinting each other. */
static void mark_step(icl_fig *f, double step, const char *label, double y, double last, int logx) {
    icl_fig_add_vline(f, step, NULL);
    if (logx ? step * 3 < last : step < 0.6 * last) icl_fig_add_text(f, step, y, label);
    else { /* near the right edge the text would run off the plot: put it left of the line, pointing at it */
        char text[128];
        snprintf(text, sizeof text, "%s \xe2\x86\x92", label);
        double len = (double)strlen(label); /* about 1.1% of a linear axis, or a factor 1.09 of a log one, per character */
        icl_fig_add_text(f, logx ? step / (1.0 + 0.09 * len) : step - 0.011 * (len + 2) * last, y, text);
    }
}

/* The run's events as labelled vertical markers, the labels stacked downwards from y0 by dy: the
 * end of the curriculum, each concept's loss drop (without a curriculum), the steps from which
 * it reads its own basis (find_own_basis) and beats the basis-agnostic estimators and, with with_td,
 * the rise of its TD. */
static void mark_events(icl_fig *f, const run_data *d, double y0, double dy, double last, int with_td) {
    int j = 0;
    if (d->dense_steps > 0)
        mark_step(f, d->dense_steps, d->families_curriculum ? "curriculum: families \xe2\x86\x92 concepts" : "curriculum: dense \xe2\x86\x92 concepts",
                  y0 - dy * j++, last, d->logx);
    for (int k = 0; k < d->nc; k++) {
        struct { double step; const char *what; } ev[] = {
            {d->dense_steps > 0 ? NAN : d->drop_step[k], "loss falls"}, /* after a curriculum: the fall to the agnostic level, not marked */
            {d->own_step[k], "reads its own basis"},
            {d->beat_step[k], "beats ridge/Lasso"},
            {with_td ? d->td_step[k] : NAN, "TD rises"}};
        for (size_t e = 0; e < sizeof ev / sizeof ev[0]; e++)
            if (isfinite(ev[e].step) && ev[e].step > 0) {
                char label[96];
                snprintf(label, sizeof label, "%s %s", d->names[k], ev[e].what);
                mark_step(f, ev[e].step, label, y0 - dy * j++, last, d->logx);
            }
    }
}

static icl_fig *fig_mse_by_concept(const run_data *d) {
    icl_fig *f = icl_fig_line("Held-out MSE per concept", "training step", "normalised MSE (1 = predict 0)");
    icl_fig_set_logx(f, d->logx);
    double *x = malloc(sizeof(double) * (d->eval.n_rows + 1)), *y = malloc(sizeof(double) * (d->eval.n_rows + 1));
    for (int k = 0; k < d->nc; k++) icl_fig_add_series(f, d->names[k], x, y, select_series(&d->eval, "concept", k, -1, "mse", x, y));
    size_t n = select_series(&d->eval, "concept", -1, -1, "mse", x, y);
    if (n) {
        int s = icl_fig_add_series(f, "all concepts", x, y, n);
        icl_fig_series_color(f, s, 0x555555);
        icl_fig_series_dash(f, s, ICL_DOTTED);
    }
    free(x);
    free(y);
    for (size_t e = 0; e < sizeof ESTIMATORS / sizeof ESTIMATORS[0]; e++) {
        double v = estimator_level(&d->est, ESTIMATORS[e].name, -1);
        if (isfinite(v)) icl_fig_add_hline(f, v, ESTIMATORS[e].label);
    }
    double top = 0;
    for (int r = 0; r < d->eval.n_rows; r++) top = fmax(top, col(&d->eval, r, "mse"));
    mark_events(f, d, 0.95 * top, 0.07 * top, last_step(&d->eval), 0);
    return f;
}

static icl_fig *fig_mse_by_position(const run_data *d) {
    const icl_csv *pos = &d->pos;
    int K = 0, nsteps = 0;
    double *steps = malloc(sizeof(double) * (pos->n_rows + 1)), last = NAN;
    for (int r = 0; r < pos->n_rows; r++) {
        double s = col(pos, r, "step");
        if (s != last) steps[nsteps++] = last = s;
        K = (int)fmax(K, col(pos, r, "position") + 1);
    }
    if (nsteps == 0 || K == 0 || K > 100000) {
        free(steps);
        return NULL;
    }
    double pick[3] = {steps[nsteps / 4], steps[nsteps / 2], steps[nsteps - 1]};
    free(steps);
    icl_fig *f = icl_fig_grid("MSE by in-context position", 1, 3);
    double *x = malloc(sizeof(double) * K), *y = malloc(sizeof(double) * K);
    for (int p = 0; p < K; p++) x[p] = p;
    for (int panel = 0; panel < 3; panel++) {
        char title[64];
        snprintf(title, sizeof title, "step %.0f", pick[panel]);
        icl_fig_panel(f, 0, panel, title, "examples seen before the query", panel == 0 ? "normalised MSE" : NULL);
        for (int k = 0; k < d->nc; k++) {
            for (int p = 0; p < K; p++) y[p] = NAN;
            for (int r = 0; r < pos->n_rows; r++)
                if (col(pos, r, "step") == pick[panel] && (int)col(pos, r, "concept") == k) {
                    int p = (int)col(pos, r, "position");
                    if (p >= 0 && p < K) y[p] = col(pos, r, "mse");
                }
            icl_fig_add_series(f, d->names[k], x, y, K);
        }
        for (size_t e = 0; e < sizeof ESTIMATORS / sizeof ESTIMATORS[0] && d->est.n_rows; e++) {
            for (int p = 0; p < K; p++) y[p] = NAN;
            for (int r = 0; r < d->est.n_rows; r++)
                if (!strcmp(icl_csv_str(&d->est, r, icl_csv_col(&d->est, "estimator")), ESTIMATORS[e].name) &&
                    col(&d->est, r, "concept") == -1) {
                    int p = (int)col(&d->est, r, "position");
                    if (p >= 0 && p < K) y[p] = col(&d->est, r, "mse");
                }
            int s = icl_fig_add_series(f, ESTIMATORS[e].label, x, y, K);
            icl_fig_series_dash(f, s, ICL_DASHED);
            icl_fig_series_color(f, s, e == 0 ? 0x000000 : e == 1 ? 0x777777 : 0xBBBBBB);
        }
        icl_fig_set_ylim(f, 0, 1.5);
    }
    free(x);
    free(y);
    return f;
}

static icl_fig *fig_train_loss(const run_data *d) {
    const icl_csv *tr = &d->train;
    if (tr->n_rows == 0 || icl_csv_col(tr, "loss_norm") < 0) return NULL;
    double *x = malloc(sizeof(double) * tr->n_rows), *y = malloc(sizeof(double) * tr->n_rows), *sm = malloc(sizeof(double) * tr->n_rows);
    double avg = NAN;
    for (int r = 0; r < tr->n_rows; r++) {
        x[r] = col(tr, r, "step");
        y[r] = col(tr, r, "loss_norm");
        avg = isnan(avg) ? y[r] : 0.95 * avg + 0.05 * y[r];
        sm[r] = avg;
    }
    icl_fig *f = icl_fig_line("Training loss", "training step", "normalised MSE");
    icl_fig_set_logx(f, d->logx);
    icl_fig_series_color(f, icl_fig_add_series(f, "per step", x, y, tr->n_rows), 0xBBBBBB);
    icl_fig_add_series(f, "smoothed", x, sm, tr->n_rows);
    free(x);
    free(y);
    free(sm);
    return f;
}

static icl_fig *fig_td_over_training(const run_data *d) {
    if (d->td.n_rows == 0 || d->td_layer < 0) return NULL;
    char title[96];
    snprintf(title, sizeof title, "Task decodability over training, layer %d", d->td_layer);
    icl_fig *f = icl_fig_line(title, "training step", "TD (leave-one-out 10-NN)");
    icl_fig_set_logx(f, d->logx);
    icl_fig_set_ylim(f, 0, 1.02);
    double *x = malloc(sizeof(double) * d->td.n_rows), *y = malloc(sizeof(double) * d->td.n_rows);
    for (int k = 0; k < d->nc; k++) icl_fig_add_series(f, d->names[k], x, y, select_series(&d->td, "concept", k, d->td_layer, "td", x, y));
    size_t n = select_series(&d->td, "concept", -1, d->td_layer, "td", x, y);
    if (n) {
        int s = icl_fig_add_series(f, "all concepts", x, y, n);
        icl_fig_series_color(f, s, 0x555555);
        icl_fig_series_dash(f, s, ICL_DOTTED);
        icl_fig_add_hline(f, col(&d->td, 0, "chance"), "chance");
    }
    free(x);
    free(y);
    mark_events(f, d, 0.95, 0.06, last_step(&d->td), 0);
    return f;
}

static icl_fig *fig_algorithm(const run_data *d) {
    int cap = d->algo.n_rows + 1, nsteps = 0;
    if (d->algo.n_rows == 0) return NULL;
    double *x = malloc(sizeof(double) * cap), *y = malloc(sizeof(double) * cap);
    icl_fig *f = icl_fig_line("Which algorithm: distance of the model's predictions to each estimator", "training step",
                              "mean squared distance (normalised)");
    icl_fig_set_logx(f, d->logx);
    for (size_t e = 0; e < sizeof ESTIMATORS / sizeof ESTIMATORS[0]; e++) {
        int n = algo_series(&d->algo, ESTIMATORS[e].name, x, y, cap);
        for (int i = 0; i < n; i++) y[i] /= d->nc;
        if (n) icl_fig_add_series(f, ESTIMATORS[e].label, x, y, n);
        nsteps = n > nsteps ? n : nsteps;
    }
    free(x);
    free(y);
    if (nsteps < 2) { /* one checkpoint: a line figure says nothing; the report's table has it */
        icl_fig_free(f);
        return NULL;
    }
    double top = 0;
    for (int r = 0; r < d->algo.n_rows; r++)
        if (strcmp(icl_csv_str(&d->algo, r, icl_csv_col(&d->algo, "estimator")), "zero")) top = fmax(top, col(&d->algo, r, "distance"));
    int j = 0;
    double last = last_step(&d->algo);
    if (isfinite(d->switch_step) && d->switch_step > 0) mark_step(f, d->switch_step, "closer to the oracle", top * (0.95 - 0.07 * j++), last, d->logx);
    for (int k = 0; k < d->nc; k++)
        if (isfinite(d->td_step[k]) && d->td_step[k] > 0) {
            char label[64];
            snprintf(label, sizeof label, "%s TD rises", d->names[k]);
            mark_step(f, d->td_step[k], label, top * (0.95 - 0.07 * j++), last, d->logx);
        }
    return f;
}

/* A matrix from a CSV: rows/cols indexed by two integer columns, filtered by step. */
static icl_fig *matrix_fig(const icl_csv *t, const char *title, const char *rcol, const char *ccol, const char *vcol,
                          double step, int rows, int cols, int diverging, const char *rlabel, const char *clabel) {
    double *z = malloc(sizeof(double) * rows * cols);
    for (int i = 0; i < rows * cols; i++) z[i] = NAN;
    double vmax = 0;
    for (int r = 0; r < t->n_rows; r++) {
        if (!isnan(step) && col(t, r, "step") != step) continue;
        int i = (int)col(t, r, rcol), j = (int)col(t, r, ccol);
        if (i >= 0 && i < rows && j >= 0 && j < cols) {
            z[i * cols + j] = col(t, r, vcol);
            vmax = fmax(vmax, fabs(z[i * cols + j]));
        }
    }
    icl_fig *f = icl_fig_heatmap(title, clabel, rlabel, z, rows, cols);
    if (diverging) {
        icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING);
        if (vmax > 0) icl_fig_heatmap_range(f, -vmax, vmax);
    } else icl_fig_heatmap_range(f, 0, 1);
    if (rows * cols <= 64) icl_fig_heatmap_annotate(f, "%.2f");
    free(z);
    return f;
}


static icl_fig *fig_td_heatmap(const run_data *d) {
    if (d->td.n_rows == 0) return NULL;
    /* rows = layers, columns = checkpoints in order */
    int L = 0, ns = 0;
    double *steps = malloc(sizeof(double) * d->td.n_rows), prev = NAN;
    for (int r = 0; r < d->td.n_rows; r++) {
        L = (int)fmax(L, col(&d->td, r, "layer") + 1);
        if (col(&d->td, r, "step") != prev) steps[ns++] = prev = col(&d->td, r, "step");
    }
    double *z = malloc(sizeof(double) * L * ns);
    char **clab = malloc(sizeof(char *) * ns), **rlab = malloc(sizeof(char *) * L);
    for (int i = 0; i < L * ns; i++) z[i] = NAN;
    for (int r = 0, j = -1; r < d->td.n_rows; r++) {
        if (j < 0 || col(&d->td, r, "step") != steps[j]) j++;
        if (col(&d->td, r, "concept") == -1) z[(int)col(&d->td, r, "layer") * ns + j] = col(&d->td, r, "td");
    }
    for (int j = 0; j < ns; j++) {
        clab[j] = malloc(24);
        snprintf(clab[j], 24, "%.0f", steps[j]);
    }
    for (int l = 0; l < L; l++) {
        rlab[l] = malloc(16);
        snprintf(rlab[l], 16, "%d", l);
    }
    icl_fig *f = icl_fig_heatmap("Task decodability, layer x checkpoint", "checkpoint (step)", "layer (0 = embedding)", z, L, ns);
    icl_fig_heatmap_range(f, 0, 1);
    icl_fig_heatmap_labels(f, (const char *const *)rlab, (const char *const *)clab);
    icl_fig_colorbar_label(f, "TD");
    for (int j = 0; j < ns; j++) free(clab[j]);
    for (int l = 0; l < L; l++) free(rlab[l]);
    free(clab);
    free(rlab);
    free(z);
    free(steps);
    return f;
}

/* Off-basis sensitivity over training: one line per concept for the model, the basis-agnostic
 * estimators' levels (mean over concepts) as horizontal lines; the oracle's is 0 by construction. */
static icl_fig *fig_offbasis(const run_data *d) {
    const icl_csv *o = &d->offbasis;
    if (o->n_rows == 0) return NULL;
    int cp = icl_csv_col(o, "predictor"), cc = icl_csv_col(o, "concept"), cs = icl_csv_col(o, "step"), cv = icl_csv_col(o, "sensitivity");
    if (cp < 0 || cc < 0 || cs < 0 || cv < 0) return NULL;
    double *x = malloc(sizeof(double) * o->n_rows), *y = malloc(sizeof(double) * o->n_rows);
    icl_fig *f = icl_fig_line("Does the model read the other bases' coordinates?", "training step",
                              "change of predictions when they are redrawn");
    icl_fig_set_logx(f, d->logx);
    int most = 0;
    for (int k = 0; k < d->nc; k++) {
        int n = 0;
        for (int r = 0; r < o->n_rows; r++)
            if ((int)icl_csv_num(o, r, cc) == k && !strcmp(icl_csv_str(o, r, cp), "model") && icl_csv_num(o, r, cs) > 0) {
                x[n] = icl_csv_num(o, r, cs);
                y[n++] = icl_csv_num(o, r, cv);
            }
        char label[80];
        snprintf(label, sizeof label, "model, %s", d->names[k]);
        if (n) icl_fig_add_series(f, label, x, y, n);
        most = n > most ? n : most;
    }
    static const struct { const char *name, *label; } E[] = {{"ls", "least squares (all D)"}, {"ridge", "ridge (all D)"}, {"lasso", "Lasso (all D)"}};
    double first = NAN;
    for (int r = 0; r < o->n_rows && isnan(first); r++) first = icl_csv_num(o, r, cs);
    for (size_t e = 0; e < sizeof E / sizeof E[0]; e++) { /* estimators do not train: any one step's values */
        double v = offbasis_at(d, E[e].name, first, -1);
        if (isfinite(v)) icl_fig_add_hline(f, v, E[e].label);
    }
    icl_fig_add_hline(f, 0, "oracle (own basis only)");
    free(x);
    free(y);
    if (most < 2) {
        icl_fig_free(f);
        return NULL;
    }
    double top = 0, last = last_step(o);
    for (int r = 0; r < o->n_rows; r++) top = fmax(top, icl_csv_num(o, r, cv));
    mark_events(f, d, 0.95 * top, 0.07 * top, last, 1);
    return f;
}

/* Self- vs cross-patching over training: per checkpoint, the mean change of MSE on the diagonal
 * (a concept's own mean patched in) and off it (another concept's mean). */
static icl_fig *fig_patching_over_training(const run_data *d) {
    const icl_csv *p = &d->patch;
    if (p->n_rows == 0 || d->nc < 2) return NULL;
    double *x = malloc(sizeof(double) * p->n_rows), *self = malloc(sizeof(double) * p->n_rows);
    double *cross = malloc(sizeof(double) * p->n_rows);
    int n = 0;
    for (int r = 0; r < p->n_rows;) { /* rows are grouped by step */
        double step = col(p, r, "step"), ss = 0, sc = 0;
        int ns = 0, ncr = 0;
        for (; r < p->n_rows && col(p, r, "step") == step; r++) {
            double v = col(p, r, "delta_mse");
            if (col(p, r, "source") == col(p, r, "target")) ss += v, ns++;
            else sc += v, ncr++;
        }
        if (step > 0 && ns && ncr) {
            x[n] = step;
            self[n] = ss / ns;
            cross[n++] = sc / ncr;
        }
    }
    icl_fig *f = NULL;
    if (n >= 2) {
        char title[96];
        snprintf(title, sizeof title, "Patching at layer %.0f over training", col(p, 0, "layer"));
        f = icl_fig_line(title, "training step", "change of the final prediction's MSE");
        icl_fig_set_logx(f, d->logx);
        icl_fig_add_series(f, "cross-patching (another concept's mean)", x, cross, n);
        icl_fig_add_series(f, "self-patching (own concept's mean)", x, self, n);
        icl_fig_add_hline(f, 0, NULL);
    }
    free(x);
    free(self);
    free(cross);
    return f;
}

/* Shift (or transport) patching over training, per concept: the smallest change of MSE when its
 * sequences are moved toward another concept, minus the self change (0 for a shift). Above 0 the
 * concept meets phase (c)'s own-mean condition by its sign at that checkpoint. */
static icl_fig *fig_keeping_over_training(const run_data *d, const icl_csv *p, const char *what) {
    if (p->n_rows == 0 || d->nc < 2) return NULL;
    double *x = malloc(sizeof(double) * p->n_rows), *y = malloc(sizeof(double) * p->n_rows);
    char title[96], ylabel[96];
    snprintf(title, sizeof title, "%s patching at layer %.0f over training", what, col(p, 0, "layer"));
    snprintf(ylabel, sizeof ylabel, p == &d->patch_shift ? "smallest change of MSE, another concept's shift"
                                                         : "smallest change of MSE, another concept's minus the own");
    icl_fig *f = icl_fig_line(title, "training step", ylabel);
    icl_fig_set_logx(f, d->logx);
    for (int k = 0; x && y && k < d->nc; k++) {
        int n = 0;
        for (int r = 0; r < p->n_rows; r++) {
            double step = col(p, r, "step"), self, cross;
            if (step <= 0 || (n && x[n - 1] == step) || (int)col(p, r, "source") != k) continue;
            patch_at(p, k, step, &self, &cross);
            if (isfinite(cross - self)) x[n] = step, y[n++] = cross - self;
        }
        if (n) icl_fig_series_markers(f, icl_fig_add_series(f, d->names[k], x, y, (size_t)n), 1);
    }
    icl_fig_add_hline(f, 0, p == &d->patch_shift ? "self-shift (0)" : "own concept");
    free(x);
    free(y);
    return f;
}

/* A patching table's matrix (source x patched-in concept) at its last checkpoint. */
static icl_fig *fig_patching(const run_data *d, const icl_csv *t, const char *what) {
    if (t->n_rows == 0) return NULL;
    double s = last_step(t);
    char title[128];
    snprintf(title, sizeof title, "%s at layer %.0f, step %.0f: change of MSE", what, col(t, 0, "layer"), s);
    const char *target = t == &d->patch_transport ? "concept carried onto" : "patched-in concept mean";
    icl_fig *f = matrix_fig(t, title, "source", "target", "delta_mse", s, d->nc, d->nc, 1, "source concept", target);
    const char *names[MAX_CONCEPTS];
    for (int k = 0; k < d->nc; k++) names[k] = d->names[k];
    icl_fig_heatmap_labels(f, names, names);
    return f;
}

static icl_fig *fig_heads(const run_data *d) {
    if (d->heads.n_rows == 0) return NULL;
    double s = last_step(&d->heads);
    int L = 0, H = 0;
    for (int r = 0; r < d->heads.n_rows; r++) {
        L = (int)fmax(L, col(&d->heads, r, "layer") + 1);
        H = (int)fmax(H, col(&d->heads, r, "head") + 1);
    }
    double *z = malloc(sizeof(double) * L * H * d->nc), vmax = 0;
    for (int i = 0; i < L * H * d->nc; i++) z[i] = NAN;
    for (int r = 0; r < d->heads.n_rows; r++)
        if (col(&d->heads, r, "step") == s) {
            int row = (int)col(&d->heads, r, "layer") * H + (int)col(&d->heads, r, "head"), k = (int)col(&d->heads, r, "concept");
            if (row >= 0 && row < L * H && k >= 0 && k < d->nc) {
                z[row * d->nc + k] = col(&d->heads, r, "delta_mse");
                vmax = fmax(vmax, fabs(z[row * d->nc + k]));
            }
        }
    char title[96], **rlab = malloc(sizeof(char *) * L * H);
    snprintf(title, sizeof title, "Head ablation at step %.0f: change of MSE", s);
    icl_fig *f = icl_fig_heatmap(title, "concept", "head (layer.head)", z, L * H, d->nc);
    icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING);
    if (vmax > 0) icl_fig_heatmap_range(f, -vmax, vmax);
    const char *names[MAX_CONCEPTS];
    for (int k = 0; k < d->nc; k++) names[k] = d->names[k];
    for (int i = 0; i < L * H; i++) {
        rlab[i] = malloc(32);
        snprintf(rlab[i], 32, "l%d.h%d", i / H + 1, i % H);
    }
    icl_fig_heatmap_labels(f, (const char *const *)rlab, names);
    for (int i = 0; i < L * H; i++) free(rlab[i]);
    free(rlab);
    free(z);
    return f;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* The paper's Fig. 11: a grid of 2-D embeddings (rows = layers, columns = checkpoints) coloured by
 * concept, from decode/<kind>_step_N.npy and decode/labels.npy. NULL when there are none. */
static icl_fig *fig_embeddings(const run_data *d, const char *run, const char *kind) {
    char dir[4200], path[4400], prefix[32];
    snprintf(dir, sizeof dir, "%s/decode", run);
    snprintf(prefix, sizeof prefix, "%s_step_", kind);
    DIR *dd = opendir(dir);
    if (!dd) return NULL;
    long long steps[64];
    int ns = 0;
    struct dirent *e;
    while ((e = readdir(dd)) && ns < 64) {
        long long v;
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && sscanf(e->d_name + strlen(prefix), "%lld", &v) == 1) steps[ns++] = v;
    }
    closedir(dd);
    if (ns == 0) return NULL;
    qsort(steps, ns, sizeof steps[0], cmp_ll);
    icl_npy lab;
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    if (icl_npy_read_as(path, ICL_NPY_I32, &lab, NULL)) return NULL;
    icl_fig *f = NULL;
    char **rh = NULL, **ch = calloc(ns, sizeof(char *));
    int L1 = 0;
    for (int j = 0; j < ns; j++) {
        icl_npy emb;
        snprintf(path, sizeof path, "%s/%s%09lld.npy", dir, prefix, steps[j]);
        if (icl_npy_read_as(path, ICL_NPY_F32, &emb, NULL)) continue;
        if (emb.ndim != 3 || emb.shape[2] != 2 || emb.shape[1] != lab.n || emb.shape[0] < 1 || emb.shape[0] > 256) {
            icl_npy_free(&emb);
            continue;
        }
        if (!f) {
            L1 = (int)emb.shape[0];
            char title[96];
            snprintf(title, sizeof title, "%s of the concept representations: layers x checkpoints", !strcmp(kind, "umap") ? "UMAP" : "PCA");
            f = icl_fig_grid(title, L1, ns);
            rh = calloc(L1, sizeof(char *));
            for (int l = 0; l < L1; l++) {
                rh[l] = malloc(24);
                snprintf(rh[l], 24, l == 0 ? "embedding" : "layer %d", l);
            }
        }
        ch[j] = malloc(32);
        snprintf(ch[j], 32, "step %lld", steps[j]);
        for (int l = 0; l < L1 && l < emb.shape[0]; l++) {
            icl_fig_panel(f, l, j, NULL, NULL, NULL);
            icl_fig_add_points_xy(f, (const float *)emb.data + (size_t)l * lab.n * 2, (const int *)lab.data, (size_t)lab.n);
            icl_fig_set_ticks(f, 0);
        }
        icl_npy_free(&emb);
    }
    if (f) {
        const char *names[MAX_CONCEPTS];
        for (int k = 0; k < d->nc; k++) names[k] = d->names[k];
        icl_fig_grid_headers(f, (const char *const *)rh, (const char *const *)ch);
        icl_fig_set_classes(f, names, d->nc);
    }
    for (int l = 0; rh && l < L1; l++) free(rh[l]);
    for (int j = 0; j < ns; j++) free(ch[j]);
    free(rh);
    free(ch);
    icl_npy_free(&lab);
    return f;
}

/* ---------------------------------------------------------------- output */

typedef struct named_fig {
    const char *name, *caption;
    icl_fig *fig;
    int width, height;
} named_fig;

/* Builds every figure the run's files allow. */
static int build_figs(const run_data *d, const char *run, named_fig *out) {
    int n = 0;
    named_fig all[] = {
        {"mse_by_concept", "Held-out normalised MSE per concept over training. Vertical lines mark the run's events: the end of a "
                           "curriculum, each concept's loss drop (runs without one), the step from which it reads only its "
                           "own basis and the step from which it stays below ridge and Lasso; horizontal lines are the reference "
                           "estimators averaged over positions.", fig_mse_by_concept(d), 0, 0},
        {"td_over_training", d->cap_td, fig_td_over_training(d), 0, 0},
        {"td_heatmap", "Overall task decodability for every layer and checkpoint.", fig_td_heatmap(d), 1000, 480},
        {"algorithm", "Mean squared distance between the model's predictions and each reference estimator's over training "
                      "(mean over concepts): the model's algorithm moves from the basis-agnostic estimators toward least "
                      "squares on the true basis. Vertical lines: when it stays closer to the oracle than to Lasso, and when "
                      "each concept's decodability rose.", fig_algorithm(d), 0, 0},
        {"umap", d->cap_umap, fig_embeddings(d, run, "umap"), 0, 0},
        {"pca", "The same representations projected on their first two principal components.", fig_embeddings(d, run, "pca"), 0, 0},
        {"mse_by_position", "MSE by the number of in-context examples, early, midway and at the end of training, against the "
                            "reference estimators (dashed).", fig_mse_by_position(d), 1400, 460},
        {"patching", "Replacing the concept representation of source-concept sequences by the mean of another concept: change "
                     "of the final prediction's MSE (self-patching on the diagonal).",
         fig_patching(d, &d->patch, "Mean-activation patching"), 640, 520},
        {"patching_over_training", "The same patching at every checkpoint: mean change of MSE when source sequences get "
                                   "another concept's mean (cross) or their own concept's mean (self). A gap means the "
                                   "patched tokens carry the concept and the model uses it.", fig_patching_over_training(d), 0, 0},
        {"shift_patching", "Shift patching: the source sequences' streams moved by the patched-in concept's mean minus their "
                           "own (the diagonal is 0 by construction), so each sequence keeps its data and only the concept "
                           "moves: change of the final prediction's MSE.",
         fig_patching(d, &d->patch_shift, "Shift patching"), 640, 520},
        {"shift_patching_over_training", "Shift patching at every checkpoint: per concept, the smallest change of MSE when "
                                         "its sequences are moved toward another concept. Above 0 every other concept's "
                                         "direction costs more than its own: phase (c)'s own-mean condition.",
         fig_keeping_over_training(d, &d->patch_shift, "Shift"), 0, 0},
        {"transport_patching", "Transport patching (iclab patch --transport): the source sequences' streams carried from "
                               "their concept's Gaussian onto the patched-in concept's; the diagonal moves them between two "
                               "halves of the same concept's sequences, the noise floor: change of the final prediction's MSE.",
         fig_patching(d, &d->patch_transport, "Transport patching"), 640, 520},
        {"transport_patching_over_training", "Transport patching at every checkpoint: per concept, the smallest change of "
                                             "MSE when its sequences are carried onto another concept, minus the change "
                                             "when carried onto their own (the noise floor).",
         fig_keeping_over_training(d, &d->patch_transport, "Transport"), 0, 0},
        {"offbasis", "How far the model's predictions on each concept's sequences move when the coordinates of the "
                     "other bases (on which that concept's weights are zero) are redrawn: a learner that has decoded the "
                     "basis and regresses on it alone moves by 0, the basis-agnostic estimators by the horizontal lines.",
         fig_offbasis(d), 0, 0},
        {"head_ablation", "Zeroing one attention head at a time: change of the MSE per concept.", fig_heads(d), 640, 0},
        {"train_loss", "Training loss.", fig_train_loss(d), 0, 0},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].fig) out[n++] = all[i];
    return n;
}

/* The off-basis sensitivity just after the last loss drop and at the end, against the estimators'. */
static void summary_offbasis(icl_report *rep, const run_data *d, double lastd) {
    if (d->offbasis.n_rows == 0) return;
    double end = last_step(&d->offbasis), after = NAN;
    for (int r = 0; r < d->offbasis.n_rows; r++) {
        double st = col(&d->offbasis, r, "step");
        if (isfinite(lastd) && st >= lastd && !(st >= after)) after = st;
    }
    double ls = offbasis_at(d, "ls", end, -1), ridge = offbasis_at(d, "ridge", end, -1), lasso = offbasis_at(d, "lasso", end, -1);
    char at_drop[160] = "";
    if (isfinite(after) && after < end)
        snprintf(at_drop, sizeof at_drop, "%.3f at step %.0f (the first checkpoint after the last loss drop) and ", offbasis_at(d, "model", after, -1), after);
    icl_report_p(rep, "Redrawing the coordinates of the other bases moves the model's predictions by %s%.3f at step %.0f (mean "
                      "squared change, mean over concepts); least squares on all coordinates moves by %.3f, ridge by %.3f, "
                      "Lasso by %.3f, the oracle by 0.",
                 at_drop, offbasis_at(d, "model", end, -1), end, ls, ridge, lasso);
}

/* The automatic summary: per concept, when its loss fell, when it started reading its own basis,
 * when it passed the basis-agnostic estimators and when its TD rose; then the run as a whole. */
static void summary(icl_report *rep, const run_data *d) {
    icl_report_h2(rep, "Summary");
    int any = 0;
    for (int k = 0; k < d->nc; k++) {
        char td[512] = "";
        if (d->td.n_rows && d->td_layer >= 0) {
            if (isfinite(d->td_step[k])) {
                int len = snprintf(td, sizeof td, "; its TD at layer %d stays above %.2f (halfway from chance to its maximum %.2f) from step %.0f",
                                   d->td_layer, d->td_level[k], d->td_max[k], d->td_step[k]);
                if (isfinite(d->td_from[k])) { /* the loss change the rise came with, against the other concepts' */
                    double a = d->td_from[k], b = d->td_step[k], oa = 0, ob = 0;
                    for (int j = 0; j < d->nc; j++)
                        if (j != k) oa += mse_near(d, j, a) / (d->nc - 1), ob += mse_near(d, j, b) / (d->nc - 1);
                    len += snprintf(td + len, sizeof td - len, "; while it rose (steps %.0f to %.0f) its MSE went from %.3f to %.3f", a, b,
                                    mse_near(d, k, a), mse_near(d, k, b));
                    if (d->nc > 1) snprintf(td + len, sizeof td - len, ", the other concepts' from %.3f to %.3f", oa, ob);
                }
            }
            else if (d->td_max[k] > d->td_chance[k] + TD_CLEAR)
                snprintf(td, sizeof td, "; its TD at layer %d reached %.2f but does not stay above %.2f (halfway from chance)",
                         d->td_layer, d->td_max[k], d->td_level[k]);
            else snprintf(td, sizeof td, "; its TD at layer %d never rose clearly above chance (%.2f; at most %.2f)", d->td_layer,
                          d->td_chance[k], d->td_max[k]);
        }
        char beat[160] = "", own[200] = "";
        if (isfinite(d->beat_step[k]))
            snprintf(beat, sizeof beat, "; it stays below the best basis-agnostic estimator (%.3f) from step %.0f", d->agnostic[k], d->beat_step[k]);
        else if (isfinite(d->agnostic[k]))
            snprintf(beat, sizeof beat, "; it does not stay below the best basis-agnostic estimator (%.3f)", d->agnostic[k]);
        if (isfinite(d->own_step[k]))
            snprintf(own, sizeof own, "; from step %.0f on, redrawing the other bases' coordinates moves its predictions less than "
                                      "ridge's and Lasso's", d->own_step[k]);
        if (isfinite(d->drop_step[k])) icl_report_p(rep, "%s: loss fell at step %.0f%s%s%s.", d->names[k], d->drop_step[k], own, beat, td);
        else icl_report_p(rep, "%s: no clear loss drop (less than 0.1 between its highest and final MSE)%s%s%s.", d->names[k], own, beat, td);
        any |= isfinite(d->drop_step[k]);
    }
    double first = INFINITY, lastd = -INFINITY;
    for (int k = 0; k < d->nc; k++)
        if (isfinite(d->drop_step[k])) {
            first = fmin(first, d->drop_step[k]);
            lastd = fmax(lastd, d->drop_step[k]);
        }
    if (d->dense_steps > 0) /* after a curriculum the drops are the fall to the basis-agnostic level, not stages */
        icl_report_p(rep, "The first %.0f steps were a curriculum on %s; the loss drops above are searched from twice that step on.", d->dense_steps,
                     d->families_curriculum ? "a mixture of regression families (linear, quadratic, sparse, leaky-ReLU)" : "dense regression");
    else if (any && lastd > first * 1.25)
        icl_report_p(rep, "The concepts were learned in stages: the first loss drop at step %.0f, the last at step %.0f.", first, lastd);
    else if (any)
        icl_report_p(rep, "The concepts' losses fell together (within 25%% of the training steps of each other).");
    /* concept-specific decoding, concept by concept: the paper's phases (b) and (c) */
    char who[512] = "", rest[512] = "";
    int nown = 0;
    for (int k = 0; k < d->nc; k++) {
        char *buf = isfinite(d->own_step[k]) ? who : rest;
        size_t len = strlen(buf);
        if (isfinite(d->own_step[k])) snprintf(buf + len, sizeof who - len, "%s%s from step %.0f", len ? ", " : "", d->names[k], d->own_step[k]);
        else snprintf(buf + len, sizeof rest - len, "%s%s", len ? ", " : "", d->names[k]);
        nown += isfinite(d->own_step[k]);
    }
    if (nown > 0 && nown < d->nc)
        icl_report_p(rep, "Concept-specific decoding for some concepts only (the paper's phase (b)): %s; %s %s basis-agnostic.", who,
                     rest, d->nc - nown > 1 ? "stay" : "stays");
    else if (nown == d->nc && d->nc > 1)
        icl_report_p(rep, "Every concept reached concept-specific decoding: %s.", who);
    if (isfinite(d->switch_step))
        icl_report_p(rep, "From step %.0f on, the model's predictions are closer to least squares on the true basis than to "
                          "Lasso on all coordinates: it decodes with a concept-specific algorithm.", d->switch_step);
    summary_offbasis(rep, d, any ? lastd : NAN);
    if (d->patch.n_rows) { /* self vs cross patching at the last patched checkpoint */
        double step = last_step(&d->patch), ss = 0, sc = 0;
        int ns = 0, ncr = 0;
        for (int r = 0; r < d->patch.n_rows; r++) {
            if (col(&d->patch, r, "step") != step) continue;
            double v = col(&d->patch, r, "delta_mse");
            if (col(&d->patch, r, "source") == col(&d->patch, r, "target")) ss += v, ns++;
            else sc += v, ncr++;
        }
        if (ns && ncr)
            icl_report_p(rep, "Patching at layer %.0f, step %.0f: putting another concept's mean representation in place raises "
                              "the final prediction's MSE by %.3f on average; the concept's own mean by %.3f.",
                         col(&d->patch, 0, "layer"), step, sc / ncr, ss / ns);
    }
    if (!d->td.n_rows) icl_report_p(rep, "Run `iclab decode` on this run to add task decodability.");
    if (!d->patch.n_rows) icl_report_p(rep, "Run `iclab patch` on this run to add patching and head ablation.");
}

static void fmt_step_cell(char *buf, size_t n, double step) {
    if (isfinite(step)) snprintf(buf, n, "%.0f", step);
    else snprintf(buf, n, "never");
}

/* How replacement self-patches moved the MSE, for the paper's "every self-patch lowers the loss". */
static const char *self_patch_sign(const icl_run_phases *p) {
    int up = 0, down = 0;
    for (int k = 0; k < p->n_concepts; k++) up += p->c[k].replace_self > 0, down += p->c[k].replace_self < 0;
    return up && down ? "raises or lowers" : up ? "raises" : down ? "lowers" : "leaves";
}

/* The phase table (per concept: its events and the three phase-(c) conditions) and the paper's
 * findings beside this run's. */
static void phase_section(icl_report *rep, const run_data *d) {
    icl_run_phases *p = malloc(sizeof *p);
    if (!p) return;
    phases_from(d, p);
    icl_report_h2(rep, "Phases, beside the paper");
    icl_report_p(rep, "Per concept: its loss drop (the first evaluation at or below the midpoint between its highest MSE%s and "
                      "its final MSE), the checkpoint from which its TD at layer %d stays halfway from chance to its maximum, "
                      "the steps between the two, and the three conditions of the paper's phase (c) (every concept "
                      "separated, decoded by its own algorithm): TD at its best layer >= %.2g, MSE below the best "
                      "basis-agnostic estimator, and its own mean cheaper to patch in than any other concept's%s. TD is read at %s%s.",
                 d->dense_steps > 0 ? " from twice the curriculum's length on" : "", d->td_layer, ICL_PHASE_TD,
                 p->patch_kind == ICL_PATCH_TRANSPORT
                     ? ", read from transport patching (iclab patch --transport: the patched streams carried from their "
                       "concept's Gaussian onto another's; the self cell moves them between two halves of the same "
                       "concept's sequences, the noise floor; every other concept's transport must exceed the self "
                       "transport by more than 2 standard errors, z, given with the smallest cross change and its "
                       "standard error; replacement patching, the paper's, is shown beside and does not decide)"
                 : p->patch_kind == ICL_PATCH_SHIFT
                     ? ", read from shift patching (the patched streams moved by the other concept's mean minus "
                       "their own, so the self-shift is 0 and every other concept's shift must raise the MSE; "
                       "replacement patching, the paper's, is shown beside and does not decide; where the "
                       "table has standard errors, the smallest shift is given with its standard error over the "
                       "probe sequences and z, the smallest ratio of another concept's shift to its standard "
                       "error: above 2, the own direction is the cheapest by more than the probe set's noise)"
                     : "",
                 d->td_where,
                 d->td_last.n_rows ? "; the TD column also gives it at the sequence's last token (decode/td_last.csv), the "
                                     "y-token of the last demonstration, which no prediction reads under the causal mask" : "");
    /* with a shift table, replacement gets a column of its own before the conditions */
    enum { MAXCOL = 11 };
    const int keeps = p->patch_kind != ICL_PATCH_REPLACE, NCOL = keeps ? 11 : 10;
    const char *hdr[MAXCOL] = {"concept", "loss drop", "TD halfway", "TD rise - loss drop", "below ridge/Lasso from",
                               "reads own basis from", "TD, best layer (last ckpt)", "MSE / agnostic (end)",
                               p->patch_kind == ICL_PATCH_TRANSPORT ? "transport: own / other (min) ± SE (min z, min margin × MSE)"
                               : keeps                               ? "shift: own / other (min) ± SE (min z)"
                                                                     : "patch: own / other (min)",
                               keeps ? "replacement: own / other (min)" : "phase (c) conditions", "phase (c) conditions"};
    char (*cells)[96] = calloc((size_t)p->n_concepts * MAXCOL, 96);
    const char **cp = calloc((size_t)p->n_concepts * MAXCOL + 1, sizeof *cp);
    for (int k = 0; cells && cp && k < p->n_concepts; k++) {
        const icl_phase_concept *c = &p->c[k];
        char (*row)[96] = cells + (size_t)k * NCOL;
        snprintf(row[0], 96, "%s", c->name);
        fmt_step_cell(row[1], 96, c->drop_step);
        if (d->td.n_rows) fmt_step_cell(row[2], 96, c->td_half_step);
        else snprintf(row[2], 96, "not decoded");
        if (isfinite(c->td_lag)) snprintf(row[3], 96, "%+.0f", c->td_lag);
        fmt_step_cell(row[4], 96, c->beat_step);
        if (d->offbasis.n_rows) fmt_step_cell(row[5], 96, c->own_step);
        if (isfinite(c->td_best)) snprintf(row[6], 96, "%.2f (layer %d)", c->td_best, c->td_best_layer);
        if (isfinite(c->td_best_last)) {
            size_t len = strlen(row[6]);
            snprintf(row[6] + len, 96 - len, "; last token %.2f", c->td_best_last);
        }
        snprintf(row[7], 96, "%.3f / %.3f", c->final_mse, c->agnostic);
        if (isfinite(c->self_patch)) snprintf(row[8], 96, keeps ? "%+.4f / %+.4f" : "%+.3f / %+.3f", c->self_patch, c->cross_patch);
        if (isfinite(c->cross_patch_z)) {
            size_t len = strlen(row[8]);
            char size[32] = "";
            if (p->patch_kind == ICL_PATCH_TRANSPORT && isfinite(c->cross_patch_rel))
                snprintf(size, sizeof size, ", %.2f × MSE", c->cross_patch_rel);
            snprintf(row[8] + len, 96 - len, " ± %.4f (%.1f SE%s)", c->cross_patch_se, c->cross_patch_z, size);
        }
        if (keeps && isfinite(c->replace_self)) snprintf(row[9], 96, "%+.3f / %+.3f", c->replace_self, c->replace_cross);
        snprintf(row[NCOL - 1], 96, "%s%s%s", c->td_best >= ICL_PHASE_TD ? "separated " : "",
                 c->final_mse < c->agnostic ? "below-agnostic " : "",
                 own_cheaper(p->patch_kind, c->self_patch, c->cross_patch, c->cross_patch_z, c->cross_patch_rel) ? "own-cheaper" : "");
        for (int j = 0; j < NCOL; j++) cp[(size_t)k * NCOL + j] = row[j];
    }
    if (cells && cp) icl_report_table(rep, NCOL, hdr, p->n_concepts, cp);
    free(cells);
    free(cp);

    /* the paper's findings (paper.md §1.5, Figs. 2, 7, 8) beside this run's */
    char drops[512] = "", lags[640] = "", patch[512], sep[160], phase[512];
    double first = INFINITY, last = -INFINITY;
    int nd = 0;
    if (d->td.n_rows) {
        /* the resolution of the lags: the widest gap between decoded checkpoints */
        double prev = NAN, gap = 0;
        for (int r = 0; r < d->td.n_rows; r++) {
            double st = col(&d->td, r, "step");
            if (st != prev && isfinite(prev)) gap = fmax(gap, st - prev);
            prev = st;
        }
        snprintf(lags, sizeof lags, "TD rise minus loss drop (checkpoints at most %.0f steps apart): ", gap);
    } else snprintf(lags, sizeof lags, "not decoded");
    for (int k = 0; k < p->n_concepts; k++) {
        const icl_phase_concept *c = &p->c[k];
        size_t len = strlen(drops);
        if (isfinite(c->drop_step)) {
            snprintf(drops + len, sizeof drops - len, "%s%s %.0f", nd ? ", " : "", c->name, c->drop_step);
            first = fmin(first, c->drop_step);
            last = fmax(last, c->drop_step);
            nd++;
        }
        if (!d->td.n_rows) continue;
        len = strlen(lags);
        if (isfinite(c->td_lag)) snprintf(lags + len, sizeof lags - len, "%s%s %+.0f steps", k ? ", " : "", c->name, c->td_lag);
        else snprintf(lags + len, sizeof lags - len, "%s%s: %s", k ? ", " : "", c->name,
                      isfinite(c->td_half_step) ? "no loss drop" : "TD never rose");
    }
    if (nd) {
        size_t len = strlen(drops);
        snprintf(drops + len, sizeof drops - len, nd > 1 && last > first * 1.25 ? " (in stages)" : nd > 1 ? " (together)" : "");
    } else snprintf(drops, sizeof drops, "no concept's loss fell by 0.1 or more");
    char clear[96] = "", lead[320];
    if (p->patch_kind == ICL_PATCH_SHIFT && p->patch_se) snprintf(clear, sizeof clear, ", by more than 2 standard errors for %d", p->n_self_clear);
    if (p->patch_kind == ICL_PATCH_TRANSPORT)
        snprintf(lead, sizeof lead, "transport patching: every other concept's transport exceeds the own concept's (its two halves' "
                 "noise floor) by more than 2 standard errors and by more than %.2g of the MSE for %d of %d concepts (step %.0f)",
                 ICL_PHASE_TRANSPORT_SIZE, p->n_self_clear, p->n_concepts, p->patch_step);
    else snprintf(lead, sizeof lead, "shift patching: every other concept's shift raises the MSE for %d of %d concepts%s (step %.0f)",
                  p->n_self_cheaper, p->n_concepts, clear, p->patch_step);
    if (isfinite(p->patch_step) && keeps && !d->patch.n_rows) snprintf(patch, sizeof patch, "%s; no replacement patching", lead);
    else if (isfinite(p->patch_step) && keeps)
        snprintf(patch, sizeof patch, "%s; replacement: own mean cheaper than every other concept's for %d of %d, every self-patch %s the MSE",
                 lead, p->n_replace_cheaper, p->n_concepts, self_patch_sign(p));
    else if (isfinite(p->patch_step))
        snprintf(patch, sizeof patch, "own mean cheaper than every other concept's for %d of %d concepts (step %.0f), every "
                 "self-patch %s the MSE", p->n_self_cheaper, p->n_concepts, p->patch_step, self_patch_sign(p));
    else snprintf(patch, sizeof patch, "not patched");
    if (d->td.n_rows) snprintf(sep, sizeof sep, "%d of %d (TD >= %.2g at step %.0f)", p->n_separated, p->n_concepts, ICL_PHASE_TD, p->td_step);
    else snprintf(sep, sizeof sep, "not decoded");
    if (p->phase_c < 0) snprintf(phase, sizeof phase, "not known (needs iclab decode and iclab patch)");
    else if (p->phase_c) snprintf(phase, sizeof phase, "yes: first at step %.0f, and at the last checkpoint", p->phase_c_step);
    else if (isfinite(p->phase_c_step)) snprintf(phase, sizeof phase, "at step %.0f, but not at the last checkpoint", p->phase_c_step);
    else snprintf(phase, sizeof phase, "no");
    if (p->phase_c == 1 && isfinite(p->plateau_own_step)) {
        size_t len = strlen(phase);
        snprintf(phase + len, sizeof phase - len, " (but the transport condition already held at step %.0f, before the loss "
                 "plateau was left: there it picks up the data's statistics, so only the size of the effect sets the end apart)",
                 p->plateau_own_step);
    }
    if (p->phase_c == 1 && p->patch_kind == ICL_PATCH_SHIFT && p->patch_se && p->n_self_clear < p->n_concepts) {
        size_t len = strlen(phase);
        snprintf(phase + len, sizeof phase - len, " (but the own-mean condition stands above 2 standard errors for only %d of %d concepts "
                 "there: within the probe set's noise)", p->n_self_clear, p->n_concepts);
    }
    const char *ph[3] = {"finding", "the paper (Fig. 2, 7; D = 16, 4 bases of rank 4, 80K steps)", "this run"};
    const char *pc[] = {
        "staged loss drops", "B1 drops abruptly at about epoch 10; B2-B4 descend together, with smaller drops at about epochs 10 and 40", drops,
        "TD rises as the loss falls", "each basis's representation separates as its loss drops: (a) one cluster, (b) B1 apart, (c) all four apart", lags,
        "patching", "at convergence every self-patch lowers the loss and every cross-basis patch raises it", patch,
        "concepts separated", "4 of 4 at convergence", sep,
        "phase (c) reached", "yes, by the end of training (2 of 3 seeds in Fig. 8 show one basis first)", phase};
    icl_report_table(rep, 3, ph, 5, pc);
    free(p);
}

/* Loads the run once, draws every figure once, saves each as PNG and SVG and, with a report,
 * embeds it in report.html too. */
static int render(const char *run_dir, int with_report, icl_err *err) {
    run_data d;
    named_fig figs[MAX_FIGS];
    char dir[4200], path[4400];
    snprintf(dir, sizeof dir, "%s/figures", run_dir);
    if (load_run(&d, run_dir, err) || icl_mkdirs(dir, err)) {
        free_run(&d);
        return -1;
    }
    icl_report *rep = NULL;
    if (with_report) {
        char title[4400];
        snprintf(title, sizeof title, "iclab run %s", run_dir);
        rep = icl_report_new(title);
        icl_report_p(rep, "Toy in-context regression model after Han et al. (arXiv 2412.12276). MSE is normalised by E[y^2], so "
                          "1.0 is predicting zero. All numbers below are recomputed from the run folder's CSV files.");
        summary(rep, &d);
        phase_section(rep, &d);
        icl_report_h2(rep, "Figures");
    }
    int n = build_figs(&d, run_dir, figs), r = 0;
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s.png", dir, figs[i].name);
        if (!r) r = icl_fig_save(figs[i].fig, path, figs[i].width, figs[i].height, err);
        snprintf(path, sizeof path, "%s/%s.svg", dir, figs[i].name);
        if (!r) r = icl_fig_save(figs[i].fig, path, figs[i].width, figs[i].height, err);
        if (rep) {
            icl_report_h3(rep, figs[i].name);
            if (!r) r = icl_report_figure(rep, figs[i].fig, figs[i].caption, figs[i].width, figs[i].height, err);
        }
        icl_fig_free(figs[i].fig);
    }
    if (rep && d.algo.n_rows) {
        double last = last_step(&d.algo);
        icl_report_h2(rep, "Which algorithm the model follows");
        icl_report_p(rep, "At step %.0f: mean squared distance between the model's predictions and each reference estimator's "
                          "(normalised), per concept; smaller means the model behaves more like that estimator (every "
                          "checkpoint is in causal/algo.csv).", last);
        const char *hdr[3] = {"concept", "estimator", "distance"};
        const char **cells = malloc(sizeof(char *) * 3 * d.algo.n_rows);
        int rows = 0;
        for (int row = 0; cells && row < d.algo.n_rows; row++)
            if (col(&d.algo, row, "step") == last) {
                for (int c = 0; c < 3; c++) cells[rows * 3 + c] = icl_csv_str(&d.algo, row, icl_csv_col(&d.algo, hdr[c]));
                rows++;
            }
        icl_report_table(rep, 3, hdr, rows, cells);
        free(cells);
    }
    if (rep) {
        icl_report_h2(rep, "Configuration");
        icl_report_pre(rep, d.config);
        snprintf(path, sizeof path, "%s/report.html", run_dir);
        if (!r) r = icl_report_write(rep, path, err);
        icl_report_free(rep);
    }
    free_run(&d);
    return r;
}

int icl_run_figures(const char *run_dir, icl_err *err) { return render(run_dir, 0, err); }

int icl_run_report(const char *run_dir, icl_err *err) { return render(run_dir, 1, err); }
