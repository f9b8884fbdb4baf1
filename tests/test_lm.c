/* The GGUF language-model engine against the PyTorch reference (tests/ref/lm_ref.py): for each case
 * of tests/fixtures/lm/cases.txt the model is regenerated with `iclab mkmodel` (deterministic), run
 * on the fixture's tokens, and every layer's residual stream and the last position's logits are
 * compared. Then, on those models: chunked prefill and one-token-at-a-time decoding agree with one
 * batch; stopping at a layer gives the same states; hooks do what they say; quantized models agree
 * with their own dequantized copies; bad files and bad calls fail cleanly.
 * Needs ICLAB (the binary, default build/iclab) and ICLAB_VOCAB_DIR (make test sets both). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "icl_test.h"
#include "iclab/icl_gguf.h"
#include "iclab/icl_lm.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_quant.h"

/* Tolerances (relative L2): fp32 engine vs the float64 reference. */
#define TOL_STATES 5e-6
#define TOL_LOGITS 5e-6

static char tmpdir[256];
static const char *iclab_bin, *vocab_dir;

/* Runs `iclab mkmodel ARGS -o OUT` with {V} in ARGS replaced by the vocab folder. */
static int mkmodel(const char *args, const char *out) {
    char cmd[4096], expanded[2048];
    size_t o = 0;
    for (const char *p = args; *p && o + 512 < sizeof expanded;) {
        if (!strncmp(p, "{V}", 3)) {
            o += (size_t)snprintf(expanded + o, sizeof expanded - o, "%s", vocab_dir);
            p += 3;
        } else {
            expanded[o++] = *p++;
        }
    }
    expanded[o] = 0;
    snprintf(cmd, sizeof cmd, "%s mkmodel %s -o %s", iclab_bin, expanded, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed", cmd);
    return rc;
}

/* Runs tokens through a fresh context (n_batch tokens per step; one_by_one: one eval per token),
 * capturing the residual stream entering layer 0 and leaving every layer: states (L+1, T, C). */
static int run_states(const icl_lm *lm, const int32_t *tok, int T, int n_batch, int one_by_one, float *states,
                      float *logits, icl_err *err) {
    const icl_lm_hparams *hp = icl_lm_hp(lm);
    int L = hp->n_layer;
    size_t C = (size_t)hp->n_embd;
    icl_hook *hooks = calloc((size_t)L + 1, sizeof *hooks);
    hooks[0] = (icl_hook){.site = ICL_SITE_RESID_PRE, .layer = 0, .action = ICL_HOOK_CAPTURE, .out = states};
    for (int l = 0; l < L; l++)
        hooks[l + 1] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = l, .action = ICL_HOOK_CAPTURE,
                                  .out = states + (size_t)(l + 1) * T * C};
    icl_lm_ctx *c;
    int r = icl_lm_ctx_init(&c, lm, 64, n_batch, err);
    if (!r) r = icl_lm_set_hooks(c, hooks, L + 1, err);
    icl_lm_eval_opts o = {ICL_LM_LOGITS_LAST, -1, 0};
    if (!r && one_by_one)
        for (int t = 0; !r && t < T; t++) r = icl_lm_eval(c, tok + t, 1, &o, err);
    else if (!r)
        r = icl_lm_eval(c, tok, T, &o, err);
    if (!r) memcpy(logits, icl_lm_logits(c), sizeof(float) * hp->n_vocab);
    icl_lm_ctx_free(c);
    free(hooks);
    return r;
}

/* Writes a copy of src with every tensor as F32 (dequantized), or with one tensor left out and/or
 * general.architecture replaced: the quantized-vs-dequantized check and the bad-file checks. */
static int rewrite_ex(const char *src, const char *dst, int to_f32, const char *drop, const char *arch,
                      const char *rope_scaling, double rope_factor) {
    icl_err err;
    icl_gguf *g;
    icl_gguf_writer *w;
    if (icl_gguf_open(&g, src, &err)) return -1;
    if (icl_gguf_writer_init(&w, &err)) return -1;
    int r = 0, n = icl_gguf_n_tensors(g);
    for (int i = 0; !r && i < icl_gguf_n_kv(g); i++) {
        if (arch && !strcmp(icl_gguf_kv_key(g, i), "general.architecture"))
            r = icl_gguf_writer_add_str(w, "general.architecture", arch, &err);
        else r = icl_gguf_writer_copy_kv(w, g, i, &err);
    }
    if (!r && rope_scaling) {
        r = icl_gguf_writer_add_str(w, "llama.rope.scaling.type", rope_scaling, &err);
        if (!r) r = icl_gguf_writer_add_f32(w, "llama.rope.scaling.factor", (float)rope_factor, &err);
    }
    float **bufs = calloc((size_t)n, sizeof *bufs);
    for (int i = 0; !r && i < n; i++) {
        const icl_gguf_tensor *t = icl_gguf_tensor_at(g, i);
        if (drop && !strcmp(t->name, drop)) continue;
        if (to_f32 && t->type != ICL_GGML_F32) {
            bufs[i] = malloc(sizeof(float) * t->n_elements);
            r = icl_gguf_tensor_to_f32(t, bufs[i], &err);
            if (!r) r = icl_gguf_writer_add_tensor(w, t->name, ICL_GGML_F32, t->n_dims, t->ne, bufs[i], &err);
        } else {
            r = icl_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, &err);
        }
    }
    if (!r) r = icl_gguf_writer_write(w, dst, &err);
    CHECK_MSG(!r, "rewrite %s: %s", src, err.msg);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    icl_gguf_writer_free(w);
    icl_gguf_close(g);
    return r;
}

static int rewrite(const char *src, const char *dst, int to_f32, const char *drop, const char *arch) {
    return rewrite_ex(src, dst, to_f32, drop, arch, NULL, 0);
}

static int read_npy(const char *dir, const char *name, const char *what, icl_npy_dtype dt, icl_npy *a) {
    char path[1400];
    icl_err err;
    snprintf(path, sizeof path, "%s/%s_%s.npy", dir, name, what);
    int r = icl_npy_read_as(path, dt, a, &err);
    CHECK_MSG(!r, "%s", err.msg);
    return r;
}

/* One fixture case: the engine against the reference, then the engine against itself. */
static void check_case(const char *name, const char *args) {
    const char *fx = "tests/fixtures/lm";
    char model[1400];
    snprintf(model, sizeof model, "%s/%s.gguf", tmpdir, name);
    /* cases.txt names the vocabulary file; it lives in the vocab folder */
    char full[1024];
    const char *v = strstr(args, "--vocab ");
    if (!v) {
        CHECK_MSG(0, "%s: no --vocab in cases.txt", name);
        return;
    }
    snprintf(full, sizeof full, "%.*s--vocab {V}/%s", (int)(v - args), args, v + 8);
    if (mkmodel(full, model)) return;
    icl_npy tk, st, lg;
    if (read_npy(fx, name, "tokens", ICL_NPY_I32, &tk)) return;
    if (read_npy(fx, name, "states", ICL_NPY_F32, &st) || read_npy(fx, name, "logits", ICL_NPY_F32, &lg)) {
        icl_npy_free(&tk);
        return;
    }
    icl_err err;
    icl_lm *lm;
    if (icl_lm_load(&lm, model, &err)) {
        CHECK_MSG(0, "%s: %s", name, err.msg);
        return;
    }
    const icl_lm_hparams *hp = icl_lm_hp(lm);
    int T = (int)tk.shape[0], L = hp->n_layer;
    size_t C = (size_t)hp->n_embd, V = (size_t)hp->n_vocab, ns = (size_t)(L + 1) * T * C;
    CHECK_MSG(st.ndim == 3 && st.shape[0] == L + 1 && st.shape[1] == T && st.shape[2] == (int64_t)C,
              "%s: fixture states shape does not match the model", name);
    CHECK_MSG(lg.ndim == 1 && lg.shape[0] == (int64_t)V, "%s: fixture logits shape", name);
    float *s1 = calloc(ns, sizeof(float)), *s2 = calloc(ns, sizeof(float)), *l1 = malloc(V * 4), *l2 = malloc(V * 4);
    const int32_t *tok = tk.data;
    if (!run_states(lm, tok, T, 0, 0, s1, l1, &err) && st.shape[0] == L + 1 && lg.shape[0] == (int64_t)V) {
        const float *ref = st.data;
        double worst = 0;
        for (int l = 0; l <= L; l++) {
            double e = icl_rel_l2(s1 + (size_t)l * T * C, ref + (size_t)l * T * C, (size_t)T * C);
            if (e > worst) worst = e;
            CHECK_MSG(e < TOL_STATES, "%s: state %d rel err %.3g", name, l, e);
        }
        double el = icl_rel_l2(l1, lg.data, V);
        CHECK_MSG(el < TOL_LOGITS, "%s: logits rel err %.3g", name, el);
        printf("%-8s vs PyTorch: worst state rel err %.2e, logits %.2e (%d layers, %d tokens)\n", name, worst, el, L, T);

        /* Chunked prefill (3 tokens per step) and token-by-token decoding (the dot-product path). */
        CHECK(!run_states(lm, tok, T, 3, 0, s2, l2, &err));
        double ec = icl_rel_l2(s2, s1, ns), ecl = icl_rel_l2(l2, l1, V);
        CHECK_MSG(ec < 1e-6 && ecl < 1e-6, "%s: chunked prefill differs (%.3g, %.3g)", name, ec, ecl);
        CHECK(!run_states(lm, tok, T, 0, 1, s2, l2, &err));
        double eo = icl_rel_l2(s2, s1, ns), eol = icl_rel_l2(l2, l1, V);
        CHECK_MSG(eo < 1e-5 && eol < 1e-5, "%s: one-by-one decoding differs (%.3g, %.3g)", name, eo, eol);

        /* A longer prompt (the fixture's tokens repeated to 40) takes the matrix-product attention
         * in prefill; token by token it takes the per-query path: they must agree. */
        enum { TL = 40 };
        int32_t lt[TL];
        for (int t = 0; t < TL; t++) lt[t] = tok[t % T];
        size_t nl = (size_t)(L + 1) * TL * C;
        float *a = malloc(nl * 4), *b = malloc(nl * 4);
        CHECK(!run_states(lm, lt, TL, 0, 0, a, l1, &err) && !run_states(lm, lt, TL, 0, 1, b, l2, &err));
        double ea = icl_rel_l2(a, b, nl), eal = icl_rel_l2(l1, l2, V);
        CHECK_MSG(ea < 1e-5 && eal < 1e-5, "%s: 40-token prefill vs token by token (%.3g, %.3g)", name, ea, eal);
        free(a);
        free(b);
    } else {
        CHECK_MSG(0, "%s: %s", name, err.msg);
    }
    free(s1);
    free(s2);
    free(l1);
    free(l2);
    icl_lm_free(lm);
    icl_npy_free(&tk);
    icl_npy_free(&st);
    icl_npy_free(&lg);
}

static int eval_logits(icl_lm_ctx *c, const int32_t *tok, int T, float *logits, size_t V) {
    icl_err err;
    icl_lm_ctx_reset(c);
    icl_lm_eval_opts o = {ICL_LM_LOGITS_LAST, -1, 0};
    int r = icl_lm_eval(c, tok, T, &o, &err);
    CHECK_MSG(!r, "eval: %s", err.msg);
    if (!r) memcpy(logits, icl_lm_logits(c), V * sizeof(float));
    return r;
}

/* Hooks and early stopping on a 2-layer model. */
static void check_hooks(const char *model) {
    icl_err err;
    icl_lm *lm;
    icl_lm_ctx *c;
    if (icl_lm_load(&lm, model, &err) || icl_lm_ctx_init(&c, lm, 32, 0, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const icl_lm_hparams *hp = icl_lm_hp(lm);
    size_t C = hp->n_embd, V = hp->n_vocab, hd = hp->head_dim;
    enum { T = 8 };
    int32_t tok[T] = {1, 450, 4996, 17354, 1701, 29916, 432, 29889};
    float *base = malloc(V * 4), *lg = malloc(V * 4), *cap = malloc(T * C * 4), *cap2 = malloc(T * C * 4);
    float *h0 = malloc(T * hd * 4), *h0b = malloc(T * hd * 4), *vec = malloc(C * 4);
    eval_logits(c, tok, T, base, V);

    /* Replacing layer 0's output by itself changes nothing, to the last bit. */
    icl_hook hk[3] = {{.site = ICL_SITE_RESID_POST, .layer = 0, .action = ICL_HOOK_CAPTURE, .out = cap}};
    CHECK(!icl_lm_set_hooks(c, hk, 1, &err));
    eval_logits(c, tok, T, lg, V);
    CHECK(!memcmp(lg, base, V * 4));
    hk[0] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 0, .action = ICL_HOOK_REPLACE, .vec = cap, .per_sequence = 1};
    CHECK(!icl_lm_set_hooks(c, hk, 1, &err));
    eval_logits(c, tok, T, lg, V);
    CHECK_MSG(!memcmp(lg, base, V * 4), "self-replacement changed the logits");

    /* Zeroing head 1 of layer 1: head 0's output and layer 0's states stay, the logits move. */
    hk[0] = (icl_hook){.site = ICL_SITE_HEAD_OUT, .layer = 1, .head = 0, .action = ICL_HOOK_CAPTURE, .out = h0};
    CHECK(!icl_lm_set_hooks(c, hk, 1, &err));
    eval_logits(c, tok, T, lg, V);
    hk[0] = (icl_hook){.site = ICL_SITE_HEAD_OUT, .layer = 1, .head = 1, .action = ICL_HOOK_ZERO};
    hk[1] = (icl_hook){.site = ICL_SITE_HEAD_OUT, .layer = 1, .head = 0, .action = ICL_HOOK_CAPTURE, .out = h0b};
    hk[2] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 0, .action = ICL_HOOK_CAPTURE, .out = cap2};
    CHECK(!icl_lm_set_hooks(c, hk, 3, &err));
    eval_logits(c, tok, T, lg, V);
    CHECK(!memcmp(h0, h0b, T * hd * 4));
    CHECK(!memcmp(cap, cap2, T * C * 4));
    CHECK_MSG(memcmp(lg, base, V * 4) != 0, "zeroing a head left the logits unchanged");

    /* Adding a vector at position 3 after layer 0: layer 1's output moves at positions >= 3 only. */
    for (size_t i = 0; i < C; i++) vec[i] = (i % 7) * 0.1f - 0.3f;
    int p3 = 3;
    hk[0] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 1, .action = ICL_HOOK_CAPTURE, .out = cap};
    CHECK(!icl_lm_set_hooks(c, hk, 1, &err));
    eval_logits(c, tok, T, lg, V);
    hk[0] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 0, .positions = &p3, .n_positions = 1,
                       .action = ICL_HOOK_ADD, .vec = vec};
    hk[1] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 1, .action = ICL_HOOK_CAPTURE, .out = cap2};
    CHECK(!icl_lm_set_hooks(c, hk, 2, &err));
    eval_logits(c, tok, T, lg, V);
    CHECK(!memcmp(cap, cap2, 3 * C * 4));
    for (int t = 3; t < T; t++) CHECK_MSG(memcmp(cap + t * C, cap2 + t * C, C * 4) != 0, "position %d unchanged", t);

    /* Stopping after layer 0 gives layer 0's states bit for bit, and the context must be reset. */
    hk[0] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = 0, .action = ICL_HOOK_CAPTURE, .out = cap};
    CHECK(!icl_lm_set_hooks(c, hk, 1, &err));
    eval_logits(c, tok, T, lg, V);
    memset(cap2, 0, T * C * 4);
    hk[0].out = cap2;
    icl_lm_ctx_reset(c);
    icl_lm_eval_opts stop = {ICL_LM_LOGITS_NONE, 0, 0};
    CHECK(!icl_lm_eval(c, tok, T, &stop, &err));
    CHECK(!memcmp(cap, cap2, T * C * 4));
    CHECK(icl_lm_eval(c, tok, 1, &stop, &err) == -1 && strstr(err.msg, "reset"));
    icl_lm_eval_opts bad = {ICL_LM_LOGITS_LAST, 0, 0};
    icl_lm_ctx_reset(c);
    CHECK(icl_lm_eval(c, tok, T, &bad, &err) == -1);

    /* Bad calls: a hook on a layer or head that does not exist, a token outside the vocabulary,
     * more tokens than the context holds. */
    hk[0] = (icl_hook){.site = ICL_SITE_RESID_POST, .layer = hp->n_layer, .action = ICL_HOOK_CAPTURE, .out = cap};
    CHECK(icl_lm_set_hooks(c, hk, 1, &err) == -1 && strstr(err.msg, "layer"));
    hk[0] = (icl_hook){.site = ICL_SITE_HEAD_OUT, .layer = 0, .head = hp->n_head, .action = ICL_HOOK_ZERO};
    CHECK(icl_lm_set_hooks(c, hk, 1, &err) == -1 && strstr(err.msg, "head"));
    CHECK(!icl_lm_set_hooks(c, NULL, 0, &err));
    icl_lm_ctx_reset(c);
    int32_t badtok = (int32_t)V;
    CHECK(icl_lm_eval(c, &badtok, 1, NULL, &err) == -1 && strstr(err.msg, "vocabulary"));
    int32_t many[40] = {0};
    CHECK(icl_lm_eval(c, many, 40, NULL, &err) == -1 && strstr(err.msg, "context"));
    CHECK(icl_lm_ctx_n_past(c) == 0);
    free(base), free(lg), free(cap), free(cap2), free(h0), free(h0b), free(vec);
    icl_lm_ctx_free(c);
    icl_lm_free(lm);
}

/* Resident memory of this process (VmRSS) in MiB. */
static double rss_mib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kib = atof(line + 6);
    if (f) fclose(f);
    return kib / 1024.0;
}

/* A model with quantized weights against its own dequantized (F32) copy: the stored-type products
 * (tiles for prefill, dot products for one token) must equal plain fp32 math up to rounding. */
static void check_quantized(const char *type) {
    char args[512], q[512], f[512];
    snprintf(args, sizeof args, "--arch llama --vocab {V}/ggml-vocab-llama-spm.gguf --embd 256 --heads 4 --kv-heads 2 --ff 512 --type %s --seed 7", type);
    snprintf(q, sizeof q, "%s/q_%s.gguf", tmpdir, type);
    snprintf(f, sizeof f, "%s/q_%s_f32.gguf", tmpdir, type);
    if (mkmodel(args, q) || rewrite(q, f, 1, NULL, NULL)) return;
    icl_err err;
    icl_lm *lq, *lf;
    icl_lm_ctx *cq, *cf;
    double rss0 = rss_mib();
    if (icl_lm_load(&lq, q, &err) || icl_lm_load(&lf, f, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    /* Loading maps the file: nothing close to the weights' size becomes resident before use. */
    double grew = rss_mib() - rss0, mib = icl_lm_weight_bytes(lf) / 1048576.0;
    CHECK_MSG(grew < 0.1 * mib, "loading %.1f MiB of weights made %.1f MiB resident", mib, grew);
    CHECK(!icl_lm_ctx_init(&cq, lq, 32, 0, &err) && !icl_lm_ctx_init(&cf, lf, 32, 0, &err));
    CHECK_MSG(icl_lm_weight_bytes(lq) < icl_lm_weight_bytes(lf), "%s weights are not smaller than F32", type);
    size_t V = icl_lm_hp(lq)->n_vocab;
    enum { T = 12 };
    int32_t tok[T];
    for (int t = 0; t < T; t++) tok[t] = (int32_t)((t * 7919 + 13) % V);
    float *a = malloc(V * 4), *b = malloc(V * 4), *s = malloc(V * 4);
    eval_logits(cq, tok, T, a, V);
    eval_logits(cf, tok, T, b, V);
    double e = icl_rel_l2(a, b, V);
    /* one token at a time goes through the dot products instead of the tiles */
    icl_lm_ctx_reset(cq);
    for (int t = 0; t < T; t++) CHECK(!icl_lm_eval(cq, tok + t, 1, NULL, &err));
    memcpy(s, icl_lm_logits(cq), V * 4);
    double e1 = icl_rel_l2(s, b, V);
    printf("%-5s model vs its dequantized copy: logits rel err %.2e (prefill), %.2e (token by token)\n", type, e, e1);
    CHECK_MSG(e < 1e-5 && e1 < 1e-5, "%s: %.3g / %.3g", type, e, e1);
    free(a), free(b), free(s);
    icl_lm_ctx_free(cq);
    icl_lm_ctx_free(cf);
    icl_lm_free(lq);
    icl_lm_free(lf);
}

static void expect_load_error(const char *path, const char *what) {
    icl_err err;
    icl_lm *lm = NULL;
    int r = icl_lm_load(&lm, path, &err);
    CHECK_MSG(r == -1 && lm == NULL && strstr(err.msg, what), "loading %s: expected an error with '%s', got %s", path,
              what, r ? err.msg : "success");
    icl_lm_free(lm);
}

/* Linear RoPE scaling read from the metadata: factor 1 changes nothing (to the bit), factor 4 changes
 * the logits, YaRN is refused by name. */
static void check_rope_scaling(const char *model) {
    char p1[512], p4[512], py[512];
    snprintf(p1, sizeof p1, "%s/lin1.gguf", tmpdir);
    snprintf(p4, sizeof p4, "%s/lin4.gguf", tmpdir);
    snprintf(py, sizeof py, "%s/yarn.gguf", tmpdir);
    if (rewrite_ex(model, p1, 0, NULL, NULL, "linear", 1.0) || rewrite_ex(model, p4, 0, NULL, NULL, "linear", 4.0) ||
        rewrite_ex(model, py, 0, NULL, NULL, "yarn", 4.0))
        return;
    const char *paths[3] = {model, p1, p4};
    float *lg[3] = {0};
    size_t V = 0;
    enum { T = 10 };
    int32_t tok[T] = {1, 450, 4996, 17354, 1701, 29916, 432, 29889, 322, 4799};
    for (int i = 0; i < 3; i++) {
        icl_err err;
        icl_lm *lm;
        icl_lm_ctx *c;
        if (icl_lm_load(&lm, paths[i], &err) || icl_lm_ctx_init(&c, lm, 32, 0, &err)) {
            CHECK_MSG(0, "%s", err.msg);
            return;
        }
        V = icl_lm_hp(lm)->n_vocab;
        lg[i] = malloc(V * 4);
        eval_logits(c, tok, T, lg[i], V);
        icl_lm_ctx_free(c);
        icl_lm_free(lm);
    }
    CHECK_MSG(!memcmp(lg[0], lg[1], V * 4), "linear RoPE scaling by 1 changed the logits");
    CHECK_MSG(icl_rel_l2(lg[2], lg[0], V) > 1e-3, "linear RoPE scaling by 4 left the logits unchanged");
    for (int i = 0; i < 3; i++) free(lg[i]);
    expect_load_error(py, "RoPE scaling 'yarn' is not supported");
}

static void check_bad_files(const char *model) {
    char p[512];
    snprintf(p, sizeof p, "%s/mamba.gguf", tmpdir);
    if (!rewrite(model, p, 0, NULL, "mamba")) expect_load_error(p, "unknown architecture 'mamba'");
    snprintf(p, sizeof p, "%s/nodown.gguf", tmpdir);
    if (!rewrite(model, p, 0, "blk.1.ffn_down.weight", NULL)) expect_load_error(p, "missing tensor blk.1.ffn_down.weight");
    /* truncated: the first half of the file */
    FILE *in = fopen(model, "rb");
    snprintf(p, sizeof p, "%s/trunc.gguf", tmpdir);
    FILE *out = fopen(p, "wb");
    if (in && out) {
        fseek(in, 0, SEEK_END);
        long n = ftell(in);
        fseek(in, 0, SEEK_SET);
        char *buf = malloc((size_t)n / 2);
        if (fread(buf, 1, (size_t)n / 2, in) == (size_t)n / 2) fwrite(buf, 1, (size_t)n / 2, out);
        free(buf);
    }
    if (in) fclose(in);
    if (out) fclose(out);
    expect_load_error(p, "");
    expect_load_error("tests/fixtures/gguf_v2.gguf", "");
}

/* Sampling: greedy ties, top-k/top-p limits, and draw frequencies against the softmax. */
static void check_sampling(void) {
    float lg[6] = {1.0f, 3.0f, 3.0f, 0.5f, 2.0f, -1.0f};
    icl_rng rng;
    icl_rng_seed(&rng, 9);
    CHECK(icl_lm_sample(lg, 6, 0, 0, 1, &rng) == 1); /* greedy: the lower id of the tie */
    CHECK(icl_lm_sample(lg, 6, 1, 1, 1, &rng) == 1); /* top-1 is greedy */
    int counts[6] = {0}, n = 200000;
    for (int i = 0; i < n; i++) counts[icl_lm_sample(lg, 6, 1, 3, 1, &rng)]++;
    CHECK(counts[0] == 0 && counts[3] == 0 && counts[5] == 0); /* only the 3 best */
    double z = 2 * exp(3.0) + exp(2.0);
    for (int i = 0; i < 6; i++) {
        if (i != 1 && i != 2 && i != 4) continue;
        double p = exp(lg[i]) / z, sd = sqrt(p * (1 - p) / n);
        CHECK_MSG(fabs((double)counts[i] / n - p) < 5 * sd, "token %d drawn %.4f, softmax %.4f", i, (double)counts[i] / n, p);
    }
    /* top_p 0.5: the two tied best tokens hold 0.42 each, so both and nothing else */
    memset(counts, 0, sizeof counts);
    for (int i = 0; i < 1000; i++) counts[icl_lm_sample(lg, 6, 1, 0, 0.5f, &rng)]++;
    CHECK(counts[1] + counts[2] == 1000 && counts[1] > 0 && counts[2] > 0);
}

int main(void) {
    check_sampling();
    iclab_bin = getenv("ICLAB") ? getenv("ICLAB") : "build/iclab";
    vocab_dir = getenv("ICLAB_VOCAB_DIR");
    if (!vocab_dir) {
        fprintf(stderr, "ICLAB_VOCAB_DIR is not set (make test sets it)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/iclab-test-lm-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    FILE *f = fopen("tests/fixtures/lm/cases.txt", "r");
    CHECK_MSG(f != NULL, "no tests/fixtures/lm/cases.txt");
    char line[1024];
    int n_cases = 0;
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        *sp = 0;
        check_case(line, sp + 1);
        n_cases++;
    }
    if (f) fclose(f);
    CHECK(n_cases >= 6);
    char llama[512];
    snprintf(llama, sizeof llama, "%s/llama.gguf", tmpdir);
    check_hooks(llama);
    check_bad_files(llama);
    check_rope_scaling(llama);
    const char *types[] = {"f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) check_quantized(types[i]);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return icl_test_finish();
}
