/* Random-weight GGUF models (icl_mkmodel): every architecture is written, reopened with the GGUF
 * reader and checked against llama.cpp's layout written out here independently (tensor names,
 * ggml shapes, types, metadata keys and values, the copied tokenizer); weight statistics (norms
 * near 1, matrices of std 1/sqrt(fan_in)); Llama-3.1 rope_freqs against the formula; quantized
 * weight types; determinism (same options -> same bytes, another seed -> other bytes, a tensor's
 * values independent of the other tensors); bad options rejected with no file left behind.
 * Needs the vocabulary GGUFs in $ICLAB_VOCAB_DIR (make test sets it); skipped without. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_gguf.h"
#include "iclab/icl_mkmodel.h"
#include "iclab/icl_quant.h"
#include "icl_test.h"

static char g_dir[64];
static char g_vocab_spm[512], g_vocab_gpt2[512], g_vocab_bpe[512];

static void tmp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* Whole file into memory (NULL if unreadable). */
static unsigned char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static int same_files(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int same = pa && pb && na == nb && !memcmp(pa, pb, na);
    free(pa);
    free(pb);
    return same;
}

/* The tensor must exist with this type and 1-D (ne1 = 0) or 2-D shape. */
static void expect_tensor(const icl_gguf *g, const char *name, int type, int64_t ne0, int64_t ne1) {
    const icl_gguf_tensor *t = icl_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "tensor %s missing", name);
    if (!t) return;
    CHECK_MSG(t->type == type, "%s: type %s, expected %s", name, icl_quant_type_name(t->type), icl_quant_type_name(type));
    CHECK_MSG(t->n_dims == (ne1 ? 2 : 1), "%s: %d dims", name, t->n_dims);
    CHECK_MSG(t->ne[0] == ne0 && t->ne[1] == (ne1 ? ne1 : 1), "%s: ne {%lld, %lld}, expected {%lld, %lld}", name,
              (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)(ne1 ? ne1 : 1));
}

static void expect_blk(const icl_gguf *g, int l, const char *suffix, int type, int64_t ne0, int64_t ne1) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s", l, suffix);
    expect_tensor(g, name, type, ne0, ne1);
}

static void expect_u32(const icl_gguf *g, const char *arch, const char *suffix, int64_t want) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    uint32_t v = 0;
    icl_err err;
    int rc = icl_gguf_get_u32(g, key, &v, &err);
    CHECK_MSG(!rc && v == want, "%s = %u (rc %d), expected %lld", key, v, rc, (long long)want);
}

static void expect_f32(const icl_gguf *g, const char *arch, const char *suffix, float want) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    float v = 0;
    icl_err err;
    int rc = icl_gguf_get_f32(g, key, &v, &err);
    CHECK_MSG(!rc && v == want, "%s = %g (rc %d), expected %g", key, v, rc, want);
}

static int has_key(const icl_gguf *g, const char *arch, const char *suffix) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return icl_gguf_find_key(g, key) >= 0;
}

/* Mean and standard deviation of a tensor's values (dequantized). */
static void tensor_stats(const icl_gguf *g, const char *name, double *mean, double *sd) {
    *mean = *sd = NAN;
    const icl_gguf_tensor *t = icl_gguf_find_tensor(g, name);
    if (!t) return;
    float *v = malloc(sizeof(float) * (size_t)t->n_elements);
    icl_err err;
    if (v && !icl_gguf_tensor_to_f32(t, v, &err)) {
        double s = 0, s2 = 0;
        for (int64_t i = 0; i < t->n_elements; i++) s += v[i];
        *mean = s / t->n_elements;
        for (int64_t i = 0; i < t->n_elements; i++) s2 += (v[i] - *mean) * (v[i] - *mean);
        *sd = sqrt(s2 / t->n_elements);
    }
    free(v);
}

/* Checks a written model against llama.cpp's layout for its options, written out independently of
 * the maker. Returns the open file (caller closes) or NULL. */
static icl_gguf *check_layout(const char *path, const icl_mkmodel_opts *o) {
    icl_err err;
    icl_gguf *g = NULL, *voc = NULL;
    CHECK_MSG(!icl_gguf_open(&g, path, &err), "%s", err.msg);
    CHECK_MSG(!icl_gguf_open(&voc, o->vocab_path, &err), "%s", err.msg);
    if (!g || !voc) {
        icl_gguf_close(g);
        icl_gguf_close(voc);
        return NULL;
    }
    const char *arch = o->arch;
    int gpt2 = !strcmp(arch, "gpt2"), olmo = !strcmp(arch, "olmo"), gemma2 = !strcmp(arch, "gemma2");
    int qwen2 = !strcmp(arch, "qwen2");
    icl_gguf_arr toks;
    CHECK(!icl_gguf_get_arr(voc, "tokenizer.ggml.tokens", &toks, &err));
    int64_t V = (int64_t)toks.n, C = o->n_embd, F = o->n_ff, hd = o->head_dim ? o->head_dim : C / o->n_head;
    int64_t Q = hd * o->n_head, KV = hd * o->n_head_kv;
    int wt = o->weight_type, f32 = ICL_GGML_F32;

    /* metadata */
    const char *s = NULL;
    CHECK(!icl_gguf_get_str(g, "general.architecture", &s, &err) && !strcmp(s, arch));
    CHECK(icl_gguf_find_key(g, "general.name") >= 0);
    expect_u32(g, arch, "context_length", o->n_ctx);
    expect_u32(g, arch, "embedding_length", C);
    expect_u32(g, arch, "block_count", o->n_layer);
    expect_u32(g, arch, "feed_forward_length", F);
    expect_u32(g, arch, "attention.head_count", o->n_head);
    expect_u32(g, arch, "attention.head_count_kv", o->n_head_kv);
    expect_u32(g, arch, "attention.key_length", hd);
    expect_u32(g, arch, "attention.value_length", hd);
    expect_u32(g, arch, "vocab_size", V);
    int n_keys = 2 + 10;
    if (gpt2 || olmo) {
        expect_f32(g, arch, "attention.layer_norm_epsilon", 1e-5f);
        CHECK(!has_key(g, arch, "attention.layer_norm_rms_epsilon"));
    } else {
        expect_f32(g, arch, "attention.layer_norm_rms_epsilon", gemma2 ? 1e-6f : 1e-5f);
        CHECK(!has_key(g, arch, "attention.layer_norm_epsilon"));
    }
    if (gpt2) CHECK(!has_key(g, arch, "rope.freq_base") && !has_key(g, arch, "rope.dimension_count"));
    else {
        float theta = o->rope_theta ? o->rope_theta : qwen2 ? 1e6f : o->llama3_rope ? 5e5f : 1e4f;
        expect_f32(g, arch, "rope.freq_base", theta);
        expect_u32(g, arch, "rope.dimension_count", hd);
        n_keys += 2;
    }
    if (gemma2) {
        expect_f32(g, arch, "attn_logit_softcapping", 50.0f);
        expect_f32(g, arch, "final_logit_softcapping", 30.0f);
        expect_u32(g, arch, "attention.sliding_window", o->sliding_window ? o->sliding_window : 4096);
        n_keys += 3;
    }
    /* every tokenizer.* key of the vocabulary, same type and rendering */
    char a[256], b[256];
    for (int i = 0; i < icl_gguf_n_kv(voc); i++) {
        const char *k = icl_gguf_kv_key(voc, i);
        if (strncmp(k, "tokenizer.", 10)) continue;
        n_keys++;
        int j = icl_gguf_find_key(g, k);
        CHECK_MSG(j >= 0, "key %s not copied", k);
        if (j < 0) continue;
        CHECK_MSG(icl_gguf_kv_type(g, j) == icl_gguf_kv_type(voc, i), "key %s: type changed", k);
        icl_gguf_kv_format(g, j, a, sizeof a);
        icl_gguf_kv_format(voc, i, b, sizeof b);
        CHECK_MSG(!strcmp(a, b), "key %s: %s vs %s", k, a, b);
    }
    icl_gguf_arr mt;
    CHECK(!icl_gguf_get_arr(g, "tokenizer.ggml.tokens", &mt, &err) && mt.n == toks.n);
    CHECK_MSG(icl_gguf_n_kv(g) == n_keys, "%s: %d keys, expected %d", arch, icl_gguf_n_kv(g), n_keys);

    /* tensors */
    int n_t = 1;
    expect_tensor(g, "token_embd.weight", wt, C, V);
    if (gpt2) expect_tensor(g, "position_embd.weight", f32, C, o->n_ctx), n_t++;
    if (!olmo) expect_tensor(g, "output_norm.weight", f32, C, 0), n_t++;
    else CHECK(!icl_gguf_find_tensor(g, "output_norm.weight"));
    if (gpt2) expect_tensor(g, "output_norm.bias", f32, C, 0), n_t++;
    if (o->tied_output) CHECK(!icl_gguf_find_tensor(g, "output.weight"));
    else expect_tensor(g, "output.weight", wt, C, V), n_t++;
    if (o->llama3_rope) expect_tensor(g, "rope_freqs.weight", f32, hd / 2, 0), n_t++;
    else CHECK(!icl_gguf_find_tensor(g, "rope_freqs.weight"));
    for (int l = 0; l < o->n_layer; l++) {
        if (gpt2) {
            expect_blk(g, l, "attn_norm.weight", f32, C, 0);
            expect_blk(g, l, "attn_norm.bias", f32, C, 0);
            expect_blk(g, l, "attn_qkv.weight", wt, C, 3 * C);
            expect_blk(g, l, "attn_qkv.bias", f32, 3 * C, 0);
            expect_blk(g, l, "attn_output.weight", wt, C, C);
            expect_blk(g, l, "attn_output.bias", f32, C, 0);
            expect_blk(g, l, "ffn_norm.weight", f32, C, 0);
            expect_blk(g, l, "ffn_norm.bias", f32, C, 0);
            expect_blk(g, l, "ffn_up.weight", wt, C, F);
            expect_blk(g, l, "ffn_up.bias", f32, F, 0);
            expect_blk(g, l, "ffn_down.weight", wt, F, C);
            expect_blk(g, l, "ffn_down.bias", f32, C, 0);
            n_t += 12;
            continue;
        }
        if (!olmo) expect_blk(g, l, "attn_norm.weight", f32, C, 0), expect_blk(g, l, "ffn_norm.weight", f32, C, 0), n_t += 2;
        expect_blk(g, l, "attn_q.weight", wt, C, Q);
        expect_blk(g, l, "attn_k.weight", wt, C, KV);
        expect_blk(g, l, "attn_v.weight", wt, C, KV);
        expect_blk(g, l, "attn_output.weight", wt, Q, C);
        expect_blk(g, l, "ffn_gate.weight", wt, C, F);
        expect_blk(g, l, "ffn_up.weight", wt, C, F);
        expect_blk(g, l, "ffn_down.weight", wt, F, C);
        n_t += 7;
        if (qwen2) {
            expect_blk(g, l, "attn_q.bias", f32, Q, 0);
            expect_blk(g, l, "attn_k.bias", f32, KV, 0);
            expect_blk(g, l, "attn_v.bias", f32, KV, 0);
            n_t += 3;
        }
        if (gemma2) {
            expect_blk(g, l, "post_attention_norm.weight", f32, C, 0);
            expect_blk(g, l, "post_ffw_norm.weight", f32, C, 0);
            n_t += 2;
        }
    }
    CHECK_MSG(icl_gguf_n_tensors(g) == n_t, "%s: %d tensors, expected %d", arch, icl_gguf_n_tensors(g), n_t);
    icl_gguf_close(voc);
    return g;
}

/* Writes o to name in the temp dir and checks the layout; returns the open file or NULL. */
static icl_gguf *write_and_check(const icl_mkmodel_opts *o, const char *name, char *path, size_t n) {
    icl_err err;
    tmp_path(path, n, name);
    int rc = icl_mkmodel_write(o, path, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    return rc ? NULL : check_layout(path, o);
}

static void check_stats(const icl_gguf *g, const char *name, double mean, double sd, double tol_mean, double tol_sd_rel) {
    double m, s;
    tensor_stats(g, name, &m, &s);
    CHECK_MSG(fabs(m - mean) <= tol_mean, "%s: mean %g, expected %g", name, m, mean);
    CHECK_MSG(fabs(s - sd) <= tol_sd_rel * sd, "%s: sd %g, expected %g", name, s, sd);
}

/* Every architecture in the shapes the engine's fixtures use, plus weight statistics. */
static void test_archs(void) {
    static const struct {
        const char *file, *arch, *vocab;
        int head_dim, window, llama3, tied;
    } cases[] = {
        {"llama.gguf", "llama", g_vocab_spm, 0, 0, 0, 0},     {"llama3.gguf", "llama", g_vocab_bpe, 0, 0, 1, 0},
        {"llama_tied.gguf", "llama", g_vocab_spm, 0, 0, 0, 1}, {"qwen2.gguf", "qwen2", g_vocab_gpt2, 0, 0, 0, 0},
        {"gemma2.gguf", "gemma2", g_vocab_spm, 32, 4, 0, 1},  {"gpt2.gguf", "gpt2", g_vocab_gpt2, 0, 0, 0, 0},
        {"olmo.gguf", "olmo", g_vocab_spm, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        icl_mkmodel_opts o;
        icl_mkmodel_defaults(&o, cases[i].arch);
        o.vocab_path = cases[i].vocab;
        o.head_dim = cases[i].head_dim;
        o.sliding_window = cases[i].window;
        o.llama3_rope = cases[i].llama3;
        o.tied_output = cases[i].tied;
        o.seed = 7 + i;
        char path[128];
        icl_gguf *g = write_and_check(&o, cases[i].file, path, sizeof path);
        if (!g) continue;
        int gpt2 = !strcmp(o.arch, "gpt2");
        check_stats(g, "token_embd.weight", 0, 1 / sqrt(64.0), 0.002, 0.02);
        check_stats(g, "blk.1.ffn_down.weight", 0, 1 / sqrt(128.0), 0.01, 0.05);
        check_stats(g, gpt2 ? "blk.0.attn_qkv.weight" : "blk.0.attn_q.weight", 0, 1 / 8.0, 0.01, 0.05);
        if (strcmp(o.arch, "olmo")) check_stats(g, "blk.0.attn_norm.weight", 1, 0.1, 0.05, 0.3);
        if (gpt2) check_stats(g, "blk.0.ffn_up.bias", 0, 0.1, 0.05, 0.3);
        if (!strcmp(o.arch, "qwen2")) check_stats(g, "blk.1.attn_q.bias", 0, 0.1, 0.05, 0.3);
        icl_gguf_close(g);
    }
}

/* rope_freqs.weight holds Llama-3.1's factors: 1 for high frequencies, 8 for low ones, smooth in between. */
static void test_llama3_rope(void) {
    icl_mkmodel_opts o;
    icl_mkmodel_defaults(&o, "llama");
    o.vocab_path = g_vocab_spm;
    o.llama3_rope = 1;
    char path[128];
    icl_gguf *g = write_and_check(&o, "rope.gguf", path, sizeof path);
    const icl_gguf_tensor *t = g ? icl_gguf_find_tensor(g, "rope_freqs.weight") : NULL;
    CHECK(t != NULL);
    if (!t) {
        icl_gguf_close(g);
        return;
    }
    const float *f = t->data;
    int hd = 16, n_mid = 0;
    for (int i = 0; i < hd / 2; i++) {
        /* wavelength of pair i at theta 500000, against original context 8192 / high factor 4 / low factor 1 */
        double wavelen = 2 * M_PI * pow(500000.0, 2.0 * i / hd), want;
        if (wavelen < 2048) want = 1;
        else if (wavelen > 8192) want = 8;
        else {
            double s = (8192 / wavelen - 1) / 3;
            want = 1 / ((1 - s) / 8 + s);
            n_mid++;
        }
        CHECK_NEAR(f[i], want, 1e-6 * want);
        if (i) CHECK(f[i] >= f[i - 1]);
    }
    CHECK(f[0] == 1.0f && f[hd / 2 - 1] == 8.0f && n_mid >= 1);
    icl_gguf_close(g);
}

/* Same options -> same bytes; another seed -> other bytes; token_embd the same tied or untied. */
static void test_determinism(void) {
    icl_mkmodel_opts o;
    icl_mkmodel_defaults(&o, "qwen2");
    o.vocab_path = g_vocab_gpt2;
    char p1[128], p2[128], p3[128], p4[128];
    icl_err err;
    tmp_path(p1, sizeof p1, "det1.gguf");
    tmp_path(p2, sizeof p2, "det2.gguf");
    tmp_path(p3, sizeof p3, "det3.gguf");
    tmp_path(p4, sizeof p4, "det4.gguf");
    CHECK(!icl_mkmodel_write(&o, p1, &err));
    CHECK(!icl_mkmodel_write(&o, p2, &err));
    CHECK_MSG(same_files(p1, p2), "two writes with the same options differ");
    o.seed = 2;
    CHECK(!icl_mkmodel_write(&o, p3, &err));
    CHECK_MSG(!same_files(p1, p3), "seed 2 wrote the same bytes as seed 1");
    o.seed = 1;
    o.tied_output = 1;
    CHECK(!icl_mkmodel_write(&o, p4, &err));
    icl_gguf *a = NULL, *b = NULL;
    CHECK(!icl_gguf_open(&a, p1, &err) && !icl_gguf_open(&b, p4, &err));
    const icl_gguf_tensor *ta = a ? icl_gguf_find_tensor(a, "token_embd.weight") : NULL;
    const icl_gguf_tensor *tb = b ? icl_gguf_find_tensor(b, "token_embd.weight") : NULL;
    CHECK(ta && tb && ta->n_bytes == tb->n_bytes && !memcmp(ta->data, tb->data, ta->n_bytes));
    CHECK(b && !icl_gguf_find_tensor(b, "output.weight"));
    icl_gguf_close(a);
    icl_gguf_close(b);
}

/* Quantized weight types: matrices in the requested type, vectors F32, values those of the F32
 * model up to the type's rounding. Types the quantizer cannot produce yet must be refused. */
static void test_types(void) {
    static const struct {
        int type;
        double tol; /* relative L2 error of a dequantized matrix against the F32 values */
    } types[] = {{ICL_GGML_F16, 5e-4}, {ICL_GGML_BF16, 4e-3}, {ICL_GGML_Q8_0, 8e-3}, {ICL_GGML_Q4_0, 0.12},
                 {ICL_GGML_Q4_K, 0.12}, {ICL_GGML_Q5_K, 0.06}, {ICL_GGML_Q6_K, 0.03}};
    icl_mkmodel_opts o;
    icl_mkmodel_defaults(&o, "llama");
    o.vocab_path = g_vocab_spm;
    o.n_embd = o.n_ff = 256; /* whole K-quant blocks everywhere */
    o.tied_output = 1;      /* one vocabulary-sized matrix is enough */
    char ref_path[128];
    icl_gguf *ref = write_and_check(&o, "type_f32.gguf", ref_path, sizeof ref_path);
    for (size_t i = 0; ref && i < sizeof types / sizeof types[0]; i++) {
        o.weight_type = types[i].type;
        char name[64], path[128];
        snprintf(name, sizeof name, "type_%s.gguf", icl_quant_type_name(types[i].type));
        if (!icl_quant_can_quantize(types[i].type)) {
            icl_err err;
            tmp_path(path, sizeof path, name);
            CHECK_MSG(icl_mkmodel_write(&o, path, &err) != 0 && access(path, F_OK) != 0, "%s: not refused", name);
            printf("  %s: not supported by the quantizer yet, refused\n", icl_quant_type_name(types[i].type));
            continue;
        }
        icl_gguf *g = write_and_check(&o, name, path, sizeof path);
        if (!g) continue;
        double worst = 0;
        const char *names[] = {"token_embd.weight", "blk.0.attn_q.weight", "blk.1.ffn_down.weight", "output_norm.weight"};
        for (int k = 0; k < 4; k++) {
            const icl_gguf_tensor *t = icl_gguf_find_tensor(g, names[k]), *r = icl_gguf_find_tensor(ref, names[k]);
            if (!t || !r || t->n_elements != r->n_elements) {
                CHECK_MSG(0, "%s: %s missing or resized", name, names[k]);
                continue;
            }
            float *a = malloc(sizeof(float) * (size_t)t->n_elements), *b = malloc(sizeof(float) * (size_t)t->n_elements);
            icl_err err;
            if (a && b && !icl_gguf_tensor_to_f32(t, a, &err) && !icl_gguf_tensor_to_f32(r, b, &err)) {
                double e = icl_rel_l2(a, b, (size_t)t->n_elements);
                double tol = k == 3 ? 0 : types[i].tol; /* norms stay F32: exact */
                CHECK_MSG(e <= tol, "%s %s: relative error %g > %g", name, names[k], e, tol);
                if (e > worst) worst = e;
            } else CHECK_MSG(0, "%s: cannot dequantize %s", name, names[k]);
            free(a);
            free(b);
        }
        printf("  %-5s largest relative error %.3g (limit %g)\n", icl_quant_type_name(types[i].type), worst, types[i].tol);
        icl_gguf_close(g);
    }
    icl_gguf_close(ref);
}

/* Bad options fail with a message and leave no file. */
static void test_bad(void) {
    char path[128], novocab[128];
    tmp_path(path, sizeof path, "bad.gguf");
    tmp_path(novocab, sizeof novocab, "novocab.gguf");
    icl_err err;
    icl_gguf_writer *w = NULL;
    CHECK(!icl_gguf_writer_init(&w, &err) && !icl_gguf_writer_add_str(w, "general.architecture", "llama", &err) &&
          !icl_gguf_writer_write(w, novocab, &err));
    icl_gguf_writer_free(w);
    for (int k = 0; k < 19; k++) {
        icl_mkmodel_opts o;
        icl_mkmodel_defaults(&o, "llama");
        o.vocab_path = g_vocab_spm;
        const char *what = "";
        switch (k) {
        case 0: o.arch = "mistral", what = "unknown arch"; break;
        case 1: o.arch = NULL, what = "no arch"; break;
        case 2: o.n_head_kv = 3, what = "n_head % n_head_kv"; break;
        case 3: o.head_dim = 15, what = "odd head_dim"; break;
        case 4: icl_mkmodel_defaults(&o, "gemma2"), o.vocab_path = g_vocab_spm, o.tied_output = 0, what = "gemma2 untied"; break;
        case 5: icl_mkmodel_defaults(&o, "qwen2"), o.vocab_path = g_vocab_spm, o.llama3_rope = 1, what = "llama3_rope on qwen2"; break;
        case 6: o.sliding_window = 8, what = "sliding_window on llama"; break;
        case 7: o.n_embd = 48, o.weight_type = ICL_GGML_Q8_0, what = "embd 48 in q8_0"; break;
        case 8: o.n_ff = 100, o.weight_type = ICL_GGML_Q8_0, what = "ff 100 in q8_0"; break;
        case 9: o.weight_type = ICL_GGML_Q4_1, what = "q4_1"; break;
        case 10: o.weight_type = 99, what = "type 99"; break;
        case 11: o.n_layer = 0, what = "no layers"; break;
        case 12: icl_mkmodel_defaults(&o, "qwen2"), o.vocab_path = g_vocab_spm, o.head_dim = 32, what = "qwen2 head_dim"; break;
        case 13: icl_mkmodel_defaults(&o, "gpt2"), o.vocab_path = g_vocab_spm, o.n_head_kv = 2, what = "gpt2 GQA"; break;
        case 14: o.vocab_path = "/nonexistent/vocab.gguf", what = "missing vocab"; break;
        case 15: o.vocab_path = novocab, what = "vocab without tokens"; break;
        case 16: o.vocab_path = NULL, what = "no vocab"; break;
        case 17: o.rope_theta = -1, what = "negative theta"; break;
        case 18: o.n_embd = 30, what = "embd not a multiple of heads"; break;
        }
        err.msg[0] = 0;
        int rc = icl_mkmodel_write(&o, path, &err);
        CHECK_MSG(rc != 0 && err.msg[0] && access(path, F_OK) != 0, "%s: accepted or left a file", what);
        if (rc) printf("  rejected %-28s %s\n", what, err.msg);
    }
    /* icl_mkmodel_check agrees with the writer on good options */
    icl_mkmodel_opts o;
    const char *archs[] = {"llama", "qwen2", "gemma2", "gpt2", "olmo"};
    for (int i = 0; i < 5; i++) {
        icl_mkmodel_defaults(&o, archs[i]);
        CHECK_MSG(!icl_mkmodel_check(&o, &err), "%s defaults: %s", archs[i], err.msg);
    }
}

int main(void) {
    const char *dir = getenv("ICLAB_VOCAB_DIR");
    if (!dir || !*dir) {
        printf("SKIP ICLAB_VOCAB_DIR is not set: every check (make test sets it)\n");
        return 0;
    }
    snprintf(g_vocab_spm, sizeof g_vocab_spm, "%s/ggml-vocab-llama-spm.gguf", dir);
    snprintf(g_vocab_bpe, sizeof g_vocab_bpe, "%s/ggml-vocab-llama-bpe.gguf", dir);
    snprintf(g_vocab_gpt2, sizeof g_vocab_gpt2, "%s/ggml-vocab-gpt-2.gguf", dir);
    snprintf(g_dir, sizeof g_dir, "/tmp/iclab-mkmodel-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_archs();
    test_llama3_rope();
    test_determinism();
    test_types();
    test_bad();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_dir);
    return icl_test_finish();
}
