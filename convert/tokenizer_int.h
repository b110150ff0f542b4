/* convert/tokenizer_int.h - private interfaces of the tokenizer files (spm_model.c, hf_tokenizer*.c)
 *
 * Not for use outside convert/ (and the tests and fuzzers of these files). The public entry
 * points of the tokenizer import/export are in convert_int.h; this header adds what the
 * two files share and what tests drive directly:
 *   - werk_spm_model: a SentencePiece `tokenizer.model` (protobuf ModelProto) in memory,
 *     its reader (hostile input: every length checked) and writer;
 *   - werk_hf_tokenizer_import_mem: the tokenizer.json (+ tokenizer_config.json) importer
 *     on buffers, for the fuzzer.
 *
 * Token types: SentencePiece's piece types and GGUF's tokenizer.ggml.token_type use the
 * same numbers (llama.cpp took them from sentencepiece_model.proto).
 */
#ifndef WERK_TOKENIZER_INT_H
#define WERK_TOKENIZER_INT_H

#include "convert/convert.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    WERK_TOKEN_NORMAL       = 1,
    WERK_TOKEN_UNKNOWN      = 2,
    WERK_TOKEN_CONTROL      = 3,
    WERK_TOKEN_USER_DEFINED = 4,
    WERK_TOKEN_UNUSED       = 5,
    WERK_TOKEN_BYTE         = 6,
};

/* TrainerSpec.model_type values. */
enum { WERK_SPM_UNIGRAM = 1, WERK_SPM_BPE = 2, WERK_SPM_WORD = 3, WERK_SPM_CHAR = 4 };

/* Largest tokenizer.model werk reads (a 262k-piece model is ~5 MB). */
#define WERK_SPM_MODEL_MAX (256u << 20)

/* The parts of a SentencePiece ModelProto that werk reads and writes. Filled by
 * werk_spm_model_parse (then everything is owned by `arena`), or by a caller before
 * werk_spm_model_encode/_write (then the arrays are borrowed; `arena` unused). */
typedef struct werk_spm_model {
    int64_t      n_pieces;
    const char **pieces; // n_pieces UTF-8 strings, each NUL-terminated, lens[i] bytes
    uint64_t    *lens;
    float       *scores;
    int32_t     *types; // WERK_TOKEN_*
    // TrainerSpec (field 2)
    int32_t model_type; // WERK_SPM_*; proto default UNIGRAM
    bool    byte_fallback;
    bool    allow_whitespace_only_pieces;
    bool    treat_whitespace_as_suffix;
    int32_t unk_id, bos_id, eos_id, pad_id; // proto defaults 0, 1, 2, -1
    // NormalizerSpec (field 3)
    const char *normalizer_name;          // "" if absent
    bool        add_dummy_prefix;         // proto default true
    bool        remove_extra_whitespaces; // proto default true
    bool        escape_whitespaces;       // proto default true
    werk_arena  arena;
} werk_spm_model;

/* Sets the proto defaults and no pieces. */
void werk_spm_model_init(werk_spm_model *m);
/* Frees what parse allocated; the struct is left initialized (empty). NULL ok. */
void werk_spm_model_free(werk_spm_model *m);

/* Parses a serialized ModelProto (borrowed; everything is copied into m->arena). Unknown
 * fields are skipped; every varint, length and count is checked against the bytes left;
 * an empty piece, a piece type outside 1..6 or a wrong wire type for a known field is
 * WERK_E_FORMAT naming `name`. m must be initialized (werk_spm_model_init). */
werk_status
werk_spm_model_parse(const void *data, size_t size, const char *name, werk_spm_model *m, werk_err *err);
/* Maps and parses a file (at most WERK_SPM_MODEL_MAX bytes). */
werk_status werk_spm_model_read(const char *path, werk_spm_model *m, werk_err *err);

/* Serializes m (pieces, TrainerSpec with model_type, vocab_size, byte_fallback,
 * allow_whitespace_only_pieces, treat_whitespace_as_suffix, the special ids and their
 * pieces; NormalizerSpec with name, add_dummy_prefix, remove_extra_whitespaces,
 * escape_whitespaces). *out is malloc'd, caller frees. Fails with WERK_E_ARG on an empty
 * piece or a type outside 1..6. */
werk_status werk_spm_model_encode(const werk_spm_model *m, uint8_t **out, size_t *size, werk_err *err);
/* Encodes and writes atomically. */
werk_status werk_spm_model_write(const char *path, const werk_spm_model *m, werk_err *err);

/* The tokenizer.json importer on buffers: `json`/`json_len` is a tokenizer.json,
 * `config`/`config_len` a tokenizer_config.json (NULL = none). Sets g's tokenizer.ggml.*
 * keys like werk_hf_tokenizer_import does for a dir holding just these two files. `what`
 * names the source in errors. For the fuzzer and tests. */
werk_status werk_hf_tokenizer_import_mem(const char *json,
                                         size_t      json_len,
                                         const char *config,
                                         size_t      config_len,
                                         const char *arch,
                                         const char *what,
                                         werk_gguf  *g,
                                         werk_err   *err);

#endif
