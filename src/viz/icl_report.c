/* The self-contained HTML report: a list of blocks (headings, escaped text, tables, embedded
 * figures) turned into one page with a table of contents and a built-in stylesheet, written
 * atomically. */
#include "iclab/icl_report.h"
#include "iclab/icl_utf8.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"

/* ---- a growing string -------------------------------------------------------------------- */

typedef struct sbuf {
    char *d;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + len + 1) nc *= 2;
        char *p = realloc(b->d, nc);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->d = p;
        b->cap = nc;
    }
    memcpy(b->d + b->n, s, len);
    b->n += len;
    b->d[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        sb_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_put(b, big, (size_t)n);
    free(big);
}


/* Appends s HTML-escaped: markup characters as entities, invalid UTF-8 as U+FFFD, control
 * characters dropped except newlines and tabs (kept when keep_lines, else spaces). */
static void sb_esc(sbuf *b, const char *s, int keep_lines) {
    if (!s) return;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of plain bytes not yet copied */
    while (u[i]) {
        const char *rep = NULL;
        int k = icl_utf8_len(u + i);
        switch (k == 1 ? u[i] : 0x100) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        case '\n': rep = keep_lines ? "\n" : " "; break;
        case '\t': rep = keep_lines ? "\t" : " "; break;
        default:
            if (k == 0) rep = "\xEF\xBF\xBD";
            else if (k == 1 && (u[i] < 0x20 || u[i] == 0x7F)) rep = "";
            break;
        }
        if (rep) {
            sb_put(b, s + run, i - run);
            sb_str(b, rep);
            i += 1;
            run = i;
        } else {
            i += (size_t)k;
        }
    }
    sb_put(b, s + run, i - run);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Appends data base64-encoded (RFC 4648, with padding, no line breaks). */
static void sb_base64(sbuf *b, const unsigned char *d, size_t n) {
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)d[i] << 16 | (i + 1 < n ? (unsigned)d[i + 1] << 8 : 0) | (i + 2 < n ? d[i + 2] : 0);
        q[0] = B64[(v >> 18) & 63];
        q[1] = B64[(v >> 12) & 63];
        q[2] = i + 1 < n ? B64[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? B64[v & 63] : '=';
        sb_put(b, q, 4);
    }
}

/* ---- the report ------------------------------------------------------------------------------ */

enum { BK_H2 = 0, BK_H3, BK_HTML, BK_KV };

typedef struct block {
    int kind;
    char *a; /* heading text, ready HTML, or kv key */
    char *b; /* kv value */
} block;

struct icl_report {
    char *title;
    block *bl;
    size_t n, cap;
    int nfig;
    int has_time;
    time_t time;
    char err[256];
};

__attribute__((format(printf, 2, 3))) static int rep_fail(icl_report *r, const char *fmt, ...) {
    if (r && !r->err[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->err, sizeof r->err, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static char *dup_str(const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    char *d = malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* Appends a block taking ownership of a and b (freed on failure). */
static int push(icl_report *r, int kind, char *a, char *b) {
    if (!a || (kind == BK_KV && !b)) {
        free(a);
        free(b);
        return rep_fail(r, "out of memory");
    }
    if (r->n == r->cap) {
        size_t nc = r->cap ? 2 * r->cap : 16;
        block *p = realloc(r->bl, nc * sizeof *p);
        if (!p) {
            free(a);
            free(b);
            return rep_fail(r, "out of memory");
        }
        r->bl = p;
        r->cap = nc;
    }
    r->bl[r->n++] = (block){kind, a, b};
    return 0;
}

/* Appends a block of ready HTML from a string buffer (taking it over). */
static int push_html(icl_report *r, sbuf *b) {
    if (b->oom) {
        free(b->d);
        return rep_fail(r, "out of memory");
    }
    return push(r, BK_HTML, b->d ? b->d : dup_str(""), NULL);
}

icl_report *icl_report_new(const char *title) {
    icl_report *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->title = dup_str(title ? title : "iclab report");
    if (!r->title) {
        free(r);
        return NULL;
    }
    return r;
}

void icl_report_free(icl_report *r) {
    if (!r) return;
    for (size_t i = 0; i < r->n; i++) {
        free(r->bl[i].a);
        free(r->bl[i].b);
    }
    free(r->bl);
    free(r->title);
    free(r);
}

int icl_report_h2(icl_report *r, const char *text) {
    if (!r) return -1;
    if (!text) return rep_fail(r, "heading text is NULL");
    return push(r, BK_H2, dup_str(text), NULL);
}

int icl_report_h3(icl_report *r, const char *text) {
    if (!r) return -1;
    if (!text) return rep_fail(r, "heading text is NULL");
    return push(r, BK_H3, dup_str(text), NULL);
}

int icl_report_p(icl_report *r, const char *fmt, ...) {
    if (!r) return -1;
    if (!fmt) return rep_fail(r, "paragraph format is NULL");
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) return rep_fail(r, "out of memory");
    sbuf b = {0};
    sb_str(&b, "<p>");
    sb_esc(&b, text, 0);
    sb_str(&b, "</p>\n");
    free(text);
    return push_html(r, &b);
}

int icl_report_pre(icl_report *r, const char *text) {
    if (!r) return -1;
    if (!text) return rep_fail(r, "preformatted text is NULL");
    sbuf b = {0};
    sb_str(&b, "<pre>");
    sb_esc(&b, text, 1);
    sb_str(&b, "</pre>\n");
    return push_html(r, &b);
}

int icl_report_kv(icl_report *r, const char *key, const char *value) {
    if (!r) return -1;
    if (!key) return rep_fail(r, "key is NULL");
    return push(r, BK_KV, dup_str(key), dup_str(value));
}

int icl_report_kvf(icl_report *r, const char *key, const char *fmt, ...) {
    if (!r) return -1;
    if (!key || !fmt) return rep_fail(r, "key or format is NULL");
    va_list ap;
    va_start(ap, fmt);
    char *text = NULL;
    int n = vasprintf(&text, fmt, ap);
    va_end(ap);
    if (n < 0) return rep_fail(r, "out of memory");
    return push(r, BK_KV, dup_str(key), text);
}

/* 1 if s reads entirely as a number (optionally with a trailing %), for right alignment. */
static int numeric(const char *s) {
    if (!s || !*s) return 0;
    char *end;
    strtod(s, &end);
    if (end == s) return 0;
    if (*end == '%') end++;
    while (*end == ' ') end++;
    return *end == 0;
}

int icl_report_table(icl_report *r, int ncols, const char *const *header, int nrows, const char *const *cells) {
    if (!r) return -1;
    if (ncols < 1 || ncols > 1000 || nrows < 0 || nrows > 1000000)
        return rep_fail(r, "table of %d x %d: need 1..1000 columns and 0..1000000 rows", nrows, ncols);
    if (nrows > 0 && !cells) return rep_fail(r, "table cells are NULL");
    sbuf b = {0};
    sb_str(&b, "<div class=\"scroll\"><table class=\"data\">\n");
    if (header) {
        sb_str(&b, "<thead><tr>");
        for (int j = 0; j < ncols; j++) {
            sb_str(&b, "<th>");
            sb_esc(&b, header[j], 0);
            sb_str(&b, "</th>");
        }
        sb_str(&b, "</tr></thead>\n");
    }
    sb_str(&b, "<tbody>\n");
    for (int i = 0; i < nrows && !b.oom; i++) {
        sb_str(&b, "<tr>");
        for (int j = 0; j < ncols; j++) {
            const char *c = cells[(size_t)i * ncols + j];
            sb_str(&b, numeric(c) ? "<td class=\"num\">" : "<td>");
            sb_esc(&b, c, 0);
            sb_str(&b, "</td>");
        }
        sb_str(&b, "</tr>\n");
    }
    sb_str(&b, "</tbody></table></div>\n");
    return push_html(r, &b);
}

/* Opens a numbered <figure>: the number goes into the caption. */
static void fig_open(sbuf *b, int num) { sb_printf(b, "<figure id=\"fig%d\">\n", num); }

static void fig_close(sbuf *b, int num, const char *caption) {
    sb_printf(b, "\n<figcaption><span class=\"fignum\">Figure %d.</span> ", num);
    sb_esc(b, caption, 0);
    sb_str(b, "</figcaption>\n</figure>\n");
}

/* Puts a visible note in the page where a figure could not be made. */
static void error_note(icl_report *r, int num, const icl_err *err) {
    sbuf b = {0};
    sb_printf(&b, "<p class=\"error\">Figure %d could not be included: ", num);
    sb_esc(&b, err ? err->msg : "unknown error", 0);
    sb_str(&b, "</p>\n");
    push_html(r, &b);
}

int icl_report_figure(icl_report *r, const icl_fig *fig, const char *caption, int width, int height, icl_err *err) {
    if (!r) return icl_errf(err, "report is NULL");
    int num = ++r->nfig;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "f%d-", num);
    char *svg = NULL;
    if (icl_fig_svg_string(fig, width, height, prefix, &svg, NULL, err)) {
        icl_err_prefix(err, "report figure %d: ", num);
        error_note(r, num, err);
        return -1;
    }
    sbuf b = {0};
    fig_open(&b, num);
    sb_str(&b, svg);
    free(svg);
    fig_close(&b, num, caption);
    if (push_html(r, &b)) return icl_errf(err, "report figure %d: out of memory", num);
    return 0;
}

/* MIME type of an image from its first bytes, or NULL. */
static const char *image_mime(const unsigned char *d, size_t n) {
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 3 && !memcmp(d, "\xFF\xD8\xFF", 3)) return "image/jpeg";
    if (n >= 6 && (!memcmp(d, "GIF87a", 6) || !memcmp(d, "GIF89a", 6))) return "image/gif";
    size_t k = n < 4096 ? n : 4096;
    for (size_t i = 0; i + 4 <= k; i++)
        if (!memcmp(d + i, "<svg", 4)) return "image/svg+xml";
    return NULL;
}

int icl_report_image_file(icl_report *r, const char *path, const char *caption, icl_err *err) {
    if (!r) return icl_errf(err, "report is NULL");
    int num = ++r->nfig;
    char *data = NULL;
    size_t n = 0;
    const char *mime = NULL;
    if (!path) icl_errf(err, "report figure %d: image path is NULL", num);
    else if (icl_read_file(path, &data, &n, err)) icl_err_prefix(err, "report figure %d: ", num);
    else if (n > ((size_t)32 << 20)) icl_errf(err, "report figure %d: %s is larger than 32 MiB", num, path);
    else if (!(mime = image_mime((const unsigned char *)data, n)))
        icl_errf(err, "report figure %d: %s is not a PNG, JPEG, GIF or SVG image", num, path);
    if (!mime) {
        free(data);
        error_note(r, num, err);
        return -1;
    }
    sbuf b = {0};
    fig_open(&b, num);
    sb_printf(&b, "<img src=\"data:%s;base64,", mime);
    sb_base64(&b, (const unsigned char *)data, n);
    sb_str(&b, "\" alt=\"");
    sb_esc(&b, caption ? caption : path, 0);
    sb_str(&b, "\">");
    free(data);
    fig_close(&b, num, caption);
    if (push_html(r, &b)) return icl_errf(err, "report figure %d: out of memory", num);
    return 0;
}

int icl_report_set_time(icl_report *r, time_t t) {
    if (!r) return -1;
    r->has_time = 1;
    r->time = t;
    return 0;
}

const char *icl_report_error(const icl_report *r) {
    if (!r) return "report is NULL";
    return r->err[0] ? r->err : NULL;
}

/* ---- the page ---------------------------------------------------------------------------------- */

/* Built-in stylesheet: system fonts only, readable widths, light tables, print-friendly. */
static const char *const CSS =
    "body{margin:0;background:#f4f5f7;color:#1f2328;"
    "font:15px/1.55 system-ui,-apple-system,\"Segoe UI\",Roboto,\"DejaVu Sans\",Arial,sans-serif}\n"
    "main{max-width:1100px;margin:0 auto;padding:22px 36px 48px;background:#fff;min-height:100vh;"
    "box-shadow:0 0 0 1px #e3e6ea}\n"
    "h1{font-size:26px;margin:10px 0 2px;line-height:1.25}\n"
    "h2{font-size:20px;margin:36px 0 10px;padding-bottom:4px;border-bottom:1px solid #e3e6ea}\n"
    "h3{font-size:16.5px;margin:24px 0 8px}\n"
    ".meta{color:#656d76;font-size:13px;margin:0 0 14px}\n"
    "nav.toc{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:6px;padding:10px 22px 10px 16px;"
    "margin:12px 0 20px;display:inline-block;min-width:260px;font-size:14px}\n"
    "nav.toc ol{margin:4px 0;padding-left:22px}\n"
    "nav.toc a,a{color:#0b5cad;text-decoration:none}\n"
    "nav.toc a:hover{text-decoration:underline}\n"
    "table{border-collapse:collapse;font-size:14px;margin:8px 0 18px}\n"
    "th,td{padding:4px 12px;border-bottom:1px solid #e6e8eb;text-align:left;vertical-align:top}\n"
    "thead th{border-bottom:2px solid #c9ced4;background:#f6f8fa;white-space:nowrap}\n"
    "table.kv th{font-weight:600;color:#424a53;white-space:nowrap}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "tbody tr:nth-child(even){background:#fafbfc}\n"
    ".scroll{overflow-x:auto}\n"
    "figure{margin:14px 0 30px;text-align:center}\n"
    "figure svg,figure img{max-width:100%;height:auto;border:1px solid #eceef1;border-radius:3px}\n"
    "figcaption{font-size:14px;color:#424a53;margin:6px auto 0;text-align:left;max-width:800px}\n"
    ".fignum{font-weight:600;color:#1f2328}\n"
    "pre{background:#f6f8fa;border:1px solid #e3e6ea;border-radius:6px;padding:10px 14px;overflow-x:auto;"
    "font:13px/1.45 ui-monospace,\"DejaVu Sans Mono\",Menlo,Consolas,monospace}\n"
    ".error{color:#b42318;background:#fef3f2;border:1px solid #fecdca;border-radius:6px;padding:8px 12px}\n"
    "footer{margin-top:40px;color:#8c959f;font-size:12px}\n"
    "@media print{body{background:#fff}main{box-shadow:none;max-width:none;padding:0}"
    "h2{break-after:avoid}figure{break-inside:avoid}}\n";

/* The table of contents: h2 entries with their h3 entries nested. */
static void write_toc(const icl_report *r, sbuf *b) {
    int nh = 0;
    for (size_t i = 0; i < r->n; i++) nh += r->bl[i].kind == BK_H2 || r->bl[i].kind == BK_H3;
    if (!nh) return;
    sb_str(b, "<nav class=\"toc\"><b>Contents</b>\n<ol>\n");
    int open_li = 0, in_sub = 0, sec = 0;
    for (size_t i = 0; i < r->n; i++) {
        const block *k = &r->bl[i];
        if (k->kind != BK_H2 && k->kind != BK_H3) continue;
        sec++;
        if (k->kind == BK_H2 || !open_li) { /* a top-level entry (an h3 before any h2 becomes one) */
            if (in_sub) sb_str(b, "</ol>");
            if (open_li) sb_str(b, "</li>\n");
            in_sub = 0;
            sb_printf(b, "<li><a href=\"#sec-%d\">", sec);
            sb_esc(b, k->a, 0);
            sb_str(b, "</a>");
            open_li = 1;
            continue;
        }
        if (!in_sub) sb_str(b, "\n<ol>\n");
        in_sub = 1;
        sb_printf(b, "<li><a href=\"#sec-%d\">", sec);
        sb_esc(b, k->a, 0);
        sb_str(b, "</a></li>\n");
    }
    if (in_sub) sb_str(b, "</ol>");
    if (open_li) sb_str(b, "</li>\n");
    sb_str(b, "</ol></nav>\n");
}

int icl_report_write(const icl_report *r, const char *path, icl_err *err) {
    if (!r) return icl_errf(err, "report is NULL");
    if (!path || !*path) return icl_errf(err, "report: no output path");
    if (r->err[0]) return icl_errf(err, "%s: report: %s", path, r->err);
    time_t t = r->has_time ? r->time : time(NULL);
    struct tm tm;
    char when[64] = "unknown time";
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    sbuf b = {0};
    sb_str(&b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "img-src data:; style-src 'unsafe-inline'\">\n"
               "<meta name=\"generator\" content=\"iclab\">\n<title>");
    sb_esc(&b, r->title, 0);
    sb_str(&b, "</title>\n<style>\n");
    sb_str(&b, CSS);
    sb_str(&b, "</style>\n</head>\n<body>\n<main>\n<h1>");
    sb_esc(&b, r->title, 0);
    sb_printf(&b, "</h1>\n<p class=\"meta\">Generated by iclab on %s</p>\n", when);
    write_toc(r, &b);
    int sec = 0;
    for (size_t i = 0; i < r->n && !b.oom; i++) {
        const block *k = &r->bl[i];
        switch (k->kind) {
        case BK_H2:
        case BK_H3:
            sb_printf(&b, "<h%d id=\"sec-%d\">", k->kind == BK_H2 ? 2 : 3, ++sec);
            sb_esc(&b, k->a, 0);
            sb_printf(&b, "</h%d>\n", k->kind == BK_H2 ? 2 : 3);
            break;
        case BK_KV:
            if (i == 0 || r->bl[i - 1].kind != BK_KV) sb_str(&b, "<table class=\"kv\"><tbody>\n");
            sb_str(&b, "<tr><th>");
            sb_esc(&b, k->a, 0);
            sb_str(&b, "</th><td>");
            sb_esc(&b, k->b, 0);
            sb_str(&b, "</td></tr>\n");
            if (i + 1 == r->n || r->bl[i + 1].kind != BK_KV) sb_str(&b, "</tbody></table>\n");
            break;
        default: sb_str(&b, k->a); break;
        }
    }
    sb_str(&b, "<footer>A self-contained page written by iclab: everything is embedded, nothing is loaded "
               "from the network.</footer>\n</main>\n</body>\n</html>\n");
    if (b.oom) {
        free(b.d);
        return icl_errf(err, "%s: out of memory while building the report", path);
    }
    int rc = icl_write_file_atomic(path, b.d, b.n, err);
    free(b.d);
    return rc;
}
