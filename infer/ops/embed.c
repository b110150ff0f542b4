/* infer/ops/embed.c - token embedding lookup, forward
 *
 * One row of the embedding matrix per token, dequantized from its stored type and scaled
 * (gemma3 multiplies by sqrt(n_embd)). Token ids come from callers' data: range-checked.
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
