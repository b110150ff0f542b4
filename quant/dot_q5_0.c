/* quant/dot_q5_0.c - reference dot product Q5_0 . Q8_0
 *
 * Per 32-element block: q_j = low nibble | (bit j of qh) << 4 (elements 0..15 from the low
 * nibbles, 16..31 from the high nibbles and qh bits 16..31), isum = sum_j (q_j - 16) y_j
 * exactly in int32, then sum += (dx * dy) * isum in float32, block after block (ggml's
 * ggml_vec_dot_q5_0_q8_0 generic code).
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q5_0_q8_0_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q5_0_dot_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK5_0; i++) {
        block_q5_0 x;
        block_q8_0 y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        const uint32_t qh =
            (uint32_t)x.qh[0] | (uint32_t)x.qh[1] << 8 | (uint32_t)x.qh[2] << 16 | (uint32_t)x.qh[3] << 24;
        int32_t isum = 0;
        for (int j = 0; j < WERK_QK5_0 / 2; j++) {
            const int q0 = (x.qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
            const int q1 = (x.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
            isum += (q0 - 16) * y.qs[j];
            isum += (q1 - 16) * y.qs[j + WERK_QK5_0 / 2];
        }
        sum += werk_fp16_to_fp32(x.d) * werk_fp16_to_fp32(y.d) * (float)isum;
    }
    *s = sum;
}
