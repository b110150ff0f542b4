/* infer/ops/rmsnorm.c - RMS normalisation, forward and backward
 *
 * Shapes: x, y, dx, dy [n_rows, n]; w [n] or NULL (no gain). Per row, with r = 1/sqrt(mean(x^2) + eps):
 *   forward   y  = x r w
 *   backward  dx = r (dy w) - x r^3 (sum_i dy_i w_i x_i) / n
 * Sums are accumulated in double. Gemma's (1 + w) gain is folded into w by the importer.
 * Rows are independent: large inputs run them in parallel, each row by one thread.
 */
#include "infer/model_int.h"

#include <math.h>

void werk_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps) {
#pragma omp parallel for schedule(static) if (n_rows * n >= 32768)
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr = x + r * n;
        float       *yr = y + r * n;
        double       ss = 0;
        for (int64_t i = 0; i < n; i++) {
            ss += (double)xr[i] * xr[i];
        }
        double inv = 1.0 / sqrt(ss / (double)n + (double)eps);
        for (int64_t i = 0; i < n; i++) {
            double v = xr[i] * inv;
            yr[i]    = (float)(w ? v * w[i] : v);
        }
    }
}

void werk_op_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, int64_t n_rows, int64_t n,
                         float eps) {
#pragma omp parallel for schedule(static) if (n_rows * n >= 32768)
    for (int64_t r = 0; r < n_rows; r++) {
        const float *xr  = x + r * n;
        const float *dyr = dy + r * n;
        float       *dxr = dx + r * n;
        double       ss = 0, dot = 0;
        for (int64_t i = 0; i < n; i++) {
            double g = w ? (double)dyr[i] * w[i] : (double)dyr[i];
            ss += (double)xr[i] * xr[i];
            dot += g * xr[i];
        }
        double inv = 1.0 / sqrt(ss / (double)n + (double)eps);
        double c   = dot * inv * inv * inv / (double)n;
        for (int64_t i = 0; i < n; i++) {
            double g = w ? (double)dyr[i] * w[i] : (double)dyr[i];
            dxr[i]   = (float)(g * inv - (double)xr[i] * c);
        }
    }
}
