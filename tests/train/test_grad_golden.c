/* tests/train/test_grad_golden.c - LoRA gradients against HF transformers + PEFT (float64)
 *
 * Converts stories260K (llama2.c .bin and the HF dir) and the tiny random llama / qwen2 /
 * qwen3 / gemma3 HF dirs to GGUF with `werk convert`, loads each golden case's PEFT
 * adapter, builds the targets of case.json's loss mask ("labels of positions < N
 * ignored": targets[t] = tokens[t+1] where t+1 >= N) and runs werk_train_grad. Checks:
 *   loss (sum CE / scored tokens) against adapter_loss, 1e-5 relative;
 *   every LoRA gradient (divided by the scored count: PEFT's loss is a mean) against
 *   lora_grads.safetensors: ||werk - ref|| / ||ref|| <= 1e-4 per tensor, llama's q/k B
 *   rows un-permuted from GGUF to HF order first;
 *   the same gradients, bit for bit, with recompute on, with 1 and 2 threads, and (within
 *   1e-5) with the LM head processed in vocabulary chunks of 100 rows.
 */
#include "werk_test.h"
#include "werk_test_model.h"

#include "infer/model_int.h"
#include "train/train.h"

#include <cjson/cJSON.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const slot_names[WERK_LORA_N_SLOTS] = {"q_proj",    "k_proj", "v_proj",  "o_proj",
                                                          "gate_proj", "up_proj", "down_proj"};

static double worst_loss_rel, worst_grad_rel;

/* Gradient of one PEFT tensor in HF's row order, from werk's (divided by n). */
static void hf_order(float *dst, const werk_model *m, const werk_lora_mat *g, int slot, char ab, int64_t rows,
                     int64_t cols, double n) {
    const float *src = ab == 'A' ? g->a : g->b;
    bool perm = ab == 'B' && m->rope_style == WERK_ROPE_NORM && (slot == WERK_LORA_Q || slot == WERK_LORA_K);
    int64_t hd = m->head_dim, half = hd / 2;
    for (int64_t r = 0; r < rows; r++) {
        int64_t gr = r; // GGUF row holding HF row r
        if (perm) {
            int64_t h = r / hd, j = (r % hd) / half, i = r % half;
            gr = h * hd + 2 * i + j;
        }
        for (int64_t c = 0; c < cols; c++) {
            dst[r * cols + c] = (float)(src[gr * cols + c] / n);
        }
    }
}

static double rel_l2(const float *a, const float *ref, int64_t n) {
    double d = 0, r = 0;
    for (int64_t i = 0; i < n; i++) {
        d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
        r += (double)ref[i] * ref[i];
    }
    return sqrt(d) / (sqrt(r) + 1e-30);
}

typedef struct run_out {
    werk_lora *grads;
    double     loss;
    int64_t    n_scored;
} run_out;

static bool run_grad(const werk_model *m, const werk_lora *lora, const werk_train_batch *b, bool recompute,
                     int64_t chunk, run_out *o, const char *label) {
    werk_err          err  = {0};
    werk_train_opts   opts = {.recompute = recompute, .vocab_chunk = chunk};
    werk_train_ws    *ws   = NULL;
    o->grads               = NULL;
    o->loss                = 0;
    o->n_scored            = 0;
    bool ok = werk_lora_alloc_like(lora, &o->grads, &err) == WERK_OK &&
              werk_train_ws_init(m, lora, b->B, b->T, &opts, &ws, &err) == WERK_OK &&
              werk_train_grad(ws, m, lora, o->grads, b, 0, &o->loss, &o->n_scored, &err) == WERK_OK;
    WT_CHECK(ok, "%s: %s", label, err.msg);
    werk_train_ws_free(ws);
    return ok;
}

static bool same_bits(const werk_lora *x, const werk_lora *y) {
    int64_t nx, ny;
    const float *px = werk_lora_params_const(x, &nx), *py = werk_lora_params_const(y, &ny);
    return nx == ny && memcmp(px, py, (size_t)nx * sizeof(float)) == 0;
}

static void check_case(const char *gguf_path, const char *case_rel, const char *label) {
    char        path[1024];
    werk_err    err = {0};
    werk_gguf  *g   = NULL;
    werk_st    *ref = NULL, *gr = NULL;
    werk_model *m   = NULL;
    werk_lora  *lora = NULL;
    cJSON      *cj  = NULL;
    int32_t    *targets = NULL;
    float      *buf     = NULL;
    run_out     base = {0}, alt = {0};
    wtm_case_path(path, sizeof(path), case_rel, "lora_grads.safetensors");
    WT_CHECK(werk_st_read(path, &gr, &err) == WERK_OK, "%s: %s", label, err.msg);
    wtm_case_path(path, sizeof(path), case_rel, "case.json");
    WT_CHECK(werk_json_read_file(path, 1 << 20, &cj, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (!wtm_load_case(gguf_path, case_rel, label, &g, &ref, &m) || !gr || !cj) {
        goto out;
    }
    wtm_case_path(path, sizeof(path), case_rel, "adapter");
    WT_CHECK(m && werk_lora_load_peft(path, m, 1.0f, &lora, &err) == WERK_OK, "%s: %s", label, err.msg);
    const cJSON *jl = cJSON_GetObjectItemCaseSensitive(cj, "adapter_loss");
    const cJSON *jm = cJSON_GetObjectItemCaseSensitive(cj, "loss_mask");
    int          n_ign = -1;
    WT_CHECK(cJSON_IsNumber(jl) && cJSON_IsString(jm) &&
                 sscanf(jm->valuestring, "labels of positions < %d ignored", &n_ign) == 1,
             "%s: case.json lacks adapter_loss or a loss_mask werk understands", label);
    int64_t it = werk_st_find(ref, "tokens");
    WT_CHECK(it >= 0, "%s: tokens missing", label);
    if (!m || !lora || n_ign < 0 || it < 0) {
        goto out;
    }
    const werk_st_tensor *tt = werk_st_tensor_at(ref, it);
    int64_t               B = tt->shape[0], T = tt->shape[1];
    const int32_t        *tok = tt->data;
    targets                   = malloc((size_t)(B * T) * sizeof(int32_t));
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++) {
            targets[b * T + t] = t + 1 < T && t + 1 >= n_ign ? tok[b * T + t + 1] : -100;
        }
    }
    werk_train_batch batch = {.B = B, .T = T, .tokens = tok, .targets = targets};
    if (!run_grad(m, lora, &batch, false, 0, &base, label)) {
        goto out;
    }
    double loss = base.loss / (double)base.n_scored, want = jl->valuedouble;
    double lrel = fabs(loss - want) / fabs(want);
    worst_loss_rel = lrel > worst_loss_rel ? lrel : worst_loss_rel;
    printf("%-24s loss %.9f ref %.9f rel err %.3g (%lld scored)\n", label, loss, want, lrel,
           (long long)base.n_scored);
    WT_CHECK(lrel <= 1e-5, "%s: loss %.9g vs adapter_loss %.9g", label, loss, want);

    // every reference gradient, and no werk gradient without one
    double  worst = 0;
    int64_t n_cmp = 0, n_pairs = 0;
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        n_pairs += lora->mats[i].a != NULL;
    }
    for (int64_t i = 0; i < werk_st_n_tensors(gr); i++) {
        const werk_st_tensor *t = werk_st_tensor_at(gr, i);
        int  layer = -1, used = 0, slot = -1;
        char part[32], proj[32], ab = 0;
        if (sscanf(t->name, "base_model.model.model.layers.%d.%31[^.].%31[^.].lora_%c.weight%n", &layer, part, proj,
                   &ab, &used) != 4 || t->name[used] || layer < 0 || layer >= m->n_layer) {
            WT_CHECK(0, "%s: unexpected gradient %s", label, t->name);
            continue;
        }
        for (int k = 0; k < WERK_LORA_N_SLOTS; k++) {
            slot = strcmp(proj, slot_names[k]) == 0 ? k : slot;
        }
        const werk_lora_mat *gm = slot >= 0 ? &base.grads->mats[layer * WERK_LORA_N_SLOTS + slot] : NULL;
        if (!gm || !gm->a || t->type != WERK_DTYPE_F32 || t->n_dims != 2) {
            WT_CHECK(0, "%s: %s has no werk gradient or is not a 2-D f32", label, t->name);
            continue;
        }
        int64_t rows = t->shape[0], cols = t->shape[1];
        buf          = realloc(buf, (size_t)(rows * cols) * sizeof(float));
        hf_order(buf, m, gm, slot, ab, rows, cols, (double)base.n_scored);
        double e = rel_l2(buf, t->data, rows * cols);
        worst    = e > worst ? e : worst;
        n_cmp++;
        if (e > 1e-4) {
            WT_CHECK(0, "%s: %s relative error %.3g", label, t->name, e);
        }
    }
    worst_grad_rel = worst > worst_grad_rel ? worst : worst_grad_rel;
    printf("%-24s %lld gradients, max ||werk - ref|| / ||ref|| %.3g\n", label, (long long)n_cmp, worst);
    WT_CHECK(n_cmp == 2 * n_pairs, "%s: %lld reference gradients for %lld LoRA pairs", label, (long long)n_cmp,
             (long long)n_pairs);

    // recompute, thread counts, vocabulary chunks
    if (run_grad(m, lora, &batch, true, 0, &alt, label)) {
        WT_CHECK(same_bits(base.grads, alt.grads) && alt.loss == base.loss, "%s: recompute changes the result",
                 label);
    }
    werk_lora_free(alt.grads);
    alt.grads = NULL;
#ifdef _OPENMP
    int nt = omp_get_max_threads();
    for (int th = 1; th <= 3; th += 2) {
        omp_set_num_threads(th);
        if (run_grad(m, lora, &batch, false, 0, &alt, label)) {
            WT_CHECK(same_bits(base.grads, alt.grads) && alt.loss == base.loss, "%s: %d threads change the result",
                     label, th);
        }
        werk_lora_free(alt.grads);
        alt.grads = NULL;
    }
    omp_set_num_threads(nt);
#endif
    if (run_grad(m, lora, &batch, false, 100, &alt, label)) {
        int64_t      n;
        const float *pb = werk_lora_params_const(base.grads, &n), *pa = werk_lora_params_const(alt.grads, &n);
        double       e  = rel_l2(pa, pb, n);
        printf("%-24s vocab chunks of 100: loss diff %.3g, grad rel diff %.3g\n", label,
               fabs(alt.loss - base.loss) / base.loss, e);
        WT_CHECK(fabs(alt.loss - base.loss) <= 1e-6 * base.loss && e <= 1e-5, "%s: chunked LM head differs",
                 label);
    }
out:
    werk_lora_free(alt.grads);
    werk_lora_free(base.grads);
    free(buf);
    free(targets);
    cJSON_Delete(cj);
    werk_lora_free(lora);
    werk_model_free(m);
    werk_st_free(gr);
    werk_st_free(ref);
    werk_gguf_free(g);
}

int main(void) {
    wtm_for_each_golden_model("grad", true, check_case);
    printf("worst loss rel err %.3g, worst gradient rel err %.3g\n", worst_loss_rel, worst_grad_rel);
    return wt_done();
}
