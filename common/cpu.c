/* common/cpu.c - which SIMD instruction sets this CPU and OS support
 *
 * Reads CPUID (leaf 1 and 7) and XGETBV (the OS saves the AVX / AVX-512 register state)
 * once; `WERK_ISA=scalar|avx2|avx512` in the environment caps the answer, so tests and
 * users can force the reference path (STYLE.md 3.7). Non-x86 builds report scalar only.
 */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static uint64_t xgetbv0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static werk_isa detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) {
        return WERK_ISA_SCALAR;
    }
    bool osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx) {
        return WERK_ISA_SCALAR;
    }
    uint64_t xcr0 = xgetbv0();
    if ((xcr0 & 6) != 6) { // XMM and YMM state
        return WERK_ISA_SCALAR;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        return WERK_ISA_SCALAR;
    }
    bool avx2 = (b >> 5) & 1;
    if (!avx2 || !fma || !f16c) {
        return WERK_ISA_SCALAR;
    }
    bool avx512 = ((b >> 16) & 1) /* F */ && ((b >> 17) & 1) /* DQ */ && ((b >> 30) & 1) /* BW */ &&
                  ((b >> 31) & 1) /* VL */ && (xcr0 & 0xe0) == 0xe0 /* opmask, ZMM state */;
    return avx512 ? WERK_ISA_AVX512 : WERK_ISA_AVX2;
}
#else
static werk_isa detect(void) {
    return WERK_ISA_SCALAR;
}
#endif

werk_isa werk_cpu_isa(void) {
    werk_isa    isa = detect();
    const char *env = getenv("WERK_ISA");
    if (env && *env) {
        werk_isa cap = WERK_ISA_AVX512;
        if (strcmp(env, "scalar") == 0) {
            cap = WERK_ISA_SCALAR;
        } else if (strcmp(env, "avx2") == 0) {
            cap = WERK_ISA_AVX2;
        }
        if (cap < isa) {
            isa = cap;
        }
    }
    return isa;
}

const char *werk_isa_name(werk_isa isa) {
    switch (isa) {
    case WERK_ISA_SCALAR:
        return "scalar";
    case WERK_ISA_AVX2:
        return "avx2";
    case WERK_ISA_AVX512:
        return "avx512";
    }
    return "?";
}
