/* train/schedule.c - learning-rate schedules with linear warmup, as HF transformers has them
 *
 * get_constant_schedule_with_warmup, get_linear_schedule_with_warmup and
 * get_cosine_schedule_with_warmup (num_cycles 0.5): a factor of the peak learning rate as
 * a function of the scheduler step s = optimizer steps already taken. During warmup the
 * factor is s / warmup, so with warmup > 0 the first step runs at 0, as in HF's Trainer.
 */
#include "train/train_int.h"

#include <math.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

double werk_sched_factor(werk_sched_kind kind, int64_t step, int64_t n_warmup, int64_t n_total) {
    if (step < n_warmup) {
        return (double)step / (double)(n_warmup > 1 ? n_warmup : 1);
    }
    if (kind == WERK_SCHED_CONSTANT) {
        return 1.0;
    }
    int64_t span = n_total - n_warmup;
    if (span < 1) {
        span = 1;
    }
    if (kind == WERK_SCHED_LINEAR) {
        double f = (double)(n_total - step) / (double)span;
        return f > 0.0 ? f : 0.0;
    }
    double progress = (double)(step - n_warmup) / (double)span;
    double f        = 0.5 * (1.0 + cos(PI * 2.0 * 0.5 * progress));
    return f > 0.0 ? f : 0.0;
}

static const char *const SCHED_NAMES[] = {"cosine", "linear", "constant"};

bool werk_sched_parse(const char *name, werk_sched_kind *kind) {
    for (int i = 0; i < 3; i++) {
        if (strcmp(name, SCHED_NAMES[i]) == 0) {
            *kind = (werk_sched_kind)i;
            return true;
        }
    }
    return false;
}

const char *werk_sched_name(werk_sched_kind kind) { return (unsigned)kind < 3 ? SCHED_NAMES[kind] : "?"; }
