/* GGUF container (llama.cpp/ggml's model file format), versions 2 and 3, little-endian: a reader
 * that memory-maps the file and validates every count, length, offset and size against the file
 * before use, and an in-memory writer that writes version 3 atomically.
 *
 * Layout: "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv (key, u32 type, value) entries;
 * n_tensors tensor infos (name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); padding
 * to `general.alignment` (default 32); the data section. Tensor offsets are relative to the data
 * section and multiples of the alignment. Strings are a u64 byte count and the bytes (no NUL).
 *
 * iclab stores its own checkpoints here (weights and Adam moments as tensors; step, RNG state and
 * config as metadata) and reads pretrained LLMs from it. Tensor shapes use ggml order: ne[0] is
 * the contiguous row length, so a PyTorch (rows, cols) matrix has ne = {cols, rows}. */
#ifndef ICL_GGUF_H
#define ICL_GGUF_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"
#include "iclab/icl_quant.h"

/* Metadata value types (the ids stored in the file). */
enum icl_gguf_type {
    ICL_GGUF_UINT8 = 0,
    ICL_GGUF_INT8 = 1,
    ICL_GGUF_UINT16 = 2,
    ICL_GGUF_INT16 = 3,
    ICL_GGUF_UINT32 = 4,
    ICL_GGUF_INT32 = 5,
    ICL_GGUF_FLOAT32 = 6,
    ICL_GGUF_BOOL = 7,
    ICL_GGUF_STRING = 8,
    ICL_GGUF_ARRAY = 9,
    ICL_GGUF_UINT64 = 10,
    ICL_GGUF_INT64 = 11,
    ICL_GGUF_FLOAT64 = 12,
    ICL_GGUF_TYPE_COUNT = 13
};

#define ICL_GGUF_DEFAULT_ALIGNMENT 32
#define ICL_GGUF_MAX_DIMS 4
/* Arrays may nest (array of arrays ...) at most this deep; deeper files are rejected. */
#define ICL_GGUF_MAX_NESTING 8

/* Name of a metadata type ("uint32", "string", "array", ...), "unknown" otherwise. */
const char *icl_gguf_type_name(int type);

/* ------------------------------------------------------------------ reader */

typedef struct icl_gguf icl_gguf;

/* One tensor. `data` points into the mapped file (aligned to the file's alignment relative to the
 * start of the file) and stays valid until icl_gguf_close. ne[i] = 1 for i >= n_dims. */
typedef struct icl_gguf_tensor {
    const char *name;   /* NUL-terminated */
    int type;           /* ggml type id (enum icl_ggml_type) */
    int n_dims;         /* 0..4 */
    int64_t ne[ICL_GGUF_MAX_DIMS];
    int64_t n_elements; /* product of ne */
    uint64_t offset;    /* from the start of the data section */
    uint64_t n_bytes;   /* bytes of data */
    const void *data;
} icl_gguf_tensor;

/* Opens and validates a GGUF file, mapping it read-only (never reading it whole). On failure *g is
 * NULL and err holds a one-line message naming the file and what is wrong. An open handle is never
 * modified, so several threads may read from it at once. */
int icl_gguf_open(icl_gguf **g, const char *path, icl_err *err);
/* Same, over a caller's buffer (not copied: it must outlive the handle). Tensor data is aligned
 * relative to the start of the buffer; its address is as aligned as the buffer is. */
int icl_gguf_open_memory(icl_gguf **g, const void *data, size_t size, icl_err *err);
/* Unmaps and frees; NULL is fine. Every pointer obtained from g dies with it. */
void icl_gguf_close(icl_gguf *g);

uint32_t icl_gguf_version(const icl_gguf *g);
uint64_t icl_gguf_alignment(const icl_gguf *g);
/* Byte offset of the data section in the file, and the file's size. */
uint64_t icl_gguf_data_offset(const icl_gguf *g);
uint64_t icl_gguf_file_size(const icl_gguf *g);

/* -- metadata -- */
int icl_gguf_n_kv(const icl_gguf *g);
/* Index of a key (hashed lookup), or -1 if absent. */
int icl_gguf_find_key(const icl_gguf *g, const char *key);
/* Key and value type of entry i (0 <= i < n_kv); NULL / -1 when i is out of range. */
const char *icl_gguf_kv_key(const icl_gguf *g, int i);
int icl_gguf_kv_type(const icl_gguf *g, int i);
/* Writes a short human-readable rendering of value i into buf (arrays show their first elements);
 * always NUL-terminates when n > 0. For dumps and diagnostics. */
void icl_gguf_kv_format(const icl_gguf *g, int i, char *buf, size_t n);

/* Typed getters: fail with "key 'K' not found" or "key 'K' has type T, expected U". */
int icl_gguf_get_u8(const icl_gguf *g, const char *key, uint8_t *out, icl_err *err);
int icl_gguf_get_i8(const icl_gguf *g, const char *key, int8_t *out, icl_err *err);
int icl_gguf_get_u16(const icl_gguf *g, const char *key, uint16_t *out, icl_err *err);
int icl_gguf_get_i16(const icl_gguf *g, const char *key, int16_t *out, icl_err *err);
int icl_gguf_get_u32(const icl_gguf *g, const char *key, uint32_t *out, icl_err *err);
int icl_gguf_get_i32(const icl_gguf *g, const char *key, int32_t *out, icl_err *err);
int icl_gguf_get_u64(const icl_gguf *g, const char *key, uint64_t *out, icl_err *err);
int icl_gguf_get_i64(const icl_gguf *g, const char *key, int64_t *out, icl_err *err);
int icl_gguf_get_f32(const icl_gguf *g, const char *key, float *out, icl_err *err);
int icl_gguf_get_f64(const icl_gguf *g, const char *key, double *out, icl_err *err);
/* Any nonzero byte reads as true. */
int icl_gguf_get_bool(const icl_gguf *g, const char *key, int *out, icl_err *err);
/* String value, NUL-terminated (owned by g). An embedded NUL would cut it short: use _strn. */
int icl_gguf_get_str(const icl_gguf *g, const char *key, const char **out, icl_err *err);
int icl_gguf_get_strn(const icl_gguf *g, const char *key, const char **out, uint64_t *len, icl_err *err);
/* Any integer type (or bool) as int64; a uint64 above INT64_MAX is an error. Files differ in which
 * integer type they use for the same key, so prefer this for counts and sizes. */
int icl_gguf_get_int(const icl_gguf *g, const char *key, int64_t *out, icl_err *err);
/* Any numeric type (integers, floats, bool) as double. */
int icl_gguf_get_num(const icl_gguf *g, const char *key, double *out, icl_err *err);

/* A view of an array value, valid while g lives. */
typedef struct icl_gguf_arr {
    int type;   /* element type (may be ICL_GGUF_ARRAY for nested arrays) */
    uint64_t n; /* number of elements */
    const void *impl;
} icl_gguf_arr;

/* The array stored under key ("key 'K' has type T, expected array" otherwise). */
int icl_gguf_get_arr(const icl_gguf *g, const char *key, icl_gguf_arr *out, icl_err *err);
/* Element i of an integer or bool array as int64 (uint64 above INT64_MAX is an error). */
int icl_gguf_arr_int(const icl_gguf_arr *a, uint64_t i, int64_t *out, icl_err *err);
/* Element i of any numeric array as double. */
int icl_gguf_arr_num(const icl_gguf_arr *a, uint64_t i, double *out, icl_err *err);
/* String i of a string array: a pointer into the file, NOT NUL-terminated, its byte count in *len.
 * NULL if the array does not hold strings or i is out of range. */
const char *icl_gguf_arr_str(const icl_gguf_arr *a, uint64_t i, uint64_t *len);
/* Element i of an array of arrays. */
int icl_gguf_arr_sub(const icl_gguf_arr *a, uint64_t i, icl_gguf_arr *out, icl_err *err);
/* All n elements of a numeric array converted to float / int32 (integers must fit). */
int icl_gguf_arr_to_f32(const icl_gguf_arr *a, float *dst, icl_err *err);
int icl_gguf_arr_to_i32(const icl_gguf_arr *a, int32_t *dst, icl_err *err);
/* Raw little-endian element bytes of a fixed-size-element array (pointer into the file, possibly
 * unaligned: memcpy from it), element size in *elem_size; NULL for string or nested arrays. */
const void *icl_gguf_arr_raw(const icl_gguf_arr *a, size_t *elem_size);

/* -- tensors -- */
int icl_gguf_n_tensors(const icl_gguf *g);
/* Tensor i in file order, NULL when out of range. */
const icl_gguf_tensor *icl_gguf_tensor_at(const icl_gguf *g, int i);
/* Tensor by name (hashed), NULL if absent. */
const icl_gguf_tensor *icl_gguf_find_tensor(const icl_gguf *g, const char *name);
/* Same, failing with "tensor 'N' not found" when absent. */
int icl_gguf_get_tensor(const icl_gguf *g, const char *name, const icl_gguf_tensor **out, icl_err *err);
/* Dequantizes a whole tensor into dst (n_elements floats) with icl_quant_dequantize_row. */
int icl_gguf_tensor_to_f32(const icl_gguf_tensor *t, float *dst, icl_err *err);

/* ------------------------------------------------------------------ writer */

/* Collects metadata and tensors in memory, then writes a version-3 file in one go. Tensor data is
 * not copied: the caller keeps it alive until icl_gguf_writer_write returns. Keys must be unique
 * (a duplicate is an error), 1..65535 bytes; tensor names unique, 1..63 bytes (ggml's limit). A
 * `general.alignment` uint32 (a power of two) sets the data alignment; otherwise 32. */
typedef struct icl_gguf_writer icl_gguf_writer;

int icl_gguf_writer_init(icl_gguf_writer **w, icl_err *err);
void icl_gguf_writer_free(icl_gguf_writer *w);

int icl_gguf_writer_add_u8(icl_gguf_writer *w, const char *key, uint8_t v, icl_err *err);
int icl_gguf_writer_add_i8(icl_gguf_writer *w, const char *key, int8_t v, icl_err *err);
int icl_gguf_writer_add_u16(icl_gguf_writer *w, const char *key, uint16_t v, icl_err *err);
int icl_gguf_writer_add_i16(icl_gguf_writer *w, const char *key, int16_t v, icl_err *err);
int icl_gguf_writer_add_u32(icl_gguf_writer *w, const char *key, uint32_t v, icl_err *err);
int icl_gguf_writer_add_i32(icl_gguf_writer *w, const char *key, int32_t v, icl_err *err);
int icl_gguf_writer_add_u64(icl_gguf_writer *w, const char *key, uint64_t v, icl_err *err);
int icl_gguf_writer_add_i64(icl_gguf_writer *w, const char *key, int64_t v, icl_err *err);
int icl_gguf_writer_add_f32(icl_gguf_writer *w, const char *key, float v, icl_err *err);
int icl_gguf_writer_add_f64(icl_gguf_writer *w, const char *key, double v, icl_err *err);
int icl_gguf_writer_add_bool(icl_gguf_writer *w, const char *key, int v, icl_err *err);
int icl_gguf_writer_add_str(icl_gguf_writer *w, const char *key, const char *s, icl_err *err);
/* Array of n fixed-size elements of `elem_type` (any numeric type or bool) from data laid out as the
 * matching C type (uint8_t for bool, 0 or 1); copied. */
int icl_gguf_writer_add_arr(icl_gguf_writer *w, const char *key, int elem_type, const void *data, uint64_t n,
                            icl_err *err);
/* Array of n strings; lens[i] gives each byte count (strings may then hold NULs), or lens == NULL
 * for NUL-terminated strings. Copied. */
int icl_gguf_writer_add_arr_str(icl_gguf_writer *w, const char *key, const char *const *strs, const uint64_t *lens,
                                uint64_t n, icl_err *err);
/* Copies metadata entry i of an open file, whatever its type (nested arrays included). */
int icl_gguf_writer_copy_kv(icl_gguf_writer *w, const icl_gguf *g, int i, icl_err *err);
/* Adds a tensor of ggml `type` with n_dims (1..4) sizes ne (ggml order, ne[0] a multiple of the
 * type's block size) whose icl_quant_row_bytes(type, ne[0]) * ne[1] * ... bytes are at data. */
int icl_gguf_writer_add_tensor(icl_gguf_writer *w, const char *name, int type, int n_dims, const int64_t *ne,
                               const void *data, icl_err *err);
/* Writes the file atomically (temp file, fsync, rename). On any error (disk full included) returns
 * -1, the target is left as it was and no temporary file remains. May be called more than once. */
int icl_gguf_writer_write(const icl_gguf_writer *w, const char *path, icl_err *err);

#endif
