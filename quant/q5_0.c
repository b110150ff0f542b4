/* quant/q5_0.c - Q5_0 blocks (5.5 bpw): 32 5-bit quants and one fp16 scale
 *
 * value = d * (q - 16). The low 4 bits sit in qs as in Q4_0 (element j low nibble,
 * j+16 high nibble); bit j of the little-endian uint32 qh is the 5th bit of element j.
 * Matches ggml's dequantize_row_q5_0 and gguf-py's Q5_0.dequantize_blocks bit for bit.
 *
 * Quantizer (werk_q5_0_quantize_ref): as Q4_0 with d = max / -16 and
 * q = min(31, trunc(x*id + 16.5)); bit 4 of q goes to qh. gguf-py's
 * Q5_0.quantize_blocks bit for bit, and ggml's quantize_row_q5_0_ref on finite input
 * except for an all-zero block holding -0.0 first (numpy: d = +0, ggml: d = -0; the
 * values are the same). With an imatrix (werk_q5_0_quantize_imat): ggml's quantize_row_q5_0_impl
 * (make_qx_quants with levels -16..15, weights imatrix[j] * sqrt(sigma2 + x^2)).
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q5_0), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

/* Packs 32 levels 0..31 into qs (low nibbles, element j and j+16 share byte j) and qh. */
static void q5_pack(uint8_t *qs, uint8_t qh_bytes[4], const uint8_t *q) {
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[j + 16] & 0x0F) << 4));
        qh |= (uint32_t)(q[j] >> 4) << j;
        qh |= (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) {
        qh_bytes[k] = (uint8_t)(qh >> (8 * k));
    }
}

void werk_q5_0_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK5_0; i++) {
        const float *x = src + i * WERK_QK5_0;
        // numpy's argmax of |x|: the first largest (x[0] when all are +-0), the first NaN
        float amax = fabsf(x[0]), max = x[0];
        for (int j = 1; j < WERK_QK5_0 && !isnan(max); j++) {
            if (isnan(x[j]) || amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max  = x[j];
            }
        }
        const float d  = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        uint8_t q[WERK_QK5_0];
        for (int j = 0; j < WERK_QK5_0; j++) {
            q[j] = werk_legacy_level(x[j] * id + 16.5f, 31);
        }
        block_q5_0 b;
        b.d = werk_fp32_to_fp16(d);
        q5_pack(b.qs, b.qh, q);
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

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

void werk_q5_0_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    float  weight[WERK_QK5_0];
    int8_t L[WERK_QK5_0];
    float  sum_x2 = 0;
    for (int64_t j = 0; j < n; j++) {
        sum_x2 += src[j] * src[j];
    }
    const float sigma2 = sum_x2 / (float)n;
    uint8_t    *out    = dst;
    for (int64_t ib = 0; ib < n / WERK_QK5_0; ib++) {
        const float *xb = src + WERK_QK5_0 * ib;
        const float *qw = imatrix + WERK_QK5_0 * ib;
        for (int j = 0; j < WERK_QK5_0; j++) {
            weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        }
        block_q5_0 b;
        b.d = werk_fp32_to_fp16(werk_ggml_make_qx_quants(WERK_QK5_0, 16, xb, L, weight));
        q5_pack(b.qs, b.qh, (const uint8_t *)L);
        memcpy(out + (size_t)ib * sizeof(b), &b, sizeof(b));
    }
}
