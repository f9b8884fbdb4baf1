/* Figures for iclab: line plots (training curves, TD over layers and checkpoints), heatmaps
 * (patching deltas, pairwise TD), scatter plots (UMAP/PCA embeddings coloured by concept),
 * grouped bar charts with error bars (accuracy per concept and condition) and grids of small
 * panels (the paper's Fig. 11: layers x checkpoints), drawn with cairo and saved as PNG, SVG or
 * PDF, or returned as an SVG string for inline embedding in report.html.
 *
 * Usage is a builder: make a figure, add data, save, free.
 *
 *     icl_fig *f = icl_fig_line("Test MSE per basis", "epoch", "MSE");
 *     icl_fig_set_logx(f, 1);
 *     int s = icl_fig_add_series(f, "linear", epoch, mse, n);   // copies the data
 *     icl_fig_series_band(f, s, mse_lo, mse_hi);                 // shaded band, same n
 *     icl_fig_add_hline(f, 1.0, "chance");
 *     icl_fig_add_vline(f, 20, "(b)");
 *     if (icl_fig_save(f, "run/figures/mse.png", 0, 0, &err)) ...  // 0,0 = default size
 *     icl_fig_free(f);
 *
 * Errors in the building calls (mismatched sizes, NULL data, a log axis with a non-positive
 * limit, ...) make that call return -1 and are also remembered by the figure: the first one is
 * reported by icl_fig_save / icl_fig_svg_string, so a caller may check only the final save.
 * Every building call accepts a NULL figure (the constructors return NULL only when out of
 * memory) and then returns -1. Data are copied; the caller's arrays may be freed at once.
 *
 * Values that are not finite (NaN, +-inf) or larger than 1e300 in magnitude, and non-positive
 * values on a log axis, are gaps: a line breaks there, a point is not drawn. Degenerate data
 * (one point, all values equal, all NaN) draws a sensible empty or centred axis, never fails.
 *
 * Looks: DejaVu Sans via fontconfig at 12-16 px on the default canvases (text shrinks on
 * canvases smaller than about 640 x 400); light grid; ticks at round numbers (1-2-5 steps,
 * powers of ten on log axes); the Okabe-Ito colour-blind-safe palette extended to 10 colours,
 * scatter classes beyond 10 also change marker shape; anti-aliased lines. SVG output draws text
 * as glyph outlines and PDF embeds the font subset, so every file is self-contained. No
 * function prints; the library keeps no global state, so different figures may be drawn from
 * different threads. Implementation: src/viz/icl_plot.c (building, output) and
 * src/viz/icl_plot_render.c (layout, drawing). */
#ifndef ICL_PLOT_H
#define ICL_PLOT_H
#include <stddef.h>
#include "iclab/icl_err.h"

typedef struct icl_fig icl_fig;

/* Colour maps for heatmaps. */
typedef enum icl_cmap {
    ICL_CMAP_VIRIDIS = 0,   /* sequential, perceptually uniform, dark blue -> yellow */
    ICL_CMAP_DIVERGING = 1, /* blue - white - red with white at 0 (for patching deltas) */
} icl_cmap;

/* Where the legend goes. AUTO puts it in the corner or edge spot of the plot that covers the
 * fewest data (none at all when possible) and moves it outside to the right when every inside
 * spot would cover data. In a grid the legend is shared: anything but NONE puts it at the right. */
typedef enum icl_legend {
    ICL_LEGEND_AUTO = 0,
    ICL_LEGEND_NONE,
    ICL_LEGEND_UPPER_RIGHT,
    ICL_LEGEND_UPPER_LEFT,
    ICL_LEGEND_LOWER_LEFT,
    ICL_LEGEND_LOWER_RIGHT,
    ICL_LEGEND_OUTSIDE, /* right of the plot */
} icl_legend;

/* Line styles for series. */
typedef enum icl_dash { ICL_SOLID = 0, ICL_DASHED, ICL_DOTTED } icl_dash;

/* ---- constructors ------------------------------------------------------------------------
 * Any of title, xlabel, ylabel may be NULL (not drawn). Strings are UTF-8 (invalid bytes and
 * control characters become '?'). Default output size: 800x500 for a line plot, 760x560 for a
 * scatter, 720x560 for a heatmap, 800x500 for a bar chart (wider with many bars, up to 1600); a
 * grid picks a size from its shape and contents. */

/* A line plot: add series with icl_fig_add_series. Points (icl_fig_add_points) and text may
 * be added too, e.g. a scatter of tasks with a fitted line. */
icl_fig *icl_fig_line(const char *title, const char *xlabel, const char *ylabel);
/* A scatter plot for 2-D embeddings: like a line plot, but with equal data units on both axes
 * by default (icl_fig_set_equal_aspect) so an embedding's shape is not distorted. */
icl_fig *icl_fig_scatter(const char *title, const char *xlabel, const char *ylabel);
/* A heatmap of z, (rows, cols) row-major, row 0 drawn at the top. NaN cells are drawn grey.
 * Cells fill the canvas but are kept within 1.6 times wider than tall (or taller than wide);
 * matrices over 4096 cells are drawn as one nearest-neighbour-scaled image. */
icl_fig *icl_fig_heatmap(const char *title, const char *xlabel, const char *ylabel,
                         const double *z, int rows, int cols);
/* A grouped bar chart: n_groups categories along x, labelled by groups[] (copied; labels turned
 * 45 degrees when too wide, like heatmap column labels), each holding one bar per series added
 * with icl_fig_add_bars, side by side in series order and palette colours, with a legend of the
 * series names. The y axis starts at 0 unless a value is negative (then the range covers it).
 * NULL entries of groups[] show the index; NULL groups or n_groups outside 1..1024 give a figure
 * that carries the error. */
icl_fig *icl_fig_bars(const char *title, const char *xlabel, const char *ylabel,
                      const char *const *groups, int n_groups);
/* A rows x cols grid (each 1..64) of small panels under one title. Select a panel with
 * icl_fig_panel, then use the line/scatter/heatmap calls on it. Series with the same name share
 * one colour across panels, and the legend (series names and class names) is drawn once, at the
 * right. Panels holding only points get no ticks and equal aspect by default; panels left
 * empty draw only their title. Bad rows/cols give a figure that carries the error. */
icl_fig *icl_fig_grid(const char *title, int rows, int cols);
/* Frees the figure and everything it holds; NULL is fine. */
void icl_fig_free(icl_fig *fig);

/* ---- panels (grid figures) ---------------------------------------------------------------- */

/* Selects panel (row, col) for the calls that follow and sets its title and axis labels (a
 * NULL argument leaves that text as it was). A single-panel figure has only panel (0,0), which
 * is selected from the start. Returns 0 or -1. */
int icl_fig_panel(icl_fig *fig, int row, int col, const char *title, const char *xlabel, const char *ylabel);
/* Row headers (drawn left of each grid row, e.g. "layer 3") and column headers (above each
 * column, e.g. "epoch 20"); either array may be NULL, otherwise it has rows / cols entries
 * (NULL entries allowed). Returns 0 or -1. */
int icl_fig_grid_headers(icl_fig *fig, const char *const *row_headers, const char *const *col_headers);

/* ---- line plots (apply to the selected panel) ------------------------------------------- */

/* Adds a series of n points (x may be NULL: then x = 0, 1, ..., n-1). name may be NULL (no
 * legend entry). Returns the series' index in the selected panel (>= 0), or -1. n must be > 0. */
int icl_fig_add_series(icl_fig *fig, const char *name, const double *x, const double *y, size_t n);
/* The same for float data. */
int icl_fig_add_series_f(icl_fig *fig, const char *name, const float *x, const float *y, size_t n);
/* A shaded band between lo[i] and hi[i] (each of the series' n points), in the series colour.
 * A point where lo or hi is not finite breaks the band. Not for a series of bars. Returns 0 or -1. */
int icl_fig_series_band(icl_fig *fig, int series, const double *lo, const double *hi);
/* Draws a marker at every point of the series (on = 1) or not (0, the default). */
int icl_fig_series_markers(icl_fig *fig, int series, int on);
/* Line style of the series (default ICL_SOLID). */
int icl_fig_series_dash(icl_fig *fig, int series, icl_dash dash);
/* Overrides the palette colour of the series; rgb is 0xRRGGBB. */
int icl_fig_series_color(icl_fig *fig, int series, unsigned rgb);
/* A horizontal dashed reference line at y (e.g. "chance", "oracle LS"), labelled at its right
 * end when label is non-NULL. It takes part in choosing the y range. */
int icl_fig_add_hline(icl_fig *fig, double y, const char *label);
/* A vertical dotted marker at x with a label at the top (e.g. a phase boundary "(b)"). */
int icl_fig_add_vline(icl_fig *fig, double x, const char *label);
/* A short text at data point (x, y) (drawn just above-right of it), e.g. a task name. */
int icl_fig_add_text(icl_fig *fig, double x, double y, const char *text);
/* Logarithmic x / y axis (on = 1): ticks at powers of ten, with minor ticks at 2..9. */
int icl_fig_set_logx(icl_fig *fig, int on);
int icl_fig_set_logy(icl_fig *fig, int on);
/* Fixed axis limits; NaN for either end keeps that end automatic. lo < hi, and on a log axis
 * both given ends must be > 0. Limits on a log axis are checked again at save time. */
int icl_fig_set_xlim(icl_fig *fig, double lo, double hi);
int icl_fig_set_ylim(icl_fig *fig, double lo, double hi);
/* Legend placement (default ICL_LEGEND_AUTO). In a grid it sets the shared legend (NONE hides
 * it; any other value puts it at the right). */
int icl_fig_set_legend(icl_fig *fig, icl_legend where);

/* ---- scatter (apply to the selected panel) ---------------------------------------------- */

/* Adds n points coloured by integer class 0 <= cls[i] <= 100000 (cls may be NULL: all class 0).
 * May be called several times; the points accumulate. Points are painted in the order given.
 * Returns 0 or -1. */
int icl_fig_add_points(icl_fig *fig, const double *x, const double *y, const int *cls, size_t n);
/* The same for a float (N,2) array of (x, y) rows, as an embedding is usually stored. */
int icl_fig_add_points_xy(icl_fig *fig, const float *xy, const int *cls, size_t n);
/* Names of the classes 0..k-1 for the legend; shared by all panels of a figure. Every class
 * used must then be < k (checked when saving). Without names, classes are listed as "class c"
 * when more than one class occurs. A legend lists at most 24 entries, then "+N more".
 * Returns 0 or -1. */
int icl_fig_set_classes(icl_fig *fig, const char *const *names, int k);
/* Marker radius in pixels for points, 0.25..50 (default 3.0 in a single plot, 2.0 in a grid). */
int icl_fig_set_marker_size(icl_fig *fig, double radius_px);
/* Equal data units per pixel on x and y (on = 1; the default for icl_fig_scatter): the shorter
 * range is widened. Ignored on log axes. */
int icl_fig_set_equal_aspect(icl_fig *fig, int on);
/* Shows (1) or hides (0) tick labels and ticks. Default: shown, except on scatter panels of a
 * grid, whose embedding coordinates carry no meaning. */
int icl_fig_set_ticks(icl_fig *fig, int on);

/* ---- bar charts (apply to the selected panel) --------------------------------------------
 * Bars go on a figure made by icl_fig_bars or on a grid panel (elsewhere icl_fig_add_bars
 * fails). On a grid panel the first icl_fig_add_bars sets the number of groups, labelled
 * 0..n_groups-1. A panel holds at most 32 series of bars. On a bar panel x is in group units:
 * group i is centred at x = i and spans i-0.5..i+0.5, which is where icl_fig_add_text,
 * icl_fig_add_vline, icl_fig_set_xlim and any line series added to it place things. The x axis
 * shows the group labels instead of numeric ticks (icl_fig_set_logx is ignored); the other
 * line-plot calls (hline, ylim, logy, legend, series colour) apply as usual; on a log y axis
 * bars rise from the bottom of the plot. A non-finite err leaves that bar without a whisker;
 * values and errs are copied. */

/* Adds one series: values (n_groups), errs (n_groups, may be NULL: no error bars) drawn as a
 * whisker from value - err to value + err; NaN values leave the slot empty. Returns the series
 * index or -1. */
int icl_fig_add_bars(icl_fig *fig, const char *name, const double *values, const double *errs, int n_groups);

/* ---- heatmaps (apply to the selected panel) --------------------------------------------- */

/* Puts a (rows, cols) row-major matrix on the selected grid panel (icl_fig_heatmap does this
 * for a single heatmap). Returns 0 or -1. */
int icl_fig_set_matrix(icl_fig *fig, const double *z, int rows, int cols);
/* Row and column tick labels (either may be NULL: indices 0..n-1 are shown). Row labels are
 * thinned out (every 1, 2, 5, 10, ... rows) when rows are too short to hold them; column labels
 * are turned 45 degrees when too wide, and thinned out when still too dense. */
int icl_fig_heatmap_labels(icl_fig *fig, const char *const *row_labels, const char *const *col_labels);
/* Colour map (default ICL_CMAP_VIRIDIS). */
int icl_fig_heatmap_cmap(icl_fig *fig, icl_cmap cmap);
/* Value range of the colour map; NaN = automatic (min/max of the data; for the diverging map
 * -m..m with m = max |z|). With the diverging map 0 stays white even when -vmin != vmax. */
int icl_fig_heatmap_range(icl_fig *fig, double vmin, double vmax);
/* Writes each cell's value in the cell with a printf format holding exactly one floating
 * conversion (%f %e %g, with optional flags/width/precision, e.g. "%.2f"); NULL turns it off.
 * The text is black or white, whichever contrasts more with the cell. Skipped when cells are too
 * small for legible text. Returns -1 for an unsafe format. */
int icl_fig_heatmap_annotate(icl_fig *fig, const char *fmt);
/* Label beside the colour bar (e.g. "TD" or "delta MSE"). */
int icl_fig_colorbar_label(icl_fig *fig, const char *label);

/* ---- output ------------------------------------------------------------------------------ */

/* Pixel density of PNG output (default 1; 2 gives a sharp image on high-DPI screens): a
 * width x height figure becomes a (scale*width) x (scale*height) PNG. 0.25 <= scale <= 8. */
int icl_fig_set_scale(icl_fig *fig, double scale);
/* The first error a building call hit, or NULL if none. */
const char *icl_fig_error(const icl_fig *fig);
/* Draws the figure and writes it atomically to path; the format follows the extension (.png,
 * .svg or .pdf, any case). width, height in pixels (points for PDF); 0 or less = default size;
 * each must be within 100..16384 (a PNG also at most 32767 pixels a side and 2^27 pixels in all
 * after scaling). On any error (a building call failed, no data, a bad size or extension, an
 * unwritable directory) returns -1 with err set and leaves no file behind (an existing file at
 * path is untouched). The SVG carries <title> and <desc> elements with the figure's texts. */
int icl_fig_save(const icl_fig *fig, const char *path, int width, int height, icl_err *err);
/* Draws the figure as SVG into a malloc'd NUL-terminated string (*svg, length *len, len may be
 * NULL); the caller frees it. The SVG carries <title> and <desc> elements with the figure's
 * texts. If id_prefix is non-NULL the SVG is prepared for inline use in HTML: the XML
 * declaration and namespace attributes are dropped and every id (and reference to it) gets the
 * prefix, so several figures can share one page. Returns 0 or -1. */
int icl_fig_svg_string(const icl_fig *fig, int width, int height, const char *id_prefix,
                       char **svg, size_t *len, icl_err *err);
/* Draws the figure as PNG into a malloc'd buffer, at pixel density scale (<= 0: the figure's
 * own, see icl_fig_set_scale). The caller frees *png. Returns 0 or -1. */
int icl_fig_png_buffer(const icl_fig *fig, int width, int height, double scale,
                       unsigned char **png, size_t *len, icl_err *err);
/* The default size for this figure (what width/height <= 0 mean). */
void icl_fig_default_size(const icl_fig *fig, int *width, int *height);

#endif
