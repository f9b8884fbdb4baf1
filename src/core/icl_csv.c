/* CSV reading for iclab's own metric files (see icl_csv.h). */
#include "iclab/icl_csv.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"

int icl_csv_read(icl_csv *t, const char *path, icl_err *err) {
    memset(t, 0, sizeof *t);
    size_t n;
    if (icl_read_file(path, &t->buf, &n, err)) return -1;
    /* count lines and the header's fields */
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += t->buf[i] == '\n';
    if (n && t->buf[n - 1] != '\n') lines++;
    if (lines == 0) {
        icl_csv_free(t);
        return icl_errf(err, "%s is empty", path);
    }
    int cols = 1;
    for (char *p = t->buf; *p && *p != '\n'; p++) cols += *p == ',';
    t->n_cols = cols;
    t->header = malloc(sizeof(char *) * cols);
    t->cells = malloc(sizeof(char *) * cols * (lines ? lines : 1));
    if (!t->header || !t->cells) {
        icl_csv_free(t);
        return icl_errf(err, "out of memory reading %s", path);
    }
    char *p = t->buf;
    int line = 0;
    while (*p) {
        char *end = strchr(p, '\n');
        if (end) *end = 0;
        if (*p) { /* skip blank lines */
            char **dst = line == 0 ? t->header : t->cells + (size_t)t->n_rows * cols;
            int f = 0;
            for (char *q = p;; q++) {
                if (*q == ',' || *q == 0 || *q == '\r') {
                    int last = *q != ',';
                    *q = 0;
                    if (f < cols) dst[f] = p;
                    f++;
                    p = q + 1;
                    if (last) break;
                }
            }
            if (f != cols) {
                int ln = line + 1;
                icl_csv_free(t);
                return icl_errf(err, "%s line %d: %d fields, the header has %d", path, ln, f, cols);
            }
            if (line > 0) t->n_rows++;
            line++;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

void icl_csv_free(icl_csv *t) {
    free(t->header);
    free(t->cells);
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int icl_csv_col(const icl_csv *t, const char *name) {
    for (int i = 0; i < t->n_cols; i++)
        if (!strcmp(t->header[i], name)) return i;
    return -1;
}

const char *icl_csv_str(const icl_csv *t, int row, int col) {
    if (row < 0 || row >= t->n_rows || col < 0 || col >= t->n_cols) return "";
    return t->cells[(size_t)row * t->n_cols + col];
}

double icl_csv_num(const icl_csv *t, int row, int col) {
    const char *s = icl_csv_str(t, row, col);
    char *end;
    double v = strtod(s, &end);
    return (*s && !*end) ? v : NAN;
}
