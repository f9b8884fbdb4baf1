/* `iclab td STATES.npy LABELS.npy`: task decodability (paper §2) of any representations, e.g. what
 * `iclab capture` wrote for a pretrained LM: per layer, leave-one-out kNN TD per label and overall,
 * the chance level, and a held-out linear probe; a table on stdout and optionally a CSV. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_file.h"
#include "iclab/icl_decode.h"
#include "iclab/icl_knn.h"
#include "iclab/icl_npy.h"

/* Label names from LABELS.txt beside LABELS.npy ("x_labels.npy" -> "x_labels.txt"), one per line;
 * missing file or lines: "label N". names[i] must be freed. */
static void read_names(const char *labels_path, char **names, int n) {
    size_t len = strlen(labels_path);
    char *txt = malloc(len + 5);
    FILE *f = NULL;
    if (txt && len > 4 && !strcmp(labels_path + len - 4, ".npy")) {
        sprintf(txt, "%.*s.txt", (int)(len - 4), labels_path);
        f = fopen(txt, "r");
    }
    char line[256];
    for (int i = 0; i < n; i++) {
        if (f && fgets(line, sizeof line, f)) line[strcspn(line, "\r\n")] = 0;
        else snprintf(line, sizeof line, "label %d", i);
        names[i] = strdup(line);
    }
    if (f) fclose(f);
    free(txt);
}

int cmd_td(int argc, char **argv) {
    icl_err err;
    const char *states_path = NULL, *labels_path = NULL, *out = NULL;
    int k = 10, probe = 1;
    icl_metric metric = ICL_METRIC_EUCLIDEAN;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab td STATES.npy LABELS.npy [--k 10] [--metric euclidean|cosine] [--no-probe] [-o OUT.csv]\n\n"
                   "Task decodability (paper §2) of representations: STATES is float32 (layers, N, d) or (N, d),\n"
                   "LABELS int32/int64 (N) (as `iclab capture` writes them; names from LABELS.txt beside it). For each\n"
                   "layer: leave-one-out k-nearest-neighbour majority vote (a point is never its own neighbour; ties\n"
                   "to the lower index and the smaller label), per label and overall, with the chance level, and a\n"
                   "held-out linear probe (multinomial logistic regression on half the points). Prints a table;\n"
                   "-o also writes it as CSV (layer,concept,name,td,chance,probe_acc; concept -1 = all).\n");
            return 0;
        }
        if (!strcmp(a, "--no-probe")) probe = 0;
        else if (!strcmp(a, "-o")) {
            if (i + 1 >= argc) {
                icl_errf(&err, "-o needs a value");
                return cli_fail("td", &err);
            }
            out = argv[++i];
        } else if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
            int bad = !v;
            if (!bad && !strcmp(flag, "k")) bad = cli_parse_int(flag, v, 1, 100000, &k, &err);
            else if (!bad && !strcmp(flag, "metric")) bad = icl_metric_parse(v, &metric, &err);
            else if (!bad && !strcmp(flag, "out")) out = v;
            else if (!bad) bad = icl_errf(&err, "unknown option --%s (see iclab td --help)", flag);
            if (bad) return cli_fail("td", &err);
        } else if (!states_path) states_path = a;
        else if (!labels_path) labels_path = a;
        else {
            icl_errf(&err, "unexpected argument '%s'", a);
            return cli_fail("td", &err);
        }
    }
    if (!states_path || !labels_path) {
        icl_errf(&err, "usage: iclab td STATES.npy LABELS.npy (see --help)");
        return cli_fail("td", &err);
    }
    icl_npy S = {0}, Lb = {0};
    int r = icl_npy_read_as(states_path, ICL_NPY_F32, &S, &err);
    if (!r) r = icl_npy_read_as(labels_path, ICL_NPY_I32, &Lb, &err);
    int L = 0, N = 0, d = 0, nc = 0;
    if (!r) {
        if (S.ndim == 2) L = 1, N = (int)S.shape[0], d = (int)S.shape[1];
        else if (S.ndim == 3) L = (int)S.shape[0], N = (int)S.shape[1], d = (int)S.shape[2];
        else r = icl_errf(&err, "%s: expected a (layers, N, d) or (N, d) array, got %d dimensions", states_path, S.ndim);
    }
    if (!r && (Lb.ndim != 1 || Lb.shape[0] != N))
        r = icl_errf(&err, "%s has %lld labels for %d points", labels_path, (long long)Lb.n, N);
    const int32_t *lab = Lb.data;
    for (int i = 0; !r && i < N; i++) {
        if (lab[i] < 0 || lab[i] > 100000) r = icl_errf(&err, "%s: label %d of point %d is out of range", labels_path, lab[i], i);
        else if (lab[i] + 1 > nc) nc = lab[i] + 1;
    }
    int *labels = r ? NULL : malloc(sizeof(int) * N);
    char **names = r ? NULL : calloc((size_t)nc, sizeof(char *));
    double *td = r ? NULL : malloc(sizeof(double) * (nc + 1)), *acc = r ? NULL : malloc(sizeof(double) * (nc + 1));
    if (!r && (!labels || !names || !td || !acc)) r = icl_errf(&err, "out of memory");
    if (!r) {
        for (int i = 0; i < N; i++) labels[i] = lab[i];
        read_names(labels_path, names, nc);
    }
    icl_afile csv;
    int have_csv = 0;
    if (!r && out) {
        r = icl_afile_open(&csv, out, &err);
        have_csv = !r;
        if (!r) r = icl_afile_printf(&csv, &err, "layer,concept,name,td,chance,probe_acc\n");
    }
    if (!r) printf("%-6s %-24s %8s %8s %10s\n", "layer", "label", "td", "chance", "probe_acc");
    for (int l = 0; !r && l < L; l++) {
        const float *X = (const float *)S.data + (size_t)l * N * d;
        icl_td_stats st;
        r = icl_td(X, labels, N, d, nc, k, metric, NULL, td, &st, &err);
        if (r) icl_err_prefix(&err, "layer %d: ", l);
        td[nc] = r ? 0 : st.overall;
        for (int c = 0; c <= nc; c++) acc[c] = NAN;
        if (!r && probe && icl_probe_per_class(X, labels, N, d, nc, 1, acc, &err)) icl_err_prefix(&err, "layer %d: ", l), r = -1;
        for (int c = 0; !r && c <= nc; c++) {
            int id = c == nc ? -1 : c;
            const char *name = c == nc ? "all" : names[c];
            printf("%-6d %-24s %8.4f %8.4f %10.4f\n", l, name, td[c], st.chance_uniform, acc[c]);
            if (have_csv)
                r = icl_afile_printf(&csv, &err, "%d,%d,%s,%.6g,%.6g,%.6g\n", l, id, name, td[c], st.chance_uniform, acc[c]);
        }
    }
    if (have_csv) {
        if (!r) r = icl_afile_commit(&csv, &err);
        else icl_afile_abort(&csv);
    }
    for (int c = 0; names && c < nc; c++) free(names[c]);
    free(names), free(labels), free(td), free(acc);
    icl_npy_free(&S);
    icl_npy_free(&Lb);
    return r ? cli_fail("td", &err) : 0;
}
