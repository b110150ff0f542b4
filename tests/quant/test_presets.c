/* tests/quant/test_presets.c - llama.cpp's quantization mixes: the type of every tensor
 *
 * The expected types are written here from llama.cpp's rules (src/llama-quant.cpp,
 * llama_tensor_get_type_impl and tensor_type_fallback), each with the rule that gives it,
 * never from werk's output. Models are synthetic (names, shapes and metadata only), so the
 * test runs without model files:
 *   - Gemma 3 270M, Q4_K_M (the must-show 4): 18 layers, n_embd 640 (not a
 *     multiple of 256, so most tensors fall back), n_ff 2048, 4 heads of 256, 1 KV head,
 *     tied embeddings, vocabulary 262144; built as a werk_gguf and planned through
 *     werk_quant_plan_gguf. (tests/quant/test_quantize_cli.py checks the same plan
 *     against the Q4_K_M file llama.cpp made.)
 *   - SmolLM2-135M, Q4_K_M: llama, 30 layers, n_embd 576, n_ff 1536, 9 heads / 3 KV heads.
 *   - a llama-like model with 256-aligned sizes for the other presets' distinctive rules,
 *     falcon, 8 experts, 70B, --pure, --tensor-type (with llama.cpp's counter quirk),
 *     --output-tensor-type / --token-embedding-type / --leave-output-tensor, fallbacks.
 */
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

// the code under test
#include "convert/convert.h"
#include "quant/quant.h"

#include <stdint.h>
#include <string.h>

#define Q(x) WERK_DTYPE_##x

// llama.cpp's use_more_bits(i, n), written out independently of quant/presets.c
static bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// ---- a synthetic model ------------------------------------------------------------------

enum { MAX_T = 1024 };

typedef struct model {
    werk_quant_tinfo t[MAX_T];
    char             names[MAX_T][64];
    int              n;
} model;

static void add(model *m, const char *name, werk_dtype type, int n_dims, int64_t d0, int64_t d1) {
    WERK_ASSERT(m->n < MAX_T);
    werk_quant_tinfo *t = &m->t[m->n];
    snprintf(m->names[m->n], sizeof(m->names[0]), "%s", name);
    t->name     = m->names[m->n];
    t->n_dims   = n_dims;
    t->shape[0] = d0;
    t->shape[1] = n_dims > 1 ? d1 : 1;
    t->shape[2] = t->shape[3] = 1;
    t->src_type               = type;
    m->n++;
}

static void addl(model *m, int layer, const char *role, int n_dims, int64_t d0, int64_t d1) {
    char name[64];
    snprintf(name, sizeof(name), "blk.%d.%s.weight", layer, role);
    add(m, name, Q(F32), n_dims, d0, d1);
}

/* A llama-like model: E wide, F ffn, H heads and KV heads of D. Shapes outermost first:
 * attn_q {H*D, E}, attn_k/v {KV*D, E}, attn_output {E, H*D}, gate/up {F, E}, down {E, F}. */
static void build_llama(
    model *m, int n_layer, int64_t E, int64_t F, int64_t H, int64_t KV, int64_t D, int64_t V, bool tied) {
    memset(m, 0, sizeof(*m));
    add(m, "token_embd.weight", Q(F32), 2, V, E);
    add(m, "output_norm.weight", Q(F32), 1, E, 0);
    if (!tied) {
        add(m, "output.weight", Q(F32), 2, V, E);
    }
    for (int l = 0; l < n_layer; l++) {
        addl(m, l, "attn_norm", 1, E, 0);
        addl(m, l, "attn_q", 2, H * D, E);
        addl(m, l, "attn_k", 2, KV * D, E);
        addl(m, l, "attn_v", 2, KV * D, E);
        addl(m, l, "attn_output", 2, E, H * D);
        addl(m, l, "ffn_norm", 1, E, 0);
        addl(m, l, "ffn_gate", 2, F, E);
        addl(m, l, "ffn_up", 2, F, E);
        addl(m, l, "ffn_down", 2, E, F);
    }
}

static int find(const model *m, const char *name) {
    for (int i = 0; i < m->n; i++) {
        if (strcmp(m->t[i].name, name) == 0) {
            return i;
        }
    }
    WERK_ASSERT(!"tensor not in the synthetic model");
    return -1;
}

static werk_quant_opts opts_for(const char *preset) {
    werk_quant_opts o = {.preset = werk_quant_preset_find(preset)};
    o.output_type     = WERK_DTYPE_COUNT;
    o.token_embd_type = WERK_DTYPE_COUNT;
    WERK_ASSERT(o.preset);
    return o;
}

static werk_quant_choice plan_out[MAX_T];

static void plan(const model *m, const werk_quant_model *mm, const werk_quant_opts *o) {
    werk_err    err = {0};
    werk_status s   = werk_quant_plan(mm, o, m->t, m->n, plan_out, &err);
    WT_CHECK(s == WERK_OK, "plan failed: %s", err.msg);
}

/* Type of one tensor in the last plan. */
static werk_dtype type_of(const model *m, const char *name) { return plan_out[find(m, name)].type; }

static werk_dtype layer_type(const model *m, int layer, const char *role) {
    char name[64];
    snprintf(name, sizeof(name), "blk.%d.%s.weight", layer, role);
    return type_of(m, name);
}

#define CHECK_TYPE(m, name, want)                                                                            \
    do {                                                                                                     \
        werk_dtype got_ = type_of((m), (name));                                                              \
        WT_CHECK(got_ == (want), "%s: got %s, want %s", (name), werk_dtype_name(got_),                       \
                 werk_dtype_name(want));                                                                     \
    } while (0)

#define CHECK_LAYER(m, l, role, want)                                                                        \
    do {                                                                                                     \
        werk_dtype got_ = layer_type((m), (l), (role));                                                      \
        WT_CHECK(got_ == (want), "blk.%d.%s: got %s, want %s", (l), (role), werk_dtype_name(got_),           \
                 werk_dtype_name(want));                                                                     \
    } while (0)

// ---- Gemma 3 270M, Q4_K_M, through a werk_gguf ------------------------------------------------

/* Expected type of each role of Gemma 3 270M under Q4_K_M, from llama.cpp's rules. The
 * layers that "use more bits" for n = 18 (use_more_bits: i < 18/8 = 2, i >= 7*18/8 = 15,
 * or (i - 2) % 3 == 2) are 0, 1, 4, 7, 10, 13, 15, 16, 17. */
static const int gemma_more_bits[18] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1};

static const struct {
    const char *role;
    werk_dtype  more_bits; // type on the layers above
    werk_dtype  other;     // type on the other layers
} gemma_rows[] = {
    // attn_q {1024, 640}: no rule, Q4_K; rows of 640 % 256 != 0 -> fallback Q4_K -> Q5_0
    {"attn_q", Q(Q5_0), Q(Q5_0)},
    // attn_k {256, 640}: no rule for Q4_K_M (only 8-expert models), Q4_K -> fallback Q5_0
    {"attn_k", Q(Q5_0), Q(Q5_0)},
    // attn_v {256, 640}: Q4_K_M && use_more_bits(i_attention_wv, n_attention_wv = 18) -> Q6_K,
    // fallback Q6_K -> Q8_0; other layers Q4_K -> Q5_0
    {"attn_v", Q(Q8_0), Q(Q5_0)},
    // attn_output {640, 1024}: no Q4_K_M rule (dense), rows of 1024 fit: Q4_K
    {"attn_output", Q(Q4_K), Q(Q4_K)},
    // ffn_gate, ffn_up {2048, 640}: no rule, Q4_K -> fallback Q5_0
    {"ffn_gate", Q(Q5_0), Q(Q5_0)},
    {"ffn_up", Q(Q5_0), Q(Q5_0)},
    // ffn_down {640, 2048}: Q4_K_M, not falcon: use_more_bits(layer, n_layer = 18) -> Q6_K;
    // rows of 2048 fit, so no fallback; other layers Q4_K
    {"ffn_down", Q(Q6_K), Q(Q4_K)},
    // norms: 1-D, "_norm.weight": never quantized, stay f32
    {"attn_norm", Q(F32), Q(F32)},
    {"attn_q_norm", Q(F32), Q(F32)},
    {"attn_k_norm", Q(F32), Q(F32)},
    {"ffn_norm", Q(F32), Q(F32)},
    {"post_attention_norm", Q(F32), Q(F32)},
    {"post_ffw_norm", Q(F32), Q(F32)},
};

static void test_gemma_q4_k_m(void) {
    // The same more-bits layers, from the formula (guards the literal table above).
    for (int i = 0; i < 18; i++) {
        WT_CHECK(more_bits(i, 18) == (gemma_more_bits[i] != 0), "more_bits(%d, 18)", i);
    }
    static uint8_t dummy[1]; // the planner never reads tensor data
    werk_gguf     *g   = werk_gguf_init();
    werk_err       err = {0};
    werk_status    s   = WERK_OK;
    WT_CHECK(g != NULL, "werk_gguf_init");
    if (!g) {
        return;
    }
    s = werk_gguf_set_str(g, "general.architecture", "gemma3", &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.block_count", 18, &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.embedding_length", 640, &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.feed_forward_length", 2048, &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.attention.head_count", 4, &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.attention.head_count_kv", 1, &err);
    s = s ? s : werk_gguf_set_u32(g, "gemma3.attention.key_length", 256, &err);
    // tensors in the order of llama.cpp's file (sorted by layer, then name)
    struct {
        const char *name;
        int         n_dims;
        int64_t     shape[2];
    } top[] = {{"output_norm.weight", 1, {640}}, {"token_embd.weight", 2, {262144, 640}}};
    for (size_t i = 0; i < 2 && s == WERK_OK; i++) {
        uint64_t nb = (uint64_t)top[i].shape[0] * (top[i].n_dims > 1 ? (uint64_t)top[i].shape[1] : 1) * 4;
        s = werk_gguf_add_tensor(g, top[i].name, Q(F32), top[i].n_dims, top[i].shape, dummy, nb, NULL, &err);
    }
    static const struct {
        const char *role;
        int         n_dims;
        int64_t     shape[2];
    } per_layer[] = {
        {"attn_k", 2, {256, 640}},       {"attn_k_norm", 1, {256}},    {"attn_norm", 1, {640}},
        {"attn_output", 2, {640, 1024}}, {"attn_q", 2, {1024, 640}},   {"attn_q_norm", 1, {256}},
        {"attn_v", 2, {256, 640}},       {"ffn_down", 2, {640, 2048}}, {"ffn_gate", 2, {2048, 640}},
        {"ffn_norm", 1, {640}},          {"ffn_up", 2, {2048, 640}},   {"post_attention_norm", 1, {640}},
        {"post_ffw_norm", 1, {640}},
    };
    for (int l = 0; l < 18 && s == WERK_OK; l++) {
        for (size_t k = 0; k < sizeof(per_layer) / sizeof(per_layer[0]) && s == WERK_OK; k++) {
            char name[64];
            snprintf(name, sizeof(name), "blk.%d.%s.weight", l, per_layer[k].role);
            uint64_t nb = (uint64_t)per_layer[k].shape[0] *
                          (per_layer[k].n_dims > 1 ? (uint64_t)per_layer[k].shape[1] : 1) * 4;
            s = werk_gguf_add_tensor(g, name, Q(F32), per_layer[k].n_dims, per_layer[k].shape, dummy, nb,
                                     NULL, &err);
        }
    }
    WT_CHECK(s == WERK_OK, "building the Gemma description: %s", err.msg);
    int64_t n = werk_gguf_n_tensors(g);
    WT_CHECK(n == 2 + 18 * 13, "Gemma 3 270M has 236 tensors (got %lld)", (long long)n);

    werk_quant_opts    o = opts_for("Q4_K_M");
    werk_quant_choice *c = calloc((size_t)n, sizeof(*c));
    s                    = werk_quant_plan_gguf(g, &o, c, &err);
    WT_CHECK(s == WERK_OK, "plan: %s", err.msg);

    int n_checked = 0, n_fallback = 0;
    for (int64_t i = 0; s == WERK_OK && i < n; i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        werk_dtype              want;
        if (strcmp(t->name, "token_embd.weight") == 0) {
            // tied (no output.weight): ruled as the output; rows of 640 % 256 (Q4_K's block) != 0
            // -> Q8_0 directly (not counted as a fallback)
            want = Q(Q8_0);
        } else if (strcmp(t->name, "output_norm.weight") == 0) {
            want = Q(F32); // 1-D: never quantized
        } else {
            int  layer = -1;
            char role[64];
            WT_CHECK(sscanf(t->name, "blk.%d.%63[^.]", &layer, role) == 2, "name %s", t->name);
            want = WERK_DTYPE_COUNT;
            for (size_t k = 0; k < sizeof(gemma_rows) / sizeof(gemma_rows[0]); k++) {
                if (strcmp(gemma_rows[k].role, role) == 0) {
                    want = gemma_more_bits[layer] ? gemma_rows[k].more_bits : gemma_rows[k].other;
                }
            }
        }
        WT_CHECK(c[i].type == want, "Gemma Q4_K_M %s: got %s, want %s", t->name, werk_dtype_name(c[i].type),
                 want == WERK_DTYPE_COUNT ? "?" : werk_dtype_name(want));
        n_checked++;
        n_fallback += c[i].fallback;
    }
    WT_CHECK(n_checked == 236, "checked %d tensors", n_checked);
    // fallbacks: q, k, gate, up on 18 layers (72) + attn_v on 18 layers (9 Q6_K->Q8_0, 9 Q4_K->Q5_0)
    WT_CHECK(n_fallback == 90, "Gemma Q4_K_M: %d fallbacks, llama.cpp reports 90", n_fallback);
    int64_t iv = werk_gguf_find_tensor(g, "blk.0.attn_v.weight");
    WT_CHECK(c[iv].wanted == Q(Q6_K) && c[iv].fallback && c[iv].cat == WERK_TCAT_ATTN_V,
             "blk.0.attn_v: wanted %s", werk_dtype_name(c[iv].wanted));
    free(c);
    werk_gguf_free(g);
}

// ---- SmolLM2-135M, Q4_K_M ---------------------------------------------------------------------

static void test_smollm2_q4_k_m(void) {
    model                 *m  = calloc(1, sizeof(model));
    const werk_quant_model mm = {.arch = "llama", .n_layer = 30, .n_head = 9, .n_head_kv = 3};
    build_llama(m, 30, 576, 1536, 9, 3, 64, 49152, true);
    werk_quant_opts o = opts_for("Q4_K_M");
    plan(m, &mm, &o);
    // tied token_embd {49152, 576}: the output rule; 576 % 256 != 0 -> Q8_0
    CHECK_TYPE(m, "token_embd.weight", Q(Q8_0));
    CHECK_TYPE(m, "output_norm.weight", Q(F32));
    // more bits for n = 30: i < 3, i >= 26 (7*30/8 = 26), (i - 3) % 3 == 2: 5, 8, ..., 23
    static const int mb[30] = {1, 1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1,
                               0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1, 1};
    for (int l = 0; l < 30; l++) {
        WT_CHECK(more_bits(l, 30) == (mb[l] != 0), "more_bits(%d, 30)", l);
        // attn_q {576, 576}, attn_k {192, 576}, attn_output {576, 576}, gate/up {1536, 576}:
        // Q4_K, rows of 576 -> fallback Q5_0
        CHECK_LAYER(m, l, "attn_q", Q(Q5_0));
        CHECK_LAYER(m, l, "attn_k", Q(Q5_0));
        CHECK_LAYER(m, l, "attn_output", Q(Q5_0));
        CHECK_LAYER(m, l, "ffn_gate", Q(Q5_0));
        CHECK_LAYER(m, l, "ffn_up", Q(Q5_0));
        // attn_v: more bits -> Q6_K -> fallback Q8_0; else Q4_K -> Q5_0
        CHECK_LAYER(m, l, "attn_v", mb[l] ? Q(Q8_0) : Q(Q5_0));
        // ffn_down {576, 1536}: rows of 1536 fit 256: more bits -> Q6_K, else Q4_K
        CHECK_LAYER(m, l, "ffn_down", mb[l] ? Q(Q6_K) : Q(Q4_K));
        CHECK_LAYER(m, l, "attn_norm", Q(F32));
        CHECK_LAYER(m, l, "ffn_norm", Q(F32));
    }
    // Q4_1 (the preset of the fetched SmolLM2 file): tied output rule gives Q6_K (576 % 32 == 0),
    // which falls back to Q8_0; every other weight Q4_1
    o = opts_for("Q4_1");
    plan(m, &mm, &o);
    CHECK_TYPE(m, "token_embd.weight", Q(Q8_0));
    CHECK_LAYER(m, 7, "attn_v", Q(Q4_1));
    CHECK_LAYER(m, 7, "ffn_down", Q(Q4_1));
    free(m);
}

// ---- the other presets on a model whose sizes fit every block -------------------------------

/* 16 layers, E = 512, F = 1024, 8 heads / 2 KV heads of 64 (n_gqa = 4), untied output. */
static const werk_quant_model llama16 = {.arch = "llama", .n_layer = 16, .n_head = 8, .n_head_kv = 2};

static void build16(model *m, bool tied) {
    build_llama(m, 16, 512, 1024, 8, 2, 64, 32000, !tied ? false : true);
}

static void test_presets_distinct(void) {
    model *m = calloc(1, sizeof(model));
    build16(m, false);
    // n = 16: use_more_bits layers: i < 2, i >= 14, (i - 2) % 3 == 2 -> 0 1 4 7 10 13 14 15
    static const int mb16[16] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};

    werk_quant_opts o = opts_for("Q4_K_M");
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(Q6_K));     // output: Q6_K
    CHECK_TYPE(m, "token_embd.weight", Q(Q4_K)); // untied embeddings: no rule, the preset's type
    for (int l = 0; l < 16; l++) {
        CHECK_LAYER(m, l, "attn_v", mb16[l] ? Q(Q6_K) : Q(Q4_K));   // use_more_bits(i_attention_wv, 16)
        CHECK_LAYER(m, l, "ffn_down", mb16[l] ? Q(Q6_K) : Q(Q4_K)); // use_more_bits(layer, 16)
        CHECK_LAYER(m, l, "attn_q", Q(Q4_K));
    }

    o = opts_for("Q4_K_S");
    plan(m, &llama16, &o);
    for (int l = 0; l < 16; l++) {
        CHECK_LAYER(m, l, "attn_v", l < 4 ? Q(Q5_K) : Q(Q4_K));   // i_attention_wv < 4 -> Q5_K
        CHECK_LAYER(m, l, "ffn_down", l < 2 ? Q(Q5_K) : Q(Q4_K)); // not falcon, i < n/8 -> Q5_K
    }
    CHECK_TYPE(m, "output.weight", Q(Q6_K));

    o = opts_for("Q5_K_M");
    plan(m, &llama16, &o);
    for (int l = 0; l < 16; l++) {
        CHECK_LAYER(m, l, "attn_v", mb16[l] ? Q(Q6_K) : Q(Q5_K));
        CHECK_LAYER(m, l, "ffn_down", mb16[l] ? Q(Q6_K) : Q(Q5_K));
        CHECK_LAYER(m, l, "ffn_up", Q(Q5_K));
    }

    o = opts_for("Q5_K_S"); // no rule but the output
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "attn_v", Q(Q5_K));
    CHECK_LAYER(m, 0, "ffn_down", Q(Q5_K));
    CHECK_TYPE(m, "output.weight", Q(Q6_K));

    o = opts_for("Q3_K_M");
    plan(m, &llama16, &o);
    for (int l = 0; l < 16; l++) {
        CHECK_LAYER(m, l, "attn_v", l < 2 ? Q(Q5_K) : Q(Q4_K));   // i_attention_wv < 2 ? Q5_K : Q4_K
        CHECK_LAYER(m, l, "ffn_down", l < 1 ? Q(Q5_K) : Q(Q4_K)); // i < n/16 Q5_K; not falcon -> Q4_K
        CHECK_LAYER(m, l, "attn_output", Q(Q4_K));                // Q3_K_M -> Q4_K
        CHECK_LAYER(m, l, "attn_q", Q(Q3_K));
    }
    CHECK_TYPE(m, "output.weight", Q(Q6_K));

    o = opts_for("Q3_K_L");
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 5, "attn_v", Q(Q5_K));      // Q3_K_L -> Q5_K
    CHECK_LAYER(m, 5, "ffn_down", Q(Q5_K));    // not falcon -> Q5_K
    CHECK_LAYER(m, 5, "attn_output", Q(Q5_K)); // Q3_K_L -> Q5_K
    CHECK_LAYER(m, 5, "ffn_gate", Q(Q3_K));

    o = opts_for("Q3_K_S");
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "attn_v", Q(Q3_K));
    CHECK_LAYER(m, 0, "ffn_down", Q(Q3_K));
    CHECK_TYPE(m, "output.weight", Q(Q6_K));

    o = opts_for("Q2_K");
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 3, "attn_v", Q(Q4_K));      // n_gqa = 8/2 = 4 >= 4 -> Q4_K
    CHECK_LAYER(m, 3, "ffn_down", Q(Q3_K));    // Q2_K -> Q3_K
    CHECK_LAYER(m, 3, "attn_output", Q(Q3_K)); // Q2_K -> Q3_K
    CHECK_LAYER(m, 3, "attn_q", Q(Q2_K));
    werk_quant_model mha = llama16;
    mha.n_head_kv        = 8; // n_gqa = 1
    plan(m, &mha, &o);
    CHECK_LAYER(m, 3, "attn_v", Q(Q3_K)); // n_gqa < 4 -> Q3_K

    o = opts_for("Q6_K");
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "attn_v", Q(Q6_K));
    CHECK_TYPE(m, "output.weight", Q(Q6_K));
    CHECK_TYPE(m, "token_embd.weight", Q(Q6_K));

    o = opts_for("Q8_0");
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(Q8_0)); // a Q8_0 file keeps Q8_0 for the output
    CHECK_LAYER(m, 0, "ffn_down", Q(Q8_0));

    o = opts_for("Q4_0");
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(Q6_K)); // output of the legacy types: Q6_K
    CHECK_LAYER(m, 0, "ffn_down", Q(Q4_0));  // no imatrix: nothing else changes
    o.has_imatrix = true;
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "ffn_down", Q(Q4_1)); // with an imatrix, i < n/8: Q4_0 -> Q4_1
    CHECK_LAYER(m, 1, "ffn_down", Q(Q4_1));
    CHECK_LAYER(m, 2, "ffn_down", Q(Q4_0));
    o             = opts_for("Q5_0");
    o.has_imatrix = true;
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "ffn_down", Q(Q5_1)); // Q5_0 -> Q5_1 likewise
    o = opts_for("Q5_1");
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 0, "ffn_down", Q(Q5_1));
    CHECK_TYPE(m, "output.weight", Q(Q6_K));

    o                        = opts_for("F16"); // not quantized: every weight f16, rules and patterns unused
    werk_quant_override ov[] = {{"attn_v", Q(Q8_0)}};
    o.overrides              = ov;
    o.n_overrides            = 1;
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(F16));
    CHECK_LAYER(m, 0, "attn_v", Q(F16));
    CHECK_LAYER(m, 0, "attn_norm", Q(F32));
    free(m);
}

static void test_arch_rules(void) {
    model *m = calloc(1, sizeof(model));
    build16(m, false);
    // falcon, Q4_K_M: output Q8_0; ffn_down i < n/16 -> Q6_K, use_more_bits -> Q5_K, else Q4_K
    werk_quant_model falcon = llama16;
    falcon.arch             = "falcon";
    werk_quant_opts o       = opts_for("Q4_K_M");
    plan(m, &falcon, &o);
    CHECK_TYPE(m, "output.weight", Q(Q8_0));
    CHECK_LAYER(m, 0, "ffn_down", Q(Q6_K));
    CHECK_LAYER(m, 1, "ffn_down", Q(Q5_K));
    CHECK_LAYER(m, 2, "ffn_down", Q(Q4_K));
    CHECK_LAYER(m, 4, "ffn_down", Q(Q5_K));
    o = opts_for("Q3_K_L");
    plan(m, &falcon, &o);
    CHECK_LAYER(m, 3, "ffn_down", Q(Q4_K));    // falcon: Q4_K
    CHECK_LAYER(m, 3, "attn_output", Q(Q4_K)); // falcon: Q3_K_L -> Q4_K
    o = opts_for("Q3_K_M");
    plan(m, &falcon, &o);
    CHECK_LAYER(m, 3, "ffn_down", Q(Q3_K)); // falcon and not use_more_bits(3, 16)
    CHECK_LAYER(m, 4, "ffn_down", Q(Q4_K)); // falcon but use_more_bits(4, 16)
    CHECK_LAYER(m, 3, "attn_output", Q(Q3_K));

    // 8 experts (Mixtral-like; expert names carry the layer): attn_v and attn_k Q8_0,
    // attn_output Q5_K under Q4_K_M, Q3_K_L keeps attn_output Q3_K
    werk_quant_model moe = llama16;
    moe.n_expert         = 8;
    o                    = opts_for("Q4_K_M");
    plan(m, &moe, &o);
    CHECK_LAYER(m, 2, "attn_v", Q(Q8_0));
    CHECK_LAYER(m, 2, "attn_k", Q(Q8_0));
    CHECK_LAYER(m, 2, "attn_output", Q(Q5_K));
    CHECK_LAYER(m, 4, "ffn_down", Q(Q6_K)); // layer from the name: use_more_bits(4, 16)
    o = opts_for("Q3_K_L");
    plan(m, &moe, &o);
    CHECK_LAYER(m, 2, "attn_output", Q(Q3_K));
    // an expert ffn_down without a layer number is an error (llama.cpp: "Failed to determine layer")
    model *bad = calloc(1, sizeof(model));
    add(bad, "ffn_down_exps.weight", Q(F32), 2, 512, 1024);
    werk_err    err = {0};
    werk_status s   = werk_quant_plan(&moe, &o, bad->t, bad->n, plan_out, &err);
    WT_CHECK(s == WERK_E_FORMAT && strstr(err.msg, "ffn_down_exps"), "expert without layer: %d %s", s,
             err.msg);
    free(bad);

    // 70B (llama, 80 layers, GQA): attn_v of Q3_K / Q4_K becomes Q5_K
    model *big = calloc(1, sizeof(model));
    build_llama(big, 80, 512, 1024, 8, 1, 64, 1000, false);
    werk_quant_model b70 = {.arch = "llama", .n_layer = 80, .n_head = 8, .n_head_kv = 1};
    o                    = opts_for("Q3_K_S");
    plan(big, &b70, &o);
    CHECK_LAYER(big, 40, "attn_v", Q(Q5_K));
    o = opts_for("Q4_K_M");
    plan(big, &b70, &o);
    CHECK_LAYER(big, 11, "attn_v", Q(Q5_K)); // use_more_bits(11, 80) is false: Q4_K -> Q5_K
    CHECK_LAYER(big, 0, "attn_v", Q(Q6_K)); // Q6_K stays
    free(big);
    free(m);
}

// ---- options --------------------------------------------------------------------------------

static void test_options(void) {
    model *m = calloc(1, sizeof(model));
    build16(m, false);
    static const int mb16[16] = {1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 1, 1};

    // --pure: every quantized weight the preset's type (output and embeddings too)
    werk_quant_opts o = opts_for("Q4_K_M");
    o.pure            = true;
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(Q4_K));
    CHECK_TYPE(m, "token_embd.weight", Q(Q4_K));
    CHECK_LAYER(m, 0, "attn_v", Q(Q4_K));
    CHECK_LAYER(m, 0, "ffn_down", Q(Q4_K));
    CHECK_LAYER(m, 0, "ffn_norm", Q(F32));

    // --tensor-type: first matching POSIX ERE wins; matched tensors skip the rules, and (as in
    // llama.cpp) do not advance the attn_v counter: with blk.0's attn_v overridden, blk.L's
    // attn_v gets i_attention_wv = L - 1
    werk_quant_override ov[] = {{"attn_q", Q(Q8_0)}, {"^blk\\.0\\.attn_v", Q(Q2_K)}, {"attn_(q|v)", Q(Q5_1)}};
    o                        = opts_for("Q4_K_M");
    o.overrides              = ov;
    o.n_overrides            = 3;
    plan(m, &llama16, &o);
    CHECK_LAYER(m, 3, "attn_q", Q(Q8_0));
    CHECK_LAYER(m, 0, "attn_v", Q(Q2_K));
    WT_CHECK(plan_out[find(m, "blk.0.attn_v.weight")].manual, "override marked manual");
    for (int l = 1; l < 16; l++) {
        // "attn_(q|v)" matches attn_v.weight of the other layers too (Q5_1): none reach the rules
        CHECK_LAYER(m, l, "attn_v", Q(Q5_1));
    }
    werk_quant_override ov2[] = {{"^blk\\.0\\.attn_v", Q(Q8_0)}};
    o.overrides               = ov2;
    o.n_overrides             = 1;
    plan(m, &llama16, &o);
    for (int l = 1; l < 16; l++) {
        CHECK_LAYER(m, l, "attn_v", mb16[l - 1] ? Q(Q6_K) : Q(Q4_K)); // counter one behind
    }
    // an override to a type whose block does not fit falls back like the rules' types
    werk_quant_override ov3[] = {{"ffn_down", Q(Q6_K)}};
    model              *odd   = calloc(1, sizeof(model));
    build_llama(odd, 2, 640, 1000, 4, 1, 256, 1000, true); // ffn_down rows of 1000
    o.overrides   = ov3;
    o.n_overrides = 1;
    plan(odd, &llama16, &o);
    CHECK_LAYER(odd, 1, "ffn_down", Q(F16)); // Q6_K -> Q8_0 does not fit 1000 either -> F16
    free(odd);
    // a bad pattern is a usage error
    werk_quant_override badre[] = {{"attn_(v", Q(Q8_0)}};
    o.overrides                 = badre;
    werk_err    err             = {0};
    werk_status s               = werk_quant_plan(&llama16, &o, m->t, m->n, plan_out, &err);
    WT_CHECK(s == WERK_E_ARG && strstr(err.msg, "attn_(v"), "bad regex: %d %s", s, err.msg);

    // --output-tensor-type / --token-embedding-type win over everything
    o                 = opts_for("Q4_K_M");
    o.output_type     = Q(Q8_0);
    o.token_embd_type = Q(Q6_K);
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(Q8_0));
    CHECK_TYPE(m, "token_embd.weight", Q(Q6_K));
    // with tied embeddings, --output-tensor-type also rules token_embd (it is the output)
    model *tied = calloc(1, sizeof(model));
    build16(tied, true);
    o             = opts_for("Q4_K_M");
    o.output_type = Q(Q5_K);
    plan(tied, &llama16, &o);
    CHECK_TYPE(tied, "token_embd.weight", Q(Q5_K));
    o = opts_for("Q4_K_M");
    plan(tied, &llama16, &o);
    CHECK_TYPE(tied, "token_embd.weight", Q(Q6_K)); // tied: the output rule -> Q6_K
    free(tied);

    // --leave-output-tensor: output.weight keeps its type
    o              = opts_for("Q4_K_M");
    o.leave_output = true;
    plan(m, &llama16, &o);
    CHECK_TYPE(m, "output.weight", Q(F32));
    WT_CHECK(!plan_out[find(m, "output.weight")].quantize, "output left alone");
    free(m);
}

static void test_what_is_quantized(void) {
    model *m = calloc(1, sizeof(model));
    add(m, "blk.0.attn_q.weight", Q(F16), 2, 512, 512);
    add(m, "blk.0.attn_q.bias", Q(F32), 1, 512, 0);         // not a weight
    add(m, "blk.0.attn_k.weight", Q(F32), 2, 1, 512);       // {1, 512}: ggml_n_dims 1
    add(m, "blk.0.ffn_gate_inp.weight", Q(F32), 2, 8, 512); // router
    add(m, "blk.0.attn_norm.weight", Q(F32), 2, 4, 512);    // a norm, even if 2-D
    add(m, "position_embd.weight", Q(F32), 2, 1024, 512);   // learned positions
    add(m, "blk.0.ffn_up.weight", Q(I32), 2, 512, 512);     // integer table
    add(m, "blk.0.ffn_down.weight", Q(Q4_1), 2, 512, 512);  // quantized input: requantized
    add(m, "blk.0.ssm_conv1d.weight", Q(F32), 2, 4, 512);
    werk_quant_model mm = {.arch = "llama", .n_layer = 1};
    werk_quant_opts  o  = opts_for("Q8_0");
    plan(m, &mm, &o);
    CHECK_TYPE(m, "blk.0.attn_q.weight", Q(Q8_0));
    CHECK_TYPE(m, "blk.0.attn_q.bias", Q(F32));
    CHECK_TYPE(m, "blk.0.attn_k.weight", Q(F32));
    CHECK_TYPE(m, "blk.0.ffn_gate_inp.weight", Q(F32));
    CHECK_TYPE(m, "blk.0.attn_norm.weight", Q(F32));
    CHECK_TYPE(m, "position_embd.weight", Q(F32));
    CHECK_TYPE(m, "blk.0.ffn_up.weight", Q(I32));
    CHECK_TYPE(m, "blk.0.ffn_down.weight", Q(Q8_0));
    CHECK_TYPE(m, "blk.0.ssm_conv1d.weight", Q(F32));
    WT_CHECK(plan_out[find(m, "blk.0.ffn_down.weight")].quantize, "quantized input is requantized");
    free(m);
}

static void test_fallback_and_lookup(void) {
    // tensor_type_fallback: 256-blocks to the 32-block type of about the same size
    WT_CHECK(werk_quant_fallback(Q(Q4_K), 640) == Q(Q5_0), "Q4_K -> Q5_0");
    WT_CHECK(werk_quant_fallback(Q(Q5_K), 640) == Q(Q5_1), "Q5_K -> Q5_1");
    WT_CHECK(werk_quant_fallback(Q(Q6_K), 640) == Q(Q8_0), "Q6_K -> Q8_0");
    WT_CHECK(werk_quant_fallback(Q(Q2_K), 640) == Q(Q4_0), "Q2_K -> Q4_0");
    WT_CHECK(werk_quant_fallback(Q(Q3_K), 640) == Q(Q4_0), "Q3_K -> Q4_0");
    WT_CHECK(werk_quant_fallback(Q(Q4_K), 2048) == Q(Q4_K), "fits: unchanged");
    WT_CHECK(werk_quant_fallback(Q(Q4_K), 48) == Q(F16), "not even 32: F16");
    WT_CHECK(werk_quant_fallback(Q(Q8_0), 48) == Q(F16), "32-block type: F16");
    WT_CHECK(werk_quant_fallback(Q(F16), 7) == Q(F16), "floats always fit");

    const werk_quant_preset *p = werk_quant_preset_find("q4_k_m");
    WT_CHECK(p && p->ftype == 15 && p->type == Q(Q4_K), "Q4_K_M is LLAMA_FTYPE_MOSTLY_Q4_K_M = 15");
    WT_CHECK(werk_quant_preset_find("Q4_K") == p, "Q4_K is an alias of Q4_K_M");
    WT_CHECK(werk_quant_preset_find("15") == p, "by file-type number");
    WT_CHECK(werk_quant_preset_find("Q3_K")->ftype == 12 && werk_quant_preset_find("Q5_K")->ftype == 17,
             "aliases");
    WT_CHECK(!werk_quant_preset_find("Q7_K") && !werk_quant_preset_find("") && !werk_quant_preset_find("99"),
             "unknown presets");
    // llama.cpp's LLAMA_FTYPE numbers
    static const struct {
        const char *name;
        unsigned    ftype;
    } ft[] = {{"F32", 0},     {"F16", 1},     {"Q4_0", 2},    {"Q4_1", 3},    {"Q8_0", 7},    {"Q5_0", 8},
              {"Q5_1", 9},    {"Q2_K", 10},   {"Q3_K_S", 11}, {"Q3_K_M", 12}, {"Q3_K_L", 13}, {"Q4_K_S", 14},
              {"Q4_K_M", 15}, {"Q5_K_S", 16}, {"Q5_K_M", 17}, {"Q6_K", 18},   {"BF16", 32}};
    for (size_t i = 0; i < sizeof(ft) / sizeof(ft[0]); i++) {
        const werk_quant_preset *q = werk_quant_preset_find(ft[i].name);
        WT_CHECK(q && q->ftype == ft[i].ftype, "%s ftype", ft[i].name);
    }
    WT_CHECK(werk_quant_preset_for_type(Q(Q4_K)) == p, "--q4_k -> Q4_K_M (pure)");
    WT_CHECK(werk_quant_preset_for_type(Q(Q3_K))->ftype == 12, "--q3_k -> Q3_K_M");
    WT_CHECK(werk_quant_preset_for_type(Q(Q8_0))->ftype == 7, "--q8_0 -> Q8_0");
    WT_CHECK(werk_quant_preset_for_type(Q(Q8_K)) == NULL, "no preset stores q8_K");

    static const struct {
        const char     *name;
        werk_tensor_cat cat;
    } cats[] = {
        {"token_embd.weight", WERK_TCAT_TOKEN_EMBD},     {"output.weight", WERK_TCAT_OUTPUT},
        {"blk.3.attn_q.weight", WERK_TCAT_ATTN_Q},       {"blk.3.attn_k.weight", WERK_TCAT_ATTN_K},
        {"blk.3.attn_v.weight", WERK_TCAT_ATTN_V},       {"blk.3.attn_qkv.weight", WERK_TCAT_ATTN_QKV},
        {"blk.3.attn_kv_b.weight", WERK_TCAT_ATTN_KV_B}, {"blk.3.attn_output.weight", WERK_TCAT_ATTN_OUTPUT},
        {"blk.3.ffn_up_exps.weight", WERK_TCAT_FFN_UP},  {"blk.3.ffn_gate.weight", WERK_TCAT_FFN_GATE},
        {"blk.3.ffn_down.weight", WERK_TCAT_FFN_DOWN},   {"blk.3.attn_q_norm.weight", WERK_TCAT_NORM},
        {"output_norm.weight", WERK_TCAT_NORM},          {"rope_freqs.weight", WERK_TCAT_OTHER},
        {"blk.0.output.weight", WERK_TCAT_OTHER}, // "output.weight" is a whole-name match
    };
    for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++) {
        WT_CHECK(werk_tensor_cat_of(cats[i].name) == cats[i].cat, "%s: category %s", cats[i].name,
                 werk_tensor_cat_name(werk_tensor_cat_of(cats[i].name)));
    }
}

int main(void) {
    test_gemma_q4_k_m();
    test_smollm2_q4_k_m();
    test_presets_distinct();
    test_arch_rules();
    test_options();
    test_what_is_quantized();
    test_fallback_and_lookup();
    return wt_done();
}
