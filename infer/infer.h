/* infer/infer.h - public API of werk's shared inference core
 *
 * Owns: tokenizers (SentencePiece-style BPE with byte fallback, byte-level BPE with
 * llama.cpp's pre-tokenizers), the model description (architecture as data, loaded from
 * a werk_gguf), the forward pass, run-time LoRA, and the `tokenize` command. Everything
 * here reads tensors in their stored type (never dequantized whole).
 */
#ifndef WERK_INFER_H
#define WERK_INFER_H

#include "common/common.h"
#include "convert/convert.h"

#include <stdbool.h>
#include <stdint.h>

// ---- tokenizer (infer/tokenizer*.c) ---------------------------------------------------

typedef struct werk_tokenizer werk_tokenizer;

/* Builds a tokenizer from g's tokenizer.ggml.* keys (copied: g may be freed after).
 * WERK_E_UNSUPPORTED for a tokenizer model or pre-tokenizer werk does not know. */
werk_status werk_tokenizer_init(const werk_gguf *g, werk_tokenizer **out, werk_err *err);
void        werk_tokenizer_free(werk_tokenizer *tok); // NULL ok

int32_t werk_tokenizer_n_vocab(const werk_tokenizer *tok);
int32_t werk_tokenizer_bos(const werk_tokenizer *tok); // -1 if none
int32_t werk_tokenizer_eos(const werk_tokenizer *tok); // -1 if none

/* Encodes len bytes of text. add_bos: prepend BOS (if the vocab has one). parse_special:
 * text like "<start_of_turn>" becomes the special token instead of its characters.
 * *ids is malloc'd (caller frees), *n_ids its length. Deterministic. */
werk_status werk_tokenizer_encode(const werk_tokenizer *tok, const char *text, size_t len, bool add_bos,
                                  bool parse_special, int32_t **ids, int64_t *n_ids, werk_err *err);

/* Bytes of one token as text (byte tokens give their byte, SPM's U+2581 gives a space).
 * Writes at most cap bytes to buf and returns the full length. */
size_t werk_tokenizer_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap);

/* Decodes ids to a malloc'd NUL-terminated string (*len bytes). */
werk_status werk_tokenizer_decode(const werk_tokenizer *tok, const int32_t *ids, int64_t n_ids, char **text,
                                  size_t *len, werk_err *err);

/* werk logits --model M [--lora A]... --data F.jsonl --out O.safetensors (infer/cmd_logits.c) */
int werk_cmd_logits(int argc, char **argv);

/* werk tokenize --model M (--text T | --file F) [--bos] */
int werk_cmd_tokenize(int argc, char **argv);

// ---- model and forward pass (infer/model.c, infer/forward.c, infer/ops/) -------------

typedef struct werk_model werk_model;

/* Describes the model in g (llama, qwen2, qwen3, gemma3): hyper-parameters and views of
 * its weights in their stored type. g must outlive the model. WERK_E_UNSUPPORTED for
 * another architecture; WERK_E_FORMAT / WERK_E_SHAPE naming a missing or misshapen tensor. */
werk_status werk_model_load(const werk_gguf *g, werk_model **out, werk_err *err);
void        werk_model_free(werk_model *m); // NULL ok
int64_t     werk_model_n_vocab(const werk_model *m);

/* Reference forward pass over B sequences of T tokens each (positions 0..T-1):
 * logits [B, T, n_vocab] f32. Deterministic. */
werk_status werk_forward(const werk_model *m, const int32_t *tokens, int64_t B, int64_t T, float *logits,
                         werk_err *err);

/* A LoRA adapter prepared for one model, applied unmerged by werk_forward_lora. */
typedef struct werk_lora werk_lora;

/* Loads a PEFT LoRA dir (adapter_config.json + adapter_model.safetensors) for m; the
 * update is scale x (alpha/r) x B A on each targeted projection. WERK_E_UNSUPPORTED for
 * DoRA, rank/alpha patterns, biases, or modules werk does not know. */
werk_status werk_lora_load_peft(const char *dir, const werk_model *m, float scale, werk_lora **out,
                                werk_err *err);
void        werk_lora_free(werk_lora *l); // NULL ok

/* Which projections an adapter targets: bit (1u << slot) for q,k,v,o,gate,up,down. */
#define WERK_LORA_ALL_LINEAR 0x7fu

/* A zero adapter for m: rank r on every projection in slot_mask, all A and B zero, scale
 * alpha / r (alpha / sqrt(r) with rslora). Parameters live in one flat f32 array
 * (werk_lora_params) in a fixed order: layer-major, slots q,k,v,o,gate,up,down, A then B. */
werk_status werk_lora_alloc(const werk_model *m, int64_t r, float alpha, bool rslora, uint32_t slot_mask,
                            werk_lora **out, werk_err *err);
/* A zero adapter with l's shapes, rank, alpha and targets (gradients, optimizer moments). */
werk_status werk_lora_alloc_like(const werk_lora *l, werk_lora **out, werk_err *err);
/* The flat parameter array and its length in floats. */
float       *werk_lora_params(werk_lora *l, int64_t *n);
const float *werk_lora_params_const(const werk_lora *l, int64_t *n);
int64_t      werk_lora_rank(const werk_lora *l);
float        werk_lora_alpha(const werk_lora *l);
uint32_t     werk_lora_slot_mask(const werk_lora *l);

/* Loads an adapter for m from a PEFT dir or a llama.cpp LoRA GGUF (adapter.type=lora,
 * adapter.lora.alpha, blk.N.<name>.weight.lora_a/lora_b), whichever path is. */
werk_status werk_lora_load(const char *path, const werk_model *m, float scale, werk_lora **out, werk_err *err);

/* Key/value strings written into an adapter's metadata (provenance). */
typedef struct werk_lora_meta {
    const char *const *keys, *const *values;
    int                n;
} werk_lora_meta;

/* Writes l (loaded or trained for m) as a PEFT dir (adapter_model.safetensors +
 * adapter_config.json) / as llama.cpp's LoRA GGUF; atomic. base_name: the base model's
 * name or path recorded in the config (NULL ok). */
werk_status werk_lora_save_peft(const werk_lora *l, const werk_model *m, const char *dir, const char *base_name,
                                const werk_lora_meta *meta, werk_err *err);
werk_status werk_lora_save_gguf(const werk_lora *l, const werk_model *m, const char *path,
                                const werk_lora_meta *meta, werk_err *err);

/* werk_forward with n_loras adapters (loaded for m) added, unmerged. */
werk_status werk_forward_lora(const werk_model *m, const werk_lora *const *loras, int n_loras,
                              const int32_t *tokens, int64_t B, int64_t T, float *logits, werk_err *err);

/* Merges adapters (loaded for m, which was loaded from g, a GGUF file) into g's weights:
 * W' = W + sum scale B A per targeted projection, in f32 from the dequantized rows; each
 * merged tensor then holds f32 data (owned by g) to be written as its stored type if
 * f32/f16/bf16, else f16 (infer/lora_merge.c). */
werk_status werk_lora_merge(werk_gguf *g, const werk_model *m, const werk_lora *const *loras, int n_loras,
                            werk_err *err);
/* Loads the model described by g and n adapters (PEFT dirs or LoRA GGUFs, scales[i] each,
 * NULL = 1) and merges them into g (werk convert --lora). */
werk_status werk_lora_merge_files(werk_gguf *g, const char *const *paths, const float *scales, int n,
                                  werk_err *err);
/* Converts an adapter (PEFT dir or LoRA GGUF) for the model in base into a LoRA GGUF at
 * out, or a PEFT dir with to_peft (base_name recorded in its config, NULL ok), its
 * tensors stored as type (f32, f16 or bf16). */
werk_status werk_lora_convert(const char *in, const werk_gguf *base, const char *out, bool to_peft,
                              const char *base_name, werk_dtype type, werk_err *err);

// ---- evaluation (infer/eval.c, infer/cmd_eval.c) --------------------------------------

typedef struct werk_eval_record werk_eval_record; // below

typedef struct werk_eval_opts {
    const werk_model       *model;
    const werk_lora *const *loras; // n_loras adapters loaded for model
    int                     n_loras;
    const werk_model       *ref;   // NULL = no KL divergence; else same vocab as model
    const werk_tokenizer   *tok;   // the model's tokenizer (text records, .txt files)
    int64_t                 n_ctx; // .txt window length in tokens (>= 2)
    const char             *chat_template; // tokenizer.chat_template for {"messages"} (NULL ok)
    // called after each record / window with its own figures (NULL: none); an error stops
    werk_status (*on_record)(void *user, const werk_eval_record *r, werk_err *err);
    void   *user;
    int64_t vocab_chunk; // LM head rows per chunk (0: about 8 MiB of logits per model)
} werk_eval_opts;

/* One record's (or .txt window's) figures, sums over its scored tokens. */
struct werk_eval_record {
    int64_t index, line;       // 0-based record / window; the JSONL line (0 for .txt)
    int64_t n_tokens, n_scored;
    double  nll, ref_nll, kld; // sums (ref_nll, kld: 0 without a reference)
    int64_t agree;             // positions where both argmaxes agree
};

typedef struct werk_eval_result {
    int64_t n_records, n_scored; // records (or .txt windows), scored tokens
    double  loss, ppl;           // mean cross-entropy over scored tokens (nats), exp(loss)
    bool    has_ref;
    double  ref_loss, ref_ppl;   // the reference model's on the same tokens
    double  kld_mean, kld_median, kld_p99; // KL(ref || model) per scored token
    double  top1;                // fraction of scored positions where both argmaxes agree
} werk_eval_result;

/* Evaluates path: .jsonl / .jsonl.zst records (datasets.h; labels shifted inside, the
 * token at t+1 is the target of position t) or any other file as text in sliding windows
 * of n_ctx tokens with stride n_ctx/2, each token scored once (the first window whole,
 * later ones their second half). Streams: one record's / window's hidden states at a
 * time, the LM head applied in vocabulary chunks (never a tokens x vocab logits buffer). */
werk_status werk_eval_file(const werk_eval_opts *o, const char *path, werk_eval_result *res, werk_err *err);

/* werk eval --model M [--lora DIR]... --data F [--ref R] [--json] [--ctx N] */
int werk_cmd_eval(int argc, char **argv);

#endif
