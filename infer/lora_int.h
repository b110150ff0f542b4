/* infer/lora_int.h - private helpers shared by the LoRA adapter files of infer/
 *
 * lora.c owns the werk_lora object (flat parameter storage, accessors, load dispatch);
 * lora_peft.c reads/writes PEFT dirs, lora_gguf.c llama.cpp LoRA GGUFs, lora_merge.c
 * merges adapters into base weights. All of them see a layer's seven projections through
 * werk_lora_slot_weight and the llama q/k row order through werk_lora_qk_perm.
 */
#ifndef WERK_INFER_LORA_INT_H
#define WERK_INFER_LORA_INT_H

#include "infer/model_int.h"

/* PEFT module names of the slots: "q_proj", ..., "down_proj". */
const char *werk_lora_slot_peft_name(int slot);

/* The base weight a slot of layer il adapts. */
const werk_wview *werk_lora_slot_weight(const werk_model *m, int64_t il, int slot);

/* For llama (interleaved rope) q/k: fills perm[rows] with GGUF row g = HF row perm[g] and
 * returns true; false (perm untouched) when the slot's rows keep HF's order. */
bool werk_lora_qk_perm(const werk_model *m, int slot, int64_t rows, int64_t *perm);

/* A zero adapter for m with rank r on the (layer, slot) pairs flagged in present
 * [n_layer * WERK_LORA_N_SLOTS]; scale = alpha / r (alpha / sqrt(r) with rslora) x scale. */
werk_status werk_lora_create(const werk_model *m,
                             int64_t           r,
                             float             alpha,
                             bool              rslora,
                             float             scale,
                             const bool       *present,
                             werk_lora       **out,
                             werk_err         *err);

/* Builds an adapter for m from a llama.cpp LoRA GGUF already read (path: for messages;
 * lora_gguf.c, also the fuzz target's entry). */
werk_status werk_lora_from_gguf(const werk_gguf *g, const char *path, const werk_model *m, float scale,
                                werk_lora **out, werk_err *err);
/* werk_lora_save_gguf / werk_lora_save_peft storing the tensors as type (f32, f16, bf16). */
werk_status werk_lora_save_gguf_as(const werk_lora *l, const werk_model *m, const char *path,
                                   const werk_lora_meta *meta, werk_dtype type, werk_err *err);
werk_status werk_lora_save_peft_as(const werk_lora *l, const werk_model *m, const char *dir,
                                   const char *base_name, const werk_lora_meta *meta, werk_dtype type,
                                   werk_err *err);
/* Loads a llama.cpp LoRA GGUF (lora_gguf.c). */
werk_status
werk_lora_load_gguf(const char *path, const werk_model *m, float scale, werk_lora **out, werk_err *err);

#endif
