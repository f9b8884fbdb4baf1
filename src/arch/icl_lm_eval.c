/* The LM forward pass: embeddings, pre-norm blocks with RoPE/GQA attention over a KV cache, the
 * MLP variants, the head; hooks at every site. A call processes the new tokens as one (T, C) batch
 * per step, so prefill runs on matrix products; one token at a time (generation) runs on dot
 * products. Shapes in comments: T = tokens of this step, C = n_embd, qd = H*hd, kvd = Hkv*hd. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "icl_lm_internal.h"
#include "iclab/icl_bf16.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_qmat.h"
#include "iclab/icl_quant.h"

struct icl_lm_ctx {
    const icl_lm *lm;
    int n_ctx, n_batch, n_past, stopped, n_threads;
    float *k_cache, *v_cache;                  /* (L, n_ctx, kvd) */
    float *x, *xn, *qkv, *att, *proj, *ff_a, *ff_b; /* (n_batch, C | C | qd+2kvd | qd | C | F | F) */
    float *scores;                             /* (n_threads, n_ctx): one query's scores; attention runs on
                                                  at most n_threads threads, fixed at init, so these fit */
    float *score_tiles;                        /* (n_threads, n_batch, n_ctx): a head's scores in prefill */
    double *inv_freq;                          /* (rope_dim/2) RoPE angle per position */
    float *logits;                             /* (rows, n_vocab), grown on demand */
    size_t logits_cap;
    int has_logits;
    const icl_hook *hooks;
    int n_hooks;
    lm_lora *lora; /* adapters (lm_ctx_set_lora), or NULL */
    char *mem;
    uint64_t bytes;
};

enum { N_BUFS = 13 };

int icl_lm_ctx_init(icl_lm_ctx **out, const icl_lm *lm, int n_ctx, int n_batch, icl_err *err) {
    *out = NULL;
    const icl_lm_hparams *hp = &lm->hp;
    if (n_ctx < 0 || n_batch < 0) return icl_errf(err, "context and batch sizes must be >= 0");
    if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (n_ctx <= 0) n_ctx = 2048;
    if (n_ctx > (1 << 20)) return icl_errf(err, "context of %d positions is too large", n_ctx);
    if (hp->arch == ICL_LM_GPT2 && n_ctx > lm->pos_embd.rows)
        return icl_errf(err, "context of %d positions exceeds the model's %lld learned positions", n_ctx,
                        (long long)lm->pos_embd.rows);
    if (n_batch == 0) n_batch = 512;
    if (n_batch > n_ctx) n_batch = n_ctx;
    icl_lm_ctx *c = calloc(1, sizeof *c);
    if (!c) return icl_errf(err, "out of memory");
    c->lm = lm;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_threads = omp_get_max_threads();
    size_t C = (size_t)hp->n_embd, qd = (size_t)hp->n_head * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim;
    size_t B = (size_t)n_batch, F = (size_t)hp->n_ff, L = (size_t)hp->n_layer;
    /* One allocation described by a size table (bytes), each piece 64-byte aligned. */
    size_t sizes[N_BUFS] = {
        L * n_ctx * kvd * 4, L * n_ctx * kvd * 4, B * C * 4, B * C * 4, B * (qd + 2 * kvd) * 4, B * qd * 4,
        B * C * 4, B * F * 4, B * F * 4, (size_t)c->n_threads * n_ctx * 4, (size_t)(hp->rope_dim / 2 + 1) * 8,
        (size_t)c->n_threads * B * n_ctx * 4, 0};
    void **slots[N_BUFS] = {(void **)&c->k_cache, (void **)&c->v_cache, (void **)&c->x, (void **)&c->xn,
                            (void **)&c->qkv, (void **)&c->att, (void **)&c->proj, (void **)&c->ff_a,
                            (void **)&c->ff_b, (void **)&c->scores, (void **)&c->inv_freq, (void **)&c->score_tiles, NULL};
    size_t total = 0;
    for (int i = 0; i < N_BUFS; i++) total += (sizes[i] + 63) & ~(size_t)63;
    /* Plain malloc, not calloc: cache pages become resident only as positions are written. */
    if (posix_memalign((void **)&c->mem, 64, total ? total : 64)) {
        free(c);
        return icl_errf(err, "out of memory allocating a %.1f MiB context", total / 1048576.0);
    }
    size_t off = 0;
    for (int i = 0; i < N_BUFS; i++) {
        if (slots[i]) *slots[i] = c->mem + off;
        off += (sizes[i] + 63) & ~(size_t)63;
    }
    c->bytes = total;
    lm_rope_init(lm, c->inv_freq);
    *out = c;
    return 0;
}

void icl_lm_ctx_free(icl_lm_ctx *c) {
    if (!c) return;
    free(c->mem);
    free(c->logits);
    free(c);
}

void icl_lm_ctx_reset(icl_lm_ctx *c) {
    c->n_past = 0;
    c->stopped = 0;
    c->has_logits = 0;
}
int icl_lm_ctx_rewind(icl_lm_ctx *c, int n_past, icl_err *err) {
    if (c->stopped) return icl_errf(err, "the context stopped early at a layer: reset it instead of rewinding");
    if (n_past < 0 || n_past > c->n_past)
        return icl_errf(err, "cannot rewind to position %d: the context holds %d", n_past, c->n_past);
    c->n_past = n_past; /* the cache rows from n_past on are overwritten by the next eval */
    c->has_logits = 0;
    return 0;
}

int lm_ctx_set_lora(icl_lm_ctx *c, lm_lora *lora, icl_err *err) {
    if (lora && lm_lora_reserve(lora, c->n_batch, c->lm, 0, err)) return -1;
    c->lora = lora;
    return 0;
}

int icl_lm_ctx_n_past(const icl_lm_ctx *c) { return c->n_past; }
const icl_lm *icl_lm_ctx_model(const icl_lm_ctx *c) { return c->lm; }
int icl_lm_ctx_n_ctx(const icl_lm_ctx *c) { return c->n_ctx; }
uint64_t icl_lm_ctx_bytes(const icl_lm_ctx *c) { return c->bytes + c->logits_cap * sizeof(float); }
const float *icl_lm_logits(const icl_lm_ctx *c) { return c->has_logits ? c->logits : NULL; }

int icl_lm_set_hooks(icl_lm_ctx *c, const icl_hook *hooks, int n, icl_err *err) {
    const icl_lm_hparams *hp = &c->lm->hp;
    if (n < 0 || (n > 0 && !hooks)) return icl_errf(err, "bad hook list");
    for (int i = 0; i < n; i++) {
        const icl_hook *h = &hooks[i];
        if (h->site < ICL_SITE_RESID_PRE || h->site > ICL_SITE_HEAD_OUT) return icl_errf(err, "hook %d: unknown site", i);
        if (h->layer < 0 || h->layer >= hp->n_layer)
            return icl_errf(err, "hook %d: layer %d out of range [0, %d)", i, h->layer, hp->n_layer);
        if (h->site == ICL_SITE_HEAD_OUT && (h->head < 0 || h->head >= hp->n_head))
            return icl_errf(err, "hook %d: head %d out of range [0, %d)", i, h->head, hp->n_head);
        if (h->action < ICL_HOOK_CAPTURE || h->action > ICL_HOOK_ZERO) return icl_errf(err, "hook %d: unknown action", i);
        if ((h->action == ICL_HOOK_CAPTURE && !h->out) ||
            ((h->action == ICL_HOOK_REPLACE || h->action == ICL_HOOK_ADD) && !h->vec))
            return icl_errf(err, "hook %d: missing buffer", i);
        if (h->n_positions < 0 || (h->n_positions > 0 && !h->positions)) return icl_errf(err, "hook %d: bad positions", i);
        for (int k = 0; k < h->n_positions; k++)
            if (h->positions[k] < 0) return icl_errf(err, "hook %d: negative position %d", i, h->positions[k]);
    }
    c->hooks = n ? hooks : NULL;
    c->n_hooks = n;
    return 0;
}

/* Applies the hooks of (site, layer) to buf (T rows of stride ld) holding positions p0..p0+T-1 of
 * sequence s of a batch: its rows of out/vec follow sequence s-1's (a context has one sequence). */
static void run_hooks(const lm_run *r, icl_site site, int layer, float *buf, size_t ld, int p0, int T, int s) {
    int hd = r->lm->hp.head_dim, C = r->lm->hp.n_embd;
    for (int i = 0; i < r->n_hooks; i++) {
        const icl_hook *h = &r->hooks[i];
        if (h->site != site || h->layer != layer) continue;
        int w = site == ICL_SITE_HEAD_OUT ? hd : C;
        size_t off = site == ICL_SITE_HEAD_OUT ? (size_t)h->head * hd : 0;
        int n = h->positions ? h->n_positions : T;
        for (int k = 0; k < n; k++) {
            int p = h->positions ? h->positions[k] : p0 + k;
            if (p < p0 || p >= p0 + T) continue;
            /* row of vec/out: hook position, or absolute position, after those of earlier sequences */
            size_t idx = h->positions ? (size_t)s * n + k : (size_t)s * T + p;
            float *x = buf + (size_t)(p - p0) * ld + off;
            const float *v = h->per_sequence ? h->vec + (size_t)idx * w : h->vec;
            switch (h->action) {
            case ICL_HOOK_CAPTURE: memcpy(h->out + (size_t)idx * w, x, (size_t)w * sizeof(float)); break;
            case ICL_HOOK_REPLACE: memcpy(x, v, (size_t)w * sizeof(float)); break;
            case ICL_HOOK_ADD:
                for (int j = 0; j < w; j++) x[j] += v[j];
                break;
            case ICL_HOOK_ZERO: memset(x, 0, (size_t)w * sizeof(float)); break;
            }
        }
    }
}

void lm_hooks(const lm_run *r, icl_site site, int layer, float *buf, size_t ld, int p0, int S, int T) {
    if (!r->n_hooks) return;
    for (int s = 0; s < S; s++) run_hooks(r, site, layer, buf + (size_t)s * T * ld, ld, p0, T, s);
}

/* Sums in double: a row of thousands of squares loses bits in float. */
void lm_norm_rows(const icl_lm *lm, float *out, float *rstd, const float *in, const float *w, const float *b, int T) {
    int C = lm->hp.n_embd;
    float eps = lm->hp.eps;
    int rms = lm->norm == LM_NORM_RMS;
#pragma omp parallel for schedule(static) if (T >= 8)
    for (int t = 0; t < T; t++) {
        const float *x = in + (size_t)t * C;
        float *y = out + (size_t)t * C;
        double mean = 0, var = 0;
        if (!rms) {
            for (int i = 0; i < C; i++) mean += x[i];
            mean /= C;
        }
        for (int i = 0; i < C; i++) var += ((double)x[i] - mean) * ((double)x[i] - mean);
        float rs = (float)(1.0 / sqrt(var / C + eps)), m = (float)mean;
        if (rstd) rstd[t] = rs;
        for (int i = 0; i < C; i++) {
            float v = (x[i] - m) * rs;
            if (w) v *= w[i];
            if (b) v += b[i];
            y[i] = v;
        }
    }
}

/* A block's norm of io->x into io->xn: the training kernel when it applies (see train_kernels). */
static void block_norm(const icl_lm *lm, const lm_block_io *io, const float *w, const float *b, int N) {
    if (lm->train_kernels && lm->norm == LM_NORM_LAYER && w && b && io->mean && io->rstd)
        icl_layernorm_forward(io->xn, io->mean, io->rstd, io->x, w, b, N, lm->hp.n_embd, lm->hp.eps);
    else
        lm_norm_rows(lm, io->xn, io->rstd, io->x, w, b, N);
}

/* Gemma-2's norm of a sub-block's output, in place; a training forward keeps its input and rstd. */
static void post_norm(const icl_lm *lm, const lm_block_io *io, const float *w, int N) {
    if (io->post_in) memcpy(io->post_in, io->proj, sizeof(float) * (size_t)N * lm->hp.n_embd);
    lm_norm_rows(lm, io->proj, io->post_rstd, io->proj, w, NULL, N);
}

static void add_bias(float *y, size_t ld, const float *b, int T, int n) {
    if (!b) return;
#pragma omp parallel for schedule(static) if ((size_t)T * n >= 65536)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) y[(size_t)t * ld + i] += b[i];
}

static int matmul(const lm_mat *m, const float *x, int T, float *y, size_t ldy, icl_err *err) {
    return icl_qmatmul(m->type, m->data, m->rows, m->cols, x, T, y, (int64_t)ldy, err);
}

/* y (T, rows; row stride ldy) = x m^T + b (b may be NULL), plus the adapter of matrix t of layer l. */
static int linear(const lm_run *r, int l, int t, const lm_mat *m, const float *b, const float *x, int T, float *y,
                  size_t ldy, icl_err *err) {
    if (r->lm->train_kernels && m->type == ICL_GGML_F32 && ldy == (size_t)m->rows) {
        if (!r->lm->bf16) icl_linear_forward(y, x, (const float *)m->data, b, T, (int)m->cols, (int)m->rows);
        else if (icl_linear_forward_bf16(y, x, (const float *)m->data, b, T, (int)m->cols, (int)m->rows, err)) return -1;
    } else {
        if (matmul(m, x, T, y, ldy, err)) return -1;
        add_bias(y, ldy, b, T, (int)m->rows);
    }
    if (lm_lora_has(r->lora, l, t)) lm_lora_forward(r->lora, l, t, x, T, (int)m->cols, y, ldy, (int)m->rows);
    return 0;
}

void lm_rope_init(const icl_lm *lm, double *inv_freq) {
    const icl_lm_hparams *hp = &lm->hp;
    for (int i = 0; i < hp->rope_dim / 2; i++) {
        double f = pow((double)hp->rope_base, -2.0 * i / hp->rope_dim) * hp->rope_scale;
        if (lm->rope_freqs) f /= lm->rope_freqs[i];
        inv_freq[i] = f;
    }
}

void lm_rope_table(const icl_lm *lm, const double *inv_freq, int n, float *cs) {
    int half = lm->hp.rope_dim / 2;
#pragma omp parallel for schedule(static) if (n >= 64)
    for (int p = 0; p < n; p++)
        for (int i = 0; i < half; i++) {
            double a = (double)p * inv_freq[i];
            cs[((size_t)p * half + i) * 2] = (float)cos(a);
            cs[((size_t)p * half + i) * 2 + 1] = (float)sin(a);
        }
}

/* Rotates n_heads heads of width hd (row stride ld) of T tokens at positions p0.. by RoPE. */
static void rope(const lm_run *r, float *x, size_t ld, int n_heads, int T, int p0) {
    const icl_lm_hparams *hp = &r->lm->hp;
    int half = hp->rope_dim / 2, hd = hp->head_dim;
    const float *table = r->rope_cs && p0 + T <= r->rope_cs_n ? r->rope_cs : NULL;
#pragma omp parallel for schedule(static) if (T >= 16)
    for (int t = 0; t < T; t++) {
        double pos = p0 + t;
        for (int i = 0; i < half; i++) {
            float cs, sn;
            if (table) {
                cs = table[((size_t)(p0 + t) * half + i) * 2];
                sn = table[((size_t)(p0 + t) * half + i) * 2 + 1];
            } else {
                double a = pos * r->inv_freq[i];
                cs = (float)cos(a), sn = (float)sin(a);
            }
            int i0 = hp->rope_neox ? i : 2 * i, i1 = hp->rope_neox ? i + half : 2 * i + 1;
            for (int h = 0; h < n_heads; h++) {
                float *v = x + (size_t)t * ld + (size_t)h * hd;
                float a0 = v[i0], a1 = v[i1];
                v[i0] = a0 * cs - a1 * sn;
                v[i1] = a0 * sn + a1 * cs;
            }
        }
    }
}

/* Dot product in 16 independent lanes (the compiler vectorises it without reassociating). */
static inline float dot16(const float *a, const float *b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; k++) acc[k] += a[i + k] * b[i + k];
    for (; i < n; i++) acc[i & 15] += a[i] * b[i];
    /* pairwise halving: four vector adds instead of sixteen scalar ones */
    for (int w = 8; w >= 1; w /= 2)
        for (int k = 0; k < w; k++) acc[k] += acc[k + w];
    return acc[0];
}

/* Soft-caps, masks (causal, window), and softmaxes scores s[j0..p] of one query in place; entries
 * outside [j0, p] are left alone. Returns 1/sum for the caller to scale with. */
static float softmax_row(float *s, int j0, int p, float cap) {
    float mx = -INFINITY;
    for (int j = j0; j <= p; j++) {
        if (cap > 0) s[j] = cap * tanhf(s[j] / cap);
        if (s[j] > mx) mx = s[j];
    }
    double sum = 0;
    for (int j = j0; j <= p; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    return (float)(1.0 / sum);
}

/* One sequence's attention: q (T rows of stride ldq) at positions p0.. against the keys/values of
 * positions 0..p0+T-1 (k, v: rows of stride ldkv); out (T, qd). probs, if not NULL, receives the
 * probabilities (n_head, T, p0+T). */
typedef struct attn_args {
    const float *q, *k, *v;
    size_t ldq, ldkv;
    float *out, *probs;
} attn_args;

/* Prefill of many tokens, per head: the scores (T, p0+T) by tiles of ATT_Q queries x ATT_K keys
 * against the keys transposed ATT_K at a time, softmaxed in place, then each output row as the
 * probability-weighted sum of the value rows, ATT_Q queries sharing each value row. Every score is
 * one chain of products in dimension order and every output one chain in key order, so no bit
 * depends on T, p0 or the thread count: a rewound and re-evaluated prefix gives the same cache as
 * the first evaluation (a BLAS call's rounding depends on the call's shape). Only the tiles at or
 * below the causal diagonal are computed. Returns -1 if a thread's key buffer could not be had. */
enum { ATT_Q = 4, ATT_K = 16 };
static int attention_tiles(const lm_run *r, int layer, const attn_args *a, int T, int p0) {
    const icl_lm_hparams *hp = &r->lm->hp;
    int H = hp->n_head, hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, nk = p0 + T, failed = 0;
    size_t qd = (size_t)H * hd;
    int window = hp->sliding_window > 0 && layer % 2 == 0 ? hp->sliding_window : 0;
#pragma omp parallel num_threads(r->n_threads)
    {
        float *kt = malloc(sizeof(float) * (size_t)hd * ATT_K); /* (hd, ATT_K) */
        if (!kt) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int h = 0; h < H; h++) {
            if (!kt) continue;
            float *S = a->probs ? a->probs + (size_t)h * T * nk : r->score_tiles + (size_t)omp_get_thread_num() * r->tile_ld;
            const float *q = a->q + (size_t)h * hd;
            size_t koff = (size_t)(h / group) * hd;
            for (int jb = 0; jb < nk; jb += ATT_K) {
                int nj = nk - jb < ATT_K ? nk - jb : ATT_K;
                for (int d = 0; d < hd; d++)
                    for (int j = 0; j < ATT_K; j++) kt[d * ATT_K + j] = j < nj ? a->k[(size_t)(jb + j) * a->ldkv + koff + d] : 0;
                /* queries before jb - p0 see none of these keys; tiles start at multiples of ATT_Q */
                int t0 = jb - p0 > 0 ? (jb - p0) / ATT_Q * ATT_Q : 0;
                for (int tb = t0; tb < T; tb += ATT_Q) {
                    int nq = T - tb < ATT_Q ? T - tb : ATT_Q;
                    float acc[ATT_Q][ATT_K] = {{0}};
                    for (int d = 0; d < hd; d++)
                        for (int i = 0; i < ATT_Q; i++) {
                            float qi = i < nq ? q[(size_t)(tb + i) * a->ldq + d] : 0;
                            for (int j = 0; j < ATT_K; j++) acc[i][j] += qi * kt[d * ATT_K + j];
                        }
                    for (int i = 0; i < nq; i++)
                        for (int j = 0; j < nj; j++) S[(size_t)(tb + i) * nk + jb + j] = acc[i][j] * hp->q_scale;
                }
            }
            for (int t = 0; t < T; t++) {
                float *s = S + (size_t)t * nk;
                int p = p0 + t, j0 = window && p - window + 1 > 0 ? p - window + 1 : 0;
                float inv = softmax_row(s, j0, p, hp->attn_softcap);
                for (int j = 0; j < j0; j++) s[j] = 0;
                for (int j = j0; j <= p; j++) s[j] *= inv;
                for (int j = p + 1; j < nk; j++) s[j] = 0;
            }
            for (int tb = 0; tb < T; tb += ATT_Q) {
                int nq = T - tb < ATT_Q ? T - tb : ATT_Q, lo[ATT_Q], hi[ATT_Q], jlo = nk, jhi = 0;
                for (int i = 0; i < nq; i++) {
                    int p = p0 + tb + i;
                    lo[i] = window && p - window + 1 > 0 ? p - window + 1 : 0;
                    hi[i] = p;
                    if (lo[i] < jlo) jlo = lo[i];
                    if (hi[i] > jhi) jhi = hi[i];
                    memset(a->out + (size_t)(tb + i) * qd + (size_t)h * hd, 0, sizeof(float) * (size_t)hd);
                }
                for (int j = jlo; j <= jhi; j++) {
                    const float *v = a->v + (size_t)j * a->ldkv + koff;
                    for (int i = 0; i < nq; i++) {
                        if (j < lo[i] || j > hi[i]) continue;
                        float wgt = S[(size_t)(tb + i) * nk + j], *o = a->out + (size_t)(tb + i) * qd + (size_t)h * hd;
                        for (int e = 0; e < hd; e++) o[e] += wgt * v[e];
                    }
                }
            }
        }
        free(kt);
    }
    return failed ? -1 : 0;
}

/* out (T, qd) = softmax over the keys of (q k * q_scale, soft-capped, causal, windowed) times v.
 * Few tokens (generation) go query by query; many (prefill) through attention_tiles. Returns -1 if
 * out of memory. */
static int attention(const lm_run *r, int layer, const attn_args *a, int T, int p0) {
    if (T >= 16) return attention_tiles(r, layer, a, T, p0);
    const icl_lm_hparams *hp = &r->lm->hp;
    int H = hp->n_head, hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, nk = p0 + T;
    size_t qd = (size_t)H * hd;
    int window = hp->sliding_window > 0 && layer % 2 == 0 ? hp->sliding_window : 0;
#pragma omp parallel for collapse(2) schedule(static) num_threads(r->n_threads) if ((size_t)T * (p0 + T) * H * hd > 100000)
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float *s = a->probs ? a->probs + ((size_t)h * T + t) * nk : r->scores + (size_t)omp_get_thread_num() * r->score_ld;
            const float *q = a->q + (size_t)t * a->ldq + (size_t)h * hd;
            size_t koff = (size_t)(h / group) * hd;
            int p = p0 + t, j0 = window && p - window + 1 > 0 ? p - window + 1 : 0;
            for (int j = j0; j <= p; j++) s[j] = dot16(q, a->k + (size_t)j * a->ldkv + koff, hd) * hp->q_scale;
            float inv = softmax_row(s, j0, p, hp->attn_softcap);
            float *o = a->out + (size_t)t * qd + (size_t)h * hd;
            memset(o, 0, (size_t)hd * sizeof(float));
            for (int j = j0; j <= p; j++) {
                const float *v = a->v + (size_t)j * a->ldkv + koff;
                float wgt = s[j] * inv;
                for (int i = 0; i < hd; i++) o[i] += wgt * v[i];
            }
            if (a->probs) { /* the probabilities as used above, zero outside the window */
                for (int j = 0; j < j0; j++) s[j] = 0;
                for (int j = j0; j <= p; j++) s[j] *= inv;
                for (int j = p + 1; j < nk; j++) s[j] = 0;
            }
        }
    return 0;
}

int lm_embed(const icl_lm *lm, float *xs, float *scratch, const int32_t *tok, int T, int p0, icl_err *err) {
    int C = lm->hp.n_embd;
    for (int t = 0; t < T; t++) {
        float *x = xs + (size_t)t * C;
        const char *row = (const char *)lm->tok_embd.data + (size_t)tok[t] * lm->tok_embd.row_bytes;
        if (icl_quant_dequantize_row(lm->tok_embd.type, row, x, C, err)) return -1;
        if (lm->hp.embd_scale != 1.0f)
            for (int i = 0; i < C; i++) x[i] *= lm->hp.embd_scale;
        if (lm->pos_embd.data) {
            float *pe = scratch + (size_t)t * C;
            row = (const char *)lm->pos_embd.data + (size_t)(p0 + t) * lm->pos_embd.row_bytes;
            if (icl_quant_dequantize_row(lm->pos_embd.type, row, pe, C, err)) return -1;
            for (int i = 0; i < C; i++) x[i] += pe[i];
        }
    }
    return 0;
}

/* x_out = x + proj (in place when they are the same buffer). */
static void residual(const lm_block_io *io, size_t n) {
    if (io->x_out == io->x) icl_accumulate(io->x_out, io->proj, n);
    else icl_add(io->x_out, io->x, io->proj, n);
}

int lm_attn_block(const lm_run *r, int l, const lm_block_io *io, int S, int T, int p0, icl_err *err) {
    const icl_lm *lm = r->lm;
    const icl_lm_hparams *hp = &lm->hp;
    const lm_layer *L = &lm->layers[l];
    size_t C = hp->n_embd, qd = (size_t)hp->n_head * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim;
    size_t ldq = qd + 2 * kvd;
    int N = S * T;
    float *qkv = io->qkv;
    block_norm(lm, io, L->attn_norm, L->attn_norm_b, N);
    if (L->wqkv.data) {
        if (linear(r, l, LM_T_Q, &L->wqkv, L->bqkv, io->xn, N, qkv, ldq, err)) return -1;
    } else if (linear(r, l, LM_T_Q, &L->wq, L->bq, io->xn, N, qkv, ldq, err) ||
               linear(r, l, LM_T_K, &L->wk, L->bk, io->xn, N, qkv + qd, ldq, err) ||
               linear(r, l, LM_T_V, &L->wv, L->bv, io->xn, N, qkv + qd + kvd, ldq, err))
        return -1;
    if (hp->clamp_kqv > 0) {
        float m = hp->clamp_kqv;
        for (size_t i = 0; i < (size_t)N * ldq; i++) qkv[i] = qkv[i] < -m ? -m : qkv[i] > m ? m : qkv[i];
    }
    /* training kernels: all sequences in one call, the probabilities kept for the backward */
    int train_attn = lm->train_kernels && !io->k_cache && io->probs && p0 == 0 && hp->sliding_window == 0 &&
                     hp->attn_softcap == 0;
    for (int s = 0; s < S; s++) {
        float *qs = qkv + (size_t)s * T * ldq;
        if (hp->rope_base > 0) {
            rope(r, qs, ldq, hp->n_head, T, p0);
            rope(r, qs + qd, ldq, hp->n_head_kv, T, p0);
        }
        if (train_attn) continue;
        attn_args a = {qs, qs + qd, qs + qd + kvd, ldq, ldq, io->att + (size_t)s * T * qd,
                       io->probs ? io->probs + (size_t)s * hp->n_head * T * (p0 + T) : NULL};
        if (io->k_cache) { /* append to the cache and attend over every cached position */
            float *kc = io->k_cache + (size_t)p0 * kvd, *vc = io->v_cache + (size_t)p0 * kvd;
            for (int t = 0; t < T; t++) {
                memcpy(kc + (size_t)t * kvd, qs + (size_t)t * ldq + qd, kvd * sizeof(float));
                memcpy(vc + (size_t)t * kvd, qs + (size_t)t * ldq + qd + kvd, kvd * sizeof(float));
            }
            a.k = io->k_cache;
            a.v = io->v_cache;
            a.ldkv = kvd;
        }
        if (attention(r, l, &a, T, p0)) return icl_errf(err, "attention: out of memory for the key buffers");
    }
    if (train_attn)
        icl_gqa_forward(io->att, io->probs, qkv, ldq, qkv + qd, qkv + qd + kvd, ldq, S, T, hp->n_head, hp->n_head_kv,
                        hp->head_dim, hp->q_scale);
    lm_hooks(r, ICL_SITE_HEAD_OUT, l, io->att, qd, p0, S, T);
    if (linear(r, l, LM_T_O, &L->wo, L->bo, io->att, N, io->proj, C, err)) return -1;
    if (L->post_attn_norm) post_norm(lm, io, L->post_attn_norm, N);
    lm_hooks(r, ICL_SITE_ATTN_OUT, l, io->proj, C, p0, S, T);
    residual(io, (size_t)N * C);
    return 0;
}

int lm_mlp_block(const lm_run *r, int l, const lm_block_io *io, int S, int T, int p0, icl_err *err) {
    const icl_lm *lm = r->lm;
    const lm_layer *L = &lm->layers[l];
    size_t C = lm->hp.n_embd, F = lm->hp.n_ff;
    int N = S * T;
    float *m = io->ff_m ? io->ff_m : io->ff_a;
    block_norm(lm, io, L->ffn_norm, L->ffn_norm_b, N);
    if (linear(r, l, LM_T_UP, &L->up, L->b_up, io->xn, N, io->ff_b, F, err)) return -1;
    if (lm->mlp != LM_MLP_GELU) {
        if (linear(r, l, LM_T_GATE, &L->gate, L->b_gate, io->xn, N, io->ff_a, F, err)) return -1;
        if (lm->mlp == LM_MLP_SWIGLU) {
            if (m == io->ff_a) icl_silu_mul(io->ff_a, io->ff_b, (size_t)N * F);
            else icl_swiglu_forward(m, io->ff_a, io->ff_b, (size_t)N * F); /* the same bits, gate kept */
        } else if (m == io->ff_a) {
            icl_gelu_mul(io->ff_a, io->ff_b, (size_t)N * F);
        } else {
            icl_geglu_forward(m, io->ff_a, io->ff_b, (size_t)N * F); /* the same bits, gate kept */
        }
    } else {
        icl_gelu_forward(io->ff_a, io->ff_b, (size_t)N * F);
        m = io->ff_a;
    }
    if (linear(r, l, LM_T_DOWN, &L->down, L->b_down, m, N, io->proj, C, err)) return -1;
    if (L->post_ffn_norm) post_norm(lm, io, L->post_ffn_norm, N);
    lm_hooks(r, ICL_SITE_MLP_OUT, l, io->proj, C, p0, S, T);
    residual(io, (size_t)N * C);
    return 0;
}

int lm_head_rows(const icl_lm *lm, float *xn, float *rstd, const float *x, int nr, float *dst, icl_err *err) {
    size_t V = lm->hp.n_vocab;
    lm_norm_rows(lm, xn, rstd, x, lm->out_norm, lm->out_norm_b, nr);
    if (matmul(&lm->output, xn, nr, dst, V, err)) return -1;
    float cap = lm->hp.final_softcap;
    if (cap > 0)
        for (size_t i = 0; i < (size_t)nr * V; i++) dst[i] = cap * tanhf(dst[i] / cap);
    return 0;
}

/* The context's view of the block code: its hooks and scratch. */
static lm_run ctx_run(const icl_lm_ctx *c) {
    return (lm_run){c->lm, c->hooks, c->n_hooks, c->inv_freq, c->n_threads, c->scores, c->score_tiles,
                    (size_t)c->n_ctx, (size_t)c->n_batch * c->n_ctx, NULL, c->lora, NULL, 0};
}

/* One step of T <= n_batch tokens at positions p0..; the logits of its rows [r0, r0+nr) go to dst
 * (nr = 0: none). */
static int step(icl_lm_ctx *c, const int32_t *tok, int T, int p0, int last_layer, int r0, int nr, float *dst,
                icl_err *err) {
    const icl_lm *lm = c->lm;
    size_t C = lm->hp.n_embd, kvd = (size_t)lm->hp.n_head_kv * lm->hp.head_dim;
    lm_run r = ctx_run(c);
    if (lm_embed(lm, c->x, c->xn, tok, T, p0, err)) return -1;
    lm_block_io io = {.x = c->x, .x_out = c->x, .xn = c->xn, .qkv = c->qkv, .att = c->att, .proj = c->proj,
                      .ff_a = c->ff_a, .ff_b = c->ff_b, .ff_m = c->ff_a};
    for (int l = 0; l <= last_layer; l++) {
        io.k_cache = c->k_cache + (size_t)l * c->n_ctx * kvd;
        io.v_cache = c->v_cache + (size_t)l * c->n_ctx * kvd;
        run_hooks(&r, ICL_SITE_RESID_PRE, l, c->x, C, p0, T, 0);
        if (lm_attn_block(&r, l, &io, 1, T, p0, err) || lm_mlp_block(&r, l, &io, 1, T, p0, err)) return -1;
        run_hooks(&r, ICL_SITE_RESID_POST, l, c->x, C, p0, T, 0);
    }
    return nr > 0 ? lm_head_rows(lm, c->xn, NULL, c->x + (size_t)r0 * C, nr, dst, err) : 0;
}

int icl_lm_eval(icl_lm_ctx *c, const int32_t *tokens, int n, const icl_lm_eval_opts *opts, icl_err *err) {
    const icl_lm_hparams *hp = &c->lm->hp;
    icl_lm_eval_opts o = opts ? *opts : (icl_lm_eval_opts){ICL_LM_LOGITS_LAST, -1, 0};
    if (c->stopped) return icl_errf(err, "the context stopped early at a layer: reset it before evaluating again");
    if (n <= 0 || !tokens) return icl_errf(err, "nothing to evaluate");
    if (n > c->n_ctx - c->n_past)
        return icl_errf(err, "%d tokens after %d do not fit the context of %d positions", n, c->n_past, c->n_ctx);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= hp->n_vocab)
            return icl_errf(err, "token id %d at %d is outside the vocabulary [0, %d)", tokens[i], i, hp->n_vocab);
    if (o.logits < ICL_LM_LOGITS_NONE || o.logits > ICL_LM_LOGITS_TAIL) return icl_errf(err, "bad logits mode");
    if (o.logits == ICL_LM_LOGITS_TAIL && o.n_tail < 1) return icl_errf(err, "LOGITS_TAIL needs n_tail >= 1");
    if (o.stop_layer < -1 || o.stop_layer >= hp->n_layer)
        return icl_errf(err, "stop layer %d out of range [0, %d)", o.stop_layer, hp->n_layer);
    if (o.stop_layer >= 0 && o.logits != ICL_LM_LOGITS_NONE)
        return icl_errf(err, "logits need every layer: do not stop early when asking for them");
    /* logits rows: the last `rows` positions of this eval */
    size_t V = hp->n_vocab, rows = o.logits == ICL_LM_LOGITS_ALL ? (size_t)n : o.logits == ICL_LM_LOGITS_LAST ? 1 : 0;
    if (o.logits == ICL_LM_LOGITS_TAIL) rows = o.n_tail < n ? (size_t)o.n_tail : (size_t)n;
    int tail0 = n - (int)rows;
    if (rows * V > c->logits_cap) {
        float *p = realloc(c->logits, rows * V * sizeof(float));
        if (!p) return icl_errf(err, "out of memory for %zu x %zu logits", rows, V);
        c->logits = p;
        c->logits_cap = rows * V;
    }
    c->has_logits = 0;
    int last_layer = o.stop_layer >= 0 ? o.stop_layer : hp->n_layer - 1;
    for (int off = 0; off < n; off += c->n_batch) {
        int T = n - off < c->n_batch ? n - off : c->n_batch;
        int r0 = tail0 > off ? tail0 : off, nr = off + T - r0; /* this step's rows with logits */
        if (nr < 0) nr = 0;
        if (step(c, tokens + off, T, c->n_past, last_layer, r0 - off, nr, c->logits + (size_t)(r0 - tail0) * V, err)) {
            c->stopped = 1; /* the cache holds a partial step: refuse to continue */
            return -1;
        }
        c->n_past += T;
    }
    if (last_layer < hp->n_layer - 1) c->stopped = 1;
    c->has_logits = o.logits != ICL_LM_LOGITS_NONE;
    return 0;
}

/* Sorting (value desc, id asc) for top-k / top-p. */
typedef struct { float v; int32_t id; } cand;
static int cand_cmp(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

int32_t icl_lm_sample(const float *logits, int n_vocab, float temperature, int top_k, float top_p, icl_rng *rng) {
    int32_t best = 0;
    for (int i = 1; i < n_vocab; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0 || !rng) return best;
    int n = top_k > 0 && top_k < n_vocab ? top_k : n_vocab;
    cand *cs = malloc((size_t)n * sizeof *cs);
    if (!cs) return best;
    /* The n best by a min-heap on (value, -id) so that ties keep the lower id, then sorted. */
    int m = 0;
    for (int i = 0; i < n_vocab; i++) {
        cand x = {logits[i] / temperature, i};
        if (m == n && cand_cmp(&x, &cs[0]) >= 0) continue; /* not better than the worst kept */
        int k;
        if (m < n) { /* sift up */
            k = m++;
            while (k > 0 && cand_cmp(&cs[(k - 1) / 2], &x) < 0) {
                cs[k] = cs[(k - 1) / 2];
                k = (k - 1) / 2;
            }
        } else { /* replace the root, sift down */
            k = 0;
            for (;;) {
                int ch = 2 * k + 1;
                if (ch >= m) break;
                if (ch + 1 < m && cand_cmp(&cs[ch + 1], &cs[ch]) > 0) ch++;
                if (cand_cmp(&cs[ch], &x) <= 0) break;
                cs[k] = cs[ch];
                k = ch;
            }
        }
        cs[k] = x;
    }
    qsort(cs, (size_t)n, sizeof *cs, cand_cmp);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)cs[i].v - cs[0].v);
    if (top_p < 1) { /* keep the smallest prefix whose probability reaches top_p */
        double acc = 0;
        for (int i = 0; i < n; i++) {
            acc += exp((double)cs[i].v - cs[0].v) / sum;
            if (acc >= top_p) {
                n = i + 1;
                break;
            }
        }
        sum = 0;
        for (int i = 0; i < n; i++) sum += exp((double)cs[i].v - cs[0].v);
    }
    double u = icl_rng_uniform(rng) * sum, acc = 0;
    int32_t pick = cs[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += exp((double)cs[i].v - cs[0].v);
        if (u < acc) {
            pick = cs[i].id;
            break;
        }
    }
    free(cs);
    return pick;
}
