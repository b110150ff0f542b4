/* infer/ops/matmul.c - y = x W^T with W in its stored type, forward and backward to x
 *
 * f32 weights are multiplied in place (one werk_sgemm on the mapped rows: infer/ops/gemm.c). Any other
 * type werk_dequantize_row handles is dequantized TILE_ROWS rows at a time into a scratch
 * buffer (rows split over OpenMP threads: dequantization is exact, so the tile does not
 * depend on the thread count) and multiplied with sgemm; the weight is never dequantized
 * whole. The backward to the input (dx += dy W) walks the same row tiles.
 * werk_op_matmul_fwd_ref is the naive oracle for tests.
 */
#include "infer/model_int.h"

#include <stdlib.h>

enum { TILE_ROWS = 1024 };

int64_t werk_op_matmul_scratch(const werk_wview *w) {
    int64_t rows = w->rows < TILE_ROWS ? w->rows : TILE_ROWS;
    return rows * w->cols;
}

/* True when W's rows are plain contiguous f32 (usable by sgemm as they are). */
static bool is_plain_f32(const werk_wview *w) {
    return w->type == WERK_DTYPE_F32 && w->row_bytes == (uint64_t)w->cols * sizeof(float);
}

/* Dequantizes rows [r0, r0 + nr) of W into tile [nr, cols]. */
static void dequantize_tile(const werk_wview *w, int64_t r0, int64_t nr, float *tile) {
    const char        *base = w->data;
    int64_t            cols = w->cols;
    werk_dequantize_fn deq  = werk_qfns_get(w->type)->dequantize; // fastest variant
#pragma omp parallel for schedule(static) if (nr * cols >= 65536)
    for (int64_t r = 0; r < nr; r++) {
        const char *src = base + (uint64_t)(r0 + r) * w->row_bytes;
        if (deq) {
            deq(src, tile + r * cols, cols);
        } else {
            werk_dequantize_row(w->type, src, tile + r * cols, cols);
        }
    }
}

void werk_op_matmul_fwd(float *y, const float *x, int64_t n, const werk_wview *w, float *scratch) {
    if (is_plain_f32(w)) {
        werk_sgemm(false, true, n, w->rows, w->cols, 1.0f, x, w->cols, (const float *)w->data, w->cols, 0.0f,
                   y, w->rows);
        return;
    }
    for (int64_t r0 = 0; r0 < w->rows; r0 += TILE_ROWS) {
        int64_t nr = w->rows - r0 < TILE_ROWS ? w->rows - r0 : TILE_ROWS;
        dequantize_tile(w, r0, nr, scratch);
        werk_sgemm(false, true, n, nr, w->cols, 1.0f, x, w->cols, scratch, w->cols, 0.0f, y + r0, w->rows);
    }
}

void werk_op_matmul_bwd_x(float *dx, const float *dy, int64_t n, const werk_wview *w, float *scratch) {
    if (is_plain_f32(w)) {
        werk_sgemm(false, false, n, w->cols, w->rows, 1.0f, dy, w->rows, (const float *)w->data, w->cols,
                   1.0f, dx, w->cols);
        return;
    }
    for (int64_t r0 = 0; r0 < w->rows; r0 += TILE_ROWS) {
        int64_t nr = w->rows - r0 < TILE_ROWS ? w->rows - r0 : TILE_ROWS;
        dequantize_tile(w, r0, nr, scratch);
        // dx[n, cols] += dy[n, r0:r0+nr] W[r0:r0+nr, cols]
        werk_sgemm(false, false, n, w->cols, nr, 1.0f, dy + r0, w->rows, scratch, w->cols, 1.0f, dx, w->cols);
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
