/* Error reporting for library code: functions return 0 on success or -1 on failure and leave a
 * one-line message in an icl_err the caller owns. Only the CLI prints and exits. */
#ifndef ICL_ERR_H
#define ICL_ERR_H

typedef struct icl_err {
    char msg[512];
} icl_err;

/* Formats a message into err (if non-NULL) and returns -1, so callers can write
 * `return icl_errf(err, "bad %s", x);`. */
int icl_errf(icl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefixes the existing message with more context ("loading ckpt.gguf: " + old message); returns -1. */
int icl_err_prefix(icl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
