/* One figure of the loss curves of two runs of `iclab train` (fp32 and --bf16): each run's held-out
 * normalised MSE over all concepts (eval.csv, concept -1) solid, and its training loss (train.csv's
 * loss_norm, a running mean over 10 logged rows) dashed. Prints each run's final values.
 * Usage: build/bench/plot_bf16_curves FP32_RUN BF16_RUN OUT.png [OUT.svg] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_plot.h"

/* Reads column ycol of a CSV (header skipped) into x (column 0) and y, keeping rows whose column 1
 * equals `sel` when sel_col is set. Returns the row count. */
static size_t read_csv(const char *path, int ycol, int sel_col, double sel, double **x, double **y) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    size_t n = 0, cap = 1024;
    *x = malloc(sizeof(double) * cap), *y = malloc(sizeof(double) * cap);
    if (!fgets(line, sizeof line, f)) { fclose(f); return 0; }
    while (fgets(line, sizeof line, f)) {
        double v[8] = {0};
        int k = 0;
        for (char *p = line; k < 8 && *p; k++) {
            v[k] = strtod(p, NULL);
            p = strchr(p, ',');
            if (!p) { k++; break; }
            p++;
        }
        if (sel_col && v[1] != sel) continue;
        if (n == cap) cap *= 2, *x = realloc(*x, sizeof(double) * cap), *y = realloc(*y, sizeof(double) * cap);
        (*x)[n] = v[0], (*y)[n] = v[ycol], n++;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: plot_bf16_curves FP32_RUN BF16_RUN OUT.png [OUT.svg]\n");
        return 2;
    }
    icl_fig *fig = icl_fig_line("Demo preset: fp32 vs bf16 matrix products", "step", "normalised MSE");
    icl_fig_set_logy(fig, 1);
    const char *names[2] = {"fp32", "bf16"};
    for (int r = 0; r < 2; r++) {
        char path[1024], label[64];
        double *x, *y;
        snprintf(path, sizeof path, "%s/eval.csv", argv[1 + r]);
        size_t n = read_csv(path, 3, 1, -1, &x, &y);
        if (!n) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        snprintf(label, sizeof label, "%s held-out", names[r]);
        int s = icl_fig_add_series(fig, label, x, y, n);
        icl_fig_series_color(fig, s, r ? 0xD55E00 : 0x0072B2);
        printf("%s: final held-out MSE %.4f at step %.0f\n", names[r], y[n - 1], x[n - 1]);
        free(x), free(y);
        snprintf(path, sizeof path, "%s/train.csv", argv[1 + r]);
        n = read_csv(path, 2, 0, 0, &x, &y);
        if (!n) { fprintf(stderr, "cannot read %s\n", path); return 1; }
        double *sm = malloc(sizeof(double) * n), acc = 0, last = 0;
        for (size_t i = 0; i < n; i++) { /* running mean over the last 10 logged rows */
            acc += y[i];
            if (i >= 10) acc -= y[i - 10];
            sm[i] = acc / (i + 1 < 10 ? i + 1 : 10);
        }
        for (size_t i = n >= 50 ? n - 50 : 0; i < n; i++) last += y[i];
        printf("%s: training loss (normalised) mean of the last %zu logged rows %.4f\n", names[r], n >= 50 ? (size_t)50 : n,
               last / (n >= 50 ? 50 : n));
        snprintf(label, sizeof label, "%s training", names[r]);
        s = icl_fig_add_series(fig, label, x, sm, n);
        icl_fig_series_color(fig, s, r ? 0xD55E00 : 0x0072B2);
        icl_fig_series_dash(fig, s, ICL_DASHED);
        free(x), free(y), free(sm);
    }
    icl_err err;
    for (int i = 3; i < argc; i++)
        if (icl_fig_save(fig, argv[i], 0, 0, &err)) {
            fprintf(stderr, "%s: %s\n", argv[i], err.msg);
            return 1;
        }
    icl_fig_free(fig);
    return 0;
}
