/* convert/hf_int.h - private glue between the HF / llama2.c importers and the HF exporter
 *
 * Not for use outside convert/. Four files meet here:
 *   tensor_names.c  HF <-> llama.cpp tensor names per architecture (a table, as data) and
 *                   the llama Q/K row permutation;
 *   hf_config.c     config.json <-> hyper-parameters <-> GGUF keys (llama.cpp's names);
 *   hf_import.c     HF dir -> werk_gguf;  llama2c.c  llama2.c checkpoint -> werk_gguf;
 *   hf_export.c     werk_gguf -> HF dir.
 * Architecture switches that change tensors (Q/K permutation, norm + 1) live in the
 * werk_hf_arch_info table, so importer and exporter read the same facts.
 */
#ifndef WERK_HF_INT_H
#define WERK_HF_INT_H

#include "convert/convert_int.h"

typedef struct werk_hf_hparams werk_hf_hparams; // below

// ---- architectures ----------------------------------------------------------------------

typedef enum werk_hf_arch {
    WERK_HF_ARCH_LLAMA = 0,
    WERK_HF_ARCH_QWEN2,
    WERK_HF_ARCH_QWEN3,
    WERK_HF_ARCH_GEMMA3,
    WERK_HF_ARCH_COUNT
} werk_hf_arch;

typedef struct werk_hf_arch_info {
    const char *gguf_name;         // general.architecture ("llama", "gemma3", ...)
    const char *hf_class;          // config.json "architectures"[0] ("LlamaForCausalLM", ...)
    const char *model_type;        // config.json "model_type" ("llama", "gemma3_text", ...)
    bool        permute_qk;        // llama.cpp permutes Q/K rows to interleaved RoPE order
    bool        norm_plus_one;     // GGUF stores (1 + w) for every *norm.weight (Gemma RMSNorm)
    bool        qk_norm;           // per-head RMSNorm on Q and K (attn_q_norm / attn_k_norm)
    bool        qkv_bias;          // q/k/v projections always have a bias (qwen2)
    bool        post_norms;        // gemma-style post-attention / pre- and post-FFN norms
    bool        always_head_dim;   // key_length/value_length written even when = n_embd/n_head
    float       rope_base_default; // transformers' default rope_theta for the class
} werk_hf_arch_info;

/* Never NULL for a valid arch. */
const werk_hf_arch_info *werk_hf_arch_get(werk_hf_arch arch);
/* By GGUF architecture name; false if werk does not support it. */
bool werk_hf_arch_from_gguf(const char *name, werk_hf_arch *out);

// ---- tensor names -------------------------------------------------------------------------

/* HF name -> GGUF name for arch ("model.layers.3.self_attn.q_proj.weight" ->
 * "blk.3.attn_q.weight"). *layer is the block index (-1 for global tensors). Returns
 * false if the name is not one werk maps for this arch (or out does not fit). */
bool werk_hf_name_to_gguf(werk_hf_arch arch, const char *hf, char *out, size_t out_size, int64_t *layer);
/* GGUF name -> HF name (inverse of the above). */
bool werk_hf_name_from_gguf(werk_hf_arch arch, const char *gguf, char *out, size_t out_size, int64_t *layer);

/* Calls fn for every tensor an arch's model must have, by GGUF name: global ones, then for
 * each of n_layer blocks. `tied` leaves out output.weight; `bias` adds the attention biases
 * (q/k/v, and o where the arch's attention_bias has one; qwen2 always has q/k/v). Stops and
 * returns fn's status if it fails. */
typedef werk_status (*werk_hf_name_fn)(void *ctx, const char *gguf_name, werk_err *err);
werk_status werk_hf_required_tensors(
    werk_hf_arch arch, int64_t n_layer, bool tied, bool bias, werk_hf_name_fn fn, void *ctx, werk_err *err);

/* Expected shape (outermost first) of a GGUF tensor from the hyper-parameters: *nd dims
 * in shape[0..nd). False for a name without a known shape. */
bool werk_hf_expected_shape(const werk_hf_hparams *hp, const char *gguf_name, int *nd, int64_t shape[2]);

/* llama.cpp's Q/K permutation as a row map (convert_hf_to_gguf.py LlamaModel.permute:
 * w.reshape(n_head, 2, rows/n_head/2, cols).swapaxes(1, 2).reshape(rows, cols)).
 * Forward (HF rotate-half -> GGUF interleaved): map[r] = source row of output row r.
 * inverse = true gives the map GGUF -> HF. rows must be a multiple of 2 * n_head. */
void werk_hf_qk_row_map(int64_t *map, int64_t rows, int64_t n_head, bool inverse);

// ---- hyper-parameters ----------------------------------------------------------------------

struct werk_hf_hparams {
    werk_hf_arch arch;
    int64_t      n_vocab;
    int64_t      n_embd;
    int64_t      n_layer;
    int64_t      n_ff;
    int64_t      n_head;
    int64_t      n_head_kv;
    int64_t      head_dim;
    int64_t      n_ctx;
    float        rms_eps;
    float        rope_base;              // full-attention layers
    float        rope_base_local;        // gemma3 sliding-window layers
    float        rope_scale;             // linear RoPE scaling factor, 0 = none
    int64_t      sliding_window;         // gemma3, 0 = none
    float        final_softcap;          // gemma3 final_logit_softcapping, 0 = none
    bool         tied;                   // tie_word_embeddings
    bool         attn_bias;              // llama attention_bias / qwen2 (q/k/v bias tensors)
    bool         mlp_bias;               // llama mlp_bias
    int64_t      bos_id, eos_id, pad_id; // -1 = not set
};

/* Reads and validates <dir>/config.json: architectures / model_type must name a supported
 * architecture (else WERK_E_UNSUPPORTED naming it); required fields missing or of the
 * wrong type give WERK_E_FORMAT naming the field. Handles rope_theta and
 * transformers-5 rope_parameters (flat, or per layer type for gemma3). */
werk_status werk_hf_config_read(const char *path, werk_hf_hparams *hp, werk_err *err);
/* The same on JSON text (for tests); `what` names it in errors. */
werk_status
werk_hf_config_parse(const char *text, size_t len, const char *what, werk_hf_hparams *hp, werk_err *err);

/* Writes general.architecture / general.name and the <arch>.* keys llama.cpp's converter
 * writes for hp into g. Token ids go to tokenizer.ggml.* only if g has none yet. */
werk_status werk_hf_hparams_to_gguf(const werk_hf_hparams *hp, const char *name, werk_gguf *g, werk_err *err);

/* Reads hyper-parameters back from g's keys (inverse of the above); the tensors are not
 * looked at. WERK_E_UNSUPPORTED for an architecture werk does not export, WERK_E_FORMAT
 * naming a missing key. */
werk_status werk_hf_hparams_from_gguf(const werk_gguf *g, werk_hf_hparams *hp, werk_err *err);

/* config.json text for hp (malloc'd, NUL-terminated; caller frees). dtype: F32/F16/BF16. */
werk_status werk_hf_config_json(const werk_hf_hparams *hp, werk_dtype dtype, char **out, werk_err *err);
/* generation_config.json text for hp (malloc'd). */
werk_status werk_hf_generation_json(const werk_hf_hparams *hp, char **out, werk_err *err);

#endif
