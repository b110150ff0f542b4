/* quant/dot_q5_1.c - reference dot product Q5_1 . Q8_1
 *
 * As Q4_1 . Q8_1 (quant/dot_q4_1.c) with 5-bit quants (low nibble | qh bit << 4): per
 * block (dx * dy) * sum_j q_j qy_j + mx * s, s = Q8_1's fp16 dy * sum_j qy_j; block
 * terms summed in float32 (ggml's ggml_vec_dot_q5_1_q8_1 generic code).
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q5_1_q8_1_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q5_1_dot_q8_1_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK5_1; i++) {
        block_q5_1 x;
        block_q8_1 y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        const uint32_t qh =
            (uint32_t)x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        int32_t isum = 0;
        for (int j = 0; j < WERK_QK5_1 / 2; j++) {
            const int q0 = (x.qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
            const int q1 = (x.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
            isum += q0 * y.qs[j];
            isum += q1 * y.qs[j + WERK_QK5_1 / 2];
        }
        sum += werk_fp16_to_fp32(x.d) * werk_fp16_to_fp32(y.d) * (float)isum +
               werk_fp16_to_fp32(x.m) * werk_fp16_to_fp32(y.s);
    }
    *s = sum;
}
