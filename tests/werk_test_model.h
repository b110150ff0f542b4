/* tests/werk_test_model.h - the golden model set of the forward / gradient / LoRA tests
 *
 * Owns what those tests share around the fixtures: converting a fixture to GGUF with
 * `$WERK_BIN convert`, the walk over the golden models (stories260K from the llama2.c .bin
 * with tok512.bin and from the HF dir, then the tiny llama / qwen2 / qwen3 / gemma3 HF
 * dirs) calling a per-case check, reading a golden case's files (paths,
 * reference.safetensors) with the converted model, and the max abs difference of logits.
 *
 * wtm_convert(args, out)              `werk convert ARGS OUT`; a failure is a check failure.
 * wtm_case_path(buf, n, case, file)   path of FILE in golden case dir CASE (skips if missing).
 * wtm_load_case(gguf, case, label, &g, &ref, &m)  reads the GGUF and the case's
 *                                     reference.safetensors and loads the model; false
 *                                     (with a failed check) when a step fails.
 * wtm_for_each_golden_model(prefix, all_cases, fn)  converts each golden model to
 *                                     <tmp>/<prefix>_<model>.gguf and calls fn(gguf, case,
 *                                     label) for its case_a (stories260K: and case_c when
 *                                     all_cases; labels then end in the case letter).
 * wtm_max_abs(a, b, n)                max |a[i] - b[i]|.
 *
 * Include it after werk_test.h.
 */
#ifndef WERK_TEST_MODEL_H
#define WERK_TEST_MODEL_H

#include "infer/infer.h"

#include <stdbool.h>
#include <stdint.h>

static inline double wtm_max_abs(const float *a, const float *b, int64_t n) {
    double mx = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        mx       = d > mx ? d : mx;
    }
    return mx;
}

static inline void wtm_convert(const char *args, const char *out) {
    char cmd[4096], *log = NULL;
    snprintf(cmd, sizeof(cmd), "'%s' convert %s '%s'", wt_env("WERK_BIN"), args, out);
    int rc = wt_run(cmd, &log);
    WT_CHECK(rc == 0, "%s failed: %s", cmd, log ? log : "");
    free(log);
}

static inline void wtm_case_path(char *buf, size_t n, const char *case_rel, const char *file) {
    char rel[512];
    snprintf(rel, sizeof(rel), "%s/%s", case_rel, file);
    wt_fixture(buf, n, rel);
}

static inline bool wtm_load_case(const char  *gguf_path,
                                 const char  *case_rel,
                                 const char  *label,
                                 werk_gguf  **g,
                                 werk_st    **ref,
                                 werk_model **m) {
    char     ref_path[1024];
    werk_err err = {0};
    wtm_case_path(ref_path, sizeof(ref_path), case_rel, "reference.safetensors");
    WT_CHECK(werk_gguf_read(gguf_path, g, &err) == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(werk_st_read(ref_path, ref, &err) == WERK_OK, "%s: %s", label, err.msg);
    if (!*g || !*ref) {
        return false;
    }
    WT_CHECK(werk_model_load(*g, m, &err) == WERK_OK, "%s: %s", label, err.msg);
    return *m != NULL;
}

typedef void (*wtm_case_fn)(const char *gguf_path, const char *case_rel, const char *label);

static inline void wtm_for_each_golden_model(const char *prefix, bool all_cases, wtm_case_fn check_case) {
    char bin[1024], tok[1024], hf[1024], args[4096], out[1024], name[160], label[64];
    wt_fixture(bin, sizeof(bin), "stories260K/llama2c/stories260K.bin");
    wt_fixture(tok, sizeof(tok), "stories260K/llama2c/tok512.bin");
    wt_fixture(hf, sizeof(hf), "stories260K/hf");
    const char *cases[]   = {"stories260K/golden/case_a", "stories260K/golden/case_c"};
    int         n_cases   = all_cases ? 2 : 1;
    const char *stories[] = {"llama2c", "hf"};
    for (int s = 0; s < 2; s++) {
        if (s == 0) {
            snprintf(args, sizeof(args), "'%s' --vocab '%s'", bin, tok);
            snprintf(name, sizeof(name), "%s_stories_l2c.gguf", prefix);
        } else {
            snprintf(args, sizeof(args), "'%s'", hf);
            snprintf(name, sizeof(name), "%s_stories_hf.gguf", prefix);
        }
        wt_tmp(out, sizeof(out), name);
        wtm_convert(args, out);
        for (int c = 0; c < n_cases; c++) {
            if (all_cases) {
                snprintf(label, sizeof(label), "stories260K %s %c", stories[s],
                         cases[c][strlen(cases[c]) - 1]);
            } else {
                snprintf(label, sizeof(label), "stories260K %s", stories[s]);
            }
            check_case(out, cases[c], label);
        }
    }

    const char *fams[] = {"llama", "qwen2", "qwen3", "gemma3"};
    for (int f = 0; f < 4; f++) {
        char rel[256], casedir[256];
        snprintf(rel, sizeof(rel), "tiny/%s/hf", fams[f]);
        wt_fixture(hf, sizeof(hf), rel);
        snprintf(args, sizeof(args), "'%s'", hf);
        snprintf(name, sizeof(name), "%s_tiny_%s.gguf", prefix, fams[f]);
        wt_tmp(out, sizeof(out), name);
        wtm_convert(args, out);
        snprintf(casedir, sizeof(casedir), "tiny/%s/case_a", fams[f]);
        snprintf(label, sizeof(label), all_cases ? "tiny %s a" : "tiny %s", fams[f]);
        check_case(out, casedir, label);
    }
}

#endif
