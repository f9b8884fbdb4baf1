/* libFuzzer target for the .npy reader: each input is written to a temporary file and read with
 * icl_npy_read (the library's only entry point, which streams from a file). An accepted array
 * must be consistent: n is the product of the shape, the data holds n elements, and reading with
 * the array's own dtype gives the same. Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_npy.h"
#include "fuzz_tmpfile.h"

static volatile uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_tmp_write(data, size, ".npy");
    icl_npy a, b;
    icl_err err;
    if (icl_npy_read(path, &a, &err) != 0) {
        if (!err.msg[0] || a.data) abort(); /* a failure says why and leaves nothing allocated */
        return 0;
    }
    int64_t n = 1;
    if (a.ndim < 0 || a.ndim > ICL_NPY_MAX_DIMS) abort();
    for (int i = 0; i < a.ndim; i++) n *= a.shape[i];
    if (n != a.n) abort();
    size_t bytes = (size_t)a.n * (size_t)icl_npy_itemsize(a.dtype);
    const uint8_t *p = a.data;
    if (bytes) sink += p[0] + p[bytes - 1];
    if (icl_npy_read_as(path, a.dtype, &b, &err) != 0 || b.n != a.n || memcmp(a.data, b.data, bytes)) abort();
    icl_npy_free(&b);
    icl_npy_free(&a);
    return 0;
}
