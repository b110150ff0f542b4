/* quant/q4_1.c - Q4_1 blocks (5.0 bpw): 32 4-bit quants, an fp16 scale and an fp16 min
 *
 * value = d * q + m, q in 0..15, nibbles as Q4_0 (element j low, j+16 high). Computed
 * as two rounded float32 operations (product, then sum; never fused), which is what
 * ggml's dequantize_row_q4_1 and gguf-py's Q4_1.dequantize_blocks produce.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_1), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q4_1_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK4_1; i++) {
        block_q4_1 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        const float m = werk_fp16_to_fp32(b.m);
        float      *y = dst + i * WERK_QK4_1;
        for (int j = 0; j < WERK_QK4_1 / 2; j++) {
            y[j]                  = d * (float)(b.qs[j] & 0x0F) + m;
            y[j + WERK_QK4_1 / 2] = d * (float)(b.qs[j] >> 4) + m;
        }
    }
}
