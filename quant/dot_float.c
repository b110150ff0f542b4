/* quant/dot_float.c - reference dot products of float rows: F32 . F32, F16 . F16, BF16 . BF16
 *
 * As ggml's ggml_vec_dot_f32 / _f16 / _bf16 generic code: each product is rounded to
 * float32 (exact for f16 and bf16 operands: 11 + 11 and 8 + 8 significant bits fit in
 * float32's 24), and the products are summed in double, then rounded once to float32.
 * Operands are read with memcpy (any alignment). The SIMD variants (dot_avx2.c,
 * dot_avx512.c) sum in float32 with FMA: within float rounding of these.
 *
 * Reference: ggml/src/ggml-cpu/vec.cpp (ggml_vec_dot_f32, ggml_vec_dot_f16,
 * ggml_vec_dot_bf16), MIT.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <string.h>

void werk_f32_dot_f32_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    double         sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float a, b;
        memcpy(&a, x + 4 * i, 4);
        memcpy(&b, y + 4 * i, 4);
        sum += (double)(a * b);
    }
    *s = (float)sum;
}

void werk_f16_dot_f16_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    double         sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, x + 2 * i, 2);
        memcpy(&b, y + 2 * i, 2);
        sum += (double)(werk_fp16_to_fp32(a) * werk_fp16_to_fp32(b));
    }
    *s = (float)sum;
}

void werk_bf16_dot_bf16_ref(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    double         sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, x + 2 * i, 2);
        memcpy(&b, y + 2 * i, 2);
        sum += (double)(werk_bf16_to_fp32(a) * werk_bf16_to_fp32(b));
    }
    *s = (float)sum;
}
