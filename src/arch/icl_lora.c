/* LoRA adapters on the engine (see icl_lora.h): the adapter object and its file, the adapter path
 * of the block's matrix products (forward and backward, called by the block code through lm_lora),
 * and the finetuning trainer on training passes (icl_lm_pass.c). */
#include "iclab/icl_lora.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"

/* GGUF names of the matrices, in LM_T_* order, and the option names. */
static const char *const tensor_names[LM_T_N] = {"attn_q", "attn_k", "attn_v", "attn_output",
                                                 "ffn_gate", "ffn_up", "ffn_down"};
static const char *const target_names[LM_T_N] = {"q", "k", "v", "o", "gate", "up", "down"};

struct icl_lora {
    icl_lora_cfg cfg;
    int n_layer;
    size_t n_params;
    float *params, *grads; /* one allocation each */
    size_t *off;           /* (n_layer * LM_T_N) offset of A in params, SIZE_MAX: no adapter */
    int in[LM_T_N], out[LM_T_N];
    lm_lora run;           /* the block code's view */
};

void icl_lora_cfg_default(icl_lora_cfg *c) {
    *c = (icl_lora_cfg){.rank = 16, .alpha = 16.0f, .dropout = 0.1f, .layer_lo = 0, .layer_hi = -1,
                        .targets = ICL_LORA_ALL};
}

int icl_lora_parse_layers(const char *spec, int n_layer, int *lo, int *hi, icl_err *err) {
    char *end;
    long a, b;
    if (!strcmp(spec, "all")) {
        *lo = 0, *hi = n_layer;
        return 0;
    }
    if (!strncmp(spec, "first:", 6) || !strncmp(spec, "last:", 5)) {
        int first = spec[0] == 'f';
        const char *v = spec + (first ? 6 : 5);
        a = strtol(v, &end, 10);
        if (end == v || *end || a < 1) return icl_errf(err, "layer range '%s': K must be a positive integer", spec);
        if (a > n_layer) return icl_errf(err, "layer range '%s' is outside the model's %d layers", spec, n_layer);
        *lo = first ? 0 : n_layer - (int)a;
        *hi = first ? (int)a : n_layer;
        return 0;
    }
    a = strtol(spec, &end, 10);
    if (end == spec || *end != '-') return icl_errf(err, "layer range '%s': use first:K, last:K, A-B or all", spec);
    const char *v = end + 1;
    b = strtol(v, &end, 10);
    if (end == v || *end || a < 0 || b < a) return icl_errf(err, "layer range '%s': use first:K, last:K, A-B or all", spec);
    if (b >= n_layer) return icl_errf(err, "layer range '%s' is outside the model's layers 0-%d", spec, n_layer - 1);
    *lo = (int)a, *hi = (int)b + 1;
    return 0;
}

int icl_lora_parse_targets(const char *spec, unsigned *targets, icl_err *err) {
    if (!strcmp(spec, "all")) {
        *targets = ICL_LORA_ALL;
        return 0;
    }
    unsigned t = 0;
    const char *p = spec;
    while (*p) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < LM_T_N && !(strlen(target_names[k]) == n && !strncmp(p, target_names[k], n))) k++;
        if (k == LM_T_N) return icl_errf(err, "unknown matrix '%.*s' (q, k, v, o, gate, up, down or all)", (int)n, p);
        t |= 1u << k;
        p += n + (p[n] == ',');
    }
    if (!t) return icl_errf(err, "no matrix named in '%s'", spec);
    *targets = t;
    return 0;
}

/* The matrix a target sits on, or NULL if the model lacks it. */
static const lm_mat *target_mat(const icl_lm *lm, int l, int t) {
    const lm_layer *L = &lm->layers[l];
    const lm_mat *m[LM_T_N] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->gate, &L->up, &L->down};
    return m[t]->data ? m[t] : NULL;
}

static size_t slot(int l, int t) { return (size_t)l * LM_T_N + t; }

/* Lays out params for cfg on lm (sizes, offsets, the block code's view); allocates. */
static int build(icl_lora **out, const icl_lm *lm, const icl_lora_cfg *cfg, icl_err *err) {
    *out = NULL;
    const icl_lm_hparams *hp = &lm->hp;
    int L = hp->n_layer, lo = cfg->layer_lo, hi = cfg->layer_hi < 0 ? L : cfg->layer_hi;
    if (cfg->rank < 1) return icl_errf(err, "LoRA rank %d must be at least 1", cfg->rank);
    if (!(cfg->alpha > 0) || !isfinite(cfg->alpha)) return icl_errf(err, "LoRA alpha %g must be positive", cfg->alpha);
    if (!(cfg->dropout >= 0 && cfg->dropout < 1)) return icl_errf(err, "LoRA dropout %g must be in [0, 1)", cfg->dropout);
    if (lo < 0 || hi > L || lo >= hi) return icl_errf(err, "layer range [%d, %d) is outside the model's %d layers", lo, hi, L);
    if (!cfg->targets || (cfg->targets & ~(unsigned)ICL_LORA_ALL)) return icl_errf(err, "bad LoRA target set");
    for (int l = lo; l < hi; l++)
        if (lm_block_backward_check(lm, l, err)) return -1;
    icl_lora *a = calloc(1, sizeof *a);
    if (!a) return icl_errf(err, "out of memory");
    a->cfg = *cfg;
    a->cfg.layer_lo = lo, a->cfg.layer_hi = hi;
    a->n_layer = L;
    int C = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim, F = hp->n_ff;
    int ins[LM_T_N] = {C, C, C, qd, C, C, F}, outs[LM_T_N] = {qd, kvd, kvd, C, F, F, C};
    memcpy(a->in, ins, sizeof ins);
    memcpy(a->out, outs, sizeof outs);
    unsigned used = 0;
    a->off = malloc(sizeof(size_t) * (size_t)L * LM_T_N);
    a->run.a = calloc((size_t)L * LM_T_N, sizeof(float *));
    a->run.b = calloc((size_t)L * LM_T_N, sizeof(float *));
    a->run.ga = calloc((size_t)L * LM_T_N, sizeof(float *));
    a->run.gb = calloc((size_t)L * LM_T_N, sizeof(float *));
    if (!a->off || !a->run.a || !a->run.b || !a->run.ga || !a->run.gb) {
        icl_lora_free(a);
        return icl_errf(err, "out of memory");
    }
    size_t n = 0;
    for (int l = 0; l < L; l++)
        for (int t = 0; t < LM_T_N; t++) {
            a->off[slot(l, t)] = SIZE_MAX;
            if (l < lo || l >= hi || !(cfg->targets & (1u << t))) continue;
            const lm_mat *m = target_mat(lm, l, t);
            if (!m) {
                if (t <= LM_T_V && lm->layers[l].wqkv.data) {
                    icl_lora_free(a);
                    return icl_errf(err, "%s: q, k and v are one fused matrix: adapters on them are not supported",
                                    hp->arch_name);
                }
                continue; /* e.g. no gate in a GELU MLP: ALL takes what the model has */
            }
            a->off[slot(l, t)] = n;
            n += (size_t)cfg->rank * (a->in[t] + a->out[t]);
            used |= 1u << t;
        }
    if (cfg->targets != ICL_LORA_ALL && used != cfg->targets) {
        int t = 0;
        while (!((cfg->targets & ~used) & (1u << t))) t++;
        icl_lora_free(a);
        return icl_errf(err, "%s has no '%s' matrix for an adapter", hp->arch_name, target_names[t]);
    }
    int smallest = C;
    for (int t = 0; t < LM_T_N; t++)
        if (used & (1u << t)) smallest = a->in[t] < smallest ? a->in[t] : a->out[t] < smallest ? a->out[t] : smallest;
    if (!used || cfg->rank > smallest) {
        icl_lora_free(a);
        return used ? icl_errf(err, "LoRA rank %d exceeds the adapted matrices' smallest side %d", cfg->rank, smallest)
                    : icl_errf(err, "no matrix of the model matches the LoRA targets");
    }
    a->n_params = n;
    if (posix_memalign((void **)&a->params, 64, n * sizeof(float)) ||
        posix_memalign((void **)&a->grads, 64, n * sizeof(float))) {
        icl_lora_free(a);
        return icl_errf(err, "out of memory for %zu adapter parameters", n);
    }
    memset(a->params, 0, n * sizeof(float));
    memset(a->grads, 0, n * sizeof(float));
    for (size_t s = 0; s < (size_t)L * LM_T_N; s++) {
        if (a->off[s] == SIZE_MAX) continue;
        int t = (int)(s % LM_T_N);
        a->run.a[s] = a->params + a->off[s];
        a->run.b[s] = a->params + a->off[s] + (size_t)cfg->rank * a->in[t];
        a->run.ga[s] = a->grads + a->off[s];
        a->run.gb[s] = a->grads + a->off[s] + (size_t)cfg->rank * a->in[t];
    }
    a->run.rank = cfg->rank;
    a->run.scale = cfg->alpha / (float)cfg->rank;
    a->run.dropout = cfg->dropout;
    *out = a;
    return 0;
}

int icl_lora_init(icl_lora **out, const icl_lm *lm, const icl_lora_cfg *cfg, uint64_t seed, icl_err *err) {
    if (build(out, lm, cfg, err)) return -1;
    icl_lora *a = *out;
    icl_rng rng;
    icl_rng_seed(&rng, seed);
    for (size_t s = 0; s < (size_t)a->n_layer * LM_T_N; s++) {
        if (a->off[s] == SIZE_MAX) continue;
        int in = a->in[s % LM_T_N];
        double bound = 1.0 / sqrt((double)in);
        float *A = a->params + a->off[s];
        for (size_t i = 0; i < (size_t)a->cfg.rank * in; i++) A[i] = (float)(bound * (2.0 * icl_rng_uniform(&rng) - 1.0));
    }
    return 0;
}

void icl_lora_free(icl_lora *a) {
    if (!a) return;
    free(a->params);
    free(a->grads);
    free(a->off);
    free(a->run.a);
    free(a->run.b);
    free(a->run.ga);
    free(a->run.gb);
    free(a->run.xa);
    free(a->run.xd);
    free(a->run.tmp);
    free(a);
}

const icl_lora_cfg *icl_lora_config(const icl_lora *a) { return &a->cfg; }
size_t icl_lora_n_params(const icl_lora *a) { return a->n_params; }
float *icl_lora_params(icl_lora *a) { return a->params; }
float *icl_lora_grads(icl_lora *a) { return a->grads; }

static int target_index(unsigned target) {
    for (int t = 0; t < LM_T_N; t++)
        if (target == 1u << t) return t;
    return -1;
}

float *icl_lora_a(icl_lora *a, int layer, unsigned target, int *in, int *out) {
    int t = target_index(target);
    if (t < 0 || layer < 0 || layer >= a->n_layer || a->off[slot(layer, t)] == SIZE_MAX) return NULL;
    if (in) *in = a->in[t];
    if (out) *out = a->out[t];
    return a->params + a->off[slot(layer, t)];
}

float *icl_lora_b(icl_lora *a, int layer, unsigned target) {
    int t = target_index(target);
    float *A = icl_lora_a(a, layer, target, NULL, NULL);
    return A ? A + (size_t)a->cfg.rank * a->in[t] : NULL;
}

/* ---------------------------------------------------------------- the adapter path */

static inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* xd (N, in) = drop(x): element i kept (scaled by 1/(1-p)) unless its hash falls below p. With
 * x NULL, multiplies xd in place by the same mask (the backward). */
static void dropout_apply(const lm_lora *a, size_t s, const float *x, float *xd, size_t n) {
    uint64_t base = mix64(a->drop_key ^ mix64(s + 1));
    uint64_t thresh = (uint64_t)((double)a->dropout * 16777216.0);
    float keep = 1.0f / (1.0f - a->dropout);
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i++) {
        int kept = (mix64(base + i) >> 40) >= thresh;
        float v = x ? x[i] : xd[i];
        xd[i] = kept ? v * keep : 0.0f;
    }
}

int lm_lora_reserve(lm_lora *a, size_t rows, const icl_lm *lm, int keep, icl_err *err) {
    const icl_lm_hparams *hp = &lm->hp;
    size_t widest = (size_t)hp->n_embd;
    if ((size_t)hp->n_ff > widest) widest = hp->n_ff;
    if ((size_t)hp->n_head * hp->head_dim > widest) widest = (size_t)hp->n_head * hp->head_dim;
    if (rows > a->scratch_rows) {
        free(a->xd);
        free(a->tmp);
        a->xd = malloc(sizeof(float) * rows * widest);
        a->tmp = malloc(sizeof(float) * rows * a->rank);
        a->scratch_rows = a->xd && a->tmp ? rows : 0;
        if (!a->scratch_rows) return icl_errf(err, "out of memory for adapter scratch");
    }
    if (keep && rows > a->xa_rows) {
        free(a->xa);
        a->xa = malloc(sizeof(float) * rows * a->rank * (size_t)hp->n_layer * LM_T_N);
        a->xa_rows = a->xa ? rows : 0;
        if (!a->xa) return icl_errf(err, "out of memory for adapter activations");
    }
    return 0;
}

void lm_lora_forward(lm_lora *a, int l, int t, const float *x, int N, int in, float *y, size_t ldy, int out) {
    size_t s = slot(l, t);
    int r = a->rank;
    const float *xin = x;
    if (a->training && a->dropout > 0) {
        dropout_apply(a, s, x, a->xd, (size_t)N * in);
        xin = a->xd;
    }
    float *xa = a->training ? a->xa + s * a->xa_rows * r : a->tmp;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, r, in, 1.0f, xin, in, a->a[s], in, 0.0f, xa, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, out, r, a->scale, xa, r, a->b[s], r, 1.0f, y, (int)ldy);
}

void lm_lora_backward(lm_lora *a, int l, int t, const float *dout, size_t ldo, const float *x, int N, int in, int out,
                      float *dinp) {
    size_t s = slot(l, t);
    int r = a->rank;
    const float *xa = a->xa + s * a->xa_rows * r;
    float *dxa = a->tmp;
    /* gB += scale dout^T xa; d(xa) = scale dout B; gA += d(xa)^T drop(x); dx += mask * d(xa) A */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, r, N, a->scale, dout, (int)ldo, xa, r, 1.0f, a->gb[s], r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, r, out, a->scale, dout, (int)ldo, a->b[s], r, 0.0f, dxa, r);
    const float *xin = x;
    if (a->dropout > 0) {
        dropout_apply(a, s, x, a->xd, (size_t)N * in);
        xin = a->xd;
    }
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, N, 1.0f, dxa, r, xin, in, 1.0f, a->ga[s], in);
    if (!dinp) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, r, 1.0f, dxa, r, a->a[s], in, 0.0f, a->xd, in);
    if (a->dropout > 0) dropout_apply(a, s, NULL, a->xd, (size_t)N * in);
    icl_accumulate(dinp, a->xd, (size_t)N * in);
}

/* ---------------------------------------------------------------- contexts */

int icl_lm_ctx_set_lora(icl_lm_ctx *c, icl_lora *a, icl_err *err) {
    if (a && a->n_layer != icl_lm_hp(icl_lm_ctx_model(c))->n_layer)
        return icl_errf(err, "the adapter is for a model of %d layers, the context's has %d", a->n_layer,
                        icl_lm_hp(icl_lm_ctx_model(c))->n_layer);
    if (a) a->run.training = 0;
    return lm_ctx_set_lora(c, a ? &a->run : NULL, err);
}

/* ---------------------------------------------------------------- files */

int icl_lora_save(const icl_lora *a, const icl_lm *lm, const char *path, icl_err *err) {
    icl_gguf_writer *w;
    if (icl_gguf_writer_init(&w, err)) return -1;
    int rc = icl_gguf_writer_add_str(w, "general.architecture", lm->hp.arch_name, err) ||
             icl_gguf_writer_add_str(w, "general.type", "adapter", err) ||
             icl_gguf_writer_add_str(w, "adapter.type", "lora", err) ||
             icl_gguf_writer_add_f32(w, "adapter.lora.alpha", a->cfg.alpha, err) ||
             icl_gguf_writer_add_u32(w, "iclab.lora.rank", (uint32_t)a->cfg.rank, err) ||
             icl_gguf_writer_add_f32(w, "iclab.lora.dropout", a->cfg.dropout, err) ||
             icl_gguf_writer_add_u32(w, "iclab.lora.layer_lo", (uint32_t)a->cfg.layer_lo, err) ||
             icl_gguf_writer_add_u32(w, "iclab.lora.layer_hi", (uint32_t)a->cfg.layer_hi, err) ||
             icl_gguf_writer_add_u32(w, "iclab.lora.n_layer", (uint32_t)a->n_layer, err) ||
             icl_gguf_writer_add_u32(w, "iclab.lora.targets", a->cfg.targets, err);
    char (*names)[96] = calloc((size_t)a->n_layer * LM_T_N * 2, sizeof *names); /* kept until written */
    if (!names && !rc) rc = icl_errf(err, "out of memory");
    for (int l = 0; !rc && l < a->n_layer; l++)
        for (int t = 0; !rc && t < LM_T_N; t++) {
            size_t s = slot(l, t);
            if (a->off[s] == SIZE_MAX) continue;
            char *na = names[2 * s], *nb = names[2 * s + 1];
            snprintf(na, 96, "blk.%d.%s.weight.lora_a", l, tensor_names[t]);
            snprintf(nb, 96, "blk.%d.%s.weight.lora_b", l, tensor_names[t]);
            int64_t nea[2] = {a->in[t], a->cfg.rank}, neb[2] = {a->cfg.rank, a->out[t]};
            rc = icl_gguf_writer_add_tensor(w, na, ICL_GGML_F32, 2, nea, a->run.a[s], err) ||
                 icl_gguf_writer_add_tensor(w, nb, ICL_GGML_F32, 2, neb, a->run.b[s], err);
        }
    if (!rc) rc = icl_gguf_writer_write(w, path, err);
    free(names);
    icl_gguf_writer_free(w);
    return rc ? -1 : 0;
}

int icl_lora_load(icl_lora **out, const char *path, const icl_lm *lm, icl_err *err) {
    *out = NULL;
    icl_gguf *g;
    if (icl_gguf_open(&g, path, err)) return -1;
    const char *type, *arch;
    icl_err e2;
    int rc = 0;
    if (icl_gguf_get_str(g, "general.type", &type, &e2) || strcmp(type, "adapter") ||
        icl_gguf_get_str(g, "adapter.type", &type, &e2) || strcmp(type, "lora"))
        rc = icl_errf(err, "%s is not a LoRA adapter (general.type/adapter.type)", path);
    else if (icl_gguf_get_str(g, "general.architecture", &arch, &e2) || strcmp(arch, lm->hp.arch_name))
        rc = icl_errf(err, "%s is an adapter for architecture '%s', the model is '%s'", path,
                      icl_gguf_get_str(g, "general.architecture", &arch, &e2) ? "?" : arch, lm->hp.arch_name);
    icl_lora_cfg cfg;
    icl_lora_cfg_default(&cfg);
    uint32_t u;
    if (!rc && icl_gguf_get_f32(g, "adapter.lora.alpha", &cfg.alpha, err)) rc = -1;
    /* the rank, range and targets: from iclab's keys, else from the tensors themselves */
    cfg.rank = 0;
    cfg.targets = 0;
    int lo = lm->hp.n_layer, hi = 0;
    for (int i = 0; !rc && i < icl_gguf_n_tensors(g); i++) {
        const icl_gguf_tensor *tn = icl_gguf_tensor_at(g, i);
        int l, t = 0, len = 0;
        char name[64];
        if (sscanf(tn->name, "blk.%d.%63[a-z_].weight.lora_%*[ab]%n", &l, name, &len) != 2 || tn->name[len]) {
            rc = icl_errf(err, "%s: unexpected tensor '%s'", path, tn->name);
            break;
        }
        while (t < LM_T_N && strcmp(name, tensor_names[t])) t++;
        if (t == LM_T_N || l < 0 || l >= lm->hp.n_layer) {
            rc = icl_errf(err, "%s: tensor '%s' does not fit the model (%d layers)", path, tn->name, lm->hp.n_layer);
            break;
        }
        int is_a = tn->name[strlen(tn->name) - 1] == 'a';
        int r = (int)(is_a ? tn->ne[1] : tn->ne[0]);
        if (cfg.rank && r != cfg.rank) rc = icl_errf(err, "%s: tensors of ranks %d and %d", path, cfg.rank, r);
        cfg.rank = r;
        cfg.targets |= 1u << t;
        lo = l < lo ? l : lo;
        hi = l + 1 > hi ? l + 1 : hi;
    }
    if (!rc && !cfg.rank) rc = icl_errf(err, "%s holds no adapter tensors", path);
    if (!rc) {
        cfg.layer_lo = lo, cfg.layer_hi = hi;
        if (!icl_gguf_get_u32(g, "iclab.lora.layer_lo", &u, &e2)) cfg.layer_lo = (int)u;
        if (!icl_gguf_get_u32(g, "iclab.lora.layer_hi", &u, &e2)) cfg.layer_hi = (int)u;
        if (icl_gguf_get_f32(g, "iclab.lora.dropout", &cfg.dropout, &e2)) cfg.dropout = 0;
    }
    icl_lora *a = NULL;
    if (!rc && build(&a, lm, &cfg, err)) rc = -1;
    /* every slot of the layout must be in the file with its shape, and nothing else */
    int n_expected = 0;
    for (int l = 0; !rc && l < a->n_layer; l++)
        for (int t = 0; !rc && t < LM_T_N; t++) {
            size_t s = slot(l, t);
            if (a->off[s] == SIZE_MAX) continue;
            n_expected += 2;
            for (int k = 0; !rc && k < 2; k++) {
                char nm[96];
                snprintf(nm, sizeof nm, "blk.%d.%s.weight.lora_%c", l, tensor_names[t], k ? 'b' : 'a');
                const icl_gguf_tensor *tn = icl_gguf_find_tensor(g, nm);
                int64_t e0 = k ? a->cfg.rank : a->in[t], e1 = k ? a->out[t] : a->cfg.rank;
                if (!tn) rc = icl_errf(err, "%s: missing tensor %s", path, nm);
                else if (tn->n_dims != 2 || tn->ne[0] != e0 || tn->ne[1] != e1)
                    rc = icl_errf(err, "%s: %s is %lld x %lld, the model needs %lld x %lld: an adapter for another model",
                                  path, nm, (long long)tn->ne[0], (long long)tn->ne[1], (long long)e0, (long long)e1);
                else if (icl_quant_dequantize_row(tn->type, tn->data, a->params + a->off[s] + (k ? (size_t)a->cfg.rank * a->in[t] : 0),
                                                  tn->n_elements, err))
                    rc = -1;
            }
        }
    if (!rc && n_expected != icl_gguf_n_tensors(g))
        rc = icl_errf(err, "%s: its tensors do not form one adapter per matrix of layers %d-%d", path, a->cfg.layer_lo,
                      a->cfg.layer_hi - 1);
    icl_gguf_close(g);
    if (rc) {
        icl_lora_free(a);
        return -1;
    }
    *out = a;
    return 0;
}

int icl_lora_merge(const icl_lora *a, const char *base_path, const char *out_path, icl_err *err) {
    icl_gguf *g;
    if (icl_gguf_open(&g, base_path, err)) return -1;
    icl_gguf_writer *w = NULL;
    int rc = icl_gguf_writer_init(&w, err);
    float **merged = calloc((size_t)icl_gguf_n_tensors(g), sizeof(float *));
    if (!merged && !rc) rc = icl_errf(err, "out of memory");
    for (int i = 0; !rc && i < icl_gguf_n_kv(g); i++) rc = icl_gguf_writer_copy_kv(w, g, i, err);
    for (int i = 0; !rc && i < icl_gguf_n_tensors(g); i++) {
        const icl_gguf_tensor *tn = icl_gguf_tensor_at(g, i);
        const void *data = tn->data;
        int l, t = 0, len = 0;
        char name[64];
        if (sscanf(tn->name, "blk.%d.%63[a-z_].weight%n", &l, name, &len) == 2 && !tn->name[len] && l >= 0 &&
            l < a->n_layer) {
            while (t < LM_T_N && strcmp(name, tensor_names[t])) t++;
            if (t < LM_T_N && a->off[slot(l, t)] != SIZE_MAX) {
                if (tn->type != ICL_GGML_F32) {
                    rc = icl_errf(err, "%s: %s is %s: merging needs F32 weights", base_path, tn->name,
                                  icl_gguf_type_name(tn->type));
                    break;
                }
                size_t s = slot(l, t), n = (size_t)tn->n_elements;
                if (!(merged[i] = malloc(n * sizeof(float)))) {
                    rc = icl_errf(err, "out of memory");
                    break;
                }
                memcpy(merged[i], tn->data, n * sizeof(float));
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->out[t], a->in[t], a->cfg.rank, a->run.scale,
                            a->run.b[s], a->cfg.rank, a->run.a[s], a->in[t], 1.0f, merged[i], a->in[t]);
                data = merged[i];
            }
        }
        rc = icl_gguf_writer_add_tensor(w, tn->name, tn->type, tn->n_dims, tn->ne, data, err);
    }
    if (!rc) rc = icl_gguf_writer_write(w, out_path, err);
    for (int i = 0; merged && i < icl_gguf_n_tensors(g); i++) free(merged[i]);
    free(merged);
    icl_gguf_writer_free(w);
    icl_gguf_close(g);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------- training */

struct icl_lora_trainer {
    const icl_lm *lm;
    icl_lora *a;
    lm_pass *pass;
    float *m, *v; /* AdamW moments (n_params each) */
    uint64_t seed;
    int64_t step;
};

int icl_lora_trainer_init(icl_lora_trainer **out, const icl_lm *lm, icl_lora *a, uint64_t seed, icl_err *err) {
    *out = NULL;
    if (a->n_layer != lm->hp.n_layer) return icl_errf(err, "the adapter does not fit the model");
    icl_lora_trainer *t = calloc(1, sizeof *t);
    if (!t) return icl_errf(err, "out of memory");
    t->lm = lm;
    t->a = a;
    t->seed = seed;
    t->m = calloc(a->n_params, sizeof(float));
    t->v = calloc(a->n_params, sizeof(float));
    if (!t->m || !t->v) {
        icl_lora_trainer_free(t);
        return icl_errf(err, "out of memory");
    }
    if (lm_pass_init(&t->pass, lm, err)) {
        icl_lora_trainer_free(t);
        return -1;
    }
    lm_pass_set_lora(t->pass, &a->run);
    lm_pass_head_rows_only(t->pass, 1);
    *out = t;
    return 0;
}

void icl_lora_trainer_free(icl_lora_trainer *t) {
    if (!t) return;
    lm_pass_free(t->pass);
    free(t->m);
    free(t->v);
    free(t);
}

int64_t icl_lora_trainer_steps(const icl_lora_trainer *t) { return t->step; }
void icl_lora_trainer_set_steps(icl_lora_trainer *t, int64_t steps) { t->step = steps; }
float *icl_lora_trainer_moment(icl_lora_trainer *t, int which) { return which ? t->v : t->m; }

int icl_lora_train_grad(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                        icl_err *err) {
    if (!targets) return icl_errf(err, "a training step needs targets");
    static const lm_grads frozen;
    t->a->run.training = 1;
    t->a->run.drop_key = mix64(t->seed ^ mix64((uint64_t)t->step));
    int rc = lm_pass_forward(t->pass, tokens, targets, B, T, loss, err) ||
             lm_pass_backward(t->pass, &frozen, t->a->cfg.layer_lo, err);
    t->a->run.training = 0;
    return rc ? -1 : 0;
}

int icl_lora_eval_loss(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                       icl_err *err) {
    t->a->run.training = 0;
    return lm_pass_forward(t->pass, tokens, targets, B, T, loss, err);
}

int icl_lora_train_step(icl_lora_trainer *t, const int32_t *tokens, const int32_t *targets, int B, int T,
                        const icl_lmtrain_opt *o, float *loss, double *grad_norm, icl_err *err) {
    icl_lora *a = t->a;
    size_t n = a->n_params;
    float ls;
    memset(a->grads, 0, n * sizeof(float));
    if (icl_lora_train_grad(t, tokens, targets, B, T, &ls, err)) return -1;
    if (!isfinite(ls)) return icl_errf(err, "loss is %g at step %lld: training diverged", ls, (long long)t->step);
    double gn = 0;
    for (size_t i = 0; i < n; i++) gn += (double)a->grads[i] * a->grads[i];
    gn = sqrt(gn);
    if (!isfinite(gn)) return icl_errf(err, "gradient norm is %g at step %lld", gn, (long long)t->step);
    if (o->grad_clip > 0 && gn > o->grad_clip) {
        float s = (float)(o->grad_clip / gn);
        for (size_t i = 0; i < n; i++) a->grads[i] *= s;
    }
    float lr = icl_lmtrain_lr(o, t->step);
    t->step++;
    float bc1 = 1.0f - powf(o->beta1, (float)t->step), bc2_sqrt = sqrtf(1.0f - powf(o->beta2, (float)t->step));
    icl_adamw_update(a->params, a->grads, t->m, t->v, n, lr, o->weight_decay, o->beta1, o->beta2, o->eps, bc1, bc2_sqrt);
    if (loss) *loss = ls;
    if (grad_norm) *grad_norm = gn;
    return 0;
}
