/* tests/fuzz/fuzz_tokenizer_json.c - libFuzzer target for the tokenizer.json importer
 *
 * Input: a tokenizer.json, optionally followed by a NUL byte and a tokenizer_config.json
 * (JSON text never holds a raw NUL, so the split is unambiguous). Runs
 * werk_hf_tokenizer_import_mem (arch "llama", so the architecture rules run too) into a
 * fresh werk_gguf and, on success, reads back every tokenizer key it set. The corpus in
 * tests/fuzz/corpus/fuzz_tokenizer_json/ replays in every build (replay_main.c).
 */
#include "convert/tokenizer_int.h"

#include <stdint.h>
#include <string.h>

static uint64_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json   = (const char *)data;
    const char *nul    = memchr(data, 0, size);
    size_t      n_json = nul ? (size_t)(nul - json) : size;
    const char *config = nul ? nul + 1 : NULL;
    size_t      n_cfg  = nul ? size - n_json - 1 : 0;
    werk_gguf  *g      = werk_gguf_init();
    werk_err    err    = {0};
    if (!g) {
        return 0;
    }
    if (werk_hf_tokenizer_import_mem(json, n_json, config, n_cfg, "llama", "fuzz.json", g, &err) == WERK_OK) {
        const werk_gguf_value *toks  = werk_gguf_get(g, "tokenizer.ggml.tokens");
        const werk_gguf_value *types = werk_gguf_get(g, "tokenizer.ggml.token_type");
        if (!toks || !types || toks->arr.n == 0 || types->arr.n != toks->arr.n) {
            __builtin_trap(); // a successful import always has tokens and types
        }
        const werk_gguf_str *s = toks->arr.data;
        const int32_t       *t = types->arr.data;
        for (uint64_t i = 0; i < toks->arr.n; i++) {
            sink += s[i].len + (uint8_t)s[i].data[s[i].len] + (uint64_t)t[i];
            if (t[i] < 1 || t[i] > 6) {
                __builtin_trap();
            }
        }
        for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
            uint32_t id;
            bool     found;
            if (werk_gguf_get_u32(g, werk_gguf_kv_at(g, i)->key, &id, &found, NULL) == WERK_OK && found &&
                strstr(werk_gguf_kv_at(g, i)->key, "_token_id") && id >= toks->arr.n) {
                __builtin_trap(); // special ids point into the vocab
            }
        }
    }
    werk_gguf_free(g);
    return 0;
}
