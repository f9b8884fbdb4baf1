/* bf16 matrix products on AMX tiles (see icl_bf16.h).
 *
 * Both operands are rounded to bf16 and packed into the tile layouts, zero-padded to whole tiles:
 *   A (M,K): blocks of 16 rows x 32 k, each 1 KB, row-major (a tile row = one row of A);
 *   B (K,N): blocks of 32 k x 16 columns in the pair layout the tile unit reads (16 rows of
 *            16 (k, k+1) pairs: element (k, n) at [(k/2)*32 + n*2 + k%2]).
 * The tile loop computes 32x32 blocks of C with four fp32 accumulator tiles (tmm0-3), two A tiles
 * (tmm4-5) and two B tiles (tmm6-7), K in ascending blocks of 32. Only the ISA extensions' code
 * has target attributes; the rest builds with the Makefile's flags. */
#include "iclab/icl_bf16.h"
#include <immintrin.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cpuid.h>

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

/* Below this many multiply-adds the fork/join costs more than a second thread saves. */
#define PAR_MIN_MACS (1u << 21)

/* ---------------------------------------------------------------- availability */

static int g_state; /* 0 unknown, 1 usable, -1 not */
static char g_why[200];

static void probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) {
        snprintf(g_why, sizeof g_why, "this CPU has no AMX-BF16 tiles (bf16 training needs them)");
        g_state = -1;
        return;
    }
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d) || !(a & (1u << 5))) {
        snprintf(g_why, sizeof g_why, "this CPU has no AVX512_BF16 (bf16 training needs it)");
        g_state = -1;
        return;
    }
    /* Linux keeps the 8 KB tile state off until a process asks for it */
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) != 0) {
        snprintf(g_why, sizeof g_why, "the kernel refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)");
        g_state = -1;
        return;
    }
    g_state = 1;
}

int icl_bf16_init(icl_err *err) {
    int s;
#pragma omp critical(icl_bf16_probe)
    {
        if (g_state == 0) probe();
        s = g_state;
    }
    return s > 0 ? 0 : icl_errf(err, "%s", g_why);
}

float icl_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* NaN: keep it a (quiet) NaN */
    else u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

/* ---------------------------------------------------------------- packing (AVX-512 + BF16) */

#define TGT_PACK __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define TGT_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512bf16")))

/* An operand: element (i, j) of the logical matrix is p[i*ld + j], or p[j*ld + i] when trans. */
typedef struct operand {
    const float *p;
    size_t ld;
    int trans;
} operand;

/* 32 bf16 from 32 floats at x, lanes past n zero (n <= 32). */
TGT_PACK static inline __m512i cvt32(const float *x, int n) {
    __mmask16 m0 = n >= 16 ? 0xffff : (__mmask16)((1u << (n < 0 ? 0 : n)) - 1);
    int n1 = n - 16;
    __mmask16 m1 = n1 >= 16 ? 0xffff : (__mmask16)((1u << (n1 < 0 ? 0 : n1)) - 1);
    __m512 lo = _mm512_maskz_loadu_ps(m0, x), hi = _mm512_maskz_loadu_ps(m1, x + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

/* 16 (row r0, row r1) pairs of bf16, interleaved: dword c = (x0[c], x1[c]); lanes past n zero. */
TGT_PACK static inline __m512i cvt_pairs(const float *x0, const float *x1, int n) {
    static const uint16_t idx_tab[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                         8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    __mmask16 m = n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); /* n <= 0: a padding block */
    __m512 a = _mm512_maskz_loadu_ps(m, x0), b = x1 ? _mm512_maskz_loadu_ps(m, x1) : _mm512_setzero_ps();
    __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* words 0-15 from x0, 16-31 from x1 */
    return _mm512_permutexvar_epi16(_mm512_loadu_si512(idx_tab), v);
}

/* Packs block-row ib (16 rows) of the logical (R, K) matrix X as A blocks: dst[kb*512 + r*32 + kk]. */
TGT_PACK static void pack_a_block(uint16_t *dst, operand X, int R, int K, int ib, int KB) {
    int r0 = ib * 16;
    if (!X.trans) {
        for (int r = 0; r < 16; r++) {
            int row = r0 + r;
            for (int kb = 0; kb < KB; kb++) {
                __m512i v = row < R ? cvt32(X.p + (size_t)row * X.ld + kb * 32, K - kb * 32) : _mm512_setzero_si512();
                _mm512_storeu_si512(dst + (size_t)kb * 512 + r * 32, v);
            }
        }
    } else { /* X(r, k) = p[k*ld + r]: pairs of k rows interleaved, dword c goes to row c, pair p */
        const __m512i sc = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(16));
        int nr = R - r0 < 16 ? R - r0 : 16;
        for (int kb = 0; kb < KB; kb++)
            for (int p = 0; p < 16; p++) {
                int k = kb * 32 + 2 * p;
                __m512i v = _mm512_setzero_si512();
                if (k < K) v = cvt_pairs(X.p + (size_t)k * X.ld + r0, k + 1 < K ? X.p + (size_t)(k + 1) * X.ld + r0 : NULL, nr);
                _mm512_i32scatter_epi32(dst + (size_t)kb * 512 + p * 2, sc, v, 4);
            }
    }
}

/* Packs block-column jb (16 columns) of the logical (K, Nc) matrix X as B blocks:
 * dst[kb*512 + (kk/2)*32 + c*2 + kk%2]. */
TGT_PACK static void pack_b_block(uint16_t *dst, operand X, int K, int Nc, int jb, int KB) {
    int c0 = jb * 16, nc = Nc - c0 < 16 ? Nc - c0 : 16;
    if (!X.trans) { /* X(k, c) = p[k*ld + c]: a pair of rows gives one 64-byte tile row */
        for (int kb = 0; kb < KB; kb++)
            for (int p = 0; p < 16; p++) {
                int k = kb * 32 + 2 * p;
                __m512i v = _mm512_setzero_si512();
                if (k < K) v = cvt_pairs(X.p + (size_t)k * X.ld + c0, k + 1 < K ? X.p + (size_t)(k + 1) * X.ld + c0 : NULL, nc);
                _mm512_storeu_si512(dst + (size_t)kb * 512 + p * 32, v);
            }
    } else { /* X(k, c) = p[c*ld + k]: 32 k of column c are 16 pairs, scattered 16 dwords apart */
        const __m512i sc = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                              _mm512_set1_epi32(16));
        for (int kb = 0; kb < KB; kb++)
            for (int c = 0; c < 16; c++) {
                __m512i v = c < nc ? cvt32(X.p + (size_t)(c0 + c) * X.ld + kb * 32, K - kb * 32) : _mm512_setzero_si512();
                _mm512_i32scatter_epi32(dst + (size_t)kb * 512 + c * 2, sc, v, 4);
            }
    }
}

/* ---------------------------------------------------------------- the tile loop */

typedef struct tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tilecfg;

/* C rows [32*mb0, 32*mb1) (clipped to M), all N columns. */
TGT_AMX static void tile_rows(float *C, size_t ldc, int accumulate, const uint16_t *Ap, const uint16_t *Bp, int M,
                              int N, int KB, int mb0, int mb1) {
    tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
    float buf[32 * 32] __attribute__((aligned(64)));
    int NB32 = (N + 31) / 32;
    for (int mb = mb0; mb < mb1; mb++) {
        const uint16_t *a0 = Ap + (size_t)(2 * mb) * KB * 512, *a1 = a0 + (size_t)KB * 512;
        for (int nb = 0; nb < NB32; nb++) {
            const uint16_t *b0 = Bp + (size_t)(2 * nb) * KB * 512, *b1 = b0 + (size_t)KB * 512;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int kb = 0; kb < KB; kb++) {
                _tile_loadd(4, a0 + (size_t)kb * 512, 64);
                _tile_loadd(6, b0 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, b1 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, a1 + (size_t)kb * 512, 64);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            _tile_stored(0, buf, 128);
            _tile_stored(1, buf + 16, 128);
            _tile_stored(2, buf + 16 * 32, 128);
            _tile_stored(3, buf + 16 * 32 + 16, 128);
            int r1 = M - mb * 32 < 32 ? M - mb * 32 : 32, c1 = N - nb * 32 < 32 ? N - nb * 32 : 32;
            for (int r = 0; r < r1; r++) {
                float *dst = C + (size_t)(mb * 32 + r) * ldc + nb * 32;
                const float *src = buf + r * 32;
                if (accumulate)
                    for (int c = 0; c < c1; c++) dst[c] += src[c];
                else
                    memcpy(dst, src, sizeof(float) * (size_t)c1);
            }
        }
    }
    _tile_release();
}

int icl_bf16_gemm(float *C, size_t ldc, int accumulate, const float *A, size_t lda, int transA, const float *B,
                  size_t ldb, int transB, int M, int N, int K, icl_err *err) {
    if (M < 1 || N < 1 || K < 1) return icl_errf(err, "bf16 gemm: empty shape %dx%dx%d", M, N, K);
    if (icl_bf16_init(err)) return -1;
    int KB = (K + 31) / 32, MB32 = (M + 31) / 32, NB32 = (N + 31) / 32;
    size_t asz = (size_t)MB32 * 2 * KB * 512, bsz = (size_t)NB32 * 2 * KB * 512;
    uint16_t *Ap = aligned_alloc(64, (asz + bsz) * sizeof(uint16_t));
    if (!Ap) return icl_errf(err, "bf16 gemm: out of memory packing %dx%dx%d", M, N, K);
    uint16_t *Bp = Ap + asz;
    operand a = {A, lda, transA}, b = {B, ldb, transB};
#pragma omp parallel if ((size_t)M * N * K > PAR_MIN_MACS)
    {
#pragma omp for schedule(static) nowait
        for (int ib = 0; ib < 2 * MB32; ib++) pack_a_block(Ap + (size_t)ib * KB * 512, a, M, K, ib, KB);
#pragma omp for schedule(static)
        for (int jb = 0; jb < 2 * NB32; jb++) pack_b_block(Bp + (size_t)jb * KB * 512, b, K, N, jb, KB);
        /* a fixed split of the 32-row blocks (the bits do not depend on it anyway) */
        int part = omp_get_thread_num(), parts = omp_get_num_threads();
        int per = MB32 / parts, extra = MB32 % parts;
        int mb0 = part * per + (part < extra ? part : extra), mb1 = mb0 + per + (part < extra ? 1 : 0);
        if (mb1 > mb0) tile_rows(C, ldc, accumulate, Ap, Bp, M, N, KB, mb0, mb1);
    }
    free(Ap);
    return 0;
}

void icl_bf16_gemm_ref(float *C, size_t ldc, int accumulate, const float *A, size_t lda, int transA, const float *B,
                       size_t ldb, int transB, int M, int N, int K) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++) {
                float x = transA ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                float y = transB ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                s += (double)icl_bf16_round(x) * icl_bf16_round(y);
            }
            float *c = C + (size_t)i * ldc + j;
            *c = accumulate ? (float)((double)*c + s) : (float)s;
        }
}

/* ---------------------------------------------------------------- linear layers */

int icl_linear_forward_bf16(float *out, const float *inp, const float *w, const float *b, int N, int IC, int OC,
                            icl_err *err) {
    if (b)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OC, b, sizeof(float) * (size_t)OC);
    /* out (N,OC) (+)= inp (N,IC) w^T: w (OC,IC) is B stored transposed */
    return icl_bf16_gemm(out, OC, b != NULL, inp, IC, 0, w, IC, 1, N, OC, IC, err);
}

int icl_linear_backward_bf16(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                             int N, int IC, int OC, icl_err *err) {
    /* dinp (N,IC) = dout (N,OC) w (OC,IC) */
    if (dinp && icl_bf16_gemm(dinp, IC, 0, dout, OC, 0, w, IC, 0, N, IC, OC, err)) return -1;
    /* dw (OC,IC) += dout^T (OC,N) inp (N,IC): dout is A stored transposed */
    if (dw && icl_bf16_gemm(dw, IC, 1, dout, OC, 1, inp, IC, 0, OC, IC, N, err)) return -1;
    if (db) { /* column sums in fp32, each column's additions in row order: thread-count independent */
#pragma omp parallel for schedule(static) if ((size_t)N * OC > 32768)
        for (int o0 = 0; o0 < OC; o0 += 16) {
            int o1 = o0 + 16 < OC ? o0 + 16 : OC;
            float s[16] = {0};
            for (int n = 0; n < N; n++)
                for (int o = o0; o < o1; o++) s[o - o0] += dout[(size_t)n * OC + o];
            for (int o = o0; o < o1; o++) db[o] += s[o - o0];
        }
    }
    return 0;
}
