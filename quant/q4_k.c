/* quant/q4_k.c - Q4_K super-blocks (4.5 bpw): 256 4-bit quants in 8 groups of 32
 *
 * Group g has a 6-bit scale sc and a 6-bit min m (werk_k4_scale_min, 12 packed bytes:
 * bytes 0-3 low 6 bits of sc[0..3], bytes 4-7 low 6 bits of m[0..3], bytes 8-11 the
 * low/high nibbles of sc[4..7]/m[4..7], whose 2 high bits sit in the top bits of bytes
 * 0-3 (sc) and 4-7 (m)). value = (d * sc) * q - (dmin * m), each step a rounded float32
 * operation, as ggml's dequantize_row_q4_K and gguf-py's Q4_K.dequantize_blocks.
 *
 * Element order: pair p = 0..3 covers elements 64p .. 64p+63 from qs[32p .. 32p+31]:
 * low nibbles are group 2p (elements 64p + l), high nibbles group 2p+1 (64p + 32 + l).
 *
 * Quantizers. werk_q4_k_quantize_ggml(_imat) (quant/kquant_ggml.c) are ggml's. werk's own
 * (werk_q4_k_quantize_ref / _imat, and Q5_K's through werk_k4_quantize_block) fit each
 * 32-value group with scale and min by the one-pass candidate search of
 * quant/kquant_search.c (16 candidates over ggml's range, ggml's weights av_x + |x|, or
 * imatrix * sqrt(sigma2 + x^2)), code the 6-bit scales and mins against fp16
 * super-scales by weighted least squares, choose per group the codes just below / above
 * the fit with the lowest measured error (plain, or imatrix-weighted), and re-round
 * every value against the stored numbers.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q4_K, get_scale_min_k4), gguf-py
 * gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q4_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d    = werk_fp16_to_fp32(b.d);
        const float dmin = werk_fp16_to_fp32(b.dmin);
        float      *y    = dst + i * WERK_QK_K;
        for (int p = 0; p < 4; p++) {
            uint8_t sc, m;
            werk_k4_scale_min(2 * p, b.scales, &sc, &m);
            const float d1 = d * (float)sc, m1 = dmin * (float)m;
            werk_k4_scale_min(2 * p + 1, b.scales, &sc, &m);
            const float    d2 = d * (float)sc, m2 = dmin * (float)m;
            const uint8_t *q = b.qs + 32 * p;
            for (int l = 0; l < 32; l++) {
                *y++ = d1 * (float)(q[l] & 0xF) - m1;
            }
            for (int l = 0; l < 32; l++) {
                *y++ = d2 * (float)(q[l] >> 4) - m2;
            }
        }
    }
}

// ---- werk's quantizer (shared with quant/q5_k.c) ----------------------------------------

/* Candidate level counts per sub-block (see quant/kquant_search.c), ggml's ranges:
 * nmax + [-1, 1] for Q4_K, nmax + [-0.5, 1] for Q5_K, nmax + [-0.9, 0.9] with an imatrix. */
static void k4_steps(int nmax, bool imat, float *steps, int nc) {
    float lo = imat ? -0.9f : (nmax == 15 ? -1.0f : -0.5f);
    float hi = imat ? 0.9f : 1.0f;
    for (int k = 0; k < nc; k++) {
        steps[k] = (float)nmax + lo + (hi - lo) * (float)k / (float)(nc - 1);
    }
}

void werk_k4_quantize_block(
    const float *x, const float *qw, int nmax, uint16_t *d16, uint16_t *dmin16, uint8_t *scales, uint8_t *L) {
    enum { NC = KQ_NC };
    float        steps[NC], w[32], sc[8], mn[8], ss[8], sm[8];
    werk_kq_asym fit;
    k4_steps(nmax, qw != NULL, steps, NC);
    float sigma2 = 0;
    if (qw) {
        float p[8] = {0};
        for (int i = 0; i < WERK_QK_K; i += 8) {
            for (int k = 0; k < 8; k++) {
                p[k] += x[i + k] * x[i + k];
            }
        }
        sigma2 = 2 * (((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]))) / WERK_QK_K;
    }
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        if (qw) {
            for (int l = 0; l < 32; l++) {
                w[l] = qw[32 * j + l] * sqrtf(sigma2 + xs[l] * xs[l]);
            }
        } else {
            float p[8] = {0};
            for (int l = 0; l < 32; l += 8) {
                for (int k = 0; k < 8; k++) {
                    p[k] += xs[l + k] * xs[l + k];
                }
            }
            float av_x = sqrtf((((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]))) / 32);
            for (int l = 0; l < 32; l++) {
                w[l] = av_x + fabsf(xs[l]);
            }
        }
        werk_kq_fit_asym32(xs, w, qw ? qw + 32 * j : NULL, nmax, steps, NC, &fit);
        sc[j] = fit.scale;
        mn[j] = fit.min;
        ss[j] = fit.sens_s;
        sm[j] = fit.sens_m;
    }
    uint8_t ls[8], lm[8];
    *d16           = werk_kq_code_unsigned(sc, ss, 8, 63, ls);
    *dmin16        = werk_kq_code_unsigned(mn, sm, 8, 63, lm);
    const float dd = werk_fp16_to_fp32(*d16), dm = werk_fp16_to_fp32(*dmin16);
    werk_kq_refine_codes32(x, qw, 8, nmax, 63, sc, mn, dd, dm, ls, lm);
    memset(scales, 0, WERK_K_SCALE_SIZE);
    for (int j = 0; j < 8; j++) {
        werk_k4_put_scale_min(scales, j, ls[j], lm[j]);
    }
    for (int j = 0; j < 8; j++) {
        const float d = dd * (float)ls[j], m = dm * (float)lm[j];
        const float id = d > 0 ? 1.0f / d : 0.0f;
        for (int l = 0; l < 32; l++) {
            int32_t q     = werk_kq_level((x[32 * j + l] + m) * id);
            L[32 * j + l] = (uint8_t)(q < 0 ? 0 : (q > nmax ? nmax : q));
        }
    }
}

void werk_q4_k_quantize_ref(const float *src, void *dst, int64_t n) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        werk_k4_quantize_block(src + i * WERK_QK_K, NULL, 15, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q4(b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q4_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    uint8_t L[WERK_QK_K];
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q4_K b;
        werk_k4_quantize_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, 15, &b.d, &b.dmin, b.scales, L);
        werk_k4_pack_q4(b.qs, L);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
