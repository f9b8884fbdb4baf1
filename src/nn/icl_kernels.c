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
 * its block (OpenBLAS runs single-threaded inside a parallel region): for this model's shapes
 * that is up to twice as fast as BLAS's own threading, and the split, hence every bit of the
 * result, depends only on the thread count. Rows (or output channels) are cut in multiples of 16. */
static void split_range(int n, int part, int parts, int *lo, int *hi) {
    int blocks = (n + 15) / 16, per = blocks / parts, extra = blocks % parts;
    int b0 = part * per + (part < extra ? part : extra), b1 = b0 + per + (part < extra ? 1 : 0);
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

void icl_linear_forward(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC) {
#pragma omp parallel if ((size_t)N * OC * IC > 64 * PAR_MIN)
    {
        int lo, hi;
        split_range(N, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        if (hi > lo) {
            if (b)
                for (int n = lo; n < hi; n++) memcpy(out + (size_t)n * OC, b, (size_t)OC * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, hi - lo, OC, IC, 1.0f, inp + (size_t)lo * IC, IC, w, IC,
                        b ? 1.0f : 0.0f, out + (size_t)lo * OC, OC);
        }
    }
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
#pragma omp parallel if ((size_t)N * OC * IC > 64 * PAR_MIN)
    {
        int part = omp_get_thread_num(), parts = omp_get_num_threads(), lo, hi;
        split_range(N, part, parts, &lo, &hi);
        if (dinp && hi > lo)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, hi - lo, IC, OC, 1.0f, dout + (size_t)lo * OC, OC, w, IC,
                        0.0f, dinp + (size_t)lo * IC, IC);
        split_range(OC, part, parts, &lo, &hi);
        if (hi > lo)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hi - lo, IC, N, 1.0f, dout + lo, OC, inp, IC, 1.0f,
                        dw + (size_t)lo * IC, IC);
    }
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
                dw[(size_t)o * IC + i] += g * inp[(size_t)n * IC + i];
            }
        }
}

/* ---------------------------------------------------------------- layernorm */

void icl_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b, int N,
                           int C) {
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
        float s = 1.0f / sqrtf(v + 1e-5f);
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
            db[c] += sb[c - c0];
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

/* ---------------------------------------------------------------- attention */

/* out[i] += sum_r w[r] * rows[r*stride + i] for i < hs: accumulates 16 channels at a time in
 * registers instead of re-reading and re-writing out for every row. */
static inline void weighted_rows_acc(float *restrict out, const float *restrict w, const float *restrict rows,
                                     size_t stride, int nrows, int hs) {
    int i0 = 0;
    for (; i0 + 16 <= hs; i0 += 16) {
        float acc[16] = {0};
        for (int r = 0; r < nrows; r++) {
            const float *row = rows + r * stride + i0;
            float wr = w[r];
            for (int j = 0; j < 16; j++) acc[j] += wr * row[j];
        }
        for (int j = 0; j < 16; j++) out[i0 + j] += acc[j];
    }
    for (int i = i0; i < hs; i++) {
        float acc = 0;
        for (int r = 0; r < nrows; r++) acc += w[r] * rows[r * stride + i];
        out[i] += acc;
    }
}

/* Sum and maximum with 16 fixed lanes: vectorised without reassociating (-ffast-math), and in an
 * order that does not depend on anything but n. */
static inline float lanes_sum(const float *x, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    float s = 0;
    for (; i < n; i++) s += x[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float lanes_dot(const float *a, const float *b, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += a[i + j] * b[i + j];
    float s = 0;
    for (; i < n; i++) s += a[i] * b[i];
    for (int j = 0; j < 16; j++) s += acc[j];
    return s;
}

static inline float lanes_max(const float *x, int n) {
    float acc[16];
    for (int j = 0; j < 16; j++) acc[j] = x[0];
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
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
        float acc[16] = {0};
        for (int i = 0; i < hs; i++) {
            float qi = q[i];
            const float *k = kt + (size_t)i * Tp + j0;
            for (int j = 0; j < 16; j++) acc[j] += qi * k[j];
        }
        for (int j = 0; j < 16; j++) s[j0 + j] = acc[j] * scale;
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
                    for (int i = 0; i < hs; i++) dv[i] += p * dy[i];
                }
                /* through softmax and q k^T */
                const float *q = base + t * C3 + h * hs;
                float *dq = dbase + t * C3 + h * hs;
                for (int t2 = 0; t2 <= t; t2++) dpre[t2] = arow[t2] * (datt[t2] - dot) * scale;
                for (int t2 = 0; t2 <= t; t2++) {
                    float *dk = dbase + t2 * C3 + C + h * hs, g = dpre[t2];
                    for (int i = 0; i < hs; i++) dk[i] += g * q[i];
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
