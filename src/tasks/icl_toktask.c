/* Token in-context-learning tasks with latent concepts (paper §3.2): the bitwise and part-of-speech
 * families, task files, prompt templates, episode drawing and answer matching. See
 * include/iclab/icl_toktask.h for the contract and docs/tasks.md for the data and the tag mapping. */
#include "iclab/icl_toktask.h"
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"

/* ---- text storage: chunks that never move, so the example strings can point into them ---- */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

typedef struct arena {
    chunk *head;
} arena;

static char *arena_alloc(arena *a, size_t n) {
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > ((size_t)1 << 20) ? n : ((size_t)1 << 20);
        chunk *c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->next = a->head;
        c->used = 0;
        c->cap = cap;
        a->head = c;
    }
    char *p = a->head->data + a->head->used;
    a->head->used += n;
    return p;
}

/* Copies s[0..n) and a NUL into the arena. */
static char *arena_strndup(arena *a, const char *s, size_t n) {
    char *p = arena_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

static void arena_free(arena *a) {
    if (!a) return;
    while (a->head) {
        chunk *n = a->head->next;
        free(a->head);
        a->head = n;
    }
    free(a);
}

/* ---- building a task set: examples in any order, grouped at the end ---- */

typedef struct builder {
    arena *ar;
    icl_tokex *ex;
    size_t n, cap;
    char **names, **instr; /* malloc'd; instr entries may be NULL until finalize */
    int nc, ccap;
} builder;

static int builder_init(builder *b, icl_err *err) {
    memset(b, 0, sizeof *b);
    b->ar = calloc(1, sizeof *b->ar);
    if (!b->ar) return icl_errf(err, "out of memory");
    return 0;
}

static void builder_free(builder *b) {
    arena_free(b->ar);
    free(b->ex);
    for (int i = 0; i < b->nc; i++) {
        free(b->names[i]);
        free(b->instr[i]);
    }
    free(b->names);
    free(b->instr);
    memset(b, 0, sizeof *b);
}

/* Index of the concept called name (n bytes), added (with instruction instr, may be NULL) if new. */
static int builder_concept(builder *b, const char *name, size_t n, const char *instr, icl_err *err) {
    for (int i = b->nc - 1; i >= 0; i--)
        if (strlen(b->names[i]) == n && memcmp(b->names[i], name, n) == 0) return i;
    if (b->nc == b->ccap) {
        int nc = b->ccap ? 2 * b->ccap : 8;
        char **nn = realloc(b->names, (size_t)nc * sizeof *nn);
        if (!nn) return icl_errf(err, "out of memory");
        b->names = nn;
        char **ni = realloc(b->instr, (size_t)nc * sizeof *ni);
        if (!ni) return icl_errf(err, "out of memory");
        b->instr = ni;
        b->ccap = nc;
    }
    char *s = strndup(name, n);
    char *in = instr ? strdup(instr) : NULL;
    if (!s || (instr && !in)) {
        free(s);
        free(in);
        return icl_errf(err, "out of memory");
    }
    b->names[b->nc] = s;
    b->instr[b->nc] = in;
    return b->nc++;
}

static int builder_add(builder *b, int concept, int split, const char *input, const char *output, icl_err *err) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? 2 * b->cap : 1024;
        icl_tokex *ne = realloc(b->ex, nc * sizeof *ne);
        if (!ne) return icl_errf(err, "out of memory");
        b->ex = ne;
        b->cap = nc;
    }
    b->ex[b->n++] = (icl_tokex){.input = input, .output = output, .concept = concept, .split = split};
    return 0;
}

static const char *const bit_names[7] = {"AND", "NAND", "OR", "NOR", "XOR", "XNOR", "Null"};
static const char *const bit_instr[7] = {"Apply AND.", "Apply NAND.", "Apply OR.",         "Apply NOR.",
                                         "Apply XOR.", "Apply XNOR.", "Write random bits."};
static const char *const pos_names[7] = {"Noun", "Adjective", "Verb", "Adverb", "Preposition", "Pronoun", "Null"};
static const char *const pos_instr[7] = {"Find the first noun.",        "Find the first adjective.",
                                         "Find the first verb.",        "Find the first adverb.",
                                         "Find the first preposition.", "Find the first pronoun.",
                                         "Pick a random word."};

/* The instruction of a concept named in a task file without an #instruction line. */
static char *default_instruction(const char *name) {
    for (int i = 0; i < 6; i++) {
        if (strcmp(name, bit_names[i]) == 0) return strdup(bit_instr[i]);
        if (strcmp(name, pos_names[i]) == 0) return strdup(pos_instr[i]);
    }
    if (strcmp(name, "Null") == 0) return strdup("Answer at random.");
    size_t n = strlen(name) + 16;
    char *s = malloc(n);
    if (s) snprintf(s, n, "Apply %s.", name);
    return s;
}

/* Moves Null last, groups the examples by concept then split (stably) and fills t. */
static int builder_finish_inner(builder *b, icl_toktask *t, const char *family, icl_err *err) {
    memset(t, 0, sizeof *t);
    if (b->nc == 0) return icl_errf(err, "the task has no examples");
    if (b->nc == 1) return icl_errf(err, "the task has one concept (%s); TD needs at least two", b->names[0]);
    int nc = b->nc, null_old = -1;
    for (int i = 0; i < nc; i++)
        if (strcmp(b->names[i], "Null") == 0) null_old = i;
    int *newc = malloc((size_t)nc * sizeof *newc);
    t->family = strdup(family);
    t->concepts = calloc((size_t)nc, sizeof *t->concepts);
    t->instructions = calloc((size_t)nc, sizeof *t->instructions);
    t->first = calloc(2 * (size_t)nc, sizeof *t->first);
    t->count = calloc(2 * (size_t)nc, sizeof *t->count);
    t->ex = malloc((b->n ? b->n : 1) * sizeof *t->ex);
    if (!newc || !t->family || !t->concepts || !t->instructions || !t->first || !t->count || !t->ex) {
        free(newc);
        icl_toktask_free(t);
        return icl_errf(err, "out of memory");
    }
    t->n_concepts = nc;
    for (int i = 0, k = 0; i < nc; i++)
        if (i != null_old) newc[i] = k++;
    if (null_old >= 0) newc[null_old] = nc - 1;
    t->null_concept = null_old >= 0 ? nc - 1 : -1;
    for (int i = 0; i < nc; i++) {
        int c = newc[i];
        t->concepts[c] = b->names[i];
        t->instructions[c] = b->instr[i] ? b->instr[i] : default_instruction(b->names[i]);
        b->names[i] = b->instr[i] = NULL;
        if (!t->instructions[c]) {
            free(newc);
            icl_toktask_free(t);
            return icl_errf(err, "out of memory");
        }
    }
    for (size_t i = 0; i < b->n; i++) t->count[2 * newc[b->ex[i].concept] + b->ex[i].split]++;
    size_t pos = 0;
    for (int g = 0; g < 2 * nc; g++) {
        t->first[g] = pos;
        pos += t->count[g];
    }
    size_t *fill = calloc(2 * (size_t)nc, sizeof *fill);
    if (!fill) {
        free(newc);
        icl_toktask_free(t);
        return icl_errf(err, "out of memory");
    }
    for (size_t i = 0; i < b->n; i++) {
        icl_tokex e = b->ex[i];
        e.concept = newc[e.concept];
        int g = 2 * e.concept + e.split;
        t->ex[t->first[g] + fill[g]++] = e;
    }
    t->n_ex = b->n;
    t->store = b->ar;
    b->ar = NULL;
    free(fill);
    free(newc);
    return 0;
}

/* builder_finish_inner, and b is freed either way. */
static int builder_finish(builder *b, icl_toktask *t, const char *family, icl_err *err) {
    int rc = builder_finish_inner(b, t, family, err);
    builder_free(b);
    return rc;
}

void icl_toktask_free(icl_toktask *t) {
    if (!t) return;
    for (int i = 0; i < t->n_concepts; i++) {
        if (t->concepts) free(t->concepts[i]);
        if (t->instructions) free(t->instructions[i]);
    }
    free(t->family);
    free(t->concepts);
    free(t->instructions);
    free(t->ex);
    free(t->first);
    free(t->count);
    arena_free(t->store);
    memset(t, 0, sizeof *t);
    t->null_concept = -1;
}

/* ---- bitwise ---- */

#define BIT_WIDTH 5
#define BIT_PAIRS (1 << (2 * BIT_WIDTH))
#define BIT_TRAIN 10000
#define BIT_TEST 500

static unsigned bit_op(int c, unsigned a, unsigned b) {
    unsigned m = (1u << BIT_WIDTH) - 1;
    switch (c) {
    case 0: return a & b;
    case 1: return ~(a & b) & m;
    case 2: return a | b;
    case 3: return ~(a | b) & m;
    case 4: return a ^ b;
    default: return ~(a ^ b) & m;
    }
}

static void bit_string(char *s, unsigned v) {
    for (int i = 0; i < BIT_WIDTH; i++) s[i] = (char)('0' + ((v >> (BIT_WIDTH - 1 - i)) & 1));
    s[BIT_WIDTH] = 0;
}

int icl_toktask_bitwise(icl_toktask *t, uint64_t seed, icl_err *err) {
    builder b;
    if (builder_init(&b, err)) return -1;
    /* Every input pair and every output appears once in storage; the examples share them. */
    const char *in_str[BIT_PAIRS], *out_str[1 << BIT_WIDTH];
    for (unsigned p = 0; p < BIT_PAIRS; p++) {
        char s[2 * BIT_WIDTH + 2];
        bit_string(s, p >> BIT_WIDTH);
        s[BIT_WIDTH] = ' ';
        bit_string(s + BIT_WIDTH + 1, p & ((1u << BIT_WIDTH) - 1));
        if (!(in_str[p] = arena_strndup(b.ar, s, 2 * BIT_WIDTH + 1))) goto oom;
    }
    for (unsigned v = 0; v < (1u << BIT_WIDTH); v++) {
        char s[BIT_WIDTH + 1];
        bit_string(s, v);
        if (!(out_str[v] = arena_strndup(b.ar, s, BIT_WIDTH))) goto oom;
    }
    for (int c = 0; c < 7; c++) {
        if (builder_concept(&b, bit_names[c], strlen(bit_names[c]), bit_instr[c], err) < 0) goto fail;
        /* Per concept: a seeded permutation of the 1,024 input pairs; its first 500 are the test
         * inputs (each once), training draws uniformly from the other 524. */
        icl_rng rng;
        icl_rng_seed_stream(&rng, seed, (uint64_t)c);
        unsigned perm[BIT_PAIRS];
        for (unsigned i = 0; i < BIT_PAIRS; i++) perm[i] = i;
        for (unsigned i = BIT_PAIRS - 1; i > 0; i--) {
            unsigned j = (unsigned)icl_rng_below(&rng, i + 1), tmp = perm[i];
            perm[i] = perm[j];
            perm[j] = tmp;
        }
        for (int k = 0; k < BIT_TRAIN + BIT_TEST; k++) {
            int split = k < BIT_TRAIN ? ICL_SPLIT_TRAIN : ICL_SPLIT_TEST;
            unsigned p = split == ICL_SPLIT_TRAIN ? perm[BIT_TEST + icl_rng_below(&rng, BIT_PAIRS - BIT_TEST)]
                                                  : perm[k - BIT_TRAIN];
            unsigned out = c == 6 ? (unsigned)icl_rng_below(&rng, 1u << BIT_WIDTH)
                                  : bit_op(c, p >> BIT_WIDTH, p & ((1u << BIT_WIDTH) - 1));
            if (builder_add(&b, c, split, in_str[p], out_str[out], err)) goto fail;
        }
    }
    return builder_finish(&b, t, "bitwise", err);
oom:
    icl_errf(err, "out of memory");
fail:
    builder_free(&b);
    memset(t, 0, sizeof *t);
    t->null_concept = -1;
    return -1;
}

/* ---- part of speech from the Brown corpus ---- */

#define POS_MAX_TOKENS 40

/* The Brown tags of each pos concept (docs/tasks.md has the table). */
static const char *const brown_tags[6][24] = {
    {"nn", "nns", "nn$", "nns$", "np", "nps", "np$", "nps$", "nr", "nrs", "nr$", NULL},
    {"jj", "jjr", "jjs", "jjt", NULL},
    {"vb", "vbd", "vbg", "vbn", "vbz", "be", "bed", "bedz", "beg", "bem", "ben", "ber", "bez", "hv", "hvd", "hvg",
     "hvn", "hvz", "do", "dod", "doz", NULL},
    {"rb", "rbr", "rbt", "rn", "*", NULL},
    {"in", NULL},
    {"pp$", "pp$$", "ppl", "ppls", "ppo", "pps", "ppss", NULL},
};

const char *const *icl_brown_concept_tags(int concept) {
    return concept >= 0 && concept < 6 ? brown_tags[concept] : NULL;
}

/* The concept (0..5 in pos_names order) of a Brown tag, or -1. Foreign words (fw-), compound tags
 * (+) are no concept; title/headline/cited suffixes (-tl, -hl, -nc) are stripped; a trailing '*'
 * (a verb contracted with "not": isn't, don't) counts as its verb; the bare tag '*' ("not") is an
 * adverb. docs/tasks.md has the table. */
static int brown_tag_concept(const char *tag, size_t n) {
    char s[32];
    if (n == 0 || n >= sizeof s) return -1;
    for (size_t i = 0; i < n; i++) s[i] = (char)tolower((unsigned char)tag[i]);
    s[n] = 0;
    if (strncmp(s, "fw-", 3) == 0 || strchr(s, '+')) return -1;
    for (;;) {
        size_t m = strlen(s);
        if (m > 3 && (strcmp(s + m - 3, "-tl") == 0 || strcmp(s + m - 3, "-hl") == 0 || strcmp(s + m - 3, "-nc") == 0))
            s[m - 3] = 0;
        else
            break;
    }
    size_t m = strlen(s);
    if (m > 1 && s[m - 1] == '*') s[m - 1] = 0;
    for (int c = 0; c < 6; c++)
        for (int i = 0; brown_tags[c][i]; i++)
            if (strcmp(s, brown_tags[c][i]) == 0) return c;
    return -1;
}

static int is_brown_file(const char *name) {
    return strlen(name) == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' && isdigit((unsigned char)name[2]) &&
           isdigit((unsigned char)name[3]);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct pos_sent {
    const char *text;
    const char *ans[7];
} pos_sent;

/* Open-addressing set of sentence texts (duplicates are dropped so train and test never share one). */
typedef struct strset {
    const char **slot;
    size_t cap, n;
} strset;

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

/* 1 if s was new (and is now in the set), 0 if present, -1 out of memory. */
static int strset_add(strset *ss, const char *s) {
    if (2 * (ss->n + 1) > ss->cap) {
        size_t nc = ss->cap ? 2 * ss->cap : 1024;
        const char **ns = calloc(nc, sizeof *ns);
        if (!ns) return -1;
        for (size_t i = 0; i < ss->cap; i++)
            if (ss->slot[i]) {
                size_t j = fnv1a(ss->slot[i]) & (nc - 1);
                while (ns[j]) j = (j + 1) & (nc - 1);
                ns[j] = ss->slot[i];
            }
        free(ss->slot);
        ss->slot = ns;
        ss->cap = nc;
    }
    size_t j = fnv1a(s) & (ss->cap - 1);
    while (ss->slot[j]) {
        if (strcmp(ss->slot[j], s) == 0) return 0;
        j = (j + 1) & (ss->cap - 1);
    }
    ss->slot[j] = s;
    ss->n++;
    return 1;
}

typedef struct pos_state {
    builder *b;
    pos_sent *sent;
    size_t n, cap;
    strset seen;
    icl_rng null_rng;
} pos_state;

static int has_alnum(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (isalnum((unsigned char)s[i])) return 1;
    return 0;
}

int icl_brown_next(const char *line, size_t len, size_t *pos, icl_brown_tok *tok, const char *path, size_t lineno,
                   icl_err *err) {
    size_t i = *pos;
    while (i < len && (line[i] == ' ' || line[i] == '\t')) i++;
    if (i >= len) {
        *pos = i;
        return 0;
    }
    size_t st = i;
    while (i < len && line[i] != ' ' && line[i] != '\t') i++;
    *pos = i;
    const char *t = line + st;
    size_t tl = i - st, slash = tl;
    while (slash > 0 && t[slash - 1] != '/') slash--;
    if (slash < 2 || slash == tl)
        return icl_errf(err, "%s:%zu: token '%.*s' is not word/tag", path, lineno, (int)(tl > 60 ? 60 : tl), t);
    tok->word = t;
    tok->word_len = slash - 1;
    tok->tag = t + slash;
    tok->tag_len = tl - slash;
    if (tok->word_len == 2 && (!memcmp(t, "``", 2) || !memcmp(t, "''", 2))) {
        tok->word = "\"";
        tok->word_len = 1;
    }
    return 1;
}

/* One corpus line (one sentence): keeps it when it has every concept and at most 40 tokens. */
static int pos_line(pos_state *ps, const char *path, size_t lineno, const char *line, size_t len, icl_err *err) {
    const char *wp[POS_MAX_TOKENS + 1];
    size_t wl[POS_MAX_TOKENS + 1];
    int first[6] = {-1, -1, -1, -1, -1, -1};
    int nt = 0, got;
    size_t i = 0;
    icl_brown_tok tk;
    while ((got = icl_brown_next(line, len, &i, &tk, path, lineno, err)) == 1) {
        if (nt < POS_MAX_TOKENS + 1) {
            int c = brown_tag_concept(tk.tag, tk.tag_len);
            if (c >= 0 && first[c] < 0) first[c] = nt;
            wp[nt] = tk.word;
            wl[nt] = tk.word_len;
        }
        nt++;
    }
    if (got < 0) return -1;
    if (nt == 0 || nt > POS_MAX_TOKENS) return 0;
    for (int c = 0; c < 6; c++)
        if (first[c] < 0) return 0;
    char *words[POS_MAX_TOKENS];
    size_t total = 0;
    for (int k = 0; k < nt; k++) total += wl[k] + 1;
    char *text = arena_alloc(ps->b->ar, total);
    if (!text) return icl_errf(err, "out of memory");
    size_t at = 0;
    for (int k = 0; k < nt; k++) {
        const char *w = wp[k];
        size_t n = wl[k];
        if (k) text[at++] = ' ';
        words[k] = text + at;
        memcpy(text + at, w, n);
        wl[k] = n;
        at += n;
    }
    text[at] = 0;
    int r = strset_add(&ps->seen, text);
    if (r < 0) return icl_errf(err, "out of memory");
    if (r == 0) return 0;
    if (ps->n == ps->cap) {
        size_t nc = ps->cap ? 2 * ps->cap : 1024;
        pos_sent *ns = realloc(ps->sent, nc * sizeof *ns);
        if (!ns) return icl_errf(err, "out of memory");
        ps->sent = ns;
        ps->cap = nc;
    }
    pos_sent *st = &ps->sent[ps->n];
    st->text = text;
    for (int c = 0; c < 6; c++)
        if (!(st->ans[c] = arena_strndup(ps->b->ar, words[first[c]], wl[first[c]]))) return icl_errf(err, "out of memory");
    /* Null: a uniformly random word (a token with a letter or digit; punctuation is no word). */
    int cand[POS_MAX_TOKENS], nc = 0;
    for (int k = 0; k < nt; k++)
        if (has_alnum(words[k], wl[k])) cand[nc++] = k;
    int k = cand[icl_rng_below(&ps->null_rng, (uint64_t)nc)]; /* nc >= 1: a noun has a letter */
    if (!(st->ans[6] = arena_strndup(ps->b->ar, words[k], wl[k]))) return icl_errf(err, "out of memory");
    ps->n++;
    return 0;
}

int icl_toktask_pos(icl_toktask *t, const char *brown_dir, uint64_t seed, icl_err *err) {
    memset(t, 0, sizeof *t);
    t->null_concept = -1;
    DIR *d = opendir(brown_dir);
    if (!d) return icl_errf(err, "cannot open the Brown corpus directory %s (run `make data`)", brown_dir);
    char **files = NULL;
    size_t nf = 0, fcap = 0;
    struct dirent *e;
    int oom = 0;
    while ((e = readdir(d))) {
        if (!is_brown_file(e->d_name)) continue;
        if (nf == fcap) {
            size_t nc = fcap ? 2 * fcap : 512;
            char **nfl = realloc(files, nc * sizeof *nfl);
            if (!nfl) {
                oom = 1;
                break;
            }
            files = nfl;
            fcap = nc;
        }
        if (!(files[nf] = strdup(e->d_name))) {
            oom = 1;
            break;
        }
        nf++;
    }
    closedir(d);
    builder b;
    pos_state ps;
    memset(&ps, 0, sizeof ps);
    int rc = -1;
    if (oom) {
        icl_errf(err, "out of memory");
        goto done_files;
    }
    if (nf == 0) {
        icl_errf(err, "no Brown corpus files (ca01 .. cr09) in %s", brown_dir);
        goto done_files;
    }
    qsort(files, nf, sizeof *files, cmp_str);
    if (builder_init(&b, err)) goto done_files;
    ps.b = &b;
    icl_rng_seed_stream(&ps.null_rng, seed, 1);
    for (size_t f = 0; f < nf; f++) {
        size_t plen = strlen(brown_dir) + strlen(files[f]) + 2;
        char *path = malloc(plen);
        if (!path) {
            icl_errf(err, "out of memory");
            goto fail;
        }
        snprintf(path, plen, "%s/%s", brown_dir, files[f]);
        char *data;
        size_t n;
        if (icl_read_file(path, &data, &n, err)) {
            free(path);
            goto fail;
        }
        /* Each non-blank line is one sentence (a leading tab only marks a new paragraph). */
        size_t lineno = 0, i = 0;
        int bad = 0;
        while (i < n && !bad) {
            size_t s = i;
            while (i < n && data[i] != '\n') i++;
            size_t end = i;
            lineno++;
            if (i < n) i++;
            if (end > s && data[end - 1] == '\r') end--;
            if (pos_line(&ps, path, lineno, data + s, end - s, err)) bad = 1;
        }
        free(data);
        free(path);
        if (bad) goto fail;
    }
    if (ps.n < 2) {
        icl_errf(err, "%s: %zu sentence%s with all six part-of-speech concepts; need at least 2", brown_dir, ps.n,
                 ps.n == 1 ? "" : "s");
        goto fail;
    }
    /* Seeded shuffle, then round(n/5) sentences to test and the rest to train; every concept uses the
     * same sentences. */
    icl_rng rng;
    icl_rng_seed_stream(&rng, seed, 0);
    for (size_t i = ps.n - 1; i > 0; i--) {
        size_t j = (size_t)icl_rng_below(&rng, i + 1);
        pos_sent tmp = ps.sent[i];
        ps.sent[i] = ps.sent[j];
        ps.sent[j] = tmp;
    }
    size_t n_test = (ps.n + 2) / 5, n_train = ps.n - n_test;
    for (int c = 0; c < 7; c++) {
        if (builder_concept(&b, pos_names[c], strlen(pos_names[c]), pos_instr[c], err) < 0) goto fail;
        for (size_t i = 0; i < ps.n; i++)
            if (builder_add(&b, c, i < n_train ? ICL_SPLIT_TRAIN : ICL_SPLIT_TEST, ps.sent[i].text, ps.sent[i].ans[c],
                            err))
                goto fail;
    }
    rc = builder_finish(&b, t, "pos", err);
    goto done;
fail:
    builder_free(&b);
done:
    free(ps.sent);
    free(ps.seen.slot);
done_files:
    for (size_t f = 0; f < nf; f++) free(files[f]);
    free(files);
    return rc;
}

/* ---- task files ---- */

static int split_tabs(char *line, char **field, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        char *tab = strchr(p, '\t');
        if (n < max) field[n] = p;
        n++;
        if (!tab) break;
        *tab = 0;
        p = tab + 1;
    }
    return n;
}

static int blank(const char *s) {
    for (; *s; s++)
        if (*s != ' ' && *s != '\t') return 0;
    return 1;
}

#define INSTR_TAG "#instruction\t"

int icl_toktask_load(icl_toktask *t, const char *path, icl_err *err) {
    memset(t, 0, sizeof *t);
    t->null_concept = -1;
    char *data;
    size_t n;
    if (icl_read_file(path, &data, &n, err)) return -1;
    builder b;
    if (builder_init(&b, err)) {
        free(data);
        return -1;
    }
    /* #instruction lines are kept until every concept is known. */
    char **iname = NULL, **itext = NULL;
    size_t *iline = NULL, ni = 0, icap = 0;
    size_t lineno = 0, i = 0;
    while (i < n) {
        char *line = data + i;
        while (i < n && data[i] != '\n') i++;
        size_t end = i;
        if (i < n) i++;
        lineno++;
        if (end > (size_t)(line - data) && data[end - 1] == '\r') end--;
        data[end] = 0;
        if (memchr(line, 0, (size_t)(data + end - line))) {
            icl_errf(err, "%s:%zu: NUL byte in the line", path, lineno);
            goto fail;
        }
        if (blank(line)) continue;
        if (line[0] == '#') {
            if (strncmp(line, INSTR_TAG, strlen(INSTR_TAG)) != 0) continue;
            char *f[3];
            if (split_tabs(line + strlen(INSTR_TAG), f, 3) != 2 || !f[0][0] || !f[1][0]) {
                icl_errf(err, "%s:%zu: expected #instruction<TAB>concept<TAB>text", path, lineno);
                goto fail;
            }
            if (ni == icap) {
                size_t nc = icap ? 2 * icap : 16;
                char **a = realloc(iname, nc * sizeof *a);
                if (a) iname = a;
                char **c = realloc(itext, nc * sizeof *c);
                if (c) itext = c;
                size_t *l = realloc(iline, nc * sizeof *l);
                if (l) iline = l;
                if (!a || !c || !l) {
                    icl_errf(err, "out of memory");
                    goto fail;
                }
                icap = nc;
            }
            iname[ni] = f[0];
            itext[ni] = f[1];
            iline[ni++] = lineno;
            continue;
        }
        char *f[4];
        int nf = split_tabs(line, f, 4);
        if (nf < 3 || nf > 4) {
            icl_errf(err, "%s:%zu: expected concept<TAB>input<TAB>output[<TAB>train|test], got %d field%s", path,
                     lineno, nf, nf == 1 ? "" : "s");
            goto fail;
        }
        static const char *const what[3] = {"concept", "input", "output"};
        for (int k = 0; k < 3; k++)
            if (!f[k][0]) {
                icl_errf(err, "%s:%zu: empty %s", path, lineno, what[k]);
                goto fail;
            }
        int split = ICL_SPLIT_TEST;
        if (nf == 4) {
            if (strcmp(f[3], "train") == 0)
                split = ICL_SPLIT_TRAIN;
            else if (strcmp(f[3], "test") != 0) {
                icl_errf(err, "%s:%zu: split '%.40s' is neither train nor test", path, lineno, f[3]);
                goto fail;
            }
        }
        int c = builder_concept(&b, f[0], strlen(f[0]), NULL, err);
        if (c < 0) goto fail;
        const char *in = arena_strndup(b.ar, f[1], strlen(f[1]));
        const char *out = in ? arena_strndup(b.ar, f[2], strlen(f[2])) : NULL;
        if (!out) {
            icl_errf(err, "out of memory");
            goto fail;
        }
        if (builder_add(&b, c, split, in, out, err)) goto fail;
    }
    for (size_t k = 0; k < ni; k++) {
        int c = -1;
        for (int j = 0; j < b.nc; j++)
            if (strcmp(b.names[j], iname[k]) == 0) c = j;
        if (c < 0) {
            icl_errf(err, "%s:%zu: instruction for concept '%.60s', which has no examples", path, iline[k], iname[k]);
            goto fail;
        }
        free(b.instr[c]);
        if (!(b.instr[c] = strdup(itext[k]))) {
            icl_errf(err, "out of memory");
            goto fail;
        }
    }
    free(iname);
    free(itext);
    free(iline);
    free(data);
    if (builder_finish(&b, t, path, err)) return icl_err_prefix(err, "%s: ", path);
    return 0;
fail:
    free(iname);
    free(itext);
    free(iline);
    free(data);
    builder_free(&b);
    return -1;
}

/* A field the file format can hold: no tab or line break, not empty. */
static int field_ok(const char *s) { return s && *s && !strpbrk(s, "\t\n\r"); }

int icl_toktask_save(const icl_toktask *t, const char *path, icl_err *err) {
    if (!t || t->n_concepts < 1) return icl_errf(err, "saving %s: empty task", path);
    for (int c = 0; c < t->n_concepts; c++) {
        if (!field_ok(t->concepts[c]) || t->concepts[c][0] == '#')
            return icl_errf(err, "saving %s: concept name '%.40s' cannot be written (empty, tab, newline or leading #)",
                            path, t->concepts[c] ? t->concepts[c] : "");
        if (!field_ok(t->instructions[c]))
            return icl_errf(err, "saving %s: the instruction of %s cannot be written (empty, tab or newline)", path,
                            t->concepts[c]);
    }
    for (size_t i = 0; i < t->n_ex; i++)
        if (!field_ok(t->ex[i].input) || !field_ok(t->ex[i].output))
            return icl_errf(err, "saving %s: example %zu has an empty field or one with a tab or newline", path, i);
    icl_afile af;
    if (icl_afile_open(&af, path, err)) return -1;
    icl_afile_printf(&af, err, "# iclab token task: %s (%d concepts, %zu examples)\n", t->family ? t->family : "?",
                     t->n_concepts, t->n_ex);
    icl_afile_printf(&af, err, "# concept<TAB>input<TAB>output<TAB>train|test\n");
    for (int c = 0; c < t->n_concepts; c++)
        icl_afile_printf(&af, err, INSTR_TAG "%s\t%s\n", t->concepts[c], t->instructions[c]);
    for (size_t i = 0; i < t->n_ex && !af.failed; i++) {
        const icl_tokex *e = &t->ex[i];
        icl_afile_printf(&af, err, "%s\t%s\t%s\t%s\n", t->concepts[e->concept], e->input, e->output,
                         e->split == ICL_SPLIT_TRAIN ? "train" : "test");
    }
    return icl_afile_commit(&af, err);
}

/* ---- templates and prompts ---- */

int icl_template_parse(icl_template *tp, const char *spec, icl_err *err) {
    memset(tp, 0, sizeof *tp);
    if (!spec) return icl_errf(err, "template: NULL");
    size_t n = strlen(spec);
    char *s = malloc(n + 1);
    if (!s) return icl_errf(err, "out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (spec[i] == '\\' && i + 1 < n && (spec[i + 1] == 'n' || spec[i + 1] == 't' || spec[i + 1] == '\\')) {
            s[m++] = spec[i + 1] == 'n' ? '\n' : spec[i + 1] == 't' ? '\t' : '\\';
            i++;
        } else {
            s[m++] = spec[i];
        }
    }
    s[m] = 0;
    char *x = strstr(s, "{x}"), *y = strstr(s, "{y}");
    const char *msg = NULL;
    if (!x)
        msg = "{x} is missing";
    else if (!y)
        msg = "{y} is missing";
    else if (strstr(x + 3, "{x}"))
        msg = "{x} appears twice";
    else if (strstr(y + 3, "{y}"))
        msg = "{y} appears twice";
    else if (y < x)
        msg = "{y} comes before {x}";
    else if (!y[3])
        msg = "nothing after {y}: the answer must end with a newline";
    else if (y[3] != '\n')
        msg = "the text after {y} must start with a newline";
    if (msg) {
        icl_errf(err, "template \"%.80s\": %s", spec, msg);
        free(s);
        return -1;
    }
    size_t lead_end = (size_t)(y - s), mid = lead_end;
    while (mid > (size_t)(x - s) + 3 && s[mid - 1] == ' ') mid--;
    tp->pre_x = strndup(s, (size_t)(x - s));
    tp->x_to_y = strndup(x + 3, mid - (size_t)(x - s) - 3);
    tp->answer_lead = strndup(s + mid, lead_end - mid);
    tp->post_y = strdup(y + 3);
    free(s);
    if (!tp->pre_x || !tp->x_to_y || !tp->answer_lead || !tp->post_y) {
        icl_template_free(tp);
        return icl_errf(err, "out of memory");
    }
    return 0;
}

void icl_template_free(icl_template *tp) {
    if (!tp) return;
    free(tp->pre_x);
    free(tp->x_to_y);
    free(tp->post_y);
    free(tp->answer_lead);
    memset(tp, 0, sizeof *tp);
}

static char *append(char *p, const char *s) {
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

int icl_prompt_build(const icl_toktask *t, const icl_template *tp, int instruction, const icl_tokex *const *demos,
                     int n_demos, const icl_tokex *query, char **prompt, char **answer, icl_err *err) {
    if (prompt) *prompt = NULL;
    if (answer) *answer = NULL;
    if (!t || !tp || !tp->pre_x || !query || !prompt || n_demos < 0 || (n_demos > 0 && !demos))
        return icl_errf(err, "prompt: missing argument");
    if (query->concept < 0 || query->concept >= t->n_concepts)
        return icl_errf(err, "prompt: query concept %d out of range 0..%d", query->concept, t->n_concepts - 1);
    size_t per = strlen(tp->pre_x) + strlen(tp->x_to_y) + strlen(tp->answer_lead) + strlen(tp->post_y);
    size_t len = strlen(tp->pre_x) + strlen(query->input) + strlen(tp->x_to_y);
    if (instruction) len += strlen(t->instructions[query->concept]) + 1;
    for (int i = 0; i < n_demos; i++) {
        if (!demos[i]) return icl_errf(err, "prompt: demonstration %d is NULL", i);
        len += per + strlen(demos[i]->input) + strlen(demos[i]->output);
    }
    char *p = malloc(len + 1), *q = p;
    if (!p) return icl_errf(err, "out of memory");
    if (instruction) {
        q = append(q, t->instructions[query->concept]);
        *q++ = '\n';
    }
    for (int i = 0; i < n_demos; i++) {
        q = append(q, tp->pre_x);
        q = append(q, demos[i]->input);
        q = append(q, tp->x_to_y);
        q = append(q, tp->answer_lead);
        q = append(q, demos[i]->output);
        q = append(q, tp->post_y);
    }
    q = append(q, tp->pre_x);
    q = append(q, query->input);
    q = append(q, tp->x_to_y);
    *q = 0;
    if (answer) {
        size_t an = strlen(tp->answer_lead), on = strlen(query->output);
        char *a = malloc(an + on + 1);
        if (!a) {
            free(p);
            return icl_errf(err, "out of memory");
        }
        memcpy(a, tp->answer_lead, an);
        memcpy(a + an, query->output, on + 1);
        *answer = a;
    }
    *prompt = p;
    return 0;
}

/* Rejection sampling keeps small episodes allocation-free; large ones use a partial shuffle. */
#define EPISODE_REJECT_MAX 64

int icl_episode_draw(const icl_toktask *t, int c, int split, int n_demos, icl_rng *rng, const icl_tokex **query,
                     const icl_tokex **demos, icl_err *err) {
    if (!t || !rng || !query || (n_demos > 0 && !demos)) return icl_errf(err, "episode: missing argument");
    if (c < 0 || c >= t->n_concepts) return icl_errf(err, "episode: concept %d out of range 0..%d", c, t->n_concepts - 1);
    if (split != ICL_SPLIT_TRAIN && split != ICL_SPLIT_TEST)
        return icl_errf(err, "episode: split %d is neither train (0) nor test (1)", split);
    if (n_demos < 0) return icl_errf(err, "episode: %d demonstrations", n_demos);
    size_t cnt = t->count[2 * c + split], base = t->first[2 * c + split], k = (size_t)n_demos + 1;
    if (cnt < k)
        return icl_errf(err, "episode: %s has %zu %s examples; %d demonstrations and a query need %zu", t->concepts[c],
                        cnt, split == ICL_SPLIT_TRAIN ? "train" : "test", n_demos, k);
    size_t pick[EPISODE_REJECT_MAX], *idx = pick;
    if (k <= EPISODE_REJECT_MAX) {
        for (size_t i = 0; i < k; i++) {
            size_t r;
            int again;
            do {
                r = (size_t)icl_rng_below(rng, cnt);
                again = 0;
                for (size_t j = 0; j < i; j++)
                    if (pick[j] == r) again = 1;
            } while (again);
            pick[i] = r;
        }
    } else {
        idx = malloc(cnt * sizeof *idx);
        if (!idx) return icl_errf(err, "out of memory");
        for (size_t i = 0; i < cnt; i++) idx[i] = i;
        for (size_t i = 0; i < k; i++) {
            size_t j = i + (size_t)icl_rng_below(rng, cnt - i), tmp = idx[i];
            idx[i] = idx[j];
            idx[j] = tmp;
        }
    }
    *query = &t->ex[base + idx[0]];
    for (int i = 0; i < n_demos; i++) demos[i] = &t->ex[base + idx[i + 1]];
    if (idx != pick) free(idx);
    return 0;
}

/* ---- scoring ---- */

int icl_answer_match(const char *generated, size_t len, const char *expected) {
    if (!generated || !expected) return 0;
    const char *nl = memchr(generated, '\n', len);
    if (nl) len = (size_t)(nl - generated);
    const char *g = generated;
    while (len && (*g == ' ' || *g == '\t')) g++, len--;
    while (len && (g[len - 1] == ' ' || g[len - 1] == '\t')) len--;
    size_t en = strlen(expected);
    while (en && (*expected == ' ' || *expected == '\t')) expected++, en--;
    while (en && (expected[en - 1] == ' ' || expected[en - 1] == '\t')) en--;
    return en == len && memcmp(g, expected, len) == 0;
}
