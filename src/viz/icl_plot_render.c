/* Figure layout and drawing with cairo: axes with round-number ticks (linear and log), line
 * series with gaps, bands, markers, reference lines, scatter points, grouped bars with error
 * whiskers, legends placed where they cover the fewest data, heatmaps with colour bars, and grids
 * of small panels. Coordinates are pixels of the canvas given to plt_render, y pointing down. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_plot_internal.h"

/* ---- style ------------------------------------------------------------------------------------ */

/* Sizes in pixels for a single plot and for the panels of a grid. */
typedef struct sty {
    double title, label, tick, legend, note; /* font sizes */
    double pad, lw, ticklen, marker, point;  /* padding, line width, tick length, marker radii */
} sty;
static const sty STY_SINGLE = {16.5, 13.5, 12, 12.5, 12, 12, 2.0, 5, 3.6, 3.0};
static const sty STY_GRID = {12, 11, 10, 11.5, 10, 6, 1.6, 3, 2.6, 2.0};

/* Okabe-Ito (colour-blind safe), extended to 10 colours with darker tones; yellow is left out
 * because it vanishes on white. */
static const unsigned PALETTE[10] = {0x0072B2, 0xD55E00, 0x009E73, 0xE69F00, 0xCC79A7,
                                     0x56B4E9, 0x332288, 0x882255, 0x999933, 0x555555};

#define C_TEXT 0x222222u
#define C_AXIS 0x444444u
#define C_GRID 0xE4E4E4u
#define C_MINOR 0xF1F1F1u
#define C_REF 0x555555u

typedef struct rect {
    double x, y, w, h;
} rect;

static void set_rgb(cairo_t *cr, unsigned rgb, double alpha) {
    cairo_set_source_rgba(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0, (rgb & 255) / 255.0, alpha);
}

/* Viridis sampled at 9 even steps; linear interpolation between them is visually exact. */
static const unsigned VIRIDIS[9] = {0x440154, 0x472D7B, 0x3B528B, 0x2C728E, 0x21908C,
                                    0x27AD81, 0x5DC863, 0xAADC32, 0xFDE725};
/* Blue - white - red (ColorBrewer RdBu, reversed so negative is blue). */
static const unsigned DIVERGING[7] = {0x2166AC, 0x67A9CF, 0xD1E5F0, 0xF7F7F7, 0xFDDBC7, 0xEF8A62, 0xB2182B};

/* Colour of t in [0, 1] on colour map cm, as r, g, b in [0, 1]. */
static void cmap_rgb(icl_cmap cm, double t, double c[3]) {
    const unsigned *tab = cm == ICL_CMAP_DIVERGING ? DIVERGING : VIRIDIS;
    int n = cm == ICL_CMAP_DIVERGING ? 7 : 9;
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double u = t * (n - 1);
    int i = (int)u;
    if (i >= n - 1) i = n - 2;
    double fr = u - i;
    for (int k = 0; k < 3; k++) {
        int sh = 16 - 8 * k;
        double a = (tab[i] >> sh) & 255, b = (tab[i + 1] >> sh) & 255;
        c[k] = (a + (b - a) * fr) / 255.0;
    }
}

/* ---- text ------------------------------------------------------------------------------------- */

/* Height of capital letters relative to the font size (DejaVu Sans); used to centre text. */
#define CAP 0.73

static void font(cairo_t *cr, double size, int bold) {
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

static double text_w(cairo_t *cr, const char *s, double size, int bold) {
    if (!s || !*s) return 0;
    cairo_text_extents_t e;
    font(cr, size, bold);
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* Draws s anchored at (x, y): ha = 0 / 0.5 / 1 puts x at the left / centre / right of the text;
 * va = 0 / 0.5 / 1 puts y at the top / middle / bottom of the capitals (1 = the baseline). The
 * text is turned by angle radians (negative = counter-clockwise) around the anchor. */
static void text(cairo_t *cr, const char *s, double x, double y, double size, int bold, double ha, double va,
                 double angle, unsigned rgb) {
    if (!s || !*s) return;
    double w = text_w(cr, s, size, bold);
    cairo_save(cr);
    cairo_translate(cr, x, y);
    if (angle != 0) cairo_rotate(cr, angle);
    cairo_move_to(cr, -ha * w, CAP * size * (1 - va));
    set_rgb(cr, rgb, 1);
    cairo_show_text(cr, s);
    cairo_new_path(cr);
    cairo_restore(cr);
}

/* Text on a faint white box so it stays readable over grid lines and data. */
static void text_halo(cairo_t *cr, const char *s, double x, double y, double size, double ha, double va,
                      unsigned rgb) {
    if (!s || !*s) return;
    double w = text_w(cr, s, size, 0), h = CAP * size;
    double x0 = x - ha * w, y0 = y - va * h; /* top of the capitals */
    cairo_rectangle(cr, x0 - 2, y0 - 2.5, w + 4, h + 5 + 0.2 * size);
    set_rgb(cr, 0xFFFFFF, 0.85);
    cairo_fill(cr);
    text(cr, s, x, y, size, 0, ha, va, 0, rgb);
}

/* ---- numbers -------------------------------------------------------------------------------------- */

/* Superscript form of an integer exponent in UTF-8 (DejaVu Sans has all these glyphs). */
static void superscript(char *buf, size_t n, int e) {
    static const char *const sup[10] = {"\xE2\x81\xB0", "\xC2\xB9",     "\xC2\xB2",     "\xC2\xB3",
                                        "\xE2\x81\xB4", "\xE2\x81\xB5", "\xE2\x81\xB6", "\xE2\x81\xB7",
                                        "\xE2\x81\xB8", "\xE2\x81\xB9"};
    char digits[16];
    snprintf(digits, sizeof digits, "%d", e < 0 ? -e : e);
    size_t k = 0;
    buf[0] = 0;
    if (e < 0) k += (size_t)snprintf(buf + k, n - k, "\xE2\x81\xBB");
    for (const char *d = digits; *d && k + 4 < n; d++) {
        k += (size_t)snprintf(buf + k, n - k, "%s", sup[*d - '0']);
    }
}

/* Removes the '+' and leading zeros of a printf exponent: "1.5e+06" -> "1.5e6". */
static void tidy_exponent(char *s) {
    char *e = strchr(s, 'e');
    if (!e) return;
    char *src = e + 1, *dst = e + 1;
    if (*src == '+') src++;
    else if (*src == '-') *dst++ = *src++;
    while (*src == '0' && src[1]) src++;
    memmove(dst, src, strlen(src) + 1);
}

/* Label of a linear tick v on an axis with tick spacing step: fixed decimals, or scientific
 * notation with just enough digits when the numbers are very large or very small. */
static void fmt_linear(char *buf, size_t n, double v, double step, int sci) {
    if (v == 0 || fabs(v) < step * 1e-9) {
        snprintf(buf, n, "0");
        return;
    }
    if (sci) {
        int p = (int)floor(log10(fabs(v))) - (int)floor(log10(step) + 1e-9) + 1;
        if (p < 1) p = 1;
        if (p > 15) p = 15;
        snprintf(buf, n, "%.*g", p, v);
        tidy_exponent(buf);
        return;
    }
    int d = (int)ceil(-log10(step) - 1e-9);
    if (d < 0) d = 0;
    snprintf(buf, n, "%.*f", d, v);
}

/* Label of a value on a log axis: plain ("0.01", "200") when exact = 0 or the axis stays within
 * 1e-3..1e4, otherwise a power of ten "10⁵" (or "2×10⁵"). */
static void fmt_log(char *buf, size_t n, double lv, int plain) {
    double v = pow(10, lv);
    if (plain) {
        snprintf(buf, n, "%.6g", v);
        return;
    }
    int e = (int)floor(lv + 1e-9);
    double m = v / pow(10, e);
    char sup[20];
    superscript(sup, sizeof sup, e);
    if (fabs(m - 1) < 1e-6) snprintf(buf, n, "10%s", sup);
    else snprintf(buf, n, "%d\xC3\x97" "10%s", (int)lround(m) % 10, sup);
}

/* ---- axes ------------------------------------------------------------------------------------------ */

#define MAXT 40

typedef struct axis {
    int log;
    double lo, hi;      /* visible range in axis space (log10 of the values on a log axis) */
    double a, b;        /* pixel positions of lo and hi */
    int nt, nm;         /* number of major and minor ticks */
    double t[MAXT];     /* major ticks, axis space */
    char lab[MAXT][40]; /* their labels ("" = unlabelled) */
    double m[MAXT * 8]; /* minor ticks, axis space */
} axis;

/* Pixel of an axis-space value. Far-off values are clamped to 1e7 axis lengths so pixel
 * arithmetic stays finite; lines are clipped in pixel space before they reach cairo. */
static double ax_tpx(const axis *ax, double t) {
    double f = (t - ax->lo) / (ax->hi - ax->lo);
    if (!(f > -1e7)) f = -1e7;
    if (f > 1e7) f = 1e7;
    return ax->a + f * (ax->b - ax->a);
}

/* Pixel of a data value (which must satisfy plt_ok for the axis). */
static double ax_px(const axis *ax, double v) { return ax_tpx(ax, ax->log ? log10(v) : v); }

/* Axis-space range of a panel's x (which = 0) or y (which = 1) data, reference lines and notes;
 * *lo > *hi when nothing is drawable. */
static void data_range(const plt_panel *p, int which, double *lo, double *hi) {
    int lx = p->logx, ly = p->logy, lg = which ? ly : lx;
    double mn = INFINITY, mx = -INFINITY;
#define TAKE(v)                                   \
    do {                                          \
        double _t = (v);                          \
        if (plt_ok(_t, lg)) {                     \
            if (lg) _t = log10(_t);               \
            if (_t < mn) mn = _t;                 \
            if (_t > mx) mx = _t;                 \
        }                                         \
    } while (0)
    for (int s = 0; s < p->nser; s++) {
        const plt_series *S = &p->ser[s];
        for (size_t i = 0; i < S->n; i++) {
            if (!plt_ok(S->x[i], lx)) continue;
            if (plt_ok(S->y[i], ly)) TAKE(which ? S->y[i] : S->x[i]);
            if (which && S->lo) {
                TAKE(S->lo[i]);
                TAKE(S->hi[i]);
            }
            if (which && S->err && plt_ok(S->y[i], ly) && plt_ok(S->err[i], 0)) {
                TAKE(S->y[i] - fabs(S->err[i]));
                TAKE(S->y[i] + fabs(S->err[i]));
            }
        }
    }
    for (size_t i = 0; i < p->np; i++)
        if (plt_ok(p->px[i], lx) && plt_ok(p->py[i], ly)) TAKE(which ? p->py[i] : p->px[i]);
    if (which)
        for (int i = 0; i < p->nhl; i++) TAKE(p->hl[i].v);
    else
        for (int i = 0; i < p->nvl; i++) TAKE(p->vl[i].v);
    for (int i = 0; i < p->ntx; i++)
        if (plt_ok(p->tx[i].v, lx) && plt_ok(p->tx[i].w, ly)) TAKE(which ? p->tx[i].w : p->tx[i].v);
#undef TAKE
    *lo = mn;
    *hi = mx;
}

/* Replaces the ends of a visible range (axis space) by the explicit limits (data space, NaN =
 * automatic), keeping lo < hi. */
static void apply_lim(double *plo, double *phi, const double lim[2], int log) {
    double lo = *plo, hi = *phi;
    if (lim[0] == lim[0]) lo = log ? log10(lim[0]) : lim[0];
    if (lim[1] == lim[1]) hi = log ? log10(lim[1]) : lim[1];
    if (!(lo < hi)) { /* one explicit end on the wrong side of the data */
        double span = log ? 1 : (fabs(lo) + fabs(hi) > 0 ? 0.5 * (fabs(lo) + fabs(hi)) : 1);
        if (lim[0] == lim[0]) hi = lo + span;
        else lo = hi - span;
    }
    *plo = lo;
    *phi = hi;
}

/* Turns a data range (axis space; lo > hi = no data) into the visible range: a 5% margin on
 * automatic ends, a sensible width around a single value, then the explicit limits (data space,
 * NaN = automatic). Always leaves lo < hi, both finite. */
static void finish_range(double *plo, double *phi, const double lim[2], int log) {
    double lo = *plo, hi = *phi;
    if (!(lo <= hi)) {
        lo = 0; /* no data: 0..1, or 1..10 on a log axis */
        hi = 1;
    } else if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
        double c = 0.5 * (lo + hi), d = log ? 0.5 : (c != 0 ? 0.1 * fabs(c) : 0.5);
        lo = c - d;
        hi = c + d;
    } else {
        double m = 0.05 * (hi - lo);
        lo -= m;
        hi += m;
    }
    *plo = lo;
    *phi = hi;
    apply_lim(plo, phi, lim, log);
}

/* Visible y range of a bar panel: like finish_range, but on a linear axis it always holds 0 and
 * gets no margin at the zero end, so bars stand on the bottom of the plot (or hang from its top
 * when every value is negative). */
static void bar_yrange(const plt_panel *p, double *plo, double *phi) {
    double lo, hi;
    data_range(p, 1, &lo, &hi);
    if (p->logy) {
        finish_range(&lo, &hi, p->ylim, 1);
    } else {
        if (!(lo <= hi)) lo = hi = 0; /* nothing drawable: 0..1 */
        lo = fmin(lo, 0);
        hi = fmax(hi, 0);
        if (lo == hi) hi = 1;
        double m = 0.05 * (hi - lo);
        if (lo < 0) lo -= m;
        if (hi > 0) hi += m;
        apply_lim(&lo, &hi, p->ylim, 0);
    }
    *plo = lo;
    *phi = hi;
}

static double nice_step(double raw) {
    double mag = pow(10, floor(log10(raw))), fr = raw / mag;
    return (fr < 1.5 ? 1 : fr < 3 ? 2 : fr < 7 ? 5 : 10) * mag;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Round-number ticks on a linear range [lo, hi] of value space, about one per spacing pixels.
 * Writes axis-space positions (log10 of them when to_log) and labels. */
static void lin_ticks(axis *ax, double lo, double hi, double len_px, double spacing, int to_log) {
    int target = clampi((int)(len_px / spacing), 2, 10);
    double step = nice_step((hi - lo) / target);
    double big = fmax(fabs(lo), fabs(hi));
    int sci = big >= 1e6 || step < 1e-4;
    ax->nt = 0;
    for (double k = ceil(lo / step - 1e-9); ax->nt < MAXT; k++) {
        double v = k * step;
        if (v > hi + 1e-9 * step) break;
        if (fabs(v) < 1e-9 * step) v = 0;
        if (to_log && v <= 0) continue;
        ax->t[ax->nt] = to_log ? log10(v) : v;
        fmt_linear(ax->lab[ax->nt], sizeof ax->lab[0], v, step, sci);
        ax->nt++;
    }
}

/* Ticks of a log axis: powers of ten (every stride-th labelled when there are many) with minor
 * ticks at 2..9; on a range under two decades, 1-2-5 or 1..9 steps; under that, linear ticks. */
static void log_ticks(axis *ax, double len_px, double spacing) {
    double lo = ax->lo, hi = ax->hi;
    int maxlab = clampi((int)(len_px / spacing), 2, 10);
    double kmin = ceil(lo - 1e-9), kmax = floor(hi + 1e-9);
    ax->nt = ax->nm = 0;
    if (kmax - kmin >= 1) {
        double nd = kmax - kmin + 1, stride = ceil(nd / maxlab);
        int plain = kmin >= -3 && kmax <= 4;
        for (double k = kmin; k <= kmax && ax->nt < MAXT; k++) {
            int labelled = fmod(fabs(k), stride) == 0;
            if (!labelled && nd > MAXT) continue;
            ax->t[ax->nt] = k;
            if (labelled) fmt_log(ax->lab[ax->nt], sizeof ax->lab[0], k, plain);
            else ax->lab[ax->nt][0] = 0;
            ax->nt++;
        }
        if (hi - lo <= 7)
            for (double d = floor(lo); d <= kmax; d++)
                for (int m = 2; m <= 9 && ax->nm < MAXT * 8; m++) {
                    double t = d + log10((double)m);
                    if (t >= lo && t <= hi) ax->m[ax->nm++] = t;
                }
        return;
    }
    static const int s125[3] = {1, 2, 5};
    for (int pass = 0; pass < 2; pass++) {
        ax->nt = 0;
        for (double d = floor(lo); d <= ceil(hi) && ax->nt < MAXT; d++)
            for (int j = 0; j < (pass ? 9 : 3) && ax->nt < MAXT; j++) {
                int m = pass ? j + 1 : s125[j];
                double t = d + log10((double)m);
                if (t < lo - 1e-9 || t > hi + 1e-9) continue;
                ax->t[ax->nt] = t;
                snprintf(ax->lab[ax->nt], sizeof ax->lab[0], "%.4g", m * pow(10, d));
                tidy_exponent(ax->lab[ax->nt]);
                ax->nt++;
            }
        if (ax->nt >= 2) {
            /* thin the labels when the 1..9 steps are too dense */
            int stride = (ax->nt + maxlab - 1) / maxlab;
            for (int i = 0; i < ax->nt && stride > 1; i++)
                if (i % stride) ax->lab[i][0] = 0;
            return;
        }
    }
    lin_ticks(ax, pow(10, lo), pow(10, hi), len_px, spacing, 1);
}

/* Fills ticks for an axis whose lo, hi, a, b are set. spacing: wanted pixels per label. */
static void make_ticks(axis *ax, double spacing) {
    double len = fabs(ax->b - ax->a);
    ax->nm = 0;
    if (ax->log) log_ticks(ax, len, spacing);
    else lin_ticks(ax, ax->lo, ax->hi, len, spacing, 0);
}

/* Widest tick label of an axis, in pixels. */
static double ticks_w(cairo_t *cr, const axis *ax, double size) {
    double w = 0;
    for (int i = 0; i < ax->nt; i++) w = fmax(w, text_w(cr, ax->lab[i], size, 0));
    return w;
}

/* ---- geometry -------------------------------------------------------------------------------------- */

/* Clips segment (x0,y0)-(x1,y1) to rectangle r (Liang-Barsky). Returns 0 when nothing is left. */
static int clip_seg(double *x0, double *y0, double *x1, double *y1, rect r) {
    double dx = *x1 - *x0, dy = *y1 - *y0, t0 = 0, t1 = 1;
    double p[4] = {-dx, dx, -dy, dy};
    double q[4] = {*x0 - r.x, r.x + r.w - *x0, *y0 - r.y, r.y + r.h - *y0};
    for (int k = 0; k < 4; k++) {
        if (p[k] == 0) {
            if (q[k] < 0) return 0;
            continue;
        }
        double t = q[k] / p[k];
        if (p[k] < 0) {
            if (t > t1) return 0;
            if (t > t0) t0 = t;
        } else {
            if (t < t0) return 0;
            if (t < t1) t1 = t;
        }
    }
    /* Unclipped ends stay bit-exact, so consecutive segments join without a new sub-path. */
    double ax = *x0, ay = *y0;
    if (t0 > 0) {
        *x0 = ax + t0 * dx;
        *y0 = ay + t0 * dy;
    }
    if (t1 < 1) {
        *x1 = ax + t1 * dx;
        *y1 = ay + t1 * dy;
    }
    return 1;
}

/* Clips polygon (n points, xy interleaved) against one side of a rectangle (Sutherland-Hodgman
 * step): side 0..3 = left, right, top, bottom. Writes to out (room for 2n points). */
static int clip_side(const double *in, int n, double *out, rect r, int side) {
    int m = 0;
    for (int i = 0; i < n; i++) {
        const double *a = in + 2 * ((i + n - 1) % n), *b = in + 2 * i;
        double va, vb;
        switch (side) {
        case 0: va = a[0] - r.x, vb = b[0] - r.x; break;
        case 1: va = r.x + r.w - a[0], vb = r.x + r.w - b[0]; break;
        case 2: va = a[1] - r.y, vb = b[1] - r.y; break;
        default: va = r.y + r.h - a[1], vb = r.y + r.h - b[1]; break;
        }
        if ((va >= 0) != (vb >= 0)) {
            double t = va / (va - vb);
            out[2 * m] = a[0] + t * (b[0] - a[0]);
            out[2 * m + 1] = a[1] + t * (b[1] - a[1]);
            m++;
        }
        if (vb >= 0) {
            out[2 * m] = b[0];
            out[2 * m + 1] = b[1];
            m++;
        }
    }
    return m;
}

/* Fills a polygon (n points, xy interleaved, malloc'd; taken over and freed) after clipping it
 * to r, so cairo never sees far-off coordinates. Each clipping step at most doubles the count. */
static void fill_clipped(cairo_t *cr, double *poly, int n, rect r) {
    double *a = poly;
    for (int side = 0; side < 4 && n > 0; side++) {
        double *b = malloc((2 * (size_t)n + 8) * 2 * sizeof *b);
        if (!b) {
            n = 0;
            break;
        }
        n = clip_side(a, n, b, r, side);
        free(a);
        a = b;
    }
    if (n >= 3) {
        cairo_move_to(cr, a[0], a[1]);
        for (int i = 1; i < n; i++) cairo_line_to(cr, a[2 * i], a[2 * i + 1]);
        cairo_close_path(cr);
        cairo_fill(cr);
    }
    free(a);
}

static rect grow_rect(rect r, double d) { return (rect){r.x - d, r.y - d, r.w + 2 * d, r.h + 2 * d}; }

static int in_rect(double x, double y, rect r) { return x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h; }

/* Adds a marker outline of radius rad to the path: 0 circle, 1 square, 2 triangle, 3 diamond. */
static void marker_path(cairo_t *cr, int shape, double x, double y, double rad) {
    switch (shape & 3) {
    case 0:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, rad, 0, 2 * M_PI);
        break;
    case 1: cairo_rectangle(cr, x - 0.88 * rad, y - 0.88 * rad, 1.76 * rad, 1.76 * rad); break;
    case 2:
        cairo_move_to(cr, x, y - 1.2 * rad);
        cairo_line_to(cr, x + 1.05 * rad, y + 0.65 * rad);
        cairo_line_to(cr, x - 1.05 * rad, y + 0.65 * rad);
        cairo_close_path(cr);
        break;
    default:
        cairo_move_to(cr, x, y - 1.25 * rad);
        cairo_line_to(cr, x + 1.05 * rad, y);
        cairo_line_to(cr, x, y + 1.25 * rad);
        cairo_line_to(cr, x - 1.05 * rad, y);
        cairo_close_path(cr);
        break;
    }
}

static unsigned class_rgb(int c) { return PALETTE[c % 10]; }
static int class_shape(int c) { return (c / 10) % 4; }

static void set_dash(cairo_t *cr, icl_dash d, double lw) {
    if (d == ICL_DASHED) {
        double ds[2] = {3.5 * lw, 2.2 * lw};
        cairo_set_dash(cr, ds, 2, 0);
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    } else if (d == ICL_DOTTED) {
        double ds[2] = {0.01, 2.2 * lw};
        cairo_set_dash(cr, ds, 2, 0);
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    } else {
        cairo_set_dash(cr, NULL, 0, 0);
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    }
}

/* ---- legends --------------------------------------------------------------------------------------- */

enum { LE_LINE = 0, LE_POINT, LE_TEXT, LE_BAR };

typedef struct lent {
    const char *text;
    char own[48]; /* text generated here ("class 3", "+5 more") */
    int kind;
    unsigned rgb;
    icl_dash dash;
    int marker, shape;
} lent;

typedef struct legend {
    lent e[PLT_MAX_LEGEND + 1];
    int n;
    double w, h; /* box size in pixels */
} legend;

static const char *lent_text(const lent *e) { return e->text ? e->text : e->own; }

/* Adds a legend entry unless the legend is full (then the "+N more" entry counts it). */
static lent *legend_add(legend *L, int *more) {
    if (L->n < PLT_MAX_LEGEND) {
        lent *e = &L->e[L->n++];
        memset(e, 0, sizeof *e);
        return e;
    }
    (*more)++;
    return NULL;
}

/* Collects the legend of panels [p0, p1): named series (one entry per name) and point classes. */
static void legend_build(const icl_fig *f, unsigned *const *scol, int p0, int p1, legend *L) {
    int more = 0;
    L->n = 0;
    for (int i = p0; i < p1; i++)
        for (int j = 0; j < f->p[i].nser; j++) {
            const plt_series *s = &f->p[i].ser[j];
            if (!s->name || !*s->name) continue;
            int dup = 0;
            for (int k = 0; k < L->n && !dup; k++) dup = L->e[k].text && !strcmp(L->e[k].text, s->name);
            if (dup) continue;
            lent *e = legend_add(L, &more);
            if (!e) continue;
            e->text = s->name;
            e->kind = s->bar ? LE_BAR : LE_LINE;
            e->rgb = scol[i][j];
            e->dash = s->dash;
            e->marker = s->markers;
        }
    /* Classes in use: a class gets an entry when names were given or several classes occur. */
    int maxc = -1;
    for (int i = p0; i < p1; i++)
        for (size_t j = 0; j < f->p[i].np; j++)
            if (f->p[i].pc[j] > maxc) maxc = f->p[i].pc[j];
    if (maxc >= 0) {
        unsigned char *used = calloc((size_t)maxc + 1, 1);
        int nused = 0;
        if (used) {
            for (int i = p0; i < p1; i++)
                for (size_t j = 0; j < f->p[i].np; j++)
                    if (!used[f->p[i].pc[j]]) {
                        used[f->p[i].pc[j]] = 1;
                        nused++;
                    }
            for (int c = 0; c <= maxc && (f->classes || nused > 1); c++) {
                if (!used[c]) continue;
                lent *e = legend_add(L, &more);
                if (!e) continue;
                if (f->classes && c < f->nclasses && f->classes[c]) e->text = f->classes[c];
                else snprintf(e->own, sizeof e->own, "class %d", c);
                e->kind = LE_POINT;
                e->rgb = class_rgb(c);
                e->shape = class_shape(c);
            }
            free(used);
        }
    }
    if (more) {
        lent *e = &L->e[L->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->own, sizeof e->own, "+%d more", more);
        e->kind = LE_TEXT;
    }
}

#define LEG_SW 26.0  /* swatch width */
#define LEG_PAD 8.0

static void legend_measure(cairo_t *cr, legend *L, const sty *st) {
    double tw = 0;
    for (int i = 0; i < L->n; i++) tw = fmax(tw, text_w(cr, lent_text(&L->e[i]), st->legend, 0));
    L->w = L->n ? 2 * LEG_PAD + LEG_SW + 7 + tw : 0;
    L->h = L->n ? 2 * 6 + L->n * st->legend * 1.5 : 0;
}

static void legend_draw(cairo_t *cr, const legend *L, const sty *st, double x, double y) {
    if (!L->n) return;
    double rowh = st->legend * 1.5, rad = 3.0;
    cairo_new_path(cr);
    cairo_arc(cr, x + L->w - rad, y + rad, rad, -M_PI / 2, 0);
    cairo_arc(cr, x + L->w - rad, y + L->h - rad, rad, 0, M_PI / 2);
    cairo_arc(cr, x + rad, y + L->h - rad, rad, M_PI / 2, M_PI);
    cairo_arc(cr, x + rad, y + rad, rad, M_PI, 1.5 * M_PI);
    cairo_close_path(cr);
    set_rgb(cr, 0xFFFFFF, 0.92);
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 1);
    set_dash(cr, ICL_SOLID, 1);
    set_rgb(cr, 0xC8C8C8, 1);
    cairo_stroke(cr);
    for (int i = 0; i < L->n; i++) {
        const lent *e = &L->e[i];
        double cy = y + 6 + (i + 0.5) * rowh, sx = x + LEG_PAD;
        if (e->kind == LE_LINE) {
            cairo_set_line_width(cr, st->lw);
            set_dash(cr, e->dash, st->lw);
            set_rgb(cr, e->rgb, 1);
            cairo_move_to(cr, sx, cy);
            cairo_line_to(cr, sx + LEG_SW, cy);
            cairo_stroke(cr);
            if (e->marker) {
                marker_path(cr, 0, sx + LEG_SW / 2, cy, st->marker);
                cairo_fill(cr);
            }
        } else if (e->kind == LE_BAR) {
            double bh = round(0.8 * st->legend);
            set_rgb(cr, e->rgb, 1);
            cairo_rectangle(cr, round(sx + 5), round(cy - bh / 2), LEG_SW - 10, bh);
            cairo_fill(cr);
        } else if (e->kind == LE_POINT) {
            set_rgb(cr, e->rgb, 1);
            marker_path(cr, e->shape, sx + LEG_SW / 2, cy, 4.2);
            cairo_fill(cr);
        }
        text(cr, lent_text(e), sx + (e->kind == LE_TEXT ? 0 : LEG_SW + 7), cy, st->legend, 0, 0, 0.5, 0, C_TEXT);
    }
}

/* ---- line / scatter panels ---------------------------------------------------------------------------- */

/* What one drawing pass needs: the figure, its cairo context, the resolved series colours
 * ((panel)(series)) and the style. */
typedef struct rctx {
    cairo_t *cr;
    const icl_fig *f;
    unsigned **scol;
    const sty *st;
    int grid;
} rctx;

static int pt_ok(const axis *ax, const axis *ay, double x, double y) { return plt_ok(x, ax->log) && plt_ok(y, ay->log); }

/* ---- bars ---- */

static int is_bar_panel(const plt_panel *p) { return p->ngroups > 0; }

/* Number of series of bars in a panel. */
static int bar_count(const plt_panel *p) {
    int n = 0;
    for (int s = 0; s < p->nser; s++) n += p->ser[s].bar;
    return n;
}

/* Fraction of a group's width its bars take (the rest is the gap between groups). */
#define BAR_FILL 0.8

/* Pixel geometry of bar i (group i) of a series in slot k of nb series of bars: the bar *bar
 * and its whisker from *wy0 to *wy1 (both NaN when it has none), clamped to cl so far-off values
 * stay finite. Returns 0 when the slot is empty (value not drawable). */
static int bar_geom(const plt_series *S, int k, int nb, size_t i, const axis *ax, const axis *ay, rect cl, rect *bar,
                    double *wy0, double *wy1) {
    double v = S->y[i];
    if (!plt_ok(v, ay->log)) return 0;
    double slot = BAR_FILL / nb, u0 = (double)i - 0.5 * BAR_FILL + k * slot;
    double x0 = ax_px(ax, u0), x1 = ax_px(ax, u0 + slot);
    double gap = fmin(2, 0.12 * (x1 - x0)); /* a hairline of white between neighbouring bars */
    x0 = round(x0 + 0.5 * gap);
    x1 = round(x1 - 0.5 * gap);
    if (x1 < x0 + 1) x1 = x0 + 1;
    double ylo = cl.y, yhi = cl.y + cl.h;
    double base = ay->log ? ay->a : ax_px(ay, 0), top = ax_px(ay, v);
    base = round(fmin(yhi, fmax(ylo, base)));
    top = round(fmin(yhi, fmax(ylo, top)));
    *bar = (rect){x0, fmin(base, top), x1 - x0, fabs(base - top)};
    *wy0 = *wy1 = NAN;
    if (S->err && plt_ok(S->err[i], 0) && S->err[i] != 0) {
        double e = fabs(S->err[i]), a = v - e, b = v + e;
        double pa = plt_ok(a, ay->log) ? ax_px(ay, a) : ay->a, pb = plt_ok(b, ay->log) ? ax_px(ay, b) : ay->a;
        *wy0 = fmin(yhi, fmax(ylo, pa));
        *wy1 = fmin(yhi, fmax(ylo, pb));
    }
    return 1;
}

static int rects_meet(rect a, rect b) {
    return a.x <= b.x + b.w && b.x <= a.x + a.w && a.y <= b.y + b.h && b.y <= a.y + a.h;
}

/* How many bars (with their whiskers) of a panel meet box. */
static long bars_overlap(const plt_panel *p, const axis *ax, const axis *ay, rect box) {
    int nb = bar_count(p), k = 0;
    long n = 0;
    rect cl = {fmin(ax->a, ax->b) - 10, fmin(ay->a, ay->b) - 10, fabs(ax->b - ax->a) + 20, fabs(ay->b - ay->a) + 20};
    for (int s = 0; s < p->nser; s++) {
        const plt_series *S = &p->ser[s];
        if (!S->bar) continue;
        for (size_t i = 0; i < S->n; i++) {
            rect b;
            double w0, w1;
            if (!bar_geom(S, k, nb, i, ax, ay, cl, &b, &w0, &w1)) continue;
            if (w0 == w0) { /* the whisker widens the bar's extent */
                double t = fmin(b.y, fmin(w0, w1)), bt = fmax(b.y + b.h, fmax(w0, w1));
                b.y = t;
                b.h = bt - t;
            }
            n += rects_meet(b, box);
        }
        k++;
    }
    return n;
}

/* How many data items (points, segments, reference lines, notes) a legend box would cover. */
static long overlap(const plt_panel *p, const axis *ax, const axis *ay, rect box) {
    rect b = grow_rect(box, 3);
    long n = bars_overlap(p, ax, ay, b);
    for (int s = 0; s < p->nser; s++) {
        const plt_series *S = &p->ser[s];
        if (S->bar) continue;
        int have = 0;
        double lx = 0, ly = 0;
        for (size_t i = 0; i < S->n; i++) {
            if (!pt_ok(ax, ay, S->x[i], S->y[i])) {
                have = 0;
                continue;
            }
            double px = ax_px(ax, S->x[i]), py = ax_px(ay, S->y[i]);
            if (in_rect(px, py, b)) n++;
            else if (have) {
                double x0 = lx, y0 = ly, x1 = px, y1 = py;
                n += clip_seg(&x0, &y0, &x1, &y1, b);
            }
            lx = px;
            ly = py;
            have = 1;
        }
    }
    for (size_t i = 0; i < p->np; i++)
        if (pt_ok(ax, ay, p->px[i], p->py[i]) && in_rect(ax_px(ax, p->px[i]), ax_px(ay, p->py[i]), b)) n++;
    for (int i = 0; i < p->nhl; i++)
        if (plt_ok(p->hl[i].v, ay->log)) {
            double py = ax_px(ay, p->hl[i].v);
            n += py >= b.y && py <= b.y + b.h;
        }
    for (int i = 0; i < p->nvl; i++)
        if (plt_ok(p->vl[i].v, ax->log)) {
            double px = ax_px(ax, p->vl[i].v);
            n += px >= b.x && px <= b.x + b.w;
        }
    for (int i = 0; i < p->ntx; i++)
        if (pt_ok(ax, ay, p->tx[i].v, p->tx[i].w) && in_rect(ax_px(ax, p->tx[i].v), ax_px(ay, p->tx[i].w), b)) n++;
    return n;
}

/* Top-left corner of the legend inside the plot at a named spot (0..7: upper right, upper left,
 * lower left, lower right, centre right, upper centre, lower centre, centre left). */
static void legend_at(int spot, rect pl, const legend *L, double *x, double *y) {
    double in = 8, l = pl.x + in, rr = pl.x + pl.w - in - L->w, cx = pl.x + (pl.w - L->w) / 2;
    double t = pl.y + in, b = pl.y + pl.h - in - L->h, cy = pl.y + (pl.h - L->h) / 2;
    static const int hx[8] = {2, 0, 0, 2, 2, 1, 1, 0}, vy[8] = {0, 0, 2, 2, 1, 0, 2, 1};
    *x = hx[spot] == 0 ? l : hx[spot] == 1 ? cx : rr;
    *y = vy[spot] == 0 ? t : vy[spot] == 1 ? cy : b;
}

/* The first spot, in order of preference, where the legend covers no data; -1 if none. */
static int legend_spot(const plt_panel *p, const axis *ax, const axis *ay, rect pl, const legend *L) {
    if (L->w > 0.6 * pl.w || L->h > 0.8 * pl.h) return -1;
    for (int s = 0; s < 8; s++) {
        double x, y;
        legend_at(s, pl, L, &x, &y);
        if (overlap(p, ax, ay, (rect){x, y, L->w, L->h}) == 0) return s;
    }
    return -1;
}

/* Label of group i of a bar panel: the caller's, or the index. */
static const char *group_label(const plt_panel *p, int i, char *buf, size_t n) {
    if (p->groups && p->groups[i]) return p->groups[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

static int label_stride(double need, double have);

/* How the group labels of a bar panel are set: turned 45 degrees or not, every how many drawn,
 * and the line height of their font. */
typedef struct glab {
    int rot, stride;
    double th;
} glab;

/* Places the plot area of an x-y panel inside r and sets both axes with their ticks. A bar
 * panel gets group labels instead of x ticks (how they are set goes to *gl). */
static void xy_layout(const rctx *c, const plt_panel *p, rect r, double extra_right, int ticks, int equal, axis *ax,
                      axis *ay, rect *plot, glab *gl) {
    const sty *st = c->st;
    double xsp = c->grid ? 62 : 100, ysp = c->grid ? 34 : 55;
    int bars = is_bar_panel(p);
    ax->log = bars ? 0 : p->logx;
    ay->log = p->logy;
    if (bars) {
        ax->lo = -0.5;
        ax->hi = p->ngroups - 0.5;
        apply_lim(&ax->lo, &ax->hi, p->xlim, 0);
        bar_yrange(p, &ay->lo, &ay->hi);
    } else {
        data_range(p, 0, &ax->lo, &ax->hi);
        finish_range(&ax->lo, &ax->hi, p->xlim, p->logx);
        data_range(p, 1, &ay->lo, &ay->hi);
        finish_range(&ay->lo, &ay->hi, p->ylim, p->logy);
    }
    double top = r.y + st->pad + (p->title ? st->title * 1.45 : 0);
    double th = st->tick * 1.2, colw = 0;
    char nb[16];
    for (int i = 0; bars && i < p->ngroups; i++) colw = fmax(colw, text_w(c->cr, group_label(p, i, nb, sizeof nb), st->tick, 0));
    int rot = 0;
    double ph = 10, pw = 10, lm = 0;
    for (int pass = 0; pass < 2; pass++) {
        double xlab = bars ? (rot ? 0.7071 * (colw + th) + 6 : th + 6) : ticks ? st->ticklen + 4 + st->tick * 1.2 : 0;
        double bm = st->pad + xlab + (p->xlabel ? st->label * 1.6 : 0);
        ph = fmax(10, r.y + r.h - bm - top);
        ay->a = top + ph;
        ay->b = top;
        make_ticks(ay, ysp);
        lm = st->pad + (p->ylabel ? st->label * 1.6 : 0) + (ticks ? ticks_w(c->cr, ay, st->tick) + 4 + st->ticklen : 0);
        double rm = st->pad + (ticks ? 10 : 0) + extra_right;
        pw = fmax(10, r.w - lm - rm);
        if (!bars) break;
        if (rot) {
            /* turned labels hang to the left of their group: keep the first ones on the canvas */
            double need = 0;
            for (int k = 0; k < 2; k++) {
                for (int i = 0; i < p->ngroups; i++) {
                    double cx = (i - ax->lo) / (ax->hi - ax->lo) * pw;
                    if (cx < 0) continue;
                    need = fmax(need, 0.7071 * (text_w(c->cr, group_label(p, i, nb, sizeof nb), st->tick, 0) + th) -
                                          0.35 * th - cx + 4);
                }
                if (need <= lm) break;
                pw = fmax(10, pw - (need - lm));
                lm = need;
            }
            break;
        }
        if (colw + 6 <= pw / (ax->hi - ax->lo)) break;
        rot = 1;
    }
    *plot = (rect){round(r.x + lm), round(top), round(pw), round(ph)};
    int lims = p->xlim[0] == p->xlim[0] || p->xlim[1] == p->xlim[1] || p->ylim[0] == p->ylim[0] ||
               p->ylim[1] == p->ylim[1];
    if (equal && !bars && !p->logx && !p->logy && !lims) {
        /* Same data units per pixel on both axes: widen the shorter range about its centre. */
        double ux = (ax->hi - ax->lo) / plot->w, uy = (ay->hi - ay->lo) / plot->h;
        axis *w = ux > uy ? ay : ax;
        double half = 0.5 * fmax(ux, uy) * (ux > uy ? plot->h : plot->w), mid = 0.5 * (w->lo + w->hi);
        w->lo = mid - half;
        w->hi = mid + half;
    }
    ax->a = plot->x;
    ax->b = plot->x + plot->w;
    ay->a = plot->y + plot->h;
    ay->b = plot->y;
    make_ticks(ay, ysp);
    gl->rot = rot;
    gl->th = th;
    gl->stride = 1;
    if (bars) {
        ax->nt = ax->nm = 0; /* the group labels take the place of x ticks */
        if (rot) gl->stride = label_stride(1.15 * th, 0.7071 * plot->w / (ax->hi - ax->lo));
        return;
    }
    make_ticks(ax, xsp);
    double wx = ticks_w(c->cr, ax, st->tick);
    if (wx + 18 > xsp) make_ticks(ax, wx + 18);
}

/* Shaded bands of a series: one polygon per run of drawable points. */
static void draw_band(cairo_t *cr, const plt_series *s, const axis *ax, const axis *ay, rect cl, unsigned rgb) {
    set_rgb(cr, rgb, 0.18);
    size_t i = 0;
    while (i < s->n) {
        while (i < s->n && !(plt_ok(s->x[i], ax->log) && plt_ok(s->lo[i], ay->log) && plt_ok(s->hi[i], ay->log))) i++;
        size_t j = i;
        while (j < s->n && plt_ok(s->x[j], ax->log) && plt_ok(s->lo[j], ay->log) && plt_ok(s->hi[j], ay->log)) j++;
        size_t m = j - i;
        if (m >= 2 && m < (size_t)1 << 27) {
            double *poly = malloc(4 * m * sizeof *poly);
            if (poly) {
                for (size_t k = 0; k < m; k++) {
                    poly[2 * k] = ax_px(ax, s->x[i + k]);
                    poly[2 * k + 1] = ax_px(ay, s->lo[i + k]);
                    poly[2 * (2 * m - 1 - k)] = poly[2 * k];
                    poly[2 * (2 * m - 1 - k) + 1] = ax_px(ay, s->hi[i + k]);
                }
                fill_clipped(cr, poly, (int)(2 * m), cl);
            }
        }
        i = j;
    }
}

/* The line of a series, broken at gaps, clipped to cl; isolated points become dots. */
static void draw_line(cairo_t *cr, const plt_series *s, const axis *ax, const axis *ay, rect cl, double lw) {
    int have = 0, pen = 0;
    double lx = 0, ly = 0, ex = 0, ey = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!pt_ok(ax, ay, s->x[i], s->y[i])) {
            have = pen = 0;
            continue;
        }
        double px = ax_px(ax, s->x[i]), py = ax_px(ay, s->y[i]);
        if (have) {
            double x0 = lx, y0 = ly, x1 = px, y1 = py;
            if (clip_seg(&x0, &y0, &x1, &y1, cl)) {
                if (!pen || x0 != ex || y0 != ey) cairo_move_to(cr, x0, y0);
                cairo_line_to(cr, x1, y1);
                pen = 1;
                ex = x1;
                ey = y1;
            } else {
                pen = 0;
            }
        }
        lx = px;
        ly = py;
        have = 1;
    }
    cairo_stroke(cr);
    if (s->markers) return;
    for (size_t i = 0; i < s->n; i++) {
        int prev = i > 0 && pt_ok(ax, ay, s->x[i - 1], s->y[i - 1]);
        int next = i + 1 < s->n && pt_ok(ax, ay, s->x[i + 1], s->y[i + 1]);
        if (prev || next || !pt_ok(ax, ay, s->x[i], s->y[i])) continue;
        double px = ax_px(ax, s->x[i]), py = ax_px(ay, s->y[i]);
        if (!in_rect(px, py, cl)) continue;
        marker_path(cr, 0, px, py, 1.3 * lw);
        cairo_fill(cr);
    }
}

static void draw_markers(cairo_t *cr, const plt_series *s, const axis *ax, const axis *ay, rect cl, double rad) {
    for (size_t i = 0; i < s->n; i++) {
        if (!pt_ok(ax, ay, s->x[i], s->y[i])) continue;
        double px = ax_px(ax, s->x[i]), py = ax_px(ay, s->y[i]);
        if (in_rect(px, py, cl)) marker_path(cr, 0, px, py, rad);
    }
    cairo_fill_preserve(cr);
    cairo_set_line_width(cr, 0.9);
    set_dash(cr, ICL_SOLID, 1);
    set_rgb(cr, 0xFFFFFF, 1);
    cairo_stroke(cr);
}

/* Scatter points, filled in runs of one class (points keep their order across classes). */
static void draw_points(cairo_t *cr, const plt_panel *p, const axis *ax, const axis *ay, rect cl, double rad) {
    size_t i = 0;
    while (i < p->np) {
        int cls = p->pc[i];
        cairo_new_path(cr);
        for (; i < p->np && p->pc[i] == cls; i++) {
            if (!pt_ok(ax, ay, p->px[i], p->py[i])) continue;
            double px = ax_px(ax, p->px[i]), py = ax_px(ay, p->py[i]);
            if (in_rect(px, py, cl)) marker_path(cr, class_shape(cls), px, py, rad);
        }
        set_rgb(cr, class_rgb(cls), 0.82);
        cairo_fill(cr);
    }
}

/* Grid lines, frame, ticks and tick labels of an x-y panel. */
static void draw_axes(const rctx *c, const axis *ax, const axis *ay, rect pl, int ticks) {
    cairo_t *cr = c->cr;
    const sty *st = c->st;
    double bottom = pl.y + pl.h, right = pl.x + pl.w;
    cairo_set_line_width(cr, 1);
    set_dash(cr, ICL_SOLID, 1);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    if (ticks) {
        for (int pass = 0; pass < 2; pass++) { /* minor grid first, then major */
            const axis *A[2] = {ax, ay};
            for (int k = 0; k < 2; k++) {
                int n = pass ? A[k]->nt : A[k]->nm;
                for (int i = 0; i < n; i++) {
                    double v = round(ax_tpx(A[k], pass ? A[k]->t[i] : A[k]->m[i])) + 0.5;
                    if (k == 0 && v > pl.x + 1 && v < right - 1) {
                        cairo_move_to(cr, v, pl.y);
                        cairo_line_to(cr, v, bottom);
                    } else if (k == 1 && v > pl.y + 1 && v < bottom - 1) {
                        cairo_move_to(cr, pl.x, v);
                        cairo_line_to(cr, right, v);
                    }
                }
            }
            set_rgb(cr, pass ? C_GRID : C_MINOR, 1);
            cairo_stroke(cr);
        }
    }
    cairo_rectangle(cr, pl.x + 0.5, pl.y + 0.5, pl.w - 1, pl.h - 1);
    set_rgb(cr, ticks ? C_AXIS : 0xB0B0B0, 1);
    cairo_stroke(cr);
    if (!ticks) return;
    for (int pass = 0; pass < 2; pass++) { /* minor ticks, then major ticks with labels */
        double len = pass ? st->ticklen : 0.55 * st->ticklen;
        for (int i = 0; i < (pass ? ax->nt : ax->nm); i++) {
            double v = round(ax_tpx(ax, pass ? ax->t[i] : ax->m[i])) + 0.5;
            cairo_move_to(cr, v, bottom);
            cairo_line_to(cr, v, bottom + len);
        }
        for (int i = 0; i < (pass ? ay->nt : ay->nm); i++) {
            double v = round(ax_tpx(ay, pass ? ay->t[i] : ay->m[i])) + 0.5;
            cairo_move_to(cr, pl.x, v);
            cairo_line_to(cr, pl.x - len, v);
        }
        set_rgb(cr, C_AXIS, 1);
        cairo_stroke(cr);
    }
    for (int i = 0; i < ax->nt; i++)
        text(cr, ax->lab[i], round(ax_tpx(ax, ax->t[i])) + 0.5, bottom + st->ticklen + 4, st->tick, 0, 0.5, 0, 0, C_TEXT);
    for (int i = 0; i < ay->nt; i++)
        text(cr, ay->lab[i], pl.x - st->ticklen - 4, round(ax_tpx(ay, ay->t[i])) + 0.5, st->tick, 0, 1, 0.5, 0, C_TEXT);
}

/* The bars of a panel with their whiskers, and a line at y = 0 when the range crosses it. */
static void draw_bars(const rctx *c, int pi, const axis *ax, const axis *ay, rect pl, rect cl) {
    const plt_panel *p = &c->f->p[pi];
    cairo_t *cr = c->cr;
    int nb = bar_count(p), k = 0;
    double wlw = c->grid ? 1.1 : 1.4;
    for (int s = 0; s < p->nser; s++) {
        const plt_series *S = &p->ser[s];
        if (!S->bar) continue;
        set_rgb(cr, c->scol[pi][s], 1);
        for (size_t i = 0; i < S->n; i++) {
            rect b;
            double w0, w1;
            if (bar_geom(S, k, nb, i, ax, ay, cl, &b, &w0, &w1) && b.h > 0) cairo_rectangle(cr, b.x, b.y, b.w, b.h);
        }
        cairo_fill(cr);
        k++;
    }
    if (!ay->log && ay->lo < 0 && ay->hi > 0) {
        double y = round(ax_px(ay, 0)) + 0.5;
        cairo_set_line_width(cr, 1);
        set_dash(cr, ICL_SOLID, 1);
        cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
        cairo_move_to(cr, pl.x, y);
        cairo_line_to(cr, pl.x + pl.w, y);
        set_rgb(cr, C_AXIS, 1);
        cairo_stroke(cr);
    }
    /* whiskers with caps, over all bars so a neighbour never hides one */
    cairo_set_line_width(cr, wlw);
    set_dash(cr, ICL_SOLID, wlw);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    k = 0;
    for (int s = 0; s < p->nser; s++) {
        const plt_series *S = &p->ser[s];
        if (!S->bar) continue;
        for (size_t i = 0; i < S->n; i++) {
            rect b;
            double w0, w1;
            if (!bar_geom(S, k, nb, i, ax, ay, cl, &b, &w0, &w1) || !(w0 == w0)) continue;
            double cx = floor(b.x + b.w / 2) + 0.5, cap = fmin(c->grid ? 4 : 6, fmax(1.5, 0.25 * b.w));
            cairo_move_to(cr, cx, w0);
            cairo_line_to(cr, cx, w1);
            for (int e = 0; e < 2 && b.w >= 4; e++) { /* caps, unless bars are hairlines */
                double y = round(e ? w1 : w0);
                cairo_move_to(cr, cx - cap, y);
                cairo_line_to(cr, cx + cap, y);
            }
        }
        k++;
    }
    set_rgb(cr, 0x333333, 1);
    cairo_stroke(cr);
}

/* Group labels under a bar panel, centred on their groups or turned 45 degrees. */
static void draw_group_labels(const rctx *c, const plt_panel *p, const axis *ax, rect pl, const glab *gl) {
    char nb[16];
    double y = pl.y + pl.h + 5;
    for (int i = 0; i < p->ngroups; i += gl->stride) {
        double cx = ax_px(ax, i);
        if (cx < pl.x - 0.5 || cx > pl.x + pl.w + 0.5) continue;
        const char *s = group_label(p, i, nb, sizeof nb);
        if (gl->rot) text(c->cr, s, cx + 0.35 * gl->th, y, c->st->tick, 0, 1, 0, -M_PI / 4, C_TEXT);
        else text(c->cr, s, cx, y, c->st->tick, 0, 0.5, 0, 0, C_TEXT);
    }
}

/* Title and axis labels of a panel whose plot area is pl inside r. */
static void draw_labels(const rctx *c, const plt_panel *p, rect r, rect pl) {
    const sty *st = c->st;
    text(c->cr, p->title, pl.x + pl.w / 2, r.y + st->pad, st->title, !c->grid, 0.5, 0, 0, C_TEXT);
    text(c->cr, p->xlabel, pl.x + pl.w / 2, r.y + r.h - st->pad - 0.25 * st->label, st->label, 0, 0.5, 1, 0, C_TEXT);
    text(c->cr, p->ylabel, r.x + st->pad, pl.y + pl.h / 2, st->label, 0, 0.5, 0, -M_PI / 2, C_TEXT);
}

/* Draws x-y panel pi inside r; returns its plot area in *pl. */
static void xy_panel(const rctx *c, int pi, rect r, rect *pl) {
    const plt_panel *p = &c->f->p[pi];
    cairo_t *cr = c->cr;
    const sty *st = c->st;
    int pts_only = p->nser == 0 && p->np > 0;
    int equal = is_bar_panel(p) ? 0 : p->equal >= 0 ? p->equal : (c->f->kind == PLT_SCATTER || (c->grid && pts_only));
    int ticks = p->ticks >= 0 ? p->ticks : !(c->grid && pts_only);
    legend L;
    L.n = 0;
    L.w = L.h = 0;
    if (!c->grid && p->legend != ICL_LEGEND_NONE) {
        legend_build(c->f, c->scol, pi, pi + 1, &L);
        legend_measure(cr, &L, st);
    }
    int outside = L.n && p->legend == ICL_LEGEND_OUTSIDE;
    axis ax, ay;
    glab gl;
    xy_layout(c, p, r, outside ? L.w + 14 : 0, ticks, equal, &ax, &ay, pl, &gl);
    int spot = -1;
    if (L.n && !outside) {
        if (p->legend == ICL_LEGEND_AUTO) spot = legend_spot(p, &ax, &ay, *pl, &L);
        else spot = p->legend == ICL_LEGEND_UPPER_RIGHT ? 0 : p->legend == ICL_LEGEND_UPPER_LEFT ? 1
                  : p->legend == ICL_LEGEND_LOWER_LEFT ? 2 : 3;
        if (spot < 0) {
            outside = 1;
            xy_layout(c, p, r, L.w + 14, ticks, equal, &ax, &ay, pl, &gl);
        }
    }
    draw_axes(c, &ax, &ay, *pl, ticks);

    /* data, clipped to the plot area */
    cairo_save(cr);
    cairo_rectangle(cr, pl->x, pl->y, pl->w, pl->h);
    cairo_clip(cr);
    rect cl = grow_rect(*pl, 10);
    for (int s = 0; s < p->nser; s++)
        if (p->ser[s].lo) draw_band(cr, &p->ser[s], &ax, &ay, cl, c->scol[pi][s]);
    if (is_bar_panel(p)) draw_bars(c, pi, &ax, &ay, *pl, cl);
    cairo_set_line_width(cr, 1.3);
    set_rgb(cr, C_REF, 0.9);
    set_dash(cr, ICL_DOTTED, 1.3);
    for (int i = 0; i < p->nvl; i++) {
        if (!plt_ok(p->vl[i].v, ax.log)) continue;
        double x = round(ax_px(&ax, p->vl[i].v)) + 0.5;
        cairo_move_to(cr, x, pl->y);
        cairo_line_to(cr, x, pl->y + pl->h);
    }
    cairo_stroke(cr);
    set_dash(cr, ICL_DASHED, 1.6);
    for (int i = 0; i < p->nhl; i++) {
        if (!plt_ok(p->hl[i].v, ay.log)) continue;
        double y = round(ax_px(&ay, p->hl[i].v)) + 0.5;
        cairo_move_to(cr, pl->x, y);
        cairo_line_to(cr, pl->x + pl->w, y);
    }
    cairo_stroke(cr);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    for (int s = 0; s < p->nser; s++) {
        if (p->ser[s].bar) continue;
        cairo_set_line_width(cr, st->lw);
        set_dash(cr, p->ser[s].dash, st->lw);
        set_rgb(cr, c->scol[pi][s], 1);
        draw_line(cr, &p->ser[s], &ax, &ay, cl, st->lw);
    }
    for (int s = 0; s < p->nser; s++)
        if (p->ser[s].markers && !p->ser[s].bar) {
            set_rgb(cr, c->scol[pi][s], 1);
            draw_markers(cr, &p->ser[s], &ax, &ay, cl, st->marker);
        }
    if (p->np) draw_points(cr, p, &ax, &ay, cl, p->marker_r > 0 ? p->marker_r : st->point);
    cairo_restore(cr);

    /* labels of reference lines and notes, on top of the data */
    for (int i = 0; i < p->nvl; i++) {
        if (!p->vl[i].label || !plt_ok(p->vl[i].v, ax.log)) continue;
        double x = ax_px(&ax, p->vl[i].v);
        if (x < pl->x - 0.5 || x > pl->x + pl->w + 0.5) continue;
        int left = x + 4 + text_w(cr, p->vl[i].label, st->note, 0) > pl->x + pl->w - 2;
        text_halo(cr, p->vl[i].label, left ? x - 4 : x + 4, pl->y + 6, st->note, left, 0, C_TEXT);
    }
    for (int i = 0; i < p->nhl; i++) {
        if (!p->hl[i].label || !plt_ok(p->hl[i].v, ay.log)) continue;
        double y = ax_px(&ay, p->hl[i].v);
        if (y < pl->y - 0.5 || y > pl->y + pl->h + 0.5) continue;
        int below = y - 5 - CAP * st->note < pl->y + 2;
        /* at the right end, unless the left end covers fewer data */
        double tw = text_w(cr, p->hl[i].label, st->note, 0), bh = CAP * st->note + 2;
        double by = below ? y + 4 : y - 4 - bh;
        long nr = overlap(p, &ax, &ay, (rect){pl->x + pl->w - 6 - tw, by, tw, bh});
        long nl = overlap(p, &ax, &ay, (rect){pl->x + 6, by, tw, bh});
        int left = nl < nr;
        text_halo(cr, p->hl[i].label, left ? pl->x + 6 : pl->x + pl->w - 6, below ? y + 5 : y - 5, st->note, !left,
                  below ? 0 : 1, C_REF);
    }
    for (int i = 0; i < p->ntx; i++) {
        if (!pt_ok(&ax, &ay, p->tx[i].v, p->tx[i].w)) continue;
        double x = ax_px(&ax, p->tx[i].v), y = ax_px(&ay, p->tx[i].w);
        if (in_rect(x, y, *pl)) text(cr, p->tx[i].label, x + 4, y - 4, st->note, 0, 0, 1, 0, C_TEXT);
    }
    if (is_bar_panel(p)) draw_group_labels(c, p, &ax, *pl, &gl);
    draw_labels(c, p, r, *pl);
    if (L.n) {
        double lx, ly;
        if (outside) {
            lx = pl->x + pl->w + 14;
            ly = pl->y;
        } else {
            legend_at(spot, *pl, &L, &lx, &ly);
        }
        legend_draw(cr, &L, st, lx, ly);
    }
}

/* ---- heatmaps ------------------------------------------------------------------------------------------ */

/* Colour-map range of a heatmap: explicit ends, else the data's (diverging: -m..m, m = max|z|). */
static void heat_range(const plt_panel *p, double *vmin, double *vmax) {
    double mn = INFINITY, mx = -INFINITY, am = 0;
    size_t n = (size_t)p->zr * (size_t)p->zc;
    for (size_t i = 0; i < n; i++) {
        double v = p->z[i];
        if (!plt_ok(v, 0)) continue;
        mn = fmin(mn, v);
        mx = fmax(mx, v);
        am = fmax(am, fabs(v));
    }
    double lo, hi;
    if (p->cmap == ICL_CMAP_DIVERGING) {
        lo = -(am > 0 ? am : 1);
        hi = am > 0 ? am : 1;
    } else if (mn <= mx) {
        lo = mn;
        hi = mx;
        if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) { /* all equal: a band around the value */
            double c = 0.5 * (lo + hi), d = c != 0 ? 0.1 * fabs(c) : 0.5;
            lo = c - d;
            hi = c + d;
        }
    } else {
        lo = 0; /* nothing finite */
        hi = 1;
    }
    if (p->vmin == p->vmin) lo = p->vmin;
    if (p->vmax == p->vmax) hi = p->vmax;
    if (!(lo < hi)) {
        double span = fabs(lo) + fabs(hi) > 0 ? 0.5 * (fabs(lo) + fabs(hi)) : 1;
        if (p->vmin == p->vmin) hi = lo + span;
        else lo = hi - span;
    }
    *vmin = lo;
    *vmax = hi;
}

/* Position of value v on the colour map, 0..1 (the diverging map keeps 0 at the middle). */
static double heat_t(const plt_panel *p, double v, double lo, double hi) {
    if (p->cmap == ICL_CMAP_DIVERGING) {
        if (v >= 0) return hi > 0 ? 0.5 + 0.5 * v / hi : 1;
        return lo < 0 ? 0.5 - 0.5 * v / lo : 0;
    }
    return (v - lo) / (hi - lo);
}

/* Label of row or column i: the caller's, or the index. */
static const char *heat_label(char *const *labs, int i, char *buf, size_t n) {
    if (labs && labs[i]) return labs[i];
    snprintf(buf, n, "%d", i);
    return buf;
}

/* The cells: rectangles on whole pixels (no seams), or for big matrices one image scaled with
 * nearest-neighbour filtering. */
static void heat_cells(cairo_t *cr, const plt_panel *p, double x0, double y0, double cw, double ch, double lo,
                       double hi) {
    int R = p->zr, C = p->zc;
    double rgb[3];
    if ((long)R * C > 4096 || cw < 3 || ch < 3) {
        cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, C, R);
        if (cairo_surface_status(img) == CAIRO_STATUS_SUCCESS) {
            unsigned char *data = cairo_image_surface_get_data(img);
            int stride = cairo_image_surface_get_stride(img);
            for (int i = 0; i < R; i++)
                for (int j = 0; j < C; j++) {
                    double v = p->z[(size_t)i * C + j];
                    if (plt_ok(v, 0)) cmap_rgb(p->cmap, heat_t(p, v, lo, hi), rgb);
                    else rgb[0] = rgb[1] = rgb[2] = 0xD0 / 255.0;
                    uint32_t px = 0xFF000000u | (uint32_t)lround(rgb[0] * 255) << 16 |
                                  (uint32_t)lround(rgb[1] * 255) << 8 | (uint32_t)lround(rgb[2] * 255);
                    memcpy(data + (size_t)i * stride + 4 * (size_t)j, &px, 4);
                }
            cairo_surface_mark_dirty(img);
            cairo_save(cr);
            cairo_rectangle(cr, x0, y0, cw * C, ch * R);
            cairo_clip(cr);
            cairo_translate(cr, x0, y0);
            cairo_scale(cr, cw, ch);
            cairo_set_source_surface(cr, img, 0, 0);
            cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
            cairo_paint(cr);
            cairo_restore(cr);
        }
        cairo_surface_destroy(img);
        return;
    }
    for (int i = 0; i < R; i++) {
        double ya = round(y0 + i * ch), yb = round(y0 + (i + 1) * ch);
        for (int j = 0; j < C; j++) {
            double xa = round(x0 + j * cw), xb = round(x0 + (j + 1) * cw);
            double v = p->z[(size_t)i * C + j];
            if (plt_ok(v, 0)) {
                cmap_rgb(p->cmap, heat_t(p, v, lo, hi), rgb);
                cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            } else {
                set_rgb(cr, 0xD0D0D0, 1);
            }
            cairo_rectangle(cr, xa, ya, xb - xa, yb - ya);
            cairo_fill(cr);
        }
    }
}

/* Each cell's value as text, black or white for contrast; skipped when cells are too small. */
static void heat_annot(cairo_t *cr, const sty *st, const plt_panel *p, double x0, double y0, double cw, double ch,
                       double lo, double hi) {
    int R = p->zr, C = p->zc;
    char buf[96];
    double widest = 0;
    for (size_t i = 0; i < (size_t)R * C; i++)
        if (plt_ok(p->z[i], 0)) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(buf, sizeof buf, p->annot, p->z[i]);
#pragma GCC diagnostic pop
            widest = fmax(widest, text_w(cr, buf, 10, 0) / 10);
        }
    double fs = fmin(st->note, 0.45 * ch);
    if (widest > 0) fs = fmin(fs, (cw - 6) / widest);
    if (fs < 7) return;
    double rgb[3];
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) {
            double v = p->z[(size_t)i * C + j];
            if (!plt_ok(v, 0)) continue;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
            snprintf(buf, sizeof buf, p->annot, v);
#pragma GCC diagnostic pop
            cmap_rgb(p->cmap, heat_t(p, v, lo, hi), rgb);
            double lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
            text(cr, buf, x0 + (j + 0.5) * cw, y0 + (i + 0.5) * ch, fs, 0, 0.5, 0.5, 0, lum > 0.5 ? 0x111111 : 0xFFFFFF);
        }
}

/* Every how many rows (or columns) a label fits when each label needs need pixels and a row
 * gets have: 1, 2, 5, 10, 20, 50, ... so the labelled indices are round numbers. */
static int label_stride(double need, double have) {
    if (have >= need) return 1;
    double k = need / have;
    for (int s = 1;; s *= 10) {
        if (k <= s) return s;
        if (k <= 2 * s) return 2 * s;
        if (k <= 5 * s) return 5 * s;
        if (s > 100000000) return s * 10;
    }
}

/* Draws heatmap panel pi inside r: cells, row/column labels, colour bar; *pl = the cell block. */
static void heat_panel(const rctx *c, int pi, rect r, rect *pl) {
    const plt_panel *p = &c->f->p[pi];
    cairo_t *cr = c->cr;
    const sty *st = c->st;
    int R = p->zr, C = p->zc;
    char nb[16];
    double row_w = 0, col_w = 0, th = st->tick * 1.2;
    for (int i = 0; i < R; i++) row_w = fmax(row_w, text_w(cr, heat_label(p->rowlab, i, nb, sizeof nb), st->tick, 0));
    for (int j = 0; j < C; j++) col_w = fmax(col_w, text_w(cr, heat_label(p->collab, j, nb, sizeof nb), st->tick, 0));
    double lo, hi;
    heat_range(p, &lo, &hi);
    axis cb;
    memset(&cb, 0, sizeof cb);
    cb.lo = lo;
    cb.hi = hi;
    cb.a = r.h * 0.7;
    cb.b = 0;
    make_ticks(&cb, 40);
    double cbw = ticks_w(cr, &cb, st->tick);
    double bar = c->grid ? 10 : 14, gap = c->grid ? 8 : 14;
    double L1 = (p->ylabel ? st->label * 1.6 : 0) + row_w + 6;
    double Rcb = gap + bar + 4 + 3 + cbw + (p->cblabel ? st->label * 1.6 : 0);
    double T = p->title ? st->title * 1.75 : 0, Bx = p->xlabel ? st->label * 1.6 : 0;
    double aw = fmax(C, r.w - 2 * st->pad - L1 - Rcb), cw = aw / C;
    int rot = col_w + 6 > cw;
    double blab = 0, ah = 0, ch = 0;
    for (int pass = 0; pass < 2; pass++) {
        blab = rot ? 0.7071 * (col_w + th) + 6 : th + 6;
        ah = fmax(R, r.h - 2 * st->pad - T - blab - Bx);
        ch = fmin(pass ? ch : ah / R, ah / R);
        if (pass == 0) { /* keep cells from getting more than 1.6 times wider than tall or vice versa */
            cw = fmin(cw, 1.6 * ch);
            ch = fmin(ch, 1.6 * cw);
        }
        if (rot || col_w + 6 <= cw) break;
        rot = 1;
    }
    double bw = cw * C, bh = ch * R;
    double W = L1 + bw + Rcb, H = T + bh + blab + Bx;
    double ox = r.x + st->pad + fmax(0, (r.w - 2 * st->pad - W) / 2), oy = r.y + st->pad + fmax(0, (r.h - 2 * st->pad - H) / 2);
    double x0 = round(ox + L1), y0 = round(oy + T);
    *pl = (rect){x0, y0, bw, bh};
    heat_cells(cr, p, x0, y0, cw, ch, lo, hi);
    if (p->annot) heat_annot(cr, st, p, x0, y0, cw, ch, lo, hi);

    /* row labels (thinned out when rows are shorter than the text), column labels (turned 45
     * degrees when wider than a column, thinned out when still too dense) */
    int rs = label_stride(1.15 * th, ch);
    for (int i = 0; i < R; i += rs)
        text(cr, heat_label(p->rowlab, i, nb, sizeof nb), x0 - 6, y0 + (i + 0.5) * ch, st->tick, 0, 1, 0.5, 0, C_TEXT);
    int cs = !rot ? 1 : label_stride(1.15 * th, cw * 0.7071);
    for (int j = 0; j < C; j += cs) {
        const char *s = heat_label(p->collab, j, nb, sizeof nb);
        double cx = x0 + (j + 0.5) * cw;
        if (rot) text(cr, s, cx + 0.35 * th, y0 + bh + 5, st->tick, 0, 1, 0, -M_PI / 4, C_TEXT);
        else text(cr, s, cx, y0 + bh + 5, st->tick, 0, 0.5, 0, 0, C_TEXT);
    }

    /* colour bar: a gradient sampled from the map, with round-number ticks */
    double bx = x0 + bw + gap;
    cairo_pattern_t *g = cairo_pattern_create_linear(0, y0 + bh, 0, y0);
    double rgb[3];
    for (int k = 0; k <= 64; k++) {
        double t = k / 64.0;
        cmap_rgb(p->cmap, heat_t(p, lo + t * (hi - lo), lo, hi), rgb);
        cairo_pattern_add_color_stop_rgb(g, t, rgb[0], rgb[1], rgb[2]);
    }
    cairo_rectangle(cr, bx, y0, bar, bh);
    cairo_set_source(cr, g);
    cairo_fill(cr);
    cairo_pattern_destroy(g);
    cairo_set_line_width(cr, 1);
    set_dash(cr, ICL_SOLID, 1);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_BUTT);
    cairo_rectangle(cr, round(bx) + 0.5, y0 + 0.5, round(bar) - 1, round(bh) - 1);
    cb.a = y0 + bh;
    cb.b = y0;
    make_ticks(&cb, c->grid ? 28 : 40);
    for (int i = 0; i < cb.nt; i++) {
        double y = round(ax_tpx(&cb, cb.t[i])) + 0.5;
        cairo_move_to(cr, bx + bar, y);
        cairo_line_to(cr, bx + bar + 4, y);
    }
    set_rgb(cr, C_AXIS, 1);
    cairo_stroke(cr);
    double tw = 0;
    for (int i = 0; i < cb.nt; i++) {
        text(cr, cb.lab[i], bx + bar + 7, round(ax_tpx(&cb, cb.t[i])) + 0.5, st->tick, 0, 0, 0.5, 0, C_TEXT);
        tw = fmax(tw, text_w(cr, cb.lab[i], st->tick, 0));
    }
    text(cr, p->cblabel, bx + bar + 7 + tw + 8, y0 + bh / 2, st->label, 0, 0.5, 0, -M_PI / 2, C_TEXT);

    text(cr, p->title, x0 + bw / 2, oy, st->title, !c->grid, 0.5, 0, 0, C_TEXT);
    text(cr, p->ylabel, ox, y0 + bh / 2, st->label, 0, 0.5, 0, -M_PI / 2, C_TEXT);
    text(cr, p->xlabel, x0 + bw / 2, y0 + bh + blab + st->label * 1.1, st->label, 0, 0.5, 1, 0, C_TEXT);
}

/* ---- figures --------------------------------------------------------------------------------------------- */

/* Series colours, (panel)(series): the caller's override, else the colour of an earlier series
 * with the same name (so a name keeps its colour across grid panels), else the next palette
 * colour. *block receives the one allocation to free (with the returned array). */
static unsigned **assign_colours(const icl_fig *f, unsigned **block) {
    int np = f->rows * f->cols;
    size_t total = 1;
    for (int i = 0; i < np; i++) total += (size_t)f->p[i].nser;
    unsigned **sc = malloc((size_t)np * sizeof *sc);
    unsigned *blk = malloc(total * sizeof *blk);
    if (!sc || !blk) {
        free(sc);
        free(blk);
        return NULL;
    }
    size_t off = 0;
    int next = 0;
    for (int i = 0; i < np; i++) {
        sc[i] = blk + off;
        off += (size_t)f->p[i].nser;
        for (int j = 0; j < f->p[i].nser; j++) {
            const plt_series *s = &f->p[i].ser[j];
            int found = 0;
            if (s->has_rgb) {
                sc[i][j] = s->rgb;
                continue;
            }
            for (int i2 = 0; i2 <= i && s->name && !found; i2++)
                for (int j2 = 0; j2 < (i2 == i ? j : f->p[i2].nser) && !found; j2++) {
                    const plt_series *t = &f->p[i2].ser[j2];
                    if (!t->has_rgb && t->name && !strcmp(t->name, s->name)) {
                        sc[i][j] = sc[i2][j2];
                        found = 1;
                    }
                }
            if (!found) sc[i][j] = PALETTE[next++ % 10];
        }
    }
    *block = blk;
    return sc;
}

static int panel_has_data(const plt_panel *p) { return p->nser || p->np || p->z; }

/* Header font size of grids (row / column headers) and their title. */
#define GRID_HDR 13.0
#define GRID_TITLE 16.5

/* Lays out and draws a grid: title, column headers, row headers, panels, shared legend. */
static void draw_grid(const rctx *c, double w, double h) {
    const icl_fig *f = c->f;
    cairo_t *cr = c->cr;
    legend L;
    L.n = 0;
    L.w = L.h = 0;
    if (f->legend != ICL_LEGEND_NONE) {
        legend_build(f, c->scol, 0, f->rows * f->cols, &L);
        legend_measure(cr, &L, c->st);
    }
    double top = 10 + (f->title ? GRID_TITLE * 1.6 : 0) + (f->colhdr ? GRID_HDR * 1.5 : 0);
    double left = 8 + (f->rowhdr ? GRID_HDR * 1.6 : 0), right = 8 + (L.n ? L.w + 16 : 0), bottom = 6;
    double pw = fmax(1, (w - left - right) / f->cols), ph = fmax(1, (h - top - bottom) / f->rows);
    double cx0 = left, cx1 = w - right; /* horizontal extent of the plot areas, for the title */
    for (int i = 0; i < f->rows; i++)
        for (int j = 0; j < f->cols; j++) {
            int k = i * f->cols + j;
            const plt_panel *p = &f->p[k];
            rect r = {left + j * pw, top + i * ph, pw, ph}, pl;
            if (p->z) heat_panel(c, k, r, &pl);
            else if (panel_has_data(p)) xy_panel(c, k, r, &pl);
            else {
                pl = grow_rect(r, -c->st->pad);
                text(cr, p->title, pl.x + pl.w / 2, r.y + c->st->pad, c->st->title, 0, 0.5, 0, 0, C_TEXT);
            }
            if (i == 0 && j == 0) cx0 = pl.x;
            if (i == 0 && j == f->cols - 1) cx1 = pl.x + pl.w;
            if (i == 0 && f->colhdr)
                text(cr, f->colhdr[j], pl.x + pl.w / 2, top - 0.45 * GRID_HDR, GRID_HDR, 1, 0.5, 1, 0, C_TEXT);
            if (j == 0 && f->rowhdr)
                text(cr, f->rowhdr[i], 8, pl.y + pl.h / 2, GRID_HDR, 1, 0.5, 0, -M_PI / 2, C_TEXT);
        }
    text(cr, f->title, (cx0 + cx1) / 2, 10, GRID_TITLE, 1, 0.5, 0, 0, C_TEXT);
    if (L.n) legend_draw(cr, &L, c->st, w - 8 - L.w, top + fmax(0, (h - top - bottom - L.h) / 2));
}

int plt_render(const icl_fig *f, cairo_t *cr, double w, double h) {
    cairo_font_options_t *fo = cairo_font_options_create();
    cairo_font_options_set_antialias(fo, CAIRO_ANTIALIAS_GRAY);
    cairo_font_options_set_hint_style(fo, CAIRO_HINT_STYLE_SLIGHT);
    cairo_font_options_set_hint_metrics(fo, CAIRO_HINT_METRICS_OFF);
    cairo_set_font_options(cr, fo);
    cairo_font_options_destroy(fo);
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    unsigned *blk = NULL;
    unsigned **sc = assign_colours(f, &blk);
    if (!sc) return -1;
    /* Text and marks shrink on canvases smaller than about 640 x 400 so the plot keeps room. */
    sty small = STY_SINGLE;
    double k = fmax(0.55, fmin(1, fmin(w / 640, h / 400)));
    small.title *= k, small.label *= k, small.tick *= k, small.legend *= k, small.note *= k;
    small.pad *= k, small.lw *= k, small.ticklen *= k, small.marker *= k, small.point *= k;
    rctx c = {cr, f, sc, f->kind == PLT_GRID ? &STY_GRID : &small, f->kind == PLT_GRID};
    rect pl, r = {0, 0, w, h};
    if (f->kind == PLT_GRID) draw_grid(&c, w, h);
    else if (f->p[0].z) heat_panel(&c, 0, r, &pl);
    else xy_panel(&c, 0, r, &pl);
    free(sc);
    free(blk);
    return 0;
}

/* Preferred panel size in a grid: heatmaps need room for a colour bar, bare scatters less, bar
 * charts room for their bars. */
static void panel_pref(const plt_panel *p, double *w, double *h) {
    if (p->z) *w = 270, *h = 220;
    else if (is_bar_panel(p)) *w = fmax(250, fmin(600, 70 + p->ngroups * (bar_count(p) * 9 + 8))), *h = 210;
    else if (p->nser == 0 && p->np > 0 && p->ticks != 1) *w = 175, *h = 165;
    else *w = 250, *h = 210;
}

void plt_default_size(const icl_fig *f, int *w, int *h) {
    if (f->kind == PLT_LINE) *w = 800, *h = 500;
    else if (f->kind == PLT_SCATTER) *w = 760, *h = 560;
    else if (f->kind == PLT_HEAT) *w = 720, *h = 560;
    else if (f->kind == PLT_BARS) { /* wider with many bars, up to 1600 */
        *w = (int)fmax(800, fmin(1600, 200 + f->p[0].ngroups * (bar_count(&f->p[0]) * 16 + 14)));
        *h = 500;
    }
    if (f->kind != PLT_GRID) return;
    double pw = 60, ph = 60;
    for (int i = 0; i < f->rows * f->cols; i++) {
        double a, b;
        panel_pref(&f->p[i], &a, &b);
        pw = fmax(pw, a);
        ph = fmax(ph, b);
    }
    /* measure the shared legend on a scratch surface */
    double lw = 0;
    cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, 4, 4);
    cairo_t *cr = cairo_create(s);
    unsigned *blk = NULL;
    unsigned **sc = assign_colours(f, &blk);
    if (sc && f->legend != ICL_LEGEND_NONE) {
        legend *L = malloc(sizeof *L);
        if (L) {
            legend_build(f, sc, 0, f->rows * f->cols, L);
            legend_measure(cr, L, &STY_GRID);
            lw = L->n ? L->w + 16 : 0;
            free(L);
        }
    }
    free(sc);
    free(blk);
    cairo_destroy(cr);
    cairo_surface_destroy(s);
    double fixw = 16 + (f->rowhdr ? GRID_HDR * 1.6 : 0) + lw;
    double fixh = 16 + (f->title ? GRID_TITLE * 1.6 : 0) + (f->colhdr ? GRID_HDR * 1.5 : 0);
    pw = fmax(40, fmin(pw, (16000 - fixw) / f->cols));
    ph = fmax(40, fmin(ph, (16000 - fixh) / f->rows));
    *w = (int)fmin(16384, fmax(100, ceil(fixw + f->cols * pw)));
    *h = (int)fmin(16384, fmax(100, ceil(fixh + f->rows * ph)));
}
