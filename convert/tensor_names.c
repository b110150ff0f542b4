/* convert/tensor_names.c - HF <-> llama.cpp tensor names per architecture, as data
 *
 * One table row per tensor kind: the HF name (suffix after "model.layers.N." for block
 * tensors), the GGUF name (suffix after "blk.N."), the architectures it belongs to and
 * whether a model must have it. Facts from llama.cpp's gguf-py (tensor_mapping.py,
 * constants.py MODEL_TENSORS) and convert_hf_to_gguf.py:
 *   - HF post_attention_layernorm is the pre-FFN norm ("ffn_norm") for llama/qwen2/qwen3
 *     but the post-attention norm ("post_attention_norm") for gemma3, whose pre-FFN norm
 *     is pre_feedforward_layernorm -> ffn_norm and post-FFN norm -> post_ffw_norm;
 *   - lm_head -> output, model.norm -> output_norm, model.embed_tokens -> token_embd.
 * Also the architecture facts table (werk_hf_arch_info) and llama.cpp's Q/K row
 * permutation (LlamaModel.permute), which both the importer and the exporter use.
 */
#include "convert/hf_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

// ---- architectures ------------------------------------------------------------------------

// clang-format off
static const werk_hf_arch_info ARCHS[WERK_HF_ARCH_COUNT] = {
    [WERK_HF_ARCH_LLAMA]  = {"llama",  "LlamaForCausalLM",  "llama",       true,  false, false, false, false, false, 10000.0f},
    [WERK_HF_ARCH_QWEN2]  = {"qwen2",  "Qwen2ForCausalLM",  "qwen2",       false, false, false, true,  false, false, 10000.0f},
    [WERK_HF_ARCH_QWEN3]  = {"qwen3",  "Qwen3ForCausalLM",  "qwen3",       false, false, true,  false, false, true,  10000.0f},
    [WERK_HF_ARCH_GEMMA3] = {"gemma3", "Gemma3ForCausalLM", "gemma3_text", false, true,  true,  false, true,  true,  1000000.0f},
};
// clang-format on

const werk_hf_arch_info *werk_hf_arch_get(werk_hf_arch arch) {
    WERK_ASSERT((unsigned)arch < WERK_HF_ARCH_COUNT);
    return &ARCHS[arch];
}

bool werk_hf_arch_from_gguf(const char *name, werk_hf_arch *out) {
    for (int a = 0; a < WERK_HF_ARCH_COUNT; a++) {
        if (name && strcmp(name, ARCHS[a].gguf_name) == 0) {
            *out = (werk_hf_arch)a;
            return true;
        }
    }
    return false;
}

// ---- the name table -----------------------------------------------------------------------

enum {
    A_LLAMA  = 1u << WERK_HF_ARCH_LLAMA,
    A_QWEN2  = 1u << WERK_HF_ARCH_QWEN2,
    A_QWEN3  = 1u << WERK_HF_ARCH_QWEN3,
    A_GEMMA3 = 1u << WERK_HF_ARCH_GEMMA3,
    A_ALL    = A_LLAMA | A_QWEN2 | A_QWEN3 | A_GEMMA3,
};

typedef enum { REQ_NO = 0, REQ_YES, REQ_UNTIED, REQ_BIAS } name_req;

typedef struct name_entry {
    const char *hf;
    const char *gguf;
    unsigned    archs;
    name_req    req;
} name_entry;

// clang-format off
static const name_entry GLOBAL_NAMES[] = {
    {"model.embed_tokens.weight", "token_embd.weight",  A_ALL, REQ_YES},
    {"model.norm.weight",         "output_norm.weight", A_ALL, REQ_YES},
    {"lm_head.weight",            "output.weight",      A_ALL, REQ_UNTIED},
};

/* After "model.layers.N." <-> "blk.N.". Where one HF name maps differently per arch, the
 * arch masks are disjoint. */
static const name_entry LAYER_NAMES[] = {
    {"input_layernorm.weight",            "attn_norm.weight",           A_ALL,                     REQ_YES},
    {"self_attn.q_proj.weight",           "attn_q.weight",              A_ALL,                     REQ_YES},
    {"self_attn.k_proj.weight",           "attn_k.weight",              A_ALL,                     REQ_YES},
    {"self_attn.v_proj.weight",           "attn_v.weight",              A_ALL,                     REQ_YES},
    {"self_attn.o_proj.weight",           "attn_output.weight",         A_ALL,                     REQ_YES},
    {"self_attn.q_proj.bias",             "attn_q.bias",                A_ALL,                     REQ_BIAS},
    {"self_attn.k_proj.bias",             "attn_k.bias",                A_ALL,                     REQ_BIAS},
    {"self_attn.v_proj.bias",             "attn_v.bias",                A_ALL,                     REQ_BIAS},
    {"self_attn.o_proj.bias",             "attn_output.bias",           A_LLAMA | A_QWEN3 | A_GEMMA3, REQ_BIAS},
    {"self_attn.q_norm.weight",           "attn_q_norm.weight",         A_QWEN3 | A_GEMMA3,        REQ_YES},
    {"self_attn.k_norm.weight",           "attn_k_norm.weight",         A_QWEN3 | A_GEMMA3,        REQ_YES},
    {"post_attention_layernorm.weight",   "ffn_norm.weight",            A_LLAMA | A_QWEN2 | A_QWEN3, REQ_YES},
    {"post_attention_layernorm.weight",   "post_attention_norm.weight", A_GEMMA3,                  REQ_YES},
    {"pre_feedforward_layernorm.weight",  "ffn_norm.weight",            A_GEMMA3,                  REQ_YES},
    {"post_feedforward_layernorm.weight", "post_ffw_norm.weight",       A_GEMMA3,                  REQ_YES},
    {"mlp.gate_proj.weight",              "ffn_gate.weight",            A_ALL,                     REQ_YES},
    {"mlp.up_proj.weight",                "ffn_up.weight",              A_ALL,                     REQ_YES},
    {"mlp.down_proj.weight",              "ffn_down.weight",            A_ALL,                     REQ_YES},
    {"mlp.gate_proj.bias",                "ffn_gate.bias",              A_LLAMA,                   REQ_NO},
    {"mlp.up_proj.bias",                  "ffn_up.bias",                A_LLAMA,                   REQ_NO},
    {"mlp.down_proj.bias",                "ffn_down.bias",              A_LLAMA,                   REQ_NO},
};
// clang-format on

#define N_GLOBAL (sizeof(GLOBAL_NAMES) / sizeof(GLOBAL_NAMES[0]))
#define N_LAYER (sizeof(LAYER_NAMES) / sizeof(LAYER_NAMES[0]))

static const char HF_LAYER_PREFIX[]   = "model.layers.";
static const char GGUF_LAYER_PREFIX[] = "blk.";

/* Parses "<digits>." at s: a block index without sign or leading zeros, at most 9 digits.
 * Returns the rest after the dot, or NULL. */
static const char *parse_layer(const char *s, int64_t *layer) {
    int64_t v = 0;
    int     n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n == 9) {
            return NULL;
        }
        v = v * 10 + (s[n] - '0');
        n++;
    }
    if (n == 0 || (n > 1 && s[0] == '0') || s[n] != '.') {
        return NULL;
    }
    *layer = v;
    return s + n + 1;
}

/* from_hf: map HF -> GGUF, else GGUF -> HF. */
static bool
map_name(werk_hf_arch arch, const char *in, bool from_hf, char *out, size_t out_size, int64_t *layer) {
    if ((unsigned)arch >= WERK_HF_ARCH_COUNT || !in) {
        return false;
    }
    unsigned    mask   = 1u << arch;
    const char *prefix = from_hf ? HF_LAYER_PREFIX : GGUF_LAYER_PREFIX;
    size_t      plen   = strlen(prefix);
    int64_t     blk    = -1;
    const char *rest   = in;
    if (strncmp(in, prefix, plen) == 0) {
        rest = parse_layer(in + plen, &blk);
        if (!rest) {
            return false;
        }
    }
    const name_entry *tab = blk >= 0 ? LAYER_NAMES : GLOBAL_NAMES;
    size_t            n   = blk >= 0 ? N_LAYER : N_GLOBAL;
    for (size_t i = 0; i < n; i++) {
        if (!(tab[i].archs & mask)) {
            continue;
        }
        const char *key = from_hf ? tab[i].hf : tab[i].gguf;
        const char *val = from_hf ? tab[i].gguf : tab[i].hf;
        if (strcmp(rest, key) != 0) {
            continue;
        }
        int k;
        if (blk >= 0) {
            k = snprintf(out, out_size, "%s%" PRId64 ".%s", from_hf ? GGUF_LAYER_PREFIX : HF_LAYER_PREFIX,
                         blk, val);
        } else {
            k = snprintf(out, out_size, "%s", val);
        }
        if (k < 0 || (size_t)k >= out_size) {
            return false;
        }
        if (layer) {
            *layer = blk;
        }
        return true;
    }
    return false;
}

bool werk_hf_name_to_gguf(werk_hf_arch arch, const char *hf, char *out, size_t out_size, int64_t *layer) {
    return map_name(arch, hf, true, out, out_size, layer);
}

bool werk_hf_name_from_gguf(werk_hf_arch arch, const char *gguf, char *out, size_t out_size, int64_t *layer) {
    return map_name(arch, gguf, false, out, out_size, layer);
}

static bool required(const name_entry *e, bool tied, bool bias) {
    switch (e->req) {
    case REQ_YES:
        return true;
    case REQ_UNTIED:
        return !tied;
    case REQ_BIAS:
        return bias;
    default:
        return false;
    }
}

werk_status werk_hf_required_tensors(
    werk_hf_arch arch, int64_t n_layer, bool tied, bool bias, werk_hf_name_fn fn, void *ctx, werk_err *err) {
    WERK_ASSERT((unsigned)arch < WERK_HF_ARCH_COUNT);
    unsigned mask = 1u << arch;
    char     name[128];
    for (size_t i = 0; i < N_GLOBAL; i++) {
        if ((GLOBAL_NAMES[i].archs & mask) && required(&GLOBAL_NAMES[i], tied, bias)) {
            werk_status s = fn(ctx, GLOBAL_NAMES[i].gguf, err);
            if (s) {
                return s;
            }
        }
    }
    for (int64_t l = 0; l < n_layer; l++) {
        for (size_t i = 0; i < N_LAYER; i++) {
            if (!(LAYER_NAMES[i].archs & mask) || !required(&LAYER_NAMES[i], tied, bias)) {
                continue;
            }
            snprintf(name, sizeof(name), "%s%" PRId64 ".%s", GGUF_LAYER_PREFIX, l, LAYER_NAMES[i].gguf);
            werk_status s = fn(ctx, name, err);
            if (s) {
                return s;
            }
        }
    }
    return WERK_OK;
}

// ---- shapes ---------------------------------------------------------------------------------

bool werk_hf_expected_shape(const werk_hf_hparams *hp, const char *name, int *nd, int64_t shape[2]) {
    const char *suffix = name;
    if (strncmp(name, "blk.", 4) == 0) {
        suffix = strchr(name + 4, '.') + 1;
    }
    int64_t q = hp->n_head * hp->head_dim, kv = hp->n_head_kv * hp->head_dim;
    // clang-format off
    const struct { const char *name; int nd; int64_t d0, d1; } tab[] = {
        {"token_embd.weight",          2, hp->n_vocab, hp->n_embd},
        {"output.weight",              2, hp->n_vocab, hp->n_embd},
        {"output_norm.weight",         1, hp->n_embd,  0},
        {"attn_norm.weight",           1, hp->n_embd,  0},
        {"ffn_norm.weight",            1, hp->n_embd,  0},
        {"post_attention_norm.weight", 1, hp->n_embd,  0},
        {"post_ffw_norm.weight",       1, hp->n_embd,  0},
        {"attn_q_norm.weight",         1, hp->head_dim, 0},
        {"attn_k_norm.weight",         1, hp->head_dim, 0},
        {"attn_q.weight",              2, q,  hp->n_embd},
        {"attn_k.weight",              2, kv, hp->n_embd},
        {"attn_v.weight",              2, kv, hp->n_embd},
        {"attn_output.weight",         2, hp->n_embd, q},
        {"attn_q.bias",                1, q,  0},
        {"attn_k.bias",                1, kv, 0},
        {"attn_v.bias",                1, kv, 0},
        {"attn_output.bias",           1, hp->n_embd, 0},
        {"ffn_gate.weight",            2, hp->n_ff, hp->n_embd},
        {"ffn_up.weight",              2, hp->n_ff, hp->n_embd},
        {"ffn_down.weight",            2, hp->n_embd, hp->n_ff},
        {"ffn_gate.bias",              1, hp->n_ff, 0},
        {"ffn_up.bias",                1, hp->n_ff, 0},
        {"ffn_down.bias",              1, hp->n_embd, 0},
    };
    // clang-format on
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (strcmp(suffix, tab[i].name) == 0) {
            *nd      = tab[i].nd;
            shape[0] = tab[i].d0;
            shape[1] = tab[i].d1;
            return true;
        }
    }
    return false;
}

// ---- llama Q/K permutation ------------------------------------------------------------------

/* Within one head of hd = rows / n_head rows, HF keeps the rotate-half order (first half
 * of the head = the "real" parts, second half = the "imaginary" parts) and llama.cpp
 * interleaves them. reshape(n_head, 2, hd/2, cols).swapaxes(1, 2) puts source row
 * h*hd + i*(hd/2) + j at output row h*hd + 2*j + i (i in {0,1}, j < hd/2). */
void werk_hf_qk_row_map(int64_t *map, int64_t rows, int64_t n_head, bool inverse) {
    WERK_ASSERT(n_head > 0 && rows % (2 * n_head) == 0);
    int64_t hd = rows / n_head, half = hd / 2;
    for (int64_t h = 0; h < n_head; h++) {
        for (int64_t i = 0; i < 2; i++) {
            for (int64_t j = 0; j < half; j++) {
                int64_t hf   = h * hd + i * half + j;
                int64_t gguf = h * hd + 2 * j + i;
                if (inverse) {
                    map[hf] = gguf;
                } else {
                    map[gguf] = hf;
                }
            }
        }
    }
}
