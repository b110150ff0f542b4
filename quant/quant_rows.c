/* quant/quant_rows.c - whole-tensor quantization entry point and row validation
 *
 * werk_quantize_rows hands a tensor's rows to the per-format quantizers: the importance-
 * weighted ones (werk_<fmt>_quantize_imat, one row at a time: they use row statistics)
 * when an imatrix is given and the format has one, werk_quantize_row otherwise.
 * werk_validate_row is ggml's ggml_validate_row_data for the types werk writes: every
 * block's scale fields (and every value of a float type) must be finite.
 *
 * Reference: ggml/src/ggml-quants.c (quantize_q4_0 ... quantize_q6_K: the imatrix is used
 * only when given; ggml_validate_row_data), MIT.
 */
#include "quant/quant.h"
#include "quant/quant_int.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef void (*quant_imat_fn)(const float *src, void *dst, int64_t n, const float *imatrix);

static const quant_imat_fn imat_quant[WERK_DTYPE_COUNT] = {
    [WERK_DTYPE_Q4_0] = werk_q4_0_quantize_imat, [WERK_DTYPE_Q4_1] = werk_q4_1_quantize_imat,
    [WERK_DTYPE_Q5_0] = werk_q5_0_quantize_imat, [WERK_DTYPE_Q5_1] = werk_q5_1_quantize_imat,
    [WERK_DTYPE_Q2_K] = werk_q2_k_quantize_imat, [WERK_DTYPE_Q3_K] = werk_q3_k_quantize_imat,
    [WERK_DTYPE_Q4_K] = werk_q4_k_quantize_imat, [WERK_DTYPE_Q5_K] = werk_q5_k_quantize_imat,
    [WERK_DTYPE_Q6_K] = werk_q6_k_quantize_imat,
};

bool werk_dtype_uses_imatrix(werk_dtype t) {
    return (unsigned)t < (unsigned)WERK_DTYPE_COUNT && imat_quant[t] != NULL;
}

void werk_quantize_rows(
    werk_dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row, const float *imatrix) {
    WERK_ASSERT(werk_dtype_can_quantize(t));
    const werk_dtype_info *ti = werk_dtype_get(t);
    WERK_ASSERT(n_rows >= 0 && n_per_row >= 0 && n_per_row % ti->block_size == 0);
    const size_t row_bytes = (size_t)(n_per_row / ti->block_size) * ti->type_size;
    uint8_t     *out       = dst;
    // Types that are also an activation format (Q8_0, Q8_1, Q8_K, the floats) have a SIMD
    // quantizer in the dispatch table that is bit-identical to the reference
    // (tests/quant/test_dot_simd.c): use it, the bytes on disk do not change.
    const werk_qfns *fns  = werk_qfns_get(t);
    werk_quantize_fn fast = fns->vec_dot_type == t ? fns->quantize_act : NULL;
    for (int64_t r = 0; r < n_rows; r++) {
        const float *x = src + r * n_per_row;
        if (imatrix && imat_quant[t] && n_per_row > 0) {
            imat_quant[t](x, out + (size_t)r * row_bytes, n_per_row, imatrix);
        } else if (fast) {
            fast(x, out + (size_t)r * row_bytes, n_per_row);
        } else {
            werk_quantize_row(t, x, out + (size_t)r * row_bytes, n_per_row);
        }
    }
}

// ---- validation ---------------------------------------------------------------------------

static bool fp16_finite(uint16_t h) { return (h & 0x7c00u) != 0x7c00u; }

static uint16_t load_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Checks the fp16 fields at byte offsets off[0..n_off) of every block. */
static bool
blocks_fp16_finite(const uint8_t *p, int64_t n_blocks, size_t type_size, const size_t *off, int n_off) {
    for (int64_t i = 0; i < n_blocks; i++) {
        const uint8_t *b = p + (size_t)i * type_size;
        for (int k = 0; k < n_off; k++) {
            if (!fp16_finite(load_u16(b + off[k]))) {
                return false;
            }
        }
    }
    return true;
}

bool werk_validate_row(werk_dtype t, const void *data, int64_t n) {
    const werk_dtype_info *ti = werk_dtype_get(t);
    WERK_ASSERT(n >= 0 && n % ti->block_size == 0);
    const uint8_t *p        = data;
    const int64_t  n_blocks = n / ti->block_size;
    switch (t) {
    case WERK_DTYPE_F32:
        for (int64_t i = 0; i < n; i++) {
            float v;
            memcpy(&v, p + 4 * i, 4);
            if (!isfinite(v)) {
                return false;
            }
        }
        return true;
    case WERK_DTYPE_F64:
        for (int64_t i = 0; i < n; i++) {
            double v;
            memcpy(&v, p + 8 * i, 8);
            if (!isfinite(v)) {
                return false;
            }
        }
        return true;
    case WERK_DTYPE_F16:
        for (int64_t i = 0; i < n; i++) {
            if (!fp16_finite(load_u16(p + 2 * i))) {
                return false;
            }
        }
        return true;
    case WERK_DTYPE_BF16:
        for (int64_t i = 0; i < n; i++) {
            if ((load_u16(p + 2 * i) & 0x7f80u) == 0x7f80u) {
                return false;
            }
        }
        return true;
    case WERK_DTYPE_Q4_0:
    case WERK_DTYPE_Q5_0:
    case WERK_DTYPE_Q8_0: {
        const size_t off[] = {0}; // d
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 1);
    }
    case WERK_DTYPE_Q4_1:
    case WERK_DTYPE_Q5_1:
    case WERK_DTYPE_Q8_1: {
        const size_t off[] = {0, 2}; // d, m (q8_1: d, s)
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 2);
    }
    case WERK_DTYPE_Q2_K: {
        const size_t off[] = {offsetof(block_q2_K, d), offsetof(block_q2_K, dmin)};
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 2);
    }
    case WERK_DTYPE_Q3_K: {
        const size_t off[] = {offsetof(block_q3_K, d)};
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 1);
    }
    case WERK_DTYPE_Q4_K:
    case WERK_DTYPE_Q5_K: {
        const size_t off[] = {0, 2}; // d, dmin
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 2);
    }
    case WERK_DTYPE_Q6_K: {
        const size_t off[] = {offsetof(block_q6_K, d)};
        return blocks_fp16_finite(p, n_blocks, ti->type_size, off, 1);
    }
    case WERK_DTYPE_Q8_K:
        for (int64_t i = 0; i < n_blocks; i++) {
            float d;
            memcpy(&d, p + (size_t)i * ti->type_size + offsetof(block_q8_K, d), sizeof(d));
            if (!isfinite(d)) {
                return false;
            }
        }
        return true;
    default: // integer and bool types hold no scales
        return true;
    }
}

bool werk_dtype_validate_row(werk_dtype t, const void *data, int64_t n) {
    return werk_validate_row(t, data, n);
}
