/* Progress bar with steps/s and ETA; see icl_progress.h. */
#include "iclab/icl_progress.h"
#include <time.h>
#include <unistd.h>

double icl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void icl_progress_init(icl_progress *p, FILE *out, const char *label, int64_t done, int64_t total) {
    p->out = out;
    p->label = label ? label : "";
    p->total = total > 0 ? total : 1;
    p->start_done = done;
    p->t_start = icl_now();
    p->t_last_draw = 0;
    p->is_tty = out ? isatty(fileno(out)) : 0;
}

static void format_duration(double s, char *buf, size_t n) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, n, "--:--");
        return;
    }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%02d:%02d", t / 60, t % 60);
}

static void draw(icl_progress *p, int64_t done, const char *status, int final) {
    double now = icl_now();
    double elapsed = now - p->t_start;
    double rate = elapsed > 0 ? (double)(done - p->start_done) / elapsed : 0;
    double eta = rate > 0 ? (double)(p->total - done) / rate : -1;
    char e[32], r[32];
    format_duration(eta, e, sizeof e);
    format_duration(elapsed, r, sizeof r);
    double frac = (double)done / (double)p->total;
    if (frac > 1) frac = 1;
    if (p->is_tty) {
        char bar[31];
        int filled = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < filled ? '#' : '.';
        bar[30] = 0;
        fprintf(p->out, "\r%s [%s] %3.0f%% %lld/%lld %.1f/s elapsed %s eta %s %s\033[K", p->label, bar, frac * 100,
                (long long)done, (long long)p->total, rate, r, e, status ? status : "");
        if (final) fputc('\n', p->out);
    } else {
        fprintf(p->out, "%s %3.0f%% %lld/%lld %.1f/s elapsed %s eta %s %s\n", p->label, frac * 100, (long long)done,
                (long long)p->total, rate, r, e, status ? status : "");
    }
    fflush(p->out);
    p->t_last_draw = now;
}

void icl_progress_update(icl_progress *p, int64_t done, const char *status) {
    if (!p->out) return;
    double now = icl_now();
    if (now - p->t_last_draw < (p->is_tty ? 0.1 : 5.0)) return;
    draw(p, done, status, 0);
}

void icl_progress_finish(icl_progress *p, int64_t done, const char *status) {
    if (!p->out) return;
    draw(p, done, status, 1);
}
