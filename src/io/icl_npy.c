/* .npy reading and writing (format: numpy's NEP 1 / numpy.lib.format). The header is a Python dict
 * literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }; we write it and
 * parse it with a small tokenizer that accepts the dict syntax numpy produces (either quote style,
 * any key order, optional trailing commas, any spacing) and rejects everything else. */
#include "iclab/icl_npy.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "iclab/icl_file.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy code writes and reads little-endian data directly and needs a little-endian host"
#endif

static const char *const DESCR[4] = {"<f4", "<f8", "<i4", "<i8"};

int icl_npy_itemsize(icl_npy_dtype dtype) {
    switch (dtype) {
    case ICL_NPY_F32: case ICL_NPY_I32: return 4;
    case ICL_NPY_F64: case ICL_NPY_I64: return 8;
    }
    return 0;
}

/* Element count of a shape, -1 on a negative dimension or overflow. */
static int64_t shape_count(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || __builtin_mul_overflow(n, shape[i], &n)) return -1;
    }
    return n;
}

/* ------------------------------------------------------------------ writing */

int icl_npy_write(const char *path, icl_npy_dtype dtype, const void *data, int ndim, const int64_t *shape,
                  icl_err *err) {
    int isz = icl_npy_itemsize(dtype);
    if (!isz) return icl_errf(err, "%s: invalid npy dtype %d", path, (int)dtype);
    if (ndim < 0 || ndim > ICL_NPY_MAX_DIMS) return icl_errf(err, "%s: ndim %d not in 0..%d", path, ndim, ICL_NPY_MAX_DIMS);
    if (ndim && !shape) return icl_errf(err, "%s: NULL shape", path);
    int64_t n = shape_count(ndim, shape);
    if (n < 0 || n > INT64_MAX / isz) return icl_errf(err, "%s: invalid or overflowing shape", path);
    if (n && !data) return icl_errf(err, "%s: NULL data", path);

    char hdr[512];
    int len = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", DESCR[dtype]);
    for (int i = 0; i < ndim; i++)
        len += snprintf(hdr + len, sizeof hdr - (size_t)len, "%s%lld", i ? ", " : "", (long long)shape[i]);
    len += snprintf(hdr + len, sizeof hdr - (size_t)len, "%s), }", ndim == 1 ? "," : "");
    /* Pad with spaces and a final newline so that 10-byte preamble + header is a multiple of 64. */
    int total = (10 + len + 1 + 63) / 64 * 64;
    int hl = total - 10;
    if (hl + 1 > (int)sizeof hdr) return icl_errf(err, "%s: npy header too long", path);
    memset(hdr + len, ' ', (size_t)(hl - len - 1));
    hdr[hl - 1] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hl & 0xff), (uint8_t)(hl >> 8)};

    icl_afile af;
    if (icl_afile_open(&af, path, err)) return -1;
    if (icl_afile_write(&af, pre, sizeof pre, err) || icl_afile_write(&af, hdr, (size_t)hl, err) ||
        icl_afile_write(&af, data, (size_t)n * (size_t)isz, err)) {
        icl_afile_abort(&af);
        return -1;
    }
    return icl_afile_commit(&af, err);
}

int icl_npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, icl_err *err) {
    return icl_npy_write(path, ICL_NPY_F32, data, ndim, shape, err);
}
int icl_npy_write_f64(const char *path, const double *data, int ndim, const int64_t *shape, icl_err *err) {
    return icl_npy_write(path, ICL_NPY_F64, data, ndim, shape, err);
}
int icl_npy_write_i32(const char *path, const int32_t *data, int ndim, const int64_t *shape, icl_err *err) {
    return icl_npy_write(path, ICL_NPY_I32, data, ndim, shape, err);
}

/* ------------------------------------------------------------------ header parsing */

typedef struct {
    const char *s;
    size_t n, i;
} lex;

static void skip_ws(lex *x) {
    while (x->i < x->n && (x->s[x->i] == ' ' || x->s[x->i] == '\t' || x->s[x->i] == '\n' || x->s[x->i] == '\r')) x->i++;
}

static int eat(lex *x, char c) {
    skip_ws(x);
    if (x->i < x->n && x->s[x->i] == c) {
        x->i++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes (numpy never writes any in these headers); copied into out. */
static int parse_str(lex *x, char *out, size_t cap) {
    skip_ws(x);
    if (x->i >= x->n || (x->s[x->i] != '\'' && x->s[x->i] != '"')) return -1;
    char q = x->s[x->i++];
    size_t k = 0;
    while (x->i < x->n && x->s[x->i] != q) {
        if (x->s[x->i] == '\\' || k + 1 >= cap) return -1;
        out[k++] = x->s[x->i++];
    }
    if (x->i >= x->n) return -1;
    x->i++;
    out[k] = 0;
    return 0;
}

static int parse_word(lex *x, const char *w) {
    skip_ws(x);
    size_t l = strlen(w);
    if (x->n - x->i >= l && memcmp(x->s + x->i, w, l) == 0) {
        x->i += l;
        return 1;
    }
    return 0;
}

/* (d0, d1, ...) with an optional trailing comma, "()" for a scalar. Accepts numpy's "L" suffix. */
static int parse_shape(lex *x, int *ndim, int64_t *shape, icl_err *err, const char *path) {
    if (!eat(x, '(')) return icl_errf(err, "%s: npy header: shape is not a tuple", path);
    int nd = 0;
    for (;;) {
        if (eat(x, ')')) break;
        skip_ws(x);
        if (x->i >= x->n || x->s[x->i] < '0' || x->s[x->i] > '9')
            return icl_errf(err, "%s: npy header: bad shape entry", path);
        int64_t v = 0;
        while (x->i < x->n && x->s[x->i] >= '0' && x->s[x->i] <= '9') {
            if (v > (INT64_MAX - 9) / 10) return icl_errf(err, "%s: npy header: shape entry too large", path);
            v = v * 10 + (x->s[x->i++] - '0');
        }
        if (x->i < x->n && x->s[x->i] == 'L') x->i++;
        if (nd == ICL_NPY_MAX_DIMS) return icl_errf(err, "%s: npy array has more than %d dimensions", path, ICL_NPY_MAX_DIMS);
        shape[nd++] = v;
        if (eat(x, ',')) continue;
        if (eat(x, ')')) break;
        return icl_errf(err, "%s: npy header: bad shape tuple", path);
    }
    *ndim = nd;
    return 0;
}

static int parse_header(const char *h, size_t n, icl_npy *out, icl_err *err, const char *path) {
    lex x = {h, n, 0};
    int have_descr = 0, have_fo = 0, have_shape = 0;
    if (!eat(&x, '{')) return icl_errf(err, "%s: npy header is not a dict", path);
    for (;;) {
        if (eat(&x, '}')) break;
        char key[32], val[32];
        if (parse_str(&x, key, sizeof key) || !eat(&x, ':')) return icl_errf(err, "%s: npy header: bad dict syntax", path);
        if (strcmp(key, "descr") == 0) {
            if (parse_str(&x, val, sizeof val)) return icl_errf(err, "%s: npy header: descr is not a simple dtype string", path);
            int d = -1;
            for (int k = 0; k < 4; k++)
                if (strcmp(val, DESCR[k]) == 0) d = k;
            if (d < 0) {
                if (val[0] == '>') return icl_errf(err, "%s: big-endian dtype '%s' is not supported", path, val);
                return icl_errf(err, "%s: unsupported dtype '%s' (want <f4, <f8, <i4 or <i8)", path, val);
            }
            out->dtype = (icl_npy_dtype)d;
            have_descr = 1;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (parse_word(&x, "True")) return icl_errf(err, "%s: fortran_order arrays are not supported", path);
            if (!parse_word(&x, "False")) return icl_errf(err, "%s: npy header: bad fortran_order value", path);
            have_fo = 1;
        } else if (strcmp(key, "shape") == 0) {
            if (parse_shape(&x, &out->ndim, out->shape, err, path)) return -1;
            have_shape = 1;
        } else {
            return icl_errf(err, "%s: npy header: unexpected key '%s'", path, key);
        }
        if (eat(&x, ',')) continue;
        if (eat(&x, '}')) break;
        return icl_errf(err, "%s: npy header: bad dict syntax", path);
    }
    skip_ws(&x);
    if (x.i != x.n) return icl_errf(err, "%s: npy header: trailing characters after the dict", path);
    if (!have_descr || !have_fo || !have_shape)
        return icl_errf(err, "%s: npy header lacks '%s'", path, !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
    return 0;
}

/* ------------------------------------------------------------------ reading */

void icl_npy_free(icl_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

static int read_fail(FILE *f, char *h, icl_npy *out) {
    if (f) fclose(f);
    free(h);
    icl_npy_free(out);
    return -1;
}

int icl_npy_read(const char *path, icl_npy *out, icl_err *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return icl_errf(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return icl_errf(err, "%s: not a regular file", path);
    }
    uint64_t fsize = (uint64_t)st.st_size;
    uint8_t pre[12];
    if (fsize < 10 || fread(pre, 1, 10, f) != 10) {
        fclose(f);
        return icl_errf(err, "%s: too short for a .npy file (%llu bytes)", path, (unsigned long long)fsize);
    }
    if (memcmp(pre, "\x93NUMPY", 6) != 0) {
        fclose(f);
        return icl_errf(err, "%s: not a .npy file (bad magic)", path);
    }
    uint64_t hl, off;
    if (pre[6] == 1 && pre[7] == 0) {
        hl = (uint64_t)pre[8] | ((uint64_t)pre[9] << 8);
        off = 10;
    } else if ((pre[6] == 2 || pre[6] == 3) && pre[7] == 0) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            fclose(f);
            return icl_errf(err, "%s: truncated .npy header", path);
        }
        hl = (uint64_t)pre[8] | ((uint64_t)pre[9] << 8) | ((uint64_t)pre[10] << 16) | ((uint64_t)pre[11] << 24);
        off = 12;
    } else {
        fclose(f);
        return icl_errf(err, "%s: unsupported .npy format version %u.%u", path, pre[6], pre[7]);
    }
    if (hl > fsize - off || hl > (1u << 20)) {
        fclose(f);
        return icl_errf(err, "%s: .npy header length %llu runs past the end of the file", path, (unsigned long long)hl);
    }
    char *h = malloc(hl + 1);
    if (!h) {
        fclose(f);
        return icl_errf(err, "out of memory");
    }
    if (fread(h, 1, hl, f) != hl) {
        icl_errf(err, "%s: truncated .npy header", path);
        return read_fail(f, h, out);
    }
    h[hl] = 0;
    if (parse_header(h, hl, out, err, path)) return read_fail(f, h, out);
    free(h);
    h = NULL;
    int isz = icl_npy_itemsize(out->dtype);
    out->n = shape_count(out->ndim, out->shape);
    if (out->n < 0 || out->n > INT64_MAX / isz) {
        icl_errf(err, "%s: shape overflows", path);
        return read_fail(f, h, out);
    }
    uint64_t bytes = (uint64_t)out->n * (uint64_t)isz, have = fsize - off - hl;
    if (bytes != have) {
        icl_errf(err, "%s: shape needs %llu data bytes but the file holds %llu", path, (unsigned long long)bytes,
                 (unsigned long long)have);
        return read_fail(f, h, out);
    }
    out->data = malloc(bytes ? (size_t)bytes : 1);
    if (!out->data) {
        icl_errf(err, "%s: out of memory for %llu bytes", path, (unsigned long long)bytes);
        return read_fail(f, h, out);
    }
    if (bytes && fread(out->data, 1, (size_t)bytes, f) != bytes) {
        icl_errf(err, "%s: read error", path);
        return read_fail(f, h, out);
    }
    fclose(f);
    return 0;
}

int icl_npy_read_as(const char *path, icl_npy_dtype want, icl_npy *out, icl_err *err) {
    if (icl_npy_read(path, out, err)) return -1;
    if (out->dtype != want) {
        icl_errf(err, "%s: dtype is '%s', expected '%s'", path, DESCR[out->dtype],
                 icl_npy_itemsize(want) ? DESCR[want] : "?");
        icl_npy_free(out);
        return -1;
    }
    return 0;
}
