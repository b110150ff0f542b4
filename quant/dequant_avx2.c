/* quant/dequant_avx2.c - AVX2 dequantizers for the types real models use most
 *
 * Q4_0, Q4_1, Q5_0, Q8_0, Q4_K and Q6_K (the weights of the Gemma 3 and SmolLM2 GGUFs
 * werk is tested on), bit-identical to the scalar references in quant/q*.c: each output
 * is the same float32 expression evaluated in the same order, only 8 lanes at a time.
 * Quants are exact small integers, converted with _mm256_cvtepi32_ps; the fp16 scales
 * with F16C (exact, and for a NaN scale the product is the same quiet NaN the scalar
 * code yields); per-group factors such as Q4_K's d * sc and dmin * m are the same
 * scalar float products as in the reference; then one multiply, and for Q4_1 / Q4_K one
 * add / subtract, never fused (quant_int.h turns contraction off; ISO C mode never
 * contracts). The expressions:
 *   Q4_0  (float)(q - 8) * d           Q4_1  d * (float)q + m
 *   Q5_0  (float)(q - 16) * d          Q8_0  (float)q * d
 *   Q4_K  (d * sc) * (float)q - (dmin * m)
 *   Q6_K  (d * sc) * (float)(q - 32)
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

static inline float ld_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m128i ld128(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
static inline __m256i ld256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

/* 16 nibble-pair bytes -> 32 bytes: low nibbles (elements 0..15), then high nibbles */
static inline __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = ld128(qs);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 signed bytes -> 4 x 8 floats */
static inline void i8x32_to_f32(__m256i q, __m256 f[4]) {
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    f[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    f[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    f[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    f[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/* y[0..31] = f * d (f[k] * d: the quant is the left operand, as (float)q * d) */
static inline void store_qd(float *y, const __m256 f[4], __m256 d) {
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_ps(y + 8 * k, _mm256_mul_ps(f[k], d));
    }
}

void werk_q4_0_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK4_0; i++) {
        const uint8_t *b = in + i * (int64_t)sizeof(block_q4_0); // d 0, qs 2
        __m256         f[4];
        i8x32_to_f32(_mm256_sub_epi8(nibbles32(b + 2), _mm256_set1_epi8(8)), f);
        store_qd(dst + i * WERK_QK4_0, f, _mm256_set1_ps(ld_half(b)));
    }
}

void werk_q4_1_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK4_1; i++) {
        const uint8_t *b = in + i * (int64_t)sizeof(block_q4_1); // d 0, m 2, qs 4
        const __m256   d = _mm256_set1_ps(ld_half(b)), m = _mm256_set1_ps(ld_half(b + 2));
        __m256         f[4];
        i8x32_to_f32(nibbles32(b + 4), f);
        float *y = dst + i * WERK_QK4_1;
        for (int k = 0; k < 4; k++) {
            _mm256_storeu_ps(y + 8 * k, _mm256_add_ps(_mm256_mul_ps(d, f[k]), m));
        }
    }
}

void werk_q5_0_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in  = src;
    const __m256i  shf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i  bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    for (int64_t i = 0; i < n / WERK_QK5_0; i++) {
        const uint8_t *b = in + i * (int64_t)sizeof(block_q5_0); // d 0, qh 2, qs 6
        uint32_t       qh;
        memcpy(&qh, b + 2, 4);
        const __m256i set = _mm256_cmpeq_epi8(
            _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shf), bit), bit);
        // q - 16: the nibble where the 5th bit is set, nibble | 0xF0 (= nibble - 16) where not
        const __m256i q =
            _mm256_or_si256(nibbles32(b + 6), _mm256_andnot_si256(set, _mm256_set1_epi8((char)0xF0)));
        __m256 f[4];
        i8x32_to_f32(q, f);
        store_qd(dst + i * WERK_QK5_0, f, _mm256_set1_ps(ld_half(b)));
    }
}

void werk_q8_0_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK8_0; i++) {
        const uint8_t *b = in + i * (int64_t)sizeof(block_q8_0); // d 0, qs 2
        __m256         f[4];
        i8x32_to_f32(ld256(b + 2), f);
        store_qd(dst + i * WERK_QK8_0, f, _mm256_set1_ps(ld_half(b)));
    }
}

void werk_q4_k_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    const __m256i  m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *b    = in + i * (int64_t)sizeof(block_q4_K); // d 0, dmin 2, scales 4, qs 16
        const float    d    = ld_half(b);
        const float    dmin = ld_half(b + 2);
        float         *y    = dst + i * WERK_QK_K;
        for (int p = 0; p < 4; p++) {
            uint8_t sc, m;
            werk_k4_scale_min(2 * p, b + 4, &sc, &m);
            const __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(dmin * (float)m);
            werk_k4_scale_min(2 * p + 1, b + 4, &sc, &m);
            const __m256  d2 = _mm256_set1_ps(d * (float)sc), m2 = _mm256_set1_ps(dmin * (float)m);
            const __m256i q = ld256(b + 16 + 32 * p);
            __m256        f[4];
            i8x32_to_f32(_mm256_and_si256(q, m4), f);
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(y + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d1, f[k]), m1));
            }
            i8x32_to_f32(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), f);
            for (int k = 0; k < 4; k++) {
                _mm256_storeu_ps(y + 32 + 8 * k, _mm256_sub_ps(_mm256_mul_ps(d2, f[k]), m2));
            }
            y += 64;
        }
    }
}

void werk_q6_k_dequantize_avx2(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    const __m256i  m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03), c32 = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *b = in + i * (int64_t)sizeof(block_q6_K); // ql 0, qh 128, scales 192, d 208
        const float    d = ld_half(b + 208);
        int8_t         sc[16];
        memcpy(sc, b + 192, 16);
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = ld256(b + 64 * h), ql1 = ld256(b + 64 * h + 32);
            const __m256i qh = ld256(b + 128 + 32 * h);
            float        *y  = dst + i * WERK_QK_K + 128 * h;
            for (int r = 0; r < 4; r++) {
                const __m256i lo =
                    _mm256_and_si256(r < 2 ? (r ? ql1 : ql0) : _mm256_srli_epi16(r == 3 ? ql1 : ql0, 4), m4);
                const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * r), m2);
                const __m256i q  = _mm256_sub_epi8(_mm256_or_si256(lo, _mm256_slli_epi16(hi, 4)), c32);
                __m256        f[4];
                i8x32_to_f32(q, f);
                const __m256 s0 = _mm256_set1_ps(d * (float)sc[8 * h + 2 * r]);
                const __m256 s1 = _mm256_set1_ps(d * (float)sc[8 * h + 2 * r + 1]);
                _mm256_storeu_ps(y + 32 * r, _mm256_mul_ps(s0, f[0]));
                _mm256_storeu_ps(y + 32 * r + 8, _mm256_mul_ps(s0, f[1]));
                _mm256_storeu_ps(y + 32 * r + 16, _mm256_mul_ps(s1, f[2]));
                _mm256_storeu_ps(y + 32 * r + 24, _mm256_mul_ps(s1, f[3]));
            }
        }
    }
}
