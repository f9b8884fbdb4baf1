/* Training a Llama-style LM on the engine's block code (see icl_lmtrain.h). The forward pass is
 * lm_attn_block / lm_mlp_block / lm_head_rows of icl_lm_eval.c on buffers that keep every
 * activation; the backward runs the Llama kernels of icl_kernels.h in reverse order.
 * Shapes in comments: L layers, B sequences, T tokens, N = B*T rows, C = n_embd, H / Hkv heads,
 * hd = head_dim, qd = H*hd, kvd = Hkv*hd, ldq = qd + 2*kvd, F = n_ff, V = n_vocab. */
#include "iclab/icl_lmtrain.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"

struct icl_lmtrain {
    icl_lmtrain_config cfg;
    size_t n_params;
    size_t off[ICL_LT_N], per_layer[ICL_LT_N]; /* start of each kind; floats per layer (per-layer kinds) */
    float *params, *grads, *adam_m, *adam_v;    /* one allocation, four n_params buffers */
    int64_t step;
    icl_lm lm;           /* the engine's view of params */
    lm_pass *pass;       /* the training passes over lm */
    lm_layer_grads *lg;  /* (n_layer) the grads buffer as the block backward sees it */
};

/* ---------------------------------------------------------------- size table */

icl_lmtrain_tinfo icl_lmtrain_tensor_spec(const icl_lmtrain *m, int k) {
    const icl_lmtrain_config *c = &m->cfg;
    int64_t C = c->n_embd, V = c->n_vocab, F = c->n_ff, hd = c->n_embd / c->n_head;
    int64_t qd = hd * c->n_head, kvd = hd * c->n_head_kv;
    static const char *names[ICL_LT_N] = {
        "token_embd.weight", "blk.%d.attn_norm.weight", "blk.%d.attn_q.weight", "blk.%d.attn_k.weight",
        "blk.%d.attn_v.weight", "blk.%d.attn_output.weight", "blk.%d.ffn_norm.weight", "blk.%d.ffn_gate.weight",
        "blk.%d.ffn_up.weight", "blk.%d.ffn_down.weight", "output_norm.weight", "output.weight"};
    icl_lmtrain_tinfo t = {names[k], k != ICL_LT_TOKEN_EMBD && k < ICL_LT_OUTPUT_NORM, 2, {C, 1}};
    switch (k) {
    case ICL_LT_TOKEN_EMBD: t.ne[1] = V; break;
    case ICL_LT_ATTN_Q: t.ne[1] = qd; break;
    case ICL_LT_ATTN_K:
    case ICL_LT_ATTN_V: t.ne[1] = kvd; break;
    case ICL_LT_ATTN_OUTPUT: t.ne[0] = qd; t.ne[1] = C; break;
    case ICL_LT_FFN_GATE:
    case ICL_LT_FFN_UP: t.ne[1] = F; break;
    case ICL_LT_FFN_DOWN: t.ne[0] = F; t.ne[1] = C; break;
    case ICL_LT_OUTPUT: t.ne[1] = c->tied ? 0 : V; break;
    default: t.n_dims = 1; break; /* the norms */
    }
    return t;
}

/* Offsets in layer order: token_embd, blk.0.*, blk.1.*, ..., output_norm, output. */
static void layout(icl_lmtrain *m) {
    size_t sz[ICL_LT_N];
    for (int k = 0; k < ICL_LT_N; k++) {
        icl_lmtrain_tinfo t = icl_lmtrain_tensor_spec(m, k);
        sz[k] = (size_t)t.ne[0] * (size_t)t.ne[1];
    }
    size_t layer = 0;
    for (int k = ICL_LT_ATTN_NORM; k <= ICL_LT_FFN_DOWN; k++) layer += sz[k];
    size_t o = 0;
    m->off[ICL_LT_TOKEN_EMBD] = 0;
    o += sz[ICL_LT_TOKEN_EMBD];
    for (int k = ICL_LT_ATTN_NORM; k <= ICL_LT_FFN_DOWN; k++) {
        m->off[k] = o;
        m->per_layer[k] = layer;
        o += sz[k];
    }
    o = sz[ICL_LT_TOKEN_EMBD] + (size_t)m->cfg.n_layer * layer;
    m->off[ICL_LT_OUTPUT_NORM] = o;
    o += sz[ICL_LT_OUTPUT_NORM];
    m->off[ICL_LT_OUTPUT] = o;
    o += sz[ICL_LT_OUTPUT];
    m->n_params = o;
}

static size_t tensor_off(const icl_lmtrain *m, int k, int layer) {
    return m->off[k] + (m->per_layer[k] ? (size_t)layer * m->per_layer[k] : 0);
}

float *icl_lmtrain_buffer(icl_lmtrain *m, int buf) {
    float *b[4] = {m->params, m->grads, m->adam_m, m->adam_v};
    return buf >= 0 && buf < 4 ? b[buf] : NULL;
}

float *icl_lmtrain_tensor(icl_lmtrain *m, int buf, int k, int layer, size_t *n) {
    icl_lmtrain_tinfo t = icl_lmtrain_tensor_spec(m, k);
    size_t cnt = (size_t)t.ne[0] * (size_t)t.ne[1];
    if (n) *n = cnt;
    if (!cnt) return NULL;
    float *b = icl_lmtrain_buffer(m, buf);
    return b ? b + tensor_off(m, k, layer) : NULL;
}

const icl_lmtrain_config *icl_lmtrain_cfg(const icl_lmtrain *m) { return &m->cfg; }
size_t icl_lmtrain_n_params(const icl_lmtrain *m) { return m->n_params; }
int64_t icl_lmtrain_steps_done(const icl_lmtrain *m) { return m->step; }
void icl_lmtrain_set_steps_done(icl_lmtrain *m, int64_t steps) { m->step = steps; }
const icl_lm *icl_lmtrain_lm(const icl_lmtrain *m) { return &m->lm; }

/* ---------------------------------------------------------------- setup */

int icl_lmtrain_check(const icl_lmtrain_config *c, icl_err *err) {
    if (c->n_vocab <= 0 || c->n_embd <= 0 || c->n_layer <= 0 || c->n_head <= 0 || c->n_head_kv <= 0 || c->n_ff <= 0 ||
        c->n_ctx <= 0)
        return icl_errf(err, "vocabulary, width, layers, heads, feed-forward width and context must be positive");
    if (c->n_vocab > (1 << 24) || c->n_embd > (1 << 16) || c->n_layer > 1024 || c->n_ff > (1 << 18) ||
        c->n_ctx > (1 << 16))
        return icl_errf(err, "model shape too large");
    if (c->n_embd % c->n_head) return icl_errf(err, "width %d is not a multiple of %d heads", c->n_embd, c->n_head);
    if (c->n_head % c->n_head_kv)
        return icl_errf(err, "%d heads is not a multiple of %d key/value heads", c->n_head, c->n_head_kv);
    if ((c->n_embd / c->n_head) % 2) return icl_errf(err, "head dimension %d must be even (RoPE)", c->n_embd / c->n_head);
    if (!(c->rope_theta > 1)) return icl_errf(err, "RoPE base %g must be > 1", c->rope_theta);
    if (!(c->eps > 0 && c->eps < 1)) return icl_errf(err, "norm epsilon %g is out of range", c->eps);
    return 0;
}

static lm_mat f32_mat(const float *p, int64_t rows, int64_t cols) {
    return (lm_mat){ICL_GGML_F32, rows, cols, (uint64_t)cols * sizeof(float), p};
}

/* The engine's view: llama, RMSNorm, SwiGLU, adjacent-pair RoPE, weights in params. */
static int make_view(icl_lmtrain *m, icl_err *err) {
    const icl_lmtrain_config *c = &m->cfg;
    icl_lm *lm = &m->lm;
    int hd = c->n_embd / c->n_head;
    lm->hp = (icl_lm_hparams){.arch = ICL_LM_LLAMA, .arch_name = "llama", .n_vocab = c->n_vocab, .n_embd = c->n_embd,
                              .n_layer = c->n_layer, .n_head = c->n_head, .n_head_kv = c->n_head_kv, .head_dim = hd,
                              .n_ff = c->n_ff, .n_ctx_train = c->n_ctx, .eps = c->eps, .rope_base = c->rope_theta,
                              .rope_scale = 1.0f, .rope_dim = hd, .rope_neox = 0, .embd_scale = 1.0f,
                              .q_scale = 1.0f / sqrtf((float)hd)};
    lm->norm = LM_NORM_RMS;
    lm->mlp = LM_MLP_SWIGLU;
    lm->layers = calloc((size_t)c->n_layer, sizeof(lm_layer));
    m->lg = calloc((size_t)c->n_layer, sizeof(lm_layer_grads));
    if (!lm->layers || !m->lg) return icl_errf(err, "out of memory");
    float *p = m->params;
    int64_t C = c->n_embd, V = c->n_vocab, F = c->n_ff, qd = (int64_t)hd * c->n_head, kvd = (int64_t)hd * c->n_head_kv;
    lm->tok_embd = f32_mat(p + tensor_off(m, ICL_LT_TOKEN_EMBD, 0), V, C);
    lm->output = c->tied ? lm->tok_embd : f32_mat(p + tensor_off(m, ICL_LT_OUTPUT, 0), V, C);
    lm->out_norm = p + tensor_off(m, ICL_LT_OUTPUT_NORM, 0);
    for (int l = 0; l < c->n_layer; l++) {
        lm_layer *L = &lm->layers[l];
        L->attn_norm = p + tensor_off(m, ICL_LT_ATTN_NORM, l);
        L->ffn_norm = p + tensor_off(m, ICL_LT_FFN_NORM, l);
        L->wq = f32_mat(p + tensor_off(m, ICL_LT_ATTN_Q, l), qd, C);
        L->wk = f32_mat(p + tensor_off(m, ICL_LT_ATTN_K, l), kvd, C);
        L->wv = f32_mat(p + tensor_off(m, ICL_LT_ATTN_V, l), kvd, C);
        L->wo = f32_mat(p + tensor_off(m, ICL_LT_ATTN_OUTPUT, l), C, qd);
        L->gate = f32_mat(p + tensor_off(m, ICL_LT_FFN_GATE, l), F, C);
        L->up = f32_mat(p + tensor_off(m, ICL_LT_FFN_UP, l), F, C);
        L->down = f32_mat(p + tensor_off(m, ICL_LT_FFN_DOWN, l), C, F);
    }
    lm->weight_bytes = m->n_params * sizeof(float);
    return 0;
}

int icl_lmtrain_init(icl_lmtrain **out, const icl_lmtrain_config *cfg, icl_err *err) {
    *out = NULL;
    if (icl_lmtrain_check(cfg, err)) return -1;
    icl_lmtrain *m = calloc(1, sizeof *m);
    if (!m) return icl_errf(err, "out of memory");
    m->cfg = *cfg;
    m->cfg.tied = cfg->tied ? 1 : 0;
    layout(m);
    /* one allocation: params | grads | adam_m | adam_v, each 64-byte aligned */
    size_t n = (m->n_params + 15) & ~(size_t)15;
    float *buf = NULL;
    if (n > SIZE_MAX / 16 || posix_memalign((void **)&buf, 64, 4 * n * sizeof(float))) {
        size_t np = m->n_params;
        free(m);
        return icl_errf(err, "out of memory for %zu parameters", np);
    }
    memset(buf, 0, 4 * n * sizeof(float));
    m->params = buf;
    m->grads = buf + n;
    m->adam_m = buf + 2 * n;
    m->adam_v = buf + 3 * n;
    if (make_view(m, err) || lm_pass_init(&m->pass, &m->lm, err)) {
        icl_lmtrain_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void icl_lmtrain_free(icl_lmtrain *m) {
    if (!m) return;
    free(m->params);
    lm_pass_free(m->pass);
    free(m->lm.layers);
    free(m->lg);
    free(m);
}

void icl_lmtrain_init_weights(icl_lmtrain *m, uint64_t seed) {
    icl_rng rng;
    icl_rng_seed(&rng, seed);
    float out_scale = 1.0f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int l = -1; l <= m->cfg.n_layer; l++) /* buffer order */
        for (int k = 0; k < ICL_LT_N; k++) {
            icl_lmtrain_tinfo t = icl_lmtrain_tensor_spec(m, k);
            int in_layer = t.per_layer;
            if ((l >= 0 && l < m->cfg.n_layer) != in_layer) continue;
            if (!in_layer && ((l < 0) != (k == ICL_LT_TOKEN_EMBD))) continue;
            size_t n;
            float *p = icl_lmtrain_tensor(m, ICL_LT_PARAMS, k, l, &n);
            float s = k == ICL_LT_ATTN_OUTPUT || k == ICL_LT_FFN_DOWN ? 0.02f * out_scale : 0.02f;
            for (size_t i = 0; i < n; i++) p[i] = t.n_dims == 1 ? 1.0f : (float)(s * icl_rng_normal(&rng));
        }
    memset(m->grads, 0, m->n_params * sizeof(float));
    memset(m->adam_m, 0, m->n_params * sizeof(float));
    memset(m->adam_v, 0, m->n_params * sizeof(float));
    m->step = 0;
}

/* ---------------------------------------------------------------- passes */

int icl_lmtrain_forward(icl_lmtrain *m, const int32_t *tokens, const int32_t *targets, int B, int T, float *loss,
                        icl_err *err) {
    return lm_pass_forward(m->pass, tokens, targets, B, T, loss, err);
}

const float *icl_lmtrain_logits(const icl_lmtrain *m) { return lm_pass_logits(m->pass); }

const float *icl_lmtrain_stream(const icl_lmtrain *m, int l) { return lm_pass_stream(m->pass, l); }

int icl_lmtrain_backward(icl_lmtrain *m, icl_err *err) {
    const icl_lmtrain_config *c = &m->cfg;
#define G(k, l) (m->grads + tensor_off(m, k, l))
    for (int l = 0; l < c->n_layer; l++) /* attn_q|attn_k|attn_v are adjacent rows: one (ldq, C) matrix */
        m->lg[l] = (lm_layer_grads){.attn_norm = G(ICL_LT_ATTN_NORM, l), .wqkv = G(ICL_LT_ATTN_Q, l),
                                    .wo = G(ICL_LT_ATTN_OUTPUT, l), .ffn_norm = G(ICL_LT_FFN_NORM, l),
                                    .gate = G(ICL_LT_FFN_GATE, l), .up = G(ICL_LT_FFN_UP, l),
                                    .down = G(ICL_LT_FFN_DOWN, l)};
    lm_grads g = {.tok_embd = G(ICL_LT_TOKEN_EMBD, 0), .out_norm = G(ICL_LT_OUTPUT_NORM, 0),
                  .output = c->tied ? NULL : G(ICL_LT_OUTPUT, 0), .layers = m->lg};
#undef G
    return lm_pass_backward(m->pass, &g, 0, err);
}

/* ---------------------------------------------------------------- optimizer */

void icl_lmtrain_opt_defaults(icl_lmtrain_opt *o) {
    *o = (icl_lmtrain_opt){.lr = 3e-3f, .lr_min = 3e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f,
                           .weight_decay = 0.1f, .grad_clip = 1.0f, .warmup = 100, .steps = 1000};
}

float icl_lmtrain_lr(const icl_lmtrain_opt *o, int64_t step) {
    if (step < o->warmup) return o->lr * (float)(step + 1) / (float)o->warmup;
    int64_t span = o->steps - o->warmup;
    double f = span > 0 ? (double)(step - o->warmup) / (double)span : 1.0;
    if (f > 1) f = 1;
    return (float)(o->lr_min + 0.5 * ((double)o->lr - o->lr_min) * (1.0 + cos(M_PI * f)));
}

void icl_lmtrain_zero_grad(icl_lmtrain *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

double icl_lmtrain_grad_norm(const icl_lmtrain *m) {
    double s = 0;
    for (size_t i = 0; i < m->n_params; i++) s += (double)m->grads[i] * m->grads[i];
    return sqrt(s);
}

void icl_lmtrain_adamw(icl_lmtrain *m, const icl_lmtrain_opt *o, float lr) {
    m->step++;
    float bc1 = 1.0f - powf(o->beta1, (float)m->step), bc2_sqrt = sqrtf(1.0f - powf(o->beta2, (float)m->step));
    for (int l = -1; l <= m->cfg.n_layer; l++)
        for (int k = 0; k < ICL_LT_N; k++) {
            icl_lmtrain_tinfo t = icl_lmtrain_tensor_spec(m, k);
            int inside = l >= 0 && l < m->cfg.n_layer;
            if (t.per_layer != inside || (!inside && (l < 0) != (k == ICL_LT_TOKEN_EMBD))) continue;
            size_t n, i0 = tensor_off(m, k, l);
            icl_lmtrain_tensor(m, ICL_LT_PARAMS, k, l, &n);
            icl_adamw_update(m->params + i0, m->grads + i0, m->adam_m + i0, m->adam_v + i0, n, lr,
                             t.n_dims == 2 ? o->weight_decay : 0.0f, o->beta1, o->beta2, o->eps, bc1, bc2_sqrt);
        }
}

int icl_lmtrain_step(icl_lmtrain *m, const int32_t *tokens, const int32_t *targets, int B, int T,
                     const icl_lmtrain_opt *o, float *loss, double *grad_norm, icl_err *err) {
    float ls;
    if (!targets) return icl_errf(err, "a training step needs targets");
    icl_lmtrain_zero_grad(m);
    if (icl_lmtrain_forward(m, tokens, targets, B, T, &ls, err)) return -1;
    if (!isfinite(ls)) return icl_errf(err, "loss is %g at step %lld: training diverged", ls, (long long)m->step);
    if (icl_lmtrain_backward(m, err)) return -1;
    double gn = icl_lmtrain_grad_norm(m);
    if (!isfinite(gn)) return icl_errf(err, "gradient norm is %g at step %lld", gn, (long long)m->step);
    if (o->grad_clip > 0 && gn > o->grad_clip) {
        float s = (float)(o->grad_clip / gn);
        for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= s;
    }
    icl_lmtrain_adamw(m, o, icl_lmtrain_lr(o, m->step));
    if (loss) *loss = ls;
    if (grad_norm) *grad_norm = gn;
    return 0;
}

/* ---------------------------------------------------------------- GGUF */

static int kv_u32(icl_gguf_writer *w, const char *suffix, uint32_t v, icl_err *err) {
    char key[96];
    snprintf(key, sizeof key, "llama.%s", suffix);
    return icl_gguf_writer_add_u32(w, key, v, err);
}

static int add_tensor(icl_gguf_writer *w, const icl_lmtrain *m, int k, int l, icl_err *err) {
    icl_lmtrain_tinfo t = icl_lmtrain_tensor_spec(m, k);
    if (!t.ne[0] || !t.ne[1]) return 0; /* tied output */
    char name[64];
    snprintf(name, sizeof name, t.name, l);
    int64_t ne[2] = {t.ne[0], t.ne[1]};
    return icl_gguf_writer_add_tensor(w, name, ICL_GGML_F32, t.n_dims, ne, m->params + tensor_off(m, k, l), err);
}

static int write_gguf(icl_gguf_writer *w, const icl_lmtrain *m, const icl_gguf *tokg, const char *path, icl_err *err) {
    const icl_lmtrain_config *c = &m->cfg;
    int hd = c->n_embd / c->n_head;
    if (icl_gguf_writer_add_str(w, "general.architecture", "llama", err) ||
        icl_gguf_writer_add_str(w, "general.name", "iclab-lm", err) ||
        icl_gguf_writer_add_u32(w, "general.file_type", 0, err) || /* all F32 */
        kv_u32(w, "context_length", (uint32_t)c->n_ctx, err) || kv_u32(w, "embedding_length", (uint32_t)c->n_embd, err) ||
        kv_u32(w, "block_count", (uint32_t)c->n_layer, err) || kv_u32(w, "feed_forward_length", (uint32_t)c->n_ff, err) ||
        kv_u32(w, "attention.head_count", (uint32_t)c->n_head, err) ||
        kv_u32(w, "attention.head_count_kv", (uint32_t)c->n_head_kv, err) ||
        icl_gguf_writer_add_f32(w, "llama.attention.layer_norm_rms_epsilon", c->eps, err) ||
        icl_gguf_writer_add_f32(w, "llama.rope.freq_base", c->rope_theta, err) ||
        kv_u32(w, "rope.dimension_count", (uint32_t)hd, err) || kv_u32(w, "vocab_size", (uint32_t)c->n_vocab, err))
        return -1;
    for (int i = 0; tokg && i < icl_gguf_n_kv(tokg); i++)
        if (!strncmp(icl_gguf_kv_key(tokg, i), "tokenizer.", 10) && icl_gguf_writer_copy_kv(w, tokg, i, err)) return -1;
    if (add_tensor(w, m, ICL_LT_TOKEN_EMBD, 0, err) || add_tensor(w, m, ICL_LT_OUTPUT_NORM, 0, err) ||
        add_tensor(w, m, ICL_LT_OUTPUT, 0, err))
        return -1;
    for (int l = 0; l < c->n_layer; l++)
        for (int k = ICL_LT_ATTN_NORM; k <= ICL_LT_FFN_DOWN; k++)
            if (add_tensor(w, m, k, l, err)) return -1;
    return icl_gguf_writer_write(w, path, err);
}

int icl_lmtrain_save(const icl_lmtrain *m, const char *path, const char *tokenizer_gguf, icl_err *err) {
    icl_gguf *tokg = NULL;
    if (tokenizer_gguf) {
        if (icl_gguf_open(&tokg, tokenizer_gguf, err)) return -1;
        icl_gguf_arr toks;
        if (icl_gguf_get_arr(tokg, "tokenizer.ggml.tokens", &toks, err) || toks.type != ICL_GGUF_STRING) {
            icl_gguf_close(tokg);
            return icl_errf(err, "%s: no tokenizer.ggml.tokens string array", tokenizer_gguf);
        }
        if (toks.n != (uint64_t)m->cfg.n_vocab) {
            icl_gguf_close(tokg);
            return icl_errf(err, "%s has %llu tokens but the model's vocabulary is %d", tokenizer_gguf,
                            (unsigned long long)toks.n, m->cfg.n_vocab);
        }
    }
    icl_gguf_writer *w;
    int rc = icl_gguf_writer_init(&w, err);
    if (!rc) {
        rc = write_gguf(w, m, tokg, path, err);
        icl_gguf_writer_free(w);
    }
    icl_gguf_close(tokg);
    return rc ? -1 : 0;
}
