/* quant/q2_k.c - Q2_K super-blocks (2.625 bpw): 256 2-bit quants in 16 groups of 16
 *
 * Each group g has a 4-bit scale (scales[g] & 15) and a 4-bit min (scales[g] >> 4);
 * value = (d * scale) * q - (dmin * min), every step a rounded float32 operation as in
 * ggml's dequantize_row_q2_K and gguf-py's Q2_K.dequantize_blocks.
 *
 * Element order: the block is two halves of 128 elements; half h reads the 32 bytes
 * qs[32h .. 32h+31]. Within a half, shift s = 0, 2, 4, 6 selects 32 consecutive
 * elements ((qs[32h + l] >> s) & 3 for l = 0..31), and each run of 32 is two groups of
 * 16: g = 8h + 2*(s/2) + (l >= 16). So element e = 128h + 32*(s/2) + l.
 *
 * Quantizers. werk_q2_k_quantize_ggml(_imat) (quant/kquant_ggml.c) are ggml's. werk's own
 * (werk_q2_k_quantize_ref / _imat, below) fit every 16-value group with scale and min
 * by the one-pass candidate search of quant/kquant_search.c (16 candidates over ggml's
 * range nmax + [-0.5, 1], weights |x| as ggml but squared error; with an imatrix
 * imatrix * sqrt(sigma2 + x^2) over nmax + [-0.9, 0.9]), code the 4-bit scales and mins
 * against fp16 super-scales by weighted least squares, pick for each group the scale
 * and min codes just below / above the fit that give the lowest measured error, and
 * re-round every value against the stored numbers.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q2_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q2_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q2_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d    = werk_fp16_to_fp32(b.d);
        const float dmin = werk_fp16_to_fp32(b.dmin);
        float      *y    = dst + i * WERK_QK_K;
        int         g    = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2) {
                for (int k = 0; k < 2; k++, g++) {
                    const float dl = d * (float)(b.scales[g] & 0xF);
                    const float ml = dmin * (float)(b.scales[g] >> 4);
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        *y++ = dl * (float)((q[l] >> shift) & 3) - ml;
                    }
                }
            }
        }
    }
}

// ---- werk's quantizer ---------------------------------------------------------------------

static void q2_k_block(const float *x, const float *qw, block_q2_K *b) {
    enum { NC = KQ_NC };
    float        steps[NC], w[16], sc[16], mn[16], ss[16], sm[16];
    werk_kq_asym fit;
    for (int k = 0; k < NC; k++) { // ggml's ranges: 3 + [-0.5, 1], with an imatrix 3 + [-0.9, 0.9]
        const float t = (float)k / (float)(NC - 1);
        steps[k]      = qw ? 2.1f + 1.8f * t : 2.5f + 1.5f * t;
    }
    float sigma2 = 0;
    if (qw) {
        float p[8] = {0};
        for (int i = 0; i < WERK_QK_K; i += 8) {
            for (int k = 0; k < 8; k++) {
                p[k] += x[i + k] * x[i + k];
            }
        }
        sigma2 = (((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]))) / WERK_QK_K;
    }
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        for (int l = 0; l < 16; l++) {
            w[l] = qw ? qw[16 * j + l] * sqrtf(sigma2 + xs[l] * xs[l]) : fabsf(xs[l]);
        }
        werk_kq_fit_asym16(xs, w, qw ? qw + 16 * j : NULL, 3, steps, NC, &fit);
        sc[j] = fit.scale;
        mn[j] = fit.min;
        ss[j] = fit.sens_s;
        sm[j] = fit.sens_m;
    }
    uint8_t ls[16], lm[16];
    b->d    = werk_kq_code_unsigned(sc, ss, 16, 15, ls);
    b->dmin = werk_kq_code_unsigned(mn, sm, 16, 15, lm);
    uint8_t     L[WERK_QK_K];
    const float dd = werk_fp16_to_fp32(b->d), dm = werk_fp16_to_fp32(b->dmin);
    werk_kq_refine_codes16(x, qw, 16, 3, 15, sc, mn, dd, dm, ls, lm);
    for (int j = 0; j < 16; j++) {
        b->scales[j]  = (uint8_t)(ls[j] | (lm[j] << 4));
        const float d = dd * (float)ls[j], m = dm * (float)lm[j], id = d > 0 ? 1.0f / d : 0.0f;
        for (int l = 0; l < 16; l++) {
            int32_t q     = werk_kq_level((x[16 * j + l] + m) * id);
            L[16 * j + l] = (uint8_t)(q < 0 ? 0 : (q > 3 ? 3 : q));
        }
    }
    for (int h = 0; h < WERK_QK_K; h += 128) {
        for (int l = 0; l < 32; l++) {
            b->qs[h / 4 + l] =
                (uint8_t)(L[h + l] | (L[h + l + 32] << 2) | (L[h + l + 64] << 4) | (L[h + l + 96] << 6));
        }
    }
}

void werk_q2_k_quantize_ref(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q2_K b;
        q2_k_block(src + i * WERK_QK_K, NULL, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q2_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q2_K b;
        q2_k_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
