/* tests/fuzz/fuzz_lora_gguf.c - libFuzzer target for the LoRA adapter GGUF loader
 *
 * Builds (once) a tiny llama model in memory: n_embd 8, 2 layers, 2 heads of 4 with 1 kv
 * head, n_ff 12, vocab 16, weights small deterministic values. Each input is parsed as a
 * GGUF (werk_gguf_read_mem) and turned into an adapter for that model
 * (werk_lora_from_gguf); an accepted adapter runs a forward pass of 3 tokens and has its
 * flat parameters summed, so a sanitizer build sees any pair the loader placed or sized
 * wrong. The corpus in tests/fuzz/corpus/fuzz_lora_gguf/ replays in every build
 * (WERK_FUZZ_VERBOSE=1 prints what the loader said about each input).
 */
#include "infer/lora_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EMBD = 8, LAYERS = 2, HEADS = 2, KV = 1, HD = 4, FF = 12, VOCAB = 16 };

static float       weights[1 << 12];
static werk_gguf  *base_g;
static werk_model *base_m;
static double      sink;

static int add(werk_gguf *g, const char *name, int64_t rows, int64_t cols) {
    int64_t shape[2] = {rows, cols};
    int     n_dims   = cols > 0 ? 2 : 1;
    if (cols <= 0) {
        shape[0] = rows;
    }
    uint64_t n = (uint64_t)(rows * (cols > 0 ? cols : 1));
    return werk_gguf_add_tensor(g, name, WERK_DTYPE_F32, n_dims, shape, weights, n * sizeof(float), NULL, NULL) !=
           WERK_OK;
}

static void free_base(void) {
    werk_model_free(base_m);
    werk_gguf_free(base_g);
}

static void build_base(void) {
    for (size_t i = 0; i < sizeof(weights) / sizeof(weights[0]); i++) {
        weights[i] = (float)((int)(i * 37 % 17) - 8) / 64.0f;
    }
    werk_gguf *g   = werk_gguf_init();
    int        bad = !g;
    bad            = bad || werk_gguf_set_str(g, "general.architecture", "llama", NULL) ||
          werk_gguf_set_u32(g, "llama.embedding_length", EMBD, NULL) ||
          werk_gguf_set_u32(g, "llama.block_count", LAYERS, NULL) ||
          werk_gguf_set_u32(g, "llama.attention.head_count", HEADS, NULL) ||
          werk_gguf_set_u32(g, "llama.attention.head_count_kv", KV, NULL) ||
          werk_gguf_set_u32(g, "llama.feed_forward_length", FF, NULL) ||
          werk_gguf_set_u32(g, "llama.context_length", 64, NULL);
    bad = bad || add(g, "token_embd.weight", VOCAB, EMBD) || add(g, "output_norm.weight", EMBD, 0);
    for (int il = 0; il < LAYERS && !bad; il++) {
        char nm[64];
        struct {
            const char *suffix;
            int64_t     rows, cols;
        } ts[] = {{"attn_norm.weight", EMBD, 0},       {"ffn_norm.weight", EMBD, 0},
                  {"attn_q.weight", HEADS * HD, EMBD}, {"attn_k.weight", KV * HD, EMBD},
                  {"attn_v.weight", KV * HD, EMBD},    {"attn_output.weight", EMBD, HEADS * HD},
                  {"ffn_gate.weight", FF, EMBD},       {"ffn_up.weight", FF, EMBD},
                  {"ffn_down.weight", EMBD, FF}};
        for (size_t k = 0; k < sizeof(ts) / sizeof(ts[0]) && !bad; k++) {
            snprintf(nm, sizeof(nm), "blk.%d.%s", il, ts[k].suffix);
            bad = add(g, nm, ts[k].rows, ts[k].cols);
        }
    }
    if (bad || werk_model_load(g, &base_m, NULL) != WERK_OK) {
        abort(); // the fixture itself is broken: not an input problem
    }
    base_g = g;
    atexit(free_base); // the base lives for the whole process; freed so LeakSanitizer stays quiet
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!base_m) {
        build_base();
    }
    werk_gguf *g   = NULL;
    werk_lora *l   = NULL;
    werk_err   err = {0};
    if (werk_gguf_read_mem(data, size, "fuzz.gguf", &g, &err) != WERK_OK) {
        return 0;
    }
    werk_status st = werk_lora_from_gguf(g, "fuzz.gguf", base_m, 1.0f, &l, &err);
    if (getenv("WERK_FUZZ_VERBOSE")) {
        fprintf(stderr, "%s\n", st ? err.msg : "accepted");
    }
    if (st == WERK_OK) {
        int64_t      n = 0;
        const float *p = werk_lora_params_const(l, &n);
        for (int64_t i = 0; i < n; i++) {
            sink += p[i];
        }
        const int32_t          toks[3] = {1, 5, 9};
        float                  logits[3 * VOCAB];
        const werk_lora *const ls[]    = {l};
        if (werk_forward_lora(base_m, ls, 1, toks, 1, 3, logits, &err) == WERK_OK) {
            sink += logits[0];
        }
        werk_lora_free(l);
    }
    werk_gguf_free(g);
    return 0;
}
