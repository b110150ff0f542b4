/* tests/quant/test_kquant.c - quantizers: error budgets, werk vs ggml's reference, edge cases
 *
 * For every block type werk quantizes: the round-trip error of the default quantizer on
 * Gaussian rows stays within a named budget; for the K-quants werk's quantizer is at least
 * as accurate as ggml's reference algorithm (quant/kquant_ggml.c, itself checked bit for
 * bit against llama.cpp by test_kquant_ggml_oracle.c) on Gaussian and heavy-tailed rows,
 * with and without importance weights, comparing the TOTAL squared error over all rows
 * (weighted by the imatrix when one is used); quantizing is deterministic; Q8_K's bsums and
 * Q8_1's s are right; werk_quantize_rows routes imatrix rows; validation catches NaN/inf.
 */
#include "quant/quant.h"
#include "quant/quant_int.h"
#include "werk_test.h" // first: it defines _GNU_SOURCE

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_ROWS 48
#define N_COLS 1024

/* Relative RMSE budgets (rmse / rms of the data) on N(0,1) rows, werk's default quantizer.
 * Each is about 15% above what werk measures (in parentheses), so a real regression trips
 * it while a change of rounding does not; ggml's test-quantize-fns has the same kind of per-bit-width
 * budget (MAX_QUANTIZATION_TOTAL_ERROR_*). */
typedef struct budget {
    werk_dtype type;
    double     max_rel_rmse;
} budget;

static const budget budgets[] = {
    {WERK_DTYPE_Q2_K, 0.32},   // 2.625 bpw: 4 levels per 16 values (measured 0.274)
    {WERK_DTYPE_Q3_K, 0.17},   // 3.4375 bpw (0.146)
    {WERK_DTYPE_Q4_K, 0.082},  // 4.5 bpw (0.0706)
    {WERK_DTYPE_Q5_K, 0.041},  // 5.5 bpw (0.0353)
    {WERK_DTYPE_Q6_K, 0.020},  // 6.5625 bpw (0.0173)
    {WERK_DTYPE_Q4_0, 0.099},  // 4.5 bpw, no min, amax scale (0.0856)
    {WERK_DTYPE_Q4_1, 0.090},  // 5.0 bpw, min/max range (0.0781)
    {WERK_DTYPE_Q5_0, 0.049},  // 5.5 bpw (0.0426)
    {WERK_DTYPE_Q5_1, 0.044},  // 6.0 bpw (0.0378)
    {WERK_DTYPE_Q8_0, 0.0062}, // 8.5 bpw (0.00532)
    {WERK_DTYPE_Q8_1, 0.0062}, // Q8_0's rounding (0.00532)
    {WERK_DTYPE_Q8_K, 0.0080}, // 8 bits, one scale per 256 values (0.00691)
};

// ---- data -----------------------------------------------------------------------------

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

/* Student-t with 3 degrees of freedom: rare large outliers, as in real weights. */
static double heavy(void) {
    double chi2 = 0;
    for (int k = 0; k < 3; k++) {
        double g = normal();
        chi2 += g * g;
    }
    return normal() / sqrt(chi2 / 3.0);
}

static void fill(float *x, int64_t n, bool heavy_tailed, double scale) {
    for (int64_t i = 0; i < n; i++) {
        x[i] = (float)(scale * (heavy_tailed ? heavy() : normal()));
    }
}

/* Per-column importance: mean square of 32 heavy-tailed activations with log-normal scales. */
static void fill_imatrix(float *w, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double c = exp(normal()), s = 0;
        for (int t = 0; t < 32; t++) {
            double a = c * heavy();
            s += a * a;
        }
        w[j] = (float)(s / 32);
    }
}

// ---- helpers ----------------------------------------------------------------------------

typedef void (*qfn)(const float *src, void *dst, int64_t n);
typedef void (*qfn_imat)(const float *src, void *dst, int64_t n, const float *imatrix);

static size_t row_bytes(werk_dtype t, int64_t n) {
    uint64_t b = 0;
    WERK_ASSERT(werk_dtype_bytes(t, (uint64_t)n, &b, NULL) == WERK_OK);
    return (size_t)b;
}

/* Sum over rows of sum(w (x - deq(q(x)))^2) (w NULL = 1) for the given quantizer. */
static double total_err(
    werk_dtype t, qfn plain, qfn_imat imat, const float *x, const float *w, int64_t rows, int64_t cols) {
    const size_t rb = row_bytes(t, cols);
    uint8_t     *q  = malloc(rb);
    float       *y  = malloc((size_t)cols * sizeof(float));
    double       e  = 0;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        if (imat) {
            imat(xr, q, cols, w);
        } else {
            plain(xr, q, cols);
        }
        werk_dequantize_row(t, q, y, cols);
        for (int64_t j = 0; j < cols; j++) {
            double d = (double)xr[j] - (double)y[j];
            e += (w ? (double)w[j] : 1.0) * d * d;
        }
    }
    free(q);
    free(y);
    return e;
}

/* werk_quantize_row for the type under test (a qfn for total_err). */
static werk_dtype default_type;
static void       quantize_default(const float *src, void *dst, int64_t n) {
          werk_quantize_row(default_type, src, dst, n);
}

// ---- tests ------------------------------------------------------------------------------

static void test_budgets(const float *x) {
    double ms = 0;
    for (int64_t i = 0; i < N_ROWS * N_COLS; i++) {
        ms += (double)x[i] * x[i];
    }
    ms /= N_ROWS * N_COLS;
    for (size_t k = 0; k < sizeof(budgets) / sizeof(budgets[0]); k++) {
        default_type = budgets[k].type;
        double e     = total_err(default_type, quantize_default, NULL, x, NULL, N_ROWS, N_COLS);
        double rel   = sqrt(e / (N_ROWS * N_COLS) / ms);
        printf("budget\t%s\trel_rmse\t%.5f\t(max %.4f)\n", werk_dtype_name(default_type), rel,
               budgets[k].max_rel_rmse);
        WT_CHECK(rel <= budgets[k].max_rel_rmse, "%s: relative RMSE %.5f over budget %.4f",
                 werk_dtype_name(default_type), rel, budgets[k].max_rel_rmse);
    }
}

typedef struct kq {
    werk_dtype type;
    qfn        werk, ggml;
    qfn_imat   werk_imat, ggml_imat;
} kq;

static const kq kquants[] = {
    {WERK_DTYPE_Q2_K, werk_q2_k_quantize_ref, werk_q2_k_quantize_ggml, werk_q2_k_quantize_imat,
     werk_q2_k_quantize_ggml_imat},
    {WERK_DTYPE_Q3_K, werk_q3_k_quantize_ref, werk_q3_k_quantize_ggml, werk_q3_k_quantize_imat,
     werk_q3_k_quantize_ggml_imat},
    {WERK_DTYPE_Q4_K, werk_q4_k_quantize_ref, werk_q4_k_quantize_ggml, werk_q4_k_quantize_imat,
     werk_q4_k_quantize_ggml_imat},
    {WERK_DTYPE_Q5_K, werk_q5_k_quantize_ref, werk_q5_k_quantize_ggml, werk_q5_k_quantize_imat,
     werk_q5_k_quantize_ggml_imat},
    {WERK_DTYPE_Q6_K, werk_q6_k_quantize_ref, werk_q6_k_quantize_ggml, werk_q6_k_quantize_imat,
     werk_q6_k_quantize_ggml_imat},
};

/* werk's total (weighted) squared error <= ggml's, per data set and mode. */
static void test_vs_ggml(const float *gauss, const float *heavy_x, const float *imat) {
    const char  *names[2] = {"gaussian", "heavy-tailed"};
    const float *sets[2]  = {gauss, heavy_x};
    for (size_t k = 0; k < sizeof(kquants) / sizeof(kquants[0]); k++) {
        const kq *q = &kquants[k];
        for (int s = 0; s < 2; s++) {
            for (int use_imat = 0; use_imat <= 1; use_imat++) {
                const float *w = use_imat ? imat : NULL;
                double       ew =
                    total_err(q->type, q->werk, use_imat ? q->werk_imat : NULL, sets[s], w, N_ROWS, N_COLS);
                double eg =
                    total_err(q->type, q->ggml, use_imat ? q->ggml_imat : NULL, sets[s], w, N_ROWS, N_COLS);
                printf("vs_ggml\t%s\t%s\t%s\twerk/ggml error\t%.4f\n", werk_dtype_name(q->type), names[s],
                       use_imat ? "imatrix" : "plain", ew / eg);
                WT_CHECK(ew <= eg, "%s %s %s: werk's squared error %.6g > ggml's %.6g",
                         werk_dtype_name(q->type), names[s], use_imat ? "imatrix" : "plain", ew, eg);
            }
        }
    }
}

static void test_determinism(const float *x, const float *imat) {
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        if (!werk_dtype_get((werk_dtype)t)->is_quant || !werk_dtype_can_quantize((werk_dtype)t)) {
            continue;
        }
        const size_t rb = row_bytes((werk_dtype)t, N_COLS) * 4;
        uint8_t     *a = malloc(rb), *b = malloc(rb), *c = malloc(rb);
        memset(a, 0x55, rb);
        memset(b, 0xAA, rb); // padding or stale bytes would show
        werk_quantize_rows((werk_dtype)t, x, a, 4, N_COLS, imat);
        werk_quantize_rows((werk_dtype)t, x, b, 4, N_COLS, imat);
        WT_CHECK(memcmp(a, b, rb) == 0, "%s: two runs differ", werk_dtype_name((werk_dtype)t));
        // rows: the imatrix path per row, or the plain quantizer over all rows at once
        if (!werk_dtype_uses_imatrix((werk_dtype)t)) {
            werk_quantize_row((werk_dtype)t, x, c, 4 * N_COLS);
            WT_CHECK(memcmp(a, c, rb) == 0, "%s: werk_quantize_rows != werk_quantize_row (imatrix ignored)",
                     werk_dtype_name((werk_dtype)t));
        }
        werk_quantize_rows((werk_dtype)t, x, c, 4, N_COLS, NULL);
        werk_quantize_row((werk_dtype)t, x, b, 4 * N_COLS);
        WT_CHECK(memcmp(b, c, rb) == 0, "%s: werk_quantize_rows without imatrix != werk_quantize_row",
                 werk_dtype_name((werk_dtype)t));
        free(a);
        free(b);
        free(c);
    }
    // the imatrix rows go to the _imat quantizers, one row at a time
    const size_t rb = row_bytes(WERK_DTYPE_Q4_K, N_COLS);
    uint8_t     *a = malloc(2 * rb), *b = malloc(2 * rb);
    werk_quantize_rows(WERK_DTYPE_Q4_K, x, a, 2, N_COLS, imat);
    werk_q4_k_quantize_imat(x, b, N_COLS, imat);
    werk_q4_k_quantize_imat(x + N_COLS, b + rb, N_COLS, imat);
    WT_CHECK(memcmp(a, b, 2 * rb) == 0, "q4_K: werk_quantize_rows with imatrix != werk_q4_k_quantize_imat");
    free(a);
    free(b);

    WT_CHECK(werk_dtype_uses_imatrix(WERK_DTYPE_Q4_K) && werk_dtype_uses_imatrix(WERK_DTYPE_Q2_K) &&
                 werk_dtype_uses_imatrix(WERK_DTYPE_Q4_0) && werk_dtype_uses_imatrix(WERK_DTYPE_Q5_1),
             "uses_imatrix for the k-quants and legacy types");
    WT_CHECK(!werk_dtype_uses_imatrix(WERK_DTYPE_Q8_0) && !werk_dtype_uses_imatrix(WERK_DTYPE_F16) &&
                 !werk_dtype_uses_imatrix(WERK_DTYPE_Q8_K) && !werk_dtype_uses_imatrix(WERK_DTYPE_COUNT),
             "no imatrix for q8_0 / f16 / q8_K / out of range");
}

static void test_q8_helpers(const float *x) {
    enum { NB = N_COLS / WERK_QK_K };
    block_q8_K b[NB];
    werk_quantize_row(WERK_DTYPE_Q8_K, x, b, N_COLS);
    int bad_sum = 0, bad_val = 0;
    for (int i = 0; i < NB; i++) {
        float amax = 0;
        for (int j = 0; j < WERK_QK_K; j++) {
            amax = fabsf(x[i * WERK_QK_K + j]) > amax ? fabsf(x[i * WERK_QK_K + j]) : amax;
        }
        for (int g = 0; g < WERK_QK_K / 16; g++) {
            int s = 0;
            for (int l = 0; l < 16; l++) {
                s += b[i].qs[16 * g + l];
            }
            bad_sum += s != b[i].bsums[g];
        }
        for (int j = 0; j < WERK_QK_K; j++) {
            // |x - d q| <= d/2 (plus float rounding), and the largest |x| maps to 127
            bad_val += fabsf(x[i * WERK_QK_K + j] - b[i].d * b[i].qs[j]) > 0.5001f * fabsf(b[i].d);
        }
        WT_CHECK(fabsf(fabsf(b[i].d) * 127 - amax) <= 1e-6f * amax, "q8_K block %d: |d| * 127 != max|x|", i);
    }
    WT_CHECK(bad_sum == 0, "q8_K: %d bsums differ from the sums of their 16 quants", bad_sum);
    WT_CHECK(bad_val == 0, "q8_K: %d values off by more than d/2", bad_val);

    float zeros[WERK_QK_K] = {0};
    memset(b, 0x5A, sizeof(b[0]));
    werk_quantize_row(WERK_DTYPE_Q8_K, zeros, b, WERK_QK_K);
    int nz = 0;
    for (int g = 0; g < WERK_QK_K / 16; g++) {
        nz += b[0].bsums[g] != 0;
    }
    for (int j = 0; j < WERK_QK_K; j++) {
        nz += b[0].qs[j] != 0;
    }
    WT_CHECK(b[0].d == 0 && nz == 0, "q8_K: an all-zero block stores d = 0, zero quants and zero bsums");

    block_q8_1 c[N_COLS / WERK_QK8_1];
    werk_quantize_row(WERK_DTYPE_Q8_1, x, c, N_COLS);
    int bad_s = 0;
    for (int i = 0; i < N_COLS / WERK_QK8_1; i++) {
        int   s    = 0;
        float amax = 0;
        for (int j = 0; j < WERK_QK8_1; j++) {
            s += c[i].qs[j];
            amax = fabsf(x[i * WERK_QK8_1 + j]) > amax ? fabsf(x[i * WERK_QK8_1 + j]) : amax;
        }
        // ggml multiplies by the float32 d (before its fp16 rounding)
        bad_s += c[i].s != werk_fp32_to_fp16((float)s * (amax / 127.0f));
    }
    WT_CHECK(bad_s == 0, "q8_1: %d blocks with s != fp16(d * sum(q))", bad_s);
    // Q8_1's quants are Q8_0's (same rounding, same d)
    block_q8_0 z[N_COLS / WERK_QK8_0];
    werk_quantize_row(WERK_DTYPE_Q8_0, x, z, N_COLS);
    int bad_q = 0;
    for (int i = 0; i < N_COLS / WERK_QK8_0; i++) {
        bad_q += z[i].d != c[i].d || memcmp(z[i].qs, c[i].qs, WERK_QK8_0) != 0;
    }
    WT_CHECK(bad_q == 0, "q8_1: %d blocks whose d or quants differ from q8_0's", bad_q);
}

/* Zero, constant, one-outlier, tiny and huge rows: finite scales, sensible values. */
static void test_edges(void) {
    float       x[WERK_QK_K * 2], y[WERK_QK_K * 2];
    uint8_t     q[WERK_QK_K * 2 * 2];
    const char *what[] = {"zeros", "constant", "one outlier", "tiny", "huge", "negative constant"};
    for (int c = 0; c < 6; c++) {
        for (int i = 0; i < WERK_QK_K * 2; i++) {
            switch (c) {
            case 0:
                x[i] = 0;
                break;
            case 1:
                x[i] = 0.37f;
                break;
            case 2:
                x[i] = (i == 77) ? 50.0f : (float)(0.01 * normal());
                break;
            case 3:
                x[i] = (float)(1e-30 * normal());
                break;
            case 4:
                x[i] = (float)(1e3 * normal());
                break;
            default:
                x[i] = -1.25f;
                break;
            }
        }
        for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
            if (!werk_dtype_get((werk_dtype)t)->is_quant || !werk_dtype_can_quantize((werk_dtype)t)) {
                continue;
            }
            for (int use_imat = 0; use_imat <= 1; use_imat++) {
                float ones[WERK_QK_K * 2];
                for (int i = 0; i < WERK_QK_K * 2; i++) {
                    ones[i] = 1.0f + (float)(i % 7);
                }
                werk_quantize_rows((werk_dtype)t, x, q, 1, WERK_QK_K * 2, use_imat ? ones : NULL);
                WT_CHECK(werk_dtype_validate_row((werk_dtype)t, q, WERK_QK_K * 2), "%s %s: invalid scales",
                         werk_dtype_name((werk_dtype)t), what[c]);
                werk_dequantize_row((werk_dtype)t, q, y, WERK_QK_K * 2);
                double e = 0, m = 0;
                int    nonfinite = 0;
                for (int i = 0; i < WERK_QK_K * 2; i++) {
                    nonfinite += !isfinite(y[i]);
                    e += ((double)x[i] - y[i]) * ((double)x[i] - y[i]);
                    m += (double)x[i] * x[i];
                }
                WT_CHECK(nonfinite == 0, "%s %s: %d non-finite values", werk_dtype_name((werk_dtype)t),
                         what[c], nonfinite);
                if (c == 0) {
                    WT_CHECK(e == 0, "%s: zeros do not come back as zeros", werk_dtype_name((werk_dtype)t));
                } else if (c != 3) { // tiny values sit below fp16's range: only finiteness is asked
                    WT_CHECK(e <= 0.25 * m, "%s %s%s: error %.3g of %.3g", werk_dtype_name((werk_dtype)t),
                             what[c], use_imat ? " (imatrix)" : "", e, m);
                }
            }
        }
    }
}

static void test_validate(const float *x) {
    uint8_t q[N_COLS / WERK_QK_K * sizeof(block_q8_K)]; // the widest type per value
    for (int t = 0; t < WERK_DTYPE_COUNT; t++) {
        const werk_dtype_info *ti = werk_dtype_get((werk_dtype)t);
        if (!ti->is_quant || !werk_dtype_can_quantize((werk_dtype)t)) {
            continue;
        }
        werk_quantize_row((werk_dtype)t, x, q, N_COLS);
        WT_CHECK(werk_dtype_validate_row((werk_dtype)t, q, N_COLS), "%s: a fresh row is invalid", ti->name);
        // poison the scale of the second block: NaN, then inf
        const size_t off = ti->type_size + (t == WERK_DTYPE_Q2_K   ? offsetof(block_q2_K, d)
                                            : t == WERK_DTYPE_Q3_K ? offsetof(block_q3_K, d)
                                            : t == WERK_DTYPE_Q6_K ? offsetof(block_q6_K, d)
                                                                   : 0);
        uint8_t      save[4];
        memcpy(save, q + off, 4);
        if (t == WERK_DTYPE_Q8_K) {
            float v = NAN;
            memcpy(q + off, &v, 4);
            WT_CHECK(!werk_dtype_validate_row((werk_dtype)t, q, N_COLS), "q8_K: NaN d not caught");
            v = INFINITY;
            memcpy(q + off, &v, 4);
            WT_CHECK(!werk_dtype_validate_row((werk_dtype)t, q, N_COLS), "q8_K: inf d not caught");
        } else {
            uint16_t h = 0x7E00;
            memcpy(q + off, &h, 2);
            WT_CHECK(!werk_dtype_validate_row((werk_dtype)t, q, N_COLS), "%s: NaN scale not caught",
                     ti->name);
            h = 0xFC00;
            memcpy(q + off, &h, 2);
            WT_CHECK(!werk_dtype_validate_row((werk_dtype)t, q, N_COLS), "%s: -inf scale not caught",
                     ti->name);
        }
        memcpy(q + off, save, 4);
        WT_CHECK(werk_validate_row((werk_dtype)t, q, N_COLS), "%s: restored row invalid", ti->name);
    }
    // second fp16 field: min / dmin / s
    const werk_dtype two[] = {WERK_DTYPE_Q4_1, WERK_DTYPE_Q5_1, WERK_DTYPE_Q8_1,
                              WERK_DTYPE_Q4_K, WERK_DTYPE_Q5_K, WERK_DTYPE_Q2_K};
    for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++) {
        werk_quantize_row(two[k], x, q, N_COLS);
        const size_t off = two[k] == WERK_DTYPE_Q2_K ? offsetof(block_q2_K, dmin) : 2;
        uint16_t     h   = 0x7C00;
        memcpy(q + off, &h, 2);
        WT_CHECK(!werk_dtype_validate_row(two[k], q, N_COLS), "%s: inf min/s not caught",
                 werk_dtype_name(two[k]));
    }
    float f[4] = {1, 2, INFINITY, 4};
    WT_CHECK(!werk_dtype_validate_row(WERK_DTYPE_F32, f, 4), "f32: inf not caught");
    f[2] = 3;
    WT_CHECK(werk_dtype_validate_row(WERK_DTYPE_F32, f, 4), "f32: finite row invalid");
    uint16_t h[2] = {0x3C00, 0x7E00};
    WT_CHECK(!werk_dtype_validate_row(WERK_DTYPE_F16, h, 2), "f16: NaN not caught");
    uint16_t bf[2] = {0x3F80, 0x7F80};
    WT_CHECK(!werk_dtype_validate_row(WERK_DTYPE_BF16, bf, 2), "bf16: inf not caught");
    int32_t iv[2] = {-1, 0x7F800000};
    WT_CHECK(werk_dtype_validate_row(WERK_DTYPE_I32, iv, 2), "i32 is always valid");
}

int main(void) {
    float *gauss   = malloc(sizeof(float) * N_ROWS * N_COLS),
          *heavy_x = malloc(sizeof(float) * N_ROWS * N_COLS);
    float *imat    = malloc(sizeof(float) * N_COLS);
    fill(gauss, N_ROWS * N_COLS, false, 1.0);
    fill(heavy_x, N_ROWS * N_COLS, true, 0.02);
    fill_imatrix(imat, N_COLS);

    test_budgets(gauss);
    test_vs_ggml(gauss, heavy_x, imat);
    test_determinism(heavy_x, imat);
    test_q8_helpers(gauss);
    test_edges();
    test_validate(gauss);

    free(gauss);
    free(heavy_x);
    free(imat);
    return wt_done();
}
