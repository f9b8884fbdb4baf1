/* A terminal progress bar for long work: rate, ETA and a caller-supplied status (e.g. the loss).
 * Redraws at most ~10 times a second on a TTY; on a non-TTY prints a line every few seconds. */
#ifndef ICL_PROGRESS_H
#define ICL_PROGRESS_H
#include <stdint.h>
#include <stdio.h>

typedef struct icl_progress {
    FILE *out;        /* NULL = silent */
    const char *label;
    int64_t total, start_done;
    double t_start, t_last_draw;
    int is_tty;
} icl_progress;

/* Starts a bar counting from `done` to `total` units (steps). out may be NULL for silence. */
void icl_progress_init(icl_progress *p, FILE *out, const char *label, int64_t done, int64_t total);
/* Reports progress; status is a short extra text such as "loss 0.512" (may be NULL). */
void icl_progress_update(icl_progress *p, int64_t done, const char *status);
/* Draws the final state and ends the line. */
void icl_progress_finish(icl_progress *p, int64_t done, const char *status);
/* Wall-clock seconds from a monotonic clock. */
double icl_now(void);

#endif
