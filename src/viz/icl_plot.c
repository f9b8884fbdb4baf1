/* Figures: the building calls of icl_plot.h (copying and checking data into an icl_fig), the
 * checks done before drawing, and output to PNG / SVG / PDF files or memory buffers. Layout and
 * drawing live in icl_plot_render.c. */
#include "icl_plot_internal.h"
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "iclab/icl_file.h"
#include "iclab/icl_utf8.h"

/* ---- small helpers -------------------------------------------------------------------------- */

/* Remembers the first building error in the figure; returns -1. */
__attribute__((format(printf, 2, 3))) static int fig_fail(icl_fig *f, const char *fmt, ...) {
    if (f && !f->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(f->err, sizeof f->err, fmt, ap);
        va_end(ap);
        if (!f->err[0]) snprintf(f->err, sizeof f->err, "figure error");
    }
    return -1;
}


/* A malloc'd copy of s with invalid UTF-8 bytes and control characters replaced by '?' (cairo
 * refuses invalid UTF-8, and a stray newline would break a one-line label). NULL stays NULL;
 * *oom is set when malloc fails. */
static char *clean_dup(const char *s, int *oom) {
    if (!s) return NULL;
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (!d) {
        *oom = 1;
        return NULL;
    }
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, j = 0;
    while (i < n) {
        int k = icl_utf8_len(u + i);
        if (k == 0) {
            d[j++] = '?';
            i++;
        } else if (k == 1 && (u[i] < 0x20 || u[i] == 0x7F)) {
            d[j++] = u[i] == '\t' || u[i] == '\n' ? ' ' : '?';
            i++;
        } else {
            memcpy(d + j, u + i, (size_t)k);
            i += (size_t)k;
            j += (size_t)k;
        }
    }
    d[j] = 0;
    return d;
}

/* Replaces *dst by a cleaned copy of s (NULL s: leaves *dst alone). Returns 0 or -1. */
static int set_text(icl_fig *f, char **dst, const char *s) {
    if (!s) return 0;
    int oom = 0;
    char *c = clean_dup(s, &oom);
    if (oom) return fig_fail(f, "out of memory");
    free(*dst);
    *dst = c;
    return 0;
}

/* Grows an array to hold at least need elements of size el. Returns 0 or -1. */
static int grow(void **arr, int *cap, int need, size_t el) {
    if (need <= *cap) return 0;
    int nc = *cap ? *cap * 2 : 4;
    while (nc < need) nc *= 2;
    void *p = realloc(*arr, (size_t)nc * el);
    if (!p) return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

/* Copies a list of k strings (NULL entries allowed) into a new cleaned array. */
static int dup_list(icl_fig *f, char ***dst, const char *const *src, int k) {
    char **d = calloc((size_t)k, sizeof *d);
    if (!d) return fig_fail(f, "out of memory");
    int oom = 0;
    for (int i = 0; i < k; i++) d[i] = clean_dup(src[i], &oom);
    if (oom) {
        for (int i = 0; i < k; i++) free(d[i]);
        free(d);
        return fig_fail(f, "out of memory");
    }
    *dst = d;
    return 0;
}

static void free_list(char **l, int k) {
    if (!l) return;
    for (int i = 0; i < k; i++) free(l[i]);
    free(l);
}

static double *dup_doubles(const double *a, size_t n) {
    double *d = malloc(n * sizeof *d);
    if (d) memcpy(d, a, n * sizeof *d);
    return d;
}

/* ---- constructors ---------------------------------------------------------------------------- */

static void panel_init(plt_panel *p) {
    memset(p, 0, sizeof *p);
    p->xlim[0] = p->xlim[1] = p->ylim[0] = p->ylim[1] = NAN;
    p->vmin = p->vmax = NAN;
    p->equal = -1;
    p->ticks = -1;
    p->legend = ICL_LEGEND_AUTO;
    p->cmap = ICL_CMAP_VIRIDIS;
}

static icl_fig *fig_new(int kind, const char *title, int rows, int cols) {
    icl_fig *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->kind = kind;
    f->rows = rows;
    f->cols = cols;
    f->scale = 1.0;
    f->legend = ICL_LEGEND_AUTO;
    f->p = calloc((size_t)rows * (size_t)cols, sizeof *f->p);
    if (!f->p) {
        free(f);
        return NULL;
    }
    for (int i = 0; i < rows * cols; i++) panel_init(&f->p[i]);
    int oom = 0;
    f->title = clean_dup(title, &oom);
    if (oom) {
        icl_fig_free(f);
        return NULL;
    }
    return f;
}

static icl_fig *fig_single(int kind, const char *title, const char *xlabel, const char *ylabel) {
    icl_fig *f = fig_new(kind, title, 1, 1);
    if (!f) return NULL;
    int oom = 0;
    f->p[0].title = clean_dup(title, &oom);
    f->p[0].xlabel = clean_dup(xlabel, &oom);
    f->p[0].ylabel = clean_dup(ylabel, &oom);
    if (oom) {
        icl_fig_free(f);
        return NULL;
    }
    return f;
}

icl_fig *icl_fig_line(const char *title, const char *xlabel, const char *ylabel) {
    return fig_single(PLT_LINE, title, xlabel, ylabel);
}

icl_fig *icl_fig_scatter(const char *title, const char *xlabel, const char *ylabel) {
    return fig_single(PLT_SCATTER, title, xlabel, ylabel);
}

icl_fig *icl_fig_heatmap(const char *title, const char *xlabel, const char *ylabel, const double *z, int rows,
                         int cols) {
    icl_fig *f = fig_single(PLT_HEAT, title, xlabel, ylabel);
    if (f) icl_fig_set_matrix(f, z, rows, cols); /* an error is remembered for save */
    return f;
}

icl_fig *icl_fig_bars(const char *title, const char *xlabel, const char *ylabel, const char *const *groups,
                      int n_groups) {
    icl_fig *f = fig_single(PLT_BARS, title, xlabel, ylabel);
    if (!f) return NULL;
    /* errors are remembered for save, like a heatmap's */
    if (!groups) fig_fail(f, "bars: group labels are NULL");
    else if (n_groups < 1 || n_groups > PLT_MAX_GROUPS)
        fig_fail(f, "bars: %d groups; n_groups must be 1..%d", n_groups, PLT_MAX_GROUPS);
    else if (!dup_list(f, &f->p[0].groups, groups, n_groups))
        f->p[0].ngroups = n_groups;
    return f;
}

icl_fig *icl_fig_grid(const char *title, int rows, int cols) {
    if (rows < 1 || cols < 1 || rows > 64 || cols > 64) {
        /* Keep the NULL-only-on-OOM promise: return a 1x1 figure that carries the error. */
        icl_fig *f = fig_new(PLT_GRID, title, 1, 1);
        if (f) fig_fail(f, "grid of %d x %d panels: rows and cols must be 1..64", rows, cols);
        return f;
    }
    return fig_new(PLT_GRID, title, rows, cols);
}

static void panel_free(plt_panel *p) {
    free(p->title);
    free(p->xlabel);
    free(p->ylabel);
    for (int i = 0; i < p->nser; i++) {
        plt_series *s = &p->ser[i];
        free(s->name);
        free(s->x);
        free(s->y);
        free(s->lo);
        free(s->hi);
        free(s->err);
    }
    free(p->ser);
    for (int i = 0; i < p->nhl; i++) free(p->hl[i].label);
    for (int i = 0; i < p->nvl; i++) free(p->vl[i].label);
    for (int i = 0; i < p->ntx; i++) free(p->tx[i].label);
    free(p->hl);
    free(p->vl);
    free(p->tx);
    free(p->px);
    free(p->py);
    free(p->pc);
    free(p->z);
    free_list(p->rowlab, p->zr);
    free_list(p->collab, p->zc);
    free(p->annot);
    free(p->cblabel);
    free_list(p->groups, p->ngroups);
}

void icl_fig_free(icl_fig *f) {
    if (!f) return;
    if (f->p)
        for (int i = 0; i < f->rows * f->cols; i++) panel_free(&f->p[i]);
    free(f->p);
    free(f->title);
    free_list(f->rowhdr, f->rows);
    free_list(f->colhdr, f->cols);
    free_list(f->classes, f->nclasses);
    free(f);
}

/* ---- panels --------------------------------------------------------------------------------- */

static plt_panel *cur_panel(icl_fig *f) { return &f->p[f->cur]; }

int icl_fig_panel(icl_fig *f, int row, int col, const char *title, const char *xlabel, const char *ylabel) {
    if (!f) return -1;
    if (row < 0 || col < 0 || row >= f->rows || col >= f->cols)
        return fig_fail(f, "panel (%d, %d) outside the %d x %d grid", row, col, f->rows, f->cols);
    f->cur = row * f->cols + col;
    plt_panel *p = cur_panel(f);
    if (set_text(f, &p->title, title) || set_text(f, &p->xlabel, xlabel) || set_text(f, &p->ylabel, ylabel))
        return -1;
    return 0;
}

int icl_fig_grid_headers(icl_fig *f, const char *const *row_headers, const char *const *col_headers) {
    if (!f) return -1;
    if (row_headers) {
        char **l;
        if (dup_list(f, &l, row_headers, f->rows)) return -1;
        free_list(f->rowhdr, f->rows);
        f->rowhdr = l;
    }
    if (col_headers) {
        char **l;
        if (dup_list(f, &l, col_headers, f->cols)) return -1;
        free_list(f->colhdr, f->cols);
        f->colhdr = l;
    }
    return 0;
}

/* ---- line plots ------------------------------------------------------------------------------ */

/* Largest number of points one series or one add_points call may hold (keeps sizes sane). */
#define PLT_MAX_N ((size_t)1 << 28)

/* Appends a series that takes ownership of x and y (both malloc'd, n entries). */
static int push_series(icl_fig *f, const char *name, double *x, double *y, size_t n) {
    plt_panel *p = cur_panel(f);
    int oom = 0;
    char *nm = clean_dup(name, &oom);
    if (oom || grow((void **)&p->ser, &p->capser, p->nser + 1, sizeof *p->ser)) {
        free(nm);
        free(x);
        free(y);
        return fig_fail(f, "out of memory");
    }
    plt_series *s = &p->ser[p->nser];
    memset(s, 0, sizeof *s);
    s->name = nm;
    s->x = x;
    s->y = y;
    s->n = n;
    s->dash = ICL_SOLID;
    return p->nser++;
}

/* Checks what every add-series call shares; returns 0 or -1. */
static int series_args(icl_fig *f, const void *y, size_t n) {
    if (!y) return fig_fail(f, "series: y is NULL");
    if (n == 0) return fig_fail(f, "series: no points (n = 0)");
    if (n > PLT_MAX_N) return fig_fail(f, "series: %zu points is too many", n);
    if (cur_panel(f)->z) return fig_fail(f, "series: the panel already holds a heatmap");
    return 0;
}

int icl_fig_add_series(icl_fig *f, const char *name, const double *x, const double *y, size_t n) {
    if (!f) return -1;
    if (series_args(f, y, n)) return -1;
    double *xd = malloc(n * sizeof *xd), *yd = dup_doubles(y, n);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return fig_fail(f, "out of memory");
    }
    for (size_t i = 0; i < n; i++) xd[i] = x ? x[i] : (double)i;
    return push_series(f, name, xd, yd, n);
}

int icl_fig_add_series_f(icl_fig *f, const char *name, const float *x, const float *y, size_t n) {
    if (!f) return -1;
    if (series_args(f, y, n)) return -1;
    double *xd = malloc(n * sizeof *xd), *yd = malloc(n * sizeof *yd);
    if (!xd || !yd) {
        free(xd);
        free(yd);
        return fig_fail(f, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        xd[i] = x ? (double)x[i] : (double)i;
        yd[i] = (double)y[i];
    }
    return push_series(f, name, xd, yd, n);
}

static plt_series *get_series(icl_fig *f, int s) {
    plt_panel *p = cur_panel(f);
    if (s < 0 || s >= p->nser) {
        fig_fail(f, "series %d does not exist in the selected panel (it has %d)", s, p->nser);
        return NULL;
    }
    return &p->ser[s];
}

int icl_fig_series_band(icl_fig *f, int series, const double *lo, const double *hi) {
    if (!f) return -1;
    plt_series *s = get_series(f, series);
    if (!s) return -1;
    if (!lo || !hi) return fig_fail(f, "series band: lo or hi is NULL");
    if (s->bar) return fig_fail(f, "series band: series %d is a series of bars (use errs)", series);
    double *l = dup_doubles(lo, s->n), *h = dup_doubles(hi, s->n);
    if (!l || !h) {
        free(l);
        free(h);
        return fig_fail(f, "out of memory");
    }
    free(s->lo);
    free(s->hi);
    s->lo = l;
    s->hi = h;
    return 0;
}

int icl_fig_series_markers(icl_fig *f, int series, int on) {
    if (!f) return -1;
    plt_series *s = get_series(f, series);
    if (!s) return -1;
    s->markers = on != 0;
    return 0;
}

int icl_fig_series_dash(icl_fig *f, int series, icl_dash dash) {
    if (!f) return -1;
    plt_series *s = get_series(f, series);
    if (!s) return -1;
    if (dash != ICL_SOLID && dash != ICL_DASHED && dash != ICL_DOTTED) return fig_fail(f, "unknown dash style %d", (int)dash);
    s->dash = dash;
    return 0;
}

int icl_fig_series_color(icl_fig *f, int series, unsigned rgb) {
    if (!f) return -1;
    plt_series *s = get_series(f, series);
    if (!s) return -1;
    if (rgb > 0xFFFFFFu) return fig_fail(f, "colour 0x%X is not 0xRRGGBB", rgb);
    s->has_rgb = 1;
    s->rgb = rgb;
    return 0;
}

/* Appends a reference line or text note to one of the panel's mark lists. */
static int push_mark(icl_fig *f, plt_mark **arr, int *n, int *cap, double v, double w, const char *label,
                     const char *what) {
    if (!plt_ok(v, 0) || !plt_ok(w, 0)) return fig_fail(f, "%s: position is not a finite number", what);
    int oom = 0;
    char *l = clean_dup(label, &oom);
    if (oom || grow((void **)arr, cap, *n + 1, sizeof **arr)) {
        free(l);
        return fig_fail(f, "out of memory");
    }
    (*arr)[*n] = (plt_mark){v, w, l};
    (*n)++;
    return 0;
}

int icl_fig_add_hline(icl_fig *f, double y, const char *label) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    return push_mark(f, &p->hl, &p->nhl, &p->caphl, y, 0, label, "hline");
}

int icl_fig_add_vline(icl_fig *f, double x, const char *label) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    return push_mark(f, &p->vl, &p->nvl, &p->capvl, x, 0, label, "vline");
}

int icl_fig_add_text(icl_fig *f, double x, double y, const char *text) {
    if (!f) return -1;
    if (!text) return fig_fail(f, "text: NULL string");
    plt_panel *p = cur_panel(f);
    return push_mark(f, &p->tx, &p->ntx, &p->captx, x, y, text, "text");
}

int icl_fig_set_logx(icl_fig *f, int on) {
    if (!f) return -1;
    cur_panel(f)->logx = on != 0;
    return 0;
}

int icl_fig_set_logy(icl_fig *f, int on) {
    if (!f) return -1;
    cur_panel(f)->logy = on != 0;
    return 0;
}

/* Checks a pair of limits (NaN = automatic) against the axis type. */
static int check_lim(icl_fig *f, const double *lim, int log, const char *axis) {
    double lo = lim[0], hi = lim[1];
    if ((lo == lo && !plt_ok(lo, 0)) || (hi == hi && !plt_ok(hi, 0)))
        return fig_fail(f, "%s limits must be finite or NaN", axis);
    if (lo == lo && hi == hi && !(lo < hi)) return fig_fail(f, "%s limits: lo %g must be < hi %g", axis, lo, hi);
    if (log && ((lo == lo && lo <= 0) || (hi == hi && hi <= 0)))
        return fig_fail(f, "%s limits must be > 0 on a log axis", axis);
    return 0;
}

int icl_fig_set_xlim(icl_fig *f, double lo, double hi) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    double lim[2] = {lo, hi};
    if (check_lim(f, lim, p->logx, "x")) return -1;
    p->xlim[0] = lo;
    p->xlim[1] = hi;
    return 0;
}

int icl_fig_set_ylim(icl_fig *f, double lo, double hi) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    double lim[2] = {lo, hi};
    if (check_lim(f, lim, p->logy, "y")) return -1;
    p->ylim[0] = lo;
    p->ylim[1] = hi;
    return 0;
}

int icl_fig_set_legend(icl_fig *f, icl_legend where) {
    if (!f) return -1;
    if ((int)where < ICL_LEGEND_AUTO || (int)where > ICL_LEGEND_OUTSIDE)
        return fig_fail(f, "unknown legend position %d", (int)where);
    if (f->kind == PLT_GRID) f->legend = where;
    else cur_panel(f)->legend = where;
    return 0;
}

/* ---- bar charts ------------------------------------------------------------------------------- */

int icl_fig_add_bars(icl_fig *f, const char *name, const double *values, const double *errs, int n_groups) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    if (!values) return fig_fail(f, "bars: values are NULL");
    if (p->z) return fig_fail(f, "bars: the panel already holds a heatmap");
    if (f->kind != PLT_BARS && f->kind != PLT_GRID)
        return fig_fail(f, "bars: the figure is not a bar chart (make it with icl_fig_bars)");
    if (p->ngroups > 0 && n_groups != p->ngroups)
        return fig_fail(f, "bars: %d values given for a chart of %d groups", n_groups, p->ngroups);
    if (n_groups < 1 || n_groups > PLT_MAX_GROUPS)
        return fig_fail(f, "bars: %d groups; n_groups must be 1..%d", n_groups, PLT_MAX_GROUPS);
    int nb = 0;
    for (int i = 0; i < p->nser; i++) nb += p->ser[i].bar;
    if (nb >= PLT_MAX_BARSER) return fig_fail(f, "bars: more than %d series of bars in one panel", PLT_MAX_BARSER);
    size_t n = (size_t)n_groups;
    double *xd = malloc(n * sizeof *xd), *yd = dup_doubles(values, n), *ed = errs ? dup_doubles(errs, n) : NULL;
    if (!xd || !yd || (errs && !ed)) {
        free(xd);
        free(yd);
        free(ed);
        return fig_fail(f, "out of memory");
    }
    for (size_t i = 0; i < n; i++) xd[i] = (double)i;
    int s = push_series(f, name, xd, yd, n);
    if (s < 0) {
        free(ed);
        return -1;
    }
    p->ser[s].bar = 1;
    p->ser[s].err = ed;
    p->ngroups = n_groups; /* a grid panel takes its group count from its first bars */
    return s;
}

/* ---- scatter ----------------------------------------------------------------------------------- */

/* Largest class index accepted (keeps the legend and marker tables bounded). */
#define PLT_MAX_CLASS 100000

/* Appends n points; exactly one of (x, y) or xy is given. */
static int push_points(icl_fig *f, const double *x, const double *y, const float *xy, const int *cls, size_t n) {
    plt_panel *p = cur_panel(f);
    if (n == 0) return fig_fail(f, "points: no points (n = 0)");
    if (n > PLT_MAX_N || p->np + n > PLT_MAX_N) return fig_fail(f, "points: too many points");
    if (p->z) return fig_fail(f, "points: the panel already holds a heatmap");
    if (cls)
        for (size_t i = 0; i < n; i++)
            if (cls[i] < 0 || cls[i] > PLT_MAX_CLASS)
                return fig_fail(f, "points: class %d of point %zu is outside 0..%d", cls[i], i, PLT_MAX_CLASS);
    size_t need = p->np + n;
    if (need > p->cappt) {
        size_t nc = p->cappt ? p->cappt : 64;
        while (nc < need) nc *= 2;
        double *nx = realloc(p->px, nc * sizeof *nx);
        if (nx) p->px = nx;
        double *ny = nx ? realloc(p->py, nc * sizeof *ny) : NULL;
        if (ny) p->py = ny;
        int *ncl = ny ? realloc(p->pc, nc * sizeof *ncl) : NULL;
        if (!ncl) return fig_fail(f, "out of memory");
        p->pc = ncl;
        p->cappt = nc;
    }
    for (size_t i = 0; i < n; i++) {
        p->px[p->np + i] = xy ? (double)xy[2 * i] : x[i];
        p->py[p->np + i] = xy ? (double)xy[2 * i + 1] : y[i];
        p->pc[p->np + i] = cls ? cls[i] : 0;
    }
    p->np = need;
    return 0;
}

int icl_fig_add_points(icl_fig *f, const double *x, const double *y, const int *cls, size_t n) {
    if (!f) return -1;
    if (!x || !y) return fig_fail(f, "points: x or y is NULL");
    return push_points(f, x, y, NULL, cls, n);
}

int icl_fig_add_points_xy(icl_fig *f, const float *xy, const int *cls, size_t n) {
    if (!f) return -1;
    if (!xy) return fig_fail(f, "points: xy is NULL");
    return push_points(f, NULL, NULL, xy, cls, n);
}

int icl_fig_set_classes(icl_fig *f, const char *const *names, int k) {
    if (!f) return -1;
    if (!names || k < 1 || k > PLT_MAX_CLASS + 1) return fig_fail(f, "classes: need 1..%d names", PLT_MAX_CLASS + 1);
    char **l;
    if (dup_list(f, &l, names, k)) return -1;
    free_list(f->classes, f->nclasses);
    f->classes = l;
    f->nclasses = k;
    return 0;
}

int icl_fig_set_marker_size(icl_fig *f, double r) {
    if (!f) return -1;
    if (!(r >= 0.25 && r <= 50)) return fig_fail(f, "marker radius %g px outside 0.25..50", r);
    cur_panel(f)->marker_r = r;
    return 0;
}

int icl_fig_set_equal_aspect(icl_fig *f, int on) {
    if (!f) return -1;
    cur_panel(f)->equal = on != 0;
    return 0;
}

int icl_fig_set_ticks(icl_fig *f, int on) {
    if (!f) return -1;
    cur_panel(f)->ticks = on != 0;
    return 0;
}

/* ---- heatmaps ---------------------------------------------------------------------------------- */

int icl_fig_set_matrix(icl_fig *f, const double *z, int rows, int cols) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    if (!z) return fig_fail(f, "heatmap: matrix is NULL");
    if (rows < 1 || cols < 1 || rows > 4096 || cols > 4096)
        return fig_fail(f, "heatmap: %d x %d matrix; rows and cols must be 1..4096", rows, cols);
    if (p->nser || p->np || p->ngroups) return fig_fail(f, "heatmap: the panel already holds series, points or bars");
    double *c = dup_doubles(z, (size_t)rows * (size_t)cols);
    if (!c) return fig_fail(f, "out of memory");
    free(p->z);
    if (p->zr != rows) {
        free_list(p->rowlab, p->zr);
        p->rowlab = NULL;
    }
    if (p->zc != cols) {
        free_list(p->collab, p->zc);
        p->collab = NULL;
    }
    p->z = c;
    p->zr = rows;
    p->zc = cols;
    return 0;
}

int icl_fig_heatmap_labels(icl_fig *f, const char *const *row_labels, const char *const *col_labels) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    if (!p->z) return fig_fail(f, "heatmap labels: the panel has no matrix yet");
    if (row_labels) {
        char **l;
        if (dup_list(f, &l, row_labels, p->zr)) return -1;
        free_list(p->rowlab, p->zr);
        p->rowlab = l;
    }
    if (col_labels) {
        char **l;
        if (dup_list(f, &l, col_labels, p->zc)) return -1;
        free_list(p->collab, p->zc);
        p->collab = l;
    }
    return 0;
}

int icl_fig_heatmap_cmap(icl_fig *f, icl_cmap cmap) {
    if (!f) return -1;
    if (cmap != ICL_CMAP_VIRIDIS && cmap != ICL_CMAP_DIVERGING) return fig_fail(f, "unknown colour map %d", (int)cmap);
    cur_panel(f)->cmap = cmap;
    return 0;
}

int icl_fig_heatmap_range(icl_fig *f, double vmin, double vmax) {
    if (!f) return -1;
    double lim[2] = {vmin, vmax};
    if (check_lim(f, lim, 0, "heatmap colour")) return -1;
    cur_panel(f)->vmin = vmin;
    cur_panel(f)->vmax = vmax;
    return 0;
}

/* 1 if fmt holds exactly one floating conversion (%[flags][width][.prec]{f,F,e,E,g,G}, width and
 * precision at most 2 digits) and otherwise only literal text and "%%". */
static int safe_float_format(const char *fmt) {
    int conv = 0;
    for (const char *s = fmt; *s; s++) {
        if (*s != '%') continue;
        s++;
        if (*s == '%') continue;
        while (*s && strchr("-+ #0", *s)) s++;
        for (int d = 0; *s >= '0' && *s <= '9'; s++)
            if (++d > 2) return 0;
        if (*s == '.') {
            s++;
            for (int d = 0; *s >= '0' && *s <= '9'; s++)
                if (++d > 2) return 0;
        }
        if (!*s || !strchr("fFeEgG", *s)) return 0;
        conv++;
    }
    return conv == 1;
}

int icl_fig_heatmap_annotate(icl_fig *f, const char *fmt) {
    if (!f) return -1;
    plt_panel *p = cur_panel(f);
    if (fmt && (strlen(fmt) > 32 || !safe_float_format(fmt)))
        return fig_fail(f, "heatmap annotation format \"%.40s\" must hold exactly one %%f/%%e/%%g conversion", fmt);
    free(p->annot);
    p->annot = NULL;
    return fmt ? set_text(f, &p->annot, fmt) : 0;
}

int icl_fig_colorbar_label(icl_fig *f, const char *label) {
    if (!f) return -1;
    return set_text(f, &cur_panel(f)->cblabel, label);
}

int icl_fig_set_scale(icl_fig *f, double scale) {
    if (!f) return -1;
    if (!(scale >= 0.25 && scale <= 8)) return fig_fail(f, "scale %g outside 0.25..8", scale);
    f->scale = scale;
    return 0;
}

const char *icl_fig_error(const icl_fig *f) {
    if (!f) return "figure is NULL";
    return f->err[0] ? f->err : NULL;
}

void icl_fig_default_size(const icl_fig *f, int *w, int *h) {
    int dw = 800, dh = 500;
    if (f) plt_default_size(f, &dw, &dh);
    if (w) *w = dw;
    if (h) *h = dh;
}

/* ---- checks before drawing --------------------------------------------------------------------- */

static int fig_check(const icl_fig *f, icl_err *err) {
    if (!f) return icl_errf(err, "figure is NULL (out of memory?)");
    if (f->err[0]) return icl_errf(err, "figure: %s", f->err);
    int any = 0;
    for (int i = 0; i < f->rows * f->cols; i++) {
        const plt_panel *p = &f->p[i];
        if (p->nser || p->np || p->z) any = 1;
        const char *where = f->kind == PLT_GRID ? " of a grid panel" : "";
        if (p->logx && ((p->xlim[0] == p->xlim[0] && p->xlim[0] <= 0) || (p->xlim[1] == p->xlim[1] && p->xlim[1] <= 0)))
            return icl_errf(err, "figure: x limits%s must be > 0 on a log axis", where);
        if (p->logy && ((p->ylim[0] == p->ylim[0] && p->ylim[0] <= 0) || (p->ylim[1] == p->ylim[1] && p->ylim[1] <= 0)))
            return icl_errf(err, "figure: y limits%s must be > 0 on a log axis", where);
        if (f->classes)
            for (size_t j = 0; j < p->np; j++)
                if (p->pc[j] >= f->nclasses)
                    return icl_errf(err, "figure: point %zu has class %d but only %d class names were given", j,
                                    p->pc[j], f->nclasses);
    }
    if (!any) return icl_errf(err, "figure has no data (add a series, points or a matrix)");
    return 0;
}

/* Resolves the output size (<= 0: default) and checks it. */
static int fig_size(const icl_fig *f, int *w, int *h, icl_err *err) {
    int dw, dh;
    plt_default_size(f, &dw, &dh);
    if (*w <= 0) *w = dw;
    if (*h <= 0) *h = dh;
    if (*w < 100 || *h < 100 || *w > 16384 || *h > 16384)
        return icl_errf(err, "figure size %d x %d: width and height must be 100..16384", *w, *h);
    return 0;
}

/* ---- output -------------------------------------------------------------------------------------- */

enum { FMT_PNG = 0, FMT_SVG, FMT_PDF };

/* A growing memory buffer that cairo's stream callbacks write into. */
typedef struct membuf {
    unsigned char *d;
    size_t n, cap;
    int oom;
} membuf;

static int mb_put(membuf *b, const void *data, size_t len) {
    if (b->oom) return -1;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->n + len + 1) nc *= 2;
        unsigned char *p = realloc(b->d, nc);
        if (!p) {
            b->oom = 1;
            return -1;
        }
        b->d = p;
        b->cap = nc;
    }
    memcpy(b->d + b->n, data, len);
    b->n += len;
    b->d[b->n] = 0;
    return 0;
}

static int mb_str(membuf *b, const char *s) { return mb_put(b, s, strlen(s)); }

static cairo_status_t mb_write(void *closure, const unsigned char *data, unsigned int len) {
    return mb_put(closure, data, len) ? CAIRO_STATUS_WRITE_ERROR : CAIRO_STATUS_SUCCESS;
}

/* Draws the figure in format fmt into out (w, h already checked; scale only for PNG). */
static int render(const icl_fig *f, int fmt, int w, int h, double scale, membuf *out, icl_err *err) {
    cairo_surface_t *s;
    if (fmt == FMT_PNG) {
        double W = ceil(w * scale), H = ceil(h * scale);
        if (W > 32767 || H > 32767 || W * H > (double)(1 << 27))
            return icl_errf(err, "PNG of %.0f x %.0f pixels (size %d x %d at scale %g) is too large", W, H, w, h, scale);
        s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)W, (int)H);
    } else if (fmt == FMT_SVG) {
        s = cairo_svg_surface_create_for_stream(mb_write, out, w, h);
        if (cairo_surface_status(s) == CAIRO_STATUS_SUCCESS) {
            cairo_svg_surface_restrict_to_version(s, CAIRO_SVG_VERSION_1_1);
            cairo_svg_surface_set_document_unit(s, CAIRO_SVG_UNIT_PX);
        }
    } else {
        s = cairo_pdf_surface_create_for_stream(mb_write, out, w, h);
    }
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        const char *m = cairo_status_to_string(cairo_surface_status(s));
        cairo_surface_destroy(s);
        return icl_errf(err, "cannot create drawing surface: %s", m);
    }
    cairo_t *cr = cairo_create(s);
    if (fmt == FMT_PNG) cairo_scale(cr, ceil(w * scale) / w, ceil(h * scale) / h);
    int oom = plt_render(f, cr, w, h);
    cairo_status_t st = cairo_status(cr);
    if (oom) out->oom = 1;
    cairo_destroy(cr);
    cairo_surface_flush(s);
    if (st == CAIRO_STATUS_SUCCESS && fmt == FMT_PNG) st = cairo_surface_write_to_png_stream(s, mb_write, out);
    cairo_surface_finish(s);
    if (st == CAIRO_STATUS_SUCCESS) st = cairo_surface_status(s);
    cairo_surface_destroy(s);
    if (out->oom) return icl_errf(err, "out of memory while drawing the figure");
    if (st != CAIRO_STATUS_SUCCESS) return icl_errf(err, "drawing the figure: %s", cairo_status_to_string(st));
    return 0;
}

/* Appends s XML-escaped (at most max bytes of it, cut at a character boundary). */
static int mb_xml(membuf *b, const char *s, size_t max) {
    size_t i = 0;
    for (; s[i] && i < max; i++) {
        const char *e = NULL;
        switch (s[i]) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: break;
        }
        if (e ? mb_str(b, e) : mb_put(b, s + i, 1)) return -1;
    }
    /* Finish a multi-byte character cut by max so the output stays valid UTF-8. */
    while (s[i] && ((unsigned char)s[i] & 0xC0) == 0x80)
        if (mb_put(b, s + i++, 1)) return -1;
    return 0;
}

/* The <desc> text: the figure's labels, series and class names, separated by "; ". */
static void describe(const icl_fig *f, membuf *b) {
    size_t start = b->n;
    const char *sep = "";
#define DESC(s)                                                 \
    do {                                                        \
        if ((s) && *(s) && b->n - start < 4000) {               \
            mb_str(b, sep);                                     \
            mb_xml(b, (s), 200);                                \
            sep = "; ";                                         \
        }                                                       \
    } while (0)
    for (int i = 0; i < f->rows * f->cols; i++) {
        const plt_panel *p = &f->p[i];
        if (f->kind == PLT_GRID) DESC(p->title);
        DESC(p->xlabel);
        DESC(p->ylabel);
        for (int j = 0; j < p->nser; j++) DESC(p->ser[j].name);
        for (int j = 0; j < p->nhl; j++) DESC(p->hl[j].label);
        for (int j = 0; j < p->ngroups && p->groups; j++) DESC(p->groups[j]);
        DESC(p->cblabel);
    }
    for (int i = 0; i < f->nclasses; i++) DESC(f->classes[i]);
#undef DESC
}

/* Finishes cairo's SVG: adds <title> and <desc>; with a prefix (inline use in HTML) drops the XML
 * declaration and namespace attributes and prefixes every id and reference to it. */
static int svg_finish(const icl_fig *f, const membuf *in, const char *prefix, membuf *out, icl_err *err) {
    const char *s = (const char *)in->d;
    const char *svg = strstr(s, "<svg");
    const char *open_end = svg ? strchr(svg, '>') : NULL;
    if (!open_end) return icl_errf(err, "drawing the figure: cairo wrote no <svg> element");
    if (!prefix) mb_put(out, s, (size_t)(svg - s));
    /* The opening tag, without xmlns attributes when inlined. */
    for (const char *p = svg; p < open_end;) {
        if (prefix && (!strncmp(p, " xmlns=\"", 8) || !strncmp(p, " xmlns:xlink=\"", 14))) {
            const char *q = strchr(p, '"');
            q = q ? strchr(q + 1, '"') : NULL; /* the closing quote of the value */
            if (q && q < open_end) {
                p = q + 1;
                continue;
            }
        }
        mb_put(out, p++, 1);
    }
    mb_str(out, ">\n<title>");
    mb_xml(out, f->title ? f->title : "figure", 1000);
    mb_str(out, "</title>\n<desc>");
    describe(f, out);
    mb_str(out, "</desc>");
    /* Heatmap images must stay blocky when a browser scales them (cairo emits no hint). */
    static const char *const img_tag = "<image ", *const img_pix =
        "<image image-rendering=\"optimizeSpeed\" style=\"image-rendering:pixelated\" ";
    for (const char *p = open_end + 1; *p;) {
        static const char *const refs[] = {"id=\"", "href=\"#", "url(#"};
        int hit = -1;
        if (prefix)
            for (int k = 0; k < 3 && hit < 0; k++)
                if (!strncmp(p, refs[k], strlen(refs[k]))) hit = k;
        if (hit >= 0) {
            mb_str(out, refs[hit]);
            mb_str(out, prefix);
            p += strlen(refs[hit]);
        } else if (!strncmp(p, img_tag, strlen(img_tag))) {
            mb_str(out, img_pix);
            p += strlen(img_tag);
        } else {
            const char *q = p + 1;
            while (*q && *q != 'i' && *q != 'h' && *q != 'u' && *q != '<') q++;
            mb_put(out, p, (size_t)(q - p));
            p = q;
        }
    }
    if (out->oom) return icl_errf(err, "out of memory while writing SVG");
    return 0;
}

/* Output format from the path's extension, or -1. */
static int path_format(const char *path) {
    const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return -1;
    if (!strcasecmp(dot, ".png")) return FMT_PNG;
    if (!strcasecmp(dot, ".svg")) return FMT_SVG;
    if (!strcasecmp(dot, ".pdf")) return FMT_PDF;
    return -1;
}

int icl_fig_save(const icl_fig *f, const char *path, int width, int height, icl_err *err) {
    if (!path || !*path) return icl_errf(err, "figure: no output path");
    int fmt = path_format(path);
    if (fmt < 0) return icl_errf(err, "%s: unknown figure format (use .png, .svg or .pdf)", path);
    if (fig_check(f, err) || fig_size(f, &width, &height, err)) return icl_err_prefix(err, "%s: ", path);
    membuf b = {0}, s = {0};
    int rc = render(f, fmt, width, height, f->scale, &b, err);
    if (!rc && fmt == FMT_SVG) rc = svg_finish(f, &b, NULL, &s, err);
    if (rc) icl_err_prefix(err, "%s: ", path);
    else rc = fmt == FMT_SVG ? icl_write_file_atomic(path, s.d, s.n, err) : icl_write_file_atomic(path, b.d, b.n, err);
    free(b.d);
    free(s.d);
    return rc;
}

int icl_fig_svg_string(const icl_fig *f, int width, int height, const char *id_prefix, char **svg, size_t *len,
                       icl_err *err) {
    if (!svg) return icl_errf(err, "figure: svg output pointer is NULL");
    *svg = NULL;
    if (len) *len = 0;
    if (id_prefix) {
        size_t n = strlen(id_prefix);
        if (n == 0 || n > 32 || strspn(id_prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != n)
            return icl_errf(err, "figure: SVG id prefix must be 1..32 letters, digits, '_' or '-'");
    }
    if (fig_check(f, err) || fig_size(f, &width, &height, err)) return -1;
    membuf b = {0}, s = {0};
    int rc = render(f, FMT_SVG, width, height, 1.0, &b, err);
    if (!rc) rc = svg_finish(f, &b, id_prefix, &s, err);
    free(b.d);
    if (rc) {
        free(s.d);
        return -1;
    }
    *svg = (char *)s.d;
    if (len) *len = s.n;
    return 0;
}

int icl_fig_png_buffer(const icl_fig *f, int width, int height, double scale, unsigned char **png, size_t *len,
                       icl_err *err) {
    if (!png || !len) return icl_errf(err, "figure: png output pointer is NULL");
    *png = NULL;
    *len = 0;
    if (fig_check(f, err) || fig_size(f, &width, &height, err)) return -1;
    if (scale <= 0) scale = f->scale;
    if (!(scale >= 0.25 && scale <= 8)) return icl_errf(err, "figure: scale %g outside 0.25..8", scale);
    membuf b = {0};
    if (render(f, FMT_PNG, width, height, scale, &b, err)) {
        free(b.d);
        return -1;
    }
    *png = b.d;
    *len = b.n;
    return 0;
}
