/* quant/quant.h - public API of werk's block formats
 *
 * Owns the element types werk knows (float, integer and GGUF block-quantized types), their
 * sizes, and the row kernels: dequantize (block -> f32), quantize (f32 -> block) and, in
 * later work, dot products. Everything here depends only on libc/libm.
 *
 * Conventions: a "row" is n contiguous elements of one tensor row; for block types n must
 * be a multiple of the block size (werk_dtype_bytes checks). The scalar reference
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

// ---- rows with importance weights (the quantizer's entry point) ----------------------

/* Quantizes n_rows rows of n_per_row floats (row-major) into type t at dst, row after row
 * (werk_dtype_bytes(t, n_per_row) bytes each). imatrix: NULL, or n_per_row per-column
 * importance weights (llama.cpp's imatrix: mean squared activation of each input column);
 * types with an importance-weighted search use it (werk_dtype_uses_imatrix), the others
 * ignore it. Deterministic: the bytes depend only on the inputs, never on threads or ISA.
 * With imatrix == NULL the K-quants use werk's own scale search, which is at least as
 * accurate as ggml's reference (quant/README-style notes in each q*_k.c). */
void werk_quantize_rows(werk_dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix);
bool werk_dtype_uses_imatrix(werk_dtype t);

// ---- kernels chosen for this CPU (quant/dispatch.c) ----------------------------------

/* s[0] = dot(x, y) over n elements: x is a row of the weight type, y a row of activations
 * already quantized to the table's vec_dot_type. n is a multiple of both block sizes. */
typedef void (*werk_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*werk_quantize_fn)(const float *src, void *dst, int64_t n);
typedef void (*werk_dequantize_fn)(const void *src, float *dst, int64_t n);

typedef struct werk_qfns {
    werk_dequantize_fn dequantize;   // fastest variant (equal to the _ref within its budget)
    werk_quantize_fn   quantize;     // reference quantizer: defines the bytes on disk
    werk_vec_dot_fn    vec_dot;      // NULL if the type has no dot product
    werk_dtype         vec_dot_type; // type activations are quantized to for vec_dot
    werk_quantize_fn   quantize_act; // fast quantizer for vec_dot_type rows (activations)
    werk_isa           isa;          // which variant this table holds
} werk_qfns;

/* Kernels for type t at the best ISA of this CPU (werk_cpu_isa, capped by WERK_ISA);
 * chosen once, never NULL for t < WERK_DTYPE_COUNT (fields may be NULL). */
const werk_qfns *werk_qfns_get(werk_dtype t);
/* Kernels for a given ISA level (for tests comparing SIMD with scalar): NULL if this
 * build or CPU cannot run that level. */
const werk_qfns *werk_qfns_get_isa(werk_dtype t, werk_isa isa);

// ---- half-precision scalars (round to nearest even, as numpy / torch / ggml) --------

uint16_t werk_fp32_to_fp16(float f);
float    werk_fp16_to_fp32(uint16_t h);
uint16_t werk_fp32_to_bf16(float f); // NaN stays NaN (quiet), as ggml/gguf-py
float    werk_bf16_to_fp32(uint16_t h);

#endif
