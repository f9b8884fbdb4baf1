/* GFLOP/s of icl_qmatmul per weight type on the matrix shapes of a 150M-parameter Llama (768x768,
 * 2048x768, 768x2048 as rows x cols), for a prefill of T = 128 tokens and for one token. Not a
 * test: numbers depend on the machine and its load. Weights are random values quantized with
 * icl_quant_quantize_row. Usage: build/bench/bench_qmat [threads] [seconds per figure] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "iclab/icl_progress.h"
#include "iclab/icl_qmat.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"

static const int TYPES[] = {ICL_GGML_F32, ICL_GGML_F16, ICL_GGML_BF16, ICL_GGML_Q8_0,
                            ICL_GGML_Q4_0, ICL_GGML_Q4_K, ICL_GGML_Q5_K, ICL_GGML_Q6_K};
static const int SHAPES[][2] = {{768, 768}, {2048, 768}, {768, 2048}};

/* Best GFLOP/s over repeated products within about `secs` seconds (after one warm-up). */
static double measure(int type, const void *w, int rows, int cols, const float *x, int T, float *y, double secs) {
    icl_err err;
    if (icl_qmatmul(type, w, rows, cols, x, T, y, rows, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    double best = 1e30, start = icl_now();
    int reps = 0;
    while (reps < 3 || icl_now() - start < secs) {
        double t = icl_now();
        icl_qmatmul(type, w, rows, cols, x, T, y, rows, &err);
        t = icl_now() - t;
        if (t < best) best = t;
        reps++;
    }
    return 2.0 * rows * cols * T / best / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    double secs = argc > 2 ? atof(argv[2]) : 0.1;
    omp_set_num_threads(threads);
    icl_rng rng;
    icl_rng_seed(&rng, 1);
    const int maxn = 2048 * 768, Tmax = 128;
    float *wf = malloc(sizeof(float) * maxn), *x = malloc(sizeof(float) * Tmax * 2048);
    float *y = malloc(sizeof(float) * Tmax * 2048);
    void *wq = malloc(sizeof(float) * maxn);
    for (int i = 0; i < maxn; i++) wf[i] = (float)(0.02 * icl_rng_normal(&rng));
    for (int i = 0; i < Tmax * 2048; i++) x[i] = (float)icl_rng_normal(&rng);
    printf("threads=%d path=%s GFLOP/s of icl_qmatmul (best of repeats), shapes rows x cols\n", threads,
           icl_simd_name(icl_simd_best()));
    printf("%-6s |", "type");
    for (int T = Tmax; T >= 1; T = T == Tmax ? 1 : 0)
        for (int s = 0; s < 3; s++) printf(" T=%-3d %4dx%-4d", T, SHAPES[s][0], SHAPES[s][1]);
    printf("\n");
    for (size_t k = 0; k < sizeof TYPES / sizeof TYPES[0]; k++) {
        int type = TYPES[k];
        printf("%-6s |", icl_quant_type_name(type));
        for (int T = Tmax; T >= 1; T = T == Tmax ? 1 : 0)
            for (int s = 0; s < 3; s++) {
                int rows = SHAPES[s][0], cols = SHAPES[s][1];
                uint64_t rb;
                icl_quant_row_bytes(type, cols, &rb, NULL);
                for (int r = 0; r < rows; r++)
                    icl_quant_quantize_row(type, wf + (size_t)r * cols, (char *)wq + r * rb, cols, NULL);
                printf(" %15.1f", measure(type, wq, rows, cols, x, T, y, secs));
                fflush(stdout);
            }
        printf("\n");
    }
    free(wf);
    free(x);
    free(y);
    free(wq);
    return 0;
}
