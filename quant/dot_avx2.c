/* quant/dot_avx2.c - AVX2 + FMA + F16C dot products (variants of quant/dot_<fmt>.c)
 *
 * Same signatures and pairings as the scalar references (quant/simd_int.h), compiled
 * with -mavx2 -mfma -mf16c (CMakeLists.txt, by the file suffix) and chosen at run time by
 * quant/dispatch.c, never called on a CPU without AVX2.
 *
 * Integer core: a weight byte vector times an activation int8 vector goes through
 * _mm256_maddubs_epi16 (unsigned x signed bytes -> pairs summed to int16) and
 * _mm256_madd_epi16 (int16 pairs -> int32). Unsigned weights (Q4_1, Q5_1, the K-quants'
 * 2..6-bit quants) go in directly; signed ones (Q4_0 - 8, Q5_0 - 16, Q8_0) as |x| with
 * the activation's sign flipped where x < 0 (_mm256_sign_epi8). No int16 step can
 * saturate: the largest pair is 2 * 128 * 127 (Q8_0), 2 * 63 * 127 (Q6_K). K-quant
 * scales multiply the int16 pairs in _mm256_madd_epi16; the constant offsets (Q6_K's
 * -32, the mins of Q2_K/Q4_K/Q5_K) use Q8_K's bsums. Each block's integer sum is exact, so
 * a variant differs from the reference only in how the per-block float terms are
 * added (fmadd into 8-lane accumulators, two of them for the legacy formats to hide the
 * FMA latency).
 *
 * Blocks are read at any alignment: fields through memcpy, vectors through loadu. The
 * byte offsets of the fields are those of quant/blocks.h.
 *
 * Reference: the technique (maddubs/madd with sign tricks, bsums for the mins) is ggml's
 * ggml/src/ggml-cpu/arch/x86/quants.c (MIT); the code here is written from the formats.
 */
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <immintrin.h>
#include <string.h>

// ---- helpers ----------------------------------------------------------------------

static inline float ld_half(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float ld_f32(const uint8_t *p) {
    float f;
    memcpy(&f, p, 4);
    return f;
}

static inline __m256i ld256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }

static inline __m128i ld128(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s        = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s        = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hsum4(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibble pairs -> 32 bytes: low nibbles (elements 0..15), then high ones. */
static inline __m256i nibbles32(const uint8_t *qs) {
    const __m128i t = ld128(qs);
    const __m256i b = _mm256_inserti128_si256(_mm256_castsi128_si256(t), _mm_srli_epi16(t, 4), 1);
    return _mm256_and_si256(b, _mm256_set1_epi8(0x0F));
}

/* 32 bits (little-endian at p) -> 32 bytes, 0xFF where the bit is set. */
static inline __m256i bits32(const uint8_t *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, //
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit  = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    const __m256i v    = _mm256_shuffle_epi8(_mm256_set1_epi32((int)u), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* sum of pairs of u8 x i8 products, as 8 int32 (4 products each) */
static inline __m256i dot_u8i8(__m256i xu, __m256i y) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(xu, y), _mm256_set1_epi16(1));
}

/* the same for signed x (|x| <= 128, y != -128 where x < 0) */
static inline __m256i dot_i8i8(__m256i x, __m256i y) {
    return dot_u8i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

/* int16 vector: lanes 0..7 = s16[2k], lanes 8..15 = s16[2k+1] (scales of a 32-element
 * chunk made of two 16-element groups) */
static inline __m256i scale_pair(__m256i s16, int k) {
    const __m256i pat = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, //
                                         2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(s16, _mm256_set1_epi32(k)), pat);
}

/* Q4_K/Q5_K 12-byte scales -> 16 bytes: the 8 6-bit scales, then the 8 6-bit mins
 * (werk_k4_scale_min, four bytes at a time) */
static inline __m128i k4_scales(const uint8_t *p) {
    uint32_t u0, u1, u2;
    memcpy(&u0, p, 4);
    memcpy(&u1, p + 4, 4);
    memcpy(&u2, p + 8, 4);
    const uint32_t sc_lo = u0 & 0x3f3f3f3fu;
    const uint32_t sc_hi = (u2 & 0x0f0f0f0fu) | ((u0 >> 2) & 0x30303030u);
    const uint32_t m_lo  = u1 & 0x3f3f3f3fu;
    const uint32_t m_hi  = ((u2 >> 4) & 0x0f0f0f0fu) | ((u1 >> 2) & 0x30303030u);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)m_lo, (int)m_hi);
}

/* Q3_K 12-byte scales -> 16 signed bytes (6-bit scale - 32), in group order */
static inline __m128i k3_scales(const uint8_t *p) {
    uint32_t a0, a1, a2;
    memcpy(&a0, p, 4);
    memcpy(&a1, p + 4, 4);
    memcpy(&a2, p + 8, 4);
    const uint32_t w0 = (a0 & 0x0f0f0f0fu) | ((a2 << 4) & 0x30303030u);
    const uint32_t w1 = (a1 & 0x0f0f0f0fu) | ((a2 << 2) & 0x30303030u);
    const uint32_t w2 = ((a0 >> 4) & 0x0f0f0f0fu) | (a2 & 0x30303030u);
    const uint32_t w3 = ((a1 >> 4) & 0x0f0f0f0fu) | ((a2 >> 2) & 0x30303030u);
    return _mm_sub_epi8(_mm_setr_epi32((int)w0, (int)w1, (int)w2, (int)w3), _mm_set1_epi8(32));
}

// ---- float rows -------------------------------------------------------------------

void werk_f32_dot_f32_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x  = vx;
    const float *y  = vy;
    __m256       a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t      i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    }
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        float a, b;
        memcpy(&a, x + i, 4);
        memcpy(&b, y + i, 4);
        sum += a * b;
    }
    *s = sum;
}

static inline __m256 ld_f16x8(const uint8_t *p) { return _mm256_cvtph_ps(ld128(p)); }

void werk_f16_dot_f16_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x  = vx;
    const uint8_t *y  = vy;
    __m256         a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t        i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i), ld_f16x8(y + 2 * i), a0);
        a1 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 16), ld_f16x8(y + 2 * i + 16), a1);
        a2 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 32), ld_f16x8(y + 2 * i + 32), a2);
        a3 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i + 48), ld_f16x8(y + 2 * i + 48), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(ld_f16x8(x + 2 * i), ld_f16x8(y + 2 * i), a0);
    }
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        sum += ld_half(x + 2 * i) * ld_half(y + 2 * i);
    }
    *s = sum;
}

static inline __m256 ld_bf16x8(const uint8_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(ld128(p)), 16));
}

void werk_bf16_dot_bf16_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x  = vx;
    const uint8_t *y  = vy;
    __m256         a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t        i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i), ld_bf16x8(y + 2 * i), a0);
        a1 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 16), ld_bf16x8(y + 2 * i + 16), a1);
        a2 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 32), ld_bf16x8(y + 2 * i + 32), a2);
        a3 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i + 48), ld_bf16x8(y + 2 * i + 48), a3);
    }
    for (; i + 8 <= n; i += 8) {
        a0 = _mm256_fmadd_ps(ld_bf16x8(x + 2 * i), ld_bf16x8(y + 2 * i), a0);
    }
    float sum = hsum8(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) {
        uint16_t a, b;
        memcpy(&a, x + 2 * i, 2);
        memcpy(&b, y + 2 * i, 2);
        sum += werk_bf16_to_fp32(a) * werk_bf16_to_fp32(b);
    }
    *s = sum;
}

// ---- legacy 32-element blocks -----------------------------------------------------
// Each *_block adds one block's dx * dy * isum into acc. Offsets: Q8_0 d 0, qs 2 (34 B);
// Q8_1 d 0, s 2, qs 4 (36 B).

static inline __m256 q4_0_block(const uint8_t *bx, const uint8_t *by, __m256 acc) {
    const __m256  d  = _mm256_set1_ps(ld_half(bx) * ld_half(by));
    const __m256i qx = _mm256_sub_epi8(nibbles32(bx + 2), _mm256_set1_epi8(8));
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8i8(qx, ld256(by + 2))), acc);
}

static inline __m256 q5_0_block(const uint8_t *bx, const uint8_t *by, __m256 acc) {
    const __m256 d = _mm256_set1_ps(ld_half(bx) * ld_half(by));
    // q - 16 as int8: the nibble where the 5th bit is set, nibble | 0xF0 (= nibble - 16) where not
    const __m256i hi = _mm256_andnot_si256(bits32(bx + 2), _mm256_set1_epi8((char)0xF0));
    const __m256i qx = _mm256_or_si256(nibbles32(bx + 6), hi);
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8i8(qx, ld256(by + 2))), acc);
}

static inline __m256 q8_0_block(const uint8_t *bx, const uint8_t *by, __m256 acc) {
    const __m256 d = _mm256_set1_ps(ld_half(bx) * ld_half(by));
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_i8i8(ld256(bx + 2), ld256(by + 2))), acc);
}

static inline __m256 q4_1_block(const uint8_t *bx, const uint8_t *by, __m256 acc, float *summ) {
    const __m256 d = _mm256_set1_ps(ld_half(bx) * ld_half(by));
    *summ += ld_half(bx + 2) * ld_half(by + 2);
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8i8(nibbles32(bx + 4), ld256(by + 4))), acc);
}

static inline __m256 q5_1_block(const uint8_t *bx, const uint8_t *by, __m256 acc, float *summ) {
    const __m256 d = _mm256_set1_ps(ld_half(bx) * ld_half(by));
    *summ += ld_half(bx + 2) * ld_half(by + 2);
    const __m256i hi = _mm256_and_si256(bits32(bx + 4), _mm256_set1_epi8(0x10));
    const __m256i qx = _mm256_or_si256(nibbles32(bx + 8), hi);
    return _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8i8(qx, ld256(by + 4))), acc);
}

/* Two accumulators over the blocks (odd block count: the last one goes to acc0). */
#define DOT_LEGACY(BLOCK, XSZ, YSZ)                                                                          \
    const uint8_t *x  = vx;                                                                                  \
    const uint8_t *y  = vy;                                                                                  \
    const int64_t  nb = n / 32;                                                                              \
    __m256         a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                                       \
    int64_t        i = 0;                                                                                    \
    for (; i + 2 <= nb; i += 2) {                                                                            \
        a0 = BLOCK(x + i * (XSZ), y + i * (YSZ), a0);                                                        \
        a1 = BLOCK(x + (i + 1) * (XSZ), y + (i + 1) * (YSZ), a1);                                            \
    }                                                                                                        \
    if (i < nb) {                                                                                            \
        a0 = BLOCK(x + i * (XSZ), y + i * (YSZ), a0);                                                        \
    }                                                                                                        \
    *s = hsum8(_mm256_add_ps(a0, a1))

#define DOT_LEGACY_M(BLOCK, XSZ, YSZ)                                                                        \
    const uint8_t *x  = vx;                                                                                  \
    const uint8_t *y  = vy;                                                                                  \
    const int64_t  nb = n / 32;                                                                              \
    __m256         a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();                                       \
    float          m0 = 0.0f, m1 = 0.0f;                                                                     \
    int64_t        i = 0;                                                                                    \
    for (; i + 2 <= nb; i += 2) {                                                                            \
        a0 = BLOCK(x + i * (XSZ), y + i * (YSZ), a0, &m0);                                                   \
        a1 = BLOCK(x + (i + 1) * (XSZ), y + (i + 1) * (YSZ), a1, &m1);                                       \
    }                                                                                                        \
    if (i < nb) {                                                                                            \
        a0 = BLOCK(x + i * (XSZ), y + i * (YSZ), a0, &m0);                                                   \
    }                                                                                                        \
    *s = hsum8(_mm256_add_ps(a0, a1)) + (m0 + m1)

void werk_q4_0_dot_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    DOT_LEGACY(q4_0_block, sizeof(block_q4_0), sizeof(block_q8_0));
}

void werk_q5_0_dot_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    DOT_LEGACY(q5_0_block, sizeof(block_q5_0), sizeof(block_q8_0));
}

void werk_q8_0_dot_q8_0_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    DOT_LEGACY(q8_0_block, sizeof(block_q8_0), sizeof(block_q8_0));
}

void werk_q4_1_dot_q8_1_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    DOT_LEGACY_M(q4_1_block, sizeof(block_q4_1), sizeof(block_q8_1));
}

void werk_q5_1_dot_q8_1_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    DOT_LEGACY_M(q5_1_block, sizeof(block_q5_1), sizeof(block_q8_1));
}

// ---- k-quants ----------------------------------------------------------------------
// Q8_K offsets: d (float) 0, qs 4, bsums 260 (292 B).

void werk_q2_k_dot_q8_k_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    __m256         acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    const __m256i  m3 = _mm256_set1_epi8(3);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q2_K); // scales 0, qs 16, d 80, dmin 82
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = ld128(bx);
        const __m256i  sc = _mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F)));
        const __m256i  mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
        const __m256i  pm = _mm256_madd_epi16(mn, ld256(by + 260));
        accm = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx + 82) * dy), _mm256_cvtepi32_ps(pm), accm);

        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i q = ld256(bx + 16 + 32 * h);
#pragma GCC unroll 8
            for (int k = 0; k < 4; k++) {
                const int     j = 4 * h + k;
                const __m256i p = _mm256_maddubs_epi16(_mm256_and_si256(q, m3), ld256(by + 4 + 32 * j));
                sumi            = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc, j)));
                q               = _mm256_srli_epi16(q, 2);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx + 80) * dy), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc) - hsum8(accm);
}

void werk_q3_k_dot_q8_k_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    __m256         acc = _mm256_setzero_ps();
    const __m256i  m3 = _mm256_set1_epi8(3), m1 = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx   = x + i * (int64_t)sizeof(block_q3_K); // hmask 0, qs 32, scales 96, d 108
        const uint8_t *by   = y + i * (int64_t)sizeof(block_q8_K);
        const __m256i  sc   = _mm256_cvtepi8_epi16(k3_scales(bx + 96));
        __m256i        hm   = ld256(bx);
        __m256i        sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            __m256i q = ld256(bx + 32 + 32 * h);
#pragma GCC unroll 8
            for (int k = 0; k < 4; k++) {
                const int     j  = 4 * h + k;
                const __m256i yv = ld256(by + 4 + 32 * j);
                // q = low 2 bits - 4 where the hmask bit j is clear
                const __m256i q4 = _mm256_slli_epi16(_mm256_andnot_si256(hm, m1), 2);
                const __m256i p  = _mm256_sub_epi16(_mm256_maddubs_epi16(_mm256_and_si256(q, m3), yv),
                                                    _mm256_maddubs_epi16(q4, yv));
                sumi             = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc, j)));
                q                = _mm256_srli_epi16(q, 2);
                hm               = _mm256_srli_epi16(hm, 1);
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx + 108) * ld_f32(by)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc);
}

/* Q4_K/Q5_K mins: sum over the 8 groups of m_g * (bsum_2g + bsum_2g+1), as 4 int32 */
static inline __m128i k4_mins_dot(__m128i s8, const uint8_t *bsums) {
    const __m128i mn = _mm_cvtepu8_epi16(_mm_srli_si128(s8, 8));
    const __m128i bs = _mm_hadd_epi16(ld128(bsums), ld128(bsums + 16));
    return _mm_madd_epi16(mn, bs);
}

/* int16 broadcast of scale k from 8 int16 scales duplicated in both lanes */
static inline __m256i bcast16(__m256i s16x2, int k) {
    return _mm256_shuffle_epi8(s16x2, _mm256_set1_epi16((short)((2 * k) | (2 * k + 1) << 8)));
}

void werk_q4_k_dot_q8_k_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x    = vx;
    const uint8_t *y    = vy;
    __m256         acc  = _mm256_setzero_ps();
    __m128         accm = _mm_setzero_ps();
    const __m256i  m4   = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q4_K); // d 0, dmin 2, scales 4, qs 16
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = k4_scales(bx + 4);
        accm =
            _mm_fmadd_ps(_mm_set1_ps(ld_half(bx + 2) * dy), _mm_cvtepi32_ps(k4_mins_dot(s8, by + 260)), accm);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s8));

        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) {
            const __m256i q  = ld256(bx + 16 + 32 * p);
            const __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(q, m4), ld256(by + 4 + 64 * p));
            const __m256i hi =
                _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), ld256(by + 36 + 64 * p));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(lo, bcast16(sc, 2 * p)));
            sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(hi, bcast16(sc, 2 * p + 1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx) * dy), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc) - hsum4(accm);
}

void werk_q5_k_dot_q8_k_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x    = vx;
    const uint8_t *y    = vy;
    __m256         acc  = _mm256_setzero_ps();
    __m128         accm = _mm_setzero_ps();
    const __m256i  m4   = _mm256_set1_epi8(0x0F);
    const __m256i  b4   = _mm256_set1_epi8(0x10);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q5_K); // d 0, dmin 2, scales 4, qh 16, qs 48
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = k4_scales(bx + 4);
        accm =
            _mm_fmadd_ps(_mm_set1_ps(ld_half(bx + 2) * dy), _mm_cvtepi32_ps(k4_mins_dot(s8, by + 260)), accm);
        const __m256i sc = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(s8));

        __m256i hb   = ld256(bx + 16);
        __m256i sumi = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) {
            const __m256i q   = ld256(bx + 48 + 32 * p);
            const __m256i qlo = _mm256_or_si256(_mm256_and_si256(q, m4),
                                                _mm256_and_si256(_mm256_slli_epi16(hb, 4), b4)); // bit 2p
            const __m256i qhi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4),
                                                _mm256_and_si256(_mm256_slli_epi16(hb, 3), b4)); // bit 2p+1
            const __m256i lo  = _mm256_maddubs_epi16(qlo, ld256(by + 4 + 64 * p));
            const __m256i hi  = _mm256_maddubs_epi16(qhi, ld256(by + 36 + 64 * p));
            sumi              = _mm256_add_epi32(sumi, _mm256_madd_epi16(lo, bcast16(sc, 2 * p)));
            sumi              = _mm256_add_epi32(sumi, _mm256_madd_epi16(hi, bcast16(sc, 2 * p + 1)));
            hb                = _mm256_srli_epi16(hb, 2);
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx) * dy), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc) - hsum4(accm);
}

void werk_q6_k_dot_q8_k_avx2(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    __m256         acc = _mm256_setzero_ps();
    const __m256i  m4  = _mm256_set1_epi8(0x0F);
    const __m256i  m2  = _mm256_set1_epi8(0x03);
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q6_K); // ql 0, qh 128, scales 192, d 208
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const __m256i  sc = _mm256_cvtepi8_epi16(ld128(bx + 192));
        // the -32 offset: 32 * sum_g sc_g * bsum_g
        __m256i sumi = _mm256_slli_epi32(_mm256_madd_epi16(sc, ld256(by + 260)), 5);
        sumi         = _mm256_sub_epi32(_mm256_setzero_si256(), sumi);
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            const __m256i ql0 = ld256(bx + 64 * h), ql1 = ld256(bx + 64 * h + 32);
            const __m256i qh = ld256(bx + 128 + 32 * h);
            __m256i       q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m2), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m2), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m2), 4));
#pragma GCC unroll 8
            for (int r = 0; r < 4; r++) {
                const __m256i p = _mm256_maddubs_epi16(q[r], ld256(by + 4 + 128 * h + 32 * r));
                sumi            = _mm256_add_epi32(sumi, _mm256_madd_epi16(p, scale_pair(sc, 4 * h + r)));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx + 208) * ld_f32(by)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *s = hsum8(acc);
}
