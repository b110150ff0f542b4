/* infer/lora_merge.c - merging LoRA adapters into a base model's weights (werk convert --lora)
 *
 * For each projection an adapter targets: W' = W + sum over adapters of scale B A, computed
 * in f32 row by row from the dequantized stored row (rows in the GGUF's order, which is
 * the order of werk_lora's pairs). The merged tensor's f32 rows are held by the werk_gguf
 * and written in the type convert's writer is told: the tensor's own type when it is f32,
 * f16 or bf16, f16 for quantized types (llama.cpp's export-lora writes f32 for f32 and
 * f16 for everything else; werk keeps bf16 as bf16). `werk convert --type T` overrides
 * it as for any conversion. Other tensors are copied as they are. Rows are independent,
 * so the result does not depend on the thread count.
 */
#include "infer/lora_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static werk_status merge_tensor(werk_gguf              *g,
                                const werk_model       *m,
                                int64_t                 il,
                                int                     slot,
                                const werk_lora *const *loras,
                                int                     n_loras,
                                werk_err               *err) {
    const werk_wview *w   = werk_layer_weight(&m->layers[il], slot);
    int64_t           idx = werk_gguf_find_tensor(g, w->name);
    if (idx < 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "merge: tensor '%s' missing from the base model", w->name);
    }
    werk_gguf_tensor *t = werk_gguf_tensor_at_mut(g, idx);
    if (t->row_map || t->add != 0 || t->data != w->data || t->src_type != w->type) {
        return WERK_FAIL(err, WERK_E_ARG, "merge: the base model must be a GGUF file (convert it first)");
    }
    size_t n   = (size_t)(w->rows * w->cols);
    float *out = malloc((n > 0 ? n : 1) * sizeof(float));
    if (!out) {
        return WERK_FAIL(err, WERK_E_OOM, "merge: out of memory for '%s'", w->name);
    }
    const int64_t rows = w->rows, cols = w->cols;
#pragma omp parallel for schedule(static)
    for (int64_t o = 0; o < rows; o++) {
        float *row = out + o * cols;
        werk_dequantize_row(w->type, (const char *)w->data + (uint64_t)o * w->row_bytes, row, cols);
        for (int i = 0; i < n_loras; i++) {
            const werk_lora_mat *lm = &loras[i]->mats[il * WERK_LORA_N_SLOTS + slot];
            if (!lm->a) {
                continue;
            }
            for (int64_t k = 0; k < lm->r; k++) {
                const float  c = loras[i]->scale * lm->b[o * lm->r + k];
                const float *a = lm->a + k * cols;
                for (int64_t j = 0; j < cols; j++) {
                    row[j] += c * a[j];
                }
            }
        }
    }
    werk_status st = werk_gguf_hold_buffer(g, out, err);
    if (st) {
        free(out);
        return st;
    }
    werk_dtype stored = t->type;
    t->type           = (stored == WERK_DTYPE_F32 || stored == WERK_DTYPE_F16 || stored == WERK_DTYPE_BF16)
                            ? stored
                            : WERK_DTYPE_F16;
    t->src_type       = WERK_DTYPE_F32;
    t->data           = out;
    t->nbytes         = n * sizeof(float);
    t->imatrix        = NULL;
    return WERK_OK;
}

werk_status werk_lora_merge(
    werk_gguf *g, const werk_model *m, const werk_lora *const *loras, int n_loras, werk_err *err) {
    for (int i = 0; i < n_loras; i++) {
        if (!loras[i] || loras[i]->n_layer != m->n_layer) {
            return WERK_FAIL(err, WERK_E_ARG, "merge: adapter %d was not loaded for this model", i);
        }
    }
    for (int64_t il = 0; il < m->n_layer; il++) {
        for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
            bool any = false;
            for (int i = 0; i < n_loras; i++) {
                any = any || loras[i]->mats[il * WERK_LORA_N_SLOTS + s].a;
            }
            werk_status st = any ? merge_tensor(g, m, il, s, loras, n_loras, err) : WERK_OK;
            if (st) {
                return st;
            }
        }
    }
    return WERK_OK;
}

werk_status
werk_lora_merge_files(werk_gguf *g, const char *const *paths, const float *scales, int n, werk_err *err) {
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        if (t->row_map || t->add != 0 || t->type != t->src_type) {
            // an import whose tensors are reordered or shifted while written (llama HF q/k, gemma norms)
            return WERK_FAIL(err, WERK_E_ARG, "merge: convert this model to GGUF first, then merge into it");
        }
    }
    werk_model *m  = NULL;
    werk_status st = werk_model_load(g, &m, err);
    if (st) {
        return st;
    }
    werk_lora **ls = calloc((size_t)(n > 0 ? n : 1), sizeof(werk_lora *));
    if (!ls) {
        werk_model_free(m);
        return WERK_FAIL(err, WERK_E_OOM, "merge: out of memory");
    }
    for (int i = 0; i < n && !st; i++) {
        st = werk_lora_load(paths[i], m, scales ? scales[i] : 1.0f, &ls[i], err);
    }
    if (!st) {
        st = werk_lora_merge(g, m, (const werk_lora *const *)ls, n, err);
    }
    for (int i = 0; i < n; i++) {
        werk_lora_free(ls[i]);
    }
    free(ls);
    werk_model_free(m);
    return st;
}
