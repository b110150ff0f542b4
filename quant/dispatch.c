/* quant/dispatch.c - the kernel tables: which dot product, quantizer and dequantizer run
 *
 * Owns werk_qfns_get / werk_qfns_get_isa (quant.h) and the unsuffixed f16/bf16 row
 * conversions (simd_int.h). One designated-initializer table per ISA level lists the
 * kernels that level has (ggml's type_traits_cpu); the first call fills a werk_qfns per
 * (ISA, dtype) from them, once (pthread_once), for every level up to werk_cpu_isa()
 * (CPUID, capped by WERK_ISA=scalar|avx2|avx512), and the unsuffixed functions use the
 * highest. Nothing is chosen per call and nothing changes afterwards, so the tables may
 * be read from any thread.
 *
 * Fields (quant.h werk_qfns):
 *   vec_dot       the ISA's dot product, NULL for types without one (Q8_1, Q8_K, F64,
 *                 integers); vec_dot_type is ggml's pairing (simd_int.h), or t itself
 *                 when there is no dot product.
 *   quantize_act  the ISA's fastest quantizer to vec_dot_type (bit-identical to the
 *                 reference), NULL for types without one.
 *   dequantize    the ISA's fast dequantizer where one exists (bit-identical), else
 *                 werk_dequantize_row for the type; NULL if the type cannot be
 *                 dequantized.
 *   quantize      werk_quantize_row for the type (the reference that defines the bytes
 *                 on disk), NULL if werk_dtype_can_quantize(t) is false.
 * The AVX-512 level reuses AVX2 kernels where it has none of its own or where the AVX2
 * one is faster (see kernels_avx512; every AVX-512 CPU werk accepts has AVX2, FMA and
 * F16C: common/cpu.c).
 */
#define _POSIX_C_SOURCE 200809L

#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <pthread.h>
#include <string.h>

// ---- werk_dequantize_row / werk_quantize_row as per-type function pointers ------------

// clang-format off
#define WERK_ALL_DTYPES(X)                                                                                   \
    X(F32) X(F16) X(BF16) X(F64) X(I8) X(I16) X(I32) X(I64) X(U8) X(BOOL) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1)   \
        X(Q8_0) X(Q8_1) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K) X(Q8_K)
// clang-format on

#define ROW_WRAPPERS(T)                                                                                      \
    static void dequant_row_##T(const void *src, float *dst, int64_t n) {                                    \
        werk_dequantize_row(WERK_DTYPE_##T, src, dst, n);                                                    \
    }                                                                                                        \
    static void quant_row_##T(const float *src, void *dst, int64_t n) {                                      \
        werk_quantize_row(WERK_DTYPE_##T, src, dst, n);                                                      \
    }
WERK_ALL_DTYPES(ROW_WRAPPERS)

#define DEQUANT_ENTRY(T) [WERK_DTYPE_##T] = dequant_row_##T,
#define QUANT_ENTRY(T) [WERK_DTYPE_##T] = quant_row_##T,
static const werk_dequantize_fn dequant_rows[WERK_DTYPE_COUNT] = {WERK_ALL_DTYPES(DEQUANT_ENTRY)};
static const werk_quantize_fn   quant_rows[WERK_DTYPE_COUNT]   = {WERK_ALL_DTYPES(QUANT_ENTRY)};

static void copy_f32(const float *src, void *dst, int64_t n) { memcpy(dst, src, (size_t)n * sizeof(float)); }

// ---- what each ISA level has ------------------------------------------------------------

typedef struct isa_kernels {
    werk_vec_dot_fn    dot[WERK_DTYPE_COUNT];        // by weight type
    werk_dequantize_fn dequantize[WERK_DTYPE_COUNT]; // fast variants only
    werk_quantize_fn   act[WERK_DTYPE_COUNT];        // by activation type
    void (*f32_to_f16)(const float *, void *, int64_t);
    void (*f16_to_f32)(const void *, float *, int64_t);
    void (*f32_to_bf16)(const float *, void *, int64_t);
    void (*bf16_to_f32)(const void *, float *, int64_t);
} isa_kernels;

// clang-format off
static const werk_dtype dot_pair[WERK_DTYPE_COUNT] = {
    [WERK_DTYPE_F32]  = WERK_DTYPE_F32,  [WERK_DTYPE_F16]  = WERK_DTYPE_F16,
    [WERK_DTYPE_BF16] = WERK_DTYPE_BF16, [WERK_DTYPE_Q4_0] = WERK_DTYPE_Q8_0,
    [WERK_DTYPE_Q4_1] = WERK_DTYPE_Q8_1, [WERK_DTYPE_Q5_0] = WERK_DTYPE_Q8_0,
    [WERK_DTYPE_Q5_1] = WERK_DTYPE_Q8_1, [WERK_DTYPE_Q8_0] = WERK_DTYPE_Q8_0,
    [WERK_DTYPE_Q2_K] = WERK_DTYPE_Q8_K, [WERK_DTYPE_Q3_K] = WERK_DTYPE_Q8_K,
    [WERK_DTYPE_Q4_K] = WERK_DTYPE_Q8_K, [WERK_DTYPE_Q5_K] = WERK_DTYPE_Q8_K,
    [WERK_DTYPE_Q6_K] = WERK_DTYPE_Q8_K,
};

static const isa_kernels kernels_scalar = {
    .dot = {
        [WERK_DTYPE_F32]  = werk_f32_dot_f32_ref,   [WERK_DTYPE_F16]  = werk_f16_dot_f16_ref,
        [WERK_DTYPE_BF16] = werk_bf16_dot_bf16_ref, [WERK_DTYPE_Q4_0] = werk_q4_0_dot_q8_0_ref,
        [WERK_DTYPE_Q4_1] = werk_q4_1_dot_q8_1_ref, [WERK_DTYPE_Q5_0] = werk_q5_0_dot_q8_0_ref,
        [WERK_DTYPE_Q5_1] = werk_q5_1_dot_q8_1_ref, [WERK_DTYPE_Q8_0] = werk_q8_0_dot_q8_0_ref,
        [WERK_DTYPE_Q2_K] = werk_q2_k_dot_q8_k_ref, [WERK_DTYPE_Q3_K] = werk_q3_k_dot_q8_k_ref,
        [WERK_DTYPE_Q4_K] = werk_q4_k_dot_q8_k_ref, [WERK_DTYPE_Q5_K] = werk_q5_k_dot_q8_k_ref,
        [WERK_DTYPE_Q6_K] = werk_q6_k_dot_q8_k_ref,
    },
    .dequantize = {
        [WERK_DTYPE_F16] = werk_f16_to_f32_row_ref, [WERK_DTYPE_BF16] = werk_bf16_to_f32_row_ref,
    },
    .act = {
        [WERK_DTYPE_F32]  = copy_f32,                 [WERK_DTYPE_F16]  = werk_f32_to_f16_row_ref,
        [WERK_DTYPE_BF16] = werk_f32_to_bf16_row_ref, [WERK_DTYPE_Q8_0] = werk_q8_0_quantize_ref,
        [WERK_DTYPE_Q8_1] = werk_q8_1_quantize_ref,   [WERK_DTYPE_Q8_K] = werk_q8_k_quantize_ref,
    },
    .f32_to_f16  = werk_f32_to_f16_row_ref,  .f16_to_f32  = werk_f16_to_f32_row_ref,
    .f32_to_bf16 = werk_f32_to_bf16_row_ref, .bf16_to_f32 = werk_bf16_to_f32_row_ref,
};

static const isa_kernels kernels_avx2 = {
    .dot = {
        [WERK_DTYPE_F32]  = werk_f32_dot_f32_avx2,   [WERK_DTYPE_F16]  = werk_f16_dot_f16_avx2,
        [WERK_DTYPE_BF16] = werk_bf16_dot_bf16_avx2, [WERK_DTYPE_Q4_0] = werk_q4_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q4_1] = werk_q4_1_dot_q8_1_avx2, [WERK_DTYPE_Q5_0] = werk_q5_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q5_1] = werk_q5_1_dot_q8_1_avx2, [WERK_DTYPE_Q8_0] = werk_q8_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q2_K] = werk_q2_k_dot_q8_k_avx2, [WERK_DTYPE_Q3_K] = werk_q3_k_dot_q8_k_avx2,
        [WERK_DTYPE_Q4_K] = werk_q4_k_dot_q8_k_avx2, [WERK_DTYPE_Q5_K] = werk_q5_k_dot_q8_k_avx2,
        [WERK_DTYPE_Q6_K] = werk_q6_k_dot_q8_k_avx2,
    },
    .dequantize = {
        [WERK_DTYPE_F16]  = werk_f16_to_f32_row_avx2,  [WERK_DTYPE_BF16] = werk_bf16_to_f32_row_avx2,
        [WERK_DTYPE_Q4_0] = werk_q4_0_dequantize_avx2, [WERK_DTYPE_Q4_1] = werk_q4_1_dequantize_avx2,
        [WERK_DTYPE_Q5_0] = werk_q5_0_dequantize_avx2, [WERK_DTYPE_Q8_0] = werk_q8_0_dequantize_avx2,
        [WERK_DTYPE_Q4_K] = werk_q4_k_dequantize_avx2, [WERK_DTYPE_Q6_K] = werk_q6_k_dequantize_avx2,
    },
    .act = {
        [WERK_DTYPE_F32]  = copy_f32,                  [WERK_DTYPE_F16]  = werk_f32_to_f16_row_avx2,
        [WERK_DTYPE_BF16] = werk_f32_to_bf16_row_avx2, [WERK_DTYPE_Q8_0] = werk_q8_0_quantize_avx2,
        [WERK_DTYPE_Q8_1] = werk_q8_1_quantize_avx2,   [WERK_DTYPE_Q8_K] = werk_q8_k_quantize_avx2,
    },
    .f32_to_f16  = werk_f32_to_f16_row_avx2,  .f16_to_f32  = werk_f16_to_f32_row_avx2,
    .f32_to_bf16 = werk_f32_to_bf16_row_avx2, .bf16_to_f32 = werk_bf16_to_f32_row_avx2,
};

/* The AVX-512 level takes, per type, whichever of the AVX-512 and AVX2 dot products is
 * faster on the AMD EPYC (Zen 4) werk is developed on, where a 512-bit operation runs as
 * two 256-bit halves (best of 40 interleaved runs, 2048-column rows, cache-resident,
 * GB/s of weights, avx2 / avx512): AVX-512 for Q6_K (24.7 / 28.3) and Q2_K (11.8 / 13.1),
 * and where they tie (BF16 35.4 / 35.6, Q5_1 10.7 / 10.7, Q3_K 11.5 / 11.5); AVX2 for F32
 * (71.5 / 68.0), F16 (56.2 / 35.3: the 512-bit vcvtph2ps is slow there), Q4_0 (11.9 /
 * 9.7), Q4_1 (11.4 / 10.2), Q5_0 (11.7 / 10.9), Q8_0 (31.0 / 24.9), Q4_K (21.5 / 18.9) and
 * Q5_K (20.9 / 17.3). Both variants are tested either way (tests/quant/test_dot_simd.c
 * calls them by name); CPUs with full-width AVX-512 units may prefer the other choice. */
static const isa_kernels kernels_avx512 = {
    .dot = {
        [WERK_DTYPE_F32]  = werk_f32_dot_f32_avx2,     [WERK_DTYPE_F16]  = werk_f16_dot_f16_avx2,
        [WERK_DTYPE_BF16] = werk_bf16_dot_bf16_avx512, [WERK_DTYPE_Q4_0] = werk_q4_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q4_1] = werk_q4_1_dot_q8_1_avx2,   [WERK_DTYPE_Q5_0] = werk_q5_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q5_1] = werk_q5_1_dot_q8_1_avx512, [WERK_DTYPE_Q8_0] = werk_q8_0_dot_q8_0_avx2,
        [WERK_DTYPE_Q2_K] = werk_q2_k_dot_q8_k_avx512, [WERK_DTYPE_Q3_K] = werk_q3_k_dot_q8_k_avx512,
        [WERK_DTYPE_Q4_K] = werk_q4_k_dot_q8_k_avx2,   [WERK_DTYPE_Q5_K] = werk_q5_k_dot_q8_k_avx2,
        [WERK_DTYPE_Q6_K] = werk_q6_k_dot_q8_k_avx512,
    },
    .dequantize = { // no AVX-512 dequantizers: the AVX2 ones
        [WERK_DTYPE_F16]  = werk_f16_to_f32_row_avx512, [WERK_DTYPE_BF16] = werk_bf16_to_f32_row_avx512,
        [WERK_DTYPE_Q4_0] = werk_q4_0_dequantize_avx2,  [WERK_DTYPE_Q4_1] = werk_q4_1_dequantize_avx2,
        [WERK_DTYPE_Q5_0] = werk_q5_0_dequantize_avx2,  [WERK_DTYPE_Q8_0] = werk_q8_0_dequantize_avx2,
        [WERK_DTYPE_Q4_K] = werk_q4_k_dequantize_avx2,  [WERK_DTYPE_Q6_K] = werk_q6_k_dequantize_avx2,
    },
    .act = {
        [WERK_DTYPE_F32]  = copy_f32,                    [WERK_DTYPE_F16]  = werk_f32_to_f16_row_avx512,
        [WERK_DTYPE_BF16] = werk_f32_to_bf16_row_avx512, [WERK_DTYPE_Q8_0] = werk_q8_0_quantize_avx512,
        [WERK_DTYPE_Q8_1] = werk_q8_1_quantize_avx512,   [WERK_DTYPE_Q8_K] = werk_q8_k_quantize_avx512,
    },
    .f32_to_f16  = werk_f32_to_f16_row_avx512,  .f16_to_f32  = werk_f16_to_f32_row_avx512,
    .f32_to_bf16 = werk_f32_to_bf16_row_avx512, .bf16_to_f32 = werk_bf16_to_f32_row_avx512,
};
// clang-format on

static const isa_kernels *const kernels_by_isa[] = {
    [WERK_ISA_SCALAR] = &kernels_scalar,
    [WERK_ISA_AVX2]   = &kernels_avx2,
    [WERK_ISA_AVX512] = &kernels_avx512,
};
#define N_ISA ((int)(sizeof(kernels_by_isa) / sizeof(kernels_by_isa[0])))

// ---- the tables, filled once ------------------------------------------------------------

static pthread_once_t     tables_once = PTHREAD_ONCE_INIT;
static werk_isa           best_isa;
static werk_qfns          tables[N_ISA][WERK_DTYPE_COUNT];
static const isa_kernels *best; // kernels_by_isa[best_isa]

static void tables_init(void) {
    best_isa = werk_cpu_isa();
    if ((int)best_isa >= N_ISA) {
        best_isa = (werk_isa)(N_ISA - 1);
    }
    for (int isa = 0; isa <= (int)best_isa; isa++) {
        const isa_kernels *k = kernels_by_isa[isa];
        for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
            werk_qfns *q    = &tables[isa][t];
            q->isa          = (werk_isa)isa;
            q->vec_dot      = k->dot[t];
            q->vec_dot_type = q->vec_dot ? dot_pair[t] : (werk_dtype)t;
            q->quantize_act = k->act[q->vec_dot_type];
            q->dequantize   = k->dequantize[t];
            if (!q->dequantize && werk_dtype_can_dequantize((werk_dtype)t)) {
                q->dequantize = dequant_rows[t];
            }
            q->quantize = werk_dtype_can_quantize((werk_dtype)t) ? quant_rows[t] : NULL;
        }
    }
    best = kernels_by_isa[best_isa];
}

const werk_qfns *werk_qfns_get(werk_dtype t) {
    WERK_ASSERT((unsigned)t < (unsigned)WERK_DTYPE_COUNT);
    pthread_once(&tables_once, tables_init);
    return &tables[best_isa][t];
}

const werk_qfns *werk_qfns_get_isa(werk_dtype t, werk_isa isa) {
    WERK_ASSERT((unsigned)t < (unsigned)WERK_DTYPE_COUNT);
    pthread_once(&tables_once, tables_init);
    if ((int)isa < 0 || (int)isa > (int)best_isa) {
        return NULL;
    }
    return &tables[isa][t];
}

// ---- f16 / bf16 rows at the best ISA ---------------------------------------------------

void werk_f32_to_f16_row(const float *src, void *dst, int64_t n) {
    pthread_once(&tables_once, tables_init);
    best->f32_to_f16(src, dst, n);
}

void werk_f16_to_f32_row(const void *src, float *dst, int64_t n) {
    pthread_once(&tables_once, tables_init);
    best->f16_to_f32(src, dst, n);
}

void werk_f32_to_bf16_row(const float *src, void *dst, int64_t n) {
    pthread_once(&tables_once, tables_init);
    best->f32_to_bf16(src, dst, n);
}

void werk_bf16_to_f32_row(const void *src, float *dst, int64_t n) {
    pthread_once(&tables_once, tables_init);
    best->bf16_to_f32(src, dst, n);
}
