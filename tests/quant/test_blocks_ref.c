/* tests/quant/test_blocks_ref.c - the scalar reference block kernels on known data
 *
 * (a) Q8_0 quantize -> dequantize round trip within a named error budget, exact on
 *     values the format represents, and a few hand-computed blocks;
 * (b) each block format dequantized from a hand-built block: the expected values come
 *     from the layout as blocks.h documents it, computed per element (not with the
 *     kernel's loop structure), plus literal spot values worked out by hand;
 * (c) scalar types through werk_dequantize_row / werk_quantize_row (integers, bool,
 *     f64 rounding, unaligned sources).
 * Bit-exactness against ggml/gguf-py on random blocks is test_dequant_oracle.py's job.
 */
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

// the code under test
#include "quant/blocks.h"
#include "quant/quant.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* Q8_0 round-trip budget, per element, as a fraction of the block's max |x|: rounding
 * to the nearest quant costs d/2, and storing d = amax/127 as fp16 (relative error
 * <= 2^-11) moves a quant of magnitude <= 127 by <= 127 * d * 2^-11 = 0.062 d. So
 * |x - x'| <= 0.563 d = 0.00443 amax; 0.0045 leaves room for float32 rounding. */
#define Q8_0_MAX_ERR_OF_AMAX 0.0045f
/* RMS error over RMS signal for Gaussian data: uniform rounding error d/sqrt(12) with
 * d ~ amax/127 ~ 2.5 sigma/127 (32-sample blocks) gives ~0.0057; budget 0.008. */
#define Q8_0_MAX_REL_RMSE 0.008

static uint32_t lcg_state = 12345u;
static uint32_t lcg(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state;
}
/* approximately standard normal (sum of 4 uniforms, rescaled) */
static float gauss(void) {
    float s = 0;
    for (int i = 0; i < 4; i++) {
        s += (float)(lcg() >> 8) / 16777216.0f;
    }
    return (s - 2.0f) * 1.7320508f;
}

static void put_half(uint8_t *p, float f) {
    uint16_t h = werk_fp32_to_fp16(f);
    memcpy(p, &h, 2);
}

// ---- (a) Q8_0 round trip ------------------------------------------------------------

static void test_q8_0_roundtrip(void) {
    enum { N = 32 * 512 };
    static float   x[N], y[N];
    static uint8_t q[N / 32 * sizeof(block_q8_0)];
    for (int i = 0; i < N; i++) {
        x[i] = gauss() * (1.0f + (float)(i / 32 % 7)) * 0.01f; // blocks of different scales
    }
    werk_quantize_row(WERK_DTYPE_Q8_0, x, q, N);
    werk_dequantize_row(WERK_DTYPE_Q8_0, q, y, N);
    double err2 = 0, sig2 = 0;
    int    n_bad = 0;
    for (int b = 0; b < N / 32; b++) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = fmaxf(amax, fabsf(x[32 * b + j]));
        }
        for (int j = 0; j < 32; j++) {
            float e = fabsf(x[32 * b + j] - y[32 * b + j]);
            if (e > Q8_0_MAX_ERR_OF_AMAX * amax && n_bad++ < 5) {
                fprintf(stderr, "  q8_0 [%d]: x %g y %g (amax %g)\n", 32 * b + j, x[32 * b + j],
                        y[32 * b + j], amax);
            }
            err2 += (double)e * e;
            sig2 += (double)x[32 * b + j] * x[32 * b + j];
        }
    }
    WT_CHECK(n_bad == 0, "%d q8_0 values off by more than %g * block amax", n_bad, Q8_0_MAX_ERR_OF_AMAX);
    double rel = sqrt(err2 / sig2);
    WT_CHECK(rel <= Q8_0_MAX_REL_RMSE, "q8_0 relative RMSE %g > %g", rel, Q8_0_MAX_REL_RMSE);

    // values the format holds exactly: integers -127..127 times a power of two
    for (int i = 0; i < N; i++) {
        x[i] = (float)((int)(lcg() % 255) - 127) * 0.25f;
    }
    for (int b = 0; b < N / 32; b++) {
        x[32 * b + b % 32] = (b & 1) ? -31.75f : 31.75f; // amax = 127 * 0.25
    }
    werk_quantize_row(WERK_DTYPE_Q8_0, x, q, N);
    werk_dequantize_row(WERK_DTYPE_Q8_0, q, y, N);
    WT_CLOSE(y, x, N, 0.0, 0.0, "q8_0 exact values");
}

static void test_q8_0_hand(void) {
    float x[32] = {0};
    // amax 254 -> d = 2 (exact in fp16), quants = x / 2 rounded half away from zero
    x[0] = 254.0f;
    x[1] = -254.0f;
    x[2] = 3.0f;   // 1.5 -> 2
    x[3] = -3.0f;  // -1.5 -> -2
    x[4] = 5.0f;   // 2.5 -> 3 (away from zero, not to even)
    x[5] = 0.9f;   // 0.45 -> 0
    x[6] = -1.0f;  // -0.5 -> -1
    x[7] = 100.2f; // 50.1 -> 50
    uint8_t blk[34];
    werk_quantize_row(WERK_DTYPE_Q8_0, x, blk, 32);
    uint16_t d;
    memcpy(&d, blk, 2);
    WT_CHECK(d == 0x4000, "d = fp16 2.0, got 0x%04x", d);
    static const int8_t want[8] = {127, -127, 2, -2, 3, 0, -1, 50};
    for (int j = 0; j < 8; j++) {
        WT_CHECK((int8_t)blk[2 + j] == want[j], "q[%d] = %d, want %d", j, (int8_t)blk[2 + j], want[j]);
    }
    for (int j = 8; j < 32; j++) {
        WT_CHECK(blk[2 + j] == 0, "q[%d] = %d, want 0", j, (int8_t)blk[2 + j]);
    }

    // all zeros: d = 0, quants 0
    memset(x, 0, sizeof(x));
    memset(blk, 0xAB, sizeof(blk));
    werk_quantize_row(WERK_DTYPE_Q8_0, x, blk, 32);
    int nz = 0;
    for (int j = 0; j < 34; j++) {
        nz += blk[j] != 0;
    }
    WT_CHECK(nz == 0, "zero block: %d nonzero bytes", nz);

    // float32 subnormals: d is subnormal and 1/d overflows -> quants 0 (as gguf-py)
    for (int j = 0; j < 32; j++) {
        x[j] = (j & 1 ? -1.0f : 1.0f) * 1e-39f * (float)(j + 1);
    }
    werk_quantize_row(WERK_DTYPE_Q8_0, x, blk, 32);
    nz = 0;
    for (int j = 0; j < 34; j++) {
        nz += blk[j] != 0;
    }
    WT_CHECK(nz == 0, "tiny block: %d nonzero bytes", nz);

    // a NaN makes d NaN and every quant 0 (gguf-py's numpy semantics)
    for (int j = 0; j < 32; j++) {
        x[j] = (float)j;
    }
    x[9] = NAN;
    werk_quantize_row(WERK_DTYPE_Q8_0, x, blk, 32);
    memcpy(&d, blk, 2);
    WT_CHECK((d & 0x7c00) == 0x7c00 && (d & 0x3ff) != 0, "NaN block: d 0x%04x is not NaN", d);
    nz = 0;
    for (int j = 2; j < 34; j++) {
        nz += blk[j] != 0;
    }
    WT_CHECK(nz == 0, "NaN block: %d nonzero quants", nz);
}

// ---- (b) hand-built blocks ------------------------------------------------------------

static void check_block(werk_dtype t, const void *blk, const float *want, int n, const char *label) {
    float got[256];
    werk_dequantize_row(t, blk, got, n);
    WT_CLOSE(got, want, n, 0.0, 0.0, label);
    // the same from an odd address (GGUF allows alignment 1)
    uint8_t buf[512];
    size_t  sz = werk_dtype_get(t)->type_size;
    memcpy(buf + 1, blk, sz);
    memset(got, 0, sizeof(got));
    werk_dequantize_row(t, buf + 1, got, n);
    WT_CLOSE(got, want, n, 0.0, 0.0, label);
}

static void test_legacy_blocks(void) {
    float want[32];

    block_q4_0 a;
    put_half((uint8_t *)&a.d, 0.5f);
    for (int j = 0; j < 16; j++) {
        a.qs[j]      = (uint8_t)(j | (15 - j) << 4);
        want[j]      = 0.5f * (float)(j - 8);
        want[j + 16] = 0.5f * (float)(7 - j);
    }
    check_block(WERK_DTYPE_Q4_0, &a, want, 32, "q4_0");
    WT_CHECK(want[0] == -4.0f && want[31] == -4.0f && want[15] == 3.5f, "q4_0 spot values");

    block_q4_1 b;
    put_half((uint8_t *)&b.d, 0.5f);
    put_half((uint8_t *)&b.m, -1.0f);
    for (int j = 0; j < 16; j++) {
        b.qs[j]      = (uint8_t)(j | (15 - j) << 4);
        want[j]      = 0.5f * (float)j - 1.0f;
        want[j + 16] = 0.5f * (float)(15 - j) - 1.0f;
    }
    check_block(WERK_DTYPE_Q4_1, &b, want, 32, "q4_1");

    block_q5_0 c;
    put_half((uint8_t *)&c.d, 0.25f);
    const uint32_t qh = 0xA5A50F0Fu; // bit j = 5th bit of element j
    memcpy(c.qh, &qh, 4);
    for (int j = 0; j < 16; j++) {
        c.qs[j] = (uint8_t)((3 * j) % 16 | ((j + 5) % 16) << 4);
    }
    for (int e = 0; e < 32; e++) {
        int lo  = e < 16 ? c.qs[e] & 15 : c.qs[e - 16] >> 4;
        want[e] = 0.25f * (float)((lo | (int)((qh >> e) & 1) << 4) - 16);
    }
    check_block(WERK_DTYPE_Q5_0, &c, want, 32, "q5_0");
    // element 0: lo 0, bit 1 -> 16 - 16 = 0; element 16: lo 5, bit 16 of qh (0xA5A5 -> 1) -> 21-16 = 5
    WT_CHECK(want[0] == 0.0f && want[16] == 1.25f, "q5_0 spot values %g %g", want[0], want[16]);

    block_q5_1 d;
    put_half((uint8_t *)&d.d, 2.0f);
    put_half((uint8_t *)&d.m, 0.5f);
    memcpy(d.qh, &qh, 4);
    memcpy(d.qs, c.qs, 16);
    for (int e = 0; e < 32; e++) {
        int lo  = e < 16 ? d.qs[e] & 15 : d.qs[e - 16] >> 4;
        want[e] = 2.0f * (float)(lo | (int)((qh >> e) & 1) << 4) + 0.5f;
    }
    check_block(WERK_DTYPE_Q5_1, &d, want, 32, "q5_1");
    WT_CHECK(want[31] == 2.0f * (float)(((15 + 5) % 16) | 16) + 0.5f, "q5_1 spot value"); // bit 31 set

    block_q8_0 e8;
    put_half((uint8_t *)&e8.d, -0.125f);
    for (int j = 0; j < 32; j++) {
        e8.qs[j] = (int8_t)(j * 8 - 128);
        want[j]  = -0.125f * (float)(j * 8 - 128);
    }
    check_block(WERK_DTYPE_Q8_0, &e8, want, 32, "q8_0");

    block_q8_1 f8;
    put_half((uint8_t *)&f8.d, 3.0f);
    put_half((uint8_t *)&f8.s, 1234.0f); // ignored
    for (int j = 0; j < 32; j++) {
        f8.qs[j] = (int8_t)(127 - 8 * j);
        want[j]  = 3.0f * (float)(127 - 8 * j);
    }
    check_block(WERK_DTYPE_Q8_1, &f8, want, 32, "q8_1");
}

/* element e of a 256-block: half h = e/128, 2-bit plane s = (e%128)/32, l = e%32 */
static void test_q2_k(void) {
    block_q2_K b;
    put_half((uint8_t *)&b.d, 1.0f);
    put_half((uint8_t *)&b.dmin, 0.5f);
    memset(b.qs, 0xE4, sizeof(b.qs)); // planes 0,1,2,3 hold 0,1,2,3
    for (int g = 0; g < 16; g++) {
        b.scales[g] = (uint8_t)(g | (15 - g) << 4);
    }
    float want[256];
    for (int e = 0; e < 256; e++) {
        int g = e / 16, q = (e % 128) / 32;
        want[e] = (float)g * (float)q - 0.5f * (float)(15 - g);
    }
    WT_CHECK(want[0] == -7.5f && want[40] == -4.5f && want[150] == -3.0f && want[255] == 45.0f,
             "q2_K spot values");
    check_block(WERK_DTYPE_Q2_K, &b, want, 256, "q2_K");
}

static void test_q3_k(void) {
    block_q3_K b;
    memset(&b, 0, sizeof(b));
    put_half((uint8_t *)&b.d, 0.5f);
    memset(b.qs, 0xE4, sizeof(b.qs));
    memset(b.hmask, 0x55, sizeof(b.hmask)); // even planes: no -4 offset
    for (int g = 0; g < 16; g++) {          // 6-bit scale g + 24, i.e. g - 8 after the -32
        int v = g + 24;
        if (g < 8) {
            b.scales[g] |= (uint8_t)(v & 15);
        } else {
            b.scales[g - 8] |= (uint8_t)((v & 15) << 4);
        }
        b.scales[8 + g % 4] |= (uint8_t)((v >> 4) << (2 * (g / 4)));
    }
    float want[256];
    for (int e = 0; e < 256; e++) {
        int g = e / 16, plane = e / 32, q = (e % 128) / 32 - ((plane % 2 == 0) ? 0 : 4);
        want[e] = 0.5f * (float)(g - 8) * (float)q;
    }
    WT_CHECK(want[40] == 9.0f && want[255] == -3.5f, "q3_K spot values");
    check_block(WERK_DTYPE_Q3_K, &b, want, 256, "q3_K");
}

/* Packs 8 6-bit scales and mins the way blocks.h documents for q4_K/q5_K. */
static void pack_k4(uint8_t s[12], const int sc[8], const int mn[8]) {
    memset(s, 0, 12);
    for (int g = 0; g < 8; g++) {
        if (g < 4) {
            s[g] |= (uint8_t)(sc[g] & 63);
            s[g + 4] |= (uint8_t)(mn[g] & 63);
        } else {
            s[g + 4] |= (uint8_t)((sc[g] & 15) | (mn[g] & 15) << 4);
            s[g - 4] |= (uint8_t)((sc[g] >> 4) << 6);
            s[g] |= (uint8_t)((mn[g] >> 4) << 6);
        }
    }
}

static void test_q4_k_q5_k(void) {
    int sc[8], mn[8];
    for (int g = 0; g < 8; g++) {
        sc[g] = 9 * g;      // 0..63
        mn[g] = 63 - 9 * g; // 63..0
    }
    block_q4_K b;
    put_half((uint8_t *)&b.d, 1.0f);
    put_half((uint8_t *)&b.dmin, 0.25f);
    pack_k4(b.scales, sc, mn);
    for (int p = 0; p < 4; p++) {
        for (int l = 0; l < 32; l++) {
            b.qs[32 * p + l] = (uint8_t)(((l + p) & 15) | ((l * 3) & 15) << 4);
        }
    }
    float want[256];
    for (int e = 0; e < 256; e++) {
        int p = e / 64, r = e % 64, g = e / 32;
        int q   = r < 32 ? (r + p) & 15 : ((r - 32) * 3) & 15;
        want[e] = (float)sc[g] * (float)q - 0.25f * (float)mn[g];
    }
    // element 255: group 7 (scale 63, min 0), q = (31*3)&15 = 13 -> 819
    WT_CHECK(want[255] == 819.0f && want[0] == -15.75f, "q4_K spot values %g %g", want[255], want[0]);
    check_block(WERK_DTYPE_Q4_K, &b, want, 256, "q4_K");

    block_q5_K c;
    c.d    = b.d;
    c.dmin = b.dmin;
    memcpy(c.scales, b.scales, 12);
    memcpy(c.qs, b.qs, sizeof(c.qs));
    for (int l = 0; l < 32; l++) {
        c.qh[l] = (uint8_t)(l * 7);
    }
    for (int e = 0; e < 256; e++) {
        int p = e / 64, r = e % 64, g = e / 32, l = e % 32;
        int q   = (r < 32 ? (r + p) & 15 : ((r - 32) * 3) & 15) + (((c.qh[l] >> g) & 1) ? 16 : 0);
        want[e] = (float)sc[g] * (float)q - 0.25f * (float)mn[g];
    }
    // element 255: l = 31, qh = 217 = 0b11011001, bit 7 set -> q = 29 -> 1827
    WT_CHECK(want[255] == 1827.0f, "q5_K spot value %g", want[255]);
    check_block(WERK_DTYPE_Q5_K, &c, want, 256, "q5_K");
}

static void test_q6_k(void) {
    block_q6_K b;
    put_half((uint8_t *)&b.d, 0.5f);
    for (int i = 0; i < 128; i++) {
        b.ql[i] = (uint8_t)(i * 5);
    }
    for (int i = 0; i < 64; i++) {
        b.qh[i] = (uint8_t)(i * 11);
    }
    for (int g = 0; g < 16; g++) {
        b.scales[g] = (int8_t)(g * 9 - 70);
    }
    float want[256];
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = (e % 128) / 32, l = e % 32;
        int lo  = (b.ql[64 * h + 32 * (r & 1) + l] >> (4 * (r >> 1))) & 15;
        int hi  = (b.qh[32 * h + l] >> (2 * r)) & 3;
        int g   = 8 * h + 2 * r + l / 16;
        want[e] = 0.5f * (float)b.scales[g] * (float)((lo | hi << 4) - 32);
    }
    // element 0: ql 0, qh 0 -> q = -32, scale -70 -> 0.5 * -70 * -32 = 1120
    WT_CHECK(want[0] == 1120.0f, "q6_K spot value %g", want[0]);
    check_block(WERK_DTYPE_Q6_K, &b, want, 256, "q6_K");
}

static void test_q8_k(void) {
    static block_q8_K b;
    b.d = 0.125f;
    float want[256];
    for (int j = 0; j < 256; j++) {
        b.qs[j] = (int8_t)(j - 128);
        want[j] = 0.125f * (float)(j - 128);
    }
    for (int j = 0; j < 16; j++) {
        b.bsums[j] = 777; // ignored
    }
    check_block(WERK_DTYPE_Q8_K, &b, want, 256, "q8_K");
}

// ---- (c) scalar types -------------------------------------------------------------------

static void test_scalar_types(void) {
    uint8_t buf[128];
    float   got[8];

    const int8_t i8[4] = {-128, -1, 0, 127};
    memcpy(buf + 1, i8, sizeof(i8));
    werk_dequantize_row(WERK_DTYPE_I8, buf + 1, got, 4);
    WT_CLOSE(got, ((float[]){-128, -1, 0, 127}), 4, 0, 0, "i8");

    const uint8_t u8[4] = {0, 1, 128, 255};
    werk_dequantize_row(WERK_DTYPE_U8, u8, got, 4);
    WT_CLOSE(got, ((float[]){0, 1, 128, 255}), 4, 0, 0, "u8");

    const uint8_t bl[4] = {0, 1, 2, 255};
    werk_dequantize_row(WERK_DTYPE_BOOL, bl, got, 4);
    WT_CLOSE(got, ((float[]){0, 1, 1, 1}), 4, 0, 0, "bool");

    const int16_t i16[3] = {-32768, 12345, 32767};
    memcpy(buf + 1, i16, sizeof(i16));
    werk_dequantize_row(WERK_DTYPE_I16, buf + 1, got, 3);
    WT_CLOSE(got, ((float[]){-32768, 12345, 32767}), 3, 0, 0, "i16");

    // 2^24 + 1 is a tie between 2^24 and 2^24 + 2: to even (2^24); 2^24 + 3 -> 2^24 + 4
    const int32_t i32[4] = {INT32_MIN, 16777217, 16777219, -7};
    memcpy(buf + 3, i32, sizeof(i32));
    werk_dequantize_row(WERK_DTYPE_I32, buf + 3, got, 4);
    WT_CLOSE(got, ((float[]){-2147483648.0f, 16777216.0f, 16777220.0f, -7}), 4, 0, 0, "i32");

    const int64_t i64[3] = {INT64_MIN, (int64_t)1 << 53 | 1, -5};
    memcpy(buf + 5, i64, sizeof(i64));
    werk_dequantize_row(WERK_DTYPE_I64, buf + 5, got, 3);
    WT_CLOSE(got, ((float[]){-9223372036854775808.0f, 9007199254740992.0f, -5}), 3, 0, 0, "i64");

    const double f64[5] = {0.1, -1e300, 1e-50, 3.4028235677973366e38, 1.0000000596046448};
    memcpy(buf + 1, f64, sizeof(f64));
    werk_dequantize_row(WERK_DTYPE_F64, buf + 1, got, 5);
    WT_CHECK(got[0] == 0.1f && got[1] == -INFINITY && got[2] == 0.0f && got[3] == INFINITY && got[4] == 1.0f,
             "f64 -> float: %g %g %g %g %.9g", got[0], got[1], got[2], got[3], got[4]);

    // f32 / f16 / bf16 through the row functions
    const float x[4] = {1.0f, -2.5f, 65504.0f, 1e-8f};
    werk_quantize_row(WERK_DTYPE_F16, x, buf + 1, 4);
    werk_dequantize_row(WERK_DTYPE_F16, buf + 1, got, 4);
    WT_CLOSE(got, ((float[]){1.0f, -2.5f, 65504.0f, 0.0f}), 4, 0, 0, "f16 row");
    werk_quantize_row(WERK_DTYPE_BF16, x, buf + 1, 4);
    werk_dequantize_row(WERK_DTYPE_BF16, buf + 1, got, 4);
    WT_CLOSE(got, ((float[]){1.0f, -2.5f, 65536.0f, 0x1.5800000p-27f}), 4, 0, 0, "bf16 row");
    werk_quantize_row(WERK_DTYPE_F32, x, buf + 1, 4);
    werk_dequantize_row(WERK_DTYPE_F32, buf + 1, got, 4);
    WT_CLOSE(got, x, 4, 0, 0, "f32 row");
    werk_dequantize_row(WERK_DTYPE_Q4_K, NULL, NULL, 0); // n = 0 touches nothing
}

int main(void) {
    test_q8_0_roundtrip();
    test_q8_0_hand();
    test_legacy_blocks();
    test_q2_k();
    test_q3_k();
    test_q4_k_q5_k();
    test_q6_k();
    test_q8_k();
    test_scalar_types();
    return wt_done();
}
