/* quant/q8_1.c - Q8_1 blocks (9.0 bpw): 32 int8 quants, an fp16 scale and an fp16 sum
 *
 * Q8_1 is ggml's right-hand operand for dot products with Q4_1/Q5_1 (s = d * sum(q)
 * saves a pass); it is not meant for files. werk still dequantizes it so that every
 * GGUF type id werk knows can be read: value = d * q, s ignored. ggml itself has no
 * dequantize_row_q8_1 and gguf-py has neither a Q8_1 dequantizer nor the right block
 * size (it lists 40 bytes; ggml's block is 36).
 *
 * Quantizer (werk_q8_1_quantize_ref, for activations): ggml's quantize_row_q8_1_ref,
 * i.e. Q8_0's rounding (d = max|x| / 127, q = round-half-away(x / d)) plus
 * s = fp16(d * sum(q)). Non-finite quotients store 0, as werk's Q8_0 quantizer.
 *
 * Reference: ggml/src/ggml-common.h (block_q8_1), MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q8_1_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK8_1; i++) {
        const float *x    = src + i * WERK_QK8_1;
        float        amax = 0.0f;
        for (int j = 0; j < WERK_QK8_1; j++) {
            float v = fabsf(x[j]);
            amax    = v > amax ? v : amax;
        }
        const float d  = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;

        block_q8_1 b;
        int        sum = 0;
        for (int j = 0; j < WERK_QK8_1; j++) {
            float v = x[j] * id;
            float r = isfinite(v) ? roundf(v) : 0.0f;
            r       = r > 127.0f ? 127.0f : (r < -128.0f ? -128.0f : r);
            b.qs[j] = (int8_t)r;
            sum += b.qs[j];
        }
        b.d = werk_fp32_to_fp16(d);
        b.s = werk_fp32_to_fp16((float)sum * d);
        memcpy(out + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q8_1_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK8_1; i++) {
        block_q8_1 b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        float      *y = dst + i * WERK_QK8_1;
        for (int j = 0; j < WERK_QK8_1; j++) {
            y[j] = (float)b.qs[j] * d;
        }
    }
}
