/* tests/train/test_optim.c - AdamW / SGD steps, learning-rate schedules and gradient
 * clipping against hand-computed values and an independent double-precision reference */
#include "werk_test.h"

#include "train/train_int.h"

#include <math.h>

/* Textbook Adam with decoupled decay, in double: the formula of the AdamW paper / torch docs. */
static void adamw_ref(double       *p,
                      double       *m,
                      double       *v,
                      const double *g,
                      int           n,
                      int           t,
                      double        lr,
                      double        b1,
                      double        b2,
                      double        eps,
                      double        wd) {
    for (int i = 0; i < n; i++) {
        p[i] -= lr * wd * p[i];
        m[i]        = b1 * m[i] + (1 - b1) * g[i];
        v[i]        = b2 * v[i] + (1 - b2) * g[i] * g[i];
        double mhat = m[i] / (1 - pow(b1, t));
        double vhat = v[i] / (1 - pow(b2, t));
        p[i] -= lr * mhat / (sqrt(vhat) + eps);
    }
}

static void test_adamw_first_step_literal(void) {
    werk_optim    o;
    werk_optim_hp hp = {WERK_OPTIM_ADAMW, 0.9f, 0.999f, 1e-8f, 0.01f};
    WT_CHECK(werk_optim_init(&o, &hp, 2, NULL) == WERK_OK, "init");
    float p[2] = {1.0f, -2.0f}, g[2] = {0.5f, -0.25f};
    werk_optim_step(&o, p, g, 0.1);
    // step 1: m_hat = g, v_hat = g^2, so p = p (1 - lr wd) - lr g / (|g| + eps)
    float want[2] = {(float)(0.999 - 0.1 * 0.5 / (0.5 + 1e-8)),
                     (float)(-2.0 * 0.999 + 0.1 * 0.25 / (0.25 + 1e-8))};
    WT_CLOSE(p, want, 2, 0, 1e-6, "adamw step 1");
    WT_CHECK(fabsf(o.m[0] - 0.05f) < 1e-7f && fabsf(o.v[0] - 0.00025f) < 1e-8f, "moments m %g v %g", o.m[0],
             o.v[0]);
    WT_CHECK(o.n_steps == 1, "n_steps %lld", (long long)o.n_steps);
    werk_optim_free(&o);
}

static void test_adamw_against_reference(void) {
    enum { N = 7, STEPS = 6 };
    const double  lr = 3e-3, b1 = 0.8, b2 = 0.95, eps = 1e-6, wd = 0.1;
    werk_optim    o;
    werk_optim_hp hp = {WERK_OPTIM_ADAMW, (float)b1, (float)b2, (float)eps, (float)wd};
    WT_CHECK(werk_optim_init(&o, &hp, N, NULL) == WERK_OK, "init");
    float  p[N];
    double rp[N], rm[N] = {0}, rv[N] = {0};
    for (int i = 0; i < N; i++) {
        p[i]  = (float)(0.3 * (i - 3));
        rp[i] = p[i];
    }
    for (int t = 1; t <= STEPS; t++) {
        float  g[N];
        double rg[N];
        for (int i = 0; i < N; i++) {
            g[i]  = (float)(sin(1.7 * i + 0.9 * t) * (1 + i));
            rg[i] = g[i];
        }
        werk_optim_step(&o, p, g, lr);
        adamw_ref(rp, rm, rv, rg, N, t, lr, (double)(float)b1, (double)(float)b2, (double)(float)eps,
                  (double)(float)wd);
    }
    float want[N];
    for (int i = 0; i < N; i++) {
        want[i] = (float)rp[i];
    }
    WT_CLOSE(p, want, N, 1e-7, 1e-5, "adamw 6 steps (bias correction, weight decay)");
    werk_optim_free(&o);
}

static void test_sgd(void) {
    werk_optim    o;
    werk_optim_hp hp = {WERK_OPTIM_SGD, 0, 0, 0, 0};
    WT_CHECK(werk_optim_init(&o, &hp, 3, NULL) == WERK_OK, "init");
    float p[3] = {1.0f, 2.0f, -3.0f}, g[3] = {0.5f, -1.0f, 0.25f};
    float lr = 0.125f; // exact in binary: p - lr*g is exact too
    werk_optim_step(&o, p, g, lr);
    WT_CHECK(p[0] == 1.0f - 0.0625f && p[1] == 2.125f && p[2] == -3.03125f, "sgd p %g %g %g", p[0], p[1],
             p[2]);
    werk_optim_free(&o);
    hp.weight_decay = 0.5f; // coupled: g += wd * p
    WT_CHECK(werk_optim_init(&o, &hp, 1, NULL) == WERK_OK, "init");
    float q = 2.0f, h = 1.0f;
    werk_optim_step(&o, &q, &h, 0.25);
    WT_CHECK(q == 2.0f - 0.25f * (1.0f + 1.0f), "sgd wd q %g", q);
    werk_optim_free(&o);
    WT_CHECK(werk_optim_init(&o, &hp, 0, NULL) == WERK_E_ARG, "zero params rejected");
}

static void test_schedules(void) {
    const double tol = 1e-12;
    // warmup 10 of 110 steps
    WT_CHECK(werk_sched_factor(WERK_SCHED_COSINE, 0, 10, 110) == 0.0, "cosine step 0");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_COSINE, 5, 10, 110) - 0.5) < tol, "cosine warmup half");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_COSINE, 10, 10, 110) - 1.0) < tol, "cosine peak");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_COSINE, 60, 10, 110) - 0.5) < tol, "cosine mid");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_COSINE, 35, 10, 110) - 0.5 * (1 + sqrt(0.5))) < tol,
             "cosine quarter");
    WT_CHECK(werk_sched_factor(WERK_SCHED_COSINE, 110, 10, 110) < tol, "cosine end");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_LINEAR, 60, 10, 110) - 0.5) < tol, "linear mid");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_LINEAR, 3, 10, 110) - 0.3) < tol, "linear warmup");
    WT_CHECK(werk_sched_factor(WERK_SCHED_LINEAR, 200, 10, 110) == 0.0, "linear past end clamps to 0");
    WT_CHECK(fabs(werk_sched_factor(WERK_SCHED_CONSTANT, 3, 10, 110) - 0.3) < tol, "constant warmup");
    WT_CHECK(werk_sched_factor(WERK_SCHED_CONSTANT, 50, 10, 110) == 1.0, "constant");
    WT_CHECK(werk_sched_factor(WERK_SCHED_CONSTANT, 0, 0, 110) == 1.0, "no warmup: first step at full lr");
    WT_CHECK(werk_sched_factor(WERK_SCHED_COSINE, 0, 0, 1) == 1.0, "one step cosine");
    werk_sched_kind k;
    WT_CHECK(werk_sched_parse("linear", &k) && k == WERK_SCHED_LINEAR, "parse linear");
    WT_CHECK(!werk_sched_parse("exp", &k), "unknown schedule");
}

static void test_clip(void) {
    float  g[2] = {3.0f, 4.0f};
    double n    = werk_grad_clip(g, 2, 1.0);
    WT_CHECK(n == 5.0, "norm %g", n);
    float want[2] = {(float)(3.0 / (5.0 + 1e-6)), (float)(4.0 / (5.0 + 1e-6))};
    WT_CLOSE(g, want, 2, 0, 1e-7, "clipped to norm 1");
    float h[2] = {3.0f, 4.0f};
    werk_grad_clip(h, 2, 10.0);
    WT_CHECK(h[0] == 3.0f && h[1] == 4.0f, "below the limit: unchanged bits");
    werk_grad_clip(h, 2, 0.0);
    WT_CHECK(h[0] == 3.0f && h[1] == 4.0f, "max 0: off");
}

int main(void) {
    test_adamw_first_step_literal();
    test_adamw_against_reference();
    test_sgd();
    test_schedules();
    test_clip();
    return wt_done();
}
