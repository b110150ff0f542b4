/* quant/q4_1.c - Q4_1 blocks (5.0 bpw): 32 4-bit quants, an fp16 scale and an fp16 min
 *
 * value = d * q + m, q in 0..15, nibbles as Q4_0 (element j low, j+16 high). Computed
 * as two rounded float32 operations (product, then sum; never fused), which is what
 * ggml's dequantize_row_q4_1 and gguf-py's Q4_1.dequantize_blocks produce.
 *
 * Quantizer (werk_q4_1_quantize_ref): m = min, d = (max - min) / 15, id = 1/d (0 when d
 * is 0), q = min(15, trunc((x - m)*id + 0.5)), d and m stored as fp16. gguf-py's
 * Q4_1.quantize_blocks and ggml's quantize_row_q4_1_ref bit for bit on finite input.
 * With an imatrix (werk_q4_1_quantize_imat): ggml's quantize_row_q4_1_impl, i.e.
 * make_qkx3_quants(32, 15, rmin -0.9, rdelta 0.05, 36 steps) with weights
 * imatrix[j] * sqrt(sigma2 + x^2), sigma2 the row's mean square.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_1), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

/* min and max of a block; NaN if any value is NaN (numpy's min/max propagate it). */
static void block_min_max(const float *x, int n, float *min, float *max) {
    float lo = x[0], hi = x[0];
    for (int j = 0; j < n; j++) {
        if (isnan(x[j])) {
            lo = hi = x[j];
            break;
        }
        lo = x[j] < lo ? x[j] : lo;
        hi = x[j] > hi ? x[j] : hi;
    }
    *min = lo;
    *max = hi;
}

void werk_q4_1_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK4_1; i++) {
        const float *x = src + i * WERK_QK4_1;
        float        min, max;
        block_min_max(x, WERK_QK4_1, &min, &max);
        const float d  = (max - min) / 15;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        block_q4_1 b;
        b.d = werk_fp32_to_fp16(d);
        b.m = werk_fp32_to_fp16(min);
        for (int j = 0; j < WERK_QK4_1 / 2; j++) {
            uint8_t q0 = werk_legacy_level((x[j] - min) * id + 0.5f, 15);
            uint8_t q1 = werk_legacy_level((x[j + WERK_QK4_1 / 2] - min) * id + 0.5f, 15);
            b.qs[j]    = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

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

void werk_q4_1_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    float   weight[WERK_QK4_1];
    uint8_t L[WERK_QK4_1], Laux[WERK_QK4_1];
    float   sum_x2 = 0;
    for (int64_t j = 0; j < n; j++) {
        sum_x2 += src[j] * src[j];
    }
    const float sigma2 = sum_x2 / (float)n;
    uint8_t    *out    = dst;
    for (int64_t ib = 0; ib < n / WERK_QK4_1; ib++) {
        const float *xb = src + WERK_QK4_1 * ib;
        const float *qw = imatrix + WERK_QK4_1 * ib;
        for (int j = 0; j < WERK_QK4_1; j++) {
            weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        }
        float min;
        float d = werk_ggml_make_qkx3_quants(WERK_QK4_1, 15, xb, weight, L, &min, Laux, -0.9f, 0.05f, 36);
        block_q4_1 b;
        b.d = werk_fp32_to_fp16(d);
        b.m = werk_fp32_to_fp16(-min);
        for (int j = 0; j < WERK_QK4_1 / 2; j++) {
            b.qs[j] = (uint8_t)(L[j] | (L[j + WERK_QK4_1 / 2] << 4));
        }
        memcpy(out + (size_t)ib * sizeof(b), &b, sizeof(b));
    }
}
