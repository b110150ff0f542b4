/* quant/q4_0.c - Q4_0 blocks (4.5 bpw): 32 4-bit quants and one fp16 scale
 *
 * value = d * (q - 8). Byte j of qs holds element j in its low nibble and element j+16
 * in its high nibble. The dequantizer matches ggml's dequantize_row_q4_0 and gguf-py's
 * Q4_0.dequantize_blocks bit for bit (one float32 product per element).
 *
 * Quantizer (werk_q4_0_quantize_ref, defines werk's Q4_0 bytes): the value of largest
 * magnitude (the first one on ties, x[0] when all are zero, so -0.0 gives d = +0 as in
 * numpy where ggml stores -0) maps to level 0, d = max / -8, id = 1/d (0 when d
 * is 0), q = min(15, trunc(x*id + 8.5)). This is gguf-py's Q4_0.quantize_blocks and
 * ggml's quantize_row_q4_0_ref bit for bit on finite input; a non-finite x*id + 8.5
 * stores q = 0, as numpy's uint8 cast does on x86.
 *
 * With an imatrix (werk_q4_0_quantize_imat) the scale is ggml's weighted search
 * (quantize_row_q4_0_impl): weights imatrix[j] * sqrt(sigma2 + x^2), sigma2 the row's
 * mean square, make_qx_quants with levels -8..7; bytes equal llama.cpp's.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_0), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q4_0_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK4_0; i++) {
        const float *x = src + i * WERK_QK4_0;
        // numpy's argmax of |x|: the first largest (x[0] when all are +-0), the first NaN
        float amax = fabsf(x[0]), max = x[0];
        for (int j = 1; j < WERK_QK4_0 && !isnan(max); j++) {
            if (isnan(x[j]) || amax < fabsf(x[j])) {
                amax = fabsf(x[j]);
                max  = x[j];
            }
        }
        const float d  = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        block_q4_0 b;
        b.d = werk_fp32_to_fp16(d);
        for (int j = 0; j < WERK_QK4_0 / 2; j++) {
            uint8_t q0 = werk_legacy_level(x[j] * id + 8.5f, 15);
            uint8_t q1 = werk_legacy_level(x[j + WERK_QK4_0 / 2] * id + 8.5f, 15);
            b.qs[j]    = (uint8_t)(q0 | (q1 << 4));
        }
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

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

void werk_q4_0_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    float  weight[WERK_QK4_0];
    int8_t L[WERK_QK4_0];
    float  sum_x2 = 0;
    for (int64_t j = 0; j < n; j++) {
        sum_x2 += src[j] * src[j];
    }
    const float sigma2 = sum_x2 / (float)n;
    uint8_t    *out    = dst;
    for (int64_t ib = 0; ib < n / WERK_QK4_0; ib++) {
        const float *xb = src + WERK_QK4_0 * ib;
        const float *qw = imatrix + WERK_QK4_0 * ib;
        for (int j = 0; j < WERK_QK4_0; j++) {
            weight[j] = qw[j] * sqrtf(sigma2 + xb[j] * xb[j]);
        }
        block_q4_0 b;
        b.d = werk_fp32_to_fp16(werk_ggml_make_qx_quants(WERK_QK4_0, 8, xb, L, weight));
        for (int j = 0; j < WERK_QK4_0 / 2; j++) {
            b.qs[j] = (uint8_t)(L[j] | (L[j + WERK_QK4_0 / 2] << 4));
        }
        memcpy(out + (size_t)ib * sizeof(b), &b, sizeof(b));
    }
}
