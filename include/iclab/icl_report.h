/* A self-contained HTML report (report.html of a run): title, generation time, a table of
 * contents, sections, paragraphs, key/value tables (e.g. the run config), data tables, and
 * figures embedded in the page itself (icl_fig figures as inline SVG, image files as base64 data
 * URIs), with a small built-in stylesheet. The page loads nothing from anywhere: no scripts, no
 * external CSS, fonts or images, and a Content-Security-Policy that forbids them, so it opens
 * offline and can be mailed as one file.
 *
 *     icl_report *r = icl_report_new("iclab run: toy regression, seed 1");
 *     icl_report_h2(r, "Configuration");
 *     icl_report_kv(r, "layers", "12");             // consecutive kv calls form one table
 *     icl_report_kvf(r, "learning rate", "%g", lr);
 *     icl_report_h2(r, "Training");
 *     icl_report_p(r, "Final test MSE %.4f after %d epochs.", mse, epochs);
 *     icl_report_figure(r, fig, "Test MSE per basis.", 0, 0, &err);
 *     icl_report_image_file(r, "run/figures/umap.png", "UMAP at layer 5.", &err);
 *     if (icl_report_write(r, "run/report.html", &err)) ...
 *     icl_report_free(r);
 *
 * All text is UTF-8 and HTML-escaped (invalid bytes become U+FFFD); nothing passes through as
 * markup. Building calls copy what they are given. Calls without an icl_err (headings, text,
 * tables) return 0 or -1 and remember their first error, which icl_report_write then reports,
 * so a caller may check only the write. Calls with an icl_err (figures, images) report their own
 * failure and put a visible error note in the page instead, so the rest of the report is kept.
 * Every call accepts a NULL report (icl_report_new returns NULL only when out of memory) and
 * returns -1. No function prints. */
#ifndef ICL_REPORT_H
#define ICL_REPORT_H
#include <stddef.h>
#include <time.h>
#include "iclab/icl_err.h"
#include "iclab/icl_plot.h"

typedef struct icl_report icl_report;

/* A new, empty report; title (NULL: "iclab report") is the page title and the top heading. */
icl_report *icl_report_new(const char *title);
/* Frees the report; NULL is fine. */
void icl_report_free(icl_report *r);

/* A section heading (h2) or subsection heading (h3); both appear in the table of contents,
 * which is drawn when the report has at least one heading. */
int icl_report_h2(icl_report *r, const char *text);
int icl_report_h3(icl_report *r, const char *text);
/* A paragraph, printf-formatted, then escaped. */
int icl_report_p(icl_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A preformatted block in a monospace font (a command line, a log excerpt); line breaks kept. */
int icl_report_pre(icl_report *r, const char *text);
/* One row of a key/value table; consecutive kv rows form one table. value may be NULL (empty). */
int icl_report_kv(icl_report *r, const char *key, const char *value);
int icl_report_kvf(icl_report *r, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A data table: header (ncols strings, or NULL for none) and cells, (nrows, ncols) row-major;
 * NULL cells are empty. Cells that read entirely as numbers are right-aligned.
 * 1 <= ncols <= 1000, 0 <= nrows <= 1000000. */
int icl_report_table(icl_report *r, int ncols, const char *const *header, int nrows, const char *const *cells);

/* A figure drawn now and embedded as inline SVG (width, height as for icl_fig_save; <= 0 =
 * the figure's default), numbered "Figure N." before the caption (caption may be NULL). The
 * figure may be freed right after. On failure returns -1 with err set and puts an error note
 * in the page instead. */
int icl_report_figure(icl_report *r, const icl_fig *fig, const char *caption, int width, int height, icl_err *err);
/* An image file (PNG, JPEG, GIF or SVG, recognised by content, at most 32 MiB) embedded as a
 * base64 data URI, numbered and captioned like icl_report_figure. On failure (missing file,
 * not an image) returns -1 with err set and puts an error note in the page instead. */
int icl_report_image_file(icl_report *r, const char *path, const char *caption, icl_err *err);

/* The time printed in the "Generated ..." line (UTC); by default the time of icl_report_write.
 * Set it to get byte-identical reports from identical runs. */
int icl_report_set_time(icl_report *r, time_t t);
/* The first error a building call hit, or NULL if none. */
const char *icl_report_error(const icl_report *r);

/* Writes the page atomically to path (the old file, if any, stays until the new one is
 * complete; on failure no file is left). Returns 0, or -1 with err set. The report may be
 * extended and written again afterwards. */
int icl_report_write(const icl_report *r, const char *path, icl_err *err);

#endif
