/* Byte-level BPE (GPT-2, Llama-3, Qwen2): the pre-tokenizers that split text into words, hand-written
 * as scanners over code points with exactly the semantics of the regexes they stand for, and the
 * merge loop over one word.
 *
 * GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*
 *          |\s*[\r\n]+|\s+(?!\S)|\s+
 * Qwen2:   the same with '[sS]|'[tT]|'[rR][eE]|... for the contractions and \p{N} (single digits).
 * A regex tokenizer takes, at each position, the first alternative that matches; every alternative
 * here is greedy and only \s+(?!\S) ever gives back characters (the last white space before a
 * non-space, which then starts the next word), so a scanner can decide each word from the classes
 * of its first characters. \s is the White_Space property; an invalid UTF-8 byte is class "other". */
#include <stdlib.h>
#include <string.h>
#include "icl_tok_internal.h"
#include "icl_unicode.h"

enum { FOLD_NONE, FOLD_ASCII, FOLD_UNICODE };

/* Case folding of the contraction letters: GPT-2's regex is case-sensitive, Qwen2's spells out
 * [sS] etc., and Llama-3's (?i:...) also folds U+017F LATIN SMALL LETTER LONG S to s (the only
 * non-ASCII code point whose simple case folding is one of s t r e v m l d). */
static uint32_t fold(uint32_t c, int mode) {
    if (mode == FOLD_NONE) return c;
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (mode == FOLD_UNICODE && c == 0x17F) return 's';
    return c;
}

/* Length of a contraction ('s 't 'm 'd 're 've 'll) at i, where cps[i] is an apostrophe; 0 if none. */
static size_t contraction(const uint32_t *cps, size_t i, size_t n, int mode) {
    if (i + 1 >= n) return 0;
    uint32_t a = fold(cps[i + 1], mode);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if (i + 2 >= n) return 0;
    uint32_t b = fold(cps[i + 2], mode);
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

static size_t run_of(const uint8_t *cls, size_t i, size_t n, int k) {
    while (i < n && cls[i] == k) i++;
    return i;
}

static int is_nl(uint32_t c) { return c == '\r' || c == '\n'; }

/* End of a white-space word starting at i (cls[i] is SPACE) under \s+(?!\S)|\s+: the whole run if
 * it reaches the end of the text or is one character long, else all but its last character. */
static size_t space_word(const uint8_t *cls, size_t i, size_t n) {
    size_t m = run_of(cls, i, n, ICL_UC_SPACE);
    return (m - i >= 2 && m < n) ? m - 1 : m;
}

static size_t split_gpt2(const uint32_t *cps, const uint8_t *cls, size_t n, size_t *ends) {
    size_t nw = 0, i = 0;
    while (i < n) {
        size_t e;
        if (cps[i] == '\'' && (e = contraction(cps, i, n, FOLD_NONE)) > 0) {
            e += i;
        } else {
            /* " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+": an optional space, then a run of one class. */
            size_t j = i + (cps[i] == ' ');
            if (j < n && cls[j] != ICL_UC_SPACE)
                e = run_of(cls, j, n, cls[j]);
            else
                e = space_word(cls, i, n); /* cls[i] is SPACE here */
        }
        ends[nw++] = e;
        i = e;
    }
    return nw;
}

/* Llama-3 (max_digits 3, FOLD_UNICODE) and Qwen2 (max_digits 1, FOLD_ASCII). */
static size_t split_llama3(const uint32_t *cps, const uint8_t *cls, size_t n, size_t *ends, size_t max_digits,
                           int mode) {
    size_t nw = 0, i = 0;
    while (i < n) {
        uint32_t c = cps[i];
        size_t e;
        if (c == '\'' && (e = contraction(cps, i, n, mode)) > 0) {
            e += i;
        } else if (cls[i] == ICL_UC_LETTER) {
            /* [^\r\n\p{L}\p{N}]?\p{L}+ without the optional character */
            e = run_of(cls, i, n, ICL_UC_LETTER);
        } else if (!is_nl(c) && cls[i] != ICL_UC_NUMBER && i + 1 < n && cls[i + 1] == ICL_UC_LETTER) {
            /* ... with it: any one non-letter, non-number character except \r \n */
            e = run_of(cls, i + 1, n, ICL_UC_LETTER);
        } else if (cls[i] == ICL_UC_NUMBER) {
            e = i + 1;
            while (e < n && cls[e] == ICL_UC_NUMBER && e - i < max_digits) e++;
        } else if (i + (c == ' ') < n && cls[i + (c == ' ')] == ICL_UC_OTHER) {
            /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
            e = run_of(cls, i + (c == ' '), n, ICL_UC_OTHER);
            while (e < n && is_nl(cps[e])) e++;
        } else {
            /* cls[i] is SPACE. \s*[\r\n]+ ends after the last \r or \n of the white-space run;
             * without one, \s+(?!\S)|\s+. */
            size_t m = run_of(cls, i, n, ICL_UC_SPACE), last = 0;
            for (size_t t = i; t < m; t++)
                if (is_nl(cps[t])) last = t + 1;
            e = last ? last : space_word(cls, i, n);
        }
        ends[nw++] = e;
        i = e;
    }
    return nw;
}

size_t icl_pretok_words(int pre, const uint32_t *cps, const uint8_t *cls, size_t n, size_t *ends) {
    switch (pre) {
    case ICL_PRETOK_GPT2: return split_gpt2(cps, cls, n, ends);
    case ICL_PRETOK_LLAMA3: return split_llama3(cps, cls, n, ends, 3, FOLD_UNICODE);
    case ICL_PRETOK_QWEN2: return split_llama3(cps, cls, n, ends, 1, FOLD_ASCII);
    default: /* no pre-tokenizer: one word */
        if (n == 0) return 0;
        ends[0] = n;
        return 1;
    }
}

int icl_pretok_from_name(const char *name) {
    static const struct {
        const char *name;
        int pre;
    } names[] = {
        {"gpt2", ICL_PRETOK_GPT2},       {"gpt-2", ICL_PRETOK_GPT2},         {"llama-bpe", ICL_PRETOK_LLAMA3},
        {"llama3", ICL_PRETOK_LLAMA3},   {"llama-v3", ICL_PRETOK_LLAMA3},    {"qwen2", ICL_PRETOK_QWEN2},
    };
    if (!name) return ICL_PRETOK_NONE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) return names[i].pre;
    return ICL_PRETOK_NONE;
}

size_t icl_tok_units(icl_tok_scratch *sc, const uint8_t *text, size_t len) {
    if (icl_tok_grow((void **)&sc->offs, &sc->cap_units, len + 1, sizeof *sc->offs)) return (size_t)-1;
    /* The other unit arrays share cap_units: grow them to the same capacity. */
    size_t cap = sc->cap_units;
    uint32_t *cps = realloc(sc->cps, cap * sizeof *cps);
    if (!cps) return (size_t)-1;
    sc->cps = cps;
    uint8_t *cls = realloc(sc->cls, cap);
    if (!cls) return (size_t)-1;
    sc->cls = cls;
    size_t *ends = realloc(sc->ends, cap * sizeof *ends);
    if (!ends) return (size_t)-1;
    sc->ends = ends;
    size_t n = 0, off = 0;
    while (off < len) {
        uint32_t cp;
        size_t l = icl_utf8_next(text + off, len - off, &cp);
        sc->cps[n] = cp;
        sc->cls[n] = (uint8_t)icl_uc_class(cp);
        sc->offs[n] = off;
        n++;
        off += l;
    }
    sc->offs[n] = len;
    return n;
}

void icl_bpe_byte_map(uint32_t byte_cp[256], int16_t cp_byte[324]) {
    /* Printable Latin-1 bytes (! .. ~, ¡ .. ¬, ® .. ÿ) stand for themselves; the other 68 bytes take
     * the code points 256, 257, ... in byte order. */
    uint32_t next = 256;
    for (int i = 0; i < 324; i++) cp_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        byte_cp[b] = printable ? (uint32_t)b : next++;
        cp_byte[byte_cp[b]] = (int16_t)b;
    }
}

/* A symbol of the word being merged: a piece covering bytes [start, start+len) of the word, in a
 * doubly linked list of the word's live symbols. len == 0 once merged into its left neighbour. */
typedef struct {
    int32_t piece, prev, next;
    uint32_t start, len;
} bpe_sym;

/* A candidate merge of symbols left and right (pieces lp, rp) into res, priority rank. Candidates
 * go stale when either symbol changes; they are checked when popped rather than removed. */
typedef struct {
    int32_t rank, left, right, lp, rp, res;
} bpe_cand;

static int cand_before(const void *pa, const void *pb) {
    const bpe_cand *a = pa, *b = pb;
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int32_t merge_find(const icl_tokenizer *tk, int32_t lp, int32_t rp, int32_t *res) {
    uint64_t key = (uint64_t)(uint32_t)lp << 32 | (uint32_t)rp;
    size_t i = icl_tok_merge_slot(key, tk->mmask);
    while (tk->merge[i].key != UINT64_MAX) {
        if (tk->merge[i].key == key) {
            *res = tk->merge[i].res;
            return tk->merge[i].rank;
        }
        i = (i + 1) & tk->mmask;
    }
    return -1;
}

static void try_pair(const icl_tokenizer *tk, const bpe_sym *s, int32_t l, int32_t r, bpe_cand *h, size_t *nh) {
    if (l < 0 || r < 0) return;
    int32_t res, rank = merge_find(tk, s[l].piece, s[r].piece, &res);
    if (rank < 0) return;
    bpe_cand c = {rank, l, r, s[l].piece, s[r].piece, res};
    icl_tok_heap_push(h, nh, &c, sizeof c, cand_before);
}

static int push_bytes(const icl_tokenizer *tk, const uint8_t *b, size_t n, icl_tok_ivec *out, icl_err *err) {
    for (size_t i = 0; i < n; i++) {
        if (tk->byte_token[b[i]] < 0) return icl_errf(err, "byte 0x%02X has no token in the vocabulary", b[i]);
        if (icl_tok_push(out, tk->byte_token[b[i]])) return icl_errf(err, "out of memory");
    }
    return 0;
}

/* Merges the bytes w[0..n) of one word: repeatedly the adjacent pair with the lowest merge rank
 * (leftmost among equals), as in GPT-2's bpe(); O(n log n) with a heap of candidates. */
static int bpe_word(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *w, size_t n, icl_tok_ivec *out,
                    icl_err *err) {
    if (tk->ignore_merges || n == 1) {
        /* The word in GPT-2's byte alphabet; a vocabulary token as a whole needs no merging. */
        if (icl_tok_grow((void **)&sc->buf, &sc->cap_buf, 2 * n, 1)) return icl_errf(err, "out of memory");
        size_t m = 0;
        for (size_t i = 0; i < n; i++) m += icl_utf8_put(tk->byte_cp[w[i]], (uint8_t *)sc->buf + m);
        int32_t id = icl_tok_lookup_token(tk, sc->buf, m);
        if (id >= 0) return icl_tok_push(out, id) ? icl_errf(err, "out of memory") : 0;
        if (n == 1) return push_bytes(tk, w, 1, out, err);
    }
    if (n > INT32_MAX) return icl_errf(err, "word of %zu bytes is too long", n);
    if (icl_tok_grow(&sc->syms, &sc->cap_syms, n, sizeof(bpe_sym)) ||
        icl_tok_grow(&sc->heap, &sc->cap_heap, n, sizeof(bpe_cand)))
        return icl_errf(err, "out of memory");
    bpe_sym *s = sc->syms;
    bpe_cand *h = sc->heap;
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].piece = tk->byte_piece[w[i]];
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < n ? (int32_t)i + 1 : -1;
        s[i].start = (uint32_t)i;
        s[i].len = 1;
    }
    /* At most one live candidate per adjacent pair, and each merge removes a pair and adds at most
     * two, so the heap never holds more than n - 1 + 2 * (n - 1) entries; stale ones are dropped
     * when popped, and the heap grows if needed. */
    for (size_t i = 0; i + 1 < n; i++) try_pair(tk, s, (int32_t)i, (int32_t)i + 1, h, &nh);
    while (nh > 0) {
        bpe_cand c;
        icl_tok_heap_pop(h, &nh, &c, sizeof c, cand_before);
        bpe_sym *l = &s[c.left], *r = &s[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->piece != c.lp || r->piece != c.rp) continue;
        l->piece = c.res;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = c.left;
        if (icl_tok_grow(&sc->heap, &sc->cap_heap, nh + 2, sizeof(bpe_cand))) return icl_errf(err, "out of memory");
        h = sc->heap;
        try_pair(tk, s, l->prev, c.left, h, &nh);
        try_pair(tk, s, c.left, l->next, h, &nh);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int32_t p = s[i].piece;
        if (p < tk->n_vocab && icl_tok_mergeable(tk->type[p])) {
            if (icl_tok_push(out, p)) return icl_errf(err, "out of memory");
        } else if (push_bytes(tk, w + s[i].start, s[i].len, out, err)) {
            return -1;
        }
    }
    return 0;
}

int icl_bpe_fragment(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *text, size_t len,
                     icl_tok_ivec *out, icl_err *err) {
    size_t n = icl_tok_units(sc, text, len);
    if (n == (size_t)-1) return icl_errf(err, "out of memory");
    size_t nw = icl_pretok_words(tk->pre, sc->cps, sc->cls, n, sc->ends), start = 0;
    for (size_t k = 0; k < nw; k++) {
        size_t b0 = sc->offs[start], b1 = sc->offs[sc->ends[k]];
        if (bpe_word(tk, sc, text + b0, b1 - b0, out, err)) return -1;
        start = sc->ends[k];
    }
    return 0;
}

int icl_pretok_split(int pre, const char *text, size_t len, size_t **ends, size_t *n, icl_err *err) {
    *ends = NULL;
    *n = 0;
    if (pre != ICL_PRETOK_GPT2 && pre != ICL_PRETOK_LLAMA3 && pre != ICL_PRETOK_QWEN2)
        return icl_errf(err, "unknown pre-tokenizer %d", pre);
    icl_tok_scratch sc;
    memset(&sc, 0, sizeof sc);
    int rc = -1;
    size_t nu = icl_tok_units(&sc, (const uint8_t *)text, len);
    if (nu == (size_t)-1) {
        icl_errf(err, "out of memory");
        goto done;
    }
    size_t nw = icl_pretok_words(pre, sc.cps, sc.cls, nu, sc.ends);
    if (nw > 0) {
        *ends = malloc(nw * sizeof **ends);
        if (!*ends) {
            icl_errf(err, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < nw; k++) (*ends)[k] = sc.offs[sc.ends[k]];
    }
    *n = nw;
    rc = 0;
done:
    free(sc.cps), free(sc.cls), free(sc.offs), free(sc.ends), free(sc.syms), free(sc.heap), free(sc.buf);
    return rc;
}
