/* One-line error messages carried back to the caller. */
#include "iclab/icl_err.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int icl_errf(icl_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int icl_err_prefix(icl_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char prefix[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    size_t np = strlen(prefix);
    if (np >= sizeof err->msg) np = sizeof err->msg - 1;
    memcpy(err->msg, prefix, np);
    size_t room = sizeof err->msg - 1 - np, no = strnlen(old, sizeof old - 1);
    if (no > room) no = room;
    memcpy(err->msg + np, old, no);
    err->msg[np + no] = 0;
    return -1;
}
