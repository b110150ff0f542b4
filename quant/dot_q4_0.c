/* quant/dot_q4_0.c - reference dot product Q4_0 . Q8_0
 *
 * Per 32-element block: isum = sum_j (q_j - 8) * y_j exactly in int32 (|isum| <= 32 * 8
 * * 128), then sum += (dx * dy) * isum in float32, block after block (ggml's
 * ggml_vec_dot_q4_0_q8_0 generic code computes sumi * dx * dy; same terms, same order of
 * blocks). Weight layout in quant/blocks.h: byte j holds element j (low nibble) and
 * element j + 16 (high nibble).
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q4_0_q8_0_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q4_0_dot_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK4_0; i++) {
        block_q4_0 x;
        block_q8_0 y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0;
        for (int j = 0; j < WERK_QK4_0 / 2; j++) {
            isum += ((x.qs[j] & 0x0F) - 8) * y.qs[j];
            isum += ((x.qs[j] >> 4) - 8) * y.qs[j + WERK_QK4_0 / 2];
        }
        sum += werk_fp16_to_fp32(x.d) * werk_fp16_to_fp32(y.d) * (float)isum;
    }
    *s = sum;
}
