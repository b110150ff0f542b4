/* quant/quant_int.h - private declarations of the quant/ module
 *
 * The per-format scalar reference kernels (one file per format: quant/q4_0.c ...
 * quant/q8_k.c) that werk_dequantize_row / werk_quantize_row in quant/dtype.c dispatch to,
 * and the settings every kernel file shares.
 *
 * Kernel contract: src/dst may be unaligned (blocks are copied to aligned locals; GGUF
 * allows an alignment of 1), n is a multiple of the format's block size (the caller
 * checked it), the float buffer holds n values. They never fail and never allocate.
 *
 * Bit-exactness: the dequantizers reproduce ggml's dequantize_row_* and gguf-py's numpy
 * code in float32, operation by operation (e.g. (d*sc)*q - dmin*m for q4_K). A fused
 * multiply-add would change the last bit, so contraction is switched off here for every
 * file that includes this header (GCC in ISO mode never contracts; clang and GNU-mode
 * GCC would).
 */
#ifndef WERK_QUANT_INT_H
#define WERK_QUANT_INT_H

#include "quant/blocks.h"
#include "quant/quant.h"

#include <stdint.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__)
#pragma GCC optimize("fp-contract=off")
#endif

// ---- legacy 32-element blocks ------------------------------------------------------
void werk_q4_0_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q4_1_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_0_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_1_dequantize_ref(const void *src, float *dst, int64_t n);
/* Quantizer as gguf-py's Q8_0.quantize_blocks (= ggml's quantize_row_q8_0_ref for finite
 * input): d = amax/127, q = round-half-away(x * (1/d)). */
void werk_q8_0_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q8_0_dequantize_ref(const void *src, float *dst, int64_t n);
/* value = d * q; the s field is ignored (ggml has no q8_1 dequantizer). */
void werk_q8_1_dequantize_ref(const void *src, float *dst, int64_t n);

// ---- k-quants (256-element super-blocks) --------------------------------------------
void werk_q2_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q3_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q4_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q6_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q8_k_dequantize_ref(const void *src, float *dst, int64_t n);

/* The 6-bit scale j (0..7) and min of a q4_K/q5_K scales[12] field (ggml's
 * get_scale_min_k4). Shared by quant/q4_k.c and quant/q5_k.c. */
static inline void werk_k4_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m  = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m  = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

#endif
