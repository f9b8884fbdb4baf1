/* SentencePiece BPE with scores (Llama-2 and kin), as llama.cpp's llm_tokenizer_spm does it: the
 * fragment's characters start as symbols; repeatedly the adjacent pair whose concatenation is a
 * vocabulary token with the highest score (leftmost among equals) is merged; a final symbol that is
 * not a token (a character missing from the vocabulary) is written as byte tokens <0xNN>. */
#include <stdlib.h>
#include <string.h>
#include "icl_tok_internal.h"
#include "icl_unicode.h"

typedef struct {
    int32_t prev, next;
    uint32_t off, len; /* bytes of the escaped text; len == 0 once merged into the left neighbour */
} spm_sym;

typedef struct {
    float score;
    int32_t left, right;
    uint32_t size; /* bytes of the merged piece: a stale candidate no longer adds up to it */
} spm_cand;

static int cand_before(const void *pa, const void *pb) {
    const spm_cand *a = pa, *b = pb;
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void try_pair(const icl_tokenizer *tk, const char *buf, const spm_sym *s, int32_t l, int32_t r, spm_cand *h,
                     size_t *nh) {
    if (l < 0 || r < 0) return;
    uint32_t size = s[l].len + s[r].len;
    int32_t id = icl_tok_lookup_token(tk, buf + s[l].off, size);
    if (id < 0) return;
    spm_cand c = {tk->score[id], l, r, size};
    icl_tok_heap_push(h, nh, &c, sizeof c, cand_before);
}

int icl_spm_fragment(const icl_tokenizer *tk, icl_tok_scratch *sc, const uint8_t *text, size_t len,
                     int space_prefix, icl_tok_ivec *out, icl_err *err) {
    /* Escape: every space becomes U+2581 (3 bytes), after an optional leading one. */
    size_t nsp = space_prefix ? 1 : 0;
    for (size_t i = 0; i < len; i++) nsp += text[i] == ' ';
    size_t m = len + 2 * nsp + (space_prefix ? 1 : 0);
    if (m > UINT32_MAX / 2) return icl_errf(err, "text of %zu bytes is too long", len);
    if (icl_tok_grow((void **)&sc->buf, &sc->cap_buf, m, 1)) return icl_errf(err, "out of memory");
    char *buf = sc->buf;
    size_t k = 0;
    if (space_prefix) memcpy(buf, "\xE2\x96\x81", 3), k = 3;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ')
            memcpy(buf + k, "\xE2\x96\x81", 3), k += 3;
        else
            buf[k++] = (char)text[i];
    }
    if (k == 0) return 0;
    if (icl_tok_grow(&sc->syms, &sc->cap_syms, k, sizeof(spm_sym)) ||
        icl_tok_grow(&sc->heap, &sc->cap_heap, k, sizeof(spm_cand)))
        return icl_errf(err, "out of memory");
    spm_sym *s = sc->syms;
    spm_cand *h = sc->heap;
    size_t ns = 0, nh = 0;
    for (size_t off = 0; off < k;) {
        uint32_t cp;
        size_t l = icl_utf8_next((const uint8_t *)buf + off, k - off, &cp);
        s[ns].prev = (int32_t)ns - 1;
        s[ns].next = -1;
        if (ns > 0) s[ns - 1].next = (int32_t)ns;
        s[ns].off = (uint32_t)off;
        s[ns].len = (uint32_t)l;
        ns++;
        off += l;
    }
    for (size_t i = 0; i + 1 < ns; i++) try_pair(tk, buf, s, (int32_t)i, (int32_t)i + 1, h, &nh);
    while (nh > 0) {
        spm_cand c;
        icl_tok_heap_pop(h, &nh, &c, sizeof c, cand_before);
        spm_sym *l = &s[c.left], *r = &s[c.right];
        if (l->len == 0 || r->len == 0 || l->next != c.right || l->len + r->len != c.size) continue;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) s[r->next].prev = c.left;
        if (icl_tok_grow(&sc->heap, &sc->cap_heap, nh + 2, sizeof(spm_cand))) return icl_errf(err, "out of memory");
        h = sc->heap;
        try_pair(tk, buf, s, l->prev, c.left, h, &nh);
        try_pair(tk, buf, s, c.left, l->next, h, &nh);
    }
    for (int32_t i = 0; i >= 0; i = s[i].next) {
        int32_t id = icl_tok_lookup_token(tk, buf + s[i].off, s[i].len);
        if (id >= 0) {
            if (icl_tok_push(out, id)) return icl_errf(err, "out of memory");
            continue;
        }
        for (uint32_t j = 0; j < s[i].len; j++) {
            uint8_t b = (uint8_t)buf[s[i].off + j];
            if (tk->byte_token[b] < 0) return icl_errf(err, "byte 0x%02X has no token in the vocabulary", b);
            if (icl_tok_push(out, tk->byte_token[b])) return icl_errf(err, "out of memory");
        }
    }
    return 0;
}
