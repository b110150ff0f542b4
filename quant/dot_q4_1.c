/* quant/dot_q4_1.c - reference dot product Q4_1 . Q8_1
 *
 * x = dx * q + mx, y = dy * qy, so per 32-element block
 *   sum_j x_j y_j = (dx * dy) * sum_j q_j qy_j + mx * (dy * sum_j qy_j),
 * where the last factor is Q8_1's s field (stored as fp16 by the activation quantizer,
 * which is why Q4_1 pairs with Q8_1). isum is exact in int32; the block terms are added
 * in float32, block after block, as ggml's ggml_vec_dot_q4_1_q8_1 generic code.
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q4_1_q8_1_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q4_1_dot_q8_1_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK4_1; i++) {
        block_q4_1 x;
        block_q8_1 y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0;
        for (int j = 0; j < WERK_QK4_1 / 2; j++) {
            isum += (x.qs[j] & 0x0F) * y.qs[j];
            isum += (x.qs[j] >> 4) * y.qs[j + WERK_QK4_1 / 2];
        }
        sum += werk_fp16_to_fp32(x.d) * werk_fp16_to_fp32(y.d) * (float)isum +
               werk_fp16_to_fp32(x.m) * werk_fp16_to_fp32(y.s);
    }
    *s = sum;
}
