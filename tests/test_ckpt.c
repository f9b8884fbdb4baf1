/* Checkpoints: save/load round trip (weights, moments, step, RNG state, config, bit for bit); a
 * checkpoint whose tensors do not match its own config (another model's shape) is refused with a
 * message naming the tensor; non-checkpoint GGUF files are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_ckpt.h"
#include "iclab/icl_gguf.h"
#include "icl_test.h"

int main(void) {
    char dir[] = "/tmp/iclab-test-ckpt.XXXXXX", path[256];
    CHECK(mkdtemp(dir) != NULL);
    icl_train_config c;
    icl_err err;
    CHECK(icl_train_config_preset(&c, "tiny", &err) == 0);
    icl_model_config mc;
    icl_train_model_config(&c, &mc);
    icl_model m, m2;
    CHECK(icl_model_init(&m, &mc, &err) == 0);
    icl_rng rng;
    icl_rng_seed(&rng, 5);
    icl_model_init_weights(&m, &rng);
    for (size_t i = 0; i < m.n_params; i++) {
        m.adam_m[i] = (float)icl_rng_normal(&rng);
        m.adam_v[i] = (float)icl_rng_uniform(&rng);
    }
    m.adam_t = 17;
    icl_ckpt_state st = {.step = 17}, st2;
    icl_rng_seed(&st.rng, 99);
    snprintf(path, sizeof path, "%s/a.gguf", dir);
    CHECK(icl_ckpt_save(path, &m, &c, &st, &err) == 0);

    icl_train_config c2;
    CHECK(icl_ckpt_load(path, &m2, &c2, &st2, &err) == 0);
    CHECK(m2.n_params == m.n_params);
    CHECK(memcmp(m2.params, m.params, m.n_params * sizeof(float)) == 0);
    CHECK(memcmp(m2.adam_m, m.adam_m, m.n_params * sizeof(float)) == 0);
    CHECK(memcmp(m2.adam_v, m.adam_v, m.n_params * sizeof(float)) == 0);
    CHECK(m2.adam_t == 17 && st2.step == 17);
    CHECK(memcmp(&st2.rng, &st.rng, sizeof st.rng) == 0);
    CHECK(memcmp(&c2, &c, sizeof c) == 0); /* every field, padding zeroed on both sides */
    icl_model_free(&m2);
    int64_t step;
    CHECK(icl_ckpt_peek(path, &c2, &step, &err) == 0 && step == 17);

    /* another model's shape: the file's config says width 64 but its tensors are width 32 */
    icl_train_config wide = c;
    wide.n_embd = 64;
    snprintf(path, sizeof path, "%s/b.gguf", dir);
    CHECK(icl_ckpt_save(path, &m, &wide, &st, &err) == 0);
    CHECK(icl_ckpt_load(path, &m2, &c2, &st2, &err) == -1);
    CHECK_MSG(strstr(err.msg, "shape") != NULL, "message names the shape: %s", err.msg);
    CHECK(m2.params == NULL); /* nothing left allocated */

    /* a GGUF file that is not an iclab checkpoint */
    icl_gguf_writer *w;
    CHECK(icl_gguf_writer_init(&w, &err) == 0);
    CHECK(icl_gguf_writer_add_str(w, "general.architecture", "llama", &err) == 0);
    snprintf(path, sizeof path, "%s/c.gguf", dir);
    CHECK(icl_gguf_writer_write(w, path, &err) == 0);
    icl_gguf_writer_free(w);
    CHECK(icl_ckpt_load(path, &m2, &c2, &st2, &err) == -1);
    CHECK_MSG(strstr(err.msg, "not an iclab checkpoint") != NULL, "%s", err.msg);

    /* a checkpoint with a tensor missing: write one with only the config */
    CHECK(icl_gguf_writer_init(&w, &err) == 0);
    CHECK(icl_gguf_writer_add_str(w, "general.architecture", "iclab-regression", &err) == 0);
    snprintf(path, sizeof path, "%s/d.gguf", dir);
    CHECK(icl_gguf_writer_write(w, path, &err) == 0);
    icl_gguf_writer_free(w);
    CHECK(icl_ckpt_load(path, &m2, &c2, &st2, &err) == -1);
    printf("missing fields: %s\n", err.msg);

    icl_model_free(&m);
    for (const char *f = "abcd"; *f; f++) {
        snprintf(path, sizeof path, "%s/%c.gguf", dir, *f);
        unlink(path);
    }
    rmdir(dir);
    return icl_test_finish();
}
