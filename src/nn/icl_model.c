/* The transformer engine: parameter/activation layout, forward, backward, Adam (see icl_model.h). */
#include "iclab/icl_model.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
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
    return 0;
}

void icl_model_free(icl_model *m) {
    free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    free(m->acts);
    free(m->scratch);
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

/* Applies the hooks of (site, layer) to x (B,T,C) in place. */
static int apply_hooks(const icl_model *m, icl_site site, int layer, float *x, int B, int T, icl_err *err) {
    int C = m->cfg.n_embd, hs = C / m->cfg.n_head;
    for (int i = 0; i < m->n_hooks; i++) {
        const icl_hook *h = &m->hooks[i];
        if (h->site != site || h->layer != layer) continue;
        int np = h->positions ? h->n_positions : T;
        int off = site == ICL_SITE_HEAD_OUT ? h->head * hs : 0, w = site == ICL_SITE_HEAD_OUT ? hs : C;
        for (int k = 0; k < np; k++)
            if ((h->positions ? h->positions[k] : k) >= T)
                return icl_errf(err, "hook %d: position %d is past the sequence length %d", i, h->positions[k], T);
        for (int b = 0; b < B; b++)
            for (int k = 0; k < np; k++) {
                int t = h->positions ? h->positions[k] : k;
                float *v = x + ((size_t)b * T + t) * C + off;
                size_t slot = ((size_t)b * np + k) * w;
                const float *src = h->vec ? h->vec + (h->per_sequence ? slot : 0) : NULL;
                switch (h->action) {
                case ICL_HOOK_CAPTURE: memcpy(h->out + slot, v, sizeof(float) * w); break;
                case ICL_HOOK_REPLACE: memcpy(v, src, sizeof(float) * w); break;
                case ICL_HOOK_ADD: for (int j = 0; j < w; j++) v[j] += src[j]; break;
                case ICL_HOOK_ZERO: memset(v, 0, sizeof(float) * w); break;
                }
            }
    }
    return 0;
}

/* Hook dispatch that costs one branch when no hook is set. */
#define HOOK(site, layer, x)                                                          \
    do {                                                                              \
        if (m->hooks && apply_hooks(m, (site), (layer), (x), B, T, err)) return -1; \
    } while (0)

int icl_model_forward(icl_model *m, const float *tokens, int B, int T, const float *targets, const float *mask,
                      float *loss, icl_err *err) {
    const icl_model_config *c = &m->cfg;
    if (B < 1 || T < 1) return icl_errf(err, "forward needs at least one sequence and one token");
    if (T > c->n_ctx) return icl_errf(err, "sequence of %d tokens exceeds the model context of %d", T, c->n_ctx);
    if (ensure_acts(m, B, T, err)) return -1;
    int L = c->n_layer, C = c->n_embd, H = c->n_head, F = c->mlp_mult * C, D = c->d_in;
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

    for (int l = 0; l < L; l++) {
        float *resid = m->a[ICL_A_RESID] + l * NC, *resid_next = resid + NC;
        float *ln1 = m->a[ICL_A_LN1] + l * NC, *ln1m = m->a[ICL_A_LN1MEAN] + (size_t)l * N, *ln1r = m->a[ICL_A_LN1RSTD] + (size_t)l * N;
        float *qkv = m->a[ICL_A_QKV] + l * 3 * NC, *atty = m->a[ICL_A_ATTY] + l * NC;
        float *att = m->a[ICL_A_ATT] + (size_t)l * B * H * T * T, *attout = m->a[ICL_A_ATTOUT] + l * NC;
        float *resid2 = m->a[ICL_A_RESID2] + l * NC, *ln2 = m->a[ICL_A_LN2] + l * NC;
        float *ln2m = m->a[ICL_A_LN2MEAN] + (size_t)l * N, *ln2r = m->a[ICL_A_LN2RSTD] + (size_t)l * N;
        float *fch = m->a[ICL_A_FCH] + (size_t)l * N * F, *fcg = m->a[ICL_A_FCGELU] + (size_t)l * N * F;
        float *mlpout = m->a[ICL_A_MLPOUT] + l * NC;

        HOOK(ICL_SITE_RESID_PRE, l, resid);
        icl_layernorm_forward(ln1, ln1m, ln1r, resid, m->p[ICL_P_LN1W] + l * C, m->p[ICL_P_LN1B] + l * C, N, C);
        icl_linear_forward(qkv, ln1, m->p[ICL_P_QKVW] + (size_t)l * 3 * C * C, m->p[ICL_P_QKVB] + l * 3 * C, N, C, 3 * C);
        icl_attention_forward(atty, att, qkv, B, T, C, H);
        HOOK(ICL_SITE_HEAD_OUT, l, atty);
        icl_linear_forward(attout, atty, m->p[ICL_P_ATTW] + (size_t)l * C * C, m->p[ICL_P_ATTB] + l * C, N, C, C);
        HOOK(ICL_SITE_ATTN_OUT, l, attout);
        icl_add(resid2, resid, attout, NC);
        icl_layernorm_forward(ln2, ln2m, ln2r, resid2, m->p[ICL_P_LN2W] + l * C, m->p[ICL_P_LN2B] + l * C, N, C);
        icl_linear_forward(fch, ln2, m->p[ICL_P_FCW] + (size_t)l * F * C, m->p[ICL_P_FCB] + (size_t)l * F, N, C, F);
        icl_gelu_forward(fcg, fch, (size_t)N * F);
        icl_linear_forward(mlpout, fcg, m->p[ICL_P_PROJW] + (size_t)l * C * F, m->p[ICL_P_PROJB] + l * C, N, F, C);
        HOOK(ICL_SITE_MLP_OUT, l, mlpout);
        icl_add(resid_next, resid2, mlpout, NC);
        HOOK(ICL_SITE_RESID_POST, l, resid_next);
    }
    float *xL = m->a[ICL_A_RESID] + (size_t)L * NC;
    icl_layernorm_forward(m->a[ICL_A_LNF], m->a[ICL_A_LNFMEAN], m->a[ICL_A_LNFRSTD], xL, m->p[ICL_P_LNFW], m->p[ICL_P_LNFB], N, C);
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
    int B = m->B, T = m->T, L = c->n_layer, C = c->n_embd, H = c->n_head, F = c->mlp_mult * C, D = c->d_in, O = c->d_out;
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

    for (int l = L - 1; l >= 0; l--) {
        float *resid = m->a[ICL_A_RESID] + l * NC;
        float *ln1 = m->a[ICL_A_LN1] + l * NC, *ln1m = m->a[ICL_A_LN1MEAN] + (size_t)l * N, *ln1r = m->a[ICL_A_LN1RSTD] + (size_t)l * N;
        float *qkv = m->a[ICL_A_QKV] + l * 3 * NC, *atty = m->a[ICL_A_ATTY] + l * NC;
        float *att = m->a[ICL_A_ATT] + (size_t)l * B * H * T * T;
        float *resid2 = m->a[ICL_A_RESID2] + l * NC, *ln2 = m->a[ICL_A_LN2] + l * NC;
        float *ln2m = m->a[ICL_A_LN2MEAN] + (size_t)l * N, *ln2r = m->a[ICL_A_LN2RSTD] + (size_t)l * N;
        float *fch = m->a[ICL_A_FCH] + (size_t)l * N * F, *fcg = m->a[ICL_A_FCGELU] + (size_t)l * N * F;

        /* MLP: resid_next = resid2 + proj(gelu(fc(ln2(resid2)))); dresid is d resid_next and becomes d resid2 */
        icl_linear_backward(dfcg, m->g[ICL_P_PROJW] + (size_t)l * C * F, m->g[ICL_P_PROJB] + l * C, dresid, fcg,
                            m->p[ICL_P_PROJW] + (size_t)l * C * F, N, F, C);
        icl_gelu_backward(dfch, fch, dfcg, (size_t)N * F);
            icl_linear_backward(dln, m->g[ICL_P_FCW] + (size_t)l * F * C, m->g[ICL_P_FCB] + (size_t)l * F, dfch, ln2,
                            m->p[ICL_P_FCW] + (size_t)l * F * C, N, C, F);
        icl_layernorm_backward(dresid, m->g[ICL_P_LN2W] + l * C, m->g[ICL_P_LN2B] + l * C, dln, resid2,
                               m->p[ICL_P_LN2W] + l * C, ln2m, ln2r, N, C);

        /* attention: resid2 = resid + attproj(attn(qkv(ln1(resid)))) */
        icl_linear_backward(dtmp, m->g[ICL_P_ATTW] + (size_t)l * C * C, m->g[ICL_P_ATTB] + l * C, dresid, atty,
                            m->p[ICL_P_ATTW] + (size_t)l * C * C, N, C, C);
        memset(dqkv, 0, 3 * NC * sizeof(float));
        icl_attention_backward(dqkv, dtmp, qkv, att, B, T, C, H);
            icl_linear_backward(dln, m->g[ICL_P_QKVW] + (size_t)l * 3 * C * C, m->g[ICL_P_QKVB] + l * 3 * C, dqkv, ln1,
                            m->p[ICL_P_QKVW] + (size_t)l * 3 * C * C, N, C, 3 * C);
        icl_layernorm_backward(dresid, m->g[ICL_P_LN1W] + l * C, m->g[ICL_P_LN1B] + l * C, dln, resid,
                               m->p[ICL_P_LN1W] + l * C, ln1m, ln1r, N, C);
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
