/* tests/infer/test_forward_golden.c - forward pass against HF transformers' float64 logits
 *
 * Converts stories260K (llama2.c .bin + tok512.bin, and the HF dir) and the tiny random
 * llama/qwen2/qwen3/gemma3 HF dirs to GGUF with `werk convert`, runs werk_forward on the
 * tokens of each golden case and compares with base_logits (max abs 1e-4); then loads the
 * case's PEFT adapter and compares with adapter_logits (max abs 1e-4). Skips when the
 * fixtures are missing.
 */
#include "werk_test.h"

#include "infer/infer.h"

static double max_abs(const float *a, const float *b, int64_t n) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        mx       = d > mx ? d : mx;
    }
    return mx;
}

static void check_case(const char *gguf_path, const char *case_rel, const char *label) {
    char     ref_path[1024], rel[512], ad_path[1024], lab[96];
    werk_lora *lora = NULL;
    werk_err err = {0};
    snprintf(rel, sizeof(rel), "%s/reference.safetensors", case_rel);
    wt_fixture(ref_path, sizeof(ref_path), rel);
    werk_gguf  *g  = NULL;
    werk_st    *st = NULL;
    werk_model *m  = NULL;
    float      *lg = NULL;
    WT_CHECK(werk_gguf_read(gguf_path, &g, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_st_read(ref_path, &st, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (!g || !st) {
        goto out;
    }
    WT_CHECK(werk_model_load(g, &m, &err) == WERK_OK, "%s: %s", label, err.msg);
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
    printf("%-28s base    max abs err %.3g\n", label, max_abs(lg, tl->data, B * T * V));
    WT_CLOSE(lg, (const float *)tl->data, B * T * V, 1e-4, 0, label);

    int64_t ia = werk_st_find(st, "adapter_logits");
    snprintf(rel, sizeof(rel), "%s/adapter", case_rel);
    wt_fixture(ad_path, sizeof(ad_path), rel);
    WT_CHECK(ia >= 0, "%s: adapter_logits missing", label);
    WT_CHECK(werk_lora_load_peft(ad_path, m, 1.0f, &lora, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (ia < 0 || !lora) {
        goto out;
    }
    const werk_st_tensor    *ta   = werk_st_tensor_at(st, ia);
    const werk_lora *const   ls[] = {lora};
    WT_CHECK(werk_forward_lora(m, ls, 1, tt->data, B, T, lg, &err) == WERK_OK, "%s: %s", label, err.msg);
    printf("%-28s adapter max abs err %.3g\n", label, max_abs(lg, ta->data, B * T * V));
    snprintf(lab, sizeof(lab), "%s adapter", label);
    WT_CLOSE(lg, (const float *)ta->data, B * T * V, 1e-4, 0, lab);
out:
    werk_lora_free(lora);
    free(lg);
    werk_model_free(m);
    werk_st_free(st);
    werk_gguf_free(g);
}

static void convert(const char *args, const char *out) {
    char cmd[4096], *log = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' convert %s '%s'", wt_env("WERK_BIN"), args, out);
    int rc = wt_run(cmd, &log);
    WT_CHECK(rc == 0, "%s failed: %s", cmd, log ? log : "");
    free(log);
}

int main(void) {
    char bin[1024], tok[1024], hf[1024], args[4096], out[1024];
    wt_fixture(bin, sizeof(bin), "stories260K/llama2c/stories260K.bin");
    wt_fixture(tok, sizeof(tok), "stories260K/llama2c/tok512.bin");
    wt_fixture(hf, sizeof(hf), "stories260K/hf");
    const char *cases[] = {"stories260K/golden/case_a", "stories260K/golden/case_c"};

    snprintf(args, sizeof(args), "'%s' --vocab '%s'", bin, tok);
    wt_tmp(out, sizeof(out), "fwd_stories_l2c.gguf");
    convert(args, out);
    for (int c = 0; c < 2; c++) {
        char label[64];
        snprintf(label, sizeof(label), "stories260K llama2c %c", cases[c][strlen(cases[c]) - 1]);
        check_case(out, cases[c], label);
    }
    snprintf(args, sizeof(args), "'%s'", hf);
    wt_tmp(out, sizeof(out), "fwd_stories_hf.gguf");
    convert(args, out);
    for (int c = 0; c < 2; c++) {
        char label[64];
        snprintf(label, sizeof(label), "stories260K hf %c", cases[c][strlen(cases[c]) - 1]);
        check_case(out, cases[c], label);
    }

    const char *fams[] = {"llama", "qwen2", "qwen3", "gemma3"};
    for (int f = 0; f < 4; f++) {
        char rel[256], name[128], casedir[256];
        snprintf(rel, sizeof(rel), "tiny/%s/hf", fams[f]);
        wt_fixture(hf, sizeof(hf), rel);
        snprintf(args, sizeof(args), "'%s'", hf);
        snprintf(name, sizeof(name), "fwd_tiny_%s.gguf", fams[f]);
        wt_tmp(out, sizeof(out), name);
        convert(args, out);
        snprintf(casedir, sizeof(casedir), "tiny/%s/case_a", fams[f]);
        snprintf(name, sizeof(name), "tiny %s a", fams[f]);
        check_case(out, casedir, name);
    }
    return wt_done();
}
