/* quant/simd_int.h - private declarations of quant/'s dot products and SIMD variants
 *
 * What quant/dispatch.c puts into the werk_qfns tables (quant.h): the scalar reference
 * dot products (one file per weight format, quant/dot_<fmt>.c), their AVX2 and AVX-512
 * variants (quant/dot_avx2.c, quant/dot_avx512.c), fast activation quantizers
 * (quant/act_avx2.c, quant/act_avx512.c), fast dequantizers (quant/dequant_avx2.c) and
 * the f16/bf16 row conversions (quant/half_rows.c, quant/half_avx2.c,
 * quant/half_avx512.c).
 *
 * Pairing (ggml's type_traits_cpu vec_dot_type): Q4_0, Q5_0, Q8_0 . Q8_0; Q4_1, Q5_1 . Q8_1;
 * Q2_K .. Q6_K . Q8_K; F32 . F32, F16 . F16, BF16 . BF16.
 *
 * Contracts shared by every kernel here:
 *  - x, y, src, dst may be unaligned (GGUF allows an alignment of 1 and callers slice
 *    rows); block fields are read with memcpy / unaligned loads.
 *  - n is a multiple of the block size of both operands (1 for the float types); the
 *    caller checked it. n may be 0 (*s = 0). Kernels never fail and never allocate.
 *  - Dot products: the scalar _ref defines the value; a SIMD variant computes the same
 *    exact integer sums per block and differs only by the order and fusing (FMA) of its
 *    float additions: within float rounding of the _ref (tests/quant/test_dot_simd.c
 *    names the budget). For the float types the _ref accumulates in double, as ggml.
 *  - Quantizers and dequantizers with an ISA suffix are bit-identical to the scalar
 *    reference (NaN and inf included: a block or vector holding one is handed to the
 *    scalar code).
 *  - Like ggml's, the int8 kernels assume activations in -127..127 (what the Q8
 *    quantizers produce: |x * (127/amax)| rounds to at most 127); an activation byte of
 *    -128 paired with a negative weight is mis-signed by _mm256_sign_epi8 in Q4_0/Q5_0/
 *    Q8_0 . Q8_0 (as in ggml).
 *  - The SIMD code assumes the default MXCSR (round to nearest even, no FTZ/DAZ).
 */
#ifndef WERK_QUANT_SIMD_INT_H
#define WERK_QUANT_SIMD_INT_H

#include "quant/quant.h"

#include <stdint.h>

// ---- scalar reference dot products (quant/dot_<fmt>.c) ------------------------------
void werk_f32_dot_f32_ref(int64_t n, float *s, const void *x, const void *y);
void werk_f16_dot_f16_ref(int64_t n, float *s, const void *x, const void *y);
void werk_bf16_dot_bf16_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q4_0_dot_q8_0_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q4_1_dot_q8_1_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q5_0_dot_q8_0_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q5_1_dot_q8_1_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q8_0_dot_q8_0_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q2_k_dot_q8_k_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q3_k_dot_q8_k_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q4_k_dot_q8_k_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q5_k_dot_q8_k_ref(int64_t n, float *s, const void *x, const void *y);
void werk_q6_k_dot_q8_k_ref(int64_t n, float *s, const void *x, const void *y);

// ---- AVX2 + FMA + F16C (quant/dot_avx2.c) --------------------------------------------
void werk_f32_dot_f32_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_f16_dot_f16_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_bf16_dot_bf16_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q4_0_dot_q8_0_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q4_1_dot_q8_1_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q5_0_dot_q8_0_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q5_1_dot_q8_1_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q8_0_dot_q8_0_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q2_k_dot_q8_k_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q3_k_dot_q8_k_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q4_k_dot_q8_k_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q5_k_dot_q8_k_avx2(int64_t n, float *s, const void *x, const void *y);
void werk_q6_k_dot_q8_k_avx2(int64_t n, float *s, const void *x, const void *y);

// ---- AVX-512 F/BW/VL/DQ (quant/dot_avx512.c) -----------------------------------------
void werk_f32_dot_f32_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_f16_dot_f16_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_bf16_dot_bf16_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q4_0_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q4_1_dot_q8_1_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q5_0_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q5_1_dot_q8_1_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q8_0_dot_q8_0_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q2_k_dot_q8_k_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q3_k_dot_q8_k_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q4_k_dot_q8_k_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q5_k_dot_q8_k_avx512(int64_t n, float *s, const void *x, const void *y);
void werk_q6_k_dot_q8_k_avx512(int64_t n, float *s, const void *x, const void *y);

// ---- activation quantizers f32 -> Q8_0 / Q8_1 / Q8_K (quant/act_avx2.c, act_avx512.c) -
/* Bit-identical to werk_q8_0_quantize_ref / werk_q8_1_quantize_ref /
 * werk_q8_k_quantize_ref (quant_int.h; ggml's quantize_row_q8_{0,1,K}_ref semantics:
 * roundf for Q8_0/Q8_1, round-half-even nearest_int and iscale = -127/max for Q8_K). A
 * block holding NaN or inf is quantized by that reference. */
void werk_q8_0_quantize_avx2(const float *src, void *dst, int64_t n);
void werk_q8_1_quantize_avx2(const float *src, void *dst, int64_t n);
void werk_q8_k_quantize_avx2(const float *src, void *dst, int64_t n);
void werk_q8_0_quantize_avx512(const float *src, void *dst, int64_t n);
void werk_q8_1_quantize_avx512(const float *src, void *dst, int64_t n);
void werk_q8_k_quantize_avx512(const float *src, void *dst, int64_t n);

// ---- fast dequantizers, bit-identical to the _ref (quant/dequant_avx2.c) ------------
void werk_q4_0_dequantize_avx2(const void *src, float *dst, int64_t n);
void werk_q4_1_dequantize_avx2(const void *src, float *dst, int64_t n);
void werk_q5_0_dequantize_avx2(const void *src, float *dst, int64_t n);
void werk_q8_0_dequantize_avx2(const void *src, float *dst, int64_t n);
void werk_q4_k_dequantize_avx2(const void *src, float *dst, int64_t n);
void werk_q6_k_dequantize_avx2(const void *src, float *dst, int64_t n);

// ---- f16 / bf16 rows -----------------------------------------------------------------
/* n elements, any n >= 0; the half side is n little-endian uint16 at any alignment.
 * Bit-identical to werk_fp32_to_fp16 / werk_fp16_to_fp32 / werk_fp32_to_bf16 /
 * werk_bf16_to_fp32 element by element, NaN payloads included. The unsuffixed
 * functions use the best ISA of this CPU (werk_cpu_isa, capped by WERK_ISA), chosen once
 * (quant/dispatch.c); _ref is the scalar loop (quant/half_rows.c). */
void werk_f32_to_f16_row(const float *src, void *dst, int64_t n);
void werk_f16_to_f32_row(const void *src, float *dst, int64_t n);
void werk_f32_to_bf16_row(const float *src, void *dst, int64_t n);
void werk_bf16_to_f32_row(const void *src, float *dst, int64_t n);

void werk_f32_to_f16_row_ref(const float *src, void *dst, int64_t n);
void werk_f16_to_f32_row_ref(const void *src, float *dst, int64_t n);
void werk_f32_to_bf16_row_ref(const float *src, void *dst, int64_t n);
void werk_bf16_to_f32_row_ref(const void *src, float *dst, int64_t n);

void werk_f32_to_f16_row_avx2(const float *src, void *dst, int64_t n);
void werk_f16_to_f32_row_avx2(const void *src, float *dst, int64_t n);
void werk_f32_to_bf16_row_avx2(const float *src, void *dst, int64_t n);
void werk_bf16_to_f32_row_avx2(const void *src, float *dst, int64_t n);

void werk_f32_to_f16_row_avx512(const float *src, void *dst, int64_t n);
void werk_f16_to_f32_row_avx512(const void *src, float *dst, int64_t n);
void werk_f32_to_bf16_row_avx512(const float *src, void *dst, int64_t n);
void werk_bf16_to_f32_row_avx512(const void *src, float *dst, int64_t n);

#endif
