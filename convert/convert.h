/* convert/convert.h - public API of werk's file formats and the `convert` command
 *
 * One in-memory model description, `werk_gguf`, is what every reader produces and every
 * writer consumes: GGUF metadata (typed key/values) + named tensors. Readers:
 *   GGUF file (memory-mapped), HF dir (config.json + safetensors + tokenizer files),
 *   llama2.c checkpoint (+ tokenizer .bin).
 * Writers: GGUF v3 file, HF dir (config.json + model.safetensors + tokenizer files).
 * safetensors files have their own small reader/writer API below.
 *
 * Tensor shapes are outermost-first (PyTorch order): token_embd.weight of Gemma 3 270M is
 * {262144, 640}. GGUF's innermost-first ne[] is reversed only inside convert/gguf_*.c.
 *
 * Tensor data is never converted up front: each werk_gguf_tensor says where its source
 * bytes are (src_type, data) and what it should become (type, plus an optional row
 * permutation and scalar offset); writers convert row by row while streaming, so a model
 * larger than memory converts through the page cache.
 *
 * Ownership: a werk_gguf owns everything reachable from it (arena); tensor data points
 * into a mapping or buffer the werk_gguf holds (werk_gguf_hold_*), so it stays valid
 * until werk_gguf_free.
 */
#ifndef WERK_CONVERT_H
#define WERK_CONVERT_H

#include "common/common.h"
#include "quant/quant.h"

#include <stdbool.h>
#include <stdint.h>

// ---- GGUF metadata values ------------------------------------------------------------

/* GGUF value type ids (on-disk numbers). */
typedef enum werk_gguf_type {
    WERK_GGUF_UINT8   = 0,
    WERK_GGUF_INT8    = 1,
    WERK_GGUF_UINT16  = 2,
    WERK_GGUF_INT16   = 3,
    WERK_GGUF_UINT32  = 4,
    WERK_GGUF_INT32   = 5,
    WERK_GGUF_FLOAT32 = 6,
    WERK_GGUF_BOOL    = 7,
    WERK_GGUF_STRING  = 8,
    WERK_GGUF_ARRAY   = 9,
    WERK_GGUF_UINT64  = 10,
    WERK_GGUF_INT64   = 11,
    WERK_GGUF_FLOAT64 = 12,
    WERK_GGUF_TYPE_COUNT
} werk_gguf_type;

/* A string: `len` bytes at `data`, which is also NUL-terminated (data[len] == 0) but may
 * contain NULs itself. */
typedef struct werk_gguf_str {
    uint64_t    len;
    const char *data;
} werk_gguf_str;

typedef struct werk_gguf_value werk_gguf_value;
struct werk_gguf_value {
    werk_gguf_type type;
    union {
        uint8_t       u8;
        int8_t        i8;
        uint16_t      u16;
        int16_t       i16;
        uint32_t      u32;
        int32_t       i32;
        float         f32;
        bool          b;
        uint64_t      u64;
        int64_t       i64;
        double        f64;
        werk_gguf_str str;
        struct {
            werk_gguf_type elem_type; // any type, ARRAY included (nested arrays)
            uint64_t       n;
            /* scalars: n packed host-order elements (bool: 1 byte each);
             * STRING: n werk_gguf_str; ARRAY: n werk_gguf_value. */
            const void    *data;
        } arr;
    };
};

typedef struct werk_gguf_kv {
    const char     *key;
    werk_gguf_value value;
} werk_gguf_kv;

// ---- tensors ----------------------------------------------------------------------

#define WERK_MAX_DIMS 4

typedef struct werk_gguf_tensor {
    const char *name;
    int         n_dims;                // 1..4
    int64_t     shape[WERK_MAX_DIMS];  // outermost first; unused dims are 1
    werk_dtype  type;                  // type to store (what a writer produces)
    werk_dtype  src_type;              // type of the bytes at `data`
    const void *data;                  // source bytes, n_elements in src_type
    uint64_t    nbytes;                // bytes at data (of src_type)
    /* Optional transforms applied by writers, row by row, in this order; a row is the
     * innermost dimension, rows are numbered over all outer dimensions flattened. */
    const int64_t *row_map;  // NULL or n_rows entries: output row r = source row row_map[r]
    float          add;      // added to every value after dequantization (0 = none)
    /* Optional importance weights for quantizing to `type`: NULL or one float per column
     * (innermost dimension), e.g. from llama.cpp's imatrix; writers pass them to
     * werk_quantize_rows. */
    const float *imatrix;
    /* Reader only: offset of the data from the start of the GGUF data section. */
    uint64_t offset;
} werk_gguf_tensor;

/* Elements and rows of a tensor (from its validated shape). */
int64_t werk_gguf_tensor_nelements(const werk_gguf_tensor *t);
int64_t werk_gguf_tensor_nrows(const werk_gguf_tensor *t);

typedef struct werk_gguf werk_gguf;

// ---- building and querying a werk_gguf -----------------------------------------------

/* An empty description (version 3, alignment 32). NULL on OOM. */
werk_gguf *werk_gguf_init(void);
void       werk_gguf_free(werk_gguf *g); // NULL ok

uint32_t werk_gguf_version(const werk_gguf *g);
uint64_t werk_gguf_alignment(const werk_gguf *g); // from general.alignment, default 32
/* Path of the file it was read from ("" if built in memory), for messages. */
const char *werk_gguf_path(const werk_gguf *g);

int64_t             werk_gguf_n_kv(const werk_gguf *g);
const werk_gguf_kv *werk_gguf_kv_at(const werk_gguf *g, int64_t i);
/* -1 if missing. */
int64_t             werk_gguf_find_kv(const werk_gguf *g, const char *key);
const werk_gguf_value *werk_gguf_get(const werk_gguf *g, const char *key); // NULL if missing

/* Typed getters: return false if the key is missing; fail with WERK_E_FORMAT (naming the
 * key and file) if present with an incompatible type. Integer getters accept any integer
 * type whose value fits. */
werk_status werk_gguf_get_u32(const werk_gguf *g, const char *key, uint32_t *out, bool *found, werk_err *err);
werk_status werk_gguf_get_f32(const werk_gguf *g, const char *key, float *out, bool *found, werk_err *err);
werk_status werk_gguf_get_str(const werk_gguf *g, const char *key, const char **out, bool *found,
                              werk_err *err);
werk_status werk_gguf_get_bool(const werk_gguf *g, const char *key, bool *out, bool *found, werk_err *err);

/* Setters copy key and value into g's arena, replacing an existing key in place (order
 * kept) or appending. Array setters copy the elements. */
werk_status werk_gguf_set(werk_gguf *g, const char *key, const werk_gguf_value *v, werk_err *err); // deep copy
werk_status werk_gguf_set_u32(werk_gguf *g, const char *key, uint32_t v, werk_err *err);
werk_status werk_gguf_set_i32(werk_gguf *g, const char *key, int32_t v, werk_err *err);
werk_status werk_gguf_set_u64(werk_gguf *g, const char *key, uint64_t v, werk_err *err);
werk_status werk_gguf_set_f32(werk_gguf *g, const char *key, float v, werk_err *err);
werk_status werk_gguf_set_bool(werk_gguf *g, const char *key, bool v, werk_err *err);
werk_status werk_gguf_set_str(werk_gguf *g, const char *key, const char *v, werk_err *err);
werk_status werk_gguf_set_arr(werk_gguf *g, const char *key, werk_gguf_type elem_type, const void *data,
                              uint64_t n, werk_err *err);
/* Array of n strings (each NUL-terminated, or with explicit lengths if lens != NULL). */
werk_status werk_gguf_set_arr_str(werk_gguf *g, const char *key, const char *const *strs,
                                  const uint64_t *lens, uint64_t n, werk_err *err);
/* Removes a key if present. */
void werk_gguf_remove(werk_gguf *g, const char *key);

int64_t                 werk_gguf_n_tensors(const werk_gguf *g);
const werk_gguf_tensor *werk_gguf_tensor_at(const werk_gguf *g, int64_t i);
werk_gguf_tensor       *werk_gguf_tensor_at_mut(werk_gguf *g, int64_t i);
int64_t                 werk_gguf_find_tensor(const werk_gguf *g, const char *name); // -1 if missing

/* Appends a tensor: name and shape copied; data borrowed (make sure g holds its owner);
 * type = src_type = `type`. Fails on duplicate names, bad shapes, size mismatch
 * (nbytes must equal werk_dtype_bytes(type, n_elements)). Returns the new tensor's index
 * in *index if not NULL. */
werk_status werk_gguf_add_tensor(werk_gguf *g, const char *name, werk_dtype type, int n_dims,
                                 const int64_t *shape, const void *data, uint64_t nbytes, int64_t *index,
                                 werk_err *err);

/* g takes ownership: the mapping / malloc'd buffer is released by werk_gguf_free. */
werk_status werk_gguf_hold_mmap(werk_gguf *g, werk_mmap *m, werk_err *err);   // *m zeroed after
werk_status werk_gguf_hold_buffer(werk_gguf *g, void *buf, werk_err *err);
/* Memory from g's arena (zeroed, 16-byte aligned), freed with g. NULL + err on OOM. */
void       *werk_gguf_alloc(werk_gguf *g, size_t n, werk_err *err);

// ---- GGUF files ---------------------------------------------------------------------

/* Reads and validates a GGUF v2/v3 file, memory-mapped: metadata copied into g, tensor
 * data pointing into the mapping (held by g). Every count, size and offset is checked
 * (DESIGN.md "Inputs are hostile"); errors are WERK_E_FORMAT naming the file and the
 * problem, WERK_E_UNSUPPORTED for tensor types werk does not know. */
werk_status werk_gguf_read(const char *path, werk_gguf **out, werk_err *err);

/* The same on a buffer in memory (borrowed; must outlive g). `name` is used in errors.
 * Used by the fuzzer. */
werk_status werk_gguf_read_mem(const void *data, size_t size, const char *name, werk_gguf **out, werk_err *err);

/* Writes g as GGUF v3 (alignment from general.alignment or 32), atomically. Tensors are
 * written in g's order, each converted row by row from src_type to type (applying
 * row_map and add). Shows progress if `progress` is true. */
werk_status werk_gguf_write(const werk_gguf *g, const char *path, bool progress, werk_err *err);

// ---- safetensors ---------------------------------------------------------------------

typedef struct werk_st_tensor {
    const char *name;
    werk_dtype  type; // F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL
    int         n_dims; // 0..WERK_MAX_DIMS (0 = scalar)
    int64_t     shape[WERK_MAX_DIMS];
    const void *data;
    uint64_t    nbytes;
} werk_st_tensor;

typedef struct werk_st werk_st;

/* Reads one .safetensors file (memory-mapped) with the reference implementation's rules:
 * header <= 100 MB, valid JSON without duplicate keys, tensors contiguous, sorted by
 * offset, non-overlapping, shape x dtype size == byte range, data ending exactly at the
 * end of the file. */
werk_status werk_st_read(const char *path, werk_st **out, werk_err *err);
werk_status werk_st_read_mem(const void *data, size_t size, const char *name, werk_st **out, werk_err *err);
/* Reads a checkpoint: a single file, or the shards listed in an index JSON
 * (model.safetensors.index.json "weight_map"), or a folder holding either. Tensors of all
 * shards appear in one table; duplicate names across shards are an error. */
werk_status werk_st_read_any(const char *path, werk_st **out, werk_err *err);
void        werk_st_free(werk_st *st); // NULL ok

int64_t               werk_st_n_tensors(const werk_st *st);
const werk_st_tensor *werk_st_tensor_at(const werk_st *st, int64_t i);
int64_t               werk_st_find(const werk_st *st, const char *name); // -1 if missing
/* __metadata__ string map: NULL if missing. */
const char *werk_st_metadata(const werk_st *st, const char *key);

/* Writes tensors into one file atomically (optionally converting each from its
 * src_type/data to type, row by row, like werk_gguf_write). metadata: n_meta key/value
 * string pairs for __metadata__ (may be 0). Tensors are laid out in the given order.
 * Uses werk_gguf_tensor as the description of what to write (only name, n_dims, shape,
 * type, src_type, data, row_map, add are used). */
werk_status werk_st_write(const char *path, const werk_gguf_tensor *const *tensors, int64_t n_tensors,
                          const char *const *meta_keys, const char *const *meta_vals, int64_t n_meta,
                          werk_err *err);

/* Writes a sharded checkpoint's index JSON atomically, as transformers does (indent 2,
 * keys sorted, trailing newline): {"metadata": {"total_size": N}, "weight_map": {name:
 * shard file name}}. Entry i maps tensor_names[i] to shard_names[i] (a file name relative
 * to the index's folder). Duplicate tensor names are WERK_E_ARG. */
werk_status werk_st_write_index(const char *path, const char *const *tensor_names, const char *const *shard_names,
                                int64_t n, uint64_t total_size, werk_err *err);

// ---- model importers and exporters ---------------------------------------------------

/* HF dir -> werk_gguf with llama.cpp's keys and tensor names (llama, qwen2, qwen3,
 * gemma3): config.json (rope_theta or transformers-5 rope_parameters), tokenizer.json /
 * tokenizer.model / tokenizer_config.json when present (else a warning and no vocab),
 * sharded or single safetensors. llama Q/K rows are permuted to llama.cpp's order
 * (row_map); gemma norm weights get +1 (add). Tensor types stay as stored. */
werk_status werk_hf_import(const char *dir, werk_gguf **out, werk_err *err);

/* llama2.c checkpoint (+ tokenizer .bin, may be NULL) -> werk_gguf (arch llama). */
werk_status werk_llama2c_import(const char *bin_path, const char *tok_path, werk_gguf **out, werk_err *err);

typedef struct werk_hf_export_opts {
    werk_dtype type;           // F32, F16 or BF16 for all tensors
    uint64_t   max_shard_bytes; // 0 = default 2 GB; above it model-0000N-of-0000M.safetensors + index
    bool       progress;
} werk_hf_export_opts;

/* werk_gguf (any supported arch, any tensor types werk can dequantize) -> HF dir that
 * transformers loads: config.json, generation_config.json, safetensors (sharded above
 * max_shard_bytes), tokenizer.json + tokenizer_config.json (+ tokenizer.model for SPM
 * vocabs) from the GGUF vocab. Inverse of werk_hf_import (Q/K permutation undone, gemma
 * norm -1). The folder is created; existing files in it are replaced atomically. */
werk_status werk_hf_export(const werk_gguf *g, const char *dir, const werk_hf_export_opts *opts, werk_err *err);

// ---- the convert command ------------------------------------------------------------

/* Opens any supported input (GGUF file, HF dir, .safetensors with config.json beside it,
 * llama2.c .bin with `vocab` as tokenizer, may be NULL). */
werk_status werk_convert_open(const char *in, const char *vocab, werk_gguf **out, werk_err *err);

/* werk convert IN OUT [--type T] [--to gguf|hf] [--vocab tok.bin] */
int werk_cmd_convert(int argc, char **argv);
/* werk inspect FILE [--json] [--hash] [--full]: metadata and tensor table of a model file */
int werk_cmd_inspect(int argc, char **argv);

// ---- importance matrices: llama.cpp imatrix files (convert/imatrix.c) ----------------

typedef struct werk_imatrix_entry {
    const char  *name;      // tensor name, e.g. "blk.0.attn_q.weight"
    const float *values;    // n_mat rows of n_per_row importance weights (mean squared activations)
    int64_t      n_per_row; // columns of the tensor (its row length)
    int64_t      n_mat;     // 1, or one row per expert (legacy files: always 1)
} werk_imatrix_entry;

typedef struct werk_imatrix werk_imatrix;

/* Reads an importance matrix written by llama.cpp's llama-imatrix, either format:
 *   GGUF: tensors <name>.in_sum2 {n_mat, n_per_row} and <name>.counts {n_mat, 1} (f32),
 *         keys imatrix.chunk_count / imatrix.chunk_size (imatrix.datasets optional);
 *         importance = in_sum2 / count per matrix, 1 where the count is 0;
 *   legacy .dat: i32 entry count, then per entry i32 name length, name, i32 ncall, i32 n,
 *         n f32 values; optionally i32 last chunk, i32 dataset length, dataset name;
 *         importance = value / ncall (as is when ncall <= 0).
 * Hostile files fail with WERK_E_FORMAT naming the file and the problem: sizes beyond the
 * file, unpaired in_sum2/counts, wrong tensor types, duplicate names, values that are
 * negative, NaN or infinite. The result owns its memory. */
werk_status werk_imatrix_read(const char *path, werk_imatrix **out, werk_err *err);
werk_status
werk_imatrix_read_mem(const void *data, size_t size, const char *name, werk_imatrix **out, werk_err *err);
void        werk_imatrix_free(werk_imatrix *im); // NULL ok

int64_t                   werk_imatrix_n_entries(const werk_imatrix *im);
const werk_imatrix_entry *werk_imatrix_entry_at(const werk_imatrix *im, int64_t i); // sorted by name
const werk_imatrix_entry *werk_imatrix_find(const werk_imatrix *im, const char *name); // NULL if absent
int64_t                   werk_imatrix_chunk_count(const werk_imatrix *im); // -1 if the file does not say
const char               *werk_imatrix_dataset(const werk_imatrix *im);     // first dataset, "" if none

#endif
