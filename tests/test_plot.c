/* Tests of icl_plot: every figure kind (line with log axes, gaps, bands, reference lines;
 * heatmaps with both colour maps; scatter; grids of panels) rendered to PNG, SVG and PDF, read
 * back and checked (size, not flat, colours where they must be); degenerate data; bad input
 * giving errors and leaving no file. With ICLAB_PLOT_SAMPLES=dir the figures are kept in dir
 * for looking at; otherwise they go to a temporary directory that is removed. */
#include <cairo.h>
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"

static char dir[1024];
static int keep;

static const char *P(const char *name) {
    static char buf[8][1400];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A PNG read back: its pixels as 0xRRGGBB, row-major (h, w). */
typedef struct img {
    int w, h;
    uint32_t *px;
} img;

/* Copies a decoded PNG surface into im (and destroys the surface). */
static int surface_img(cairo_surface_t *s, img *im) {
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        return -1;
    }
    im->w = cairo_image_surface_get_width(s);
    im->h = cairo_image_surface_get_height(s);
    im->px = malloc((size_t)im->w * im->h * 4);
    const unsigned char *d = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    for (int y = 0; y < im->h; y++)
        for (int x = 0; x < im->w; x++) {
            uint32_t v;
            memcpy(&v, d + (size_t)y * stride + 4 * (size_t)x, 4);
            im->px[(size_t)y * im->w + x] = v & 0xFFFFFF;
        }
    cairo_surface_destroy(s);
    return 0;
}

static int load_png(const char *path, img *im) { return surface_img(cairo_image_surface_create_from_png(path), im); }

/* A PNG in memory, read by cairo's stream reader. */
typedef struct memrd {
    const unsigned char *d;
    size_t n, off;
} memrd;

static cairo_status_t mem_read(void *closure, unsigned char *data, unsigned int len) {
    memrd *r = closure;
    if (r->n - r->off < len) return CAIRO_STATUS_READ_ERROR;
    memcpy(data, r->d + r->off, len);
    r->off += len;
    return CAIRO_STATUS_SUCCESS;
}

static int load_png_buffer(const unsigned char *png, size_t len, img *im) {
    memrd r = {png, len, 0};
    return surface_img(cairo_image_surface_create_from_png_stream(mem_read, &r), im);
}

static size_t distinct_colours(const img *im) {
    size_t n = (size_t)im->w * im->h;
    uint32_t *c = malloc(n * 4);
    memcpy(c, im->px, n * 4);
    qsort(c, n, 4, cmp_u32);
    size_t k = n ? 1 : 0;
    for (size_t i = 1; i < n; i++) k += c[i] != c[i - 1];
    free(c);
    return k;
}

/* 1 if colour a is within tol of b in every channel. */
static int near_rgb(uint32_t a, uint32_t b, int tol) {
    for (int s = 0; s < 24; s += 8) {
        int d = (int)((a >> s) & 255) - (int)((b >> s) & 255);
        if (d < -tol || d > tol) return 0;
    }
    return 1;
}

static long count_near(const img *im, uint32_t rgb, int tol) {
    long n = 0;
    for (size_t i = 0; i < (size_t)im->w * im->h; i++) n += near_rgb(im->px[i], rgb, tol);
    return n;
}

/* Saves fig as name.png, name.svg and name.pdf and checks each file; returns the PNG's
 * distinct colour count (0 on failure). */
static size_t save_all(const icl_fig *f, const char *name, int w, int h, size_t min_colours) {
    char path[256];
    icl_err err = {{0}};
    int dw, dh;
    icl_fig_default_size(f, &dw, &dh);
    int ew = w > 0 ? w : dw, eh = h > 0 ? h : dh;
    snprintf(path, sizeof path, "%s.png", name);
    int rc = icl_fig_save(f, P(path), w, h, &err);
    CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
    size_t ncol = 0;
    img im = {0};
    if (rc == 0 && load_png(P(path), &im) == 0) {
        CHECK_MSG(im.w == ew && im.h == eh, "%s is %dx%d, expected %dx%d", path, im.w, im.h, ew, eh);
        ncol = distinct_colours(&im);
        CHECK_MSG(ncol >= min_colours, "%s has %zu distinct colours, expected >= %zu", path, ncol, min_colours);
        free(im.px);
    } else {
        CHECK_MSG(0, "%s did not read back as PNG", path);
    }
    snprintf(path, sizeof path, "%s.svg", name);
    rc = icl_fig_save(f, P(path), w, h, &err);
    CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
    char *data = NULL;
    size_t n = 0;
    if (rc == 0 && icl_read_file(P(path), &data, &n, &err) == 0) {
        CHECK_MSG(n > 1000 && (!strncmp(data, "<?xml", 5) || strstr(data, "<svg")), "%s is not SVG", path);
        CHECK_MSG(strstr(data, "<title>") != NULL, "%s lacks <title>", path);
        free(data);
    }
    snprintf(path, sizeof path, "%s.pdf", name);
    rc = icl_fig_save(f, P(path), w, h, &err);
    CHECK_MSG(rc == 0, "%s: %s", path, err.msg);
    if (rc == 0 && icl_read_file(P(path), &data, &n, &err) == 0) {
        CHECK_MSG(n > 500 && !strncmp(data, "%PDF", 4), "%s is not PDF", path);
        free(data);
    }
    return ncol;
}

/* A smooth drop from hi to lo around epoch e0 (log scale), like a loss curve learning a basis. */
static double drop(double epoch, double e0, double hi, double lo) {
    return lo + (hi - lo) / (1 + pow(epoch / e0, 4));
}

/* Fig. 2 style: test MSE per basis over epochs on log-x, phase markers, reference lines. */
static void test_line(void) {
    enum { N = 120 };
    double ep[N], y[4][N], lo[N], hi[N];
    icl_rng rng;
    icl_rng_seed(&rng, 7);
    const double e0[4] = {9, 11, 38, 45};
    for (int i = 0; i < N; i++) {
        ep[i] = pow(10, 3.0 * i / (N - 1)) * 0.3 + 0.7; /* 1 .. 300 epochs, log-spaced */
        for (int b = 0; b < 4; b++) y[b][i] = drop(ep[i], e0[b], 1.0, 0.04 + 0.01 * b) * (1 + 0.03 * icl_rng_normal(&rng));
        lo[i] = y[0][i] * 0.85;
        hi[i] = y[0][i] * 1.15;
    }
    icl_fig *f = icl_fig_line("Test MSE per basis (D=16, r=4)", "epoch", "test MSE");
    CHECK(f != NULL);
    const char *names[4] = {"basis 1", "basis 2", "basis 3", "basis 4"};
    for (int b = 0; b < 4; b++) CHECK(icl_fig_add_series(f, names[b], ep, y[b], N) == b);
    CHECK(icl_fig_series_band(f, 0, lo, hi) == 0);
    CHECK(icl_fig_set_logx(f, 1) == 0);
    CHECK(icl_fig_add_hline(f, 1.0, "chance") == 0);
    CHECK(icl_fig_add_hline(f, 0.02, "oracle LS") == 0);
    CHECK(icl_fig_add_vline(f, 5, "(a)") == 0);
    CHECK(icl_fig_add_vline(f, 20, "(b)") == 0);
    CHECK(icl_fig_add_vline(f, 100, "(c)") == 0);
    CHECK(icl_fig_error(f) == NULL);
    size_t nc = save_all(f, "line_logx", 0, 0, 100);
    CHECK(nc > 0);
    icl_fig_free(f);

    /* Log-log, markers, dashed series with its own colour, a gap and explicit limits. */
    f = icl_fig_line("Power law (log-log)", "steps", "loss");
    double x[30], a[30], b[30];
    for (int i = 0; i < 30; i++) {
        x[i] = pow(10, 1 + 4.0 * i / 29);
        a[i] = 3.0 * pow(x[i], -0.5);
        b[i] = 9.0 * pow(x[i], -0.7) + 1e-3;
    }
    a[12] = NAN;
    a[13] = -1; /* non-positive on a log axis: a gap too */
    int s0 = icl_fig_add_series(f, "a = 3 x^-0.5", x, a, 30);
    int s1 = icl_fig_add_series(f, "b (dashed, own colour)", x, b, 30);
    CHECK(icl_fig_series_markers(f, s0, 1) == 0);
    CHECK(icl_fig_series_dash(f, s1, ICL_DASHED) == 0);
    CHECK(icl_fig_series_color(f, s1, 0x222222) == 0);
    CHECK(icl_fig_set_logx(f, 1) == 0);
    CHECK(icl_fig_set_logy(f, 1) == 0);
    CHECK(icl_fig_set_ylim(f, 1e-3, NAN) == 0);
    save_all(f, "line_loglog", 0, 0, 100);
    icl_fig_free(f);
}

/* A NaN run must leave a visible gap: a flat line at mid-height with y = NaN for x in 40..59
 * (fixed limits 0..99 x 0..1). On the row holding the line, the longest stretch without the
 * line colour between its two ends must be about 20% of the plot width. */
static void test_gap(void) {
    double y[100];
    for (int i = 0; i < 100; i++) y[i] = (i >= 40 && i < 60) ? NAN : 0.5;
    icl_fig *f = icl_fig_line("gap", NULL, NULL);
    icl_fig_add_series(f, "flat", NULL, y, 100);
    icl_fig_series_color(f, 0, 0xFF0000);
    icl_fig_set_xlim(f, 0, 99);
    icl_fig_set_ylim(f, 0, 1);
    icl_fig_set_legend(f, ICL_LEGEND_NONE);
    icl_err err;
    CHECK(icl_fig_save(f, P("gap.png"), 800, 500, &err) == 0);
    img im = {0};
    CHECK(load_png(P("gap.png"), &im) == 0);
    int best_row = -1;
    long best = 0;
    for (int r = 0; r < im.h; r++) {
        long k = 0;
        for (int x = 0; x < im.w; x++) k += near_rgb(im.px[(size_t)r * im.w + x], 0xFF0000, 40);
        if (k > best) best = k, best_row = r;
    }
    CHECK(best > 400); /* ~80% of a ~700 px plot is drawn */
    int first = -1, last = -1, run = 0, longest = 0;
    for (int x = 0; x < im.w; x++)
        if (near_rgb(im.px[(size_t)best_row * im.w + x], 0xFF0000, 40)) {
            if (first < 0) first = x;
            last = x;
        }
    for (int x = first; x <= last && first >= 0; x++) {
        if (near_rgb(im.px[(size_t)best_row * im.w + x], 0xFF0000, 40)) run = 0;
        else if (++run > longest) longest = run;
    }
    double expect = 21.0 / 99 * (last - first); /* NaN from 40 to 59: the line stops at 39, restarts at 60 */
    CHECK_MSG(fabs(longest - expect) < 8, "gap of %d px, expected about %.0f", longest, expect);
    free(im.px);
    icl_fig_free(f);
}

/* The colour a marker of colour c gets when painted with opacity a over white. */
static uint32_t over_white(uint32_t c, double a) {
    uint32_t r = 0;
    for (int s = 0; s < 24; s += 8) r |= (uint32_t)lround(a * ((c >> s) & 255) + (1 - a) * 255) << s;
    return r;
}

static void test_heatmaps(void) {
    /* Fig. 7 style: patching deltas, diverging map centred at 0, annotated. */
    double z[16] = {-0.8, 0.3, 0.5, 0.0, 0.2, -0.6, 0.4, 0.35, 0.45, 0.3, -0.7, 0.6, 0.25, 0.8, 0.5, -0.5};
    const char *lab[4] = {"B1", "B2", "B3", "B4"};
    icl_fig *f = icl_fig_heatmap("Patching: change in MSE (layer 5, epoch 20)", "patched with mean of", "sequence basis", z, 4, 4);
    CHECK(icl_fig_heatmap_labels(f, lab, lab) == 0);
    CHECK(icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING) == 0);
    CHECK(icl_fig_heatmap_annotate(f, "%+.2f") == 0);
    CHECK(icl_fig_colorbar_label(f, "\xce\x94 MSE") == 0);
    save_all(f, "heat_diverging", 0, 0, 50);
    img im = {0};
    CHECK(load_png(P("heat_diverging.png"), &im) == 0);
    /* -0.8 and +0.8 are the ends of the automatic range -0.8..0.8; 0.0 is the white middle */
    CHECK_MSG(count_near(&im, 0x2166AC, 6) > 1500, "blue end: %ld px", count_near(&im, 0x2166AC, 6));
    CHECK_MSG(count_near(&im, 0xB2182B, 6) > 1500, "red end: %ld px", count_near(&im, 0xB2182B, 6));
    CHECK_MSG(count_near(&im, 0xF7F7F7, 3) > 1500, "white middle: %ld px", count_near(&im, 0xF7F7F7, 3));
    free(im.px);
    icl_fig_free(f);

    /* Pairwise TD, viridis, 6 x 6 with long column labels (rotated) */
    double td[36];
    const char *tasks[6] = {"AND", "OR", "XOR", "NAND", "NOR", "XNOR"};
    const char *long_tasks[6] = {"noun", "pronoun", "verb", "adjective", "adverb", "preposition"};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++) td[i * 6 + j] = i == j ? 0.5 : 0.5 + 0.45 * fabs(sin(i * 1.3 + j * 0.7));
    td[5] = 0.95;
    f = icl_fig_heatmap("Pairwise TD (4-shot)", NULL, NULL, td, 6, 6);
    icl_fig_heatmap_labels(f, tasks, long_tasks);
    icl_fig_heatmap_annotate(f, "%.2f");
    icl_fig_colorbar_label(f, "TD");
    save_all(f, "heat_viridis", 0, 0, 50);
    CHECK(load_png(P("heat_viridis.png"), &im) == 0);
    CHECK_MSG(count_near(&im, 0x440154, 6) > 1500, "viridis low end: %ld px", count_near(&im, 0x440154, 6));
    CHECK_MSG(count_near(&im, 0xFDE725, 6) > 800, "viridis high end: %ld px", count_near(&im, 0xFDE725, 6));
    free(im.px);
    icl_fig_free(f);

    /* a big matrix (drawn as an image) with a NaN block */
    enum { R = 120, C = 260 };
    double *big = malloc(sizeof(double) * R * C);
    for (int i = 0; i < R; i++)
        for (int j = 0; j < C; j++) big[i * C + j] = (i > 50 && i < 60 && j > 100 && j < 140) ? NAN : sin(i * 0.05) * cos(j * 0.03);
    f = icl_fig_heatmap("Big matrix, NaN block", "column", "row", big, R, C);
    icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING);
    save_all(f, "heat_big", 0, 0, 200);
    free(big);
    icl_fig_free(f);
}

/* Gaussian blobs for k classes, n points each, spread more when sep is small. */
static void blobs(icl_rng *rng, int k, int n, double sep, double *x, double *y, int *cls) {
    for (int c = 0; c < k; c++)
        for (int i = 0; i < n; i++) {
            x[c * n + i] = sep * cos(2 * M_PI * c / k) + icl_rng_normal(rng);
            y[c * n + i] = sep * sin(2 * M_PI * c / k) + 0.7 * icl_rng_normal(rng);
            cls[c * n + i] = c;
        }
}

static void test_scatter(void) {
    enum { K = 4, N = 100 };
    double x[K * N], y[K * N];
    int cls[K * N];
    icl_rng rng;
    icl_rng_seed(&rng, 3);
    blobs(&rng, K, N, 5, x, y, cls);
    const char *names[K] = {"basis 1", "basis 2", "basis 3", "basis 4"};
    icl_fig *f = icl_fig_scatter("UMAP of layer-5 representations (epoch 100)", "UMAP 1", "UMAP 2");
    CHECK(icl_fig_add_points(f, x, y, cls, K * N) == 0);
    CHECK(icl_fig_set_classes(f, names, K) == 0);
    save_all(f, "scatter", 0, 0, 50);
    img im = {0};
    CHECK(load_png(P("scatter.png"), &im) == 0);
    static const uint32_t pal[4] = {0x0072B2, 0xD55E00, 0x009E73, 0xE69F00};
    for (int c = 0; c < K; c++) {
        long n = count_near(&im, over_white(pal[c], 0.82), 8);
        CHECK_MSG(n > 300, "class %d colour covers %ld px", c, n);
    }
    free(im.px);
    icl_fig_free(f);

    /* 14 classes without names: colours repeat, shapes change; float (N,2) input */
    enum { K2 = 14, N2 = 30 };
    float xy[K2 * N2 * 2];
    int c2[K2 * N2];
    for (int i = 0; i < K2 * N2; i++) {
        c2[i] = i % K2;
        xy[2 * i] = (float)(8 * cos(2 * M_PI * c2[i] / K2) + 0.6 * icl_rng_normal(&rng));
        xy[2 * i + 1] = (float)(8 * sin(2 * M_PI * c2[i] / K2) + 0.6 * icl_rng_normal(&rng));
    }
    f = icl_fig_scatter("14 unnamed classes", NULL, NULL);
    CHECK(icl_fig_add_points_xy(f, xy, c2, K2 * N2) == 0);
    save_all(f, "scatter_many", 0, 0, 50);
    icl_fig_free(f);
}

/* Fig. 11 style: UMAP panels, rows = epochs, columns = layers, one shared legend. */
static void test_grid(int layers) {
    enum { K = 4, N = 60 };
    const int epochs[3] = {5, 20, 100};
    double x[K * N], y[K * N];
    int cls[K * N];
    icl_rng rng;
    icl_rng_seed(&rng, 11);
    icl_fig *f = icl_fig_grid("UMAP of the y-token representation across layers and epochs", 3, layers);
    CHECK(f != NULL);
    char rh[3][32], ch[16][32];
    const char *rows[3], *cols[16];
    for (int r = 0; r < 3; r++) snprintf(rh[r], 32, "epoch %d", epochs[r]), rows[r] = rh[r];
    for (int l = 0; l < layers; l++) snprintf(ch[l], 32, "layer %d", l), cols[l] = ch[l];
    CHECK(icl_fig_grid_headers(f, rows, cols) == 0);
    const char *names[K] = {"basis 1", "basis 2", "basis 3", "basis 4"};
    CHECK(icl_fig_set_classes(f, names, K) == 0);
    for (int r = 0; r < 3; r++)
        for (int l = 0; l < layers; l++) {
            /* separation grows with depth from layer 4 and with training from epoch 20 */
            double sep = (l >= 4 ? 1.0 + 0.6 * (l - 3) : 0.3) * (r == 0 ? 0.2 : r == 1 ? 0.7 : 1.5);
            blobs(&rng, K, N, sep, x, y, cls);
            CHECK(icl_fig_panel(f, r, l, NULL, NULL, NULL) == 0);
            CHECK(icl_fig_add_points(f, x, y, cls, K * N) == 0);
        }
    char name[64];
    snprintf(name, sizeof name, "grid_umap_%d", layers);
    save_all(f, name, 0, 0, 50);
    icl_fig_free(f);

    /* Fig. 10 style: TD over layers at three epochs, series names shared across panels */
    f = icl_fig_grid("TD across layers", 1, 3);
    double lay[12], td[12];
    for (int l = 0; l < 12; l++) lay[l] = l;
    for (int e = 0; e < 3; e++) {
        char t[32];
        snprintf(t, sizeof t, "epoch %d", epochs[e]);
        CHECK(icl_fig_panel(f, 0, e, t, "layer", e == 0 ? "TD" : NULL) == 0);
        for (int b = 0; b < 4; b++) {
            for (int l = 0; l < 12; l++) td[l] = 0.25 + (0.7 - 0.1 * b) * (e + 1) / 3.0 / (1 + exp(-(l - 4.5 - b)));
            int s = icl_fig_add_series(f, names[b], lay, td, 12);
            icl_fig_series_markers(f, s, 1);
        }
        icl_fig_add_hline(f, 0.25, "chance");
        icl_fig_set_ylim(f, 0, 1);
    }
    save_all(f, "grid_lines", 0, 0, 50);
    icl_fig_free(f);

    /* Fig. 7 style: two patching heatmaps side by side */
    f = icl_fig_grid("Mean-activation patching at layer 5", 1, 2);
    double z[16];
    const char *lab[4] = {"B1", "B2", "B3", "B4"};
    for (int p = 0; p < 2; p++) {
        for (int i = 0; i < 16; i++) z[i] = (i % 5 == 0 ? -1.0 : 0.4) * (p + 1) * 0.5 + 0.05 * (i % 3);
        CHECK(icl_fig_panel(f, 0, p, p ? "converged" : "epoch 20", "patched basis", "sequence basis") == 0);
        CHECK(icl_fig_set_matrix(f, z, 4, 4) == 0);
        icl_fig_heatmap_labels(f, lab, lab);
        icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING);
        icl_fig_heatmap_range(f, -1, 1);
        icl_fig_heatmap_annotate(f, "%.2f");
    }
    save_all(f, "grid_heat", 0, 0, 50);
    icl_fig_free(f);
}

/* Degenerate data must draw without crashing; small canvases too. */
static void test_degenerate(void) {
    double flat[5] = {3, 3, 3, 3, 3}, one = 2.5, nan5[5] = {NAN, NAN, NAN, NAN, NAN};
    double huge[4] = {1e300, -1e300, 1e-300, 5}, neg[3] = {-1, 0, -5}, inf3[3] = {INFINITY, 1, -INFINITY};
    struct {
        const char *name;
        const double *y;
        size_t n;
        int logy;
    } cases[] = {{"deg_flat", flat, 5, 0}, {"deg_single", &one, 1, 0}, {"deg_allnan", nan5, 5, 0},
                 {"deg_huge", huge, 4, 0}, {"deg_neglog", neg, 3, 1}, {"deg_inf", inf3, 3, 0},
                 {"deg_flatlog", flat, 5, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        icl_fig *f = icl_fig_line(cases[k].name, "x", "y");
        CHECK(icl_fig_add_series(f, "s", NULL, cases[k].y, cases[k].n) == 0);
        icl_fig_set_logy(f, cases[k].logy);
        save_all(f, cases[k].name, 0, 0, 8);
        icl_fig_free(f);
    }
    /* one point scatter, one-cell / all-equal / all-NaN heatmaps, a tiny canvas */
    icl_fig *f = icl_fig_scatter("one point", NULL, NULL);
    double px = 1, py = 1;
    CHECK(icl_fig_add_points(f, &px, &py, NULL, 1) == 0);
    save_all(f, "deg_scatter1", 0, 0, 8);
    icl_fig_free(f);
    double z1 = 7, zeq[6] = {2, 2, 2, 2, 2, 2};
    f = icl_fig_heatmap("1x1", NULL, NULL, &z1, 1, 1);
    icl_fig_heatmap_annotate(f, "%g");
    save_all(f, "deg_heat1", 0, 0, 8);
    icl_fig_free(f);
    f = icl_fig_heatmap("all equal", NULL, NULL, zeq, 2, 3);
    icl_fig_heatmap_cmap(f, ICL_CMAP_DIVERGING);
    save_all(f, "deg_heateq", 0, 0, 8);
    icl_fig_free(f);
    f = icl_fig_heatmap("all NaN", NULL, NULL, nan5, 1, 5);
    save_all(f, "deg_heatnan", 0, 0, 8);
    icl_fig_free(f);
    f = icl_fig_line("A long title that does not fit in a tiny canvas at all", "a long x label", "a long y label");
    double y[3] = {1, 2, 3};
    icl_fig_add_series(f, "a series with a long legend name", NULL, y, 3);
    save_all(f, "deg_tiny", 100, 100, 8);
    icl_fig_free(f);
    /* empty panels in a grid are fine as long as one panel has data */
    f = icl_fig_grid("sparse grid", 2, 2);
    icl_fig_panel(f, 1, 1, "only panel", NULL, NULL);
    icl_fig_add_series(f, NULL, NULL, y, 3);
    save_all(f, "deg_grid", 0, 0, 8);
    icl_fig_free(f);
}

/* Saving f to name must fail with a message and leave no file. */
static void expect_save_fails(const icl_fig *f, const char *name, const char *why) {
    icl_err err = {{0}};
    const char *path = name[0] == '/' ? name : P(name);
    int rc = icl_fig_save(f, path, 0, 0, &err);
    CHECK_MSG(rc == -1, "%s: save should fail (%s)", name, why);
    CHECK_MSG(err.msg[0] != 0, "%s: no error message (%s)", name, why);
    CHECK_MSG(!icl_path_exists(path), "%s: file left behind (%s)", name, why);
}

static void test_errors(void) {
    double y[3] = {1, 2, 3}, z[4] = {1, 2, 3, 4};
    icl_err err = {{0}};
    icl_fig *ok = icl_fig_line("ok", NULL, NULL);
    icl_fig_add_series(ok, "s", NULL, y, 3);
    expect_save_fails(ok, "bad.jpg", "unknown extension");
    expect_save_fails(ok, "noext", "no extension");
    expect_save_fails(ok, "/nonexistent-iclab-dir/x.png", "missing directory");
    CHECK(icl_fig_save(ok, P("small.png"), 50, 500, &err) == -1 && !icl_path_exists(P("small.png")));
    CHECK(icl_fig_save(ok, P("large.png"), 800, 20000, &err) == -1 && !icl_path_exists(P("large.png")));
    CHECK(icl_fig_save(NULL, P("null.png"), 0, 0, &err) == -1 && !icl_path_exists(P("null.png")));
    /* a failed save keeps an existing file as it was */
    CHECK(icl_write_file_atomic(P("keep.png"), "old", 3, &err) == 0);
    icl_fig *empty = icl_fig_line("no data", NULL, NULL);
    CHECK(icl_fig_save(empty, P("keep.png"), 0, 0, &err) == -1);
    char *data = NULL;
    size_t n = 0;
    CHECK(icl_read_file(P("keep.png"), &data, &n, &err) == 0 && n == 3 && !memcmp(data, "old", 3));
    free(data);
    expect_save_fails(empty, "empty.png", "no data");
    icl_fig_free(empty);

    /* building errors: the call fails, the figure remembers, the save reports it */
    struct {
        const char *name;
        int rc;
    } bad[16];
    int nb = 0;
#define BAD(label, expr)                                 \
    do {                                                 \
        icl_fig *f = icl_fig_line("bad", NULL, NULL);    \
        icl_fig_add_series(f, "s", NULL, y, 3);          \
        bad[nb].name = label;                            \
        bad[nb].rc = (expr);                             \
        CHECK_MSG(bad[nb].rc == -1, "%s: call should fail", label); \
        CHECK_MSG(icl_fig_error(f) != NULL, "%s: error not remembered", label); \
        expect_save_fails(f, "bad.png", label);          \
        icl_fig_free(f);                                 \
        nb++;                                            \
    } while (0)
    BAD("n = 0", icl_fig_add_series(f, "e", NULL, y, 0));
    BAD("NULL y", icl_fig_add_series(f, "e", NULL, NULL, 3));
    BAD("band of a missing series", icl_fig_series_band(f, 5, y, y));
    BAD("labels before matrix", icl_fig_heatmap_labels(f, NULL, NULL));
    BAD("matrix on a line panel", icl_fig_set_matrix(f, z, 2, 2));
    BAD("negative class", icl_fig_add_points(f, y, y, (int[3]){0, -1, 0}, 3));
    BAD("xlim lo >= hi", icl_fig_set_xlim(f, 2, 1));
    BAD("infinite ylim", icl_fig_set_ylim(f, -INFINITY, 1));
    BAD("log limits", (icl_fig_set_logx(f, 1), icl_fig_set_xlim(f, 0, 10)));
    BAD("annotate %s", icl_fig_heatmap_annotate(f, "%s"));
    BAD("annotate %d", icl_fig_heatmap_annotate(f, "%d"));
    BAD("annotate two", icl_fig_heatmap_annotate(f, "%.2f %.2f"));
    BAD("annotate %n", icl_fig_heatmap_annotate(f, "%n%f"));
    BAD("annotate width", icl_fig_heatmap_annotate(f, "%1000f"));
    BAD("scale 0", icl_fig_set_scale(f, 0));
    BAD("colour", icl_fig_series_color(f, 0, 0x1000000));
#undef BAD
    /* errors found only at save time */
    icl_fig *f = icl_fig_line("log limits set first", NULL, NULL);
    icl_fig_add_series(f, "s", NULL, y, 3);
    CHECK(icl_fig_set_xlim(f, 0, 10) == 0);
    CHECK(icl_fig_set_logx(f, 1) == 0);
    expect_save_fails(f, "late_log.png", "log axis with limit 0");
    icl_fig_free(f);
    f = icl_fig_scatter("class beyond names", NULL, NULL);
    const char *two[2] = {"a", "b"};
    icl_fig_set_classes(f, two, 2);
    icl_fig_add_points(f, y, y, (int[3]){0, 1, 3}, 3);
    expect_save_fails(f, "classes.png", "class 3 with 2 names");
    icl_fig_free(f);
    f = icl_fig_grid("bad grid", 0, 3);
    CHECK(f != NULL && icl_fig_error(f) != NULL);
    icl_fig_free(f);
    f = icl_fig_grid("grid", 2, 2);
    CHECK(icl_fig_panel(f, 2, 0, NULL, NULL, NULL) == -1);
    icl_fig_free(f);
    CHECK(icl_fig_add_series(NULL, "s", NULL, y, 3) == -1);
    CHECK(icl_fig_set_logx(NULL, 1) == -1);
    /* good formats pass */
    f = icl_fig_heatmap("fmt", NULL, NULL, z, 2, 2);
    CHECK(icl_fig_heatmap_annotate(f, "%.2f%%") == 0);
    CHECK(icl_fig_heatmap_annotate(f, "\xce\x94=%+.1e") == 0);
    CHECK(icl_fig_heatmap_annotate(f, NULL) == 0);
    CHECK(icl_fig_error(f) == NULL);
    icl_fig_free(f);
    /* invalid UTF-8 in labels is repaired, not fatal */
    f = icl_fig_line("bad \xff\xfe utf8 \xe2\x82", "x\ny", NULL);
    icl_fig_add_series(f, "s\x80", NULL, y, 3);
    CHECK(icl_fig_save(f, P("utf8.png"), 0, 0, &err) == 0);
    icl_fig_free(f);
    icl_fig_free(ok);
}

static void test_buffers(void) {
    double y[4] = {1, 3, 2, 4};
    icl_err err = {{0}};
    icl_fig *f = icl_fig_line("A <b>bold</b> & \"quoted\" title", "x", "y");
    icl_fig_add_series(f, "s", NULL, y, 4);
    char *svg = NULL;
    size_t len = 0;
    CHECK(icl_fig_svg_string(f, 0, 0, "fig3-", &svg, &len, &err) == 0);
    CHECK(svg && len == strlen(svg) && len > 1000);
    if (svg) {
        CHECK(!strncmp(svg, "<svg", 4));
        CHECK(strstr(svg, "<?xml") == NULL);
        CHECK(strstr(svg, "xmlns") == NULL);
        CHECK(strstr(svg, "http") == NULL);
        CHECK(strstr(svg, "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;") != NULL);
        CHECK(strstr(svg, "id=\"fig3-") != NULL);
        int unprefixed = 0;
        for (const char *p = svg; (p = strstr(p, "id=\"")); p += 4) unprefixed += strncmp(p + 4, "fig3-", 5) != 0;
        for (const char *p = svg; (p = strstr(p, "href=\"#")); p += 7) unprefixed += strncmp(p + 7, "fig3-", 5) != 0;
        for (const char *p = svg; (p = strstr(p, "url(#")); p += 5) unprefixed += strncmp(p + 5, "fig3-", 5) != 0;
        CHECK_MSG(unprefixed == 0, "%d ids or references without the prefix", unprefixed);
        free(svg);
    }
    CHECK(icl_fig_svg_string(f, 0, 0, "a b", &svg, &len, &err) == -1 && svg == NULL);
    CHECK(icl_fig_svg_string(f, 0, 0, NULL, &svg, NULL, &err) == 0 && !strncmp(svg, "<?xml", 5));
    free(svg);
    unsigned char *png = NULL;
    CHECK(icl_fig_png_buffer(f, 400, 300, 2, &png, &len, &err) == 0);
    CHECK(png && len > 1000 && !memcmp(png, "\x89PNG\r\n\x1a\n", 8));
    if (png) {
        CHECK(icl_write_file_atomic(P("buffer.png"), png, len, &err) == 0);
        img im = {0};
        CHECK(load_png(P("buffer.png"), &im) == 0 && im.w == 800 && im.h == 600);
        free(im.px);
        free(png);
    }
    CHECK(icl_fig_set_scale(f, 2) == 0);
    CHECK(icl_fig_save(f, P("scale2.png"), 0, 0, &err) == 0);
    img im = {0};
    CHECK(load_png(P("scale2.png"), &im) == 0 && im.w == 1600 && im.h == 1000);
    free(im.px);
    icl_fig_free(f);
}

/* A run of adjacent columns holding a colour: a bar as seen in the image. */
typedef struct colrun {
    int x0, x1, top, bottom; /* columns x0..x1, rows top..bottom (inclusive) */
} colrun;

/* The runs of columns that hold pixels of colour rgb (at most max); returns how many. */
static int colour_runs(const img *im, uint32_t rgb, colrun *out, int max) {
    int n = 0, in = 0;
    for (int x = 0; x < im->w; x++) {
        int top = -1, bottom = -1;
        for (int y = 0; y < im->h; y++)
            if (near_rgb(im->px[(size_t)y * im->w + x], rgb, 12)) {
                if (top < 0) top = y;
                bottom = y;
            }
        if (top < 0) {
            in = 0;
            continue;
        }
        if (!in) {
            if (n == max) return n + 1; /* more runs than expected */
            out[n++] = (colrun){x, x, top, bottom};
            in = 1;
        }
        colrun *r = &out[n - 1];
        r->x1 = x;
        if (top < r->top) r->top = top;
        if (bottom > r->bottom) r->bottom = bottom;
    }
    return n;
}

/* Fig. 20 / Table 1 style grouped bars with error bars: building errors, NaN slots, output in
 * every format, pixel checks of bar places and heights, negative values, bars in a grid. */
static void test_bars(void) {
    const char *groups[6] = {"linear", "quadratic", "sparse", "leaky ReLU", "basis 1", "basis 2"};
    double u[6] = {0.92, 0.88, 0.95, 0.81, 0.97, 0.90}, ue[6] = {0.02, 0.03, 0.015, 0.04, 0.01, 0.02};
    double ng[6] = {0.35, 0.42, 0.28, 0.51, NAN, 0.33}, ne[6] = {0.05, 0.06, 0.04, 0.07, 0.05, NAN};
    double ps[6] = {0.96, 0.93, 0.97, 0.89, 0.99, 0.95}, pe[6] = {0.01, 0.02, 0.01, 0.03, 0.005, 0.015};
    icl_err err = {{0}};

    /* errors: the call fails, the figure remembers, the save reports it */
    icl_fig *f = icl_fig_bars("bad", NULL, NULL, groups, 6);
    CHECK(icl_fig_add_bars(f, "short", u, ue, 5) == -1);
    CHECK(icl_fig_error(f) != NULL && strstr(icl_fig_error(f), "6 groups") != NULL);
    expect_save_fails(f, "bars_bad.png", "mismatched n");
    icl_fig_free(f);
    f = icl_fig_bars("no groups", NULL, NULL, NULL, 6);
    CHECK(f != NULL && icl_fig_error(f) != NULL);
    icl_fig_add_bars(f, "s", u, NULL, 6);
    expect_save_fails(f, "bars_null.png", "NULL groups");
    icl_fig_free(f);
    for (int k = 0; k < 2; k++) {
        f = icl_fig_bars("n_groups", NULL, NULL, groups, k ? -3 : 0);
        CHECK(f != NULL && icl_fig_error(f) != NULL);
        CHECK(icl_fig_add_bars(f, "s", u, NULL, k ? -3 : 0) == -1);
        expect_save_fails(f, "bars_n0.png", "n_groups < 1");
        icl_fig_free(f);
    }
    f = icl_fig_bars("no values", NULL, NULL, groups, 6);
    CHECK(icl_fig_add_bars(f, "s", NULL, ue, 6) == -1 && icl_fig_error(f) != NULL);
    icl_fig_free(f);
    f = icl_fig_bars("empty", NULL, NULL, groups, 6);
    expect_save_fails(f, "bars_empty.png", "no bars");
    icl_fig_free(f);
    f = icl_fig_bars("band", NULL, NULL, groups, 6);
    int s0 = icl_fig_add_bars(f, "s", u, ue, 6);
    CHECK(s0 == 0 && icl_fig_series_band(f, s0, u, u) == -1);
    icl_fig_free(f);
    f = icl_fig_line("bars on a line plot", NULL, NULL);
    CHECK(icl_fig_add_bars(f, "s", u, NULL, 6) == -1 && icl_fig_error(f) != NULL);
    icl_fig_free(f);
    f = icl_fig_bars("heatmap on bars", NULL, NULL, groups, 2);
    CHECK(icl_fig_set_matrix(f, u, 2, 2) == -1);
    icl_fig_free(f);
    CHECK(icl_fig_add_bars(NULL, "s", u, NULL, 6) == -1);

    /* Fig. 20: 6 concepts x 3 conditions, mean +- std, chance line, a NaN slot and a NaN err */
    f = icl_fig_bars("Accuracy per concept under interventions", "concept", "accuracy", groups, 6);
    CHECK(icl_fig_add_bars(f, "unperturbed", u, ue, 6) == 0);
    CHECK(icl_fig_add_bars(f, "negative", ng, ne, 6) == 1);
    CHECK(icl_fig_add_bars(f, "positive", ps, pe, 6) == 2);
    CHECK(icl_fig_add_hline(f, 0.25, "chance") == 0);
    CHECK(icl_fig_add_text(f, 4, 0.1, "n/a") == 0);
    CHECK(icl_fig_error(f) == NULL);
    int dw, dh;
    icl_fig_default_size(f, &dw, &dh);
    CHECK(dw == 800 && dh == 500);
    save_all(f, "bars_fig20", 0, 0, 40);
    char *svg = NULL;
    size_t len = 0;
    CHECK(icl_fig_svg_string(f, 0, 0, "bars-", &svg, &len, &err) == 0);
    CHECK(svg && !strncmp(svg, "<svg", 4) && len > 5000);
    if (svg) CHECK(strstr(svg, "leaky ReLU") != NULL && strstr(svg, "negative") != NULL); /* in <desc> */
    free(svg);
    CHECK(icl_fig_set_ylim(f, 0, 1) == 0);
    CHECK(icl_fig_set_legend(f, ICL_LEGEND_LOWER_RIGHT) == 0);
    save_all(f, "bars_fig20_ylim", 640, 400, 40);
    icl_fig_free(f);

    /* Table 1: long group names (turned labels), four series, no error bars; and a grid */
    const char *tasks[8] = {"antonym", "country-capital", "english-french", "present-past", "singular-plural",
                            "person-occupation", "lowercase first letter", "product-company"};
    const char *conds[4] = {"pretrained", "finetuned-first", "finetuned-last", "prompting"};
    double acc[4][8];
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < 8; i++) acc[s][i] = 0.3 + 0.12 * s + 0.05 * sin(i + 2 * s);
    f = icl_fig_bars("Table 1", NULL, "accuracy", tasks, 8);
    for (int s = 0; s < 4; s++) CHECK(icl_fig_add_bars(f, conds[s], acc[s], NULL, 8) == s);
    save_all(f, "bars_table1", 0, 0, 40);
    icl_fig_free(f);
    f = icl_fig_grid("Accuracy per model", 1, 2);
    icl_fig_panel(f, 0, 0, "model A", NULL, "accuracy");
    icl_fig_add_bars(f, "unperturbed", u, ue, 6);
    icl_fig_add_bars(f, "negative", ng, ne, 6);
    icl_fig_panel(f, 0, 1, "model B", NULL, NULL);
    icl_fig_add_bars(f, "unperturbed", ps, pe, 6);
    CHECK(icl_fig_add_bars(f, "negative", u, NULL, 5) == -1); /* a grid panel keeps its first count */
    icl_fig_free(f);
    f = icl_fig_grid("Accuracy per model", 1, 2);
    icl_fig_panel(f, 0, 0, "model A", NULL, "accuracy");
    icl_fig_add_bars(f, "unperturbed", u, ue, 6);
    icl_fig_add_bars(f, "negative", ng, ne, 6);
    icl_fig_panel(f, 0, 1, "model B", NULL, NULL);
    icl_fig_add_bars(f, "unperturbed", ps, pe, 6);
    icl_fig_add_hline(f, 0.25, "chance");
    CHECK(icl_fig_error(f) == NULL);
    save_all(f, "bars_grid", 0, 0, 30);
    icl_fig_free(f);

    /* Pixels: 2 groups x 2 series, palette colours. A = {1, 3} with whiskers, B = {2, NaN}. */
    const char *two[2] = {"g0", "g1"};
    double a[2] = {1, 3}, ae[2] = {0.2, 0.2}, b[2] = {2, NAN};
    f = icl_fig_bars(NULL, NULL, NULL, two, 2);
    icl_fig_add_bars(f, "A", a, ae, 2);
    icl_fig_add_bars(f, "B", b, NULL, 2);
    icl_fig_set_legend(f, ICL_LEGEND_NONE);
    unsigned char *png = NULL;
    CHECK(icl_fig_png_buffer(f, 600, 400, 1, &png, &len, &err) == 0);
    img im = {0};
    CHECK(png && load_png_buffer(png, len, &im) == 0 && im.w == 600 && im.h == 400);
    free(png);
    icl_fig_free(f);
    colrun ra[3], rb[3];
    int na = im.px ? colour_runs(&im, 0x0072B2, ra, 2) : 0, nbr = im.px ? colour_runs(&im, 0xD55E00, rb, 2) : 0;
    CHECK_MSG(na == 2 && nbr == 1, "%d bars of A and %d of B, expected 2 and 1 (B's NaN slot empty)", na, nbr);
    if (na == 2 && nbr == 1) {
        /* side by side in series order: A0, B0 (group 0), then group 1 with only A1 */
        CHECK(ra[0].x1 < rb[0].x0 && rb[0].x1 < ra[1].x0);
        CHECK(ra[0].x0 < im.w / 2 && ra[1].x0 > im.w / 2);
        /* a small gap inside the group, a bigger one between groups */
        int gin = rb[0].x0 - ra[0].x1 - 1, gout = ra[1].x0 - rb[0].x1 - 1;
        CHECK_MSG(gin >= 1 && gin <= 3 && gout > 20, "gaps %d (in group), %d (between groups)", gin, gout);
        /* all stand on one baseline (y = 0 at the bottom); heights follow the values */
        CHECK(abs(ra[0].bottom - rb[0].bottom) <= 1 && abs(ra[0].bottom - ra[1].bottom) <= 1);
        double h0 = ra[0].bottom - ra[0].top + 1, h1 = ra[1].bottom - ra[1].top + 1, hb = rb[0].bottom - rb[0].top + 1;
        CHECK_MSG(h1 > hb && hb > h0 && h0 > 20, "bar heights %.0f %.0f %.0f", h0, hb, h1);
        CHECK_MSG(fabs(h1 / h0 - 3) < 0.05 && fabs(hb / h0 - 2) < 0.05, "height ratios %.3f, %.3f (3, 2)", h1 / h0,
                  hb / h0);
        /* the whisker: dark pixels above A0's top, about 0.2 of a unit (h0 / 5) up, in its centre column */
        int cx = (ra[0].x0 + ra[0].x1) / 2, above = 0;
        for (int y = ra[0].top - 1; y >= 0 && near_rgb(im.px[(size_t)y * im.w + cx], 0x333333, 40); y--) above++;
        for (int dx = -1; dx <= 1 && !above; dx++)
            for (int y = ra[0].top - 1; y >= 0 && near_rgb(im.px[(size_t)y * im.w + cx + dx], 0x333333, 40); y--) above++;
        CHECK_MSG(fabs(above - h0 / 5) < 3, "whisker reaches %d px above the bar, expected about %.0f", above, h0 / 5);
    }
    free(im.px);

    /* A negative value: the range covers it, the bar hangs from the zero line */
    double neg[2] = {-1, 2};
    f = icl_fig_bars(NULL, NULL, NULL, two, 2);
    icl_fig_add_bars(f, "n", neg, NULL, 2);
    icl_fig_set_legend(f, ICL_LEGEND_NONE);
    png = NULL;
    CHECK(icl_fig_png_buffer(f, 500, 400, 1, &png, &len, &err) == 0);
    memset(&im, 0, sizeof im);
    CHECK(png && load_png_buffer(png, len, &im) == 0);
    free(png);
    icl_fig_free(f);
    na = im.px ? colour_runs(&im, 0x0072B2, ra, 2) : 0;
    CHECK(na == 2);
    if (na == 2) {
        double hn = ra[0].bottom - ra[0].top + 1, hp = ra[1].bottom - ra[1].top + 1;
        CHECK_MSG(abs(ra[0].top - ra[1].bottom) <= 3, "negative bar starts at row %d, positive ends at %d", ra[0].top,
                  ra[1].bottom);
        CHECK_MSG(fabs(hp / hn - 2) < 0.08, "height ratio %.3f, expected 2", hp / hn);
    }
    free(im.px);
}

int main(void) {
    const char *keepdir = getenv("ICLAB_PLOT_SAMPLES");
    icl_err err;
    if (keepdir && *keepdir) {
        snprintf(dir, sizeof dir, "%s", keepdir);
        keep = 1;
        if (icl_mkdirs(dir, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    } else {
        snprintf(dir, sizeof dir, "/tmp/icl_plot_XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
    }
    test_line();
    test_gap();
    test_heatmaps();
    test_scatter();
    test_grid(keep ? 12 : 6);
    test_degenerate();
    test_errors();
    test_buffers();
    test_bars();
    /* no temporary files of atomic writes may be left behind */
    DIR *d = opendir(dir);
    struct dirent *e;
    int tmp = 0, files = 0;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        files++;
        tmp += strstr(e->d_name, ".tmp.") != NULL;
        if (!keep) unlink(P(e->d_name));
    }
    if (d) closedir(d);
    CHECK_MSG(tmp == 0, "%d temporary files left in %s", tmp, dir);
    CHECK(files > 50);
    if (!keep) rmdir(dir);
    else printf("figures kept in %s\n", dir);
    return icl_test_finish();
}
