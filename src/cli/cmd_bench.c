/* `iclab bench`: times training steps (data generation, forward, backward, Adam) on given shapes,
 * the same work per step as `iclab train`, without evaluation or checkpoints; prints a line in the
 * PyTorch peer's format so the two can be compared side by side (bench/run_train_bench.sh). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_model.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_task.h"

int cmd_bench(int argc, char **argv) {
    icl_err err;
    int layers = 12, width = 256, heads = 8, batch = 128, points = 20, dim = 16, steps = 20, threads = 2, warmup = 3;
    int bf16 = 0;
    struct { const char *name; int *v; } flags[] = {{"layers", &layers}, {"width", &width}, {"heads", &heads},
        {"batch", &batch}, {"points", &points}, {"dim", &dim}, {"steps", &steps}, {"threads", &threads}, {"warmup", &warmup}};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: iclab bench [--layers 12] [--width 256] [--heads 8] [--batch 128] [--points 20] [--dim 16]\n"
                   "                   [--steps 20] [--threads 2] [--warmup 3] [--bf16]\n"
                   "       iclab bench --blas-core\n"
                   "  --bf16       the blocks' matrix products in bf16 with fp32 accumulation (AMX tiles)\n"
                   "  --blas-core  print the OpenBLAS kernel set iclab runs on (for OPENBLAS_CORETYPE) and exit\n");
            return 0;
        }
        if (!strcmp(argv[i], "--blas-core")) {
            printf("%s\n", openblas_get_corename());
            return 0;
        }
        if (!strcmp(argv[i], "--bf16")) {
            bf16 = 1;
            continue;
        }
        char name[64];
        const char *v = strncmp(argv[i], "--", 2) ? NULL : cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) {
            if (strncmp(argv[i], "--", 2)) icl_errf(&err, "unexpected argument '%s'", argv[i]);
            return cli_fail("bench", &err);
        }
        size_t k = 0;
        for (; k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(name, flags[k].name)) break;
        char *end;
        long val = strtol(v, &end, 10);
        if (k == sizeof flags / sizeof flags[0]) {
            icl_errf(&err, "unknown option --%s", name);
            return cli_fail("bench", &err);
        }
        if (*end || val < 0 || val > 1000000) {
            icl_errf(&err, "--%s: '%s' is not a valid count", name, v);
            return cli_fail("bench", &err);
        }
        *flags[k].v = (int)val;
    }
    if (steps < 1 || threads < 1) {
        icl_errf(&err, "--steps and --threads must be at least 1");
        return cli_fail("bench", &err);
    }
    omp_set_num_threads(threads);
    icl_task_config tc;
    icl_task_config_default(&tc);
    tc.dim = dim;
    tc.n_points = points;
    if (tc.n_bases * tc.rank > dim) tc.n_bases = dim / tc.rank > 0 ? dim / tc.rank : 1;
    if (dim < tc.rank) tc.rank = dim;
    icl_model_config mc = {layers, heads, width, 2 * points, dim, 1, 4};
    icl_model m;
    icl_batch b;
    if (icl_task_validate(&tc, &err) || icl_model_init(&m, &mc, &err)) return cli_fail("bench", &err);
    if (icl_batch_alloc(&b, batch, &tc, &err)) return cli_fail("bench", &err);
    if (bf16 && icl_model_set_bf16(&m, 1, &err)) return cli_fail("bench", &err);
    icl_rng rng;
    icl_rng_seed(&rng, 0);
    icl_model_init_weights(&m, &rng);
    int T = 2 * points;
    float *tokens = malloc(sizeof(float) * (size_t)batch * T * dim), *targets = calloc((size_t)batch * T, sizeof(float));
    float *mask = calloc((size_t)batch * T, sizeof(float));
    icl_adam_config ac = {1e-4f, 0.9f, 0.9999f, 1e-8f, 0};
    double t0 = 0;
    float loss = 0;
    for (int s = 0; s < warmup + steps; s++) {
        if (s == warmup) t0 = icl_now();
        icl_task_sample(&tc, &rng, -1, &b, &err);
        icl_batch_tokens(&b, dim, tokens);
        for (int i = 0; i < batch; i++)
            for (int t = 0; t < T; t += 2) {
                targets[(size_t)i * T + t] = b.y[(size_t)i * points + t / 2];
                mask[(size_t)i * T + t] = 1;
            }
        icl_model_zero_grad(&m);
        if (icl_model_forward(&m, tokens, batch, T, targets, mask, &loss, &err) || icl_model_backward(&m, &err))
            return cli_fail("bench", &err);
        icl_adam_step(&m, &ac, ac.lr);
    }
    double dt = icl_now() - t0;
    double flops = 6.0 * (double)m.n_params * batch * T; /* matrix products; attention adds a few % */
    printf("params=%zu steps_per_s=%.3f tokens_per_s=%.0f gflops=%.1f loss=%.4f\n", m.n_params, steps / dt,
           (double)steps * batch * T / dt, flops * steps / dt / 1e9, loss);
    free(tokens); free(targets); free(mask);
    icl_batch_free(&b);
    icl_model_free(&m);
    return 0;
}
