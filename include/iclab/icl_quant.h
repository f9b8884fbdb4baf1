/* ggml tensor element types (the ids GGUF files store), their block layouts and sizes, half-precision
 * conversions, and dequantization of quantized rows to float32.
 *
 * A ggml type packs `block_size` consecutive elements of a row into `type_size` bytes; a row of n
 * elements (n a multiple of block_size) takes n / block_size * type_size bytes. Plain types (F32,
 * F16, BF16, I8..I64, F64) have block_size 1. The layouts follow ggml's block structs
 * (ggml-common.h); all multi-byte fields are little-endian, `d`/`dmin` scales are IEEE half. */
#ifndef ICL_QUANT_H
#define ICL_QUANT_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"

/* ggml type ids as stored in GGUF tensor infos (ids 4, 5, 31-33, 36-38 were retired by ggml). */
enum icl_ggml_type {
    ICL_GGML_F32 = 0,
    ICL_GGML_F16 = 1,
    ICL_GGML_Q4_0 = 2,
    ICL_GGML_Q4_1 = 3,
    ICL_GGML_Q5_0 = 6,
    ICL_GGML_Q5_1 = 7,
    ICL_GGML_Q8_0 = 8,
    ICL_GGML_Q8_1 = 9,
    ICL_GGML_Q2_K = 10,
    ICL_GGML_Q3_K = 11,
    ICL_GGML_Q4_K = 12,
    ICL_GGML_Q5_K = 13,
    ICL_GGML_Q6_K = 14,
    ICL_GGML_Q8_K = 15,
    ICL_GGML_IQ2_XXS = 16,
    ICL_GGML_IQ2_XS = 17,
    ICL_GGML_IQ3_XXS = 18,
    ICL_GGML_IQ1_S = 19,
    ICL_GGML_IQ4_NL = 20,
    ICL_GGML_IQ3_S = 21,
    ICL_GGML_IQ2_S = 22,
    ICL_GGML_IQ4_XS = 23,
    ICL_GGML_I8 = 24,
    ICL_GGML_I16 = 25,
    ICL_GGML_I32 = 26,
    ICL_GGML_I64 = 27,
    ICL_GGML_F64 = 28,
    ICL_GGML_IQ1_M = 29,
    ICL_GGML_BF16 = 30,
    ICL_GGML_TQ1_0 = 34,
    ICL_GGML_TQ2_0 = 35,
    ICL_GGML_MXFP4 = 39,
    ICL_GGML_TYPE_COUNT = 40 /* one past the largest id this table knows */
};

/* 1 if `type` is a ggml type id with a known layout, else 0. */
int icl_quant_type_known(int type);
/* Lower-case ggml name ("f32", "q4_K", ...), or "unknown" for an unknown id. */
const char *icl_quant_type_name(int type);
/* Elements per block (1 for plain types); 0 for an unknown id. */
int64_t icl_quant_block_size(int type);
/* Bytes per block; 0 for an unknown id. */
size_t icl_quant_type_size(int type);
/* Bytes taken by a row of n elements: fails (with a message naming the type) if the type is
 * unknown, n < 0, n is not a multiple of the block size, or the size overflows. */
int icl_quant_row_bytes(int type, int64_t n, uint64_t *bytes, icl_err *err);

/* 1 if icl_quant_dequantize_row supports `type`: F32, F16, BF16, F64, I8, I16, I32, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K. */
int icl_quant_can_dequantize(int type);
/* Converts n elements (n a multiple of the block size) of packed `type` data at src (any
 * alignment) into n floats at dst. Returns 0, or -1 for an unsupported type or a bad n.
 * Results are bit-exact with ggml's reference dequantization: every product/sum is done in
 * float32 in ggml's order, one rounding per operation. */
int icl_quant_dequantize_row(int type, const void *src, float *dst, int64_t n, icl_err *err);

/* 1 if icl_quant_quantize_row supports `type`: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K. */
int icl_quant_can_quantize(int type);
/* Packs n floats into `type` (n a multiple of the block size); dst must hold
 * icl_quant_row_bytes(type, n) bytes. Returns 0 or -1.
 *   F16/BF16 round to nearest even. Q8_0 uses ggml's reference rule (d = max|x| / 127 stored as
 *   half, q = round(x / d)).
 *   The others use simple rules (not ggml's searched scales; files stay ggml-readable), with this
 *   guarantee for finite x whose block scales fit a half (|x| up to about 5e5 for Q4_0, 6e7 for
 *   the K-quants), where "step" is the element's dequantized step (|d| for Q4_0, d*sc for
 *   Q4_K/Q5_K, |d*sc| for Q6_K) and a few float roundings (relative 2^-20) are ignored:
 *   Q4_0 (d = -max/8 rounded up in magnitude; max is the block's largest-magnitude value) and
 *   Q6_K (per 16 elements, scale -max/32 as an int8 multiple, rounded up in magnitude, of a half
 *   super-scale): |x - dequantized| <= step / 2, except values on the side opposite to max whose
 *   magnitude exceeds 7.5 (Q4_0) / 31.5 (Q6_K) steps, which get the top code: <= one step.
 *   Q4_K/Q5_K (per 32 elements, offset -min(0, min x) and step (max + offset) / 15 (/ 31), both
 *   6-bit multiples, rounded up, of half super-scales): |x - dequantized| <= step / 2. */
int icl_quant_quantize_row(int type, const float *src, void *dst, int64_t n, icl_err *err);

/* IEEE half <-> float. fp32->fp16 rounds to nearest even, overflows to +-inf, keeps NaN a (quiet)
 * NaN of the same sign. fp16->fp32 is exact. */
uint16_t icl_quant_fp32_to_fp16(float f);
float icl_quant_fp16_to_fp32(uint16_t h);
/* bfloat16 (the top 16 bits of a float32) <-> float; fp32->bf16 rounds to nearest even and keeps
 * NaN a quiet NaN. */
uint16_t icl_quant_fp32_to_bf16(float f);
float icl_quant_bf16_to_fp32(uint16_t h);

#endif
