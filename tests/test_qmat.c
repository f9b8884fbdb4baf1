/* icl_qmat (dot and matrix products on stored ggml types) and the Q4_0/K-quant quantizers.
 *
 * Bounds, with u = 2^-24 (fp32 unit roundoff) and gamma(k) = k u / (1 - k u):
 *  - unpack: every path is bit-exact with icl_quant_dequantize_row (memcmp).
 *  - dot of n elements: each path computes the weights exactly and sums the products in fp32 lanes
 *    of at most ceil(n/16) + 16 rounding steps, so |dot - exact| <= gamma(ceil(n/16) + 16) *
 *    sum_i |w_i x_i|, exact = the double dot of the dequantized row. Two paths differ by at most
 *    twice that.
 *  - qmatmul vs qmatmul_ref: BLAS may sum in any order: per output |y - ref| <= gamma(cols + 2) *
 *    sum_i |w_i x_i| (plus the ref's own rounding to float, half an ulp of |ref|).
 *  - quantizers: the bounds stated in icl_quant.h, with a float-rounding slack of 2^-20 times the
 *    magnitudes involved. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_qmat.h"
#include "iclab/icl_quant.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"

static icl_rng rng;

static const int FAST_TYPES[] = {ICL_GGML_F32,  ICL_GGML_F16,  ICL_GGML_BF16, ICL_GGML_Q8_0,
                                 ICL_GGML_Q4_0, ICL_GGML_Q4_K, ICL_GGML_Q5_K, ICL_GGML_Q6_K};
static const int FALLBACK_TYPES[] = {ICL_GGML_Q4_1, ICL_GGML_Q5_0, ICL_GGML_Q5_1, ICL_GGML_Q2_K, ICL_GGML_Q3_K,
                                     ICL_GGML_I8,   ICL_GGML_I16,  ICL_GGML_I32,  ICL_GGML_F64};
#define NFAST (int)(sizeof FAST_TYPES / sizeof FAST_TYPES[0])
#define NFALL (int)(sizeof FALLBACK_TYPES / sizeof FALLBACK_TYPES[0])

static double gamma_k(double k) {
    double u = 0x1p-24;
    return k * u / (1.0 - k * u);
}

/* A value of random sign and magnitude spread over 10^lo .. 10^hi. */
static float mixed(double lo, double hi) {
    double m = pow(10.0, lo + (hi - lo) * icl_rng_uniform(&rng));
    return (float)(icl_rng_uniform(&rng) < 0.5 ? -m : m);
}

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* A row of n elements of `type` filled with random bytes (every code and packed scale pattern),
 * except that float fields get finite values of mixed magnitude: element values for F16/BF16/F32/
 * F64, the half scales of the block types. */
static uint8_t *random_row(int type, int64_t n) {
    uint64_t bytes;
    icl_quant_row_bytes(type, n, &bytes, NULL);
    uint8_t *r = malloc(bytes + 1);
    for (uint64_t i = 0; i < bytes; i++) r[i] = (uint8_t)icl_rng_u64(&rng);
    size_t bsz = icl_quant_type_size(type);
    int64_t nb = n / icl_quant_block_size(type);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *p = r + (size_t)b * bsz;
        switch (type) {
        case ICL_GGML_F32: { float v = mixed(-3, 2); memcpy(p, &v, 4); break; }
        case ICL_GGML_F64: { double v = mixed(-3, 2); memcpy(p, &v, 8); break; }
        case ICL_GGML_F16: put16(p, icl_quant_fp32_to_fp16(mixed(-3, 2))); break;
        case ICL_GGML_BF16: put16(p, icl_quant_fp32_to_bf16(mixed(-3, 2))); break;
        case ICL_GGML_Q8_0: case ICL_GGML_Q4_0: case ICL_GGML_Q5_0: put16(p, icl_quant_fp32_to_fp16(mixed(-4, 0))); break;
        case ICL_GGML_Q4_1: case ICL_GGML_Q5_1: case ICL_GGML_Q4_K: case ICL_GGML_Q5_K:
            put16(p, icl_quant_fp32_to_fp16(mixed(-4, 0)));
            put16(p + 2, icl_quant_fp32_to_fp16(mixed(-4, 0)));
            break;
        case ICL_GGML_Q2_K:
            put16(p + 80, icl_quant_fp32_to_fp16(mixed(-4, 0)));
            put16(p + 82, icl_quant_fp32_to_fp16(mixed(-4, 0)));
            break;
        case ICL_GGML_Q3_K: put16(p + 108, icl_quant_fp32_to_fp16(mixed(-4, 0))); break;
        case ICL_GGML_Q6_K: put16(p + 208, icl_quant_fp32_to_fp16(mixed(-4, 0))); break;
        default: break;
        }
    }
    return r;
}

/* Floats of mixed magnitude: each 32-element stretch has its own scale (10^-3 .. 10^2), with
 * occasional all-positive, all-negative, constant, zero and single-spike stretches. */
static void mixed_floats(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += 32) {
        int64_t len = n - i < 32 ? n - i : 32;
        double scale = pow(10.0, -3.0 + 5.0 * icl_rng_uniform(&rng));
        int kind = (int)icl_rng_below(&rng, 8);
        for (int64_t j = 0; j < len; j++) {
            double v = scale * icl_rng_normal(&rng);
            if (kind == 1) v = fabs(v);
            if (kind == 2) v = -fabs(v);
            if (kind == 3) v = scale;
            if (kind == 4) v = 0.0;
            if (kind == 5) v = j == 7 ? scale * 10 : scale * 0.01 * icl_rng_normal(&rng);
            x[i + j] = (float)v;
        }
    }
}

static int64_t block_of(int type) { return icl_quant_block_size(type); }

/* ---- unpack and dot, every type on every path */

static const icl_simd PATHS[] = {ICL_SIMD_PORTABLE, ICL_SIMD_AVX2, ICL_SIMD_AVX512};

/* Checks one stored row (at byte offset 1, so nothing is aligned) against the dequantizer. */
static void check_row(int type, const uint8_t *row, int64_t n, const char *what) {
    float *ref = malloc(sizeof(float) * (size_t)n + 4), *un = malloc(sizeof(float) * (size_t)n + 4);
    float *xb = malloc(sizeof(float) * (size_t)(n + 1)), *x = xb + 1; /* 4- but not 64-byte aligned */
    CHECK(icl_quant_dequantize_row(type, row, ref, n, NULL) == 0);
    for (int64_t i = 0; i < n; i++) x[i] = mixed(-2, 2);
    double exact = 0, mag = 0;
    for (int64_t i = 0; i < n; i++) {
        exact += (double)ref[i] * x[i];
        mag += fabs((double)ref[i] * x[i]);
    }
    double bound = gamma_k((double)((n + 15) / 16 + 16)) * mag;
    float got[3];
    int have[3] = {0, 0, 0};
    for (int p = 0; p < 3; p++) {
        if (icl_qdot_with(PATHS[p], type, row, x, n, &got[p])) {
            CHECK_MSG((int)PATHS[p] > (int)icl_simd_best(), "%s path refused %s", icl_simd_name(PATHS[p]),
                      icl_quant_type_name(type));
            continue;
        }
        have[p] = 1;
        CHECK_MSG(fabs(got[p] - exact) <= bound, "%s dot %s n=%lld %s: %.9g vs exact %.9g (bound %g)",
                  icl_simd_name(PATHS[p]), icl_quant_type_name(type), (long long)n, what, got[p], exact, bound);
        memset(un, 0xff, sizeof(float) * (size_t)n);
        CHECK(icl_qunpack_with(PATHS[p], type, row, un, n) == 0);
        CHECK_MSG(memcmp(un, ref, sizeof(float) * (size_t)n) == 0, "%s unpack %s n=%lld %s not bit-exact",
                  icl_simd_name(PATHS[p]), icl_quant_type_name(type), (long long)n, what);
    }
    for (int p = 0; p < 3; p++)
        for (int q = p + 1; q < 3; q++)
            if (have[p] && have[q])
                CHECK_MSG(fabs(got[p] - got[q]) <= 2 * bound, "%s vs %s dot %s n=%lld", icl_simd_name(PATHS[p]),
                          icl_simd_name(PATHS[q]), icl_quant_type_name(type), (long long)n);
    float best = icl_qdot(type, row, x, n);
    CHECK(have[icl_simd_best()] && memcmp(&best, &got[icl_simd_best()], sizeof best) == 0);
    free(ref);
    free(un);
    free(xb);
}

static void test_dots(int type) {
    static const int64_t plain_n[] = {1, 7, 16, 33, 64, 100, 257, 1000, 4096, 5003};
    static const int64_t b32_n[] = {32, 96, 256, 1056, 4096};
    static const int64_t b256_n[] = {256, 512, 1280, 4096, 4352};
    const int64_t *ns = block_of(type) == 1 ? plain_n : block_of(type) == 32 ? b32_n : b256_n;
    int nn = block_of(type) == 1 ? 10 : 5;
    for (int k = 0; k < nn; k++) {
        int64_t n = ns[k];
        uint8_t *r = random_row(type, n);
        uint64_t bytes;
        icl_quant_row_bytes(type, n, &bytes, NULL);
        memmove(r + 1, r, bytes); /* misalign by one byte */
        check_row(type, r + 1, n, "random bytes");
        free(r);
        if (icl_quant_can_quantize(type)) { /* rows as a quantizer writes them */
            float *v = malloc(sizeof(float) * (size_t)n);
            uint8_t *q = malloc(bytes + 1);
            mixed_floats(v, n);
            CHECK(icl_quant_quantize_row(type, v, q + 1, n, NULL) == 0);
            check_row(type, q + 1, n, "quantized");
            free(v);
            free(q);
        }
    }
}

static void test_dot_refusals(void) {
    float x[64] = {0}, out;
    uint8_t row[68] = {0};
    CHECK(icl_qdot_with(ICL_SIMD_PORTABLE, ICL_GGML_IQ2_XXS, row, x, 256, &out) == -1);
    CHECK(icl_qdot_with(ICL_SIMD_PORTABLE, ICL_GGML_Q8_0, row, x, 33, &out) == -1);
    CHECK(icl_qdot_with(ICL_SIMD_PORTABLE, ICL_GGML_Q8_0, row, x, -32, &out) == -1);
    CHECK(icl_qdot_with((icl_simd)7, ICL_GGML_Q8_0, row, x, 32, &out) == -1);
    CHECK(icl_qunpack_with(ICL_SIMD_PORTABLE, ICL_GGML_Q4_K, row, x, 32) == -1);
    CHECK(icl_qunpack_with(ICL_SIMD_PORTABLE, ICL_GGML_IQ2_XXS, row, x, 256) == -1);
    CHECK(icl_qmat_supported(ICL_GGML_Q6_K) && icl_qmat_supported(ICL_GGML_I32) && !icl_qmat_supported(ICL_GGML_IQ2_XXS) &&
          !icl_qmat_supported(ICL_GGML_Q8_K) && !icl_qmat_supported(-1) && !icl_qmat_supported(1000));
    if (icl_simd_best() != ICL_SIMD_AVX512) CHECK(icl_qdot_with(ICL_SIMD_AVX512, ICL_GGML_F32, row, x, 16, &out) == -1);
    CHECK(strcmp(icl_simd_name(ICL_SIMD_AVX2), "avx2") == 0 && strcmp(icl_simd_name(ICL_SIMD_PORTABLE), "portable") == 0 &&
          strcmp(icl_simd_name(ICL_SIMD_AVX512), "avx512") == 0);
}

/* ---- matrix products */

#define SENTINEL 12345.5f

/* y = x W^T by icl_qmatmul (with `threads` OpenMP threads) and icl_qmatmul_ref, ldy = rows + 3,
 * against the bound above; the 3 extra columns of every y row must keep their sentinel. Also runs
 * icl_qmatmul twice and requires identical bits (deterministic for a thread count). */
static void check_matmul(int type, int64_t rows, int64_t cols, int64_t T, int threads, int quantized) {
    uint64_t rb;
    CHECK(icl_quant_row_bytes(type, cols, &rb, NULL) == 0);
    /* odd row counts put the weights at byte offset 1 (F32 then takes the tile path, not BLAS) */
    uint8_t *wbuf = malloc(rb * (size_t)rows + 1), *w = wbuf + (rows & 1);
    if (quantized) {
        float *v = malloc(sizeof(float) * (size_t)cols);
        for (int64_t r = 0; r < rows; r++) {
            mixed_floats(v, cols);
            icl_quant_quantize_row(type, v, w + r * rb, cols, NULL);
        }
        free(v);
    } else {
        for (int64_t r = 0; r < rows; r++) {
            uint8_t *row = random_row(type, cols);
            memcpy(w + r * rb, row, rb);
            free(row);
        }
    }
    int64_t ldy = rows + 3;
    float *x = malloc(sizeof(float) * (size_t)(T * cols)), *y = malloc(sizeof(float) * (size_t)(T * ldy));
    float *y2 = malloc(sizeof(float) * (size_t)(T * ldy)), *ref = malloc(sizeof(float) * (size_t)(T * ldy));
    float *deq = malloc(sizeof(float) * (size_t)(rows * cols));
    for (int64_t i = 0; i < T * cols; i++) x[i] = mixed(-2, 1);
    for (int64_t i = 0; i < T * ldy; i++) y[i] = y2[i] = ref[i] = SENTINEL;
    for (int64_t r = 0; r < rows; r++) icl_quant_dequantize_row(type, w + r * rb, deq + r * cols, cols, NULL);
    omp_set_num_threads(threads);
    icl_err err = {{0}};
    CHECK_MSG(icl_qmatmul(type, w, rows, cols, x, T, y, ldy, &err) == 0, "%s", err.msg);
    CHECK_MSG(icl_qmatmul(type, w, rows, cols, x, T, y2, ldy, &err) == 0, "%s", err.msg);
    CHECK_MSG(icl_qmatmul_ref(type, w, rows, cols, x, T, ref, ldy, &err) == 0, "%s", err.msg);
    CHECK_MSG(memcmp(y, y2, sizeof(float) * (size_t)(T * ldy)) == 0, "qmatmul %s not deterministic",
              icl_quant_type_name(type));
    int bad = 0, kept = 1;
    double g = gamma_k((double)cols + 2);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t r = 0; r < rows; r++) {
            double mag = 0;
            for (int64_t i = 0; i < cols; i++) mag += fabs((double)deq[r * cols + i] * x[t * cols + i]);
            double a = y[t * ldy + r], b = ref[t * ldy + r];
            if (!(fabs(a - b) <= g * mag + 0x1p-24 * fabs(b))) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s t=%lld r=%lld: %.9g vs ref %.9g (bound %g)\n", icl_quant_type_name(type),
                            (long long)t, (long long)r, a, b, g * mag);
            }
        }
        for (int64_t r = rows; r < ldy; r++)
            kept &= y[t * ldy + r] == SENTINEL && ref[t * ldy + r] == SENTINEL;
    }
    /* every other path (the BLAS strategies on AVX2 and portable) within the same bound */
    for (int p = ICL_SIMD_PORTABLE; p <= ICL_SIMD_AVX512; p++) {
        if (p > (int)icl_simd_best()) break;
        for (int64_t i = 0; i < T * ldy; i++) y2[i] = SENTINEL;
        CHECK_MSG(icl_qmatmul_with((icl_simd)p, type, w, rows, cols, x, T, y2, ldy, &err) == 0, "%s", err.msg);
        for (int64_t t = 0; t < T; t++) {
            for (int64_t r = 0; r < rows; r++) {
                double mag = 0;
                for (int64_t i = 0; i < cols; i++) mag += fabs((double)deq[r * cols + i] * x[t * cols + i]);
                double a = y2[t * ldy + r], b = ref[t * ldy + r];
                if (!(fabs(a - b) <= g * mag + 0x1p-24 * fabs(b)) && bad++ < 3)
                    fprintf(stderr, "  %s path %d t=%lld r=%lld: %.9g vs ref %.9g\n", icl_quant_type_name(type), p,
                            (long long)t, (long long)r, a, b);
            }
            for (int64_t r = rows; r < ldy; r++) kept &= y2[t * ldy + r] == SENTINEL;
        }
    }
    CHECK_MSG(bad == 0, "qmatmul %s rows=%lld cols=%lld T=%lld threads=%d: %d outputs outside the bound",
              icl_quant_type_name(type), (long long)rows, (long long)cols, (long long)T, threads, bad);
    CHECK_MSG(kept, "qmatmul %s wrote past rows", icl_quant_type_name(type));
    free(wbuf); free(x); free(y); free(y2); free(ref); free(deq);
}

static void test_matmuls(void) {
    static const int64_t Ts[] = {1, 2, 5, 128};
    for (int k = 0; k < NFAST; k++) {
        int type = FAST_TYPES[k];
        int64_t cols = block_of(type) == 256 ? 512 : 96;
        for (int t = 0; t < 4; t++) {
            check_matmul(type, 37, cols, Ts[t], 2, 0);
            check_matmul(type, 37, cols, Ts[t], 1, icl_quant_can_quantize(type));
        }
        /* large enough that the work is split over threads, with tiles and remainders */
        check_matmul(type, 301, 1024, 2, 3, 0);
        check_matmul(type, 301, 1024, 9, 3, icl_quant_can_quantize(type));
        check_matmul(type, 150, 768, 40, 2, 0);
    }
    /* F32 on training batches (>= 256 tokens: BLAS split by tokens), with a remainder share */
    check_matmul(ICL_GGML_F32, 70, 96, 300, 2, 0);
    check_matmul(ICL_GGML_F32, 70, 96, 300, 3, 0);
    for (int k = 0; k < NFALL; k++) {
        int type = FALLBACK_TYPES[k];
        check_matmul(type, 37, 512, 1, 2, 0);
        check_matmul(type, 37, 512, 5, 2, 0);
        check_matmul(type, 101, 1024, 33, 2, 0);
    }
    omp_set_num_threads(2);
}

static void test_matmul_errors(void) {
    float x[256] = {0}, y[64];
    uint8_t w[1024] = {0};
    for (int i = 0; i < 64; i++) y[i] = SENTINEL;
    icl_err err = {{0}};
    for (int ref = 0; ref < 2; ref++) {
        int (*mm)(int, const void *, int64_t, int64_t, const float *, int64_t, float *, int64_t, icl_err *) =
            ref ? icl_qmatmul_ref : icl_qmatmul;
        CHECK(mm(ICL_GGML_IQ2_XXS, w, 1, 256, x, 1, y, 1, &err) == -1 && strstr(err.msg, "iq2_xxs"));
        CHECK(mm(ICL_GGML_Q8_K, w, 1, 256, x, 1, y, 1, &err) == -1 && strstr(err.msg, "q8_K"));
        CHECK(mm(ICL_GGML_Q8_0, w, 2, 33, x, 1, y, 2, &err) == -1 && strstr(err.msg, "q8_0"));
        CHECK(mm(ICL_GGML_Q4_K, w, 2, 128, x, 1, y, 2, &err) == -1 && strstr(err.msg, "q4_K"));
        CHECK(mm(ICL_GGML_F16, w, -1, 16, x, 1, y, 1, &err) == -1 && strstr(err.msg, "f16"));
        CHECK(mm(ICL_GGML_F16, w, 1, 16, x, -2, y, 1, &err) == -1 && strstr(err.msg, "negative"));
        CHECK(mm(ICL_GGML_Q6_K, w, 3, 256, x, 1, y, 2, &err) == -1 && strstr(err.msg, "ldy") && strstr(err.msg, "q6_K"));
        CHECK(mm(ICL_GGML_F32, NULL, 3, 16, x, 1, y, 3, &err) == -1 && strstr(err.msg, "NULL"));
        CHECK(mm(ICL_GGML_F32, w, INT64_MAX / 2, 16, x, 3, y, INT64_MAX / 2, &err) == -1 && strstr(err.msg, "overflow"));
        /* empty products succeed and write nothing (T = 0) or zeros (cols = 0) */
        CHECK(mm(ICL_GGML_Q8_0, w, 3, 32, x, 0, y, 3, &err) == 0 && y[0] == SENTINEL);
        CHECK(mm(ICL_GGML_Q8_0, w, 0, 32, x, 2, y, 0, &err) == 0 && y[0] == SENTINEL);
        CHECK(mm(ICL_GGML_Q8_0, w, 3, 0, x, 2, y, 4, &err) == 0 && y[0] == 0 && y[2] == 0 && y[3] == SENTINEL &&
              y[4] == 0 && y[6] == 0 && y[7] == SENTINEL);
        for (int i = 0; i < 64; i++) y[i] = SENTINEL;
    }
}

/* ---- quantizers */

static float half_at(const uint8_t *p) { return icl_quant_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8))); }

/* Sub-block j's 6-bit scale and offset multiples in a Q4_K/Q5_K block's 12 scale bytes. */
static void k_scale(const uint8_t *S, int j, int *sc, int *m) {
    if (j < 4) {
        *sc = S[j] & 63;
        *m = S[j + 4] & 63;
    } else {
        *sc = (S[j + 4] & 0xF) | ((S[j - 4] >> 6) << 4);
        *m = (S[j + 4] >> 4) | ((S[j] >> 6) << 4);
    }
}

#define SLACK 0x1p-20

/* Quantizes x (n elements), dequantizes, and checks every element against the bound of
 * icl_quant.h, plus that the steps are not larger than the rules make them. Returns the RMS error
 * relative to the RMS of x. */
static double check_quantizer(int type, const float *x, int64_t n) {
    uint64_t rb;
    icl_quant_row_bytes(type, n, &rb, NULL);
    uint8_t *q = malloc(rb);
    float *d = malloc(sizeof(float) * (size_t)n);
    CHECK(icl_quant_quantize_row(type, x, q, n, NULL) == 0);
    CHECK(icl_quant_dequantize_row(type, q, d, n, NULL) == 0);
    int bad = 0, loose = 0;
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; i++) {
        se += ((double)x[i] - d[i]) * ((double)x[i] - d[i]);
        sx += (double)x[i] * x[i];
    }
    int64_t bs = icl_quant_block_size(type);
    for (int64_t b = 0; b < n / bs; b++) {
        const uint8_t *p = q + b * icl_quant_type_size(type);
        const float *xb = x + b * bs, *db = d + b * bs;
        if (type == ICL_GGML_Q4_0) {
            double step = fabs(half_at(p)), mx = 0;
            for (int j = 0; j < 32; j++) {
                int code = j < 16 ? p[2 + j] & 0xF : p[2 + j - 16] >> 4;
                double lim = (code == 15 ? 1.0 : 0.5) * step + SLACK * (fabs(xb[j]) + 8 * step);
                bad += !(fabs((double)xb[j] - db[j]) <= lim);
                mx = fmax(mx, fabs(xb[j]));
            }
            loose += !(step <= mx / 8 * (1 + 0x1p-10) + 0x1p-24);
        } else if (type == ICL_GGML_Q6_K) {
            double dd = half_at(p + 208), maxs = 0;
            for (int s = 0; s < 16; s++) {
                double mx = 0;
                for (int l = 0; l < 16; l++) mx = fmax(mx, fabs(xb[16 * s + l]));
                maxs = fmax(maxs, mx / 32);
            }
            loose += !(dd <= maxs / 127 * (1 + 0x1p-10) + 0x1p-24);
            for (int s = 0; s < 16; s++) {
                double step = fabs((float)dd * (float)(int8_t)p[192 + s]), mx = 0;
                for (int l = 0; l < 16; l++) {
                    int e = 16 * s + l, nn = e / 128, k = (e % 128) / 32, li = e % 32;
                    int lo = (p[64 * nn + 32 * (k & 1) + li] >> (4 * (k >> 1))) & 0xF;
                    int code = lo | (((p[128 + 32 * nn + li] >> (2 * k)) & 3) << 4);
                    double lim = (code == 63 ? 1.0 : 0.5) * step + SLACK * (fabs(xb[e]) + 32 * step);
                    bad += !(fabs((double)xb[e] - db[e]) <= lim);
                    mx = fmax(mx, fabs(xb[e]));
                }
                loose += !(step <= mx / 32 + dd * (1 + 0x1p-20));
            }
        } else { /* Q4_K, Q5_K */
            int levels = type == ICL_GGML_Q4_K ? 15 : 31;
            double dd = half_at(p), dmin = half_at(p + 2), maxneed = 0, maxmin = 0;
            for (int j = 0; j < 8; j++) {
                int sc, m;
                k_scale(p + 4, j, &sc, &m);
                double step = (float)dd * (float)sc, off = (float)dmin * (float)m;
                double lo = 0, hi = xb[32 * j];
                for (int l = 0; l < 32; l++) {
                    double v = xb[32 * j + l];
                    lo = fmin(lo, v);
                    hi = fmax(hi, v);
                    double lim = 0.5 * step + SLACK * (fabs(v) + off + (levels + 1) * step);
                    bad += !(fabs(v - db[32 * j + l]) <= lim);
                }
                loose += !(off <= -lo + dmin * (1 + 0x1p-20));
                loose += !(step <= (hi - lo + dmin) / levels * (1 + 0x1p-20) + dd);
                maxneed = fmax(maxneed, (hi - lo + dmin) / levels);
                maxmin = fmax(maxmin, -lo);
            }
            loose += !(dd <= maxneed / 63 * (1 + 0x1p-9) + 0x1p-24);
            loose += !(dmin <= maxmin / 63 * (1 + 0x1p-9) + 0x1p-24);
        }
    }
    CHECK_MSG(bad == 0, "%s quantizer: %d elements outside the error bound", icl_quant_type_name(type), bad);
    CHECK_MSG(loose == 0, "%s quantizer: %d scales larger than the rule allows", icl_quant_type_name(type), loose);
    free(q);
    free(d);
    return sx > 0 ? sqrt(se / sx) : sqrt(se);
}

static void test_quantizers(void) {
    static const int QT[] = {ICL_GGML_Q4_0, ICL_GGML_Q4_K, ICL_GGML_Q5_K, ICL_GGML_Q6_K};
    /* RMS error of a uniform quantizer is step / sqrt(12); for N(0,1) data the step is about
     * range / levels with range ~ 4 (32 values) or ~3.5 (16 values), so the relative RMS errors
     * are about 0.077 (Q4_0: max / 8 with max ~2.1 gives 0.076), 0.037 and 0.016. The limits
     * leave 30% for blocks with a wider range and the rounded-up 6-bit scales. */
    static const double rms_lim[] = {0.10, 0.10, 0.05, 0.021};
    const int64_t n = 256 * 64;
    float *x = malloc(sizeof(float) * n);
    for (int k = 0; k < 4; k++) {
        int type = QT[k];
        CHECK(icl_quant_can_quantize(type));
        mixed_floats(x, n);
        check_quantizer(type, x, n);
        for (int64_t i = 0; i < n; i++) x[i] = (float)icl_rng_normal(&rng);
        double rms = check_quantizer(type, x, n);
        CHECK_MSG(rms <= rms_lim[k], "%s quantizer: relative RMS error %.4f on N(0,1) data (limit %.3f)",
                  icl_quant_type_name(type), rms, rms_lim[k]);
        for (int64_t i = 0; i < n; i++) x[i] = (float)(1e-6 * icl_rng_normal(&rng)); /* half subnormal scales */
        check_quantizer(type, x, n);
        for (int64_t i = 0; i < n; i++) x[i] = 0.0f;
        uint64_t rb;
        icl_quant_row_bytes(type, 256, &rb, NULL);
        uint8_t *q = malloc(rb);
        float d[256];
        CHECK(icl_quant_quantize_row(type, x, q, 256, NULL) == 0 && icl_quant_dequantize_row(type, q, d, 256, NULL) == 0);
        int zero = 1;
        for (int i = 0; i < 256; i++) zero &= d[i] == 0.0f;
        CHECK_MSG(zero, "%s: zeros do not round-trip", icl_quant_type_name(type));
        free(q);
        icl_err err = {{0}};
        CHECK(icl_quant_quantize_row(type, x, d, 16, &err) == -1 && strstr(err.msg, icl_quant_type_name(type)));
    }
    CHECK(!icl_quant_can_quantize(ICL_GGML_Q4_1) && !icl_quant_can_quantize(ICL_GGML_Q2_K));
    free(x);
}

int main(void) {
    icl_rng_seed(&rng, 20240611);
    printf("best path: %s\n", icl_simd_name(icl_simd_best()));
    /* The paths this CPU lacks are not tested (a SKIP allowed under CI); a path the CPU has by
     * /proc/cpuinfo but the detection does not use is a SKIP that fails under CI. */
    FILE *ci = fopen("/proc/cpuinfo", "r");
    char line[8192];
    int cpu_best = ICL_SIMD_PORTABLE;
    while (ci && fgets(line, sizeof line, ci))
        if (!strncmp(line, "flags", 5)) {
            int avx2 = strstr(line, " avx2") && strstr(line, " fma") && strstr(line, " f16c");
            cpu_best = avx2 && strstr(line, " avx512f") && strstr(line, " avx512bw") && strstr(line, " avx512vl")
                           ? ICL_SIMD_AVX512 : avx2 ? ICL_SIMD_AVX2 : ICL_SIMD_PORTABLE;
            break;
        }
    if (ci) fclose(ci);
    for (int p = ICL_SIMD_PORTABLE; p <= ICL_SIMD_AVX512; p++)
        if (p > (int)icl_simd_best())
            printf(p <= cpu_best ? "SKIP the %s path: not detected although /proc/cpuinfo lists its flags\n"
                                 : "SKIP [ci-ok] the %s path: this CPU lacks it\n", icl_simd_name((icl_simd)p));
    for (int k = 0; k < NFAST; k++) test_dots(FAST_TYPES[k]);
    for (int k = 0; k < NFALL; k++) test_dots(FALLBACK_TYPES[k]);
    test_dot_refusals();
    test_matmuls();
    test_matmul_errors();
    test_quantizers();
    return icl_test_finish();
}
