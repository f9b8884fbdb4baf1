/* Tokenizer construction from GGUF metadata, the vocabulary and merge tables, special-token
 * matching, and the encode / decode entry points (the merge algorithms are in icl_bpe.c and
 * icl_spm.c). */
#include "iclab/icl_tokenizer.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_tok_internal.h"
#include "icl_unicode.h"

/* ------------------------------------------------------------------ small helpers */

int icl_tok_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > SIZE_MAX / 2 / elem) return -1;
        c *= 2;
    }
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

int icl_tok_push(icl_tok_ivec *v, int32_t id) {
    if (icl_tok_grow((void **)&v->v, &v->cap, v->n + 1, sizeof *v->v)) return -1;
    v->v[v->n++] = id;
    return 0;
}

/* FNV-1a, then a final mix so that the low bits (the slot) depend on every byte. Streamed (start,
 * step, finish) so that a merge's concatenation "AB" can be hashed from its two halves. */
#define HASH_START 0xcbf29ce484222325ull
static uint64_t hash_step(uint64_t h, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h;
}
static uint64_t hash_finish(uint64_t h) {
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}
static uint64_t str_hash(const char *s, size_t len) { return hash_finish(hash_step(HASH_START, s, len)); }

static int piece_is(const icl_tokenizer *tk, int32_t p, const char *s, size_t len) {
    if (tk->piece[p].len != len) return 0;
    const char *t = tk->arena + tk->piece[p].off;
    for (size_t i = 0; i < len; i++) /* pieces are short: a loop beats a memcmp call */
        if (t[i] != s[i]) return 0;
    return 1;
}

#define SLOT_EMPTY UINT64_MAX
#define SLOT_TAG(h) ((h) & 0xFFFFFFFF00000000ull)

/* Lookup with the text's str_hash h already known. */
static int32_t lookup_h(const icl_tokenizer *tk, const char *s, size_t len, uint64_t h) {
    uint64_t tag = SLOT_TAG(h);
    size_t i = (size_t)h & tk->hmask;
    for (uint64_t v; (v = tk->hslot[i]) != SLOT_EMPTY; i = (i + 1) & tk->hmask)
        if (SLOT_TAG(v) == tag && piece_is(tk, (int32_t)(uint32_t)v, s, len)) return (int32_t)(uint32_t)v;
    return -1;
}

int32_t icl_tok_lookup(const icl_tokenizer *tk, const char *s, size_t len) {
    return lookup_h(tk, s, len, str_hash(s, len));
}

int32_t icl_tok_lookup_token(const icl_tokenizer *tk, const char *s, size_t len) {
    int32_t p = icl_tok_lookup(tk, s, len);
    return (p >= 0 && p < tk->n_vocab && icl_tok_mergeable(tk->type[p])) ? p : -1;
}

/* Table of at least 2 * n slots (load <= 1/2), empty. */
static int hash_alloc(icl_tokenizer *tk, size_t n) {
    size_t cap = 64;
    while (cap < 2 * n) cap *= 2;
    uint64_t *slot = malloc(cap * sizeof *slot);
    if (!slot) return -1;
    memset(slot, 0xff, cap * sizeof *slot);
    free(tk->hslot);
    tk->hslot = slot;
    tk->hmask = cap - 1;
    return 0;
}

/* Puts piece p into the hash (a later piece with the same text replaces an earlier one, as in
 * llama.cpp's token_to_id map), doubling the table when it is half full. */
static int hash_insert(icl_tokenizer *tk, int32_t p) {
    if ((size_t)tk->n_piece * 2 > tk->hmask + 1) {
        uint64_t *old = tk->hslot;
        size_t omask = tk->hmask;
        tk->hslot = NULL;
        if (hash_alloc(tk, (omask + 1))) {
            tk->hslot = old;
            return -1;
        }
        for (size_t i = 0; i <= omask; i++) {
            if (old[i] == SLOT_EMPTY) continue;
            int32_t q = (int32_t)(uint32_t)old[i];
            size_t j = (size_t)str_hash(tk->arena + tk->piece[q].off, tk->piece[q].len) & tk->hmask;
            while (tk->hslot[j] != SLOT_EMPTY) j = (j + 1) & tk->hmask;
            tk->hslot[j] = old[i];
        }
        free(old);
    }
    const char *s = tk->arena + tk->piece[p].off;
    size_t len = tk->piece[p].len;
    uint64_t h = str_hash(s, len), tag = SLOT_TAG(h);
    size_t i = (size_t)h & tk->hmask;
    for (uint64_t v; (v = tk->hslot[i]) != SLOT_EMPTY; i = (i + 1) & tk->hmask) {
        if (SLOT_TAG(v) == tag && piece_is(tk, (int32_t)(uint32_t)v, s, len)) {
            tk->hslot[i] = tag | (uint32_t)p;
            return 0;
        }
    }
    tk->hslot[i] = tag | (uint32_t)p;
    return 0;
}

/* Appends a piece with text s[0..len) (not yet in the hash) and returns its id, -1 on OOM. */
static int32_t piece_add(icl_tokenizer *tk, const char *s, size_t len) {
    if (tk->n_piece == INT32_MAX || len > UINT32_MAX || tk->arena_len + len > UINT32_MAX) return -1;
    if (icl_tok_grow((void **)&tk->arena, &tk->arena_cap, tk->arena_len + len + 1, 1)) return -1;
    if (tk->n_piece == tk->cap_piece) {
        size_t cap = (size_t)tk->cap_piece;
        if (icl_tok_grow((void **)&tk->piece, &cap, cap + 1, sizeof *tk->piece)) return -1;
        if (cap > INT32_MAX) cap = INT32_MAX;
        tk->cap_piece = (int32_t)cap;
    }
    int32_t p = tk->n_piece++;
    if (len) memcpy(tk->arena + tk->arena_len, s, len);
    tk->piece[p].off = (uint32_t)tk->arena_len;
    tk->piece[p].len = (uint32_t)len;
    tk->arena_len += len;
    if (hash_insert(tk, p)) return -1;
    return p;
}

static int32_t piece_get_h(icl_tokenizer *tk, const char *s, size_t len, uint64_t h) {
    int32_t p = lookup_h(tk, s, len, h);
    return p >= 0 ? p : piece_add(tk, s, len);
}

static int32_t piece_get(icl_tokenizer *tk, const char *s, size_t len) {
    return piece_get_h(tk, s, len, str_hash(s, len));
}

void icl_tokenizer_free(icl_tokenizer *tk) {
    if (!tk) return;
    free(tk->arena), free(tk->piece), free(tk->type), free(tk->score);
    free(tk->hslot), free(tk->merge), free(tk->spec);
    free(tk);
}

/* ------------------------------------------------------------------ loading */

/* Optional integer key: *out keeps its default when absent; -1 stands for "none". */
static int opt_id(const icl_gguf *g, const char *key, int32_t n_vocab, int32_t *out, icl_err *err) {
    if (icl_gguf_find_key(g, key) < 0) return 0;
    int64_t v;
    if (icl_gguf_get_int(g, key, &v, err)) return -1;
    if (v == -1) {
        *out = -1;
        return 0;
    }
    if (v < 0 || v >= n_vocab) return icl_errf(err, "%s = %lld is outside the vocabulary [0, %d)", key, (long long)v, n_vocab);
    *out = (int32_t)v;
    return 0;
}

static int opt_bool(const icl_gguf *g, const char *key, int *out, icl_err *err) {
    if (icl_gguf_find_key(g, key) < 0) return 0;
    return icl_gguf_get_bool(g, key, out, err);
}

static int load_vocab(icl_tokenizer *tk, const icl_gguf *g, icl_err *err) {
    icl_gguf_arr toks, types;
    if (icl_gguf_get_arr(g, "tokenizer.ggml.tokens", &toks, err)) return -1;
    if (toks.type != ICL_GGUF_STRING) return icl_errf(err, "tokenizer.ggml.tokens is not an array of strings");
    if (toks.n == 0) return icl_errf(err, "tokenizer.ggml.tokens is empty");
    if (toks.n > INT32_MAX / 4) return icl_errf(err, "tokenizer.ggml.tokens has too many entries (%llu)", (unsigned long long)toks.n);
    int32_t n = (int32_t)toks.n;
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) {
        uint64_t len;
        if (!icl_gguf_arr_str(&toks, (uint64_t)i, &len)) return icl_errf(err, "tokenizer.ggml.tokens[%d] unreadable", i);
        total += len;
    }
    if (total > UINT32_MAX / 2) return icl_errf(err, "tokenizer.ggml.tokens holds too much text (%zu bytes)", total);
    tk->arena_cap = total + 1;
    tk->cap_piece = n + 256;
    tk->arena = malloc(tk->arena_cap);
    tk->piece = malloc((size_t)tk->cap_piece * sizeof *tk->piece);
    tk->type = malloc((size_t)n);
    if (!tk->arena || !tk->piece || !tk->type || hash_alloc(tk, (size_t)tk->cap_piece))
        return icl_errf(err, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        uint64_t len;
        const char *s = icl_gguf_arr_str(&toks, (uint64_t)i, &len);
        if (piece_add(tk, s, (size_t)len) != i) return icl_errf(err, "out of memory");
    }
    tk->n_vocab = n;
    memset(tk->type, ICL_TOKT_NORMAL, (size_t)n);
    if (icl_gguf_find_key(g, "tokenizer.ggml.token_type") >= 0) {
        if (icl_gguf_get_arr(g, "tokenizer.ggml.token_type", &types, err)) return -1;
        if (types.n != toks.n)
            return icl_errf(err, "tokenizer.ggml.token_type has %llu entries for %d tokens", (unsigned long long)types.n, n);
        for (int32_t i = 0; i < n; i++) {
            int64_t t;
            if (icl_gguf_arr_int(&types, (uint64_t)i, &t, err)) return icl_err_prefix(err, "tokenizer.ggml.token_type: ");
            /* Types llama.cpp does not know count as undefined (treated like normal tokens). */
            tk->type[i] = (uint8_t)(t >= 0 && t <= ICL_TOKT_BYTE ? t : ICL_TOKT_UNDEFINED);
        }
    }
    return 0;
}

static int load_scores(icl_tokenizer *tk, const icl_gguf *g, icl_err *err) {
    icl_gguf_arr a;
    if (icl_gguf_find_key(g, "tokenizer.ggml.scores") < 0)
        return icl_errf(err, "tokenizer.ggml.scores missing (a SentencePiece vocabulary merges by score)");
    if (icl_gguf_get_arr(g, "tokenizer.ggml.scores", &a, err)) return -1;
    if (a.n != (uint64_t)tk->n_vocab)
        return icl_errf(err, "tokenizer.ggml.scores has %llu entries for %d tokens", (unsigned long long)a.n, tk->n_vocab);
    tk->score = malloc((size_t)tk->n_vocab * sizeof *tk->score);
    if (!tk->score) return icl_errf(err, "out of memory");
    if (icl_gguf_arr_to_f32(&a, tk->score, err)) return icl_err_prefix(err, "tokenizer.ggml.scores: ");
    return 0;
}

/* A merge "A B" parsed ahead of its turn: its text, the separator position, the hashes of A, B and
 * AB. s == NULL: unreadable; pos + 1 >= len: malformed (checked when its turn comes). */
typedef struct {
    const char *s;
    size_t len, pos;
    uint64_t h[3];
} merge_prep;

static void merge_prepare(const icl_tokenizer *tk, const icl_gguf_arr *a, uint64_t r, merge_prep *m) {
    uint64_t len;
    m->s = icl_gguf_arr_str(a, r, &len);
    if (!m->s) return;
    m->len = (size_t)len;
    /* "A B": the separator is the first space after the first byte (as llama.cpp splits it). */
    size_t pos = 1;
    while (pos < m->len && m->s[pos] != ' ') pos++;
    m->pos = pos;
    if (m->len < 3 || pos + 1 >= m->len) return;
    uint64_t ha = hash_step(HASH_START, m->s, pos);
    m->h[0] = hash_finish(ha);
    m->h[1] = str_hash(m->s + pos + 1, m->len - pos - 1);
    m->h[2] = hash_finish(hash_step(ha, m->s + pos + 1, m->len - pos - 1));
    for (int k = 0; k < 3; k++) __builtin_prefetch(&tk->hslot[m->h[k] & tk->hmask]);
}

static int load_merges(icl_tokenizer *tk, const icl_gguf *g, icl_err *err) {
    icl_gguf_arr a;
    if (icl_gguf_find_key(g, "tokenizer.ggml.merges") < 0)
        return icl_errf(err, "tokenizer.ggml.merges missing (a byte-level BPE vocabulary needs merges)");
    if (icl_gguf_get_arr(g, "tokenizer.ggml.merges", &a, err)) return -1;
    if (a.type != ICL_GGUF_STRING) return icl_errf(err, "tokenizer.ggml.merges is not an array of strings");
    if (a.n == 0) return icl_errf(err, "tokenizer.ggml.merges is empty (a byte-level BPE vocabulary needs merges)");
    if (a.n > INT32_MAX / 4) return icl_errf(err, "tokenizer.ggml.merges has too many entries");
    /* Two passes: the merges' pieces first (into a list in rank order), then the hash inserts, each
     * table line prefetched a few merges ahead: the table is far larger than the caches, and waiting
     * for each line in turn would dominate loading. */
    size_t cap = 64;
    while (cap < 2 * a.n) cap *= 2;
    icl_tok_merge *list = malloc(a.n * sizeof *list);
    tk->merge = malloc(cap * sizeof *tk->merge);
    if (!list || !tk->merge) {
        free(list);
        return icl_errf(err, "out of memory");
    }
    for (size_t i = 0; i < cap; i++) tk->merge[i].key = UINT64_MAX;
    tk->mmask = cap - 1;
    char *cat = NULL;
    size_t cat_cap = 0;
    int rc = -1;
    /* Merge r + AHEAD is parsed and hashed, and its three hash slots prefetched, while merge r is
     * looked up. */
    enum { AHEAD = 16 };
    merge_prep ring[AHEAD];
    uint64_t n_prep = a.n < AHEAD ? a.n : AHEAD;
    for (uint64_t r = 0; r < n_prep; r++) merge_prepare(tk, &a, r, &ring[r]);
    for (uint64_t r = 0; r < a.n; r++) {
        merge_prep m = ring[r % AHEAD];
        if (r + AHEAD < a.n) merge_prepare(tk, &a, r + AHEAD, &ring[r % AHEAD]);
        if (!m.s) {
            icl_errf(err, "tokenizer.ggml.merges[%llu] unreadable", (unsigned long long)r);
            goto done;
        }
        size_t len = m.len, pos = m.pos;
        const char *s = m.s;
        if (len < 3 || pos + 1 >= len) {
            icl_errf(err, "tokenizer.ggml.merges[%llu] '%.*s' is not two pieces separated by a space",
                     (unsigned long long)r, (int)(len < 64 ? len : 64), s);
            goto done;
        }
        if (icl_tok_grow((void **)&cat, &cat_cap, len, 1)) {
            icl_errf(err, "out of memory");
            goto done;
        }
        memcpy(cat, s, pos);
        memcpy(cat + pos, s + pos + 1, len - pos - 1);
        int32_t pa = piece_get_h(tk, s, pos, m.h[0]), pb = piece_get_h(tk, s + pos + 1, len - pos - 1, m.h[1]);
        int32_t pr = piece_get_h(tk, cat, len - 1, m.h[2]);
        if (pa < 0 || pb < 0 || pr < 0) {
            icl_errf(err, "out of memory");
            goto done;
        }
        list[r].key = (uint64_t)(uint32_t)pa << 32 | (uint32_t)pb;
        list[r].rank = (int32_t)r;
        list[r].res = pr;
    }
    for (uint64_t r = 0; r < a.n; r++) {
        if (r + AHEAD < a.n) __builtin_prefetch(&tk->merge[icl_tok_merge_slot(list[r + AHEAD].key, tk->mmask)], 1);
        uint64_t key = list[r].key;
        size_t i = icl_tok_merge_slot(key, tk->mmask);
        while (tk->merge[i].key != UINT64_MAX && tk->merge[i].key != key) i = (i + 1) & tk->mmask;
        if (tk->merge[i].key == UINT64_MAX) tk->merge[i] = list[r]; /* a repeated pair keeps its first (best) rank */
    }
    tk->n_merges = (int32_t)a.n;
    rc = 0;
done:
    free(cat);
    free(list);
    return rc;
}

typedef struct {
    uint8_t first;
    uint32_t len;
    int32_t id;
} spec_key;

static int spec_cmp(const void *pa, const void *pb) {
    const spec_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->id < b->id ? -1 : a->id > b->id;
}

static int load_specials(icl_tokenizer *tk, icl_err *err) {
    size_t n = 0;
    for (int32_t i = 0; i < tk->n_vocab; i++) {
        int t = tk->type[i];
        if ((t == ICL_TOKT_CONTROL || t == ICL_TOKT_UNKNOWN || t == ICL_TOKT_USER_DEFINED) && tk->piece[i].len > 0) n++;
    }
    spec_key *k = malloc((n ? n : 1) * sizeof *k);
    tk->spec = malloc((n ? n : 1) * sizeof *tk->spec);
    if (!k || !tk->spec) {
        free(k);
        return icl_errf(err, "out of memory");
    }
    n = 0;
    for (int32_t i = 0; i < tk->n_vocab; i++) {
        int t = tk->type[i];
        if ((t == ICL_TOKT_CONTROL || t == ICL_TOKT_UNKNOWN || t == ICL_TOKT_USER_DEFINED) && tk->piece[i].len > 0) {
            k[n].first = (uint8_t)tk->arena[tk->piece[i].off];
            k[n].len = tk->piece[i].len;
            k[n].id = i;
            n++;
            tk->n_user_defined += t == ICL_TOKT_USER_DEFINED;
        }
    }
    qsort(k, n, sizeof *k, spec_cmp);
    size_t j = 0;
    for (int b = 0; b < 256; b++) {
        tk->spec_first[b] = j;
        while (j < n && k[j].first == b) tk->spec[j] = k[j].id, j++;
    }
    tk->spec_first[256] = n;
    tk->n_spec = n;
    free(k);
    return 0;
}

static int load_bytes(icl_tokenizer *tk, icl_err *err) {
    for (int b = 0; b < 256; b++) {
        tk->byte_piece[b] = -1;
        tk->byte_token[b] = -1;
        if (tk->kind == ICL_TOK_BPE) {
            uint8_t u[4];
            size_t l = icl_utf8_put(tk->byte_cp[b], u);
            int32_t p = piece_get(tk, (const char *)u, l);
            if (p < 0) return icl_errf(err, "out of memory");
            tk->byte_piece[b] = p;
            if (p < tk->n_vocab) tk->byte_token[b] = p;
        } else {
            /* <0xNN>, else the byte itself as a token, else <unk> (llama.cpp's order). */
            char s[8];
            snprintf(s, sizeof s, "<0x%02X>", b);
            int32_t p = icl_tok_lookup(tk, s, 6);
            if (p < 0 || p >= tk->n_vocab) {
                s[0] = (char)b;
                p = icl_tok_lookup(tk, s, 1);
            }
            if (p < 0 || p >= tk->n_vocab) p = tk->unk;
            tk->byte_token[b] = p;
        }
    }
    return 0;
}

int icl_tokenizer_load(icl_tokenizer **out, const icl_gguf *g, icl_err *err) {
    *out = NULL;
    const char *model, *pre = NULL;
    if (icl_gguf_find_key(g, "tokenizer.ggml.model") < 0) return icl_errf(err, "no tokenizer: tokenizer.ggml.model missing");
    if (icl_gguf_get_str(g, "tokenizer.ggml.model", &model, err)) return -1;
    icl_tokenizer *tk = calloc(1, sizeof *tk);
    if (!tk) return icl_errf(err, "out of memory");
    if (!strcmp(model, "gpt2")) {
        tk->kind = ICL_TOK_BPE;
        if (icl_gguf_find_key(g, "tokenizer.ggml.pre") < 0) {
            icl_errf(err, "tokenizer.ggml.pre missing: a byte-level BPE vocabulary needs its pre-tokenizer "
                          "(supported: gpt2, llama-bpe, qwen2)");
            goto fail;
        }
        if (icl_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err)) goto fail;
        tk->pre = icl_pretok_from_name(pre);
        if (tk->pre == ICL_PRETOK_NONE) {
            icl_errf(err, "unsupported pre-tokenizer tokenizer.ggml.pre = '%.64s' (supported: gpt2, llama-bpe, qwen2)", pre);
            goto fail;
        }
        tk->ignore_merges = tk->pre == ICL_PRETOK_LLAMA3;
        tk->add_bos = tk->pre == ICL_PRETOK_LLAMA3;
        tk->bos = tk->eos = tk->unk = -1;
    } else if (!strcmp(model, "llama")) {
        tk->kind = ICL_TOK_SPM;
        tk->add_bos = 1;
        tk->add_space_prefix = 1;
        tk->bos = 1, tk->eos = 2, tk->unk = 0; /* SentencePiece's defaults, if the file names none */
    } else {
        icl_errf(err, "unsupported tokenizer model tokenizer.ggml.model = '%.64s' (supported: gpt2, llama)", model);
        goto fail;
    }
    icl_bpe_byte_map(tk->byte_cp, tk->cp_byte);
    if (load_vocab(tk, g, err)) goto fail;
    if (tk->kind == ICL_TOK_SPM) {
        if (tk->n_vocab < 3) tk->bos = tk->eos = tk->unk = -1;
        if (load_scores(tk, g, err)) goto fail;
    } else if (load_merges(tk, g, err)) {
        goto fail;
    }
    if (opt_id(g, "tokenizer.ggml.bos_token_id", tk->n_vocab, &tk->bos, err) ||
        opt_id(g, "tokenizer.ggml.eos_token_id", tk->n_vocab, &tk->eos, err) ||
        opt_id(g, "tokenizer.ggml.unknown_token_id", tk->n_vocab, &tk->unk, err) ||
        opt_bool(g, "tokenizer.ggml.add_bos_token", &tk->add_bos, err) ||
        opt_bool(g, "tokenizer.ggml.add_space_prefix", &tk->add_space_prefix, err))
        goto fail;
    if (tk->bos < 0) tk->add_bos = 0;
    if (load_bytes(tk, err) || load_specials(tk, err)) goto fail;
    *out = tk;
    return 0;
fail:
    icl_tokenizer_free(tk);
    return -1;
}

int icl_tokenizer_load_file(icl_tokenizer **tk, const char *path, icl_err *err) {
    *tk = NULL;
    icl_gguf *g;
    if (icl_gguf_open(&g, path, err)) return -1;
    int rc = icl_tokenizer_load(tk, g, err);
    icl_gguf_close(g);
    if (rc) icl_err_prefix(err, "%s: ", path);
    return rc;
}

/* ------------------------------------------------------------------ encode */

/* Special token matching at text[p..len): the longest token starting there, -1 if none. */
static int32_t match_special(const icl_tokenizer *tk, const uint8_t *text, size_t p, size_t len, int parse_special) {
    uint8_t b = text[p];
    for (size_t j = tk->spec_first[b]; j < tk->spec_first[b + 1]; j++) {
        int32_t id = tk->spec[j];
        if (!parse_special && tk->type[id] != ICL_TOKT_USER_DEFINED) continue;
        size_t l = tk->piece[id].len;
        if (l <= len - p && !memcmp(text + p, tk->arena + tk->piece[id].off, l)) return id;
    }
    return -1;
}

static int encode_fragment(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *text, size_t len,
                           int *prev_special, icl_tok_ivec *out, icl_err *err) {
    if (len == 0) return 0;
    int rc;
    if (tk->kind == ICL_TOK_BPE) {
        rc = icl_bpe_fragment(tk, sc, text, len, out, err);
    } else {
        /* Like llama.cpp: the space prefix goes at the start of the text and after each special token. */
        rc = icl_spm_fragment(tk, sc, text, len, tk->add_space_prefix && *prev_special, out, err);
    }
    *prev_special = 0;
    return rc;
}

int icl_tokenizer_encode(const icl_tokenizer *tk, const char *text, size_t len, int add_bos, int parse_special,
                         int32_t **ids, size_t *n, icl_err *err) {
    *ids = NULL;
    *n = 0;
    if (!text && len > 0) return icl_errf(err, "encode: NULL text");
    if (add_bos < 0) add_bos = tk->add_bos;
    if (add_bos && tk->bos < 0) return icl_errf(err, "encode: the vocabulary has no BOS token");
    icl_tok_ivec out = {0};
    icl_tok_scratch sc;
    memset(&sc, 0, sizeof sc);
    int rc = -1;
    if (add_bos && icl_tok_push(&out, tk->bos)) {
        icl_errf(err, "out of memory");
        goto done;
    }
    const uint8_t *t = (const uint8_t *)text;
    int prev_special = 1;
    size_t start = 0;
    if (parse_special ? tk->n_spec > 0 : tk->n_user_defined > 0) {
        for (size_t p = 0; p < len;) {
            int32_t id = match_special(tk, t, p, len, parse_special);
            if (id < 0) {
                p++;
                continue;
            }
            if (encode_fragment(tk, &sc, t + start, p - start, &prev_special, &out, err)) goto done;
            if (icl_tok_push(&out, id)) {
                icl_errf(err, "out of memory");
                goto done;
            }
            prev_special = 1;
            p += tk->piece[id].len;
            start = p;
        }
    }
    if (encode_fragment(tk, &sc, t + start, len - start, &prev_special, &out, err)) goto done;
    *ids = out.v;
    *n = out.n;
    out.v = NULL;
    rc = 0;
done:
    free(out.v);
    free(sc.cps), free(sc.cls), free(sc.offs), free(sc.ends), free(sc.syms), free(sc.heap), free(sc.buf);
    return rc;
}

/* ------------------------------------------------------------------ decode */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static int sb_put(sbuf *b, const void *p, size_t n) {
    if (icl_tok_grow((void **)&b->s, &b->cap, b->n + n + 1, 1)) return -1;
    memcpy(b->s + b->n, p, n);
    b->n += n;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Appends the text of one token. */
static int put_token(const icl_tokenizer *tk, int32_t id, sbuf *b) {
    const char *s = tk->arena + tk->piece[id].off;
    size_t len = tk->piece[id].len;
    int t = tk->type[id];
    if (t == ICL_TOKT_CONTROL || t == ICL_TOKT_UNKNOWN || t == ICL_TOKT_USER_DEFINED) return sb_put(b, s, len);
    if (t == ICL_TOKT_BYTE && len == 6 && !memcmp(s, "<0x", 3) && s[5] == '>' && hexval(s[3]) >= 0 && hexval(s[4]) >= 0) {
        char c = (char)(hexval(s[3]) * 16 + hexval(s[4]));
        return sb_put(b, &c, 1);
    }
    if (tk->kind == ICL_TOK_SPM) { /* U+2581 -> space */
        size_t i = 0, run = 0;
        while (i < len) {
            if (i + 3 <= len && !memcmp(s + i, "\xE2\x96\x81", 3)) {
                if (sb_put(b, s + run, i - run) || sb_put(b, " ", 1)) return -1;
                i += 3;
                run = i;
            } else {
                i++;
            }
        }
        return sb_put(b, s + run, len - run);
    }
    /* Byte-level BPE: each code point of the printable alphabet stands for one byte; anything else
     * (not produced by the encoder) is copied as it is. */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = icl_utf8_next((const uint8_t *)s + i, len - i, &cp);
        if (cp < 324 && tk->cp_byte[cp] >= 0) {
            char c = (char)tk->cp_byte[cp];
            if (sb_put(b, &c, 1)) return -1;
        } else if (sb_put(b, s + i, l)) {
            return -1;
        }
        i += l;
    }
    return 0;
}

int icl_tokenizer_decode_ex(const icl_tokenizer *tk, const int32_t *ids, size_t n, int flags, char **text,
                            size_t *len, icl_err *err) {
    *text = NULL;
    *len = 0;
    sbuf b = {0};
    if (sb_put(&b, "", 0)) return icl_errf(err, "out of memory");
    int strip = tk->kind == ICL_TOK_SPM && tk->add_space_prefix && !(flags & ICL_TOK_DECODE_KEEP_PREFIX_SPACE);
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tk->n_vocab) {
            free(b.s);
            return icl_errf(err, "decode: token id %d at position %zu is outside the vocabulary [0, %d)", id, i,
                            tk->n_vocab);
        }
        int t = tk->type[id];
        if ((flags & ICL_TOK_DECODE_SKIP_SPECIAL) && (t == ICL_TOKT_CONTROL || t == ICL_TOKT_UNKNOWN)) continue;
        size_t at = b.n;
        if (put_token(tk, id, &b)) {
            free(b.s);
            return icl_errf(err, "out of memory");
        }
        /* The first token written loses the space that encoding put in front (llama.cpp's rule). */
        if (strip) {
            if (b.n > at && b.s[at] == ' ') memmove(b.s + at, b.s + at + 1, --b.n - at);
            strip = 0;
        }
    }
    b.s[b.n] = 0;
    *text = b.s;
    *len = b.n;
    return 0;
}

int icl_tokenizer_decode(const icl_tokenizer *tk, const int32_t *ids, size_t n, char **text, size_t *len,
                         icl_err *err) {
    return icl_tokenizer_decode_ex(tk, ids, n, 0, text, len, err);
}

/* ------------------------------------------------------------------ accessors */

int icl_tokenizer_kind(const icl_tokenizer *tk) { return tk->kind; }
int icl_tokenizer_pretok(const icl_tokenizer *tk) { return tk->kind == ICL_TOK_BPE ? tk->pre : ICL_PRETOK_NONE; }
int32_t icl_tokenizer_n_vocab(const icl_tokenizer *tk) { return tk->n_vocab; }
int32_t icl_tokenizer_bos(const icl_tokenizer *tk) { return tk->bos; }
int32_t icl_tokenizer_eos(const icl_tokenizer *tk) { return tk->eos; }
int icl_tokenizer_add_bos_default(const icl_tokenizer *tk) { return tk->add_bos; }

const char *icl_tokenizer_token_text(const icl_tokenizer *tk, int32_t id, size_t *len) {
    if (id < 0 || id >= tk->n_vocab) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = tk->piece[id].len;
    return tk->arena + tk->piece[id].off;
}

int icl_tokenizer_token_type(const icl_tokenizer *tk, int32_t id) {
    return (id < 0 || id >= tk->n_vocab) ? -1 : tk->type[id];
}

int32_t icl_tokenizer_find(const icl_tokenizer *tk, const char *s, size_t len) {
    int32_t p = icl_tok_lookup(tk, s, len);
    return p < tk->n_vocab ? p : -1;
}
