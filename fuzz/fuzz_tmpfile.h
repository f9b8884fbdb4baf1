/* For fuzz targets whose parser reads a path: each input is written to one temporary file (in
 * /dev/shm when it exists, so no disk is touched), removed at exit. */
#ifndef FUZZ_TMPFILE_H
#define FUZZ_TMPFILE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path[256];

static void fuzz_tmp_remove(void) { unlink(fuzz_path); }

/* Writes data to the temporary file (suffix e.g. ".npy"); returns its path, or aborts. */
static const char *fuzz_tmp_write(const uint8_t *data, size_t size, const char *suffix) {
    if (!fuzz_path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_path, sizeof fuzz_path, "%s/iclab-fuzz-%d%s", dir, (int)getpid(), suffix);
        atexit(fuzz_tmp_remove);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f)) abort();
    return fuzz_path;
}

#endif
