/* quant/q4_0.c - Q4_0 blocks (4.5 bpw): 32 4-bit quants and one fp16 scale
 *
 * value = d * (q - 8). Byte j of qs holds element j in its low nibble and element j+16
 * in its high nibble. The dequantizer matches ggml's dequantize_row_q4_0 and gguf-py's
 * Q4_0.dequantize_blocks bit for bit (one float32 product per element).
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_0), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q4_0_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK4_0; i++) {
        block_q4_0 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        float      *y = dst + i * WERK_QK4_0;
        for (int j = 0; j < WERK_QK4_0 / 2; j++) {
            y[j]                  = (float)((b.qs[j] & 0x0F) - 8) * d;
            y[j + WERK_QK4_0 / 2] = (float)((b.qs[j] >> 4) - 8) * d;
        }
    }
}
