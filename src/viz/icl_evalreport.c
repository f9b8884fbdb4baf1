/* report.html and figures/ of an `iclab eval` / `iclab patch MODEL.gguf` folder, laid out like the
 * paper's Figs. 3-4, 19 and 20, rebuilt from the folder's files alone, with the paper's
 * Llama-3.1-8B numbers (spec paper.md §3.3, §4.1) beside ours where the task family matches. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_lmeval.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_report.h"
#include "iclab/icl_toktask.h"

/* ---- the paper's numbers (Llama-3.1-8B; layer 15 for POS, 13 for bitwise) ------------------- */

typedef struct paper_row {
    const char *concept;
    double td[3], acc[3];    /* 1, 4, 10 shots; accuracy in % */
    double iv[3], iv_sd[3];  /* interventions: unperturbed, negative, positive (%), std */
} paper_row;

static const paper_row paper_pos[] = {
    {"Noun", {0.483, 0.849, 0.966}, {6.7, 30.6, 48.9}, {29.8, 6.4, 44.8}, {2.9, 1.9, 3.1}},
    {"Pronoun", {0.520, 0.701, 0.824}, {19.7, 27.1, 40.4}, {30.4, 16.0, 54.4}, {4.0, 6.1, 2.5}},
    {"Verb", {0.532, 0.680, 0.752}, {12.5, 37.1, 48.9}, {38.2, 10.2, 55.0}, {7.7, 3.3, 8.3}},
    {"Adverb", {0.439, 0.682, 0.711}, {7.0, 20.4, 26.7}, {24.4, 9.0, 34.6}, {3.5, 3.3, 3.6}},
    {"Adjective", {0.371, 0.529, 0.608}, {5.8, 19.5, 11.3}, {10.4, 4.0, 15.4}, {3.8, 1.8, 2.9}},
    {"Preposition", {0.438, 0.548, 0.655}, {5.5, 16.4, 19.9}, {16.0, 12.4, 29.4}, {3.0, 3.0, 3.7}},
};
static const paper_row paper_bitwise[] = {
    {"AND", {0.387, 0.591, 0.840}, {10, 28, 38}, {21.9, 17.8, 27.2}, {2.2, 1.0, 2.0}},
    {"NAND", {0.365, 0.461, 0.572}, {7, 26, 34}, {22.4, 23.6, 25.0}, {2.2, 1.3, 1.7}},
    {"OR", {0.312, 0.576, 0.861}, {27, 49, 72}, {46.4, 43.3, 60.1}, {1.2, 2.0, 1.7}},
    {"NOR", {0.299, 0.418, 0.601}, {6, 13, 21}, {12.2, 9.6, 13.5}, {1.4, 0.9, 1.3}},
    {"XOR", {0.249, 0.239, 0.305}, {4, 39, 36}, {39.0, 33.4, 39.8}, {1.0, 1.3, 1.5}},
    {"XNOR", {0.218, 0.315, 0.346}, {4, 2, 1}, {1.8, 0.8, 0.8}, {0.3, 0.4, 0.4}},
};

static const paper_row *paper_lookup(const char *task, const char *concept, int *layer, double *r2) {
    const paper_row *rows = NULL;
    int n = 0;
    if (!strcmp(task, "pos")) rows = paper_pos, n = 6, *layer = 15, *r2 = 0.781;
    else if (!strcmp(task, "bitwise")) rows = paper_bitwise, n = 6, *layer = 13, *r2 = 0.528;
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].concept, concept)) return &rows[i];
    return NULL;
}

static int paper_shot_index(int shots) { return shots == 1 ? 0 : shots == 4 ? 1 : shots == 10 ? 2 : -1; }

/* ---- reading the folder ------------------------------------------------------------------------ */

typedef struct eval_data {
    char task[256], model[1024], arch[64];
    int n_layer, peak, peak_shots, prompting, K, S, rows, n_prompts;
    char **concepts;    /* K */
    int shots[16];      /* S, ascending */
    double *td;         /* (S, rows, K) */
    double *td_all;     /* (S, rows) */
    double *acc;        /* (S, K), NaN when not measured */
    int has_acc;
} eval_data;

static void eval_data_free(eval_data *d) {
    for (int c = 0; c < d->K; c++) free(d->concepts[c]);
    free(d->concepts);
    free(d->td);
    free(d->td_all);
    free(d->acc);
}

/* A string or number field of config.json (flat, as icl_eval_run writes it). */
static int json_field(const char *text, const char *key, char *out, size_t n) {
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = strstr(text, pat);
    if (!p) return -1;
    p += strlen(pat);
    size_t i = 0;
    if (*p == '"') {
        for (p++; *p && *p != '"' && i + 1 < n; p++) {
            if (*p == '\\' && p[1]) p++;
            out[i++] = *p;
        }
    } else
        while (*p && *p != ',' && *p != '\n' && i + 1 < n) out[i++] = *p++;
    out[i] = 0;
    return 0;
}

static int concept_index(const eval_data *d, const char *name) {
    for (int c = 0; c < d->K; c++)
        if (!strcmp(d->concepts[c], name)) return c;
    return -1;
}

static int shot_index(const eval_data *d, int shots) {
    for (int s = 0; s < d->S; s++)
        if (d->shots[s] == shots) return s;
    return -1;
}

static int load_eval(eval_data *d, const char *dir, icl_err *err) {
    memset(d, 0, sizeof *d);
    char path[4200], num[64], *text = NULL;
    size_t n;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (icl_read_file(path, &text, &n, err)) return -1;
    int r = 0;
    if (json_field(text, "task", d->task, sizeof d->task) || json_field(text, "peak_layer", num, sizeof num))
        r = icl_errf(err, "%s is not an eval folder's config", path);
    d->peak = atoi(num);
    if (!json_field(text, "peak_shots", num, sizeof num)) d->peak_shots = atoi(num);
    if (!json_field(text, "n_layer", num, sizeof num)) d->n_layer = atoi(num);
    if (!json_field(text, "rows", num, sizeof num)) d->rows = atoi(num);
    if (!json_field(text, "prompting", num, sizeof num)) d->prompting = atoi(num);
    if (!json_field(text, "prompts_per_concept", num, sizeof num)) d->n_prompts = atoi(num);
    json_field(text, "model", d->model, sizeof d->model);
    json_field(text, "arch", d->arch, sizeof d->arch);
    free(text);
    /* concepts from labels.txt */
    snprintf(path, sizeof path, "%s/labels.txt", dir);
    if (!r && icl_read_file(path, &text, &n, err)) r = -1;
    for (char *p = text, *e; !r && p && *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) break;
        char **cs = realloc(d->concepts, sizeof(char *) * (d->K + 1));
        if (!cs) r = icl_errf(err, "out of memory");
        else {
            d->concepts = cs;
            d->concepts[d->K] = strndup(p, (size_t)(e - p));
            if (!d->concepts[d->K++]) r = icl_errf(err, "out of memory");
        }
    }
    free(text);
    if (!r && (d->K < 2 || d->rows < 1)) r = icl_errf(err, "%s: no concepts or layers", dir);
    icl_csv t = {0};
    snprintf(path, sizeof path, "%s/td.csv", dir);
    if (!r) r = icl_csv_read(&t, path, err);
    int cs = r ? -1 : icl_csv_col(&t, "shots"), cl = r ? -1 : icl_csv_col(&t, "layer"), cc = r ? -1 : icl_csv_col(&t, "concept"),
        ct = r ? -1 : icl_csv_col(&t, "td");
    if (!r && (cs < 0 || cl < 0 || cc < 0 || ct < 0)) r = icl_errf(err, "%s lacks a column", path);
    for (int i = 0; !r && i < t.n_rows; i++) {
        int s = (int)icl_csv_num(&t, i, cs);
        if (shot_index(d, s) < 0) {
            if (d->S == 16) r = icl_errf(err, "%s: too many shot counts", path);
            else d->shots[d->S++] = s;
        }
    }
    for (int i = 1; i < d->S; i++) /* ascending */
        for (int j = i; j > 0 && d->shots[j] < d->shots[j - 1]; j--) {
            int x = d->shots[j];
            d->shots[j] = d->shots[j - 1], d->shots[j - 1] = x;
        }
    size_t cells = (size_t)d->S * d->rows;
    if (!r) {
        d->td = malloc(sizeof(double) * cells * d->K);
        d->td_all = malloc(sizeof(double) * cells);
        d->acc = malloc(sizeof(double) * d->S * d->K);
        if (!d->td || !d->td_all || !d->acc) r = icl_errf(err, "out of memory");
        for (size_t i = 0; !r && i < cells * d->K; i++) d->td[i] = NAN;
        for (size_t i = 0; !r && i < cells; i++) d->td_all[i] = NAN;
        for (int i = 0; !r && i < d->S * d->K; i++) d->acc[i] = NAN;
    }
    for (int i = 0; !r && i < t.n_rows; i++) {
        int s = shot_index(d, (int)icl_csv_num(&t, i, cs)), l = (int)icl_csv_num(&t, i, cl);
        if (l < 0 || l >= d->rows) continue;
        const char *name = icl_csv_str(&t, i, cc);
        int c = concept_index(d, name);
        if (!strcmp(name, "all")) d->td_all[(size_t)s * d->rows + l] = icl_csv_num(&t, i, ct);
        else if (c >= 0) d->td[((size_t)s * d->rows + l) * d->K + c] = icl_csv_num(&t, i, ct);
    }
    icl_csv_free(&t);
    snprintf(path, sizeof path, "%s/accuracy.csv", dir);
    if (!r && icl_path_exists(path)) {
        r = icl_csv_read(&t, path, err);
        int as = r ? -1 : icl_csv_col(&t, "shots"), ac = r ? -1 : icl_csv_col(&t, "concept"), aa = r ? -1 : icl_csv_col(&t, "accuracy");
        for (int i = 0; !r && as >= 0 && ac >= 0 && aa >= 0 && i < t.n_rows; i++) {
            int s = shot_index(d, (int)icl_csv_num(&t, i, as)), c = concept_index(d, icl_csv_str(&t, i, ac));
            if (s >= 0 && c >= 0) d->acc[s * d->K + c] = icl_csv_num(&t, i, aa), d->has_acc = 1;
        }
        icl_csv_free(&t);
    }
    if (r) eval_data_free(d);
    return r;
}

/* ---- figures --------------------------------------------------------------------------------- */

/* Saves fig as figures/NAME.png and .svg and puts it in the report. */
static void put_figure(icl_report *rep, const char *dir, const char *name, icl_fig *fig, const char *caption, int *bad,
                       icl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/figures/%s.png", dir, name);
    if (icl_fig_save(fig, path, 0, 0, err)) *bad = 1;
    snprintf(path, sizeof path, "%s/figures/%s.svg", dir, name);
    if (!*bad && icl_fig_save(fig, path, 0, 0, err)) *bad = 1;
    if (!*bad && icl_report_figure(rep, fig, caption, 0, 0, err)) *bad = 1;
    icl_fig_free(fig);
}

static int is_null(const char *name) { return !strcmp(name, "Null"); }

static void figures_td(icl_report *rep, const char *dir, const eval_data *d, int *bad, icl_err *err) {
    char title[256], cap[512];
    double *x = malloc(sizeof(double) * d->rows), *y = malloc(sizeof(double) * d->rows);
    if (!x || !y) {
        free(x), free(y);
        *bad = 1;
        icl_errf(err, "out of memory");
        return;
    }
    for (int l = 0; l < d->rows; l++) x[l] = l;
    /* Fig. 19a: TD by layer, one line per shot count (mean over concepts). */
    icl_fig *f = icl_fig_line("Task decodability by layer", "layer (0 = embedding)", "mean TD over concepts");
    for (int s = 0; s < d->S; s++) {
        for (int l = 0; l < d->rows; l++) {
            double m = 0;
            for (int c = 0; c < d->K; c++) m += d->td[((size_t)s * d->rows + l) * d->K + c];
            y[l] = m / d->K;
        }
        snprintf(title, sizeof title, "%d-shot", d->shots[s]);
        icl_fig_series_markers(f, icl_fig_add_series(f, title, x, y, (size_t)d->rows), 1);
    }
    icl_fig_add_hline(f, 1.0 / d->K, "chance");
    icl_fig_add_vline(f, d->peak, "peak");
    icl_fig_set_ylim(f, 0, 1);
    snprintf(cap, sizeof cap,
             "Mean task decodability (leave-one-out 10-NN over %d concepts) of the hidden state at the token before the "
             "answer, by layer and number of demonstrations (the paper's Fig. 19). The peak layer, %d, is the one of "
             "highest mean TD at %d shots.",
             d->K, d->peak, d->peak_shots);
    put_figure(rep, dir, "td_by_layer", f, cap, bad, err);
    /* per concept, at the reference shot count */
    int s0 = shot_index(d, d->peak_shots);
    if (!*bad && s0 >= 0) {
        snprintf(title, sizeof title, "TD by layer per concept, %d-shot", d->peak_shots);
        f = icl_fig_line(title, "layer (0 = embedding)", "TD");
        for (int c = 0; c < d->K; c++) {
            for (int l = 0; l < d->rows; l++) y[l] = d->td[((size_t)s0 * d->rows + l) * d->K + c];
            int sr = icl_fig_add_series(f, d->concepts[c], x, y, (size_t)d->rows);
            if (is_null(d->concepts[c])) icl_fig_series_dash(f, sr, ICL_DASHED);
        }
        icl_fig_add_hline(f, 1.0 / d->K, "chance");
        icl_fig_set_ylim(f, 0, 1);
        icl_fig_set_legend(f, ICL_LEGEND_OUTSIDE);
        put_figure(rep, dir, "td_by_layer_concept", f, "Task decodability of each concept by layer (Null dashed).", bad, err);
    }
    free(x);
    free(y);
    /* Fig. 3 (bottom): TD per concept at each shot count, at the peak layer. */
    if (!*bad) {
        const char **groups = malloc(sizeof(char *) * d->K);
        double *v = malloc(sizeof(double) * d->K);
        if (groups && v) {
            for (int c = 0; c < d->K; c++) groups[c] = d->concepts[c];
            snprintf(title, sizeof title, "TD per concept at layer %d", d->peak);
            f = icl_fig_bars(title, NULL, "TD", groups, d->K);
            for (int s = 0; s < d->S; s++) {
                for (int c = 0; c < d->K; c++) v[c] = d->td[((size_t)s * d->rows + d->peak) * d->K + c];
                snprintf(title, sizeof title, "%d-shot", d->shots[s]);
                icl_fig_add_bars(f, title, v, NULL, d->K);
            }
            icl_fig_add_hline(f, 1.0 / d->K, "chance");
            icl_fig_set_ylim(f, 0, 1);
            put_figure(rep, dir, "td_by_shots", f,
                       "Task decodability per concept and number of demonstrations at the peak layer (the paper's Fig. 3, "
                       "bottom).",
                       bad, err);
            if (!*bad && d->has_acc) {
                f = icl_fig_bars("ICL accuracy per concept", NULL, "accuracy (exact match)", groups, d->K);
                for (int s = 0; s < d->S; s++) {
                    for (int c = 0; c < d->K; c++) v[c] = d->acc[s * d->K + c];
                    snprintf(title, sizeof title, "%d-shot", d->shots[s]);
                    icl_fig_add_bars(f, title, v, NULL, d->K);
                }
                icl_fig_set_ylim(f, 0, 1);
                put_figure(rep, dir, "accuracy_by_shots", f,
                           "ICL accuracy (greedy decoding, exact match of the answer line) per concept and number of "
                           "demonstrations.",
                           bad, err);
            }
        }
        free(groups);
        free(v);
    }
}

static void figure_fit(icl_report *rep, const char *dir, const eval_data *d, int *bad, icl_err *err) {
    int n = 0, m = d->S * d->K;
    double *x = malloc(sizeof(double) * m), *y = malloc(sizeof(double) * m);
    int *cls = malloc(sizeof(int) * m);
    if (!x || !y || !cls) {
        free(x), free(y), free(cls);
        return;
    }
    for (int s = 0; s < d->S; s++)
        for (int c = 0; c < d->K; c++) {
            if (is_null(d->concepts[c])) continue;
            x[n] = d->td[((size_t)s * d->rows + d->peak) * d->K + c];
            y[n] = d->acc[s * d->K + c];
            cls[n++] = c;
        }
    double a, b, r2;
    icl_linfit(x, y, n, &a, &b, &r2);
    char title[256], cap[768], lab[128];
    snprintf(title, sizeof title, "Accuracy against TD at layer %d (R\u00b2 = %.3f)", d->peak, r2);
    icl_fig *f = icl_fig_line(title, "task decodability", "ICL accuracy");
    icl_fig_add_points(f, x, y, cls, (size_t)n);
    icl_fig_set_classes(f, (const char *const *)d->concepts, d->K);
    for (int i = 0; i < n; i++) {
        snprintf(lab, sizeof lab, "%d", d->shots[i / (d->K - (concept_index(d, "Null") >= 0))]);
        icl_fig_add_text(f, x[i], y[i], lab);
    }
    if (isfinite(a)) {
        double lx[2] = {0, 1}, ly[2] = {b, a + b};
        int sr = icl_fig_add_series(f, "linear fit", lx, ly, 2);
        icl_fig_series_dash(f, sr, ICL_DASHED);
    }
    icl_fig_set_xlim(f, 0, 1);
    icl_fig_set_ylim(f, 0, 1);
    int pl;
    double pr2 = NAN;
    paper_lookup(d->task, "", &pl, &pr2);
    char fit[160];
    if (isfinite(r2)) snprintf(fit, sizeof fit, "Fit: accuracy = %.3f TD %+.3f, R\u00b2 = %.3f over %d points.", a, b, r2, n);
    else snprintf(fit, sizeof fit, "No linear fit: accuracy or TD is the same at all %d points.", n);
    snprintf(cap, sizeof cap,
             "ICL accuracy against task decodability at the peak layer, one point per concept and shot count (the "
             "number beside each point), Null left out (the paper's Fig. 4). %s%s",
             fit,
             isfinite(pr2) ? (!strcmp(d->task, "pos") ? " The paper's Llama-3.1-8B: R\u00b2 = 0.781 (POS, layer 15)."
                                                         : " The paper's Llama-3.1-8B: R\u00b2 = 0.528 (bitwise, layer 13).")
                           : "");
    put_figure(rep, dir, "accuracy_vs_td", f, cap, bad, err);
    free(x);
    free(y);
    free(cls);
}

static void figures_embed(icl_report *rep, const char *dir, const eval_data *d, int *bad, icl_err *err) {
    static const char *kinds[2] = {"embed", "pca"}, *names[2] = {"UMAP", "PCA"};
    char path[4200], title[256], cap[512];
    icl_npy lab = {0};
    snprintf(path, sizeof path, "%s/labels.npy", dir);
    if (icl_npy_read_as(path, ICL_NPY_I32, &lab, err)) return;
    for (int k = 0; k < 2 && !*bad; k++) {
        icl_npy e = {0};
        snprintf(path, sizeof path, "%s/%s_s%d.npy", dir, kinds[k], d->peak_shots);
        if (!icl_path_exists(path) || icl_npy_read_as(path, ICL_NPY_F32, &e, err)) continue;
        if (e.ndim == 2 && e.shape[1] == 2 && e.shape[0] == lab.n) {
            int *cls = malloc(sizeof(int) * lab.n);
            for (int64_t i = 0; cls && i < lab.n; i++) cls[i] = ((const int32_t *)lab.data)[i];
            snprintf(title, sizeof title, "%s of layer %d, %d-shot", names[k], d->peak, d->peak_shots);
            icl_fig *f = icl_fig_scatter(title, NULL, NULL);
            icl_fig_add_points_xy(f, e.data, cls, (size_t)lab.n);
            icl_fig_set_classes(f, (const char *const *)d->concepts, d->K);
            icl_fig_set_ticks(f, 0);
            snprintf(cap, sizeof cap, "%s of the peak layer's hidden states at the token before the answer, coloured by "
                                      "concept (the paper's Fig. 3, top).", names[k]);
            snprintf(path, sizeof path, "%s_layer", kinds[k]);
            put_figure(rep, dir, path, f, cap, bad, err);
            free(cls);
        }
        icl_npy_free(&e);
    }
    icl_npy_free(&lab);
}

/* TD / accuracy per concept and shot count, ours and the paper's. */
static void table_td_acc(icl_report *rep, const eval_data *d) {
    int pl = 0;
    double pr2;
    int cols = 1 + 2 * d->S, any_paper = 0;
    for (int c = 0; c < d->K; c++) any_paper |= paper_lookup(d->task, d->concepts[c], &pl, &pr2) != NULL;
    const char **head = calloc((size_t)cols, sizeof(char *));
    char **cells = calloc((size_t)(d->K + 1) * cols, sizeof(char *));
    char buf[128];
    if (!head || !cells) goto out;
    head[0] = "concept";
    for (int s = 0; s < d->S; s++) {
        snprintf(buf, sizeof buf, "%d-shot TD / acc (ours)", d->shots[s]);
        head[1 + 2 * s] = strdup(buf);
        snprintf(buf, sizeof buf, "%d-shot TD / acc (paper)", d->shots[s]);
        head[2 + 2 * s] = strdup(buf);
    }
    for (int c = 0; c <= d->K; c++) {
        cells[c * cols] = strdup(c < d->K ? d->concepts[c] : "mean (without Null)");
        const paper_row *p = c < d->K ? paper_lookup(d->task, d->concepts[c], &pl, &pr2) : NULL;
        for (int s = 0; s < d->S; s++) {
            double td = 0, acc = 0;
            int n = 0;
            for (int k = 0; k < d->K; k++)
                if ((c < d->K && k == c) || (c == d->K && !is_null(d->concepts[k]))) {
                    td += d->td[((size_t)s * d->rows + d->peak) * d->K + k];
                    acc += d->acc[s * d->K + k];
                    n++;
                }
            snprintf(buf, sizeof buf, "%.3f / %.1f%%", td / n, 100 * acc / n);
            if (!d->has_acc) snprintf(buf, sizeof buf, "%.3f", td / n);
            cells[c * cols + 1 + 2 * s] = strdup(buf);
            int ps = paper_shot_index(d->shots[s]);
            buf[0] = 0;
            if (p && ps >= 0) snprintf(buf, sizeof buf, "%.3f / %.1f%%", p->td[ps], p->acc[ps]);
            if (c == d->K && ps >= 0 && any_paper) {
                double mt = 0, ma = 0;
                const paper_row *rows = !strcmp(d->task, "pos") ? paper_pos : paper_bitwise;
                for (int k = 0; k < 6; k++) mt += rows[k].td[ps], ma += rows[k].acc[ps];
                snprintf(buf, sizeof buf, "%.3f / %.1f%%", mt / 6, ma / 6);
            }
            cells[c * cols + 2 + 2 * s] = strdup(buf);
        }
    }
    icl_report_p(rep,
                 "Task decodability at the peak layer (%d) and ICL accuracy per concept. The paper's columns are "
                 "Llama-3.1-8B's values at layer %s (spec paper.md §3.3), labelled as the paper's; they are a reference "
                 "for the shape of the result, not a target for a different model.",
                 d->peak, any_paper ? (!strcmp(d->task, "pos") ? "15" : "13") : "-");
    icl_report_table(rep, cols, head, d->K + 1, (const char *const *)cells);
out:
    for (int s = 0; head && s < 2 * d->S; s++) free((char *)head[1 + s]);
    for (int i = 0; cells && i < (d->K + 1) * cols; i++) free(cells[i]);
    free(head);
    free(cells);
}

/* The findings in words: mean TD and accuracy by shot count, the peak layer, the fit. */
static void summary(icl_report *rep, const eval_data *d) {
    char line[2048];
    size_t n = 0;
    n += (size_t)snprintf(line + n, sizeof line - n, "At the peak layer (%d of %d), the mean TD over the concepts other than "
                          "Null (chance %.2f) is", d->peak, d->rows - 1, 1.0 / d->K);
    for (int s = 0; s < d->S && n < sizeof line - 64; s++) {
        double td = 0, acc = 0;
        int m = 0;
        for (int c = 0; c < d->K; c++)
            if (!is_null(d->concepts[c])) {
                td += d->td[((size_t)s * d->rows + d->peak) * d->K + c];
                acc += d->acc[s * d->K + c];
                m++;
            }
        n += (size_t)snprintf(line + n, sizeof line - n, "%s %.3f at %d shot%s", s ? (s + 1 == d->S ? " and" : ",") : "",
                              td / m, d->shots[s], d->shots[s] == 1 ? "" : "s");
        if (d->has_acc) n += (size_t)snprintf(line + n, sizeof line - n, " (accuracy %.1f%%)", 100 * acc / m);
    }
    if (n < sizeof line - 2) snprintf(line + n, sizeof line - n, ".");
    icl_report_p(rep, "%s", line);
}

/* ---- interventions ----------------------------------------------------------------------------- */

static void section_interventions(icl_report *rep, const char *dir, int *bad, icl_err *err) {
    char path[4200], title[256], cap[768];
    snprintf(path, sizeof path, "%s/intervention_summary.csv", dir);
    if (!icl_path_exists(path)) return;
    icl_csv t = {0};
    if (icl_csv_read(&t, path, err)) {
        *bad = 1;
        return;
    }
    int cc = icl_csv_col(&t, "concept"), cd = icl_csv_col(&t, "condition"), cm = icl_csv_col(&t, "mean"),
        csd = icl_csv_col(&t, "std"), cl = icl_csv_col(&t, "layer"), ca = icl_csv_col(&t, "action"),
        cr = icl_csv_col(&t, "replicates"), cs = icl_csv_col(&t, "shots"), ct = icl_csv_col(&t, "task");
    if (ct < 0 || cc < 0 || cd < 0 || cm < 0 || csd < 0 || cl < 0 || ca < 0 || cr < 0 || cs < 0 || t.n_rows == 0) {
        icl_csv_free(&t);
        return;
    }
    static const char *conds[3] = {"unperturbed", "negative", "positive"};
    int K = 0;
    const char *groups[64];
    double mean[3][64], sd[3][64];
    for (int i = 0; i < t.n_rows && K < 64; i++) {
        const char *name = icl_csv_str(&t, i, cc);
        int g = 0;
        while (g < K && strcmp(groups[g], name)) g++;
        if (g == K) {
            groups[K++] = name;
            for (int k = 0; k < 3; k++) mean[k][g] = sd[k][g] = NAN;
        }
        for (int k = 0; k < 3; k++)
            if (!strcmp(icl_csv_str(&t, i, cd), conds[k])) mean[k][g] = icl_csv_num(&t, i, cm), sd[k][g] = icl_csv_num(&t, i, csd);
    }
    int layer = (int)icl_csv_num(&t, 0, cl), reps = (int)icl_csv_num(&t, 0, cr), shots = (int)icl_csv_num(&t, 0, cs);
    const char *action = icl_csv_str(&t, 0, ca), *task = icl_csv_str(&t, 0, ct);
    icl_report_h2(rep, "Interventions (paper §4.1, Fig. 20)");
    icl_report_p(rep,
                 "At layer %d, at the token before the answer, the mean hidden state of a concept (from %s prompts of the "
                 "training split) is %s: the Null concept's (negative) or the prompt's own concept's (positive). Accuracy "
                 "at %d shots, mean and population standard deviation over %d replicates of fresh test prompts.",
                 layer, "separate", !strcmp(action, "add") ? "added" : "put in place of the state",
                 shots, reps);
    snprintf(title, sizeof title, "Accuracy under interventions at layer %d", layer);
    icl_fig *f = icl_fig_bars(title, NULL, "accuracy", groups, K);
    static const char *labels[3] = {"unperturbed", "negative (Null mean)", "positive (own mean)"};
    for (int k = 0; k < 3; k++) icl_fig_add_bars(f, labels[k], mean[k], sd[k], K);
    icl_fig_set_ylim(f, 0, 1);
    snprintf(cap, sizeof cap, "Accuracy per concept unperturbed, with the Null concept's mean and with the concept's own "
                              "mean %s at layer %d (error bars: one standard deviation over %d replicates).",
             !strcmp(action, "add") ? "added" : "substituted", layer, reps);
    put_figure(rep, dir, "interventions", f, cap, bad, err);
    /* table with the paper's values */
    const char *head[7] = {"concept", "unperturbed (ours)", "negative (ours)", "positive (ours)",
                           "unperturbed (paper)", "negative (paper)", "positive (paper)"};
    char **cells = calloc((size_t)K * 7, sizeof(char *));
    char buf[96];
    int pl;
    double pr2;
    for (int g = 0; cells && g < K; g++) {
        cells[g * 7] = strdup(groups[g]);
        const paper_row *p = paper_lookup(task, groups[g], &pl, &pr2);
        for (int k = 0; k < 3; k++) {
            snprintf(buf, sizeof buf, "%.1f ± %.1f%%", 100 * mean[k][g], 100 * sd[k][g]);
            cells[g * 7 + 1 + k] = strdup(buf);
            buf[0] = 0;
            if (p) snprintf(buf, sizeof buf, "%.1f ± %.1f%%", p->iv[k], p->iv_sd[k]);
            cells[g * 7 + 4 + k] = strdup(buf);
        }
    }
    if (cells) icl_report_table(rep, 7, head, K, (const char *const *)cells);
    icl_report_p(rep, "The paper's columns: Llama-3.1-8B at layer 15 (POS) / 13 (bitwise), 4 shots (spec paper.md §4.1), "
                      "labelled as the paper's.");
    for (int i = 0; cells && i < K * 7; i++) free(cells[i]);
    free(cells);
    icl_csv_free(&t);
}

/* A folder with interventions and no eval: a report of them alone. */
static int report_interventions_only(const char *dir, icl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/figures", dir);
    if (icl_mkdirs(path, err)) return -1;
    icl_report *rep = icl_report_new("iclab patch: interventions on a language model");
    int bad = 0;
    section_interventions(rep, dir, &bad, err);
    snprintf(path, sizeof path, "%s/report.html", dir);
    int r = bad ? -1 : icl_report_write(rep, path, err);
    icl_report_free(rep);
    return r;
}

int icl_eval_report(const char *dir, icl_err *err) {
    eval_data d;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!icl_path_exists(path)) {
        snprintf(path, sizeof path, "%s/intervention_summary.csv", dir);
        if (icl_path_exists(path)) return report_interventions_only(dir, err);
    }
    if (load_eval(&d, dir, err)) return -1;
    snprintf(path, sizeof path, "%s/figures", dir);
    if (icl_mkdirs(path, err)) {
        eval_data_free(&d);
        return -1;
    }
    char title[1400];
    const char *base = strrchr(d.model, '/');
    snprintf(title, sizeof title, "iclab eval: %s on %s", d.task, base ? base + 1 : d.model);
    icl_report *rep = icl_report_new(title);
    int bad = 0;
    icl_report_h2(rep, "Setup");
    icl_report_kv(rep, "model", d.model);
    icl_report_kvf(rep, "architecture", "%s, %d layers", d.arch, d.n_layer);
    icl_report_kv(rep, "task family", d.task);
    icl_report_kvf(rep, "concepts", "%d", d.K);
    icl_report_kvf(rep, "prompts per concept and shot count", "%d", d.n_prompts);
    icl_report_kv(rep, "prompting (concept named in the prompt)", d.prompting ? "yes" : "no");
    icl_report_kvf(rep, "peak layer (highest mean TD)", "%d (at %d shots)", d.peak, d.peak_shots);
    if (!strcmp(d.task, "pos")) {
        /* which Brown tags make each concept (docs/tasks.md): the paper's PTB mapping is not given */
        static const char *names[6] = {"Noun", "Adjective", "Verb", "Adverb", "Preposition", "Pronoun"};
        char tags[512];
        for (int c = 0; c < 6; c++) {
            size_t n = 0;
            tags[0] = 0;
            for (const char *const *t = icl_brown_concept_tags(c); *t && n + 16 < sizeof tags; t++)
                n += (size_t)snprintf(tags + n, sizeof tags - n, "%s%s", n ? " " : "", *t);
            char key[64];
            snprintf(key, sizeof key, "Brown tags of %s", names[c]);
            icl_report_kv(rep, key, tags);
        }
    }
    icl_report_p(rep, "Layer 0 is the embedding; layer l the residual stream after block l (Hugging Face's "
                      "hidden_states). TD: leave-one-out 10-nearest-neighbour majority vote at the last prompt token, "
                      "per concept (paper §2). Accuracy: greedy decoding, exact match of the answer line.");
    icl_report_h2(rep, "Task decodability and accuracy (paper Figs. 3, 4, 19)");
    summary(rep, &d);
    table_td_acc(rep, &d);
    figures_td(rep, dir, &d, &bad, err);
    if (!bad && d.has_acc) figure_fit(rep, dir, &d, &bad, err);
    if (!bad) {
        icl_report_h2(rep, "The peak layer's geometry");
        figures_embed(rep, dir, &d, &bad, err);
    }
    if (!bad) section_interventions(rep, dir, &bad, err);
    snprintf(path, sizeof path, "%s/report.html", dir);
    int r = bad ? -1 : icl_report_write(rep, path, err);
    icl_report_free(rep);
    eval_data_free(&d);
    return r;
}
