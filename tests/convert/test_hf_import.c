/* tests/convert/test_hf_import.c - HF config.json, tensor names, Q/K permutation, HF import/export
 *
 * config.json: unknown architecture, missing fields, wrong types, both RoPE styles
 * (rope_theta and transformers-5 rope_parameters, flat and per layer type); the
 * hyper-parameters survive GGUF keys and back. Name tables round trip for every arch. The
 * llama Q/K row map is a permutation, equals numpy's reshape/swapaxes, and its inverse
 * undoes it. Tiny qwen3 / gemma3 / llama imports have the right shapes and transforms; an
 * export with a tiny shard size writes shards + index that import back to the same
 * tensors; hostile folders (missing tensor, wrong shape, index naming the wrong shard)
 * fail cleanly.
 */
#define _GNU_SOURCE // truncate, off_t: werk_test.h sets it too, but after hf_int.h has included libc
#include "convert/hf_int.h"
#include "werk_test.h"

#include <inttypes.h>

// ---- config.json ----------------------------------------------------------------------------

static werk_status parse(const char *json, werk_hf_hparams *hp, werk_err *err) {
    memset(err, 0, sizeof(*err));
    return werk_hf_config_parse(json, strlen(json), "config.json", hp, err);
}

#define LLAMA_BASE                                                                                           \
    "\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "            \
    "\"intermediate_size\": 160, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "                     \
    "\"num_key_value_heads\": 2, \"vocab_size\": 512, \"max_position_embeddings\": 256, \"rms_norm_eps\": "  \
    "1e-5"

static void expect_fail(const char *json, werk_status code, const char *needle) {
    werk_hf_hparams hp;
    werk_err        err;
    werk_status     s = parse(json, &hp, &err);
    WT_CHECK(s == code, "%s: got status %d (%s), want %d", json, s, err.msg, code);
    WT_CHECK(strstr(err.msg, needle) != NULL, "message '%s' does not name '%s'", err.msg, needle);
}

static void test_config_negative(void) {
    expect_fail("{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\"}",
                WERK_E_UNSUPPORTED, "MistralForCausalLM");
    expect_fail("{\"model_type\": \"phi3\"}", WERK_E_UNSUPPORTED, "phi3");
    expect_fail("{\"hidden_size\": 64}", WERK_E_FORMAT, "architectures");
    expect_fail("{\"architectures\": \"LlamaForCausalLM\"}", WERK_E_FORMAT, "architectures");
    expect_fail("{\"architectures\": [5]}", WERK_E_FORMAT, "architectures");
    expect_fail("[1, 2]", WERK_E_FORMAT, "object");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64}", WERK_E_FORMAT,
                "vocab_size");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 8, \"hidden_size\": 64, "
                "\"num_hidden_layers\": 2, \"num_attention_heads\": 4}",
                WERK_E_FORMAT, "intermediate_size");
    // wrong types and ranges
    expect_fail("{" LLAMA_BASE ", \"hidden_size\": \"64\"}", WERK_E_FORMAT, "config.json"); // duplicate key
    expect_fail(
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": \"64\", \"intermediate_size\": 1, "
        "\"num_hidden_layers\": 1, \"num_attention_heads\": 1, \"vocab_size\": 8}",
        WERK_E_FORMAT, "hidden_size");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2.5, \"num_attention_heads\": 1, \"vocab_size\": 8}",
                WERK_E_FORMAT, "num_hidden_layers");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": -64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2, \"num_attention_heads\": 1, \"vocab_size\": 8}",
                WERK_E_FORMAT, "hidden_size");
    expect_fail(
        "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 1e300, \"intermediate_size\": 1, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 1, \"vocab_size\": 8}",
        WERK_E_FORMAT, "hidden_size");
    expect_fail("{" LLAMA_BASE ", \"tie_word_embeddings\": \"yes\"}", WERK_E_FORMAT, "tie_word_embeddings");
    expect_fail("{" LLAMA_BASE ", \"rope_parameters\": 5}", WERK_E_FORMAT, "rope_parameters");
    expect_fail("{" LLAMA_BASE ", \"rope_theta\": -1}", WERK_E_FORMAT, "rope_theta");
    expect_fail("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_theta\": \"big\"}}", WERK_E_FORMAT,
                "rope_parameters.rope_theta");
    expect_fail("{" LLAMA_BASE ", \"rope_parameters\": {\"rope_theta\": 1e4, \"rope_type\": \"yarn\"}}",
                WERK_E_UNSUPPORTED, "yarn");
    expect_fail("{" LLAMA_BASE ", \"rope_scaling\": {\"rope_type\": \"linear\"}}", WERK_E_FORMAT, "factor");
    expect_fail("{" LLAMA_BASE ", \"eos_token_id\": \"</s>\"}", WERK_E_FORMAT, "eos_token_id");
    expect_fail("{" LLAMA_BASE ", \"hidden_act\": \"relu\"}", WERK_E_UNSUPPORTED, "relu");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 3, "
                "\"vocab_size\": 8}",
                WERK_E_FORMAT, "num_key_value_heads");
    expect_fail("{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2, \"num_attention_heads\": 5, \"vocab_size\": 8}",
                WERK_E_FORMAT, "head_dim");
    expect_fail("{\"architectures\": [\"Gemma3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2, \"vocab_size\": 8, \"attn_logit_softcapping\": 50.0}",
                WERK_E_UNSUPPORTED, "attn_logit_softcapping");
    expect_fail("{\"architectures\": [\"Gemma3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 1, "
                "\"num_hidden_layers\": 2, \"vocab_size\": 8, \"layer_types\": [\"full_attention\"]}",
                WERK_E_FORMAT, "layer_types");
}

static void test_config_rope(void) {
    werk_hf_hparams hp;
    werk_err        err;
    // transformers 4: rope_theta at the top
    WT_CHECK(parse("{" LLAMA_BASE ", \"rope_theta\": 500000.0}", &hp, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(hp.rope_base == 500000.0f, "rope_theta -> %g", (double)hp.rope_base);
    WT_CHECK(hp.arch == WERK_HF_ARCH_LLAMA && hp.n_embd == 64 && hp.n_layer == 3 && hp.n_head == 4 &&
                 hp.n_head_kv == 2 && hp.head_dim == 16 && hp.n_ff == 160 && hp.n_vocab == 512 &&
                 hp.n_ctx == 256,
             "llama dims");
    WT_CHECK(hp.rms_eps == 1e-5f && !hp.tied && hp.rope_scale == 0, "eps/tied/scale");
    // transformers 5: rope_parameters wins over a stale rope_theta, as in transformers
    WT_CHECK(parse("{" LLAMA_BASE ", \"rope_theta\": 5000, \"rope_parameters\": {\"rope_theta\": 100000.0, "
                   "\"rope_type\": \"default\"}}",
                   &hp, &err) == WERK_OK,
             "%s", err.msg);
    WT_CHECK(hp.rope_base == 100000.0f, "rope_parameters -> %g", (double)hp.rope_base);
    // neither: the class default
    WT_CHECK(parse("{" LLAMA_BASE "}", &hp, &err) == WERK_OK && hp.rope_base == 10000.0f,
             "default rope base");
    // linear scaling (transformers 4 rope_scaling)
    WT_CHECK(parse("{" LLAMA_BASE ", \"rope_scaling\": {\"type\": \"linear\", \"factor\": 8.0}}", &hp,
                   &err) == WERK_OK &&
                 hp.rope_scale == 8.0f,
             "linear factor %g (%s)", (double)hp.rope_scale, err.msg);
    // gemma3: per layer type (transformers 5) and legacy rope_local_base_freq (transformers 4)
    const char *g5 =
        "{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", "
        "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 6, "
        "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 32, \"vocab_size\": 512, "
        "\"sliding_window\": 8, \"rope_parameters\": {\"full_attention\": {\"rope_theta\": 1000000.0, "
        "\"rope_type\": \"default\"}, \"sliding_attention\": {\"rope_theta\": 10000.0, \"rope_type\": "
        "\"default\"}}}";
    WT_CHECK(parse(g5, &hp, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(hp.arch == WERK_HF_ARCH_GEMMA3 && hp.rope_base == 1e6f && hp.rope_base_local == 1e4f &&
                 hp.sliding_window == 8 && hp.tied && hp.head_dim == 32,
             "gemma3 per-layer rope %g %g", (double)hp.rope_base, (double)hp.rope_base_local);
    const char *g4 =
        "{\"architectures\": [\"Gemma3ForCausalLM\"], \"model_type\": \"gemma3_text\", "
        "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 6, "
        "\"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 32, \"vocab_size\": 512, "
        "\"rope_theta\": 500000.0, \"rope_local_base_freq\": 20000.0, \"rope_scaling\": null}";
    WT_CHECK(parse(g4, &hp, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(hp.rope_base == 5e5f && hp.rope_base_local == 2e4f && hp.sliding_window == 4096 &&
                 hp.n_ctx == 131072,
             "gemma3 legacy rope %g %g", (double)hp.rope_base, (double)hp.rope_base_local);
    // eos as a list: the first id
    WT_CHECK(parse("{" LLAMA_BASE ", \"bos_token_id\": 1, \"eos_token_id\": [2, 7]}", &hp, &err) == WERK_OK &&
                 hp.bos_id == 1 && hp.eos_id == 2 && hp.pad_id == -1,
             "token ids %" PRId64 " %" PRId64, hp.bos_id, hp.eos_id);
}

/* Hyper-parameters -> GGUF keys -> hyper-parameters. */
static void test_hparams_gguf(void) {
    const char *cfgs[] = {
        "{" LLAMA_BASE ", \"rope_theta\": 500000.0, \"bos_token_id\": 1, \"eos_token_id\": 2}",
        "{\"architectures\": [\"Qwen3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 160, "
        "\"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"head_dim\": 32, "
        "\"vocab_size\": 512, \"max_position_embeddings\": 256, \"rope_parameters\": {\"rope_theta\": 1e6}}",
        "{\"architectures\": [\"Gemma3ForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "
        "\"num_hidden_layers\": 6, \"num_attention_heads\": 4, \"num_key_value_heads\": 1, \"head_dim\": 32, "
        "\"vocab_size\": 512, \"sliding_window\": 8, \"final_logit_softcapping\": 30.0, \"rope_scaling\": "
        "{\"rope_type\": \"linear\", \"factor\": 8.0}, \"pad_token_id\": 0}",
    };
    for (size_t i = 0; i < sizeof(cfgs) / sizeof(cfgs[0]); i++) {
        werk_hf_hparams a, b;
        werk_err        err = {0};
        WT_CHECK(parse(cfgs[i], &a, &err) == WERK_OK, "%s", err.msg);
        werk_gguf *g = werk_gguf_init();
        WT_CHECK(werk_hf_hparams_to_gguf(&a, "x", g, &err) == WERK_OK, "%s", err.msg);
        WT_CHECK(werk_hf_hparams_from_gguf(g, &b, &err) == WERK_OK, "%s", err.msg);
        // from_gguf takes tying and biases from the tensors (none here) and vocab from the key
        b.tied      = a.tied;
        b.attn_bias = a.attn_bias;
        b.mlp_bias  = a.mlp_bias;
        if (a.arch != WERK_HF_ARCH_GEMMA3) {
            b.rope_base_local = a.rope_base_local; // only stored for gemma3
        }
        WT_CHECK(memcmp(&a, &b, sizeof(a)) == 0, "config %zu: hyper-parameters differ after GGUF keys", i);
        werk_gguf_free(g);
    }
}

// ---- names and permutation --------------------------------------------------------------------

typedef struct names_ctx {
    werk_hf_arch arch;
    int          n;
} names_ctx;

static werk_status check_name(void *ctx, const char *gguf, werk_err *err) {
    names_ctx *c = ctx;
    char       hf[256], back[256];
    int64_t    l1 = -2, l2 = -2;
    bool       ok = werk_hf_name_from_gguf(c->arch, gguf, hf, sizeof(hf), &l1) &&
              werk_hf_name_to_gguf(c->arch, hf, back, sizeof(back), &l2);
    WT_CHECK(ok && strcmp(back, gguf) == 0 && l1 == l2, "arch %d: %s -> %s -> %s", c->arch, gguf,
             ok ? hf : "?", ok ? back : "?");
    c->n++;
    return WERK_OK;
}

static void expect_map(werk_hf_arch arch, const char *hf, const char *want) {
    char    out[256] = "";
    int64_t layer;
    bool    ok = werk_hf_name_to_gguf(arch, hf, out, sizeof(out), &layer);
    if (want) {
        WT_CHECK(ok && strcmp(out, want) == 0, "%s -> '%s', want '%s'", hf, out, want);
    } else {
        WT_CHECK(!ok, "%s should not map (got '%s')", hf, out);
    }
}

static void test_names(void) {
    for (int a = 0; a < WERK_HF_ARCH_COUNT; a++) {
        names_ctx c = {(werk_hf_arch)a, 0};
        werk_err  err;
        WT_CHECK(werk_hf_required_tensors(c.arch, 3, false, true, check_name, &c, &err) == WERK_OK, "walk");
        WT_CHECK(c.n > 20, "arch %d: %d names", a, c.n);
    }
    expect_map(WERK_HF_ARCH_LLAMA, "model.embed_tokens.weight", "token_embd.weight");
    expect_map(WERK_HF_ARCH_LLAMA, "lm_head.weight", "output.weight");
    expect_map(WERK_HF_ARCH_LLAMA, "model.norm.weight", "output_norm.weight");
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.12.self_attn.q_proj.weight", "blk.12.attn_q.weight");
    expect_map(WERK_HF_ARCH_QWEN2, "model.layers.0.self_attn.k_proj.bias", "blk.0.attn_k.bias");
    expect_map(WERK_HF_ARCH_QWEN3, "model.layers.1.self_attn.q_norm.weight", "blk.1.attn_q_norm.weight");
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.0.post_attention_layernorm.weight", "blk.0.ffn_norm.weight");
    expect_map(WERK_HF_ARCH_GEMMA3, "model.layers.0.post_attention_layernorm.weight",
               "blk.0.post_attention_norm.weight");
    expect_map(WERK_HF_ARCH_GEMMA3, "model.layers.0.pre_feedforward_layernorm.weight",
               "blk.0.ffn_norm.weight");
    expect_map(WERK_HF_ARCH_GEMMA3, "model.layers.5.post_feedforward_layernorm.weight",
               "blk.5.post_ffw_norm.weight");
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.0.self_attn.q_norm.weight", NULL); // not a llama tensor
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.0.pre_feedforward_layernorm.weight", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.01.self_attn.q_proj.weight", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.-1.self_attn.q_proj.weight", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.1234567890.self_attn.q_proj.weight", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers..self_attn.q_proj.weight", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "model.layers.0", NULL);
    expect_map(WERK_HF_ARCH_LLAMA, "", NULL);
    char small[8];
    WT_CHECK(
        !werk_hf_name_to_gguf(WERK_HF_ARCH_LLAMA, "model.embed_tokens.weight", small, sizeof(small), NULL),
        "a name that does not fit the buffer is refused");
}

static void test_permutation(void) {
    // numpy: w.reshape(2, 2, 2, cols).swapaxes(1, 2).reshape(8, cols) takes rows [0,2,1,3,4,6,5,7]
    int64_t map[8], inv[8];
    werk_hf_qk_row_map(map, 8, 2, false);
    const int64_t want[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    WT_CHECK(memcmp(map, want, sizeof(want)) == 0, "n_head 2, rows 8: map differs from numpy's");
    const int64_t shapes[][2] = {{64, 8}, {32, 4}, {128, 4}, {96, 3}, {2, 1}, {576, 9}, {1024, 4}};
    for (size_t k = 0; k < sizeof(shapes) / sizeof(shapes[0]); k++) {
        int64_t  rows = shapes[k][0], nh = shapes[k][1];
        int64_t *m = malloc((size_t)rows * sizeof(int64_t)), *v = malloc((size_t)rows * sizeof(int64_t));
        char    *seen = calloc((size_t)rows, 1);
        werk_hf_qk_row_map(m, rows, nh, false);
        werk_hf_qk_row_map(v, rows, nh, true);
        bool perm = true, inverse = true, numpy = true;
        for (int64_t r = 0; r < rows; r++) {
            perm &= m[r] >= 0 && m[r] < rows && !seen[m[r]];
            if (m[r] >= 0 && m[r] < rows) {
                seen[m[r]] = 1;
            }
            inverse &= v[m[r]] == r && m[v[r]] == r;
            // numpy index arithmetic: output (h, j, i) <- source (h, i, j)
            int64_t hd = rows / nh, h = r / hd, j = (r % hd) / 2, i = r % 2;
            numpy &= m[r] == h * hd + i * (hd / 2) + j;
        }
        WT_CHECK(perm, "rows %" PRId64 " heads %" PRId64 ": not a permutation", rows, nh);
        WT_CHECK(inverse, "rows %" PRId64 " heads %" PRId64 ": inverse map wrong", rows, nh);
        WT_CHECK(numpy, "rows %" PRId64 " heads %" PRId64 ": differs from numpy's swapaxes", rows, nh);
        free(m);
        free(v);
        free(seen);
    }
    (void)inv;
}

// ---- importing the tiny fixtures ----------------------------------------------------------------

static const werk_gguf_tensor *tensor(const werk_gguf *g, const char *name) {
    int64_t i = werk_gguf_find_tensor(g, name);
    WT_CHECK(i >= 0, "missing tensor %s", name);
    return i >= 0 ? werk_gguf_tensor_at(g, i) : NULL;
}

static void check_shape(const werk_gguf *g, const char *name, int nd, int64_t d0, int64_t d1) {
    const werk_gguf_tensor *t = tensor(g, name);
    if (t) {
        WT_CHECK(t->n_dims == nd && t->shape[0] == d0 && (nd == 1 || t->shape[1] == d1),
                 "%s: shape [%" PRId64 ", %" PRId64 "] (%d dims), want [%" PRId64 ", %" PRId64 "]", name,
                 t->shape[0], t->shape[1], t->n_dims, d0, d1);
    }
}

static uint32_t u32key(const werk_gguf *g, const char *key) {
    uint32_t v     = 0;
    bool     found = false;
    werk_err err;
    WT_CHECK(werk_gguf_get_u32(g, key, &v, &found, &err) == WERK_OK && found, "key %s", key);
    return v;
}

static void test_import_tiny(void) {
    char     dir[4096];
    werk_err err = {0};
    // qwen3: head_dim 32 != 64/4, q/k norms, tied
    wt_fixture(dir, sizeof(dir), "tiny/qwen3/hf");
    werk_gguf *g = NULL;
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_OK, "qwen3: %s", err.msg);
    if (g) {
        WT_CHECK(u32key(g, "qwen3.attention.key_length") == 32 &&
                     u32key(g, "qwen3.attention.head_count") == 4 &&
                     u32key(g, "qwen3.attention.head_count_kv") == 2 && u32key(g, "qwen3.block_count") == 3,
                 "qwen3 keys");
        WT_CHECK(werk_gguf_n_tensors(g) == 2 + 3 * 11, "qwen3: %" PRId64 " tensors", werk_gguf_n_tensors(g));
        check_shape(g, "token_embd.weight", 2, 512, 64);
        check_shape(g, "blk.0.attn_q.weight", 2, 128, 64);
        check_shape(g, "blk.2.attn_k.weight", 2, 64, 64);
        check_shape(g, "blk.1.attn_output.weight", 2, 64, 128);
        check_shape(g, "blk.1.attn_q_norm.weight", 1, 32, 0);
        check_shape(g, "blk.1.ffn_down.weight", 2, 64, 160);
        WT_CHECK(werk_gguf_find_tensor(g, "output.weight") < 0, "qwen3 tiny is tied");
        const werk_gguf_tensor *q = tensor(g, "blk.0.attn_q.weight");
        WT_CHECK(q && !q->row_map && q->add == 0 && q->src_type == WERK_DTYPE_F32, "qwen3: no transforms");
        WT_CHECK(werk_gguf_get(g, "tokenizer.ggml.tokens") == NULL, "no tokenizer files -> no vocab");
        WT_CHECK(werk_gguf_tensor_at(g, 0) == tensor(g, "token_embd.weight"), "token_embd first");
        werk_gguf_free(g);
    }
    // gemma3: norms + 1, post norms, sliding window, local base
    wt_fixture(dir, sizeof(dir), "tiny/gemma3/hf");
    g = NULL;
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_OK, "gemma3: %s", err.msg);
    if (g) {
        WT_CHECK(u32key(g, "gemma3.attention.sliding_window") == 8 &&
                     u32key(g, "gemma3.attention.key_length") == 32,
                 "gemma3 keys");
        float f = 0;
        bool  found;
        WT_CHECK(werk_gguf_get_f32(g, "gemma3.rope.freq_base_swa", &f, &found, &err) == WERK_OK && found &&
                     f == 1e4f,
                 "freq_base_swa %g", (double)f);
        WT_CHECK(werk_gguf_get_f32(g, "gemma3.rope.freq_base", &f, &found, &err) == WERK_OK && found &&
                     f == 1e6f,
                 "freq_base %g", (double)f);
        WT_CHECK(werk_gguf_n_tensors(g) == 2 + 6 * 13, "gemma3: %" PRId64 " tensors", werk_gguf_n_tensors(g));
        check_shape(g, "blk.5.post_attention_norm.weight", 1, 64, 0);
        check_shape(g, "blk.5.post_ffw_norm.weight", 1, 64, 0);
        check_shape(g, "blk.0.attn_k.weight", 2, 32, 64);
        int n_norm = 0, n_add = 0;
        for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
            const werk_gguf_tensor *t   = werk_gguf_tensor_at(g, i);
            bool                    nrm = strstr(t->name, "norm.weight") != NULL;
            n_norm += nrm;
            n_add += nrm && t->add == 1.0f;
            WT_CHECK(nrm || t->add == 0, "%s: add %g", t->name, (double)t->add);
            WT_CHECK(!t->row_map, "%s: gemma3 is not permuted", t->name);
        }
        WT_CHECK(n_norm == 6 * 6 + 1 && n_add == n_norm, "gemma3: %d norms, %d with +1", n_norm, n_add);
        werk_gguf_free(g);
    }
    // llama (untied): Q/K get row maps with n_head / n_head_kv, output present
    wt_fixture(dir, sizeof(dir), "tiny/llama/hf");
    g = NULL;
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_OK, "llama: %s", err.msg);
    if (g) {
        check_shape(g, "output.weight", 2, 512, 64);
        const werk_gguf_tensor *q = tensor(g, "blk.0.attn_q.weight"), *k = tensor(g, "blk.0.attn_k.weight");
        const werk_gguf_tensor *v = tensor(g, "blk.0.attn_v.weight");
        int64_t                 mq[64], mk[32];
        werk_hf_qk_row_map(mq, 64, 4, false);
        werk_hf_qk_row_map(mk, 32, 2, false);
        WT_CHECK(q && q->row_map && memcmp(q->row_map, mq, sizeof(mq)) == 0,
                 "llama attn_q row map (n_head 4)");
        WT_CHECK(k && k->row_map && memcmp(k->row_map, mk, sizeof(mk)) == 0,
                 "llama attn_k row map (n_head_kv 2)");
        WT_CHECK(v && !v->row_map, "attn_v is not permuted");
        WT_CHECK(u32key(g, "llama.rope.dimension_count") == 16, "rope.dimension_count");
        WT_CHECK(werk_gguf_find_kv(g, "llama.attention.key_length") < 0,
                 "no key_length when head_dim is default");
        werk_gguf_free(g);
    }
}

// ---- export with shards, re-import, hostile folders ----------------------------------------------

static bool same_tensors(const werk_gguf *a, const werk_gguf *b) {
    if (werk_gguf_n_tensors(a) != werk_gguf_n_tensors(b)) {
        return false;
    }
    for (int64_t i = 0; i < werk_gguf_n_tensors(a); i++) {
        const werk_gguf_tensor *x = werk_gguf_tensor_at(a, i);
        int64_t                 j = werk_gguf_find_tensor(b, x->name);
        if (j < 0) {
            return false;
        }
        const werk_gguf_tensor *y    = werk_gguf_tensor_at(b, j);
        int64_t                 rows = werk_gguf_tensor_nrows(x);
        if (x->nbytes != y->nbytes || x->src_type != y->src_type ||
            memcmp(x->data, y->data, x->nbytes) != 0 || x->add != y->add || !x->row_map != !y->row_map ||
            (x->row_map && memcmp(x->row_map, y->row_map, (size_t)rows * sizeof(int64_t)) != 0)) {
            fprintf(stderr, "  tensor %s differs\n", x->name);
            return false;
        }
    }
    return true;
}

static int count_files(const char *dir, const char *prefix) {
    char cmd[4200], *out = NULL;
    snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '^%s'", dir, prefix);
    wt_run(cmd, &out);
    int n = out ? atoi(out) : -1;
    free(out);
    return n;
}

static void test_export_shards(void) {
    char src[4096], out[4096], path[4200];
    wt_fixture(src, sizeof(src), "tiny/llama/hf");
    wt_tmp(out, sizeof(out), "hf_import_shards");
    werk_err   err = {0};
    werk_gguf *a = NULL, *b = NULL, *c = NULL;
    WT_CHECK(werk_hf_import(src, &a, &err) == WERK_OK, "%s", err.msg);
    if (!a) {
        return;
    }
    // 20 kB shards: every 64x160 f32 FFN matrix (40 kB) gets a shard of its own
    werk_hf_export_opts opts = {.type = WERK_DTYPE_F32, .max_shard_bytes = 20000};
    WT_CHECK(werk_hf_export(a, out, &opts, &err) == WERK_OK, "export: %s", err.msg);
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", out);
    struct stat st;
    WT_CHECK(stat(path, &st) == 0, "index written");
    int n_shards = count_files(out, "model-0");
    WT_CHECK(n_shards > 10, "%d shards", n_shards);
    WT_CHECK(werk_hf_import(out, &b, &err) == WERK_OK, "re-import: %s", err.msg);
    WT_CHECK(b && same_tensors(a, b), "sharded export imports back to the same tensors");
    // re-export in one file over the same folder: shards and index are removed
    opts.max_shard_bytes = 0;
    WT_CHECK(werk_hf_export(a, out, &opts, &err) == WERK_OK, "export: %s", err.msg);
    WT_CHECK(stat(path, &st) != 0, "stale index removed");
    WT_CHECK(count_files(out, "model-0") == 0, "stale shards removed");
    WT_CHECK(werk_hf_import(out, &c, &err) == WERK_OK && c && same_tensors(a, c), "single-file re-import");
    werk_gguf_free(b);
    werk_gguf_free(c);
    b = c = NULL;

    // An index naming the wrong shard for a tensor fails, naming it.
    opts.max_shard_bytes = 20000;
    WT_CHECK(werk_hf_export(a, out, &opts, &err) == WERK_OK, "export: %s", err.msg);
    char cmd[8400];
    snprintf(cmd, sizeof(cmd),
             "python3 -c \"import json,sys; p=sys.argv[1]; d=json.load(open(p)); "
             "d['weight_map']['model.norm.weight']='model-00001-of-%05d.safetensors'; json.dump(d, "
             "open(p,'w'))\" '%s'",
             n_shards, path);
    if (wt_run(cmd, NULL) == 0) {
        WT_CHECK(werk_hf_import(out, &b, &err) == WERK_E_FORMAT && strstr(err.msg, "model.norm.weight"),
                 "wrong shard in index: %s", err.msg);
        werk_gguf_free(b);
        b = NULL;
    }
    werk_gguf_free(a);
}

/* A folder with config.json and one safetensors file built from a werk_gguf's tensors. */
static void write_dir(const char *dir, const char *config, const werk_gguf_tensor *const *ts, int64_t n) {
    char     p[4200];
    werk_err err = {0};
    WT_CHECK(werk_mkdir_p(dir, &err) == WERK_OK, "%s", err.msg);
    snprintf(p, sizeof(p), "%s/config.json", dir);
    WT_CHECK(werk_write_file_atomic(p, config, strlen(config), &err) == WERK_OK, "%s", err.msg);
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    WT_CHECK(werk_st_write(p, ts, n, NULL, NULL, 0, &err) == WERK_OK, "%s", err.msg);
}

static void test_hostile_dirs(void) {
    char src[4096], dir[4096];
    wt_fixture(src, sizeof(src), "tiny/llama/hf");
    wt_tmp(dir, sizeof(dir), "hf_import_bad");
    char    *config = NULL;
    size_t   len;
    werk_err err = {0};
    char     p[4200];
    snprintf(p, sizeof(p), "%s/config.json", src);
    WT_CHECK(werk_read_file(p, 1 << 20, &config, &len, &err) == WERK_OK, "%s", err.msg);
    snprintf(p, sizeof(p), "%s/model.safetensors", src);
    werk_st *st = NULL;
    WT_CHECK(werk_st_read(p, &st, &err) == WERK_OK, "%s", err.msg);
    if (!st || !config) {
        free(config);
        werk_st_free(st);
        return;
    }
    int64_t                  n  = werk_st_n_tensors(st);
    werk_gguf_tensor        *ts = calloc((size_t)n, sizeof(*ts));
    const werk_gguf_tensor **tp = calloc((size_t)n, sizeof(*tp));
    for (int64_t i = 0; i < n; i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        ts[i].name              = t->name;
        ts[i].n_dims            = t->n_dims;
        memcpy(ts[i].shape, t->shape, sizeof(ts[i].shape));
        ts[i].type = ts[i].src_type = t->type;
        ts[i].data                  = t->data;
        ts[i].nbytes                = t->nbytes;
        tp[i]                       = &ts[i];
    }
    werk_gguf *g = NULL;
    // 1. a missing tensor: drop model.layers.1.mlp.up_proj.weight
    int64_t k = werk_st_find(st, "model.layers.1.mlp.up_proj.weight"), m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i != k) {
            tp[m++] = &ts[i];
        }
    }
    write_dir(dir, config, tp, m);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_E_FORMAT &&
                 strstr(err.msg, "model.layers.1.mlp.up_proj.weight"),
             "missing tensor: %s", err.msg);
    werk_gguf_free(g);
    g = NULL;
    // 2. a tensor with the wrong shape: claim v_proj is [64, 32] instead of [32, 64]
    for (int64_t i = 0; i < n; i++) {
        tp[i] = &ts[i];
    }
    int64_t          kv  = werk_st_find(st, "model.layers.0.self_attn.v_proj.weight");
    werk_gguf_tensor bad = ts[kv];
    bad.shape[0]         = 64;
    bad.shape[1]         = 32;
    tp[kv]               = &bad;
    write_dir(dir, config, tp, n);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_E_SHAPE && strstr(err.msg, "v_proj"), "wrong shape: %s",
             err.msg);
    werk_gguf_free(g);
    g = NULL;
    // 3. a tensor werk has no name for
    tp[kv]                = &ts[kv];
    werk_gguf_tensor odd  = ts[kv];
    odd.name              = "model.layers.0.self_attn.mystery.weight";
    werk_gguf_tensor **tq = calloc((size_t)n + 1, sizeof(*tq));
    for (int64_t i = 0; i < n; i++) {
        tq[i] = &ts[i];
    }
    tq[n] = &odd;
    write_dir(dir, config, (const werk_gguf_tensor *const *)tq, n + 1);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_E_UNSUPPORTED && strstr(err.msg, "mystery"),
             "unknown name: %s", err.msg);
    werk_gguf_free(g);
    g = NULL;
    // 4. a layer beyond num_hidden_layers
    odd.name = "model.layers.7.self_attn.v_proj.weight";
    write_dir(dir, config, (const werk_gguf_tensor *const *)tq, n + 1);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_E_FORMAT && strstr(err.msg, "layer 7"), "extra layer: %s",
             err.msg);
    werk_gguf_free(g);
    g = NULL;
    // 5. the intact copy imports
    write_dir(dir, config, tp, n);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_OK, "intact copy: %s", err.msg);
    werk_gguf_free(g);
    g = NULL;
    // 6. no config.json next to safetensors
    snprintf(p, sizeof(p), "%s/config.json", dir);
    unlink(p);
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_E_FORMAT && strstr(err.msg, "config.json"),
             "no config: %s", err.msg);
    werk_gguf_free(g);
    free(tq);
    free(ts);
    free(tp);
    free(config);
    werk_st_free(st);
}

/* llama with attention_bias: Q/K biases are permuted like the rows of their weights (in a
 * copy, since a bias is one row) and the export puts them back. */
static void test_llama_bias(void) {
    char src[4096], dir[4096], out[4096], p[4200];
    wt_fixture(src, sizeof(src), "tiny/llama/hf");
    wt_tmp(dir, sizeof(dir), "hf_import_bias");
    wt_tmp(out, sizeof(out), "hf_import_bias_out");
    werk_err err    = {0};
    char    *config = NULL;
    size_t   len;
    snprintf(p, sizeof(p), "%s/config.json", src);
    WT_CHECK(werk_read_file(p, 1 << 20, &config, &len, &err) == WERK_OK, "%s", err.msg);
    snprintf(p, sizeof(p), "%s/model.safetensors", src);
    werk_st *st = NULL;
    WT_CHECK(werk_st_read(p, &st, &err) == WERK_OK, "%s", err.msg);
    if (!st || !config) {
        free(config);
        werk_st_free(st);
        return;
    }
    // "attention_bias": false -> true (same length, so the JSON stays valid)
    char *ab = strstr(config, "\"attention_bias\": false");
    WT_CHECK(ab != NULL, "fixture config has attention_bias");
    if (ab) {
        memcpy(ab, "\"attention_bias\":  true", strlen("\"attention_bias\": false"));
    }
    int64_t                  n  = werk_st_n_tensors(st);
    werk_gguf_tensor        *ts = calloc((size_t)n + 12, sizeof(*ts));
    const werk_gguf_tensor **tp = calloc((size_t)n + 12, sizeof(*tp));
    float                    bias[12][64];
    char                     names[12][64];
    for (int64_t i = 0; i < n; i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        ts[i].name              = t->name;
        ts[i].n_dims            = t->n_dims;
        memcpy(ts[i].shape, t->shape, sizeof(ts[i].shape));
        ts[i].type = ts[i].src_type = t->type;
        ts[i].data                  = t->data;
        ts[i].nbytes                = t->nbytes;
        tp[i]                       = &ts[i];
    }
    const char   *which[4] = {"q", "k", "v", "o"};
    const int64_t rows[4]  = {64, 32, 32, 64};
    for (int l = 0, k = 0; l < 3; l++) {
        for (int w = 0; w < 4; w++, k++) {
            snprintf(names[k], sizeof(names[k]), "model.layers.%d.self_attn.%s_proj.bias", l, which[w]);
            for (int64_t r = 0; r < rows[w]; r++) {
                bias[k][r] = (float)(k * 100 + r);
            }
            werk_gguf_tensor *t = &ts[n + k];
            t->name             = names[k];
            t->n_dims           = 1;
            t->shape[0]         = rows[w];
            t->shape[1] = t->shape[2] = t->shape[3] = 1;
            t->type = t->src_type = WERK_DTYPE_F32;
            t->data               = bias[k];
            t->nbytes             = (uint64_t)rows[w] * 4;
            tp[n + k]             = t;
        }
    }
    write_dir(dir, config, tp, n + 12);
    werk_gguf *g = NULL;
    WT_CHECK(werk_hf_import(dir, &g, &err) == WERK_OK, "import with biases: %s", err.msg);
    if (g) {
        int64_t map[64];
        werk_hf_qk_row_map(map, 64, 4, false);
        const werk_gguf_tensor *qb = tensor(g, "blk.1.attn_q.bias");
        bool                    ok = qb && !qb->row_map;
        for (int64_t r = 0; ok && r < 64; r++) {
            ok = ((const float *)qb->data)[r] == bias[4][map[r]];
        }
        WT_CHECK(ok, "attn_q.bias permuted like attn_q's rows");
        const werk_gguf_tensor *vb = tensor(g, "blk.1.attn_v.bias");
        WT_CHECK(vb && memcmp(vb->data, bias[6], 32 * 4) == 0, "attn_v.bias untouched");
        werk_hf_export_opts opts = {.type = WERK_DTYPE_F32};
        WT_CHECK(werk_hf_export(g, out, &opts, &err) == WERK_OK, "export: %s", err.msg);
        werk_st *back = NULL;
        snprintf(p, sizeof(p), "%s/model.safetensors", out);
        WT_CHECK(werk_st_read(p, &back, &err) == WERK_OK, "%s", err.msg);
        for (int k = 0; back && k < 12; k++) {
            int64_t i = werk_st_find(back, names[k]);
            WT_CHECK(i >= 0 &&
                         memcmp(werk_st_tensor_at(back, i)->data, bias[k], (size_t)rows[k % 4] * 4) == 0,
                     "%s round trip", names[k]);
        }
        werk_st_free(back);
        snprintf(p, sizeof(p), "%s/config.json", out);
        char  *cfg = NULL;
        size_t cl;
        WT_CHECK(werk_read_file(p, 1 << 20, &cfg, &cl, &err) == WERK_OK &&
                     strstr(cfg, "\"attention_bias\": true"),
                 "exported config says attention_bias");
        free(cfg);
        werk_gguf_free(g);
    }
    free(ts);
    free(tp);
    free(config);
    werk_st_free(st);
}

int main(void) {
    test_config_negative();
    test_config_rope();
    test_hparams_gguf();
    test_names();
    test_permutation();
    test_import_tiny();
    test_export_shards();
    test_hostile_dirs();
    test_llama_bias();
    return wt_done();
}
