/* Loading a pretrained LM from GGUF: reads the architecture's hyperparameters, finds every tensor
 * by its llama.cpp name, checks its shape and type, and records where it lies in the mapping.
 * Architecture differences are all decided here, as data the forward pass reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_qmat.h"
#include "iclab/icl_quant.h"

typedef struct loader {
    icl_lm *lm;
    const char *arch;
    size_t vec_used, vec_cap; /* floats */
} loader;

static int key_int(const loader *ld, const char *suffix, int64_t dflt, int required, int64_t *out, icl_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    if (icl_gguf_find_key(ld->lm->g, key) < 0) {
        if (required) return icl_errf(err, "missing metadata key %s", key);
        *out = dflt;
        return 0;
    }
    return icl_gguf_get_int(ld->lm->g, key, out, err);
}

static int key_num(const loader *ld, const char *suffix, double dflt, double *out, icl_err *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", ld->arch, suffix);
    if (icl_gguf_find_key(ld->lm->g, key) < 0) {
        *out = dflt;
        return 0;
    }
    return icl_gguf_get_num(ld->lm->g, key, out, err);
}

/* The file's name of a tensor: "blk.<layer>.<name>" for a layer's, else name. */
static const char *tensor_name(char *buf, size_t n, const char *name, int layer) {
    if (layer >= 0) snprintf(buf, n, "blk.%d.%s", layer, name);
    else snprintf(buf, n, "%s", name);
    return buf;
}

static const icl_gguf_tensor *find(const loader *ld, const char *name, int layer) {
    char full[128];
    return icl_gguf_find_tensor(ld->lm->g, tensor_name(full, sizeof full, name, layer));
}

static int missing(int layer, const char *name, icl_err *err) {
    char full[128];
    return icl_errf(err, "missing tensor %s", tensor_name(full, sizeof full, name, layer));
}

/* A matrix with ne = [cols, rows]; rows/cols of -1 are not checked (taken from the file). */
static int get_mat(loader *ld, lm_mat *m, const char *name, int layer, int64_t cols, int64_t rows, int required,
                   icl_err *err) {
    memset(m, 0, sizeof *m);
    const icl_gguf_tensor *t = find(ld, name, layer);
    if (!t) return required ? missing(layer, name, err) : 0;
    char full[128];
    tensor_name(full, sizeof full, name, layer);
    if (t->n_dims != 2 || (cols >= 0 && t->ne[0] != cols) || (rows >= 0 && t->ne[1] != rows))
        return icl_errf(err, "tensor %s has shape [%lld, %lld] (%d dims), expected [%lld, %lld]", full,
                        (long long)t->ne[0], (long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims, (long long)cols,
                        (long long)rows);
    if (!icl_qmat_supported(t->type))
        return icl_errf(err, "tensor %s has type %s, which iclab cannot multiply", full,
                        icl_quant_type_name(t->type));
    uint64_t rb;
    if (icl_quant_row_bytes(t->type, t->ne[0], &rb, err)) return icl_err_prefix(err, "tensor %s: ", full);
    m->type = t->type;
    m->cols = t->ne[0];
    m->rows = t->ne[1];
    m->row_bytes = rb;
    m->data = t->data;
    ld->lm->weight_bytes += t->n_bytes;
    return 0;
}

/* A 1-D tensor of n elements, converted to fp32 into the model's vector buffer. */
static int get_vec(loader *ld, const float **v, const char *name, int layer, int64_t n, int required, icl_err *err) {
    *v = NULL;
    const icl_gguf_tensor *t = find(ld, name, layer);
    if (!t) return required ? missing(layer, name, err) : 0;
    char full[128];
    tensor_name(full, sizeof full, name, layer);
    if (t->n_elements != n || t->n_dims < 1 || t->ne[0] != n)
        return icl_errf(err, "tensor %s has %lld elements, expected %lld", full, (long long)t->n_elements,
                        (long long)n);
    if (ld->vec_used + (size_t)n > ld->vec_cap) return icl_errf(err, "internal: vector buffer too small");
    float *dst = ld->lm->vecs + ld->vec_used;
    if (icl_gguf_tensor_to_f32(t, dst, err)) return icl_err_prefix(err, "tensor %s: ", full);
    ld->vec_used += (size_t)n;
    *v = dst;
    return 0;
}

static int map_arch(icl_lm *lm, const char *name, icl_err *err) {
    icl_lm_hparams *hp = &lm->hp;
    static const struct {
        const char *name;
        icl_lm_arch arch;
        lm_norm_kind norm;
        lm_mlp_kind mlp;
        int rope, neox;
    } table[] = {
        {"llama", ICL_LM_LLAMA, LM_NORM_RMS, LM_MLP_SWIGLU, 1, 0},
        {"qwen2", ICL_LM_QWEN2, LM_NORM_RMS, LM_MLP_SWIGLU, 1, 1},
        {"gemma2", ICL_LM_GEMMA2, LM_NORM_RMS, LM_MLP_GEGLU, 1, 1},
        {"gpt2", ICL_LM_GPT2, LM_NORM_LAYER, LM_MLP_GELU, 0, 0},
        {"olmo", ICL_LM_OLMO, LM_NORM_LAYER_NOPARAM, LM_MLP_SWIGLU, 1, 0},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (!strcmp(name, table[i].name)) {
            hp->arch = table[i].arch;
            hp->arch_name = table[i].name;
            lm->norm = table[i].norm;
            lm->mlp = table[i].mlp;
            hp->rope_neox = table[i].neox;
            hp->rope_base = table[i].rope ? 10000.0f : 0.0f;
            return 0;
        }
    return icl_errf(err, "unknown architecture '%s' (iclab runs llama, qwen2, gemma2, gpt2, olmo)", name);
}

static int read_hparams(loader *ld, icl_err *err) {
    icl_lm *lm = ld->lm;
    icl_lm_hparams *hp = &lm->hp;
    int64_t v;
    double d;
#define GETI(field, suffix, dflt, req)                                     \
    do {                                                                  \
        if (key_int(ld, suffix, dflt, req, &v, err)) return -1;           \
        if (v < 0 || v > (1 << 24)) return icl_errf(err, "%s.%s = %lld is out of range", ld->arch, suffix, (long long)v); \
        hp->field = (int)v;                                               \
    } while (0)
    GETI(n_embd, "embedding_length", 0, 1);
    GETI(n_layer, "block_count", 0, 1);
    GETI(n_head, "attention.head_count", 0, 1);
    GETI(n_head_kv, "attention.head_count_kv", hp->n_head, 0);
    GETI(n_ff, "feed_forward_length", 0, 1);
    GETI(n_ctx_train, "context_length", 2048, 0);
    if (hp->n_embd <= 0 || hp->n_layer <= 0 || hp->n_head <= 0 || hp->n_head_kv <= 0 || hp->n_ff <= 0)
        return icl_errf(err, "embedding, layer, head and feed-forward sizes must be positive");
    if (hp->n_head % hp->n_head_kv)
        return icl_errf(err, "%d heads is not a multiple of %d key/value heads", hp->n_head, hp->n_head_kv);
    GETI(head_dim, "attention.key_length", hp->n_head ? hp->n_embd / hp->n_head : 0, 0);
    int64_t vlen;
    if (key_int(ld, "attention.value_length", hp->head_dim, 0, &vlen, err)) return -1;
    if (vlen != hp->head_dim) return icl_errf(err, "key length %d != value length %lld is not supported", hp->head_dim, (long long)vlen);
    if (hp->head_dim <= 0 || (hp->head_dim & 1)) return icl_errf(err, "head dimension %d must be positive and even", hp->head_dim);
    GETI(rope_dim, "rope.dimension_count", hp->head_dim, 0);
    if (hp->rope_dim > hp->head_dim || (hp->rope_dim & 1))
        return icl_errf(err, "RoPE dimension %d must be even and at most the head dimension %d", hp->rope_dim, hp->head_dim);
#undef GETI
    if (hp->rope_base > 0) {
        if (key_num(ld, "rope.freq_base", 10000.0, &d, err)) return -1;
        if (!(d > 1)) return icl_errf(err, "rope.freq_base = %g must be > 1", d);
        hp->rope_base = (float)d;
        /* Context-extension scaling: linear (position interpolation) divides every angle by the
         * factor; Llama-3.1's comes as the rope_freqs tensor instead; YaRN is not implemented. */
        hp->rope_scale = 1.0f;
        char key[128];
        snprintf(key, sizeof key, "%s.rope.scaling.type", ld->arch);
        const char *type = "none";
        if (icl_gguf_find_key(lm->g, key) >= 0 && icl_gguf_get_str(lm->g, key, &type, err)) return -1;
        if (!strcmp(type, "linear")) {
            if (key_num(ld, "rope.scaling.factor", 1.0, &d, err)) return -1;
            if (!(d >= 1 && d <= 1024)) return icl_errf(err, "rope.scaling.factor = %g is out of range", d);
            hp->rope_scale = (float)(1.0 / d);
        } else if (strcmp(type, "none") && strcmp(type, "llama3")) {
            return icl_errf(err, "RoPE scaling '%s' is not supported (iclab reads none, linear and Llama-3's rope_freqs)", type);
        }
    }
    int rms = lm->norm == LM_NORM_RMS;
    if (key_num(ld, rms ? "attention.layer_norm_rms_epsilon" : "attention.layer_norm_epsilon", 1e-5, &d, err)) return -1;
    if (!(d > 0 && d < 1)) return icl_errf(err, "norm epsilon %g is out of range", d);
    hp->eps = (float)d;
    hp->embd_scale = 1.0f;
    hp->q_scale = 1.0f / sqrtf((float)hp->head_dim);
    if (hp->arch == ICL_LM_GEMMA2) {
        if (key_num(ld, "attn_logit_softcapping", 50.0, &d, err)) return -1;
        hp->attn_softcap = (float)d;
        if (key_num(ld, "final_logit_softcapping", 30.0, &d, err)) return -1;
        hp->final_softcap = (float)d;
        if (key_int(ld, "attention.sliding_window", 4096, 0, &v, err)) return -1;
        if (v < 0 || v > (1 << 30)) return icl_errf(err, "sliding window %lld is out of range", (long long)v);
        hp->sliding_window = (int)v;
        hp->embd_scale = sqrtf((float)hp->n_embd);
        /* Gemma-2 27B scales queries by 1/sqrt(n_embd/n_head) (its query_pre_attn_scalar), the
         * smaller ones by 1/sqrt(head_dim); GGUF has no key for it, so recognise 27B by shape as
         * llama.cpp does. */
        if (hp->n_embd == 4608 && hp->n_layer == 46) hp->q_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    }
    if (hp->arch == ICL_LM_OLMO) {
        if (key_num(ld, "attention.clamp_kqv", 0.0, &d, err)) return -1;
        if (d < 0) return icl_errf(err, "attention.clamp_kqv = %g must be >= 0", d);
        hp->clamp_kqv = (float)d;
    }
    return 0;
}

static int load_layer(loader *ld, int l, icl_err *err) {
    icl_lm *lm = ld->lm;
    const icl_lm_hparams *hp = &lm->hp;
    lm_layer *L = &lm->layers[l];
    int64_t C = hp->n_embd, qd = (int64_t)hp->n_head * hp->head_dim, kvd = (int64_t)hp->n_head_kv * hp->head_dim;
    int64_t F = hp->n_ff;
    if (lm->norm != LM_NORM_LAYER_NOPARAM) {
        if (get_vec(ld, &L->attn_norm, "attn_norm.weight", l, C, 1, err)) return -1;
        if (get_vec(ld, &L->ffn_norm, "ffn_norm.weight", l, C, 1, err)) return -1;
    }
    if (lm->norm == LM_NORM_LAYER) {
        if (get_vec(ld, &L->attn_norm_b, "attn_norm.bias", l, C, 1, err)) return -1;
        if (get_vec(ld, &L->ffn_norm_b, "ffn_norm.bias", l, C, 1, err)) return -1;
    }
    if (hp->arch == ICL_LM_GEMMA2) {
        if (get_vec(ld, &L->post_attn_norm, "post_attention_norm.weight", l, C, 1, err)) return -1;
        if (get_vec(ld, &L->post_ffn_norm, "post_ffw_norm.weight", l, C, 1, err)) return -1;
    }
    if (hp->arch == ICL_LM_GPT2) {
        if (get_mat(ld, &L->wqkv, "attn_qkv.weight", l, C, qd + 2 * kvd, 1, err)) return -1;
        if (get_vec(ld, &L->bqkv, "attn_qkv.bias", l, qd + 2 * kvd, 0, err)) return -1;
    } else {
        int qwen = hp->arch == ICL_LM_QWEN2;
        if (get_mat(ld, &L->wq, "attn_q.weight", l, C, qd, 1, err)) return -1;
        if (get_mat(ld, &L->wk, "attn_k.weight", l, C, kvd, 1, err)) return -1;
        if (get_mat(ld, &L->wv, "attn_v.weight", l, C, kvd, 1, err)) return -1;
        if (get_vec(ld, &L->bq, "attn_q.bias", l, qd, qwen, err)) return -1;
        if (get_vec(ld, &L->bk, "attn_k.bias", l, kvd, qwen, err)) return -1;
        if (get_vec(ld, &L->bv, "attn_v.bias", l, kvd, qwen, err)) return -1;
    }
    if (get_mat(ld, &L->wo, "attn_output.weight", l, qd, C, 1, err)) return -1;
    if (get_vec(ld, &L->bo, "attn_output.bias", l, C, 0, err)) return -1;
    if (lm->mlp != LM_MLP_GELU) {
        if (get_mat(ld, &L->gate, "ffn_gate.weight", l, C, F, 1, err)) return -1;
        if (get_vec(ld, &L->b_gate, "ffn_gate.bias", l, F, 0, err)) return -1;
    }
    if (get_mat(ld, &L->up, "ffn_up.weight", l, C, F, 1, err)) return -1;
    if (get_mat(ld, &L->down, "ffn_down.weight", l, F, C, 1, err)) return -1;
    if (get_vec(ld, &L->b_up, "ffn_up.bias", l, F, 0, err)) return -1;
    if (get_vec(ld, &L->b_down, "ffn_down.bias", l, C, 0, err)) return -1;
    return 0;
}

static int load(loader *ld, const char *path, icl_err *err) {
    icl_lm *lm = ld->lm;
    if (icl_gguf_open(&lm->g, path, err)) return -1;
    const char *arch;
    if (icl_gguf_get_str(lm->g, "general.architecture", &arch, err)) return -1;
    if (map_arch(lm, arch, err)) return -1;
    ld->arch = lm->hp.arch_name;
    if (read_hparams(ld, err)) return -1;
    icl_lm_hparams *hp = &lm->hp;

    /* Every 1-D tensor is copied to fp32; size the buffer from the file so one allocation holds all. */
    for (int i = 0; i < icl_gguf_n_tensors(lm->g); i++) {
        const icl_gguf_tensor *t = icl_gguf_tensor_at(lm->g, i);
        if (t->n_dims == 1) ld->vec_cap += (size_t)t->n_elements;
    }
    lm->vecs = malloc((ld->vec_cap ? ld->vec_cap : 1) * sizeof(float));
    lm->layers = calloc((size_t)hp->n_layer, sizeof(lm_layer));
    if (!lm->vecs || !lm->layers) return icl_errf(err, "out of memory");

    if (get_mat(ld, &lm->tok_embd, "token_embd.weight", -1, hp->n_embd, -1, 1, err)) return -1;
    if (lm->tok_embd.rows <= 0 || lm->tok_embd.rows > (1 << 24))
        return icl_errf(err, "token_embd.weight has %lld rows", (long long)lm->tok_embd.rows);
    hp->n_vocab = (int)lm->tok_embd.rows;
    if (!icl_quant_can_dequantize(lm->tok_embd.type))
        return icl_errf(err, "token_embd.weight has type %s, which iclab cannot read", icl_quant_type_name(lm->tok_embd.type));
    if (hp->arch == ICL_LM_GPT2) {
        if (get_mat(ld, &lm->pos_embd, "position_embd.weight", -1, hp->n_embd, -1, 1, err)) return -1;
        if (lm->pos_embd.rows < hp->n_ctx_train) hp->n_ctx_train = (int)lm->pos_embd.rows;
    }
    if (get_mat(ld, &lm->output, "output.weight", -1, hp->n_embd, hp->n_vocab, 0, err)) return -1;
    if (!lm->output.data) lm->output = lm->tok_embd; /* tied */
    if (lm->norm != LM_NORM_LAYER_NOPARAM && get_vec(ld, &lm->out_norm, "output_norm.weight", -1, hp->n_embd, 1, err))
        return -1;
    if (lm->norm == LM_NORM_LAYER && get_vec(ld, &lm->out_norm_b, "output_norm.bias", -1, hp->n_embd, 1, err)) return -1;
    if (hp->rope_base > 0 && get_vec(ld, &lm->rope_freqs, "rope_freqs.weight", -1, hp->rope_dim / 2, 0, err)) return -1;
    for (int l = 0; l < hp->n_layer; l++)
        if (load_layer(ld, l, err)) return -1;
    lm->vec_bytes = ld->vec_used * sizeof(float);
    return 0;
}

int icl_lm_load(icl_lm **out, const char *path, icl_err *err) {
    *out = NULL;
    icl_lm *lm = calloc(1, sizeof *lm);
    if (!lm) return icl_errf(err, "out of memory");
    loader ld = {.lm = lm};
    if (load(&ld, path, err)) {
        icl_lm_free(lm);
        return icl_err_prefix(err, "%s: ", path);
    }
    *out = lm;
    return 0;
}

void icl_lm_free(icl_lm *lm) {
    if (!lm) return;
    icl_gguf_close(lm->g);
    free(lm->vecs);
    free(lm->layers);
    free(lm);
}

const icl_lm_hparams *icl_lm_hp(const icl_lm *lm) { return &lm->hp; }
const icl_gguf *icl_lm_gguf(const icl_lm *lm) { return lm->g; }
uint64_t icl_lm_weight_bytes(const icl_lm *lm) { return lm->weight_bytes + lm->vec_bytes; }
