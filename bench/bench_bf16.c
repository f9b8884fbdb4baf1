/* GFLOP/s of the linear layers' three products (forward, input gradient, weight gradient) in fp32
 * (icl_linear_forward/backward: OpenBLAS sgemm split over threads) and in bf16 on AMX tiles
 * (icl_bf16.h), on the paper configuration's shapes: N = 128 sequences x 40 tokens = 5120 rows,
 * q|k|v 256 -> 768, attention output 256 -> 256, MLP up 256 -> 1024, MLP down 1024 -> 256.
 * Usage: build/bench/bench_bf16 [threads=2] [reps=20] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "iclab/icl_bf16.h"
#include "iclab/icl_kernels.h"
#include "iclab/icl_progress.h"

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2, reps = argc > 2 ? atoi(argv[2]) : 20;
    omp_set_num_threads(threads);
    icl_err err;
    if (icl_bf16_init(&err)) {
        printf("bf16 unavailable: %s\n", err.msg);
        return 1;
    }
    static const struct { const char *name; int IC, OC; } L[] = {{"qkv", 256, 768}, {"attn_out", 256, 256},
                                                                  {"mlp_up", 256, 1024}, {"mlp_down", 1024, 256}};
    int N = 5120;
    printf("threads=%d N=%d (GFLOP/s: forward, input gradient, weight gradient)\n", threads, N);
    double tot[2] = {0, 0}, flop_all = 0;
    for (size_t l = 0; l < sizeof L / sizeof L[0]; l++) {
        int IC = L[l].IC, OC = L[l].OC;
        float *x = malloc(sizeof(float) * (size_t)N * IC), *w = malloc(sizeof(float) * (size_t)OC * IC);
        float *y = malloc(sizeof(float) * (size_t)N * OC), *dx = malloc(sizeof(float) * (size_t)N * IC);
        float *dw = calloc((size_t)OC * IC, sizeof(float));
        for (size_t i = 0; i < (size_t)N * IC; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < (size_t)OC * IC; i++) w[i] = (float)((i * 40503u) % 1000) / 1000.0f - 0.5f;
        for (size_t i = 0; i < (size_t)N * OC; i++) y[i] = (float)((i * 9973u) % 1000) / 1000.0f - 0.5f;
        double flop = 2.0 * N * IC * OC;
        flop_all += 3 * flop;
        for (int mode = 0; mode < 2; mode++) {
            double g[3];
            for (int p = 0; p < 3; p++) {
                double best = 1e30;
                for (int r = 0; r < reps; r++) {
                    double t0 = icl_now();
                    int rc = 0;
                    if (mode == 0) {
                        if (p == 0) icl_linear_forward(y, x, w, NULL, N, IC, OC);
                        if (p == 1) icl_linear_backward(dx, NULL, NULL, y, x, w, N, IC, OC);
                        if (p == 2) icl_linear_backward(NULL, dw, NULL, y, x, w, N, IC, OC);
                    } else {
                        if (p == 0) rc = icl_linear_forward_bf16(y, x, w, NULL, N, IC, OC, &err);
                        if (p == 1) rc = icl_linear_backward_bf16(dx, NULL, NULL, y, x, w, N, IC, OC, &err);
                        if (p == 2) rc = icl_linear_backward_bf16(NULL, dw, NULL, y, x, w, N, IC, OC, &err);
                    }
                    if (rc) {
                        printf("error: %s\n", err.msg);
                        return 1;
                    }
                    double dt = icl_now() - t0;
                    if (dt < best) best = dt;
                }
                g[p] = flop / best / 1e9;
                tot[mode] += best;
            }
            printf("%-9s %4d -> %4d %s: %6.1f %6.1f %6.1f\n", L[l].name, IC, OC, mode ? "bf16" : "fp32", g[0], g[1], g[2]);
        }
        free(x), free(w), free(y), free(dx), free(dw);
    }
    printf("all twelve products: fp32 %.1f GFLOP/s, bf16 %.1f GFLOP/s (%.2fx)\n", flop_all / tot[0] / 1e9,
           flop_all / tot[1] / 1e9, tot[0] / tot[1]);
    return 0;
}
