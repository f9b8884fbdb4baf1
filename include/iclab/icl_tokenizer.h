/* Tokenizers of pretrained LLMs, built from the `tokenizer.ggml.*` metadata of a GGUF file, giving
 * the same token ids as llama.cpp (and the Hugging Face tokenizers it mirrors).
 *
 * Two kinds (tokenizer.ggml.model):
 *   "gpt2"  byte-level BPE (GPT-2, Llama-3, Qwen2): the text is split into words by a pre-tokenizer
 *           chosen by tokenizer.ggml.pre ("gpt2"/"gpt-2": GPT-2's regex; "llama-bpe"/"llama3"/
 *           "llama-v3": Llama-3's, digits in groups of up to 3; "qwen2": Llama-3's with single
 *           digits), each word's bytes are mapped to GPT-2's printable byte alphabet and merged by
 *           tokenizer.ggml.merges (lower index = higher priority). Llama-3 first looks the whole word
 *           up in the vocabulary (its "ignore_merges").
 *   "llama" SentencePiece BPE with scores (Llama-2, TinyLlama, Gemma-style): a space is put in front
 *           (tokenizer.ggml.add_space_prefix, default true), spaces become U+2581, and adjacent
 *           pieces are merged, best tokenizer.ggml.scores first; characters not in the vocabulary
 *           fall back to the byte tokens <0xNN>.
 * Token types (tokenizer.ggml.token_type): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
 * 6 byte; a file without types has all normal. Only normal (and type 0 / user-defined) tokens come
 * out of the merges: control, unknown, unused and byte tokens never do, so "<s>" in plain text is
 * not BOS (as in SentencePiece and Hugging Face).
 * Special tokens in the input: user-defined tokens are always matched as whole tokens, control and
 * unknown tokens only when encoding with parse_special (as llama.cpp does); the leftmost match wins,
 * the longest among those starting at the same byte (as Hugging Face's added-token matcher).
 * Invalid UTF-8 never fails: each invalid byte is a character of its own (a symbol, for the
 * pre-tokenizers), and byte-level BPE keeps the raw byte, so decode(encode(s)) == s for any bytes.
 * A loaded tokenizer is read-only: several threads may encode and decode with it at once. */
#ifndef ICL_TOKENIZER_H
#define ICL_TOKENIZER_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_gguf.h"

typedef struct icl_tokenizer icl_tokenizer;

enum icl_tok_kind { ICL_TOK_BPE = 1, ICL_TOK_SPM = 2 };

/* Pre-tokenizers of byte-level BPE. */
enum icl_pretok { ICL_PRETOK_NONE = 0, ICL_PRETOK_GPT2 = 1, ICL_PRETOK_LLAMA3 = 2, ICL_PRETOK_QWEN2 = 3 };

/* Token types as stored in tokenizer.ggml.token_type. */
enum icl_tok_type {
    ICL_TOKT_UNDEFINED = 0,
    ICL_TOKT_NORMAL = 1,
    ICL_TOKT_UNKNOWN = 2,
    ICL_TOKT_CONTROL = 3,
    ICL_TOKT_USER_DEFINED = 4,
    ICL_TOKT_UNUSED = 5,
    ICL_TOKT_BYTE = 6
};

/* Builds a tokenizer from g's tokenizer.ggml.* metadata (everything needed is copied: g may be
 * closed afterwards). Fails with a clear message for an unsupported model or pre-tokenizer, a BPE
 * vocabulary without merges, a malformed merge, missing or mismatched arrays (tokens, scores,
 * token_type), BOS/EOS ids out of range. On failure *tk is NULL. */
int icl_tokenizer_load(icl_tokenizer **tk, const icl_gguf *g, icl_err *err);
/* Opens path, loads its tokenizer and closes it. */
int icl_tokenizer_load_file(icl_tokenizer **tk, const char *path, icl_err *err);
void icl_tokenizer_free(icl_tokenizer *tk);

/* Encodes len bytes of text (any bytes; NULs included) into *ids (malloc'd, free() it; may be NULL
 * when *n == 0). add_bos: 1 puts BOS first (an error if the vocabulary has none), 0 does not, -1
 * follows the file's tokenizer.ggml.add_bos_token (default: true for "llama" and Llama-3, false for
 * GPT-2 and Qwen2). EOS is never added. parse_special: match control tokens' texts (e.g.
 * "<|begin_of_text|>") in the input. Fails only on allocation failure or when a byte has no token
 * to fall back to (a broken vocabulary). */
int icl_tokenizer_encode(const icl_tokenizer *tk, const char *text, size_t len, int add_bos, int parse_special,
                         int32_t **ids, size_t *n, icl_err *err);

/* Flags of icl_tokenizer_decode_ex. */
enum {
    /* Leave out control and unknown tokens (BOS, EOS, <unk>, ...) instead of writing their text. */
    ICL_TOK_DECODE_SKIP_SPECIAL = 1,
    /* SentencePiece: keep the space that encoding put in front (by default it is removed from the
     * first token written, so decode(encode(s)) == s). Use it to decode a piece of a longer stream. */
    ICL_TOK_DECODE_KEEP_PREFIX_SPACE = 2
};

/* Decodes n ids into *text (malloc'd, NUL-terminated, free() it; *len excludes the NUL, and the text
 * may hold NUL bytes from byte tokens). Byte-level BPE tokens map back to their bytes, SentencePiece
 * U+2581 to spaces and <0xNN> to bytes; control, unknown and user-defined tokens give their text.
 * The bytes need not be valid UTF-8 (a token may end inside a character). Fails on an id outside
 * [0, n_vocab). icl_tokenizer_decode is icl_tokenizer_decode_ex with flags 0. */
int icl_tokenizer_decode(const icl_tokenizer *tk, const int32_t *ids, size_t n, char **text, size_t *len,
                         icl_err *err);
int icl_tokenizer_decode_ex(const icl_tokenizer *tk, const int32_t *ids, size_t n, int flags, char **text,
                            size_t *len, icl_err *err);

/* -- accessors -- */
int icl_tokenizer_kind(const icl_tokenizer *tk);     /* ICL_TOK_BPE or ICL_TOK_SPM */
int icl_tokenizer_pretok(const icl_tokenizer *tk);   /* enum icl_pretok; NONE for SentencePiece */
int32_t icl_tokenizer_n_vocab(const icl_tokenizer *tk);
int32_t icl_tokenizer_bos(const icl_tokenizer *tk);  /* -1 when there is none */
int32_t icl_tokenizer_eos(const icl_tokenizer *tk);  /* -1 when there is none */
int icl_tokenizer_add_bos_default(const icl_tokenizer *tk);
/* The stored text of token id (not decoded: byte-level or U+2581 form), its byte count in *len;
 * NULL when id is out of range. Valid while tk lives; not NUL-terminated. */
const char *icl_tokenizer_token_text(const icl_tokenizer *tk, int32_t id, size_t *len);
/* Token type (enum icl_tok_type) of id, -1 when out of range. */
int icl_tokenizer_token_type(const icl_tokenizer *tk, int32_t id);
/* Id of the token whose stored text is exactly s[0..len), -1 if none. */
int32_t icl_tokenizer_find(const icl_tokenizer *tk, const char *s, size_t len);

/* -- pre-tokenizer, exposed for tests and diagnostics -- */
/* Pre-tokenizer for a tokenizer.ggml.pre name, ICL_PRETOK_NONE if unknown. */
int icl_pretok_from_name(const char *name);
/* Splits len bytes of text into the words of pre-tokenizer `pre` (GPT2, LLAMA3 or QWEN2): *ends
 * (malloc'd, free() it) receives the end byte offset of each of the *n words, in order; the last is
 * len. Empty text gives *n == 0. */
int icl_pretok_split(int pre, const char *text, size_t len, size_t **ends, size_t *n, icl_err *err);

#endif
