/* The toy transformer: parameter/activation layout, its ends (read-in, positions, final norm,
 * read-out, loss) and Adam; the blocks run on the engine's block code (see icl_model.h). */
#include "iclab/icl_model.h"
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "../arch/icl_lm_internal.h"
#include "iclab/icl_bf16.h"
#include "iclab/icl_kernels.h"

/* Names follow llama.cpp's GGUF conventions where one exists. */
const icl_param_spec icl_param_specs[ICL_NPARAMS] = {
    [ICL_P_WIN] = {"read_in.weight", 0, 2, {0, 0}},
    [ICL_P_BIN] = {"read_in.bias", 0, 1, {0, 0}},
    [ICL_P_WPE] = {"position_embd.weight", 0, 2, {0, 0}},
    [ICL_P_LN1W] = {"blk.%d.attn_norm.weight", 1, 1, {0, 0}},
    [ICL_P_LN1B] = {"blk.%d.attn_norm.bias", 1, 1, {0, 0}},
    [ICL_P_QKVW] = {"blk.%d.attn_qkv.weight", 1, 2, {0, 0}},
    [ICL_P_QKVB] = {"blk.%d.attn_qkv.bias", 1, 1, {0, 0}},
    [ICL_P_ATTW] = {"blk.%d.attn_output.weight", 1, 2, {0, 0}},
    [ICL_P_ATTB] = {"blk.%d.attn_output.bias", 1, 1, {0, 0}},
    [ICL_P_LN2W] = {"blk.%d.ffn_norm.weight", 1, 1, {0, 0}},
    [ICL_P_LN2B] = {"blk.%d.ffn_norm.bias", 1, 1, {0, 0}},
    [ICL_P_FCW] = {"blk.%d.ffn_up.weight", 1, 2, {0, 0}},
    [ICL_P_FCB] = {"blk.%d.ffn_up.bias", 1, 1, {0, 0}},
    [ICL_P_PROJW] = {"blk.%d.ffn_down.weight", 1, 2, {0, 0}},
    [ICL_P_PROJB] = {"blk.%d.ffn_down.bias", 1, 1, {0, 0}},
    [ICL_P_LNFW] = {"output_norm.weight", 0, 1, {0, 0}},
    [ICL_P_LNFB] = {"output_norm.bias", 0, 1, {0, 0}},
    [ICL_P_WOUT] = {"read_out.weight", 0, 2, {0, 0}},
    [ICL_P_BOUT] = {"read_out.bias", 0, 1, {0, 0}},
};

int icl_model_config_validate(const icl_model_config *c, icl_err *err) {
    if (c->n_layer < 1 || c->n_layer > 256) return icl_errf(err, "layers must be in 1..256 (got %d)", c->n_layer);
    if (c->n_embd < 1 || c->n_embd > 16384) return icl_errf(err, "width must be in 1..16384 (got %d)", c->n_embd);
    if (c->n_head < 1 || c->n_embd % c->n_head)
        return icl_errf(err, "heads (%d) must be >= 1 and divide the width (%d)", c->n_head, c->n_embd);
    if (c->n_ctx < 1 || c->n_ctx > 4096) return icl_errf(err, "context must be in 1..4096 tokens (got %d)", c->n_ctx);
    if (c->d_in < 1 || c->d_in > 4096) return icl_errf(err, "input dimension must be in 1..4096 (got %d)", c->d_in);
    if (c->d_out < 1 || c->d_out > 4096) return icl_errf(err, "output dimension must be in 1..4096 (got %d)", c->d_out);
    if (c->mlp_mult < 1 || c->mlp_mult > 16) return icl_errf(err, "MLP multiplier must be in 1..16 (got %d)", c->mlp_mult);
    return 0;
}

size_t icl_model_param_layer_size(const icl_model *m, int i) {
    const icl_model_config *c = &m->cfg;
    size_t C = c->n_embd, F = (size_t)c->mlp_mult * C;
    switch (i) {
    case ICL_P_WIN: return C * c->d_in;
    case ICL_P_BIN: return C;
    case ICL_P_WPE: return (size_t)c->n_ctx * C;
    case ICL_P_LN1W: case ICL_P_LN1B: case ICL_P_LN2W: case ICL_P_LN2B: return C;
    case ICL_P_QKVW: return 3 * C * C;
    case ICL_P_QKVB: return 3 * C;
    case ICL_P_ATTW: return C * C;
    case ICL_P_ATTB: return C;
    case ICL_P_FCW: return F * C;
    case ICL_P_FCB: return F;
    case ICL_P_PROJW: return C * F;
    case ICL_P_PROJB: return C;
    case ICL_P_LNFW: case ICL_P_LNFB: return C;
    case ICL_P_WOUT: return (size_t)c->d_out * C;
    case ICL_P_BOUT: return c->d_out;
    }
    return 0;
}

static void *alloc_floats(size_t n) {
    void *p = NULL;
    if (posix_memalign(&p, 64, (n ? n : 1) * sizeof(float))) return NULL;
    memset(p, 0, (n ? n : 1) * sizeof(float));
    return p;
}

static lm_mat f32_mat(const float *p, int64_t rows, int64_t cols) {
    return (lm_mat){ICL_GGML_F32, rows, cols, (uint64_t)cols * sizeof(float), p};
}

/* The engine's view of the blocks: a GPT-2 block (LayerNorm, fused q|k|v with biases, GELU MLP,
 * no RoPE: the positions are the toy's own learned table) over m->params, on the training kernels. */
static int make_view(icl_model *m) {
    const icl_model_config *c = &m->cfg;
    icl_lm *lm = calloc(1, sizeof *lm);
    lm_layer *layers = calloc((size_t)c->n_layer, sizeof *layers);
    if (!lm || !layers) {
        free(lm);
        free(layers);
        return -1;
    }
    int C = c->n_embd, F = c->mlp_mult * c->n_embd, hs = C / c->n_head;
    lm->hp = (icl_lm_hparams){.arch = ICL_LM_GPT2, .arch_name = "toy", .n_embd = C, .n_layer = c->n_layer,
                              .n_head = c->n_head, .n_head_kv = c->n_head, .head_dim = hs, .n_ff = F,
                              .n_ctx_train = c->n_ctx, .eps = 1e-5f, .rope_scale = 1.0f, .embd_scale = 1.0f,
                              .q_scale = 1.0f / sqrtf((float)hs)};
    lm->norm = LM_NORM_LAYER;
    lm->mlp = LM_MLP_GELU;
    lm->train_kernels = 1;
    lm->layers = layers;
    for (int l = 0; l < c->n_layer; l++) {
        lm_layer *L = &layers[l];
        size_t C1 = (size_t)l * C;
        L->attn_norm = m->p[ICL_P_LN1W] + C1;
        L->attn_norm_b = m->p[ICL_P_LN1B] + C1;
        L->wqkv = f32_mat(m->p[ICL_P_QKVW] + 3 * C1 * C, 3 * C, C);
        L->bqkv = m->p[ICL_P_QKVB] + 3 * C1;
        L->wo = f32_mat(m->p[ICL_P_ATTW] + C1 * C, C, C);
        L->bo = m->p[ICL_P_ATTB] + C1;
        L->ffn_norm = m->p[ICL_P_LN2W] + C1;
        L->ffn_norm_b = m->p[ICL_P_LN2B] + C1;
        L->up = f32_mat(m->p[ICL_P_FCW] + (size_t)l * F * C, F, C);
        L->b_up = m->p[ICL_P_FCB] + (size_t)l * F;
        L->down = f32_mat(m->p[ICL_P_PROJW] + (size_t)l * C * F, C, F);
        L->b_down = m->p[ICL_P_PROJB] + C1;
    }
    m->view = lm;
    return 0;
}

int icl_model_init(icl_model *m, const icl_model_config *cfg, icl_err *err) {
    memset(m, 0, sizeof *m);
    if (icl_model_config_validate(cfg, err)) return -1;
    m->cfg = *cfg;
    for (int i = 0; i < ICL_NPARAMS; i++) {
        m->param_sizes[i] = icl_model_param_layer_size(m, i) * (icl_param_specs[i].per_layer ? (size_t)cfg->n_layer : 1);
        m->n_params += m->param_sizes[i];
    }
    m->params = alloc_floats(m->n_params);
    m->grads = alloc_floats(m->n_params);
    m->adam_m = alloc_floats(m->n_params);
    m->adam_v = alloc_floats(m->n_params);
    if (!m->params || !m->grads || !m->adam_m || !m->adam_v) {
        icl_model_free(m);
        return icl_errf(err, "out of memory allocating %zu parameters", m->n_params);
    }
    size_t off = 0;
    for (int i = 0; i < ICL_NPARAMS; i++) {
        m->p[i] = m->params + off;
        m->g[i] = m->grads + off;
        off += m->param_sizes[i];
    }
    if (make_view(m)) {
        icl_model_free(m);
        return icl_errf(err, "out of memory");
    }
    return 0;
}

void icl_model_free(icl_model *m) {
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->acts);
    free(m->scratch);
    if (m->view) free(m->view->layers);
    free(m->view);
    memset(m, 0, sizeof *m);
}

void icl_model_init_weights(icl_model *m, icl_rng *rng) {
    int L = m->cfg.n_layer;
    float proj_std = 0.02f / sqrtf(2.0f * L);
    for (int i = 0; i < ICL_NPARAMS; i++) {
        float *p = m->p[i];
        size_t n = m->param_sizes[i];
        switch (i) {
        case ICL_P_LN1W: case ICL_P_LN2W: case ICL_P_LNFW:
            for (size_t j = 0; j < n; j++) p[j] = 1.0f;
            break;
        case ICL_P_WIN: case ICL_P_BIN: case ICL_P_WOUT: case ICL_P_BOUT: {
            /* the read-in and read-out are plain linear layers outside the GPT-2 stack (as in Garg et
             * al.), so they get PyTorch's default Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) */
            int fan_in = (i == ICL_P_WIN || i == ICL_P_BIN) ? m->cfg.d_in : m->cfg.n_embd;
            double bound = 1.0 / sqrt((double)fan_in);
            for (size_t j = 0; j < n; j++) p[j] = (float)(bound * (2.0 * icl_rng_uniform(rng) - 1.0));
            break;
        }
        case ICL_P_WPE: case ICL_P_QKVW: case ICL_P_FCW:
            for (size_t j = 0; j < n; j++) p[j] = (float)(0.02 * icl_rng_normal(rng));
            break;
        case ICL_P_ATTW: case ICL_P_PROJW:
            for (size_t j = 0; j < n; j++) p[j] = (float)(proj_std * icl_rng_normal(rng));
            break;
        default:
            memset(p, 0, n * sizeof(float));
        }
    }
    memset(m->adam_m, 0, m->n_params * sizeof(float));
    memset(m->adam_v, 0, m->n_params * sizeof(float));
    m->adam_t = 0;
}

/* Sizes of every activation for B*T = N tokens. */
static void act_sizes(const icl_model_config *c, size_t N, int B, int T, size_t *s) {
    size_t L = c->n_layer, C = c->n_embd, F = (size_t)c->mlp_mult * C;
    s[ICL_A_INP] = N * c->d_in;
    s[ICL_A_RESID] = (L + 1) * N * C;
    s[ICL_A_LN1] = L * N * C;
    s[ICL_A_LN1MEAN] = s[ICL_A_LN1RSTD] = L * N;
    s[ICL_A_QKV] = L * N * 3 * C;
    s[ICL_A_ATTY] = L * N * C;
    s[ICL_A_ATT] = L * (size_t)B * c->n_head * T * T;
    s[ICL_A_ATTOUT] = L * N * C;
    s[ICL_A_RESID2] = L * N * C;
    s[ICL_A_LN2] = L * N * C;
    s[ICL_A_LN2MEAN] = s[ICL_A_LN2RSTD] = L * N;
    s[ICL_A_FCH] = s[ICL_A_FCGELU] = L * N * F;
    s[ICL_A_MLPOUT] = L * N * C;
    s[ICL_A_LNF] = N * C;
    s[ICL_A_LNFMEAN] = s[ICL_A_LNFRSTD] = N;
    s[ICL_A_OUT] = N * c->d_out;
}

/* Makes the activation buffer fit (B,T); reallocates only when it grows. */
static int ensure_acts(icl_model *m, int B, int T, icl_err *err) {
    const icl_model_config *c = &m->cfg;
    size_t N = (size_t)B * T;
    size_t sizes[ICL_NACTS], total = 0;
    act_sizes(c, N, B, T, sizes);
    for (int i = 0; i < ICL_NACTS; i++) total += sizes[i];
    size_t cap_total = 0;
    for (int i = 0; i < ICL_NACTS; i++) cap_total += m->act_sizes[i];
    if (!m->acts || total > cap_total) {
        free(m->acts);
        m->acts = alloc_floats(total);
        if (!m->acts) return icl_errf(err, "out of memory allocating activations for %d sequences of %d tokens", B, T);
        cap_total = total;
    }
    memcpy(m->act_sizes, sizes, sizeof sizes);
    size_t off = 0;
    for (int i = 0; i < ICL_NACTS; i++) {
        m->a[i] = m->acts + off;
        off += sizes[i];
    }
    /* backward scratch: dresid, dtmp, dln (N,C), dqkv (N,3C), dfch (N,F) x2, dout (N,d_out) */
    size_t C = c->n_embd, F = (size_t)c->mlp_mult * C;
    size_t need = N * (3 * C + 3 * C + 2 * F + c->d_out);
    if (need > m->scratch_floats) {
        free(m->scratch);
        m->scratch = alloc_floats(need);
        if (!m->scratch) {
            m->scratch_floats = 0;
            return icl_errf(err, "out of memory allocating gradient scratch");
        }
        m->scratch_floats = need;
    }
    m->B = B;
    m->T = T;
    return 0;
}

int icl_model_set_hooks(icl_model *m, const icl_hook *hooks, int n, icl_err *err) {
    const icl_model_config *c = &m->cfg;
    for (int i = 0; i < n; i++) {
        const icl_hook *h = &hooks[i];
        if (h->layer < 0 || h->layer >= c->n_layer)
            return icl_errf(err, "hook %d: layer %d out of range 0..%d", i, h->layer, c->n_layer - 1);
        if (h->site < ICL_SITE_RESID_PRE || h->site > ICL_SITE_HEAD_OUT) return icl_errf(err, "hook %d: unknown site", i);
        if (h->action < ICL_HOOK_CAPTURE || h->action > ICL_HOOK_ZERO) return icl_errf(err, "hook %d: unknown action", i);
        if (h->site == ICL_SITE_HEAD_OUT && (h->head < 0 || h->head >= c->n_head))
            return icl_errf(err, "hook %d: head %d out of range 0..%d", i, h->head, c->n_head - 1);
        if (h->positions) {
            if (h->n_positions < 1) return icl_errf(err, "hook %d: empty position list", i);
            for (int k = 0; k < h->n_positions; k++)
                if (h->positions[k] < 0 || h->positions[k] >= c->n_ctx)
                    return icl_errf(err, "hook %d: position %d out of range 0..%d", i, h->positions[k], c->n_ctx - 1);
        }
        if ((h->action == ICL_HOOK_REPLACE || h->action == ICL_HOOK_ADD) && !h->vec)
            return icl_errf(err, "hook %d: replace/add needs a vector", i);
        if (h->action == ICL_HOOK_CAPTURE && !h->out) return icl_errf(err, "hook %d: capture needs an output buffer", i);
    }
    m->hooks = n > 0 ? hooks : NULL;
    m->n_hooks = n > 0 ? n : 0;
    return 0;
}

/* Layer l's attention and MLP sub-block buffers in the activations of the current (B,T). */
static void layer_io(const icl_model *m, int l, lm_block_io *at, lm_block_io *ml) {
    size_t N = (size_t)m->B * m->T, C = m->cfg.n_embd, F = (size_t)m->cfg.mlp_mult * C, NC = N * C, L = (size_t)l;
    *at = (lm_block_io){.x = m->a[ICL_A_RESID] + L * NC, .x_out = m->a[ICL_A_RESID2] + L * NC,
                        .xn = m->a[ICL_A_LN1] + L * NC, .mean = m->a[ICL_A_LN1MEAN] + L * N,
                        .rstd = m->a[ICL_A_LN1RSTD] + L * N, .qkv = m->a[ICL_A_QKV] + L * 3 * NC,
                        .att = m->a[ICL_A_ATTY] + L * NC,
                        .probs = m->a[ICL_A_ATT] + L * m->B * m->cfg.n_head * m->T * m->T,
                        .proj = m->a[ICL_A_ATTOUT] + L * NC};
    *ml = (lm_block_io){.x = at->x_out, .x_out = m->a[ICL_A_RESID] + (L + 1) * NC, .xn = m->a[ICL_A_LN2] + L * NC,
                        .mean = m->a[ICL_A_LN2MEAN] + L * N, .rstd = m->a[ICL_A_LN2RSTD] + L * N,
                        .proj = m->a[ICL_A_MLPOUT] + L * NC, .ff_a = m->a[ICL_A_FCGELU] + L * N * F,
                        .ff_b = m->a[ICL_A_FCH] + L * N * F};
}

static lm_run run_of(const icl_model *m) {
    return (lm_run){m->view, m->hooks, m->n_hooks, NULL, omp_get_max_threads(), NULL, NULL, 0, 0, NULL, NULL, NULL, 0};
}

int icl_model_set_bf16(icl_model *m, int on, icl_err *err) {
    if (on && icl_bf16_init(err)) return -1;
    m->bf16 = on != 0;
    return 0;
}

int icl_model_forward(icl_model *m, const float *tokens, int B, int T, const float *targets, const float *mask,
                      float *loss, icl_err *err) {
    const icl_model_config *c = &m->cfg;
    if (B < 1 || T < 1) return icl_errf(err, "forward needs at least one sequence and one token");
    if (T > c->n_ctx) return icl_errf(err, "sequence of %d tokens exceeds the model context of %d", T, c->n_ctx);
    if (ensure_acts(m, B, T, err)) return -1;
    for (int i = 0; i < m->n_hooks; i++) {
        const icl_hook *h = &m->hooks[i];
        for (int k = 0; h->positions && k < h->n_positions; k++)
            if (h->positions[k] >= T)
                return icl_errf(err, "hook %d: position %d is past the sequence length %d", i, h->positions[k], T);
    }
    int L = c->n_layer, C = c->n_embd, D = c->d_in;
    int N = B * T;
    size_t NC = (size_t)N * C;
    memcpy(m->a[ICL_A_INP], tokens, (size_t)N * D * sizeof(float));

    /* embedding: read-in + positions */
    float *x0 = m->a[ICL_A_RESID];
    icl_linear_forward(x0, tokens, m->p[ICL_P_WIN], m->p[ICL_P_BIN], N, D, C);
    const float *wpe = m->p[ICL_P_WPE];
#pragma omp parallel for schedule(static) if (NC > 32768)
    for (int n = 0; n < N; n++) {
        const float *pe = wpe + (size_t)(n % T) * C;
        float *row = x0 + (size_t)n * C;
        for (int j = 0; j < C; j++) row[j] += pe[j];
    }

    /* bf16 products in training passes only: a forward with hooks (decode, patch) stays fp32 */
    m->fwd_bf16 = m->view->bf16 = m->bf16 && m->n_hooks == 0;
    lm_run r = run_of(m);
    for (int l = 0; l < L; l++) {
        lm_block_io at, ml;
        layer_io(m, l, &at, &ml);
        lm_hooks(&r, ICL_SITE_RESID_PRE, l, at.x, C, 0, B, T);
        if (lm_attn_block(&r, l, &at, B, T, 0, err) || lm_mlp_block(&r, l, &ml, B, T, 0, err)) return -1;
        lm_hooks(&r, ICL_SITE_RESID_POST, l, ml.x_out, C, 0, B, T);
    }
    float *xL = m->a[ICL_A_RESID] + (size_t)L * NC;
    icl_layernorm_forward(m->a[ICL_A_LNF], m->a[ICL_A_LNFMEAN], m->a[ICL_A_LNFRSTD], xL, m->p[ICL_P_LNFW], m->p[ICL_P_LNFB], N, C,
                          m->view->hp.eps);
    icl_linear_forward(m->a[ICL_A_OUT], m->a[ICL_A_LNF], m->p[ICL_P_WOUT], m->p[ICL_P_BOUT], N, C, c->d_out);

    m->have_targets = targets != NULL;
    m->targets = targets;
    m->target_mask = mask;
    if (targets) {
        const float *out = m->a[ICL_A_OUT];
        size_t n = (size_t)N * c->d_out;
        double s = 0, cnt = 0;
        for (size_t i = 0; i < n; i++) {
            double w = mask ? mask[i] : 1.0;
            if (w == 0) continue;
            double d = (double)out[i] - targets[i];
            s += w * d * d;
            cnt += w;
        }
        if (cnt <= 0) return icl_errf(err, "loss mask selects no outputs");
        if (loss) *loss = (float)(s / cnt);
    }
    return 0;
}

int icl_model_backward(icl_model *m, icl_err *err) {
    if (!m->have_targets) return icl_errf(err, "backward needs a forward pass with targets first");
    for (int i = 0; i < m->n_hooks; i++)
        if (m->hooks[i].action != ICL_HOOK_CAPTURE) return icl_errf(err, "backward is not defined while an intervention hook is set");
    const icl_model_config *c = &m->cfg;
    int B = m->B, T = m->T, L = c->n_layer, C = c->n_embd, F = c->mlp_mult * C, D = c->d_in, O = c->d_out;
    int N = B * T;
    size_t NC = (size_t)N * C;
    float *dresid = m->scratch, *dtmp = dresid + NC, *dln = dtmp + NC;
    float *dqkv = dln + NC, *dfch = dqkv + 3 * NC, *dfcg = dfch + (size_t)N * F, *dout = dfcg + (size_t)N * F;

    /* d loss / d out for the masked mean squared error */
    const float *out = m->a[ICL_A_OUT], *tg = m->targets, *mk = m->target_mask;
    size_t nout = (size_t)N * O;
    double cnt = 0;
    for (size_t i = 0; i < nout; i++) cnt += mk ? mk[i] : 1.0;
    float inv = (float)(2.0 / cnt);
    for (size_t i = 0; i < nout; i++) dout[i] = (mk ? mk[i] : 1.0f) * inv * (out[i] - tg[i]);

    icl_linear_backward(dln, m->g[ICL_P_WOUT], m->g[ICL_P_BOUT], dout, m->a[ICL_A_LNF], m->p[ICL_P_WOUT], N, C, O);
    memset(dresid, 0, NC * sizeof(float));
    icl_layernorm_backward(dresid, m->g[ICL_P_LNFW], m->g[ICL_P_LNFB], dln, m->a[ICL_A_RESID] + (size_t)L * NC,
                           m->p[ICL_P_LNFW], m->a[ICL_A_LNFMEAN], m->a[ICL_A_LNFRSTD], N, C);

    m->view->bf16 = m->fwd_bf16; /* the products of the forward's kind */
    lm_run r = run_of(m);
    lm_grad_scratch s = {.dh = dln, .tmp = dtmp, .dqkv = dqkv, .dy = dtmp, .df1 = dfcg, .df2 = dfch};
    for (int l = L - 1; l >= 0; l--) {
        size_t l1 = (size_t)l * C;
        lm_layer_grads g = {.attn_norm = m->g[ICL_P_LN1W] + l1, .attn_norm_b = m->g[ICL_P_LN1B] + l1,
                            .wqkv = m->g[ICL_P_QKVW] + 3 * l1 * C, .bqkv = m->g[ICL_P_QKVB] + 3 * l1,
                            .wo = m->g[ICL_P_ATTW] + l1 * C, .bo = m->g[ICL_P_ATTB] + l1,
                            .ffn_norm = m->g[ICL_P_LN2W] + l1, .ffn_norm_b = m->g[ICL_P_LN2B] + l1,
                            .up = m->g[ICL_P_FCW] + (size_t)l * F * C, .b_up = m->g[ICL_P_FCB] + (size_t)l * F,
                            .down = m->g[ICL_P_PROJW] + l1 * F, .b_down = m->g[ICL_P_PROJB] + l1};
        lm_block_io at, ml;
        layer_io(m, l, &at, &ml);
        if (lm_mlp_block_backward(&r, l, &ml, &g, dresid, &s, B, T, err) ||
            lm_attn_block_backward(&r, l, &at, &g, dresid, 1, &s, B, T, err))
            return -1;
    }

    /* embedding */
    float *gwpe = m->g[ICL_P_WPE];
    for (int b = 0; b < B; b++) /* sequential over b: fixed order */
        for (int t = 0; t < T; t++) {
            const float *d = dresid + ((size_t)b * T + t) * C;
            float *gp = gwpe + (size_t)t * C;
            for (int j = 0; j < C; j++) gp[j] += d[j];
        }
    icl_linear_backward(NULL, m->g[ICL_P_WIN], m->g[ICL_P_BIN], dresid, m->a[ICL_A_INP], m->p[ICL_P_WIN], N, D, C);
    return 0;
}

void icl_model_zero_grad(icl_model *m) { memset(m->grads, 0, m->n_params * sizeof(float)); }

void icl_adam_step(icl_model *m, const icl_adam_config *c, float lr) {
    m->adam_t++;
    float bc1 = 1.0f - powf(c->beta1, (float)m->adam_t), bc2 = 1.0f - powf(c->beta2, (float)m->adam_t);
    icl_adamw_update(m->params, m->grads, m->adam_m, m->adam_v, m->n_params, lr, c->weight_decay, c->beta1, c->beta2,
                     c->eps, bc1, sqrtf(bc2));
}

double icl_grad_norm(const icl_model *m) {
    double s = 0;
    for (size_t i = 0; i < m->n_params; i++) s += (double)m->grads[i] * m->grads[i];
    return sqrt(s);
}

void icl_grad_scale(icl_model *m, float s) {
    for (size_t i = 0; i < m->n_params; i++) m->grads[i] *= s;
}
