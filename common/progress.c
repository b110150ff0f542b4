/* common/progress.c - one progress line on stderr: bar, percent, count, rate, ETA
 *
 * On a terminal the line is redrawn in place (at most 10 times a second); otherwise a
 * plain line is printed at every 10% once the job has run for 2 seconds, so logs stay
 * short and quick jobs print nothing.
 */
#define _POSIX_C_SOURCE 200809L
#include "common/common.h"

#include <time.h>
#include <unistd.h>

double werk_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void werk_progress_init(werk_progress *p, const char *label, uint64_t total, bool bytes) {
    p->label       = label;
    p->total       = total;
    p->done        = 0;
    p->t_start     = werk_time_s();
    p->t_last      = 0;
    p->last_decile = 0;
    p->tty         = isatty(2) != 0;
    p->bytes       = bytes;
}

static void progress_draw(werk_progress *p, bool final) {
    double      now        = werk_time_s();
    double      dt         = now - p->t_start;
    double      frac       = p->total ? (double)p->done / (double)p->total : 1.0;
    double      rate       = dt > 0 ? (double)p->done / dt : 0;
    double      eta        = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    double      shown_rate = p->bytes ? rate / 1e6 : rate;
    const char *unit       = p->bytes ? "MB/s" : "/s";
    char        count[48]  = ""; // "done/total" for counted items (steps, tensors)
    if (!p->bytes) {
        snprintf(count, sizeof(count), "%llu/%llu", (unsigned long long)p->done,
                 (unsigned long long)p->total);
    }
    if (p->tty) {
        char bar[31];
        int  filled = (int)(frac * 30);
        for (int i = 0; i < 30; i++) {
            bar[i] = i < filled ? '#' : ' ';
        }
        bar[30] = 0;
        fprintf(stderr, "\r%s [%s] %3d%% %s %.*f %s ETA %.0fs ", p->label, bar, (int)(frac * 100), count,
                shown_rate < 10 ? 2 : 1, shown_rate, unit, eta);
        if (final) {
            fputc('\n', stderr);
        }
    } else {
        fprintf(stderr, "%s: %3d%% %s %.*f %s ETA %.0fs\n", p->label, (int)(frac * 100), count,
                shown_rate < 10 ? 2 : 1, shown_rate, unit, eta);
    }
    p->t_last = now;
}

void werk_progress_add(werk_progress *p, uint64_t n) {
    p->done += n;
    if (p->done > p->total) {
        p->done = p->total;
    }
    if (p->tty) {
        if (werk_time_s() - p->t_last >= 0.1) {
            progress_draw(p, false);
        }
    } else {
        int decile = p->total ? (int)(10 * p->done / p->total) : 10;
        if (decile > p->last_decile && decile < 10 && werk_time_s() - p->t_start >= 2.0) {
            p->last_decile = decile;
            progress_draw(p, false);
        }
    }
}

void werk_progress_done(werk_progress *p) {
    p->done = p->total;
    if (p->tty || p->last_decile > 0) {
        progress_draw(p, true);
    }
}
