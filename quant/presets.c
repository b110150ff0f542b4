/* quant/presets.c - llama.cpp's quantization mixes as data, and the per-tensor type plan
 *
 * Owns the preset table (Q4_K_M, Q5_K_S, ... with llama.cpp's LLAMA_FTYPE numbers), the
 * tensor category of a name, which tensors are quantized at all, the rule table that gives
 * attn_v / ffn_down / output ... more bits, the fallback for rows that do not fit a block,
 * and werk_quant_plan, which applies them to a model's tensors.
 *
 * Source of the rules: llama.cpp src/llama-quant.cpp (tensor_get_category,
 * tensor_allows_quantization, llama_tensor_get_type_impl, tensor_type_fallback), read for
 * facts; only the mixes werk offers are transcribed (no IQ*, TQ*, MXFP4, Q2_K_S).
 * Behaviour kept on purpose because it decides types:
 *   - tensors are visited in llama.cpp's loader order: layer number ("blk.N."; none = -1)
 *     first, then the name bytewise; the attn_v counter (i_attention_wv) and the ffn_down
 *     counter advance only when the rules run for a tensor (not under --pure or for a
 *     --tensor-type match), exactly as in llama.cpp;
 *   - attn_qkv and attn_kv_b are ruled like attn_v (llama.cpp's category_is_attn_v);
 *   - when the model has no output.weight, token_embd.weight is ruled like the output;
 *   - --token-embedding-type / --output-tensor-type win over everything else.
 * Where werk differs: a type the user forces is still moved to its fallback when the row
 * length does not fit its block (llama.cpp would write an invalid file), and the
 * 32-element types fall back to F16 instead of failing.
 */
#include "quant/presets_int.h"

#include <inttypes.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

// ---- presets -------------------------------------------------------------------------------------

enum {
    PI_Q4_0,
    PI_Q4_1,
    PI_Q5_0,
    PI_Q5_1,
    PI_Q8_0,
    PI_Q2_K,
    PI_Q3_K_S,
    PI_Q3_K_M,
    PI_Q3_K_L,
    PI_Q4_K_S,
    PI_Q4_K_M,
    PI_Q5_K_S,
    PI_Q5_K_M,
    PI_Q6_K,
    PI_F16,
    PI_BF16,
    PI_F32,
    PI_COUNT
};

// clang-format off
static const werk_quant_preset presets[PI_COUNT] = {
    [PI_Q4_0]   = {"Q4_0",   2,  WERK_DTYPE_Q4_0, "4.5 bpw; output Q6_K"},
    [PI_Q4_1]   = {"Q4_1",   3,  WERK_DTYPE_Q4_1, "5.0 bpw; output Q6_K"},
    [PI_Q5_0]   = {"Q5_0",   8,  WERK_DTYPE_Q5_0, "5.5 bpw; output Q6_K"},
    [PI_Q5_1]   = {"Q5_1",   9,  WERK_DTYPE_Q5_1, "6.0 bpw; output Q6_K"},
    [PI_Q8_0]   = {"Q8_0",   7,  WERK_DTYPE_Q8_0, "8.5 bpw"},
    [PI_Q2_K]   = {"Q2_K",   10, WERK_DTYPE_Q2_K, "Q2_K; attn_v Q3_K/Q4_K, ffn_down and attn_output Q3_K"},
    [PI_Q3_K_S] = {"Q3_K_S", 11, WERK_DTYPE_Q3_K, "Q3_K everywhere but the output"},
    [PI_Q3_K_M] = {"Q3_K_M", 12, WERK_DTYPE_Q3_K, "Q3_K; attn_v, attn_output, ffn_down Q4_K/Q5_K"},
    [PI_Q3_K_L] = {"Q3_K_L", 13, WERK_DTYPE_Q3_K, "Q3_K; attn_v, attn_output, ffn_down Q5_K"},
    [PI_Q4_K_S] = {"Q4_K_S", 14, WERK_DTYPE_Q4_K, "Q4_K; first attn_v and ffn_down Q5_K"},
    [PI_Q4_K_M] = {"Q4_K_M", 15, WERK_DTYPE_Q4_K, "Q4_K; half of attn_v and ffn_down Q6_K (recommended)"},
    [PI_Q5_K_S] = {"Q5_K_S", 16, WERK_DTYPE_Q5_K, "Q5_K everywhere but the output"},
    [PI_Q5_K_M] = {"Q5_K_M", 17, WERK_DTYPE_Q5_K, "Q5_K; half of attn_v and ffn_down Q6_K"},
    [PI_Q6_K]   = {"Q6_K",   18, WERK_DTYPE_Q6_K, "6.6 bpw"},
    [PI_F16]    = {"F16",    1,  WERK_DTYPE_F16,  "every weight f16"},
    [PI_BF16]   = {"BF16",   32, WERK_DTYPE_BF16, "every weight bf16"},
    [PI_F32]    = {"F32",    0,  WERK_DTYPE_F32,  "every weight f32"},
};
// clang-format on

/* llama-quantize's aliases: a K-quant without a size letter is the _M mix. */
static const struct {
    const char *alias;
    int         preset;
} preset_aliases[] = {{"Q3_K", PI_Q3_K_M}, {"Q4_K", PI_Q4_K_M}, {"Q5_K", PI_Q5_K_M}};

static int ascii_lower(int c) { return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c; }

static bool equal_nocase(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        if (ascii_lower((unsigned char)*a) != ascii_lower((unsigned char)*b)) {
            return false;
        }
    }
    return *a == *b;
}

int werk_quant_preset_count(void) { return PI_COUNT; }

const werk_quant_preset *werk_quant_preset_at(int i) {
    WERK_ASSERT(i >= 0 && i < PI_COUNT);
    return &presets[i];
}

const werk_quant_preset *werk_quant_preset_find(const char *name) {
    if (!name || !*name) {
        return NULL;
    }
    for (int i = 0; i < PI_COUNT; i++) {
        if (equal_nocase(name, presets[i].name)) {
            return &presets[i];
        }
    }
    for (size_t i = 0; i < sizeof(preset_aliases) / sizeof(preset_aliases[0]); i++) {
        if (equal_nocase(name, preset_aliases[i].alias)) {
            return &presets[preset_aliases[i].preset];
        }
    }
    char *end;
    long  v = strtol(name, &end, 10);
    if (end != name && *end == 0 && name[0] >= '0' && name[0] <= '9') {
        for (int i = 0; i < PI_COUNT; i++) {
            if ((long)presets[i].ftype == v) {
                return &presets[i];
            }
        }
    }
    return NULL;
}

const werk_quant_preset *werk_quant_preset_for_type(werk_dtype t) {
    for (size_t i = 0; i < sizeof(preset_aliases) / sizeof(preset_aliases[0]); i++) {
        if (presets[preset_aliases[i].preset].type == t) {
            return &presets[preset_aliases[i].preset];
        }
    }
    for (int i = 0; i < PI_COUNT; i++) {
        if (presets[i].type == t) {
            return &presets[i];
        }
    }
    return NULL;
}

// ---- tensor categories ---------------------------------------------------------------------------

/* Tried in order; the first match names the category (llama.cpp's tensor_get_category,
 * plus NORM for display, which only names what llama.cpp calls OTHER). */
static const struct {
    werk_tensor_cat cat;
    bool            exact; // whole name, else substring
    const char     *s;
} cat_names[] = {
    {WERK_TCAT_OUTPUT, true, "output.weight"},
    {WERK_TCAT_TOKEN_EMBD, true, "token_embd.weight"},
    {WERK_TCAT_TOKEN_EMBD, true, "per_layer_token_embd.weight"},
    {WERK_TCAT_ATTN_QKV, false, "attn_qkv.weight"},
    {WERK_TCAT_ATTN_KV_B, false, "attn_kv_b.weight"},
    {WERK_TCAT_ATTN_V, false, "attn_v.weight"},
    {WERK_TCAT_ATTN_K, false, "attn_k.weight"},
    {WERK_TCAT_ATTN_Q, false, "attn_q.weight"},
    {WERK_TCAT_ATTN_OUTPUT, false, "attn_output.weight"},
    {WERK_TCAT_FFN_UP, false, "ffn_up"},
    {WERK_TCAT_FFN_GATE, false, "ffn_gate"},
    {WERK_TCAT_FFN_DOWN, false, "ffn_down"},
    {WERK_TCAT_NORM, false, "_norm."},
};

static const char *const cat_display[WERK_TCAT_COUNT] = {
    [WERK_TCAT_OTHER]       = "other",
    [WERK_TCAT_TOKEN_EMBD]  = "token_embd",
    [WERK_TCAT_OUTPUT]      = "output",
    [WERK_TCAT_ATTN_Q]      = "attn_q",
    [WERK_TCAT_ATTN_K]      = "attn_k",
    [WERK_TCAT_ATTN_V]      = "attn_v",
    [WERK_TCAT_ATTN_QKV]    = "attn_qkv",
    [WERK_TCAT_ATTN_KV_B]   = "attn_kv_b",
    [WERK_TCAT_ATTN_OUTPUT] = "attn_output",
    [WERK_TCAT_FFN_UP]      = "ffn_up",
    [WERK_TCAT_FFN_GATE]    = "ffn_gate",
    [WERK_TCAT_FFN_DOWN]    = "ffn_down",
    [WERK_TCAT_NORM]        = "norm",
};

werk_tensor_cat werk_tensor_cat_of(const char *name) {
    for (size_t i = 0; i < sizeof(cat_names) / sizeof(cat_names[0]); i++) {
        bool hit =
            cat_names[i].exact ? strcmp(name, cat_names[i].s) == 0 : strstr(name, cat_names[i].s) != NULL;
        if (hit) {
            return cat_names[i].cat;
        }
    }
    return WERK_TCAT_OTHER;
}

const char *werk_tensor_cat_name(werk_tensor_cat c) {
    return (unsigned)c < WERK_TCAT_COUNT ? cat_display[c] : "?";
}

// ---- which tensors are quantized -----------------------------------------------------------------

/* Weights llama.cpp never quantizes (tensor_allows_quantization): small, integer-valued or
 * precision-critical tensors of various architectures. Substrings unless `exact`. */
static const struct {
    bool        exact;
    const char *s;
} never_quantized[] = {
    {false, "_norm.weight"},            // norms
    {false, "ffn_gate_inp.weight"},     // MoE router
    {false, "ffn_gate_tid2eid.weight"}, // DeepSeek-V4 token -> expert table
    {false, "altup"},                   // Gemma 3n, tiny
    {false, "laurel"},                  // Gemma 3n, tiny
    {false, "per_layer_model_proj"},    // Gemma 3n
    {true, "position_embd.weight"},     // learned positions (GPT-2, BERT)
    {true, "token_types.weight"},       // BERT
    {false, "ssm_conv1d"},              // Mamba
    {false, "shortconv.conv.weight"},   // LFM2
    {false, "indexer.k_proj.weight"},   // MiniMax
    {false, "indexer.q_proj.weight"},
    {false, "time_mix_first.weight"}, // RWKV
    {false, "time_mix_w0.weight"},
    {false, "time_mix_w1.weight"},
    {false, "time_mix_w2.weight"},
    {false, "time_mix_v0.weight"},
    {false, "time_mix_v1.weight"},
    {false, "time_mix_v2.weight"},
    {false, "time_mix_a0.weight"},
    {false, "time_mix_a1.weight"},
    {false, "time_mix_a2.weight"},
    {false, "time_mix_g1.weight"},
    {false, "time_mix_g2.weight"},
    {false, "time_mix_decay_w1.weight"},
    {false, "time_mix_decay_w2.weight"},
    {false, "time_mix_lerp_fused.weight"},
    {false, "attn_rel_b.weight"}, // T5 relative position bias
    {false, ".position_embd"},    // multimodal projectors
    {false, "sam.pos_embd"},
    {false, "sam.neck."},
    {false, "sam.net_"},
    {false, ".rel_pos"},
    {false, ".patch_embd"},
    {false, ".patch_merger"},
    {false, "a.rvq.codebook"}, // audio codebooks
    {false, "mm.a.code_embd"},
};

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* ggml_n_dims: dimensions up to the outermost one larger than 1. */
static int effective_dims(const werk_quant_tinfo *t) {
    for (int d = 0; d + 1 < t->n_dims; d++) {
        if (t->shape[d] > 1) {
            return t->n_dims - d;
        }
    }
    return 1;
}

static bool allows_quantization(const werk_quant_tinfo *t, bool leave_output) {
    const werk_dtype_info *si = werk_dtype_get(t->src_type);
    if (!si->is_float && !si->is_quant) {
        return false; // integer tables are copied
    }
    if (effective_dims(t) < 2 || !has_suffix(t->name, "weight")) {
        return false;
    }
    if (leave_output && strcmp(t->name, "output.weight") == 0) {
        return false;
    }
    for (size_t i = 0; i < sizeof(never_quantized) / sizeof(never_quantized[0]); i++) {
        bool hit = never_quantized[i].exact ? strcmp(t->name, never_quantized[i].s) == 0
                                            : strstr(t->name, never_quantized[i].s) != NULL;
        if (hit) {
            return false;
        }
    }
    return true;
}

// ---- the rules -----------------------------------------------------------------------------------

#define P(x) (1u << PI_##x)
#define ALLQ                                                                                                 \
    (P(Q4_0) | P(Q4_1) | P(Q5_0) | P(Q5_1) | P(Q8_0) | P(Q2_K) | P(Q3_K_S) | P(Q3_K_M) | P(Q3_K_L) |         \
     P(Q4_K_S) | P(Q4_K_M) | P(Q5_K_S) | P(Q5_K_M) | P(Q6_K))
#define T(x) WERK_DTYPE_##x
#define KEEP WERK_DTYPE_COUNT
#define TBIT(x) (1u << WERK_DTYPE_##x)

_Static_assert(WERK_DTYPE_COUNT <= 32, "adjust rules keep a 32-bit mask over types");

// clang-format off
static const werk_quant_rule base_rules[] = {
    // output.weight (and a tied token_embd.weight): Q6_K, or Q8_0 when the row does not fit
    // the preset's block or for falcon; a Q8_0 file keeps Q8_0
    {ALLQ,    WERK_RCAT_OUTPUT, WERK_QP_FALCON,     0, 0, T(Q8_0)},
    {ALLQ,    WERK_RCAT_OUTPUT, WERK_QP_ROW_MISFIT, 0, 0, T(Q8_0)},
    {P(Q8_0), WERK_RCAT_OUTPUT, 0,                  0, 0, KEEP},
    {ALLQ,    WERK_RCAT_OUTPUT, 0,                  0, 0, T(Q6_K)},

    // attn_v (attn_qkv, attn_kv_b): i = index among them, n = their count
    {P(Q2_K),              WERK_RCAT_ATTN_V, WERK_QP_GQA_GE_4,  0, 0, T(Q4_K)},
    {P(Q2_K),              WERK_RCAT_ATTN_V, 0,                 0, 0, T(Q3_K)},
    {P(Q3_K_M),            WERK_RCAT_ATTN_V, WERK_QP_I_LT_2,    0, 0, T(Q5_K)},
    {P(Q3_K_M),            WERK_RCAT_ATTN_V, 0,                 0, 0, T(Q4_K)},
    {P(Q3_K_L),            WERK_RCAT_ATTN_V, 0,                 0, 0, T(Q5_K)},
    {P(Q4_K_M) | P(Q5_K_M), WERK_RCAT_ATTN_V, WERK_QP_MORE_BITS, 0, 0, T(Q6_K)},
    {P(Q4_K_S),            WERK_RCAT_ATTN_V, WERK_QP_I_LT_4,    0, 0, T(Q5_K)},

    // attn_k of 8-expert models
    {ALLQ, WERK_RCAT_ATTN_K, WERK_QP_EXPERT_8, 0, 0, T(Q8_0)},

    // ffn_down: i = layer, n = n_layer
    {P(Q2_K),   WERK_RCAT_FFN_DOWN, 0,                                   0, 0, T(Q3_K)},
    {P(Q3_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_FIRST_16TH,                  0, 0, T(Q5_K)},
    {P(Q3_K_M), WERK_RCAT_FFN_DOWN, 0,                                   WERK_QP_FALCON, 0, T(Q4_K)},
    {P(Q3_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_MORE_BITS,                   0, 0, T(Q4_K)},
    {P(Q3_K_M), WERK_RCAT_FFN_DOWN, 0,                                   0, 0, T(Q3_K)},
    {P(Q3_K_L), WERK_RCAT_FFN_DOWN, WERK_QP_FALCON,                      0, 0, T(Q4_K)},
    {P(Q3_K_L), WERK_RCAT_FFN_DOWN, 0,                                   0, 0, T(Q5_K)},
    {P(Q4_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_FALCON | WERK_QP_FIRST_16TH, 0, 0, T(Q6_K)},
    {P(Q4_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_FALCON | WERK_QP_MORE_BITS,  0, 0, T(Q5_K)},
    {P(Q4_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_FALCON,                      0, 0, T(Q4_K)},
    {P(Q4_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_MORE_BITS,                   0, 0, T(Q6_K)},
    {P(Q4_K_M), WERK_RCAT_FFN_DOWN, 0,                                   0, 0, KEEP},
    {P(Q5_K_M), WERK_RCAT_FFN_DOWN, WERK_QP_MORE_BITS,                   0, 0, T(Q6_K)},
    {P(Q4_K_S), WERK_RCAT_FFN_DOWN, WERK_QP_FIRST_8TH,                   WERK_QP_FALCON, 0, T(Q5_K)},
    // only with an imatrix, so that a plain Q4_0/Q5_0 stays what it always was
    {P(Q4_0),   WERK_RCAT_FFN_DOWN, WERK_QP_IMATRIX | WERK_QP_FIRST_8TH, 0, 0, T(Q4_1)},
    {P(Q5_0),   WERK_RCAT_FFN_DOWN, WERK_QP_IMATRIX | WERK_QP_FIRST_8TH, 0, 0, T(Q5_1)},

    // attn_output
    {P(Q2_K) | P(Q3_K_S) | P(Q3_K_M) | P(Q4_K_S) | P(Q4_K_M),
                WERK_RCAT_ATTN_OUTPUT, WERK_QP_EXPERT_8, WERK_QP_FALCON, 0, T(Q5_K)},
    {ALLQ,      WERK_RCAT_ATTN_OUTPUT, WERK_QP_EXPERT_8, WERK_QP_FALCON, 0, KEEP},
    {P(Q2_K),   WERK_RCAT_ATTN_OUTPUT, 0,                WERK_QP_FALCON, 0, T(Q3_K)},
    {P(Q3_K_M), WERK_RCAT_ATTN_OUTPUT, 0,                WERK_QP_FALCON, 0, T(Q4_K)},
    {P(Q3_K_L), WERK_RCAT_ATTN_OUTPUT, 0,                WERK_QP_FALCON, 0, T(Q5_K)},
    {P(Q3_K_L), WERK_RCAT_ATTN_OUTPUT, WERK_QP_FALCON,   0,              0, T(Q4_K)},
};

static const werk_quant_rule adjust_rules[] = {
    // 70B: attn_v is 8x smaller than attn_q, so more bits cost little
    {ALLQ, WERK_RCAT_ATTN_V, WERK_QP_MODEL_70B, 0, TBIT(Q3_K) | TBIT(Q4_K), T(Q5_K)},
    // 8 experts: attn_v to Q8_0 (about 128 MB on Mixtral)
    {ALLQ, WERK_RCAT_ATTN_V, WERK_QP_EXPERT_8,  0, 0,                       T(Q8_0)},
};
// clang-format on

static bool rule_matches(const werk_quant_rule *r, int p, werk_quant_rcat rcat, uint32_t preds) {
    return (r->presets & (1u << p)) && r->rcat == rcat && (preds & r->need) == r->need &&
           (preds & r->need_not) == 0;
}

werk_dtype werk_quant_rules_apply(int p, werk_quant_rcat rcat, uint32_t preds) {
    WERK_ASSERT(p >= 0 && p < PI_COUNT);
    werk_dtype type = presets[p].type;
    for (size_t i = 0; i < sizeof(base_rules) / sizeof(base_rules[0]); i++) {
        if (rule_matches(&base_rules[i], p, rcat, preds)) {
            if (base_rules[i].type != KEEP) {
                type = base_rules[i].type;
            }
            break;
        }
    }
    for (size_t i = 0; i < sizeof(adjust_rules) / sizeof(adjust_rules[0]); i++) {
        const werk_quant_rule *r = &adjust_rules[i];
        if (rule_matches(r, p, rcat, preds) && (r->from == 0 || (r->from & (1u << type)))) {
            type = r->type;
        }
    }
    return type;
}

werk_dtype werk_quant_fallback(werk_dtype t, int64_t n_per_row) {
    if (n_per_row % werk_dtype_get(t)->block_size == 0) {
        return t;
    }
    werk_dtype f;
    switch (t) {
    case WERK_DTYPE_Q2_K:
    case WERK_DTYPE_Q3_K:
        f = WERK_DTYPE_Q4_0;
        break;
    case WERK_DTYPE_Q4_K:
        f = WERK_DTYPE_Q5_0;
        break;
    case WERK_DTYPE_Q5_K:
        f = WERK_DTYPE_Q5_1;
        break;
    case WERK_DTYPE_Q6_K:
        f = WERK_DTYPE_Q8_0;
        break;
    default:
        f = WERK_DTYPE_F16;
        break;
    }
    return n_per_row % werk_dtype_get(f)->block_size == 0 ? f : WERK_DTYPE_F16;
}

// ---- the plan ------------------------------------------------------------------------------------

/* llama.cpp's sscanf(name, "blk.%d.", &layer): -1 without a layer number. */
static int64_t layer_of(const char *name) {
    if (strncmp(name, "blk.", 4) != 0) {
        return -1;
    }
    char *end;
    long  v = strtol(name + 4, &end, 10);
    return end == name + 4 ? -1 : (int64_t)v;
}

typedef struct visit {
    int64_t     layer;
    const char *name;
    int64_t     index;
} visit;

static int visit_cmp(const void *a, const void *b) {
    const visit *x = a, *y = b;
    if (x->layer != y->layer) {
        return x->layer < y->layer ? -1 : 1;
    }
    return strcmp(x->name, y->name); // bytewise, as std::string's operator<
}

static bool more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

static bool is_attn_v_like(werk_tensor_cat c) {
    return c == WERK_TCAT_ATTN_V || c == WERK_TCAT_ATTN_QKV || c == WERK_TCAT_ATTN_KV_B;
}

static werk_quant_rcat rcat_of(werk_tensor_cat c, bool tied) {
    switch (c) {
    case WERK_TCAT_OUTPUT:
        return WERK_RCAT_OUTPUT;
    case WERK_TCAT_TOKEN_EMBD:
        return tied ? WERK_RCAT_OUTPUT : WERK_RCAT_NONE;
    case WERK_TCAT_ATTN_V:
    case WERK_TCAT_ATTN_QKV:
    case WERK_TCAT_ATTN_KV_B:
        return WERK_RCAT_ATTN_V;
    case WERK_TCAT_ATTN_K:
        return WERK_RCAT_ATTN_K;
    case WERK_TCAT_ATTN_OUTPUT:
        return WERK_RCAT_ATTN_OUTPUT;
    case WERK_TCAT_FFN_DOWN:
        return WERK_RCAT_FFN_DOWN;
    default:
        return WERK_RCAT_NONE;
    }
}

typedef struct plan_state {
    const werk_quant_model *m;
    const werk_quant_opts  *o;
    int                     p;        // preset index
    bool                    tied;     // no output.weight: token_embd is the output
    int64_t                 n_attn_v; // attn_v-like tensors in the model
    int64_t                 n_layer;
    int64_t                 i_attn_v;   // llama.cpp's qs.i_attention_wv
    int64_t                 i_ffn_down; // llama.cpp's qs.i_ffn_down
    uint32_t                model_preds;
} plan_state;

/* The type the mix gives tensor t (llama_tensor_get_type_impl); advances the counters. */
static werk_status rules_type(plan_state *s, const werk_quant_tinfo *t, werk_quant_choice *c, werk_err *err) {
    werk_quant_rcat rcat = rcat_of(c->cat, s->tied);
    if (rcat == WERK_RCAT_OUTPUT && s->o->output_type != WERK_DTYPE_COUNT) {
        c->wanted = s->o->output_type; // a tied token_embd follows --output-tensor-type
        c->manual = true;
        return WERK_OK;
    }
    uint32_t preds = s->model_preds;
    int64_t  row   = t->shape[t->n_dims - 1];
    if (row % werk_dtype_get(presets[s->p].type)->block_size != 0) {
        preds |= WERK_QP_ROW_MISFIT;
    }
    int64_t i = 0, n = 0;
    if (rcat == WERK_RCAT_ATTN_V) {
        i = s->i_attn_v++;
        n = s->n_attn_v;
    } else if (rcat == WERK_RCAT_FFN_DOWN) {
        n = s->n_layer;
        i = s->i_ffn_down++;
        if (s->m->n_expert > 1) { // experts are not consecutive: the layer comes from the name
            i = layer_of(t->name);
            if (i < 0 || i >= n) {
                return WERK_FAIL(err, WERK_E_FORMAT,
                                 "tensor '%s': no layer number in 0..%" PRId64
                                 " in the name of an expert tensor",
                                 t->name, n - 1);
            }
        }
    }
    if (rcat == WERK_RCAT_ATTN_V || rcat == WERK_RCAT_FFN_DOWN) {
        preds |= more_bits(i, n) ? WERK_QP_MORE_BITS : 0;
        preds |= i < n / 8 ? WERK_QP_FIRST_8TH : 0;
        preds |= i < n / 16 ? WERK_QP_FIRST_16TH : 0;
        preds |= i < 2 ? WERK_QP_I_LT_2 : 0;
        preds |= i < 4 ? WERK_QP_I_LT_4 : 0;
    }
    c->wanted = werk_quant_rules_apply(s->p, rcat, preds);
    return WERK_OK;
}

/* One tensor (llama_tensor_get_type). */
static werk_status
plan_one(plan_state *s, const werk_quant_tinfo *t, regex_t *re, werk_quant_choice *c, werk_err *err) {
    const werk_quant_opts *o    = s->o;
    werk_dtype             ptyp = presets[s->p].type;
    c->wanted                   = ptyp;
    if (o->token_embd_type != WERK_DTYPE_COUNT && c->cat == WERK_TCAT_TOKEN_EMBD) {
        c->wanted = o->token_embd_type;
        c->manual = true;
    } else if (o->output_type != WERK_DTYPE_COUNT && c->cat == WERK_TCAT_OUTPUT) {
        c->wanted = o->output_type;
        c->manual = true;
    } else if (werk_dtype_get(ptyp)->is_quant) {
        for (int k = 0; k < o->n_overrides; k++) {
            if (regexec(&re[k], t->name, 0, NULL, 0) == 0) {
                c->wanted = o->overrides[k].type;
                c->manual = true;
                break;
            }
        }
        if (!c->manual && !o->pure) {
            werk_status st = rules_type(s, t, c, err);
            if (st) {
                return st;
            }
        }
    }
    c->type     = werk_quant_fallback(c->wanted, t->shape[t->n_dims - 1]);
    c->fallback = c->type != c->wanted;
    return WERK_OK;
}

werk_status werk_quant_plan(const werk_quant_model *m,
                            const werk_quant_opts  *o,
                            const werk_quant_tinfo *t,
                            int64_t                 n,
                            werk_quant_choice      *out,
                            werk_err               *err) {
    WERK_ASSERT(m && o && o->preset && n >= 0 && o->n_overrides >= 0);
    WERK_ASSERT(o->preset >= presets && o->preset < presets + PI_COUNT);
    plan_state s = {.m = m, .o = o, .p = (int)(o->preset - presets), .tied = true};

    regex_t    *re    = o->n_overrides ? calloc((size_t)o->n_overrides, sizeof(regex_t)) : NULL;
    visit      *order = n ? calloc((size_t)n, sizeof(visit)) : NULL;
    int         n_re  = 0;
    werk_status st    = WERK_OK;
    if ((o->n_overrides && !re) || (n && !order)) {
        st = WERK_FAIL(err, WERK_E_OOM, "quantize plan: out of memory");
    }
    for (; st == WERK_OK && n_re < o->n_overrides; n_re++) {
        int rc = regcomp(&re[n_re], o->overrides[n_re].pattern, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &re[n_re], why, sizeof(why));
            st = WERK_FAIL(err, WERK_E_ARG, "--tensor-type: bad regular expression '%s': %s",
                           o->overrides[n_re].pattern, why);
            break;
        }
    }

    int64_t max_layer = -1;
    for (int64_t i = 0; st == WERK_OK && i < n; i++) {
        WERK_ASSERT(t[i].n_dims >= 1 && t[i].n_dims <= 4);
        werk_quant_choice *c = &out[i];
        memset(c, 0, sizeof(*c));
        c->cat    = werk_tensor_cat_of(t[i].name);
        c->type   = t[i].src_type;
        c->wanted = t[i].src_type;
        if (c->cat == WERK_TCAT_OUTPUT) {
            s.tied = false;
        }
        if (is_attn_v_like(c->cat)) {
            s.n_attn_v++;
        }
        order[i] = (visit){.layer = layer_of(t[i].name), .name = t[i].name, .index = i};
        if (order[i].layer > max_layer) {
            max_layer = order[i].layer;
        }
    }
    if (st == WERK_OK) {
        s.n_layer      = m->n_layer > 0 ? m->n_layer : max_layer + 1;
        int64_t gqa    = m->n_head_kv > 0 ? m->n_head / m->n_head_kv : 1;
        bool    falcon = m->arch && strcmp(m->arch, "falcon") == 0;
        bool    b70    = m->arch && strcmp(m->arch, "llama") == 0 && s.n_layer == 80 && m->n_head_kv > 0 &&
                   m->n_head != m->n_head_kv;
        s.model_preds = (gqa >= 4 ? WERK_QP_GQA_GE_4 : 0) | (m->n_expert == 8 ? WERK_QP_EXPERT_8 : 0) |
                        (falcon ? WERK_QP_FALCON : 0) | (o->has_imatrix ? WERK_QP_IMATRIX : 0) |
                        (b70 ? WERK_QP_MODEL_70B : 0);
        if (n) {
            qsort(order, (size_t)n, sizeof(visit), visit_cmp);
        }
    }
    for (int64_t k = 0; st == WERK_OK && k < n; k++) {
        int64_t            i = order[k].index;
        werk_quant_choice *c = &out[i];
        c->quantize          = allows_quantization(&t[i], o->leave_output);
        if (c->quantize) {
            st = plan_one(&s, &t[i], re, c, err);
        }
    }
    for (int k = 0; k < n_re; k++) {
        regfree(&re[k]);
    }
    free(re);
    free(order);
    return st;
}
