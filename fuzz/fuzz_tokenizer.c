/* libFuzzer target for tokenizer input: any bytes (invalid UTF-8 and NULs included) are encoded
 * with one of the reference vocabularies (GPT-2 and Llama-3 byte-level BPE, Llama-2 SentencePiece;
 * the first byte picks the vocabulary and whether control tokens are parsed) and decoded again:
 * encoding never fails, every id is in range, and without special-token parsing
 * decode(encode(s)) == s (icl_tokenizer.h; for SentencePiece, inputs without U+2581). Needs the unpacked vocabularies: $ICLAB_VOCAB_DIR,
 * default build/vocab (make test unpacks them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_tokenizer.h"

static icl_tokenizer *tk[3];

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    static const char *names[3] = {"gpt-2", "llama-bpe", "llama-spm"};
    const char *dir = getenv("ICLAB_VOCAB_DIR");
    if (!dir || !*dir) dir = "build/vocab";
    for (int i = 0; i < 3; i++) {
        char path[1024];
        icl_err err;
        snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, names[i]);
        if (icl_tokenizer_load_file(&tk[i], path, &err)) {
            fprintf(stderr, "fuzz_tokenizer: %s (set ICLAB_VOCAB_DIR; make test unpacks the vocabularies)\n", err.msg);
            exit(1);
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const icl_tokenizer *t = tk[data[0] % 3];
    int special = (data[0] >> 2) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    int32_t *ids = NULL;
    size_t n = 0;
    icl_err err;
    if (icl_tokenizer_encode(t, text, len, 0, special, &ids, &n, &err) != 0) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        abort();
    }
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= icl_tokenizer_n_vocab(t)) abort();
    char *out = NULL;
    size_t out_len = 0;
    if (icl_tokenizer_decode(t, ids, n, &out, &out_len, &err) != 0) {
        fprintf(stderr, "decode failed: %s\n", err.msg);
        abort();
    }
    /* SentencePiece writes spaces as U+2581 and decodes U+2581 as a space: a U+2581 of the input
     * comes back as a space (as in SentencePiece and llama.cpp), so such inputs are not compared */
    int lossy = icl_tokenizer_kind(t) == ICL_TOK_SPM && memmem(text, len, "\xe2\x96\x81", 3);
    if (!special && !lossy && (out_len != len || memcmp(out, text, len))) {
        fprintf(stderr, "round trip: %zu bytes in, %zu out\n", len, out_len);
        abort();
    }
    free(ids);
    free(out);
    return 0;
}
