/* quant/dot_q8_0.c - reference dot product Q8_0 . Q8_0
 *
 * Per 32-element block: isum = sum_j qx_j qy_j exactly in int32, then
 * sum += (dx * dy) * isum in float32, block after block (ggml's ggml_vec_dot_q8_0_q8_0
 * generic code).
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q8_0_q8_0_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q8_0_dot_q8_0_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK8_0; i++) {
        block_q8_0 x;
        block_q8_0 y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0;
        for (int j = 0; j < WERK_QK8_0; j++) {
            isum += x.qs[j] * y.qs[j];
        }
        sum += werk_fp16_to_fp32(x.d) * werk_fp16_to_fp32(y.d) * (float)isum;
    }
    *s = sum;
}
