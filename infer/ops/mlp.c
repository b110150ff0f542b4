/* infer/ops/mlp.c - gated activation of the feed-forward block, forward
 *
 * h = act(gate) * up with act SiLU (SwiGLU: llama, qwen) or GELU with the tanh
 * approximation (gemma3: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))).
 */
#include "infer/model_int.h"

#include <math.h>

void werk_op_glu_fwd(float *h, const float *gate, const float *up, int64_t n, werk_act act) {
    const double k = 0.7978845608028654; // sqrt(2/pi)
    for (int64_t i = 0; i < n; i++) {
        double g = gate[i], a;
        if (act == WERK_ACT_SILU) {
            a = g / (1.0 + exp(-g));
        } else {
            a = 0.5 * g * (1.0 + tanh(k * (g + 0.044715 * g * g * g)));
        }
        h[i] = (float)(a * up[i]);
    }
}
