/* quant/q3_k.c - Q3_K super-blocks (3.4375 bpw): 256 3-bit quants in 16 groups of 16
 *
 * value = (d * (scale - 32)) * q, q = ((qs >> shift) & 3) - (hmask bit set ? 0 : 4),
 * so q is in -4..3. Element order as Q2_K: element e = 128h + 32*(shift/2) + l reads
 * (qs[32h + l] >> shift) & 3 and bit e/32 of hmask[l] (l = 0..31), group g = e / 16.
 *
 * The 16 6-bit scales are packed in 12 bytes b[0..11]:
 *   low 4 bits of scale g:  g < 8 ? b[g] & 15 : b[g - 8] >> 4
 *   high 2 bits of scale g: (b[8 + g % 4] >> (2 * (g / 4))) & 3
 * Matches ggml's dequantize_row_q3_K (which unpacks with 32-bit masks) and gguf-py's
 * Q3_K.dequantize_blocks bit for bit.
 *
 * Quantizers. werk_q3_k_quantize_ggml(_imat) (quant/kquant_ggml.c) are ggml's. werk's own
 * (werk_q3_k_quantize_ref / _imat) search all 16 groups at once (werk_kq_fit_sym_x16: 3
 * candidate scales, weights sigma + |x|; with an imatrix 4 candidates weighted by it),
 * code the 6-bit signed scales against an fp16 super-scale by weighted least squares
 * (werk_kq_code_signed) and re-round every value against the stored scales.
 *
 * Reference: ggml/src/ggml-quants.c (dequantize_row_q3_K), gguf-py gguf/quants.py, MIT.
 */
#include "quant/quant_int.h"

#include <math.h>
#include <string.h>

static int q3_k_scale(const uint8_t *b, int g) {
    int lo = g < 8 ? (b[g] & 0xF) : (b[g - 8] >> 4);
    int hi = (b[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (lo | hi << 4) - 32;
}

void werk_q3_k_dequantize_ref(const void *src, float *dst, int64_t n) {
    const uint8_t *in = src;
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q3_K b;
        memcpy(&b, in + (size_t)i * sizeof(b), sizeof(b));
        const float d = werk_fp16_to_fp32(b.d);
        float      *y = dst + i * WERK_QK_K;
        int         g = 0;
        for (int h = 0; h < 2; h++) {
            const uint8_t *q = b.qs + 32 * h;
            for (int shift = 0; shift < 8; shift += 2) {
                const uint8_t m = (uint8_t)(1u << (4 * h + shift / 2)); // hmask bit of these 32
                for (int k = 0; k < 2; k++, g++) {
                    const float dl = d * (float)q3_k_scale(b.scales, g);
                    for (int l = 16 * k; l < 16 * k + 16; l++) {
                        int qv = ((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4);
                        *y++   = dl * (float)qv;
                    }
                }
            }
        }
    }
}

// ---- werk's quantizer ---------------------------------------------------------------------

/* Sub-block search: the 16 sub-blocks together (werk_kq_fit_sym_x16), 3 candidates mapping
 * the largest |x| of a sub-block to -3.25, -4, -4.75 with weights sigma + |x| (sigma^2 =
 * twice the super-block's mean square), or 4 candidates (-3 .. -5) with the imatrix as
 * weights. Then the 6-bit signed scales are coded (werk_kq_code_signed)
 * and every value re-rounded against the stored scales. */
static void q3_k_block(const float *x, const float *qw, block_q3_K *b) {
    static const float steps3[3] = {3.25f, 4.0f, 4.75f},
                       steps4[4] = {3.0f, 3.0f + 2.0f / 3, 3.0f + 4.0f / 3, 5.0f};
    float sc[16], ss[16], sigma = 0;
    if (!qw) {
        float p[8] = {0};
        for (int i = 0; i < WERK_QK_K; i += 8) {
            for (int k = 0; k < 8; k++) {
                p[k] += x[i + k] * x[i + k];
            }
        }
        sigma = sqrtf(2 * (((p[0] + p[4]) + (p[2] + p[6])) + ((p[1] + p[5]) + (p[3] + p[7]))) / WERK_QK_K);
    }
    werk_kq_fit_sym_x16(x, qw, sigma, 4, qw ? steps4 : steps3, qw ? 4 : 3, sc, ss);
    int8_t ls[16];
    memset(b, 0, sizeof(*b));
    b->d = werk_kq_code_signed(sc, ss, 16, 32, ls);
    for (int j = 0; j < 16; j++) {
        int l = ls[j] + 32;
        if (j < 8) {
            b->scales[j] = (uint8_t)(l & 0xF);
        } else {
            b->scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
        }
        b->scales[j % 4 + 8] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
    }
    int32_t     L[WERK_QK_K];
    const float dd = werk_fp16_to_fp32(b->d);
    for (int j = 0; j < 16; j++) {
        const float d = dd * (float)ls[j], id = d != 0 ? 1.0f / d : 0.0f;
        for (int l = 0; l < 16; l++) {
            int32_t q     = werk_kq_level(x[16 * j + l] * id);
            q             = q < -4 ? -4 : (q > 3 ? 3 : q);
            L[16 * j + l] = q + 4;
        }
    }
    // high bit of element e -> hmask[e % 32] bit e / 32; low 2 bits -> qs
    int32_t hm[32] = {0};
    for (int k = 0; k < 8; k++) {
        for (int l = 0; l < 32; l++) {
            hm[l] |= (L[32 * k + l] >> 2) << k;
        }
    }
    for (int l = 0; l < 32; l++) {
        b->hmask[l] = (uint8_t)hm[l];
    }
    for (int h = 0; h < WERK_QK_K; h += 128) {
        for (int l = 0; l < 32; l++) {
            b->qs[h / 4 + l] = (uint8_t)((L[h + l] & 3) | ((L[h + l + 32] & 3) << 2) |
                                         ((L[h + l + 64] & 3) << 4) | ((L[h + l + 96] & 3) << 6));
        }
    }
}

void werk_q3_k_quantize_ref(const float *src, void *dst, int64_t n) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q3_K b;
        q3_k_block(src + i * WERK_QK_K, NULL, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}

void werk_q3_k_quantize_imat(const float *src, void *dst, int64_t n, const float *imatrix) {
    for (int64_t i = 0; i < n / WERK_QK_K; i++) {
        block_q3_K b;
        q3_k_block(src + i * WERK_QK_K, imatrix + i * WERK_QK_K, &b);
        memcpy((uint8_t *)dst + (size_t)i * sizeof(b), &b, sizeof(b));
    }
}
