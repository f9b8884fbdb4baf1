/* libFuzzer target for checkpoints (GGUF files of architecture iclab-regression): each input is
 * written to a temporary file and read with icl_ckpt_peek and icl_ckpt_load, which check the
 * iclab.* config fields, the step, the RNG state, every tensor's type and shape against the config
 * and the checksum. A checkpoint that loads must give a model whose config validates and whose
 * step agrees with icl_ckpt_peek. Seed with a small checkpoint (fuzz/README.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_ckpt.h"
#include "fuzz_tmpfile.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_write(data, size, ".gguf");
    icl_train_config c, c2;
    icl_err err;
    int64_t step = -1;
    int peek = icl_ckpt_peek(path, &c, &step, &err);
    if (peek == 0 && icl_train_config_validate(&c, &err) != 0) abort();
    icl_model m;
    icl_ckpt_state st;
    if (icl_ckpt_load(path, &m, &c2, &st, &err) != 0) return 0;
    if (peek != 0 || st.step != step || memcmp(&c, &c2, sizeof c)) abort();
    sink += (uint64_t)st.step + st.rng.s[0];
    icl_model_free(&m);
    return 0;
}
