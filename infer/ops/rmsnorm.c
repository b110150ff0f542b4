/* infer/ops/rmsnorm.c - RMS normalisation, forward
 *
 * y = x / sqrt(mean(x^2) + eps) * w over each row of n values; the sum of squares is
 * accumulated in double. Gemma's (1 + w) gain is folded into w by the importer.
 */
#include "infer/model_int.h"

#include <math.h>

void werk_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps) {
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
