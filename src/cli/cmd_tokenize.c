/* `iclab tokenize MODEL.gguf TEXT`: token ids of TEXT (without BOS), space-separated, as llama.cpp's
 * tokenizer tool prints them; `--decode` turns ids back into text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_tokenizer.h"

int cmd_tokenize(int argc, char **argv) {
    icl_err err;
    const char *model = NULL, *text = NULL;
    int decode = 0, bos = 0, special = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab tokenize MODEL.gguf TEXT [--bos] [--no-special]\n"
                   "       iclab tokenize MODEL.gguf --decode \"ID ID ...\"\n\n"
                   "Prints the token ids of TEXT (no BOS unless --bos; special tokens in the text are parsed unless\n"
                   "--no-special), separated by spaces; --decode prints the text of the given ids.\n");
            return 0;
        }
        if (!strcmp(a, "--decode")) decode = 1;
        else if (!strcmp(a, "--bos")) bos = 1;
        else if (!strcmp(a, "--no-special")) special = 0;
        else if (!strncmp(a, "--", 2)) {
            icl_errf(&err, "unknown option %s (see iclab tokenize --help)", a);
            return cli_fail("tokenize", &err);
        } else if (!model) model = a;
        else if (!text) text = a;
        else {
            icl_errf(&err, "unexpected argument '%s'", a);
            return cli_fail("tokenize", &err);
        }
    }
    if (!model || !text) {
        icl_errf(&err, "usage: iclab tokenize MODEL.gguf TEXT (or --decode \"IDS\")");
        return cli_fail("tokenize", &err);
    }
    icl_tokenizer *tk;
    if (icl_tokenizer_load_file(&tk, model, &err)) return cli_fail("tokenize", &err);
    int r = 0;
    if (decode) {
        size_t n = 0, cap = 16;
        int32_t *ids = malloc(sizeof(int32_t) * cap);
        for (const char *p = text; ids && *p;) {
            while (*p == ' ' || *p == ',' || *p == '\n' || *p == '\t') p++;
            if (!*p) break;
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p || v < -2147483647L || v > 2147483647L) {
                r = icl_errf(&err, "--decode: '%s' is not a list of token ids", text);
                break;
            }
            if (n == cap) {
                int32_t *ni = realloc(ids, sizeof(int32_t) * (cap *= 2));
                if (!ni) break;
                ids = ni;
            }
            ids[n++] = (int32_t)v;
            p = end;
        }
        char *out = NULL;
        size_t len = 0;
        if (!ids) r = icl_errf(&err, "out of memory");
        if (!r) r = icl_tokenizer_decode(tk, ids, n, &out, &len, &err);
        if (!r) {
            fwrite(out, 1, len, stdout);
            putchar('\n');
        }
        free(out);
        free(ids);
    } else {
        int32_t *ids = NULL;
        size_t n = 0;
        r = icl_tokenizer_encode(tk, text, strlen(text), bos, special, &ids, &n, &err);
        for (size_t i = 0; !r && i < n; i++) printf(i ? " %d" : "%d", ids[i]);
        if (!r) putchar('\n');
        free(ids);
    }
    icl_tokenizer_free(tk);
    return r ? cli_fail("tokenize", &err) : 0;
}
