/* tests/infer/test_lora_io.c - LoRA adapter storage and files: layout, PEFT and GGUF round trips
 *
 * For stories260K (llama2c and HF conversions, llama q/k permutation) and the tiny
 * llama/qwen2/qwen3/gemma3 models: werk_lora_alloc's flat layout (layer-major, slots
 * q..down, A then B, lengths from the model's shapes); the golden case_a PEFT adapter
 * loaded, saved as PEFT and reloaded bit for bit (and the saved safetensors holding the
 * original tensors bit for bit), saved as a llama.cpp LoRA GGUF and reloaded bit for bit;
 * werk_forward_lora with the GGUF-loaded adapter against the case's adapter_logits (max
 * abs 1e-4); two adapters with scales s1, s2 giving the same logits as one adapter whose
 * B is s1 B1 and s2 B2 stacked (sum of updates); alloc_like zeroed with the same layout;
 * an allocated rsLoRA adapter on q/v/gate with pseudo-random values through both formats
 * (alpha, rsLoRA and provenance strings kept); werk_lora_merge into the base, written and
 * reloaded, giving the unmerged adapter's logits (1e-4 abs + 1e-4 rel: f32 rounding of
 * W + BA against W x + B(A x)).
 */
#include "werk_test.h"
#include "werk_test_model.h"

#include "infer/model_int.h"

static const werk_wview *slot_w(const werk_model *m, int64_t il, int s) {
    const werk_layer *L                    = &m->layers[il];
    const werk_wview *w[WERK_LORA_N_SLOTS] = {&L->wq,     &L->wk,   &L->wv,    &L->wo,
                                              &L->w_gate, &L->w_up, &L->w_down};
    return w[s];
}

static bool same_lora(const werk_lora *x, const werk_lora *y, const char *label) {
    int64_t      nx = 0, ny = 0;
    const float *px = werk_lora_params_const(x, &nx), *py = werk_lora_params_const(y, &ny);
    bool         ok = nx == ny && memcmp(px, py, (size_t)nx * sizeof(float)) == 0 &&
              werk_lora_rank(x) == werk_lora_rank(y) && werk_lora_alpha(x) == werk_lora_alpha(y) &&
              werk_lora_slot_mask(x) == werk_lora_slot_mask(y) && x->scale == y->scale &&
              x->rslora == y->rslora;
    for (int64_t i = 0; ok && i < x->n_layer * WERK_LORA_N_SLOTS; i++) {
        const werk_lora_mat *a = &x->mats[i], *b = &y->mats[i];
        ok = !a->a == !b->a && !a->b == !b->b && a->r == b->r &&
             (!a->a || ((a->a - px) == (b->a - py) && (a->b - px) == (b->b - py)));
    }
    WT_CHECK(ok, "%s: adapters differ (n %lld vs %lld, rank %lld/%lld, alpha %g/%g, mask %x/%x, scale %g/%g)", label,
             (long long)nx, (long long)ny, (long long)werk_lora_rank(x), (long long)werk_lora_rank(y),
             (double)werk_lora_alpha(x), (double)werk_lora_alpha(y), werk_lora_slot_mask(x), werk_lora_slot_mask(y),
             (double)x->scale, (double)y->scale);
    return ok;
}

static void check_alloc(const werk_model *m, const char *label) {
    werk_err   err = {0};
    werk_lora *l = NULL, *g = NULL;
    WT_CHECK(werk_lora_alloc(m, 4, 8.0f, false, WERK_LORA_ALL_LINEAR, &l, &err) == WERK_OK, "%s: %s", label,
             err.msg);
    if (!l) {
        return;
    }
    int64_t n = 0, off = 0;
    float  *p  = werk_lora_params(l, &n);
    bool    ok = true, zero = true;
    for (int64_t il = 0; il < m->n_layer; il++) {
        for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
            const werk_wview    *w  = slot_w(m, il, s);
            const werk_lora_mat *lm = &l->mats[il * WERK_LORA_N_SLOTS + s];
            ok                      = ok && lm->a == p + off && lm->b == p + off + 4 * w->cols && lm->r == 4;
            off += 4 * (w->cols + w->rows);
        }
    }
    for (int64_t i = 0; i < n; i++) {
        zero = zero && p[i] == 0;
    }
    WT_CHECK(ok && off == n, "%s: flat layout (n %lld, expected %lld)", label, (long long)n, (long long)off);
    WT_CHECK(zero, "%s: alloc not zero", label);
    WT_CHECK(werk_lora_rank(l) == 4 && werk_lora_alpha(l) == 8.0f && werk_lora_slot_mask(l) == 0x7f &&
                 fabsf(l->scale - 2.0f) < 1e-7f,
             "%s: rank/alpha/mask/scale", label);
    WT_CHECK(werk_lora_alloc_like(l, &g, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (g) {
        same_lora(l, g, label);
        werk_lora_free(g);
    }
    werk_lora_free(l);
    // attention only, rsLoRA
    WT_CHECK(werk_lora_alloc(m, 16, 8.0f, true, 0xf, &l, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (l) {
        WT_CHECK(l->mats[WERK_LORA_GATE].a == NULL && l->mats[WERK_LORA_V].a != NULL &&
                     fabsf(l->scale - 2.0f) < 1e-7f && werk_lora_slot_mask(l) == 0xf,
                 "%s: attention-only rslora alloc", label);
        werk_lora_free(l);
    }
    WT_CHECK(werk_lora_alloc(m, 4, 8.0f, false, 0, &l, &err) != WERK_OK && !l, "%s: empty mask accepted",
             label);
}

/* A trained-looking adapter (rank 3, alpha 5, rsLoRA, q/v/gate only, pseudo-random
 * values) survives save_peft / save_gguf + load bit for bit, alpha and rsLoRA included,
 * and both files carry the provenance strings. */
static void check_alloc_roundtrip(const werk_model *m, const char *tag, const char *label) {
    werk_err   err = {0};
    werk_lora *l = NULL, *p = NULL, *g = NULL;
    char       dir[1024], path[1100], name[200];
    WT_CHECK(werk_lora_alloc(m, 3, 5.0f, true, 0x15, &l, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (!l) {
        return;
    }
    int64_t  n = 0;
    float   *x = werk_lora_params(l, &n);
    uint32_t h = 12345;
    for (int64_t i = 0; i < n; i++) {
        h    = h * 1664525u + 1013904223u;
        x[i] = (float)((int32_t)(h >> 8) - (1 << 23)) / (float)(1 << 23);
    }
    snprintf(name, sizeof(name), "lora_io_rt_%s", tag);
    wt_tmp(dir, sizeof(dir), name);
    snprintf(path, sizeof(path), "%s.gguf", dir);
    const char    *keys[] = {"recipe"}, *vals[] = {"unit test"};
    werk_lora_meta meta   = {keys, vals, 1};
    WT_CHECK(werk_lora_save_peft(l, m, dir, NULL, &meta, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_lora_save_gguf(l, m, path, &meta, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_lora_load(dir, m, 1.0f, &p, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_lora_load(path, m, 1.0f, &g, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (p && g) {
        same_lora(l, p, label);
        same_lora(l, g, label);
        WT_CHECK(g->rslora && werk_lora_alpha(g) == 5.0f && fabsf(g->scale - 5.0f / sqrtf(3.0f)) < 1e-6f,
                 "%s: rsLoRA alpha/scale after the GGUF round trip", label);
    }
    werk_gguf *gg = NULL;
    werk_st   *st = NULL;
    char       sp[1200];
    snprintf(sp, sizeof(sp), "%s/adapter_model.safetensors", dir);
    if (werk_gguf_read(path, &gg, &err) == WERK_OK && werk_st_read(sp, &st, &err) == WERK_OK) {
        const char *v     = NULL;
        bool        found = false;
        werk_gguf_get_str(gg, "training.recipe", &v, &found, &err);
        WT_CHECK(found && strcmp(v, "unit test") == 0, "%s: GGUF provenance", label);
        const char *sv = werk_st_metadata(st, "training.recipe");
        WT_CHECK(sv && strcmp(sv, "unit test") == 0, "%s: safetensors provenance", label);
        float la = 0;
        werk_gguf_get_f32(gg, "adapter.lora.alpha", &la, &found, &err);
        WT_CHECK(found && fabsf(la / 3.0f - 5.0f / sqrtf(3.0f)) < 1e-5f,
                 "%s: adapter.lora.alpha %g gives llama.cpp the rsLoRA scale", label, (double)la);
    } else {
        WT_CHECK(0, "%s: %s", label, err.msg);
    }
    werk_gguf_free(gg);
    werk_st_free(st);
    werk_lora_free(l);
    werk_lora_free(p);
    werk_lora_free(g);
}

/* werk_lora_merge of the adapter into the base, written and read back: its plain forward
 * equals werk_forward_lora's logits lg with the adapter (1e-4 abs + 1e-4 rel). */
static void check_merge(const char *base_path, const char *out_path, const werk_lora *l, const int32_t *tokens,
                        int64_t B, int64_t T, const float *lg, const char *label) {
    werk_err    err = {0};
    werk_gguf  *g = NULL, *g2 = NULL;
    werk_model *m = NULL, *m2 = NULL;
    float      *got = NULL;
    if (werk_gguf_read(base_path, &g, &err) || werk_model_load(g, &m, &err)) {
        WT_CHECK(0, "%s: merge setup: %s", label, err.msg);
        goto out;
    }
    const werk_lora *const ls[] = {l};
    WT_CHECK(werk_lora_merge(g, m, ls, 1, &err) == WERK_OK, "%s: merge: %s", label, err.msg);
    WT_CHECK(werk_gguf_write(g, out_path, false, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (werk_gguf_read(out_path, &g2, &err) || werk_model_load(g2, &m2, &err)) {
        WT_CHECK(0, "%s: merged model: %s", label, err.msg);
        goto out;
    }
    int64_t V = werk_model_n_vocab(m2);
    got       = malloc((size_t)(B * T * V) * sizeof(float));
    WT_CHECK(werk_forward(m2, tokens, B, T, got, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-24s merged model vs unmerged adapter max abs diff %.3g\n", label, wtm_max_abs(got, lg, B * T * V));
    char lab[160];
    snprintf(lab, sizeof(lab), "%s merged", label);
    WT_CLOSE(got, lg, B * T * V, 1e-4, 1e-4, lab);
out:
    free(got);
    werk_model_free(m2);
    werk_gguf_free(g2);
    werk_model_free(m);
    werk_gguf_free(g);
}

/* The saved safetensors holds the fixture's tensors bit for bit (after conversion to f32). */
static void check_peft_bits(const char *orig_dir, const char *saved_dir, const char *label) {
    char     p1[1200], p2[1200];
    werk_err err = {0};
    werk_st *a = NULL, *b = NULL;
    snprintf(p1, sizeof(p1), "%s/adapter_model.safetensors", orig_dir);
    snprintf(p2, sizeof(p2), "%s/adapter_model.safetensors", saved_dir);
    WT_CHECK(werk_st_read(p1, &a, &err) == WERK_OK && werk_st_read(p2, &b, &err) == WERK_OK, "%s: %s", label,
             err.msg);
    if (a && b) {
        WT_CHECK(werk_st_n_tensors(a) == werk_st_n_tensors(b), "%s: tensor count %lld vs %lld", label,
                 (long long)werk_st_n_tensors(a), (long long)werk_st_n_tensors(b));
        for (int64_t i = 0; i < werk_st_n_tensors(a); i++) {
            const werk_st_tensor *ta = werk_st_tensor_at(a, i);
            int64_t               j  = werk_st_find(b, ta->name);
            WT_CHECK(j >= 0, "%s: %s missing in saved adapter", label, ta->name);
            if (j < 0) {
                continue;
            }
            const werk_st_tensor *tb = werk_st_tensor_at(b, j);
            int64_t               n  = ta->shape[0] * ta->shape[1];
            float                *fa = malloc((size_t)n * sizeof(float));
            werk_dequantize_row(ta->type, ta->data, fa, n);
            WT_CHECK(tb->type == WERK_DTYPE_F32 && tb->shape[0] == ta->shape[0] &&
                         tb->shape[1] == ta->shape[1] && memcmp(fa, tb->data, (size_t)n * sizeof(float)) == 0,
                     "%s: %s differs after save_peft", label, ta->name);
            free(fa);
        }
    }
    werk_st_free(a);
    werk_st_free(b);
}

static void check_case(const char *gguf_path, const char *case_rel, const char *label) {
    char        ad_path[1024], out_dir[1024], out_gguf[1100], name[160];
    werk_err    err  = {0};
    werk_gguf  *g    = NULL;
    werk_st    *st   = NULL;
    werk_model *m    = NULL;
    werk_lora  *peft = NULL, *back = NULL, *gl = NULL, *l1 = NULL, *l2 = NULL, *cat = NULL;
    float      *lg = NULL, *lg2 = NULL;
    wtm_case_path(ad_path, sizeof(ad_path), case_rel, "adapter");
    if (!wtm_load_case(gguf_path, case_rel, label, &g, &st, &m)) {
        goto out;
    }
    check_alloc(m, label);
    snprintf(name, sizeof(name), "%s", label);
    for (char *c = name; *c; c++) {
        *c = *c == ' ' ? '_' : *c;
    }
    check_alloc_roundtrip(m, name, label);

    // PEFT -> save_peft -> load: bit identical
    WT_CHECK(werk_lora_load_peft(ad_path, m, 1.0f, &peft, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (!peft) {
        goto out;
    }
    snprintf(name, sizeof(name), "lora_io_%s_peft", label);
    for (char *c = name; *c; c++) {
        *c = *c == ' ' ? '_' : *c;
    }
    wt_tmp(out_dir, sizeof(out_dir), name);
    const char    *keys[] = {"recipe", "dataset_sha256"}, *vals[] = {"test", "0123abcd"};
    werk_lora_meta meta = {keys, vals, 2};
    WT_CHECK(werk_lora_save_peft(peft, m, out_dir, "stories-test", &meta, &err) == WERK_OK, "%s: %s", label,
             err.msg);
    WT_CHECK(werk_lora_load(out_dir, m, 1.0f, &back, &err) == WERK_OK, "%s: reload peft: %s", label, err.msg);
    if (back) {
        same_lora(peft, back, label);
    }
    check_peft_bits(ad_path, out_dir, label);

    // PEFT -> save_gguf -> load_gguf: bit identical
    snprintf(out_gguf, sizeof(out_gguf), "%s.gguf", out_dir);
    WT_CHECK(werk_lora_save_gguf(peft, m, out_gguf, &meta, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_lora_load(out_gguf, m, 1.0f, &gl, &err) == WERK_OK, "%s: reload gguf: %s", label, err.msg);
    if (!gl) {
        goto out;
    }
    same_lora(peft, gl, label);

    // forward with the GGUF adapter against the golden adapter logits
    int64_t it = werk_st_find(st, "tokens"), ia = werk_st_find(st, "adapter_logits");
    WT_CHECK(it >= 0 && ia >= 0, "%s: reference tensors missing", label);
    if (it < 0 || ia < 0) {
        goto out;
    }
    const werk_st_tensor *tt = werk_st_tensor_at(st, it), *ta = werk_st_tensor_at(st, ia);
    int64_t               B = tt->shape[0], T = tt->shape[1], V = werk_model_n_vocab(m);
    lg                           = malloc((size_t)(B * T * V) * sizeof(float));
    lg2                          = malloc((size_t)(B * T * V) * sizeof(float));
    const werk_lora *const one[] = {gl};
    WT_CHECK(werk_forward_lora(m, one, 1, tt->data, B, T, lg, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-24s gguf adapter logits max abs err %.3g\n", label, wtm_max_abs(lg, ta->data, B * T * V));
    WT_CLOSE(lg, (const float *)ta->data, B * T * V, 1e-4, 0, label);
    char merged[1100];
    snprintf(merged, sizeof(merged), "%s_merged.gguf", out_dir);
    check_merge(gguf_path, merged, gl, tt->data, B, T, lg, label);

    // two adapters with scales 0.5 and -1.5 == one adapter of rank 2r holding both updates
    WT_CHECK(werk_lora_load(out_gguf, m, 0.5f, &l1, &err) == WERK_OK &&
                 werk_lora_load(out_dir, m, -1.5f, &l2, &err) == WERK_OK,
             "%s: %s", label, err.msg);
    int64_t r = werk_lora_rank(peft);
    WT_CHECK(werk_lora_alloc(m, 2 * r, (float)(2 * r), false, werk_lora_slot_mask(peft), &cat, &err) ==
                 WERK_OK,
             "%s: %s", label, err.msg);
    if (!l1 || !l2 || !cat) {
        goto out;
    }
    WT_CHECK(fabsf(cat->scale - 1.0f) < 1e-7f, "%s: scale of alpha = r", label);
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        const werk_lora_mat *p = &peft->mats[i];
        werk_lora_mat       *c = &cat->mats[i];
        if (!p->a) {
            continue;
        }
        const werk_wview *w = slot_w(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
        memcpy(c->a, p->a, (size_t)(r * w->cols) * sizeof(float));
        memcpy(c->a + r * w->cols, p->a, (size_t)(r * w->cols) * sizeof(float));
        for (int64_t o = 0; o < w->rows; o++) {
            for (int64_t k = 0; k < r; k++) {
                c->b[o * 2 * r + k]     = l1->scale * p->b[o * r + k];
                c->b[o * 2 * r + r + k] = l2->scale * p->b[o * r + k];
            }
        }
    }
    const werk_lora *const two[] = {l1, l2}, *const joined[] = {cat};
    WT_CHECK(werk_forward_lora(m, two, 2, tt->data, B, T, lg, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_forward_lora(m, joined, 1, tt->data, B, T, lg2, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-24s two adapters vs summed update max abs diff %.3g\n", label, wtm_max_abs(lg, lg2, B * T * V));
    snprintf(name, sizeof(name), "%s two adapters", label);
    WT_CLOSE(lg, lg2, B * T * V, 1e-4, 1e-4, name);
    // and the scaled pair really differs from the plain adapter
    WT_CHECK(wtm_max_abs(lg, ta->data, B * T * V) > 1e-3, "%s: adapter scales had no effect", label);
out:
    free(lg);
    free(lg2);
    werk_lora_free(peft);
    werk_lora_free(back);
    werk_lora_free(gl);
    werk_lora_free(l1);
    werk_lora_free(l2);
    werk_lora_free(cat);
    werk_model_free(m);
    werk_st_free(st);
    werk_gguf_free(g);
}

int main(void) {
    wtm_for_each_golden_model("lora_io", false, check_case);
    return wt_done();
}
