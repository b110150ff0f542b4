/* quant/q8_0.c - Q8_0 blocks (8.5 bpw): 32 int8 quants and one fp16 scale
 *
 * value = d * q. The quantizer is the reference that defines werk's Q8_0 bytes:
 * d = max|x| / 127, id = 1/d (0 when d is 0), q = round(x * id) with ties away from zero,
 * d stored as fp16 (round to nearest even). This is gguf-py's Q8_0.quantize_blocks
 * (numpy, np_roundf) and ggml's quantize_row_q8_0_ref (roundf) bit for bit on finite
 * input. Where they differ werk follows gguf-py: a NaN in the block makes d NaN (ggml's
 * MAX() skips it), and a quotient x*id that is not finite (NaN input, or id = inf when
 * d is a float32 subnormal below 2^-127) stores q = 0, as numpy does on x86 (ggml's
 * roundf -> int8 cast is undefined there).
 *
 * Reference: ggml/src/ggml-quants.c (quantize_row_q8_0_ref, dequantize_row_q8_0), MIT;
 * gguf-py gguf/quants.py (class Q8_0), MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q8_0_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK8_0; i++) {
        const float *x    = src + i * WERK_QK8_0;
        float        amax = 0.0f;
        for (int j = 0; j < WERK_QK8_0; j++) {
            float v = fabsf(x[j]);
            if (isnan(v)) {
                amax = v; // numpy's max propagates the first NaN
                break;
            }
            if (v > amax) {
                amax = v;
            }
        }
        const float d  = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        block_q8_0 b;
        b.d = werk_fp32_to_fp16(d);
        for (int j = 0; j < WERK_QK8_0; j++) {
            float v = x[j] * id;
            // |v| <= 127 (+ rounding) for finite input; the clamp only guards the cast
            float r = isfinite(v) ? roundf(v) : 0.0f;
            r       = r > 127.0f ? 127.0f : (r < -128.0f ? -128.0f : r);
            b.qs[j] = (int8_t)r;
        }
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q8_0_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK8_0; i++) {
        block_q8_0 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        float      *y = dst + i * WERK_QK8_0;
        for (int j = 0; j < WERK_QK8_0; j++) {
            y[j] = (float)b.qs[j] * d;
        }
    }
}
