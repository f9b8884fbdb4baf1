/* numpy's .npy array files: representations and other arrays iclab hands to Python.
 *
 * Writes C-order little-endian float32 / float64 / int32 / int64 arrays of any shape (up to
 * ICL_NPY_MAX_DIMS dims, 0-d included) with a version 1.0 header padded so the data starts at a
 * multiple of 64 bytes, atomically (temp file + fsync + rename). Reads the same dtypes back from
 * header versions 1.0, 2.0 and 3.0, validating the header (magic, dict syntax, dtype, C order,
 * shape) and that the data is exactly shape-product * itemsize bytes. */
#ifndef ICL_NPY_H
#define ICL_NPY_H
#include <stdint.h>
#include "iclab/icl_err.h"

#define ICL_NPY_MAX_DIMS 8

typedef enum icl_npy_dtype {
    ICL_NPY_F32 = 0, /* '<f4' */
    ICL_NPY_F64 = 1, /* '<f8' */
    ICL_NPY_I32 = 2, /* '<i4' */
    ICL_NPY_I64 = 3  /* '<i8' */
} icl_npy_dtype;

/* An array read from a file; data is malloc'd and owned by the struct (free with icl_npy_free). */
typedef struct icl_npy {
    icl_npy_dtype dtype;
    int ndim;                         /* 0 for a scalar */
    int64_t shape[ICL_NPY_MAX_DIMS];
    int64_t n;                        /* number of elements (product of shape; 1 for ndim 0) */
    void *data;                       /* n elements of dtype, C order */
} icl_npy;

/* Bytes per element of a dtype (4 or 8), 0 for an invalid value. */
int icl_npy_itemsize(icl_npy_dtype dtype);

/* Writes n = prod(shape) elements of dtype from data (C order) to path atomically. ndim may be 0
 * (a scalar; shape may then be NULL). Returns 0 or -1 with err set; on failure no file is left. */
int icl_npy_write(const char *path, icl_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                  icl_err *err);
int icl_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, icl_err *err);
int icl_npy_write_f64(const char *path, const double *data, int ndim, const int64_t *shape, icl_err *err);
int icl_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape, icl_err *err);

/* Reads a .npy file of dtype '<f4', '<f8', '<i4' or '<i8' (C order). On failure *out is zeroed and
 * err names the file and the problem (e.g. "fortran_order arrays are not supported"). */
int icl_npy_read(const char *path, icl_npy *out, icl_err *err);
/* Same, also requiring the given dtype ("x.npy: dtype is '<f8', expected '<f4'"). */
int icl_npy_read_as(const char *path, icl_npy_dtype want, icl_npy *out, icl_err *err);
/* Frees data and zeroes the struct; safe on a zeroed struct. */
void icl_npy_free(icl_npy *a);

#endif
