/* quant/dtype.c - the element-type table, size arithmetic and the row dispatchers
 *
 * Owns werk_dtype_info for every werk_dtype (names, block sizes and bytes per block as
 * ggml's type_traits / GGUF; ggml type ids as ggml.h's enum ggml_type), lookups by name
 * and by ggml id, overflow-checked byte counts, and werk_dequantize_row /
 * werk_quantize_row, which hand rows to the per-format reference kernels (quant_int.h)
 * or convert scalar types in place here.
 *
 * Scalar types are read with memcpy (safetensors data need not be aligned). Integer
 * types convert to float as a C conversion (exact up to 2^24, then round to nearest
 * even); F64 -> float likewise; BOOL is 0 -> 0.0f, anything else -> 1.0f.
 */
#include "quant/quant.h"
#include "quant/quant_int.h"
#include "quant/simd_int.h"

#include <inttypes.h>
#include <string.h>

// clang-format off
static const werk_dtype_info dtype_table[WERK_DTYPE_COUNT] = {
    [WERK_DTYPE_F32]  = {.name = "f32",  .block_size = 1,   .type_size = 4,   .ggml_type = 0,  .is_float = true},
    [WERK_DTYPE_F16]  = {.name = "f16",  .block_size = 1,   .type_size = 2,   .ggml_type = 1,  .is_float = true},
    [WERK_DTYPE_BF16] = {.name = "bf16", .block_size = 1,   .type_size = 2,   .ggml_type = 30, .is_float = true},
    [WERK_DTYPE_F64]  = {.name = "f64",  .block_size = 1,   .type_size = 8,   .ggml_type = 28, .is_float = true},
    [WERK_DTYPE_I8]   = {.name = "i8",   .block_size = 1,   .type_size = 1,   .ggml_type = 24},
    [WERK_DTYPE_I16]  = {.name = "i16",  .block_size = 1,   .type_size = 2,   .ggml_type = 25},
    [WERK_DTYPE_I32]  = {.name = "i32",  .block_size = 1,   .type_size = 4,   .ggml_type = 26},
    [WERK_DTYPE_I64]  = {.name = "i64",  .block_size = 1,   .type_size = 8,   .ggml_type = 27},
    [WERK_DTYPE_U8]   = {.name = "u8",   .block_size = 1,   .type_size = 1,   .ggml_type = -1},
    [WERK_DTYPE_BOOL] = {.name = "bool", .block_size = 1,   .type_size = 1,   .ggml_type = -1},
    [WERK_DTYPE_Q4_0] = {.name = "q4_0", .block_size = 32,  .type_size = sizeof(block_q4_0), .ggml_type = 2,  .is_quant = true},
    [WERK_DTYPE_Q4_1] = {.name = "q4_1", .block_size = 32,  .type_size = sizeof(block_q4_1), .ggml_type = 3,  .is_quant = true},
    [WERK_DTYPE_Q5_0] = {.name = "q5_0", .block_size = 32,  .type_size = sizeof(block_q5_0), .ggml_type = 6,  .is_quant = true},
    [WERK_DTYPE_Q5_1] = {.name = "q5_1", .block_size = 32,  .type_size = sizeof(block_q5_1), .ggml_type = 7,  .is_quant = true},
    [WERK_DTYPE_Q8_0] = {.name = "q8_0", .block_size = 32,  .type_size = sizeof(block_q8_0), .ggml_type = 8,  .is_quant = true},
    [WERK_DTYPE_Q8_1] = {.name = "q8_1", .block_size = 32,  .type_size = sizeof(block_q8_1), .ggml_type = 9,  .is_quant = true},
    [WERK_DTYPE_Q2_K] = {.name = "q2_K", .block_size = 256, .type_size = sizeof(block_q2_K), .ggml_type = 10, .is_quant = true},
    [WERK_DTYPE_Q3_K] = {.name = "q3_K", .block_size = 256, .type_size = sizeof(block_q3_K), .ggml_type = 11, .is_quant = true},
    [WERK_DTYPE_Q4_K] = {.name = "q4_K", .block_size = 256, .type_size = sizeof(block_q4_K), .ggml_type = 12, .is_quant = true},
    [WERK_DTYPE_Q5_K] = {.name = "q5_K", .block_size = 256, .type_size = sizeof(block_q5_K), .ggml_type = 13, .is_quant = true},
    [WERK_DTYPE_Q6_K] = {.name = "q6_K", .block_size = 256, .type_size = sizeof(block_q6_K), .ggml_type = 14, .is_quant = true},
    [WERK_DTYPE_Q8_K] = {.name = "q8_K", .block_size = 256, .type_size = sizeof(block_q8_K), .ggml_type = 15, .is_quant = true},
};
// clang-format on

typedef void (*dequant_fn)(const void *src, float *dst, int64_t n);
typedef void (*quant_fn)(const float *src, void *dst, int64_t n);

static const dequant_fn block_dequant[WERK_DTYPE_COUNT] = {
    [WERK_DTYPE_Q4_0] = werk_q4_0_dequantize_ref, [WERK_DTYPE_Q4_1] = werk_q4_1_dequantize_ref,
    [WERK_DTYPE_Q5_0] = werk_q5_0_dequantize_ref, [WERK_DTYPE_Q5_1] = werk_q5_1_dequantize_ref,
    [WERK_DTYPE_Q8_0] = werk_q8_0_dequantize_ref, [WERK_DTYPE_Q8_1] = werk_q8_1_dequantize_ref,
    [WERK_DTYPE_Q2_K] = werk_q2_k_dequantize_ref, [WERK_DTYPE_Q3_K] = werk_q3_k_dequantize_ref,
    [WERK_DTYPE_Q4_K] = werk_q4_k_dequantize_ref, [WERK_DTYPE_Q5_K] = werk_q5_k_dequantize_ref,
    [WERK_DTYPE_Q6_K] = werk_q6_k_dequantize_ref, [WERK_DTYPE_Q8_K] = werk_q8_k_dequantize_ref,
};

/* The default quantizers (quant_int.h): ggml's / gguf-py's bytes for the legacy and 8-bit
 * formats, werk's own scale search for the K-quants. */
static const quant_fn block_quant[WERK_DTYPE_COUNT] = {
    [WERK_DTYPE_Q4_0] = werk_q4_0_quantize_ref, [WERK_DTYPE_Q4_1] = werk_q4_1_quantize_ref,
    [WERK_DTYPE_Q5_0] = werk_q5_0_quantize_ref, [WERK_DTYPE_Q5_1] = werk_q5_1_quantize_ref,
    [WERK_DTYPE_Q8_0] = werk_q8_0_quantize_ref, [WERK_DTYPE_Q8_1] = werk_q8_1_quantize_ref,
    [WERK_DTYPE_Q2_K] = werk_q2_k_quantize_ref, [WERK_DTYPE_Q3_K] = werk_q3_k_quantize_ref,
    [WERK_DTYPE_Q4_K] = werk_q4_k_quantize_ref, [WERK_DTYPE_Q5_K] = werk_q5_k_quantize_ref,
    [WERK_DTYPE_Q6_K] = werk_q6_k_quantize_ref, [WERK_DTYPE_Q8_K] = werk_q8_k_quantize_ref,
};

// ---- lookups ---------------------------------------------------------------------

const werk_dtype_info *werk_dtype_get(werk_dtype t) {
    WERK_ASSERT((unsigned)t < (unsigned)WERK_DTYPE_COUNT);
    return &dtype_table[t];
}

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

static bool name_equal_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) {
            return false;
        }
    }
    return *a == *b;
}

bool werk_dtype_from_name(const char *name, werk_dtype *out) {
    if (!name) {
        return false;
    }
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        if (name_equal_nocase(name, dtype_table[t].name)) {
            *out = (werk_dtype)t;
            return true;
        }
    }
    return false;
}

bool werk_dtype_from_ggml(int ggml_type, werk_dtype *out) {
    if (ggml_type < 0) {
        return false;
    }
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        if (dtype_table[t].ggml_type == ggml_type) {
            *out = (werk_dtype)t;
            return true;
        }
    }
    return false;
}

werk_status werk_dtype_bytes(werk_dtype t, uint64_t n, uint64_t *out, werk_err *err) {
    const werk_dtype_info *ti = werk_dtype_get(t);
    uint64_t               bs = (uint64_t)ti->block_size;
    if (n % bs != 0) {
        return WERK_FAIL(err, WERK_E_SHAPE,
                         "type %s: %" PRIu64 " elements is not a multiple of the block size %" PRIu64,
                         ti->name, n, bs);
    }
    if (!werk_mul_u64(n / bs, (uint64_t)ti->type_size, out)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "type %s: %" PRIu64 " elements overflow a 64-bit byte count",
                         ti->name, n);
    }
    return WERK_OK;
}

bool werk_dtype_can_dequantize(werk_dtype t) {
    if ((unsigned)t >= (unsigned)WERK_DTYPE_COUNT) {
        return false;
    }
    return !dtype_table[t].is_quant || block_dequant[t] != NULL;
}

bool werk_dtype_can_quantize(werk_dtype t) {
    switch (t) {
    case WERK_DTYPE_F32:
    case WERK_DTYPE_F16:
    case WERK_DTYPE_BF16:
        return true;
    default:
        return (unsigned)t < (unsigned)WERK_DTYPE_COUNT && block_quant[t] != NULL;
    }
}

// ---- rows ---------------------------------------------------------------------------

void werk_dequantize_row(werk_dtype t, const void *src, float *dst, int64_t n) {
    WERK_ASSERT(werk_dtype_can_dequantize(t));
    WERK_ASSERT(n >= 0 && n % dtype_table[t].block_size == 0);
    if (n == 0) {
        return;
    }
    const uint8_t *s = src;
    switch (t) {
    case WERK_DTYPE_F32:
        memcpy(dst, s, (size_t)n * sizeof(float));
        return;
    case WERK_DTYPE_F16:
        werk_f16_to_f32_row(s, dst, n); // SIMD where available, bit-identical to the scalar
        return;
    case WERK_DTYPE_BF16:
        werk_bf16_to_f32_row(s, dst, n);
        return;
    case WERK_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        return;
    case WERK_DTYPE_I8:
        for (int64_t i = 0; i < n; i++) {
            dst[i] = (float)(int8_t)s[i];
        }
        return;
    case WERK_DTYPE_U8:
        for (int64_t i = 0; i < n; i++) {
            dst[i] = (float)s[i];
        }
        return;
    case WERK_DTYPE_BOOL:
        for (int64_t i = 0; i < n; i++) {
            dst[i] = s[i] ? 1.0f : 0.0f;
        }
        return;
    case WERK_DTYPE_I16:
        for (int64_t i = 0; i < n; i++) {
            int16_t v;
            memcpy(&v, s + 2 * i, 2);
            dst[i] = (float)v;
        }
        return;
    case WERK_DTYPE_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, s + 4 * i, 4);
            dst[i] = (float)v;
        }
        return;
    case WERK_DTYPE_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, s + 8 * i, 8);
            dst[i] = (float)v;
        }
        return;
    default:
        block_dequant[t](src, dst, n);
        return;
    }
}

void werk_quantize_row(werk_dtype t, const float *src, void *dst, int64_t n) {
    WERK_ASSERT(werk_dtype_can_quantize(t));
    WERK_ASSERT(n >= 0 && n % dtype_table[t].block_size == 0);
    if (n == 0) {
        return;
    }
    uint8_t *d = dst;
    switch (t) {
    case WERK_DTYPE_F32:
        memcpy(d, src, (size_t)n * sizeof(float));
        return;
    case WERK_DTYPE_F16:
        werk_f32_to_f16_row(src, d, n); // SIMD where available, bit-identical to the scalar
        return;
    case WERK_DTYPE_BF16:
        werk_f32_to_bf16_row(src, d, n);
        return;
    default:
        block_quant[t](src, dst, n);
        return;
    }
}
