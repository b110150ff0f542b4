/* quant/quant.h - public API of werk's block formats
 *
 * Owns the element types werk knows (float, integer and GGUF block-quantized types), their
 * sizes, and the row kernels: dequantize (block -> f32), quantize (f32 -> block) and, in
 * later work, dot products. Everything here depends only on libc/libm.
 *
 * Conventions: a "row" is n contiguous elements of one tensor row; for block types n must
 * be a multiple of the block size (werk_dtype_bytes checks). The scalar reference
 * implementations (werk_<fmt>_*_ref, one file per format) define the bytes on disk and
 * match ggml's ggml-quants.c / the PyPI `gguf` package bit for bit.
 */
#ifndef WERK_QUANT_H
#define WERK_QUANT_H

#include "common/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Dense enum of element types. The GGUF on-disk id (ggml_type) is in werk_dtype_info. */
typedef enum werk_dtype {
    WERK_DTYPE_F32 = 0,
    WERK_DTYPE_F16,
    WERK_DTYPE_BF16,
    WERK_DTYPE_F64,
    WERK_DTYPE_I8,
    WERK_DTYPE_I16,
    WERK_DTYPE_I32,
    WERK_DTYPE_I64,
    WERK_DTYPE_U8,   // safetensors only
    WERK_DTYPE_BOOL, // safetensors only
    WERK_DTYPE_Q4_0,
    WERK_DTYPE_Q4_1,
    WERK_DTYPE_Q5_0,
    WERK_DTYPE_Q5_1,
    WERK_DTYPE_Q8_0,
    WERK_DTYPE_Q8_1,
    WERK_DTYPE_Q2_K,
    WERK_DTYPE_Q3_K,
    WERK_DTYPE_Q4_K,
    WERK_DTYPE_Q5_K,
    WERK_DTYPE_Q6_K,
    WERK_DTYPE_Q8_K,
    WERK_DTYPE_COUNT
} werk_dtype;

typedef struct werk_dtype_info {
    const char *name;       // GGUF/ggml spelling: "f32", "q4_K", ... ("bool"/"u8" for safetensors-only)
    int64_t     block_size; // elements per block (1 for scalar types)
    size_t      type_size;  // bytes per block
    int         ggml_type;  // GGUF tensor type id, -1 if GGUF has none
    bool        is_float;   // f32/f16/bf16/f64
    bool        is_quant;   // block-quantized
} werk_dtype_info;

/* Never NULL for t < WERK_DTYPE_COUNT; WERK_ASSERTs on a bad value (programmer error). */
const werk_dtype_info *werk_dtype_get(werk_dtype t);
static inline const char *werk_dtype_name(werk_dtype t) {
    return werk_dtype_get(t)->name;
}
/* Looks up by name, case-insensitive ("F16", "q4_k", "Q8_0", "bf16"). False if unknown. */
bool werk_dtype_from_name(const char *name, werk_dtype *out);
/* Maps a ggml type id to werk's enum. False for ids werk does not know (IQ*, TQ*, ...). */
bool werk_dtype_from_ggml(int ggml_type, werk_dtype *out);

/* Bytes of n elements. Fails (WERK_E_SHAPE) if n is not a multiple of the block size,
 * WERK_E_FORMAT on overflow. n >= 0. */
werk_status werk_dtype_bytes(werk_dtype t, uint64_t n, uint64_t *out, werk_err *err);

/* True if werk_dequantize_row / werk_quantize_row handle t. */
bool werk_dtype_can_dequantize(werk_dtype t);
bool werk_dtype_can_quantize(werk_dtype t);

/* dst[0..n) = float values of the n elements at src. n a multiple of the block size;
 * WERK_ASSERTs if t cannot be dequantized (check werk_dtype_can_dequantize first).
 * Integer and bool types convert to float exactly where representable. */
void werk_dequantize_row(werk_dtype t, const void *src, float *dst, int64_t n);

/* Encodes n floats as type t at dst (werk_dtype_bytes(t, n) bytes). Reference (scalar,
 * deterministic) quantizers: identical bytes to ggml's *_ref / gguf's numpy quantizers.
 * WERK_ASSERTs if t cannot be quantized. */
void werk_quantize_row(werk_dtype t, const float *src, void *dst, int64_t n);

// ---- rows with importance weights (the quantizer's entry point) ----------------------

/* Quantizes n_rows rows of n_per_row floats (row-major) into type t at dst, row after row
 * (werk_dtype_bytes(t, n_per_row) bytes each). imatrix: NULL, or n_per_row per-column
 * importance weights (llama.cpp's imatrix: mean squared activation of each input column);
 * types with an importance-weighted search use it (werk_dtype_uses_imatrix), the others
 * ignore it. Deterministic: the bytes depend only on the inputs, never on threads or ISA.
 * With imatrix == NULL the K-quants use werk's own scale search, which is at least as
 * accurate as ggml's reference (quant/README-style notes in each q*_k.c). */
void werk_quantize_rows(werk_dtype t, const float *src, void *dst, int64_t n_rows, int64_t n_per_row,
                        const float *imatrix);
bool werk_dtype_uses_imatrix(werk_dtype t);

// ---- kernels chosen for this CPU (quant/dispatch.c) ----------------------------------

/* s[0] = dot(x, y) over n elements: x is a row of the weight type, y a row of activations
 * already quantized to the table's vec_dot_type. n is a multiple of both block sizes. */
typedef void (*werk_vec_dot_fn)(int64_t n, float *s, const void *x, const void *y);
typedef void (*werk_quantize_fn)(const float *src, void *dst, int64_t n);
typedef void (*werk_dequantize_fn)(const void *src, float *dst, int64_t n);

typedef struct werk_qfns {
    werk_dequantize_fn dequantize;   // fastest variant (equal to the _ref within its budget)
    werk_quantize_fn   quantize;     // reference quantizer: defines the bytes on disk
    werk_vec_dot_fn    vec_dot;      // NULL if the type has no dot product
    werk_dtype         vec_dot_type; // type activations are quantized to for vec_dot
    werk_quantize_fn   quantize_act; // fast quantizer for vec_dot_type rows (activations)
    werk_isa           isa;          // which variant this table holds
} werk_qfns;

/* Kernels for type t at the best ISA of this CPU (werk_cpu_isa, capped by WERK_ISA);
 * chosen once, never NULL for t < WERK_DTYPE_COUNT (fields may be NULL). */
const werk_qfns *werk_qfns_get(werk_dtype t);
/* Kernels for a given ISA level (for tests comparing SIMD with scalar): NULL if this
 * build or CPU cannot run that level. */
const werk_qfns *werk_qfns_get_isa(werk_dtype t, werk_isa isa);

// ---- half-precision scalars (round to nearest even, as numpy / torch / ggml) --------

uint16_t werk_fp32_to_fp16(float f);
float    werk_fp16_to_fp32(uint16_t h);
uint16_t werk_fp32_to_bf16(float f); // NaN stays NaN (quiet), as ggml/gguf-py
float    werk_bf16_to_fp32(uint16_t h);

// ---- quantization mixes: presets and the per-tensor type plan (quant/presets.c) --------
//
// llama.cpp's `llama-quantize` mixes (Q4_K_M, Q5_K_S, ...) as data: a rule table over tensor
// category x preset with a few computed conditions (position of the layer, GQA, experts),
// evaluated in llama.cpp's tensor order, so werk picks the type llama.cpp picks for every
// tensor of a model (src/llama-quant.cpp, llama_tensor_get_type).

/* The role of a tensor, computed once from its GGUF name (llama.cpp's tensor_category). */
typedef enum werk_tensor_cat {
    WERK_TCAT_OTHER = 0,
    WERK_TCAT_TOKEN_EMBD,  // token_embd.weight, per_layer_token_embd.weight
    WERK_TCAT_OUTPUT,      // output.weight
    WERK_TCAT_ATTN_Q,      // *attn_q.weight
    WERK_TCAT_ATTN_K,      // *attn_k.weight
    WERK_TCAT_ATTN_V,      // *attn_v.weight
    WERK_TCAT_ATTN_QKV,    // *attn_qkv.weight (fused; ruled like attn_v)
    WERK_TCAT_ATTN_KV_B,   // *attn_kv_b.weight (MLA; ruled like attn_v)
    WERK_TCAT_ATTN_OUTPUT, // *attn_output.weight
    WERK_TCAT_FFN_UP,      // *ffn_up* (experts and shared experts included)
    WERK_TCAT_FFN_GATE,    // *ffn_gate* (the router ffn_gate_inp is never quantized)
    WERK_TCAT_FFN_DOWN,    // *ffn_down*
    WERK_TCAT_NORM,        // *_norm.* (never quantized)
    WERK_TCAT_COUNT
} werk_tensor_cat;

werk_tensor_cat werk_tensor_cat_of(const char *name);
const char     *werk_tensor_cat_name(werk_tensor_cat c); // "attn_v", ...; never NULL

/* A mix, as llama-quantize names it. */
typedef struct werk_quant_preset {
    const char *name;  // "Q4_K_M"
    uint32_t    ftype; // general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_* number
    werk_dtype  type;  // type of the weights no rule singles out
    const char *help;  // one line for usage
} werk_quant_preset;

int                      werk_quant_preset_count(void);
const werk_quant_preset *werk_quant_preset_at(int i); // 0 <= i < count
/* By name, case-insensitive (llama.cpp's aliases Q3_K, Q4_K, Q5_K = the _M mixes), or by
 * file-type number ("15"). NULL if unknown. */
const werk_quant_preset *werk_quant_preset_find(const char *name);
/* The preset whose default type is t (the _M mix for a K-quant), for `--q4_k`-style flags.
 * NULL if none. */
const werk_quant_preset *werk_quant_preset_for_type(werk_dtype t);

/* What the rules need to know about the model (from GGUF metadata). */
typedef struct werk_quant_model {
    const char *arch;      // general.architecture ("" if unknown); borrowed
    int64_t     n_layer;   // <arch>.block_count; 0 = unknown (then 1 + highest blk.N)
    int64_t     n_head;    // <arch>.attention.head_count (layer 0); 0 = unknown
    int64_t     n_head_kv; // <arch>.attention.head_count_kv (layer 0); 0 = n_head
    int64_t     n_expert;  // <arch>.expert_count; 0 = dense
} werk_quant_model;

/* What the rules need to know about one tensor. */
typedef struct werk_quant_tinfo {
    const char *name;
    int         n_dims;
    int64_t     shape[4]; // outermost first; shape[n_dims-1] is the row length
    werk_dtype  src_type;
} werk_quant_tinfo;

/* --tensor-type REGEX=TYPE: a POSIX extended regular expression searched in the name. */
typedef struct werk_quant_override {
    const char *pattern;
    werk_dtype  type;
} werk_quant_override;

typedef struct werk_quant_opts {
    const werk_quant_preset   *preset;          // required
    bool                       pure;            // every quantized weight gets preset->type
    bool                       leave_output;    // output.weight keeps its type
    bool                       has_imatrix;     // an importance matrix will be used (one rule reads it)
    werk_dtype                 output_type;     // WERK_DTYPE_COUNT = by the rules
    werk_dtype                 token_embd_type; // WERK_DTYPE_COUNT = by the rules
    const werk_quant_override *overrides;       // first matching pattern wins
    int                        n_overrides;
} werk_quant_opts;

/* The plan for one tensor. */
typedef struct werk_quant_choice {
    werk_tensor_cat cat;
    bool            quantize; // a weight llama.cpp quantizes (else type == src_type)
    werk_dtype      type;     // type to store
    werk_dtype      wanted;   // type the rules (or the user) chose before the fallback
    bool            fallback; // row length not a multiple of wanted's block: type is the fallback
    bool            manual;   // chosen by --tensor-type / --output-tensor-type / --token-embedding-type
} werk_quant_choice;

/* Fills out[0..n) with the type of every tensor. Tensors are visited in llama.cpp's order
 * (layer number, then name) because its layer counters depend on it. Fails with WERK_E_ARG
 * for a bad override pattern and WERK_E_FORMAT for an expert tensor whose name has no layer
 * number in range. */
werk_status werk_quant_plan(const werk_quant_model *m,
                            const werk_quant_opts  *o,
                            const werk_quant_tinfo *t,
                            int64_t                 n,
                            werk_quant_choice      *out,
                            werk_err               *err);

/* llama.cpp's fallback for rows of n_per_row elements: t if the row fits t's block, else
 * Q2_K/Q3_K -> Q4_0, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and F16 if that does not fit
 * either (or t has no fallback). */
werk_dtype werk_quant_fallback(werk_dtype t, int64_t n_per_row);

// ---- the quantize job: GGUF in, GGUF out (quant/quantize_model.c) -----------------------

struct werk_gguf; // convert/convert.h

/* Model facts from GGUF metadata; m->arch borrows from g. WERK_E_FORMAT for a key of the
 * wrong type. */
werk_status werk_quant_model_from_gguf(const struct werk_gguf *g, werk_quant_model *m, werk_err *err);
/* werk_quant_plan over g's tensors (out: one choice per tensor, in g's order). */
werk_status werk_quant_plan_gguf(const struct werk_gguf *g,
                                 const werk_quant_opts  *o,
                                 werk_quant_choice      *out,
                                 werk_err               *err);

typedef struct werk_quantize_job {
    const char     *in;           // GGUF file (any types werk can dequantize)
    const char     *out;          // written atomically; unused with dry_run
    werk_quant_opts opts;         // has_imatrix is set from imatrix_path
    const char     *imatrix_path; // llama.cpp imatrix (GGUF or legacy .dat), NULL = none
    bool            dry_run;      // plan and sizes only, write nothing
    bool            progress;     // progress bars on stderr
    bool            measure;      // after writing, relative RMSE of every converted tensor
} werk_quantize_job;

typedef struct werk_quant_report_row {
    const char       *name;
    int               n_dims;
    int64_t           shape[4];
    werk_dtype        src_type;
    werk_quant_choice choice;
    uint64_t          src_bytes, bytes;
    bool              requant;  // quantized input converted to another type
    bool              imatrix;  // importance weights were used
    double            rel_rmse; // ||deq(q(x)) - x|| / ||x||; 0 for copies; -1 if not measured
} werk_quant_report_row;

typedef struct werk_quant_report {
    const werk_quant_preset *preset;
    int64_t                  n_rows;
    werk_quant_report_row   *rows; // in the file's tensor order
    uint64_t                 n_elements, src_bytes, bytes; // sums over tensors
    uint64_t                 file_bytes;                   // size of the written file (0 for dry runs)
    int64_t                  n_fallback, n_requant, n_imatrix;
} werk_quant_report;

/* Reads job->in, plans, attaches importance weights, writes job->out (unless dry_run) with
 * general.file_type and general.quantization_version = 2 set and every other key kept,
 * then measures. *rep is owned by the caller (werk_quant_report_free), also on failure
 * after planning (NULL before). */
werk_status werk_quantize_run(const werk_quantize_job *job, werk_quant_report **rep, werk_err *err);
void        werk_quant_report_free(werk_quant_report *r); // NULL ok

/* werk quantize IN.gguf OUT.gguf (--q4_k | --type PRESET) [options]: quant/cmd_quantize.c */
int werk_cmd_quantize(int argc, char **argv);

// ---- validation (quant/quant_rows.c) ---------------------------------------------------

/* ggml_validate_row_data: false if any scale, min or sum field of the n elements at data
 * (type t, n a multiple of the block size) is NaN or infinite, or, for F32/F16/BF16/F64,
 * any value is. Integer types are always valid. */
bool werk_dtype_validate_row(werk_dtype t, const void *data, int64_t n);

#endif
