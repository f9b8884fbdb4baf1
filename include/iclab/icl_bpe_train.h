/* Byte-level BPE training (GPT-2 style) and the GGUF tokenizer metadata that llama.cpp and
 * icl_tokenizer load.
 *
 * Training:
 *   1. The text is cut at every occurrence of a special token's text ("<|endoftext|>"): special
 *      tokens are never part of a merge.
 *   2. Each piece is split into words by the pre-tokenizer (icl_pretok_split; GPT-2's by default),
 *      and the distinct words are counted.
 *   3. Every word starts as its bytes. The 256 byte tokens come first, in GPT-2's order (the
 *      printable bytes ! .. ~, ¡ .. ¬, ® .. ÿ, then the other 68 in byte order), so id i < 256 is the
 *      i-th code point of GPT-2's byte alphabet.
 *   4. Repeatedly, the adjacent pair of tokens with the highest count (summed over the words'
 *      occurrences, each word weighted by its count; overlapping occurrences such as "a a a" count
 *      twice, as in GPT-2's and Hugging Face's trainers) is merged everywhere, left to right. Ties go
 *      to the pair whose left token's bytes are lexicographically smallest, then the right token's
 *      (bytes compared as unsigned, a prefix before its extensions). A merge whose result already
 *      exists (the same bytes reached by another pair) reuses that token. This stops when the
 *      vocabulary (byte tokens + merge results + special tokens) reaches the requested size.
 *      Pair counts are kept in a hash table with, per pair, the words it occurs in, and updated
 *      incrementally at each merge; a heap with lazy deletion gives the best pair.
 *   5. The special tokens are appended last (type control).
 *
 * The GGUF metadata: tokenizer.ggml.model "gpt2", tokenizer.ggml.pre "gpt-2" (the name llama.cpp
 * knows for GPT-2's pre-tokenizer; icl_tokenizer also accepts "gpt2"), tokens (GPT-2's printable
 * byte alphabet, as in GPT-2's vocabulary), token_type (1 normal, 3 control), merges ("A B", rank =
 * index), bos/eos ids (the first special token) and add_bos_token (true: every text starts with the
 * end-of-text token, as each document of an icl_lmcorpus does). */
#ifndef ICL_BPE_TRAIN_H
#define ICL_BPE_TRAIN_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_gguf.h"

#define ICL_BPE_EOS_TEXT "<|endoftext|>"

typedef struct icl_bpe_train_opts {
    int32_t vocab_size;          /* the whole vocabulary: 256 bytes + merges' new tokens + specials */
    const char *const *specials; /* special tokens' texts (the first is BOS/EOS); NULL: {"<|endoftext|>"} */
    int n_specials;              /* entries of specials (ignored when specials is NULL) */
    int pre;                     /* enum icl_pretok; 0 (NONE) means GPT-2's */
    int add_bos;                 /* tokenizer.ggml.add_bos_token; default 1 */
} icl_bpe_train_opts;

/* vocab_size 4096, <|endoftext|>, GPT-2 pre-tokenizer, add_bos 1. */
void icl_bpe_train_opts_default(icl_bpe_train_opts *o);

/* A trained vocabulary. Token texts are stored in GPT-2's byte alphabet (the form of
 * tokenizer.ggml.tokens), special tokens as their plain text. */
typedef struct icl_bpe_vocab {
    int32_t n_tokens;
    char **tokens;      /* (n_tokens) NUL-terminated */
    uint8_t *types;     /* (n_tokens) enum icl_tok_type: NORMAL or CONTROL */
    int32_t n_merges;
    char **merges;      /* (n_merges) "A B" in rank order */
    int32_t eos, bos;   /* the first special token's id */
    int pre;            /* the pre-tokenizer trained with */
    int add_bos;
    /* statistics of the training text */
    uint64_t n_words;          /* pre-tokenizer words (occurrences) */
    uint64_t n_distinct_words;
    uint64_t n_specials_seen;  /* special-token occurrences cut out of the text */
} icl_bpe_vocab;

/* Trains on len bytes of text (any bytes). Errors: no text outside the special tokens ("empty
 * text"), vocab_size below 256 + the specials, a vocabulary size the text cannot reach (the pairs
 * run out before it: the message gives the largest reachable size), an empty or repeated special
 * token. */
int icl_bpe_train(icl_bpe_vocab *v, const char *text, size_t len, const icl_bpe_train_opts *o, icl_err *err);
void icl_bpe_vocab_free(icl_bpe_vocab *v);

/* Adds the tokenizer.ggml.* keys above to w. */
int icl_bpe_vocab_to_gguf(const icl_bpe_vocab *v, icl_gguf_writer *w, icl_err *err);
/* Writes a GGUF holding general.name and the tokenizer metadata only (no tensors), atomically: usable
 * as `iclab mkmodel --vocab` and by icl_tokenizer_load_file. */
int icl_bpe_vocab_write(const icl_bpe_vocab *v, const char *path, icl_err *err);

#endif
