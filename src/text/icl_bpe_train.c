/* Byte-level BPE training: word counting over the pre-tokenizer's words, then merges chosen from a
 * pair-count table that is updated incrementally (only the words holding the merged pair are
 * touched), with a max-heap of (count, pair) entries and lazy deletion. See icl_bpe_train.h. */
#include "iclab/icl_bpe_train.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_tok_internal.h"
#include "icl_unicode.h"
#include "iclab/icl_tokenizer.h"

void icl_bpe_train_opts_default(icl_bpe_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab_size = 4096;
    o->pre = ICL_PRETOK_GPT2;
    o->add_bos = 1;
}

void icl_bpe_vocab_free(icl_bpe_vocab *v) {
    if (!v) return;
    for (int32_t i = 0; v->tokens && i < v->n_tokens; i++) free(v->tokens[i]);
    for (int32_t i = 0; v->merges && i < v->n_merges; i++) free(v->merges[i]);
    free(v->tokens), free(v->types), free(v->merges);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------------ helpers */

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint64_t bytes_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return mix64(h);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) { return icl_tok_grow(p, cap, need, elem); }

/* ------------------------------------------------------------------ trainer state */

typedef struct {
    int32_t *v;
    uint32_t n, cap;
} wlist;

typedef struct {
    int32_t a, b;
    int64_t count;
    wlist where;    /* words that held the pair when it was counted (may repeat or be stale) */
    uint32_t stamp; /* merge number that last touched the count */
} pair_t;

typedef struct {
    int64_t count;
    int32_t a, b;
} heap_ent;

typedef struct {
    /* tokens: raw bytes in an arena */
    uint8_t *arena;
    size_t arena_n, arena_cap;
    size_t *tok_off;
    uint32_t *tok_len;
    size_t tok_cap;
    int32_t n_tok;
    int32_t *tok_slot; /* open addressing: bytes -> id, -1 empty */
    size_t tok_mask;
    /* words */
    const uint8_t **w_ptr; /* bytes in the training text (counting phase) */
    uint32_t *w_len;
    int64_t *w_count;
    size_t n_words, w_cap;
    int32_t *w_slot; /* bytes -> word, -1 empty */
    size_t w_mask;
    int32_t **w_sym; /* current symbols of each word */
    uint32_t *w_nsym;
    uint32_t *w_stamp;
    /* pairs */
    pair_t *pairs;
    size_t n_pairs, pair_cap;
    int32_t *p_slot; /* (a,b) -> pair index, -1 empty */
    size_t p_mask;
    heap_ent *heap;
    size_t n_heap, heap_cap;
    int32_t *touched;
    size_t n_touched, touched_cap;
} trainer;

static void trainer_free(trainer *t) {
    free(t->arena), free(t->tok_off), free(t->tok_len), free(t->tok_slot);
    free(t->w_ptr), free(t->w_len), free(t->w_count), free(t->w_slot), free(t->w_nsym), free(t->w_stamp);
    if (t->w_sym)
        for (size_t i = 0; i < t->n_words; i++) free(t->w_sym[i]);
    free(t->w_sym);
    for (size_t i = 0; i < t->n_pairs; i++) free(t->pairs[i].where.v);
    free(t->pairs), free(t->p_slot), free(t->heap), free(t->touched);
}

static int32_t *slots_new(size_t cap) {
    int32_t *s = malloc(cap * sizeof *s);
    if (s) memset(s, 0xff, cap * sizeof *s);
    return s;
}

/* -- tokens -- */

static int32_t tok_find(const trainer *t, const uint8_t *s, size_t n) {
    size_t i = (size_t)bytes_hash(s, n) & t->tok_mask;
    for (int32_t id; (id = t->tok_slot[i]) >= 0; i = (i + 1) & t->tok_mask)
        if (t->tok_len[id] == n && !memcmp(t->arena + t->tok_off[id], s, n)) return id;
    return -1;
}

static int tok_rehash(trainer *t, size_t cap) {
    int32_t *s = slots_new(cap);
    if (!s) return -1;
    free(t->tok_slot);
    t->tok_slot = s;
    t->tok_mask = cap - 1;
    for (int32_t id = 0; id < t->n_tok; id++) {
        size_t i = (size_t)bytes_hash(t->arena + t->tok_off[id], t->tok_len[id]) & t->tok_mask;
        while (t->tok_slot[i] >= 0) i = (i + 1) & t->tok_mask;
        t->tok_slot[i] = id;
    }
    return 0;
}

/* Appends a token with bytes a ++ b (b may be empty); its id or -1 on OOM. */
static int32_t tok_add(trainer *t, const uint8_t *a, size_t na, const uint8_t *b, size_t nb) {
    if (grow((void **)&t->arena, &t->arena_cap, t->arena_n + na + nb, 1)) return -1;
    size_t cap = t->tok_cap;
    if (grow((void **)&t->tok_off, &cap, (size_t)t->n_tok + 1, sizeof *t->tok_off)) return -1;
    cap = t->tok_cap;
    if (grow((void **)&t->tok_len, &cap, (size_t)t->n_tok + 1, sizeof *t->tok_len)) return -1;
    t->tok_cap = cap;
    int32_t id = t->n_tok++;
    t->tok_off[id] = t->arena_n;
    t->tok_len[id] = (uint32_t)(na + nb);
    memcpy(t->arena + t->arena_n, a, na);
    if (nb) memcpy(t->arena + t->arena_n + na, b, nb);
    t->arena_n += na + nb;
    if (2 * (size_t)t->n_tok > t->tok_mask + 1) return tok_rehash(t, 2 * (t->tok_mask + 1)) ? -1 : id;
    size_t i = (size_t)bytes_hash(t->arena + t->tok_off[id], na + nb) & t->tok_mask;
    while (t->tok_slot[i] >= 0) i = (i + 1) & t->tok_mask;
    t->tok_slot[i] = id;
    return id;
}

/* Token a before token b in the tie order: bytes compared lexicographically. */
static int tok_cmp(const trainer *t, int32_t a, int32_t b) {
    if (a == b) return 0;
    uint32_t la = t->tok_len[a], lb = t->tok_len[b];
    int c = memcmp(t->arena + t->tok_off[a], t->arena + t->tok_off[b], la < lb ? la : lb);
    if (c) return c;
    return la < lb ? -1 : la > lb;
}

/* -- words -- */

static int word_rehash(trainer *t, size_t cap) {
    int32_t *s = slots_new(cap);
    if (!s) return -1;
    free(t->w_slot);
    t->w_slot = s;
    t->w_mask = cap - 1;
    for (size_t w = 0; w < t->n_words; w++) {
        size_t i = (size_t)bytes_hash(t->w_ptr[w], t->w_len[w]) & t->w_mask;
        while (t->w_slot[i] >= 0) i = (i + 1) & t->w_mask;
        t->w_slot[i] = (int32_t)w;
    }
    return 0;
}

static int word_count(trainer *t, const uint8_t *s, size_t n, icl_err *err) {
    if (n > UINT32_MAX / 2) return icl_errf(err, "a word of %zu bytes is too long", n);
    size_t i = (size_t)bytes_hash(s, n) & t->w_mask;
    for (int32_t w; (w = t->w_slot[i]) >= 0; i = (i + 1) & t->w_mask) {
        if (t->w_len[w] == n && !memcmp(t->w_ptr[w], s, n)) {
            t->w_count[w]++;
            return 0;
        }
    }
    if (t->n_words >= INT32_MAX - 1) return icl_errf(err, "too many distinct words");
    size_t cap = t->w_cap;
    if (grow((void **)&t->w_ptr, &cap, t->n_words + 1, sizeof *t->w_ptr)) return icl_errf(err, "out of memory");
    cap = t->w_cap;
    if (grow((void **)&t->w_len, &cap, t->n_words + 1, sizeof *t->w_len)) return icl_errf(err, "out of memory");
    cap = t->w_cap;
    if (grow((void **)&t->w_count, &cap, t->n_words + 1, sizeof *t->w_count)) return icl_errf(err, "out of memory");
    t->w_cap = cap;
    size_t w = t->n_words++;
    t->w_ptr[w] = s;
    t->w_len[w] = (uint32_t)n;
    t->w_count[w] = 1;
    t->w_slot[i] = (int32_t)w;
    if (2 * t->n_words > t->w_mask + 1 && word_rehash(t, 2 * (t->w_mask + 1))) return icl_errf(err, "out of memory");
    return 0;
}

/* Counts the pre-tokenizer words of text[0..len) (no special tokens inside). Large texts are cut
 * after a newline that a non-space follows, where every pre-tokenizer ends a word anyway, so the
 * scratch arrays stay small. */
static int count_text(trainer *t, int pre, const uint8_t *s, size_t len, uint64_t *n_words, icl_err *err) {
    enum { CHUNK = 1 << 20 };
    size_t pos = 0;
    while (pos < len) {
        size_t end = len;
        if (len - pos > CHUNK) {
            end = pos + CHUNK;
            while (end < len && !(s[end - 1] == '\n' && s[end] != ' ' && s[end] != '\t' && s[end] != '\n' &&
                                  s[end] != '\r' && s[end] != '\v' && s[end] != '\f'))
                end++;
        }
        size_t *ends, nw;
        if (icl_pretok_split(pre, (const char *)s + pos, end - pos, &ends, &nw, err)) return -1;
        size_t start = 0;
        for (size_t k = 0; k < nw; k++) {
            if (word_count(t, s + pos + start, ends[k] - start, err)) {
                free(ends);
                return -1;
            }
            start = ends[k];
        }
        *n_words += nw;
        free(ends);
        pos = end;
    }
    return 0;
}

/* -- pairs -- */

static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t)(uint32_t)a << 32 | (uint32_t)b; }

static int pair_rehash(trainer *t, size_t cap) {
    int32_t *s = slots_new(cap);
    if (!s) return -1;
    free(t->p_slot);
    t->p_slot = s;
    t->p_mask = cap - 1;
    for (size_t p = 0; p < t->n_pairs; p++) {
        size_t i = (size_t)mix64(pair_key(t->pairs[p].a, t->pairs[p].b)) & t->p_mask;
        while (t->p_slot[i] >= 0) i = (i + 1) & t->p_mask;
        t->p_slot[i] = (int32_t)p;
    }
    return 0;
}

/* Index of pair (a, b), created with count 0 when absent; -1 on OOM. */
static int32_t pair_get(trainer *t, int32_t a, int32_t b) {
    uint64_t key = pair_key(a, b);
    size_t i = (size_t)mix64(key) & t->p_mask;
    for (int32_t p; (p = t->p_slot[i]) >= 0; i = (i + 1) & t->p_mask)
        if (t->pairs[p].a == a && t->pairs[p].b == b) return p;
    if (t->n_pairs >= INT32_MAX - 1) return -1;
    if (grow((void **)&t->pairs, &t->pair_cap, t->n_pairs + 1, sizeof *t->pairs)) return -1;
    int32_t p = (int32_t)t->n_pairs++;
    memset(&t->pairs[p], 0, sizeof t->pairs[p]);
    t->pairs[p].a = a;
    t->pairs[p].b = b;
    t->pairs[p].stamp = UINT32_MAX;
    t->p_slot[i] = p;
    if (2 * t->n_pairs > t->p_mask + 1 && pair_rehash(t, 2 * (t->p_mask + 1))) return -1;
    return p;
}

/* Adds delta to pair (a, b)'s count; with delta > 0 notes word w as holding it. Marks the pair
 * touched by merge `stamp` so that its new count is pushed onto the heap. */
static int pair_add(trainer *t, int32_t a, int32_t b, int64_t delta, int32_t w, uint32_t stamp) {
    int32_t p = pair_get(t, a, b);
    if (p < 0) return -1;
    pair_t *pr = &t->pairs[p];
    pr->count += delta;
    if (delta > 0 && (pr->where.n == 0 || pr->where.v[pr->where.n - 1] != w)) {
        if (pr->where.n == pr->where.cap) {
            uint32_t nc = pr->where.cap ? 2 * pr->where.cap : 4;
            int32_t *nv = realloc(pr->where.v, nc * sizeof *nv);
            if (!nv) return -1;
            pr->where.v = nv;
            pr->where.cap = nc;
        }
        pr->where.v[pr->where.n++] = w;
    }
    if (pr->stamp != stamp) {
        pr->stamp = stamp;
        if (grow((void **)&t->touched, &t->touched_cap, t->n_touched + 1, sizeof *t->touched)) return -1;
        t->touched[t->n_touched++] = p;
    }
    return 0;
}

/* -- heap: the best pair on top (highest count, then the tie order) -- */

static int ent_before(const trainer *t, const heap_ent *x, const heap_ent *y) {
    if (x->count != y->count) return x->count > y->count;
    int c = tok_cmp(t, x->a, y->a);
    if (c) return c < 0;
    return tok_cmp(t, x->b, y->b) < 0;
}

static int heap_push(trainer *t, int64_t count, int32_t a, int32_t b) {
    if (grow((void **)&t->heap, &t->heap_cap, t->n_heap + 1, sizeof *t->heap)) return -1;
    heap_ent e = {count, a, b};
    size_t i = t->n_heap++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!ent_before(t, &e, &t->heap[p])) break;
        t->heap[i] = t->heap[p];
        i = p;
    }
    t->heap[i] = e;
    return 0;
}

static heap_ent heap_pop(trainer *t) {
    heap_ent top = t->heap[0], last = t->heap[--t->n_heap];
    size_t i = 0, n = t->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && ent_before(t, &t->heap[c + 1], &t->heap[c])) c++;
        if (!ent_before(t, &t->heap[c], &last)) break;
        t->heap[i] = t->heap[c];
        i = c;
    }
    if (n > 0) t->heap[i] = last;
    return top;
}

/* Merges every (a, b) of word w into c, left to right, updating the neighbours' pair counts. */
static int merge_word(trainer *t, int32_t w, int32_t a, int32_t b, int32_t c, uint32_t stamp) {
    int32_t *s = t->w_sym[w];
    uint32_t n = t->w_nsym[w];
    int64_t cnt = t->w_count[w];
    uint32_t i = 0;
    while (i + 1 < n) {
        if (s[i] != a || s[i + 1] != b) {
            i++;
            continue;
        }
        if (i > 0 && (pair_add(t, s[i - 1], a, -cnt, w, stamp) || pair_add(t, s[i - 1], c, cnt, w, stamp))) return -1;
        if (i + 2 < n && (pair_add(t, b, s[i + 2], -cnt, w, stamp) || pair_add(t, c, s[i + 2], cnt, w, stamp))) return -1;
        s[i] = c;
        memmove(s + i + 1, s + i + 2, (n - i - 2) * sizeof *s);
        n--;
        i++;
    }
    t->w_nsym[w] = n;
    return 0;
}

/* ------------------------------------------------------------------ training */

static int check_specials(const char *const *sp, int n, icl_err *err) {
    for (int k = 0; k < n; k++) {
        if (!sp[k] || !*sp[k]) return icl_errf(err, "special token %d is empty", k);
        for (int j = 0; j < k; j++)
            if (!strcmp(sp[j], sp[k])) return icl_errf(err, "special token '%s' is given twice", sp[k]);
    }
    return 0;
}

/* The next special token at or after pos: its start in *at and its index, -1 when none. The
 * leftmost match wins, the longest among those starting at the same byte. */
static int next_special(const uint8_t *s, size_t len, size_t pos, const char *const *sp, int n, size_t *next,
                        size_t *at) {
    int best = -1;
    for (int k = 0; k < n; k++) {
        if (next[k] != SIZE_MAX && next[k] < pos) {
            const uint8_t *m = memmem(s + pos, len - pos, sp[k], strlen(sp[k]));
            next[k] = m ? (size_t)(m - s) : SIZE_MAX;
        }
        if (next[k] == SIZE_MAX) continue;
        if (best < 0 || next[k] < *at || (next[k] == *at && strlen(sp[k]) > strlen(sp[best]))) {
            best = k;
            *at = next[k];
        }
    }
    return best;
}

static int train_inner(trainer *t, icl_bpe_vocab *v, const uint8_t *text, size_t len, const icl_bpe_train_opts *o,
                       const char *const *sp, int nsp, icl_err *err) {
    int pre = o->pre ? o->pre : ICL_PRETOK_GPT2;
    if (pre != ICL_PRETOK_GPT2 && pre != ICL_PRETOK_LLAMA3 && pre != ICL_PRETOK_QWEN2)
        return icl_errf(err, "unknown pre-tokenizer %d", pre);
    if (o->vocab_size < 256 + nsp)
        return icl_errf(err, "vocabulary size %d is below the 256 byte tokens + %d special token%s", (int)o->vocab_size,
                        nsp, nsp == 1 ? "" : "s");
    /* 1-2: words between the special tokens */
    t->w_slot = slots_new(1024);
    t->w_mask = 1023;
    if (!t->w_slot) return icl_errf(err, "out of memory");
    size_t next[64];
    if (nsp > 64) return icl_errf(err, "at most 64 special tokens");
    for (int k = 0; k < nsp; k++) {
        const uint8_t *m = len ? memmem(text, len, sp[k], strlen(sp[k])) : NULL;
        next[k] = m ? (size_t)(m - text) : SIZE_MAX;
    }
    size_t pos = 0;
    while (pos < len) {
        size_t at = len;
        int k = next_special(text, len, pos, sp, nsp, next, &at);
        size_t end = k >= 0 ? at : len;
        if (end > pos && count_text(t, pre, text + pos, end - pos, &v->n_words, err)) return -1;
        if (k < 0) break;
        v->n_specials_seen++;
        pos = at + strlen(sp[k]);
    }
    v->n_distinct_words = t->n_words;
    if (t->n_words == 0) return icl_errf(err, "empty text: nothing to train the tokenizer on");
    /* 3: byte tokens in GPT-2's order */
    uint32_t byte_cp[256];
    int16_t cp_byte[324];
    icl_bpe_byte_map(byte_cp, cp_byte);
    t->tok_slot = slots_new(1024);
    t->tok_mask = 1023;
    if (!t->tok_slot) return icl_errf(err, "out of memory");
    int32_t byte_id[256];
    for (int cp = 0; cp < 324; cp++) {
        if (cp_byte[cp] < 0) continue;
        uint8_t b = (uint8_t)cp_byte[cp];
        if ((byte_id[b] = tok_add(t, &b, 1, NULL, 0)) < 0) return icl_errf(err, "out of memory");
    }
    /* words as symbols; initial pair counts */
    t->w_sym = calloc(t->n_words, sizeof *t->w_sym);
    t->w_nsym = malloc(t->n_words * sizeof *t->w_nsym);
    t->w_stamp = malloc(t->n_words * sizeof *t->w_stamp);
    t->p_slot = slots_new(4096);
    t->p_mask = 4095;
    if (!t->w_sym || !t->w_nsym || !t->w_stamp || !t->p_slot) return icl_errf(err, "out of memory");
    for (size_t w = 0; w < t->n_words; w++) {
        uint32_t n = t->w_len[w];
        t->w_stamp[w] = UINT32_MAX;
        t->w_nsym[w] = n;
        if (!(t->w_sym[w] = malloc(n * sizeof(int32_t)))) return icl_errf(err, "out of memory");
        for (uint32_t i = 0; i < n; i++) t->w_sym[w][i] = byte_id[t->w_ptr[w][i]];
        for (uint32_t i = 0; i + 1 < n; i++)
            if (pair_add(t, t->w_sym[w][i], t->w_sym[w][i + 1], t->w_count[w], (int32_t)w, 0))
                return icl_errf(err, "out of memory");
    }
    for (size_t p = 0; p < t->n_pairs; p++)
        if (heap_push(t, t->pairs[p].count, t->pairs[p].a, t->pairs[p].b)) return icl_errf(err, "out of memory");
    t->n_touched = 0;
    /* 4: merges */
    int32_t target = o->vocab_size - nsp;
    int32_t *ma = NULL, *mb = NULL;
    size_t m_cap = 0, n_merges = 0;
    uint32_t stamp = 1;
    int rc = 0;
    while (t->n_tok < target) {
        heap_ent e;
        int found = 0;
        while (t->n_heap > 0) {
            e = heap_pop(t);
            int32_t p = pair_get(t, e.a, e.b);
            if (p < 0) {
                rc = icl_errf(err, "out of memory");
                break;
            }
            if (e.count > 0 && t->pairs[p].count == e.count) {
                found = 1;
                break;
            }
        }
        if (rc) break;
        if (!found) {
            rc = icl_errf(err,
                          "vocabulary size %d is unreachable: this text gives at most %d tokens (256 bytes + %d "
                          "merge results + %d special); use a smaller vocabulary or more text",
                          (int)o->vocab_size, (int)(t->n_tok + nsp), (int)(t->n_tok - 256), nsp);
            break;
        }
        const uint8_t *ba = t->arena + t->tok_off[e.a], *bb = t->arena + t->tok_off[e.b];
        uint32_t la = t->tok_len[e.a], lb = t->tok_len[e.b];
        /* the result: an existing token with the same bytes, or a new one */
        uint8_t *cat = malloc((size_t)la + lb);
        if (!cat) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        memcpy(cat, ba, la);
        memcpy(cat + la, bb, lb);
        int32_t c = tok_find(t, cat, (size_t)la + lb);
        if (c < 0) c = tok_add(t, cat, la, cat + la, lb);
        free(cat);
        size_t cap = m_cap;
        if (c < 0 || grow((void **)&ma, &cap, n_merges + 1, sizeof *ma) ||
            grow((void **)&mb, &m_cap, n_merges + 1, sizeof *mb)) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        ma[n_merges] = e.a;
        mb[n_merges] = e.b;
        n_merges++;
        /* apply to every word holding the pair; its where-list is taken over so that pair_add may
         * append to lists (and move the pair table) meanwhile */
        int32_t p = pair_get(t, e.a, e.b);
        wlist where = t->pairs[p].where;
        memset(&t->pairs[p].where, 0, sizeof where);
        stamp++;
        t->n_touched = 0;
        for (uint32_t k = 0; k < where.n && !rc; k++) {
            int32_t w = where.v[k];
            if (t->w_stamp[w] == stamp) continue;
            t->w_stamp[w] = stamp;
            if (merge_word(t, w, e.a, e.b, c, stamp)) rc = icl_errf(err, "out of memory");
        }
        free(where.v);
        if (rc) break;
        p = pair_get(t, e.a, e.b);
        t->pairs[p].count = 0;
        for (size_t k = 0; k < t->n_touched; k++) {
            pair_t *pr = &t->pairs[t->touched[k]];
            if (pr->count > 0 && heap_push(t, pr->count, pr->a, pr->b)) {
                rc = icl_errf(err, "out of memory");
                break;
            }
        }
        if (rc) break;
    }
    if (rc) {
        free(ma), free(mb);
        return -1;
    }
    /* 5: the vocabulary in GPT-2's byte alphabet, then the specials */
    v->n_tokens = t->n_tok + nsp;
    v->tokens = calloc((size_t)v->n_tokens, sizeof *v->tokens);
    v->types = malloc((size_t)v->n_tokens);
    v->merges = calloc(n_merges ? n_merges : 1, sizeof *v->merges);
    if (!v->tokens || !v->types || !v->merges) rc = icl_errf(err, "out of memory");
    for (int32_t id = 0; !rc && id < t->n_tok; id++) {
        uint32_t n = t->tok_len[id];
        char *s = malloc(2 * (size_t)n + 1);
        if (!s) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        size_t m = 0;
        for (uint32_t i = 0; i < n; i++) m += icl_utf8_put(byte_cp[t->arena[t->tok_off[id] + i]], (uint8_t *)s + m);
        s[m] = 0;
        v->tokens[id] = s;
        v->types[id] = ICL_TOKT_NORMAL;
    }
    for (int k = 0; !rc && k < nsp; k++) {
        if (!(v->tokens[t->n_tok + k] = strdup(sp[k]))) rc = icl_errf(err, "out of memory");
        v->types[t->n_tok + k] = ICL_TOKT_CONTROL;
    }
    for (size_t r = 0; !rc && r < n_merges; r++) {
        const char *A = v->tokens[ma[r]], *B = v->tokens[mb[r]];
        size_t na = strlen(A), nb = strlen(B);
        char *s = malloc(na + nb + 2);
        if (!s) {
            rc = icl_errf(err, "out of memory");
            break;
        }
        memcpy(s, A, na);
        s[na] = ' ';
        memcpy(s + na + 1, B, nb + 1);
        v->merges[r] = s;
        v->n_merges = (int32_t)r + 1;
    }
    free(ma), free(mb);
    v->eos = v->bos = t->n_tok;
    v->pre = pre;
    v->add_bos = o->add_bos;
    return rc;
}

int icl_bpe_train(icl_bpe_vocab *v, const char *text, size_t len, const icl_bpe_train_opts *o, icl_err *err) {
    memset(v, 0, sizeof *v);
    static const char *const def_sp[1] = {ICL_BPE_EOS_TEXT};
    const char *const *sp = o->specials ? o->specials : def_sp;
    int nsp = o->specials ? o->n_specials : 1;
    if (nsp < 1) return icl_errf(err, "at least one special token (the end-of-text token) is needed");
    if (check_specials(sp, nsp, err)) return -1;
    if (!text && len) return icl_errf(err, "no text");
    trainer t;
    memset(&t, 0, sizeof t);
    int rc = train_inner(&t, v, (const uint8_t *)text, len, o, sp, nsp, err);
    trainer_free(&t);
    if (rc) icl_bpe_vocab_free(v);
    return rc;
}

/* ------------------------------------------------------------------ GGUF */

int icl_bpe_vocab_to_gguf(const icl_bpe_vocab *v, icl_gguf_writer *w, icl_err *err) {
    const char *pre = v->pre == ICL_PRETOK_LLAMA3 ? "llama-bpe" : v->pre == ICL_PRETOK_QWEN2 ? "qwen2" : "gpt-2";
    int32_t *types = malloc((size_t)v->n_tokens * sizeof *types);
    if (!types) return icl_errf(err, "out of memory");
    for (int32_t i = 0; i < v->n_tokens; i++) types[i] = v->types[i];
    int rc = icl_gguf_writer_add_str(w, "tokenizer.ggml.model", "gpt2", err) ||
             icl_gguf_writer_add_str(w, "tokenizer.ggml.pre", pre, err) ||
             icl_gguf_writer_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens, NULL,
                                         (uint64_t)v->n_tokens, err) ||
             icl_gguf_writer_add_arr(w, "tokenizer.ggml.token_type", ICL_GGUF_INT32, types, (uint64_t)v->n_tokens, err) ||
             icl_gguf_writer_add_arr_str(w, "tokenizer.ggml.merges", (const char *const *)v->merges, NULL,
                                         (uint64_t)v->n_merges, err) ||
             icl_gguf_writer_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)v->bos, err) ||
             icl_gguf_writer_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)v->eos, err) ||
             icl_gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err) ||
             icl_gguf_writer_add_bool(w, "tokenizer.ggml.add_eos_token", 0, err);
    free(types);
    return rc ? -1 : 0;
}

int icl_bpe_vocab_write(const icl_bpe_vocab *v, const char *path, icl_err *err) {
    icl_gguf_writer *w;
    if (icl_gguf_writer_init(&w, err)) return -1;
    int rc = icl_gguf_writer_add_str(w, "general.name", "iclab byte-level BPE", err) || icl_bpe_vocab_to_gguf(v, w, err) ||
             icl_gguf_writer_write(w, path, err);
    icl_gguf_writer_free(w);
    return rc ? -1 : 0;
}
