/* Forward and backward kernels of the transformer (see icl_kernels.h). Large matrix products go to
 * BLAS; everything else is fused loops parallelised with OpenMP over rows or over columns. */
#include "iclab/icl_kernels.h"
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Parallel regions are skipped for small work: below this many elements the fork/join costs more
 * than it saves (and spinning threads on a busy machine cost far more). */
#define PAR_MIN 32768

/* ---------------------------------------------------------------- linear */

/* The matrix products are split across threads by us, each thread calling single-threaded BLAS on
 * fixed blocks of rows: for this model's shapes that is up to twice as fast as BLAS's own
 * threading, and since the blocks do not move with the thread count neither does any bit of the
 * result (OpenBLAS's Haswell sgemm, for one, rounds a row differently in a call of 5 rows than in
 * one of 8). Each block of C is filled with bias (N) first when bias is not NULL. */
static void sgemm_blocks(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                         const float *B, int ldb, float beta, float *C, int ldc, const float *bias, int threads) {
    if (M <= 0 || N <= 0) return;
    int blocks = (M + ICL_GEMM_BLOCK - 1) / ICL_GEMM_BLOCK, outer = omp_get_max_threads();
    if (threads <= 0) threads = outer;
    if ((size_t)M * N * K <= 64 * PAR_MIN) threads = 1; /* the fork would cost more than it saves */
    if (threads > blocks) threads = blocks;
    /* OpenBLAS (OpenMP build) threads a call made outside an active parallel region over
     * omp_get_max_threads(): 1 inside, so a lone thread's calls are single-threaded too */
    omp_set_num_threads(1);
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int blk = 0; blk < blocks; blk++) {
        int lo = blk * ICL_GEMM_BLOCK, m = M - lo < ICL_GEMM_BLOCK ? M - lo : ICL_GEMM_BLOCK;
        const float *a = transA ? A + lo : A + (size_t)lo * lda;
        float *c = C + (size_t)lo * ldc;
        if (bias)
            for (int i = 0; i < m; i++) memcpy(c + (size_t)i * ldc, bias, (size_t)N * sizeof(float));
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, N, K, alpha,
                    a, lda, B, ldb, bias ? 1.0f : beta, c, ldc);
    }
    omp_set_num_threads(outer);
}

void icl_sgemm_blocks(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc, int threads) {
    sgemm_blocks(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL, threads);
}

void icl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
    sgemm_blocks(0, 1, N, OC, IC, 1.0f, inp, IC, w, IC, 0.0f, out, OC, b, 0);
}

/* Column sums of (N,C) into acc (C); parallel over columns so the order of additions is fixed. */
static void column_sums_acc(float *acc, const float *x, int N, int C) {
    enum { BLOCK = 16 }; /* one cache line of columns per row: enough blocks for every thread */
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        float sum[BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *row = x + (size_t)n * C;
            for (int c = c0; c < c1; c++) sum[c - c0] += row[c];
        }
        for (int c = c0; c < c1; c++) acc[c] += sum[c - c0];
    }
}

void icl_linear_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                         int IC, int OC) {
    if (dinp) icl_sgemm_blocks(0, 0, N, IC, OC, 1.0f, dout, OC, w, IC, 0.0f, dinp, IC, 0);
    if (dw) icl_sgemm_blocks(1, 0, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dw, IC, 0);
    if (db) column_sums_acc(db, dout, N, OC);
}

void icl_linear_forward_ref(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < IC; i++) s += (double)inp[(size_t)n * IC + i] * w[(size_t)o * IC + i];
            out[(size_t)n * OC + o] = (float)s;
        }
}

void icl_linear_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w, int N,
                             int IC, int OC) {
    if (dinp) memset(dinp, 0, sizeof(float) * (size_t)N * IC);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            float g = dout[(size_t)n * OC + o];
            if (db) db[o] += g;
            for (int i = 0; i < IC; i++) {
                if (dinp) dinp[(size_t)n * IC + i] += g * w[(size_t)o * IC + i];
                if (dw) dw[(size_t)o * IC + i] += g * inp[(size_t)n * IC + i];
            }
        }
}

/* ---------------------------------------------------------------- layernorm */

void icl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                           int C, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        float m = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        float v = 0;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            v += d * d;
        }
        v /= C;
        float s = 1.0f / sqrtf(v + eps);
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
        mean[n] = m;
        rstd[n] = s;
    }
}

void icl_layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                            const float *mean, const float *rstd, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float mean_dnorm = 0, mean_dnorm_xhat = 0;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            float dnorm = w[c] * g[c];
            mean_dnorm += dnorm;
            mean_dnorm_xhat += dnorm * xhat;
        }
        mean_dnorm /= C;
        mean_dnorm_xhat /= C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * s;
            dx[c] += (w[c] * g[c] - mean_dnorm - xhat * mean_dnorm_xhat) * s;
        }
    }
    if (!dw) return; /* frozen weights */
    /* parameter gradients: per column, fixed order over rows */
    enum { BLOCK = 16 }; /* one cache line of columns per row: enough blocks for every thread */
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        float sw[BLOCK] = {0}, sb[BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                sw[c - c0] += (x[c] - m) * s * g[c];
                sb[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            dw[c] += sw[c - c0];
            if (db) db[c] += sb[c - c0];
        }
    }
}

/* ---------------------------------------------------------------- gelu */

#define GELU_K 0.7978845608028654f /* sqrt(2/pi) */

/* exp(x) for x in about [-87, 88] with a degree-6 polynomial after range reduction; written in plain
 * float arithmetic so the compiler vectorises the loops that call it (libm's tanhf does not
 * vectorise and dominated the step time). Relative error below 3e-7. */
static inline float exp_poly(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693145751953125f - n * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(u) = sign(u) (1 - 2 / (exp(2|u|) + 1)); absolute error below 5e-7, which is what GELU needs
 * (it adds tanh to 1). */
static inline float tanh_fast(float u) {
    float a = fabsf(u);
    float t = 1.0f - 2.0f / (exp_poly(2.0f * a) + 1.0f);
    return u < 0 ? -t : t;
}

/* Elementwise loops run over fixed chunks in parallel, each chunk a plain loop the compiler vectorises. */
#define CHUNK 4096

static void gelu_forward_chunk(float *restrict out, const float *restrict inp, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x)));
    }
}

/* Runs fn over n elements of (a, b) in CHUNK-sized pieces, in parallel when n is large. */
static void for_chunks(void (*fn)(float *restrict, const float *restrict, size_t), float *a, const float *b, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        fn(a + i0, b + i0, len);
    }
}

void icl_gelu_forward(float *out, const float *inp, size_t n) { for_chunks(gelu_forward_chunk, out, inp, n); }

static void silu_mul_chunk(float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = a[i] / (1.0f + exp_poly(-a[i])) * b[i];
}

void icl_silu_mul(float *a, const float *b, size_t n) { for_chunks(silu_mul_chunk, a, b, n); }

static void gelu_mul_chunk(float *restrict a, const float *restrict b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = a[i];
        a[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x))) * b[i];
    }
}

void icl_gelu_mul(float *a, const float *b, size_t n) { for_chunks(gelu_mul_chunk, a, b, n); }

static void gelu_backward_chunk(float *restrict dinp, const float *restrict inp, const float *restrict dout, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float t = tanh_fast(GELU_K * (x + 0.044715f * x * x * x));
        float sech2 = 1.0f - t * t;
        float grad = 0.5f * (1.0f + t) + 0.5f * x * sech2 * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dinp[i] = grad * dout[i];
    }
}

void icl_gelu_backward(float *dinp, const float *inp, const float *dout, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        gelu_backward_chunk(dinp + i0, inp + i0, dout + i0, len);
    }
}

/* GeGLU (Gemma): out = gelu(gate) * up with gelu_mul's expression (the same bits), gate kept. */
static void geglu_forward_chunk(float *restrict out, const float *restrict gate, const float *restrict up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = gate[i];
        out[i] = 0.5f * x * (1.0f + tanh_fast(GELU_K * (x + 0.044715f * x * x * x))) * up[i];
    }
}

/* dgate = dout * up * gelu'(gate), dup = dout * gelu(gate); dgate may be dout (in place). */
static void geglu_backward_chunk(float *dgate, float *restrict dup, const float *dout, const float *restrict gate,
                                 const float *restrict up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = gate[i], d = dout[i];
        float t = tanh_fast(GELU_K * (x + 0.044715f * x * x * x));
        float g = 0.5f * x * (1.0f + t);
        float grad = 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
        dup[i] = d * g;
        dgate[i] = d * up[i] * grad;
    }
}

void icl_geglu_forward(float *out, const float *gate, const float *up, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        geglu_forward_chunk(out + i0, gate + i0, up + i0, len);
    }
}

void icl_geglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        geglu_backward_chunk(dgate + i0, dup + i0, dout + i0, gate + i0, up + i0, len);
    }
}

static double gelu_ref(double x) { return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

void icl_geglu_forward_ref(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)(gelu_ref(gate[i]) * up[i]);
}

void icl_geglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double x = gate[i], h = 1e-4 * (fabs(x) + 1.0);
        double d = dout[i], grad = (gelu_ref(x + h) - gelu_ref(x - h)) / (2 * h); /* central differences */
        dup[i] = (float)(d * gelu_ref(x));
        dgate[i] = (float)(d * up[i] * grad);
    }
}

/* ---------------------------------------------------------------- attention */

/* 16 floats as one vector (GCC/Clang vector extensions): one AVX-512 register, or two AVX ones. The
 * loops below were written lane by lane, and GCC left some of them scalar (16 vmulss/vaddss per
 * row in weighted_rows_acc); as vectors they compile to vector code everywhere. Each lane does the
 * same multiply and add in the same order as before (no contraction into FMA in ISO C mode), so
 * the results are the same bits. */
typedef float f32x16 __attribute__((vector_size(64)));
typedef int32_t i32x16 __attribute__((vector_size(64)));
static inline f32x16 load16(const float *p) {
    f32x16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store16(float *p, f32x16 v) { memcpy(p, &v, sizeof v); }

/* out[i] += sum_r w[r] * rows[r*stride + i] for i < hs: accumulates 16 channels at a time in
 * registers instead of re-reading and re-writing out for every row. */
static inline void weighted_rows_acc(float *restrict out, const float *restrict w, const float *restrict rows,
                                     size_t stride, int nrows, int hs) {
    int i0 = 0;
    for (; i0 + 16 <= hs; i0 += 16) {
        f32x16 acc = {0};
        for (int r = 0; r < nrows; r++) acc += w[r] * load16(rows + r * stride + i0);
        store16(out + i0, load16(out + i0) + acc);
    }
    for (int i = i0; i < hs; i++) {
        float acc = 0;
        for (int r = 0; r < nrows; r++) acc += w[r] * rows[r * stride + i];
        out[i] += acc;
    }
}

/* y[i] += a * x[i] for i < n, 16 at a time (GCC keeps the plain loop scalar when n is not known). */
static inline void axpy16(float *restrict y, float a, const float *restrict x, int n) {
    int i = 0;
    for (; i + 16 <= n; i += 16) store16(y + i, load16(y + i) + a * load16(x + i));
    for (; i < n; i++) y[i] += a * x[i];
}

/* Sum and maximum with 16 fixed lanes: vectorised without reassociating (-ffast-math), and in an
 * order that does not depend on anything but n. */
static inline float lanes_sum(const float *x, int n) {
    f32x16 acc = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) acc += load16(x + i);
    float s = 0;
    for (; i < n; i++) s += x[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float lanes_dot(const float *a, const float *b, int n) {
    f32x16 acc = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16) acc += load16(a + i) * load16(b + i);
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float lanes_max(const float *x, int n) {
    f32x16 acc = x[0] - (f32x16){0}; /* x[0] in every lane */
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        f32x16 v = load16(x + i);
        i32x16 gt = v > acc; /* all ones where v wins, as the scalar v > acc ? v : acc */
        acc = (f32x16)(((i32x16)v & gt) | ((i32x16)acc & ~gt));
    }
    float m = x[0];
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int j = 0; j < 16; j++) m = acc[j] > m ? acc[j] : m;
    return m;
}

/* rows (T, hs) with row stride `stride` -> transposed (hs, Tp), zero-padded to Tp columns. */
static void gather_transposed(float *dst, const float *rows, size_t stride, int T, int Tp, int hs) {
    for (int i = 0; i < hs; i++) {
        float *d = dst + (size_t)i * Tp;
        for (int t = 0; t < T; t++) d[t] = rows[t * stride + i];
        for (int t = T; t < Tp; t++) d[t] = 0;
    }
}

/* s[j] = scale * sum_i q[i] * kt[i*Tp + j] for j < n (n rounded up to 16 is computed; s has room):
 * 16 scores at a time in registers, no horizontal sums. */
static inline void scores16(float *restrict s, const float *restrict q, const float *restrict kt, int Tp, int n, int hs,
                            float scale) {
    for (int j0 = 0; j0 < n; j0 += 16) {
        f32x16 acc = {0};
        for (int i = 0; i < hs; i++) acc += q[i] * load16(kt + (size_t)i * Tp + j0);
        store16(s + j0, acc * scale);
    }
}

void icl_attention_forward(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
    int hs = C / H, Tp = (T + 15) / 16 * 16;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = 3 * (size_t)C;
#pragma omp parallel if ((size_t)B * H * T * T * hs > PAR_MIN)
    {
        float *kt = malloc(sizeof(float) * ((size_t)hs * Tp + Tp));
        float *srow = kt ? kt + (size_t)hs * Tp : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++) {
                if (!kt) continue; /* out of memory: cannot happen for sane T */
                const float *base = qkv + (size_t)b * T * C3;
                float *a = att + (((size_t)b * H + h) * T) * T;
                gather_transposed(kt, base + C + h * hs, C3, T, Tp, hs);
                for (int t = 0; t < T; t++) {
                    float *arow = a + (size_t)t * T;
                    int n = t + 1;
                    scores16(srow, base + t * C3 + h * hs, kt, Tp, n, hs, scale);
                    float maxv = lanes_max(srow, n);
                    for (int t2 = 0; t2 < n; t2++) arow[t2] = exp_poly(srow[t2] - maxv);
                    float inv = 1.0f / lanes_sum(arow, n);
                    for (int t2 = 0; t2 < n; t2++) arow[t2] *= inv;
                    for (int t2 = n; t2 < T; t2++) arow[t2] = 0;
                    float *o = out + ((size_t)b * T + t) * C + h * hs;
                    for (int i = 0; i < hs; i++) o[i] = 0;
                    weighted_rows_acc(o, arow, base + 2 * C + h * hs, C3, n, hs);
                }
            }
        free(kt);
    }
}

void icl_attention_forward_ref(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
    int hs = C / H;
    size_t C3 = 3 * (size_t)C;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                double scores[4096], maxv = -INFINITY, sum = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    double s = 0;
                    for (int i = 0; i < hs; i++)
                        s += (double)qkv[((size_t)b * T + t) * C3 + h * hs + i] * qkv[((size_t)b * T + t2) * C3 + C + h * hs + i];
                    scores[t2] = s / sqrt((double)hs);
                    if (scores[t2] > maxv) maxv = scores[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) sum += (scores[t2] = exp(scores[t2] - maxv));
                float *arow = att + (((size_t)b * H + h) * T + t) * T;
                for (int t2 = 0; t2 < T; t2++) arow[t2] = t2 <= t ? (float)(scores[t2] / sum) : 0.0f;
                for (int i = 0; i < hs; i++) {
                    double o = 0;
                    for (int t2 = 0; t2 <= t; t2++) o += scores[t2] / sum * qkv[((size_t)b * T + t2) * C3 + 2 * C + h * hs + i];
                    out[((size_t)b * T + t) * C + h * hs + i] = (float)o;
                }
            }
}

void icl_attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int H) {
    int hs = C / H;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = 3 * (size_t)C;
    int Tp = (T + 15) / 16 * 16;
#pragma omp parallel if ((size_t)B * H * T * T * hs > PAR_MIN)
    {
    float *vt = malloc(sizeof(float) * ((size_t)hs * Tp + 2 * Tp));
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            if (!vt) continue;
            const float *base = qkv + (size_t)b * T * C3;
            float *dbase = dqkv + (size_t)b * T * C3;
            const float *a = att + (((size_t)b * H + h) * T) * T;
            float *datt = vt + (size_t)hs * Tp, *dpre = datt + Tp;
            gather_transposed(vt, base + 2 * C + h * hs, C3, T, Tp, hs);
            for (int t = 0; t < T; t++) {
                const float *arow = a + (size_t)t * T;
                const float *dy = dout + ((size_t)b * T + t) * C + h * hs;
                /* through att @ v: datt = dy . v (16 at a time), dv += att * dy */
                scores16(datt, dy, vt, Tp, t + 1, hs, 1.0f);
                float dot = lanes_dot(arow, datt, t + 1);
                for (int t2 = 0; t2 <= t; t2++) {
                    float *dv = dbase + t2 * C3 + 2 * C + h * hs;
                    float p = arow[t2];
                    axpy16(dv, p, dy, hs);
                }
                /* through softmax and q k^T */
                const float *q = base + t * C3 + h * hs;
                float *dq = dbase + t * C3 + h * hs;
                for (int t2 = 0; t2 <= t; t2++) dpre[t2] = arow[t2] * (datt[t2] - dot) * scale;
                for (int t2 = 0; t2 <= t; t2++) {
                    float *dk = dbase + t2 * C3 + C + h * hs, g = dpre[t2];
                    axpy16(dk, g, q, hs);
                }
                weighted_rows_acc(dq, dpre, base + C + h * hs, C3, t + 1, hs);
            }
        }
    free(vt);
    }
}

/* ---------------------------------------------------------------- elementwise */

void icl_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void icl_accumulate(float *out, const float *a, size_t n) {
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] += a[i];
}

/* ================================================================ Llama block and LM head */

/* ---------------------------------------------------------------- rmsnorm */

/* The forward follows the inference engine's norm step for step (sum of squares in double, rstd
 * rounded to float, (x*rstd)*w in float), so a model trained here and run there sees the same
 * normalised values. */
void icl_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) o[c] = x[c] * s * w[c];
        rstd[n] = s;
    }
}

void icl_rmsnorm_forward_ref(float *out, float *rstd, const float *inp, const float *w, int N, int C, float eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)inp[(size_t)n * C + c] * inp[(size_t)n * C + c];
        rstd[n] = (float)(1.0 / sqrt(ss / C + eps));
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = inp[(size_t)n * C + c] * rstd[n] * w[c];
    }
}

/* With xhat = x*rstd and y = xhat*w: dx = rstd * (w*g - xhat * mean(w*g*xhat)), dw = sum_rows g*xhat.
 * The row mean and the column sums are taken in double: the column sums run over every token of
 * the batch, where float would lose digits. */
void icl_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp, const float *w, const float *rstd,
                          int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C, s = rstd[n];
        double d = 0;
        for (int c = 0; c < C; c++) d += (double)(w[c] * g[c]) * (x[c] * s);
        float md = (float)(d / C);
        for (int c = 0; c < C; c++) dx[c] += (w[c] * g[c] - x[c] * s * md) * s;
    }
    if (!dw) return; /* a frozen weight */
    /* dw: per block of columns, rows in order, so the sum does not depend on the thread count */
    enum { BLOCK = 16 };
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        double sw[BLOCK] = {0};
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            float s = rstd[n];
            for (int c = c0; c < c1; c++) sw[c - c0] += (double)g[c] * (x[c] * s);
        }
        for (int c = c0; c < c1; c++) dw[c] += (float)sw[c - c0];
    }
}

void icl_rmsnorm_backward_ref(float *dinp, float *dw, const float *dout, const float *inp, const float *w,
                              const float *rstd, int N, int C) {
    double *sw = calloc((size_t)C, sizeof(double));
    if (!sw) return;
    for (int n = 0; n < N; n++) {
        size_t r = (size_t)n * C;
        float s = rstd[n];
        double d = 0;
        for (int c = 0; c < C; c++) d += (double)(w[c] * dout[r + c]) * (inp[r + c] * s);
        float md = (float)(d / C);
        for (int c = 0; c < C; c++) {
            dinp[r + c] += (w[c] * dout[r + c] - inp[r + c] * s * md) * s;
            sw[c] += (double)dout[r + c] * (inp[r + c] * s);
        }
    }
    for (int c = 0; c < C; c++) dw[c] += (float)sw[c];
    free(sw);
}

/* ---------------------------------------------------------------- rope */

/* cos and sin of pair i's angle at position pos, rounded to float: the inference engine's
 * expressions (inv_freq = theta^(-2i/rope_dim) in double, times pos), so both give the same bits. */
static inline void rope_cs(float theta, int i, int rope_dim, int32_t pos, float *cs, float *sn) {
    double inv_freq = pow((double)theta, -2.0 * i / rope_dim);
    double a = (double)pos * inv_freq;
    *cs = (float)cos(a);
    *sn = (float)sin(a);
}

/* Rotates (inverse = 0) or rotates back (inverse = 1) pairs [p0, p1) of the rope_dim leading
 * channels of n_heads heads of one row; cs[i - p0], sn[i - p0] belong to pair i. */
static inline void rope_row(float *v, int n_heads, int head_dim, int rope_dim, int p0, int p1, const float *cs,
                            const float *sn, int neox, int inverse) {
    int half = rope_dim / 2;
    for (int h = 0; h < n_heads; h++) {
        float *x = v + (size_t)h * head_dim;
        for (int i = p0; i < p1; i++) {
            int i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
            float a0 = x[i0], a1 = x[i1], c = cs[i - p0], s = inverse ? -sn[i - p0] : sn[i - p0];
            x[i0] = a0 * c - a1 * s;
            x[i1] = a0 * s + a1 * c;
        }
    }
}

/* Row by row, cos and sin computed for each row in pieces of up to 64 pairs (the reference, and
 * the fast path's fallback). */
static void rope_rows(float *x, size_t ld, const int32_t *pos, int r0, int r1, int n_heads, int head_dim, int rope_dim,
                      float theta, int neox, int inverse) {
    enum { PIECE = 64 };
    float cs[PIECE], sn[PIECE];
    for (int r = r0; r < r1; r++)
        for (int p0 = 0; p0 < rope_dim / 2; p0 += PIECE) {
            int p1 = p0 + PIECE < rope_dim / 2 ? p0 + PIECE : rope_dim / 2;
            for (int i = p0; i < p1; i++) rope_cs(theta, i, rope_dim, pos[r], cs + i - p0, sn + i - p0);
            rope_row(x + (size_t)r * ld, n_heads, head_dim, rope_dim, p0, p1, cs, sn, neox, inverse);
        }
}

/* The fast path computes cos and sin once per distinct position (a batch repeats positions 0..T-1
 * in every sequence) instead of once per row; the values, hence the results, are the same. */
static void rope_apply(float *x, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                       float theta, int neox, int inverse) {
    int half = rope_dim / 2;
    if (N <= 0 || half <= 0) return;
    int32_t maxpos = 0, minpos = 0;
    for (int r = 0; r < N; r++) {
        maxpos = pos[r] > maxpos ? pos[r] : maxpos;
        minpos = pos[r] < minpos ? pos[r] : minpos;
    }
    size_t npos = (size_t)maxpos + 1;
    float *tab = minpos >= 0 && npos <= (size_t)N ? malloc(sizeof(float) * 2 * (size_t)half * npos) : NULL;
    if (!tab) { /* positions do not repeat (or are negative, or out of memory): per row */
#pragma omp parallel for schedule(static) if ((size_t)N * n_heads * rope_dim > PAR_MIN)
        for (int r = 0; r < N; r++) rope_rows(x, ld, pos, r, r + 1, n_heads, head_dim, rope_dim, theta, neox, inverse);
        return;
    }
#pragma omp parallel for schedule(static) if (npos * half > 4096)
    for (size_t p = 0; p < npos; p++)
        for (int i = 0; i < half; i++)
            rope_cs(theta, i, rope_dim, (int32_t)p, tab + p * 2 * half + i, tab + p * 2 * half + half + i);
#pragma omp parallel for schedule(static) if ((size_t)N * n_heads * rope_dim > PAR_MIN)
    for (int r = 0; r < N; r++) {
        const float *cs = tab + (size_t)pos[r] * 2 * half;
        rope_row(x + (size_t)r * ld, n_heads, head_dim, rope_dim, 0, half, cs, cs + half, neox, inverse);
    }
    free(tab);
}

void icl_rope_forward(float *x, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                      float theta, int neox) {
    rope_apply(x, ld, pos, N, n_heads, head_dim, rope_dim, theta, neox, 0);
}

void icl_rope_backward(float *dx, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                       float theta, int neox) {
    rope_apply(dx, ld, pos, N, n_heads, head_dim, rope_dim, theta, neox, 1);
}

void icl_rope_forward_ref(float *x, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                          float theta, int neox) {
    rope_rows(x, ld, pos, 0, N, n_heads, head_dim, rope_dim, theta, neox, 0);
}

void icl_rope_backward_ref(float *dx, size_t ld, const int32_t *pos, int N, int n_heads, int head_dim, int rope_dim,
                           float theta, int neox) {
    rope_rows(dx, ld, pos, 0, N, n_heads, head_dim, rope_dim, theta, neox, 1);
}

/* ---------------------------------------------------------------- swiglu */

/* The forward is icl_silu_mul's expression written to a separate output. */
static void swiglu_forward_chunk(float *restrict out, const float *restrict gate, const float *restrict up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = gate[i] / (1.0f + exp_poly(-gate[i])) * up[i];
}

void icl_swiglu_forward(float *out, const float *gate, const float *up, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        swiglu_forward_chunk(out + i0, gate + i0, up + i0, len);
    }
}

void icl_swiglu_forward_ref(float *out, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = (float)((double)gate[i] / (1.0 + exp(-(double)gate[i])) * up[i]);
}

/* With s = sigmoid(g): silu(g) = g*s and silu'(g) = s * (1 + g*(1 - s)). */
static void swiglu_backward_chunk(float *restrict dgate, float *restrict dup, const float *restrict dout,
                                  const float *restrict gate, const float *restrict up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + exp_poly(-g));
        dup[i] = dout[i] * (g * s);
        dgate[i] = dout[i] * up[i] * (s * (1.0f + g * (1.0f - s)));
    }
}

void icl_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    long nchunks = (long)((n + CHUNK - 1) / CHUNK);
#pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * CHUNK, len = n - i0 < CHUNK ? n - i0 : CHUNK;
        swiglu_backward_chunk(dgate + i0, dup + i0, dout + i0, gate + i0, up + i0, len);
    }
}

void icl_swiglu_backward_ref(float *dgate, float *dup, const float *dout, const float *gate, const float *up, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double g = gate[i], s = 1.0 / (1.0 + exp(-g));
        dup[i] = (float)(dout[i] * g * s);
        dgate[i] = (float)((double)dout[i] * up[i] * s * (1.0 + g * (1.0 - s)));
    }
}

/* ---------------------------------------------------------------- grouped-query attention */

/* The same loops as icl_attention_forward with q, k and v at their own strides and query head h
 * reading kv head h / (Hq/Hkv); for Hq == Hkv on a packed buffer the arithmetic is identical. */
void icl_gqa_forward(float *out, float *att, const float *q, size_t ldq, const float *k, const float *v, size_t ldkv,
                     int B, int T, int Hq, int Hkv, int hd, float scale) {
    int Tp = (T + 15) / 16 * 16, group = Hq / Hkv;
    size_t C = (size_t)Hq * hd;
#pragma omp parallel if ((size_t)B * Hq * T * T * hd > PAR_MIN)
    {
        float *kt = malloc(sizeof(float) * ((size_t)hd * Tp + Tp));
        float *srow = kt ? kt + (size_t)hd * Tp : NULL;
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < Hq; h++) {
                if (!kt) continue; /* out of memory: cannot happen for sane T */
                const float *qb = q + (size_t)b * T * ldq + (size_t)h * hd;
                const float *kb = k + (size_t)b * T * ldkv + (size_t)(h / group) * hd;
                const float *vb = v + (size_t)b * T * ldkv + (size_t)(h / group) * hd;
                float *a = att + (((size_t)b * Hq + h) * T) * T;
                gather_transposed(kt, kb, ldkv, T, Tp, hd);
                for (int t = 0; t < T; t++) {
                    float *arow = a + (size_t)t * T;
                    int n = t + 1;
                    scores16(srow, qb + t * ldq, kt, Tp, n, hd, scale);
                    float maxv = lanes_max(srow, n);
                    for (int t2 = 0; t2 < n; t2++) arow[t2] = exp_poly(srow[t2] - maxv);
                    float inv = 1.0f / lanes_sum(arow, n);
                    for (int t2 = 0; t2 < n; t2++) arow[t2] *= inv;
                    for (int t2 = n; t2 < T; t2++) arow[t2] = 0;
                    float *o = out + ((size_t)b * T + t) * C + (size_t)h * hd;
                    for (int i = 0; i < hd; i++) o[i] = 0;
                    weighted_rows_acc(o, arow, vb, ldkv, n, hd);
                }
            }
        free(kt);
    }
}

void icl_gqa_forward_ref(float *out, float *att, const float *q, size_t ldq, const float *k, const float *v,
                         size_t ldkv, int B, int T, int Hq, int Hkv, int hd, float scale) {
    double *p = malloc(sizeof(double) * (size_t)(T > 0 ? T : 1));
    if (!p) return;
    size_t C = (size_t)Hq * hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            int g = h / (Hq / Hkv);
            for (int t = 0; t < T; t++) {
                const float *qr = q + ((size_t)b * T + t) * ldq + (size_t)h * hd;
                double maxv = -INFINITY, sum = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *kr = k + ((size_t)b * T + t2) * ldkv + (size_t)g * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += (double)qr[i] * kr[i];
                    p[t2] = s * scale;
                    if (p[t2] > maxv) maxv = p[t2];
                }
                for (int t2 = 0; t2 <= t; t2++) sum += (p[t2] = exp(p[t2] - maxv));
                for (int t2 = 0; t2 <= t; t2++) p[t2] /= sum;
                float *arow = att + (((size_t)b * Hq + h) * T + t) * T;
                for (int t2 = 0; t2 < T; t2++) arow[t2] = t2 <= t ? (float)p[t2] : 0.0f;
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int t2 = 0; t2 <= t; t2++) o += p[t2] * v[((size_t)b * T + t2) * ldkv + (size_t)g * hd + i];
                    out[((size_t)b * T + t) * C + (size_t)h * hd + i] = (float)o;
                }
            }
        }
    free(p);
}

/* Parallel over (sequence, kv head): the query heads sharing a kv head add into its dk and dv one
 * after the other, in head order, so no two threads write the same gradient and the sums do not
 * depend on the thread count. Per query head the loops are icl_attention_backward's. */
void icl_gqa_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq, const float *k,
                      const float *v, size_t ldkv, const float *att, int B, int T, int Hq, int Hkv, int hd,
                      float scale) {
    int Tp = (T + 15) / 16 * 16, group = Hq / Hkv;
    size_t C = (size_t)Hq * hd;
#pragma omp parallel if ((size_t)B * Hq * T * T * hd > PAR_MIN)
    {
        float *vt = malloc(sizeof(float) * ((size_t)hd * Tp + 2 * Tp));
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int g = 0; g < Hkv; g++) {
                if (!vt) continue;
                float *datt = vt + (size_t)hd * Tp, *dpre = datt + Tp;
                const float *kb = k + (size_t)b * T * ldkv + (size_t)g * hd;
                float *dkb = dk + (size_t)b * T * ldkv + (size_t)g * hd, *dvb = dv + (size_t)b * T * ldkv + (size_t)g * hd;
                gather_transposed(vt, v + (size_t)b * T * ldkv + (size_t)g * hd, ldkv, T, Tp, hd);
                for (int h = g * group; h < (g + 1) * group; h++) {
                    const float *a = att + (((size_t)b * Hq + h) * T) * T;
                    for (int t = 0; t < T; t++) {
                        const float *arow = a + (size_t)t * T;
                        const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * hd;
                        /* through att @ v: datt = dy . v (16 at a time), dv += att * dy */
                        scores16(datt, dy, vt, Tp, t + 1, hd, 1.0f);
                        float dot = lanes_dot(arow, datt, t + 1);
                        for (int t2 = 0; t2 <= t; t2++) {
                            float *dvr = dvb + t2 * ldkv, p = arow[t2];
                            axpy16(dvr, p, dy, hd);
                        }
                        /* through softmax and q k^T */
                        const float *qr = q + ((size_t)b * T + t) * ldq + (size_t)h * hd;
                        float *dqr = dq + ((size_t)b * T + t) * ldq + (size_t)h * hd;
                        for (int t2 = 0; t2 <= t; t2++) dpre[t2] = arow[t2] * (datt[t2] - dot) * scale;
                        for (int t2 = 0; t2 <= t; t2++) {
                            float *dkr = dkb + t2 * ldkv, gr = dpre[t2];
                            axpy16(dkr, gr, qr, hd);
                        }
                        weighted_rows_acc(dqr, dpre, kb, ldkv, t + 1, hd);
                    }
                }
            }
        free(vt);
    }
}

/* The same gradients as icl_gqa_backward, as matrix products: per (sequence, kv head) and per block
 * of GQA_RB query rows [r0,r1) of a query head, only columns [0,r1) can be non-zero (causal), so
 *   dP = dY V^T,  dS = P o (dP - rowsum(P o dP)) scale,  dV += P^T dY,  dQ += dS K,  dK += dS^T Q
 * are four single-threaded sgemm calls on (rows, r1) blocks. For long contexts this runs at BLAS
 * speed where the row loops run at a few GFLOP/s; the entries of P above the diagonal are zero,
 * so the work there adds nothing. The split over threads is icl_gqa_backward's: every bit
 * depends only on the shapes, not on the thread count. */
#define GQA_RB 64
void icl_gqa_backward_gemm(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq,
                           const float *k, const float *v, size_t ldkv, const float *att, int B, int T, int Hq,
                           int Hkv, int hd, float scale) {
    int group = Hq / Hkv, rb = T < GQA_RB ? T : GQA_RB;
    size_t C = (size_t)Hq * hd;
#pragma omp parallel if ((size_t)B * Hq * T * T * hd > PAR_MIN)
    {
        float *ds = malloc(sizeof(float) * (size_t)rb * (T > 0 ? T : 1));
#pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int g = 0; g < Hkv; g++) {
                if (!ds) continue;
                const float *kb = k + (size_t)b * T * ldkv + (size_t)g * hd;
                const float *vb = v + (size_t)b * T * ldkv + (size_t)g * hd;
                float *dkb = dk + (size_t)b * T * ldkv + (size_t)g * hd, *dvb = dv + (size_t)b * T * ldkv + (size_t)g * hd;
                for (int h = g * group; h < (g + 1) * group; h++)
                    for (int r0 = 0; r0 < T; r0 += rb) {
                        int n = T - r0 < rb ? T - r0 : rb, m = r0 + n;
                        const float *p = att + (((size_t)b * Hq + h) * T + r0) * T;
                        const float *dy = dout + ((size_t)b * T + r0) * C + (size_t)h * hd;
                        const float *qr = q + ((size_t)b * T + r0) * ldq + (size_t)h * hd;
                        float *dqr = dq + ((size_t)b * T + r0) * ldq + (size_t)h * hd;
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, hd, 1.0f, dy, (int)C, vb, (int)ldkv,
                                    0.0f, ds, m);
                        for (int i = 0; i < n; i++) {
                            const float *pr = p + (size_t)i * T;
                            float *sr = ds + (size_t)i * m;
                            int cols = r0 + i + 1; /* causal: the rest of the row is zero */
                            float dot = lanes_dot(pr, sr, cols);
                            for (int j = 0; j < cols; j++) sr[j] = pr[j] * (sr[j] - dot) * scale;
                            for (int j = cols; j < m; j++) sr[j] = 0;
                        }
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, hd, n, 1.0f, p, T, dy, (int)C, 1.0f, dvb,
                                    (int)ldkv);
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, hd, m, 1.0f, ds, m, kb, (int)ldkv, 1.0f,
                                    dqr, (int)ldq);
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, hd, n, 1.0f, ds, m, qr, (int)ldq, 1.0f,
                                    dkb, (int)ldkv);
                    }
            }
        free(ds);
    }
}
/* In double, into double copies of the gradients, then added to the caller's arrays. */
void icl_gqa_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q, size_t ldq,
                          const float *k, const float *v, size_t ldkv, const float *att, int B, int T, int Hq, int Hkv,
                          int hd, float scale) {
    size_t nq = (size_t)B * T * Hq * hd, nkv = (size_t)B * T * Hkv * hd;
    double *gq = calloc(nq + 2 * nkv + (size_t)(T > 0 ? T : 1), sizeof(double));
    if (!gq) return;
    double *gk = gq + nq, *gv = gk + nkv, *datt = gv + nkv;
    size_t C = (size_t)Hq * hd, CKV = (size_t)Hkv * hd;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            int g = h / (Hq / Hkv);
            for (int t = 0; t < T; t++) {
                const float *arow = att + (((size_t)b * Hq + h) * T + t) * T;
                const float *dy = dout + ((size_t)b * T + t) * C + (size_t)h * hd;
                const float *qr = q + ((size_t)b * T + t) * ldq + (size_t)h * hd;
                double dot = 0;
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *vr = v + ((size_t)b * T + t2) * ldkv + (size_t)g * hd;
                    double s = 0;
                    for (int i = 0; i < hd; i++) s += (double)dy[i] * vr[i];
                    datt[t2] = s;
                    dot += arow[t2] * s;
                }
                for (int t2 = 0; t2 <= t; t2++) {
                    const float *kr = k + ((size_t)b * T + t2) * ldkv + (size_t)g * hd;
                    double dpre = arow[t2] * (datt[t2] - dot) * scale;
                    size_t okv = ((size_t)b * T + t2) * CKV + (size_t)g * hd, oq = ((size_t)b * T + t) * C + (size_t)h * hd;
                    for (int i = 0; i < hd; i++) {
                        gv[okv + i] += (double)arow[t2] * dy[i];
                        gk[okv + i] += dpre * qr[i];
                        gq[oq + i] += dpre * kr[i];
                    }
                }
            }
        }
    for (size_t r = 0; r < (size_t)B * T; r++) {
        for (size_t i = 0; i < C; i++) dq[r * ldq + i] += (float)gq[r * C + i];
        for (size_t i = 0; i < CKV; i++) {
            dk[r * ldkv + i] += (float)gk[r * CKV + i];
            dv[r * ldkv + i] += (float)gv[r * CKV + i];
        }
    }
    free(gq);
}

/* ---------------------------------------------------------------- embedding */

void icl_embedding_forward(float *out, const float *wte, const int32_t *tokens, int N, int C) {
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * (size_t)C);
}

/* Parallel over blocks of columns, every block taking the rows in order: two rows of the same
 * token never race, and each element's sum has the reference's order. */
void icl_embedding_backward(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    enum { BLOCK = 16 };
    int nblocks = (C + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) if ((size_t)N * C > PAR_MIN)
    for (int blk = 0; blk < nblocks; blk++) {
        int c0 = blk * BLOCK, c1 = c0 + BLOCK < C ? c0 + BLOCK : C;
        for (int n = 0; n < N; n++) {
            float *d = dwte + (size_t)tokens[n] * C;
            const float *g = dout + (size_t)n * C;
            for (int c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void icl_embedding_backward_ref(float *dwte, const float *dout, const int32_t *tokens, int N, int C) {
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) dwte[(size_t)tokens[n] * C + c] += dout[(size_t)n * C + c];
}

/* ---------------------------------------------------------------- cross-entropy */

/* One row: returns logsumexp(l) - l[tgt] and, if d is not NULL, writes d = scale*(softmax - onehot)
 * (d may be l). exp by the polynomial (vectorised; the row is a vocabulary long), sum in 16 double
 * lanes, so the order depends only on V. */
static double ce_row(float *d, const float *l, int32_t tgt, int V, double scale) {
    float m = lanes_max(l, V), lt = l[tgt];
    double acc[16] = {0}, sum = 0;
    int i = 0;
    if (d) {
        for (; i + 16 <= V; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += (d[i + j] = exp_poly(l[i + j] - m));
        for (; i < V; i++) sum += (d[i] = exp_poly(l[i] - m));
    } else {
        for (; i + 16 <= V; i += 16)
            for (int j = 0; j < 16; j++) acc[j] += exp_poly(l[i + j] - m);
        for (; i < V; i++) sum += exp_poly(l[i] - m);
    }
    for (int j = 0; j < 16; j++) sum += acc[j];
    if (d) {
        float kf = (float)(scale / sum);
        for (i = 0; i < V; i++) d[i] *= kf;
        d[tgt] -= (float)scale;
    }
    return (double)m + log(sum) - (double)lt;
}

float icl_cross_entropy(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float dloss) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    double scale = count ? (double)dloss / count : 0.0;
    /* row losses kept apart and summed in row order afterwards: the same sum for any thread count */
    double *rl = malloc(sizeof(double) * (size_t)(N > 0 ? N : 1));
    double total = 0;
#pragma omp parallel for schedule(static) if (rl && (size_t)N * V > PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *d = dlogits ? dlogits + (size_t)n * V : NULL;
        double r = 0;
        if (targets[n] >= 0)
            r = ce_row(d, logits + (size_t)n * V, targets[n], V, scale);
        else if (d)
            memset(d, 0, sizeof(float) * (size_t)V);
        if (rl)
            rl[n] = r;
        else
            total += r; /* out of memory: serial (the if clause above), same order */
    }
    if (rl)
        for (int n = 0; n < N; n++) total += rl[n];
    free(rl);
    return count ? (float)(total / count) : 0.0f;
}

float icl_cross_entropy_ref(float *dlogits, const float *logits, const int32_t *targets, int N, int V, float dloss) {
    int count = 0;
    for (int n = 0; n < N; n++) count += targets[n] >= 0;
    double total = 0;
    for (int n = 0; n < N; n++) {
        const float *l = logits + (size_t)n * V;
        float *d = dlogits ? dlogits + (size_t)n * V : NULL;
        if (targets[n] < 0) {
            for (int i = 0; d && i < V; i++) d[i] = 0;
            continue;
        }
        double m = l[0], sum = 0, lt = l[targets[n]];
        for (int i = 1; i < V; i++) m = l[i] > m ? l[i] : m;
        for (int i = 0; i < V; i++) sum += exp(l[i] - m);
        total += m + log(sum) - lt;
        for (int i = 0; d && i < V; i++) /* reads l[i] before writing d[i]: d may be l */
            d[i] = (float)((double)dloss / count * (exp(l[i] - m) / sum - (i == targets[n])));
    }
    return count ? (float)(total / count) : 0.0f;
}

void icl_adamw_update(float *p, const float *g, float *m, float *v, size_t n, float lr, float wd, float beta1,
                      float beta2, float eps, float bc1, float bc2_sqrt) {
    float step_size = lr / bc1;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        if (wd > 0) p[i] -= lr * wd * p[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}
