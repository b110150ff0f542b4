/* quant/q4_k.c - Q4_K super-blocks (4.5 bpw): 256 4-bit quants in 8 groups of 32
 *
 * Group g has a 6-bit scale sc and a 6-bit min m (werk_k4_scale_min, 12 packed bytes:
 * bytes 0-3 low 6 bits of sc[0..3], bytes 4-7 low 6 bits of m[0..3], bytes 8-11 the
 * low/high nibbles of sc[4..7]/m[4..7], whose 2 high bits sit in the top bits of bytes
 * 0-3 (sc) and 4-7 (m)). value = (d * sc) * q - (dmin * m), each step a rounded float32
 * operation, as ggml's dequantize_row_q4_K and gguf-py's Q4_K.dequantize_blocks.
 *
 * Element order: pair p = 0..3 covers elements 64p .. 64p+63 from qs[32p .. 32p+31]:
 * low nibbles are group 2p (elements 64p + l), high nibbles group 2p+1 (64p + 32 + l).
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_K, get_scale_min_k4), gguf-py
 * gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

void werk_q4_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d    = werk_fp16_to_fp32(b.d);
        const float dmin = werk_fp16_to_fp32(b.dmin);
        float      *y    = dst + i * WERK_QK_K;
        for (int p = 0; p < 4; p++) {
            uint8_t sc, m;
            werk_k4_scale_min(2 * p, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            werk_k4_scale_min(2 * p + 1, b.scales, &sc, &m);
            const float    d2 = d * (float)sc, m2 = dmin * (float)m;
            const uint8_t *q = b.qs + 32 * p;
            for (int l = 0; l < 32; l++) {
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            }
            for (int l = 0; l < 32; l++) {
                *y++ = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}
