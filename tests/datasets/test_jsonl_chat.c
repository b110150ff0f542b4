/* tests/datasets/test_jsonl_chat.c - {"messages"} records rendered in the model's chat style
 *
 * With the real models from WERK_CACHE (skipped when absent): SmolLM2 (chatml) and Gemma 3
 * (gemma). A messages record must give the ids of the whole conversation rendered by hand
 * and tokenized in one go (special tokens parsed), and its scored labels must decode to the
 * assistant contents with their end-of-turn markers.
 */
#include "datasets/datasets.h"
#include "tests/werk_test.h"

static const char RECORD[] = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                             "{\"role\": \"user\", \"content\": \"What is the capital of France?\"}, "
                             "{\"role\": \"assistant\", \"content\": \"Paris.\"}, "
                             "{\"role\": \"user\", \"content\": \"And of Italy?\"}, "
                             "{\"role\": \"assistant\", \"content\": \"Rome.\"}]}\n";

/* fallback: the style marker to use when the GGUF carries no tokenizer.chat_template (the
 * fetched Gemma 3 GGUF has none; `werk eval` falls back on the architecture likewise). */
static void check_model(
    const char *model, const char *fallback, const char *rendered, bool bos, const char *scored_text) {
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    werk_err        err = {0};
    if (werk_gguf_read(model, &g, &err) || werk_tokenizer_init(g, &tok, &err)) {
        WT_CHECK(0, "%s: %s", model, err.msg);
        werk_gguf_free(g);
        return;
    }
    const char *tmpl  = NULL;
    bool        found = false;
    if (werk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &found, &err) || !found) {
        WT_CHECK(fallback != NULL, "%s: no chat template", model);
        tmpl = fallback;
    }
    char path[1024];
    wt_tmp(path, sizeof(path), "jsonl_chat.jsonl");
    FILE *f = fopen(path, "wb");
    fputs(RECORD, f);
    fclose(f);
    werk_jsonl *r   = NULL;
    werk_record rec = {0};
    bool        eof = false;
    WT_CHECK(!werk_datasets_open_jsonl(path, 0, &r, &err), "%s", err.msg);
    WT_CHECK(r && werk_datasets_set_chat_template(r, tmpl) == WERK_OK, "%s: style not recognised", model);
    werk_status st = r ? werk_datasets_next_record(r, tok, werk_tokenizer_n_vocab(tok), &rec, &eof, &err) : 1;
    WT_CHECK(st == WERK_OK && !eof, "%s: %s", model, err.msg);
    int32_t *ids = NULL;
    int64_t  n   = 0;
    WT_CHECK(!werk_tokenizer_encode(tok, rendered, strlen(rendered), bos, true, &ids, &n, &err), "%s",
             err.msg);
    WT_CHECK(n == rec.n, "%s: %lld ids, rendered %lld", model, (long long)rec.n, (long long)n);
    int64_t mism = 0, n_sc = 0;
    for (int64_t i = 0; i < n && i < rec.n; i++) {
        mism += ids[i] != rec.ids[i];
    }
    WT_CHECK(mism == 0, "%s: %lld ids differ from the rendered conversation", model, (long long)mism);
    int32_t *sc = malloc((size_t)(rec.n + 1) * sizeof(int32_t));
    for (int64_t i = 0; i < rec.n; i++) {
        if (rec.labels[i] != WERK_LABEL_IGNORE) {
            WT_CHECK(rec.labels[i] == rec.ids[i], "label %lld", (long long)i);
            sc[n_sc++] = rec.labels[i];
        }
    }
    char  *text = NULL;
    size_t len  = 0;
    WT_CHECK(!werk_tokenizer_decode(tok, sc, n_sc, &text, &len, &err), "%s", err.msg);
    WT_CHECK(text && strcmp(text, scored_text) == 0, "%s: scored text '%s' != '%s'", model, text ? text : "",
             scored_text);
    free(text);
    free(sc);
    free(ids);
    werk_datasets_free_record(&rec);
    werk_datasets_close_jsonl(r);
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
}

int main(void) {
    char        smol[1024], gemma[1024];
    const char *cache = wt_env("WERK_CACHE");
    snprintf(smol, sizeof(smol), "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    snprintf(gemma, sizeof(gemma), "%s/models/gemma-3-270m-q4_k_m.gguf", cache);
    int ran = 0;
    if (access(smol, R_OK) == 0) {
        check_model(
            smol, NULL,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is the capital of France?"
            "<|im_end|>\n<|im_start|>assistant\nParis.<|im_end|>\n<|im_start|>user\nAnd of Italy?"
            "<|im_end|>\n<|im_start|>assistant\nRome.<|im_end|>\n",
            false, "Paris.<|im_end|>Rome.<|im_end|>");
        ran++;
    }
    if (access(gemma, R_OK) == 0) {
        check_model(
            gemma, "<start_of_turn>",
            "<start_of_turn>user\nBe brief.\n\nWhat is the capital of France?<end_of_turn>\n"
            "<start_of_turn>model\nParis.<end_of_turn>\n<start_of_turn>user\nAnd of Italy?<end_of_turn>\n"
            "<start_of_turn>model\nRome.<end_of_turn>\n",
            true, "Paris.<end_of_turn>Rome.<end_of_turn>");
        ran++;
    }
    if (!ran) {
        WT_SKIP("neither %s nor %s present", smol, gemma);
    }
    return wt_done();
}
