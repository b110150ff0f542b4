/* quant/q5_k.c - Q5_K super-blocks (5.5 bpw): 256 5-bit quants in 8 groups of 32
 *
 * As Q4_K (same scales/mins packing, same nibble order) plus a 5th bit per element:
 * element 32g + l (group g, l = 0..31) has its high bit in bit g of qh[l].
 * value = (d * sc) * q - (dmin * m), q in 0..31, each step rounded in float32 as ggml's
 * dequantize_row_q5_K and gguf-py's Q5_K.dequantize_blocks.
 *
 * Quantizers: ggml's in quant/kquant_ggml.c; werk's own share Q4_K's super-block
 * search (werk_k4_quantize_block in quant/q4_k.c) with 5-bit levels.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q5_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q5_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q5_K b;
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
            const uint8_t *q  = b.qs + 32 * p;
            const uint8_t  u1 = (uint8_t)(1u << (2 * p)), u2 = (uint8_t)(2u << (2 * p));
            for (int l = 0; l < 32; l++) {
                *y++ = d1 * (float)((q[l] & 0xF) + ((b.qh[l] & u1) ? 16 : 0)) - m1;
            }
            for (int l = 0; l < 32; l++) {
                *y++ = d2 * (float)((q[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0)) - m2;
            }
        }
    }
}

// ---- werk's quantizer (the search is shared with Q4_K: werk_k4_quantize_block) ---------

void werk_q5_k_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q5_K b;
        werk_k4_quantize_block(src + i * WERK_QK_K, NULL, 31, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q5(b.qh, b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q5_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q5_K b;
        werk_k4_quantize_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, 31, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q5(b.qh, b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
