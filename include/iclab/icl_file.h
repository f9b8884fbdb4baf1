/* Atomic file output: data goes to a temporary file beside the target, is flushed and fsynced,
 * then renamed over the target, so readers see the old file or the whole new one, never half.
 * Every write error (a full disk included) is caught and reported; the temporary is removed. */
#ifndef ICL_FILE_H
#define ICL_FILE_H
#include <stddef.h>
#include <stdio.h>
#include "iclab/icl_err.h"

typedef struct icl_afile {
    FILE *f;
    char path[4096];
    char tmp[4096];
    int failed; /* a write failed; commit will refuse */
} icl_afile;

/* Opens a temporary file for `path`. Returns 0 or -1 with err set. */
int icl_afile_open(icl_afile *af, const char *path, icl_err *err);
/* Writes n bytes; on failure remembers it (and returns -1) so commit refuses. */
int icl_afile_write(icl_afile *af, const void *data, size_t n, icl_err *err);
/* printf into the file. */
int icl_afile_printf(icl_afile *af, icl_err *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Flushes, fsyncs, closes and renames into place (and fsyncs the directory). On any failure the
 * temporary file is removed, the target is untouched, and -1 is returned. */
int icl_afile_commit(icl_afile *af, icl_err *err);
/* Abandons the write: closes and removes the temporary file. Safe to call after commit. */
void icl_afile_abort(icl_afile *af);

/* Writes a whole buffer atomically to path. */
int icl_write_file_atomic(const char *path, const void *data, size_t n, icl_err *err);
/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int icl_read_file(const char *path, char **data, size_t *n, icl_err *err);
/* mkdir -p. */
int icl_mkdirs(const char *path, icl_err *err);
/* 1 if path exists (any type), else 0. */
int icl_path_exists(const char *path);

#endif
