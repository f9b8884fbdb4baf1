/* LoRA on the engine (icl_lora.h):
 * (a) adapter gradients against PyTorch (tests/ref/lora_ref.py -> tests/fixtures/lora_ref.bin,
 *     PEFT's formulation in float64 from the same float32 values): a llama with adapters on every
 *     matrix of every layer, a qwen2 (q/k/v biases, NeoX RoPE) with adapters on q, v, down of its
 *     last layer only (the backward stops there), a gemma2 (post-norms, GeGLU, soft-capped scores and
 *     logits, a sliding window shorter than the sequence) on every matrix. Tolerances: loss relative
 *     1e-5, each adapter tensor's gradient relative L2 1e-4.
 * (b) a fresh adapter (B = 0) changes no bit of the logits; merging an adapter into the weights
 *     gives the logits of applying it (relative L2 1e-5); save -> load gives the same adapter and
 *     the same logits; an adapter for another model, an arch mismatch, a layer range outside the
 *     model, rank 0 and unknown matrices are refused.
 * (c) a quantized (q8_0) base: the adapter gradient against central differences of the loss.
 * (d) training lowers the answer loss, is reproducible bit for bit (dropout included), and gives
 *     the same bits when run in two halves with the AdamW state carried over (resume). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "icl_test.h"
#include "iclab/icl_lm.h"
#include "iclab/icl_lora.h"

static char tmpdir[256];
static const char *iclab_bin, *vocab_dir;

/* `iclab mkmodel ARGS -o OUT`, the --vocab value looked up in the vocab folder. */
static int mkmodel(const char *args, const char *out) {
    char cmd[4096], a[2048];
    const char *v = strstr(args, "--vocab ");
    if (v) snprintf(a, sizeof a, "%.*s--vocab %s/%s", (int)(v - args), args, vocab_dir, v + 8);
    else snprintf(a, sizeof a, "%s", args);
    snprintf(cmd, sizeof cmd, "%s mkmodel %s -o %s >/dev/null", iclab_bin, a, out);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed", cmd);
    return rc;
}

static int32_t rd_i(FILE *f) {
    int32_t v = 0;
    if (fread(&v, 4, 1, f) != 1) v = -1;
    return v;
}

/* Logits of the last position of tokens through a fresh context (with adapter a, or none). */
static int last_logits(const icl_lm *lm, icl_lora *a, const int32_t *tok, int T, float *out) {
    icl_lm_ctx *c;
    icl_err err;
    if (icl_lm_ctx_init(&c, lm, 64, 0, &err)) return -1;
    int rc = icl_lm_ctx_set_lora(c, a, &err) || icl_lm_eval(c, tok, T, NULL, &err);
    if (!rc) memcpy(out, icl_lm_logits(c), sizeof(float) * (size_t)icl_lm_hp(lm)->n_vocab);
    CHECK_MSG(!rc, "eval: %s", err.msg);
    icl_lm_ctx_free(c);
    return rc;
}

static void check_reference(void) {
    FILE *f = fopen("tests/fixtures/lora_ref.bin", "rb");
    CHECK_MSG(f != NULL, "tests/fixtures/lora_ref.bin missing (run tests/ref/lora_ref.py)");
    if (!f) return;
    int n_cases = rd_i(f);
    CHECK(n_cases == 3);
    for (int cs = 0; cs < n_cases; cs++) {
        char args[512] = {0}, model[600];
        int len = rd_i(f);
        if (len <= 0 || len >= (int)sizeof args || fread(args, 1, (size_t)len, f) != (size_t)len) break;
        icl_lora_cfg cfg;
        icl_lora_cfg_default(&cfg);
        cfg.rank = rd_i(f);
        if (fread(&cfg.alpha, 4, 1, f) != 1) break;
        cfg.layer_lo = rd_i(f), cfg.layer_hi = rd_i(f), cfg.targets = (unsigned)rd_i(f);
        cfg.dropout = 0;
        int T = rd_i(f);
        int32_t tok[64], tgt[64];
        if (T <= 0 || T > 64 || fread(tok, 4, (size_t)T, f) != (size_t)T || fread(tgt, 4, (size_t)T, f) != (size_t)T) break;
        int np = rd_i(f);
        float *ref_p = malloc(sizeof(float) * (size_t)np), *ref_g = malloc(sizeof(float) * (size_t)np);
        double ref_loss;
        if (!ref_p || !ref_g || fread(ref_p, 4, (size_t)np, f) != (size_t)np || fread(&ref_loss, 8, 1, f) != 1 ||
            fread(ref_g, 4, (size_t)np, f) != (size_t)np) {
            free(ref_p), free(ref_g);
            break;
        }
        snprintf(model, sizeof model, "%s/ref%d.gguf", tmpdir, cs);
        icl_lm *lm = NULL;
        icl_lora *a = NULL;
        icl_lora_trainer *t = NULL;
        icl_err err;
        float loss = 0;
        if (!mkmodel(args, model) && !icl_lm_load(&lm, model, &err) && !icl_lora_init(&a, lm, &cfg, 1, &err) &&
            !icl_lora_trainer_init(&t, lm, a, 1, &err)) {
            CHECK_MSG(icl_lora_n_params(a) == (size_t)np, "%zu parameters, reference %d", icl_lora_n_params(a), np);
            if (icl_lora_n_params(a) == (size_t)np) {
                memcpy(icl_lora_params(a), ref_p, sizeof(float) * (size_t)np);
                memset(icl_lora_grads(a), 0, sizeof(float) * (size_t)np);
                CHECK_MSG(!icl_lora_train_grad(t, tok, tgt, 1, T, &loss, &err), "%s", err.msg);
                CHECK_MSG(fabs(loss - ref_loss) <= 1e-5 * fabs(ref_loss), "loss %.8f vs PyTorch %.8f", loss, ref_loss);
                /* per adapter tensor */
                const float *g = icl_lora_grads(a);
                double worst = 0;
                size_t o = 0;
                for (int l = 0; l < icl_lm_hp(lm)->n_layer; l++)
                    for (int k = 0; k < 7; k++) {
                        int in, out;
                        if (!icl_lora_a(a, l, 1u << k, &in, &out)) continue;
                        size_t na = (size_t)cfg.rank * in, nb = (size_t)out * cfg.rank;
                        double ea = icl_rel_l2(g + o, ref_g + o, na), eb = icl_rel_l2(g + o + na, ref_g + o + na, nb);
                        CHECK_MSG(ea <= 1e-4 && eb <= 1e-4, "layer %d matrix %d: gradient rel L2 A %.3g B %.3g", l, k, ea,
                                  eb);
                        worst = fmax(worst, fmax(ea, eb));
                        o += na + nb;
                    }
                printf("reference case %d (%s): loss %.7f (PyTorch %.7f), worst adapter gradient relative L2 %.3g\n", cs,
                       icl_lm_hp(lm)->arch_name, loss, ref_loss, worst);
            }
        } else {
            CHECK_MSG(0, "case %d: %s", cs, err.msg);
        }
        icl_lora_trainer_free(t);
        icl_lora_free(a);
        icl_lm_free(lm);
        free(ref_p), free(ref_g);
    }
    fclose(f);
}

static void check_apply_merge_files(void) {
    char model[600], other[600], gpt2[600], merged[600], adapter[600];
    snprintf(model, sizeof model, "%s/m.gguf", tmpdir);
    snprintf(other, sizeof other, "%s/other.gguf", tmpdir);
    snprintf(gpt2, sizeof gpt2, "%s/gpt2.gguf", tmpdir);
    snprintf(merged, sizeof merged, "%s/merged.gguf", tmpdir);
    snprintf(adapter, sizeof adapter, "%s/a.gguf", tmpdir);
    if (mkmodel("--arch llama --vocab ggml-vocab-llama-spm.gguf --seed 31", model) ||
        mkmodel("--arch llama --vocab ggml-vocab-llama-spm.gguf --seed 32 --embd 96", other) ||
        mkmodel("--arch gpt2 --vocab ggml-vocab-gpt-2.gguf --seed 33", gpt2))
        return;
    icl_lm *lm = NULL, *lm_other = NULL, *lm_gpt2 = NULL, *lm_merged = NULL;
    icl_lora *a = NULL, *b = NULL;
    icl_err err;
    CHECK(!icl_lm_load(&lm, model, &err) && !icl_lm_load(&lm_other, other, &err) && !icl_lm_load(&lm_gpt2, gpt2, &err));
    if (!lm || !lm_other || !lm_gpt2) goto done;
    int V = icl_lm_hp(lm)->n_vocab;
    float *base = malloc(sizeof(float) * V), *with = malloc(sizeof(float) * V), *again = malloc(sizeof(float) * V);
    int32_t tok[9] = {1, 450, 4996, 17354, 1701, 29916, 432, 975, 278};
    icl_lora_cfg cfg;
    icl_lora_cfg_default(&cfg);
    cfg.rank = 4;
    CHECK(!icl_lora_init(&a, lm, &cfg, 7, &err));
    if (!a || !base || !with || !again) goto done2;
    /* B = 0: not one bit changes */
    last_logits(lm, NULL, tok, 9, base);
    last_logits(lm, a, tok, 9, with);
    CHECK_MSG(!memcmp(base, with, sizeof(float) * V), "a fresh adapter (B = 0) changed the logits");
    /* a non-zero B: apply == merge */
    float *p = icl_lora_params(a);
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 7; k++) {
            int in, out;
            float *B = icl_lora_b(a, l, 1u << k);
            icl_lora_a(a, l, 1u << k, &in, &out);
            for (int i = 0; i < out * cfg.rank; i++) B[i] = 0.05f * (float)sin(0.7 * i + l + k);
        }
    (void)p;
    last_logits(lm, a, tok, 9, with);
    double moved = icl_rel_l2(with, base, (size_t)V);
    CHECK_MSG(moved > 1e-3, "a non-zero adapter moved the logits by only %.3g", moved);
    CHECK_MSG(!icl_lora_merge(a, model, merged, &err), "merge: %s", err.msg);
    if (!icl_lm_load(&lm_merged, merged, &err)) {
        last_logits(lm_merged, NULL, tok, 9, again);
        double e = icl_rel_l2(again, with, (size_t)V);
        CHECK_MSG(e <= 1e-5, "merged weights vs applied adapter: logits relative L2 %.3g", e);
        printf("apply vs merge: logits relative L2 %.3g (the adapter moved them by %.3g)\n", e, moved);
    }
    /* save -> load */
    CHECK_MSG(!icl_lora_save(a, lm, adapter, &err), "save: %s", err.msg);
    CHECK_MSG(!icl_lora_load(&b, adapter, lm, &err), "load: %s", err.msg);
    if (b) {
        CHECK(icl_lora_n_params(b) == icl_lora_n_params(a) &&
              !memcmp(icl_lora_params(b), icl_lora_params(a), sizeof(float) * icl_lora_n_params(a)));
        CHECK(icl_lora_config(b)->rank == 4 && icl_lora_config(b)->alpha == cfg.alpha);
        last_logits(lm, b, tok, 9, again);
        CHECK(!memcmp(again, with, sizeof(float) * V));
    }
    /* refused: another model's adapter, another architecture, bad options */
    icl_lora *x = NULL;
    CHECK(icl_lora_load(&x, adapter, lm_other, &err) < 0 && strstr(err.msg, "another model"));
    printf("another model: %s\n", err.msg);
    CHECK(icl_lora_load(&x, adapter, lm_gpt2, &err) < 0 && strstr(err.msg, "architecture 'llama'"));
    CHECK(icl_lora_load(&x, model, lm, &err) < 0 && strstr(err.msg, "not a LoRA adapter"));
    icl_lora_cfg bad = cfg;
    bad.rank = 0;
    CHECK(icl_lora_init(&x, lm, &bad, 1, &err) < 0 && strstr(err.msg, "rank 0"));
    bad = cfg, bad.layer_lo = 1, bad.layer_hi = 3;
    CHECK(icl_lora_init(&x, lm, &bad, 1, &err) < 0 && strstr(err.msg, "outside"));
    bad = cfg, bad.rank = 1000;
    CHECK(icl_lora_init(&x, lm, &bad, 1, &err) < 0 && strstr(err.msg, "exceeds"));
    bad = cfg, bad.targets = ICL_LORA_Q;
    CHECK(icl_lora_init(&x, lm_gpt2, &bad, 1, &err) < 0 && strstr(err.msg, "fused"));
    int lo, hi;
    unsigned tg;
    CHECK(!icl_lora_parse_layers("first:1", 2, &lo, &hi, &err) && lo == 0 && hi == 1);
    CHECK(!icl_lora_parse_layers("last:1", 2, &lo, &hi, &err) && lo == 1 && hi == 2);
    CHECK(!icl_lora_parse_layers("0-1", 2, &lo, &hi, &err) && lo == 0 && hi == 2);
    CHECK(icl_lora_parse_layers("first:3", 2, &lo, &hi, &err) < 0 && strstr(err.msg, "outside"));
    CHECK(icl_lora_parse_layers("1-2", 2, &lo, &hi, &err) < 0 && strstr(err.msg, "outside"));
    CHECK(icl_lora_parse_layers("2-1", 2, &lo, &hi, &err) < 0);
    CHECK(icl_lora_parse_layers("middle", 2, &lo, &hi, &err) < 0);
    CHECK(!icl_lora_parse_targets("q,v,down", &tg, &err) && tg == (ICL_LORA_Q | ICL_LORA_V | ICL_LORA_DOWN));
    CHECK(icl_lora_parse_targets("q,x", &tg, &err) < 0 && strstr(err.msg, "unknown matrix 'x'"));
done2:
    free(base), free(with), free(again);
done:
    icl_lora_free(a), icl_lora_free(b);
    icl_lm_free(lm), icl_lm_free(lm_other), icl_lm_free(lm_gpt2), icl_lm_free(lm_merged);
}

/* Loss of the batch with parameter i of the adapter set to v. */
static double loss_at(icl_lora_trainer *t, icl_lora *a, size_t i, float v, const int32_t *tok, const int32_t *tgt,
                      int T) {
    float *p = icl_lora_params(a), keep = p[i], loss = 0;
    icl_err err;
    p[i] = v;
    icl_lora_eval_loss(t, tok, tgt, 1, T, &loss, &err);
    p[i] = keep;
    return loss;
}

static void check_quantized_base(void) {
    char model[600];
    snprintf(model, sizeof model, "%s/q8.gguf", tmpdir);
    if (mkmodel("--arch llama --vocab ggml-vocab-llama-spm.gguf --seed 34 --type q8_0", model)) return;
    icl_lm *lm = NULL;
    icl_lora *a = NULL;
    icl_lora_trainer *t = NULL;
    icl_err err;
    icl_lora_cfg cfg;
    icl_lora_cfg_default(&cfg);
    cfg.rank = 2, cfg.dropout = 0, cfg.targets = ICL_LORA_K | ICL_LORA_UP;
    if (icl_lm_load(&lm, model, &err) || icl_lora_init(&a, lm, &cfg, 3, &err) ||
        icl_lora_trainer_init(&t, lm, a, 1, &err)) {
        CHECK_MSG(0, "q8_0 base: %s", err.msg);
        goto done;
    }
    size_t n = icl_lora_n_params(a);
    float *p = icl_lora_params(a);
    for (size_t i = 0; i < n; i++) p[i] += 0.02f * (float)cos(0.37 * (double)i); /* B away from zero */
    int32_t tok[10] = {1, 306, 763, 278, 4996, 17354, 1701, 29916, 432, 975}, tgt[10];
    for (int i = 0; i < 10; i++) tgt[i] = i >= 7 ? tok[i] : -1;
    memset(icl_lora_grads(a), 0, n * sizeof(float));
    float loss;
    CHECK_MSG(!icl_lora_train_grad(t, tok, tgt, 1, 10, &loss, &err), "%s", err.msg);
    const float *g = icl_lora_grads(a);
    /* the 6 largest gradients against central differences (step 1e-2, loss in float) */
    int checked = 0;
    double worst = 0;
    for (int k = 0; k < 6; k++) {
        size_t best = 0;
        for (size_t i = 0; i < n; i++)
            if (fabsf(g[i]) > fabsf(g[best])) best = i;
        double h = 1e-2, fd = (loss_at(t, a, best, p[best] + (float)h, tok, tgt, 10) -
                               loss_at(t, a, best, p[best] - (float)h, tok, tgt, 10)) / (2 * h);
        double rel = fabs(fd - g[best]) / fmax(fabs(fd), 1e-3);
        worst = fmax(worst, rel);
        checked++;
        ((float *)g)[best] = 0; /* next largest */
    }
    CHECK_MSG(checked == 6 && worst <= 2e-2, "q8_0 base: gradient vs central differences, worst relative %.3g", worst);
    printf("q8_0 base: 6 largest adapter gradients vs central differences, worst relative error %.3g\n", worst);
done:
    icl_lora_trainer_free(t);
    icl_lora_free(a);
    icl_lm_free(lm);
}

/* Trains `steps` steps from a fresh adapter (seed 5), or continues t. Returns the last loss. */
static float train(icl_lora_trainer *t, int steps, const int32_t *tok, const int32_t *tgt, int B, int T) {
    icl_lmtrain_opt o;
    icl_lmtrain_opt_defaults(&o);
    o.lr = 1e-2f, o.lr_min = 1e-3f, o.warmup = 2, o.steps = 40, o.weight_decay = 0;
    float loss = 0;
    icl_err err;
    for (int s = 0; s < steps; s++)
        if (icl_lora_train_step(t, tok, tgt, B, T, &o, &loss, NULL, &err)) {
            CHECK_MSG(0, "step: %s", err.msg);
            break;
        }
    return loss;
}

static void check_training(void) {
    char model[600];
    snprintf(model, sizeof model, "%s/m.gguf", tmpdir); /* from check_apply_merge_files */
    icl_lm *lm = NULL;
    icl_err err;
    if (icl_lm_load(&lm, model, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    icl_lora_cfg cfg;
    icl_lora_cfg_default(&cfg);
    cfg.rank = 4, cfg.layer_lo = 1, cfg.layer_hi = 2; /* last layer only, dropout 0.1 */
    /* two sequences whose last 3 tokens are the answer */
    int32_t tok[2 * 12], tgt[2 * 12];
    for (int i = 0; i < 24; i++) {
        tok[i] = 100 + (i * 37) % 500;
        tgt[i] = i % 12 >= 9 ? 700 + i % 3 : -1;
    }
    icl_lora *a[3] = {0};
    icl_lora_trainer *t[3] = {0};
    for (int k = 0; k < 3; k++)
        if (icl_lora_init(&a[k], lm, &cfg, 5, &err) || icl_lora_trainer_init(&t[k], lm, a[k], 9, &err)) {
            CHECK_MSG(0, "%s", err.msg);
            goto done;
        }
    float first, l0 = 0;
    icl_lora_eval_loss(t[0], tok, tgt, 2, 12, &first, &err);
    l0 = train(t[0], 40, tok, tgt, 2, 12);
    float l1 = train(t[1], 40, tok, tgt, 2, 12);
    size_t n = icl_lora_n_params(a[0]);
    CHECK_MSG(l0 < 0.5f * first, "answer loss %.4f after 40 steps, %.4f before", l0, first);
    CHECK_MSG(!memcmp(icl_lora_params(a[0]), icl_lora_params(a[1]), n * sizeof(float)) && l0 == l1,
              "two identical runs differ");
    /* resume: 25 steps, carry params, moments and step count into a fresh trainer, 15 more */
    train(t[2], 25, tok, tgt, 2, 12);
    icl_lora *r = NULL;
    icl_lora_trainer *tr = NULL;
    if (!icl_lora_init(&r, lm, &cfg, 77, &err) && !icl_lora_trainer_init(&tr, lm, r, 9, &err)) {
        memcpy(icl_lora_params(r), icl_lora_params(a[2]), n * sizeof(float));
        memcpy(icl_lora_trainer_moment(tr, 0), icl_lora_trainer_moment(t[2], 0), n * sizeof(float));
        memcpy(icl_lora_trainer_moment(tr, 1), icl_lora_trainer_moment(t[2], 1), n * sizeof(float));
        icl_lora_trainer_set_steps(tr, icl_lora_trainer_steps(t[2]));
        train(tr, 15, tok, tgt, 2, 12);
        CHECK_MSG(!memcmp(icl_lora_params(r), icl_lora_params(a[0]), n * sizeof(float)),
                  "25 + 15 resumed steps differ from 40 straight");
    }
    printf("training: answer loss %.4f -> %.4f in 40 steps; repeat and 25+15 resume bit-identical\n", first, l0);
    icl_lora_trainer_free(tr);
    icl_lora_free(r);
done:
    for (int k = 0; k < 3; k++) icl_lora_trainer_free(t[k]), icl_lora_free(a[k]);
    icl_lm_free(lm);
}

int main(void) {
    iclab_bin = getenv("ICLAB") ? getenv("ICLAB") : "build/iclab";
    vocab_dir = getenv("ICLAB_VOCAB_DIR");
    if (!vocab_dir) {
        fprintf(stderr, "ICLAB_VOCAB_DIR is not set (make test sets it)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/iclab-test-lora-XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    check_reference();
    check_apply_merge_files();
    check_quantized_base();
    check_training();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmpdir);
    return icl_test_finish();
}
