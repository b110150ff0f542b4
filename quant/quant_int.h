/* quant/quant_int.h - private declarations of the quant/ module
 *
 * The per-format scalar reference kernels (one file per format: quant/q4_0.c ...
 * quant/q8_k.c) that werk_dequantize_row / werk_quantize_row in quant/dtype.c dispatch to,
 * and the settings every kernel file shares.
 *
 * Quantizers come in up to four flavours per format (STYLE.md 3.7):
 *   werk_<fmt>_quantize_ref        the default: defines werk's bytes. Legacy formats and
 *                                  Q8_0/Q8_1/Q8_K: ggml's / gguf-py's rounding bit for bit.
 *                                  K-quants: werk's own scale search (quant/kquant_search.c),
 *                                  at least as accurate as ggml's and faster.
 *   werk_<fmt>_quantize_imat       the same with per-column importance weights (imatrix[j]
 *                                  for element j of the row; n entries). Legacy formats:
 *                                  ggml's quantize_row_<fmt>_impl bit for bit.
 *   werk_<fmt>_quantize_ggml(_imat) K-quants only: ggml's reference algorithms
 *                                  (quant/kquant_ggml.c), the yardstick for tests and benches.
 * The _imat variants see one whole row (n = the row length): the legacy ones use the
 * row's mean square, as ggml does.
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

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__) && !defined(__STRICT_ANSI__)
#pragma GCC optimize("fp-contract=off")
#endif

// ---- legacy 32-element blocks ------------------------------------------------------
void werk_q4_0_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q4_0_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q4_0_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q4_1_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q4_1_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q4_1_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q5_0_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q5_0_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_0_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q5_1_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q5_1_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_1_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
/* Quantizer as gguf-py's Q8_0.quantize_blocks (= ggml's quantize_row_q8_0_ref for finite
 * input): d = amax/127, q = round-half-away(x * (1/d)). */
void werk_q8_0_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q8_0_dequantize_ref(const void *src, float *dst, int64_t n);
/* ggml's quantize_row_q8_1_ref: as Q8_0 (round half away from zero) plus
 * s = fp16(d * sum(q)). */
void werk_q8_1_quantize_ref(const float *src, void *dst, int64_t n);
/* value = d * q; the s field is ignored (ggml has no q8_1 dequantizer). */
void werk_q8_1_dequantize_ref(const void *src, float *dst, int64_t n);

// ---- k-quants (256-element super-blocks) --------------------------------------------
void werk_q2_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q2_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q2_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q3_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q3_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q3_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q4_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q4_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q4_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q5_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q5_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q5_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q6_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q6_k_dequantize_ref(const void *src, float *dst, int64_t n);
void werk_q6_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix);
/* ggml's quantize_row_q8_K_ref: the value of largest magnitude maps to -127, d = 1/iscale
 * (float32), q = min(127, round-half-even(iscale * x)), bsums = sums of 16 quants. */
void werk_q8_k_quantize_ref(const float *src, void *dst, int64_t n);
void werk_q8_k_dequantize_ref(const void *src, float *dst, int64_t n);

// ---- ggml's reference K-quant quantizers (quant/kquant_ggml.c) ------------------------
void werk_q2_k_quantize_ggml(const float *src, void *dst, int64_t n);
void werk_q2_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q3_k_quantize_ggml(const float *src, void *dst, int64_t n);
void werk_q3_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q4_k_quantize_ggml(const float *src, void *dst, int64_t n);
void werk_q4_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q5_k_quantize_ggml(const float *src, void *dst, int64_t n);
void werk_q5_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix);
void werk_q6_k_quantize_ggml(const float *src, void *dst, int64_t n);
void werk_q6_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix);

/* ggml's make_qx_quants (rmse_type 1): symmetric levels -nmax..nmax-1, returned in L as
 * level + nmax; weights qw (NULL: x^2). Returns the scale (value = scale * level). */
float werk_ggml_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw);
/* ggml's make_qkx3_quants with use_mad = false: levels 0..nmax in L, value =
 * scale * L - *the_min. Laux: n bytes of scratch. weights NULL: x^2. */
float werk_ggml_make_qkx3_quants(int          n,
                                 int          nmax,
                                 const float *x,
                                 const float *weights,
                                 uint8_t     *L,
                                 float       *the_min,
                                 uint8_t     *Laux,
                                 float        rmin,
                                 float        rdelta,
                                 int          nstep);

// ---- werk's K-quant searches (quant/kquant_search.c) ----------------------------------
#define KQ_NC 16 // candidate scales evaluated together (one vector loop)

/* round-half-even(v) as an integer for |v| < 2^22, without a float -> int conversion (so
 * loops over it vectorize): 1.5 * 2^23 + v leaves the integer in the low mantissa bits. */
static inline int32_t werk_kq_level(float v) {
    float   t = v + 12582912.f;
    int32_t i;
    memcpy(&i, &t, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

/* Asymmetric sub-block fit: value = scale * l - min, l in 0..nmax, scale >= 0, min >= 0,
 * minimising sum(w (value - x)^2). sens_s / sens_m: how much the measured error grows per
 * squared unit of scale / min error, sum(mw l^2) and sum(mw) with the metric weights mw
 * (the imatrix, or 1 when mw is NULL): the weights for coding them in the super-block. */
typedef struct werk_kq_asym {
    float scale, min, sens_s, sens_m;
} werk_kq_asym;
/* Symmetric fit: value = scale * l, l in -nmax..nmax-1 (scale may be negative). */
typedef struct werk_kq_sym {
    float scale, sens;
} werk_kq_sym;

/* steps: nc candidate level counts (the sym fit takes 4, 8 or a multiple of KQ_NC, the
 * asym fit 8 or a multiple of KQ_NC); candidate c maps the range of x onto steps[c]
 * levels (asymmetric) or the largest |x| onto -steps[c] (symmetric). w: the search
 * weights; mw: the metric weights for the sensitivities (NULL: 1). Levels are not
 * returned: the caller re-rounds against the coded scales. */
void werk_kq_fit_asym16(
    const float *x, const float *w, const float *mw, int nmax, const float *steps, int nc, werk_kq_asym *out);
void werk_kq_fit_asym32(
    const float *x, const float *w, const float *mw, int nmax, const float *steps, int nc, werk_kq_asym *out);
void werk_kq_fit_sym16(
    const float *x, const float *w, const float *mw, int nmax, const float *steps, int nc, werk_kq_sym *out);
/* werk_kq_fit_sym16 on the 16 sub-blocks of a 256-value super-block at once (the
 * sub-blocks in the vector lanes), without the Lloyd round, with weights sigma + |x|, or
 * qw (also the metric weights) when qw is not NULL: scale[16], sens[16]. */
void werk_kq_fit_sym_x16(const float *x,
                         const float *qw,
                         float        sigma,
                         int          nmax,
                         const float *steps,
                         int          nc,
                         float       *scale,
                         float       *sens);
/* Last step of the asymmetric formats: for each of nsub sub-blocks of 16 / 32 values, the
 * scale and min codes ls[j], lm[j] (0..qmax) become the codes just below / above the fitted
 * sc[j] / d and mn[j] / dmin if that lowers the measured
 * error sum(mw (x - (d ls l - dmin lm))^2) after re-rounding the levels (0..nmax). */
void werk_kq_refine_codes16(const float *x,
                            const float *mw,
                            int          nsub,
                            int          nmax,
                            int          qmax,
                            const float *sc,
                            const float *mn,
                            float        d,
                            float        dmin,
                            uint8_t     *ls,
                            uint8_t     *lm);
void werk_kq_refine_codes32(const float *x,
                            const float *mw,
                            int          nsub,
                            int          nmax,
                            int          qmax,
                            const float *sc,
                            const float *mn,
                            float        d,
                            float        dmin,
                            uint8_t     *ls,
                            uint8_t     *lm);
/* Super-block coding: v[j] ~ d * q[j]; returns d as stored (fp16 bits); q rounded
 * against the stored d. Unsigned: q in 0..nmax. Signed: q in -nmax..nmax-1 (nmax <= 128). */
uint16_t werk_kq_code_unsigned(const float *v, const float *sens, int n, int nmax, uint8_t *q);
uint16_t werk_kq_code_signed(const float *v, const float *sens, int n, int nmax, int8_t *q);

/* werk's Q4_K/Q5_K super-block (quant/q4_k.c): levels 0..nmax (15 or 31) in L, d, dmin
 * and the packed scales. qw: NULL or the block's 256 importance weights. */
void werk_k4_quantize_block(
    const float *x, const float *qw, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t *scales, uint8_t *L);

// ---- block packing shared by the ggml and werk quantizers ----------------------------
/* Stores 6-bit scale ls and min lm of group j (0..7) in a q4_K/q5_K scales[12] field
 * that starts zeroed (the inverse of werk_k4_scale_min). */
void werk_k4_put_scale_min(uint8_t *scales, int j, int ls, int lm);
/* Packs 256 levels 0..15 as q4_K qs, and 0..31 as q5_K qh + qs. */
void werk_k4_pack_q4(uint8_t *qs, const uint8_t *L);
void werk_k4_pack_q5(uint8_t *qh, uint8_t *qs, const uint8_t *L);
/* Packs 256 levels 0..63 (q + 32) into a q6_K block's ql and qh. */
void werk_q6_k_pack(block_q6_K *b, const int8_t *L);

/* gguf-py's level for the legacy quantizers: trunc(v) clipped to 0..qmax (its
 * astype(uint8).clip; v never falls below 0 for finite input), and 0 when v is not
 * finite (numpy's float -> uint8 cast on x86). */
static inline uint8_t werk_legacy_level(float v, int qmax) {
    if (!isfinite(v) || v < 1.0f) {
        return 0;
    }
    return (uint8_t)(v >= (float)qmax ? qmax : (int)v);
}

// ---- validation (ggml_validate_row_data) --------------------------------------------
/* False if any scale, min or sum field of the n elements at data (of type t) is NaN or
 * infinite, or any value of a float type is. Integer types are always valid. */
bool werk_validate_row(werk_dtype t, const void *data, int64_t n);

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
