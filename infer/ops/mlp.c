/* infer/ops/mlp.c - gated activation of the feed-forward block, forward and backward
 *
 * Shapes: gate, up, h and their gradients [n] (elementwise). act is SiLU (SwiGLU: llama,
 * qwen) or GELU with the tanh approximation (gemma3), computed in double (the backward takes
 * its exponential / tanh in float: ~1e-7 relative, far below what training notices, for a
 * third of the cost):
 *   forward   h = act(g) u
 *   backward  dg = dh u act'(g),  du = dh act(g)
 *   SiLU      act(g) = g s, s = 1/(1+e^-g);          act'(g) = s (1 + g (1 - s))
 *   GELU      act(g) = g (1 + tanh z) / 2, z = k (g + 0.044715 g^3), k = sqrt(2/pi);
 *             act'(g) = (1 + tanh z) / 2 + g (1 - tanh^2 z) k (1 + 3 0.044715 g^2) / 2
 */
#include "infer/model_int.h"

#include <math.h>

static const double gelu_k = 0.7978845608028654; // sqrt(2/pi)
static const double gelu_c = 0.044715;

void werk_op_glu_fwd(float *h, const float *gate, const float *up, int64_t n, werk_act act) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], a;
        if (act == WERK_ACT_SILU) {
            a = g / (1.0 + exp(-g));
        } else {
            a = 0.5 * g * (1.0 + tanh(gelu_k * (g + gelu_c * g * g * g)));
        }
        h[i] = (float)(a * up[i]);
    }
}

void werk_op_glu_bwd(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int64_t n,
                     werk_act act) {
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], u = up[i], d = dh[i], a, da;
        if (act == WERK_ACT_SILU) {
            double s = 1.0 / (1.0 + (double)expf(-gate[i]));
            a        = g * s;
            da       = s * (1.0 + g * (1.0 - s));
        } else {
            double th = (double)tanhf((float)(gelu_k * (g + gelu_c * g * g * g)));
            a         = 0.5 * g * (1.0 + th);
            da        = 0.5 * (1.0 + th) + 0.5 * g * (1.0 - th * th) * gelu_k * (1.0 + 3.0 * gelu_c * g * g);
        }
        dgate[i] = (float)(d * u * da);
        dup[i]   = (float)(d * a);
    }
}
