/* tests/infer/test_forward_golden.c - forward pass against HF transformers' float64 logits
 *
 * Converts stories260K (llama2.c .bin + tok512.bin, and the HF dir) and the tiny random
 * llama/qwen2/qwen3/gemma3 HF dirs to GGUF with `werk convert`, runs werk_forward on the
 * tokens of each golden case and compares with base_logits (max abs 1e-4); then loads the
 * case's PEFT adapter and compares with adapter_logits (max abs 1e-4). Skips when the
 * fixtures are missing.
 */
#include "werk_test.h"
#include "werk_test_model.h"

#include "infer/infer.h"

static void check_case(const char *gguf_path, const char *case_rel, const char *label) {
    char        ad_path[1024], lab[96];
    werk_lora  *lora = NULL;
    werk_err    err  = {0};
    werk_gguf  *g    = NULL;
    werk_st    *st   = NULL;
    werk_model *m    = NULL;
    float      *lg   = NULL;
    if (!wtm_load_case(gguf_path, case_rel, label, &g, &st, &m)) {
        goto out;
    }
    int64_t it = werk_st_find(st, "tokens"), il = werk_st_find(st, "base_logits");
    WT_CHECK(it >= 0 && il >= 0, "%s: reference tensors missing", label);
    if (!m || it < 0 || il < 0) {
        goto out;
    }
    const werk_st_tensor *tt = werk_st_tensor_at(st, it), *tl = werk_st_tensor_at(st, il);
    int64_t               B = tt->shape[0], T = tt->shape[1], V = werk_model_n_vocab(m);
    WT_CHECK(tt->type == WERK_DTYPE_I32 && tl->type == WERK_DTYPE_F32 && tl->shape[2] == V, "%s: ref shapes",
             label);
    lg = malloc((size_t)(B * T * V) * sizeof(float));
    WT_CHECK(werk_forward(m, tt->data, B, T, lg, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-28s base    max abs err %.3g\n", label, wtm_max_abs(lg, tl->data, B * T * V));
    WT_CLOSE(lg, (const float *)tl->data, B * T * V, 1e-4, 0, label);

    int64_t ia = werk_st_find(st, "adapter_logits");
    wtm_case_path(ad_path, sizeof(ad_path), case_rel, "adapter");
    WT_CHECK(ia >= 0, "%s: adapter_logits missing", label);
    WT_CHECK(werk_lora_load_peft(ad_path, m, 1.0f, &lora, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (ia < 0 || !lora) {
        goto out;
    }
    const werk_st_tensor    *ta   = werk_st_tensor_at(st, ia);
    const werk_lora *const   ls[] = {lora};
    WT_CHECK(werk_forward_lora(m, ls, 1, tt->data, B, T, lg, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-28s adapter max abs err %.3g\n", label, wtm_max_abs(lg, ta->data, B * T * V));
    snprintf(lab, sizeof(lab), "%s adapter", label);
    WT_CLOSE(lg, (const float *)ta->data, B * T * V, 1e-4, 0, lab);
out:
    werk_lora_free(lora);
    free(lg);
    werk_model_free(m);
    werk_st_free(st);
    werk_gguf_free(g);
}

int main(void) {
    wtm_for_each_golden_model("fwd", true, check_case);
    return wt_done();
}
