/* infer/ops/matmul.c - y = x W^T with W in its stored type, forward
 *
 * W (rows x cols, any type werk_dequantize_row handles) is dequantized TILE_ROWS rows at a
 * time into a scratch buffer and multiplied with OpenBLAS sgemm; the weight is never
 * dequantized whole. werk_op_matmul_fwd_ref is the naive oracle for tests.
 */
#include "infer/model_int.h"

#include <cblas.h>
#include <stdlib.h>

enum { TILE_ROWS = 64 };

int64_t werk_op_matmul_scratch(const werk_wview *w) {
    int64_t rows = w->rows < TILE_ROWS ? w->rows : TILE_ROWS;
    return rows * w->cols;
}

void werk_op_matmul_fwd(float *y, const float *x, int64_t n, const werk_wview *w, float *scratch) {
    const char *base = w->data;
    for (int64_t r0 = 0; r0 < w->rows; r0 += TILE_ROWS) {
        int64_t nr = w->rows - r0 < TILE_ROWS ? w->rows - r0 : TILE_ROWS;
        for (int64_t r = 0; r < nr; r++) {
            werk_dequantize_row(w->type, base + (uint64_t)(r0 + r) * w->row_bytes, scratch + r * w->cols, w->cols);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nr, (int)w->cols, 1.0f, x,
                    (int)w->cols, scratch, (int)w->cols, 0.0f, y + r0, (int)w->rows);
    }
}

void werk_op_matmul_fwd_ref(float *y, const float *x, int64_t n, const werk_wview *w) {
    float *row = malloc((size_t)w->cols * sizeof(float));
    WERK_ASSERT(row);
    const char *base = w->data;
    for (int64_t r = 0; r < w->rows; r++) {
        werk_dequantize_row(w->type, base + (uint64_t)r * w->row_bytes, row, w->cols);
        for (int64_t i = 0; i < n; i++) {
            double s = 0;
            for (int64_t c = 0; c < w->cols; c++) {
                s += (double)x[i * w->cols + c] * row[c];
            }
            y[i * w->rows + r] = (float)s;
        }
    }
    free(row);
}
