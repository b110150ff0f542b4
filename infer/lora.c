/* infer/lora.c - the werk_lora object: flat parameter storage, accessors, load dispatch
 *
 * An adapter holds, for each (layer, slot) it targets, a pair a [r, in], b [out, r] in f32
 * with rows in the GGUF's order (llama q/k rows permuted for interleaved rope, see
 * werk_lora_qk_perm). All pairs live in one flat array, layer-major, slots q,k,v,o,gate,
 * up,down, A then B, so an optimizer or a checkpoint can treat the parameters as one
 * vector; mats[] point into it. scale = alpha / r (alpha / sqrt(r) with rsLoRA) x the
 * caller's scale. Files: PEFT dirs (lora_peft.c), llama.cpp LoRA GGUFs (lora_gguf.c).
 */
#include "infer/lora_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *const slot_peft_names[WERK_LORA_N_SLOTS] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"};

const char *werk_lora_slot_peft_name(int slot) {
    return slot >= 0 && slot < WERK_LORA_N_SLOTS ? slot_peft_names[slot] : "?";
}

const werk_wview *werk_lora_slot_weight(const werk_model *m, int64_t il, int slot) {
    return werk_layer_weight(&m->layers[il], slot);
}

bool werk_lora_qk_perm(const werk_model *m, int slot, int64_t rows, int64_t *perm) {
    if (m->rope_style != WERK_ROPE_NORM || (slot != WERK_LORA_Q && slot != WERK_LORA_K)) {
        return false;
    }
    // llama.cpp's convert permute: GGUF row h*hd + 2i + j = HF row h*hd + j*hd/2 + i
    int64_t hd = m->head_dim, half = hd / 2, nh = rows / hd;
    for (int64_t h = 0; h < nh; h++) {
        for (int64_t i = 0; i < half; i++) {
            for (int64_t j = 0; j < 2; j++) {
                perm[h * hd + 2 * i + j] = h * hd + j * half + i;
            }
        }
    }
    return true;
}

static float scale_of(int64_t r, float alpha, bool rslora) {
    return (float)((double)alpha / (rslora ? sqrt((double)r) : (double)r));
}

werk_status werk_lora_create(const werk_model *m,
                             int64_t           r,
                             float             alpha,
                             bool              rslora,
                             float             scale,
                             const bool       *present,
                             werk_lora       **out,
                             werk_err         *err) {
    *out = NULL;
    if (r < 1 || r > 65536 || !isfinite(alpha) || !isfinite(scale)) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: rank %lld / alpha %g / scale %g out of range", (long long)r,
                         (double)alpha, (double)scale);
    }
    int64_t  n_mats = m->n_layer * WERK_LORA_N_SLOTS, n_flat = 0;
    uint32_t mask = 0;
    for (int64_t i = 0; i < n_mats; i++) {
        if (present[i]) {
            const werk_wview *w =
                werk_lora_slot_weight(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
            n_flat += r * (w->cols + w->rows);
            mask |= 1u << (i % WERK_LORA_N_SLOTS);
        }
    }
    werk_lora *l = calloc(1, sizeof(*l));
    if (l) {
        l->mats = calloc((size_t)n_mats, sizeof(werk_lora_mat));
        l->flat = calloc((size_t)(n_flat > 0 ? n_flat : 1), sizeof(float));
    }
    if (!l || !l->mats || !l->flat) {
        werk_lora_free(l);
        return WERK_FAIL(err, WERK_E_OOM, "lora: out of memory for %lld parameters", (long long)n_flat);
    }
    l->n_layer   = m->n_layer;
    l->max_r     = r;
    l->rank      = r;
    l->alpha     = alpha;
    l->rslora    = rslora;
    l->slot_mask = mask;
    l->n_flat    = n_flat;
    l->scale     = scale_of(r, alpha, rslora) * scale;
    float *p     = l->flat;
    for (int64_t i = 0; i < n_mats; i++) {
        if (present[i]) {
            const werk_wview *w =
                werk_lora_slot_weight(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
            l->mats[i].r = r;
            l->mats[i].a = p;
            p += r * w->cols;
            l->mats[i].b = p;
            p += w->rows * r;
        }
    }
    *out = l;
    return WERK_OK;
}

werk_status werk_lora_alloc(const werk_model *m,
                            int64_t           r,
                            float             alpha,
                            bool              rslora,
                            uint32_t          slot_mask,
                            werk_lora       **out,
                            werk_err         *err) {
    *out = NULL;
    if (!m || (slot_mask & ~WERK_LORA_ALL_LINEAR) || !slot_mask) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: slot mask 0x%x names no projection or unknown ones",
                         slot_mask);
    }
    bool *present = calloc((size_t)(m->n_layer * WERK_LORA_N_SLOTS), sizeof(bool));
    if (!present) {
        return WERK_FAIL(err, WERK_E_OOM, "lora: out of memory");
    }
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        present[i] = (slot_mask >> (i % WERK_LORA_N_SLOTS)) & 1u;
    }
    werk_status st = werk_lora_create(m, r, alpha, rslora, 1.0f, present, out, err);
    free(present);
    return st;
}

werk_status werk_lora_alloc_like(const werk_lora *l, werk_lora **out, werk_err *err) {
    *out = NULL;
    if (!l) {
        return WERK_FAIL(err, WERK_E_ARG, "lora: alloc_like of NULL");
    }
    int64_t    n_mats = l->n_layer * WERK_LORA_N_SLOTS;
    werk_lora *c      = calloc(1, sizeof(*c));
    if (c) {
        *c      = *l;
        c->mats = calloc((size_t)n_mats, sizeof(werk_lora_mat));
        c->flat = calloc((size_t)(l->n_flat > 0 ? l->n_flat : 1), sizeof(float));
    }
    if (!c || !c->mats || !c->flat) {
        if (c) {
            free(c->mats);
            free(c->flat);
        }
        free(c);
        return WERK_FAIL(err, WERK_E_OOM, "lora: out of memory for %lld parameters", (long long)l->n_flat);
    }
    for (int64_t i = 0; i < n_mats; i++) {
        c->mats[i].r = l->mats[i].r;
        if (l->mats[i].a) {
            c->mats[i].a = c->flat + (l->mats[i].a - l->flat);
            c->mats[i].b = c->flat + (l->mats[i].b - l->flat);
        }
    }
    *out = c;
    return WERK_OK;
}

float *werk_lora_params(werk_lora *l, int64_t *n) {
    *n = l->n_flat;
    return l->flat;
}

const float *werk_lora_params_const(const werk_lora *l, int64_t *n) {
    *n = l->n_flat;
    return l->flat;
}

int64_t werk_lora_rank(const werk_lora *l) { return l->rank; }

float werk_lora_alpha(const werk_lora *l) { return l->alpha; }

uint32_t werk_lora_slot_mask(const werk_lora *l) { return l->slot_mask; }

werk_status
werk_lora_load(const char *path, const werk_model *m, float scale, werk_lora **out, werk_err *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return WERK_FAIL(err, WERK_E_IO, "%s: no such adapter (a PEFT dir or a LoRA .gguf)", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        return werk_lora_load_peft(path, m, scale, out, err);
    }
    return werk_lora_load_gguf(path, m, scale, out, err);
}

void werk_lora_free(werk_lora *l) {
    if (!l) {
        return;
    }
    free(l->flat);
    free(l->mats);
    free(l);
}
