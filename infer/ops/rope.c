/* infer/ops/rope.c - rotary position embedding, forward
 *
 * Angle of pair i at position p: p * base^(-2i/n_rot), computed in double. NORM style
 * rotates (x[2i], x[2i+1]) (llama's GGUF order); NEOX rotates (x[i], x[i + n_rot/2]) (HF's
 * rotate_half order, used by qwen2/qwen3/gemma3 GGUFs). Dims past n_rot are left as is.
 */
#include "infer/model_int.h"

#include <math.h>

void werk_op_rope_fwd(float *x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, float base, werk_rope_style style) {
    int64_t half = n_rot / 2;
    for (int64_t t = 0; t < n_tok; t++) {
        for (int64_t i = 0; i < half; i++) {
            double theta = (double)pos[t] * pow((double)base, -2.0 * (double)i / (double)n_rot);
            double c = cos(theta), s = sin(theta);
            for (int64_t h = 0; h < n_head; h++) {
                float  *xh = x + (t * n_head + h) * head_dim;
                int64_t a  = style == WERK_ROPE_NORM ? 2 * i : i;
                int64_t b  = style == WERK_ROPE_NORM ? 2 * i + 1 : i + half;
                double  x0 = xh[a], x1 = xh[b];
                xh[a]      = (float)(x0 * c - x1 * s);
                xh[b]      = (float)(x0 * s + x1 * c);
            }
        }
    }
}
