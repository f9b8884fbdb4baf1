/* ggml type table, half/bfloat16 conversions, and dequantization of ggml's quantized blocks to
 * float32, and quantization of float32 rows to the plain types, Q8_0, Q4_0 and the K-quants Q4_K,
 * Q5_K, Q6_K (simple rules with a stated error bound, not ggml's searched ones). Layouts per ggml-common.h; the
 * float arithmetic in each dequantizer keeps ggml's operation order, one product or sum per
 * statement, so results are bit-exact even where a compiler would otherwise fuse a multiply-add. */
#include "iclab/icl_quant.h"
#include <math.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "iclab reads little-endian ggml data with memcpy and needs a little-endian host"
#endif

typedef struct {
    const char *name;
    int64_t block;
    size_t size;
} type_info;

#define QK_K 256

/* Indexed by ggml type id; a zero block size marks an id with no (or a retired) layout. */
static const type_info TYPES[ICL_GGML_TYPE_COUNT] = {
    [ICL_GGML_F32] = {"f32", 1, 4},
    [ICL_GGML_F16] = {"f16", 1, 2},
    [ICL_GGML_Q4_0] = {"q4_0", 32, 2 + 16},
    [ICL_GGML_Q4_1] = {"q4_1", 32, 2 + 2 + 16},
    [ICL_GGML_Q5_0] = {"q5_0", 32, 2 + 4 + 16},
    [ICL_GGML_Q5_1] = {"q5_1", 32, 2 + 2 + 4 + 16},
    [ICL_GGML_Q8_0] = {"q8_0", 32, 2 + 32},
    [ICL_GGML_Q8_1] = {"q8_1", 32, 2 + 2 + 32},
    [ICL_GGML_Q2_K] = {"q2_K", QK_K, QK_K / 16 + QK_K / 4 + 2 + 2},
    [ICL_GGML_Q3_K] = {"q3_K", QK_K, QK_K / 8 + QK_K / 4 + 12 + 2},
    [ICL_GGML_Q4_K] = {"q4_K", QK_K, 2 + 2 + 12 + QK_K / 2},
    [ICL_GGML_Q5_K] = {"q5_K", QK_K, 2 + 2 + 12 + QK_K / 8 + QK_K / 2},
    [ICL_GGML_Q6_K] = {"q6_K", QK_K, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2},
    [ICL_GGML_Q8_K] = {"q8_K", QK_K, 4 + QK_K + QK_K / 16 * 2},
    [ICL_GGML_IQ2_XXS] = {"iq2_xxs", QK_K, 2 + QK_K / 8 * 2},
    [ICL_GGML_IQ2_XS] = {"iq2_xs", QK_K, 2 + QK_K / 8 * 2 + QK_K / 32},
    [ICL_GGML_IQ3_XXS] = {"iq3_xxs", QK_K, 2 + 3 * (QK_K / 8)},
    [ICL_GGML_IQ1_S] = {"iq1_s", QK_K, 2 + QK_K / 8 + QK_K / 16},
    [ICL_GGML_IQ4_NL] = {"iq4_nl", 32, 2 + 16},
    [ICL_GGML_IQ3_S] = {"iq3_s", QK_K, 2 + 13 * (QK_K / 32) + QK_K / 64},
    [ICL_GGML_IQ2_S] = {"iq2_s", QK_K, 2 + QK_K / 4 + QK_K / 16},
    [ICL_GGML_IQ4_XS] = {"iq4_xs", QK_K, 2 + 2 + QK_K / 64 + QK_K / 2},
    [ICL_GGML_I8] = {"i8", 1, 1},
    [ICL_GGML_I16] = {"i16", 1, 2},
    [ICL_GGML_I32] = {"i32", 1, 4},
    [ICL_GGML_I64] = {"i64", 1, 8},
    [ICL_GGML_F64] = {"f64", 1, 8},
    [ICL_GGML_IQ1_M] = {"iq1_m", QK_K, QK_K / 8 + QK_K / 16 + QK_K / 32},
    [ICL_GGML_BF16] = {"bf16", 1, 2},
    [ICL_GGML_TQ1_0] = {"tq1_0", QK_K, (QK_K - 4 * QK_K / 64) / 5 + QK_K / 64 + 2},
    [ICL_GGML_TQ2_0] = {"tq2_0", QK_K, QK_K / 4 + 2},
    [ICL_GGML_MXFP4] = {"mxfp4", 32, 1 + 16},
};

int icl_quant_type_known(int type) {
    return type >= 0 && type < ICL_GGML_TYPE_COUNT && TYPES[type].block > 0;
}

const char *icl_quant_type_name(int type) {
    return icl_quant_type_known(type) ? TYPES[type].name : "unknown";
}

int64_t icl_quant_block_size(int type) {
    return icl_quant_type_known(type) ? TYPES[type].block : 0;
}

size_t icl_quant_type_size(int type) {
    return icl_quant_type_known(type) ? TYPES[type].size : 0;
}

int icl_quant_row_bytes(int type, int64_t n, uint64_t *bytes, icl_err *err) {
    if (!icl_quant_type_known(type)) return icl_errf(err, "unknown ggml type %d", type);
    if (n < 0) return icl_errf(err, "negative row length %lld", (long long)n);
    int64_t bs = TYPES[type].block;
    if (n % bs != 0)
        return icl_errf(err, "row length %lld is not a multiple of the %s block size %lld", (long long)n,
                        TYPES[type].name, (long long)bs);
    uint64_t b;
    if (__builtin_mul_overflow((uint64_t)(n / bs), (uint64_t)TYPES[type].size, &b))
        return icl_errf(err, "row of %lld %s elements overflows a 64-bit size", (long long)n, TYPES[type].name);
    *bytes = b;
    return 0;
}

/* ---- half precision ---- */

uint16_t icl_quant_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t a = x & 0x7fffffffu;
    if (a >= 0x7f800000u) {                                              /* inf or NaN */
        if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* quiet NaN */
        return (uint16_t)(sign | 0x7c00);
    }
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {                                  /* below 2^-14: half subnormal or zero */
        if (a < 0x33000000u) return sign;                   /* < 2^-25 rounds to zero */
        uint32_t e = a >> 23;                               /* 102..112 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e;                           /* value = m * 2^-shift half-subnormal units */
        uint32_t k = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (k & 1))) k++;
        return (uint16_t)(sign | k);
    }
    uint32_t h = (a - 0x38000000u) >> 13; /* rebias exponent 127 -> 15, drop 13 mantissa bits */
    uint32_t rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* a carry into the exponent is right */
    return (uint16_t)(sign | h);
}

float icl_quant_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ffu, x;
    if (e == 0) {
        if (m == 0) {
            x = sign;
        } else { /* subnormal: normalise */
            uint32_t ee = 113;
            while (!(m & 0x400u)) {
                m <<= 1;
                ee--;
            }
            x = sign | (ee << 23) | ((m & 0x3ffu) << 13);
        }
    } else if (e == 31) {
        x = sign | 0x7f800000u | (m << 13);
    } else {
        x = sign | ((e + 112) << 23) | (m << 13);
    }
    float f;
    memcpy(&f, &x, 4);
    return f;
}

uint16_t icl_quant_fp32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1);                                          /* round to nearest even */
    return (uint16_t)(x >> 16);
}

float icl_quant_bf16_to_fp32(uint16_t h) {
    uint32_t x = (uint32_t)h << 16;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- little-endian field reads (blocks in a mapped file need not be aligned) ---- */

static float rd_half(const uint8_t *p) {
    return icl_quant_fp16_to_fp32((uint16_t)(p[0] | (p[1] << 8)));
}

/* 6-bit scale and min j (0..7) of a Q4_K/Q5_K block's 12 packed scale bytes. */
static void scale_min_k4(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* ---- dequantizers: each converts nb blocks ---- */

static void deq_q4_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 18, y += 32) {
        float d = rd_half(b);
        const uint8_t *qs = b + 2;
        for (int j = 0; j < 16; j++) {
            y[j] = (float)((qs[j] & 0xF) - 8) * d;
            y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
        }
    }
}

static void deq_q4_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 20, y += 32) {
        float d = rd_half(b), m = rd_half(b + 2);
        const uint8_t *qs = b + 4;
        for (int j = 0; j < 16; j++) {
            float t0 = (float)(qs[j] & 0xF) * d;
            float t1 = (float)(qs[j] >> 4) * d;
            y[j] = t0 + m;
            y[j + 16] = t1 + m;
        }
    }
}

static void deq_q5_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 22, y += 32) {
        float d = rd_half(b);
        uint32_t qh = (uint32_t)b[2] | ((uint32_t)b[3] << 8) | ((uint32_t)b[4] << 16) | ((uint32_t)b[5] << 24);
        const uint8_t *qs = b + 6;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            y[j] = (float)(((qs[j] & 0xF) | h0) - 16) * d;
            y[j + 16] = (float)(((qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

static void deq_q5_1(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 24, y += 32) {
        float d = rd_half(b), m = rd_half(b + 2);
        uint32_t qh = (uint32_t)b[4] | ((uint32_t)b[5] << 8) | ((uint32_t)b[6] << 16) | ((uint32_t)b[7] << 24);
        const uint8_t *qs = b + 8;
        for (int j = 0; j < 16; j++) {
            int h0 = (int)((qh >> j) & 1) << 4, h1 = (int)((qh >> (j + 16)) & 1) << 4;
            float t0 = (float)((qs[j] & 0xF) | h0) * d;
            float t1 = (float)((qs[j] >> 4) | h1) * d;
            y[j] = t0 + m;
            y[j + 16] = t1 + m;
        }
    }
}

static void deq_q8_0(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 34, y += 32) {
        float d = rd_half(b);
        const int8_t *qs = (const int8_t *)(b + 2);
        for (int j = 0; j < 32; j++) y[j] = (float)qs[j] * d;
    }
}

/* Q2_K: scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d, dmin. */
static void deq_q2_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 84) {
        const uint8_t *sc = b, *q = b + 16;
        float d = rd_half(b + 80), dmin = rd_half(b + 82);
        int is = 0;
        for (int n = 0; n < QK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; half++) {
                    int s = sc[is++];
                    float dl = d * (float)(s & 0xF), ml = dmin * (float)(s >> 4);
                    for (int l = 0; l < 16; l++) {
                        float t = dl * (float)((q[l + 16 * half] >> shift) & 3);
                        *y++ = t - ml;
                    }
                }
            }
        }
    }
}

/* Q3_K: hmask[32] (high bit), qs[64] (low 2 bits), scales[12] (16 6-bit scales), d. */
static void deq_q3_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 110) {
        const uint8_t *hm = b, *q = b + 32, *sp = b + 96;
        float d = rd_half(b + 108);
        int scales[16];
        for (int j = 0; j < 16; j++) {
            int lo = j < 8 ? (sp[j] & 0xF) : (sp[j - 8] >> 4);
            int hi = (sp[8 + j % 4] >> (2 * (j / 4))) & 3;
            scales[j] = (lo | (hi << 4)) - 32;
        }
        int is = 0, m = 1;
        for (int n = 0; n < QK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m <<= 1) {
                for (int half = 0; half < 2; half++) {
                    float dl = d * (float)scales[is++];
                    for (int l = 16 * half; l < 16 * half + 16; l++) {
                        int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *y++ = dl * (float)v;
                    }
                }
            }
        }
    }
}

/* Q4_K: d, dmin, scales[12] (8 6-bit scales + 8 6-bit mins), qs[128] (4-bit). */
static void deq_q4_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 144) {
        float d = rd_half(b), dmin = rd_half(b + 2);
        const uint8_t *sp = b + 4, *q = b + 16;
        for (int j = 0; j < 8; j += 2, q += 32) {
            int sc, m;
            scale_min_k4(j, sp, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(j + 1, sp, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float t = d1 * (float)(q[l] & 0xF);
                *y++ = t - m1;
            }
            for (int l = 0; l < 32; l++) {
                float t = d2 * (float)(q[l] >> 4);
                *y++ = t - m2;
            }
        }
    }
}

/* Q5_K: d, dmin, scales[12], qh[32] (5th bits), qs[128] (low 4 bits). */
static void deq_q5_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 176) {
        float d = rd_half(b), dmin = rd_half(b + 2);
        const uint8_t *sp = b + 4, *qh = b + 16, *ql = b + 48;
        int u1 = 1, u2 = 2;
        for (int j = 0; j < 8; j += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            int sc, m;
            scale_min_k4(j, sp, &sc, &m);
            float d1 = d * (float)sc, m1 = dmin * (float)m;
            scale_min_k4(j + 1, sp, &sc, &m);
            float d2 = d * (float)sc, m2 = dmin * (float)m;
            for (int l = 0; l < 32; l++) {
                float t = d1 * (float)((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0));
                *y++ = t - m1;
            }
            for (int l = 0; l < 32; l++) {
                float t = d2 * (float)((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0));
                *y++ = t - m2;
            }
        }
    }
}

/* Q6_K: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] (int8), d. */
static void deq_q6_k(const uint8_t *b, float *y, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, b += 210) {
        const uint8_t *ql = b, *qh = b + 128;
        const int8_t *sc = (const int8_t *)(b + 192);
        float d = rd_half(b + 208);
        for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; l++) {
                int is = l / 16;
                int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                float s1 = d * (float)sc[is], s2 = d * (float)sc[is + 2];
                float s3 = d * (float)sc[is + 4], s4 = d * (float)sc[is + 6];
                y[l] = s1 * (float)q1;
                y[l + 32] = s2 * (float)q2;
                y[l + 64] = s3 * (float)q3;
                y[l + 96] = s4 * (float)q4;
            }
        }
    }
}

int icl_quant_can_dequantize(int type) {
    switch (type) {
    case ICL_GGML_F32: case ICL_GGML_F16: case ICL_GGML_BF16: case ICL_GGML_F64:
    case ICL_GGML_I8: case ICL_GGML_I16: case ICL_GGML_I32:
    case ICL_GGML_Q4_0: case ICL_GGML_Q4_1: case ICL_GGML_Q5_0: case ICL_GGML_Q5_1: case ICL_GGML_Q8_0:
    case ICL_GGML_Q2_K: case ICL_GGML_Q3_K: case ICL_GGML_Q4_K: case ICL_GGML_Q5_K: case ICL_GGML_Q6_K:
        return 1;
    default:
        return 0;
    }
}

int icl_quant_dequantize_row(int type, const void *src, float *dst, int64_t n, icl_err *err) {
    if (!icl_quant_can_dequantize(type))
        return icl_errf(err, "cannot dequantize ggml type %s (%d)", icl_quant_type_name(type), type);
    uint64_t bytes;
    if (icl_quant_row_bytes(type, n, &bytes, err)) return -1;
    const uint8_t *s = src;
    int64_t nb = n / TYPES[type].block;
    switch (type) {
    case ICL_GGML_F32: memcpy(dst, s, (size_t)n * 4); break;
    case ICL_GGML_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = rd_half(s + 2 * i);
        break;
    case ICL_GGML_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = icl_quant_bf16_to_fp32((uint16_t)(s[2 * i] | (s[2 * i + 1] << 8)));
        break;
    case ICL_GGML_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        break;
    case ICL_GGML_I8:
        for (int64_t i = 0; i < n; i++) dst[i] = (float)(int8_t)s[i];
        break;
    case ICL_GGML_I16:
        for (int64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, s + 2 * i, 2);
            dst[i] = (float)v;
        }
        break;
    case ICL_GGML_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        break;
    case ICL_GGML_Q4_0: deq_q4_0(s, dst, nb); break;
    case ICL_GGML_Q4_1: deq_q4_1(s, dst, nb); break;
    case ICL_GGML_Q5_0: deq_q5_0(s, dst, nb); break;
    case ICL_GGML_Q5_1: deq_q5_1(s, dst, nb); break;
    case ICL_GGML_Q8_0: deq_q8_0(s, dst, nb); break;
    case ICL_GGML_Q2_K: deq_q2_k(s, dst, nb); break;
    case ICL_GGML_Q3_K: deq_q3_k(s, dst, nb); break;
    case ICL_GGML_Q4_K: deq_q4_k(s, dst, nb); break;
    case ICL_GGML_Q5_K: deq_q5_k(s, dst, nb); break;
    case ICL_GGML_Q6_K: deq_q6_k(s, dst, nb); break;
    }
    return 0;
}

/* ---- quantizers ---- */

int icl_quant_can_quantize(int type) {
    switch (type) {
    case ICL_GGML_F32: case ICL_GGML_F16: case ICL_GGML_BF16: case ICL_GGML_Q8_0:
    case ICL_GGML_Q4_0: case ICL_GGML_Q4_K: case ICL_GGML_Q5_K: case ICL_GGML_Q6_K:
        return 1;
    default:
        return 0;
    }
}

static void put_u16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

/* The half closest to v (v >= 0, finite) that is not below it, so a scale stored as half still
 * spans the block's range; returned as bits and, in *f, as float. */
static uint16_t half_at_least(float v, float *f) {
    uint16_t h = icl_quant_fp32_to_fp16(v);
    if (icl_quant_fp16_to_fp32(h) < v) h++; /* next half up (positive halves order like integers) */
    *f = icl_quant_fp16_to_fp32(h);
    return h;
}

/* round(v) clamped to [lo, hi]; NaN gives lo (no undefined float->int conversion). */
static int round_clamp(float v, int lo, int hi) {
    float r = roundf(v);
    if (!(r >= (float)lo)) return lo;
    if (r > (float)hi) return hi;
    return (int)r;
}

/* Multiplier m in 0..63 with m * unit >= v (v >= 0): a ceiling, so a quantized scale never falls
 * short of the one it stands for. unit 0 (all of the super-block's values 0) gives 0. */
static int ceil6(float v, float unit) {
    if (!(unit > 0.0f) || !(v > 0.0f)) return 0;
    float c = ceilf(v / unit);
    return c > 63.0f ? 63 : (int)c;
}

/* The element of x[0..n) with the largest magnitude, with its sign (the first one on ties). */
static float signed_absmax(const float *x, int n) {
    float m = 0.0f, a = 0.0f;
    for (int j = 0; j < n; j++)
        if (fabsf(x[j]) > a) {
            a = fabsf(x[j]);
            m = x[j];
        }
    return m;
}

/* Q4_0, symmetric: d = -max / 8 where max is the largest-magnitude value with its sign (so it maps
 * to code 0, value -8d), rounded up in magnitude to a half; q = round(x / d) + 8 in 0..15. */
static void quant_q4_0(const float *x, uint8_t *o, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 32, o += 18) {
        float mx = signed_absmax(x, 32), df;
        uint16_t h = half_at_least(fabsf(mx) / 8.0f, &df);
        if (mx > 0.0f) { /* d takes the opposite sign of max */
            h ^= 0x8000;
            df = -df;
        }
        put_u16(o, h);
        float id = df != 0.0f ? 1.0f / df : 0.0f;
        for (int j = 0; j < 16; j++) {
            int q0 = round_clamp(x[j] * id, -8, 7) + 8, q1 = round_clamp(x[j + 16] * id, -8, 7) + 8;
            o[2 + j] = (uint8_t)(q0 | (q1 << 4));
        }
    }
}

/* Q4_K / Q5_K (levels 15 or 31): each sub-block j of 32 gets an offset mins_j = -min(0, min x)
 * and a step covering [min, max]; the eight offsets and eight steps become 6-bit multiples of the
 * half super-scales dmin and d. Both multiples are rounded up (offset first, then the step is
 * sized for max + the quantized offset), so every x lies in [-offset, levels*step - offset] and
 * rounds to the nearest code: |x - dequantized| <= step / 2. Writes d, dmin, scales[12] and
 * fills codes[256] (0..levels) for the caller to pack. */
static void quant_k_scales(const float *x, int levels, uint8_t *o, uint8_t codes[256]) {
    float mins[8], hi[8], maxmin = 0.0f;
    for (int j = 0; j < 8; j++) {
        float lo = 0.0f, h = x[32 * j];
        for (int l = 0; l < 32; l++) {
            float v = x[32 * j + l];
            if (v < lo) lo = v;
            if (v > h) h = v;
        }
        mins[j] = -lo;
        hi[j] = h;
        if (mins[j] > maxmin) maxmin = mins[j];
    }
    float dminf, df, need[8], maxneed = 0.0f, mm[8];
    uint16_t dminh = half_at_least(maxmin / 63.0f, &dminf);
    int sc[8], m[8];
    for (int j = 0; j < 8; j++) {
        m[j] = ceil6(mins[j], dminf);
        mm[j] = dminf * (float)m[j]; /* the offset exactly as the dequantizer forms it */
        need[j] = (hi[j] + mm[j]) / (float)levels;
        if (!(need[j] > 0.0f)) need[j] = 0.0f;
        if (need[j] > maxneed) maxneed = need[j];
    }
    uint16_t dh = half_at_least(maxneed / 63.0f, &df);
    for (int j = 0; j < 8; j++) sc[j] = ceil6(need[j], df);
    put_u16(o, dh);
    put_u16(o + 2, dminh);
    uint8_t *S = o + 4;
    memset(S, 0, 12);
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            S[j] |= (uint8_t)sc[j];
            S[j + 4] |= (uint8_t)m[j];
        } else {
            S[j + 4] = (uint8_t)((sc[j] & 0xF) | ((m[j] & 0xF) << 4));
            S[j - 4] |= (uint8_t)((sc[j] >> 4) << 6);
            S[j] |= (uint8_t)((m[j] >> 4) << 6);
        }
        float step = df * (float)sc[j], inv = step > 0.0f ? 1.0f / step : 0.0f;
        for (int l = 0; l < 32; l++) codes[32 * j + l] = (uint8_t)round_clamp((x[32 * j + l] + mm[j]) * inv, 0, levels);
    }
}

static void quant_q4_k(const float *x, uint8_t *o, int64_t nb) {
    uint8_t codes[256];
    for (int64_t i = 0; i < nb; i++, x += 256, o += 144) {
        quant_k_scales(x, 15, o, codes);
        uint8_t *qs = o + 16; /* sub-block j: nibble j & 1 of bytes 32 * (j / 2) .. +31 */
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++) qs[32 * p + l] = (uint8_t)(codes[64 * p + l] | (codes[64 * p + 32 + l] << 4));
    }
}

static void quant_q5_k(const float *x, uint8_t *o, int64_t nb) {
    uint8_t codes[256];
    for (int64_t i = 0; i < nb; i++, x += 256, o += 176) {
        quant_k_scales(x, 31, o, codes);
        uint8_t *qh = o + 16, *qs = o + 48; /* bit 4 of sub-block j's element l is bit j of qh[l] */
        memset(qh, 0, 32);
        for (int j = 0; j < 8; j++)
            for (int l = 0; l < 32; l++) qh[l] |= (uint8_t)(((codes[32 * j + l] >> 4) & 1) << j);
        for (int p = 0; p < 4; p++)
            for (int l = 0; l < 32; l++)
                qs[32 * p + l] = (uint8_t)((codes[64 * p + l] & 0xF) | ((codes[64 * p + 32 + l] & 0xF) << 4));
    }
}

/* Q6_K, symmetric per sub-block of 16: the sub-block's scale is -max / 32 (max with its sign),
 * stored as int8 multiples (rounded up in magnitude) of the half super-scale d = max|scale| / 127;
 * q = round(x / step) in -32..31. Element 128n + 32k + l keeps its low 4 bits in nibble k / 2 of
 * ql[64n + 32(k & 1) + l] and its top 2 bits at bit 2k of qh[32n + l]. */
static void quant_q6_k(const float *x, uint8_t *o, int64_t nb) {
    for (int64_t i = 0; i < nb; i++, x += 256, o += 210) {
        float scale[16], maxs = 0.0f, df;
        for (int s = 0; s < 16; s++) {
            scale[s] = signed_absmax(x + 16 * s, 16) / -32.0f;
            if (fabsf(scale[s]) > maxs) maxs = fabsf(scale[s]);
        }
        uint16_t dh = half_at_least(maxs / 127.0f, &df);
        put_u16(o + 208, dh);
        uint8_t *ql = o, *qh = o + 128;
        memset(ql, 0, 128);
        memset(qh, 0, 64);
        for (int s = 0; s < 16; s++) {
            float c = df > 0.0f ? ceilf(fabsf(scale[s]) / df) : 0.0f;
            int sc = c > 127.0f ? 127 : (int)c;
            if (scale[s] < 0.0f) sc = -sc;
            o[192 + s] = (uint8_t)(int8_t)sc;
            float step = df * (float)sc, inv = step != 0.0f ? 1.0f / step : 0.0f;
            for (int l = 0; l < 16; l++) {
                int e = 16 * s + l, n = e / 128, k = (e % 128) / 32, li = e % 32;
                int q = round_clamp(x[e] * inv, -32, 31) + 32;
                ql[64 * n + 32 * (k & 1) + li] |= (uint8_t)((q & 0xF) << (4 * (k >> 1)));
                qh[32 * n + li] |= (uint8_t)((q >> 4) << (2 * k));
            }
        }
    }
}

int icl_quant_quantize_row(int type, const float *src, void *dst, int64_t n, icl_err *err) {
    if (!icl_quant_can_quantize(type))
        return icl_errf(err, "cannot quantize to ggml type %s (%d)", icl_quant_type_name(type), type);
    uint64_t bytes;
    if (icl_quant_row_bytes(type, n, &bytes, err)) return -1;
    uint8_t *o = dst;
    switch (type) {
    case ICL_GGML_F32: memcpy(o, src, (size_t)n * 4); break;
    case ICL_GGML_F16:
        for (int64_t i = 0; i < n; i++) put_u16(o + 2 * i, icl_quant_fp32_to_fp16(src[i]));
        break;
    case ICL_GGML_BF16:
        for (int64_t i = 0; i < n; i++) put_u16(o + 2 * i, icl_quant_fp32_to_bf16(src[i]));
        break;
    case ICL_GGML_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, src += 32, o += 34) {
            float amax = 0.0f;
            for (int j = 0; j < 32; j++) {
                float a = fabsf(src[j]);
                if (a > amax) amax = a;
            }
            float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
            put_u16(o, icl_quant_fp32_to_fp16(d));
            for (int j = 0; j < 32; j++) {
                float v = roundf(src[j] * id);
                if (!(v >= -127.0f)) v = v != v ? 0.0f : -127.0f; /* NaN -> 0, clamp */
                if (v > 127.0f) v = 127.0f;
                o[2 + j] = (uint8_t)(int8_t)v;
            }
        }
        break;
    case ICL_GGML_Q4_0: quant_q4_0(src, o, n / 32); break;
    case ICL_GGML_Q4_K: quant_q4_k(src, o, n / QK_K); break;
    case ICL_GGML_Q5_K: quant_q5_k(src, o, n / QK_K); break;
    case ICL_GGML_Q6_K: quant_q6_k(src, o, n / QK_K); break;
    }
    return 0;
}
