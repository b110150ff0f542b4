/* quant/act_avx512.c - AVX-512 activation quantizers f32 -> Q8_0 / Q8_1 / Q8_K
 *
 * The same computation as quant/act_avx2.c (read its header for how each step stays
 * bit-identical to the scalar references) with 16 lanes: a 32-element block is two
 * registers, a Q8_K super-block sixteen, one per bsums group. Narrowing uses vpmovdb
 * (_mm512_cvtepi32_epi8), exact because every value is already in -128..127. A block
 * holding NaN or inf goes to the scalar reference, as there.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

static inline __m512 abs_ps(__m512 v) { return _mm512_abs_ps(v); }

static void store_half(uint8_t *p, float f) {
    const uint16_t h = werk_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* roundf(v) with Q8_0's guards (non-finite -> 0, clamp to -128..127), as int32 */
static inline __m512i round_away_i32(__m512 v) {
    const __m512    t    = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512    frac = _mm512_sub_ps(v, t);
    const __mmask16 half = _mm512_cmp_ps_mask(abs_ps(frac), _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __mmask16 fin  = _mm512_cmp_ps_mask(abs_ps(v), _mm512_set1_ps(__builtin_inff()), _CMP_LT_OQ);
    const __m512    one  = _mm512_castsi512_ps(
            _mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)),
                            _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    __m512 r = _mm512_mask_add_ps(t, half, t, one);
    r        = _mm512_maskz_mov_ps(fin, r);
    r        = _mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-128.0f)), _mm512_set1_ps(127.0f));
    return _mm512_cvtps_epi32(r);
}

static inline bool q8_block(const float *x, uint8_t *qs_out, float *d_out, int32_t *sum_out) {
    const __m512    v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
    const __m512    inf = _mm512_set1_ps(__builtin_inff());
    const __mmask16 ok =
        _mm512_cmp_ps_mask(abs_ps(v0), inf, _CMP_LT_OQ) & _mm512_cmp_ps_mask(abs_ps(v1), inf, _CMP_LT_OQ);
    if (ok != 0xFFFF) {
        return false;
    }
    const float   amax = _mm512_reduce_max_ps(_mm512_max_ps(abs_ps(v0), abs_ps(v1)));
    const float   d    = amax / 127.0f;
    const float   id   = d != 0.0f ? 1.0f / d : 0.0f;
    const __m512  vid  = _mm512_set1_ps(id);
    const __m512i q0   = round_away_i32(_mm512_mul_ps(v0, vid));
    const __m512i q1   = round_away_i32(_mm512_mul_ps(v1, vid));
    _mm_storeu_si128((__m128i *)(void *)qs_out, _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128((__m128i *)(void *)(qs_out + 16), _mm512_cvtepi32_epi8(q1));
    *d_out   = d;
    *sum_out = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return true;
}

void werk_q8_0_quantize_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK8_0; i++) {
        const float *x = src + i * WERK_QK8_0;
        uint8_t     *b = out + i * (int64_t)sizeof(block_q8_0);
        float        d;
        int32_t      sum;
        if (!q8_block(x, b + 2, &d, &sum)) {
            werk_q8_0_quantize_ref(x, b, WERK_QK8_0);
            continue;
        }
        store_half(b, d);
    }
}

void werk_q8_1_quantize_avx512(const float *src, void *dst, int64_t n) {
    uint8_t *out = dst;
    for (int64_t i = 0; i < n / WERK_QK8_1; i++) {
        const float *x = src + i * WERK_QK8_1;
        uint8_t     *b = out + i * (int64_t)sizeof(block_q8_1);
        float        d;
        int32_t      sum;
        if (!q8_block(x, b + 4, &d, &sum)) {
            werk_q8_1_quantize_ref(x, b, WERK_QK8_1);
            continue;
        }
        store_half(b, d);
        store_half(b + 2, (float)sum * d);
    }
}

void werk_q8_k_quantize_avx512(const float *src, void *dst, int64_t n) {
    uint8_t     *out = dst;
    const __m512 inf = _mm512_set1_ps(__builtin_inff());
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x  = src + i * WERK_QK_K;
        uint8_t     *b  = out + i * (int64_t)sizeof(block_q8_K); // d 0, qs 4, bsums 260
        __m512       m  = _mm512_setzero_ps();
        __mmask16    ok = 0xFFFF;
        for (int k = 0; k < 16; k++) {
            const __m512 a = abs_ps(_mm512_loadu_ps(x + 16 * k));
            ok &= _mm512_cmp_ps_mask(a, inf, _CMP_LT_OQ);
            m = _mm512_max_ps(m, a);
        }
        if (ok != 0xFFFF) {
            werk_q8_k_quantize_ref(x, b, WERK_QK_K);
            continue;
        }
        const float amax = _mm512_reduce_max_ps(m);
        if (amax == 0.0f) {
            memset(b, 0, sizeof(block_q8_K));
            continue;
        }
        // the first element with |x| == amax gives max (with its sign)
        const __m512 va  = _mm512_set1_ps(amax);
        int          idx = 0;
        for (int k = 0; k < 16; k++) {
            const __mmask16 hit = _mm512_cmp_ps_mask(abs_ps(_mm512_loadu_ps(x + 16 * k)), va, _CMP_EQ_OQ);
            if (hit) {
                idx = 16 * k + __builtin_ctz((unsigned)hit);
                break;
            }
        }
        const float iscale = -127.0f / x[idx];
        if (!isfinite(iscale)) { // |max| < 127 / FLT_MAX: the reference's corner, not ours to copy
            werk_q8_k_quantize_ref(x, b, WERK_QK_K);
            continue;
        }
        const __m512  vs   = _mm512_set1_ps(iscale);
        const __m512i q127 = _mm512_set1_epi32(127);
        int16_t       bsums[16];
        for (int g = 0; g < 16; g++) {
            const __m512i q =
                _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + 16 * g))), q127);
            _mm_storeu_si128((__m128i *)(void *)(b + 4 + 16 * g), _mm512_cvtepi32_epi8(q));
            bsums[g] = (int16_t)_mm512_reduce_add_epi32(q);
        }
        memcpy(b + 260, bsums, sizeof(bsums));
        const float d = 1.0f / iscale;
        memcpy(b, &d, 4);
    }
}
