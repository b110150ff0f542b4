/* quant/q2_k.c - Q2_K super-blocks (2.625 bpw): 256 2-bit quants in 16 groups of 16
 *
 * Each group g has a 4-bit scale (scales[g] & 15) and a 4-bit min (scales[g] >> 4);
 * value = (d * scale) * q - (dmin * min), every step a rounded float32 operation as in
 * ggml's dequantize_row_q2_K and gguf-py's Q2_K.dequantize_blocks.
 *
 * Element order: the block is two halves of 128 elements; half h reads the 32 bytes
 * qs[32h .. 32h+31]. Within a half, shift s = 0, 2, 4, 6 selects 32 consecutive
 * elements ((qs[32h + l] >> s) & 3 for l = 0..31), and each run of 32 is two groups of
 * 16: g = 8h + 2*(s/2) + (l >= 16). So element e = 128h + 32*(s/2) + l.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q2_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q2_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q2_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d    = werk_fp16_to_fp32(b.d);
        const float dmin = werk_fp16_to_fp32(b.dmin);
        float      *y    = dst + i * WERK_QK_K;
        int         g    = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2) {
                for (int k = 0; k < 2; k++, g++) {
                    const float dl = d * (float)(b.scales[g] & 0xF);
                    const float ml = dmin * (float)(b.scales[g] >> 4);
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}
