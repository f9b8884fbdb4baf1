/* Figures of a training run from its CSV files (see icl_runplot.h). */
#include "iclab/icl_runplot.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_plot.h"

#define MAX_CONCEPTS 64

/* Saves a figure as PNG and SVG under dir/name.* and frees it. */
static int save_both(icl_fig *f, const char *dir, const char *name, icl_err *err) {
    char path[4400];
    int r = 0;
    snprintf(path, sizeof path, "%s/%s.png", dir, name);
    r = icl_fig_save(f, path, 0, 0, err);
    if (!r) {
        snprintf(path, sizeof path, "%s/%s.svg", dir, name);
        r = icl_fig_save(f, path, 0, 0, err);
    }
    icl_fig_free(f);
    return r;
}

/* Mean over positions of an estimator's MSE for concept -1 (all). NaN if absent. */
static double estimator_mean(const icl_csv *est, const char *name) {
    int ce = icl_csv_col(est, "estimator"), cc = icl_csv_col(est, "concept"), cm = icl_csv_col(est, "mse");
    double s = 0;
    int n = 0;
    for (int r = 0; r < est->n_rows; r++)
        if (!strcmp(icl_csv_str(est, r, ce), name) && icl_csv_num(est, r, cc) == -1) {
            s += icl_csv_num(est, r, cm);
            n++;
        }
    return n ? s / n : NAN;
}

static const struct { const char *name, *label; } ESTIMATORS[] = {
    {"oracle-ls", "oracle-basis LS"}, {"lasso", "Lasso (all D)"}, {"ridge", "ridge (all D)"}};

static int fig_mse_by_concept(const char *dir, const icl_csv *ev, const icl_csv *est, icl_err *err) {
    int cs = icl_csv_col(ev, "step"), cc = icl_csv_col(ev, "concept"), cn = icl_csv_col(ev, "name"), cm = icl_csv_col(ev, "mse");
    if (cs < 0 || cc < 0 || cn < 0 || cm < 0) return icl_errf(err, "eval.csv lacks its columns");
    int nc = 0;
    for (int r = 0; r < ev->n_rows; r++) {
        int k = (int)icl_csv_num(ev, r, cc);
        if (k + 1 > nc && k < MAX_CONCEPTS) nc = k + 1;
    }
    icl_fig *f = icl_fig_line("Held-out MSE per concept", "training step", "normalised MSE (1 = predict 0)");
    icl_fig_set_logx(f, 1);
    double *x = malloc(sizeof(double) * ev->n_rows), *y = malloc(sizeof(double) * ev->n_rows);
    for (int k = -1; k < nc; k++) {
        size_t n = 0;
        const char *name = "all";
        for (int r = 0; r < ev->n_rows; r++)
            if ((int)icl_csv_num(ev, r, cc) == k && icl_csv_num(ev, r, cs) > 0) {
                x[n] = icl_csv_num(ev, r, cs);
                y[n++] = icl_csv_num(ev, r, cm);
                name = icl_csv_str(ev, r, cn);
            }
        if (!n) continue;
        int s = icl_fig_add_series(f, k < 0 ? "all concepts" : name, x, y, n);
        if (k < 0) {
            icl_fig_series_color(f, s, 0x555555);
            icl_fig_series_dash(f, s, ICL_DOTTED);
        }
    }
    free(x);
    free(y);
    if (est)
        for (size_t e = 0; e < sizeof ESTIMATORS / sizeof ESTIMATORS[0]; e++) {
            double v = estimator_mean(est, ESTIMATORS[e].name);
            if (isfinite(v)) icl_fig_add_hline(f, v, ESTIMATORS[e].label);
        }
    return save_both(f, dir, "mse_by_concept", err);
}

static int fig_mse_by_position(const char *dir, const icl_csv *pos, const icl_csv *est, icl_err *err) {
    int cs = icl_csv_col(pos, "step"), cc = icl_csv_col(pos, "concept"), cp = icl_csv_col(pos, "position"), cm = icl_csv_col(pos, "mse");
    if (cs < 0 || cc < 0 || cp < 0 || cm < 0) return icl_errf(err, "eval_positions.csv lacks its columns");
    /* the distinct evaluation steps, in file order (increasing) */
    double steps[3] = {NAN, NAN, NAN}, last = NAN;
    int nsteps = 0, K = 0, nc = 0;
    double *all_steps = malloc(sizeof(double) * (pos->n_rows + 1));
    for (int r = 0; r < pos->n_rows; r++) {
        double s = icl_csv_num(pos, r, cs);
        if (s != last) all_steps[nsteps++] = last = s;
        int p = (int)icl_csv_num(pos, r, cp), k = (int)icl_csv_num(pos, r, cc);
        if (p + 1 > K) K = p + 1;
        if (k + 1 > nc && k < MAX_CONCEPTS) nc = k + 1;
    }
    if (nsteps == 0 || K == 0) {
        free(all_steps);
        return icl_errf(err, "eval_positions.csv has no rows");
    }
    steps[0] = all_steps[nsteps / 4 > 0 ? nsteps / 4 : 0];
    steps[1] = all_steps[nsteps / 2];
    steps[2] = all_steps[nsteps - 1];
    free(all_steps);
    icl_fig *f = icl_fig_grid("MSE by in-context position", 1, 3);
    double *x = malloc(sizeof(double) * K), *y = malloc(sizeof(double) * K);
    for (int p = 0; p < K; p++) x[p] = p + 1;
    char title[64];
    for (int panel = 0; panel < 3; panel++) {
        snprintf(title, sizeof title, "step %.0f", steps[panel]);
        icl_fig_panel(f, 0, panel, title, "number of examples seen + 1", panel == 0 ? "normalised MSE" : NULL);
        for (int k = 0; k < nc; k++) {
            int n = 0;
            for (int p = 0; p < K; p++) y[p] = NAN;
            for (int r = 0; r < pos->n_rows; r++)
                if (icl_csv_num(pos, r, cs) == steps[panel] && (int)icl_csv_num(pos, r, cc) == k) {
                    int p = (int)icl_csv_num(pos, r, cp);
                    if (p >= 0 && p < K) {
                        y[p] = icl_csv_num(pos, r, cm);
                        n++;
                    }
                }
            char name[32];
            snprintf(name, sizeof name, "basis %d", k + 1);
            if (n) icl_fig_add_series(f, name, x, y, K);
        }
        if (est) {
            int ce = icl_csv_col(est, "estimator"), ec = icl_csv_col(est, "concept"), ep = icl_csv_col(est, "position"),
                em = icl_csv_col(est, "mse");
            for (size_t e = 0; e < sizeof ESTIMATORS / sizeof ESTIMATORS[0]; e++) {
                for (int p = 0; p < K; p++) y[p] = NAN;
                for (int r = 0; r < est->n_rows; r++)
                    if (!strcmp(icl_csv_str(est, r, ce), ESTIMATORS[e].name) && icl_csv_num(est, r, ec) == -1) {
                        int p = (int)icl_csv_num(est, r, ep);
                        if (p >= 0 && p < K) y[p] = icl_csv_num(est, r, em);
                    }
                int s = icl_fig_add_series(f, ESTIMATORS[e].label, x, y, K);
                icl_fig_series_dash(f, s, ICL_DASHED);
                icl_fig_series_color(f, s, e == 0 ? 0x000000 : e == 1 ? 0x777777 : 0xBBBBBB);
            }
        }
        icl_fig_set_ylim(f, 0, 1.5);
    }
    free(x);
    free(y);
    char path[4400];
    snprintf(path, sizeof path, "%s/mse_by_position.png", dir);
    int r = icl_fig_save(f, path, 1400, 460, err);
    snprintf(path, sizeof path, "%s/mse_by_position.svg", dir);
    if (!r) r = icl_fig_save(f, path, 1400, 460, err);
    icl_fig_free(f);
    return r;
}

static int fig_train_loss(const char *dir, const icl_csv *tr, icl_err *err) {
    int cs = icl_csv_col(tr, "step"), cl = icl_csv_col(tr, "loss_norm");
    if (cs < 0 || cl < 0) return icl_errf(err, "train.csv lacks its columns");
    if (tr->n_rows == 0) return 0;
    double *x = malloc(sizeof(double) * tr->n_rows), *y = malloc(sizeof(double) * tr->n_rows);
    double *sm = malloc(sizeof(double) * tr->n_rows);
    double avg = NAN;
    for (int r = 0; r < tr->n_rows; r++) {
        x[r] = icl_csv_num(tr, r, cs);
        y[r] = icl_csv_num(tr, r, cl);
        avg = isnan(avg) ? y[r] : 0.95 * avg + 0.05 * y[r];
        sm[r] = avg;
    }
    icl_fig *f = icl_fig_line("Training loss", "training step", "normalised MSE");
    icl_fig_set_logx(f, 1);
    int s = icl_fig_add_series(f, "per step", x, y, tr->n_rows);
    icl_fig_series_color(f, s, 0xBBBBBB);
    icl_fig_add_series(f, "smoothed", x, sm, tr->n_rows);
    free(x);
    free(y);
    free(sm);
    return save_both(f, dir, "train_loss", err);
}

int icl_run_figures(const char *run_dir, icl_err *err) {
    char path[4200], dir[4200];
    snprintf(dir, sizeof dir, "%s/figures", run_dir);
    if (icl_mkdirs(dir, err)) return -1;
    icl_csv ev = {0}, pos = {0}, est = {0}, tr = {0};
    int have_est;
    snprintf(path, sizeof path, "%s/eval.csv", run_dir);
    if (icl_csv_read(&ev, path, err)) return -1;
    snprintf(path, sizeof path, "%s/eval_positions.csv", run_dir);
    if (icl_csv_read(&pos, path, err)) {
        icl_csv_free(&ev);
        return -1;
    }
    snprintf(path, sizeof path, "%s/estimators.csv", run_dir);
    have_est = icl_csv_read(&est, path, NULL) == 0;
    snprintf(path, sizeof path, "%s/train.csv", run_dir);
    int r = icl_csv_read(&tr, path, err);
    if (!r) r = fig_mse_by_concept(dir, &ev, have_est ? &est : NULL, err);
    if (!r) r = fig_mse_by_position(dir, &pos, have_est ? &est : NULL, err);
    if (!r) r = fig_train_loss(dir, &tr, err);
    icl_csv_free(&ev);
    icl_csv_free(&pos);
    icl_csv_free(&est);
    icl_csv_free(&tr);
    return r;
}
