/* infer/ops/lora.c - unmerged low-rank update of a linear layer, forward
 *
 * y += scale * (x A^T) B^T, A [r, in], B [out, r], f32, through OpenBLAS: two thin sgemms
 * instead of materialising W + scale B A.
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
