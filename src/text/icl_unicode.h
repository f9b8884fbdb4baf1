/* UTF-8 decoding that never fails and the code point classes the BPE pre-tokenizers need
 * (internal to src/text). Invalid UTF-8 is not an error anywhere in the tokenizer: each byte that
 * does not start a well-formed sequence (stray continuation bytes, overlong forms, surrogates, code
 * points above U+10FFFF, truncated sequences) becomes a unit of its own, so every input has a
 * tokenization and byte-level tokenizers still round-trip it exactly. */
#ifndef ICL_UNICODE_H
#define ICL_UNICODE_H
#include <stddef.h>
#include <stdint.h>

/* Classes of \p{L}, \p{N}, \s (the White_Space property) and everything else ([^\s\p{L}\p{N}]). */
enum { ICL_UC_OTHER = 0, ICL_UC_LETTER = 1, ICL_UC_NUMBER = 2, ICL_UC_SPACE = 3 };

/* An invalid byte b decodes to ICL_UC_INVALID_BASE + b: outside Unicode, class OTHER (as the
 * replacement character U+FFFD that llama.cpp substitutes would be). */
#define ICL_UC_INVALID_BASE 0x110000u

/* Generated table (icl_unicode_tables.c). */
extern const char icl_ucd_version[];
extern const size_t icl_ucd_n_ranges;
extern const uint32_t icl_ucd_ranges[];

/* Decodes the unit starting at s[0] (n >= 1 bytes available): returns its length in bytes (1..4)
 * and stores the code point (or ICL_UC_INVALID_BASE + byte for an invalid byte) in *cp. */
size_t icl_utf8_next(const uint8_t *s, size_t n, uint32_t *cp);

/* Encodes a code point (< 0x110000) as UTF-8 into out (4 bytes of room); returns the length. */
size_t icl_utf8_put(uint32_t cp, uint8_t *out);

/* Class of a code point (ICL_UC_*); anything outside Unicode is OTHER. */
int icl_uc_class(uint32_t cp);

#endif
