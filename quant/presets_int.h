/* quant/presets_int.h - private: the rule table behind werk_quant_plan
 *
 * Not for use outside quant/presets.c and its test. A rule says: for tensors of rule
 * category `rcat` under the presets in `presets`, when every predicate in `need` holds and
 * none in `need_not`, the type is `type` (WERK_DTYPE_COUNT: keep the preset's type). Base
 * rules are tried in order and the first match wins (llama.cpp's else-if chains); adjust
 * rules then all apply in order to the result (llama.cpp's post-fixes on attn_v), each
 * only if the current type is in `from` (a bit mask over werk_dtype, 0 = any).
 */
#ifndef WERK_PRESETS_INT_H
#define WERK_PRESETS_INT_H

#include "quant/quant.h"

#include <stdint.h>

/* Predicates, computed per tensor. i and n are llama.cpp's counters: for attn_v-like
 * tensors the index among them and their count, for ffn_down the layer and n_layer. */
enum {
    WERK_QP_MORE_BITS  = 1 << 0,  // use_more_bits(i, n): i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
    WERK_QP_FIRST_8TH  = 1 << 1,  // i < n/8
    WERK_QP_FIRST_16TH = 1 << 2,  // i < n/16
    WERK_QP_I_LT_2     = 1 << 3,  // i < 2
    WERK_QP_I_LT_4     = 1 << 4,  // i < 4
    WERK_QP_GQA_GE_4   = 1 << 5,  // n_head / n_head_kv >= 4
    WERK_QP_EXPERT_8   = 1 << 6,  // n_expert == 8
    WERK_QP_FALCON     = 1 << 7,  // arch falcon
    WERK_QP_IMATRIX    = 1 << 8,  // an importance matrix is used
    WERK_QP_MODEL_70B  = 1 << 9,  // llama with 80 layers and GQA (llama.cpp's LLM_TYPE_70B)
    WERK_QP_ROW_MISFIT = 1 << 10, // row length not a multiple of the preset type's block
};

/* Rule categories: tensor categories as the rules group them. */
typedef enum werk_quant_rcat {
    WERK_RCAT_NONE = 0, // no rule reads it
    WERK_RCAT_OUTPUT,   // output.weight, and token_embd.weight when tied to the output
    WERK_RCAT_ATTN_V,   // attn_v, attn_qkv, attn_kv_b
    WERK_RCAT_ATTN_K,
    WERK_RCAT_ATTN_OUTPUT,
    WERK_RCAT_FFN_DOWN,
} werk_quant_rcat;

typedef struct werk_quant_rule {
    uint32_t   presets;  // bit p: werk_quant_preset_at(p)
    uint8_t    rcat;     // werk_quant_rcat
    uint16_t   need;     // WERK_QP_* that must hold
    uint16_t   need_not; // WERK_QP_* that must not hold
    uint32_t   from;     // adjust rules: the current type's bit must be set; 0 = any
    werk_dtype type;     // WERK_DTYPE_COUNT = keep
} werk_quant_rule;

/* The type the rules give a tensor of rule category rcat under preset index p with
 * predicates preds (the preset's type if no rule matches). */
werk_dtype werk_quant_rules_apply(int p, werk_quant_rcat rcat, uint32_t preds);

#endif
