/* quant/q5_1.c - Q5_1 blocks (6.0 bpw): 32 5-bit quants, an fp16 scale and an fp16 min
 *
 * value = d * q + m, q in 0..31, bits laid out as Q5_0 (qs nibbles + qh 5th bits). Two
 * rounded float32 operations (never fused), as ggml's dequantize_row_q5_1 and gguf-py's
 * Q5_1.dequantize_blocks.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q5_1), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q5_1_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK5_1; i++) {
        block_q5_1 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float    d = werk_fp16_to_fp32(b.d);
        const float    m = werk_fp16_to_fp32(b.m);
        const uint32_t qh =
            (uint32_t)b.qh[0] | (uint32_t)b.qh[1] << 8 | (uint32_t)b.qh[2] << 16 | (uint32_t)b.qh[3] << 24;
        float *y = dst + i * WERK_QK5_1;
        for (int j = 0; j < WERK_QK5_1 / 2; j++) {
            int q0                = (b.qs[j] & 0x0F) | (int)((qh >> j) & 1u) << 4;
            int q1                = (b.qs[j] >> 4) | (int)((qh >> (j + 16)) & 1u) << 4;
            y[j]                  = d * (float)q0 + m;
            y[j + WERK_QK5_1 / 2] = d * (float)q1 + m;
        }
    }
}
