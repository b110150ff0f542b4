/* quant/dot_q3_k.c - reference dot product Q3_K . Q8_K
 *
 * x_e = (d * sc_g) * q_e with q_e in -4..3 and sc_g the 6-bit scale minus 32 (group g of
 * 16 elements), so per 256-element super-block
 *   sum_e x_e y_e = (d * dy) * sum_g sc_g sum_{e in g} q_e qy_e,
 * the integer sum exact in int32 (|.| <= 256 * 4 * 32 * 127), one float term per
 * super-block summed in float32 (ggml's ggml_vec_dot_q3_K_q8_K generic code). Element
 * order and scale packing as quant/q3_k.c: element e = 128h + 32*(s/2) + l reads
 * (qs[32h + l] >> s) & 3 and bit e/32 of hmask[l] (clear means -4).
 *
 * Reference: ggml/src/ggml-cpu/quants.c (ggml_vec_dot_q3_K_q8_K_generic), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

static int q3_k_dot_scale(const uint8_t *b, int g) {
    int lo = g < 8 ? (b[g] & 0xF) : (b[g - 8] >> 4);
    int hi = (b[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void werk_q3_k_dot_q8_k_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *px  = vx;
    const uint8_t *py  = vy;
    float          sum = 0.0f;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q3_K x;
        block_q8_K y;
        memcpy(&x, px + (size_t)i * sizeof(x), sizeof(x));
        memcpy(&y, py + (size_t)i * sizeof(y), sizeof(y));
        int32_t isum = 0;
        for (int g = 0; g < WERK_QK_K / 16; g++) {
            const int      e0 = 16 * g, h = e0 / 128, shift = 2 * ((e0 % 128) / 32), l0 = e0 % 32;
            const uint8_t  m  = (uint8_t)(1u << (e0 / 32));
            const uint8_t *q  = x.qs + 32 * h;
            const int8_t  *v  = y.qs + e0;
            int32_t        gs = 0;
            for (int l = 0; l < 16; l++) {
                const int qv = ((q[l0 + l] >> shift) & 3) - ((x.hmask[l0 + l] & m) ? 0 : 4);
                gs += qv * v[l];
            }
            isum += q3_k_dot_scale(x.scales, g) * gs;
        }
        sum += werk_fp16_to_fp32(x.d) * y.d * (float)isum;
    }
    *s = sum;
}
