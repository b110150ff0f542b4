/* infer/ops/rope.c - rotary position embedding, forward and backward
 *
 * Shapes: x, dx [n_tok, n_head * head_dim], pos [n_tok]; in place. Angle of pair i at
 * position p: theta = p * base^(-2i/n_rot), computed in double. NORM style rotates
 * (x[2i], x[2i+1]) (llama's GGUF order); NEOX rotates (x[i], x[i + n_rot/2]) (HF's
 * rotate_half order, used by qwen2/qwen3/gemma3 GGUFs). Dims past n_rot are left as is.
 *   forward   (a, b) <- (a cos - b sin, a sin + b cos)
 *   backward  (da, db) <- (da cos + db sin, -da sin + db cos)   (the transposed rotation)
 * Tokens are independent: from 16 tokens on they run in parallel, each token by one thread.
 */
#include "infer/model_int.h"

#include <math.h>

static void rotate_token(float *xt, int64_t n_head, int64_t head_dim, int64_t n_rot, int32_t pos, float base,
                         werk_rope_style style, double sign) {
    int64_t half = n_rot / 2;
    for (int64_t i = 0; i < half; i++) {
        double theta = (double)pos * pow((double)base, -2.0 * (double)i / (double)n_rot);
        double c = cos(theta), s = sign * sin(theta);
        for (int64_t h = 0; h < n_head; h++) {
            float  *xh = xt + h * head_dim;
            int64_t a  = style == WERK_ROPE_NORM ? 2 * i : i;
            int64_t b  = style == WERK_ROPE_NORM ? 2 * i + 1 : i + half;
            double  x0 = xh[a], x1 = xh[b];
            xh[a]      = (float)(x0 * c - x1 * s);
            xh[b]      = (float)(x0 * s + x1 * c);
        }
    }
}

void werk_op_rope_fwd(float *x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, float base, werk_rope_style style) {
#pragma omp parallel for schedule(static) if (n_tok >= 16)
    for (int64_t t = 0; t < n_tok; t++) {
        rotate_token(x + t * n_head * head_dim, n_head, head_dim, n_rot, pos[t], base, style, 1.0);
    }
}

void werk_op_rope_bwd(float *dx, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, float base, werk_rope_style style) {
#pragma omp parallel for schedule(static) if (n_tok >= 16)
    for (int64_t t = 0; t < n_tok; t++) {
        rotate_token(dx + t * n_head * head_dim, n_head, head_dim, n_rot, pos[t], base, style, -1.0);
    }
}
