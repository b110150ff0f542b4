/* quant/q6_k.c - Q6_K super-blocks (6.5625 bpw): 256 6-bit quants in 16 groups of 16
 *
 * value = (d * scales[g]) * (q - 32), scales int8, q in 0..63. Each half h of 128
 * elements reads ql[64h .. 64h+63], qh[32h .. 32h+31] and scales[8h .. 8h+7]; element
 * 128h + 32r + l (r = 0..3, l = 0..31) takes
 *   low 4 bits:  (ql[64h + 32*(r & 1) + l] >> (4 * (r >> 1))) & 15
 *   high 2 bits: (qh[32h + l] >> 2r) & 3
 *   scale:       scales[8h + 2r + l/16]
 * Matches ggml's dequantize_row_q6_K and gguf-py's Q6_K.dequantize_blocks bit for bit.
 *
 * Quantizers. werk_q6_k_quantize_ggml(_imat) (quant/kquant_ggml.c) are ggml's. werk's own
 * (werk_q6_k_quantize_ref / _imat) fit each 16-value group with the candidate search of
 * quant/kquant_search.c (8 candidates over ggml's range 32 + [-0.9, 0.9] and one Lloyd
 * round; weights sigma + |x|, or the imatrix as ggml), code the int8 scales against an
 * fp16 super-scale by weighted least squares and re-round every value.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q6_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

void werk_q6_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b.ql + 64 * h;
            const uint8_t *qh = b.qh + 32 * h;
            const int8_t  *sc = b.scales + 8 * h;
            float         *y  = dst + i * WERK_QK_K + 128 * h;
            for (int r = 0; r < 4; r++) {
                const uint8_t *lo    = ql + 32 * (r & 1);
                const int      shift = (r >> 1) * 4;
                for (int l = 0; l < 32; l++) {
                    int q         = ((lo[l] >> shift) & 0xF) | ((qh[l] >> (2 * r)) & 3) << 4;
                    y[32 * r + l] = d * (float)sc[2 * r + l / 16] * (float)(q - 32);
                }
            }
        }
    }
}

// ---- werk's quantizer ---------------------------------------------------------------------

/* Sub-block search (quant/kquant_search.c): 8 candidates mapping the largest |x| to
 * -(32 + [-0.9, 0.9]) (ggml's range), weights sigma + |x| (sigma^2 = twice the
 * super-block's mean square; ggml's Q4_K form) or, with an imatrix, the imatrix alone as
 * ggml's quantize_row_q6_K_impl. Then the int8 scales are coded (werk_kq_code_signed) and
 * every value re-rounded against the stored scales. */
static void q6_k_block(const float *x, const float *qw, block_q6_K *b) {
    enum { NC = 8 };
    float       steps[NC], w[16], sc[16], ss[16];
    werk_kq_sym fit;
    for (int k = 0; k < NC; k++) {
        steps[k] = 31.1f + 1.8f * (float)k / (float)(NC - 1);
    }
    float p[8] = {0};
    for (int i = 0; i < WERK_QK_K; i += 8) {
        for (int k = 0; k < 8; k++) {
            p[k] += x[i + k] * x[i + k];
        }
    }
    const float sigma =
        sqrtf(2 * (((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]))) / WERK_QK_K);
    for (int j = 0; j < 16; j++) {
        const float *xs = x + 16 * j;
        if (qw) {
            memcpy(w, qw + 16 * j, sizeof(w));
        } else {
            for (int l = 0; l < 16; l++) {
                w[l] = sigma + fabsf(xs[l]);
            }
        }
        werk_kq_fit_sym16(xs, w, qw ? qw + 16 * j : NULL, 32, steps, NC, &fit);
        sc[j] = fit.scale;
        ss[j] = fit.sens;
    }
    memset(b, 0, sizeof(*b));
    b->d = werk_kq_code_signed(sc, ss, 16, 128, b->scales);
    int32_t     L[WERK_QK_K];
    const float dd = werk_fp16_to_fp32(b->d);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (float)b->scales[j], id = d != 0 ? 1.0f / d : 0.0f;
        for (int l = 0; l < 16; l++) {
            int32_t q     = werk_kq_level(x[16 * j + l] * id);
            q             = q < -32 ? -32 : (q > 31 ? 31 : q);
            L[16 * j + l] = q + 32;
        }
    }
    for (int h = 0; h < 2; h++) {
        const int32_t *Lh = L + 128 * h;
        uint8_t       *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l]      = (uint8_t)((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
            qh[l]      = (uint8_t)((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                              ((Lh[l + 96] >> 4) << 6));
        }
    }
}

void werk_q6_k_quantize_ref(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        q6_k_block(src + i * WERK_QK_K, NULL, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q6_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q6_K b;
        q6_k_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
