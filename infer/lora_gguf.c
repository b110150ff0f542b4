/* infer/lora_gguf.c - llama.cpp LoRA adapter GGUFs <-> werk_lora
 *
 * The format, as llama.cpp's convert_lora_to_gguf.py writes it and src/llama-adapter.cpp
 * reads it:
 *   general.type = "adapter", general.architecture = the base model's arch,
 *   adapter.type = "lora", adapter.lora.alpha (f32; llama.cpp's scale = alpha / rank,
 *   or 1 when alpha is 0 or missing),
 *   for each adapted base tensor <base> (blk.N.attn_q.weight, ...):
 *     <base>.lora_a  ggml ne [in, r]  = row-major A [r, in]
 *     <base>.lora_b  ggml ne [r, out] = row-major B [out, r]
 *   with B's rows in the base GGUF's row order (llama q/k already permuted), so werk's
 *   pairs are stored as they are. "*_norm.weight" tensors are ignored, like llama.cpp.
 * rsLoRA has no key of its own: adapter.lora.alpha holds alpha x sqrt(r) so that
 * llama.cpp's alpha / r equals alpha / sqrt(r); werk.lora.alpha and werk.lora.use_rslora
 * keep the configured values for a round trip. Provenance goes in "training.<key>"
 * strings. Written as F32 (F16/BF16 on request: werk convert --base --type) with convert's
 * werk_gguf writer (atomic); read: any type werk can dequantize.
 */
#include "infer/lora_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finds (layer, slot) of a base tensor name like "blk.3.attn_q.weight" in m. */
static bool slot_of_name(const werk_model *m, const char *base, int64_t *layer, int *slot) {
    int il = -1, used = 0;
    if (sscanf(base, "blk.%d.%n", &il, &used) != 1 || il < 0 || il >= m->n_layer) {
        return false;
    }
    for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
        const werk_wview *w = werk_layer_weight(&m->layers[il], s);
        if (w->name && strcmp(w->name, base) == 0) {
            *layer = il;
            *slot  = s;
            return true;
        }
    }
    return false;
}

static werk_status check_kv(const werk_gguf  *g,
                            const werk_model *m,
                            const char       *path,
                            float            *alpha,
                            bool             *rslora,
                            bool             *has_werk_alpha,
                            werk_err         *err) {
    const char *s     = NULL;
    bool        found = false;
    werk_status st    = werk_gguf_get_str(g, "general.type", &s, &found, err);
    if (st) {
        return st;
    }
    if (!found || strcmp(s, "adapter") != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: general.type is %s%s%s, expected \"adapter\"", path,
                         found ? "\"" : "", found ? s : "missing", found ? "\"" : "");
    }
    if ((st = werk_gguf_get_str(g, "adapter.type", &s, &found, err))) {
        return st;
    }
    if (!found || strcmp(s, "lora") != 0) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: adapter.type is %s, expected \"lora\"", path,
                         found ? s : "missing");
    }
    if ((st = werk_gguf_get_str(g, "general.architecture", &s, &found, err))) {
        return st;
    }
    if (!found || strcmp(s, m->arch) != 0) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: adapter is for architecture '%s', the model is '%s'", path,
                         found ? s : "(missing)", m->arch);
    }
    *alpha = 0;
    if ((st = werk_gguf_get_f32(g, "adapter.lora.alpha", alpha, &found, err))) {
        return st;
    }
    float wa = 0;
    if ((st = werk_gguf_get_f32(g, "werk.lora.alpha", &wa, has_werk_alpha, err)) ||
        (st = werk_gguf_get_bool(g, "werk.lora.use_rslora", rslora, &found, err))) {
        return st;
    }
    if (!found) {
        *rslora = false;
    }
    if (*has_werk_alpha) {
        *alpha = wa;
    }
    if (!isfinite(*alpha)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: adapter.lora.alpha is not finite", path);
    }
    return WERK_OK;
}

/* Which tensor is A / B of each (layer, slot) and the common rank; checks shapes/types. */
static werk_status index_tensors(const werk_gguf  *g,
                                 const werk_model *m,
                                 const char       *path,
                                 int64_t          *ia,
                                 int64_t          *ib,
                                 int64_t          *rank,
                                 werk_err         *err) {
    *rank = 0;
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t    = werk_gguf_tensor_at(g, i);
        size_t                  n    = strlen(t->name);
        bool                    is_a = n > 7 && strcmp(t->name + n - 7, ".lora_a") == 0;
        bool                    is_b = n > 7 && strcmp(t->name + n - 7, ".lora_b") == 0;
        if (!is_a && !is_b) {
            if (n > 12 && strcmp(t->name + n - 12, "_norm.weight") == 0) {
                continue; // llama.cpp ignores adapted norms too
            }
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' is not a .lora_a/.lora_b tensor", path,
                             t->name);
        }
        char base[256];
        if (n - 7 >= sizeof(base)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor name '%.64s...' too long", path, t->name);
        }
        memcpy(base, t->name, n - 7);
        base[n - 7]   = 0;
        int64_t layer = -1;
        int     slot  = -1;
        if (!slot_of_name(m, base, &layer, &slot)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: tensor '%s' adapts '%s', which is not a projection "
                             "of this model werk can adapt",
                             path, t->name, base);
        }
        const werk_wview *w = werk_layer_weight(&m->layers[layer], slot);
        int64_t           r = is_a ? t->shape[0] : t->shape[1];
        if (t->n_dims != 2 || r < 1 || r > 65536 || (is_a && t->shape[1] != w->cols) ||
            (is_b && t->shape[0] != w->rows)) {
            return WERK_FAIL(err, WERK_E_SHAPE,
                             "%s: tensor '%s' has shape [%lld, %lld], which does not fit '%s' "
                             "[%lld, %lld] (wrong base model?)",
                             path, t->name, (long long)t->shape[0],
                             (long long)(t->n_dims > 1 ? t->shape[1] : 1), base, (long long)w->rows,
                             (long long)w->cols);
        }
        if (*rank && r != *rank) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: tensor '%s' has rank %lld, others %lld (one rank per "
                             "adapter)",
                             path, t->name, (long long)r, (long long)*rank);
        }
        *rank = r;
        if (!werk_dtype_can_dequantize(t->src_type)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s' has type %s", path, t->name,
                             werk_dtype_name(t->src_type));
        }
        int64_t *dst = is_a ? &ia[layer * WERK_LORA_N_SLOTS + slot] : &ib[layer * WERK_LORA_N_SLOTS + slot];
        if (*dst >= 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s' appears twice", path, t->name);
        }
        *dst = i;
    }
    if (*rank == 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no LoRA tensors", path);
    }
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        if ((ia[i] < 0) != (ib[i] < 0)) {
            const werk_wview *w =
                werk_lora_slot_weight(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s' has lora_a or lora_b but not both", path, w->name);
        }
    }
    return WERK_OK;
}

static void copy_tensor(const werk_gguf_tensor *t, float *dst) {
    int64_t  rows = t->shape[0], cols = t->shape[1];
    uint64_t rb = 0;
    werk_dtype_bytes(t->src_type, (uint64_t)cols, &rb, NULL);
    for (int64_t r = 0; r < rows; r++) {
        werk_dequantize_row(t->src_type, (const char *)t->data + (uint64_t)r * rb, dst + r * cols, cols);
    }
}

werk_status werk_lora_from_gguf(const werk_gguf *g, const char *path, const werk_model *m, float scale,
                                werk_lora **out, werk_err *err) {
    *out               = NULL;
    int64_t     n_mats = m->n_layer * WERK_LORA_N_SLOTS, rank = 0;
    int64_t    *ia = NULL, *ib = NULL;
    bool       *present = NULL;
    float       alpha   = 0;
    bool        rslora = false, werk_alpha = false;
    werk_status st     = check_kv(g, m, path, &alpha, &rslora, &werk_alpha, err);
    if (st) {
        goto out;
    }
    ia      = malloc((size_t)n_mats * sizeof(int64_t));
    ib      = malloc((size_t)n_mats * sizeof(int64_t));
    present = calloc((size_t)n_mats, sizeof(bool));
    if (!ia || !ib || !present) {
        st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        goto out;
    }
    for (int64_t i = 0; i < n_mats; i++) {
        ia[i] = ib[i] = -1;
    }
    if ((st = index_tensors(g, m, path, ia, ib, &rank, err))) {
        goto out;
    }
    if (!werk_alpha) {
        rslora = false;
        if (alpha == 0) {
            alpha = (float)rank; // llama.cpp: no alpha means scale 1
        }
    }
    for (int64_t i = 0; i < n_mats; i++) {
        present[i] = ia[i] >= 0;
    }
    werk_lora *l = NULL;
    if ((st = werk_lora_create(m, rank, alpha, rslora, scale, present, &l, err))) {
        goto out;
    }
    for (int64_t i = 0; i < n_mats; i++) {
        if (present[i]) {
            copy_tensor(werk_gguf_tensor_at(g, ia[i]), l->mats[i].a);
            copy_tensor(werk_gguf_tensor_at(g, ib[i]), l->mats[i].b);
        }
    }
    *out = l;
out:
    free(ia);
    free(ib);
    free(present);
    return st;
}

werk_status
werk_lora_load_gguf(const char *path, const werk_model *m, float scale, werk_lora **out, werk_err *err) {
    *out           = NULL;
    werk_gguf  *g  = NULL;
    werk_status st = werk_gguf_read(path, &g, err);
    if (!st) {
        st = werk_lora_from_gguf(g, path, m, scale, out, err);
    }
    werk_gguf_free(g);
    return st;
}

werk_status werk_lora_save_gguf_as(const werk_lora *l, const werk_model *m, const char *path,
                                   const werk_lora_meta *meta, werk_dtype type, werk_err *err) {
    if (!l || !m || !path || l->n_layer != m->n_layer) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: save_gguf needs an adapter made for this model and a path");
    }
    // llama.cpp's LLAMA_FTYPE_*: ALL_F32 0, MOSTLY_F16 1, MOSTLY_BF16 32
    uint32_t ftype = 0;
    if (type == WERK_DTYPE_F16) {
        ftype = 1;
    } else if (type == WERK_DTYPE_BF16) {
        ftype = 32;
    } else if (type != WERK_DTYPE_F32) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: adapters are stored as f32, f16 or bf16, not %s",
                         werk_dtype_name(type));
    }
    werk_gguf *g = werk_gguf_init();
    if (!g) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    // llama.cpp's scale is alpha / r: with rsLoRA store alpha x sqrt(r)
    float       llama_alpha = l->rslora ? (float)((double)l->alpha * sqrt((double)l->rank)) : l->alpha;
    werk_status st          = WERK_OK;
    if ((st = werk_gguf_set_str(g, "general.architecture", m->arch, err)) ||
        (st = werk_gguf_set_str(g, "general.type", "adapter", err)) ||
        (st = werk_gguf_set_str(g, "adapter.type", "lora", err)) ||
        (st = werk_gguf_set_f32(g, "adapter.lora.alpha", llama_alpha, err)) ||
        (st = werk_gguf_set_f32(g, "werk.lora.alpha", l->alpha, err)) ||
        (st = werk_gguf_set_bool(g, "werk.lora.use_rslora", l->rslora, err)) ||
        (st = werk_gguf_set_u32(g, "general.file_type", ftype, err))) {
        goto out;
    }
    for (int i = 0; meta && i < meta->n; i++) {
        char key[256];
        snprintf(key, sizeof(key), "training.%s", meta->keys[i]);
        if ((st = werk_gguf_set_str(g, key, meta->values[i], err))) {
            goto out;
        }
    }
    for (int64_t i = 0; i < l->n_layer * WERK_LORA_N_SLOTS; i++) {
        const werk_lora_mat *lm = &l->mats[i];
        if (!lm->a) {
            continue;
        }
        const werk_wview *w = werk_lora_slot_weight(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
        char              name[256];
        int64_t           sa[2] = {lm->r, w->cols}, sb[2] = {w->rows, lm->r};
        int64_t           ia = -1, ib = -1;
        snprintf(name, sizeof(name), "%s.lora_a", w->name);
        if ((st = werk_gguf_add_tensor(g, name, WERK_DTYPE_F32, 2, sa, lm->a,
                                       (uint64_t)(sa[0] * sa[1]) * sizeof(float), &ia, err))) {
            goto out;
        }
        snprintf(name, sizeof(name), "%s.lora_b", w->name);
        if ((st = werk_gguf_add_tensor(g, name, WERK_DTYPE_F32, 2, sb, lm->b,
                                       (uint64_t)(sb[0] * sb[1]) * sizeof(float), &ib, err))) {
            goto out;
        }
        werk_gguf_tensor_at_mut(g, ia)->type = type; // the writer converts row by row
        werk_gguf_tensor_at_mut(g, ib)->type = type;
    }
    st = werk_gguf_write(g, path, false, err);
out:
    werk_gguf_free(g);
    return st;
}

werk_status werk_lora_save_gguf(const werk_lora *l, const werk_model *m, const char *path,
                                const werk_lora_meta *meta, werk_err *err) {
    return werk_lora_save_gguf_as(l, m, path, meta, WERK_DTYPE_F32, err);
}
