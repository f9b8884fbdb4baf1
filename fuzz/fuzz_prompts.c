/* libFuzzer target for the prompt files of `iclab capture` (icl_prompts_parse): any bytes give
 * prompts or a clear error. Accepted prompts are NUL-free, non-empty lines, all labelled or none.
 * Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_prompts.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    icl_prompts p;
    icl_err err;
    if (icl_prompts_parse(&p, (const char *)data, size, "fuzz", &err) != 0) {
        if (!err.msg[0] || p.n || p.own) abort();
        return 0;
    }
    if (p.n < 1) abort();
    for (int i = 0; i < p.n; i++) {
        if (!p.text[i] || (p.label[i] == NULL) != (p.label[0] == NULL)) abort();
        size_t l = strlen(p.text[i]);
        if (l > size) abort();
        sink += l + (p.label[i] ? strlen(p.label[i]) : 0);
    }
    icl_prompts_free(&p);
    return 0;
}
