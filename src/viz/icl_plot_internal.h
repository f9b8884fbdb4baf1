/* Private data model of icl_fig, shared by icl_plot.c (building calls, checks, output) and
 * icl_plot_render.c (layout and drawing with cairo). Not part of the public API. */
#ifndef ICL_PLOT_INTERNAL_H
#define ICL_PLOT_INTERNAL_H
#include <cairo.h>
#include <stddef.h>
#include "iclab/icl_plot.h"

/* What kind of figure the constructor made: it picks defaults (size, equal aspect, ticks). */
enum { PLT_LINE = 0, PLT_SCATTER, PLT_HEAT, PLT_GRID, PLT_BARS };

typedef struct plt_series {
    char *name;            /* NULL: no legend entry */
    double *x, *y;         /* (n) each */
    double *lo, *hi;       /* (n) shaded band, or NULL */
    size_t n;
    int markers;
    icl_dash dash;
    int has_rgb;
    unsigned rgb;
    int bar;     /* 1: a series of bars, x = 0..n-1 (group indices), n = the panel's ngroups */
    double *err; /* bars: (n) half-lengths of the whiskers, or NULL */
} plt_series;

/* A reference line (hline: v is y; vline: v is x) or a text note at (v, w). */
typedef struct plt_mark {
    double v, w;
    char *label;
} plt_mark;

typedef struct plt_panel {
    char *title, *xlabel, *ylabel;
    plt_series *ser;
    int nser, capser;
    plt_mark *hl, *vl, *tx;
    int nhl, caphl, nvl, capvl, ntx, captx;
    double *px, *py; /* scatter points (np) */
    int *pc;         /* their classes (np) */
    size_t np, cappt;
    int logx, logy;
    double xlim[2], ylim[2]; /* NaN = automatic */
    int equal;               /* -1 = default for the figure kind */
    int ticks;               /* -1 = default */
    double marker_r;         /* <= 0 = default */
    icl_legend legend;
    /* heatmap (z != NULL) */
    double *z; /* (zr, zc) row-major */
    int zr, zc;
    char **rowlab, **collab; /* (zr) / (zc) or NULL */
    icl_cmap cmap;
    double vmin, vmax; /* NaN = automatic */
    char *annot;       /* printf format or NULL */
    char *cblabel;
    /* bar chart (ngroups > 0): categories along x, group i centred at x = i */
    int ngroups;
    char **groups; /* (ngroups) labels, or NULL: indices */
} plt_panel;

struct icl_fig {
    int kind;
    char *title; /* grid: the title above all panels; single: also panel 0's title */
    int rows, cols;
    plt_panel *p; /* (rows*cols) */
    int cur;
    char **rowhdr, **colhdr; /* (rows) / (cols) or NULL */
    char **classes;          /* (nclasses) or NULL */
    int nclasses;
    double scale;
    icl_legend legend; /* grid: shared legend */
    char err[256];     /* first building error, "" if none */
};

/* Largest number of groups of a bar chart, and of bar series in one panel. */
#define PLT_MAX_GROUPS 1024
#define PLT_MAX_BARSER 32

/* Maximum number of legend rows drawn; further entries are summarised as "+N more". */
#define PLT_MAX_LEGEND 24

/* 1 if v may be drawn on an axis (finite, |v| <= 1e300, and > 0 on a log axis). */
static inline int plt_ok(double v, int log) {
    return v == v && v <= 1e300 && v >= -1e300 && (!log || v > 0);
}

/* Draws the whole figure on cr in a w x h user-space canvas (white background included).
 * The figure must have passed the save-time checks. Returns 0, or -1 when out of memory. */
int plt_render(const icl_fig *fig, cairo_t *cr, double w, double h);

/* The default canvas size of the figure. */
void plt_default_size(const icl_fig *fig, int *w, int *h);

#endif
