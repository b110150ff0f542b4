/* quant/half.c - fp16 and bf16 scalar conversions
 *
 * IEEE binary16 (fp16) and bfloat16 (bf16) to and from float32, in integer arithmetic so
 * the result never depends on the FPU mode, the compiler or the CPU.
 *
 * fp32 -> fp16 rounds to nearest, ties to even, with subnormals; values at or above
 * 65520 become inf; NaN keeps its sign and the top 10 payload bits (a payload that would
 * vanish becomes 1, so NaN stays NaN and signalling NaNs are not quieted). This is
 * numpy's astype(np.float16) (npy_floatbits_to_halfbits) bit for bit, NaNs included.
 * fp16 -> fp32 is exact; NaN payloads are kept (numpy's npy_halfbits_to_floatbits).
 *
 * fp32 -> bf16 is ggml's ggml_compute_fp32_to_bf16 and gguf-py's BF16 quantizer: a NaN
 * becomes its top half with the quiet bit (0x40) set, everything else rounds to
 * nearest even (overflow to inf as the rounding carries into the exponent).
 * bf16 -> fp32 is a 16-bit shift.
 */
#include "quant/quant.h"

#include <string.h>

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

uint16_t werk_fp32_to_fp16(float f) {
    uint32_t u    = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a    = u & 0x7fffffffu;

    if (a >= 0x7f800000u) { // inf or NaN
        if (a == 0x7f800000u) {
            return sign | 0x7c00u;
        }
        uint16_t h = (uint16_t)(0x7c00u | ((a & 0x007fffffu) >> 13));
        if (h == 0x7c00u) {
            h++; // payload only in the dropped bits: keep it a NaN
        }
        return sign | h;
    }
    if (a >= 0x477ff000u) { // >= 65520 = halfway between 65504 (max) and 65536: rounds to inf
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {              // normal half (>= 2^-14): rebias the exponent, round 13 bits away
        uint32_t base = a - 0x38000000u; // exponent 127 -> 15
        uint32_t q    = base >> 13;
        uint32_t rem  = base & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) {
            q++; // a carry out of the mantissa bumps the exponent, as it should
        }
        return sign | (uint16_t)q;
    }
    if (a < 0x33000000u) { // below 2^-25: rounds to zero (2^-25 itself is a tie to 0, handled below too)
        return sign;
    }
    // subnormal half: value in units of 2^-24 = mantissa >> (126 - exponent)
    uint32_t e     = a >> 23;                       // 102 .. 112
    uint32_t m     = (a & 0x007fffffu) | 0x800000u; // with the implicit bit
    uint32_t shift = 126u - e;                      // 24 .. 14
    uint32_t q     = m >> shift;
    uint32_t rem   = m & ((1u << shift) - 1u);
    uint32_t half  = 1u << (shift - 1u);
    if (rem > half || (rem == half && (q & 1u))) {
        q++; // may reach 0x400, the smallest normal: still the right encoding
    }
    return sign | (uint16_t)q;
}

float werk_fp16_to_fp32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e    = (h >> 10) & 0x1fu;
    uint32_t m    = h & 0x3ffu;
    if (e == 0x1fu) { // inf / NaN, payload kept
        return bits_f32(sign | 0x7f800000u | (m << 13));
    }
    if (e == 0) {
        if (m == 0) {
            return bits_f32(sign);
        }
        // subnormal: shift the mantissa up until its leading bit is the implicit one
        int32_t exp = 1;
        while (!(m & 0x400u)) {
            m <<= 1;
            exp--;
        }
        m &= 0x3ffu;
        return bits_f32(sign | ((uint32_t)(exp + 112) << 23) | (m << 13));
    }
    return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

uint16_t werk_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        u = (u & 0xffff0000u) | (64u << 16); // NaN: force the quiet bit
    }
    // round to nearest even; no overflow: the largest non-NaN input is 0xff800000
    return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

float werk_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t)h << 16); }
