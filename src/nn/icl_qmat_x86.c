/* AVX2 and AVX-512 kernels for icl_qmat: dot products of one packed ggml row (F32, F16, BF16, Q8_0,
 * Q4_0, Q4_K, Q5_K, Q6_K) with fp32 activations, and unpacking of such rows to fp32.
 *
 * Each block is decoded in registers: integer codes are widened to int32, converted to float and
 * scaled with exactly the float operations of icl_quant.c's dequantizers (a product, then a
 * difference: never fused into an fma, which takes -std=c11's -ffp-contract=off under gcc and
 * product and difference in separate statements under clang). On AVX-512, 4- and 5-bit codes
 * instead index a register holding the 16 or 32 possible weights of their (sub-)block, computed
 * with those same operations. Either way unpacked weights are bit-exact with
 * icl_quant_dequantize_row; the dot then fmas them with x into fp32 lane accumulators.
 * Activations are never quantized.
 *
 * Every function carries its own target attribute so this file builds without -march flags; the
 * dispatcher (icl_qmat.c) calls a path only after checking that the CPU has it. The
 * kernel for one type is written once as an always-inline function with a `store` switch: with
 * store == 0 it accumulates a dot product, otherwise it writes the weights to `out`. */
#include "icl_qmat_simd.h"
#include <string.h>
#include "iclab/icl_quant.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define AVX2_ATTR __attribute__((target("avx2,fma,f16c")))
#define AVX512_ATTR __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define AVX2_INL static inline __attribute__((always_inline, target("avx2,fma,f16c")))
#define AVX512_INL static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))

enum { PLAIN_F32 = 0, PLAIN_F16 = 1, PLAIN_BF16 = 2 };

/* Blocks in a mapped file have no alignment: read multi-byte fields with memcpy. */
static inline uint16_t rd16(const uint8_t *p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

/* Per-sub-block scale d*sc and offset dmin*m of a Q4_K/Q5_K block from its 12 packed scale bytes
 * q and its (converted) d and dmin, each one float product as in ggml. With u0, u1, u2 the bytes
 * as three little-endian words, scales 0-3 are the low 6 bits of u0's bytes and offsets 0-3 of
 * u1's; scales (offsets) 4-7 take their low 4 bits from the low (high) nibbles of u2 and their top
 * 2 bits from the top bits of u0's (u1's) bytes. */
AVX2_INL void k_scales(const uint8_t *q, float d, float dmin, float ds[8], float ms[8]) {
    const uint32_t k6 = 0x3f3f3f3fu, k4 = 0x0f0f0f0fu, k2 = 0x03030303u;
    uint32_t u[3];
    memcpy(u, q, 12);
    uint64_t sc = (u[0] & k6) | (uint64_t)((u[2] & k4) | (((u[0] >> 6) & k2) << 4)) << 32;
    uint64_t m = (u[1] & k6) | (uint64_t)(((u[2] >> 4) & k4) | (((u[1] >> 6) & k2) << 4)) << 32;
    __m256 scf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc)));
    __m256 mf = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)m)));
    _mm256_storeu_ps(ds, _mm256_mul_ps(_mm256_set1_ps(d), scf));
    _mm256_storeu_ps(ms, _mm256_mul_ps(_mm256_set1_ps(dmin), mf));
}

/* d * (float)sc for the 16 int8 sub-block scales of a Q6_K block, as ggml forms them. */
AVX2_INL void q6_scales(const uint8_t *sc, float d, float out[16]) {
    __m128i v = _mm_loadu_si128((const __m128i *)sc);
    __m256 dv = _mm256_set1_ps(d);
    _mm256_storeu_ps(out, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))));
    _mm256_storeu_ps(out + 8, _mm256_mul_ps(dv, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8)))));
}

/* ================================================================ AVX-512 (16 lanes) */

/* 16 consecutive plain elements (F32, F16 or BF16) as floats; the masked form reads only the lanes
 * in m (masked loads never touch the bytes of disabled lanes). */
AVX512_INL __m512 plain_ld512(int kind, const uint8_t *p) {
    if (kind == PLAIN_F32) return _mm512_loadu_ps(p);
    __m256i h = _mm256_loadu_si256((const __m256i *)p);
    if (kind == PLAIN_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
AVX512_INL __m512 plain_ldm512(int kind, const uint8_t *p, __mmask16 m) {
    if (kind == PLAIN_F32) return _mm512_maskz_loadu_ps(m, p);
    __m256i h = _mm256_maskz_loadu_epi16(m, p);
    if (kind == PLAIN_F16) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

/* Four accumulators (64 lanes) for the main loop; the 16-wide remainder and a masked tail go into
 * the first. */
AVX512_INL float plain512(int kind, const uint8_t *r, const float *x, float *out, int64_t n, int store) {
    const int esz = kind == PLAIN_F32 ? 4 : 2;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512 w0 = plain_ld512(kind, r + esz * i), w1 = plain_ld512(kind, r + esz * (i + 16));
        __m512 w2 = plain_ld512(kind, r + esz * (i + 32)), w3 = plain_ld512(kind, r + esz * (i + 48));
        if (store) {
            _mm512_storeu_ps(out + i, w0);
            _mm512_storeu_ps(out + i + 16, w1);
            _mm512_storeu_ps(out + i + 32, w2);
            _mm512_storeu_ps(out + i + 48, w3);
        } else {
            a0 = _mm512_fmadd_ps(w0, _mm512_loadu_ps(x + i), a0);
            a1 = _mm512_fmadd_ps(w1, _mm512_loadu_ps(x + i + 16), a1);
            a2 = _mm512_fmadd_ps(w2, _mm512_loadu_ps(x + i + 32), a2);
            a3 = _mm512_fmadd_ps(w3, _mm512_loadu_ps(x + i + 48), a3);
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m512 w = plain_ld512(kind, r + esz * i);
        if (store)
            _mm512_storeu_ps(out + i, w);
        else
            a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + i), a0);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        __m512 w = plain_ldm512(kind, r + esz * i, m);
        if (store)
            _mm512_mask_storeu_ps(out + i, m, w);
        else
            a0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m, x + i), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* Writes w to out[e ..], or adds w * x[e ..] into *acc (kept in a register once inlined). */
AVX512_INL void emit512(int store, __m512 w, const float *x, float *out, int64_t e, __m512 *acc) {
    if (store)
        _mm512_storeu_ps(out + e, w);
    else
        *acc = _mm512_fmadd_ps(w, _mm512_loadu_ps(x + e), *acc);
}

AVX512_INL float sum4_512(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

/* Q8_0: half d, 32 int8; w = (float)q * d. */
AVX512_INL float q8_0_512(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int64_t i = 0; i < nb; i++, b += 34) {
        __m512 d = _mm512_set1_ps(_cvtsh_ss(rd16(b)));
        __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 2))));
        __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(b + 18))));
        emit512(store, _mm512_mul_ps(q0, d), x, out, 32 * i, &a0);
        emit512(store, _mm512_mul_ps(q1, d), x, out, 32 * i + 16, &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* Q4_0: half d, 16 bytes; element j is the low nibble of byte j, element j+16 the high nibble;
 * w = (float)(q - 8) * d. The 16 possible weights fill one register, which the codes index. */
AVX512_INL float q4_0_512(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m512 codes = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    for (int64_t i = 0; i < nb; i++, b += 18) {
        __m512 tab = _mm512_mul_ps(codes, _mm512_set1_ps(_cvtsh_ss(rd16(b))));
        __m128i v = _mm_loadu_si128((const __m128i *)(b + 2));
        __m512i lo = _mm512_cvtepu8_epi32(_mm_and_si128(v, m4));
        __m512i hi = _mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(v, 4), m4));
        emit512(store, _mm512_permutexvar_ps(lo, tab), x, out, 32 * i, &a0);
        emit512(store, _mm512_permutexvar_ps(hi, tab), x, out, 32 * i + 16, &a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

/* The 16 codes of Q4_K/Q5_K sub-block j, elements 16h .. 16h+15: nibble j & 1 of bytes
 * 32*(j/2) + 16h .. of qs, and for Q5_K bit j of the matching qh bytes (qh16) as bit 4. Byte
 * lanes are shifted as 16-bit lanes and then masked, which keeps each byte's own bits. */
static inline __attribute__((always_inline)) __m128i k45_codes(const uint8_t *qs, __m128i qh16, int five, int j, int h) {
    __m128i v = _mm_loadu_si128((const __m128i *)(qs + 32 * (j >> 1) + 16 * h));
    if (j & 1) v = _mm_srli_epi16(v, 4);
    v = _mm_and_si128(v, _mm_set1_epi8(0x0F));
    if (five) {
        __m128i bit = _mm_and_si128(_mm_srl_epi16(qh16, _mm_cvtsi32_si128(j)), _mm_set1_epi8(1));
        v = _mm_or_si128(v, _mm_slli_epi16(bit, 4));
    }
    return v;
}

/* Q4_K / Q5_K: 8 sub-blocks of 32, w = d*sc*q - dmin*m as two roundings. The 16 (32) possible
 * weights of a sub-block fill one (two) registers, computed with those same two operations, and
 * the codes index them. Sub-blocks 2p, 2p+1 feed accumulators 0,1 and 2,3. */
AVX512_INL void k45_sub512(int five, const uint8_t *qs, __m128i qh0, __m128i qh1, int j, float d1, float m1,
                           __m512 *w0, __m512 *w1) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512 dv = _mm512_set1_ps(d1), mv = _mm512_set1_ps(m1);
    __m512 p0 = _mm512_mul_ps(dv, iota); /* separate statements: never contracted into an fma */
    __m512 t0 = _mm512_sub_ps(p0, mv);
    __m512i c0 = _mm512_cvtepu8_epi32(k45_codes(qs, qh0, five, j, 0));
    __m512i c1 = _mm512_cvtepu8_epi32(k45_codes(qs, qh1, five, j, 1));
    if (five) {
        __m512 p1 = _mm512_mul_ps(dv, _mm512_add_ps(iota, _mm512_set1_ps(16.0f)));
        __m512 t1 = _mm512_sub_ps(p1, mv);
        *w0 = _mm512_permutex2var_ps(t0, c0, t1);
        *w1 = _mm512_permutex2var_ps(t0, c1, t1);
    } else {
        *w0 = _mm512_permutexvar_ps(c0, t0);
        *w1 = _mm512_permutexvar_ps(c1, t0);
    }
}

AVX512_INL float qk45_512(int five, const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    const size_t bsz = five ? 176 : 144;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += bsz) {
        float ds[8], ms[8];
        k_scales(b + 4, _cvtsh_ss(rd16(b)), _cvtsh_ss(rd16(b + 2)), ds, ms);
        const uint8_t *qs = b + (five ? 48 : 16);
        __m128i qh0 = _mm_setzero_si128(), qh1 = qh0;
        if (five) {
            qh0 = _mm_loadu_si128((const __m128i *)(b + 16));
            qh1 = _mm_loadu_si128((const __m128i *)(b + 32));
        }
        for (int p = 0; p < 4; p++) {
            __m512 w0, w1, w2, w3;
            k45_sub512(five, qs, qh0, qh1, 2 * p, ds[2 * p], ms[2 * p], &w0, &w1);
            k45_sub512(five, qs, qh0, qh1, 2 * p + 1, ds[2 * p + 1], ms[2 * p + 1], &w2, &w3);
            int64_t e = 256 * i + 64 * p;
            emit512(store, w0, x, out, e, &a0);
            emit512(store, w1, x, out, e + 16, &a1);
            emit512(store, w2, x, out, e + 32, &a2);
            emit512(store, w3, x, out, e + 48, &a3);
        }
    }
    return sum4_512(a0, a1, a2, a3);
}

/* The 16 six-bit codes (0..63) of Q6_K elements 128*n + 32*k + 16*h .. +15: low nibble (k < 2) or
 * high nibble (k >= 2) of ql[64n + 32(k&1) + 16h ..], plus bits 2k, 2k+1 of qh[32n + 16h ..] as
 * bits 4, 5 (byte lanes shifted as 16-bit lanes, then masked). */
static inline __attribute__((always_inline)) __m128i q6_codes(const uint8_t *b, int n, int k, int h) {
    __m128i lo = _mm_loadu_si128((const __m128i *)(b + 64 * n + 32 * (k & 1) + 16 * h));
    __m128i hi = _mm_loadu_si128((const __m128i *)(b + 128 + 32 * n + 16 * h));
    if (k >> 1) lo = _mm_srli_epi16(lo, 4);
    lo = _mm_and_si128(lo, _mm_set1_epi8(0x0F));
    hi = _mm_and_si128(_mm_srl_epi16(hi, _mm_cvtsi32_si128(2 * k)), _mm_set1_epi8(3));
    return _mm_or_si128(lo, _mm_slli_epi16(hi, 4));
}

/* Sixteen Q6_K weights (d*sc) * (q - 32), the codes made signed while still bytes. */
AVX512_INL __m512 q6_w512(const uint8_t *b, int n, int k, int h, float s) {
    __m128i c = _mm_sub_epi8(q6_codes(b, n, k, h), _mm_set1_epi8(32));
    return _mm512_mul_ps(_mm512_set1_ps(s), _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(c)));
}

/* Q6_K: ql[128], qh[64], int8 scales[16] (one per 16 elements), half d. Sub-block s (elements
 * 16s ..) feeds accumulator s & 3. */
AVX512_INL float q6_k_512(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += 210) {
        float sc[16];
        q6_scales(b + 192, _cvtsh_ss(rd16(b + 208)), sc);
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 4; k += 2) {
                int s = 8 * n + 2 * k;
                int64_t e = 256 * i + 16 * s;
                emit512(store, q6_w512(b, n, k, 0, sc[s]), x, out, e, &a0);
                emit512(store, q6_w512(b, n, k, 1, sc[s + 1]), x, out, e + 16, &a1);
                emit512(store, q6_w512(b, n, k + 1, 0, sc[s + 2]), x, out, e + 32, &a2);
                emit512(store, q6_w512(b, n, k + 1, 1, sc[s + 3]), x, out, e + 48, &a3);
            }
    }
    return sum4_512(a0, a1, a2, a3);
}

/* Entry points: a dot and an unpack per type, each a thin wrapper fixing `store`. The trailing
 * macro arguments are the kernel's leading arguments (the plain kind, the Q5_K switch). */
#define PAIR512(NAME, FN, BLOCK, ...)                                                                \
    static AVX512_ATTR float NAME##_dot512(const uint8_t *r, const float *x, int64_t n) {            \
        return FN(__VA_ARGS__ r, x, NULL, n / BLOCK, 0);                                             \
    }                                                                                                \
    static AVX512_ATTR void NAME##_unpack512(const uint8_t *r, float *o, int64_t n) {                \
        (void)FN(__VA_ARGS__ r, NULL, o, n / BLOCK, 1);                                              \
    }
PAIR512(f32, plain512, 1, PLAIN_F32, )
PAIR512(f16, plain512, 1, PLAIN_F16, )
PAIR512(bf16, plain512, 1, PLAIN_BF16, )
PAIR512(q8_0, q8_0_512, 32, )
PAIR512(q4_0, q4_0_512, 32, )
PAIR512(q4_k, qk45_512, 256, 0, )
PAIR512(q5_k, qk45_512, 256, 1, )
PAIR512(q6_k, q6_k_512, 256, )

/* ================================================================ AVX2 (8 lanes) */

AVX2_INL float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

AVX2_INL float hsum4_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3) {
    return hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

AVX2_INL __m256 plain_ld256(int kind, const uint8_t *p) {
    if (kind == PLAIN_F32) return _mm256_loadu_ps((const float *)p);
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    if (kind == PLAIN_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

/* Four accumulators (32 lanes) for the main loop; the 8-wide remainder and the tail (copied into a
 * zero-padded vector) go into the first. */
AVX2_INL float plain256(int kind, const uint8_t *r, const float *x, float *out, int64_t n, int store) {
    const int esz = kind == PLAIN_F32 ? 4 : 2;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 w0 = plain_ld256(kind, r + esz * i), w1 = plain_ld256(kind, r + esz * (i + 8));
        __m256 w2 = plain_ld256(kind, r + esz * (i + 16)), w3 = plain_ld256(kind, r + esz * (i + 24));
        if (store) {
            _mm256_storeu_ps(out + i, w0);
            _mm256_storeu_ps(out + i + 8, w1);
            _mm256_storeu_ps(out + i + 16, w2);
            _mm256_storeu_ps(out + i + 24, w3);
        } else {
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + i), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + i + 8), a1);
            a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + i + 16), a2);
            a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + i + 24), a3);
        }
    }
    for (; i + 8 <= n; i += 8) {
        __m256 w = plain_ld256(kind, r + esz * i);
        if (store)
            _mm256_storeu_ps(out + i, w);
        else
            a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + i), a0);
    }
    if (i < n) {
        uint8_t wb[32] = {0};
        float xb[8] = {0}, ob[8];
        int rem = (int)(n - i);
        memcpy(wb, r + esz * i, (size_t)(esz * rem));
        __m256 w = plain_ld256(kind, wb);
        if (store) {
            _mm256_storeu_ps(ob, w);
            memcpy(out + i, ob, sizeof(float) * (size_t)rem);
        } else {
            memcpy(xb, x + i, sizeof(float) * (size_t)rem);
            a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(xb), a0);
        }
    }
    return hsum4_256(a0, a1, a2, a3);
}

/* Bytes 0..7 (g = 0) or 8..15 (g = 1) of v, zero- or sign-extended to eight int32. */
AVX2_INL __m256i u8x8_256(__m128i v, int g) { return _mm256_cvtepu8_epi32(g ? _mm_srli_si128(v, 8) : v); }
AVX2_INL __m256i i8x8_256(__m128i v, int g) { return _mm256_cvtepi8_epi32(g ? _mm_srli_si128(v, 8) : v); }

/* Writes w to out[e ..], or adds w * x[e ..] into *acc. */
AVX2_INL void emit256(int store, __m256 w, const float *x, float *out, int64_t e, __m256 *acc) {
    if (store)
        _mm256_storeu_ps(out + e, w);
    else
        *acc = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + e), *acc);
}

/* Eight int8 codes at p as floats. */
AVX2_INL __m256 q8x8_256(const uint8_t *p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}

/* Q8_0: four vectors per block, one per accumulator. */
AVX2_INL float q8_0_256(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += 34) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(rd16(b)));
        emit256(store, _mm256_mul_ps(q8x8_256(b + 2), d), x, out, 32 * i, &a0);
        emit256(store, _mm256_mul_ps(q8x8_256(b + 10), d), x, out, 32 * i + 8, &a1);
        emit256(store, _mm256_mul_ps(q8x8_256(b + 18), d), x, out, 32 * i + 16, &a2);
        emit256(store, _mm256_mul_ps(q8x8_256(b + 26), d), x, out, 32 * i + 24, &a3);
    }
    return hsum4_256(a0, a1, a2, a3);
}

/* Q4_0: the codes made signed (q - 8) while still bytes, then widened, converted and scaled. */
AVX2_INL float q4_0_256(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    const __m128i m4 = _mm_set1_epi8(0x0F), e8 = _mm_set1_epi8(8);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += 18) {
        __m256 d = _mm256_set1_ps(_cvtsh_ss(rd16(b)));
        __m128i v = _mm_loadu_si128((const __m128i *)(b + 2));
        __m128i lo = _mm_sub_epi8(_mm_and_si128(v, m4), e8), hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(v, 4), m4), e8);
        emit256(store, _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8_256(lo, 0)), d), x, out, 32 * i, &a0);
        emit256(store, _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8_256(lo, 1)), d), x, out, 32 * i + 8, &a1);
        emit256(store, _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8_256(hi, 0)), d), x, out, 32 * i + 16, &a2);
        emit256(store, _mm256_mul_ps(_mm256_cvtepi32_ps(i8x8_256(hi, 1)), d), x, out, 32 * i + 24, &a3);
    }
    return hsum4_256(a0, a1, a2, a3);
}

/* Eight Q4_K/Q5_K weights d1 * q - m1 from bytes 8g .. 8g+7 of the codes c. */
AVX2_INL __m256 k45_w256(__m128i c, int g, __m256 dv, __m256 mv) {
    __m256 p = _mm256_mul_ps(dv, _mm256_cvtepi32_ps(u8x8_256(c, g)));
    return _mm256_sub_ps(p, mv);
}

/* Q4_K / Q5_K as in qk45_512 (codes from k45_codes), eight elements per vector; each sub-block's
 * four vectors go to the four accumulators. */
AVX2_INL float qk45_256(int five, const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    const size_t bsz = five ? 176 : 144;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += bsz) {
        float ds[8], ms[8];
        k_scales(b + 4, _cvtsh_ss(rd16(b)), _cvtsh_ss(rd16(b + 2)), ds, ms);
        const uint8_t *qs = b + (five ? 48 : 16);
        __m128i qh0 = _mm_setzero_si128(), qh1 = qh0;
        if (five) {
            qh0 = _mm_loadu_si128((const __m128i *)(b + 16));
            qh1 = _mm_loadu_si128((const __m128i *)(b + 32));
        }
        for (int j = 0; j < 8; j++) {
            __m256 dv = _mm256_set1_ps(ds[j]), mv = _mm256_set1_ps(ms[j]);
            __m128i c0 = k45_codes(qs, qh0, five, j, 0), c1 = k45_codes(qs, qh1, five, j, 1);
            int64_t e = 256 * i + 32 * j;
            emit256(store, k45_w256(c0, 0, dv, mv), x, out, e, &a0);
            emit256(store, k45_w256(c0, 1, dv, mv), x, out, e + 8, &a1);
            emit256(store, k45_w256(c1, 0, dv, mv), x, out, e + 16, &a2);
            emit256(store, k45_w256(c1, 1, dv, mv), x, out, e + 24, &a3);
        }
    }
    return hsum4_256(a0, a1, a2, a3);
}

/* Q6_K as in q6_k_512, eight elements per vector; sub-block s's two vectors go to accumulators
 * 2(s & 1) and 2(s & 1) + 1. */
AVX2_INL float q6_k_256(const uint8_t *b, const float *x, float *out, int64_t nb, int store) {
    const __m128i e32 = _mm_set1_epi8(32);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t i = 0; i < nb; i++, b += 210) {
        float sc[16];
        q6_scales(b + 192, _cvtsh_ss(rd16(b + 208)), sc);
        for (int n = 0; n < 2; n++)
            for (int k = 0; k < 4; k++) {
                int s = 8 * n + 2 * k;
                __m256 s0 = _mm256_set1_ps(sc[s]), s1 = _mm256_set1_ps(sc[s + 1]);
                __m128i c0 = _mm_sub_epi8(q6_codes(b, n, k, 0), e32), c1 = _mm_sub_epi8(q6_codes(b, n, k, 1), e32);
                int64_t e = 256 * i + 16 * s;
                emit256(store, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(i8x8_256(c0, 0))), x, out, e, &a0);
                emit256(store, _mm256_mul_ps(s0, _mm256_cvtepi32_ps(i8x8_256(c0, 1))), x, out, e + 8, &a1);
                emit256(store, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(i8x8_256(c1, 0))), x, out, e + 16, &a2);
                emit256(store, _mm256_mul_ps(s1, _mm256_cvtepi32_ps(i8x8_256(c1, 1))), x, out, e + 24, &a3);
            }
    }
    return hsum4_256(a0, a1, a2, a3);
}

#define PAIR256(NAME, FN, BLOCK, ...)                                                                \
    static AVX2_ATTR float NAME##_dot256(const uint8_t *r, const float *x, int64_t n) {              \
        return FN(__VA_ARGS__ r, x, NULL, n / BLOCK, 0);                                             \
    }                                                                                                \
    static AVX2_ATTR void NAME##_unpack256(const uint8_t *r, float *o, int64_t n) {                  \
        (void)FN(__VA_ARGS__ r, NULL, o, n / BLOCK, 1);                                              \
    }
PAIR256(f32, plain256, 1, PLAIN_F32, )
PAIR256(f16, plain256, 1, PLAIN_F16, )
PAIR256(bf16, plain256, 1, PLAIN_BF16, )
PAIR256(q8_0, q8_0_256, 32, )
PAIR256(q4_0, q4_0_256, 32, )
PAIR256(q4_k, qk45_256, 256, 0, )
PAIR256(q5_k, qk45_256, 256, 1, )
PAIR256(q6_k, q6_k_256, 256, )

/* ================================================================ tables */

#define CASE(TYPE, NAME, SUF)                                                                        \
    case TYPE:                                                                                       \
        k->dot = NAME##_dot##SUF;                                                                    \
        k->unpack = NAME##_unpack##SUF;                                                              \
        return 1;

int icl_qmat_avx2_kernel(int type, icl_qkernel *k) {
    switch (type) {
    CASE(ICL_GGML_F32, f32, 256)
    CASE(ICL_GGML_F16, f16, 256)
    CASE(ICL_GGML_BF16, bf16, 256)
    CASE(ICL_GGML_Q8_0, q8_0, 256)
    CASE(ICL_GGML_Q4_0, q4_0, 256)
    CASE(ICL_GGML_Q4_K, q4_k, 256)
    CASE(ICL_GGML_Q5_K, q5_k, 256)
    CASE(ICL_GGML_Q6_K, q6_k, 256)
    default: return 0;
    }
}

int icl_qmat_avx512_kernel(int type, icl_qkernel *k) {
    switch (type) {
    CASE(ICL_GGML_F32, f32, 512)
    CASE(ICL_GGML_F16, f16, 512)
    CASE(ICL_GGML_BF16, bf16, 512)
    CASE(ICL_GGML_Q8_0, q8_0, 512)
    CASE(ICL_GGML_Q4_0, q4_0, 512)
    CASE(ICL_GGML_Q4_K, q4_k, 512)
    CASE(ICL_GGML_Q5_K, q5_k, 512)
    CASE(ICL_GGML_Q6_K, q6_k, 512)
    default: return 0;
    }
}

#else /* not x86: only the portable path exists */

int icl_qmat_avx2_kernel(int type, icl_qkernel *k) {
    (void)type;
    (void)k;
    return 0;
}
int icl_qmat_avx512_kernel(int type, icl_qkernel *k) {
    (void)type;
    (void)k;
    return 0;
}

#endif
