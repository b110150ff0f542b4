/* quant/dot_q6_k.c - reference dot product Q6_K . Q8_K
 *
 * x_e = (d * sc_g) * (q_e - 32), sc_g int8, group g of 16 elements, so per super-block
 *   sum_e x_e y_e = (d * dy) * sum_g sc_g sum_{e in g} (q_e - 32) qy_e,
 * exact in int32 (|.| <= 256 * 32 * 128 * 127); one float term per super-block summed
 * in float32 (ggml's ggml_vec_dot_q6_K_q8_K generic code). Element order as
 * quant/q6_k.c: element 128h + 32r + l has low bits (ql[64h + 32(r & 1) + l] >> 4(r >> 1))
 * & 15 and high bits (qh[32h + l] >> 2r) & 3.
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q6_K_q8_K_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q6_k_dot_q8_k_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K x;
        block_q8_K y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0;
        for (int g = 0; g < WERK_QK_K / 16; g++) {
            const int      e0 = 16 * g, h = e0 / 128, r = (e0 % 128) / 32, l0 = e0 % 32;
            const uint8_t *lo = x.ql + 64 * h + 32 * (r & 1);
            const uint8_t *hi = x.qh + 32 * h;
            const int8_t  *v  = y.qs + e0;
            int32_t        gs = 0;
            for (int l = l0; l < l0 + 16; l++) {
                const int q = ((lo[l] >> (4 * (r >> 1))) & 0xF) | ((hi[l] >> (2 * r)) & 3) << 4;
                gs += (q - 32) * v[l - l0];
            }
            isum += x.scales[g] * gs;
        }
        sum += werk_fp16_to_fp32(x.d) * y.d * (float)isum;
    }
    *s = sum;
}
