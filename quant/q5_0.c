/* quant/q5_0.c - Q5_0 blocks (5.5 bpw): 32 5-bit quants and one fp16 scale
 *
 * value = d * (q - 16). The low 4 bits sit in qs as in Q4_0 (element j low nibble,
 * j+16 high nibble); bit j of the little-endian uint32 qh is the 5th bit of element j.
 * Matches ggml's dequantize_row_q5_0 and gguf-py's Q5_0.dequantize_blocks bit for bit.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q5_0), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q5_0_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK5_0; i++) {
        block_q5_0 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float    d = werk_fp16_to_fp32(b.d);
        const uint32_t qh =
            (uint32_t)b.qh[0] | (uint32_t)b.qh[1] << 8 | (uint32_t)b.qh[2] << 16 | (uint32_t)b.qh[3] << 24;
        float *y = dst + i * WERK_QK5_0;
        for (int j = 0; j < WERK_QK5_0 / 2; j++) {
            int q0                = (b.qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
            int q1                = (b.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
            y[j]                  = (float)(q0 - 16) * d;
            y[j + WERK_QK5_0 / 2] = (float)(q1 - 16) * d;
        }
    }
}
