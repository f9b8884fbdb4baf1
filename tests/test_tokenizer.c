/* Tokenizers from GGUF metadata: the reference suites of ../shared/data/vocab (GPT-2, Llama-3,
 * Llama-2 SentencePiece; every string must encode to exactly the listed ids and decode back to
 * itself), pre-tokenizer splits derived by hand (Qwen2, Llama-3, GPT-2) and checked against the
 * real regexes (tests/fixtures/tok_pretok_splits.txt from tests/ref/tok_pretok_ref.py), special
 * tokens and BOS, random bytes (invalid UTF-8) round-tripping, a tiny hand-made Qwen2-style BPE,
 * and bad inputs (a BPE vocabulary without merges, unknown model or pre-tokenizer, out-of-range ids).
 * Timings are printed, never asserted. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "iclab/icl_gguf.h"
#include "iclab/icl_rng.h"
#include "iclab/icl_tokenizer.h"
#include "icl_test.h"

/* The reference vocabularies: $ICLAB_VOCAB_DIR (make test unpacks them into build/vocab), else the
 * shared folder beside the repository. */
static const char *vocab_dir(void) {
    const char *d = getenv("ICLAB_VOCAB_DIR");
    return d && *d ? d : "../shared/data/vocab";
}
#define SEP "__ggml_vocab_test__"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Whole file into a malloc'd, NUL-terminated buffer; NULL if unreadable. */
static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (size_t r; b && (r = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += r;
        if (cap - n - 1 == 0) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = 0;
    *len = n;
    return b;
}

/* A test string: bytes [off, off+len) of the .inp buffer. */
typedef struct {
    size_t off, len;
} span;

/* Splits the .inp text at separator lines: each string ends before the "\n" that precedes a line
 * "__ggml_vocab_test__" (the separator line ends with "\n" or the file). Returns the count. */
static size_t split_inp(const char *s, size_t n, span *out, size_t max) {
    size_t cnt = 0, start = 0, sl = strlen(SEP);
    for (size_t p = 0; p + sl <= n;) {
        /* a separator line starts at p: p is 0 or follows a newline, and the line is exactly SEP */
        int at_line = p == 0 || s[p - 1] == '\n';
        if (at_line && !memcmp(s + p, SEP, sl) && (p + sl == n || s[p + sl] == '\n')) {
            size_t end = p > start ? p - 1 : start; /* drop the newline before the separator */
            if (cnt < max) out[cnt].off = start, out[cnt].len = end - start;
            cnt++;
            p += sl + 1;
            start = p;
            continue;
        }
        p++;
    }
    return cnt;
}

/* Parses line `line` of the .out text into ids (room for max); returns the count or -1 when the
 * file has fewer lines. */
static long parse_out_line(const char *s, size_t line, int32_t *ids, size_t max) {
    const char *p = s;
    for (size_t l = 0; l < line; l++) {
        p = strchr(p, '\n');
        if (!p) return -1;
        p++;
    }
    if (!*p) return -1;
    long n = 0;
    while (*p && *p != '\n') {
        if (*p == ' ' || *p == '\r') {
            p++;
            continue;
        }
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) return -1;
        if ((size_t)n < max) ids[n] = (int32_t)v;
        n++;
        p = e;
    }
    return n;
}

static void print_ids(const char *what, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n && i < 64; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 64 ? " ...\n" : "\n");
}

/* Runs one reference suite: every string must encode (no BOS, no special parsing) to exactly the
 * listed ids, and decode back to itself. Returns the number of strings that passed both. */
static size_t run_suite(const char *name, size_t *total, double *load_ms, double *enc_ms) {
    char path[512], pin[600], pout[600];
    snprintf(path, sizeof path, "%s/%s.gguf", vocab_dir(), name);
    snprintf(pin, sizeof pin, "%s.inp", path);
    snprintf(pout, sizeof pout, "%s.out", path);
    size_t nin = 0, nout = 0, passed = 0;
    char *inp = read_all(pin, &nin), *out = read_all(pout, &nout);
    CHECK_MSG(inp && out, "cannot read %s / %s", pin, pout);
    *total = 0;
    if (!inp || !out) goto done;
    icl_tokenizer *tk = NULL;
    icl_err err = {{0}};
    double t0 = now_ms();
    int rc = icl_tokenizer_load_file(&tk, path, &err);
    *load_ms = now_ms() - t0;
    CHECK_MSG(rc == 0, "load %s: %s", path, err.msg);
    if (rc) goto done;
    span sp[256];
    size_t ns = split_inp(inp, nin, sp, 256);
    CHECK(ns > 0 && ns <= 256);
    if (ns > 256) ns = 256;
    *total = ns;
    static int32_t want[4096];
    *enc_ms = 0;
    for (size_t k = 0; k < ns; k++) {
        const char *s = inp + sp[k].off;
        long nw = parse_out_line(out, k, want, 4096);
        CHECK_MSG(nw >= 0 && nw <= 4096, "%s: .out has no usable line %zu", name, k);
        if (nw < 0 || nw > 4096) continue;
        int32_t *ids = NULL;
        size_t n = 0;
        t0 = now_ms();
        rc = icl_tokenizer_encode(tk, s, sp[k].len, 0, 0, &ids, &n, &err);
        *enc_ms += now_ms() - t0;
        CHECK_MSG(rc == 0, "%s[%zu]: encode: %s", name, k, err.msg);
        int ok = rc == 0 && n == (size_t)nw && (n == 0 || !memcmp(ids, want, n * sizeof *ids));
        CHECK_MSG(ok, "%s[%zu] '%.*s': ids differ", name, k, (int)sp[k].len, s);
        if (!ok && rc == 0) print_ids("got ", ids, n), print_ids("want", want, (size_t)nw);
        char *text = NULL;
        size_t tl = 0;
        int drc = rc == 0 ? icl_tokenizer_decode(tk, ids, n, &text, &tl, &err) : -1;
        int rt = drc == 0 && tl == sp[k].len && !memcmp(text, s, tl);
        CHECK_MSG(rt, "%s[%zu] '%.*s': decode gives '%.*s'", name, k, (int)sp[k].len, s, text ? (int)tl : 0,
                  text ? text : "");
        passed += ok && rt;
        free(ids);
        free(text);
    }
    icl_tokenizer_free(tk);
done:
    free(inp);
    free(out);
    return passed;
}

/* Splits text with pre-tokenizer pre and compares the words with the NULL-terminated list want. */
static void check_split(int pre, const char *text, const char *const *want) {
    size_t *ends = NULL, n = 0, len = strlen(text);
    icl_err err = {{0}};
    int rc = icl_pretok_split(pre, text, len, &ends, &n, &err);
    CHECK_MSG(rc == 0, "split: %s", err.msg);
    size_t nw = 0;
    while (want[nw]) nw++;
    int ok = rc == 0 && n == nw;
    for (size_t k = 0, start = 0; ok && k < n; start = ends[k], k++)
        ok = ends[k] - start == strlen(want[k]) && !memcmp(text + start, want[k], ends[k] - start);
    CHECK_MSG(ok, "pre-tokenizer %d splits '%s' differently (%zu words, want %zu)", pre, text, n, nw);
    if (!ok && rc == 0)
        for (size_t k = 0, start = 0; k < n; start = ends[k], k++)
            fprintf(stderr, "  [%.*s]\n", (int)(ends[k] - start), text + start);
    free(ends);
}

/* Splits derived by hand from the regexes (see icl_tokenizer.h). */
static void test_pretok_splits(void) {
    enum { G = ICL_PRETOK_GPT2, L = ICL_PRETOK_LLAMA3, Q = ICL_PRETOK_QWEN2 };
    /* digits: GPT-2 keeps a run with its space, Llama-3 groups of 3, Qwen2 single digits */
    check_split(G, "abc 12345 x", (const char *[]){"abc", " 12345", " x", NULL});
    check_split(L, "abc 12345 x", (const char *[]){"abc", " ", "123", "45", " x", NULL});
    check_split(Q, "abc 12345 x", (const char *[]){"abc", " ", "1", "2", "3", "4", "5", " x", NULL});
    check_split(Q, "v2.10", (const char *[]){"v", "2", ".", "1", "0", NULL});
    /* white space: \s+(?!\S) leaves the last space to the next word; \s*[\r\n]+ ends at the last newline */
    check_split(Q, "Hello  world\n\n  end", (const char *[]){"Hello", " ", " world", "\n\n", " ", " end", NULL});
    check_split(G, "Hello  world\n\n  end", (const char *[]){"Hello", " ", " world", "\n\n ", " end", NULL});
    check_split(Q, "x\t\ty", (const char *[]){"x", "\t", "\ty", NULL});
    check_split(Q, "  \t\n x", (const char *[]){"  \t\n", " x", NULL});
    check_split(Q, "hi   ", (const char *[]){"hi", "   ", NULL});
    check_split(Q, " 7", (const char *[]){" ", "7", NULL});
    /* contractions: case-insensitive for Llama-3 and Qwen2, not for GPT-2 */
    check_split(Q, "I'M don't", (const char *[]){"I", "'M", " don", "'t", NULL});
    check_split(L, "WE'LL", (const char *[]){"WE", "'LL", NULL});
    check_split(G, "I'M don't", (const char *[]){"I", "'", "M", " don", "'t", NULL});
    /* punctuation takes the newlines after it; a lone non-letter joins the letters after it */
    check_split(Q, "a!!\n\nb", (const char *[]){"a", "!!\n\n", "b", NULL});
    check_split(Q, "(hello)", (const char *[]){"(hello", ")", NULL});
    check_split(Q, "a,,b", (const char *[]){"a", ",,", "b", NULL});
    check_split(Q, "a, b", (const char *[]){"a", ",", " b", NULL});
    /* non-ASCII letters and numbers: é is a letter, ٣ (Arabic-Indic three) and ½ are numbers */
    check_split(Q, "caf\xC3\xA9 \xD9\xA3\xC2\xBD", (const char *[]){"caf\xC3\xA9", " ", "\xD9\xA3", "\xC2\xBD", NULL});
    /* invalid UTF-8 bytes are "other" characters, each a unit */
    check_split(Q, "a\xFF" "1", (const char *[]){"a", "\xFF", "1", NULL});
    check_split(Q, "a\xFF" "b", (const char *[]){"a", "\xFF" "b", NULL});
    check_split(G, "\xE2\x82 x", (const char *[]){"\xE2\x82", " x", NULL});
    check_split(Q, "", (const char *[]){NULL});
    CHECK(icl_pretok_from_name("qwen2") == ICL_PRETOK_QWEN2);
    CHECK(icl_pretok_from_name("llama-bpe") == ICL_PRETOK_LLAMA3);
    CHECK(icl_pretok_from_name("gpt2") == ICL_PRETOK_GPT2);
    CHECK(icl_pretok_from_name("falcon") == ICL_PRETOK_NONE);
}

static int hexdig(int c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* The scanners against the real regexes: tests/fixtures/tok_pretok_splits.txt (written by
 * tests/ref/tok_pretok_ref.py with Python's regex module) holds random strings and the end offsets
 * of their words under GPT-2, Llama-3 and Qwen2; every split must agree exactly. */
static void test_pretok_fixture(void) {
    size_t n = 0;
    char *f = read_all("tests/fixtures/tok_pretok_splits.txt", &n);
    CHECK_MSG(f != NULL, "cannot read tests/fixtures/tok_pretok_splits.txt");
    if (!f) return;
    static const int pres[3] = {ICL_PRETOK_GPT2, ICL_PRETOK_LLAMA3, ICL_PRETOK_QWEN2};
    size_t lines = 0, agree = 0;
    for (char *line = f, *next; *line; line = next) {
        next = strchr(line, '\n');
        next = next ? (*next = 0, next + 1) : line + strlen(line);
        char text[256];
        size_t tl = 0;
        char *p = line;
        for (; hexdig(p[0]) >= 0 && hexdig(p[1]) >= 0 && tl < sizeof text; p += 2)
            text[tl++] = (char)(hexdig(p[0]) * 16 + hexdig(p[1]));
        int ok = *p == ';';
        for (int k = 0; k < 3 && ok; k++) {
            p++;
            size_t *ends = NULL, nw = 0;
            icl_err err = {{0}};
            ok = icl_pretok_split(pres[k], text, tl, &ends, &nw, &err) == 0;
            for (size_t w = 0; ok && w < nw; w++) {
                char *e;
                unsigned long v = strtoul(p, &e, 10);
                ok = e != p && v == ends[w];
                p = *e == ',' ? e + 1 : e;
            }
            ok = ok && (*p == ';' || *p == 0);
            CHECK_MSG(ok, "fixture line %zu: pre-tokenizer %d differs from the regex", lines + 1, pres[k]);
            free(ends);
        }
        lines++;
        agree += ok;
    }
    CHECK(lines >= 200);
    printf("pre-tokenizers vs regex: %zu/%zu strings agree (GPT-2, Llama-3, Qwen2)\n", agree, lines);
    free(f);
}

static icl_tokenizer *load_vocab(const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s.gguf", vocab_dir(), name);
    icl_tokenizer *tk = NULL;
    icl_err err = {{0}};
    int rc = icl_tokenizer_load_file(&tk, path, &err);
    CHECK_MSG(rc == 0, "load %s: %s", path, err.msg);
    return tk;
}

/* Encodes s (NUL-terminated) into ids (room for max); returns the count, or -1 on error. */
static long enc(const icl_tokenizer *tk, const char *s, int add_bos, int parse_special, int32_t *ids, size_t max) {
    int32_t *v = NULL;
    size_t n = 0;
    icl_err err = {{0}};
    if (icl_tokenizer_encode(tk, s, strlen(s), add_bos, parse_special, &v, &n, &err)) {
        fprintf(stderr, "  encode '%s': %s\n", s, err.msg);
        return -1;
    }
    memcpy(ids, v, (n < max ? n : max) * sizeof *ids);
    free(v);
    return (long)n;
}

/* Decodes ids with flags and compares with want. */
static int dec_is(const icl_tokenizer *tk, const int32_t *ids, size_t n, int flags, const char *want) {
    char *text = NULL;
    size_t len = 0;
    icl_err err = {{0}};
    if (icl_tokenizer_decode_ex(tk, ids, n, flags, &text, &len, &err)) return 0;
    int ok = len == strlen(want) && !memcmp(text, want, len);
    if (!ok) fprintf(stderr, "  decoded '%s', want '%s'\n", text, want);
    free(text);
    return ok;
}

/* BOS/EOS, add_bos defaults and special tokens of the byte-level BPE vocabularies. */
static void test_bpe_specials(void) {
    int32_t a[64], b[64];
    icl_tokenizer *g = load_vocab("ggml-vocab-gpt-2");
    if (g) {
        CHECK(icl_tokenizer_kind(g) == ICL_TOK_BPE && icl_tokenizer_pretok(g) == ICL_PRETOK_GPT2);
        CHECK(icl_tokenizer_n_vocab(g) == 50257);
        CHECK(icl_tokenizer_bos(g) == 50256 && icl_tokenizer_eos(g) == 50256);
        CHECK(icl_tokenizer_add_bos_default(g) == 0);
        long n = enc(g, "Hi<|endoftext|>", -1, 1, a, 64); /* GPT-2: no BOS by default */
        CHECK(n == 2 && a[1] == 50256);
        n = enc(g, "Hi<|endoftext|>", -1, 0, a, 64); /* not parsed: plain text */
        CHECK(n > 2 && a[n - 1] != 50256);
        CHECK(dec_is(g, a, (size_t)n, 0, "Hi<|endoftext|>"));
        icl_tokenizer_free(g);
    }
    icl_tokenizer *l = load_vocab("ggml-vocab-llama-bpe");
    if (!l) return;
    CHECK(icl_tokenizer_kind(l) == ICL_TOK_BPE && icl_tokenizer_pretok(l) == ICL_PRETOK_LLAMA3);
    CHECK(icl_tokenizer_n_vocab(l) == 128256);
    CHECK(icl_tokenizer_bos(l) == 128000 && icl_tokenizer_eos(l) == 128001);
    CHECK(icl_tokenizer_add_bos_default(l) == 1);
    size_t tl = 0;
    const char *t = icl_tokenizer_token_text(l, 128000, &tl);
    CHECK(t && tl == 17 && !memcmp(t, "<|begin_of_text|>", 17));
    CHECK(icl_tokenizer_token_type(l, 128000) == ICL_TOKT_CONTROL);
    CHECK(icl_tokenizer_token_text(l, 128256, &tl) == NULL && icl_tokenizer_token_type(l, -1) == -1);
    long nb = enc(l, "Hello world", 0, 0, b, 64);
    long n = enc(l, "Hello world", -1, 0, a, 64); /* default: BOS first */
    CHECK(nb > 0 && n == nb + 1 && a[0] == 128000 && !memcmp(a + 1, b, (size_t)nb * sizeof *b));
    n = enc(l, "<|begin_of_text|>Hello world<|end_of_text|>", 0, 1, a, 64);
    CHECK(n == nb + 2 && a[0] == 128000 && a[n - 1] == 128001 && !memcmp(a + 1, b, (size_t)nb * sizeof *b));
    CHECK(n > 0 && dec_is(l, a, (size_t)n, 0, "<|begin_of_text|>Hello world<|end_of_text|>"));
    CHECK(n > 0 && dec_is(l, a, (size_t)n, ICL_TOK_DECODE_SKIP_SPECIAL, "Hello world"));
    n = enc(l, "<|begin_of_text|>", 0, 0, a, 64); /* without parse_special: text, never the control token */
    CHECK(n > 1);
    for (long i = 0; i < n; i++) CHECK(a[i] != 128000);
    /* longest match: <|reserved_special_token_10|> also starts with <|reserved_special_token_1 */
    const char *r10 = "<|reserved_special_token_10|>";
    int32_t id10 = icl_tokenizer_find(l, r10, strlen(r10));
    CHECK(id10 >= 0 && icl_tokenizer_token_type(l, id10) == ICL_TOKT_CONTROL);
    CHECK(icl_tokenizer_find(l, "<|reserved_special_token_1|>", 28) >= 0);
    n = enc(l, "x<|reserved_special_token_10|>", 0, 1, a, 64);
    CHECK(n == 2 && a[1] == id10);
    CHECK(icl_tokenizer_find(l, "no such token text", 18) == -1);
    icl_tokenizer_free(l);
}

/* SentencePiece: BOS default, byte fallback, the added space and its removal on decode. */
static void test_spm(void) {
    int32_t a[64], b[64];
    icl_tokenizer *t = load_vocab("ggml-vocab-llama-spm");
    if (!t) return;
    CHECK(icl_tokenizer_kind(t) == ICL_TOK_SPM && icl_tokenizer_pretok(t) == ICL_PRETOK_NONE);
    CHECK(icl_tokenizer_n_vocab(t) == 32000 && icl_tokenizer_bos(t) == 1 && icl_tokenizer_eos(t) == 2);
    CHECK(icl_tokenizer_add_bos_default(t) == 1);
    long nb = enc(t, "Hello world", 0, 0, b, 64);
    long n = enc(t, "Hello world", -1, 0, a, 64);
    CHECK(nb > 0 && n == nb + 1 && a[0] == 1 && !memcmp(a + 1, b, (size_t)nb * sizeof *b));
    /* the first piece carries the added space: "▁Hello" */
    size_t tl = 0;
    const char *tx = nb > 0 ? icl_tokenizer_token_text(t, b[0], &tl) : NULL;
    CHECK(tx && tl == 8 && !memcmp(tx, "\xE2\x96\x81Hello", 8));
    CHECK(n > 0 && dec_is(t, a, (size_t)n, ICL_TOK_DECODE_SKIP_SPECIAL, "Hello world"));
    CHECK(n > 0 && dec_is(t, a, (size_t)n, 0, "<s> Hello world"));
    CHECK(nb > 0 && dec_is(t, b, (size_t)nb, ICL_TOK_DECODE_KEEP_PREFIX_SPACE, " Hello world"));
    /* "<s>" in plain text is text, not BOS; with parse_special it is BOS and the text after it
     * gets its own space prefix (as in llama.cpp) */
    n = enc(t, "<s>Hello world", 0, 0, a, 64);
    CHECK(n > 1 && a[0] != 1);
    n = enc(t, "<s>Hello world", 0, 1, a, 64);
    CHECK(n == nb + 1 && a[0] == 1 && !memcmp(a + 1, b, (size_t)nb * sizeof *b));
    /* byte fallback: a control character and an unassigned code point become <0xNN> tokens */
    int32_t x01 = icl_tokenizer_find(t, "<0x01>", 6);
    CHECK(x01 >= 0 && icl_tokenizer_token_type(t, x01) == ICL_TOKT_BYTE);
    n = enc(t, "\x01", 0, 0, a, 64);
    CHECK(n == 2 && a[1] == x01); /* "▁" then the byte */
    n = enc(t, "\xF3\xA0\x80\x80", 0, 0, a, 64); /* U+E0000, not in the vocabulary: 4 byte tokens */
    CHECK(n == 5 && icl_tokenizer_token_type(t, a[1]) == ICL_TOKT_BYTE && icl_tokenizer_token_type(t, a[4]) == ICL_TOKT_BYTE);
    CHECK(n > 0 && dec_is(t, a, (size_t)n, 0, "\xF3\xA0\x80\x80"));
    icl_tokenizer_free(t);
}

/* Random byte strings (invalid UTF-8, NULs, truncated and valid sequences mixed) must encode and
 * decode back to themselves with every tokenizer. SentencePiece cannot tell an input U+2581 from
 * a space, so its strings avoid byte 0x81. */
static void test_random_bytes(void) {
    static const char *names[] = {"ggml-vocab-gpt-2", "ggml-vocab-llama-bpe", "ggml-vocab-llama-spm"};
    static const char *frag[] = {"a", " ", "  ", "\n", "\t", "1", "'s", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80",
                                 "\xE2\x96", "\xC3", "\xFF", "\x80", "\xED\xA0\x80", "\xC0\xAF", "<s>", "<|",
                                 "\xF4\x90\x80\x80", "!"};
    icl_rng rng;
    icl_rng_seed(&rng, 7);
    for (int v = 0; v < 3; v++) {
        icl_tokenizer *tk = load_vocab(names[v]);
        if (!tk) continue;
        size_t ok = 0, total = 300;
        for (size_t k = 0; k < total; k++) {
            char s[128];
            size_t len = 0, nf = icl_rng_below(&rng, 12);
            for (size_t f = 0; f < nf; f++) {
                if (icl_rng_below(&rng, 3) == 0) { /* a raw random byte */
                    uint8_t c = (uint8_t)icl_rng_below(&rng, 256);
                    s[len++] = (char)(v == 2 && c == 0x81 ? 0x82 : c);
                } else {
                    const char *p = frag[icl_rng_below(&rng, sizeof frag / sizeof *frag)];
                    memcpy(s + len, p, strlen(p));
                    len += strlen(p);
                }
            }
            int32_t *ids = NULL;
            size_t n = 0;
            char *text = NULL;
            size_t tl = 0;
            icl_err err = {{0}};
            /* parse_special on every other string; not for SentencePiece, where text after a
             * parsed "<s>" gains a space prefix (as in llama.cpp) and cannot round-trip */
            int rc = icl_tokenizer_encode(tk, s, len, 0, v != 2 && (k & 1), &ids, &n, &err);
            if (rc == 0) rc = icl_tokenizer_decode(tk, ids, n, &text, &tl, &err);
            int good = rc == 0 && tl == len && !memcmp(text, s, len);
            CHECK_MSG(good, "%s: random string %zu does not round-trip (%s)", names[v], k, rc ? err.msg : "differs");
            ok += good;
            free(ids);
            free(text);
        }
        printf("%-22s %zu/%zu random byte strings round-trip\n", names[v], ok, total);
        icl_tokenizer_free(tk);
    }
}

/* A hand-made tokenizer GGUF: absent parts are NULL (merges also when nmerges < 0, bos when < -1). */
typedef struct {
    const char *model, *pre;
    const char *const *toks;
    size_t ntok;
    const char *const *merges;
    long nmerges;
    const float *scores;
    const int32_t *types;
    size_t ntypes;
    long bos;
} tokspec;

static char tmpdir[64];

/* Writes spec to tmpdir/name.gguf and loads it into *tk; returns the load's rc, message in err. */
static int load_spec(const char *name, const tokspec *sp, icl_tokenizer **tk, icl_err *err) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s.gguf", tmpdir, name);
    icl_gguf_writer *w = NULL;
    icl_err werr = {{0}};
    int rc = icl_gguf_writer_init(&w, &werr);
    if (!rc && sp->model) rc = icl_gguf_writer_add_str(w, "tokenizer.ggml.model", sp->model, &werr);
    if (!rc && sp->pre) rc = icl_gguf_writer_add_str(w, "tokenizer.ggml.pre", sp->pre, &werr);
    if (!rc && sp->toks) rc = icl_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", sp->toks, NULL, sp->ntok, &werr);
    if (!rc && sp->merges && sp->nmerges >= 0)
        rc = icl_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", sp->merges, NULL, (uint64_t)sp->nmerges, &werr);
    if (!rc && sp->scores) rc = icl_gguf_writer_add_arr(w, "tokenizer.ggml.scores", ICL_GGUF_FLOAT32, sp->scores, sp->ntok, &werr);
    if (!rc && sp->types) rc = icl_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", ICL_GGUF_INT32, sp->types, sp->ntypes, &werr);
    if (!rc && sp->bos >= -1) rc = icl_gguf_writer_add_i32(w, "tokenizer.ggml.bos_token_id", (int32_t)sp->bos, &werr);
    if (!rc) rc = icl_gguf_writer_write(w, path, &werr);
    icl_gguf_writer_free(w);
    CHECK_MSG(rc == 0, "writing %s: %s", path, werr.msg);
    *tk = NULL;
    if (rc) return 0;
    memset(err, 0, sizeof *err);
    rc = icl_tokenizer_load_file(tk, path, err);
    CHECK(rc == 0 ? *tk != NULL : *tk == NULL);
    CHECK(unlink(path) == 0); /* the tokenizer keeps nothing of the file */
    return rc;
}

/* Loading fails with err's message containing want. */
static void expect_load_error(const char *name, const tokspec *sp, const char *want) {
    icl_tokenizer *tk = NULL;
    icl_err err = {{0}};
    int rc = load_spec(name, sp, &tk, &err);
    CHECK_MSG(rc == -1 && strstr(err.msg, want), "%s: want an error with '%s', got rc %d '%s'", name, want, rc, err.msg);
    icl_tokenizer_free(tk);
}

/* GPT-2's byte alphabet, written by hand again: byte b's code point as UTF-8 into out. */
static void byte_char(int b, char out[4]) {
    int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    int cp = b, k = 256;
    if (!printable)
        for (int c = 0; c < b; c++) k += !((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF));
    if (!printable) cp = k;
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static int ids_are(const icl_tokenizer *tk, const char *s, int parse_special, const int32_t *want, long nw) {
    int32_t got[64];
    long n = enc(tk, s, 0, parse_special, got, 64);
    int ok = n == nw && !memcmp(got, want, (size_t)nw * sizeof *want);
    if (!ok && n >= 0) print_ids("got ", got, (size_t)n), print_ids("want", want, (size_t)nw);
    return ok;
}

/* A tiny hand-made byte-level BPE with the Qwen2 pre-tokenizer, user-defined and control tokens,
 * and a merge through a piece that is not a token; then malformed files and ids. */
static void test_tiny_and_bad(void) {
    char *d = mkdtemp(strcpy(tmpdir, "/tmp/icl_tok_XXXXXX"));
    CHECK(d != NULL);
    if (!d) return;
    static char bytes[256][4];
    const char *toks[261];
    int32_t types[261];
    for (int b = 0; b < 256; b++) byte_char(b, bytes[b]), toks[b] = bytes[b], types[b] = ICL_TOKT_NORMAL;
    toks[256] = "ab", toks[257] = "abc", toks[258] = "<tag>", toks[259] = "<|eot|>", toks[260] = "xyz";
    for (int i = 256; i < 261; i++) types[i] = ICL_TOKT_NORMAL;
    types[258] = ICL_TOKT_USER_DEFINED, types[259] = ICL_TOKT_CONTROL;
    const char *merges[] = {"a b", "ab c", "x y", "xy z"};
    tokspec sp = {"gpt2", "qwen2", toks, 261, merges, 4, NULL, types, 261, 259};
    icl_tokenizer *tk = NULL;
    icl_err err = {{0}};
    int rc = load_spec("tiny", &sp, &tk, &err);
    CHECK_MSG(rc == 0, "tiny: %s", err.msg);
    if (tk) {
        CHECK(icl_tokenizer_pretok(tk) == ICL_PRETOK_QWEN2 && icl_tokenizer_bos(tk) == 259);
        CHECK(icl_tokenizer_add_bos_default(tk) == 0 && icl_tokenizer_eos(tk) == -1);
        /* qwen2 words: "abc" "1" " " "2" "x"; Ġ (space) is byte token 32 */
        CHECK(ids_are(tk, "abc1 2x", 0, (const int32_t[]){257, '1', ' ', '2', 'x'}, 5));
        CHECK(ids_are(tk, "xyz xy", 0, (const int32_t[]){260, ' ', 'x', 'y'}, 4)); /* "xy" is no token */
        CHECK(ids_are(tk, "a<tag>b", 0, (const int32_t[]){'a', 258, 'b'}, 3));  /* user-defined: always */
        CHECK(ids_are(tk, "<|eot|>", 1, (const int32_t[]){259}, 1));             /* control: parse_special */
        CHECK(ids_are(tk, "<|eot|>", 0, (const int32_t[]){'<', '|', 'e', 'o', 't', '|', '>'}, 7));
        int32_t bad[2] = {0, 261};
        char *text = (char *)1;
        size_t len = 5;
        CHECK(icl_tokenizer_decode(tk, bad, 2, &text, &len, &err) == -1 && text == NULL && len == 0);
        CHECK_MSG(strstr(err.msg, "261") && strstr(err.msg, "outside the vocabulary"), "%s", err.msg);
        bad[1] = -5;
        CHECK(icl_tokenizer_decode(tk, bad, 2, &text, &len, &err) == -1 && strstr(err.msg, "-5"));
        int32_t *ids = NULL;
        size_t n = 7;
        CHECK(icl_tokenizer_encode(tk, "", 0, 0, 0, &ids, &n, &err) == 0 && n == 0);
        free(ids);
        CHECK(icl_tokenizer_decode(tk, NULL, 0, &text, &len, &err) == 0 && len == 0 && text && text[0] == 0);
        free(text);
        icl_tokenizer_free(tk);
    }
    tokspec t = sp;
    t.merges = NULL;
    expect_load_error("nomerges", &t, "merges");
    t = sp, t.nmerges = 0;
    expect_load_error("emptymerges", &t, "merges");
    t = sp, t.model = "bert";
    expect_load_error("bert", &t, "unsupported tokenizer model");
    t = sp, t.pre = "falcon";
    expect_load_error("falcon", &t, "pre-tokenizer");
    t = sp, t.pre = NULL;
    expect_load_error("nopre", &t, "tokenizer.ggml.pre");
    t = sp, t.model = NULL;
    expect_load_error("nomodel", &t, "tokenizer.ggml.model");
    t = sp, t.toks = NULL;
    expect_load_error("notokens", &t, "tokenizer.ggml.tokens");
    const char *badm[] = {"a b", "abc"};
    t = sp, t.merges = badm, t.nmerges = 2;
    expect_load_error("badmerge", &t, "merges[1]");
    t = sp, t.ntypes = 10;
    expect_load_error("types", &t, "token_type");
    t = sp, t.bos = 999;
    expect_load_error("bos", &t, "outside the vocabulary");
    t = sp, t.model = "llama", t.pre = NULL;
    expect_load_error("noscores", &t, "scores");
    CHECK(icl_tokenizer_load_file(&tk, "/nonexistent/x.gguf", &err) == -1 && tk == NULL);
    CHECK(rmdir(tmpdir) == 0);
}

int main(void) {
    static const char *suites[] = {"ggml-vocab-gpt-2", "ggml-vocab-llama-bpe", "ggml-vocab-llama-spm"};
    for (size_t i = 0; i < 3; i++) {
        size_t total = 0;
        double load_ms = 0, enc_ms = 0;
        size_t passed = run_suite(suites[i], &total, &load_ms, &enc_ms);
        CHECK_MSG(total > 0 && passed == total, "%s: %zu of %zu strings passed", suites[i], passed, total);
        printf("%-22s %zu/%zu strings exact and round-trip (load %.1f ms, encode all %.2f ms)\n", suites[i], passed,
               total, load_ms, enc_ms);
    }
    test_pretok_splits();
    test_pretok_fixture();
    test_bpe_specials();
    test_spm();
    test_random_bytes();
    test_tiny_and_bad();
    return icl_test_finish();
}
