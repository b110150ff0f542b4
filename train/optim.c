/* train/optim.c - AdamW and SGD on the flat LoRA parameter array, and gradient clipping
 *
 * AdamW follows torch.optim.AdamW (amsgrad off, single-tensor path): decoupled weight
 * decay p -= lr*wd*p first, then m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2,
 * p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). SGD is torch.optim.SGD
 * with momentum 0: g += wd*p, p -= lr*g. Every update is elementwise, so the result does
 * not depend on how the loop is split over threads; the norm is summed in index order.
 */
#include "train/train_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

werk_status werk_optim_init(werk_optim *o, const werk_optim_hp *hp, int64_t n, werk_err *err) {
    memset(o, 0, sizeof(*o));
    if (n <= 0) {
        return WERK_FAIL(err, WERK_E_ARG, "optimizer: no parameters to train");
    }
    o->hp = *hp;
    o->n  = n;
    o->m  = werk_calloc((size_t)n, sizeof(float));
    o->v  = werk_calloc((size_t)n, sizeof(float));
    if (!o->m || !o->v) {
        werk_optim_free(o);
        return WERK_FAIL(err, WERK_E_OOM, "optimizer: cannot allocate moments for %lld parameters",
                         (long long)n);
    }
    return WERK_OK;
}

void werk_optim_free(werk_optim *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof(*o));
}

static void adamw_step(werk_optim *o, float *p, const float *g, double lr) {
    o->n_steps++;
    const float  b1 = o->hp.beta1, b2 = o->hp.beta2, eps = o->hp.eps;
    const double t         = (double)o->n_steps;
    const float  decay     = (float)(1.0 - lr * (double)o->hp.weight_decay);
    const float  step_size = (float)(lr / (1.0 - pow((double)b1, t)));
    const float  bc2_sqrt  = (float)sqrt(1.0 - pow((double)b2, t));
    float       *m = o->m, *v = o->v;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < o->n; i++) {
        float pi = p[i];
        if (o->hp.weight_decay != 0.0f) {
            pi *= decay;
        }
        float gi    = g[i];
        m[i]        = m[i] + (gi - m[i]) * (1.0f - b1); // torch: exp_avg.lerp_(grad, 1 - beta1)
        v[i]        = v[i] * b2 + (1.0f - b2) * gi * gi;
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i]        = pi - step_size * (m[i] / denom);
    }
}

static void sgd_step(werk_optim *o, float *p, const float *g, double lr) {
    o->n_steps++;
    const float lr_f = (float)lr, wd = o->hp.weight_decay;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < o->n; i++) {
        float gi = g[i];
        if (wd != 0.0f) {
            gi += wd * p[i];
        }
        p[i] -= lr_f * gi;
    }
}

void werk_optim_step(werk_optim *o, float *params, const float *g, double lr) {
    if (o->hp.kind == WERK_OPTIM_SGD) {
        sgd_step(o, params, g, lr);
    } else {
        adamw_step(o, params, g, lr);
    }
}

double werk_grad_norm(const float *g, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)g[i] * (double)g[i];
    }
    return sqrt(s);
}

double werk_grad_clip(float *g, int64_t n, double max_norm) {
    double norm = werk_grad_norm(g, n);
    if (max_norm > 0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            const float c = (float)coef;
#pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < n; i++) {
                g[i] *= c;
            }
        }
    }
    return norm;
}
