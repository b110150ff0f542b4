/* quant/dot_avx512.c - AVX-512 (F, BW, VL, DQ) dot products (variants of quant/dot_<fmt>.c)
 *
 * Same signatures and pairings as the scalar references (quant/simd_int.h), compiled
 * with -mavx512f -mavx512bw -mavx512vl -mavx512dq (CMakeLists.txt, by the file suffix)
 * and chosen at run time by quant/dispatch.c.
 *
 * The integer core is the AVX2 one (quant/dot_avx2.c) at twice the width: the legacy
 * formats take two 32-element blocks per 512-bit register (a lone last block is paired
 * with an all-zero block, whose scales are 0), the K-quants two 32-element chunks,
 * with per-16-bit-lane scales gathered by _mm512_permutexvar_epi16 and per-byte shift
 * counts by _mm512_srlv_epi16. AVX-512 has no byte sign instruction: a signed weight
 * enters as |x| with the activation negated under the mask of x's sign bits. The
 * 5th bits of Q5_0/Q5_1 are a 64-bit mask register directly. Per-block integer sums
 * are exact; only the float accumulation differs from the reference.
 *
 * VNNI (vpdpbusd) is not used: werk_isa's AVX-512 level does not promise it and the
 * build gives this file no -mavx512vnni.
 *
 * Reference: technique as ggml's ggml/src/ggml-cpu/arch/x86/quants.c (MIT); the code
 * here is written from the formats (quant/blocks.h offsets).
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

static inline __m128i ld128(const uint8_t *p) { return _mm_loadu_si128((const __m128i *)(const void *)p); }
static inline __m256i ld256(const uint8_t *p) { return _mm256_loadu_si256((const __m256i *)(const void *)p); }
static inline __m512i ld512(const uint8_t *p) { return _mm512_loadu_si512((const void *)p); }

static inline __m512i cat256(__m256i lo, __m256i hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* 32 bytes at p in both halves */
static inline __m512i bcast256(const uint8_t *p) { return _mm512_broadcast_i64x4(ld256(p)); }

/* lanes 0..7 = a, lanes 8..15 = b */
static inline __m512 cat_ps(float a, float b) {
    return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1);
}

/* int16 vector: shift count a in the low 256 bits, b in the high 256 bits */
static inline __m512i shifts16(short a, short b) {
    return cat256(_mm256_set1_epi16(a), _mm256_set1_epi16(b));
}

static inline __m512i dot_u8i8(__m512i xu, __m512i y) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(xu, y), _mm512_set1_epi16(1));
}

static inline __m512i dot_i8i8(__m512i x, __m512i y) {
    const __mmask64 neg = _mm512_movepi8_mask(x);
    const __m512i   sy  = _mm512_mask_sub_epi8(y, neg, _mm512_setzero_si512(), y);
    return dot_u8i8(_mm512_abs_epi8(x), sy);
}

static inline float hsum4(__m128 s) {
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* an all-zero block (scales 0, quants 0) to pair with a lone last legacy block */
static const uint8_t zero_block[64];

// ---- float rows -------------------------------------------------------------------

static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

void werk_f32_dot_f32_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const float *x  = vx;
    const float *y  = vy;
    __m512       a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t      i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static inline __m512 ld_f16x16(const uint8_t *p) { return _mm512_cvtph_ps(ld256(p)); }
static inline __m512 ld_f16x16_tail(const uint8_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}

void werk_f16_dot_f16_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x  = vx;
    const uint8_t *y  = vy;
    __m512         a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t        i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(ld_f16x16(x + 2 * i), ld_f16x16(y + 2 * i), a0);
        a1 = _mm512_fmadd_ps(ld_f16x16(x + 2 * i + 32), ld_f16x16(y + 2 * i + 32), a1);
        a2 = _mm512_fmadd_ps(ld_f16x16(x + 2 * i + 64), ld_f16x16(y + 2 * i + 64), a2);
        a3 = _mm512_fmadd_ps(ld_f16x16(x + 2 * i + 96), ld_f16x16(y + 2 * i + 96), a3);
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_ps(ld_f16x16(x + 2 * i), ld_f16x16(y + 2 * i), a0);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        a1                = _mm512_fmadd_ps(ld_f16x16_tail(x + 2 * i, m), ld_f16x16_tail(y + 2 * i, m), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static inline __m512 bf16x16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

void werk_bf16_dot_bf16_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x  = vx;
    const uint8_t *y  = vy;
    __m512         a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t        i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(bf16x16(ld256(x + 2 * i)), bf16x16(ld256(y + 2 * i)), a0);
        a1 = _mm512_fmadd_ps(bf16x16(ld256(x + 2 * i + 32)), bf16x16(ld256(y + 2 * i + 32)), a1);
        a2 = _mm512_fmadd_ps(bf16x16(ld256(x + 2 * i + 64)), bf16x16(ld256(y + 2 * i + 64)), a2);
        a3 = _mm512_fmadd_ps(bf16x16(ld256(x + 2 * i + 96)), bf16x16(ld256(y + 2 * i + 96)), a3);
    }
    for (; i + 16 <= n; i += 16) {
        a0 = _mm512_fmadd_ps(bf16x16(ld256(x + 2 * i)), bf16x16(ld256(y + 2 * i)), a0);
    }
    if (i < n) {
        const __mmask16 m = tail_mask(n - i);
        a1                = _mm512_fmadd_ps(bf16x16(_mm256_maskz_loadu_epi16(m, x + 2 * i)),
                                            bf16x16(_mm256_maskz_loadu_epi16(m, y + 2 * i)), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// ---- legacy 32-element blocks, two per register --------------------------------------

/* two blocks' 16 nibble-pair bytes -> 64 bytes: lo0, hi0, lo1, hi1 (16 each), masked */
static inline __m512i nibbles64(const uint8_t *qs0, const uint8_t *qs1) {
    const __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(ld128(qs0)), ld128(qs1), 1);
    __m512i       b = cat256(a, _mm256_srli_epi16(a, 4)); // qs0, qs1, qs0 >> 4, qs1 >> 4
    b               = _mm512_shuffle_i64x2(b, b, _MM_SHUFFLE(3, 1, 2, 0));
    return _mm512_and_si512(b, _mm512_set1_epi8(0x0F));
}

static inline __mmask64 bits64(const uint8_t *p0, const uint8_t *p1) {
    uint32_t a, b;
    memcpy(&a, p0, 4);
    memcpy(&b, p1, 4);
    return (__mmask64)a | (__mmask64)b << 32;
}

static inline __m512i ypair(const uint8_t *by0, const uint8_t *by1, int off) {
    return cat256(ld256(by0 + off), ld256(by1 + off));
}

static inline __m512 q4_0_pair(
    const uint8_t *bx0, const uint8_t *by0, const uint8_t *bx1, const uint8_t *by1, __m512 acc, float *summ) {
    const __m512  d  = cat_ps(ld_half(bx0) * ld_half(by0), ld_half(bx1) * ld_half(by1));
    const __m512i qx = _mm512_sub_epi8(nibbles64(bx0 + 2, bx1 + 2), _mm512_set1_epi8(8));
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_i8i8(qx, ypair(by0, by1, 2))), acc);
}

static inline __m512 q5_0_pair(
    const uint8_t *bx0, const uint8_t *by0, const uint8_t *bx1, const uint8_t *by1, __m512 acc, float *summ) {
    const __m512  d   = cat_ps(ld_half(bx0) * ld_half(by0), ld_half(bx1) * ld_half(by1));
    const __m512i nib = nibbles64(bx0 + 6, bx1 + 6);
    // q - 16 as int8: the nibble where the 5th bit is set, nibble | 0xF0 where not
    const __m512i qx = _mm512_mask_blend_epi8(bits64(bx0 + 2, bx1 + 2),
                                              _mm512_or_si512(nib, _mm512_set1_epi8((char)0xF0)), nib);
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_i8i8(qx, ypair(by0, by1, 2))), acc);
}

static inline __m512 q8_0_pair(
    const uint8_t *bx0, const uint8_t *by0, const uint8_t *bx1, const uint8_t *by1, __m512 acc, float *summ) {
    const __m512 d = cat_ps(ld_half(bx0) * ld_half(by0), ld_half(bx1) * ld_half(by1));
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_i8i8(ypair(bx0, bx1, 2), ypair(by0, by1, 2))), acc);
}

static inline __m512 q4_1_pair(
    const uint8_t *bx0, const uint8_t *by0, const uint8_t *bx1, const uint8_t *by1, __m512 acc, float *summ) {
    const __m512 d = cat_ps(ld_half(bx0) * ld_half(by0), ld_half(bx1) * ld_half(by1));
    *summ += ld_half(bx0 + 2) * ld_half(by0 + 2) + ld_half(bx1 + 2) * ld_half(by1 + 2);
    const __m512i qx = nibbles64(bx0 + 4, bx1 + 4);
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_u8i8(qx, ypair(by0, by1, 4))), acc);
}

static inline __m512 q5_1_pair(
    const uint8_t *bx0, const uint8_t *by0, const uint8_t *bx1, const uint8_t *by1, __m512 acc, float *summ) {
    const __m512 d = cat_ps(ld_half(bx0) * ld_half(by0), ld_half(bx1) * ld_half(by1));
    *summ += ld_half(bx0 + 2) * ld_half(by0 + 2) + ld_half(bx1 + 2) * ld_half(by1 + 2);
    const __m512i nib = nibbles64(bx0 + 8, bx1 + 8);
    const __m512i qx =
        _mm512_mask_blend_epi8(bits64(bx0 + 4, bx1 + 4), nib, _mm512_or_si512(nib, _mm512_set1_epi8(0x10)));
    return _mm512_fmadd_ps(d, _mm512_cvtepi32_ps(dot_u8i8(qx, ypair(by0, by1, 4))), acc);
}

/* Four blocks per step into two accumulators, then a pair, then a lone block paired
 * with zero_block. */
#define DOT_LEGACY(PAIR, XSZ, YSZ)                                                                           \
    const uint8_t *x  = vx;                                                                                  \
    const uint8_t *y  = vy;                                                                                  \
    const int64_t  nb = n / 32;                                                                              \
    __m512         a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();                                       \
    int64_t        i = 0;                                                                                    \
    for (; i + 4 <= nb; i += 4) {                                                                            \
        a0 = PAIR(x + i * (XSZ), y + i * (YSZ), x + (i + 1) * (XSZ), y + (i + 1) * (YSZ), a0, &summ);        \
        a1 = PAIR(x + (i + 2) * (XSZ), y + (i + 2) * (YSZ), x + (i + 3) * (XSZ), y + (i + 3) * (YSZ), a1,    \
                  &summ);                                                                                    \
    }                                                                                                        \
    if (i + 2 <= nb) {                                                                                       \
        a0 = PAIR(x + i * (XSZ), y + i * (YSZ), x + (i + 1) * (XSZ), y + (i + 1) * (YSZ), a0, &summ);        \
        i += 2;                                                                                              \
    }                                                                                                        \
    if (i < nb) {                                                                                            \
        a1 = PAIR(x + i * (XSZ), y + i * (YSZ), zero_block, zero_block, a1, &summ);                          \
    }                                                                                                        \
    const float vsum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1))

void werk_q4_0_dot_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    float summ = 0.0f; // unused: no min term
    DOT_LEGACY(q4_0_pair, sizeof(block_q4_0), sizeof(block_q8_0));
    *s = vsum;
}

void werk_q5_0_dot_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    float summ = 0.0f; // unused: no min term
    DOT_LEGACY(q5_0_pair, sizeof(block_q5_0), sizeof(block_q8_0));
    *s = vsum;
}

void werk_q8_0_dot_q8_0_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    float summ = 0.0f; // unused: no min term
    DOT_LEGACY(q8_0_pair, sizeof(block_q8_0), sizeof(block_q8_0));
    *s = vsum;
}

void werk_q4_1_dot_q8_1_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    float summ = 0.0f;
    DOT_LEGACY(q4_1_pair, sizeof(block_q4_1), sizeof(block_q8_1));
    *s = vsum + summ;
}

void werk_q5_1_dot_q8_1_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    float summ = 0.0f;
    DOT_LEGACY(q5_1_pair, sizeof(block_q5_1), sizeof(block_q8_1));
    *s = vsum + summ;
}

// ---- k-quants ----------------------------------------------------------------------
// Q8_K offsets: d (float) 0, qs 4, bsums 260 (292 B). A 512-bit register holds two
// 32-element chunks; scales reach the int16 pairs through an index vector.

/* index for _mm512_permutexvar_epi16: lanes 0..15 -> k, lanes 16..31 -> k + 1 (a 32-wide
 * scale per half: Q4_K/Q5_K groups) */
static inline __m512i idx_halves(short k) { return shifts16(k, (short)(k + 1)); }

/* lanes 8q .. 8q+7 -> g + q for q = 0..3 (16-wide scales: Q2_K, Q3_K, Q6_K groups) */
static inline __m512i idx_quarters(short g) {
    const __m256i lo =
        _mm256_setr_epi16(g, g, g, g, g, g, g, g, (short)(g + 1), (short)(g + 1), (short)(g + 1),
                          (short)(g + 1), (short)(g + 1), (short)(g + 1), (short)(g + 1), (short)(g + 1));
    return cat256(lo, _mm256_add_epi16(lo, _mm256_set1_epi16(2)));
}

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

static inline __m128i k4_mins_dot(__m128i s8, const uint8_t *bsums) {
    const __m128i mn = _mm_cvtepu8_epi16(_mm_srli_si128(s8, 8));
    const __m128i bs = _mm_hadd_epi16(ld128(bsums), ld128(bsums + 16));
    return _mm_madd_epi16(mn, bs);
}

void werk_q2_k_dot_q8_k_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x    = vx;
    const uint8_t *y    = vy;
    __m512         acc  = _mm512_setzero_ps();
    __m256         accm = _mm256_setzero_ps();
    const __m512i  m3   = _mm512_set1_epi8(3);
    const __m512i  sh01 = shifts16(0, 2), sh23 = shifts16(4, 6);
    const __m512i  ix[4] = {idx_quarters(0), idx_quarters(4), idx_quarters(8), idx_quarters(12)};
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q2_K); // scales 0, qs 16, d 80, dmin 82
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = ld128(bx);
        const __m512i  sc =
            _mm512_castsi256_si512(_mm256_cvtepu8_epi16(_mm_and_si128(s8, _mm_set1_epi8(0x0F))));
        const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), _mm_set1_epi8(0x0F)));
        accm             = _mm256_fmadd_ps(_mm256_set1_ps(ld_half(bx + 82) * dy),
                                           _mm256_cvtepi32_ps(_mm256_madd_epi16(mn, ld256(by + 260))), accm);

        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            const __m512i q  = bcast256(bx + 16 + 32 * h);
            const __m512i qa = _mm512_and_si512(_mm512_srlv_epi16(q, sh01), m3); // chunks 4h, 4h+1
            const __m512i qb = _mm512_and_si512(_mm512_srlv_epi16(q, sh23), m3); // chunks 4h+2, 4h+3
            const __m512i pa = _mm512_maddubs_epi16(qa, ld512(by + 4 + 128 * h));
            const __m512i pb = _mm512_maddubs_epi16(qb, ld512(by + 68 + 128 * h));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pa, _mm512_permutexvar_epi16(ix[2 * h], sc)));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pb, _mm512_permutexvar_epi16(ix[2 * h + 1], sc)));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ld_half(bx + 80) * dy), _mm512_cvtepi32_ps(sumi), acc);
    }
    __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(acc), _mm512_extractf32x8_ps(acc, 1));
    a8        = _mm256_sub_ps(a8, accm);
    *s        = hsum4(_mm_add_ps(_mm256_castps256_ps128(a8), _mm256_extractf128_ps(a8, 1)));
}

void werk_q3_k_dot_q8_k_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x   = vx;
    const uint8_t *y   = vy;
    __m512         acc = _mm512_setzero_ps();
    const __m512i  m3 = _mm512_set1_epi8(3), m1 = _mm512_set1_epi8(1);
    const __m512i  sh01 = shifts16(0, 2), sh23 = shifts16(4, 6);
    const __m512i  ix[4] = {idx_quarters(0), idx_quarters(4), idx_quarters(8), idx_quarters(12)};
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q3_K); // hmask 0, qs 32, scales 96, d 108
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const __m512i  sc = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(k3_scales(bx + 96)));
        // hmask bit j of chunk j: chunks (0,1) in hm01, then shifted by 2 for each next pair
        __m512i hm   = _mm512_srlv_epi16(bcast256(bx), shifts16(0, 1));
        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            const __m512i q = bcast256(bx + 32 + 32 * h);
#pragma GCC unroll 8
            for (int k = 0; k < 2; k++) {
                const __m512i q2 = _mm512_and_si512(_mm512_srlv_epi16(q, k ? sh23 : sh01), m3);
                const __m512i q4 = _mm512_slli_epi16(_mm512_andnot_si512(hm, m1), 2); // 4 where bit clear
                const __m512i yv = ld512(by + 4 + 128 * h + 64 * k);
                const __m512i p =
                    _mm512_sub_epi16(_mm512_maddubs_epi16(q2, yv), _mm512_maddubs_epi16(q4, yv));
                sumi =
                    _mm512_add_epi32(sumi, _mm512_madd_epi16(p, _mm512_permutexvar_epi16(ix[2 * h + k], sc)));
                hm = _mm512_srli_epi16(hm, 2);
            }
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ld_half(bx + 108) * ld_f32(by)), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}

/* int16 broadcast pattern for _mm512_shuffle_epi8 over 8 int16 scales copied into each
 * 128-bit lane: the low 256 bits pick scale a, the high 256 bits scale b */
static inline __m512i pick_halves(int a, int b) {
    return cat256(_mm256_set1_epi16((short)((2 * a) | (2 * a + 1) << 8)),
                  _mm256_set1_epi16((short)((2 * b) | (2 * b + 1) << 8)));
}

void werk_q4_k_dot_q8_k_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x     = vx;
    const uint8_t *y     = vy;
    __m512         acc   = _mm512_setzero_ps();
    __m128         accm  = _mm_setzero_ps();
    const __m512i  m4    = _mm512_set1_epi8(0x0F);
    const __m512i  pk[4] = {pick_halves(0, 1), pick_halves(2, 3), pick_halves(4, 5), pick_halves(6, 7)};
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q4_K); // d 0, dmin 2, scales 4, qs 16
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = k4_scales(bx + 4);
        accm =
            _mm_fmadd_ps(_mm_set1_ps(ld_half(bx + 2) * dy), _mm_cvtepi32_ps(k4_mins_dot(s8, by + 260)), accm);
        const __m512i sc = _mm512_broadcast_i32x4(_mm_cvtepu8_epi16(s8));

        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) {
            // low nibbles (group 2p) in the low half, high nibbles (group 2p+1) in the high half
            const __m512i qb = bcast256(bx + 16 + 32 * p);
            const __m512i q  = _mm512_and_si512(_mm512_mask_srli_epi16(qb, 0xFFFF0000u, qb, 4), m4);
            const __m512i pr = _mm512_maddubs_epi16(q, ld512(by + 4 + 64 * p));
            sumi             = _mm512_add_epi32(sumi, _mm512_madd_epi16(pr, _mm512_shuffle_epi8(sc, pk[p])));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ld_half(bx) * dy), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum4(accm);
}

void werk_q5_k_dot_q8_k_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x     = vx;
    const uint8_t *y     = vy;
    __m512         acc   = _mm512_setzero_ps();
    __m128         accm  = _mm_setzero_ps();
    const __m512i  m4    = _mm512_set1_epi8(0x0F);
    const __m512i  b4    = _mm512_set1_epi8(0x10);
    const __m512i  sh    = shifts16(0, 4);
    const __m512i  ix[4] = {idx_halves(0), idx_halves(2), idx_halves(4), idx_halves(6)};
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx = x + i * (int64_t)sizeof(block_q5_K); // d 0, dmin 2, scales 4, qh 16, qs 48
        const uint8_t *by = y + i * (int64_t)sizeof(block_q8_K);
        const float    dy = ld_f32(by);
        const __m128i  s8 = k4_scales(bx + 4);
        accm =
            _mm_fmadd_ps(_mm_set1_ps(ld_half(bx + 2) * dy), _mm_cvtepi32_ps(k4_mins_dot(s8, by + 260)), accm);
        const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(s8));

        // qh bit 2p in the low half (low nibbles), bit 2p+1 in the high half, at bit 0
        __m512i hb   = _mm512_srlv_epi16(bcast256(bx + 16), shifts16(0, 1));
        __m512i sumi = _mm512_setzero_si512();
#pragma GCC unroll 8
        for (int p = 0; p < 4; p++) {
            const __m512i q  = _mm512_and_si512(_mm512_srlv_epi16(bcast256(bx + 48 + 32 * p), sh), m4);
            const __m512i q5 = _mm512_or_si512(q, _mm512_and_si512(_mm512_slli_epi16(hb, 4), b4));
            const __m512i pr = _mm512_maddubs_epi16(q5, ld512(by + 4 + 64 * p));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pr, _mm512_permutexvar_epi16(ix[p], sc)));
            hb   = _mm512_srli_epi16(hb, 2);
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ld_half(bx) * dy), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc) - hsum4(accm);
}

void werk_q6_k_dot_q8_k_avx512(int64_t n, float *s, const void *vx, const void *vy) {
    const uint8_t *x    = vx;
    const uint8_t *y    = vy;
    __m512         acc  = _mm512_setzero_ps();
    const __m512i  m4   = _mm512_set1_epi8(0x0F);
    const __m512i  m2   = _mm512_set1_epi8(0x03);
    const __m512i  sh02 = shifts16(0, 2), sh46 = shifts16(4, 6);
    const __m512i  ix[4] = {idx_quarters(0), idx_quarters(4), idx_quarters(8), idx_quarters(12)};
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const uint8_t *bx  = x + i * (int64_t)sizeof(block_q6_K); // ql 0, qh 128, scales 192, d 208
        const uint8_t *by  = y + i * (int64_t)sizeof(block_q8_K);
        const __m256i  s16 = _mm256_cvtepi8_epi16(ld128(bx + 192));
        const __m512i  sc  = _mm512_castsi256_si512(s16);
        // the -32 offset: 32 * sum_g sc_g * bsum_g
        const __m256i off  = _mm256_slli_epi32(_mm256_madd_epi16(s16, ld256(by + 260)), 5);
        __m512i       sumi = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), off));
#pragma GCC unroll 8
        for (int h = 0; h < 2; h++) {
            const __m512i ql = ld512(bx + 64 * h); // chunks r = 0, 1 (low nibbles) / 2, 3 (high)
            const __m512i qh = bcast256(bx + 128 + 32 * h);
            const __m512i qa =
                _mm512_or_si512(_mm512_and_si512(ql, m4),
                                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh02), m2), 4));
            const __m512i qb =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh46), m2), 4));
            const __m512i pa = _mm512_maddubs_epi16(qa, ld512(by + 4 + 128 * h));
            const __m512i pb = _mm512_maddubs_epi16(qb, ld512(by + 68 + 128 * h));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pa, _mm512_permutexvar_epi16(ix[2 * h], sc)));
            sumi = _mm512_add_epi32(sumi, _mm512_madd_epi16(pb, _mm512_permutexvar_epi16(ix[2 * h + 1], sc)));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(ld_half(bx + 208) * ld_f32(by)), _mm512_cvtepi32_ps(sumi), acc);
    }
    *s = _mm512_reduce_add_ps(acc);
}
