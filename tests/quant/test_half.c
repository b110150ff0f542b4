/* tests/quant/test_half.c - fp16/bf16 scalar conversions and the dtype table
 *
 * fp16: all 65536 halfs round-trip through float32 unchanged (NaN payloads included);
 * fp32 -> fp16 rounding checked on hand-computed ties, subnormals, overflow and NaNs
 * (numpy's astype(np.float16) is the model; the Python oracle test and an exhaustive
 * 2^32 comparison against numpy, done once by hand, back these values).
 * bf16: the same against gguf-py's BF16 rule. Then werk_dtype_bytes errors, name and
 * ggml-id lookups, and the table's block sizes against ggml's numbers.
 */
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

// the code under test
#include "quant/quant.h"

#include <stdint.h>
#include <string.h>

static uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_fp16_all_halfs(void) {
    int n_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float    f    = werk_fp16_to_fp32((uint16_t)h);
        uint16_t back = werk_fp32_to_fp16(f);
        bool     nan  = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
        if (back != h || (nan != (f != f))) {
            if (n_bad++ < 5) {
                fprintf(stderr, "  half 0x%04x -> %g (0x%08x) -> 0x%04x\n", h, f, fbits(f), back);
            }
        }
    }
    WT_CHECK(n_bad == 0, "%d of 65536 halfs do not round-trip", n_bad);
}

static void test_fp16_to_fp32_values(void) {
    static const struct {
        uint16_t h;
        uint32_t f;
    } cases[] = {
        {0x0000, 0x00000000}, // +0
        {0x8000, 0x80000000}, // -0
        {0x3c00, 0x3f800000}, // 1
        {0xc000, 0xc0000000}, // -2
        {0x0001, 0x33800000}, // 2^-24, smallest subnormal
        {0x03ff, 0x387fc000}, // largest subnormal 1023 * 2^-24
        {0x0400, 0x38800000}, // 2^-14, smallest normal
        {0x7bff, 0x477fe000}, // 65504
        {0x7c00, 0x7f800000}, // inf
        {0xfc00, 0xff800000}, // -inf
        {0x7e00, 0x7fc00000}, // quiet NaN
        {0x7c01, 0x7f802000}, // signalling NaN keeps its payload
        {0xfe01, 0xffc02000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint32_t got = fbits(werk_fp16_to_fp32(cases[i].h));
        WT_CHECK(got == cases[i].f, "fp16 0x%04x -> 0x%08x, want 0x%08x", cases[i].h, got, cases[i].f);
    }
}

static void test_fp32_to_fp16_rounding(void) {
    static const struct {
        uint32_t    f;
        uint16_t    h;
        const char *why;
    } cases[] = {
        {0x3f800000, 0x3c00, "1.0"},
        {0x3f801000, 0x3c00, "1 + 2^-11: tie, to even (down)"},
        {0x3f803000, 0x3c02, "1 + 3*2^-11: tie, to even (up)"},
        {0x3f801001, 0x3c01, "just above the tie: up"},
        {0x3f800fff, 0x3c00, "just below the tie: down"},
        {0x3fffffff, 0x4000, "mantissa carry into the exponent"},
        {0x477fe000, 0x7bff, "65504, the largest half"},
        {0x477fefff, 0x7bff, "just below 65520: 65504"},
        {0x477ff000, 0x7c00, "65520: tie between 65504 and 2^16, to even = inf"},
        {0x501502f9, 0x7c00, "1e10: overflow to inf"},
        {0xd01502f9, 0xfc00, "-1e10: overflow to -inf"},
        {0x38800000, 0x0400, "2^-14, smallest normal"},
        {0x387fc000, 0x03ff, "largest subnormal"},
        {0x387fe000, 0x0400, "tie between largest subnormal and smallest normal: to even"},
        {0x33800000, 0x0001, "2^-24, smallest subnormal"},
        {0x33000000, 0x0000, "2^-25: tie between 0 and 2^-24, to even = 0"},
        {0x33000001, 0x0001, "just above 2^-25: 2^-24"},
        {0x32ffffff, 0x0000, "just below 2^-25: 0"},
        {0x33c00000, 0x0002, "1.5 * 2^-24: tie between 1 and 2 units, to even = 2"},
        {0x33a00000, 0x0001, "1.25 * 2^-24: 1 unit"},
        {0x34200000, 0x0002, "2.5 * 2^-24: tie, to even = 2"},
        {0x34600000, 0x0004, "3.5 * 2^-24: tie, to even = 4"},
        {0x00000001, 0x0000, "float32 subnormal: 0"},
        {0x80000001, 0x8000, "negative float32 subnormal: -0"},
        {0x80000000, 0x8000, "-0"},
        {0x7f800000, 0x7c00, "inf"},
        {0xff800000, 0xfc00, "-inf"},
        {0x7fc00000, 0x7e00, "quiet NaN"},
        {0xffc01234, 0xfe00, "negative NaN, low payload dropped"},
        {0x7f800001, 0x7c01, "signalling NaN with only low payload: stays NaN (0x7c01)"},
        {0x7f802000, 0x7c01, "signalling NaN payload bit 13 kept"},
        {0x7fffffff, 0x7fff, "all-ones NaN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t got = werk_fp32_to_fp16(bitsf(cases[i].f));
        WT_CHECK(got == cases[i].h, "fp32 0x%08x -> fp16 0x%04x, want 0x%04x (%s)", cases[i].f, got,
                 cases[i].h, cases[i].why);
    }
}

static void test_bf16(void) {
    int n_bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float    f    = werk_bf16_to_fp32((uint16_t)h);
        bool     nan  = (h & 0x7f80u) == 0x7f80u && (h & 0x7fu) != 0;
        uint16_t want = nan ? (uint16_t)(h | 0x40u) : (uint16_t)h; // NaN comes back quiet
        if (fbits(f) != h << 16 || werk_fp32_to_bf16(f) != want) {
            if (n_bad++ < 5) {
                fprintf(stderr, "  bf16 0x%04x -> 0x%08x -> 0x%04x\n", h, fbits(f), werk_fp32_to_bf16(f));
            }
        }
    }
    WT_CHECK(n_bad == 0, "%d of 65536 bf16 values do not round-trip", n_bad);

    static const struct {
        uint32_t    f;
        uint16_t    h;
        const char *why;
    } cases[] = {
        {0x3f800000, 0x3f80, "1.0"},
        {0x3f808000, 0x3f80, "tie, to even (down)"},
        {0x3f818000, 0x3f82, "tie, to even (up)"},
        {0x3f808001, 0x3f81, "above the tie"},
        {0x3f807fff, 0x3f80, "below the tie"},
        {0x7f7fffff, 0x7f80, "float max rounds to inf"},
        {0x7f7f7fff, 0x7f7f, "below the overflow tie"},
        {0x00008000, 0x0000, "subnormal tie, to even (0)"},
        {0x00018000, 0x0002, "subnormal tie, to even (up)"},
        {0x7f800000, 0x7f80, "inf"},
        {0xff800000, 0xff80, "-inf"},
        {0x7f800001, 0x7fc0, "signalling NaN, payload only in the low half: quiet"},
        {0xff800001, 0xffc0, "negative signalling NaN"},
        {0x7fc01234, 0x7fc0, "quiet NaN: top half kept"},
        {0x7f810000, 0x7fc1, "NaN payload in the top half kept, quiet bit set"},
        {0xffffffff, 0xffff, "all-ones NaN: no carry"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint16_t got = werk_fp32_to_bf16(bitsf(cases[i].f));
        WT_CHECK(got == cases[i].h, "fp32 0x%08x -> bf16 0x%04x, want 0x%04x (%s)", cases[i].f, got,
                 cases[i].h, cases[i].why);
    }
}

static void test_dtype_bytes(void) {
    uint64_t    n   = 0;
    werk_err    err = {0};
    werk_status s   = werk_dtype_bytes(WERK_DTYPE_Q4_K, 512, &n, &err);
    WT_CHECK(s == WERK_OK && n == 288, "q4_K x 512: status %d, %llu bytes", s, (unsigned long long)n);
    s = werk_dtype_bytes(WERK_DTYPE_Q8_0, 0, &n, &err);
    WT_CHECK(s == WERK_OK && n == 0, "q8_0 x 0: status %d, %llu bytes", s, (unsigned long long)n);
    s = werk_dtype_bytes(WERK_DTYPE_BF16, 3, &n, NULL);
    WT_CHECK(s == WERK_OK && n == 6, "bf16 x 3: status %d, %llu bytes", s, (unsigned long long)n);

    s = werk_dtype_bytes(WERK_DTYPE_Q4_K, 255, &n, &err);
    WT_CHECK(s == WERK_E_SHAPE && err.code == WERK_E_SHAPE, "q4_K x 255: status %d, want WERK_E_SHAPE", s);
    WT_CHECK(strstr(err.msg, "q4_K") && strstr(err.msg, "255") && strstr(err.msg, "256"),
             "message names the type, count and block size: '%s'", err.msg);
    s = werk_dtype_bytes(WERK_DTYPE_Q5_0, 33, &n, NULL);
    WT_CHECK(s == WERK_E_SHAPE, "q5_0 x 33 with err NULL: status %d", s);

    memset(&err, 0, sizeof(err));
    s = werk_dtype_bytes(WERK_DTYPE_F32, (uint64_t)1 << 62, &n, &err);
    WT_CHECK(s == WERK_E_FORMAT && err.code == WERK_E_FORMAT, "f32 x 2^62 overflows: status %d", s);
    s = werk_dtype_bytes(WERK_DTYPE_Q8_0, UINT64_MAX - UINT64_MAX % 32, &n, &err);
    WT_CHECK(s == WERK_E_FORMAT, "q8_0 x (2^64 - 32) overflows: status %d", s);
    s = werk_dtype_bytes(WERK_DTYPE_F64, UINT64_MAX / 8 + 1, &n, &err);
    WT_CHECK(s == WERK_E_FORMAT, "f64 just past the limit: status %d", s);
    s = werk_dtype_bytes(WERK_DTYPE_F64, UINT64_MAX / 8, &n, &err);
    WT_CHECK(s == WERK_OK && n == UINT64_MAX / 8 * 8, "f64 at the limit: status %d", s);
    s = werk_dtype_bytes(WERK_DTYPE_I8, UINT64_MAX, &n, &err);
    WT_CHECK(s == WERK_OK && n == UINT64_MAX, "i8 x (2^64 - 1) fits: status %d", s);
}

static void test_names(void) {
    static const struct {
        const char *name;
        werk_dtype  t;
    } ok[] = {
        {"q4_k", WERK_DTYPE_Q4_K}, {"Q4_K", WERK_DTYPE_Q4_K}, {"q4_K", WERK_DTYPE_Q4_K},
        {"f16", WERK_DTYPE_F16},   {"F16", WERK_DTYPE_F16},   {"bf16", WERK_DTYPE_BF16},
        {"BF16", WERK_DTYPE_BF16}, {"Q8_0", WERK_DTYPE_Q8_0}, {"f32", WERK_DTYPE_F32},
        {"I64", WERK_DTYPE_I64},   {"BOOL", WERK_DTYPE_BOOL}, {"U8", WERK_DTYPE_U8},
        {"q6_K", WERK_DTYPE_Q6_K}, {"Q2_k", WERK_DTYPE_Q2_K}, {"q5_1", WERK_DTYPE_Q5_1},
        {"F64", WERK_DTYPE_F64},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        werk_dtype t  = WERK_DTYPE_COUNT;
        bool       fd = werk_dtype_from_name(ok[i].name, &t);
        WT_CHECK(fd && t == ok[i].t, "'%s' -> found %d type %d, want %d", ok[i].name, fd, t, ok[i].t);
    }
    static const char *bad[] = {"q4k", "", "f16 ", "q4_k_m", "Q4_K_M", "float16", "q4_", "iq2_xxs"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        werk_dtype t = WERK_DTYPE_COUNT;
        WT_CHECK(!werk_dtype_from_name(bad[i], &t), "'%s' should be unknown", bad[i]);
    }
    werk_dtype t = WERK_DTYPE_COUNT;
    WT_CHECK(!werk_dtype_from_name(NULL, &t), "NULL name");
    for (int i = 0; i < WERK_DTYPE_COUNT; i++) {
        WT_CHECK(werk_dtype_from_name(werk_dtype_name((werk_dtype)i), &t) && t == (werk_dtype)i,
                 "name of %d does not map back", i);
    }
}

static void test_table(void) {
    // ggml's ids, block sizes and bytes per block (ggml.h enum ggml_type, type_traits)
    static const struct {
        werk_dtype t;
        int        ggml;
        int64_t    bs;
        size_t     ts;
    } want[] = {
        {WERK_DTYPE_F32, 0, 1, 4},       {WERK_DTYPE_F16, 1, 1, 2},       {WERK_DTYPE_Q4_0, 2, 32, 18},
        {WERK_DTYPE_Q4_1, 3, 32, 20},    {WERK_DTYPE_Q5_0, 6, 32, 22},    {WERK_DTYPE_Q5_1, 7, 32, 24},
        {WERK_DTYPE_Q8_0, 8, 32, 34},    {WERK_DTYPE_Q8_1, 9, 32, 36},    {WERK_DTYPE_Q2_K, 10, 256, 84},
        {WERK_DTYPE_Q3_K, 11, 256, 110}, {WERK_DTYPE_Q4_K, 12, 256, 144}, {WERK_DTYPE_Q5_K, 13, 256, 176},
        {WERK_DTYPE_Q6_K, 14, 256, 210}, {WERK_DTYPE_Q8_K, 15, 256, 292}, {WERK_DTYPE_I8, 24, 1, 1},
        {WERK_DTYPE_I16, 25, 1, 2},      {WERK_DTYPE_I32, 26, 1, 4},      {WERK_DTYPE_I64, 27, 1, 8},
        {WERK_DTYPE_F64, 28, 1, 8},      {WERK_DTYPE_BF16, 30, 1, 2},     {WERK_DTYPE_U8, -1, 1, 1},
        {WERK_DTYPE_BOOL, -1, 1, 1},
    };
    WT_CHECK(sizeof(want) / sizeof(want[0]) == WERK_DTYPE_COUNT, "every type listed");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const werk_dtype_info *ti = werk_dtype_get(want[i].t);
        WT_CHECK(ti->ggml_type == want[i].ggml && ti->block_size == want[i].bs && ti->type_size == want[i].ts,
                 "%s: ggml %d bs %lld ts %zu", ti->name, ti->ggml_type, (long long)ti->block_size,
                 ti->type_size);
        WT_CHECK(ti->is_quant == (want[i].bs > 1), "%s: is_quant", ti->name);
        werk_dtype t = WERK_DTYPE_COUNT;
        if (want[i].ggml >= 0) {
            WT_CHECK(werk_dtype_from_ggml(want[i].ggml, &t) && t == want[i].t, "ggml id %d", want[i].ggml);
        }
        WT_CHECK(werk_dtype_can_dequantize(want[i].t), "%s can be dequantized", ti->name);
    }
    static const int unknown[] = {-1, 4, 5, 16, 20, 23, 29, 31, 34, 39, 1000};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        werk_dtype t = WERK_DTYPE_COUNT;
        WT_CHECK(!werk_dtype_from_ggml(unknown[i], &t), "ggml id %d should be unknown", unknown[i]);
    }
    WT_CHECK(werk_dtype_get(WERK_DTYPE_F64)->is_float && werk_dtype_get(WERK_DTYPE_BF16)->is_float &&
                 !werk_dtype_get(WERK_DTYPE_I32)->is_float && !werk_dtype_get(WERK_DTYPE_Q8_0)->is_float,
             "is_float");
    WT_CHECK(werk_dtype_can_quantize(WERK_DTYPE_F32) && werk_dtype_can_quantize(WERK_DTYPE_F16) &&
                 werk_dtype_can_quantize(WERK_DTYPE_BF16) && werk_dtype_can_quantize(WERK_DTYPE_Q8_0),
             "f32/f16/bf16/q8_0 quantize");
    // issue 4 gave every block type a quantizer (Q8_K included); integer types have none
    WT_CHECK(!werk_dtype_can_quantize(WERK_DTYPE_I32) && werk_dtype_can_quantize(WERK_DTYPE_Q8_K) &&
                 !werk_dtype_can_quantize(WERK_DTYPE_COUNT) && !werk_dtype_can_dequantize(WERK_DTYPE_COUNT),
             "no quantizer for i32 / out-of-range; q8_K has one");
}

int main(void) {
    test_fp16_all_halfs();
    test_fp16_to_fp32_values();
    test_fp32_to_fp16_rounding();
    test_bf16();
    test_dtype_bytes();
    test_names();
    test_table();
    return wt_done();
}
