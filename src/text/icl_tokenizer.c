/* Tokenizer construction from GGUF metadata, the vocabulary and merge tables, special-token
 * matching, and the encode / decode entry points (the merge algorithms are in icl_bpe.c and
 * icl_spm.c). */
#include "iclab/icl_tokenizer.h"
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

/* FNV-1a, then a final mix so that the low bits (the slot) depend on every byte. */
static uint64_t str_hash(const char *s, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static int piece_is(const icl_tokenizer *tk, int32_t p, const char *s, size_t len) {
    return tk->piece_len[p] == len && !memcmp(tk->arena + tk->piece_off[p], s, len);
}

int32_t icl_tok_lookup(const icl_tokenizer *tk, const char *s, size_t len) {
    size_t i = (size_t)str_hash(s, len) & tk->hmask;
    for (int32_t p; (p = tk->hslot[i]) >= 0; i = (i + 1) & tk->hmask)
        if (piece_is(tk, p, s, len)) return p;
    return -1;
}

int32_t icl_tok_lookup_token(const icl_tokenizer *tk, const char *s, size_t len) {
    int32_t p = icl_tok_lookup(tk, s, len);
    return (p >= 0 && p < tk->n_vocab && icl_tok_mergeable(tk->type[p])) ? p : -1;
}

/* Puts piece p into the hash (a later piece with the same text replaces an earlier one, as in
 * llama.cpp's token_to_id map), doubling the table when it is half full. */
static int hash_insert(icl_tokenizer *tk, int32_t p) {
    if ((size_t)tk->n_piece * 2 > tk->hmask + 1) {
        size_t cap = (tk->hmask + 1) * 2;
        int32_t *slot = malloc(cap * sizeof *slot);
        if (!slot) return -1;
        memset(slot, 0xff, cap * sizeof *slot);
        for (size_t i = 0; i <= tk->hmask; i++) {
            int32_t q = tk->hslot[i];
            if (q < 0) continue;
            size_t j = (size_t)str_hash(tk->arena + tk->piece_off[q], tk->piece_len[q]) & (cap - 1);
            while (slot[j] >= 0) j = (j + 1) & (cap - 1);
            slot[j] = q;
        }
        free(tk->hslot);
        tk->hslot = slot;
        tk->hmask = cap - 1;
    }
    const char *s = tk->arena + tk->piece_off[p];
    size_t len = tk->piece_len[p];
    size_t i = (size_t)str_hash(s, len) & tk->hmask;
    for (int32_t q; (q = tk->hslot[i]) >= 0; i = (i + 1) & tk->hmask) {
        if (piece_is(tk, q, s, len)) {
            tk->hslot[i] = p;
            return 0;
        }
    }
    tk->hslot[i] = p;
    return 0;
}

/* Appends a piece with text s[0..len) (not yet in the hash) and returns its id, -1 on OOM. */
static int32_t piece_add(icl_tokenizer *tk, const char *s, size_t len) {
    if (tk->n_piece == INT32_MAX || len > UINT32_MAX || tk->arena_len + len > UINT32_MAX) return -1;
    if (icl_tok_grow((void **)&tk->arena, &tk->arena_cap, tk->arena_len + len + 1, 1)) return -1;
    if (tk->n_piece == tk->cap_piece) {
        size_t cap = (size_t)tk->cap_piece;
        size_t cap2 = cap;
        if (icl_tok_grow((void **)&tk->piece_off, &cap, cap + 1, sizeof *tk->piece_off)) return -1;
        if (icl_tok_grow((void **)&tk->piece_len, &cap2, cap2 + 1, sizeof *tk->piece_len)) return -1;
        if (cap > INT32_MAX) cap = INT32_MAX;
        tk->cap_piece = (int32_t)cap;
    }
    int32_t p = tk->n_piece++;
    if (len) memcpy(tk->arena + tk->arena_len, s, len);
    tk->piece_off[p] = (uint32_t)tk->arena_len;
    tk->piece_len[p] = (uint32_t)len;
    tk->arena_len += len;
    if (hash_insert(tk, p)) return -1;
    return p;
}

static int32_t piece_get(icl_tokenizer *tk, const char *s, size_t len) {
    int32_t p = icl_tok_lookup(tk, s, len);
    return p >= 0 ? p : piece_add(tk, s, len);
}

void icl_tokenizer_free(icl_tokenizer *tk) {
    if (!tk) return;
    free(tk->arena), free(tk->piece_off), free(tk->piece_len), free(tk->type), free(tk->score);
    free(tk->hslot), free(tk->mkey), free(tk->mrank), free(tk->mres), free(tk->spec);
    free(tk);
}
