/* Measures the machine's fp32 matrix-product throughput (OpenBLAS sgemm, square 2048 and the
 * paper config's largest shape) for docs/performance.md: the "peak" the training GFLOP/s is
 * compared against. Usage: build/bench/gemm_peak [threads] */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include "iclab/icl_progress.h"

static double gflops(int M, int N, int K, int reps) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N), *C = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (float)(i % 13) * 0.1f;
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (float)(i % 7) * 0.1f;
    double best = 0;
    for (int r = 0; r < reps + 1; r++) {
        double t = icl_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        t = icl_now() - t;
        if (r > 0 && 2.0 * M * N * K / t / 1e9 > best) best = 2.0 * M * N * K / t / 1e9;
    }
    free(A); free(B); free(C);
    return best;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    omp_set_num_threads(threads);
    printf("threads=%d sgemm_2048=%.1f GFLOP/s sgemm_5120x1024x256=%.1f GFLOP/s sgemm_2560x192x64=%.1f GFLOP/s (best of runs)\n",
           threads, gflops(2048, 2048, 2048, 5), gflops(5120, 1024, 256, 10), gflops(2560, 192, 64, 20));
    return 0;
}
