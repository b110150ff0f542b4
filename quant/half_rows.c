/* quant/half_rows.c - scalar f16/bf16 row conversions (the reference loops)
 *
 * werk_f32_to_f16_row_ref and friends apply quant/half.c's scalar conversions element by
 * element; the half side is read and written with memcpy (any alignment). They are the
 * oracle for the AVX2 / AVX-512 rows (quant/half_avx2.c, quant/half_avx512.c) and the
 * path taken on CPUs without AVX2 or with WERK_ISA=scalar. quant/dispatch.c picks the
 * variant behind the unsuffixed werk_*_row functions.
 */
#include "quant/simd_int.h"

#include <string.h>

void werk_f32_to_f16_row_ref(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = werk_fp32_to_fp16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

void werk_f16_to_f32_row_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = werk_fp16_to_fp32(h);
    }
}

void werk_f32_to_bf16_row_ref(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = werk_fp32_to_bf16(src[i]);
        memcpy(d + 2 * i, &h, 2);
    }
}

void werk_bf16_to_f32_row_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, s + 2 * i, 2);
        dst[i] = werk_bf16_to_fp32(h);
    }
}
