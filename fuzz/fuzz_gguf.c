/* libFuzzer target for the GGUF reader: parses the input with icl_gguf_open_memory and, when it is
 * accepted, walks every metadata value, array element (first and last few), tensor and tensor
 * byte range through the public API, dequantizing small tensors, so ASan/UBSan see any read the
 * validation let through. Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_gguf.h"
#include "iclab/icl_quant.h"

static volatile uint64_t sink;

static void walk_arr(const icl_gguf_arr *a) {
    icl_err err;
    uint64_t n = a->n, lim = n < 16 ? n : 16;
    for (uint64_t k = 0; k <= lim && n; k++) {
        uint64_t i = k == lim ? n - 1 : k;
        if (a->type == ICL_GGUF_STRING) {
            uint64_t len = 0;
            const char *s = icl_gguf_arr_str(a, i, &len);
            if (s && len) sink += (uint8_t)s[0] + (uint8_t)s[len - 1];
        } else if (a->type == ICL_GGUF_ARRAY) {
            icl_gguf_arr sub;
            if (icl_gguf_arr_sub(a, i, &sub, &err) == 0) walk_arr(&sub);
        } else {
            double d;
            int64_t v;
            if (icl_gguf_arr_num(a, i, &d, &err) == 0) sink += d == d;
            if (icl_gguf_arr_int(a, i, &v, &err) == 0) sink += (uint64_t)v;
        }
    }
    size_t es;
    if (icl_gguf_arr_raw(a, &es) && n <= 4096) {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        int32_t *iv = malloc((size_t)(n ? n : 1) * sizeof *iv);
        if (f && icl_gguf_arr_to_f32(a, f, &err) == 0 && n) sink += f[n - 1] == f[n - 1];
        if (iv && icl_gguf_arr_to_i32(a, iv, &err) == 0 && n) sink += (uint32_t)iv[n - 1];
        free(f);
        free(iv);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    icl_gguf *g = NULL;
    icl_err err;
    if (icl_gguf_open_memory(&g, data, size, &err) != 0) return 0;
    char buf[256];
    for (int i = 0; i < icl_gguf_n_kv(g); i++) {
        const char *key = icl_gguf_kv_key(g, i);
        icl_gguf_kv_format(g, i, buf, sizeof buf);
        sink += strlen(buf);
        if (icl_gguf_find_key(g, key) != i) abort(); /* keys are unique: lookup must find this entry */
        icl_gguf_arr a;
        const char *s;
        double d;
        int64_t v;
        if (icl_gguf_get_arr(g, key, &a, &err) == 0) walk_arr(&a);
        if (icl_gguf_get_str(g, key, &s, &err) == 0) sink += strlen(s);
        if (icl_gguf_get_num(g, key, &d, &err) == 0) sink += d == d;
        if (icl_gguf_get_int(g, key, &v, &err) == 0) sink += (uint64_t)v;
    }
    for (int i = 0; i < icl_gguf_n_tensors(g); i++) {
        const icl_gguf_tensor *t = icl_gguf_tensor_at(g, i);
        if (icl_gguf_find_tensor(g, t->name) != t) abort();
        const uint8_t *p = t->data;
        if (t->n_bytes) sink += p[0] + p[t->n_bytes - 1];
        if (icl_quant_can_dequantize(t->type) && t->n_elements <= (1 << 16)) {
            float *f = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof *f);
            if (f && icl_gguf_tensor_to_f32(t, f, &err) != 0) abort(); /* a validated tensor always converts */
            free(f);
        }
    }
    icl_gguf_close(g);
    return 0;
}
