/* quant/half_avx2.c - f16/bf16 row conversions with F16C and AVX2
 *
 * Bit-identical to the scalar conversions of quant/half.c, element by element:
 *  - f32 -> f16: vcvtps2ph with round-to-nearest-even (immediate 0) equals
 *    werk_fp32_to_fp16 on every non-NaN float, subnormal halfs and overflow to inf
 *    included (default MXCSR: no DAZ). NaNs differ (the hardware quiets signalling NaNs,
 *    the scalar code keeps the payload bits), so a group of vectors holding a NaN is
 *    converted by the scalar code.
 *  - f16 -> f32: vcvtph2ps is exact, but quiets signalling NaN halfs; a group with a NaN
 *    half ((h & 0x7fff) > 0x7c00) goes to the scalar code.
 *  - f32 -> bf16: werk_fp32_to_bf16's integer rounding (u + 0x7fff + lsb) >> 16, NaN ->
 *    top half | 0x40, on 8 lanes; pack with unsigned saturation (no value exceeds 0xffff).
 *  - bf16 -> f32: a 16-bit shift.
 * Any n: the tail after the last full vector is scalar. The half side is any alignment.
 */
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

static inline __m128i ld128(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
static inline void    st128(uint8_t *p, __m128i v) { _mm_storeu_si128((__m128i *)(void *)p, v); }

void werk_f32_to_f16_row_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    int64_t  i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256 v0 = _mm256_loadu_ps(src + i), v1 = _mm256_loadu_ps(src + i + 8);
        const __m256 v2 = _mm256_loadu_ps(src + i + 16), v3 = _mm256_loadu_ps(src + i + 24);
        const __m256 nan = _mm256_or_ps(
            _mm256_or_ps(_mm256_cmp_ps(v0, v0, _CMP_UNORD_Q), _mm256_cmp_ps(v1, v1, _CMP_UNORD_Q)),
            _mm256_or_ps(_mm256_cmp_ps(v2, v2, _CMP_UNORD_Q), _mm256_cmp_ps(v3, v3, _CMP_UNORD_Q)));
        if (_mm256_movemask_ps(nan)) {
            werk_f32_to_f16_row_ref(src + i, d + 2 * i, 32);
            continue;
        }
        st128(d + 2 * i, _mm256_cvtps_ph(v0, _MM_FROUND_TO_NEAREST_INT));
        st128(d + 2 * i + 16, _mm256_cvtps_ph(v1, _MM_FROUND_TO_NEAREST_INT));
        st128(d + 2 * i + 32, _mm256_cvtps_ph(v2, _MM_FROUND_TO_NEAREST_INT));
        st128(d + 2 * i + 48, _mm256_cvtps_ph(v3, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(src + i);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) {
            werk_f32_to_f16_row_ref(src + i, d + 2 * i, 8);
            continue;
        }
        st128(d + 2 * i, _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
    werk_f32_to_f16_row_ref(src + i, d + 2 * i, n - i);
}

/* any NaN half among the 8 in h? */
static inline __m128i nan_halfs(__m128i h) {
    return _mm_cmpgt_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7fff)), _mm_set1_epi16(0x7c00));
}

void werk_f16_to_f32_row_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t        i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m128i h0 = ld128(s + 2 * i), h1 = ld128(s + 2 * i + 16);
        const __m128i h2 = ld128(s + 2 * i + 32), h3 = ld128(s + 2 * i + 48);
        const __m128i nan = _mm_or_si128(_mm_or_si128(nan_halfs(h0), nan_halfs(h1)),
                                         _mm_or_si128(nan_halfs(h2), nan_halfs(h3)));
        if (_mm_movemask_epi8(nan)) {
            werk_f16_to_f32_row_ref(s + 2 * i, dst + i, 32);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h0));
        _mm256_storeu_ps(dst + i + 8, _mm256_cvtph_ps(h1));
        _mm256_storeu_ps(dst + i + 16, _mm256_cvtph_ps(h2));
        _mm256_storeu_ps(dst + i + 24, _mm256_cvtph_ps(h3));
    }
    for (; i + 8 <= n; i += 8) {
        const __m128i h = ld128(s + 2 * i);
        if (_mm_movemask_epi8(nan_halfs(h))) {
            werk_f16_to_f32_row_ref(s + 2 * i, dst + i, 8);
            continue;
        }
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
    werk_f16_to_f32_row_ref(s + 2 * i, dst + i, n - i);
}

/* 8 floats -> 8 bf16 in the low 16 bits of each int32 lane */
static inline __m256i bf16_round(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i isnan =
        _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r   = _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), lsb));
    const __m256i q   = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000)); // NaN: quiet bit, top half kept
    return _mm256_srli_epi32(_mm256_blendv_epi8(r, q, isnan), 16);
}

void werk_f32_to_bf16_row_avx2(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    int64_t  i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = bf16_round(_mm256_loadu_ps(src + i));
        const __m256i b = bf16_round(_mm256_loadu_ps(src + i + 8));
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(void *)(d + 2 * i), p);
    }
    werk_f32_to_bf16_row_ref(src + i, d + 2 * i, n - i);
}

void werk_bf16_to_f32_row_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t        i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i h0 = _mm256_cvtepu16_epi32(ld128(s + 2 * i));
        const __m256i h1 = _mm256_cvtepu16_epi32(ld128(s + 2 * i + 16));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i), _mm256_slli_epi32(h0, 16));
        _mm256_storeu_si256((__m256i *)(void *)(dst + i + 8), _mm256_slli_epi32(h1, 16));
    }
    werk_bf16_to_f32_row_ref(s + 2 * i, dst + i, n - i);
}
