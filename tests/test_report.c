/* Tests of icl_report: a report with headings, text, tables, an inline SVG figure and an
 * embedded PNG is written and read back: escaping, table of contents, data URIs that decode to
 * the original file, unique SVG ids across figures, no network references, error notes for
 * figures that fail, reproducible output with a fixed time, and errors that leave no file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_report.h"
#include "icl_test.h"

static char dir[1024];

static const char *P(const char *name) {
    static char buf[4][1400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Decodes base64 text up to the first character outside the alphabet; returns the length. */
static size_t b64_decode(const char *s, unsigned char *out, size_t cap) {
    static const char *A = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned v = 0;
    int bits = 0;
    size_t n = 0;
    for (; *s && *s != '='; s++) {
        const char *p = strchr(A, *s);
        if (!p || !*s) break;
        v = (v << 6) | (unsigned)(p - A);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n < cap) out[n] = (unsigned char)(v >> bits);
            n++;
        }
    }
    return n;
}

/* 1 if s is valid UTF-8. */
static int valid_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!k || i + k > n) return 0;
        for (int j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += (size_t)k;
    }
    return 1;
}

static icl_fig *small_fig(const char *title) {
    double y[5] = {1, 0.6, 0.3, 0.2, 0.15};
    icl_fig *f = icl_fig_line(title, "epoch", "MSE");
    icl_fig_add_series(f, "basis 1", NULL, y, 5);
    return f;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/icl_report_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    icl_err err = {{0}};
    icl_report *r = icl_report_new("Run <b>report</b> & \"quotes\"");
    CHECK(r != NULL);
    CHECK(icl_report_set_time(r, 0) == 0);
    CHECK(icl_report_h2(r, "Configuration") == 0);
    CHECK(icl_report_kv(r, "layers", "12") == 0);
    CHECK(icl_report_kvf(r, "learning rate", "%g", 3e-4) == 0);
    CHECK(icl_report_kv(r, "note", NULL) == 0);
    CHECK(icl_report_h3(r, "Sub <section>") == 0);
    CHECK(icl_report_p(r, "Trained %d epochs; final MSE %.3f <script>alert(1)</script>", 100, 0.0412) == 0);
    CHECK(icl_report_p(r, "bad utf8 \xff here") == 0);
    CHECK(icl_report_pre(r, "iclab train --seed 1\nline two & <three>") == 0);
    CHECK(icl_report_kv(r, "second group", "x") == 0);
    const char *hdr[3] = {"task", "TD", "accuracy"};
    const char *cells[6] = {"noun", "0.912", "87%", "verb", "-1e-3", NULL};
    CHECK(icl_report_table(r, 3, hdr, 2, cells) == 0);
    CHECK(icl_report_h2(r, "Figures") == 0);
    icl_fig *f1 = small_fig("first figure"), *f2 = small_fig("second figure");
    CHECK(icl_report_figure(r, f1, "The first <i>figure</i>.", 0, 0, &err) == 0);
    CHECK(icl_report_figure(r, f2, NULL, 640, 400, &err) == 0);
    CHECK(icl_fig_save(f1, P("f1.png"), 400, 250, &err) == 0);
    CHECK(icl_report_image_file(r, P("f1.png"), "The first figure as PNG.", &err) == 0);
    /* failures: an error note in the page, the rest kept */
    CHECK(icl_write_file_atomic(P("notimage.png"), "hello", 5, &err) == 0);
    CHECK(icl_report_image_file(r, P("notimage.png"), "text file", &err) == -1 && err.msg[0]);
    CHECK(icl_report_image_file(r, P("missing.png"), "missing", &err) == -1 && err.msg[0]);
    icl_fig *empty = icl_fig_line("empty", NULL, NULL);
    CHECK(icl_report_figure(r, empty, "empty", 0, 0, &err) == -1 && err.msg[0]);
    icl_fig_free(empty);
    CHECK(icl_report_error(r) == NULL);

    CHECK_MSG(icl_report_write(r, P("report.html"), &err) == 0, "%s", err.msg);
    char *html = NULL, *again = NULL;
    size_t n = 0, n2 = 0;
    CHECK(icl_read_file(P("report.html"), &html, &n, &err) == 0);
    if (html) {
        CHECK(!strncmp(html, "<!DOCTYPE html>", 15));
        CHECK(strstr(html, "<title>Run &lt;b&gt;report&lt;/b&gt; &amp; &quot;quotes&quot;</title>") != NULL);
        CHECK(strstr(html, "<h1>Run &lt;b&gt;report&lt;/b&gt;") != NULL);
        CHECK(strstr(html, "<b>report") == NULL);
        CHECK(strstr(html, "&lt;script&gt;alert(1)&lt;/script&gt;") != NULL);
        CHECK(strstr(html, "<script") == NULL);
        CHECK(strstr(html, "bad utf8 \xEF\xBF\xBD here") != NULL);
        CHECK(valid_utf8((const unsigned char *)html, n));
        CHECK(strstr(html, "<pre>iclab train --seed 1\nline two &amp; &lt;three&gt;</pre>") != NULL);
        CHECK(strstr(html, "Generated by iclab on 1970-01-01 00:00:00 UTC") != NULL);
        /* two kv groups, each one table; the data table with right-aligned numbers */
        CHECK(count(html, "<table class=\"kv\">") == 2);
        CHECK(strstr(html, "<tr><th>learning rate</th><td>0.0003</td></tr>") != NULL);
        CHECK(strstr(html, "<th>TD</th>") != NULL);
        CHECK(strstr(html, "<td class=\"num\">0.912</td>") && strstr(html, "<td class=\"num\">87%</td>") &&
              strstr(html, "<td class=\"num\">-1e-3</td>") && strstr(html, "<td>noun</td>"));
        /* table of contents: 3 headings, the h3 nested under the first h2 */
        CHECK(strstr(html, "<nav class=\"toc\">") != NULL);
        for (int s = 1; s <= 3; s++) {
            char a[64], b[64];
            snprintf(a, sizeof a, "href=\"#sec-%d\"", s);
            snprintf(b, sizeof b, "id=\"sec-%d\"", s);
            CHECK_MSG(count(html, a) == 1 && count(html, b) == 1, "section %d link/anchor", s);
        }
        CHECK(strstr(html, "Configuration</a>\n<ol>\n<li><a href=\"#sec-2\">Sub &lt;section&gt;</a></li>") != NULL);
        /* figures: two inline SVGs with their own id prefixes, a PNG data URI, three error notes */
        CHECK(count(html, "<svg") == 2);
        CHECK(strstr(html, "id=\"f1-") && strstr(html, "id=\"f2-"));
        CHECK(count(html, "<figure") == 3 && count(html, "</figure>") == 3);
        CHECK(strstr(html, "Figure 1.</span> The first &lt;i&gt;figure&lt;/i&gt;.") != NULL);
        CHECK(count(html, "class=\"error\"") == 3);
        CHECK(strstr(html, "Figure 4 could not be included") && strstr(html, "Figure 6 could not be included"));
        int dup = 0, ids = 0;
        for (const char *p = html; (p = strstr(p, " id=\"")); p += 5) {
            const char *e = strchr(p + 5, '"');
            size_t len = (size_t)(e - p);
            ids++;
            for (const char *q = html; (q = strstr(q, " id=\"")) && q < p; q += 5)
                if (!strncmp(q, p, len + 1)) dup++;
        }
        CHECK_MSG(dup == 0 && ids > 10, "%d duplicate ids among %d", dup, ids);
        const char *uri = strstr(html, "src=\"data:image/png;base64,");
        CHECK(uri != NULL);
        if (uri) {
            char *png = NULL;
            size_t np = 0;
            CHECK(icl_read_file(P("f1.png"), &png, &np, &err) == 0);
            unsigned char *dec = malloc(np + 16);
            size_t nd = b64_decode(uri + strlen("src=\"data:image/png;base64,"), dec, np + 16);
            CHECK_MSG(nd == np && !memcmp(dec, png, np), "data URI decodes to %zu bytes, file has %zu", nd, np);
            free(dec);
            free(png);
        }
        CHECK(strstr(html, "http://") == NULL && strstr(html, "https://") == NULL);
        CHECK(strstr(html, "<link") == NULL && strstr(html, "url(http") == NULL);
        /* the same report written again is byte-identical (fixed time) */
        CHECK(icl_report_write(r, P("report2.html"), &err) == 0);
        CHECK(icl_read_file(P("report2.html"), &again, &n2, &err) == 0 && n2 == n && !memcmp(html, again, n));
        free(again);
        free(html);
    }
    /* errors: no file left */
    CHECK(icl_report_write(r, "/nonexistent-iclab-dir/r.html", &err) == -1 && err.msg[0]);
    CHECK(!icl_path_exists("/nonexistent-iclab-dir/r.html"));
    CHECK(icl_report_table(r, 0, NULL, 1, cells) == -1);
    CHECK(icl_report_error(r) != NULL);
    CHECK(icl_report_write(r, P("bad.html"), &err) == -1 && !icl_path_exists(P("bad.html")));
    CHECK(icl_report_h2(NULL, "x") == -1 && icl_report_write(NULL, P("null.html"), &err) == -1);
    icl_report_free(r);
    icl_report_free(NULL);
    /* an empty report is a valid page without a table of contents */
    r = icl_report_new(NULL);
    CHECK(icl_report_write(r, P("empty.html"), &err) == 0);
    CHECK(icl_read_file(P("empty.html"), &html, &n, &err) == 0);
    CHECK(html && strstr(html, "<h1>iclab report</h1>") && !strstr(html, "<nav"));
    free(html);
    icl_report_free(r);
    icl_fig_free(f1);
    icl_fig_free(f2);

    const char *names[] = {"report.html", "report2.html", "f1.png", "notimage.png", "empty.html"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(P(names[i]));
    CHECK(rmdir(dir) == 0); /* fails if anything else (a temporary file) was left */
    return icl_test_finish();
}
