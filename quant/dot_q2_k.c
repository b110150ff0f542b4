/* quant/dot_q2_k.c - reference dot product Q2_K . Q8_K
 *
 * x_e = (d * sc_g) * q_e - dmin * m_g for element e in group g (16 elements), y_e = dy *
 * qy_e, so per 256-element super-block
 *   sum_e x_e y_e = (d * dy) * sum_g sc_g sum_{e in g} q_e qy_e - (dmin * dy) * sum_g m_g bsum_g,
 * bsum_g = sum_{e in g} qy_e (Q8_K's bsums). Both integer sums are exact in int32
 * (|.| <= 256 * 3 * 15 * 127); the two float terms are added per super-block in float32
 * (ggml's ggml_vec_dot_q2_K_q8_K generic code has the same two terms). Element order as
 * quant/q2_k.c: element 128h + 32*(s/2) + l is (qs[32h + l] >> s) & 3.
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q2_K_q8_K_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_q2_k_dot_q8_k_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q2_K x;
        block_q8_K y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0, imin = 0;
        for (int g = 0; g < WERK_QK_K / 16; g++) {
            const int      h = g / 8, shift = 2 * ((g % 8) / 2), l0 = 16 * (g % 2);
            const uint8_t *q  = x.qs + 32 * h;
            const int8_t  *v  = y.qs + 16 * g;
            int32_t        gs = 0;
            for (int l = 0; l < 16; l++) {
                gs += ((q[l0 + l] >> shift) & 3) * v[l];
            }
            isum += (x.scales[g] & 0xF) * gs;
            imin += (x.scales[g] >> 4) * y.bsums[g];
        }
        const float d    = werk_fp16_to_fp32(x.d) * y.d;
        const float dmin = werk_fp16_to_fp32(x.dmin) * y.d;
        sum += d * (float)isum - dmin * (float)imin;
    }
    *s = sum;
}
