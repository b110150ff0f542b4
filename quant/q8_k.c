/* quant/q8_k.c - Q8_K super-blocks (9.125 bpw): 256 int8 quants, a float32 scale
 *
 * ggml's intermediate type for k-quant dot products (activations), rarely in files.
 * value = d * q; the bsums (sums of 16 quants) are a dot-product helper and ignored
 * here. As ggml's dequantize_row_q8_K (gguf-py has no Q8_K dequantizer).
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q8_K), MIT.
 */
#include "quant/quant_int.h"

#include <string.h>

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
