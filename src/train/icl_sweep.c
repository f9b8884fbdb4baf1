/* Grids of toy-trainer runs over configurations and seeds, and their combined report (see icl_sweep.h). */
#include "iclab/icl_sweep.h"
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_ckpt.h"
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_report.h"
#include "iclab/icl_causal.h"
#include "iclab/icl_runplot.h"

/* TD has risen once the best layer's overall TD covers half the way from chance to 1. */
#define TD_RISE_FRACTION 0.5
/* bytes per cell of the report's tables: room for a whole run name (run_info.name) */
#define CELL 272

void icl_sweep_init(icl_sweep *s, const icl_train_config *base) {
    memset(s, 0, sizeof *s);
    s->base = *base;
    s->plateau_mse = ICL_SWEEP_PLATEAU_MSE;
}

static const icl_config_field *find_field(const char *name) {
    for (int k = 0; k < icl_train_n_fields; k++)
        if (!strcmp(icl_train_fields[k].flag, name) || !strcmp(icl_train_fields[k].key, name)) return &icl_train_fields[k];
    return NULL;
}

int icl_sweep_add_axis(icl_sweep *s, const char *spec, icl_err *err) {
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec) return icl_errf(err, "--set '%s': expected FIELD=V1,V2,...", spec);
    char name[64];
    if ((size_t)(eq - spec) >= sizeof name) return icl_errf(err, "--set '%s': field name too long", spec);
    snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
    const icl_config_field *f = find_field(name);
    if (!f) return icl_errf(err, "--set: unknown field '%s' (see iclab train --help for the fields)", name);
    if (!strcmp(f->flag, "seed")) return icl_errf(err, "--set: give the seeds with --seeds, not as a field");
    for (int a = 0; a < s->n_axes; a++)
        if (s->field[a] == f) return icl_errf(err, "--set: field '%s' given twice", name);
    if (s->n_axes >= ICL_SWEEP_MAX_AXES) return icl_errf(err, "--set: at most %d swept fields", ICL_SWEEP_MAX_AXES);
    int a = s->n_axes, n = 0;
    for (const char *p = eq + 1; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0) return icl_errf(err, "--set %s: empty value in '%s'", name, eq + 1);
        if (len >= ICL_SWEEP_VALUE_LEN) return icl_errf(err, "--set %s: value too long", name);
        if (n >= ICL_SWEEP_MAX_VALUES) return icl_errf(err, "--set %s: at most %d values", name, ICL_SWEEP_MAX_VALUES);
        snprintf(s->value[a][n], ICL_SWEEP_VALUE_LEN, "%.*s", (int)len, p);
        icl_train_config scratch = s->base;
        if (icl_config_field_parse(&scratch, f, s->value[a][n], err)) return icl_err_prefix(err, "--set: ");
        for (int j = 0; j < n; j++)
            if (!strcmp(s->value[a][j], s->value[a][n])) return icl_errf(err, "--set %s: value '%s' given twice", name, s->value[a][n]);
        n++;
        p = comma ? comma + 1 : p + len;
        if (comma && !*p) return icl_errf(err, "--set %s: empty value in '%s'", name, eq + 1);
    }
    if (n == 0) return icl_errf(err, "--set %s: no values (the grid would be empty)", name);
    s->field[a] = f;
    s->n_values[a] = n;
    s->n_axes++;
    return 0;
}

static int parse_u64(const char *p, const char **end, uint64_t *v) {
    char *e;
    if (*p < '0' || *p > '9') return -1;
    errno = 0;
    unsigned long long x = strtoull(p, &e, 10);
    if (errno) return -1;
    *v = x;
    *end = e;
    return 0;
}

int icl_sweep_set_seeds(icl_sweep *s, const char *spec, icl_err *err) {
    s->n_seeds = 0;
    for (const char *p = spec; *p;) {
        uint64_t a, b;
        const char *e;
        if (parse_u64(p, &e, &a)) return icl_errf(err, "--seeds '%s': expected A-B or A,B,C (non-negative integers)", spec);
        b = a;
        if (*e == '-' && parse_u64(e + 1, &e, &b)) return icl_errf(err, "--seeds '%s': expected A-B or A,B,C (non-negative integers)", spec);
        if (b < a) return icl_errf(err, "--seeds '%s': the range %" PRIu64 "-%" PRIu64 " is empty", spec, a, b);
        if (*e && *e != ',') return icl_errf(err, "--seeds '%s': expected A-B or A,B,C (non-negative integers)", spec);
        for (uint64_t x = a;; x++) {
            for (int j = 0; j < s->n_seeds; j++)
                if (s->seeds[j] == x) return icl_errf(err, "--seeds '%s': seed %" PRIu64 " given twice", spec, x);
            if (s->n_seeds >= ICL_SWEEP_MAX_SEEDS) return icl_errf(err, "--seeds '%s': at most %d seeds", spec, ICL_SWEEP_MAX_SEEDS);
            s->seeds[s->n_seeds++] = x;
            if (x == b) break;
        }
        p = *e ? e + 1 : e;
        if (*e && !*p) return icl_errf(err, "--seeds '%s': trailing comma", spec);
    }
    if (s->n_seeds == 0) return icl_errf(err, "--seeds: no seeds (the grid would be empty)");
    return 0;
}

int icl_sweep_n_runs(const icl_sweep *s) {
    int n = s->n_seeds;
    for (int a = 0; a < s->n_axes; a++) n *= s->n_values[a];
    return n;
}

/* The value index of each axis for run i (seeds fastest, then the last axis). */
static void run_indices(const icl_sweep *s, int i, int *seed_i, int *vi) {
    *seed_i = i % s->n_seeds;
    int rest = i / s->n_seeds;
    for (int a = s->n_axes - 1; a >= 0; a--) {
        vi[a] = rest % s->n_values[a];
        rest /= s->n_values[a];
    }
}

/* Folder-name-safe copy of a value: anything but letters, digits and . + - becomes '_'. */
static void append_safe(char *dst, size_t n, const char *src) {
    size_t o = strlen(dst);
    for (; *src && o + 1 < n; src++) {
        char ch = *src;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' || ch == '+' || ch == '-';
        dst[o++] = ok ? ch : '_';
    }
    dst[o] = 0;
}

/* The name of run i's configuration point without the seed ("lr=1e-4_width=32"; "base" if no axes). */
static void point_name(const icl_sweep *s, const int *vi, char *name, size_t n) {
    name[0] = 0;
    for (int a = 0; a < s->n_axes; a++) {
        if (a) append_safe(name, n, "_");
        append_safe(name, n, s->field[a]->flag);
        size_t o = strlen(name);
        if (o + 1 < n) name[o] = '=', name[o + 1] = 0;
        append_safe(name, n, s->value[a][vi[a]]);
    }
    if (!s->n_axes) snprintf(name, n, "base");
}

int icl_sweep_run_config(const icl_sweep *s, int i, icl_train_config *c, char *name, size_t name_len, icl_err *err) {
    int si, vi[ICL_SWEEP_MAX_AXES];
    if (i < 0 || i >= icl_sweep_n_runs(s)) return icl_errf(err, "run %d is not in the grid", i);
    run_indices(s, i, &si, vi);
    *c = s->base;
    for (int a = 0; a < s->n_axes; a++)
        if (icl_config_field_parse(c, s->field[a], s->value[a][vi[a]], err)) return -1;
    c->seed = s->seeds[si];
    char point[200];
    point_name(s, vi, point, sizeof point);
    if (s->n_axes) snprintf(name, name_len, "%s_seed=%" PRIu64, point, c->seed);
    else snprintf(name, name_len, "seed=%" PRIu64, c->seed);
    if (icl_train_config_validate(c, err)) return icl_err_prefix(err, "run %s: ", name);
    return 0;
}

/* ---------------------------------------------------------------- the sweep folder */

/* grid.txt: every base field, the axes and the seeds, one per line. */
static char *grid_text(const icl_sweep *s, size_t *len) {
    size_t cap = 4096 + (size_t)s->n_seeds * 24 + (size_t)ICL_SWEEP_MAX_AXES * ICL_SWEEP_MAX_VALUES * (ICL_SWEEP_VALUE_LEN + 1);
    cap += (size_t)icl_train_n_fields * 96;
    char *t = malloc(cap);
    if (!t) return NULL;
    size_t o = 0;
    o += (size_t)snprintf(t + o, cap - o, "# iclab sweep grid: base configuration, swept fields, seeds\n");
    for (int k = 0; k < icl_train_n_fields; k++) {
        char v[64];
        icl_config_field_format(&s->base, &icl_train_fields[k], v, sizeof v);
        if (strcmp(icl_train_fields[k].flag, "seed")) o += (size_t)snprintf(t + o, cap - o, "base %s=%s\n", icl_train_fields[k].key, v);
    }
    for (int a = 0; a < s->n_axes; a++) {
        o += (size_t)snprintf(t + o, cap - o, "set %s=", s->field[a]->key);
        for (int j = 0; j < s->n_values[a]; j++) o += (size_t)snprintf(t + o, cap - o, "%s%s", j ? "," : "", s->value[a][j]);
        o += (size_t)snprintf(t + o, cap - o, "\n");
    }
    o += (size_t)snprintf(t + o, cap - o, "seeds ");
    for (int j = 0; j < s->n_seeds; j++) o += (size_t)snprintf(t + o, cap - o, "%s%" PRIu64, j ? "," : "", s->seeds[j]);
    o += (size_t)snprintf(t + o, cap - o, "\n");
    *len = o;
    return t;
}

static int dir_has_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d))) any = strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return any;
}

/* Whether grid text `want` is grid text `have` with seeds added: the same lines up to the seeds line,
 * and every seed of have's among want's. */
static const char *seeds_line(const char *text, size_t n) {
    const char *found = NULL;
    for (const char *q = text; q < text + n; q = strchr(q, '\n') ? strchr(q, '\n') + 1 : text + n)
        if (!strncmp(q, "seeds ", 6)) found = q;
    return found;
}

static int seeds_grow(const char *have, size_t n_have, const char *want, size_t n_want) {
    const char *sh = seeds_line(have, n_have), *sw = seeds_line(want, n_want);
    if (!sh || !sw || sh - have != sw - want || memcmp(have, want, (size_t)(sh - have))) return 0;
    for (const char *q = sh + 6; q < have + n_have && *q != '\n';) {
        char *end;
        unsigned long long seed = strtoull(q, &end, 10);
        if (end == q) return 0;
        int found = 0;
        for (const char *w = sw + 6; w < want + n_want && *w != '\n' && !found;) {
            char *wend;
            found = strtoull(w, &wend, 10) == seed;
            if (wend == w) return 0;
            w = *wend == ',' ? wend + 1 : wend;
        }
        if (!found) return 0;
        q = *end == ',' ? end + 1 : end;
    }
    return 1;
}

int icl_sweep_prepare(const char *dir, const icl_sweep *s, int rank, icl_err *err) {
    if (icl_sweep_n_runs(s) == 0) return icl_errf(err, "the grid is empty (no seeds)");
    /* rank 0 alone checks and creates, so no rank sees a half-made folder; the others learn the
     * outcome through the caller's icl_dist_agree */
    if (rank != 0) return 0;
    char path[4200];
    size_t len;
    char *want = grid_text(s, &len);
    if (!want) return icl_errf(err, "out of memory");
    snprintf(path, sizeof path, "%s/grid.txt", dir);
    int r = 0;
    if (!icl_path_exists(path) && dir_has_entries(dir)) {
        free(want);
        return icl_errf(err, "%s exists and is not a sweep folder (no grid.txt); use another --out", dir);
    }
    if (icl_path_exists(path)) {
        char *have;
        size_t n;
        r = icl_read_file(path, &have, &n, err);
        if (!r) {
            int grows = 0;
            if ((n != len || memcmp(have, want, len)) && !(grows = seeds_grow(have, n, want, len)))
                r = icl_errf(err, "%s was made for another grid (see its grid.txt); use another --out", dir);
            /* more seeds of the same grid: the folder's runs stay what they are, grid.txt lists them all */
            if (grows) r = icl_write_file_atomic(path, want, len, err);
            free(have);
        }
    } else {
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/runs", dir);
        r = icl_mkdirs(sub, err);
        snprintf(sub, sizeof sub, "%s/status", dir);
        if (!r) r = icl_mkdirs(sub, err);
        if (!r) r = icl_write_file_atomic(path, want, len, err);
    }
    free(want);
    return r;
}

/* Reads a status file's wall_s (0 when there is none) and status word. */
static double read_status(const char *dir, const char *name, char *status, size_t n) {
    char path[4200], *text;
    size_t len;
    icl_err e;
    snprintf(path, sizeof path, "%s/status/%s.json", dir, name);
    if (status) snprintf(status, n, "%s", "");
    if (!icl_path_exists(path) || icl_read_file(path, &text, &len, &e)) return 0;
    double wall = 0;
    const char *w = strstr(text, "\"wall_s\":");
    if (w) wall = strtod(w + 9, NULL);
    const char *st = strstr(text, "\"status\": \"");
    if (st && status) {
        st += 11;
        const char *q = strchr(st, '"');
        if (q) snprintf(status, n, "%.*s", (int)(q - st), st);
    }
    free(text);
    return isfinite(wall) && wall > 0 ? wall : 0;
}

/* Writes a CSV field: s as it is, or quoted (quotes doubled) when it holds a comma, quote or newline. */
static void csv_str(icl_afile *af, icl_err *err, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        icl_afile_printf(af, err, "%s", s);
        return;
    }
    icl_afile_printf(af, err, "\"");
    for (; *s; s++) icl_afile_printf(af, err, "%s%c", *s == '"' ? "\"" : "", *s); /* a quote doubled */
    icl_afile_printf(af, err, "\"");
}

/* Writes a JSON string literal of s (quotes and control characters escaped). */
static void json_str(icl_afile *af, icl_err *err, const char *s) {
    icl_afile_printf(af, err, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') icl_afile_printf(af, err, "\\%c", ch);
        else if (ch < 0x20) icl_afile_printf(af, err, "\\u%04x", ch);
        else icl_afile_printf(af, err, "%c", ch);
    }
    icl_afile_printf(af, err, "\"");
}

static int write_status(const char *dir, const char *name, const char *status, double wall, const char *msg, icl_err *err) {
    char path[4200];
    icl_afile af;
    snprintf(path, sizeof path, "%s/status/%s.json", dir, name);
    if (icl_afile_open(&af, path, err)) return -1;
    icl_afile_printf(&af, err, "{\"status\": \"%s\", \"wall_s\": %.3f", status, wall);
    if (msg) {
        icl_afile_printf(&af, err, ", \"error\": ");
        json_str(&af, err, msg);
    }
    icl_afile_printf(&af, err, "}\n");
    return icl_afile_commit(&af, err);
}

/* The latest checkpoint step of a run folder, or -1 if it has none. A folder copied without its
 * checkpoints folder (docs/data keeps only the CSV files) has trained up to train.csv's last step:
 * a complete one is skipped, an incomplete one fails to resume instead of being trained over. */
static int64_t done_steps(const char *run_dir) {
    char path[4200];
    int64_t step = -1;
    icl_err e;
    if (!icl_path_exists(run_dir)) return -1;
    snprintf(path, sizeof path, "%s/checkpoints", run_dir);
    if (!icl_path_exists(path)) {
        snprintf(path, sizeof path, "%s/train.csv", run_dir);
        icl_csv t;
        if (!icl_path_exists(path) || icl_csv_read(&t, path, &e)) return -1;
        int cs = icl_csv_col(&t, "step");
        if (cs >= 0 && t.n_rows) step = (int64_t)icl_csv_num(&t, t.n_rows - 1, cs);
        icl_csv_free(&t);
        return step;
    }
    if (icl_ckpt_latest(run_dir, path, sizeof path, &step, &e)) return -1;
    return step;
}

int icl_sweep_train(const char *dir, const icl_sweep *s, int rank, int nranks, FILE *progress, int *n_failed, icl_err *err) {
    int n = icl_sweep_n_runs(s);
    *n_failed = 0;
    for (int i = rank; i < n; i += nranks) {
        icl_train_config c;
        char name[256], rdir[4400], path[4600];
        if (icl_sweep_run_config(s, i, &c, name, sizeof name, err)) return -1;
        snprintf(rdir, sizeof rdir, "%s/runs/%s", dir, name);
        int64_t done = done_steps(rdir);
        if (done >= c.steps) {
            if (progress) fprintf(progress, "[rank %d] run %d/%d %s: complete, skipped\n", rank, i + 1, n, name);
            continue;
        }
        /* only an unfinished run with a checkpoint can be resumed; one killed before its first
         * checkpoint is started again (OVERWRITE needs its config.json, an empty folder is NEW) */
        icl_train_options opt = {.mode = ICL_RUN_NEW, .progress = NULL, .stop_after = 0, .local = 1};
        snprintf(path, sizeof path, "%s/config.json", rdir);
        if (done >= 0) opt.mode = ICL_RUN_RESUME;
        else if (icl_path_exists(path)) opt.mode = ICL_RUN_OVERWRITE;
        else {
            snprintf(path, sizeof path, "%s/checkpoints", rdir);
            rmdir(path); /* a folder left with nothing else in it; NEW refuses anything more */
        }
        double prior = opt.mode == ICL_RUN_RESUME ? read_status(dir, name, NULL, 0) : 0;
        if (progress)
            fprintf(progress, "[rank %d] run %d/%d %s: %s\n", rank, i + 1, n, name,
                    opt.mode == ICL_RUN_RESUME ? "resuming" : "training");
        double t0 = icl_now();
        icl_err e;
        int r = icl_train(rdir, &c, &opt, &e);
        double wall = prior + icl_now() - t0;
        if (r && icl_train_interrupted()) {
            write_status(dir, name, "incomplete", wall, NULL, err);
            return icl_errf(err, "interrupted during run %s (resume by running the same sweep again)", name);
        }
        if (r) {
            (*n_failed)++;
            if (progress) fprintf(progress, "[rank %d] run %s failed: %s\n", rank, name, e.msg);
        }
        if (write_status(dir, name, r ? "failed" : "complete", wall, r ? e.msg : NULL, err)) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- the report */

typedef struct run_info {
    char name[256], status[32];
    int point; /* configuration point (run index / n_seeds) */
    uint64_t seed;
    int64_t steps, done;
    double final_loss, final_loss_norm, final_mse, wall;
    int64_t plateau_exit, td_rise; /* -1: not (yet) */
    /* curves */
    int n_loss, n_eval, n_td;
    double *loss_x, *loss_y, *eval_x, *eval_y, *td_x, *td_y;
    double *td_layer; /* overall TD per layer at the last decoded step (n_layers) */
    int n_layers;
    double td_chance; /* TD's chance level (decode/td.csv) */
    icl_run_phases *ph; /* the paper's phases (icl_run_phases_read); NULL when eval.csv is unreadable */
} run_info;

static void run_info_free(run_info *r) {
    free(r->loss_x); free(r->loss_y); free(r->eval_x); free(r->eval_y); free(r->td_x); free(r->td_y); free(r->td_layer); free(r->ph);
}

/* Reads what a run folder holds now; missing files leave NaN/empty curves (a run not yet trained). */
static int read_run(const char *dir, const icl_sweep *s, int i, run_info *r, icl_err *err) {
    icl_train_config c;
    memset(r, 0, sizeof *r);
    r->final_loss = r->final_loss_norm = r->final_mse = NAN;
    r->plateau_exit = r->td_rise = -1;
    if (icl_sweep_run_config(s, i, &c, r->name, sizeof r->name, err)) return -1;
    r->point = i / s->n_seeds;
    r->seed = c.seed;
    r->steps = c.steps;
    char rdir[4400], path[4600], st[32];
    snprintf(rdir, sizeof rdir, "%s/runs/%s", dir, r->name);
    r->done = done_steps(rdir);
    r->wall = read_status(dir, r->name, st, sizeof st);
    icl_csv t;
    icl_err e;
    snprintf(path, sizeof path, "%s/train.csv", rdir);
    if (icl_path_exists(path) && !icl_csv_read(&t, path, &e)) {
        int cs = icl_csv_col(&t, "step"), cl = icl_csv_col(&t, "loss"), cn = icl_csv_col(&t, "loss_norm");
        r->loss_x = malloc(sizeof(double) * (t.n_rows + 1));
        r->loss_y = malloc(sizeof(double) * (t.n_rows + 1));
        if (cs >= 0 && cl >= 0 && cn >= 0 && r->loss_x && r->loss_y) {
            for (int k = 0; k < t.n_rows; k++) {
                r->loss_x[k] = icl_csv_num(&t, k, cs);
                r->loss_y[k] = icl_csv_num(&t, k, cn);
            }
            r->n_loss = t.n_rows;
            if (t.n_rows) {
                r->final_loss = icl_csv_num(&t, t.n_rows - 1, cl);
                r->final_loss_norm = icl_csv_num(&t, t.n_rows - 1, cn);
                /* a run trained outside the sweep (iclab train into runs/NAME) has no status file: its
                 * wall time is train.csv's elapsed time (that of its last session if it was resumed) */
                int ce = icl_csv_col(&t, "elapsed_s");
                if (r->wall == 0 && ce >= 0 && icl_csv_num(&t, t.n_rows - 1, ce) > 0) r->wall = icl_csv_num(&t, t.n_rows - 1, ce);
            }
        }
        icl_csv_free(&t);
    }
    if (r->done >= r->steps) snprintf(r->status, sizeof r->status, "complete");
    else if (!strcmp(st, "failed")) snprintf(r->status, sizeof r->status, "failed");
    else if (r->done >= 0 || icl_path_exists(rdir)) snprintf(r->status, sizeof r->status, "incomplete");
    else snprintf(r->status, sizeof r->status, "missing");
    snprintf(path, sizeof path, "%s/eval.csv", rdir);
    if (icl_path_exists(path) && !icl_csv_read(&t, path, &e)) {
        int cs = icl_csv_col(&t, "step"), cc = icl_csv_col(&t, "concept"), cm = icl_csv_col(&t, "mse");
        r->eval_x = malloc(sizeof(double) * (t.n_rows + 1));
        r->eval_y = malloc(sizeof(double) * (t.n_rows + 1));
        if (cs >= 0 && cc >= 0 && cm >= 0 && r->eval_x && r->eval_y)
            for (int k = 0; k < t.n_rows; k++) {
                if (icl_csv_num(&t, k, cc) != -1) continue;
                double x = icl_csv_num(&t, k, cs), y = icl_csv_num(&t, k, cm);
                r->eval_x[r->n_eval] = x;
                r->eval_y[r->n_eval++] = y;
                r->final_mse = y;
                if (r->plateau_exit < 0 && x > 0 && y < s->plateau_mse) r->plateau_exit = (int64_t)x;
            }
        icl_csv_free(&t);
    }
    snprintf(path, sizeof path, "%s/eval.csv", rdir);
    if (icl_path_exists(path) && (r->ph = malloc(sizeof *r->ph)) && icl_run_phases_read(rdir, r->ph, &e)) {
        free(r->ph);
        r->ph = NULL;
    }
    /* decode/td.csv (iclab decode): overall TD (concept -1) per checkpoint and layer */
    snprintf(path, sizeof path, "%s/decode/td.csv", rdir);
    if (icl_path_exists(path) && !icl_csv_read(&t, path, &e)) {
        int cs = icl_csv_col(&t, "step"), cl = icl_csv_col(&t, "layer"), cc = icl_csv_col(&t, "concept");
        int ct = icl_csv_col(&t, "td"), ch = icl_csv_col(&t, "chance");
        int L = 0;
        for (int k = 0; k < t.n_rows && cl >= 0; k++)
            if (icl_csv_num(&t, k, cl) + 1 > L) L = (int)icl_csv_num(&t, k, cl) + 1;
        r->td_x = malloc(sizeof(double) * (t.n_rows + 1));
        r->td_y = malloc(sizeof(double) * (t.n_rows + 1));
        r->td_layer = malloc(sizeof(double) * (L + 1));
        if (cs >= 0 && cl >= 0 && cc >= 0 && ct >= 0 && ch >= 0 && r->td_x && r->td_y && r->td_layer && L > 0) {
            r->n_layers = L;
            double last = NAN;
            for (int k = 0; k < t.n_rows; k++) {
                if (icl_csv_num(&t, k, cc) != -1) continue;
                double x = icl_csv_num(&t, k, cs), td = icl_csv_num(&t, k, ct);
                int l = (int)icl_csv_num(&t, k, cl);
                if (x != last) { /* a new checkpoint: rows come grouped by step */
                    r->td_x[r->n_td] = x;
                    r->td_y[r->n_td++] = td;
                    for (int j = 0; j < L; j++) r->td_layer[j] = NAN;
                    last = x;
                } else if (td > r->td_y[r->n_td - 1])
                    r->td_y[r->n_td - 1] = td;
                if (l >= 0 && l < L) r->td_layer[l] = td;
                double chance = icl_csv_num(&t, k, ch);
                r->td_chance = chance;
                if (r->td_rise < 0 && td >= chance + TD_RISE_FRACTION * (1.0 - chance)) r->td_rise = (int64_t)x;
            }
        }
        icl_csv_free(&t);
    }
    return 0;
}

static void fmt_num(char *buf, size_t n, double v, const char *f) {
    if (isnan(v)) snprintf(buf, n, "%s", "");
    else snprintf(buf, n, f, v);
}

static void fmt_step(char *buf, size_t n, int64_t s) {
    if (s < 0) snprintf(buf, n, "never");
    else snprintf(buf, n, "%" PRId64, s);
}

/* A run's phase-(c) columns: concepts separated (TD >= ICL_PHASE_TD at the last decoded checkpoint),
 * whether phase (c) holds at the end (yes/no) and the first checkpoint where it held; empty when the
 * run has not been decoded and patched. */
static void phase_cells(const run_info *r, char sep[16], char pc[16], char *pcs, size_t n) {
    sep[0] = pc[0] = pcs[0] = 0;
    if (!r->ph || r->ph->phase_c < 0) return;
    snprintf(sep, 16, "%d", r->ph->n_separated);
    snprintf(pc, 16, "%s", r->ph->phase_c ? "yes" : "no");
    if (isfinite(r->ph->phase_c_step)) snprintf(pcs, n, "%.0f", r->ph->phase_c_step);
}

static int write_tables(const char *dir, const icl_sweep *s, const run_info *runs, int n, icl_err *err) {
    char path[4200];
    icl_afile af;
    snprintf(path, sizeof path, "%s/sweep.csv", dir);
    if (icl_afile_open(&af, path, err)) return -1;
    icl_afile_printf(&af, err, "run");
    for (int a = 0; a < s->n_axes; a++) icl_afile_printf(&af, err, ",%s", s->field[a]->key);
    icl_afile_printf(&af, err, ",seed,steps,steps_done,final_loss,final_loss_norm,final_eval_mse,plateau_exit_step,td_rise_step,concepts_separated,phase_c,phase_c_step,wall_s,status\n");
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        int si, vi[ICL_SWEEP_MAX_AXES];
        run_indices(s, i, &si, vi);
        icl_afile_printf(&af, err, "%s", r->name);
        for (int a = 0; a < s->n_axes; a++) icl_afile_printf(&af, err, ",%s", s->value[a][vi[a]]);
        char l[32], ln[32], m[32], pe[32], tr[32];
        fmt_num(l, sizeof l, r->final_loss, "%.6g");
        fmt_num(ln, sizeof ln, r->final_loss_norm, "%.6g");
        fmt_num(m, sizeof m, r->final_mse, "%.6g");
        fmt_step(pe, sizeof pe, r->plateau_exit);
        if (r->n_td) fmt_step(tr, sizeof tr, r->td_rise);
        else tr[0] = 0;
        char sep[16] = "", pc[16] = "", pcs[32] = "";
        phase_cells(r, sep, pc, pcs, sizeof pcs);
        icl_afile_printf(&af, err, ",%" PRIu64 ",%" PRId64 ",%" PRId64 ",%s,%s,%s,%s,%s,%s,%s,%s,%.3f,%s\n", r->seed, r->steps,
                         r->done < 0 ? 0 : r->done, l, ln, m, pe, tr, sep, pc, pcs, r->wall, r->status);
    }
    if (icl_afile_commit(&af, err)) return -1;

    snprintf(path, sizeof path, "%s/sweep.json", dir);
    if (icl_afile_open(&af, path, err)) return -1;
    icl_afile_printf(&af, err, "{\"plateau_exit_mse\": %g, \"td_rise_fraction\": %g, \"runs\": [\n", s->plateau_mse, TD_RISE_FRACTION);
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        int si, vi[ICL_SWEEP_MAX_AXES];
        run_indices(s, i, &si, vi);
        icl_afile_printf(&af, err, "  {\"run\": ");
        json_str(&af, err, r->name);
        icl_afile_printf(&af, err, ", \"config\": {");
        for (int a = 0; a < s->n_axes; a++) {
            icl_afile_printf(&af, err, "%s\"%s\": ", a ? ", " : "", s->field[a]->key);
            json_str(&af, err, s->value[a][vi[a]]);
        }
        /* JSON has no NaN: numbers that do not exist yet are null */
        char l[32], m[32], pe[32], tr[32];
        if (isnan(r->final_loss)) snprintf(l, sizeof l, "null"); else snprintf(l, sizeof l, "%.6g", r->final_loss);
        if (isnan(r->final_mse)) snprintf(m, sizeof m, "null"); else snprintf(m, sizeof m, "%.6g", r->final_mse);
        if (r->plateau_exit < 0) snprintf(pe, sizeof pe, "null"); else snprintf(pe, sizeof pe, "%" PRId64, r->plateau_exit);
        if (r->td_rise < 0) snprintf(tr, sizeof tr, "null"); else snprintf(tr, sizeof tr, "%" PRId64, r->td_rise);
        char sep[16], pc[16], pcs[32];
        phase_cells(r, sep, pc, pcs, sizeof pcs);
        if (!sep[0]) snprintf(sep, sizeof sep, "null");
        snprintf(pc, sizeof pc, "%s", !pc[0] ? "null" : r->ph->phase_c ? "true" : "false");
        if (!pcs[0]) snprintf(pcs, sizeof pcs, "null");
        icl_afile_printf(&af, err,
                         "}, \"seed\": %" PRIu64 ", \"steps\": %" PRId64 ", \"steps_done\": %" PRId64
                         ", \"final_loss\": %s, \"final_eval_mse\": %s, \"plateau_exit_step\": %s, \"td_rise_step\": %s"
                         ", \"concepts_separated\": %s, \"phase_c\": %s, \"phase_c_step\": %s"
                         ", \"wall_s\": %.3f, \"status\": \"%s\"}%s\n",
                         r->seed, r->steps, r->done < 0 ? 0 : r->done, l, m, pe, tr, sep, pc, pcs, r->wall, r->status, i + 1 < n ? "," : "");
    }
    icl_afile_printf(&af, err, "]}\n");
    if (icl_afile_commit(&af, err)) return -1;

    /* per concept of each analysed run, long format: the events behind the report's phase table */
    snprintf(path, sizeof path, "%s/sweep_concepts.csv", dir);
    if (icl_afile_open(&af, path, err)) return -1;
    icl_afile_printf(&af, err, "run,seed,concept,name,drop_step,td_half_step,td_lag,beat_agnostic_step,agnostic_mse,"
                               "final_mse,td_best,td_best_layer,self_patch,cross_patch,td_best_last,patch,replace_self,replace_cross,"
                               "cross_patch_se,cross_patch_z,cross_patch_rel\n");
    for (int i = 0; i < n; i++) {
        const icl_run_phases *p = runs[i].ph;
        if (!p) continue;
        for (int c = 0; c < p->n_concepts; c++) {
            const icl_phase_concept *pc = &p->c[c];
            double v[] = {pc->drop_step, pc->td_half_step, pc->td_lag, pc->beat_step, pc->agnostic, pc->final_mse,
                          pc->td_best};
            const char *f[] = {"%.0f", "%.0f", "%.0f", "%.0f", "%.6g", "%.6g", "%.4g"};
            icl_afile_printf(&af, err, "%s,%" PRIu64 ",%d,", runs[i].name, runs[i].seed, c);
            csv_str(&af, err, pc->name);
            for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
                char cell[32];
                fmt_num(cell, sizeof cell, v[k], f[k]);
                icl_afile_printf(&af, err, ",%s", cell);
            }
            char lay[16] = "", sp[32], cp[32], tl[32], rs[32], rc[32], cse[32], cz[32], cr[32];
            if (isfinite(pc->td_best)) snprintf(lay, sizeof lay, "%d", pc->td_best_layer);
            fmt_num(sp, sizeof sp, pc->self_patch, "%.6g");
            fmt_num(cp, sizeof cp, pc->cross_patch, "%.6g");
            fmt_num(tl, sizeof tl, pc->td_best_last, "%.4g");
            fmt_num(rs, sizeof rs, pc->replace_self, "%.6g");
            fmt_num(rc, sizeof rc, pc->replace_cross, "%.6g");
            fmt_num(cse, sizeof cse, pc->cross_patch_se, "%.6g");
            fmt_num(cz, sizeof cz, pc->cross_patch_z, "%.4g");
            fmt_num(cr, sizeof cr, pc->cross_patch_rel, "%.4g");
            /* which patching decided self_patch/cross_patch (empty: not patched) */
            static const char *const kinds[] = {"replace", "shift", "transport"};
            const char *kind = !isfinite(p->patch_step) ? "" : kinds[p->patch_kind];
            icl_afile_printf(&af, err, ",%s,%s,%s,%s,%s,%s,%s,%s,%s,%s\n", lay, sp, cp, tl, kind, rs, rc, cse, cz, cr);
        }
    }
    return icl_afile_commit(&af, err);
}

/* One figure of a configuration point: a curve per seed (x, y picked by which). */
enum { CURVE_LOSS, CURVE_EVAL, CURVE_TD, CURVE_TD_LAYER };
static int point_figure(icl_report *rep, const icl_sweep *s, const run_info *runs, int n, int point, int which, const char *title,
                        icl_err *err) {
    static const char *xl[] = {"step", "step", "checkpoint step", "layer"};
    static const char *yl[] = {"training loss (normalised)", "held-out MSE (normalised)", "TD, best layer", "TD at the last decoded step"};
    icl_fig *f = icl_fig_line(title, xl[which], yl[which]);
    int any = 0;
    double chance = NAN;
    for (int i = 0; i < n; i++) {
        const run_info *r = &runs[i];
        if (r->point != point) continue;
        char label[64];
        snprintf(label, sizeof label, "seed %" PRIu64, r->seed);
        const double *x = which == CURVE_LOSS ? r->loss_x : which == CURVE_EVAL ? r->eval_x : which == CURVE_TD ? r->td_x : NULL;
        const double *y = which == CURVE_LOSS ? r->loss_y : which == CURVE_EVAL ? r->eval_y : which == CURVE_TD ? r->td_y : r->td_layer;
        int m = which == CURVE_LOSS ? r->n_loss : which == CURVE_EVAL ? r->n_eval : which == CURVE_TD ? r->n_td : (r->n_td ? r->n_layers : 0);
        if (m <= 0) continue;
        if (which >= CURVE_TD) chance = r->td_chance;
        int sidx = icl_fig_add_series(f, label, x, y, (size_t)m);
        if (which != CURVE_LOSS) icl_fig_series_markers(f, sidx, 1);
        any = 1;
    }
    if (which == CURVE_EVAL) icl_fig_add_hline(f, s->plateau_mse, "plateau exit");
    if (which >= CURVE_TD && isfinite(chance)) icl_fig_add_hline(f, chance, "chance");
    int r = any ? icl_report_figure(rep, f, title, 0, 0, err) : 0;
    icl_fig_free(f);
    return r;
}

/* "a 100, b never, ..." from one per-concept event column of a run's phases. */
static void concept_list(char *buf, size_t n, const icl_run_phases *p, size_t offset, int signed_steps) {
    size_t len = 0;
    buf[0] = 0;
    for (int k = 0; k < p->n_concepts && len < n; k++) {
        double v = *(const double *)((const char *)&p->c[k] + offset);
        if (isfinite(v)) len += (size_t)snprintf(buf + len, n - len, signed_steps ? "%s%s %+.0f" : "%s%s %.0f", k ? ", " : "", p->c[k].name, v);
        else len += (size_t)snprintf(buf + len, n - len, "%s%s -", k ? ", " : "", p->c[k].name);
    }
}

/* Per analysed run (decoded and patched, e.g. by iclab sweep --analyse): when it left the plateau,
 * each concept's loss drop and TD rise, and whether it reached the paper's phase (c). */
static void phase_section(icl_report *rep, const run_info *runs, int n) {
    int n_an = 0, n_c = 0;
    for (int i = 0; i < n; i++)
        if (runs[i].ph && runs[i].ph->phase_c >= 0) n_an++, n_c += runs[i].ph->phase_c == 1;
    icl_report_h2(rep, "Phases per run");
    if (!n_an) {
        icl_report_p(rep, "No run has been decoded and patched yet (iclab sweep --analyse, or iclab decode and iclab patch on a run).");
        return;
    }
    icl_report_p(rep, "%d of %d analysed runs reach the paper's phase (c) at their last checkpoint: every concept's TD at its best "
                      "layer >= %.2g, its MSE below ridge's and Lasso's, and its own mean cheaper to patch in than any other "
                      "concept's, read from transport patching where the run has causal/patch_transport.csv (iclab patch "
                      "--transport: every other concept's transport must exceed the own concept's, the noise floor of two "
                      "halves of its sequences, by more than 2 standard errors and by more than %.2g times the unpatched MSE), "
                      "else from shift patching where it has "
                      "causal/patch_shift.csv (every other concept's shift must raise the MSE), else from replacement (each run's report.html has the full "
                      "table; the replacement count is given beside the shift count, and where the shift table has "
                      "standard errors, how many concepts' every cross-shift exceeds twice its standard error: a yes "
                      "with fewer of those than concepts rests on signs within the probe set's noise). Loss drop: the midpoint of a concept's fall "
                      "(after a curriculum: searched from its end); TD halfway: from which checkpoint its TD at the run's "
                      "best layer stays halfway from chance to its maximum; a dash: never.", n_c, n_an, ICL_PHASE_TD,
                      ICL_PHASE_TRANSPORT_SIZE);
    enum { NC = 9 };
    static const char *hdr[NC] = {"run", "seed", "plateau left", "loss drop", "TD halfway", "TD rise - loss drop",
                                  "at the end: separated / below agnostic / own mean cheapest", "phase (c)", "training, min"};
    char *cells = calloc((size_t)n_an * NC, CELL);
    const char **cp = calloc((size_t)n_an * NC + 1, sizeof *cp);
    int row = 0;
    for (int i = 0; cells && cp && i < n; i++) {
        const icl_run_phases *p = runs[i].ph;
        if (!p || p->phase_c < 0) continue;
        char *c0 = cells + (size_t)row * NC * CELL;
        snprintf(c0, CELL, "%s", runs[i].name);
        snprintf(c0 + CELL, CELL, "%" PRIu64, runs[i].seed);
        if (isfinite(p->plateau_step)) snprintf(c0 + 2 * CELL, CELL, "%.0f", p->plateau_step);
        else snprintf(c0 + 2 * CELL, CELL, "never");
        concept_list(c0 + 3 * CELL, CELL, p, offsetof(icl_phase_concept, drop_step), 0);
        concept_list(c0 + 4 * CELL, CELL, p, offsetof(icl_phase_concept, td_half_step), 0);
        concept_list(c0 + 5 * CELL, CELL, p, offsetof(icl_phase_concept, td_lag), 1);
        /* each phase-(c) condition's count, so a "no" shows which condition failed */
        if (p->patch_kind == ICL_PATCH_TRANSPORT)
            snprintf(c0 + 6 * CELL, CELL, "%d / %d / %d (transport, by more than 2 SE and half the MSE over the own; replacement %d) of %d",
                     p->n_separated, p->n_below_agnostic, p->n_self_clear, p->n_replace_cheaper, p->n_concepts);
        else if (p->patch_se)
            snprintf(c0 + 6 * CELL, CELL, "%d / %d / %d (shift, %d by more than 2 SE; replacement %d) of %d", p->n_separated,
                     p->n_below_agnostic, p->n_self_cheaper, p->n_self_clear, p->n_replace_cheaper, p->n_concepts);
        else if (p->patch_kind == ICL_PATCH_SHIFT)
            snprintf(c0 + 6 * CELL, CELL, "%d / %d / %d (shift; replacement %d) of %d", p->n_separated, p->n_below_agnostic,
                     p->n_self_cheaper, p->n_replace_cheaper, p->n_concepts);
        else snprintf(c0 + 6 * CELL, CELL, "%d / %d / %d of %d", p->n_separated, p->n_below_agnostic, p->n_self_cheaper, p->n_concepts);
        if (p->phase_c && p->patch_kind == ICL_PATCH_SHIFT && p->patch_se && p->n_self_clear < p->n_concepts)
            snprintf(c0 + 7 * CELL, CELL, "yes, from step %.0f (shift signs within 2 SE for %d of %d)", p->phase_c_step,
                     p->n_concepts - p->n_self_clear, p->n_concepts);
        else if (p->phase_c && isfinite(p->plateau_own_step))
            snprintf(c0 + 7 * CELL, CELL, "yes, from step %.0f (transport condition already at %.0f, in the plateau)", p->phase_c_step,
                     p->plateau_own_step);
        else if (p->phase_c) snprintf(c0 + 7 * CELL, CELL, "yes, from step %.0f", p->phase_c_step);
        else if (isfinite(p->phase_c_step)) snprintf(c0 + 7 * CELL, CELL, "no (held at step %.0f)", p->phase_c_step);
        else snprintf(c0 + 7 * CELL, CELL, "no");
        snprintf(c0 + 8 * CELL, CELL, "%.1f", runs[i].wall / 60);
        for (int k = 0; k < NC; k++) cp[(size_t)row * NC + k] = c0 + CELL * k;
        row++;
    }
    if (cells && cp) icl_report_table(rep, NC, hdr, row, cp);
    free(cells);
    free(cp);
}

int icl_sweep_report(const char *dir, const icl_sweep *s, icl_err *err) {
    int n = icl_sweep_n_runs(s), rc = 0;
    run_info *runs = calloc((size_t)(n ? n : 1), sizeof *runs);
    if (!runs) return icl_errf(err, "out of memory");
    for (int i = 0; i < n && !rc; i++) rc = read_run(dir, s, i, &runs[i], err);
    if (!rc) rc = write_tables(dir, s, runs, n, err);
    icl_report *rep = rc ? NULL : icl_report_new("iclab sweep");
    if (!rc && !rep) rc = icl_errf(err, "out of memory");
    if (!rc) {
        int n_done = 0, n_td = 0, n_points = n / s->n_seeds;
        for (int i = 0; i < n; i++) {
            n_done += !strcmp(runs[i].status, "complete");
            n_td += runs[i].n_td > 0;
        }
        icl_report_h2(rep, "Grid");
        icl_report_kvf(rep, "folder", "%s", dir);
        icl_report_kvf(rep, "runs", "%d (%d complete)", n, n_done);
        icl_report_kvf(rep, "configurations", "%d", n_points);
        icl_report_kvf(rep, "seeds", "%d", s->n_seeds);
        for (int a = 0; a < s->n_axes; a++) {
            char vals[ICL_SWEEP_MAX_VALUES * (ICL_SWEEP_VALUE_LEN + 2)] = "";
            for (int j = 0; j < s->n_values[a]; j++) {
                if (j) strcat(vals, ", ");
                strcat(vals, s->value[a][j]);
            }
            icl_report_kv(rep, s->field[a]->key, vals);
        }
        icl_report_p(rep, "Every run is an independent `iclab train` run in runs/NAME; sweep.csv and sweep.json hold the table below. "
                          "Wall time is the time its rank spent training it (summed over resumed sessions).");
        const char *hdr[] = {"run", "seed", "steps done", "final loss", "final held-out MSE", "wall s", "status"};
        char *cells = calloc((size_t)n * 7, CELL);
        const char **cp = calloc((size_t)n * 7 + 1, sizeof *cp);
        if (cells && cp) {
            for (int i = 0; i < n; i++) {
                char *c0 = cells + (size_t)i * 7 * CELL;
                snprintf(c0, CELL, "%s", runs[i].name);
                snprintf(c0 + 1 * CELL, CELL, "%" PRIu64, runs[i].seed);
                snprintf(c0 + 2 * CELL, CELL, "%" PRId64 " / %" PRId64, runs[i].done < 0 ? 0 : runs[i].done, runs[i].steps);
                fmt_num(c0 + 3 * CELL, CELL, runs[i].final_loss, "%.4g");
                fmt_num(c0 + 4 * CELL, CELL, runs[i].final_mse, "%.4f");
                snprintf(c0 + 5 * CELL, CELL, "%.2f", runs[i].wall);
                snprintf(c0 + 6 * CELL, CELL, "%s", runs[i].status);
                for (int k = 0; k < 7; k++) cp[(size_t)i * 7 + k] = c0 + CELL * k;
            }
            icl_report_table(rep, 7, hdr, n, cp);
        }
        free(cells);
        free(cp);

        icl_report_h2(rep, "Loss curves");
        icl_report_p(rep, "One pair of figures per configuration, the seeds overlaid: the training loss as train.csv logs it "
                          "(normalised by the task's E[y^2]) and the held-out MSE from eval.csv (all concepts).");
        for (int p = 0; p < n_points && !rc; p++) {
            int si, vi[ICL_SWEEP_MAX_AXES];
            char pname[200], title[300];
            run_indices(s, p * s->n_seeds, &si, vi);
            point_name(s, vi, pname, sizeof pname);
            icl_report_h3(rep, pname);
            snprintf(title, sizeof title, "Training loss, %s", pname);
            icl_err fe;
            point_figure(rep, s, runs, n, p, CURVE_LOSS, title, &fe); /* a failed figure leaves a note in the page */
            snprintf(title, sizeof title, "Held-out MSE, %s", pname);
            point_figure(rep, s, runs, n, p, CURVE_EVAL, title, &fe);
            if (n_td) {
                snprintf(title, sizeof title, "TD over training (best layer), %s", pname);
                point_figure(rep, s, runs, n, p, CURVE_TD, title, &fe);
                snprintf(title, sizeof title, "TD per layer at the last decoded checkpoint, %s", pname);
                point_figure(rep, s, runs, n, p, CURVE_TD_LAYER, title, &fe);
            }
        }

        icl_report_h2(rep, "Leaving the plateau");
        icl_report_p(rep, "Plateau exit: the first evaluated step (> 0) at which the held-out normalised MSE over all concepts is "
                          "below %.2g. A normalised MSE of 1 is predicting 0, which is where the loss plateau sits, so this "
                          "marks a run that has clearly started to use its context; \"never\" means not by its last evaluation "
                          "(the resolution is --eval-every; --plateau-mse sets the threshold, default %.2g).", s->plateau_mse, ICL_SWEEP_PLATEAU_MSE);
        if (n_td)
            icl_report_p(rep, "TD rise (runs decoded with iclab decode): the first decoded checkpoint at which the best layer's "
                              "overall task decodability reaches chance + %.2g x (1 - chance); the resolution is the set of "
                              "decoded checkpoints.", TD_RISE_FRACTION);
        else
            icl_report_p(rep, "No run has been decoded yet (iclab decode SWEEP/runs/NAME adds TD curves and a TD column here).");
        const char *ph[] = {"run", "seed", "left the plateau", "plateau exit step", "TD rise step"};
        char *pc = calloc((size_t)n * 5, CELL);
        const char **pp = calloc((size_t)n * 5 + 1, sizeof *pp);
        if (pc && pp) {
            for (int i = 0; i < n; i++) {
                char *c0 = pc + (size_t)i * 5 * CELL;
                snprintf(c0, CELL, "%s", runs[i].name);
                snprintf(c0 + 1 * CELL, CELL, "%" PRIu64, runs[i].seed);
                snprintf(c0 + 2 * CELL, CELL, "%s", runs[i].plateau_exit >= 0 ? "yes" : "no");
                fmt_step(c0 + 3 * CELL, CELL, runs[i].plateau_exit);
                if (runs[i].n_td) fmt_step(c0 + 4 * CELL, CELL, runs[i].td_rise);
                else snprintf(c0 + 4 * CELL, CELL, "not decoded");
                for (int k = 0; k < 5; k++) pp[(size_t)i * 5 + k] = c0 + CELL * k;
            }
            icl_report_table(rep, 5, ph, n, pp);
        }
        free(pc);
        free(pp);
        phase_section(rep, runs, n);
        char path[4200];
        snprintf(path, sizeof path, "%s/report.html", dir);
        rc = icl_report_write(rep, path, err);
    }
    icl_report_free(rep);
    for (int i = 0; i < n; i++) run_info_free(&runs[i]);
    free(runs);
    return rc;
}
