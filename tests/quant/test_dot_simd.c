/* tests/quant/test_dot_simd.c - dot products, SIMD variants and dispatch (quant/dispatch.c)
 *
 * For every ISA level this CPU runs (werk_cpu_isa, so WERK_ISA=scalar leaves only the
 * scalar path):
 *  - every dot product against the scalar reference within DOT_SIMD_BUDGET, on random
 *    blocks (random bytes with sane fp16 scales) and on quantized random rows, at 1, 2, 3,
 *    7, 16 and 33 blocks (odd element counts for the float types), at unaligned addresses;
 *  - the scalar reference against a double-precision dot of the dequantized rows within
 *    DOT_REF_BUDGET (+ DOT_Q8_1_S_BUDGET for the pairings that use Q8_1's fp16 sum);
 *  - activation quantizers (Q8_0/Q8_1/Q8_K) bit for bit against the scalar references,
 *    ties, zero blocks, tiny and huge values, NaN/inf blocks included; and the scalar
 *    references against this file's own transcription of ggml's quantize_row_q8_1_ref /
 *    quantize_row_q8_K_ref on finite input;
 *  - f16/bf16 row conversions bit for bit against the scalar conversions on all 65536
 *    halfs, every rounding boundary, random bit patterns (NaNs, infs, subnormals), and
 *    every tail length;
 *  - fast dequantizers bit for bit against werk_dequantize_row on random bytes (random
 *    fp16 scales: subnormal, inf and NaN too; a NaN matches a NaN);
 *  - the table contract (pairings, non-NULL entries, NULL above the CPU's level);
 *  - where $WERK_CACHE/models holds the fetched Gemma 3 270M Q4_K_M and SmolLM2 Q4_1
 *    GGUFs: four rows of every 2-D tensor (F32, Q8_0, Q5_0, Q4_K, Q6_K, Q4_1), dequantized
 *    by every level's table bit for bit and dotted within the budgets.
 */
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

// the code under test
#include "quant/quant.h"
#include "quant/simd_int.h"

// real weights come from GGUF files
#include "convert/convert.h"

#include <float.h>
#include <stdint.h>
#include <string.h>

/* SIMD vs scalar dot: both sides compute the same exact integer sum per block; they differ
 * in the rounding of each block's float term (dx * dy, the product with the sum, FMA
 * versus multiply-add: a few u each, u = FLT_EPSILON / 2) and in the order the nb terms
 * are summed (a worst-case (nb - 1) u * sum|term| for any order). Both sides together:
 * at most 2 (nb + 3) u * sum|term|. M below bounds sum|term|: sum_i |x_i y_i| over the
 * dequantized rows, with the scale part and the min part of x counted separately for
 * formats with a min (their two per-block terms may cancel). */
#define DOT_SIMD_BUDGET(nb, M) (((double)(nb) + 4.0) * FLT_EPSILON * (M))
/* Scalar dot vs the exact dot of the dequantized rows (double): the summation bound
 * above, plus the float rounding of each dequantized x (2 u) and Q8_K's y = d * q (u). */
#define DOT_REF_BUDGET(nb, M) (((double)(nb) + 8.0) * FLT_EPSILON * (M))
/* Q4_1 / Q5_1 . Q8_1 use s = fp16(dy * sum(qy)) for the min term: a relative error of up
 * to 2^-11 of |m * dy * sum(qy)| per block, which M bounds. */
#define DOT_Q8_1_S_BUDGET(M) (ldexp(1.0, -10) * (M))

// ---- random numbers (xorshift64*, fixed seed: failures reproduce) ---------------------

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng_u64(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static float rng_uniform(void) { return (float)((double)(rng_u64() >> 11) * 0x1.0p-53) * 2.0f - 1.0f; }

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// ---- formats ----------------------------------------------------------------------------

typedef struct fmt_info {
    werk_dtype      t;
    int             half_at[2]; // offsets of fp16 scale fields in a block, -1: none
    int             zero_lo;    // bytes [zero_lo, zero_hi) hold the quants of a format with a min
    int             zero_hi;    // (0, 0 if the format has none)
    werk_vec_dot_fn simd[3];    // [WERK_ISA_AVX2], [WERK_ISA_AVX512]: every variant, by name
} fmt_info;

#define DOTS(a, b)                                                                                           \
    { NULL, werk_##a##_dot_##b##_avx2, werk_##a##_dot_##b##_avx512 }
// clang-format off
static const fmt_info dot_fmts[] = {
    {WERK_DTYPE_F32,  {-1, -1},  0,   0, DOTS(f32, f32)},
    {WERK_DTYPE_F16,  {-1, -1},  0,   0, DOTS(f16, f16)},
    {WERK_DTYPE_BF16, {-1, -1},  0,   0, DOTS(bf16, bf16)},
    {WERK_DTYPE_Q4_0, {0, -1},   0,   0, DOTS(q4_0, q8_0)},
    {WERK_DTYPE_Q4_1, {0, 2},    4,  20, DOTS(q4_1, q8_1)},
    {WERK_DTYPE_Q5_0, {0, -1},   0,   0, DOTS(q5_0, q8_0)},
    {WERK_DTYPE_Q5_1, {0, 2},    4,  24, DOTS(q5_1, q8_1)},
    {WERK_DTYPE_Q8_0, {0, -1},   0,   0, DOTS(q8_0, q8_0)},
    {WERK_DTYPE_Q2_K, {80, 82}, 16,  80, DOTS(q2_k, q8_k)},
    {WERK_DTYPE_Q3_K, {108, -1}, 0,   0, DOTS(q3_k, q8_k)},
    {WERK_DTYPE_Q4_K, {0, 2},   16, 144, DOTS(q4_k, q8_k)},
    {WERK_DTYPE_Q5_K, {0, 2},   16, 176, DOTS(q5_k, q8_k)},
    {WERK_DTYPE_Q6_K, {208, -1}, 0,   0, DOTS(q6_k, q8_k)},
};
// clang-format on
#define N_DOT_FMTS ((int)(sizeof(dot_fmts) / sizeof(dot_fmts[0])))

static size_t row_bytes(werk_dtype t, int64_t n) {
    uint64_t b = 0;
    WERK_ASSERT(werk_dtype_bytes(t, (uint64_t)n, &b, NULL) == WERK_OK);
    return (size_t)b;
}

static void put_half(uint8_t *p, float f) {
    const uint16_t h = werk_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

/* n floats: uniform in [-1, 1], each 32-block scaled by a random power of ten, a few
 * larger outliers (as activations have) */
static void fill_floats(float *x, int64_t n) {
    float scale = 1.0f;
    for (int64_t i = 0; i < n; i++) {
        if (i % 32 == 0) {
            scale = powf(10.0f, (float)(rng_u64() % 5) - 2.0f);
        }
        x[i] = rng_uniform() * scale;
        if (rng_u64() % 97 == 0) {
            x[i] *= 20.0f;
        }
    }
}

/* a weight row of type f: random bytes with sane fp16 scales, or (quantized = true)
 * random floats through the reference quantizer */
static void fill_weights(const fmt_info *f, uint8_t *dst, int64_t n, bool quantized) {
    const werk_dtype_info *ti = werk_dtype_get(f->t);
    if (!ti->is_quant || quantized) {
        float *tmp = malloc((size_t)n * sizeof(float));
        fill_floats(tmp, n);
        werk_quantize_row(f->t, tmp, dst, n);
        free(tmp);
        return;
    }
    const size_t nbytes = row_bytes(f->t, n);
    for (size_t i = 0; i < nbytes; i++) {
        dst[i] = (uint8_t)rng_u64();
    }
    for (int64_t b = 0; b < n / ti->block_size; b++) {
        uint8_t *blk = dst + (size_t)b * ti->type_size;
        for (int k = 0; k < 2; k++) {
            if (f->half_at[k] >= 0) {
                put_half(blk + f->half_at[k], rng_uniform() * powf(10.0f, -(float)(rng_u64() % 4)));
            }
        }
    }
}

/* M of the budgets: sum_i |y_i| (|x_i - x0_i| + |x0_i|) where x0 is x with its quants
 * zeroed (the min part) for formats with a min, sum_i |x_i y_i| otherwise; also the exact
 * dot of the dequantized rows. */
static void
dot_exact(const fmt_info *f, const uint8_t *x, const uint8_t *y, int64_t n, double *exact, double *M) {
    const werk_dtype_info *ti = werk_dtype_get(f->t);
    const werk_dtype       yt = werk_qfns_get(f->t)->vec_dot_type;
    float                 *xf = malloc((size_t)n * sizeof(float));
    float                 *x0 = calloc((size_t)n, sizeof(float));
    float                 *yf = malloc((size_t)n * sizeof(float));
    werk_dequantize_row(f->t, x, xf, n);
    werk_dequantize_row(yt, y, yf, n);
    if (f->zero_hi > 0) {
        const size_t nbytes = row_bytes(f->t, n);
        uint8_t     *xz     = malloc(nbytes);
        memcpy(xz, x, nbytes);
        for (int64_t b = 0; b < n / ti->block_size; b++) {
            memset(xz + (size_t)b * ti->type_size + f->zero_lo, 0, (size_t)(f->zero_hi - f->zero_lo));
        }
        werk_dequantize_row(f->t, xz, x0, n);
        free(xz);
    }
    double e = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        e += (double)xf[i] * (double)yf[i];
        m += fabs((double)yf[i]) * (fabs((double)xf[i] - (double)x0[i]) + fabs((double)x0[i]));
    }
    *exact = e;
    *M     = m;
    free(xf);
    free(x0);
    free(yf);
}

// ---- dot products ---------------------------------------------------------------------

/* checks every dot variant on the row pair x (type f->t), y (its vec_dot_type) */
static void check_dot(const fmt_info *f, const uint8_t *x, const uint8_t *y, int64_t n, const char *what) {
    const werk_qfns *ref_fns = werk_qfns_get_isa(f->t, WERK_ISA_SCALAR);
    const int64_t    nb      = n / werk_dtype_get(f->t)->block_size;
    double           exact, M;
    dot_exact(f, x, y, n, &exact, &M);

    float ref = NAN;
    ref_fns->vec_dot(n, &ref, x, y);
    double budget = DOT_REF_BUDGET(nb, M);
    if (ref_fns->vec_dot_type == WERK_DTYPE_Q8_1) {
        budget += DOT_Q8_1_S_BUDGET(M);
    }
    WT_CHECK(fabs((double)ref - exact) <= budget, "%s n=%lld %s: scalar dot %.9g, exact %.9g (budget %.3g)",
             werk_dtype_name(f->t), (long long)n, what, ref, exact, budget);

    // each named variant the CPU runs, then what the table at that level hands out
    for (int isa = WERK_ISA_AVX2; isa <= WERK_ISA_AVX512; isa++) {
        const werk_qfns *fns = werk_qfns_get_isa(f->t, (werk_isa)isa);
        if (!fns) {
            continue;
        }
        for (int v = 0; v < 2; v++) {
            float got = NAN;
            (v == 0 ? f->simd[isa] : fns->vec_dot)(n, &got, x, y);
            const double b = DOT_SIMD_BUDGET(nb, M);
            WT_CHECK(fabs((double)got - (double)ref) <= b,
                     "%s n=%lld %s %s%s: dot %.9g, scalar %.9g (diff %.3g, budget %.3g)",
                     werk_dtype_name(f->t), (long long)n, what, werk_isa_name((werk_isa)isa),
                     v ? " table" : "", got, ref, fabs((double)got - (double)ref), b);
        }
    }
}

/* activations for a dot with weights of type t: n random floats through the reference
 * quantizer of the pairing type, at y */
static void make_activations(werk_dtype t, uint8_t *y, int64_t n) {
    float *yf = malloc((size_t)n * sizeof(float) + 4);
    fill_floats(yf, n);
    werk_quantize_row(werk_qfns_get(t)->vec_dot_type, yf, y, n);
    free(yf);
}

static void test_dot_one(const fmt_info *f, int64_t n, bool quantized, int misalign) {
    const werk_dtype yt = werk_qfns_get(f->t)->vec_dot_type;
    const size_t     xb = row_bytes(f->t, n), yb = row_bytes(yt, n);
    // exact sizes: an over-read shows under ASan (WERK_SANITIZE)
    uint8_t *xbuf = malloc(xb + (size_t)misalign + 1), *ybuf = malloc(yb + 2 * (size_t)misalign + 2);
    uint8_t *x = xbuf + misalign, *y = ybuf + 2 * misalign + 1;
    fill_weights(f, x, n, quantized);
    make_activations(f->t, y, n);
    check_dot(f, x, y, n, quantized ? "quantized" : "random");
    free(xbuf);
    free(ybuf);
}

static void test_dots(void) {
    static const int64_t float_sizes[]  = {1, 3, 7, 8, 15, 17, 31, 33, 63, 65, 100, 257, 1000, 4097};
    static const int64_t block_counts[] = {1, 2, 3, 7, 16, 33};
    for (int k = 0; k < N_DOT_FMTS; k++) {
        const fmt_info        *f  = &dot_fmts[k];
        const werk_dtype_info *ti = werk_dtype_get(f->t);
        if (!ti->is_quant) {
            for (size_t s = 0; s < sizeof(float_sizes) / sizeof(float_sizes[0]); s++) {
                test_dot_one(f, float_sizes[s], false, (int)(s % 4));
            }
            continue;
        }
        for (size_t s = 0; s < sizeof(block_counts) / sizeof(block_counts[0]); s++) {
            const int64_t n = block_counts[s] * ti->block_size;
            test_dot_one(f, n, false, (int)(s % 3) + 1);
            if (werk_dtype_can_quantize(f->t)) {
                test_dot_one(f, n, true, (int)(s % 2));
            }
        }
    }
    // n = 0: every variant writes 0
    for (int k = 0; k < N_DOT_FMTS; k++) {
        for (int isa = WERK_ISA_SCALAR; isa <= WERK_ISA_AVX512; isa++) {
            const werk_qfns *fns = werk_qfns_get_isa(dot_fmts[k].t, (werk_isa)isa);
            if (fns) {
                float s = NAN;
                fns->vec_dot(0, &s, NULL, NULL);
                WT_CHECK(s == 0.0f, "%s %s: n = 0 gives %g", werk_dtype_name(dot_fmts[k].t),
                         werk_isa_name((werk_isa)isa), s);
            }
        }
    }
}

// ---- activation quantizers ----------------------------------------------------------

/* ggml's quantize_row_q8_1_ref, transcribed independently of quant/q8_1.c. Where ggml
 * casts a non-finite x * id to int8 (undefined: id = inf when amax/127 is a float32
 * subnormal), werk's Q8_0 rule applies: 0. */
static void oracle_q8_1(const float *x, uint8_t *out, int64_t n) {
    for (int64_t i = 0; i < n / 32; i++, x += 32, out += 36) {
        float amax = 0.0f;
        for (int j = 0; j < 32; j++) {
            amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
        }
        const float d   = amax / 127;
        const float id  = d ? 1.0f / d : 0.0f;
        int         sum = 0;
        for (int j = 0; j < 32; j++) {
            const float  v = x[j] * id;
            const int8_t q = isfinite(v) ? (int8_t)roundf(v) : 0;
            out[4 + j]     = (uint8_t)q;
            sum += q;
        }
        put_half(out, d);
        put_half(out + 2, (float)sum * d);
    }
}

/* ggml's quantize_row_q8_K_ref (nearest_int by the 1.5 * 2^23 trick), transcribed
 * independently of quant/q8_k.c; bsums zeroed for an all-zero block */
static void oracle_q8_k(const float *x, uint8_t *out, int64_t n) {
    for (int64_t i = 0; i < n / 256; i++, x += 256, out += 292) {
        memset(out, 0, 292);
        float max = 0, amax = 0;
        for (int j = 0; j < 256; j++) {
            if (fabsf(x[j]) > amax) {
                amax = fabsf(x[j]);
                max  = x[j];
            }
        }
        if (!amax) {
            continue;
        }
        const float iscale = -127.f / max;
        int16_t     bsums[16];
        memset(bsums, 0, sizeof(bsums));
        for (int j = 0; j < 256; j++) {
            const float   val = iscale * x[j] + 12582912.f;
            const int32_t v   = (int32_t)(fbits(val) & 0x007fffff) - 0x00400000;
            out[4 + j]        = (uint8_t)(int8_t)(v < 127 ? v : 127);
            bsums[j / 16]     = (int16_t)(bsums[j / 16] + (int8_t)out[4 + j]);
        }
        const float d = 1 / iscale;
        memcpy(out, &d, 4);
        memcpy(out + 260, bsums, 32);
    }
}

/* n floats exercising the quantizers' corners; every 32-element block gets one kind */
static void fill_act_cases(float *x, int64_t n, bool with_nonfinite) {
    for (int64_t b = 0; b < n / 32; b++) {
        float    *v    = x + 32 * b;
        const int kind = (int)(rng_u64() % (with_nonfinite ? 10 : 8));
        for (int j = 0; j < 32; j++) {
            v[j] = rng_uniform();
        }
        switch (kind) {
        case 0: // all zero
            memset(v, 0, 32 * sizeof(float));
            break;
        case 1: // ties: amax 127 makes d = 1 (Q8_0/Q8_1) and iscale +-1 (Q8_K)
            for (int j = 0; j < 32; j++) {
                v[j] = (float)((int)(rng_u64() % 254) - 127) + 0.5f;
            }
            v[rng_u64() % 32] = (rng_u64() & 1) ? 127.0f : -127.0f;
            break;
        case 2: // +a and -a both present: Q8_K must take the first one's sign
            v[3]  = -4.0f;
            v[17] = 4.0f;
            break;
        case 3: // float32 subnormals (id may be inf)
            for (int j = 0; j < 32; j++) {
                v[j] *= 1e-39f;
            }
            break;
        case 4: // huge
            for (int j = 0; j < 32; j++) {
                v[j] *= 1e37f;
            }
            break;
        case 5: // one outlier, the rest tiny
            for (int j = 0; j < 32; j++) {
                v[j] *= 1e-6f;
            }
            v[rng_u64() % 32] = 1000.0f;
            break;
        case 8: // NaN
            v[rng_u64() % 32] = bitsf(0x7fc00001u | (uint32_t)(rng_u64() & 0x3fffffu));
            break;
        case 9: // inf
            v[rng_u64() % 32] = (rng_u64() & 1) ? INFINITY : -INFINITY;
            break;
        default: // plain
            break;
        }
    }
}

static void test_act_one(werk_dtype t, int64_t n, bool with_nonfinite) {
    float   *x  = malloc((size_t)n * sizeof(float) + 8);
    float   *xs = (float *)(void *)((char *)x + 4); // 4-byte aligned but not 8 or 32
    size_t   nb = row_bytes(t, n);
    uint8_t *rb = malloc(nb + 8), *gb = malloc(nb + 8);
    fill_act_cases(xs, n, with_nonfinite);

    const werk_qfns *ref = werk_qfns_get_isa(t, WERK_ISA_SCALAR);
    memset(rb, 0xAA, nb + 8);
    ref->quantize_act(xs, rb + 1, n);
    uint8_t *want = malloc(nb);
    memset(want, 0, nb);
    werk_quantize_row(t, xs, want, n);
    WT_CHECK(memcmp(rb + 1, want, nb) == 0, "%s n=%lld: scalar quantize_act != werk_quantize_row",
             werk_dtype_name(t), (long long)n);
    if (!with_nonfinite && (t == WERK_DTYPE_Q8_1 || t == WERK_DTYPE_Q8_K)) {
        uint8_t *orc = malloc(nb);
        (t == WERK_DTYPE_Q8_1 ? oracle_q8_1 : oracle_q8_k)(xs, orc, n);
        size_t bad = nb;
        for (size_t i = 0; i < nb && bad == nb; i++) {
            if (orc[i] != want[i]) {
                bad = i;
            }
        }
        WT_CHECK(bad == nb, "%s n=%lld: reference differs from ggml's rule at byte %zu", werk_dtype_name(t),
                 (long long)n, bad);
        free(orc);
    }
    static const werk_quantize_fn named[3][3] = {
        {NULL, werk_q8_0_quantize_avx2, werk_q8_0_quantize_avx512},
        {NULL, werk_q8_1_quantize_avx2, werk_q8_1_quantize_avx512},
        {NULL, werk_q8_k_quantize_avx2, werk_q8_k_quantize_avx512},
    };
    const int row = t == WERK_DTYPE_Q8_0 ? 0 : t == WERK_DTYPE_Q8_1 ? 1 : 2;
    for (int isa = WERK_ISA_AVX2; isa <= WERK_ISA_AVX512; isa++) {
        const werk_qfns *fns = werk_qfns_get_isa(t, (werk_isa)isa);
        if (!fns) {
            continue;
        }
        WT_CHECK(fns->quantize_act == named[row][isa], "%s %s: table holds another quantizer",
                 werk_dtype_name(t), werk_isa_name((werk_isa)isa));
        memset(gb, 0x55, nb + 8);
        named[row][isa](xs, gb + 3, n);
        size_t bad = nb;
        for (size_t i = 0; i < nb && bad == nb; i++) {
            if (gb[3 + i] != want[i]) {
                bad = i;
            }
        }
        WT_CHECK(bad == nb, "%s n=%lld %s: quantize_act differs from the reference at byte %zu (block %zu)",
                 werk_dtype_name(t), (long long)n, werk_isa_name((werk_isa)isa), bad,
                 bad / werk_dtype_get(t)->type_size);
        WT_CHECK(gb[2] == 0x55 && gb[3 + nb] == 0x55, "%s %s: quantize_act wrote outside its row",
                 werk_dtype_name(t), werk_isa_name((werk_isa)isa));
    }
    free(x);
    free(rb);
    free(gb);
    free(want);
}

static void test_act_quantizers(void) {
    static const werk_dtype types[] = {WERK_DTYPE_Q8_0, WERK_DTYPE_Q8_1, WERK_DTYPE_Q8_K};
    for (size_t k = 0; k < 3; k++) {
        const int64_t bs = werk_dtype_get(types[k])->block_size;
        for (int64_t nbk = 1; nbk <= 40; nbk += 3) {
            test_act_one(types[k], nbk * bs, false);
            test_act_one(types[k], nbk * bs, true);
        }
    }
    // Q8_K: max is the first element of largest magnitude, with its sign
    static const werk_quantize_fn q8k_named[3] = {NULL, werk_q8_k_quantize_avx2, werk_q8_k_quantize_avx512};
    for (int order = 0; order < 2; order++) {
        float   x[256];
        uint8_t want[292], got[292];
        for (int j = 0; j < 256; j++) {
            x[j] = rng_uniform();
        }
        x[5]   = order ? 3.0f : -3.0f;
        x[200] = -x[5];
        werk_quantize_row(WERK_DTYPE_Q8_K, x, want, 256);
        float d;
        memcpy(&d, want, 4);
        WT_CHECK(fabsf(d * 127.0f - (order ? -3.0f : 3.0f)) < 1e-5f,
                 "Q8_K: d = %g takes the sign of the first max", d);
        for (int isa = WERK_ISA_AVX2; isa <= (int)werk_cpu_isa(); isa++) {
            q8k_named[isa](x, got, 256);
            WT_CHECK(memcmp(got, want, 292) == 0, "Q8_K %s: first-max sign case differs",
                     werk_isa_name((werk_isa)isa));
        }
    }
    // the pairing tables hand out these quantizers
    WT_CHECK(werk_qfns_get(WERK_DTYPE_Q4_K)->quantize_act == werk_qfns_get(WERK_DTYPE_Q8_K)->quantize_act,
             "Q4_K's activation quantizer is not Q8_K's");
}

// ---- f16 / bf16 rows ----------------------------------------------------------------

typedef void (*to_half_fn)(const float *, void *, int64_t);
typedef void (*from_half_fn)(const void *, float *, int64_t);

static to_half_fn to_half_isa(bool bf16, int isa) {
    if (isa == WERK_ISA_AVX512) {
        return bf16 ? werk_f32_to_bf16_row_avx512 : werk_f32_to_f16_row_avx512;
    }
    if (isa == WERK_ISA_AVX2) {
        return bf16 ? werk_f32_to_bf16_row_avx2 : werk_f32_to_f16_row_avx2;
    }
    return bf16 ? werk_f32_to_bf16_row_ref : werk_f32_to_f16_row_ref;
}

static from_half_fn from_half_isa(bool bf16, int isa) {
    if (isa == WERK_ISA_AVX512) {
        return bf16 ? werk_bf16_to_f32_row_avx512 : werk_f16_to_f32_row_avx512;
    }
    if (isa == WERK_ISA_AVX2) {
        return bf16 ? werk_bf16_to_f32_row_avx2 : werk_f16_to_f32_row_avx2;
    }
    return bf16 ? werk_bf16_to_f32_row_ref : werk_f16_to_f32_row_ref;
}

/* floats around every rounding decision of f32 -> 16-bit: each 16-bit value, its float
 * neighbours, each midpoint between consecutive values and its neighbours; then random
 * bit patterns (NaNs with payloads, infs, subnormals) */
static int64_t boundary_floats(bool bf16, float *out, int64_t n_random) {
    int64_t k = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        const float f = bf16 ? werk_bf16_to_fp32((uint16_t)h) : werk_fp16_to_fp32((uint16_t)h);
        uint32_t    u = fbits(f), mid;
        if (bf16) {
            mid = u | 0x8000u;
        } else {
            // the float halfway to the next half up in magnitude (exact: a half has 11 bits)
            const float next = werk_fp16_to_fp32((uint16_t)(h + 1));
            mid              = fbits((float)(((double)f + (double)next) / 2.0));
        }
        const uint32_t cand[6] = {u, u + 1, u - 1, mid, mid + 1, mid - 1};
        for (int c = 0; c < 6; c++) {
            out[k++] = bitsf(cand[c]);
        }
    }
    for (int64_t i = 0; i < n_random; i++) {
        out[k++] = bitsf((uint32_t)rng_u64());
    }
    return k;
}

static void test_rows_to_half(bool bf16) {
    const int64_t cap  = 65536 * 6 + (1 << 20);
    float        *src  = malloc((size_t)cap * sizeof(float));
    const int64_t n    = boundary_floats(bf16, src, 1 << 20);
    uint16_t     *want = malloc((size_t)n * 2);
    uint8_t      *got  = malloc((size_t)n * 2 + 16);
    for (int64_t i = 0; i < n; i++) {
        want[i] = bf16 ? werk_fp32_to_bf16(src[i]) : werk_fp32_to_fp16(src[i]);
    }
    const char *name = bf16 ? "f32->bf16" : "f32->f16";
    for (int isa = WERK_ISA_SCALAR; isa <= (int)werk_cpu_isa(); isa++) {
        to_half_fn fn = to_half_isa(bf16, isa);
        memset(got, 0, (size_t)n * 2 + 16);
        fn(src, got + 1, n);
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            uint16_t h;
            memcpy(&h, got + 1 + 2 * i, 2);
            if (h != want[i]) {
                bad = i;
            }
        }
        WT_CHECK(bad < 0, "%s %s: element %lld (0x%08x) gives 0x%04x, scalar 0x%04x", name,
                 werk_isa_name((werk_isa)isa), (long long)bad, bad < 0 ? 0 : fbits(src[bad]),
                 bad < 0 ? 0 : (unsigned)(got[1 + 2 * bad] | got[2 + 2 * bad] << 8), bad < 0 ? 0 : want[bad]);
        // every tail length and start offset, guard bytes untouched
        int n_bad = 0;
        for (int64_t len = 0; len <= 100; len++) {
            memset(got, 0x5A, 260);
            fn(src + len * 7, got + 1, len);
            if (got[0] != 0x5A || got[1 + 2 * len] != 0x5A ||
                memcmp(got + 1, want + len * 7, (size_t)len * 2) != 0) {
                n_bad++;
            }
        }
        WT_CHECK(n_bad == 0, "%s %s: %d of 101 short rows wrong", name, werk_isa_name((werk_isa)isa), n_bad);
    }
    // the unsuffixed function is one of them
    memset(got, 0, (size_t)n * 2);
    (bf16 ? werk_f32_to_bf16_row : werk_f32_to_f16_row)(src, got, n);
    WT_CHECK(memcmp(got, want, (size_t)n * 2) == 0, "%s: dispatched row differs", name);
    free(src);
    free(want);
    free(got);
}

static void test_rows_from_half(bool bf16) {
    const int64_t n   = 65536 + 77;
    uint8_t      *src = malloc((size_t)n * 2 + 8);
    for (int64_t i = 0; i < n; i++) {
        const uint16_t h = i < 65536 ? (uint16_t)i : (uint16_t)rng_u64();
        memcpy(src + 3 + 2 * i, &h, 2);
    }
    uint32_t *want = malloc((size_t)n * 4);
    float    *got  = malloc((size_t)n * 4 + 16);
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 3 + 2 * i, 2);
        want[i] = fbits(bf16 ? werk_bf16_to_fp32(h) : werk_fp16_to_fp32(h));
    }
    const char *name = bf16 ? "bf16->f32" : "f16->f32";
    for (int isa = WERK_ISA_SCALAR; isa <= (int)werk_cpu_isa(); isa++) {
        from_half_fn fn = from_half_isa(bf16, isa);
        memset(got, 0, (size_t)n * 4);
        fn(src + 3, got, n);
        int64_t bad = -1;
        for (int64_t i = 0; i < n && bad < 0; i++) {
            if (fbits(got[i]) != want[i]) {
                bad = i;
            }
        }
        WT_CHECK(bad < 0, "%s %s: element %lld gives 0x%08x, scalar 0x%08x", name,
                 werk_isa_name((werk_isa)isa), (long long)bad, bad < 0 ? 0 : fbits(got[bad]),
                 bad < 0 ? 0 : want[bad]);
        int n_bad = 0;
        for (int64_t len = 0; len <= 100; len++) {
            for (int i = 0; i < 102; i++) {
                got[i] = bitsf(0x5A5A5A5Au);
            }
            fn(src + 3 + 2 * (len * 5), got + 1, len);
            if (fbits(got[0]) != 0x5A5A5A5Au || fbits(got[1 + len]) != 0x5A5A5A5Au ||
                memcmp(got + 1, want + len * 5, (size_t)len * 4) != 0) {
                n_bad++;
            }
        }
        WT_CHECK(n_bad == 0, "%s %s: %d of 101 short rows wrong", name, werk_isa_name((werk_isa)isa), n_bad);
    }
    (bf16 ? werk_bf16_to_f32_row : werk_f16_to_f32_row)(src + 3, got, n);
    WT_CHECK(memcmp(got, want, (size_t)n * 4) == 0, "%s: dispatched row differs", name);
    free(src);
    free(want);
    free(got);
}

// ---- dequantizers --------------------------------------------------------------------

static void test_dequantizers(void) {
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        if (!werk_dtype_can_dequantize((werk_dtype)t)) {
            continue;
        }
        const werk_dtype_info *ti = werk_dtype_get((werk_dtype)t);
        const int64_t          n  = ti->block_size * 37;
        const size_t           nb = row_bytes((werk_dtype)t, n);
        uint8_t               *x  = malloc(nb + 1);
        for (size_t i = 0; i < nb + 1; i++) {
            x[i] = (uint8_t)rng_u64(); // every bit pattern: fp16 scales include NaN, inf, subnormals
        }
        float *want = malloc((size_t)n * sizeof(float));
        float *got  = malloc((size_t)n * sizeof(float) + 8);
        werk_dequantize_row((werk_dtype)t, x + 1, want, n);
        for (int isa = WERK_ISA_SCALAR; isa <= WERK_ISA_AVX512; isa++) {
            const werk_qfns *fns = werk_qfns_get_isa((werk_dtype)t, (werk_isa)isa);
            if (!fns) {
                continue;
            }
            WT_CHECK(fns->dequantize != NULL, "%s %s: no dequantizer", ti->name,
                     werk_isa_name((werk_isa)isa));
            if (!fns->dequantize) {
                continue;
            }
            memset(got, 0, (size_t)n * sizeof(float) + 8);
            fns->dequantize(x + 1, got + 1, n);
            int64_t bad = -1;
            for (int64_t i = 0; i < n && bad < 0; i++) {
                const bool both_nan = isnan(got[1 + i]) && isnan(want[i]);
                if (fbits(got[1 + i]) != fbits(want[i]) && !both_nan) {
                    bad = i;
                }
            }
            WT_CHECK(bad < 0, "%s %s: dequantized element %lld is 0x%08x, reference 0x%08x", ti->name,
                     werk_isa_name((werk_isa)isa), (long long)bad, bad < 0 ? 0 : fbits(got[1 + bad]),
                     bad < 0 ? 0 : fbits(want[bad]));
            WT_CHECK(fbits(got[0]) == 0 && fbits(got[1 + n]) == 0, "%s %s: dequantize wrote outside its row",
                     ti->name, werk_isa_name((werk_isa)isa));
        }
        free(x);
        free(want);
        free(got);
    }
}

// ---- the tables ------------------------------------------------------------------------

static void test_tables(void) {
    static const struct {
        werk_dtype w, a;
    } pairs[] = {
        {WERK_DTYPE_F32, WERK_DTYPE_F32},   {WERK_DTYPE_F16, WERK_DTYPE_F16},
        {WERK_DTYPE_BF16, WERK_DTYPE_BF16}, {WERK_DTYPE_Q4_0, WERK_DTYPE_Q8_0},
        {WERK_DTYPE_Q4_1, WERK_DTYPE_Q8_1}, {WERK_DTYPE_Q5_0, WERK_DTYPE_Q8_0},
        {WERK_DTYPE_Q5_1, WERK_DTYPE_Q8_1}, {WERK_DTYPE_Q8_0, WERK_DTYPE_Q8_0},
        {WERK_DTYPE_Q2_K, WERK_DTYPE_Q8_K}, {WERK_DTYPE_Q3_K, WERK_DTYPE_Q8_K},
        {WERK_DTYPE_Q4_K, WERK_DTYPE_Q8_K}, {WERK_DTYPE_Q5_K, WERK_DTYPE_Q8_K},
        {WERK_DTYPE_Q6_K, WERK_DTYPE_Q8_K},
    };
    const werk_isa best = werk_cpu_isa();
    printf("dispatch: %s\n", werk_isa_name(werk_qfns_get(WERK_DTYPE_Q4_K)->isa));
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        const werk_qfns *q = werk_qfns_get((werk_dtype)t);
        WT_CHECK(q != NULL && q->isa == best, "%s: table missing or at the wrong level",
                 werk_dtype_name((werk_dtype)t));
        for (int isa = 0; isa <= WERK_ISA_AVX512; isa++) {
            const werk_qfns *qi = werk_qfns_get_isa((werk_dtype)t, (werk_isa)isa);
            WT_CHECK((qi != NULL) == (isa <= (int)best), "%s: level %s available = %d",
                     werk_dtype_name((werk_dtype)t), werk_isa_name((werk_isa)isa), qi != NULL);
            if (qi) {
                WT_CHECK((qi->quantize != NULL) == werk_dtype_can_quantize((werk_dtype)t),
                         "%s: quantize entry", werk_dtype_name((werk_dtype)t));
            }
        }
    }
    for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
        for (int isa = 0; isa <= (int)best; isa++) {
            const werk_qfns *q = werk_qfns_get_isa(pairs[k].w, (werk_isa)isa);
            WT_CHECK(q->vec_dot && q->vec_dot_type == pairs[k].a && q->quantize_act,
                     "%s %s: dot %p pairs with %s", werk_dtype_name(pairs[k].w), werk_isa_name((werk_isa)isa),
                     (void *)(uintptr_t)q->vec_dot, werk_dtype_name(q->vec_dot_type));
        }
    }
    WT_CHECK(werk_qfns_get(WERK_DTYPE_Q8_K)->vec_dot == NULL &&
                 werk_qfns_get(WERK_DTYPE_I32)->vec_dot == NULL,
             "types without a dot product have vec_dot");
}

// ---- real weights (skipped without the fetched models) ----------------------------------

/* A few rows of every 2-D tensor of the fetched GGUFs: fast dequantizers bit for bit,
 * dot products within their budgets. */
static void test_real_models(void) {
    static const char *const files[] = {"gemma-3-270m-q4_k_m.gguf", "SmolLM2-135M-Instruct.Q4_1.gguf"};
    for (size_t k = 0; k < 2; k++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/models/%s", wt_env("WERK_CACHE"), files[k]);
        werk_gguf *g   = NULL;
        werk_err   err = {0};
        if (access(path, R_OK) != 0 || werk_gguf_read(path, &g, &err) != WERK_OK) {
            printf("note: %s not readable, real-weight checks skipped for it\n", path);
            continue;
        }
        int n_tensors = 0;
        for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
            const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
            const fmt_info         *f = NULL;
            for (int j = 0; j < N_DOT_FMTS; j++) {
                f = dot_fmts[j].t == t->src_type ? &dot_fmts[j] : f;
            }
            if (!f || t->n_dims < 2) {
                continue;
            }
            const int64_t n      = t->shape[t->n_dims - 1];
            const int64_t n_rows = werk_gguf_tensor_nrows(t);
            const size_t  rb     = row_bytes(f->t, n);
            float        *want = malloc((size_t)n * sizeof(float)), *got = malloc((size_t)n * sizeof(float));
            uint8_t      *y = malloc(row_bytes(werk_qfns_get(f->t)->vec_dot_type, n));
            make_activations(f->t, y, n);
            for (int r = 0; r < 4; r++) {
                const uint8_t *x = (const uint8_t *)t->data + (size_t)(r * (n_rows - 1) / 3) * rb;
                werk_dequantize_row(f->t, x, want, n);
                for (int isa = WERK_ISA_SCALAR; isa <= (int)werk_cpu_isa(); isa++) {
                    werk_qfns_get_isa(f->t, (werk_isa)isa)->dequantize(x, got, n);
                    WT_CHECK(memcmp(got, want, (size_t)n * sizeof(float)) == 0,
                             "%s %s %s: dequantized row %d differs", files[k], t->name,
                             werk_isa_name((werk_isa)isa), r);
                }
                check_dot(f, x, y, n, t->name);
            }
            free(want);
            free(got);
            free(y);
            n_tensors++;
        }
        printf("real weights: %d tensors of %s\n", n_tensors, files[k]);
        werk_gguf_free(g);
    }
}

int main(void) {
    printf("cpu isa: %s\n", werk_isa_name(werk_cpu_isa()));
    test_tables();
    test_dots();
    test_act_quantizers();
    test_rows_to_half(false);
    test_rows_to_half(true);
    test_rows_from_half(false);
    test_rows_from_half(true);
    test_dequantizers();
    test_real_models();
    return wt_done();
}
