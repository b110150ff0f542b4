/* infer/ops/lora.c - unmerged low-rank update of a linear layer, forward and backward
 *
 * Shapes: x [n, in], y [n, out], a [r, in], b [out, r], t = x A^T [n, r].
 *   forward   y  += s t B^T                      (two thin sgemms instead of W + s B A)
 *   backward  dB += s dy^T t,  dt = s dy B,  dA += dt^T x,  dx += dt A
 * Through OpenBLAS; each sgemm's summation order does not depend on the thread count.
 */
#include "infer/model_int.h"

void werk_op_lora_fwd(float       *y,
                      const float *x,
                      int64_t      n,
                      const float *a,
                      const float *b,
                      int64_t      r,
                      int64_t      in,
                      int64_t      out,
                      float        scale,
                      float       *tmp) {
    werk_sgemm(false, true, n, r, in, 1.0f, x, in, a, in, 0.0f, tmp, r);
    werk_sgemm(false, true, n, out, r, scale, tmp, r, b, r, 1.0f, y, out);
}

void werk_op_lora_bwd(float       *dx,
                      float       *da,
                      float       *db,
                      const float *dy,
                      const float *x,
                      int64_t      n,
                      const float *a,
                      const float *b,
                      int64_t      r,
                      int64_t      in,
                      int64_t      out,
                      float        scale,
                      float       *tmp) {
    float *t = tmp, *dt = tmp + n * r;
    // t = x A^T [n, r] (recomputed: cheaper than keeping it)
    werk_sgemm(false, true, n, r, in, 1.0f, x, in, a, in, 0.0f, t, r);
    // dB[out, r] += s dy^T t
    werk_sgemm(true, false, out, r, n, scale, dy, out, t, r, 1.0f, db, r);
    // dt[n, r] = s dy B
    werk_sgemm(false, false, n, r, out, scale, dy, out, b, r, 0.0f, dt, r);
    // dA[r, in] += dt^T x
    werk_sgemm(true, false, r, in, n, 1.0f, dt, r, x, in, 1.0f, da, in);
    // dx[n, in] += dt A
    if (dx) {
        werk_sgemm(false, false, n, in, r, 1.0f, dt, r, a, in, 1.0f, dx, in);
    }
}
