/* convert/convert_int.h - private interfaces between the files of convert/
 *
 * Not for use outside convert/. Splits the HF importer/exporter into weights + config
 * (hf_import.c, hf_export.c, hf_config.c, tensor_names.c) and tokenizer files
 * (hf_tokenizer.c, hf_tokenizer_export.c, spm_model.c), which meet here.
 */
#ifndef WERK_CONVERT_INT_H
#define WERK_CONVERT_INT_H

#include "convert/convert.h"

/* Limits for files read whole (JSON), from DESIGN.md's "a tiny file never causes a large
 * allocation": a config is small; a tokenizer.json of a 262k vocab is ~35 MB. */
#define WERK_CONFIG_JSON_MAX (16u << 20)
#define WERK_TOKENIZER_JSON_MAX (512u << 20)

/* Reads the tokenizer files of an HF dir into g's tokenizer.ggml.* keys (llama.cpp names):
 * tokenizer.model (SentencePiece protobuf) if present for SPM-style vocabs, else
 * tokenizer.json (BPE vocab + merges, added/special tokens, pre-tokenizer kind ->
 * tokenizer.ggml.pre), plus tokenizer_config.json (bos/eos/pad/unk ids, add_bos/add_eos,
 * chat_template -> tokenizer.chat_template). `arch` is the GGUF architecture name
 * (llama, qwen2, qwen3, gemma3). Sets *found = false (and writes nothing) when the dir
 * has no tokenizer files. */
werk_status werk_hf_tokenizer_import(const char *dir, const char *arch, werk_gguf *g, bool *found,
                                     werk_err *err);

/* Writes tokenizer.json + tokenizer_config.json (+ tokenizer.model for SPM vocabs,
 * tokenizer.ggml.model == "llama") into dir from g's tokenizer.ggml.* keys, atomically.
 * Sets *written = false (and writes nothing) when g has no vocab. */
werk_status werk_hf_tokenizer_export(const werk_gguf *g, const char *dir, bool *written, werk_err *err);

#endif
