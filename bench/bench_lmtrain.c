/* Benchmark: training steps of the mini-LM (`iclab train --task lm --preset minilm`'s model) through
 * icl_lmtrain_step, on pre-generated random token batches, so that it times exactly the work of
 * bench/lmtrain_torch.py (forward, backward, clipping, AdamW; the per-step window copy of
 * `iclab train`, two memcpy of 8 KB, is left out on both sides).
 * Build (from the repository root): make build/bench/bench_lmtrain
 * Usage: bench_lmtrain [--layers 4] [--width 128] [--heads 4] [--kv-heads 2] [--ff 0] [--ctx 1024]
 *                      [--batch 2] [--vocab 4096] [--steps 20] [--warmup 3] [--threads 2] [--phases 1]
 * --ff 0 is the trainer's rule (8/3 width rounded up to 32). Prints one line:
 * params=N steps_per_s=X tokens_per_s=Y loss=Z
 * --phases 1 then times the parts of a step separately over as many steps (the calls
 * icl_lmtrain_step makes: forward, backward, norm + clip + AdamW) and prints milliseconds per step.
 * Run it with GOMP_SPINCOUNT=10000 (what `iclab` sets for itself; bench/run_lmtrain_bench.sh does). */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "iclab/icl_lmtrain.h"
#include "iclab/icl_rng.h"

#define N_BATCHES 4 /* as the PyTorch peer: a few fixed batches, cycled */

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    int layers = 4, width = 128, heads = 4, kv = 2, ff = 0, ctx = 1024, batch = 2, vocab = 4096;
    int steps = 20, warmup = 3, threads = 2, phases = 0;
    struct { const char *name; int *v; } flags[] = {
        {"--layers", &layers}, {"--width", &width}, {"--heads", &heads}, {"--kv-heads", &kv}, {"--ff", &ff},
        {"--ctx", &ctx}, {"--batch", &batch}, {"--vocab", &vocab}, {"--steps", &steps}, {"--warmup", &warmup},
        {"--threads", &threads}, {"--phases", &phases},
    };
    for (int i = 1; i < argc; i++) {
        int found = 0;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(argv[i], flags[k].name) && i + 1 < argc) {
                char *end;
                long x = strtol(argv[++i], &end, 10);
                if (*end || x < 0 || x > 1000000) {
                    fprintf(stderr, "bench_lmtrain: %s '%s' must be an integer in [0, 1000000]\n", flags[k].name, argv[i]);
                    return 2;
                }
                *flags[k].v = (int)x, found = 1;
                break;
            }
        if (!found) {
            fprintf(stderr, "bench_lmtrain: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    omp_set_num_threads(threads);
    icl_lmtrain_config cfg = {.n_vocab = vocab, .n_embd = width, .n_layer = layers, .n_head = heads,
                              .n_head_kv = kv, .n_ff = ff ? ff : (width * 8 / 3 + 31) / 32 * 32, .n_ctx = ctx,
                              .rope_theta = 10000.0f, .eps = 1e-5f};
    icl_err err;
    icl_lmtrain *m = NULL;
    if (icl_lmtrain_init(&m, &cfg, &err)) {
        fprintf(stderr, "bench_lmtrain: %s\n", err.msg);
        return 1;
    }
    icl_lmtrain_init_weights(m, 1);
    icl_lmtrain_opt opt;
    icl_lmtrain_opt_defaults(&opt);
    opt.steps = warmup + steps, opt.warmup = 0; /* the schedule's value does not change the work */
    size_t n = (size_t)batch * (size_t)ctx;
    int32_t *tok = malloc(sizeof(int32_t) * n * N_BATCHES), *tgt = malloc(sizeof(int32_t) * n * N_BATCHES);
    if (!tok || !tgt) {
        fprintf(stderr, "bench_lmtrain: out of memory\n");
        return 1;
    }
    icl_rng rng;
    icl_rng_seed(&rng, 7);
    for (size_t i = 0; i < n * N_BATCHES; i++) {
        tok[i] = (int32_t)icl_rng_below(&rng, (uint64_t)vocab);
        tgt[i] = (int32_t)icl_rng_below(&rng, (uint64_t)vocab);
    }
    float loss = 0;
    double t0 = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = now();
        size_t o = (size_t)(s % N_BATCHES) * n;
        if (icl_lmtrain_step(m, tok + o, tgt + o, batch, ctx, &opt, &loss, NULL, &err)) {
            fprintf(stderr, "bench_lmtrain: %s\n", err.msg);
            return 1;
        }
    }
    double dt = now() - t0;
    printf("params=%zu steps_per_s=%.3f tokens_per_s=%.0f loss=%.4f\n", icl_lmtrain_n_params(m), steps / dt,
           (double)steps * (double)n / dt, loss);
    if (phases) {
        double tf = 0, tb = 0, to = 0;
        for (int s = 0; s < steps; s++) {
            size_t o = (size_t)(s % N_BATCHES) * n;
            double a = now();
            icl_lmtrain_zero_grad(m);
            if (icl_lmtrain_forward(m, tok + o, tgt + o, batch, ctx, &loss, &err)) return 1;
            double b = now();
            if (icl_lmtrain_backward(m, &err)) return 1;
            double c = now();
            /* what icl_lmtrain_step does after the backward */
            double gn = icl_lmtrain_grad_norm(m);
            float *g = icl_lmtrain_buffer(m, ICL_LT_GRADS);
            if (gn > opt.grad_clip)
                for (size_t i = 0; i < icl_lmtrain_n_params(m); i++) g[i] *= (float)(opt.grad_clip / gn);
            icl_lmtrain_adamw(m, &opt, icl_lmtrain_lr(&opt, icl_lmtrain_steps_done(m)));
            double d = now();
            tf += b - a, tb += c - b, to += d - c;
        }
        printf("ms_per_step forward=%.1f backward=%.1f clip_adamw=%.1f\n", 1e3 * tf / steps, 1e3 * tb / steps,
               1e3 * to / steps);
    }
    free(tok);
    free(tgt);
    icl_lmtrain_free(m);
    return 0;
}
