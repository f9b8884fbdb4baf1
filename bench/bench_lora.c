/* Benchmark: LoRA finetuning steps (icl_lora_train_step: forward with adapter dropout, backward down
 * to the lowest adapted layer, clipping, AdamW on the adapters; the base frozen) on a GGUF model, on
 * pre-generated random batches shaped like `iclab finetune`'s: B sequences padded to T tokens, each
 * of a length drawn in [T - T/4, T], with targets only on its 2 trailing "answer" positions (as
 * make_batch in icl_finetune.c: position i predicts token i+1). Peer: bench/lora_torch.py.
 * Build (from the repository root): make build/bench/bench_lora
 * Usage: bench_lora [--model runs/demo-llm/lm/model.gguf] [--layers first:1|last:1|A-B|all]
 *                   [--targets all] [--rank 16] [--alpha 16] [--dropout 0.1] [--batch 8] [--seq 100]
 *                   [--answer 2] [--steps 20] [--warmup 3] [--threads 2] [--phases 1]
 * Prints one line: model=... layers=... adapter_params=N steps_per_s=X tokens_per_s=Y loss=Z
 * --phases 1 then times, over as many steps, the forward alone (icl_lora_eval_loss: no dropout, so
 * slightly less work than the training forward) and forward + backward (icl_lora_train_grad).
 * Run it with GOMP_SPINCOUNT=10000 (what `iclab` sets for itself; bench/run_lora_bench.sh does). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "iclab/icl_lm.h"
#include "iclab/icl_lmtrain.h"
#include "iclab/icl_lora.h"
#include "iclab/icl_rng.h"

#define N_BATCHES 4 /* as the PyTorch peer: a few fixed batches, cycled */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int parse_int(const char *flag, const char *v, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || end == v || x < 0 || x > 1000000) {
        fprintf(stderr, "bench_lora: %s '%s' must be an integer in [0, 1000000]\n", flag, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    const char *model = "runs/demo-llm/lm/model.gguf", *layers = "first:1", *targets = "all";
    int rank = 16, batch = 8, seq = 100, answer = 2, steps = 20, warmup = 3, threads = 2, phases = 0;
    double alpha = 16, dropout = 0.1;
    struct { const char *name; int *v; } iflags[] = {
        {"--rank", &rank}, {"--batch", &batch}, {"--seq", &seq}, {"--answer", &answer}, {"--steps", &steps},
        {"--warmup", &warmup}, {"--threads", &threads}, {"--phases", &phases},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int found = 0;
        if (!v) {
            fprintf(stderr, "bench_lora: %s needs a value\n", a);
            return 2;
        }
        for (size_t k = 0; k < sizeof iflags / sizeof iflags[0]; k++)
            if (!strcmp(a, iflags[k].name)) {
                if (parse_int(a, v, iflags[k].v)) return 2;
                found = 1;
            }
        if (!strcmp(a, "--model")) model = v, found = 1;
        else if (!strcmp(a, "--layers")) layers = v, found = 1;
        else if (!strcmp(a, "--targets")) targets = v, found = 1;
        else if (!strcmp(a, "--alpha")) alpha = atof(v), found = 1;
        else if (!strcmp(a, "--dropout")) dropout = atof(v), found = 1;
        if (!found) {
            fprintf(stderr, "bench_lora: unknown argument '%s'\n", a);
            return 2;
        }
        i++;
    }
    if (steps < 1) steps = 1;
    if (seq < 4 || answer < 1 || answer > seq / 4 || batch < 1) {
        fprintf(stderr, "bench_lora: need --seq >= 4, 1 <= --answer <= seq/4, --batch >= 1\n");
        return 2;
    }
    omp_set_num_threads(threads);
    icl_err err;
    icl_lm *lm = NULL;
    if (icl_lm_load(&lm, model, &err)) {
        fprintf(stderr, "bench_lora: %s\n", err.msg);
        return 1;
    }
    const icl_lm_hparams *hp = icl_lm_hp(lm);
    icl_lora_cfg cfg;
    icl_lora_cfg_default(&cfg);
    cfg.rank = rank, cfg.alpha = (float)alpha, cfg.dropout = (float)dropout;
    icl_lora *ad = NULL;
    icl_lora_trainer *tr = NULL;
    if (icl_lora_parse_layers(layers, hp->n_layer, &cfg.layer_lo, &cfg.layer_hi, &err) ||
        icl_lora_parse_targets(targets, &cfg.targets, &err) || icl_lora_init(&ad, lm, &cfg, 1, &err) ||
        icl_lora_trainer_init(&tr, lm, ad, 2, &err)) {
        fprintf(stderr, "bench_lora: %s\n", err.msg);
        return 1;
    }
    icl_lmtrain_opt opt; /* `iclab finetune`'s defaults */
    icl_lmtrain_opt_defaults(&opt);
    opt.lr = 1e-3f, opt.lr_min = 1e-4f, opt.weight_decay = 0.0f, opt.grad_clip = 1.0f;
    opt.steps = warmup + 2 * steps, opt.warmup = 0; /* the schedule's value does not change the work */
    int T = seq, V = hp->n_vocab;
    size_t n = (size_t)batch * (size_t)T;
    int32_t *tok = malloc(sizeof(int32_t) * n * N_BATCHES), *tgt = malloc(sizeof(int32_t) * n * N_BATCHES);
    if (!tok || !tgt) {
        fprintf(stderr, "bench_lora: out of memory\n");
        return 1;
    }
    icl_rng rng;
    icl_rng_seed(&rng, 7);
    for (int k = 0; k < N_BATCHES * batch; k++) {
        int32_t *tk = tok + (size_t)k * T, *tg = tgt + (size_t)k * T;
        int len = T - (int)icl_rng_below(&rng, (uint64_t)(T / 4 + 1)); /* the sequence, then padding */
        for (int i = 0; i < T; i++) tk[i] = i < len ? (int32_t)icl_rng_below(&rng, (uint64_t)V) : tk[len - 1];
        /* the answer: the last `answer` tokens of the sequence, predicted from positions len-answer-1 .. len-2 */
        for (int i = 0; i < T; i++) tg[i] = i >= len - answer - 1 && i < len - 1 ? tk[i + 1] : -1;
    }
    float loss = 0;
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = now();
        size_t o = (size_t)(s % N_BATCHES) * n;
        if (icl_lora_train_step(tr, tok + o, tgt + o, batch, T, &opt, &loss, NULL, &err)) {
            fprintf(stderr, "bench_lora: %s\n", err.msg);
            return 1;
        }
    }
    double dt = now() - t0;
    printf("model=%s layers=%s(%d-%d) adapter_params=%zu steps_per_s=%.3f tokens_per_s=%.0f loss=%.4f\n", model, layers,
           cfg.layer_lo, cfg.layer_hi - 1, icl_lora_n_params(ad), steps / dt, (double)steps * (double)n / dt, loss);
    if (phases) {
        double tf = 0, tg = 0;
        for (int s = 0; s < steps; s++) {
            size_t o = (size_t)(s % N_BATCHES) * n;
            double a = now();
            if (icl_lora_eval_loss(tr, tok + o, tgt + o, batch, T, &loss, &err)) return 1;
            double b = now();
            if (icl_lora_train_grad(tr, tok + o, tgt + o, batch, T, &loss, &err)) return 1;
            double c = now();
            tf += b - a, tg += c - b;
        }
        printf("ms_per_step forward=%.2f forward_backward=%.2f\n", 1e3 * tf / steps, 1e3 * tg / steps);
    }
    free(tok);
    free(tgt);
    icl_lora_trainer_free(tr);
    icl_lora_free(ad);
    icl_lm_free(lm);
    return 0;
}
