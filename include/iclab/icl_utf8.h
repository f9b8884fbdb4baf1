/* UTF-8 validation shared by the text outputs (figures, reports). */
#ifndef ICL_UTF8_H
#define ICL_UTF8_H

/* Length (1..4) of the valid UTF-8 sequence starting at s, or 0 if the bytes there are not valid
 * UTF-8 (overlong forms, surrogates and code points past U+10FFFF included). Reads past s[0] only
 * while the bytes are continuation bytes, so a NUL-terminated string is never over-read. */
int icl_utf8_len(const unsigned char *s);

#endif
