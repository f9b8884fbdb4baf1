/* Benchmark: leave-one-out k-NN Task Decodability over layers (default 33 layers of 700 x 4096,
 * k=10, Euclidean), batched and one call per layer; bench/bench_td_sklearn.py does the same work
 * with scikit-learn on the same data (pass --dump FILE here, then the file to the script).
 * The data imitate hidden states: a large shared offset with a few massive dimensions, 7 classes
 * whose means separate more with depth, unit Gaussian noise.
 * Build (from the repository root, after `make`):
 *   cc -O3 -march=native -fopenmp -Iinclude -I/usr/include/x86_64-linux-gnu/openblas-openmp \
 *      bench/bench_td.c build/libiclab.a -o build/bench_td \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-openmp -Wl,-rpath,/usr/lib/x86_64-linux-gnu/openblas-openmp -lopenblas -lm
 * Usage: bench_td [--dump FILE] [--umap] [N d L k metric]
 * --umap also times icl_umap (defaults: n_neighbors 15, min_dist 0.1, 2-D, 500 epochs) on 400 x 256
 * (4 Gaussian clusters) and on the middle layer of the TD data (N x d).
 * The dump is little-endian: int32 L, N, d, k, metric; float32 X (L,N,d); int32 labels (N);
 * float64 TD per layer as computed here. */
#include "iclab/icl_file.h"
#include "iclab/icl_knn.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_rng.h"
#include "iclab/icl_umap.h"
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dump(const char *path, const float *X, const int *lab, const double *td, int32_t hdr[5],
                icl_err *err) {
    icl_afile af;
    size_t L = (size_t)hdr[0], N = (size_t)hdr[1], d = (size_t)hdr[2];
    if (icl_afile_open(&af, path, err)) return -1;
    if (icl_afile_write(&af, hdr, 5 * sizeof(int32_t), err) ||
        icl_afile_write(&af, X, L * N * d * sizeof(float), err) ||
        icl_afile_write(&af, lab, N * sizeof(int32_t), err) || icl_afile_write(&af, td, L * sizeof(double), err)) {
        icl_afile_abort(&af);
        return -1;
    }
    return icl_afile_commit(&af, err);
}

/* Times one UMAP run; returns -1 on failure. */
static int time_umap(const char *what, const float *X, int N, int d, icl_err *err) {
    float *E = malloc(sizeof(float) * (size_t)N * 2);
    if (!E) return icl_errf(err, "out of memory");
    double t0 = icl_now();
    int rc = icl_umap(X, N, d, NULL, E, err);
    double t1 = icl_now();
    if (!rc) printf("UMAP %s (%d x %d): %.3f s\n", what, N, d, t1 - t0);
    free(E);
    return rc;
}

int main(int argc, char **argv) {
    const char *dump_path = NULL;
    int umap = 0;
    for (;;) {
        if (argc > 2 && !strcmp(argv[1], "--dump")) { dump_path = argv[2]; argv += 2; argc -= 2; }
        else if (argc > 1 && !strcmp(argv[1], "--umap")) { umap = 1; argv++; argc--; }
        else break;
    }
    int N = argc > 1 ? atoi(argv[1]) : 700, d = argc > 2 ? atoi(argv[2]) : 4096;
    int L = argc > 3 ? atoi(argv[3]) : 33, k = argc > 4 ? atoi(argv[4]) : 10;
    icl_metric metric = ICL_METRIC_EUCLIDEAN;
    icl_err err;
    if (argc > 5 && icl_metric_parse(argv[5], &metric, &err)) { fprintf(stderr, "%s\n", err.msg); return 2; }
    int C = 7;
    if (N < 2 || d < 1 || L < 1) { fprintf(stderr, "bad sizes\n"); return 2; }
    float *X = malloc(sizeof(float) * (size_t)L * N * d);
    float *offset = malloc(sizeof(float) * d), *means = malloc(sizeof(float) * (size_t)C * d);
    int *lab = malloc(sizeof(int) * N);
    double *overall = malloc(sizeof(double) * L);
    float *G = malloc(sizeof(float) * (size_t)N * N);
    if (!X || !offset || !means || !lab || !overall || !G) { fprintf(stderr, "out of memory\n"); return 1; }
    icl_rng r;
    icl_rng_seed(&r, 12345);
    for (int i = 0; i < N; i++) lab[i] = i % C;
    for (int t = 0; t < d; t++) offset[t] = (float)(3.0 * icl_rng_normal(&r) + (t % 512 == 7 ? 300.0 : 0.0));
    for (int c = 0; c < C; c++)
        for (int t = 0; t < d; t++) means[c * d + t] = (float)icl_rng_normal(&r);
    for (int l = 0; l < L; l++) {
        double sep = 0.006 * l; /* class separation grows with depth */
        for (int i = 0; i < N; i++) {
            float *x = X + ((size_t)l * N + i) * d;
            for (int t = 0; t < d; t++)
                x[t] = (float)(offset[t] + sep * means[lab[i] * d + t] + icl_rng_normal(&r));
        }
    }
    printf("TD bench: %d layers of %d x %d, k=%d, %s\n", L, N, d, k, icl_metric_name(metric));
    /* warm-up: thread pools, page faults */
    if (icl_td(X, lab, N, d, C, k, metric, NULL, NULL, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    double best_b = 1e30, best_s = 1e30, best_g = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = icl_now();
        if (icl_td_layers(X, L, lab, N, d, C, k, metric, overall, NULL, NULL, NULL, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double t1 = icl_now();
        for (int l = 0; l < L; l++)
            if (icl_td(X + (size_t)l * N * d, lab, N, d, C, k, metric, NULL, NULL, NULL, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
        double t2 = icl_now();
        for (int l = 0; l < L; l++) /* the BLAS part alone, for scale */
            cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, N, d, 1.0f, X + (size_t)l * N * d, d, 0.0f, G, N);
        double t3 = icl_now();
        if (t1 - t0 < best_b) best_b = t1 - t0;
        if (t2 - t1 < best_s) best_s = t2 - t1;
        if (t3 - t2 < best_g) best_g = t3 - t2;
    }
    printf("TD per layer:");
    for (int l = 0; l < L; l++) printf(" %.4f", overall[l]);
    printf("\nbest of 3: batched icl_td_layers %.3f s total (%.1f ms/layer); separate icl_td calls %.3f s; "
           "ssyrk alone %.3f s\n", best_b, 1e3 * best_b / L, best_s, best_g);
    if (umap) {
        int n4 = 400, d4 = 256;
        float *C = malloc(sizeof(float) * n4 * d4);
        double cen[4 * 256];
        if (!C) { fprintf(stderr, "out of memory\n"); return 1; }
        for (int t = 0; t < 4 * d4; t++) cen[t] = 0.5 * icl_rng_normal(&r);
        for (int i = 0; i < n4; i++)
            for (int t = 0; t < d4; t++) C[i * d4 + t] = (float)(cen[(i % 4) * d4 + t] + icl_rng_normal(&r));
        if (time_umap("4 clusters", C, n4, d4, &err) ||
            time_umap("middle TD layer", X + (size_t)(L / 2) * N * d, N, d, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        free(C);
    }
    if (dump_path) {
        int32_t hdr[5] = {L, N, d, k, (int32_t)metric};
        if (dump(dump_path, X, lab, overall, hdr, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        printf("wrote %s\n", dump_path);
    }
    free(G); free(X); free(offset); free(means); free(lab); free(overall);
    return 0;
}
