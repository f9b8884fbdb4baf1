/* Dot and matrix products with weights kept in their stored ggml type (see icl_qmat.h): path
 * selection, the portable path, the dequantizing fallback for types without SIMD kernels, and
 * icl_qmatmul's strategies: per-row dots for few tokens; for many, the AVX-512 kernel of
 * icl_qmat_gemm.c, or else BLAS on F32 weights and on per-thread fp32 tiles of the others; for very
 * many tokens (training batches) F32 products go to BLAS split by tokens. The SIMD
 * kernels are in icl_qmat_x86.c. */
#include "iclab/icl_qmat.h"
#include "iclab/icl_kernels.h"
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "icl_qmat_simd.h"
#include "iclab/icl_quant.h"
#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ---------------------------------------------------------------- paths */

#if defined(__x86_64__)
/* F16C (CPUID leaf 1, ECX bit 29), read directly: not every compiler's __builtin_cpu_supports
 * knows its name. Every AVX2 CPU has it, but the kernels rely on it, so it is checked. */
static int has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

static icl_simd detect_simd(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0). */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl"))
        return ICL_SIMD_AVX512;
    if (avx2) return ICL_SIMD_AVX2;
#endif
    return ICL_SIMD_PORTABLE;
}

icl_simd icl_simd_best(void) {
    /* Detected once; concurrent first calls store the same value, so the race is benign. */
    static int best = -1;
    int b = __atomic_load_n(&best, __ATOMIC_RELAXED);
    if (b < 0) {
        b = (int)detect_simd();
        __atomic_store_n(&best, b, __ATOMIC_RELAXED);
    }
    return (icl_simd)b;
}

const char *icl_simd_name(icl_simd s) {
    switch (s) {
    case ICL_SIMD_PORTABLE: return "portable";
    case ICL_SIMD_AVX2: return "avx2";
    case ICL_SIMD_AVX512: return "avx512";
    }
    return "unknown";
}

/* Paths are nested: a CPU with AVX-512 (as detected above) also has the AVX2 set. */
static int path_available(icl_simd p) {
    return (p == ICL_SIMD_PORTABLE || p == ICL_SIMD_AVX2 || p == ICL_SIMD_AVX512) && (int)p <= (int)icl_simd_best();
}

/* The SIMD kernels for (path, type), or 0 if the path has none for it. */
static int path_kernel(icl_simd p, int type, icl_qkernel *k) {
    if (p == ICL_SIMD_AVX512) return icl_qmat_avx512_kernel(type, k);
    if (p == ICL_SIMD_AVX2) return icl_qmat_avx2_kernel(type, k);
    return 0;
}

int icl_qmat_supported(int type) { return icl_quant_can_dequantize(type); }

/* ---------------------------------------------------------------- portable and fallback dots */

/* Rows are dequantized in chunks of this many elements (a multiple of every block size, and of
 * LANES so an element's lane does not depend on the chunking): 4 KiB of stack. */
enum { CHUNK = 1024, LANES = 16 };

/* acc[i % LANES] += w[i] * x[i]: LANES independent chains the compiler can vectorise. */
static void lanes_acc(float acc[LANES], const float *w, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += w[i + l] * x[i + l];
    for (int l = 0; i + l < n; l++) acc[l] += w[i + l] * x[i + l];
}

static float lanes_sum(const float acc[LANES]) {
    float s[LANES];
    memcpy(s, acc, sizeof s);
    for (int w = LANES / 2; w > 0; w /= 2) /* pairwise, so the sum's depth is log2(LANES) */
        for (int l = 0; l < w; l++) s[l] += s[l + w];
    return s[0];
}

/* Portable path for every type: plain loops over dequantized chunks. */
static float dot_portable(int type, const uint8_t *row, const float *x, int64_t n) {
    float acc[LANES] = {0}, buf[CHUNK];
    size_t per = icl_quant_type_size(type);
    int64_t bs = icl_quant_block_size(type);
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t len = n - i < CHUNK ? n - i : CHUNK;
        icl_quant_dequantize_row(type, row + (size_t)(i / bs) * per, buf, len, NULL);
        lanes_acc(acc, buf, x + i, len);
    }
    return lanes_sum(acc);
}

/* A type without kernels on a SIMD path: dequantized chunks dotted with that path's F32 kernel. */
static float dot_fallback(icl_qdot_fn f32dot, int type, const uint8_t *row, const float *x, int64_t n) {
    float buf[CHUNK], s = 0.0f;
    size_t per = icl_quant_type_size(type);
    int64_t bs = icl_quant_block_size(type);
    for (int64_t i = 0; i < n; i += CHUNK) {
        int64_t len = n - i < CHUNK ? n - i : CHUNK;
        icl_quant_dequantize_row(type, row + (size_t)(i / bs) * per, buf, len, NULL);
        s += f32dot((const uint8_t *)buf, x + i, len);
    }
    return s;
}

/* The dot on path p (available, type supported, n valid). */
static float dot_on(icl_simd p, int type, const uint8_t *row, const float *x, int64_t n) {
    icl_qkernel k;
    if (path_kernel(p, type, &k)) return k.dot(row, x, n);
    if (p != ICL_SIMD_PORTABLE && path_kernel(p, ICL_GGML_F32, &k)) return dot_fallback(k.dot, type, row, x, n);
    return dot_portable(type, row, x, n);
}

static int valid_len(int type, int64_t n) {
    int64_t bs = icl_quant_block_size(type);
    return bs > 0 && n >= 0 && n % bs == 0;
}

float icl_qdot(int type, const void *row, const float *x, int64_t n) {
    if (!icl_qmat_supported(type) || !valid_len(type, n)) return NAN;
    return dot_on(icl_simd_best(), type, row, x, n);
}

int icl_qdot_with(icl_simd path, int type, const void *row, const float *x, int64_t n, float *out) {
    if (!path_available(path) || !icl_qmat_supported(type) || !valid_len(type, n)) return -1;
    *out = dot_on(path, type, row, x, n);
    return 0;
}

/* Unpacks n elements of a row to fp32 on path p: the SIMD kernel if there is one, else the
 * reference dequantizer (the two are bit-exact). */
static void unpack_on(icl_simd p, int type, const uint8_t *row, float *dst, int64_t n) {
    icl_qkernel k;
    if (path_kernel(p, type, &k))
        k.unpack(row, dst, n);
    else
        icl_quant_dequantize_row(type, row, dst, n, NULL);
}

int icl_qunpack_with(icl_simd path, int type, const void *row, float *dst, int64_t n) {
    if (!path_available(path) || !icl_qmat_supported(type) || !valid_len(type, n)) return -1;
    unpack_on(path, type, row, dst, n);
    return 0;
}

/* ---------------------------------------------------------------- matrix products */

/* Below this many multiply-adds a product runs on one thread: fork/join would cost more. */
#define PAR_MIN_MACS (1 << 17)
/* From this many tokens on, products go to BLAS (F32 weights directly, other types through fp32
 * tiles); below it each output is an icl_qdot, which re-decodes the row per token but beats BLAS
 * on so few rows of x (measured: sgemm with T < 8 runs at half its speed or less). */
#define TILE_MIN_T 8
/* From this many tokens on, F32 products split the tokens across threads, each thread one sgemm
 * over all the weight rows: the batches of training passes (hundreds to thousands of rows). Measured
 * on the mini-LM's shapes (128-352 columns) at 800 tokens, 2 threads: 250-275 GFLOP/s against the
 * AVX-512 kernel's 140-200, and 1.3-1.8x on 512-2048 columns too; at 128 tokens and below the
 * kernel is faster (sgemm needs many rows). */
#define F32_TOKEN_SPLIT_T 256
/* A thread's fp32 tile holds up to this many bytes of unpacked rows (at least 16 rows): BLAS
 * repacks x for every tile, so larger tiles amortise that (measured: 64-row tiles 3-5% slower than
 * whole-share tiles on 768-2048 columns), while the cap bounds the memory for large matrices. */
#define TILE_BYTES ((size_t)4 << 20)

typedef struct {
    int type;
    const uint8_t *w;
    int64_t rows, cols;
    size_t rb; /* bytes per packed row */
    const float *x;
    int64_t T;
    float *y;
    int64_t ldy;
} qmm;

/* Rows [lo, hi) of part `part` of `parts`: contiguous, cut at multiples of 16 rows so threads do
 * not share the cache lines of y's rows more than necessary. */
static void split_rows(int64_t n, int part, int parts, int64_t *lo, int64_t *hi) {
    int64_t blocks = (n + 15) / 16, per = blocks / parts, extra = blocks % parts;
    int64_t b0 = part * per + (part < extra ? part : extra), b1 = b0 + per + (part < extra ? 1 : 0);
    *lo = b0 * 16 < n ? b0 * 16 : n;
    *hi = b1 * 16 < n ? b1 * 16 : n;
}

static int check_args(const char *fn, int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T,
                      const float *y, int64_t ldy, uint64_t *rb, icl_err *err) {
    const char *tn = icl_quant_type_name(type);
    if (!icl_qmat_supported(type))
        return icl_errf(err, "%s: weights of ggml type %s (%d) are not supported", fn, tn, type);
    if (rows < 0 || cols < 0 || T < 0)
        return icl_errf(err, "%s: negative shape (rows %lld, cols %lld, T %lld) for %s weights", fn, (long long)rows,
                        (long long)cols, (long long)T, tn);
    if (icl_quant_row_bytes(type, cols, rb, err)) return icl_err_prefix(err, "%s: ", fn);
    if (ldy < rows)
        return icl_errf(err, "%s: ldy %lld is less than rows %lld (%s weights)", fn, (long long)ldy, (long long)rows, tn);
    int64_t t1, t2;
    uint64_t wb;
    if (__builtin_mul_overflow(T, ldy, &t1) || __builtin_mul_overflow(T, cols, &t2) ||
        __builtin_mul_overflow(*rb, (uint64_t)rows, &wb) || wb > SIZE_MAX || (uint64_t)t1 > SIZE_MAX / sizeof(float) ||
        (uint64_t)t2 > SIZE_MAX / sizeof(float))
        return icl_errf(err, "%s: shape (rows %lld, cols %lld, T %lld) of %s weights overflows a size", fn,
                        (long long)rows, (long long)cols, (long long)T, tn);
    if (rows > 0 && T > 0 && (!y || (cols > 0 && (!w || !x))))
        return icl_errf(err, "%s: NULL weight, input or output buffer (%s weights)", fn, tn);
    return 0;
}

/* Few tokens: each output is one icl_qdot of a packed row, rows split over threads. */
static void mm_dots(const qmm *m, icl_simd p, int threads) {
    icl_qkernel k;
    int have = path_kernel(p, m->type, &k);
#pragma omp parallel num_threads(threads)
    {
        int64_t lo, hi;
        split_rows(m->rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        for (int64_t r = lo; r < hi; r++) {
            const uint8_t *row = m->w + (size_t)r * m->rb;
            for (int64_t t = 0; t < m->T; t++) {
                const float *xt = m->x + (size_t)(t * m->cols);
                m->y[(size_t)(t * m->ldy + r)] = have ? k.dot(row, xt, m->cols) : dot_on(p, m->type, row, xt, m->cols);
            }
        }
    }
}

/* F32 weights, straight from the (possibly mapped) weights: fixed blocks of the tokens times all of
 * W (by_tokens 1: training batches, icl_sgemm_blocks), or of W's rows times all the tokens
 * (by_tokens 0), spread over the threads, each block one single-threaded sgemm (OpenBLAS does not
 * thread inside a parallel region). The blocks do not move with the thread count, so neither do
 * the bits. */
static void mm_f32(const qmm *m, int threads, int by_tokens) {
    const float *w = (const float *)(const void *)m->w;
    if (by_tokens) {
        icl_sgemm_blocks(0, 1, (int)m->T, (int)m->rows, (int)m->cols, 1.0f, m->x, (int)m->cols, w, (int)m->cols, 0.0f,
                         m->y, (int)m->ldy, threads);
        return;
    }
    int64_t blocks = (m->rows + ICL_GEMM_BLOCK - 1) / ICL_GEMM_BLOCK;
    int outer = omp_get_max_threads();
    omp_set_num_threads(1); /* a lone thread's sgemm single-threaded too (see icl_sgemm_blocks) */
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t blk = 0; blk < blocks; blk++) {
        int64_t r0 = blk * ICL_GEMM_BLOCK, nr = m->rows - r0 < ICL_GEMM_BLOCK ? m->rows - r0 : ICL_GEMM_BLOCK;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m->T, (int)nr, (int)m->cols, 1.0f, m->x, (int)m->cols,
                    w + (size_t)r0 * (size_t)m->cols, (int)m->cols, 0.0f, m->y + r0, (int)m->ldy);
    }
    omp_set_num_threads(outer);
}

/* Many tokens: each thread unpacks its rows, a tile of at most TILE_BYTES at a time, into its own
 * fp32 buffer and multiplies the tile with sgemm; the unpacking is paid once per row and shared
 * by all T tokens. Returns -1 if a tile could not be allocated. */
static int mm_tiles(const qmm *m, icl_simd p, int threads) {
    int failed = 0;
    int64_t tile_rows = (int64_t)(TILE_BYTES / ((size_t)m->cols * sizeof(float))) / 16 * 16;
    if (tile_rows < 16) tile_rows = 16;
#pragma omp parallel num_threads(threads)
    {
        int64_t lo, hi;
        split_rows(m->rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        int64_t nt = hi - lo < tile_rows ? hi - lo : tile_rows;
        float *tile = nt > 0 ? aligned_alloc(64, ((size_t)nt * (size_t)m->cols * sizeof(float) + 63) / 64 * 64) : NULL;
        if (nt > 0 && !tile) {
#pragma omp atomic write
            failed = 1;
        }
        for (int64_t r0 = lo; tile && r0 < hi; r0 += nt) {
            int64_t nr = hi - r0 < nt ? hi - r0 : nt;
            for (int64_t r = 0; r < nr; r++)
                unpack_on(p, m->type, m->w + (size_t)(r0 + r) * m->rb, tile + (size_t)(r * m->cols), m->cols);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m->T, (int)nr, (int)m->cols, 1.0f, m->x,
                        (int)m->cols, tile, (int)m->cols, 0.0f, m->y + r0, (int)m->ldy);
        }
        free(tile);
    }
    return failed ? -1 : 0;
}

/* Many tokens on AVX-512 (icl_qmat_gemm.c): x packed once per call into a buffer the calling
 * thread keeps (prefill calls this ~100 times per chunk; a fresh megabyte each time would be
 * page-faulted in again), then each thread takes groups of 8 rows, F32 rows read in place and
 * other types unpacked into an 8-row buffer. Returns -1 if a buffer could not be allocated. */
static int mm_gemm(const qmm *m, icl_simd p, int threads) {
    static __thread float *xp_buf;
    static __thread size_t xp_cap;
    int64_t K = m->cols, nb = (m->T + ICL_QGEMM_NT - 1) / ICL_QGEMM_NT;
    size_t need = (size_t)nb * ICL_QGEMM_NT * (size_t)K;
    if (need > xp_cap) {
        free(xp_buf);
        xp_cap = 0;
        xp_buf = aligned_alloc(64, (need * sizeof(float) + 63) / 64 * 64);
        if (!xp_buf) return -1;
        xp_cap = need;
    }
    float *xp = xp_buf; /* thread-local: the workers must use this copy of the pointer */
    int in_place = m->type == ICL_GGML_F32 && ((uintptr_t)m->w % sizeof(float)) == 0, failed = 0;
#pragma omp parallel num_threads(threads)
    {
        /* each thread packs whole 32-token blocks, then all wait for the packed x */
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nb; b++) {
            int64_t t0 = b * ICL_QGEMM_NT, nt = m->T - t0 < ICL_QGEMM_NT ? m->T - t0 : ICL_QGEMM_NT;
            icl_qmat_gemm_pack_x(m->x + (size_t)t0 * K, nt, K, xp + (size_t)b * ICL_QGEMM_NT * K);
        }
        int64_t lo, hi;
        split_rows(m->rows, omp_get_thread_num(), omp_get_num_threads(), &lo, &hi);
        float *buf = hi > lo ? aligned_alloc(64, (ICL_QGEMM_NR * (size_t)K * sizeof(float) + 63) / 64 * 64) : NULL;
        if (hi > lo && !buf) {
#pragma omp atomic write
            failed = 1;
        }
        for (int64_t r0 = lo; buf && r0 < hi; r0 += ICL_QGEMM_NR) {
            int nr = hi - r0 < ICL_QGEMM_NR ? (int)(hi - r0) : ICL_QGEMM_NR;
            const float *w = buf;
            if (in_place && nr == ICL_QGEMM_NR) {
                w = (const float *)(const void *)(m->w + (size_t)r0 * m->rb);
            } else {
                for (int r = 0; r < nr; r++) unpack_on(p, m->type, m->w + (size_t)(r0 + r) * m->rb, buf + (size_t)r * K, K);
                memset(buf + (size_t)nr * K, 0, sizeof(float) * (size_t)(ICL_QGEMM_NR - nr) * (size_t)K);
            }
            icl_qmat_gemm_rows(w, K, nr, K, xp, m->T, m->y + r0, m->ldy);
        }
        free(buf);
    }
    return failed ? -1 : 0;
}

int icl_qmatmul(int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T, float *y, int64_t ldy,
                icl_err *err) {
    return icl_qmatmul_with(icl_simd_best(), type, w, rows, cols, x, T, y, ldy, err);
}

int icl_qmatmul_with(icl_simd p, int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T,
                     float *y, int64_t ldy, icl_err *err) {
    uint64_t rb;
    if (!path_available(p)) return icl_errf(err, "icl_qmatmul: this CPU has no %s path", icl_simd_name(p));
    if (check_args("icl_qmatmul", type, w, rows, cols, x, T, y, ldy, &rb, err)) return -1;
    if (rows == 0 || T == 0) return 0;
    if (cols == 0) { /* empty sums */
        for (int64_t t = 0; t < T; t++) memset(y + (size_t)(t * ldy), 0, sizeof(float) * (size_t)rows);
        return 0;
    }
    qmm m = {type, w, rows, cols, (size_t)rb, x, T, y, ldy};
    double macs = (double)rows * (double)cols * (double)T;
    int threads = macs >= PAR_MIN_MACS ? omp_get_max_threads() : 1;
    /* sgemm takes int dimensions; larger products (never met in practice) take the dot path. */
    int blas_ok = T <= INT_MAX && rows <= INT_MAX && cols <= INT_MAX && ldy <= INT_MAX;
    int f32_blas = blas_ok && type == ICL_GGML_F32 && ((uintptr_t)w % sizeof(float)) == 0;
    if (T >= F32_TOKEN_SPLIT_T && f32_blas) {
        mm_f32(&m, threads, 1);
        return 0;
    }
    if (T >= TILE_MIN_T && p == ICL_SIMD_AVX512 && icl_qmat_gemm_available()) {
        if (mm_gemm(&m, p, threads))
            return icl_errf(err, "icl_qmatmul: out of memory for %lld-column buffers (%s weights)", (long long)cols,
                            icl_quant_type_name(type));
        return 0;
    }
    if (T >= TILE_MIN_T && f32_blas) {
        mm_f32(&m, threads, 0);
        return 0;
    }
    if (T < TILE_MIN_T || !blas_ok) {
        mm_dots(&m, p, threads);
        return 0;
    }
    if (mm_tiles(&m, p, threads))
        return icl_errf(err, "icl_qmatmul: out of memory for %lld-column fp32 tiles (%s weights)", (long long)cols,
                        icl_quant_type_name(type));
    return 0;
}

int icl_qmatmul_ref(int type, const void *w, int64_t rows, int64_t cols, const float *x, int64_t T, float *y,
                    int64_t ldy, icl_err *err) {
    uint64_t rb;
    if (check_args("icl_qmatmul_ref", type, w, rows, cols, x, T, y, ldy, &rb, err)) return -1;
    if (rows == 0 || T == 0) return 0;
    float *buf = malloc(sizeof(float) * (size_t)(cols > 0 ? cols : 1));
    if (!buf) return icl_errf(err, "icl_qmatmul_ref: out of memory (%s weights)", icl_quant_type_name(type));
    for (int64_t r = 0; r < rows; r++) {
        icl_quant_dequantize_row(type, (const uint8_t *)w + (size_t)r * rb, buf, cols, NULL);
        for (int64_t t = 0; t < T; t++) {
            const float *xt = x + (size_t)(t * cols);
            double s = 0.0;
            for (int64_t i = 0; i < cols; i++) s += (double)buf[i] * (double)xt[i];
            y[(size_t)(t * ldy + r)] = (float)s;
        }
    }
    free(buf);
    return 0;
}
