/* Internals shared by the tokenizer's source files (src/text): the tokenizer structure, the
 * per-call scratch buffers, and the entry points of the BPE and SentencePiece encoders.
 *
 * Pieces: every string the encoders work with has a piece id. Ids 0..n_vocab-1 are the vocabulary's
 * tokens; byte-level BPE adds ids n_vocab.. for merge operands or results that are not tokens
 * themselves (rare; they let merges run on ids, and are spelled out as byte tokens at the end). */
#ifndef ICL_TOK_INTERNAL_H
#define ICL_TOK_INTERNAL_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "iclab/icl_err.h"
#include "iclab/icl_tokenizer.h"

typedef struct {
    uint32_t off, len;
} icl_tok_piece;

typedef struct {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    int32_t rank, res;
} icl_tok_merge;

struct icl_tokenizer {
    int kind; /* ICL_TOK_BPE / ICL_TOK_SPM */
    int pre;  /* ICL_PRETOK_*, BPE only */
    int32_t n_vocab, n_piece, cap_piece;
    char *arena; /* piece texts, back to back */
    size_t arena_len, arena_cap;
    icl_tok_piece *piece;            /* (cap_piece) where each piece's text lies in arena */
    uint8_t *type;                   /* (n_vocab) enum icl_tok_type */
    float *score;                    /* (n_vocab) SentencePiece scores, NULL for BPE */
    /* Open-addressing hash: piece text -> piece id. A slot holds (hash >> 32) << 32 | id, so that
     * most non-matching slots are passed over without touching the piece's text; UINT64_MAX = empty. */
    uint64_t *hslot;
    size_t hmask;
    /* BPE merges: open-addressing hash of (left piece, right piece) -> rank and result; one entry
     * per cache access (the table is large: two entries per merge). */
    icl_tok_merge *merge;
    size_t mmask;
    int32_t n_merges;
    int ignore_merges;            /* Llama-3: a whole word found in the vocabulary is one token */
    uint32_t byte_cp[256];        /* GPT-2's byte -> printable code point */
    int16_t cp_byte[324];         /* its inverse (-1 where none) */
    int32_t byte_piece[256];      /* BPE: piece of each byte's code point */
    int32_t byte_token[256];      /* token a raw byte falls back to, -1 if none */
    /* Tokens matched whole in the input (control, unknown, user-defined), sorted by first byte,
     * then longest first; spec_first[b] .. spec_first[b+1] start with byte b. */
    int32_t *spec;
    size_t n_spec, n_user_defined;
    size_t spec_first[257];
    int32_t bos, eos, unk;
    int add_bos, add_space_prefix;
};

/* Growable id list. */
typedef struct icl_tok_ivec {
    int32_t *v;
    size_t n, cap;
} icl_tok_ivec;

/* Scratch of one encode call (the tokenizer itself stays read-only). */
typedef struct icl_tok_scratch {
    uint32_t *cps; /* code points of the current fragment's units */
    uint8_t *cls;  /* their classes */
    size_t *offs;  /* byte offset of each unit, plus the end */
    size_t *ends;  /* word ends (unit indices) */
    size_t cap_units;
    void *syms;
    size_t cap_syms;
    void *heap;
    size_t cap_heap;
    char *buf;
    size_t cap_buf;
} icl_tok_scratch;

/* Makes *p hold at least `need` elements of `elem` bytes (grows by doubling); 0 or -1 (OOM). */
int icl_tok_grow(void **p, size_t *cap, size_t need, size_t elem);
int icl_tok_push(icl_tok_ivec *v, int32_t id);
/* Piece whose text is s[0..len), -1 if none. */
int32_t icl_tok_lookup(const icl_tokenizer *tk, const char *s, size_t len);
/* Vocabulary token with that text that merging may produce (type undefined, normal or
 * user-defined), -1 if none. */
int32_t icl_tok_lookup_token(const icl_tokenizer *tk, const char *s, size_t len);
/* Home slot of a merge key (Fibonacci hashing: the top bits of the product are the best mixed). */
static inline size_t icl_tok_merge_slot(uint64_t key, size_t mask) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}
static inline int icl_tok_mergeable(int type) {
    return type == ICL_TOKT_NORMAL || type == ICL_TOKT_UNDEFINED || type == ICL_TOKT_USER_DEFINED;
}

/* Decodes text[0..len) into sc->cps/cls/offs; returns the unit count or (size_t)-1 on OOM. */
size_t icl_tok_units(icl_tok_scratch *sc, const uint8_t *text, size_t len);

/* GPT-2's byte <-> printable code point tables. */
void icl_bpe_byte_map(uint32_t byte_cp[256], int16_t cp_byte[324]);
/* Splits n units into words by pre-tokenizer pre, writing each word's end unit index to ends (room
 * for n); returns the number of words. */
size_t icl_pretok_words(int pre, const uint32_t *cps, const uint8_t *cls, size_t n, size_t *ends);
/* Appends the tokens of a raw-text fragment (no special tokens in it). */
int icl_bpe_fragment(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *text, size_t len,
                     icl_tok_ivec *out, icl_err *err);
/* A binary heap of merge candidates shared by both merge loops: elements of `size` bytes (at most
 * 64), ordered by `before` (the first to pop is the one before all others). */
static inline void icl_tok_heap_push(void *heap, size_t *n, const void *elem, size_t size,
                                     int (*before)(const void *, const void *)) {
    unsigned char *h = heap;
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!before(elem, h + p * size)) break;
        memcpy(h + i * size, h + p * size, size);
        i = p;
    }
    memcpy(h + i * size, elem, size);
}

static inline void icl_tok_heap_pop(void *heap, size_t *n, void *top, size_t size,
                                    int (*before)(const void *, const void *)) {
    unsigned char *h = heap, last[64];
    memcpy(top, h, size);
    memcpy(last, h + --(*n) * size, size);
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && before(h + (c + 1) * size, h + c * size)) c++;
        if (!before(h + c * size, last)) break;
        memcpy(h + i * size, h + c * size, size);
        i = c;
    }
    if (m > 0) memcpy(h + i * size, last, size);
}

/* Same for SentencePiece; space_prefix puts U+2581 in front. */
int icl_spm_fragment(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *text, size_t len,
                     int space_prefix, icl_tok_ivec *out, icl_err *err);

#endif
