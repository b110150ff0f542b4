/* tests/infer/test_matmul.c - werk_op_matmul_fwd and werk_op_matmul_bwd_x against naive loops
 *
 * For f32 (used in place) / f16 / q8_0 / q4_K weights (dequantized in row tiles), with more
 * rows than one tile and not a multiple of it: the forward against
 * werk_op_matmul_fwd_ref, and the backward to x (dx += dy W, accumulating onto a nonzero
 * dx) against a double loop over the dequantized weight; the backward must also equal the
 * transpose identity <dy, x W^T> == <dy W, x> within float tolerance.
 */
#include "werk_test.h"

#include "infer/model_int.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float    frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void test_type(werk_dtype t, int64_t rows, int64_t cols, int64_t n) {
    float *wf = malloc(sizeof(float) * rows * cols);
    for (int64_t i = 0; i < rows * cols; i++) {
        wf[i] = frand();
    }
    werk_err err = {0};
    uint64_t rb  = 0;
    WT_CHECK(werk_dtype_bytes(t, (uint64_t)cols, &rb, &err) == WERK_OK, "%s", err.msg);
    char *wq = malloc(rb * rows);
    for (int64_t r = 0; r < rows; r++) {
        werk_quantize_row(t, wf + r * cols, wq + r * rb, cols);
    }
    // the dequantized weight the kernels must agree with
    float *wd = malloc(sizeof(float) * rows * cols);
    for (int64_t r = 0; r < rows; r++) {
        werk_dequantize_row(t, wq + r * rb, wd + r * cols, cols);
    }
    werk_wview w = {.name = "w", .type = t, .data = wq, .rows = rows, .cols = cols, .row_bytes = rb};
    float     *s = malloc(sizeof(float) * werk_op_matmul_scratch(&w));

    float *x = malloc(sizeof(float) * n * cols), *y = malloc(sizeof(float) * n * rows);
    float *yr = malloc(sizeof(float) * n * rows);
    for (int64_t i = 0; i < n * cols; i++) {
        x[i] = frand();
    }
    werk_op_matmul_fwd(y, x, n, &w, s);
    werk_op_matmul_fwd_ref(yr, x, n, &w);
    WT_CLOSE(y, yr, n * rows, 1e-4, 1e-5, "fwd");

    float *dy = malloc(sizeof(float) * n * rows), *dx = malloc(sizeof(float) * n * cols);
    float *dxr = malloc(sizeof(float) * n * cols);
    for (int64_t i = 0; i < n * rows; i++) {
        dy[i] = frand();
    }
    for (int64_t i = 0; i < n * cols; i++) {
        dx[i] = 0.25f * frand(); // bwd_x accumulates
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t c = 0; c < cols; c++) {
            double acc = dx[i * cols + c];
            for (int64_t r = 0; r < rows; r++) {
                acc += (double)dy[i * rows + r] * wd[r * cols + c];
            }
            dxr[i * cols + c] = (float)acc;
        }
    }
    werk_op_matmul_bwd_x(dx, dy, n, &w, s);
    WT_CLOSE(dx, dxr, n * cols, 1e-4, 1e-5, "bwd_x");

    // adjoint identity on a fresh dx: <dy, x W^T> == <dy W, x>
    for (int64_t i = 0; i < n * cols; i++) {
        dx[i] = 0;
    }
    werk_op_matmul_bwd_x(dx, dy, n, &w, s);
    double lhs = 0, rhs = 0, mag = 0;
    for (int64_t i = 0; i < n * rows; i++) {
        lhs += (double)dy[i] * yr[i];
        mag += fabs((double)dy[i] * yr[i]);
    }
    for (int64_t i = 0; i < n * cols; i++) {
        rhs += (double)dx[i] * x[i];
    }
    WT_CHECK(fabs(lhs - rhs) <= 1e-5 * mag + 1e-4, "%s: <dy, xW^T> %.9g vs <dyW, x> %.9g", werk_dtype_name(t),
             lhs, rhs);

    free(wf);
    free(wq);
    free(wd);
    free(s);
    free(x);
    free(y);
    free(yr);
    free(dy);
    free(dx);
    free(dxr);
}

int main(void) {
    const werk_dtype types[] = {WERK_DTYPE_F32, WERK_DTYPE_F16, WERK_DTYPE_Q8_0, WERK_DTYPE_Q4_K};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        test_type(types[i], 150, 512, 7);  // within one tile
        test_type(types[i], 1100, 256, 3); // more rows than a tile (1024), not a multiple of it
        test_type(types[i], 3, 256, 1);   // fewer rows than one tile, a single token
    }
    return wt_done();
}
