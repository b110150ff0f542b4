/* infer/lora_peft.c - PEFT LoRA adapter dirs <-> werk_lora
 *
 * A PEFT dir holds adapter_config.json (peft_type "LORA", r, lora_alpha, use_rslora,
 * target_modules; DoRA, rank/alpha patterns and trained biases are refused) and
 * adapter_model.safetensors with, for each targeted projection,
 *   base_model.model.model.layers.<i>.<self_attn|mlp>.<q|k|v|o|gate|up|down>_proj.lora_A.weight [r, in]
 *   ...lora_B.weight [out, r]
 * (read: F32, F16 or BF16; written: F32 unless asked for F16/BF16, sorted by name like the
 * safetensors library).
 * llama GGUFs store q/k rows permuted for interleaved rope, so B rows of q/k are permuted
 * on load and un-permuted on save (werk_lora_qk_perm); the other families keep HF's order.
 * Saving writes each file atomically; provenance strings go into the safetensors
 * __metadata__ as "training.<key>" (next to PEFT's "format": "pt"), because PEFT's config
 * loader may reject keys it does not know.
 */
#include "infer/lora_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool json_empty_or_null(const cJSON *o) {
    return !o || cJSON_IsNull(o) || ((cJSON_IsObject(o) || cJSON_IsArray(o)) && !o->child) ||
           (cJSON_IsBool(o) && cJSON_IsFalse(o));
}

static werk_status read_config(const char *dir, int64_t *r, float *alpha, bool *rslora, werk_err *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
    cJSON      *c  = NULL;
    werk_status st = werk_json_read_file(path, 1u << 20, &c, err);
    if (st) {
        return st;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "peft_type");
    const cJSON *jr   = cJSON_GetObjectItemCaseSensitive(c, "r");
    const cJSON *ja   = cJSON_GetObjectItemCaseSensitive(c, "lora_alpha");
    const cJSON *rs   = cJSON_GetObjectItemCaseSensitive(c, "use_rslora");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "LORA") != 0) {
        st = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: peft_type is not \"LORA\"", path);
    } else if (!cJSON_IsNumber(jr) || jr->valuedouble < 1 || jr->valuedouble > 65536 ||
               jr->valuedouble != floor(jr->valuedouble) || !cJSON_IsNumber(ja) ||
               !isfinite(ja->valuedouble)) {
        st = WERK_FAIL(err, WERK_E_FORMAT, "%s: r must be a positive integer and lora_alpha a number", path);
    } else if (!json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "use_dora")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "rank_pattern")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "alpha_pattern")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "lora_bias"))) {
        st = WERK_FAIL(err, WERK_E_UNSUPPORTED,
                       "%s: DoRA, rank/alpha patterns and LoRA biases are not supported", path);
    } else {
        *r      = (int64_t)jr->valuedouble;
        *alpha  = (float)ja->valuedouble;
        *rslora = cJSON_IsTrue(rs);
    }
    cJSON_Delete(c);
    return st;
}

/* Which tensor of st is A / B of each (layer, slot); checks names and shapes. */
static werk_status index_tensors(const werk_model *m,
                                 const werk_st    *st,
                                 const char       *path,
                                 int64_t           r,
                                 int64_t          *ia,
                                 int64_t          *ib,
                                 werk_err         *err) {
    for (int64_t i = 0; i < werk_st_n_tensors(st); i++) {
        const werk_st_tensor *t     = werk_st_tensor_at(st, i);
        int                   layer = -1, used = 0;
        char                  part[32], proj[32], ab = 0;
        if (sscanf(t->name, "base_model.model.model.layers.%d.%31[^.].%31[^.].lora_%c.weight%n", &layer, part,
                   proj, &ab, &used) != 4 ||
            t->name[used] != 0 || layer < 0 || layer >= m->n_layer || (ab != 'A' && ab != 'B')) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: tensor %s is not a LoRA pair of a layer werk knows", path, t->name);
        }
        int slot = -1;
        for (int k = 0; k < WERK_LORA_N_SLOTS; k++) {
            if (strcmp(proj, werk_lora_slot_peft_name(k)) == 0) {
                slot = k;
            }
        }
        if (slot < 0 || (strcmp(part, slot < WERK_LORA_GATE ? "self_attn" : "mlp") != 0)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor %s targets a module werk does not know",
                             path, t->name);
        }
        const werk_wview *w    = werk_layer_weight(&m->layers[layer], slot);
        int64_t           rows = ab == 'A' ? r : w->rows, cols = ab == 'A' ? w->cols : r;
        if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
            return WERK_FAIL(err, WERK_E_SHAPE, "%s: %s has shape [%lld, %lld], expected [%lld, %lld]", path,
                             t->name, (long long)t->shape[0], (long long)t->shape[1], (long long)rows,
                             (long long)cols);
        }
        if (t->type != WERK_DTYPE_F32 && t->type != WERK_DTYPE_F16 && t->type != WERK_DTYPE_BF16) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: %s has type %s (f32, f16 or bf16 expected)", path,
                             t->name, werk_dtype_name(t->type));
        }
        int64_t *dst =
            ab == 'A' ? &ia[layer * WERK_LORA_N_SLOTS + slot] : &ib[layer * WERK_LORA_N_SLOTS + slot];
        if (*dst >= 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: %s appears twice", path, t->name);
        }
        *dst = i;
    }
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        if ((ia[i] < 0) != (ib[i] < 0)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: layer %lld %s has lora_A or lora_B but not both", path,
                             (long long)(i / WERK_LORA_N_SLOTS),
                             werk_lora_slot_peft_name((int)(i % WERK_LORA_N_SLOTS)));
        }
    }
    return WERK_OK;
}

/* Copies a [rows, cols] tensor to f32 (dst row g = source row perm[g] when perm). */
static void copy_rows(const werk_st_tensor *t, int64_t rows, int64_t cols, const int64_t *perm, float *dst) {
    uint64_t rb = (uint64_t)cols * (t->type == WERK_DTYPE_F32 ? 4u : 2u);
    for (int64_t g = 0; g < rows; g++) {
        int64_t src = perm ? perm[g] : g;
        werk_dequantize_row(t->type, (const char *)t->data + (uint64_t)src * rb, dst + g * cols, cols);
    }
}

werk_status
werk_lora_load_peft(const char *dir, const werk_model *m, float scale, werk_lora **out, werk_err *err) {
    *out               = NULL;
    int64_t     r      = 0;
    float       alpha  = 0;
    bool        rslora = false;
    werk_status st     = read_config(dir, &r, &alpha, &rslora, err);
    if (st) {
        return st;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    werk_st *sf = NULL;
    if ((st = werk_st_read(path, &sf, err))) {
        return st;
    }
    int64_t  n_mats  = m->n_layer * WERK_LORA_N_SLOTS;
    int64_t *ia      = malloc((size_t)n_mats * sizeof(int64_t));
    int64_t *ib      = malloc((size_t)n_mats * sizeof(int64_t));
    bool    *present = calloc((size_t)n_mats, sizeof(bool));
    int64_t *perm    = malloc((size_t)(m->n_head * m->head_dim + 1) * sizeof(int64_t));
    if (!ia || !ib || !present || !perm) {
        st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        goto out;
    }
    for (int64_t i = 0; i < n_mats; i++) {
        ia[i] = ib[i] = -1;
    }
    if ((st = index_tensors(m, sf, path, r, ia, ib, err))) {
        goto out;
    }
    bool any = false;
    for (int64_t i = 0; i < n_mats; i++) {
        present[i] = ia[i] >= 0;
        any        = any || present[i];
    }
    if (!any) {
        st = WERK_FAIL(err, WERK_E_FORMAT, "%s: no LoRA tensors", path);
        goto out;
    }
    werk_lora *l = NULL;
    if ((st = werk_lora_create(m, r, alpha, rslora, scale, present, &l, err))) {
        goto out;
    }
    for (int64_t i = 0; i < n_mats; i++) {
        if (!present[i]) {
            continue;
        }
        int               slot = (int)(i % WERK_LORA_N_SLOTS);
        const werk_wview *w    = werk_lora_slot_weight(m, i / WERK_LORA_N_SLOTS, slot);
        bool              pm   = werk_lora_qk_perm(m, slot, w->rows, perm);
        copy_rows(werk_st_tensor_at(sf, ia[i]), r, w->cols, NULL, l->mats[i].a);
        copy_rows(werk_st_tensor_at(sf, ib[i]), w->rows, r, pm ? perm : NULL, l->mats[i].b);
    }
    *out = l;
out:
    free(ia);
    free(ib);
    free(present);
    free(perm);
    werk_st_free(sf);
    return st;
}

// ---- saving ---------------------------------------------------------------------------

typedef struct peft_tensor {
    char             name[160];
    werk_gguf_tensor t;
} peft_tensor;

static int cmp_peft_name(const void *x, const void *y) {
    return strcmp(((const peft_tensor *)x)->name, ((const peft_tensor *)y)->name);
}

/* The layers an adapter targets, if each of them targets the same slots (PEFT's
 * target_modules + layers_to_transform cannot say more). *all: every layer. */
static werk_status targeted_layers(const werk_lora *l, const char *dir, bool *all, werk_err *err) {
    *all = true;
    for (int64_t il = 0; il < l->n_layer; il++) {
        uint32_t mask = 0;
        for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
            mask |= l->mats[il * WERK_LORA_N_SLOTS + s].a ? 1u << s : 0u;
        }
        if (mask != 0 && mask != l->slot_mask) {
            return WERK_FAIL(
                err, WERK_E_UNSUPPORTED,
                "%s: layer %lld targets other projections than the rest; PEFT cannot describe it", dir,
                (long long)il);
        }
        *all = *all && mask != 0;
    }
    return WERK_OK;
}

static werk_status
write_config(const werk_lora *l, const char *dir, const char *base_name, bool all_layers, werk_err *err) {
    cJSON *c = cJSON_CreateObject();
    if (!c) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
    }
    cJSON_AddItemToObject(c, "alpha_pattern", cJSON_CreateObject());
    if (base_name) {
        cJSON_AddStringToObject(c, "base_model_name_or_path", base_name);
    } else {
        cJSON_AddNullToObject(c, "base_model_name_or_path");
    }
    cJSON_AddStringToObject(c, "bias", "none");
    cJSON_AddBoolToObject(c, "fan_in_fan_out", false);
    cJSON_AddBoolToObject(c, "inference_mode", true);
    cJSON_AddBoolToObject(c, "init_lora_weights", true);
    cJSON_AddNullToObject(c, "layers_pattern");
    if (all_layers) {
        cJSON_AddNullToObject(c, "layers_to_transform");
    } else {
        cJSON *layers = cJSON_AddArrayToObject(c, "layers_to_transform");
        for (int64_t il = 0; layers && il < l->n_layer; il++) {
            bool any = false;
            for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
                any = any || l->mats[il * WERK_LORA_N_SLOTS + s].a;
            }
            if (any) {
                cJSON_AddItemToArray(layers, cJSON_CreateNumber((double)il));
            }
        }
    }
    cJSON_AddNumberToObject(c, "lora_alpha", (double)l->alpha);
    cJSON_AddNumberToObject(c, "lora_dropout", 0.0);
    cJSON_AddNullToObject(c, "modules_to_save");
    cJSON_AddStringToObject(c, "peft_type", "LORA");
    cJSON_AddNumberToObject(c, "r", (double)l->rank);
    cJSON_AddItemToObject(c, "rank_pattern", cJSON_CreateObject());
    cJSON_AddNullToObject(c, "revision");
    cJSON *targets = cJSON_AddArrayToObject(c, "target_modules");
    for (int s = 0; targets && s < WERK_LORA_N_SLOTS; s++) {
        if (l->slot_mask & (1u << s)) {
            cJSON_AddItemToArray(targets, cJSON_CreateString(werk_lora_slot_peft_name(s)));
        }
    }
    cJSON_AddStringToObject(c, "task_type", "CAUSAL_LM");
    cJSON_AddBoolToObject(c, "use_dora", false);
    cJSON_AddBoolToObject(c, "use_rslora", l->rslora);
    char       *text = cJSON_Print(c);
    werk_status st   = WERK_OK;
    if (!text) {
        st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
    } else {
        char path[4096];
        snprintf(path, sizeof(path), "%s/adapter_config.json", dir);
        size_t n = strlen(text);
        text[n]  = '\n'; // replaces the NUL: written with its length below
        st       = werk_write_file_atomic(path, text, n + 1, err);
    }
    free(text);
    cJSON_Delete(c);
    return st;
}

werk_status werk_lora_save_peft_as(const werk_lora      *l,
                                   const werk_model     *m,
                                   const char           *dir,
                                   const char           *base_name,
                                   const werk_lora_meta *meta,
                                   werk_dtype            type,
                                   werk_err             *err) {
    if (!l || !m || !dir || l->n_layer != m->n_layer) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: save_peft needs an adapter made for this model and a dir");
    }
    if (type != WERK_DTYPE_F32 && type != WERK_DTYPE_F16 && type != WERK_DTYPE_BF16) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: adapters are stored as f32, f16 or bf16, not %s",
                         werk_dtype_name(type));
    }
    bool        all = true;
    werk_status st  = targeted_layers(l, dir, &all, err);
    if (st || (st = werk_mkdir_p(dir, err))) {
        return st;
    }
    int64_t                  n_mats = l->n_layer * WERK_LORA_N_SLOTS, n_t = 0;
    int                      n_meta = meta ? meta->n : 0;
    peft_tensor             *ts     = calloc((size_t)(2 * n_mats + 1), sizeof(peft_tensor));
    int64_t                 *perms  = malloc((size_t)(2 * (m->n_head * m->head_dim + 1)) * sizeof(int64_t));
    const werk_gguf_tensor **tp     = calloc((size_t)(2 * n_mats + 1), sizeof(*tp));
    const char             **keys   = calloc((size_t)n_meta + 1, sizeof(char *)),
               **vals               = calloc((size_t)n_meta + 1, sizeof(char *));
    char **owned                    = calloc((size_t)n_meta + 1, sizeof(char *));
    if (!ts || !perms || !tp || !keys || !vals || !owned) {
        st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
        goto out;
    }
    // inverse of the llama q/k permutation: HF row p = GGUF row inv[p]
    int64_t *inv[2]     = {perms, perms + m->n_head * m->head_dim + 1};
    bool     has_inv[2] = {false, false};
    for (int k = 0; k < 2; k++) {
        int64_t  rows = (k == 0 ? m->n_head : m->n_head_kv) * m->head_dim;
        int64_t *fw   = malloc((size_t)(rows + 1) * sizeof(int64_t));
        if (!fw) {
            st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
            goto out;
        }
        has_inv[k] = werk_lora_qk_perm(m, k == 0 ? WERK_LORA_Q : WERK_LORA_K, rows, fw);
        for (int64_t g = 0; has_inv[k] && g < rows; g++) {
            inv[k][fw[g]] = g;
        }
        free(fw);
    }
    for (int64_t i = 0; i < n_mats; i++) {
        const werk_lora_mat *lm = &l->mats[i];
        if (!lm->a) {
            continue;
        }
        int64_t           il = i / WERK_LORA_N_SLOTS;
        int               s  = (int)(i % WERK_LORA_N_SLOTS);
        const werk_wview *w  = werk_layer_weight(&m->layers[il], s);
        for (int ab = 0; ab < 2; ab++) {
            peft_tensor *pt = &ts[n_t++];
            snprintf(pt->name, sizeof(pt->name), "base_model.model.model.layers.%lld.%s.%s.lora_%c.weight",
                     (long long)il, s < WERK_LORA_GATE ? "self_attn" : "mlp", werk_lora_slot_peft_name(s),
                     ab == 0 ? 'A' : 'B');
            pt->t.n_dims   = 2;
            pt->t.shape[0] = ab == 0 ? lm->r : w->rows;
            pt->t.shape[1] = ab == 0 ? w->cols : lm->r;
            pt->t.shape[2] = pt->t.shape[3] = 1;
            pt->t.type     = type;
            pt->t.src_type = WERK_DTYPE_F32;
            pt->t.data                  = ab == 0 ? lm->a : lm->b;
            pt->t.nbytes                = (uint64_t)(pt->t.shape[0] * pt->t.shape[1]) * sizeof(float);
            if (ab == 1 && (s == WERK_LORA_Q || s == WERK_LORA_K) && has_inv[s == WERK_LORA_K]) {
                pt->t.row_map = inv[s == WERK_LORA_K];
            }
        }
    }
    qsort(ts, (size_t)n_t, sizeof(peft_tensor), cmp_peft_name);
    for (int64_t i = 0; i < n_t; i++) {
        ts[i].t.name = ts[i].name;
        tp[i]        = &ts[i].t;
    }
    keys[0] = "format";
    vals[0] = "pt";
    for (int i = 0; i < n_meta; i++) {
        size_t n = strlen(meta->keys[i]) + sizeof("training.");
        owned[i] = malloc(n);
        if (!owned[i]) {
            st = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
            goto out;
        }
        snprintf(owned[i], n, "training.%s", meta->keys[i]);
        keys[i + 1] = owned[i];
        vals[i + 1] = meta->values[i];
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    if ((st = werk_st_write(path, tp, n_t, keys, vals, n_meta + 1, err))) {
        goto out;
    }
    st = write_config(l, dir, base_name, all, err);
out:
    for (int i = 0; owned && i < n_meta; i++) {
        free(owned[i]);
    }
    free(owned);
    free(keys);
    free(vals);
    free(tp);
    free(perms);
    free(ts);
    return st;
}

werk_status werk_lora_save_peft(const werk_lora      *l,
                                const werk_model     *m,
                                const char           *dir,
                                const char           *base_name,
                                const werk_lora_meta *meta,
                                werk_err             *err) {
    return werk_lora_save_peft_as(l, m, dir, base_name, meta, WERK_DTYPE_F32, err);
}
