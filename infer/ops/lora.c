/* infer/ops/lora.c - unmerged low-rank update of a linear layer, forward and backward
 *
 * Shapes: x [n, in], y [n, out], a [r, in], b [out, r], t = x A^T [n, r].
 *   forward   y  += s t B^T                      (two thin sgemms instead of W + s B A)
 *   backward  dB += s dy^T t,  dt = s dy B,  dA += dt^T x,  dx += dt A
 * Through OpenBLAS; each sgemm's summation order does not depend on the thread count.
 */
#include "infer/model_int.h"

#include <cblas.h>

void werk_op_lora_fwd(float *y, const float *x, int64_t n, const float *a, const float *b, int64_t r, int64_t in,
                      int64_t out, float scale, float *tmp) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)r, (int)in, 1.0f, x, (int)in, a, (int)in,
                0.0f, tmp, (int)r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)out, (int)r, scale, tmp, (int)r, b, (int)r,
                1.0f, y, (int)out);
}

void werk_op_lora_bwd(float *dx, float *da, float *db, const float *dy, const float *x, int64_t n, const float *a,
                      const float *b, int64_t r, int64_t in, int64_t out, float scale, float *tmp) {
    float *t = tmp, *dt = tmp + n * r;
    // t = x A^T [n, r] (recomputed: cheaper than keeping it)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)r, (int)in, 1.0f, x, (int)in, a, (int)in,
                0.0f, t, (int)r);
    // dB[out, r] += s dy^T t
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)r, (int)n, scale, dy, (int)out, t, (int)r,
                1.0f, db, (int)r);
    // dt[n, r] = s dy B
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)r, (int)out, scale, dy, (int)out, b, (int)r,
                0.0f, dt, (int)r);
    // dA[r, in] += dt^T x
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)r, (int)in, (int)n, 1.0f, dt, (int)r, x, (int)in, 1.0f,
                da, (int)in);
    // dx[n, in] += dt A
    if (dx) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)in, (int)r, 1.0f, dt, (int)r, a, (int)in,
                    1.0f, dx, (int)in);
    }
}
