/* quant/q8_k.c - Q8_K super-blocks (9.125 bpw): 256 int8 quants, a float32 scale
 *
 * ggml's intermediate type for k-quant dot products (activations), rarely in files.
 * value = d * q; the bsums (sums of 16 quants) are a dot-product helper and ignored
 * here. As ggml's dequantize_row_q8_K (gguf-py has no Q8_K dequantizer).
 *
 * Quantizer (werk_q8_k_quantize_ref): ggml's quantize_row_q8_K_ref. The value of largest
 * magnitude (first on ties) gets level -127 (iscale = -127/max), q = min(127,
 * round-half-even(iscale * x)), d = 1/iscale in float32, bsums[g] = sum of the 16 quants
 * of group g. An all-zero block stores d = 0, zero quants and zero bsums (ggml leaves
 * bsums unset there). The activations' side of the k-quant dot products.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q8_K), MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q8_k_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x    = src + i * WERK_QK_K;
        float        amax = 0, max = 0;
        for (int j = 0; j < WERK_QK_K; j++) {
            float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max  = x[j];
            }
        }
        block_q8_K b;
        memset(&b, 0, sizeof(b));
        if (amax != 0.0f) {
            const float iscale = -127.f / max;
            for (int j = 0; j < WERK_QK_K; j++) {
                // ggml's nearest_int (round half to even through the float's bits: defined,
                // and equal to ggml, for NaN and inf too)
                int32_t v = werk_kq_level(iscale * x[j]);
                b.qs[j]   = (int8_t)(v < 127 ? v : 127);
            }
            for (int g = 0; g < WERK_QK_K / 16; g++) {
                int sum = 0;
                for (int l = 0; l < 16; l++) {
                    sum += b.qs[16 * g + l];
                }
                b.bsums[g] = (int16_t)sum;
            }
            b.d = 1 / iscale;
        }
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q8_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q8_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        float *y = dst + i * WERK_QK_K;
        for (int j = 0; j < WERK_QK_K; j++) {
            y[j] = b.d * (float)b.qs[j];
        }
    }
}
