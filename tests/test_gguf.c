/* GGUF and quantization tests: writer -> reader round trip of every metadata type and several
 * tensors (also checked by an independent Python parser, tests/ref/gguf_check.py); the version-2
 * and quantization fixtures written by tests/ref/gguf_make_fixtures.py (dequantization must match
 * the script bit for bit); the real vocab-only files in ../shared/data/vocab; hand-made broken
 * files that must fail with a message naming the problem; truncations, byte flips and random
 * corruption that must fail cleanly or succeed (run under ASan to catch any bad read); write
 * failures (missing directory, file-size limit standing in for a full disk) that must leave no file. */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"

#define V2_FIXTURE "tests/fixtures/gguf_v2.gguf"
#define QUANT_FIXTURE "tests/fixtures/gguf_quant.gguf"
/* The reference vocabularies: $ICLAB_VOCAB_DIR (make test unpacks them into build/vocab), else the
 * shared folder beside the repository. */
static const char *vocab_dir(void) {
    const char *d = getenv("ICLAB_VOCAB_DIR");
    return d && *d ? d : "../shared/data/vocab";
}

static char g_dir[64];

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ------------------------------------------------------------------ byte builder for hand-made files */

typedef struct {
    uint8_t *b;
    size_t n, cap;
} bb;

static void bb_put(bb *x, const void *p, size_t n) {
    if (x->n + n > x->cap) {
        x->cap = (x->n + n) * 2 + 64;
        x->b = realloc(x->b, x->cap);
    }
    memcpy(x->b + x->n, p, n);
    x->n += n;
}
static void bb_u32(bb *x, uint32_t v) { bb_put(x, &v, 4); }
static void bb_u64(bb *x, uint64_t v) { bb_put(x, &v, 8); }
static void bb_str(bb *x, const char *s) {
    bb_u64(x, strlen(s));
    bb_put(x, s, strlen(s));
}
static void bb_hdr(bb *x, uint32_t ver, uint64_t nt, uint64_t nkv) {
    bb_put(x, "GGUF", 4);
    bb_u32(x, ver);
    bb_u64(x, nt);
    bb_u64(x, nkv);
}
static void bb_kv_u32(bb *x, const char *k, uint32_t v) {
    bb_str(x, k);
    bb_u32(x, ICL_GGUF_UINT32);
    bb_u32(x, v);
}
static void bb_tinfo(bb *x, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(x, name);
    bb_u32(x, nd);
    for (uint32_t i = 0; i < nd; i++) bb_u64(x, ne[i]);
    bb_u32(x, type);
    bb_u64(x, off);
}
static void bb_pad(bb *x, size_t a) {
    static const uint8_t z[64];
    while (x->n % a) bb_put(x, z, 1);
}
static void bb_zeros(bb *x, size_t n) {
    for (size_t i = 0; i < n; i++) bb_put(x, "", 1);
}

/* Opens x's bytes (from an exact-size heap copy, so ASan sees any over-read) and expects failure
 * with `needle` in the message; frees x. */
static void expect_fail(bb *x, const char *needle, const char *what) {
    uint8_t *copy = malloc(x->n ? x->n : 1);
    memcpy(copy, x->b, x->n);
    icl_gguf *g = NULL;
    icl_err err = {{0}};
    int rc = icl_gguf_open_memory(&g, copy, x->n, &err);
    CHECK_MSG(rc == -1 && g == NULL, "%s: open should fail", what);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", what, err.msg, needle);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "%s: message has a newline", what);
    icl_gguf_close(g);
    free(copy);
    free(x->b);
    memset(x, 0, sizeof *x);
}

/* ------------------------------------------------------------------ exercising a parsed file */

/* Touches every part of a successfully opened file through the public API; returns the number of
 * internal inconsistencies found (a found key that is not where find_key says, ...). */
static int exercise_arr(const icl_gguf_arr *a, int depth, uint64_t *acc) {
    int bad = 0;
    icl_err err;
    uint64_t lim = a->n < 40 ? a->n : 40;
    for (uint64_t k = 0; k <= lim && a->n; k++) {
        uint64_t i = k == lim ? a->n - 1 : k;
        if (a->type == ICL_GGUF_STRING) {
            uint64_t len = 0;
            const char *s = icl_gguf_arr_str(a, i, &len);
            if (!s) bad++;
            else if (len) *acc += (uint8_t)s[len - 1] + (uint8_t)s[0];
        } else if (a->type == ICL_GGUF_ARRAY) {
            icl_gguf_arr sub;
            if (icl_gguf_arr_sub(a, i, &sub, &err)) bad++;
            else bad += exercise_arr(&sub, depth + 1, acc);
        } else {
            double d;
            int64_t v;
            if (icl_gguf_arr_num(a, i, &d, &err)) bad++;
            else *acc += d == d;
            if (a->type != ICL_GGUF_FLOAT32 && a->type != ICL_GGUF_FLOAT64 && icl_gguf_arr_int(a, i, &v, &err) == 0)
                *acc += (uint64_t)v;
        }
    }
    if (icl_gguf_arr_str(a, a->n, NULL) != NULL) bad++; /* out of range */
    size_t es;
    const void *raw = icl_gguf_arr_raw(a, &es);
    if (raw && a->n <= (1u << 20)) {
        float *f = malloc((a->n ? a->n : 1) * sizeof *f);
        if (icl_gguf_arr_to_f32(a, f, &err)) bad++;
        else if (a->n) *acc += f[a->n - 1] == f[a->n - 1];
        free(f);
        const uint8_t *rb = raw;
        if (a->n) *acc += rb[a->n * es - 1];
    }
    return bad;
}

static int exercise(const icl_gguf *g, uint64_t *acc) {
    int bad = 0;
    icl_err err;
    char buf[300];
    for (int i = 0; i < icl_gguf_n_kv(g); i++) {
        const char *key = icl_gguf_kv_key(g, i);
        int type = icl_gguf_kv_type(g, i);
        icl_gguf_kv_format(g, i, buf, sizeof buf);
        *acc += strlen(buf);
        if (!key || icl_gguf_find_key(g, key) != i) bad++;
        if (type == ICL_GGUF_ARRAY) {
            icl_gguf_arr a;
            if (icl_gguf_get_arr(g, key, &a, &err)) bad++;
            else bad += exercise_arr(&a, 0, acc);
        } else if (type == ICL_GGUF_STRING) {
            const char *s;
            uint64_t len;
            if (icl_gguf_get_strn(g, key, &s, &len, &err)) bad++;
            else if (len) *acc += (uint8_t)s[len - 1];
        } else {
            double d;
            if (icl_gguf_get_num(g, key, &d, &err)) bad++;
        }
    }
    for (int i = 0; i < icl_gguf_n_tensors(g); i++) {
        const icl_gguf_tensor *t = icl_gguf_tensor_at(g, i);
        if (icl_gguf_find_tensor(g, t->name) != t) bad++;
        if (t->n_bytes) *acc += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->n_bytes - 1];
        if (icl_quant_can_dequantize(t->type) && t->n_elements <= (1 << 20)) {
            float *f = malloc((size_t)(t->n_elements ? t->n_elements : 1) * sizeof *f);
            if (icl_gguf_tensor_to_f32(t, f, &err)) bad++;
            free(f);
        }
    }
    if (icl_gguf_tensor_at(g, icl_gguf_n_tensors(g)) != NULL || icl_gguf_kv_key(g, -1) != NULL) bad++;
    return bad;
}

/* ------------------------------------------------------------------ quant basics */

static void test_type_table(void) {
    static const struct { int type; int64_t blk; size_t size; } want[] = {
        {ICL_GGML_F32, 1, 4},      {ICL_GGML_F16, 1, 2},      {ICL_GGML_BF16, 1, 2},     {ICL_GGML_Q4_0, 32, 18},
        {ICL_GGML_Q4_1, 32, 20},   {ICL_GGML_Q5_0, 32, 22},   {ICL_GGML_Q5_1, 32, 24},   {ICL_GGML_Q8_0, 32, 34},
        {ICL_GGML_Q8_1, 32, 36},   {ICL_GGML_Q2_K, 256, 84},  {ICL_GGML_Q3_K, 256, 110}, {ICL_GGML_Q4_K, 256, 144},
        {ICL_GGML_Q5_K, 256, 176}, {ICL_GGML_Q6_K, 256, 210}, {ICL_GGML_Q8_K, 256, 292}, {ICL_GGML_I8, 1, 1},
        {ICL_GGML_I16, 1, 2},      {ICL_GGML_I32, 1, 4},      {ICL_GGML_I64, 1, 8},      {ICL_GGML_F64, 1, 8},
        {ICL_GGML_IQ4_NL, 32, 18}, {ICL_GGML_IQ4_XS, 256, 136}, {ICL_GGML_IQ2_XXS, 256, 66}, {ICL_GGML_TQ2_0, 256, 66},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        CHECK_MSG(icl_quant_block_size(want[i].type) == want[i].blk && icl_quant_type_size(want[i].type) == want[i].size,
                  "type %s: block %lld size %zu", icl_quant_type_name(want[i].type),
                  (long long)icl_quant_block_size(want[i].type), icl_quant_type_size(want[i].type));
    }
    CHECK(!icl_quant_type_known(4) && !icl_quant_type_known(31) && !icl_quant_type_known(-1) && !icl_quant_type_known(1000));
    CHECK(strcmp(icl_quant_type_name(ICL_GGML_Q4_K), "q4_K") == 0);
    uint64_t b = 0;
    icl_err err = {{0}};
    CHECK(icl_quant_row_bytes(ICL_GGML_Q6_K, 4096, &b, &err) == 0 && b == 16 * 210);
    CHECK(icl_quant_row_bytes(ICL_GGML_Q4_K, 100, &b, &err) == -1 && strstr(err.msg, "not a multiple of the q4_K block size 256"));
    CHECK(icl_quant_row_bytes(5, 32, &b, &err) == -1 && strstr(err.msg, "unknown ggml type 5"));
    CHECK(icl_quant_row_bytes(ICL_GGML_F32, INT64_MAX, &b, &err) == -1 && strstr(err.msg, "overflow"));
    float out[256];
    uint8_t blk[256] = {0};
    CHECK(icl_quant_dequantize_row(ICL_GGML_IQ2_XXS, blk, out, 256, &err) == -1 && strstr(err.msg, "iq2_xxs"));
    CHECK(icl_quant_dequantize_row(ICL_GGML_Q8_0, blk, out, 31, &err) == -1);
}

static void test_half(void) {
    /* every half and bfloat16 value survives half -> float -> half; NaN stays NaN of the same sign */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = icl_quant_fp16_to_fp32((uint16_t)h);
        uint16_t back = icl_quant_fp32_to_fp16(f);
        if (isnan(f)) bad16 += !((back & 0x7c00) == 0x7c00 && (back & 0x3ff) && (back & 0x8000) == (h & 0x8000));
        else bad16 += back != h;
        float g = icl_quant_bf16_to_fp32((uint16_t)h);
        uint16_t bg = icl_quant_fp32_to_bf16(g);
        if (isnan(g)) badbf += !((bg & 0x7f80) == 0x7f80 && (bg & 0x7f) && (bg & 0x8000) == (h & 0x8000));
        else badbf += bg != h;
    }
    CHECK_MSG(bad16 == 0, "%d half values do not round-trip", bad16);
    CHECK_MSG(badbf == 0, "%d bfloat16 values do not round-trip", badbf);
    CHECK(icl_quant_fp32_to_fp16(1.0f) == 0x3c00);
    CHECK(icl_quant_fp32_to_fp16(-2.0f) == 0xc000);
    CHECK(icl_quant_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(icl_quant_fp32_to_fp16(65519.0f) == 0x7bff);
    CHECK(icl_quant_fp32_to_fp16(65520.0f) == 0x7c00);
    CHECK(icl_quant_fp32_to_fp16(-INFINITY) == 0xfc00);
    CHECK(icl_quant_fp32_to_fp16(ldexpf(1, -24)) == 0x0001);
    CHECK(icl_quant_fp32_to_fp16(ldexpf(1, -25)) == 0x0000);                 /* tie to even: 0 */
    CHECK(icl_quant_fp32_to_fp16(ldexpf(3, -26)) == 0x0001);                 /* 0.75 units: up to 1 */
    CHECK(icl_quant_fp32_to_fp16(ldexpf(3, -25)) == 0x0002);                 /* 1.5 units: tie to even 2 */
    CHECK(icl_quant_fp32_to_fp16(ldexpf(5, -25)) == 0x0002);                 /* 2.5 units: tie to even 2 */
    CHECK(icl_quant_fp32_to_fp16(ldexpf(1, -14)) == 0x0400);                 /* smallest normal */
    CHECK(icl_quant_fp32_to_fp16(ldexpf(1, -14) - ldexpf(1, -25)) == 0x0400); /* tie between 0x3ff and 0x400: even */
    CHECK(icl_quant_fp32_to_fp16(1.0f + ldexpf(1, -11)) == 0x3c00);          /* tie: stays at even 1.0 */
    CHECK(icl_quant_fp32_to_fp16(1.0f + ldexpf(3, -11)) == 0x3c02);          /* tie: up to even */
    CHECK(icl_quant_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(icl_quant_fp16_to_fp32(0x0001) == ldexpf(1, -24));
    CHECK(icl_quant_fp16_to_fp32(0x03ff) == ldexpf(1023, -24));
    CHECK(isinf(icl_quant_fp16_to_fp32(0x7c00)) && icl_quant_fp16_to_fp32(0x7c00) > 0);
    CHECK(signbit(icl_quant_fp16_to_fp32(0x8000)) && icl_quant_fp16_to_fp32(0x8000) == 0);
    CHECK(isnan(icl_quant_fp16_to_fp32(icl_quant_fp32_to_fp16(NAN))));
    CHECK(icl_quant_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(icl_quant_fp32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80);           /* tie to even */
    CHECK(icl_quant_fp32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82);
    CHECK(icl_quant_fp32_to_bf16(3.4e38f) == 0x7f80);                        /* rounds to inf */
    CHECK(isnan(icl_quant_bf16_to_fp32(icl_quant_fp32_to_bf16(NAN))));

    /* Q8_0 round trip: error within ~half a quantization step */
    icl_rng rng;
    icl_rng_seed(&rng, 7);
    float x[256], y[256];
    uint8_t q[8 * 34];
    for (int i = 0; i < 256; i++) x[i] = (float)icl_rng_normal(&rng) * (i < 128 ? 0.01f : 30.0f);
    icl_err err = {{0}};
    CHECK(icl_quant_quantize_row(ICL_GGML_Q8_0, x, q, 256, &err) == 0);
    CHECK(icl_quant_dequantize_row(ICL_GGML_Q8_0, q, y, 256, &err) == 0);
    int badq = 0;
    for (int b = 0; b < 8; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[32 * b + j]));
        for (int j = 0; j < 32; j++) badq += fabsf(y[32 * b + j] - x[32 * b + j]) > 0.57f * amax / 127;
    }
    CHECK_MSG(badq == 0, "%d Q8_0 values off by more than 0.57 quantization steps", badq);
    CHECK(icl_quant_quantize_row(ICL_GGML_Q2_K, x, q, 256, &err) == -1);
}

/* ------------------------------------------------------------------ writer round trip */

static const char *const STRS[] = {"alpha", "", "\xce\xb3\xce\xac\xce\xbc\xce\xbc\xce\xb1", "tab\there"};

static void build_full(icl_gguf_writer *w, const icl_gguf *v2, float *f32, uint16_t *f16, uint8_t *q8, int32_t *i32,
                       uint16_t *bf16, uint32_t align) {
    icl_err err = {{0}};
    int rc = 0;
    if (align) rc |= icl_gguf_writer_add_u32(w, "general.alignment", align, &err);
    rc |= icl_gguf_writer_add_str(w, "general.architecture", "iclab-regression", &err);
    rc |= icl_gguf_writer_add_u8(w, "k.u8", 250, &err);
    rc |= icl_gguf_writer_add_i8(w, "k.i8", -7, &err);
    rc |= icl_gguf_writer_add_u16(w, "k.u16", 65000, &err);
    rc |= icl_gguf_writer_add_i16(w, "k.i16", -32000, &err);
    rc |= icl_gguf_writer_add_u32(w, "k.u32", 4000000000u, &err);
    rc |= icl_gguf_writer_add_i32(w, "k.i32", -2000000000, &err);
    rc |= icl_gguf_writer_add_u64(w, "k.u64", UINT64_MAX, &err);
    rc |= icl_gguf_writer_add_i64(w, "k.i64", INT64_MIN, &err);
    rc |= icl_gguf_writer_add_f32(w, "k.f32", -0.375f, &err);
    rc |= icl_gguf_writer_add_f64(w, "k.f64", 1e-300, &err);
    rc |= icl_gguf_writer_add_bool(w, "k.true", 1, &err);
    rc |= icl_gguf_writer_add_bool(w, "k.false", 0, &err);
    rc |= icl_gguf_writer_add_str(w, "k.str", "hello \"world\"", &err);
    rc |= icl_gguf_writer_add_str(w, "k.empty", "", &err);
    uint8_t au8[] = {1, 2, 255};
    int8_t ai8[] = {-128, 0, 127};
    uint16_t au16[] = {0, 65535};
    int16_t ai16[] = {-32768, 32767};
    uint32_t au32[] = {7, 4294967295u};
    int32_t ai32[] = {-5, 0, 5, INT32_MIN};
    uint64_t au64[] = {UINT64_MAX, 0, 12345678901234ull, 0xfeedfacecafebeefull};
    int64_t ai64[] = {INT64_MIN, INT64_MAX};
    float af32[] = {0.5f, -1e-30f, INFINITY};
    double af64[] = {-0.0, 1e308};
    uint8_t abool[] = {1, 0, 1, 1};
    rc |= icl_gguf_writer_add_arr(w, "a.u8", ICL_GGUF_UINT8, au8, 3, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.i8", ICL_GGUF_INT8, ai8, 3, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.u16", ICL_GGUF_UINT16, au16, 2, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.i16", ICL_GGUF_INT16, ai16, 2, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.u32", ICL_GGUF_UINT32, au32, 2, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.i32", ICL_GGUF_INT32, ai32, 4, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.u64", ICL_GGUF_UINT64, au64, 4, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.i64", ICL_GGUF_INT64, ai64, 2, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.f32", ICL_GGUF_FLOAT32, af32, 3, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.f64", ICL_GGUF_FLOAT64, af64, 2, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.bool", ICL_GGUF_BOOL, abool, 4, &err);
    rc |= icl_gguf_writer_add_arr(w, "a.empty", ICL_GGUF_FLOAT32, NULL, 0, &err);
    rc |= icl_gguf_writer_add_arr_str(w, "a.str", STRS, NULL, 4, &err);
    const char *nul[] = {"a\0b", "xyz"};
    uint64_t nul_len[] = {3, 2};
    rc |= icl_gguf_writer_add_arr_str(w, "a.strn", nul, nul_len, 2, &err);
    rc |= icl_gguf_writer_add_arr_str(w, "a.str_empty", NULL, NULL, 0, &err);
    const char *copy[] = {"t.arr.nested", "t.arr.nested_str", "t.arr.deep", "t.str", "t.f64"};
    for (int i = 0; i < 5; i++) rc |= icl_gguf_writer_copy_kv(w, v2, icl_gguf_find_key(v2, copy[i]), &err);
    CHECK_MSG(rc == 0, "adding metadata: %s", err.msg);

    for (int i = 0; i < 15; i++) f32[i] = (float)i * 0.25f - 1.0f;
    for (int i = 0; i < 7; i++) f16[i] = icl_quant_fp32_to_fp16((float)i - 3.5f);
    float src[64 * 3];
    for (int i = 0; i < 64 * 3; i++) src[i] = sinf((float)i);
    CHECK(icl_quant_quantize_row(ICL_GGML_Q8_0, src, q8, 64 * 3, &err) == 0);
    for (int i = 0; i < 16; i++) i32[i] = i * i - 100;
    for (int i = 0; i < 6; i++) bf16[i] = icl_quant_fp32_to_bf16((float)i * 1.5f);
    rc = icl_gguf_writer_add_tensor(w, "w.f32", ICL_GGML_F32, 2, (int64_t[]){5, 3}, f32, &err);
    rc |= icl_gguf_writer_add_tensor(w, "w.f16", ICL_GGML_F16, 1, (int64_t[]){7}, f16, &err);
    rc |= icl_gguf_writer_add_tensor(w, "w.q8_0", ICL_GGML_Q8_0, 2, (int64_t[]){64, 3}, q8, &err);
    rc |= icl_gguf_writer_add_tensor(w, "w.i32", ICL_GGML_I32, 4, (int64_t[]){2, 2, 2, 2}, i32, &err);
    rc |= icl_gguf_writer_add_tensor(w, "w.bf16", ICL_GGML_BF16, 2, (int64_t[]){3, 2}, bf16, &err);
    rc |= icl_gguf_writer_add_tensor(w, "w.empty", ICL_GGML_F32, 2, (int64_t[]){0, 4}, NULL, &err);
    CHECK_MSG(rc == 0, "adding tensors: %s", err.msg);
}

/* mapped: opened from a path, so data pointers are aligned in memory too (a caller's buffer need not be) */
static void check_full(const icl_gguf *g, const float *f32, const uint16_t *f16, const uint8_t *q8, const int32_t *i32,
                       const uint16_t *bf16, uint32_t align, int mapped) {
    icl_err err = {{0}};
    CHECK(icl_gguf_version(g) == 3);
    CHECK(icl_gguf_alignment(g) == align);
    CHECK(icl_gguf_n_kv(g) == 35 + (align != 32));
    const char *s;
    uint64_t len;
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t v32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    int b;
    CHECK(icl_gguf_get_str(g, "general.architecture", &s, &err) == 0 && strcmp(s, "iclab-regression") == 0);
    CHECK(icl_gguf_get_u8(g, "k.u8", &u8, &err) == 0 && u8 == 250);
    CHECK(icl_gguf_get_i8(g, "k.i8", &i8, &err) == 0 && i8 == -7);
    CHECK(icl_gguf_get_u16(g, "k.u16", &u16, &err) == 0 && u16 == 65000);
    CHECK(icl_gguf_get_i16(g, "k.i16", &i16, &err) == 0 && i16 == -32000);
    CHECK(icl_gguf_get_u32(g, "k.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(icl_gguf_get_i32(g, "k.i32", &v32, &err) == 0 && v32 == -2000000000);
    CHECK(icl_gguf_get_u64(g, "k.u64", &u64, &err) == 0 && u64 == UINT64_MAX);
    CHECK(icl_gguf_get_i64(g, "k.i64", &i64, &err) == 0 && i64 == INT64_MIN);
    CHECK(icl_gguf_get_f32(g, "k.f32", &f, &err) == 0 && f == -0.375f);
    CHECK(icl_gguf_get_f64(g, "k.f64", &d, &err) == 0 && d == 1e-300);
    CHECK(icl_gguf_get_bool(g, "k.true", &b, &err) == 0 && b == 1);
    CHECK(icl_gguf_get_bool(g, "k.false", &b, &err) == 0 && b == 0);
    CHECK(icl_gguf_get_strn(g, "k.str", &s, &len, &err) == 0 && len == 13 && strcmp(s, "hello \"world\"") == 0);
    CHECK(icl_gguf_get_str(g, "k.empty", &s, &err) == 0 && s[0] == 0);
    CHECK(icl_gguf_get_str(g, "t.str", &s, &err) == 0 && strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld") == 0);
    CHECK(icl_gguf_get_f64(g, "t.f64", &d, &err) == 0 && d == 3.141592653589793);
    /* conversions and type errors */
    CHECK(icl_gguf_get_int(g, "k.u32", &i64, &err) == 0 && i64 == 4000000000ll);
    CHECK(icl_gguf_get_int(g, "k.i8", &i64, &err) == 0 && i64 == -7);
    CHECK(icl_gguf_get_int(g, "k.true", &i64, &err) == 0 && i64 == 1);
    CHECK(icl_gguf_get_int(g, "k.u64", &i64, &err) == -1 && strstr(err.msg, "does not fit"));
    CHECK(icl_gguf_get_int(g, "k.f32", &i64, &err) == -1 && strstr(err.msg, "expected an integer"));
    CHECK(icl_gguf_get_num(g, "k.f32", &d, &err) == 0 && d == -0.375);
    CHECK(icl_gguf_get_num(g, "k.i16", &d, &err) == 0 && d == -32000);
    CHECK(icl_gguf_get_num(g, "k.str", &d, &err) == -1);
    CHECK(icl_gguf_get_u32(g, "k.i32", &u32, &err) == -1 && strcmp(err.msg, "key 'k.i32' has type int32, expected uint32") == 0);
    CHECK(icl_gguf_get_str(g, "k.u8", &s, &err) == -1 && strstr(err.msg, "expected string"));
    CHECK(icl_gguf_get_u8(g, "nope", &u8, &err) == -1 && strcmp(err.msg, "key 'nope' not found") == 0);
    CHECK(icl_gguf_find_key(g, "nope") == -1 && icl_gguf_find_key(g, "k.u8") >= 0);

    /* arrays */
    icl_gguf_arr a, sub, sub2;
    int64_t v;
    CHECK(icl_gguf_get_arr(g, "a.u8", &a, &err) == 0 && a.type == ICL_GGUF_UINT8 && a.n == 3);
    CHECK(icl_gguf_arr_int(&a, 2, &v, &err) == 0 && v == 255);
    CHECK(icl_gguf_arr_int(&a, 3, &v, &err) == -1 && strstr(err.msg, "out of range"));
    CHECK(icl_gguf_get_arr(g, "a.i8", &a, &err) == 0 && icl_gguf_arr_int(&a, 0, &v, &err) == 0 && v == -128);
    CHECK(icl_gguf_get_arr(g, "a.u16", &a, &err) == 0 && icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == 65535);
    CHECK(icl_gguf_get_arr(g, "a.i16", &a, &err) == 0 && icl_gguf_arr_int(&a, 0, &v, &err) == 0 && v == -32768);
    CHECK(icl_gguf_get_arr(g, "a.u32", &a, &err) == 0 && icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == 4294967295ll);
    int32_t i32v[4];
    CHECK(icl_gguf_get_arr(g, "a.i32", &a, &err) == 0 && icl_gguf_arr_to_i32(&a, i32v, &err) == 0 && i32v[0] == -5 &&
          i32v[2] == 5 && i32v[3] == INT32_MIN);
    CHECK(icl_gguf_get_arr(g, "a.u32", &a, &err) == 0 && icl_gguf_arr_to_i32(&a, i32v, &err) == -1 && strstr(err.msg, "int32"));
    CHECK(icl_gguf_get_arr(g, "a.u64", &a, &err) == 0 && a.n == 4);
    CHECK(icl_gguf_arr_int(&a, 0, &v, &err) == -1 && icl_gguf_arr_int(&a, 3, &v, &err) == -1);
    CHECK(icl_gguf_arr_int(&a, 2, &v, &err) == 0 && v == 12345678901234ll);
    size_t es = 0;
    const uint8_t *raw = icl_gguf_arr_raw(&a, &es);
    CHECK(raw && es == 8);
    if (raw) {
        memcpy(&u64, raw + 24, 8);
        CHECK(u64 == 0xfeedfacecafebeefull);
    }
    CHECK(icl_gguf_get_arr(g, "a.i64", &a, &err) == 0 && icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == INT64_MAX);
    float fv[3];
    CHECK(icl_gguf_get_arr(g, "a.f32", &a, &err) == 0 && icl_gguf_arr_to_f32(&a, fv, &err) == 0 && fv[0] == 0.5f &&
          fv[1] == -1e-30f && isinf(fv[2]));
    CHECK(icl_gguf_arr_int(&a, 0, &v, &err) == -1 && strstr(err.msg, "not an integer array"));
    CHECK(icl_gguf_get_arr(g, "a.f64", &a, &err) == 0 && icl_gguf_arr_num(&a, 1, &d, &err) == 0 && d == 1e308);
    CHECK(icl_gguf_arr_num(&a, 0, &d, &err) == 0 && d == 0 && signbit(d));
    CHECK(icl_gguf_get_arr(g, "a.bool", &a, &err) == 0 && a.type == ICL_GGUF_BOOL && a.n == 4 &&
          icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == 0 && icl_gguf_arr_int(&a, 3, &v, &err) == 0 && v == 1);
    CHECK(icl_gguf_get_arr(g, "a.empty", &a, &err) == 0 && a.n == 0 && a.type == ICL_GGUF_FLOAT32);
    CHECK(icl_gguf_get_arr(g, "a.str", &a, &err) == 0 && a.type == ICL_GGUF_STRING && a.n == 4);
    for (int i = 0; i < 4; i++) {
        const char *p = icl_gguf_arr_str(&a, (uint64_t)i, &len);
        CHECK_MSG(p && len == strlen(STRS[i]) && memcmp(p, STRS[i], len) == 0, "a.str[%d]", i);
    }
    CHECK(icl_gguf_arr_str(&a, 4, &len) == NULL);
    CHECK(icl_gguf_arr_to_f32(&a, fv, &err) == -1 && icl_gguf_arr_raw(&a, &es) == NULL);
    CHECK(icl_gguf_get_arr(g, "a.strn", &a, &err) == 0 && a.n == 2);
    const char *p0 = icl_gguf_arr_str(&a, 0, &len);
    CHECK(p0 && len == 3 && memcmp(p0, "a\0b", 3) == 0);
    p0 = icl_gguf_arr_str(&a, 1, &len);
    CHECK(p0 && len == 2 && memcmp(p0, "xy", 2) == 0);
    CHECK(icl_gguf_get_arr(g, "a.str_empty", &a, &err) == 0 && a.n == 0 && a.type == ICL_GGUF_STRING);
    CHECK(icl_gguf_get_arr(g, "k.u8", &a, &err) == -1 && strstr(err.msg, "expected array"));
    /* nested arrays copied from the v2 fixture */
    CHECK(icl_gguf_get_arr(g, "t.arr.nested", &a, &err) == 0 && a.type == ICL_GGUF_ARRAY && a.n == 3);
    CHECK(icl_gguf_arr_sub(&a, 0, &sub, &err) == 0 && sub.type == ICL_GGUF_INT32 && sub.n == 2 &&
          icl_gguf_arr_int(&sub, 1, &v, &err) == 0 && v == 2);
    CHECK(icl_gguf_arr_sub(&a, 1, &sub, &err) == 0 && sub.n == 1 && icl_gguf_arr_int(&sub, 0, &v, &err) == 0 && v == 3);
    CHECK(icl_gguf_arr_sub(&a, 2, &sub, &err) == 0 && sub.n == 0);
    CHECK(icl_gguf_arr_sub(&a, 3, &sub, &err) == -1);
    CHECK(icl_gguf_get_arr(g, "t.arr.nested_str", &a, &err) == 0 && a.n == 2);
    CHECK(icl_gguf_arr_sub(&a, 1, &sub, &err) == 0 && sub.type == ICL_GGUF_STRING && sub.n == 1);
    p0 = icl_gguf_arr_str(&sub, 0, &len);
    CHECK(p0 && len == 3 && memcmp(p0, "zzz", 3) == 0);
    CHECK(icl_gguf_get_arr(g, "t.arr.deep", &a, &err) == 0 && a.n == 1 && icl_gguf_arr_sub(&a, 0, &sub, &err) == 0 &&
          sub.type == ICL_GGUF_ARRAY && icl_gguf_arr_sub(&sub, 0, &sub2, &err) == 0 && sub2.type == ICL_GGUF_INT16 &&
          sub2.n == 2 && icl_gguf_arr_int(&sub2, 1, &v, &err) == 0 && v == -7);
    /* formatting */
    char buf[200];
    icl_gguf_kv_format(g, icl_gguf_find_key(g, "k.u8"), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "250") == 0, "%s", buf);
    icl_gguf_kv_format(g, icl_gguf_find_key(g, "k.str"), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "\"hello \\\"world\\\"\"") == 0, "%s", buf);
    icl_gguf_kv_format(g, icl_gguf_find_key(g, "a.u8"), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "[3 x uint8: 1, 2, 255]") == 0, "%s", buf);
    icl_gguf_kv_format(g, icl_gguf_find_key(g, "t.arr.nested"), buf, sizeof buf);
    CHECK_MSG(strcmp(buf, "[3 x array: [2 x int32: 1, 2], [1 x int32: 3], [0 x int32:]]") == 0, "%s", buf);
    icl_gguf_kv_format(g, icl_gguf_find_key(g, "k.u8"), buf, 3);
    CHECK(strcmp(buf, "25") == 0);

    /* tensors */
    CHECK(icl_gguf_n_tensors(g) == 6);
    const icl_gguf_tensor *t;
    CHECK(icl_gguf_data_offset(g) % align == 0);
    for (int i = 0; i < icl_gguf_n_tensors(g); i++) {
        t = icl_gguf_tensor_at(g, i);
        CHECK_MSG(t->offset % align == 0 && (!mapped || (uintptr_t)t->data % align == 0), "%s misaligned", t->name);
    }
    CHECK(icl_gguf_get_tensor(g, "w.f32", &t, &err) == 0 && t->type == ICL_GGML_F32 && t->n_dims == 2 && t->ne[0] == 5 &&
          t->ne[1] == 3 && t->ne[2] == 1 && t->ne[3] == 1 && t->n_elements == 15 && t->n_bytes == 60 &&
          memcmp(t->data, f32, 60) == 0);
    CHECK(icl_gguf_get_tensor(g, "w.f16", &t, &err) == 0 && t->type == ICL_GGML_F16 && t->n_bytes == 14 && memcmp(t->data, f16, 14) == 0);
    float tf[64 * 3];
    if (t) {
        CHECK(icl_gguf_tensor_to_f32(t, tf, &err) == 0 && tf[0] == -3.5f && tf[6] == 2.5f);
    }
    CHECK(icl_gguf_get_tensor(g, "w.q8_0", &t, &err) == 0 && t->type == ICL_GGML_Q8_0 && t->n_bytes == 6 * 34 &&
          memcmp(t->data, q8, 6 * 34) == 0);
    if (t) {
        CHECK(icl_gguf_tensor_to_f32(t, tf, &err) == 0);
        int off = 0;
        for (int i = 0; i < 64 * 3; i++) off += fabsf(tf[i] - sinf((float)i)) > 0.006f;
        CHECK_MSG(off == 0, "%d Q8_0 values off", off);
    }
    CHECK(icl_gguf_get_tensor(g, "w.i32", &t, &err) == 0 && t->n_dims == 4 && t->ne[3] == 2 && t->n_bytes == 64 &&
          memcmp(t->data, i32, 64) == 0);
    CHECK(icl_gguf_get_tensor(g, "w.bf16", &t, &err) == 0 && t->type == ICL_GGML_BF16 && memcmp(t->data, bf16, 12) == 0);
    if (t) {
        CHECK(icl_gguf_tensor_to_f32(t, tf, &err) == 0 && tf[5] == 7.5f);
    }
    CHECK(icl_gguf_get_tensor(g, "w.empty", &t, &err) == 0 && t->n_elements == 0 && t->n_bytes == 0 && t->ne[1] == 4);
    CHECK(icl_gguf_get_tensor(g, "w.none", &t, &err) == -1 && strcmp(err.msg, "tensor 'w.none' not found") == 0 && !t);
    uint64_t acc = 0;
    CHECK(exercise(g, &acc) == 0);
}

static int run_py(const char *cmd) {
    int st = system(cmd);
    return st;
}

static void test_roundtrip(void) {
    icl_err err = {{0}};
    icl_gguf *v2 = NULL;
    CHECK_MSG(icl_gguf_open(&v2, V2_FIXTURE, &err) == 0, "%s", err.msg);
    if (!v2) return;
    static float f32[15];
    static uint16_t f16[7], bf16[6];
    static uint8_t q8[6 * 34];
    static int32_t i32[16];
    uint32_t aligns[2] = {0, 64};
    for (int k = 0; k < 2; k++) {
        icl_gguf_writer *w;
        CHECK(icl_gguf_writer_init(&w, &err) == 0);
        build_full(w, v2, f32, f16, q8, i32, bf16, aligns[k]);
        char path[256];
        tmp_path(path, sizeof path, k ? "full64.gguf" : "full.gguf");
        CHECK_MSG(icl_gguf_writer_write(w, path, &err) == 0, "write: %s", err.msg);
        uint32_t align = aligns[k] ? aligns[k] : 32;
        icl_gguf *g = NULL;
        CHECK_MSG(icl_gguf_open(&g, path, &err) == 0, "reopen: %s", err.msg);
        if (g) check_full(g, f32, f16, q8, i32, bf16, align, 1);
        icl_gguf_close(g);
        /* the same bytes through the memory reader */
        char *raw;
        size_t len;
        if (icl_read_file(path, &raw, &len, &err) == 0) {
            CHECK(icl_gguf_open_memory(&g, raw, len, &err) == 0);
            if (g) check_full(g, f32, f16, q8, i32, bf16, align, 0);
            icl_gguf_close(g);
            free(raw);
        }
        /* an independent parser agrees (layout as llama.cpp expects it, and a few values) */
        if (system("/usr/bin/python3 -c 'import struct' 2>/dev/null") == 0) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd,
                     "/usr/bin/python3 tests/ref/gguf_check.py '%s' 'k.u64=18446744073709551615' 'k.i8=-7' "
                     "'k.f32=-0.375' 'a.i32=[-5, 0, 5, -2147483648]' 'a.u8=[1, 2, 255]' "
                     "'t.arr.nested=[[1, 2], [3], []]' 'k.true=True' 'general.architecture='\"'\"'iclab-regression'\"'\"",
                     path);
            CHECK_MSG(run_py(cmd) == 0, "gguf_check.py rejected %s", path);
        } else {
            printf("SKIP /usr/bin/python3 not found: the independent check of written files\n");
        }
        icl_gguf_writer_free(w);
    }
    icl_gguf_close(v2);
}

/* ------------------------------------------------------------------ fixtures written by Python */

static void test_v2_fixture(void) {
    icl_err err = {{0}};
    icl_gguf *g = NULL;
    CHECK_MSG(icl_gguf_open(&g, V2_FIXTURE, &err) == 0, "%s", err.msg);
    if (!g) return;
    CHECK(icl_gguf_version(g) == 2);
    CHECK(icl_gguf_alignment(g) == 64);
    CHECK(icl_gguf_n_kv(g) == 25);
    const char *s;
    uint8_t u8;
    int8_t i8;
    uint16_t u16;
    int16_t i16;
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    int64_t i64;
    float f;
    double d;
    int b;
    CHECK(icl_gguf_get_str(g, "general.architecture", &s, &err) == 0 && strcmp(s, "iclab-test") == 0);
    CHECK(icl_gguf_get_u32(g, "general.alignment", &u32, &err) == 0 && u32 == 64);
    CHECK(icl_gguf_get_u8(g, "t.u8", &u8, &err) == 0 && u8 == 200);
    CHECK(icl_gguf_get_i8(g, "t.i8", &i8, &err) == 0 && i8 == -100);
    CHECK(icl_gguf_get_u16(g, "t.u16", &u16, &err) == 0 && u16 == 60000);
    CHECK(icl_gguf_get_i16(g, "t.i16", &i16, &err) == 0 && i16 == -30000);
    CHECK(icl_gguf_get_u32(g, "t.u32", &u32, &err) == 0 && u32 == 4000000000u);
    CHECK(icl_gguf_get_i32(g, "t.i32", &i32, &err) == 0 && i32 == -2000000000);
    CHECK(icl_gguf_get_f32(g, "t.f32", &f, &err) == 0 && f == 1.5f);
    CHECK(icl_gguf_get_bool(g, "t.bool", &b, &err) == 0 && b == 1);
    CHECK(icl_gguf_get_str(g, "t.str", &s, &err) == 0 && strcmp(s, "h\xc3\xa9llo w\xc3\xb6rld") == 0);
    CHECK(icl_gguf_get_u64(g, "t.u64", &u64, &err) == 0 && u64 == (1ull << 63) + 5);
    CHECK(icl_gguf_get_int(g, "t.u64", &i64, &err) == -1);
    CHECK(icl_gguf_get_i64(g, "t.i64", &i64, &err) == 0 && i64 == -(1ll << 40));
    CHECK(icl_gguf_get_f64(g, "t.f64", &d, &err) == 0 && d == 3.141592653589793);
    icl_gguf_arr a, sub;
    int64_t v;
    uint64_t len;
    int32_t iv[5];
    CHECK(icl_gguf_get_arr(g, "t.arr.i32", &a, &err) == 0 && a.n == 5 && icl_gguf_arr_to_i32(&a, iv, &err) == 0 &&
          iv[0] == 1 && iv[1] == -2 && iv[4] == 5);
    float fv[3];
    CHECK(icl_gguf_get_arr(g, "t.arr.f32", &a, &err) == 0 && icl_gguf_arr_to_f32(&a, fv, &err) == 0 && fv[1] == -1.25f);
    CHECK(icl_gguf_get_arr(g, "t.arr.str", &a, &err) == 0 && a.n == 4);
    const char *p = icl_gguf_arr_str(&a, 2, &len);
    CHECK(p && len == 5 && memcmp(p, "\xc3\xbcn\xc3\xaf", 5) == 0);
    p = icl_gguf_arr_str(&a, 1, &len);
    CHECK(p && len == 0);
    p = icl_gguf_arr_str(&a, 3, &len);
    CHECK(p && len == 5 && memcmp(p, "tab\tx", 5) == 0);
    CHECK(icl_gguf_get_arr(g, "t.arr.bool", &a, &err) == 0 && a.type == ICL_GGUF_BOOL && icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == 0);
    CHECK(icl_gguf_get_arr(g, "t.arr.u8", &a, &err) == 0 && a.n == 10 && icl_gguf_arr_int(&a, 9, &v, &err) == 0 && v == 9);
    CHECK(icl_gguf_get_arr(g, "t.arr.f64", &a, &err) == 0 && icl_gguf_arr_num(&a, 0, &d, &err) == 0 && d == 1e300);
    CHECK(icl_gguf_get_arr(g, "t.arr.u64", &a, &err) == 0 && icl_gguf_arr_int(&a, 1, &v, &err) == 0 && v == (1ll << 40));
    CHECK(icl_gguf_get_arr(g, "t.arr.empty", &a, &err) == 0 && a.n == 0 && a.type == ICL_GGUF_UINT32);
    CHECK(icl_gguf_get_arr(g, "t.arr.nested", &a, &err) == 0 && a.n == 3 && icl_gguf_arr_sub(&a, 0, &sub, &err) == 0 &&
          sub.n == 2 && icl_gguf_arr_int(&sub, 0, &v, &err) == 0 && v == 1);
    CHECK(icl_gguf_get_arr(g, "t.arr.nested_str", &a, &err) == 0 && icl_gguf_arr_sub(&a, 0, &sub, &err) == 0 &&
          (p = icl_gguf_arr_str(&sub, 1, &len)) && len == 2 && memcmp(p, "yy", 2) == 0);
    /* tensors, whose data the script stored in reverse order */
    CHECK(icl_gguf_n_tensors(g) == 4);
    const icl_gguf_tensor *t;
    float out[12];
    CHECK(icl_gguf_get_tensor(g, "w.bf16", &t, &err) == 0 && t->offset == 0 && icl_gguf_tensor_to_f32(t, out, &err) == 0 &&
          out[0] == 1.0f && out[1] == -2.5f && out[2] == 3.0f);
    CHECK(icl_gguf_get_tensor(g, "w.f32", &t, &err) == 0 && t->offset > 0 && t->ne[0] == 4 && t->ne[1] == 3 &&
          icl_gguf_tensor_to_f32(t, out, &err) == 0);
    int bad = 0;
    for (int i = 0; i < 12; i++) bad += out[i] != (float)i * 0.5f - 2.0f;
    CHECK(bad == 0);
    CHECK(icl_gguf_get_tensor(g, "w.f16", &t, &err) == 0 && icl_gguf_tensor_to_f32(t, out, &err) == 0 && out[0] == 0 &&
          out[1] == 1 && out[2] == -2 && out[3] == 0.5f && out[4] == 65504 && out[5] == ldexpf(1, -24) && isinf(out[6]) &&
          out[7] == 0 && signbit(out[7]));
    int32_t ti[8];
    CHECK(icl_gguf_get_tensor(g, "w.i32", &t, &err) == 0 && t->n_dims == 3 && t->ne[2] == 2);
    if (t) {
        memcpy(ti, t->data, 32);
        CHECK(ti[0] == -4 && ti[7] == 3);
    }
    icl_gguf_close(g);
}

static void test_quant_fixture(void) {
    icl_err err = {{0}};
    icl_gguf *g = NULL;
    CHECK_MSG(icl_gguf_open(&g, QUANT_FIXTURE, &err) == 0, "%s", err.msg);
    if (!g) return;
    static const char *types[] = {"q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_K", "q3_K", "q4_K", "q5_K", "q6_K"};
    for (int k = 0; k < 10; k++) {
        const icl_gguf_tensor *t = icl_gguf_find_tensor(g, types[k]), *ref;
        char rn[32];
        snprintf(rn, sizeof rn, "%s.ref", types[k]);
        ref = icl_gguf_find_tensor(g, rn);
        CHECK_MSG(t && ref, "%s missing", types[k]);
        if (!t || !ref) continue;
        CHECK_MSG(strcmp(icl_quant_type_name(t->type), types[k]) == 0, "%s has type %s", types[k], icl_quant_type_name(t->type));
        CHECK(ref->n_elements == t->n_elements && ref->type == ICL_GGML_F32);
        float *y = malloc((size_t)t->n_elements * sizeof *y), *r = malloc((size_t)t->n_elements * sizeof *r);
        memcpy(r, ref->data, (size_t)ref->n_bytes);
        CHECK(icl_gguf_tensor_to_f32(t, y, &err) == 0);
        int diff = 0, first = -1;
        for (int64_t i = 0; i < t->n_elements; i++)
            if (f32_bits(y[i]) != f32_bits(r[i])) {
                if (first < 0) first = (int)i;
                diff++;
            }
        CHECK_MSG(diff == 0, "%s: %d of %lld values differ from the Python reference, first at %d: %.9g vs %.9g", types[k],
                  diff, (long long)t->n_elements, first, first >= 0 ? y[first] : 0, first >= 0 ? r[first] : 0);
        /* row by row through the public row API too */
        int64_t ne0 = t->ne[0];
        uint64_t rb;
        CHECK(icl_quant_row_bytes(t->type, ne0, &rb, &err) == 0 && rb * (uint64_t)t->ne[1] == t->n_bytes);
        CHECK(icl_quant_dequantize_row(t->type, (const uint8_t *)t->data + rb, y, ne0, &err) == 0 &&
              memcmp(y, r + ne0, (size_t)ne0 * 4) == 0);
        free(y);
        free(r);
    }
    /* float -> half / bfloat16 rounding against numpy (half) and the script (bfloat16) */
    const icl_gguf_tensor *src = icl_gguf_find_tensor(g, "conv.src"), *h = icl_gguf_find_tensor(g, "conv.f16"),
                          *href = icl_gguf_find_tensor(g, "conv.f16.ref"), *bf = icl_gguf_find_tensor(g, "conv.bf16");
    CHECK(src && h && href && bf);
    if (src && h && href && bf) {
        int64_t n = src->n_elements;
        float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
        uint16_t *q = malloc((size_t)n * 2);
        memcpy(x, src->data, (size_t)n * 4);
        CHECK(icl_quant_quantize_row(ICL_GGML_F16, x, q, n, &err) == 0);
        int d16 = 0, dbf = 0, dback = 0;
        for (int64_t i = 0; i < n; i++) d16 += q[i] != ((const uint16_t *)h->data)[i];
        CHECK(icl_quant_dequantize_row(ICL_GGML_F16, h->data, y, n, &err) == 0);
        for (int64_t i = 0; i < n; i++) dback += f32_bits(y[i]) != ((const uint32_t *)href->data)[i];
        CHECK(icl_quant_quantize_row(ICL_GGML_BF16, x, q, n, &err) == 0);
        for (int64_t i = 0; i < n; i++) dbf += q[i] != ((const uint16_t *)bf->data)[i];
        CHECK_MSG(d16 == 0, "%d of %lld float->half conversions differ from numpy", d16, (long long)n);
        CHECK_MSG(dback == 0, "%d of %lld half->float conversions differ from numpy", dback, (long long)n);
        CHECK_MSG(dbf == 0, "%d of %lld float->bfloat16 conversions differ from the reference", dbf, (long long)n);
        free(x);
        free(y);
        free(q);
    }
    icl_gguf_close(g);
}

/* ------------------------------------------------------------------ real vocab files */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_vocab(const char *file, const char *model, uint64_t n_tok, uint64_t tok_bytes, const char *tok13,
                       const char *last, int64_t tt_sum) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", vocab_dir(), file);
    icl_err err = {{0}};
    icl_gguf *g = NULL;
    double t0 = now_s();
    int rc = icl_gguf_open(&g, path, &err);
    double dt = now_s() - t0;
    CHECK_MSG(rc == 0, "%s", err.msg);
    if (!g) return;
    printf("opened %s in %.2f ms (%d keys)\n", file, dt * 1e3, icl_gguf_n_kv(g));
    const char *s;
    CHECK(icl_gguf_get_str(g, "tokenizer.ggml.model", &s, &err) == 0 && strcmp(s, model) == 0);
    CHECK(icl_gguf_n_tensors(g) == 0);
    icl_gguf_arr a;
    CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.tokens", &a, &err) == 0 && a.type == ICL_GGUF_STRING && a.n == n_tok);
    uint64_t total = 0, len;
    for (uint64_t i = 0; i < a.n; i++) {
        if (icl_gguf_arr_str(&a, i, &len)) total += len;
    }
    CHECK_MSG(total == tok_bytes, "%s: token bytes %llu vs %llu", file, (unsigned long long)total, (unsigned long long)tok_bytes);
    const char *p = icl_gguf_arr_str(&a, 13, &len);
    CHECK(p && len == strlen(tok13) && memcmp(p, tok13, len) == 0);
    p = icl_gguf_arr_str(&a, a.n - 1, &len);
    CHECK(p && len == strlen(last) && memcmp(p, last, len) == 0);
    icl_gguf_arr tt;
    CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.token_type", &tt, &err) == 0 && tt.n == n_tok);
    int32_t *types = malloc(tt.n * sizeof *types);
    int64_t sum = 0;
    CHECK(icl_gguf_arr_to_i32(&tt, types, &err) == 0);
    for (uint64_t i = 0; i < tt.n; i++) sum += types[i];
    CHECK_MSG(sum == tt_sum, "%s: token type sum %lld", file, (long long)sum);
    free(types);
    int64_t bos;
    CHECK(icl_gguf_get_int(g, "tokenizer.ggml.bos_token_id", &bos, &err) == 0 && bos >= 0 && (uint64_t)bos < n_tok);
    uint64_t acc = 0;
    CHECK(exercise(g, &acc) == 0);
    icl_gguf_close(g);
}

static void test_vocab_files(void) {
    test_vocab("ggml-vocab-gpt-2.gguf", "gpt2", 50257, 356735, ".", "<|endoftext|>", 50259);
    test_vocab("ggml-vocab-llama-bpe.gguf", "gpt2", 128256, 1073445, ".", "<|reserved_special_token_250|>", 128768);
    test_vocab("ggml-vocab-llama-spm.gguf", "llama", 32000, 210919, "<0x0A>", "\xe7\xbb\x99", 33285);
    icl_err err = {{0}};
    icl_gguf *g = NULL;
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/ggml-vocab-gpt-2.gguf", vocab_dir());
    if (icl_gguf_open(&g, vpath, &err) == 0) {
        icl_gguf_arr m;
        uint64_t len;
        CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.merges", &m, &err) == 0 && m.n == 50000);
        const char *p = icl_gguf_arr_str(&m, 0, &len);
        CHECK(p && len == 4 && memcmp(p, "\xc4\xa0 t", 4) == 0);
        const char *s;
        CHECK(icl_gguf_get_str(g, "general.architecture", &s, &err) == 0 && strcmp(s, "gpt2") == 0);
        int64_t v;
        CHECK(icl_gguf_get_int(g, "gpt2.context_length", &v, &err) == 0 && v == 1024);
        float eps;
        CHECK(icl_gguf_get_f32(g, "gpt2.attention.layer_norm_epsilon", &eps, &err) == 0 && eps == 1e-5f);
        icl_gguf_close(g);
    }
    snprintf(vpath, sizeof vpath, "%s/ggml-vocab-llama-spm.gguf", vocab_dir());
    if (icl_gguf_open(&g, vpath, &err) == 0) {
        icl_gguf_arr sc;
        CHECK(icl_gguf_get_arr(g, "tokenizer.ggml.scores", &sc, &err) == 0 && sc.type == ICL_GGUF_FLOAT32 && sc.n == 32000);
        float *f = malloc(32000 * sizeof *f);
        CHECK(icl_gguf_arr_to_f32(&sc, f, &err) == 0 && f[1000] == -741.0f);
        double sum = 0;
        for (int i = 0; i < 32000; i++) sum += f[i];
        CHECK_NEAR(sum, -1.650365872e10, 1e3);
        free(f);
        int b;
        CHECK(icl_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err) == 0 && b == 1);
        icl_gguf_close(g);
    }
}

/* ------------------------------------------------------------------ hand-made broken files */

static void test_malformed(void) {
    bb x = {0};
    uint64_t ne2[2] = {32, 1};

    bb_put(&x, "GGU", 3);
    expect_fail(&x, "only 3 bytes", "3-byte file");
    bb_put(&x, "GGML", 4);
    bb_u32(&x, 3);
    expect_fail(&x, "bad magic", "bad magic");
    bb_put(&x, "GGUF", 4);
    bb_u32(&x, 1);
    bb_u32(&x, 0);
    bb_u32(&x, 0);
    expect_fail(&x, "version 1 is not supported", "v1");
    bb_put(&x, "GGUF", 4);
    bb_u32(&x, 0x03000000);
    bb_u64(&x, 0);
    bb_u64(&x, 0);
    expect_fail(&x, "big-endian", "big-endian");
    bb_hdr(&x, 4, 0, 0);
    expect_fail(&x, "unsupported GGUF version 4", "v4");
    bb_hdr(&x, 3, 0, 0);
    bb_put(&x, "GG", 1);
    {
        uint8_t *c = malloc(x.n);
        memcpy(c, x.b, x.n);
        icl_gguf *g;
        icl_err err;
        CHECK(icl_gguf_open_memory(&g, c, x.n, &err) == 0 && icl_gguf_n_kv(g) == 0 && icl_gguf_n_tensors(g) == 0);
        icl_gguf_close(g);
        free(c);
        free(x.b);
        memset(&x, 0, sizeof x);
    }
    bb_put(&x, "GGUF", 4);
    bb_u32(&x, 3);
    bb_u64(&x, 0);
    expect_fail(&x, "truncated: metadata count", "header cut");
    bb_hdr(&x, 3, 0, 1ull << 40);
    expect_fail(&x, "metadata count 1099511627776 is impossible", "absurd n_kv");
    bb_hdr(&x, 3, 1ull << 62, 0);
    expect_fail(&x, "tensor count", "absurd n_tensors");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "a");
    bb_u32(&x, ICL_GGUF_STRING);
    bb_u64(&x, 1000);
    bb_put(&x, "abc", 3);
    expect_fail(&x, "key 'a': string length 1000 at offset 37 runs past the end", "string past end");
    bb_hdr(&x, 3, 0, 1);
    bb_u64(&x, 1ull << 63);
    bb_put(&x, "abcdefghijklmn", 14);
    expect_fail(&x, "key of metadata entry 0 at offset 24: length 9223372036854775808 runs past", "key length");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "arr");
    bb_u32(&x, ICL_GGUF_ARRAY);
    bb_u32(&x, ICL_GGUF_UINT32);
    bb_u64(&x, 1ull << 62);
    bb_zeros(&x, 16);
    expect_fail(&x, "key 'arr': array of 4611686018427387904 uint32 elements", "absurd array");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "arr");
    bb_u32(&x, ICL_GGUF_ARRAY);
    bb_u32(&x, ICL_GGUF_STRING);
    bb_u64(&x, 2);
    bb_str(&x, "ok");
    bb_u64(&x, 99);
    bb_put(&x, "short", 5);
    expect_fail(&x, "key 'arr': string 1 of 2 has length 99, past the end", "array string past end");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "k");
    bb_u32(&x, 13);
    bb_u32(&x, 0);
    expect_fail(&x, "key 'k': unknown value type 13", "unknown kv type");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "k");
    bb_u32(&x, ICL_GGUF_ARRAY);
    bb_u32(&x, 77);
    bb_u64(&x, 0);
    expect_fail(&x, "array of unknown element type 77", "unknown element type");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "deep");
    bb_u32(&x, ICL_GGUF_ARRAY);
    for (int i = 0; i < 9; i++) {
        bb_u32(&x, ICL_GGUF_ARRAY);
        bb_u64(&x, 1);
    }
    bb_u32(&x, ICL_GGUF_UINT8);
    bb_u64(&x, 0);
    expect_fail(&x, "nested more than 8 deep", "deep nesting");
    bb_hdr(&x, 3, 0, 2);
    bb_kv_u32(&x, "dup", 1);
    bb_kv_u32(&x, "dup", 2);
    expect_fail(&x, "duplicate metadata key 'dup'", "duplicate key");
    bb_hdr(&x, 3, 0, 1);
    bb_kv_u32(&x, "bad\nkey", 1);
    expect_fail(&x, "control byte 0x0a", "control byte in key");
    bb_hdr(&x, 3, 0, 1);
    bb_kv_u32(&x, "", 1);
    expect_fail(&x, "is empty", "empty key");
    bb_hdr(&x, 3, 0, 1);
    bb_kv_u32(&x, "general.alignment", 48);
    expect_fail(&x, "general.alignment = 48 is not a power of two", "alignment 48");
    bb_hdr(&x, 3, 0, 1);
    bb_kv_u32(&x, "general.alignment", 0);
    expect_fail(&x, "not a power of two", "alignment 0");
    bb_hdr(&x, 3, 0, 1);
    bb_str(&x, "general.alignment");
    bb_u32(&x, ICL_GGUF_STRING);
    bb_str(&x, "32");
    expect_fail(&x, "general.alignment has type string, expected an integer", "alignment string");

    /* tensor infos */
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 5, (uint64_t[]){1, 1, 1, 1, 1}, 0, 0);
    expect_fail(&x, "tensor 't' has 5 dimensions (at most 4)", "5 dims");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 3, (uint64_t[]){1ull << 32, 1ull << 32, 1ull << 32}, 0, 0);
    bb_pad(&x, 32);
    expect_fail(&x, "tensor 't': element count 4294967296 x 4294967296 x 4294967296 x 1 overflows", "dims overflow");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 1, (uint64_t[]){1ull << 63}, 0, 0);
    expect_fail(&x, "dimension 0 size 9223372036854775808 is too large", "dim too large");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 1, (uint64_t[]){1ull << 62}, 0, 0);
    bb_pad(&x, 32);
    expect_fail(&x, "tensor 't': row of 4611686018427387904 f32 elements overflows", "size 2^64 bytes");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, ne2, 99, 0);
    expect_fail(&x, "tensor 't' has unknown ggml type 99", "unknown type");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, ne2, 4, 0);
    expect_fail(&x, "unknown ggml type 4", "retired type");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, (uint64_t[]){33, 1}, ICL_GGML_Q8_0, 0);
    bb_pad(&x, 32);
    bb_zeros(&x, 64);
    expect_fail(&x, "tensor 't': row length 33 is not a multiple of the q8_0 block size 32", "partial block");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, ne2, ICL_GGML_F32, 8);
    bb_pad(&x, 32);
    bb_zeros(&x, 256);
    expect_fail(&x, "tensor 't': offset 8 is not a multiple of the alignment 32", "misaligned");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, ne2, ICL_GGML_F32, 0);
    bb_pad(&x, 32);
    bb_zeros(&x, 127);
    expect_fail(&x, "tensor 't': 128 bytes at data offset 0 run past the end of the file (data section holds 127 bytes)", "short data");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 2, ne2, ICL_GGML_F32, 1ull << 63);
    bb_pad(&x, 32);
    bb_zeros(&x, 128);
    expect_fail(&x, "run past the end", "offset past end");
    bb_hdr(&x, 3, 2, 0);
    bb_tinfo(&x, "a", 2, ne2, ICL_GGML_F32, 0);
    bb_tinfo(&x, "b", 2, ne2, ICL_GGML_F32, 96);
    bb_pad(&x, 32);
    bb_zeros(&x, 256);
    expect_fail(&x, "tensors 'a' (data offset 0, 128 bytes) and 'b' (data offset 96) overlap", "overlap");
    bb_hdr(&x, 3, 2, 0);
    bb_tinfo(&x, "a", 2, ne2, ICL_GGML_F32, 0);
    bb_tinfo(&x, "a", 2, ne2, ICL_GGML_F32, 128);
    bb_pad(&x, 32);
    bb_zeros(&x, 256);
    expect_fail(&x, "duplicate tensor name 'a'", "duplicate tensor");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "", 2, ne2, ICL_GGML_F32, 0);
    expect_fail(&x, "name of tensor 0 at offset 24 is empty", "empty tensor name");
    bb_hdr(&x, 3, 1, 0);
    bb_tinfo(&x, "t", 1, (uint64_t[]){0}, ICL_GGML_F32, 0); /* ends at 57: data section at 64 > size */
    expect_fail(&x, "data section would start at offset 64, past the end of the file (57 bytes)", "data start");

    /* a valid file with tensors in any data order, a zero-size tensor and alignment 8 */
    bb_hdr(&x, 2, 3, 1);
    bb_kv_u32(&x, "general.alignment", 8);
    bb_tinfo(&x, "late", 1, (uint64_t[]){2}, ICL_GGML_F32, 8);
    bb_tinfo(&x, "early", 1, (uint64_t[]){1}, ICL_GGML_F32, 0);
    bb_tinfo(&x, "none", 2, (uint64_t[]){0, 5}, ICL_GGML_F32, 8);
    bb_pad(&x, 8);
    float vals[4] = {9.0f, 0.0f, 1.0f, 2.0f};
    bb_put(&x, vals, 16);
    {
        icl_gguf *g;
        icl_err err;
        uint8_t *c = malloc(x.n);
        memcpy(c, x.b, x.n);
        CHECK_MSG(icl_gguf_open_memory(&g, c, x.n, &err) == 0, "%s", err.msg);
        if (g) {
            const icl_gguf_tensor *t = icl_gguf_find_tensor(g, "late");
            float f[2];
            CHECK(t && icl_gguf_tensor_to_f32(t, f, &err) == 0 && f[0] == 1.0f && f[1] == 2.0f);
            t = icl_gguf_find_tensor(g, "none");
            CHECK(t && t->n_bytes == 0 && t->n_elements == 0);
            CHECK(icl_gguf_alignment(g) == 8 && icl_gguf_version(g) == 2);
            icl_gguf_close(g);
        }
        free(c);
        free(x.b);
        memset(&x, 0, sizeof x);
    }

    /* file-level errors name the file */
    icl_gguf *g = NULL;
    icl_err err = {{0}};
    char path[256];
    CHECK(icl_gguf_open(&g, "tests/fixtures/no_such.gguf", &err) == -1 && strstr(err.msg, "cannot open tests/fixtures/no_such.gguf"));
    CHECK(icl_gguf_open(&g, "tests/fixtures", &err) == -1 && strstr(err.msg, "not a regular file"));
    tmp_path(path, sizeof path, "empty.gguf");
    CHECK(icl_write_file_atomic(path, "", 0, &err) == 0);
    CHECK(icl_gguf_open(&g, path, &err) == -1 && strstr(err.msg, "empty"));
    bb_hdr(&x, 1, 0, 0);
    tmp_path(path, sizeof path, "v1.gguf");
    CHECK(icl_write_file_atomic(path, x.b, x.n, &err) == 0);
    CHECK(icl_gguf_open(&g, path, &err) == -1 && strncmp(err.msg, path, strlen(path)) == 0 && strstr(err.msg, "version 1"));
    CHECK(g == NULL);
    free(x.b);
}

/* ------------------------------------------------------------------ corruption */

static void corrupt_all(const char *what, const uint8_t *file, size_t n, int flips, int random_iters) {
    icl_err err;
    uint64_t acc = 0;
    int bad = 0, ok_trunc = 0;
    /* where the last tensor's data ends: any shorter file must be rejected */
    icl_gguf *g = NULL;
    if (icl_gguf_open_memory(&g, file, n, &err) != 0) {
        CHECK_MSG(0, "%s: does not open: %s", what, err.msg);
        return;
    }
    uint64_t need = 0;
    for (int i = 0; i < icl_gguf_n_tensors(g); i++) {
        const icl_gguf_tensor *t = icl_gguf_tensor_at(g, i);
        uint64_t end = icl_gguf_data_offset(g) + t->offset + t->n_bytes;
        if (end > need) need = end;
    }
    if (icl_gguf_n_tensors(g) == 0) need = n; /* metadata-only file: every byte is metadata or padding */
    icl_gguf_close(g);
    uint8_t *buf = malloc(n);
    for (size_t len = 0; len < n; len++) {
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, file, len);
        int rc = icl_gguf_open_memory(&g, c, len, &err);
        if (rc == 0) {
            ok_trunc++;
            bad += exercise(g, &acc);
            if (len < need) bad++;
            icl_gguf_close(g);
        }
        free(c);
    }
    int opened = 0, tried = 0;
    static const uint8_t xs[3] = {0x01, 0x80, 0xff};
    for (size_t pos = 0; pos < n && flips; pos++) {
        for (int k = 0; k < 3; k++) {
            memcpy(buf, file, n);
            buf[pos] ^= xs[k];
            tried++;
            err.msg[0] = 0;
            if (icl_gguf_open_memory(&g, buf, n, &err) == 0) {
                opened++;
                bad += exercise(g, &acc);
                icl_gguf_close(g);
            } else if (!err.msg[0] || strchr(err.msg, '\n')) {
                bad++;
            }
        }
    }
    icl_rng rng;
    icl_rng_seed(&rng, 1234);
    for (int it = 0; it < random_iters; it++) {
        memcpy(buf, file, n);
        int k = 1 + (int)icl_rng_below(&rng, 8);
        for (int j = 0; j < k; j++) {
            size_t pos = (size_t)icl_rng_below(&rng, n);
            uint64_t r = icl_rng_u64(&rng);
            /* mostly small or extreme values: the interesting ones for counts and lengths */
            buf[pos] = (r & 3) == 0 ? 0xff : (r & 3) == 1 ? 0 : (uint8_t)(r >> 8);
        }
        tried++;
        if (icl_gguf_open_memory(&g, buf, n, &err) == 0) {
            opened++;
            bad += exercise(g, &acc);
            icl_gguf_close(g);
        }
    }
    free(buf);
    CHECK_MSG(bad == 0, "%s: %d inconsistencies under corruption", what, bad);
    printf("%s (%zu bytes): %zu truncations (%d opened: only trailing padding cut), %d corrupted copies (%d still valid), checksum %llu\n",
           what, n, n, ok_trunc, tried, opened, (unsigned long long)(acc & 0xffff));
}

static void test_corruption(void) {
    icl_err err = {{0}};
    char path[256];
    tmp_path(path, sizeof path, "full.gguf"); /* written by test_roundtrip */
    const char *files[2] = {path, V2_FIXTURE};
    for (int f = 0; f < 2; f++) {
        char *raw;
        size_t n;
        if (icl_read_file(files[f], &raw, &n, &err)) {
            CHECK_MSG(0, "%s", err.msg);
            continue;
        }
        uint8_t *exact = malloc(n);
        memcpy(exact, raw, n);
        free(raw);
        corrupt_all(files[f], exact, n, 1, 20000);
        free(exact);
    }
    /* truncations through the mmap path (each short of the last tensor's data) */
    char *raw;
    size_t n;
    if (icl_read_file(V2_FIXTURE, &raw, &n, &err) == 0) {
        char tp[256];
        tmp_path(tp, sizeof tp, "trunc.gguf");
        int opened = 0;
        size_t need = n - 16; /* the last tensor in the data section (w.f32, 48 bytes) is followed by 16 bytes of padding */
        for (size_t len = 1; len < need; len += 7) {
            icl_write_file_atomic(tp, raw, len, &err);
            icl_gguf *g;
            if (icl_gguf_open(&g, tp, &err) == 0) {
                opened++;
                icl_gguf_close(g);
            }
        }
        CHECK_MSG(opened == 0, "%d truncated copies of the v2 fixture opened", opened);
        free(raw);
    }
    /* a real vocab file: random truncations must all fail (it ends exactly at its last byte of
     * metadata), random flips in the first 8 KB must fail cleanly or parse consistently */
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s/ggml-vocab-gpt-2.gguf", vocab_dir());
    if (icl_read_file(vpath, &raw, &n, &err) == 0) {
        icl_rng rng;
        icl_rng_seed(&rng, 99);
        int opened = 0, bad = 0;
        uint64_t acc = 0;
        for (int it = 0; it < 100; it++) {
            size_t len = (size_t)icl_rng_below(&rng, n);
            icl_gguf *g;
            if (icl_gguf_open_memory(&g, raw, len, &err) == 0) {
                opened++;
                icl_gguf_close(g);
            }
        }
        CHECK_MSG(opened == 0, "%d truncated vocab copies opened", opened);
        uint8_t *buf = malloc(n);
        for (int it = 0; it < 200; it++) {
            memcpy(buf, raw, n);
            buf[icl_rng_below(&rng, 8192)] ^= (uint8_t)(1 + icl_rng_below(&rng, 255));
            icl_gguf *g;
            if (icl_gguf_open_memory(&g, buf, n, &err) == 0) {
                bad += exercise(g, &acc);
                icl_gguf_close(g);
            }
        }
        CHECK(bad == 0);
        free(buf);
        free(raw);
    } else {
        printf("SKIP %s: random truncations and flips of a real vocabulary file\n", err.msg);
    }
}

/* ------------------------------------------------------------------ writer errors */

static int count_tmp_files(void) {
    DIR *d = opendir(g_dir);
    int k = 0;
    if (!d) return -1;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) k++;
    closedir(d);
    return k;
}

static void test_writer_errors(void) {
    icl_err err = {{0}};
    icl_gguf_writer *w;
    CHECK(icl_gguf_writer_init(&w, &err) == 0);
    float data[64] = {0};
    CHECK(icl_gguf_writer_add_u32(w, "a", 1, &err) == 0);
    CHECK(icl_gguf_writer_add_i32(w, "a", 1, &err) == -1 && strstr(err.msg, "duplicate key 'a'"));
    CHECK(icl_gguf_writer_add_str(w, "", "x", &err) == -1);
    CHECK(icl_gguf_writer_add_str(w, "s", NULL, &err) == -1);
    CHECK(icl_gguf_writer_add_u64(w, "general.alignment", 64, &err) == -1 && strstr(err.msg, "uint32"));
    CHECK(icl_gguf_writer_add_u32(w, "general.alignment", 48, &err) == -1 && strstr(err.msg, "power of two"));
    CHECK(icl_gguf_writer_add_arr(w, "arr", ICL_GGUF_STRING, data, 1, &err) == -1);
    CHECK(icl_gguf_writer_add_arr(w, "arr", 42, data, 1, &err) == -1);
    CHECK(icl_gguf_writer_add_tensor(w, "t", ICL_GGML_F32, 1, (int64_t[]){64}, data, &err) == 0);
    CHECK(icl_gguf_writer_add_tensor(w, "t", ICL_GGML_F32, 1, (int64_t[]){64}, data, &err) == -1 && strstr(err.msg, "duplicate tensor name 't'"));
    CHECK(icl_gguf_writer_add_tensor(w, "q", ICL_GGML_Q8_0, 1, (int64_t[]){33}, data, &err) == -1 && strstr(err.msg, "not a multiple"));
    CHECK(icl_gguf_writer_add_tensor(w, "u", 4, 1, (int64_t[]){1}, data, &err) == -1 && strstr(err.msg, "unknown ggml type 4"));
    CHECK(icl_gguf_writer_add_tensor(w, "d0", ICL_GGML_F32, 0, (int64_t[]){1}, data, &err) == -1);
    CHECK(icl_gguf_writer_add_tensor(w, "d5", ICL_GGML_F32, 5, (int64_t[]){1, 1, 1, 1, 1}, data, &err) == -1);
    CHECK(icl_gguf_writer_add_tensor(w, "neg", ICL_GGML_F32, 1, (int64_t[]){-1}, data, &err) == -1);
    CHECK(icl_gguf_writer_add_tensor(w, "null", ICL_GGML_F32, 1, (int64_t[]){4}, NULL, &err) == -1);
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK(icl_gguf_writer_add_tensor(w, longname, ICL_GGML_F32, 1, (int64_t[]){1}, data, &err) == -1 && strstr(err.msg, "1..63"));
    longname[63] = 0;
    CHECK(icl_gguf_writer_add_tensor(w, longname, ICL_GGML_F32, 1, (int64_t[]){1}, data, &err) == 0);
    icl_gguf *g = NULL;
    CHECK(icl_gguf_open(&g, V2_FIXTURE, &err) == 0);
    if (g) {
        CHECK(icl_gguf_writer_copy_kv(w, g, 99, &err) == -1);
        CHECK(icl_gguf_writer_copy_kv(w, g, icl_gguf_find_key(g, "general.alignment"), &err) == 0);
        icl_gguf_close(g);
    }
    /* failed adds left no trace: the file holds exactly what was accepted */
    char path[256];
    tmp_path(path, sizeof path, "errs.gguf");
    CHECK_MSG(icl_gguf_writer_write(w, path, &err) == 0, "%s", err.msg);
    CHECK(icl_gguf_open(&g, path, &err) == 0);
    if (g) {
        CHECK(icl_gguf_n_kv(g) == 2 && icl_gguf_n_tensors(g) == 2 && icl_gguf_alignment(g) == 64);
        CHECK(icl_gguf_find_key(g, "arr") < 0 && icl_gguf_find_tensor(g, longname) != NULL);
        icl_gguf_close(g);
    }
    /* missing directory: error, nothing written */
    tmp_path(path, sizeof path, "missing/x.gguf");
    CHECK(icl_gguf_writer_write(w, path, &err) == -1 && strstr(err.msg, "cannot create"));
    CHECK(!icl_path_exists(path));
    icl_gguf_writer_free(w);

    /* a full disk, simulated with a file-size limit (EFBIG): no target, no temporary left, and an
     * existing file of the same name keeps its old contents */
    static float big[16384];
    for (int i = 0; i < 16384; i++) big[i] = (float)i;
    CHECK(icl_gguf_writer_init(&w, &err) == 0);
    CHECK(icl_gguf_writer_add_tensor(w, "big", ICL_GGML_F32, 2, (int64_t[]){128, 128}, big, &err) == 0);
    char fresh[256], old[256];
    tmp_path(fresh, sizeof fresh, "full_disk.gguf");
    tmp_path(old, sizeof old, "keep.gguf");
    CHECK(icl_write_file_atomic(old, "old contents", 12, &err) == 0);
    struct rlimit rl;
    getrlimit(RLIMIT_FSIZE, &rl);
    struct rlimit small = {16384, rl.rlim_max};
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &small) == 0) {
        int r1 = icl_gguf_writer_write(w, fresh, &err);
        CHECK_MSG(r1 == -1 && err.msg[0], "write past the size limit should fail");
        printf("full-disk write failed as expected: %s\n", err.msg);
        int r2 = icl_gguf_writer_write(w, old, &err);
        setrlimit(RLIMIT_FSIZE, &rl);
        CHECK(r2 == -1);
        CHECK(!icl_path_exists(fresh));
        char *raw;
        size_t n;
        CHECK(icl_read_file(old, &raw, &n, &err) == 0 && n == 12 && memcmp(raw, "old contents", 12) == 0);
        free(raw);
        CHECK_MSG(count_tmp_files() == 0, "%d temporary files left", count_tmp_files());
    } else {
        printf("SKIP cannot lower RLIMIT_FSIZE: the full-disk test\n");
    }
    signal(SIGXFSZ, prev);
    /* and without the limit the same write works */
    CHECK(icl_gguf_writer_write(w, fresh, &err) == 0);
    CHECK(icl_gguf_open(&g, fresh, &err) == 0);
    if (g) {
        const icl_gguf_tensor *t = icl_gguf_find_tensor(g, "big");
        CHECK(t && t->n_bytes == sizeof big && memcmp(t->data, big, sizeof big) == 0);
        icl_gguf_close(g);
    }
    icl_gguf_writer_free(w);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/iclab-gguf-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_type_table();
    test_half();
    test_roundtrip();
    test_v2_fixture();
    test_quant_fixture();
    test_vocab_files();
    test_malformed();
    test_corruption();
    test_writer_errors();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return icl_test_finish();
}
