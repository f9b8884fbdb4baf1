/* Atomic writes (temp + fsync + rename), whole-file reads and directory creation. */
#include "iclab/icl_file.h"
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int icl_afile_open(icl_afile *af, const char *path, icl_err *err) {
    memset(af, 0, sizeof *af);
    if (strlen(path) + 32 >= sizeof af->path) return icl_errf(err, "path too long: %s", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return icl_errf(err, "cannot create %s: %s", af->tmp, strerror(errno));
    return 0;
}

int icl_afile_write(icl_afile *af, const void *data, size_t n, icl_err *err) {
    if (af->failed) return -1;
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = errno ? errno : EIO;
        return icl_errf(err, "writing %s: %s", af->path, strerror(af->failed));
    }
    return 0;
}

int icl_afile_printf(icl_afile *af, icl_err *err, const char *fmt, ...) {
    if (af->failed) return -1;
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(af->f, fmt, ap);
    va_end(ap);
    if (r < 0) {
        af->failed = errno ? errno : EIO;
        return icl_errf(err, "writing %s: %s", af->path, strerror(af->failed));
    }
    return 0;
}

static void fsync_parent_dir(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    int fd = open(dirname(buf), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int icl_afile_commit(icl_afile *af, icl_err *err) {
    if (!af->f) return icl_errf(err, "writing %s: file not open", af->path);
    int bad = af->failed;
    if (!bad && fflush(af->f) != 0) bad = errno ? errno : EIO;
    if (!bad && fsync(fileno(af->f)) != 0) bad = errno ? errno : EIO;
    if (fclose(af->f) != 0 && !bad) bad = errno ? errno : EIO;
    af->f = NULL;
    if (!bad && rename(af->tmp, af->path) != 0) bad = errno ? errno : EIO;
    if (bad) {
        unlink(af->tmp);
        return icl_errf(err, "writing %s: %s", af->path, strerror(bad));
    }
    fsync_parent_dir(af->path);
    return 0;
}

void icl_afile_abort(icl_afile *af) {
    if (af->f) {
        fclose(af->f);
        af->f = NULL;
        unlink(af->tmp);
    }
}

int icl_write_file_atomic(const char *path, const void *data, size_t n, icl_err *err) {
    icl_afile af;
    if (icl_afile_open(&af, path, err)) return -1;
    if (icl_afile_write(&af, data, n, err)) {
        icl_afile_abort(&af);
        return -1;
    }
    return icl_afile_commit(&af, err);
}

int icl_read_file(const char *path, char **data, size_t *n, icl_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return icl_errf(err, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return icl_errf(err, "out of memory reading %s", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(f);
                return icl_errf(err, "out of memory reading %s", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return icl_errf(err, "error reading %s", path);
    }
    buf[len] = 0;
    *data = buf;
    if (n) *n = len;
    return 0;
}

int icl_mkdirs(const char *path, icl_err *err) {
    char buf[4096];
    if (strlen(path) >= sizeof buf) return icl_errf(err, "path too long: %s", path);
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return icl_errf(err, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return icl_errf(err, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) return icl_errf(err, "%s exists and is not a directory", buf);
    return 0;
}

int icl_path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}
