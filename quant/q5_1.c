/* quant/q5_1.c - Q5_1 blocks (6.0 bpw): 32 5-bit quants, an fp16 scale and an fp16 min
 *
 * value = d * q + m, q in 0..31, bits laid out as Q5_0 (qs nibbles + qh 5th bits). Two
 * rounded float32 operations (never fused), as ggml's dequantize_row_q5_1 and gguf-py's
 * Q5_1.dequantize_blocks.
 *
 * Quantizer (werk_q5_1_quantize_ref): as Q4_1 with d = (max - min) / 31 and q clipped
 * to 0..31, bit 4 in qh. gguf-py's Q5_1.quantize_blocks and ggml's
 * quantize_row_q5_1_ref bit for bit on finite input. With an imatrix
 * (werk_q5_1_quantize_imat): ggml's quantize_row_q5_1_impl (make_qkx3_quants, nmax 31).
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q5_1), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

static void block_min_max(const float *x, int n, float *min, float *max) {
    float lo = x[0], hi = x[0];
    for (int j = 0; j < n; j++) {
        if (isnan(x[j])) { // numpy's min/max propagate NaN
            lo = hi = x[j];
            break;
        }
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *min = lo;
    *max = hi;
}

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

void werk_q5_1_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK5_1; i++) {
        const float *x = src + i * WERK_QK5_1;
        float        min, max;
        block_min_max(x, WERK_QK5_1, &min, &max);
        const float d  = (max - min) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        uint8_t q[WERK_QK5_1];
        for (int j = 0; j < WERK_QK5_1; j++) {
            q[j] = werk_legacy_level((x[j] - min) * id + 0.5f, 31);
        }
        block_q5_1 b;
        b.d = werk_fp32_to_fp16(d);
        b.m = werk_fp32_to_fp16(min);
        q5_pack(b.qs, b.qh, q);
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

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

void werk_q5_1_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    float   weight[WERK_QK5_1];
    uint8_t L[WERK_QK5_1], Laux[WERK_QK5_1];
    float   sum_x2 = 0;
    for (int64_t j = 0; j < n; j++) {
        sum_x2 += src[j] * src[j];
    }
    const float sigma2 = sum_x2 / (float)n;
    uint8_t    *out    = dst;
    for (int64_t ib = 0; ib < n / WERK_QK5_1; ib++) {
        const float *xb = src + WERK_QK5_1 * ib;
        const float *qw = imatrix + WERK_QK5_1 * ib;
        for (int j = 0; j < WERK_QK5_1; j++) {
            weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        }
        float min;
        float d = werk_ggml_make_qkx3_quants(WERK_QK5_1, 31, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        block_q5_1 b;
        b.d = werk_fp32_to_fp16(d);
        b.m = werk_fp32_to_fp16(-min);
        q5_pack(b.qs, b.qh, L);
        memcpy(out + (size_t)ib * sizeof(b), &b, sizeof(b));
    }
}
