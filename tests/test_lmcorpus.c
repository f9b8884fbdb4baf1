/* The pretraining corpus (icl_lmcorpus) and the byte-level BPE trainer (icl_bpe_train):
 *   - no test example of any concept (its line "input -> output") and no test sentence of the pos
 *     family appears anywhere in the corpus (exact substring search), on a hand-made Brown-format
 *     corpus in /tmp and on the real one (data/brown) when present;
 *   - the same options give the same bytes; the concept weights are honoured; the layout (EOS
 *     markers, one episode per document, 0..10 demonstrations, the index);
 *   - BPE: merges in the expected order on hand-checkable texts, decode(encode(s)) == s through
 *     icl_tokenizer loading the written GGUF, its metadata, and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "iclab/icl_bpe_train.h"
#include "iclab/icl_file.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_lmcorpus.h"
#include "iclab/icl_tokenizer.h"
#include "icl_test.h"

/* ------------------------------------------------------------------ multi-pattern search */

/* Counts the patterns found anywhere in text: a rolling hash of each pattern's first W bytes,
 * verified with memcmp (every pattern must be at least W bytes long). */
#define W 16
typedef struct {
    const char **pat;
    size_t *len;
    size_t n;
} patterns;

static void pat_add(patterns *p, const char *s) {
    p->pat = realloc(p->pat, (p->n + 1) * sizeof *p->pat);
    p->len = realloc(p->len, (p->n + 1) * sizeof *p->len);
    p->pat[p->n] = s;
    p->len[p->n] = strlen(s);
    p->n++;
}

static uint64_t win_hash(const char *s) {
    uint64_t h = 0;
    for (int i = 0; i < W; i++) h = h * 1099511628211ull + (unsigned char)s[i];
    return h;
}

/* found[i] = 1 when pattern i occurs in text; returns how many occur. */
static size_t search_all(const char *text, size_t len, const patterns *p, char *found) {
    size_t cap = 1024;
    while (cap < 4 * p->n) cap *= 2;
    int64_t *slot = malloc(cap * sizeof *slot); /* first pattern index of a chain, -1 empty */
    uint64_t *sh = malloc(cap * sizeof *sh);
    int64_t *next = malloc((p->n ? p->n : 1) * sizeof *next);
    for (size_t i = 0; i < cap; i++) slot[i] = -1;
    for (size_t i = 0; i < p->n; i++) {
        found[i] = 0;
        uint64_t h = win_hash(p->pat[i]);
        size_t j = (size_t)(h * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
        while (slot[j] >= 0 && sh[j] != h) j = (j + 1) & (cap - 1);
        next[i] = slot[j];
        slot[j] = (int64_t)i;
        sh[j] = h;
    }
    uint64_t pw = 1;
    for (int i = 0; i < W - 1; i++) pw *= 1099511628211ull;
    size_t hits = 0;
    if (len >= W) {
        uint64_t h = win_hash(text);
        for (size_t at = 0;; at++) {
            size_t j = (size_t)(h * 0x9E3779B97F4A7C15ull >> 20) & (cap - 1);
            while (slot[j] >= 0 && sh[j] != h) j = (j + 1) & (cap - 1);
            for (int64_t i = slot[j]; i >= 0; i = next[i])
                if (!found[i] && p->len[i] <= len - at && !memcmp(text + at, p->pat[i], p->len[i])) found[i] = 1, hits++;
            if (at + W >= len) break;
            h = (h - pw * (unsigned char)text[at]) * 1099511628211ull + (unsigned char)text[at + W];
        }
    }
    free(slot), free(sh), free(next);
    return hits;
}

/* The default template's line of an example. */
static char *ex_line(const icl_tokex *e) {
    size_t n = strlen(e->input) + strlen(e->output) + 5;
    char *s = malloc(n);
    snprintf(s, n, "%s -> %s", e->input, e->output);
    return s;
}

/* Checks that no test line or test sentence of the tasks is in the corpus, and (so that the search
 * is known to work) that training lines are. */
static void check_no_leak(const icl_lmcorpus *c, const icl_toktask *const *tasks, int nt, const char *what) {
    patterns test = {0}, train = {0};
    char **own = NULL;
    size_t n_own = 0;
    for (int t = 0; t < nt; t++) {
        const icl_toktask *tk = tasks[t];
        for (size_t i = 0; i < tk->n_ex; i++) {
            const icl_tokex *e = &tk->ex[i];
            own = realloc(own, (n_own + 1) * sizeof *own);
            own[n_own] = ex_line(e);
            if (e->split == ICL_SPLIT_TEST) {
                pat_add(&test, own[n_own]);
                if (!strcmp(tk->family, "pos") && e->concept == 0) pat_add(&test, e->input); /* each test sentence once */
            } else if (train.n < 20000) {
                pat_add(&train, own[n_own]);
            }
            n_own++;
        }
    }
    char *f1 = malloc(test.n + 1), *f2 = malloc(train.n + 1);
    size_t leaks = search_all(c->text, c->len, &test, f1);
    size_t seen = search_all(c->text, c->len, &train, f2);
    CHECK_MSG(leaks == 0, "%s: %zu of %zu test lines/sentences found in the corpus", what, leaks, test.n);
    for (size_t i = 0, shown = 0; i < test.n && shown < 3; i++)
        if (f1[i]) fprintf(stderr, "  leaked: %.120s\n", test.pat[i]), shown++;
    CHECK_MSG(seen > 0, "%s: the search finds none of %zu training lines (search broken?)", what, train.n);
    printf("%s: %zu test lines and sentences, none in the corpus (%zu bytes); %zu of %zu training lines found\n", what,
           test.n, c->len, seen, train.n);
    for (size_t i = 0; i < n_own; i++) free(own[i]);
    free(own), free(test.pat), free(test.len), free(train.pat), free(train.len), free(f1), free(f2);
}

/* ------------------------------------------------------------------ a small Brown-format corpus */

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    fputs(s, f);
    fclose(f);
}

/* 40 sentences with all six concepts (kept by the pos family: 32 train, 8 test), others that are
 * not, paragraphs with continuation lines, a README to ignore. */
static void make_brown(const char *dir) {
    static const char *adj[] = {"red", "big", "small", "old", "new", "tall", "green", "quiet", "bright", "dark"};
    static const char *noun[] = {"dog", "cat", "man", "boy"};
    static const char *verb[] = {"saw", "met", "found", "liked", "heard", "helped", "called", "followed"};
    static const char *adv[] = {"quickly", "slowly", "often", "never", "soon"};
    static const char *prep[] = {"near", "with", "for"};
    static const char *pron[] = {"him", "her", "them", "us", "me", "it"};
    mkdir(dir, 0755);
    char path[700], buf[16384];
    for (int f = 0; f < 4; f++) {
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof buf - n, "\n\n");
        for (int k = 0; k < 10; k++) {
            int i = f * 10 + k;
            const char *lead = (k % 3 == 0) ? "\t" : ""; /* a new paragraph every third sentence */
            n += (size_t)snprintf(buf + n, sizeof buf - n,
                                  "%sThe/at %s/jj %s/nn %s/vbd %s/rb %s/in %s/ppo ``/`` today/nr ''/'' ./.\n", lead,
                                  adj[i % 10], noun[i / 10], verb[(i * 3) % 8], adv[i % 5], prep[i % 3], pron[i % 6]);
            if (k % 4 == 1)
                n += (size_t)snprintf(buf + n, sizeof buf - n, "\tIt/pps rained/vbd on/in day/nn %d/cd ./.\n\n", i);
        }
        snprintf(path, sizeof path, "%s/c%c0%d", dir, "abcd"[f], f + 1);
        write_file(path, buf);
    }
    snprintf(path, sizeof path, "%s/README", dir);
    write_file(path, "not a corpus file\n");
}

static size_t count_sub(const char *s, size_t len, const char *pat) {
    size_t n = 0, pl = strlen(pat);
    for (const char *p = s; (p = memmem(p, len - (size_t)(p - s), pat, pl)); p += pl) n++;
    return n;
}

/* Layout: EOS before, between and after the documents; episodes complete lines. */
static void check_layout(const icl_lmcorpus *c) {
    const char *eos = ICL_LMCORPUS_EOS;
    size_t el = strlen(eos);
    CHECK(c->len >= el && !memcmp(c->text, eos, el) && !memcmp(c->text + c->len - el, eos, el));
    CHECK(count_sub(c->text, c->len, eos) == c->n_docs + 1);
    int ok_docs = 1, ok_eps = 1;
    size_t eps = 0, txt = 0;
    for (size_t i = 0; i < c->n_docs; i++) {
        const icl_lmdoc *d = &c->docs[i];
        if (d->off < el || memcmp(c->text + d->off - el, eos, el) || memcmp(c->text + d->off + d->len, eos, el) ||
            d->len == 0)
            ok_docs = 0;
        if (d->kind == ICL_LMDOC_EPISODE) {
            eps++;
            size_t lines = 0;
            for (size_t j = 0; j < d->len; j++) lines += c->text[d->off + j] == '\n';
            if (c->text[d->off + d->len - 1] != '\n' || lines != (size_t)(d->shots + 1 + d->prompted) || d->shots < 0 ||
                d->shots > 10 || !memmem(c->text + d->off, d->len, " -> ", 4))
                ok_eps = 0;
        } else {
            txt++;
        }
    }
    CHECK(ok_docs);
    CHECK_MSG(ok_eps, "an episode is not instruction? + shots + 1 lines ending in a newline");
    CHECK(eps == c->episode_docs && txt == c->text_docs);
}

static void test_small(const char *dir) {
    icl_err err;
    icl_toktask bit, pos;
    CHECK(icl_toktask_bitwise(&bit, 7, &err) == 0);
    int pos_ok = icl_toktask_pos(&pos, dir, 7, &err) == 0;
    CHECK_MSG(pos_ok, "pos on the hand-made corpus: %s", err.msg);
    if (!pos_ok) return;
    CHECK(pos.count[1] == 8 && pos.count[0] == 32); /* Noun: 32 train, 8 test */
    const icl_toktask *tasks[2] = {&bit, &pos};
    icl_lmcorpus_opts o;
    icl_lmcorpus_opts_default(&o);
    o.tasks = tasks;
    o.n_tasks = 2;
    o.brown_dir = dir;
    o.target_bytes = 400000;
    o.text_share = 0.3;
    o.text_doc_bytes = 300;
    o.seed = 5;
    icl_lmcorpus a, b;
    CHECK_MSG(icl_lmcorpus_build(&a, &o, &err) == 0, "%s", err.msg);
    check_layout(&a);
    /* the 8 test sentences are left out of the running text; 40 - 8 + 9 other sentences remain */
    CHECK_MSG(a.excluded_sentences == 8, "excluded %zu", a.excluded_sentences);
    CHECK(a.text_sentences == 32 + 12);
    CHECK(a.text_passes > 1); /* 120 KB of text from a few KB: many passes */
    check_no_leak(&a, tasks, 2, "hand-made Brown");
    /* pos episodes: at most 31 demonstrations are possible, all from the 32 training sentences */
    CHECK(a.train_usable[7] == 32);
    /* the same options give the same bytes; another seed other bytes */
    CHECK(icl_lmcorpus_build(&b, &o, &err) == 0);
    CHECK(a.len == b.len && !memcmp(a.text, b.text, a.len));
    icl_lmcorpus_free(&b);
    o.seed = 6;
    CHECK(icl_lmcorpus_build(&b, &o, &err) == 0);
    CHECK(a.len != b.len || memcmp(a.text, b.text, a.len));
    icl_lmcorpus_free(&b);
    /* the index file */
    const char *tp = "/tmp/iclab-test-lmcorpus.txt", *ip = "/tmp/iclab-test-lmcorpus.tsv";
    CHECK(icl_lmcorpus_write(&a, tp, ip, &err) == 0);
    char *s;
    size_t n;
    CHECK(icl_read_file(tp, &s, &n, &err) == 0 && n == a.len && !memcmp(s, a.text, n));
    free(s);
    CHECK(icl_read_file(ip, &s, &n, &err) == 0);
    size_t lines = 0;
    for (size_t i = 0; i < n; i++) lines += s[i] == '\n';
    CHECK(lines == a.n_docs + 1 && !strncmp(s, "offset\tbytes\tkind\tconcept\tshots\tprompted\n", 41));
    free(s);
    unlink(tp), unlink(ip);
    icl_lmcorpus_free(&a);

    /* weights: by documents, episodes only */
    o.target_bytes = 0;
    o.target_docs = 6000;
    o.text_share = 0;
    o.shares = "bitwise=2,XOR=0,pos:Adverb=0.25,Null=0.5";
    CHECK_MSG(icl_lmcorpus_build(&a, &o, &err) == 0, "%s", err.msg);
    CHECK(a.n_docs == 6000 && a.episode_docs == 6000 && a.text_docs == 0);
    size_t counted[14] = {0};
    for (size_t i = 0; i < a.n_docs; i++) counted[a.docs[i].concept]++;
    double wsum = 0;
    for (int k = 0; k < 14; k++) wsum += a.weights[k];
    CHECK_NEAR(wsum, 5 * 2 + 2 * 0.5 + 5 + 0.25 + 0.5, 1e-12);
    CHECK(a.weights[4] == 0 && counted[4] == 0);  /* bitwise:XOR */
    CHECK(a.weights[0] == 2 && a.weights[6] == 1); /* bitwise:AND, bitwise:Null = 2 x 0.5 */
    CHECK(a.weights[10] == 0.25 && a.weights[13] == 0.5);
    int within = 1;
    for (int k = 0; k < 14; k++) {
        double p = a.weights[k] / wsum, mean = 6000 * p, sd = sqrt(6000 * p * (1 - p));
        if (counted[k] != a.episodes[k] || fabs((double)counted[k] - mean) > 4 * sd + 1e-9) {
            within = 0;
            fprintf(stderr, "  %s: %zu episodes, expected %.1f +- %.1f\n", a.concept_names[k], counted[k], mean, sd);
        }
    }
    CHECK_MSG(within, "episode counts per concept follow the weights");
    printf("weights: pos:Adverb %zu, pos:Noun %zu, bitwise:AND %zu, bitwise:XOR %zu episodes of 6000\n", counted[10],
           counted[7], counted[0], counted[4]);
    /* shots uniform in 0..10: every count appears, the mean near 5 */
    size_t shots[11] = {0}, prompted = 0;
    double mean = 0;
    for (size_t i = 0; i < a.n_docs; i++) shots[a.docs[i].shots]++, mean += a.docs[i].shots, prompted += a.docs[i].prompted;
    mean /= (double)a.n_docs;
    int all = 1;
    for (int k = 0; k <= 10; k++) all &= shots[k] > 0;
    CHECK(all && fabs(mean - 5) < 0.3);
    CHECK(fabs((double)prompted / 6000 - 0.25) < 0.03);
    icl_lmcorpus_free(&a);

    /* errors */
    o.shares = "Verbish=1";
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "no family or concept named 'Verbish'"));
    o.shares = "pos=-1";
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "weight must be a number >= 0"));
    o.shares = "bitwise=0,pos=0";
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "weight 0"));
    o.shares = NULL;
    o.template_spec = "{y} {x}\\n";
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0);
    o.template_spec = NULL;
    o.text_share = 1.5;
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "outside [0, 1]"));
    o.text_share = 0.5;
    o.brown_dir = "/nonexistent/brown";
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "cannot open the Brown corpus directory"));
    o.n_tasks = 0;
    o.brown_dir = dir;
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "no task families"));
    /* a Brown file that is not UTF-8 */
    char path[700];
    snprintf(path, sizeof path, "%s/ce01", dir);
    write_file(path, "\tThe/at caf\xe9/nn ./.\n");
    o.n_tasks = 2;
    CHECK(icl_lmcorpus_build(&a, &o, &err) < 0 && strstr(err.msg, "not valid UTF-8"));
    unlink(path);
    /* a custom template: the episode ends with the text after {y} */
    o.template_spec = "Q: {x}\\nA: {y}\\n\\n";
    o.target_docs = 50;
    CHECK_MSG(icl_lmcorpus_build(&a, &o, &err) == 0, "%s", err.msg);
    int ends = 1;
    for (size_t i = 0; i < a.n_docs; i++)
        if (a.docs[i].kind == ICL_LMDOC_EPISODE)
            ends &= a.docs[i].len >= 2 && !memcmp(a.text + a.docs[i].off + a.docs[i].len - 2, "\n\n", 2) &&
                    !memcmp(a.text + a.docs[i].off + (a.docs[i].prompted ? strcspn(a.text + a.docs[i].off, "\n") + 1 : 0), "Q: ", 3);
    CHECK(ends);
    icl_lmcorpus_free(&a);
    icl_toktask_free(&bit);
    icl_toktask_free(&pos);
}

static void test_real(void) {
    const char *dir = "data/brown";
    if (!icl_path_exists(dir)) {
        printf("SKIP real Brown corpus: data/brown missing (make data)\n");
        return;
    }
    icl_err err;
    icl_toktask bit, pos;
    CHECK(icl_toktask_bitwise(&bit, 1, &err) == 0);
    CHECK_MSG(icl_toktask_pos(&pos, dir, 1, &err) == 0, "%s", err.msg);
    const icl_toktask *tasks[2] = {&bit, &pos};
    icl_lmcorpus_opts o;
    icl_lmcorpus_opts_default(&o);
    o.tasks = tasks;
    o.n_tasks = 2;
    o.brown_dir = dir;
    o.target_bytes = 12000000; /* twice the running text: every sentence is used */
    o.text_share = 0.6;
    icl_lmcorpus c;
    CHECK_MSG(icl_lmcorpus_build(&c, &o, &err) == 0, "%s", err.msg);
    CHECK(c.excluded_sentences == 1630 && c.text_sentences == 57340 - 1630);
    CHECK(c.text_passes == 2);
    check_layout(&c);
    check_no_leak(&c, tasks, 2, "real Brown");
    icl_lmcorpus_free(&c);
    icl_toktask_free(&bit);
    icl_toktask_free(&pos);
}

/* ------------------------------------------------------------------ BPE */

static int train(icl_bpe_vocab *v, const char *text, int vocab, icl_err *err) {
    icl_bpe_train_opts o;
    icl_bpe_train_opts_default(&o);
    o.vocab_size = vocab;
    return icl_bpe_train(v, text, strlen(text), &o, err);
}

static void test_bpe_order(void) {
    icl_err err;
    icl_bpe_vocab v;
    /* one word: aa (4) first; then ab and (aa,a) both 2, ab wins ("a" < "aa"); then aa+ab (2); then the
     * pairs of count 1 by their left token's bytes: "a c" before "aaab ..." and "d ...", then "aaab ac". */
    CHECK(train(&v, "aaabdaaabac", 262, &err) == 0);
    static const char *want[] = {"a a", "a b", "aa ab", "a c", "aaab ac"};
    CHECK(v.n_merges == 5 && v.n_tokens == 262);
    for (int i = 0; i < 5 && i < v.n_merges; i++) CHECK_MSG(!strcmp(v.merges[i], want[i]), "merge %d: '%s', want '%s'", i, v.merges[i], want[i]);
    CHECK(!strcmp(v.tokens[261], ICL_BPE_EOS_TEXT) && v.types[261] == ICL_TOKT_CONTROL && v.eos == 261 && v.bos == 261);
    CHECK(!strcmp(v.tokens[0], "!") && !strcmp(v.tokens[255], "\xc5\x83")); /* GPT-2's order: '!' first, byte 0xAD (U+0143) last */
    icl_bpe_vocab_free(&v);
    /* GPT-2 words: " cd" keeps its space (Ġ), words never merge across; ties by the left token's bytes:
     * ' ' < 'a', then " c" < "a" */
    CHECK(train(&v, "ab cd", 260, &err) == 0);
    CHECK(v.n_merges == 3 && !strcmp(v.merges[0], "\xc4\xa0 c") && !strcmp(v.merges[1], "\xc4\xa0" "c d") &&
          !strcmp(v.merges[2], "a b"));
    icl_bpe_vocab_free(&v);
    /* the end-of-text token is cut out: "x<|endoftext|>y" has no pair at all */
    CHECK(train(&v, "x" ICL_BPE_EOS_TEXT "y", 258, &err) < 0 && strstr(err.msg, "unreachable"));
    /* errors */
    CHECK(train(&v, "", 300, &err) < 0 && strstr(err.msg, "empty text"));
    CHECK(train(&v, ICL_BPE_EOS_TEXT ICL_BPE_EOS_TEXT, 300, &err) < 0 && strstr(err.msg, "empty text"));
    CHECK(train(&v, "hello world", 256, &err) < 0 && strstr(err.msg, "below the 256 byte tokens + 1 special"));
    CHECK(train(&v, "hello world", 100000, &err) < 0 && strstr(err.msg, "vocabulary size 100000 is unreachable"));
    printf("unreachable: %s\n", err.msg);
    icl_bpe_train_opts o;
    icl_bpe_train_opts_default(&o);
    const char *sp[2] = {"<|a|>", "<|a|>"};
    o.specials = sp;
    o.n_specials = 2;
    CHECK(icl_bpe_train(&v, "abc", 3, &o, &err) < 0 && strstr(err.msg, "given twice"));
}

static void test_bpe_roundtrip(const char *dir) {
    icl_err err;
    /* train on a small corpus built from the hand-made Brown directory */
    icl_toktask bit;
    CHECK(icl_toktask_bitwise(&bit, 3, &err) == 0);
    const icl_toktask *tasks[1] = {&bit};
    icl_lmcorpus_opts o;
    icl_lmcorpus_opts_default(&o);
    o.tasks = tasks;
    o.n_tasks = 1;
    o.brown_dir = dir;
    o.target_bytes = 200000;
    icl_lmcorpus c;
    CHECK_MSG(icl_lmcorpus_build(&c, &o, &err) == 0, "%s", err.msg);
    icl_bpe_vocab v, v2;
    icl_bpe_train_opts bo;
    icl_bpe_train_opts_default(&bo);
    bo.vocab_size = 400;
    CHECK_MSG(icl_bpe_train(&v, c.text, c.len, &bo, &err) == 0, "%s", err.msg);
    CHECK(v.n_tokens == 400 && v.n_specials_seen == c.n_docs + 1);
    CHECK(icl_bpe_train(&v2, c.text, c.len, &bo, &err) == 0);
    int same = v2.n_merges == v.n_merges;
    for (int i = 0; same && i < v.n_merges; i++) same = !strcmp(v.merges[i], v2.merges[i]);
    CHECK_MSG(same, "training twice gives the same merges");
    icl_bpe_vocab_free(&v2);
    const char *path = "/tmp/iclab-test-bpe.gguf";
    CHECK(icl_bpe_vocab_write(&v, path, &err) == 0);
    /* metadata */
    icl_gguf *g;
    CHECK(icl_gguf_open(&g, path, &err) == 0);
    const char *s;
    int64_t id;
    int b;
    CHECK(icl_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && !strcmp(s, "gpt2"));
    CHECK(icl_gguf_get_str(g, "tokenizer.ggml.pre", &s, &err) == 0 && !strcmp(s, "gpt-2"));
    CHECK(icl_gguf_get_int(g, "tokenizer.ggml.eos_token_id", &id, &err) == 0 && id == 399);
    CHECK(icl_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &id, &err) == 0 && id == 399);
    CHECK(icl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err) == 0 && b == 1);
    icl_gguf_arr a;
    CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.merges", &a, &err) == 0 && a.n == (uint64_t)v.n_merges);
    CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.token_type", &a, &err) == 0 && a.n == 400 && a.type == ICL_GGUF_INT32);
    CHECK(icl_gguf_n_tensors(g) == 0);
    icl_gguf_close(g);
    /* round trips through icl_tokenizer */
    icl_tokenizer *tk;
    CHECK_MSG(icl_tokenizer_load_file(&tk, path, &err) == 0, "%s", err.msg);
    if (tk) {
        CHECK(icl_tokenizer_n_vocab(tk) == 400 && icl_tokenizer_eos(tk) == 399 && icl_tokenizer_bos(tk) == 399);
        const char *texts[] = {c.text, "Hello, World! It's 3.14159 o'clock\n\n\tdon't", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82",
                               "invalid \xff\xfe bytes \xc3", "01101 11000 -> 01000\n", "   spaces   \n"};
        size_t lens[] = {c.len, 0, 0, 0, 0, 0};
        int ok = 1;
        for (int i = 0; i < 6; i++) {
            size_t len = lens[i] ? lens[i] : strlen(texts[i]);
            int32_t *ids;
            size_t n;
            char *back;
            size_t bl;
            if (icl_tokenizer_encode(tk, texts[i], len, 0, 1, &ids, &n, &err) ||
                icl_tokenizer_decode(tk, ids, n, &back, &bl, &err)) {
                ok = 0;
                continue;
            }
            if (bl != len || memcmp(back, texts[i], len)) ok = 0, fprintf(stderr, "  round trip %d differs\n", i);
            if (i == 0) {
                size_t eos = 0;
                for (size_t k = 0; k < n; k++) eos += ids[k] == 399;
                CHECK(eos == c.n_docs + 1);
                printf("bpe: %d tokens, %d merges; corpus %zu bytes -> %zu tokens (%.2f bytes/token)\n", v.n_tokens,
                       v.n_merges, c.len, n, (double)c.len / (double)n);
            }
            free(ids), free(back);
        }
        CHECK_MSG(ok, "decode(encode(s)) == s with the trained tokenizer");
        icl_tokenizer_free(tk);
    }
    unlink(path);
    icl_bpe_vocab_free(&v);
    icl_lmcorpus_free(&c);
    icl_toktask_free(&bit);
}

int main(void) {
    char dir[] = "/tmp/iclab-test-brown-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char sub[600];
    snprintf(sub, sizeof sub, "%s/brown", dir);
    make_brown(sub);
    test_small(sub);
    test_bpe_order();
    test_bpe_roundtrip(sub);
    test_real();
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
    return icl_test_finish();
}
