/* Random-weight GGUF language models in llama.cpp's layout (see icl_mkmodel.h): the metadata and
 * tensors a converted llama / qwen2 / gemma2 / gpt2 / olmo checkpoint has, with weights from
 * icl_rng and the tokenizer of a vocabulary GGUF, for testing and benchmarking the inference engine
 * without downloadable weights. */
#include "iclab/icl_mkmodel.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_gguf.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"

enum { A_LLAMA, A_QWEN2, A_GEMMA2, A_GPT2, A_OLMO, A_COUNT };
static const char *const arch_names[A_COUNT] = {"llama", "qwen2", "gemma2", "gpt2", "olmo"};

/* Largest accepted size of one dimension and of the layer count: far beyond any model this is for,
 * small enough that every product below fits in int64 without checks. */
#define MK_MAX_DIM (1 << 20)
#define MK_MAX_LAYERS 1024

static int arch_id(const char *arch) {
    for (int a = 0; arch && a < A_COUNT; a++)
        if (!strcmp(arch, arch_names[a])) return a;
    return -1;
}

void icl_mkmodel_defaults(icl_mkmodel_opts *o, const char *arch) {
    memset(o, 0, sizeof *o);
    o->arch = arch;
    o->n_embd = 64;
    o->n_layer = 2;
    o->n_head = 4;
    int a = arch_id(arch);
    o->n_head_kv = (a == A_GPT2 || a == A_OLMO) ? 4 : 2;
    o->n_ff = 128;
    o->n_ctx = 256;
    o->weight_type = ICL_GGML_F32;
    o->tied_output = a == A_GEMMA2;
    o->seed = 1;
}

static int head_dim_of(const icl_mkmodel_opts *o) { return o->head_dim ? o->head_dim : o->n_embd / o->n_head; }

/* ne[0] of a matrix must hold whole quantization blocks. */
static int check_cols(const char *what, int64_t cols, int type, icl_err *err) {
    int64_t bs = icl_quant_block_size(type);
    if (cols % bs)
        return icl_errf(err, "%s rows have %lld elements, not a multiple of %s's block size %lld", what,
                        (long long)cols, icl_quant_type_name(type), (long long)bs);
    return 0;
}

int icl_mkmodel_check(const icl_mkmodel_opts *o, icl_err *err) {
    int a = arch_id(o->arch);
    if (a < 0) return icl_errf(err, "unknown architecture '%s' (llama, qwen2, gemma2, gpt2, olmo)", o->arch ? o->arch : "(null)");
    const struct {
        const char *name;
        int v, lo, hi;
    } dims[] = {{"n_embd", o->n_embd, 1, MK_MAX_DIM},       {"n_layer", o->n_layer, 1, MK_MAX_LAYERS},
                {"n_head", o->n_head, 1, MK_MAX_DIM},       {"n_head_kv", o->n_head_kv, 1, MK_MAX_DIM},
                {"n_ff", o->n_ff, 1, MK_MAX_DIM},           {"head_dim", o->head_dim, 0, MK_MAX_DIM},
                {"n_ctx", o->n_ctx, 1, MK_MAX_DIM},         {"sliding_window", o->sliding_window, 0, MK_MAX_DIM}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v < dims[i].lo || dims[i].v > dims[i].hi)
            return icl_errf(err, "%s = %d is out of range %d..%d", dims[i].name, dims[i].v, dims[i].lo, dims[i].hi);
    if (o->n_head % o->n_head_kv) return icl_errf(err, "n_head %d is not a multiple of n_head_kv %d", o->n_head, o->n_head_kv);
    if (!o->head_dim && o->n_embd % o->n_head)
        return icl_errf(err, "n_embd %d is not a multiple of n_head %d (give head_dim)", o->n_embd, o->n_head);
    int hd = head_dim_of(o);
    if ((int64_t)hd * o->n_head > MK_MAX_DIM) return icl_errf(err, "head_dim * n_head = %lld is too large", (long long)hd * o->n_head);
    if (a != A_GPT2 && hd % 2) return icl_errf(err, "head_dim %d is odd (RoPE rotates pairs)", hd);
    /* llama.cpp builds these with q/k/v of width n_embd: no separate head_dim, and gpt2 / olmo have no GQA. */
    if ((a == A_QWEN2 || a == A_GPT2 || a == A_OLMO) && hd * o->n_head != o->n_embd)
        return icl_errf(err, "%s needs head_dim * n_head = n_embd (%d * %d != %d)", arch_names[a], hd, o->n_head, o->n_embd);
    if ((a == A_GPT2 || a == A_OLMO) && o->n_head_kv != o->n_head)
        return icl_errf(err, "%s has no grouped-query attention: n_head_kv must equal n_head (%d)", arch_names[a], o->n_head);
    if (o->llama3_rope && a != A_LLAMA) return icl_errf(err, "llama3_rope is for arch llama only");
    if (o->sliding_window && a != A_GEMMA2) return icl_errf(err, "sliding_window is for arch gemma2 only");
    if (a == A_GEMMA2 && !o->tied_output) return icl_errf(err, "gemma2 always ties the LM head to token_embd (set tied_output)");
    if (!(o->rope_theta >= 0) || isinf(o->rope_theta)) return icl_errf(err, "rope_theta %g is not a finite value >= 0", o->rope_theta);
    int t = o->weight_type;
    if (t != ICL_GGML_F32 && t != ICL_GGML_F16 && t != ICL_GGML_BF16 && t != ICL_GGML_Q8_0 && t != ICL_GGML_Q4_0 &&
        t != ICL_GGML_Q4_K && t != ICL_GGML_Q5_K && t != ICL_GGML_Q6_K)
        return icl_errf(err, "weight type %s (%d) is not one of f32, f16, bf16, q8_0, q4_0, q4_K, q5_K, q6_K",
                        icl_quant_type_name(t), t);
    if (!icl_quant_can_quantize(t)) return icl_errf(err, "cannot quantize weights to %s yet", icl_quant_type_name(t));
    if (check_cols("n_embd-wide matrix", o->n_embd, t, err) || check_cols("attn_output", (int64_t)hd * o->n_head, t, err) ||
        check_cols("ffn_down", o->n_ff, t, err))
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ building the file */

enum { K_MAT, K_MAT_F32, K_NORM, K_BIAS };

typedef struct mk_build {
    const icl_mkmodel_opts *o;
    int arch;
    icl_gguf_writer *w;
    void **bufs; /* tensor data, alive until the file is written */
    int n_bufs, cap_bufs;
} mk_build;

/* FNV-1a: the stream of a tensor's random values comes from its name, not its position. */
static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return h;
}

static int keep_buf(mk_build *b, void *p, icl_err *err) {
    if (b->n_bufs == b->cap_bufs) {
        int cap = b->cap_bufs ? 2 * b->cap_bufs : 64;
        void **nb = realloc(b->bufs, sizeof(void *) * (size_t)cap);
        if (!nb) {
            free(p);
            return icl_errf(err, "out of memory");
        }
        b->bufs = nb;
        b->cap_bufs = cap;
    }
    b->bufs[b->n_bufs++] = p;
    return 0;
}

/* Adds tensor `name` of ggml shape {ne0, ne1} (ne1 = 0: a vector of ne0) filled as `kind` says. */
static int add_random(mk_build *b, const char *name, int kind, int64_t ne0, int64_t ne1, icl_err *err) {
    int type = kind == K_MAT ? b->o->weight_type : ICL_GGML_F32;
    int64_t rows = ne1 ? ne1 : 1;
    uint64_t row_bytes;
    if (icl_quant_row_bytes(type, ne0, &row_bytes, err)) return icl_err_prefix(err, "tensor %s: ", name);
    unsigned char *data = malloc(row_bytes * (uint64_t)rows);
    float *row = malloc(sizeof(float) * (size_t)ne0);
    if (!data || !row) {
        free(data);
        free(row);
        return icl_errf(err, "out of memory for tensor %s (%lld x %lld)", name, (long long)ne0, (long long)rows);
    }
    if (keep_buf(b, data, err)) {
        free(row);
        return -1;
    }
    icl_rng rng;
    icl_rng_seed_stream(&rng, b->o->seed, name_hash(name));
    double scale = kind == K_NORM || kind == K_BIAS ? 0.1 : 1.0 / sqrt((double)ne0);
    double offset = kind == K_NORM ? 1.0 : 0.0;
    int rc = 0;
    for (int64_t r = 0; r < rows && !rc; r++) {
        for (int64_t c = 0; c < ne0; c++) row[c] = (float)(offset + scale * icl_rng_normal(&rng));
        rc = icl_quant_quantize_row(type, row, data + (uint64_t)r * row_bytes, ne0, err);
    }
    free(row);
    if (rc) return icl_err_prefix(err, "tensor %s: ", name);
    int64_t ne[2] = {ne0, rows};
    return icl_gguf_writer_add_tensor(b->w, name, type, ne1 ? 2 : 1, ne, data, err);
}

/* Per-layer tensor blk.<il>.<suffix>. */
static int add_blk(mk_build *b, int il, const char *suffix, int kind, int64_t ne0, int64_t ne1, icl_err *err) {
    char name[64];
    snprintf(name, sizeof name, "blk.%d.%s", il, suffix);
    return add_random(b, name, kind, ne0, ne1, err);
}

/* Llama-3.1's RoPE frequency factors as llama.cpp's converter computes them (rope_freqs.weight, one
 * per rotated pair): 1 for wavelengths below original_context / high_freq_factor, `factor` above
 * original_context / low_freq_factor, and a smooth interpolation in between. */
static int add_rope_freqs(mk_build *b, int hd, double theta, icl_err *err) {
    const double factor = 8, low = 1, high = 4, orig_ctx = 8192;
    float *f = malloc(sizeof(float) * (size_t)(hd / 2));
    if (!f) return icl_errf(err, "out of memory");
    if (keep_buf(b, f, err)) return -1;
    for (int i = 0; i < hd / 2; i++) {
        double freq = 1.0 / pow(theta, 2.0 * i / hd);
        double wavelen = 2 * M_PI / freq;
        if (wavelen < orig_ctx / high) f[i] = 1.0f;
        else if (wavelen > orig_ctx / low) f[i] = (float)factor;
        else {
            double smooth = (orig_ctx / wavelen - low) / (high - low);
            f[i] = (float)(1.0 / ((1 - smooth) / factor + smooth));
        }
    }
    int64_t ne[1] = {hd / 2};
    return icl_gguf_writer_add_tensor(b->w, "rope_freqs.weight", ICL_GGML_F32, 1, ne, f, err);
}

static int kv_u32(mk_build *b, const char *suffix, uint32_t v, icl_err *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch_names[b->arch], suffix);
    return icl_gguf_writer_add_u32(b->w, key, v, err);
}

static int kv_f32(mk_build *b, const char *suffix, float v, icl_err *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch_names[b->arch], suffix);
    return icl_gguf_writer_add_f32(b->w, key, v, err);
}

/* The {arch}.* hyperparameters, then every tokenizer.* key of the vocabulary file. */
static int add_metadata(mk_build *b, const icl_gguf *vocab, int64_t n_vocab, icl_err *err) {
    const icl_mkmodel_opts *o = b->o;
    int a = b->arch, hd = head_dim_of(o);
    char name[64];
    snprintf(name, sizeof name, "iclab-random-%s", arch_names[a]);
    float theta = o->rope_theta > 0 ? o->rope_theta : a == A_QWEN2 ? 1e6f : o->llama3_rope ? 5e5f : 1e4f;
    if (icl_gguf_writer_add_str(b->w, "general.architecture", arch_names[a], err) ||
        icl_gguf_writer_add_str(b->w, "general.name", name, err) || kv_u32(b, "context_length", (uint32_t)o->n_ctx, err) ||
        kv_u32(b, "embedding_length", (uint32_t)o->n_embd, err) || kv_u32(b, "block_count", (uint32_t)o->n_layer, err) ||
        kv_u32(b, "feed_forward_length", (uint32_t)o->n_ff, err) ||
        kv_u32(b, "attention.head_count", (uint32_t)o->n_head, err) ||
        kv_u32(b, "attention.head_count_kv", (uint32_t)o->n_head_kv, err))
        return -1;
    int rc = a == A_GPT2 || a == A_OLMO ? kv_f32(b, "attention.layer_norm_epsilon", 1e-5f, err)
                                        : kv_f32(b, "attention.layer_norm_rms_epsilon", a == A_GEMMA2 ? 1e-6f : 1e-5f, err);
    /* gpt2 has learned positions: no RoPE keys. */
    if (!rc && a != A_GPT2)
        rc = kv_f32(b, "rope.freq_base", theta, err) || kv_u32(b, "rope.dimension_count", (uint32_t)hd, err);
    if (!rc)
        rc = kv_u32(b, "attention.key_length", (uint32_t)hd, err) || kv_u32(b, "attention.value_length", (uint32_t)hd, err) ||
             kv_u32(b, "vocab_size", (uint32_t)n_vocab, err);
    if (!rc && a == A_GEMMA2)
        rc = kv_f32(b, "attn_logit_softcapping", 50.0f, err) || kv_f32(b, "final_logit_softcapping", 30.0f, err) ||
             kv_u32(b, "attention.sliding_window", (uint32_t)(o->sliding_window ? o->sliding_window : 4096), err);
    for (int i = 0; !rc && i < icl_gguf_n_kv(vocab); i++)
        if (!strncmp(icl_gguf_kv_key(vocab, i), "tokenizer.", 10)) rc = icl_gguf_writer_copy_kv(b->w, vocab, i, err);
    return rc ? -1 : 0;
}

/* The tensors in llama.cpp's names and ggml shapes (ne[0] = input features). */
static int add_tensors(mk_build *b, int64_t n_vocab, icl_err *err) {
    const icl_mkmodel_opts *o = b->o;
    int a = b->arch;
    int64_t C = o->n_embd, F = o->n_ff, hd = head_dim_of(o), Q = hd * o->n_head, KV = hd * o->n_head_kv;
    if (add_random(b, "token_embd.weight", K_MAT, C, n_vocab, err)) return -1;
    /* llama.cpp's converter keeps position embeddings in F32 whatever the file type. */
    if (a == A_GPT2 && add_random(b, "position_embd.weight", K_MAT_F32, C, o->n_ctx, err)) return -1;
    /* olmo's LayerNorms have no parameters at all. */
    if (a != A_OLMO && add_random(b, "output_norm.weight", K_NORM, C, 0, err)) return -1;
    if (a == A_GPT2 && add_random(b, "output_norm.bias", K_BIAS, C, 0, err)) return -1;
    if (!o->tied_output && add_random(b, "output.weight", K_MAT, C, n_vocab, err)) return -1;
    if (o->llama3_rope) {
        float theta = o->rope_theta > 0 ? o->rope_theta : 5e5f;
        if (add_rope_freqs(b, (int)hd, theta, err)) return -1;
    }
    for (int l = 0; l < o->n_layer; l++) {
        int rc = 0;
        if (a == A_GPT2) {
            rc = add_blk(b, l, "attn_norm.weight", K_NORM, C, 0, err) || add_blk(b, l, "attn_norm.bias", K_BIAS, C, 0, err) ||
                 add_blk(b, l, "attn_qkv.weight", K_MAT, C, 3 * C, err) || add_blk(b, l, "attn_qkv.bias", K_BIAS, 3 * C, 0, err) ||
                 add_blk(b, l, "attn_output.weight", K_MAT, C, C, err) || add_blk(b, l, "attn_output.bias", K_BIAS, C, 0, err) ||
                 add_blk(b, l, "ffn_norm.weight", K_NORM, C, 0, err) || add_blk(b, l, "ffn_norm.bias", K_BIAS, C, 0, err) ||
                 add_blk(b, l, "ffn_up.weight", K_MAT, C, F, err) || add_blk(b, l, "ffn_up.bias", K_BIAS, F, 0, err) ||
                 add_blk(b, l, "ffn_down.weight", K_MAT, F, C, err) || add_blk(b, l, "ffn_down.bias", K_BIAS, C, 0, err);
            if (rc) return -1;
            continue;
        }
        rc = (a != A_OLMO && add_blk(b, l, "attn_norm.weight", K_NORM, C, 0, err)) ||
             add_blk(b, l, "attn_q.weight", K_MAT, C, Q, err) || add_blk(b, l, "attn_k.weight", K_MAT, C, KV, err) ||
             add_blk(b, l, "attn_v.weight", K_MAT, C, KV, err) ||
             (a == A_QWEN2 && (add_blk(b, l, "attn_q.bias", K_BIAS, Q, 0, err) || add_blk(b, l, "attn_k.bias", K_BIAS, KV, 0, err) ||
                               add_blk(b, l, "attn_v.bias", K_BIAS, KV, 0, err))) ||
             add_blk(b, l, "attn_output.weight", K_MAT, Q, C, err) ||
             (a == A_GEMMA2 && add_blk(b, l, "post_attention_norm.weight", K_NORM, C, 0, err)) ||
             (a != A_OLMO && add_blk(b, l, "ffn_norm.weight", K_NORM, C, 0, err)) ||
             add_blk(b, l, "ffn_gate.weight", K_MAT, C, F, err) || add_blk(b, l, "ffn_up.weight", K_MAT, C, F, err) ||
             add_blk(b, l, "ffn_down.weight", K_MAT, F, C, err) ||
             (a == A_GEMMA2 && add_blk(b, l, "post_ffw_norm.weight", K_NORM, C, 0, err));
        if (rc) return -1;
    }
    return 0;
}

int icl_mkmodel_write(const icl_mkmodel_opts *o, const char *out_path, icl_err *err) {
    if (icl_mkmodel_check(o, err)) return -1;
    if (!o->vocab_path) return icl_errf(err, "no vocabulary file given");
    icl_gguf *vocab;
    if (icl_gguf_open(&vocab, o->vocab_path, err)) return -1;
    icl_gguf_arr toks;
    if (icl_gguf_get_arr(vocab, "tokenizer.ggml.tokens", &toks, err) || toks.type != ICL_GGUF_STRING || toks.n == 0 ||
        toks.n > INT32_MAX) {
        icl_gguf_close(vocab);
        return icl_errf(err, "%s: no usable tokenizer.ggml.tokens string array", o->vocab_path);
    }
    mk_build b = {.o = o, .arch = arch_id(o->arch)};
    int rc = icl_gguf_writer_init(&b.w, err);
    if (!rc) rc = add_metadata(&b, vocab, (int64_t)toks.n, err);
    if (!rc) rc = add_tensors(&b, (int64_t)toks.n, err);
    if (!rc) rc = icl_gguf_writer_write(b.w, out_path, err);
    icl_gguf_writer_free(b.w);
    for (int i = 0; i < b.n_bufs; i++) free(b.bufs[i]);
    free(b.bufs);
    icl_gguf_close(vocab);
    return rc ? -1 : 0;
}
