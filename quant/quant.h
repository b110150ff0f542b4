/* quant/quant.h - public API of werk's block formats
 *
 * Owns the element types werk knows (float, integer and GGUF block-quantized types), their
 * sizes, and the row kernels: dequantize (block -> f32), quantize (f32 -> block) and, in
 * later work, dot products. Everything here depends only on libc/libm.
 *
 * Conventions: a "row" is n contiguous elements of one tensor row; for block types n must
 * be a multiple of the block size (werk_dtype_row_bytes checks). The scalar reference
 * implementations (werk_<fmt>_*_ref, one file per format) define the bytes on disk and
 * match ggml's ggml-quants.c / the PyPI `gguf` package bit for bit.
 */
#ifndef WERK_QUANT_H
#define WERK_QUANT_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Dense enum of element types. The GGUF on-disk id (ggml_type) is in werk_dtype_info. */
typedef enum werk_dtype {
    WERK_DTYPE_F32 = 0,
    WERK_DTYPE_F16,
    WERK_DTYPE_BF16,
    WERK_DTYPE_F64,
    WERK_DTYPE_I8,
    WERK_DTYPE_I16,
    WERK_DTYPE_I32,
    WERK_DTYPE_I64,
    WERK_DTYPE_U8,   // safetensors only
    WERK_DTYPE_BOOL, // safetensors only
    WERK_DTYPE_Q4_0,
    WERK_DTYPE_Q4_1,
    WERK_DTYPE_Q5_0,
    WERK_DTYPE_Q5_1,
    WERK_DTYPE_Q8_0,
    WERK_DTYPE_Q8_1,
    WERK_DTYPE_Q2_K,
    WERK_DTYPE_Q3_K,
    WERK_DTYPE_Q4_K,
    WERK_DTYPE_Q5_K,
    WERK_DTYPE_Q6_K,
    WERK_DTYPE_Q8_K,
    WERK_DTYPE_COUNT
} werk_dtype;

typedef struct werk_dtype_info {
    const char *name;       // GGUF/ggml spelling: "f32", "q4_K", ... ("bool"/"u8" for safetensors-only)
    int64_t     block_size; // elements per block (1 for scalar types)
    size_t      type_size;  // bytes per block
    int         ggml_type;  // GGUF tensor type id, -1 if GGUF has none
    bool        is_float;   // f32/f16/bf16/f64
    bool        is_quant;   // block-quantized
} werk_dtype_info;

/* Never NULL for t < WERK_DTYPE_COUNT; WERK_ASSERTs on a bad value (programmer error). */
const werk_dtype_info *werk_dtype_get(werk_dtype t);
static inline const char *werk_dtype_name(werk_dtype t) {
    return werk_dtype_get(t)->name;
}
/* Looks up by name, case-insensitive ("F16", "q4_k", "Q8_0", "bf16"). False if unknown. */
bool werk_dtype_from_name(const char *name, werk_dtype *out);
/* Maps a ggml type id to werk's enum. False for ids werk does not know (IQ*, TQ*, ...). */
bool werk_dtype_from_ggml(int ggml_type, werk_dtype *out);

/* Bytes of n elements. Fails (WERK_E_SHAPE) if n is not a multiple of the block size,
 * WERK_E_FORMAT on overflow. n >= 0. */
werk_status werk_dtype_bytes(werk_dtype t, uint64_t n, uint64_t *out, werk_err *err);

/* True if werk_dequantize_row / werk_quantize_row handle t. */
bool werk_dtype_can_dequantize(werk_dtype t);
bool werk_dtype_can_quantize(werk_dtype t);

/* dst[0..n) = float values of the n elements at src. n a multiple of the block size;
 * WERK_ASSERTs if t cannot be dequantized (check werk_dtype_can_dequantize first).
 * Integer and bool types convert to float exactly where representable. */
void werk_dequantize_row(werk_dtype t, const void *src, float *dst, int64_t n);

/* Encodes n floats as type t at dst (werk_dtype_bytes(t, n) bytes). Reference (scalar,
 * deterministic) quantizers: identical bytes to ggml's *_ref / gguf's numpy quantizers.
 * WERK_ASSERTs if t cannot be quantized. */
void werk_quantize_row(werk_dtype t, const float *src, void *dst, int64_t n);

// ---- half-precision scalars (round to nearest even, as numpy / torch / ggml) --------

uint16_t werk_fp32_to_fp16(float f);
float    werk_fp16_to_fp32(uint16_t h);
uint16_t werk_fp32_to_bf16(float f); // NaN stays NaN (quiet), as ggml/gguf-py
float    werk_bf16_to_fp32(uint16_t h);

#endif
