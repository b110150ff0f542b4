/* quant/q6_k.c - Q6_K super-blocks (6.5625 bpw): 256 6-bit quants in 16 groups of 16
 *
 * value = (d * scales[g]) * (q - 32), scales int8, q in 0..63. Each half h of 128
 * elements reads ql[64h .. 64h+63], qh[32h .. 32h+31] and scales[8h .. 8h+7]; element
 * 128h + 32r + l (r = 0..3, l = 0..31) takes
 *   low 4 bits:  (ql[64h + 32*(r & 1) + l] >> (4 * (r >> 1))) & 15
 *   high 2 bits: (qh[32h + l] >> 2r) & 3
 *   scale:       scales[8h + 2r + l/16]
 * Matches ggml's dequantize_row_q6_K and gguf-py's Q6_K.dequantize_blocks bit for bit.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q6_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q6_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b.ql + 64 * h;
            const uint8_t *qh = b.qh + 32 * h;
            const int8_t  *sc = b.scales + 8 * h;
            float         *y  = dst + i * WERK_QK_K + 128 * h;
            for (int r = 0; r < 4; r++) {
                const uint8_t *lo    = ql + 32 * (r & 1);
                const int      shift = (r >> 1) * 4;
                for (int l = 0; l < 32; l++) {
                    int q         = ((lo[l] >> shift) & 0xF) | ((qh[l] >> (2 * r)) & 3) << 4;
                    y[32 * r + l] = d * (float)sc[2 * r + l / 16] * (float)(q - 32);
                }
            }
        }
    }
}
