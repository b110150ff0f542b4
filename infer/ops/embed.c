/* infer/ops/embed.c - token embedding lookup, forward and backward
 *
 * Shapes: emb [rows, cols] (stored type), tok [n], y/dy [n, cols], demb [rows, cols] f32.
 *   forward   y[i,:]          = scale emb[tok[i], :]    (dequantized; gemma3 scale = sqrt(n_embd))
 *   backward  demb[tok[i], :] += scale dy[i, :]         (tokens in order: deterministic)
 * Token ids come from callers' data: range-checked by the forward (the backward is only
 * called on tokens its forward accepted). LoRA training keeps the embedding frozen and
 * does not call the backward; it is here for completeness and trainable embeddings.
 */
#include "infer/model_int.h"

werk_status werk_op_embed_fwd(float *y, const werk_wview *emb, const int32_t *tok, int64_t n, float scale,
                              werk_err *err) {
    const char *base = emb->data;
    for (int64_t i = 0; i < n; i++) {
        if (tok[i] < 0 || tok[i] >= emb->rows) {
            return WERK_FAIL(err, WERK_E_ARG, "token %d at %lld is outside the vocabulary of %lld", tok[i],
                             (long long)i, (long long)emb->rows);
        }
        float *yi = y + i * emb->cols;
        werk_dequantize_row(emb->type, base + (uint64_t)tok[i] * emb->row_bytes, yi, emb->cols);
        if (scale != 1.0f) {
            for (int64_t c = 0; c < emb->cols; c++) {
                yi[c] *= scale;
            }
        }
    }
    return WERK_OK;
}

void werk_op_embed_bwd(float *demb, const float *dy, const int32_t *tok, int64_t n, int64_t cols, float scale) {
    for (int64_t i = 0; i < n; i++) {
        float       *d = demb + (int64_t)tok[i] * cols;
        const float *g = dy + i * cols;
        for (int64_t c = 0; c < cols; c++) {
            d[c] += scale * g[c];
        }
    }
}
