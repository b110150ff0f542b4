/* infer/lora.c - PEFT LoRA adapter directory -> werk_lora (applied unmerged at run time)
 *
 * A PEFT dir holds adapter_config.json (peft_type "LORA", r, lora_alpha, use_rslora,
 * target_modules; DoRA, rank/alpha patterns and trained biases are refused) and
 * adapter_model.safetensors with, for each targeted projection,
 *   base_model.model.model.layers.<i>.<self_attn|mlp>.<q|k|v|o|gate|up|down>_proj.lora_A.weight [r, in]
 *   ...lora_B.weight [out, r]
 * (F32, F16 or BF16). Pairs are checked against the model's shapes and copied to f32.
 * llama GGUFs store q/k rows permuted for interleaved rope (llama.cpp's convert permute:
 * GGUF row h*hd + 2i + j = HF row h*hd + j*hd/2 + i), so B rows of q/k are permuted the
 * same way; the other families keep HF's order. Scale = alpha / r (alpha / sqrt(r) with
 * rsLoRA) times the caller's scale.
 */
#include "infer/model_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const slot_names[WERK_LORA_N_SLOTS] = {"q_proj",    "k_proj", "v_proj",  "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"};

static const werk_wview *slot_weight(const werk_model *m, int64_t il, int slot) {
    const werk_layer *L = &m->layers[il];
    const werk_wview *w[WERK_LORA_N_SLOTS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return w[slot];
}

static bool json_empty_or_null(const cJSON *o) {
    return !o || cJSON_IsNull(o) || ((cJSON_IsObject(o) || cJSON_IsArray(o)) && !o->child) ||
           (cJSON_IsBool(o) && cJSON_IsFalse(o));
}

static werk_status read_config(const char *dir, int64_t *r, float *scale, werk_err *err) {
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
               jr->valuedouble != floor(jr->valuedouble) || !cJSON_IsNumber(ja)) {
        st = WERK_FAIL(err, WERK_E_FORMAT, "%s: r must be a positive integer and lora_alpha a number", path);
    } else if (!json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "use_dora")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "rank_pattern")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "alpha_pattern")) ||
               !json_empty_or_null(cJSON_GetObjectItemCaseSensitive(c, "lora_bias"))) {
        st = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: DoRA, rank/alpha patterns and LoRA biases are not supported",
                       path);
    } else {
        *r     = (int64_t)jr->valuedouble;
        bool rsl = cJSON_IsTrue(rs);
        *scale   = (float)(ja->valuedouble / (rsl ? sqrt((double)*r) : (double)*r));
    }
    cJSON_Delete(c);
    return st;
}

/* Copies a [rows, cols] tensor to f32 (rows permuted by perm when not NULL). */
static werk_status copy_f32(const werk_st_tensor *t, const char *path, int64_t rows, int64_t cols,
                            const int64_t *perm, float **out, werk_err *err) {
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: %s has shape [%lld, %lld], expected [%lld, %lld]", path, t->name,
                         (long long)t->shape[0], (long long)t->shape[1], (long long)rows, (long long)cols);
    }
    if (t->type != WERK_DTYPE_F32 && t->type != WERK_DTYPE_F16 && t->type != WERK_DTYPE_BF16) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: %s has type %s (f32, f16 or bf16 expected)", path, t->name,
                         werk_dtype_name(t->type));
    }
    uint64_t rb;
    werk_status st = werk_dtype_bytes(t->type, (uint64_t)cols, &rb, err);
    if (st) {
        return st;
    }
    float *f = malloc((size_t)(rows * cols) * sizeof(float));
    if (!f) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t src = perm ? perm[r] : r;
        werk_dequantize_row(t->type, (const char *)t->data + (uint64_t)src * rb, f + r * cols, cols);
    }
    *out = f;
    return WERK_OK;
}

static werk_status load_tensors(werk_lora *l, const werk_model *m, const werk_st *st, const char *path, int64_t r,
                                werk_err *err) {
    int64_t max_rows = m->n_head * m->head_dim;
    int64_t *perm    = malloc((size_t)max_rows * sizeof(int64_t));
    if (!perm) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    werk_status s = WERK_OK;
    for (int64_t i = 0; i < werk_st_n_tensors(st) && !s; i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        int  layer = -1, used = 0;
        char part[32], proj[32], ab = 0;
        if (sscanf(t->name, "base_model.model.model.layers.%d.%31[^.].%31[^.].lora_%c.weight%n", &layer, part, proj,
                   &ab, &used) != 4 ||
            t->name[used] != 0 || layer < 0 || layer >= m->n_layer || (ab != 'A' && ab != 'B')) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor %s is not a LoRA pair of a layer werk knows", path,
                          t->name);
            break;
        }
        int slot = -1;
        for (int k = 0; k < WERK_LORA_N_SLOTS; k++) {
            if (strcmp(proj, slot_names[k]) == 0) {
                slot = k;
            }
        }
        if (slot < 0 || (strcmp(part, slot < WERK_LORA_GATE ? "self_attn" : "mlp") != 0)) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor %s targets a module werk does not know", path, t->name);
            break;
        }
        const werk_wview *w  = slot_weight(m, layer, slot);
        werk_lora_mat    *lm = &l->mats[layer * WERK_LORA_N_SLOTS + slot];
        lm->r                = r;
        const int64_t *pm    = NULL;
        if (ab == 'B' && m->rope_style == WERK_ROPE_NORM && (slot == WERK_LORA_Q || slot == WERK_LORA_K)) {
            int64_t hd = m->head_dim, half = hd / 2, nh = w->rows / hd;
            for (int64_t h = 0; h < nh; h++) {
                for (int64_t ii = 0; ii < half; ii++) {
                    for (int64_t j = 0; j < 2; j++) {
                        perm[h * hd + 2 * ii + j] = h * hd + j * half + ii;
                    }
                }
            }
            pm = perm;
        }
        float **dst = ab == 'A' ? &lm->a : &lm->b;
        if (*dst) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: %s appears twice", path, t->name);
            break;
        }
        s = ab == 'A' ? copy_f32(t, path, r, w->cols, NULL, dst, err) : copy_f32(t, path, w->rows, r, pm, dst, err);
    }
    free(perm);
    for (int64_t i = 0; i < l->n_layer * WERK_LORA_N_SLOTS && !s; i++) {
        if (!l->mats[i].a != !l->mats[i].b) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: layer %lld %s has lora_A or lora_B but not both", path,
                          (long long)(i / WERK_LORA_N_SLOTS), slot_names[i % WERK_LORA_N_SLOTS]);
        }
    }
    return s;
}

werk_status werk_lora_load_peft(const char *dir, const werk_model *m, float scale, werk_lora **out,
                                werk_err *err) {
    *out        = NULL;
    int64_t     r = 0;
    float       s = 0;
    werk_status st = read_config(dir, &r, &s, err);
    if (st) {
        return st;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/adapter_model.safetensors", dir);
    werk_st *sf = NULL;
    if ((st = werk_st_read(path, &sf, err))) {
        return st;
    }
    werk_lora *l = calloc(1, sizeof(*l));
    if (l) {
        l->mats = calloc((size_t)(m->n_layer * WERK_LORA_N_SLOTS), sizeof(werk_lora_mat));
    }
    if (!l || !l->mats) {
        free(l);
        werk_st_free(sf);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    l->n_layer = m->n_layer;
    l->max_r   = r;
    l->scale   = s * scale;
    st         = load_tensors(l, m, sf, path, r, err);
    werk_st_free(sf);
    if (st) {
        werk_lora_free(l);
        return st;
    }
    *out = l;
    return WERK_OK;
}

void werk_lora_free(werk_lora *l) {
    if (!l) {
        return;
    }
    for (int64_t i = 0; i < l->n_layer * WERK_LORA_N_SLOTS; i++) {
        free(l->mats[i].a);
        free(l->mats[i].b);
    }
    free(l->mats);
    free(l);
}
