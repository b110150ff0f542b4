/* quant/dot_q4_k.c - reference dot product Q4_K . Q8_K
 *
 * x_e = (d * sc_g) * q_e - dmin * m_g for group g of 32 elements, so per super-block
 *   sum_e x_e y_e = (d * dy) * sum_g sc_g sum_{e in g} q_e qy_e
 *                 - (dmin * dy) * sum_g m_g (bsum_{2g} + bsum_{2g+1}),
 * both integer sums exact in int32 (|.| <= 256 * 15 * 63 * 127), the two float terms
 * added per super-block in float32 (ggml's ggml_vec_dot_q4_K_q8_K generic code has the
 * same two terms). Element order as quant/q4_k.c: group 2p is the low nibbles of
 * qs[32p .. 32p+31], group 2p+1 their high nibbles.
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q4_K_q8_K_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q4_k_dot_q8_k_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K x;
        block_q8_K y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < 8; g++) {
            uint8_t sc, m;
            werk_k4_scale_min(g, x.scales, &sc, &m);
            const uint8_t *q     = x.qs + 32 * (g / 2);
            const int      shift = 4 * (g % 2);
            const int8_t  *v     = y.qs + 32 * g;
            int32_t        gs    = 0;
            for (int l = 0; l < 32; l++) {
                gs += ((q[l] >> shift) & 0xF) * v[l];
            }
            isum += sc * gs;
            imin += m * (y.bsums[2 * g] + y.bsums[2 * g + 1]);
        }
        const float d    = werk_fp16_to_fp32(x.d) * y.d;
        const float dmin = werk_fp16_to_fp32(x.dmin) * y.d;
        sum += d * (float)isum - dmin * (float)imin;
    }
    *s = sum;
}
