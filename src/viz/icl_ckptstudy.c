/* The checkpoint study (paper §3.5, Figs. 5-6: OLMo-7B's pretraining checkpoints): `iclab eval` on
 * every checkpoint of an `iclab train --task lm` run, then TD at the final checkpoint's peak layer
 * and ICL accuracy per concept against training step, in one CSV, figures and a report. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_lmeval.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_report.h"

#define MAX_CONCEPTS 64

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int icl_run_checkpoints(const char *run_dir, int64_t **steps, int *n, icl_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/checkpoints", run_dir);
    *steps = NULL, *n = 0;
    DIR *d = opendir(path);
    if (!d) return icl_errf(err, "%s is not a training run: it has no checkpoints/ folder", run_dir);
    int cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *s = e->d_name;
        size_t len = strlen(s);
        if (strncmp(s, "step_", 5) || len < 11 || strcmp(s + len - 5, ".gguf")) continue;
        char *end;
        long long v = strtoll(s + 5, &end, 10);
        if (end != s + len - 5 || v < 0) continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 32;
            int64_t *p = realloc(*steps, sizeof(int64_t) * (size_t)cap);
            if (!p) {
                closedir(d);
                free(*steps), *steps = NULL, *n = 0;
                return icl_errf(err, "out of memory");
            }
            *steps = p;
        }
        (*steps)[(*n)++] = v;
    }
    closedir(d);
    if (!*n) return icl_errf(err, "%s/checkpoints holds no step_N.gguf", run_dir);
    qsort(*steps, (size_t)*n, sizeof(int64_t), cmp_i64);
    return 0;
}

/* What one checkpoint's eval folder holds: accuracy (S, K) and TD (S, rows, K). */
typedef struct ck_data {
    int K, S, rows;
    char concepts[MAX_CONCEPTS][64];
    int shots[16];
    double *acc, *td;
} ck_data;

static int find_concept(const ck_data *d, const char *name) {
    for (int c = 0; c < d->K; c++)
        if (!strcmp(d->concepts[c], name)) return c;
    return -1;
}
static int find_shot(const ck_data *d, int s) {
    for (int i = 0; i < d->S; i++)
        if (d->shots[i] == s) return i;
    return -1;
}

/* Reads dir's accuracy.csv and td.csv; the concept and shot lists come from the first call (d->K == 0)
 * and later folders must match them. */
static int ck_read(const char *dir, ck_data *d, int rows, icl_err *err) {
    char path[4600];
    icl_csv t;
    snprintf(path, sizeof path, "%s/accuracy.csv", dir);
    if (icl_csv_read(&t, path, err)) return -1;
    int cs = icl_csv_col(&t, "shots"), cc = icl_csv_col(&t, "concept"), ca = icl_csv_col(&t, "accuracy");
    int r = cs < 0 || cc < 0 || ca < 0 ? icl_errf(err, "%s lacks shots, concept or accuracy", path) : 0;
    int first = d->K == 0;
    for (int i = 0; !r && first && i < t.n_rows; i++) {
        int s = (int)icl_csv_num(&t, i, cs);
        const char *c = icl_csv_str(&t, i, cc);
        if (find_shot(d, s) < 0) {
            if (d->S == 16) r = icl_errf(err, "%s: more than 16 shot counts", path);
            else d->shots[d->S++] = s;
        }
        if (!r && find_concept(d, c) < 0) {
            if (d->K == MAX_CONCEPTS || strlen(c) >= 64) r = icl_errf(err, "%s: too many or too long concept names", path);
            else snprintf(d->concepts[d->K++], 64, "%s", c);
        }
    }
    if (!r && first) {
        d->rows = rows;
        d->acc = malloc(sizeof(double) * (size_t)d->S * d->K);
        d->td = malloc(sizeof(double) * (size_t)d->S * d->K * rows);
        if (!d->acc || !d->td) r = icl_errf(err, "out of memory");
    }
    if (!r && rows != d->rows) r = icl_errf(err, "%s: %d layers, the other checkpoints %d", dir, rows - 1, d->rows - 1);
    if (!r) {
        for (size_t i = 0; i < (size_t)d->S * d->K; i++) d->acc[i] = NAN;
        for (size_t i = 0; i < (size_t)d->S * d->K * d->rows; i++) d->td[i] = NAN;
    }
    for (int i = 0; !r && i < t.n_rows; i++) {
        int s = find_shot(d, (int)icl_csv_num(&t, i, cs)), c = find_concept(d, icl_csv_str(&t, i, cc));
        if (s < 0 || c < 0) r = icl_errf(err, "%s: concepts or shots differ from the first checkpoint's", path);
        else d->acc[s * d->K + c] = icl_csv_num(&t, i, ca);
    }
    icl_csv_free(&t);
    if (r) return -1;
    snprintf(path, sizeof path, "%s/td.csv", dir);
    if (icl_csv_read(&t, path, err)) return -1;
    int ts = icl_csv_col(&t, "shots"), tl = icl_csv_col(&t, "layer"), tc = icl_csv_col(&t, "concept"),
        tt = icl_csv_col(&t, "td");
    r = ts < 0 || tl < 0 || tc < 0 || tt < 0 ? icl_errf(err, "%s lacks shots, layer, concept or td", path) : 0;
    for (int i = 0; !r && i < t.n_rows; i++) {
        int s = find_shot(d, (int)icl_csv_num(&t, i, ts)), l = (int)icl_csv_num(&t, i, tl);
        int c = find_concept(d, icl_csv_str(&t, i, tc));
        if (s >= 0 && c >= 0 && l >= 0 && l < d->rows) d->td[((size_t)s * d->rows + l) * d->K + c] = icl_csv_num(&t, i, tt);
    }
    icl_csv_free(&t);
    return r;
}

/* The first step at which v[] reaches half of its rise from v[0] to its maximum; -1 when the rise is
 * below min_rise. */
static int64_t half_rise_step(const double *v, const int64_t *steps, int n, double min_rise) {
    double mx = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] > mx) mx = v[i];
    if (!(mx - v[0] >= min_rise)) return -1;
    for (int i = 0; i < n; i++)
        if (v[i] >= v[0] + 0.5 * (mx - v[0])) return steps[i];
    return -1;
}

static double pearson(const double *x, const double *y, int n) {
    double mx = 0, my = 0, sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    for (int i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx), syy += (y[i] - my) * (y[i] - my), sxy += (x[i] - mx) * (y[i] - my);
    }
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : NAN;
}

/* Everything gathered: acc[i][s][c] and td[i][s][c] at the final peak layer, tdo at each checkpoint's
 * own peak. */
typedef struct study {
    const char *run, *task, *out;
    int n, K, S, peak, peak_shots, rows;
    int64_t *steps;
    int *own_peak;
    ck_data d;
    double *acc, *td, *tdo;
} study;

#define AT(a, i, s, c) (a)[((size_t)(i) * st->S + (s)) * st->K + (c)]

static int write_csv(const study *st, icl_err *err) {
    char path[4600];
    snprintf(path, sizeof path, "%s/checkpoints.csv", st->out);
    icl_afile f;
    if (icl_afile_open(&f, path, err)) return -1;
    int r = icl_afile_printf(&f, err, "step,shots,concept,accuracy,td,td_own_peak,own_peak_layer\n");
    for (int i = 0; !r && i < st->n; i++)
        for (int s = 0; !r && s < st->S; s++)
            for (int c = 0; !r && c < st->K; c++)
                r = icl_afile_printf(&f, err, "%lld,%d,%s,%.6f,%.6f,%.6f,%d\n", (long long)st->steps[i], st->d.shots[s],
                                     st->d.concepts[c], AT(st->acc, i, s, c), AT(st->td, i, s, c), AT(st->tdo, i, s, c),
                                     st->own_peak[i]);
    if (r) {
        icl_afile_abort(&f);
        return -1;
    }
    return icl_afile_commit(&f, err);
}

static int write_report(const study *st, icl_err *err) {
    char path[4600], title[512], cap[1024];
    snprintf(path, sizeof path, "%s/figures", st->out);
    if (icl_mkdirs(path, err)) return -1;
    snprintf(title, sizeof title, "iclab eval: checkpoint study, %s", st->task);
    icl_report *rep = icl_report_new(title);
    icl_report_h2(rep, "Setup");
    icl_report_kv(rep, "training run", st->run);
    icl_report_kv(rep, "task", st->task);
    icl_report_kvf(rep, "checkpoints", "%d (steps %lld to %lld)", st->n, (long long)st->steps[0],
                   (long long)st->steps[st->n - 1]);
    icl_report_kvf(rep, "final peak layer", "%d (highest mean TD at %d shots at the last checkpoint)", st->peak,
                   st->peak_shots);
    icl_report_kv(rep, "per checkpoint", "step_N/ (an iclab eval folder each)");
    double *x = malloc(sizeof(double) * st->n), *y = malloc(sizeof(double) * st->n), *z = malloc(sizeof(double) * st->n);
    int bad = 0;
    if (!x || !y || !z) bad = icl_errf(err, "out of memory");
    for (int i = 0; !bad && i < st->n; i++) x[i] = (double)(st->steps[i] > 0 ? st->steps[i] : 1);
    /* the figure: one row per shot count, accuracy and TD against step */
    icl_fig *f = bad ? NULL : icl_fig_grid("ICL accuracy and task decodability across pretraining", st->S, 2);
    for (int s = 0; !bad && s < st->S; s++) {
        char pa[64], pt[96];
        snprintf(pa, sizeof pa, "accuracy, %d-shot", st->d.shots[s]);
        snprintf(pt, sizeof pt, "TD at layer %d, %d-shot", st->peak, st->d.shots[s]);
        for (int p = 0; p < 2; p++) {
            icl_fig_panel(f, s, p, p ? pt : pa, "training step", p ? "TD" : "accuracy");
            for (int c = 0; c < st->K; c++) {
                for (int i = 0; i < st->n; i++) y[i] = p ? AT(st->td, i, s, c) : AT(st->acc, i, s, c);
                int sr = icl_fig_add_series(f, st->d.concepts[c], x, y, (size_t)st->n);
                icl_fig_series_markers(f, sr, 1);
                if (!strcmp(st->d.concepts[c], "Null")) icl_fig_series_dash(f, sr, ICL_DASHED);
            }
            icl_fig_set_logx(f, 1);
            icl_fig_set_ylim(f, 0, 1);
            if (p) icl_fig_add_hline(f, 1.0 / st->K, "chance");
        }
    }
    if (f) {
        icl_fig_set_legend(f, ICL_LEGEND_OUTSIDE);
        snprintf(cap, sizeof cap,
                 "ICL accuracy (greedy exact match) and task decodability (leave-one-out 10-NN) of every concept at "
                 "every checkpoint (log step axis; Null dashed). TD is measured at layer %d, the final checkpoint's peak, "
                 "at every checkpoint, as the paper does for OLMo-7B (Figs. 5-6).",
                 st->peak);
        icl_report_h2(rep, "Accuracy and TD against training step");
        snprintf(path, sizeof path, "%s/figures/checkpoints.png", st->out);
        if (icl_fig_save(f, path, 0, 0, err)) bad = 1;
        snprintf(path, sizeof path, "%s/figures/checkpoints.svg", st->out);
        if (!bad && icl_fig_save(f, path, 0, 0, err)) bad = 1;
        if (!bad && icl_report_figure(rep, f, cap, 0, 0, err)) bad = 1;
        icl_fig_free(f);
    }
    /* the table: per concept at the reference shot count, when each curve rose and how they move together */
    int s0 = find_shot(&st->d, st->peak_shots);
    if (!bad && s0 >= 0) {
        icl_report_h2(rep, "When each concept rose");
        icl_report_p(rep,
                     "At %d shots. 'Half-rise step': the first checkpoint at which the value reached half of its rise "
                     "from the first checkpoint to its maximum ('-' when it rose by less than 0.05). r: the Pearson "
                     "correlation of accuracy and TD over the %d checkpoints.",
                     st->peak_shots, st->n);
        const char *hdr[] = {"concept", "final accuracy", "final TD", "max TD", "accuracy half-rise step",
                             "TD half-rise step", "r (accuracy, TD)"};
        char *cells[MAX_CONCEPTS * 7];
        char buf[MAX_CONCEPTS * 7][48];
        for (int c = 0; c < st->K; c++) {
            double mx = 0;
            for (int i = 0; i < st->n; i++) {
                y[i] = AT(st->acc, i, s0, c), z[i] = AT(st->td, i, s0, c);
                if (z[i] > mx) mx = z[i];
            }
            int64_t ha = half_rise_step(y, st->steps, st->n, 0.05), ht = half_rise_step(z, st->steps, st->n, 0.05);
            snprintf(buf[c * 7], 48, "%s", st->d.concepts[c]);
            snprintf(buf[c * 7 + 1], 48, "%.2f", y[st->n - 1]);
            snprintf(buf[c * 7 + 2], 48, "%.3f", z[st->n - 1]);
            snprintf(buf[c * 7 + 3], 48, "%.3f", mx);
            snprintf(buf[c * 7 + 4], 48, ha < 0 ? "-" : "%lld", (long long)ha);
            snprintf(buf[c * 7 + 5], 48, ht < 0 ? "-" : "%lld", (long long)ht);
            snprintf(buf[c * 7 + 6], 48, "%.2f", pearson(y, z, st->n));
            for (int k = 0; k < 7; k++) cells[c * 7 + k] = buf[c * 7 + k];
        }
        icl_report_table(rep, 7, hdr, st->K, (const char *const *)cells);
    }
    free(x), free(y), free(z);
    snprintf(path, sizeof path, "%s/report.html", st->out);
    int r = bad ? -1 : icl_report_write(rep, path, err);
    icl_report_free(rep);
    return r;
}

int icl_eval_checkpoints(const icl_eval_cfg *cfg, const char *run_dir, icl_err *err) {
    study s0 = {.run = run_dir, .task = cfg->task, .out = cfg->out_dir}, *st = &s0;
    int r = icl_run_checkpoints(run_dir, &st->steps, &st->n, err);
    char dir[4400], model[4400];
    if (!r) r = icl_mkdirs(cfg->out_dir, err);
    if (!r && !(st->own_peak = calloc((size_t)st->n, sizeof(int)))) r = icl_errf(err, "out of memory");
    /* one eval per checkpoint; the last one's peak layer is the study's */
    for (int i = 0; !r && i < st->n; i++) {
        icl_eval_cfg c = *cfg;
        snprintf(model, sizeof model, "%s/checkpoints/step_%09lld.gguf", run_dir, (long long)st->steps[i]);
        snprintf(dir, sizeof dir, "%s/step_%09lld", cfg->out_dir, (long long)st->steps[i]);
        c.model = model, c.out_dir = dir, c.save_states = 0;
        if (cfg->progress) fprintf(cfg->progress, "iclab eval: checkpoint %d of %d, step %lld\n", i + 1, st->n, (long long)st->steps[i]);
        r = icl_eval_run(&c, err);
        int ps, rows;
        if (!r) r = icl_eval_read_peak(dir, &st->own_peak[i], &ps, &rows, err);
        if (!r && i == 0) st->rows = rows;
        if (!r && rows != st->rows) r = icl_errf(err, "%s: %d layers, the first checkpoint %d", dir, rows - 1, st->rows - 1);
        if (!r && i == st->n - 1) st->peak = st->own_peak[i], st->peak_shots = ps;
    }
    /* gather */
    for (int i = 0; !r && i < st->n; i++) {
        snprintf(dir, sizeof dir, "%s/step_%09lld", cfg->out_dir, (long long)st->steps[i]);
        if (!r) r = ck_read(dir, &st->d, st->rows, err);
        if (!r && i == 0) {
            st->K = st->d.K, st->S = st->d.S;
            size_t m = (size_t)st->n * st->S * st->K;
            st->acc = malloc(sizeof(double) * m), st->td = malloc(sizeof(double) * m), st->tdo = malloc(sizeof(double) * m);
            if (!st->acc || !st->td || !st->tdo) r = icl_errf(err, "out of memory");
            if (!r && (st->peak < 0 || st->peak >= st->rows)) r = icl_errf(err, "peak layer %d out of range", st->peak);
        }
        for (int s = 0; !r && s < st->S; s++)
            for (int c = 0; c < st->K; c++) {
                AT(st->acc, i, s, c) = st->d.acc[s * st->K + c];
                AT(st->td, i, s, c) = st->d.td[((size_t)s * st->rows + st->peak) * st->K + c];
                AT(st->tdo, i, s, c) = st->d.td[((size_t)s * st->rows + st->own_peak[i]) * st->K + c];
            }
    }
    if (!r) r = write_csv(st, err);
    if (!r) r = write_report(st, err);
    free(st->steps), free(st->own_peak), free(st->acc), free(st->td), free(st->tdo);
    free(st->d.acc), free(st->d.td);
    return r;
}
