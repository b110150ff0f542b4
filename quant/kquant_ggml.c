/* quant/kquant_ggml.c - ggml's reference scale searches and K-quant quantizers, as the yardstick
 *
 * werk's own K-quant quantizers (quant/q2_k.c ... quant/q6_k.c, werk_<fmt>_quantize_ref
 * and _imat) promise to be at least as accurate as ggml's and at least twice as fast. This
 * file is what they are measured against: a faithful scalar implementation of ggml's
 * algorithms, operation for operation in float32 so the bytes equal llama.cpp's
 * (quantize_q<N>_K with and without an imatrix), kept for tests/quant and
 * tests/bench/bench_quant_rows.c. Nothing on werk's write path calls the K-quant ones.
 *
 * It also holds the searches that the legacy formats' importance-weighted quantizers use
 * (werk_q4_0_quantize_imat ... werk_q5_1_quantize_imat follow ggml exactly, so a werk file
 * made with an imatrix equals llama.cpp's for those types).
 *
 * The searches, in ggml's names (n values x, weights w, integer levels L):
 *   make_qx_quants   symmetric, levels -nmax..nmax-1: start from -nmax/max, try 18 more
 *                    inverse scales -(nmax + 0.1*is)/max, keep the best weighted least-squares
 *                    fit (largest sumlx^2/suml2).
 *   make_q3_quants   symmetric, as above but refined by coordinate descent (5 rounds) with
 *                    weights x^2.
 *   make_qkx2/3      scale and min, levels 0..nmax: try nstep+1 inverse scales
 *                    (nmax + rmin + rdelta*is)/(max - min), fit scale and min by weighted least
 *                    squares (min <= 0), keep the lowest weighted error (|d| or d^2). The
 *                    current best min feeds the next candidate's range, as in ggml.
 *   make_qp_quants   the super-block step: positive values (sub-block scales) on 0..nmax,
 *                    9 candidate scales, then coordinate descent.
 * Constants (rmin, rdelta, nstep, weights, sigma2) are ggml's, per format, at the call sites.
 *
 * Reference: ggml/src/ggml-quants.c (make_qx_quants, make_q3_quants, make_qkx2_quants,
 * make_qkx3_quants, make_qp_quants, quantize_row_q{2..6}_K_ref, quantize_row_q{2..6}_K_impl,
 * nearest_int), llama.cpp, MIT. Read for the algorithm; the code here is werk's.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#define GROUP_MAX_EPS 1e-15f

// ---- shared helpers -----------------------------------------------------------------

/* Round to nearest, ties to even, for |f| < 2^22 (ggml's nearest_int): adding 1.5*2^23
 * leaves the rounded integer in the low mantissa bits. */
static inline int nearest(float f) {
    float   v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof(i));
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

float werk_ggml_make_qx_quants(int n, int nmax, const float *x, int8_t *L, const float *qw) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max  = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    // rmse_type 1: weights qw, or x^2 without them
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l   = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i]    = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best  = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0) {
            continue;
        }
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int   l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = qw ? qw[i] : x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++) {
                L[i] = (int8_t)(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
            }
            scale = sumlx / suml2;
            best  = scale * sumlx;
        }
    }
    return scale;
}

/* make_q3_quants with do_rmse: levels -nmax..nmax-1 returned as L + nmax. */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max  = x[i];
        }
    }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l   = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i]    = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w   = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx > 0) {
                float sl2   = suml2 - w * L[i] * L[i];
                int   new_l = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i]  = (int8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) {
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        L[i] = (int8_t)(L[i] + nmax);
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* make_qkx2_quants (weights given, version 2: rounding clamps after nearest) and
 * make_qkx3_quants (weights may be NULL = x^2; rounding clamps the product first) differ
 * only in those two points; `v3` picks. Returns the scale, *the_min = -min >= 0. */
static float make_qkx_quants(int          n,
                             int          nmax,
                             const float *x,
                             const float *weights,
                             uint8_t     *L,
                             float       *the_min,
                             uint8_t     *Laux,
                             float        rmin,
                             float        rdelta,
                             int          nstep,
                             bool         use_mad,
                             bool         v3) {
    float min = x[0], max = x[0];
    float sum_w = weights ? weights[0] : x[0] * x[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min) {
            min = x[i];
        }
        if (x[i] > max) {
            max = x[i];
        }
        float w = weights ? weights[i] : x[i] * x[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) {
        min = 0;
    }
    if (v3 ? max <= min : max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale     = nmax / (max - min);
    float scale      = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i]       = (uint8_t)clampi(nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff       = use_mad ? fabsf(diff) : diff * diff;
        float w    = weights ? weights[i] : x[i] * x[i];
        best_error += w * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale      = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l;
            if (v3) {
                // min is the best fit so far and may sit at or above max: guard the product
                const float v = iscale * (x[i] - min);
                l             = v > 0 ? nearest(v < nmax ? v : (float)nmax) : 0;
            } else {
                l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
            }
            Laux[i] = (uint8_t)l;
            float w = weights ? weights[i] : x[i] * x[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min   = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min   = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * Laux[i] + this_min - x[i];
                diff       = use_mad ? fabsf(diff) : diff * diff;
                float w    = weights ? weights[i] : x[i] * x[i];
                cur_error += w * diff;
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale      = this_scale;
                min        = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

float werk_ggml_make_qkx3_quants(int          n,
                                 int          nmax,
                                 const float *x,
                                 const float *weights,
                                 uint8_t     *L,
                                 float       *the_min,
                                 uint8_t     *Laux,
                                 float        rmin,
                                 float        rdelta,
                                 int          nstep) {
    return make_qkx_quants(n, nmax, x, weights, L, the_min, Laux, rmin, rdelta, nstep, false, true);
}

static float make_qp_quants(int n, int nmax, const float *x, uint8_t *L, const float *quant_weights) {
    float max = 0;
    for (int i = 0; i < n; i++) {
        max = x[i] > max ? x[i] : max;
    }
    if (max < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)nearest(iscale * x[i]);
    }
    float scale    = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * L[i];
        float w    = quant_weights[i];
        best_mse += w * diff * diff;
    }
    for (int is = -4; is <= 4; is++) {
        if (is == 0) {
            continue;
        }
        float iscale_is = (0.1f * is + nmax) / max;
        float scale_is  = 1 / iscale_is;
        float mse       = 0;
        for (int i = 0; i < n; i++) {
            int l      = nearest(iscale_is * x[i]);
            l          = l < nmax ? l : nmax;
            float diff = x[i] - scale_is * l;
            float w    = quant_weights[i];
            mse += w * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale   = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l   = nearest(iscale * x[i]);
        l       = l < nmax ? l : nmax;
        L[i]    = (uint8_t)l;
        float w = quant_weights[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w   = quant_weights[i];
            float slx = sumlx - w * x[i] * L[i];
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = nearest(x[i] * sl2 / slx);
                new_l     = new_l < nmax ? new_l : nmax;
                if (new_l != L[i]) {
                    slx += w * x[i] * new_l;
                    sl2 += w * new_l * new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i]  = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed++;
                    }
                }
            }
        }
        if (!n_changed) {
            break;
        }
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Packs 2-bit levels L[0..256) as q2_K/q3_K qs: byte 32h + l holds the elements
 * 128h + l + 32s at bits 2s. */
static void pack_2bit(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < WERK_QK_K; j += 128) {
        for (int l = 0; l < 32; l++) {
            qs[j / 4 + l] =
                (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
        }
    }
}

// ---- q2_K -----------------------------------------------------------------------------

/* Quantizes one super-block given sub-block levels' final scales: sets qs from L after
 * re-rounding every value with the stored (fp16, 4-bit) scale and min. */
static void q2_k_finish(block_q2_K *b, const float *x, uint8_t *L) {
    const float dd = werk_fp16_to_fp32(b->d), dm = werk_fp16_to_fp32(b->dmin);
    for (int j = 0; j < WERK_QK_K / 16; j++) {
        const float d = dd * (b->scales[j] & 0xF);
        if (!d) {
            continue;
        }
        const float m = dm * (b->scales[j] >> 4);
        for (int ii = 0; ii < 16; ii++) {
            L[16 * j + ii] = (uint8_t)clampi(nearest((x[16 * j + ii] + m) / d), 0, 3);
        }
    }
    pack_2bit(b->qs, L);
}

void werk_q2_k_quantize_ggml(const float *src, void *dst, int64_t n) {
    uint8_t L[WERK_QK_K], Laux[16];
    float   weights[16], mins[WERK_QK_K / 16], scales[WERK_QK_K / 16];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x         = src + i * WERK_QK_K;
        float        max_scale = 0, max_min = 0;
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            for (int l = 0; l < 16; l++) {
                weights[l] = fabsf(x[16 * j + l]);
            }
            scales[j] = make_qkx_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f,
                                        15, true, false);
            max_scale = scales[j] > max_scale ? scales[j] : max_scale;
            max_min   = mins[j] > max_min ? mins[j] : max_min;
        }
        block_q2_K b;
        memset(&b, 0, sizeof(b));
        if (max_scale > 0) {
            float iscale = 15.f / max_scale;
            for (int j = 0; j < WERK_QK_K / 16; j++) {
                b.scales[j] = (uint8_t)nearest(iscale * scales[j]);
            }
            b.d = werk_fp32_to_fp16(max_scale / 15.f);
        } else {
            b.d = werk_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            float iscale = 15.f / max_min;
            for (int j = 0; j < WERK_QK_K / 16; j++) {
                b.scales[j] |= (uint8_t)(nearest(iscale * mins[j]) << 4);
            }
            b.dmin = werk_fp32_to_fp16(max_min / 15.f);
        } else {
            b.dmin = werk_fp32_to_fp16(0.f);
        }
        q2_k_finish(&b, x, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q2_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    uint8_t L[WERK_QK_K], Laux[16], Ls[WERK_QK_K / 16], Lm[WERK_QK_K / 16];
    float   mins[WERK_QK_K / 16], scales[WERK_QK_K / 16], sw[WERK_QK_K / 16], weight[16];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x = src + i * WERK_QK_K;
        memset(sw, 0, sizeof(sw));
        float sumx2 = 0;
        for (int j = 0; j < WERK_QK_K; j++) {
            sumx2 += x[j] * x[j];
        }
        float sigma2 = sumx2 / WERK_QK_K;
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            const float *qw = imatrix + WERK_QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) {
                weight[l] = qw[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            }
            for (int l = 0; l < 16; l++) {
                sw[j] += weight[l];
            }
            scales[j] = make_qkx_quants(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f,
                                        36, false, true);
        }
        float dm = make_qp_quants(WERK_QK_K / 16, 15, scales, Ls, sw);
        float mm = make_qp_quants(WERK_QK_K / 16, 15, mins, Lm, sw);

        block_q2_K b;
        b.d    = werk_fp32_to_fp16(dm);
        b.dmin = werk_fp32_to_fp16(mm);
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            b.scales[j] = (uint8_t)(Ls[j] | (Lm[j] << 4));
        }
        q2_k_finish(&b, x, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

// ---- q3_K -----------------------------------------------------------------------------

/* Stores 6-bit level l (0..63) of sub-block j in the packed q3_K scales. */
static void q3_k_put_scale(uint8_t *scales, int j, int l) {
    if (j < 8) {
        scales[j] = (uint8_t)(l & 0xF);
    } else {
        scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
    }
    scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
}

static void q3_k_finish(block_q3_K *b, const float *x, int8_t *L) {
    const float dd = werk_fp16_to_fp32(b->d);
    for (int j = 0; j < WERK_QK_K / 16; j++) {
        int   lo = j < 8 ? b->scales[j] & 0xF : b->scales[j - 8] >> 4;
        int   sc = (lo | (((b->scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
        float d  = dd * (float)sc;
        if (!d) {
            continue;
        }
        for (int ii = 0; ii < 16; ii++) {
            L[16 * j + ii] = (int8_t)(clampi(nearest(x[16 * j + ii] / d), -4, 3) + 4);
        }
    }
    memset(b->hmask, 0, sizeof(b->hmask));
    // the high bit of element j goes to hmask[j % 32], bit j / 32
    for (int j = 0; j < WERK_QK_K; j++) {
        if (L[j] > 3) {
            b->hmask[j % 32] |= (uint8_t)(1u << (j / 32));
            L[j] = (int8_t)(L[j] - 4);
        }
    }
    pack_2bit(b->qs, (const uint8_t *)L);
}

void werk_q3_k_quantize_ggml(const float *src, void *dst, int64_t n) {
    int8_t L[WERK_QK_K];
    float  scales[WERK_QK_K / 16];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x         = src + i * WERK_QK_K;
        float        max_scale = 0, amax = 0;
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            scales[j]   = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax      = scale;
                max_scale = scales[j];
            }
        }
        block_q3_K b;
        memset(&b, 0, sizeof(b));
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < WERK_QK_K / 16; j++) {
                int8_t l = (int8_t)nearest(iscale * scales[j]);
                q3_k_put_scale(b.scales, j, clampi(l, -32, 31) + 32);
            }
            b.d = werk_fp32_to_fp16(1 / iscale);
        } else {
            b.d = werk_fp32_to_fp16(0.f);
        }
        q3_k_finish(&b, x, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q3_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    int8_t L[WERK_QK_K], Ls[WERK_QK_K / 16];
    float  scales[WERK_QK_K / 16], weight[16], sw[WERK_QK_K / 16];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        const float *x     = src + i * WERK_QK_K;
        float        sumx2 = 0;
        for (int j = 0; j < WERK_QK_K; j++) {
            sumx2 += x[j] * x[j];
        }
        float sigma2 = 2 * sumx2 / WERK_QK_K;
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            const float *qw = imatrix + WERK_QK_K * i + 16 * j;
            for (int l = 0; l < 16; l++) {
                weight[l] = qw[l] * sqrtf(sigma2 + x[16 * j + l] * x[16 * j + l]);
            }
            float sumw = 0;
            for (int l = 0; l < 16; l++) {
                sumw += weight[l];
            }
            sw[j]     = sumw;
            scales[j] = werk_ggml_make_qx_quants(16, 4, x + 16 * j, L + 16 * j, weight);
        }
        block_q3_K b;
        memset(&b, 0, sizeof(b));
        float d_block = werk_ggml_make_qx_quants(WERK_QK_K / 16, 32, scales, Ls, sw);
        for (int j = 0; j < WERK_QK_K / 16; j++) {
            q3_k_put_scale(b.scales, j, Ls[j]);
        }
        b.d = werk_fp32_to_fp16(d_block);
        q3_k_finish(&b, x, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

// ---- q4_K and q5_K ----------------------------------------------------------------------

/* The packed 6-bit scales/mins of q4_K and q5_K (inverse of werk_k4_scale_min). */
void werk_k4_put_scale_min(uint8_t *scales, int j, int ls, int lm) {
    if (j < 4) {
        scales[j]     = (uint8_t)ls;
        scales[j + 4] = (uint8_t)lm;
    } else {
        scales[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
        scales[j - 4] |= (uint8_t)((ls >> 4) << 6);
        scales[j] |= (uint8_t)((lm >> 4) << 6);
    }
}

/* Re-rounds every value to levels 0..nmax with the stored scales (q4_K/q5_K layout). */
static void k4_requantize(
    const uint16_t d16, const uint16_t dmin16, const uint8_t *scales, const float *x, int nmax, uint8_t *L) {
    const float dd = werk_fp16_to_fp32(d16), dm = werk_fp16_to_fp32(dmin16);
    for (int j = 0; j < WERK_QK_K / 32; j++) {
        uint8_t sc, m;
        werk_k4_scale_min(j, scales, &sc, &m);
        const float d = dd * sc;
        if (!d) {
            continue;
        }
        const float dmv = dm * m;
        for (int ii = 0; ii < 32; ii++) {
            L[32 * j + ii] = (uint8_t)clampi(nearest((x[32 * j + ii] + dmv) / d), 0, nmax);
        }
    }
}

/* Shared by q4_K and q5_K (nmax 15 or 31): the sub-block search and 6-bit scale coding of
 * quantize_row_q{4,5}_K_ref. Fills the block's d, dmin, scales and L. */
static void k4_ref_scales(const float *x,
                          int          nmax,
                          float        rmin,
                          float        rdelta,
                          int          nstep,
                          uint16_t    *d16,
                          uint16_t    *dmin16,
                          uint8_t     *packed,
                          uint8_t     *L) {
    uint8_t Laux[32];
    float   weights[32], mins[WERK_QK_K / 32], scales[WERK_QK_K / 32];
    float   max_scale = 0, max_min = 0;
    for (int j = 0; j < WERK_QK_K / 32; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++) {
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        }
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++) {
            weights[l] = av_x + fabsf(x[32 * j + l]);
        }
        scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, rdelta,
                                    nstep, false, false);
        max_scale = scales[j] > max_scale ? scales[j] : max_scale;
        max_min   = mins[j] > max_min ? mins[j] : max_min;
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min   = max_min > 0 ? 63.f / max_min : 0.f;
    memset(packed, 0, WERK_K_SCALE_SIZE);
    for (int j = 0; j < WERK_QK_K / 32; j++) {
        uint8_t ls = (uint8_t)nearest(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest(inv_min * mins[j]);
        werk_k4_put_scale_min(packed, j, ls < 63 ? ls : 63, lm < 63 ? lm : 63);
    }
    *d16    = werk_fp32_to_fp16(max_scale / 63.f);
    *dmin16 = werk_fp32_to_fp16(max_min / 63.f);
    k4_requantize(*d16, *dmin16, packed, x, nmax, L);
}

/* quantize_row_q{4,5}_K_impl with importance weights. */
static void k4_imat_scales(const float *x,
                           const float *qw_block,
                           int          nmax,
                           uint16_t    *d16,
                           uint16_t    *dmin16,
                           uint8_t     *packed,
                           uint8_t     *L) {
    uint8_t Laux[32], Ls[WERK_QK_K / 32], Lm[WERK_QK_K / 32];
    float   weights[32], sw[WERK_QK_K / 32], mins[WERK_QK_K / 32], scales[WERK_QK_K / 32];
    float   sum_x2 = 0;
    for (int l = 0; l < WERK_QK_K; l++) {
        sum_x2 += x[l] * x[l];
    }
    float sigma2 = 2 * sum_x2 / WERK_QK_K;
    for (int j = 0; j < WERK_QK_K / 32; j++) {
        const float *qw = qw_block + 32 * j;
        for (int l = 0; l < 32; l++) {
            weights[l] = qw[l] * sqrtf(sigma2 + x[32 * j + l] * x[32 * j + l]);
        }
        float sumw = 0;
        for (int l = 0; l < 32; l++) {
            sumw += weights[l];
        }
        sw[j]     = sumw;
        scales[j] = make_qkx_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f,
                                    36, false, true);
    }
    float d_block = make_qp_quants(WERK_QK_K / 32, 63, scales, Ls, sw);
    float m_block = make_qp_quants(WERK_QK_K / 32, 63, mins, Lm, sw);
    memset(packed, 0, WERK_K_SCALE_SIZE);
    for (int j = 0; j < WERK_QK_K / 32; j++) {
        werk_k4_put_scale_min(packed, j, Ls[j] < 63 ? Ls[j] : 63, Lm[j] < 63 ? Lm[j] : 63);
    }
    *d16    = werk_fp32_to_fp16(d_block);
    *dmin16 = werk_fp32_to_fp16(m_block);
    k4_requantize(*d16, *dmin16, packed, x, nmax, L);
}

void werk_k4_pack_q4(uint8_t *qs, const uint8_t *L) {
    for (int j = 0; j < WERK_QK_K; j += 64) {
        for (int l = 0; l < 32; l++) {
            qs[j / 2 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

void werk_k4_pack_q5(uint8_t *qh, uint8_t *qs, const uint8_t *L) {
    memset(qh, 0, WERK_QK_K / 8);
    for (int p = 0; p < WERK_QK_K / 64; p++) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[64 * p + j], l2 = L[64 * p + j + 32];
            qh[j] |= (uint8_t)(((l1 >> 4) << (2 * p)) | ((l2 >> 4) << (2 * p + 1)));
            qs[32 * p + j] = (uint8_t)((l1 & 0xF) | ((l2 & 0xF) << 4));
        }
    }
}

void werk_q4_k_quantize_ggml(const float *src, void *dst, int64_t n) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        k4_ref_scales(src + i * WERK_QK_K, 15, -1.f, 0.1f, 20, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q4(b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q4_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        k4_imat_scales(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, 15, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q4(b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q5_k_quantize_ggml(const float *src, void *dst, int64_t n) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q5_K b;
        k4_ref_scales(src + i * WERK_QK_K, 31, -0.5f, 0.1f, 15, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q5(b.qh, b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q5_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q5_K b;
        k4_imat_scales(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, 31, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q5(b.qh, b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

// ---- q6_K -----------------------------------------------------------------------------

void werk_q6_k_pack(block_q6_K *b, const int8_t *L) {
    for (int h = 0; h < 2; h++) {
        const int8_t *Lh = L + 128 * h;
        uint8_t      *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            const int q1 = Lh[l], q2 = Lh[l + 32], q3 = Lh[l + 64], q4 = Lh[l + 96];
            ql[l]      = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
            ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
            qh[l]      = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
        }
    }
}

static void q6_k_ggml_block(const float *x, const float *qw_block, block_q6_K *b) {
    int8_t L[WERK_QK_K];
    float  scales[WERK_QK_K / 16];
    float  max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < WERK_QK_K / 16; ib++) {
        const float scale =
            werk_ggml_make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib, qw_block ? qw_block + 16 * ib : NULL);
        scales[ib] = scale;
        if (fabsf(scale) > max_abs_scale) {
            max_abs_scale = fabsf(scale);
            max_scale     = scale;
        }
    }
    memset(b, 0, sizeof(*b));
    if (max_abs_scale < GROUP_MAX_EPS) {
        return;
    }
    float iscale = -128.f / max_scale;
    b->d         = werk_fp32_to_fp16(1 / iscale);
    for (int ib = 0; ib < WERK_QK_K / 16; ib++) {
        int v         = nearest(iscale * scales[ib]);
        b->scales[ib] = (int8_t)(v < 127 ? v : 127);
    }
    const float dd = werk_fp16_to_fp32(b->d);
    for (int j = 0; j < WERK_QK_K / 16; j++) {
        float d = dd * b->scales[j];
        if (!d) {
            continue;
        }
        for (int ii = 0; ii < 16; ii++) {
            L[16 * j + ii] = (int8_t)(clampi(nearest(x[16 * j + ii] / d), -32, 31) + 32);
        }
    }
    werk_q6_k_pack(b, L);
}

void werk_q6_k_quantize_ggml(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        q6_k_ggml_block(src + i * WERK_QK_K, NULL, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q6_k_quantize_ggml_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        q6_k_ggml_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
