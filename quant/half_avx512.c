/* quant/half_avx512.c - f16/bf16 row conversions with AVX-512 (F, BW, VL)
 *
 * As quant/half_avx2.c (read it for why each conversion is bit-identical to quant/half.c)
 * with 16 lanes and masks: vcvtps2ph / vcvtph2ps where no lane is NaN (a group with a
 * NaN goes to the scalar code), the bf16 integer rounding on 16 lanes narrowed with
 * vpmovdw, and masked loads and stores for the last n % 16 elements.
 */
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

static inline __m256i ld256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
static inline void    st256(uint8_t *p, __m256i v) { _mm256_storeu_si256((__m256i *)(void *)p, v); }
static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

static inline __mmask16 nan_mask(__m512 v) { return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q); }

void werk_f32_to_f16_row_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    int64_t  i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m512 v0 = _mm512_loadu_ps(src + i), v1 = _mm512_loadu_ps(src + i + 16);
        const __m512 v2 = _mm512_loadu_ps(src + i + 32), v3 = _mm512_loadu_ps(src + i + 48);
        if (nan_mask(v0) | nan_mask(v1) | nan_mask(v2) | nan_mask(v3)) {
            werk_f32_to_f16_row_ref(src + i, d + 2 * i, 64);
            continue;
        }
        st256(d + 2 * i, _mm512_cvtps_ph(v0, _MM_FROUND_TO_NEAREST_INT));
        st256(d + 2 * i + 32, _mm512_cvtps_ph(v1, _MM_FROUND_TO_NEAREST_INT));
        st256(d + 2 * i + 64, _mm512_cvtps_ph(v2, _MM_FROUND_TO_NEAREST_INT));
        st256(d + 2 * i + 96, _mm512_cvtps_ph(v3, _MM_FROUND_TO_NEAREST_INT));
    }
    for (; i < n; i += 16) {
        const int64_t   left = n - i < 16 ? n - i : 16;
        const __mmask16 m    = tail_mask(left);
        const __m512    v    = _mm512_maskz_loadu_ps(m, src + i);
        if (nan_mask(v)) {
            werk_f32_to_f16_row_ref(src + i, d + 2 * i, left);
            continue;
        }
        _mm256_mask_storeu_epi16(d + 2 * i, m, _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
    }
}

static inline __mmask16 nan_halfs(__m256i h) {
    return _mm256_cmpgt_epi16_mask(_mm256_and_si256(h, _mm256_set1_epi16(0x7fff)), _mm256_set1_epi16(0x7c00));
}

void werk_f16_to_f32_row_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t        i = 0;
    for (; i + 64 <= n; i += 64) {
        const __m256i h0 = ld256(s + 2 * i), h1 = ld256(s + 2 * i + 32);
        const __m256i h2 = ld256(s + 2 * i + 64), h3 = ld256(s + 2 * i + 96);
        if (nan_halfs(h0) | nan_halfs(h1) | nan_halfs(h2) | nan_halfs(h3)) {
            werk_f16_to_f32_row_ref(s + 2 * i, dst + i, 64);
            continue;
        }
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h0));
        _mm512_storeu_ps(dst + i + 16, _mm512_cvtph_ps(h1));
        _mm512_storeu_ps(dst + i + 32, _mm512_cvtph_ps(h2));
        _mm512_storeu_ps(dst + i + 48, _mm512_cvtph_ps(h3));
    }
    for (; i < n; i += 16) {
        const int64_t   left = n - i < 16 ? n - i : 16;
        const __mmask16 m    = tail_mask(left);
        const __m256i   h    = _mm256_maskz_loadu_epi16(m, s + 2 * i);
        if (nan_halfs(h)) {
            werk_f16_to_f32_row_ref(s + 2 * i, dst + i, left);
            continue;
        }
        _mm512_mask_storeu_ps(dst + i, m, _mm512_cvtph_ps(h));
    }
}

/* 16 floats -> 16 bf16 (werk_fp32_to_bf16 on each lane) */
static inline __m256i bf16_round(__m512 v) {
    const __m512i   u     = _mm512_castps_si512(v);
    const __mmask16 isnan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                    _mm512_set1_epi32(0x7f800000));
    const __m512i   lsb   = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i         r     = _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), lsb));
    r = _mm512_mask_or_epi32(r, isnan, u, _mm512_set1_epi32(0x00400000)); // NaN: quiet bit, top half kept
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
}

void werk_f32_to_bf16_row_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *d = dst;
    int64_t  i = 0;
    for (; i + 32 <= n; i += 32) {
        st256(d + 2 * i, bf16_round(_mm512_loadu_ps(src + i)));
        st256(d + 2 * i + 32, bf16_round(_mm512_loadu_ps(src + i + 16)));
    }
    for (; i < n; i += 16) {
        const int64_t   left = n - i < 16 ? n - i : 16;
        const __mmask16 m    = tail_mask(left);
        _mm256_mask_storeu_epi16(d + 2 * i, m, bf16_round(_mm512_maskz_loadu_ps(m, src + i)));
    }
}

void werk_bf16_to_f32_row_avx512(const void *src, float *dst, int64_t n) {
    const uint8_t *s = src;
    int64_t        i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_si512(dst + i, _mm512_slli_epi32(_mm512_cvtepu16_epi32(ld256(s + 2 * i)), 16));
        _mm512_storeu_si512(dst + i + 16,
                            _mm512_slli_epi32(_mm512_cvtepu16_epi32(ld256(s + 2 * i + 32)), 16));
    }
    for (; i < n; i += 16) {
        const int64_t   left = n - i < 16 ? n - i : 16;
        const __mmask16 m    = tail_mask(left);
        const __m512i   v =
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s + 2 * i)), 16);
        _mm512_mask_storeu_epi32(dst + i, m, v);
    }
}
