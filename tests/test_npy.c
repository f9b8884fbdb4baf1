/* .npy tests: read numpy-written fixtures (tests/ref/npy_make_fixtures.py), write arrays and have
 * numpy check them (tests/ref/npy_check.py), round trips, header validation and truncation. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_file.h"
#include "iclab/icl_npy.h"
#include "icl_test.h"

/* The value pattern shared with tests/ref/npy_pattern.py. */
static double pattern_f(int64_t i) { return (double)((7 * i) % 101 - 50) * 0.125; }
static int64_t pattern_i(int64_t i) { return (7919 * i) % 100003 - 50000; }

static int matches_pattern(const icl_npy *a) {
    for (int64_t i = 0; i < a->n; i++) {
        switch (a->dtype) {
        case ICL_NPY_F32: if (((float *)a->data)[i] != (float)pattern_f(i)) return 0; break;
        case ICL_NPY_F64: if (((double *)a->data)[i] != pattern_f(i)) return 0; break;
        case ICL_NPY_I32: if (((int32_t *)a->data)[i] != (int32_t)pattern_i(i)) return 0; break;
        case ICL_NPY_I64: if (((int64_t *)a->data)[i] != pattern_i(i)) return 0; break;
        }
    }
    return 1;
}

static void check_fixture(const char *name, icl_npy_dtype dt, int ndim, const int64_t *shape) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", name);
    icl_npy a;
    icl_err err = {{0}};
    int rc = icl_npy_read(path, &a, &err);
    CHECK_MSG(rc == 0, "%s: %s", name, err.msg);
    if (rc) return;
    CHECK_MSG(a.dtype == dt, "%s: dtype %d", name, (int)a.dtype);
    CHECK_MSG(a.ndim == ndim, "%s: ndim %d vs %d", name, a.ndim, ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim && i < a.ndim; i++) {
        CHECK_MSG(a.shape[i] == shape[i], "%s: shape[%d] %lld vs %lld", name, i, (long long)a.shape[i], (long long)shape[i]);
        n *= shape[i];
    }
    CHECK_MSG(a.n == n, "%s: n %lld vs %lld", name, (long long)a.n, (long long)n);
    CHECK_MSG(matches_pattern(&a), "%s: values differ from the pattern", name);
    icl_npy_free(&a);
    CHECK(a.data == NULL);
}

static void expect_read_error(const char *path, const char *needle) {
    icl_npy a;
    icl_err err = {{0}};
    int rc = icl_npy_read(path, &a, &err);
    CHECK_MSG(rc == -1, "%s: read should fail", path);
    CHECK_MSG(a.data == NULL, "%s: data left behind", path);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", path, err.msg, needle);
    if (rc == 0) icl_npy_free(&a);
}

static void fill_pattern(icl_npy_dtype dt, void *p, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        switch (dt) {
        case ICL_NPY_F32: ((float *)p)[i] = (float)pattern_f(i); break;
        case ICL_NPY_F64: ((double *)p)[i] = pattern_f(i); break;
        case ICL_NPY_I32: ((int32_t *)p)[i] = (int32_t)pattern_i(i); break;
        case ICL_NPY_I64: ((int64_t *)p)[i] = pattern_i(i); break;
        }
    }
}

static int have_numpy = -1;

/* Writes an array with the pattern, reads it back in C, and (when numpy is there) has numpy check it. */
static void write_and_check(const char *dir, const char *name, icl_npy_dtype dt, int ndim, const int64_t *shape) {
    static const char *descr[4] = {"<f4", "<f8", "<i4", "<i8"};
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    void *buf = malloc((size_t)(n ? n : 1) * 8);
    fill_pattern(dt, buf, n);
    icl_err err = {{0}};
    int rc = icl_npy_write(path, dt, buf, ndim, shape, &err);
    CHECK_MSG(rc == 0, "write %s: %s", name, err.msg);
    icl_npy a;
    rc = icl_npy_read_as(path, dt, &a, &err);
    CHECK_MSG(rc == 0, "read back %s: %s", name, err.msg);
    if (rc == 0) {
        CHECK(a.ndim == ndim && a.n == n);
        for (int i = 0; i < ndim && i < a.ndim; i++) CHECK(a.shape[i] == shape[i]);
        CHECK_MSG(n == 0 || memcmp(a.data, buf, (size_t)n * (size_t)icl_npy_itemsize(dt)) == 0, "%s: data differs", name);
        icl_npy_free(&a);
    }
    /* The data must start at a multiple of 64 (header v1.0 padded). */
    char *raw;
    size_t len;
    if (icl_read_file(path, &raw, &len, &err) == 0) {
        CHECK(len >= 10 && (10 + (raw[8] & 0xff) + ((raw[9] & 0xff) << 8)) % 64 == 0);
        CHECK(len == (size_t)(10 + (raw[8] & 0xff) + ((raw[9] & 0xff) << 8)) + (size_t)n * (size_t)icl_npy_itemsize(dt));
        free(raw);
    }
    if (have_numpy) {
        char cmd[1024], sh[128] = "";
        for (int i = 0; i < ndim; i++) snprintf(sh + strlen(sh), sizeof sh - strlen(sh), "%s%lld", i ? "," : "", (long long)shape[i]);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/ref/npy_check.py '%s' '%s' '%s'", path, descr[dt], sh);
        int st = system(cmd);
        CHECK_MSG(st == 0, "numpy rejected %s (status %d)", name, st);
    }
    free(buf);
}

/* Writes raw bytes as a file (for hand-made bad headers). */
static void put_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

/* A v1.0 .npy file with the given header text (padded) and nbytes zero data bytes. */
static void put_npy(const char *path, const char *hdr, size_t nbytes) {
    char buf[4096];
    size_t hl = strlen(hdr);
    size_t total = (10 + hl + 1 + 63) / 64 * 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, hdr, hl);
    memset(buf + 10 + hl, ' ', total - 10 - hl - 1);
    buf[total - 1] = '\n';
    memset(buf + total, 0, nbytes);
    put_file(path, buf, total + nbytes);
}

int main(void) {
    /* numpy-written fixtures */
    check_fixture("npy_f32_234.npy", ICL_NPY_F32, 3, (int64_t[]){2, 3, 4});
    check_fixture("npy_i32_57.npy", ICL_NPY_I32, 2, (int64_t[]){5, 7});
    check_fixture("npy_f64_3.npy", ICL_NPY_F64, 1, (int64_t[]){3});
    check_fixture("npy_i64_4.npy", ICL_NPY_I64, 1, (int64_t[]){4});
    check_fixture("npy_f32_scalar.npy", ICL_NPY_F32, 0, NULL);
    check_fixture("npy_f32_03.npy", ICL_NPY_F32, 2, (int64_t[]){0, 3});
    expect_read_error("tests/fixtures/npy_fortran.npy", "fortran_order");
    expect_read_error("tests/fixtures/npy_bigendian.npy", "big-endian");
    expect_read_error("tests/fixtures/does_not_exist.npy", "cannot open");
    {
        icl_npy a;
        icl_err err = {{0}};
        CHECK(icl_npy_read_as("tests/fixtures/npy_f64_3.npy", ICL_NPY_F32, &a, &err) == -1);
        CHECK_MSG(strstr(err.msg, "expected '<f4'") != NULL, "%s", err.msg);
        CHECK(a.data == NULL);
    }

    char dir[] = "/tmp/iclab-npy-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    have_numpy = system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0;
    if (!have_numpy) printf("SKIP /usr/bin/python3 with numpy not found: the numpy checks of written files\n");

    /* C-written arrays, checked by numpy */
    write_and_check(dir, "f32_234.npy", ICL_NPY_F32, 3, (int64_t[]){2, 3, 4});
    write_and_check(dir, "i32_57.npy", ICL_NPY_I32, 2, (int64_t[]){5, 7});
    write_and_check(dir, "f64_3.npy", ICL_NPY_F64, 1, (int64_t[]){3});
    write_and_check(dir, "i64_6.npy", ICL_NPY_I64, 1, (int64_t[]){6});
    write_and_check(dir, "f32_scalar.npy", ICL_NPY_F32, 0, NULL);
    write_and_check(dir, "f32_03.npy", ICL_NPY_F32, 2, (int64_t[]){0, 3});
    write_and_check(dir, "f32_big.npy", ICL_NPY_F32, 2, (int64_t[]){300, 7});
    write_and_check(dir, "f32_8d.npy", ICL_NPY_F32, 8, (int64_t[]){2, 1, 2, 1, 2, 1, 2, 3});
    write_and_check(dir, "i32_long_dims.npy", ICL_NPY_I32, 4, (int64_t[]){1, 1000001, 0, 1});

    /* Every truncation of a written file must fail cleanly. */
    {
        char path[512], tpath[512];
        snprintf(path, sizeof path, "%s/f32_234.npy", dir);
        snprintf(tpath, sizeof tpath, "%s/trunc.npy", dir);
        char *raw;
        size_t len;
        icl_err err = {{0}};
        CHECK(icl_read_file(path, &raw, &len, &err) == 0);
        int fails = 0;
        for (size_t k = 0; k < len; k++) {
            put_file(tpath, raw, k);
            icl_npy a;
            if (icl_npy_read(tpath, &a, &err) == -1) fails++;
            else icl_npy_free(&a);
        }
        CHECK_MSG(fails == (int)len, "%d of %zu truncations failed", fails, len);
        /* one trailing byte too many is an error too */
        raw = realloc(raw, len + 1);
        raw[len] = 0;
        put_file(tpath, raw, len + 1);
        expect_read_error(tpath, "holds");
        free(raw);
    }

    /* Hand-made headers */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/bad.npy", dir);
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
        icl_npy a;
        icl_err err = {{0}};
        CHECK(icl_npy_read(p, &a, &err) == 0 && a.n == 2);
        icl_npy_free(&a);
        put_npy(p, "{\"shape\": (2,),\"descr\":\"<i4\",\"fortran_order\":False}", 8); /* other order and quotes */
        CHECK_MSG(icl_npy_read(p, &a, &err) == 0 && a.dtype == ICL_NPY_I32 && a.n == 2, "%s", err.msg);
        icl_npy_free(&a);
        put_npy(p, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16);
        expect_read_error(p, "unsupported dtype");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, }", 8);
        expect_read_error(p, "lacks 'shape'");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 8);
        expect_read_error(p, "bad shape");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", 8);
        expect_read_error(p, "overflow");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", 8);
        expect_read_error(p, "trailing");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", 8);
        expect_read_error(p, "unexpected key");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4);
        expect_read_error(p, "more than 8");
        put_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,3), }", 8);
        expect_read_error(p, "needs 24 data bytes");
        put_file(p, "\x93NUMPY\x09\x00\x10\x00", 10);
        expect_read_error(p, "version 9");
        put_file(p, "\x93NUMPX\x01\x00\x10\x00", 10);
        expect_read_error(p, "bad magic");
        put_file(p, "\x93NUMPY\x01\x00\xff\x7f{}", 12);
        expect_read_error(p, "runs past");
    }

    /* Writing into a missing directory fails and leaves nothing. */
    {
        char p[512];
        snprintf(p, sizeof p, "%s/missing/x.npy", dir);
        float v = 1.0f;
        icl_err err = {{0}};
        CHECK(icl_npy_write_f32(p, &v, 1, (int64_t[]){1}, &err) == -1);
        CHECK(!icl_path_exists(p));
        CHECK(err.msg[0] != 0);
        CHECK(icl_npy_write_f32(p, &v, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}, &err) == -1);
        CHECK(icl_npy_write_f32(p, &v, 1, (int64_t[]){-1}, &err) == -1);
    }

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return icl_test_finish();
}
