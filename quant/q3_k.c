/* quant/q3_k.c - Q3_K super-blocks (3.4375 bpw): 256 3-bit quants in 16 groups of 16
 *
 * value = (d * (scale - 32)) * q, q = ((qs >> shift) & 3) - (hmask bit set ? 0 : 4),
 * so q is in -4..3. Element order as Q2_K: element e = 128h + 32*(shift/2) + l reads
 * (qs[32h + l] >> shift) & 3 and bit e/32 of hmask[l] (l = 0..31), group g = e / 16.
 *
 * The 16 6-bit scales are packed in 12 bytes b[0..11]:
 *   low 4 bits of scale g:  g < 8 ? b[g] & 15 : b[g - 8] >> 4
 *   high 2 bits of scale g: (b[8 + g % 4] >> (2 * (g / 4))) & 3
 * Matches ggml's dequantize_row_q3_K (which unpacks with 32-bit masks) and gguf-py's
 * Q3_K.dequantize_blocks bit for bit.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q3_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

static int q3_k_scale(const uint8_t *b, int g) {
    int lo = g < 8 ? (b[g] & 0xF) : (b[g - 8] >> 4);
    int hi = (b[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void werk_q3_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q3_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        float      *y = dst + i * WERK_QK_K;
        int         g = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2) {
                const uint8_t m = (uint8_t)(1u << (4 * h + shift / 2)); // hmask bit of these 32
                for (int k = 0; k < 2; k++, g++) {
                    const float dl = d * (float)q3_k_scale(b.scales, g);
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        int qv = ((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4);
                        *y++   = dl * (float)qv;
                    }
                }
            }
        }
    }
}
