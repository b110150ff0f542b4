/* quant/act_avx2.c - AVX2 activation quantizers f32 -> Q8_0 / Q8_1 / Q8_K
 *
 * The right-hand operands of the dot products (quant/simd_int.h), bit-identical to the
 * scalar references werk_q8_0_quantize_ref, werk_q8_1_quantize_ref and
 * werk_q8_k_quantize_ref (quant/q8_*.c; ggml's quantize_row_q8_{0,1,K}_ref on finite
 * input). How each step is kept exact:
 *  - amax is a max of |x|, order-free for finite input; d = amax / 127 and id = 1 / d
 *    (0 if d == 0) are the same scalar float divisions as the reference.
 *  - Q8_0/Q8_1 round with roundf (half away from zero): t = trunc(v), then t +/- 1 where
 *    |v - t| >= 0.5 (v - t is exact). _mm256_round_ps's nearest mode would be
 *    half-to-even and differ on ties. Q8_0's guards stay: a non-finite v gives 0, the
 *    result is clamped to -128..127.
 *  - Q8_K rounds iscale * x with ggml's nearest_int (add 1.5 * 2^23: round half to even
 *    in the current mode), which is _mm256_cvtps_epi32 under the default MXCSR; iscale =
 *    -127 / max where max is the signed value of the first element whose |x| is amax
 *    (ggml's strict '>' scan keeps the first); q = min(127, .); bsums are exact int sums;
 *    d = 1 / iscale. An all-zero super-block gives d = 0 and zero quants and bsums.
 *  - fp16 fields (Q8_0/Q8_1 d, Q8_1 s) go through werk_fp32_to_fp16 itself.
 *  - A block with a NaN or inf is handed whole to the scalar reference (whose handling
 *    there, a NaN-propagating or NaN-skipping max, is not worth mirroring), and so is a
 *    Q8_K super-block whose iscale overflows (|max| < 127 / FLT_MAX: every iscale * x is
 *    then inf or NaN).
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

static inline __m256 abs_ps(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

static inline float hmax8(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m        = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m        = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}

/* all 32 lanes of v[0..3] finite? */
static inline bool finite32(const __m256 v[4]) {
    const __m256 inf = _mm256_set1_ps(__builtin_inff());
    __m256       ok  = _mm256_cmp_ps(abs_ps(v[0]), inf, _CMP_LT_OQ);
    ok               = _mm256_and_ps(ok, _mm256_cmp_ps(abs_ps(v[1]), inf, _CMP_LT_OQ));
    ok               = _mm256_and_ps(ok, _mm256_cmp_ps(abs_ps(v[2]), inf, _CMP_LT_OQ));
    ok               = _mm256_and_ps(ok, _mm256_cmp_ps(abs_ps(v[3]), inf, _CMP_LT_OQ));
    return _mm256_movemask_ps(ok) == 0xFF;
}

/* roundf(v) with Q8_0's guards (non-finite -> 0, clamp to -128..127), as int32 */
static inline __m256i round_away_i32(__m256 v) {
    const __m256 t    = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_sub_ps(v, t);
    const __m256 half = _mm256_cmp_ps(abs_ps(frac), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one  = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
    __m256       r    = _mm256_add_ps(t, _mm256_and_ps(half, one));
    r = _mm256_and_ps(r, _mm256_cmp_ps(abs_ps(v), _mm256_set1_ps(__builtin_inff()), _CMP_LT_OQ));
    r = _mm256_min_ps(_mm256_max_ps(r, _mm256_set1_ps(-128.0f)), _mm256_set1_ps(127.0f));
    return _mm256_cvtps_epi32(r);
}

/* four vectors of 8 int32 in -128..127 -> 32 int8 in element order */
static inline __m256i pack32(const __m256i q[4]) {
    const __m256i a = _mm256_packs_epi32(q[0], q[1]);
    const __m256i b = _mm256_packs_epi32(q[2], q[3]);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline int32_t hsum_i32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s         = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s         = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static void store_half(uint8_t *p, float f) {
    const uint16_t h = werk_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* One 32-element block: d and the 32 quants (Q8_0 and Q8_1 share this); false if the
 * block is not finite (nothing written). */
static inline bool q8_block(const float *x, uint8_t *qs_out, float *d_out, int32_t *sum_out) {
    __m256 v[4];
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_loadu_ps(x + 8 * k);
    }
    if (!finite32(v)) {
        return false;
    }
    const __m256 m =
        _mm256_max_ps(_mm256_max_ps(abs_ps(v[0]), abs_ps(v[1])), _mm256_max_ps(abs_ps(v[2]), abs_ps(v[3])));
    const float  amax = hmax8(m);
    const float  d    = amax / 127.0f;
    const float  id   = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid  = _mm256_set1_ps(id);
    __m256i      q[4];
    for (int k = 0; k < 4; k++) {
        q[k] = round_away_i32(_mm256_mul_ps(v[k], vid));
    }
    _mm256_storeu_si256((__m256i *)(void *)qs_out, pack32(q));
    *d_out   = d;
    *sum_out = hsum_i32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
    return true;
}

void werk_q8_0_quantize_avx2(const float *src, void *dst, int64_t n) {
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

void werk_q8_1_quantize_avx2(const float *src, void *dst, int64_t n) {
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

// ---- Q8_K -----------------------------------------------------------------------------

/* horizontal sums of t[0..3] (8 int32 each) -> 4 int32 */
static inline __m128i hsum4x8(const __m256i t[4]) {
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(t[0], t[1]), _mm256_hadd_epi32(t[2], t[3]));
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

void werk_q8_k_quantize_avx2(const float *src, void *dst, int64_t n) {
    uint8_t     *out = dst;
    const __m256 inf = _mm256_set1_ps(__builtin_inff());
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x = src + i * WERK_QK_K;
        uint8_t     *b = out + i * (int64_t)sizeof(block_q8_K); // d 0, qs 4, bsums 260
        __m256       m = _mm256_setzero_ps(), ok = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
        for (int k = 0; k < 32; k++) {
            const __m256 a = abs_ps(_mm256_loadu_ps(x + 8 * k));
            ok             = _mm256_and_ps(ok, _mm256_cmp_ps(a, inf, _CMP_LT_OQ));
            m              = _mm256_max_ps(m, a);
        }
        if (_mm256_movemask_ps(ok) != 0xFF) {
            werk_q8_k_quantize_ref(x, b, WERK_QK_K);
            continue;
        }
        const float amax = hmax8(m);
        if (amax == 0.0f) {
            memset(b, 0, sizeof(block_q8_K));
            continue;
        }
        // the first element with |x| == amax gives max (with its sign)
        const __m256 va  = _mm256_set1_ps(amax);
        int          idx = 0;
        for (int k = 0; k < 32; k++) {
            const int bits =
                _mm256_movemask_ps(_mm256_cmp_ps(abs_ps(_mm256_loadu_ps(x + 8 * k)), va, _CMP_EQ_OQ));
            if (bits) {
                idx = 8 * k + __builtin_ctz((unsigned)bits);
                break;
            }
        }
        const float iscale = -127.0f / x[idx];
        if (!isfinite(iscale)) { // |max| < 127 / FLT_MAX: the reference's corner, not ours to copy
            werk_q8_k_quantize_ref(x, b, WERK_QK_K);
            continue;
        }
        const __m256  vs   = _mm256_set1_ps(iscale);
        const __m256i q127 = _mm256_set1_epi32(127);
        __m256i       gsum[16];
        for (int c = 0; c < 8; c++) { // 32 elements = 2 bsum groups per step
            __m256i q[4];
            for (int k = 0; k < 4; k++) {
                q[k] = _mm256_min_epi32(
                    _mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(x + 32 * c + 8 * k))), q127);
            }
            _mm256_storeu_si256((__m256i *)(void *)(b + 4 + 32 * c), pack32(q));
            gsum[2 * c]     = _mm256_add_epi32(q[0], q[1]);
            gsum[2 * c + 1] = _mm256_add_epi32(q[2], q[3]);
        }
        const __m128i s0 = hsum4x8(gsum), s1 = hsum4x8(gsum + 4), s2 = hsum4x8(gsum + 8),
                      s3 = hsum4x8(gsum + 12);
        _mm_storeu_si128((__m128i *)(void *)(b + 260), _mm_packs_epi32(s0, s1));
        _mm_storeu_si128((__m128i *)(void *)(b + 276), _mm_packs_epi32(s2, s3));
        const float d = 1.0f / iscale;
        memcpy(b, &d, 4);
    }
}
