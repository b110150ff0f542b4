/* convert/hf_export.c - werk_gguf -> HF model folder that transformers loads
 *
 * Writes, each atomically (tmp + fsync + rename):
 *   config.json, generation_config.json       from the GGUF hyper-parameters (hf_config.c);
 *   model.safetensors, or above max_shard_bytes model-0000N-of-0000M.safetensors +
 *   model.safetensors.index.json ({"metadata": {"total_size"}, "weight_map"});
 *   tokenizer files                            werk_hf_tokenizer_export (hf_tokenizer.c).
 * Tensors get HF names, are dequantized to opts->type row by row while streaming
 * (werk_st_write), and have llama.cpp's changes undone: llama Q/K rows back to
 * rotate-half order (inverse row map, composed with any map the tensor already has) and
 * gemma3 norms - 1 (add, composed with any offset the tensor already has). Tied
 * embeddings (no output.weight) give no lm_head. safetensors __metadata__ is
 * {"format": "pt"}, which transformers requires. Stale files of the other layout
 * (model.safetensors vs shards + index) are removed after the new ones are in place.
 *
 * Round trip of gemma3 norms: f32(f32(w - 1) + 1) == w for every w that is itself
 * f32(1 + x) (what a converter stores), so GGUF -> HF -> GGUF is exact; HF -> GGUF -> HF
 * gives f32(f32(x + 1) - 1), which loses the bits of x below 2^-24 (the GGUF cannot hold
 * them: llama.cpp stores 1 + x).
 */
#define _GNU_SOURCE
#include "convert/hf_int.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAX_SHARD_BYTES 2000000000ull // 2 GB
#define HF_NAME_MAX 256

typedef struct out_tensor {
    werk_gguf_tensor t; // what werk_st_write reads (name -> hf_name)
    char             hf_name[HF_NAME_MAX];
    int64_t         *map;  // owned row map, or NULL
    void            *data; // owned reordered copy of the data (llama Q/K biases), or NULL
    uint64_t         out_bytes;
    int              shard;
} out_tensor;

static int cmp_out(const void *a, const void *b) {
    return strcmp(((const out_tensor *)a)->hf_name, ((const out_tensor *)b)->hf_name);
}

/* Where g came from, for messages ("" for a model built in memory). */
static const char *src_name(const werk_gguf *g) {
    const char *p = werk_gguf_path(g);
    return p && *p ? p : "model";
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static werk_status write_text(const char *dir, const char *name, const char *text, werk_err *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return werk_write_file_atomic(path, text, strlen(text), err);
}

static werk_status write_configs(const werk_hf_hparams *hp, werk_dtype type, const char *dir, werk_err *err) {
    char       *text = NULL;
    werk_status s    = werk_hf_config_json(hp, type, &text, err);
    if (s == WERK_OK) {
        s = write_text(dir, "config.json", text, err);
    }
    free(text);
    text = NULL;
    if (s == WERK_OK) {
        s = werk_hf_generation_json(hp, &text, err);
    }
    if (s == WERK_OK) {
        s = write_text(dir, "generation_config.json", text, err);
    }
    free(text);
    return s;
}

/* Removes <dir>/<name> if it exists (a file of the other layout from an earlier export). */
static void remove_stale(const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (unlink(path) == 0) {
        werk_log(WERK_LOG_INFO, "%s: removed stale %s", dir, name);
    }
}

/* True for "model-NNNNN-of-MMMMM.safetensors" (the shard names werk and transformers use). */
static bool is_shard_name(const char *s) {
    unsigned a, b;
    int      n = 0;
    return sscanf(s, "model-%5u-of-%5u.safetensors%n", &a, &b, &n) == 2 && n > 0 && s[n] == 0 &&
           strlen(s) == strlen("model-00001-of-00001.safetensors");
}

static void remove_stale_shards(const char *dir, int n_shards) {
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    char keep_suffix[32];
    snprintf(keep_suffix, sizeof(keep_suffix), "-of-%05d.safetensors", n_shards);
    struct dirent *de;
    char         **names = NULL;
    size_t         n     = 0;
    while ((de = readdir(d)) != NULL) {
        if (is_shard_name(de->d_name) && (n_shards <= 1 || !ends_with(de->d_name, keep_suffix))) {
            char **p = realloc(names, (n + 1) * sizeof(*p));
            if (!p) {
                break;
            }
            names = p;
            if ((names[n] = strdup(de->d_name)) != NULL) {
                n++;
            }
        }
    }
    closedir(d);
    for (size_t i = 0; i < n; i++) {
        remove_stale(dir, names[i]);
        free(names[i]);
    }
    free(names);
}

/* Vocab-only GGUF: tokenizer files, plus config.json when the hyper-parameters are there. */
static werk_status
export_vocab_only(const werk_gguf *g, const char *dir, const werk_hf_export_opts *opts, werk_err *err) {
    werk_hf_hparams hp;
    werk_err        e2 = {0};
    werk_log(WERK_LOG_WARN,
             "%s: no tensors (vocab-only): writing the tokenizer files (and config.json where the "
             "hyper-parameters allow)",
             src_name(g));
    if (werk_hf_hparams_from_gguf(g, &hp, &e2) == WERK_OK && hp.n_vocab > 0) {
        werk_status s = write_configs(&hp, opts->type, dir, err);
        if (s) {
            return s;
        }
    } else {
        werk_log(WERK_LOG_WARN, "%s: no config.json written (%s)", src_name(g),
                 e2.code ? e2.msg : "vocabulary size unknown");
    }
    bool        written = false;
    werk_status s       = werk_hf_tokenizer_export(g, dir, &written, err);
    if (s == WERK_OK && !written) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: nothing to export: no tensors and no vocab", src_name(g));
    }
    return s;
}

/* Fills o from GGUF tensor t: HF name, output type, composed row map and offset. */
static werk_status prepare(const werk_gguf        *g,
                           const werk_hf_hparams  *hp,
                           const werk_gguf_tensor *t,
                           werk_dtype              type,
                           out_tensor             *o,
                           werk_err               *err) {
    const werk_hf_arch_info *ai = werk_hf_arch_get(hp->arch);
    int64_t                  layer;
    if (!werk_hf_name_from_gguf(hp->arch, t->name, o->hf_name, sizeof(o->hf_name), &layer)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s' has no HF name for architecture %s",
                         src_name(g), t->name, ai->gguf_name);
    }
    const werk_dtype_info *si = werk_dtype_get(t->src_type);
    if (!(si->is_float || si->is_quant) || !werk_dtype_can_dequantize(t->src_type)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot convert type %s to %s",
                         src_name(g), t->name, si->name, werk_dtype_name(type));
    }
    int     nd;
    int64_t want[2];
    if (werk_hf_expected_shape(hp, t->name, &nd, want) &&
        (t->n_dims != nd || t->shape[0] != want[0] || (nd == 2 && t->shape[1] != want[1]))) {
        return WERK_FAIL(err, WERK_E_SHAPE,
                         "%s: tensor '%s' does not fit the hyper-parameters (shape [%" PRId64 ", %" PRId64
                         "], expected [%" PRId64 ", %" PRId64 "])",
                         src_name(g), t->name, t->shape[0], t->n_dims > 1 ? t->shape[1] : 0, want[0],
                         nd > 1 ? want[1] : 0);
    }
    o->t      = *t;
    o->t.name = o->hf_name;
    // 1-D tensors (norms, biases) stay f32 as in llama.cpp's GGUFs, so GGUF -> HF -> GGUF
    // is lossless at every --type; transformers casts them on load.
    o->t.type     = t->n_dims == 1 ? WERK_DTYPE_F32 : type;
    uint64_t    n = (uint64_t)werk_gguf_tensor_nelements(t);
    werk_status s = werk_dtype_bytes(o->t.type, n, &o->out_bytes, err);
    if (s) {
        return s;
    }
    if (ai->norm_plus_one && ends_with(t->name, "norm.weight")) {
        o->t.add = t->add - 1.0f;
    }
    if (ai->permute_qk && layer >= 0) {
        const char *suffix = strchr(t->name + 4, '.') + 1;
        int64_t     n_head = 0;
        if (strncmp(suffix, "attn_q.", 7) == 0) {
            n_head = hp->n_head;
        } else if (strncmp(suffix, "attn_k.", 7) == 0) {
            n_head = hp->n_head_kv;
        }
        if (n_head > 0) {
            int64_t rows = t->shape[0];
            if (rows % (2 * n_head) != 0) {
                return WERK_FAIL(err, WERK_E_SHAPE,
                                 "%s: tensor '%s': %" PRId64 " rows do not split into %" PRId64 " heads",
                                 src_name(g), t->name, rows, n_head);
            }
            int64_t *inv = malloc((size_t)rows * sizeof(int64_t));
            if (!inv) {
                return WERK_FAIL(err, WERK_E_OOM, "out of memory");
            }
            werk_hf_qk_row_map(inv, rows, n_head, true);
            if (t->n_dims == 1) {
                // A bias is one row: permute its elements into a copy (float types only).
                if (t->row_map || si->is_quant) {
                    free(inv);
                    return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot reorder a %s bias",
                                     src_name(g), t->name, si->name);
                }
                uint8_t *buf = malloc((size_t)t->nbytes);
                if (!buf) {
                    free(inv);
                    return WERK_FAIL(err, WERK_E_OOM, "out of memory");
                }
                for (int64_t r = 0; r < rows; r++) {
                    memcpy(buf + (size_t)r * si->type_size,
                           (const uint8_t *)t->data + (size_t)inv[r] * si->type_size, si->type_size);
                }
                free(inv);
                o->t.data    = buf;
                o->data      = buf;
                o->t.row_map = NULL;
                return WERK_OK;
            }
            if (t->row_map) { // compose: HF row r <- GGUF row inv[r] <- source row row_map[inv[r]]
                for (int64_t r = 0; r < rows; r++) {
                    inv[r] = t->row_map[inv[r]];
                }
            }
            o->map       = inv;
            o->t.row_map = inv;
        }
    }
    return WERK_OK;
}

static werk_status
write_index(const char *dir, const out_tensor *ot, int64_t n, int n_shards, uint64_t total, werk_err *err) {
    const char **names  = malloc((size_t)n * sizeof(*names));
    const char **shards = malloc((size_t)n * sizeof(*shards));
    char(*files)[64]    = malloc((size_t)n_shards * sizeof(*files));
    werk_status s;
    if (!names || !shards || !files) {
        s = WERK_FAIL(err, WERK_E_OOM, "out of memory");
    } else {
        for (int k = 0; k < n_shards; k++) {
            snprintf(files[k], sizeof(files[k]), "model-%05d-of-%05d.safetensors", k + 1, n_shards);
        }
        for (int64_t i = 0; i < n; i++) {
            names[i]  = ot[i].hf_name;
            shards[i] = files[ot[i].shard];
        }
        char path[4096];
        snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
        s = werk_st_write_index(path, names, shards, n, total, err);
    }
    free(names);
    free(shards);
    free(files);
    return s;
}

static werk_status
write_weights(const char *dir, out_tensor *ot, int64_t n, uint64_t max_shard, bool progress, werk_err *err) {
    // Greedy shards in name order; a tensor larger than the limit gets a shard of its own.
    int      n_shards = 0;
    uint64_t cur = 0, total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (i == 0 || (cur > 0 && cur + ot[i].out_bytes > max_shard)) {
            n_shards++;
            cur = 0;
        }
        ot[i].shard = n_shards - 1;
        cur += ot[i].out_bytes;
        total += ot[i].out_bytes;
    }
    if (n_shards > 99999) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: %d shards is too many (raise the shard size)", dir, n_shards);
    }
    const werk_gguf_tensor **list = malloc((size_t)n * sizeof(*list));
    if (!list) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    const char *const meta_k[] = {"format"};
    const char *const meta_v[] = {"pt"};
    werk_progress     prog;
    if (progress) {
        werk_progress_init(&prog, "export", total, true);
    }
    werk_status s = WERK_OK;
    for (int k = 0, i = 0; k < n_shards && s == WERK_OK; k++) {
        int64_t  cnt   = 0;
        uint64_t bytes = 0;
        for (; i < n && ot[i].shard == k; i++) {
            list[cnt++] = &ot[i].t;
            bytes += ot[i].out_bytes;
        }
        char path[4096];
        if (n_shards == 1) {
            snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        } else {
            snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, k + 1, n_shards);
        }
        s = werk_st_write(path, list, cnt, meta_k, meta_v, 1, err);
        if (progress) {
            werk_progress_add(&prog, bytes);
        }
    }
    if (progress) {
        werk_progress_done(&prog);
    }
    free(list);
    if (s) {
        return s;
    }
    if (n_shards > 1) {
        if ((s = write_index(dir, ot, n, n_shards, total, err))) {
            return s;
        }
        remove_stale(dir, "model.safetensors");
    } else {
        remove_stale(dir, "model.safetensors.index.json");
    }
    remove_stale_shards(dir, n_shards);
    return WERK_OK;
}

werk_status
werk_hf_export(const werk_gguf *g, const char *dir, const werk_hf_export_opts *opts, werk_err *err) {
    werk_hf_export_opts defaults = {.type = WERK_DTYPE_F32};
    if (!opts) {
        opts = &defaults;
    }
    if (opts->type != WERK_DTYPE_F32 && opts->type != WERK_DTYPE_F16 && opts->type != WERK_DTYPE_BF16) {
        return WERK_FAIL(err, WERK_E_ARG, "HF export: type must be f32, f16 or bf16 (got %s)",
                         werk_dtype_name(opts->type));
    }
    werk_status s = werk_mkdir_p(dir, err);
    if (s) {
        return s;
    }
    int64_t n = werk_gguf_n_tensors(g);
    if (n == 0) {
        return export_vocab_only(g, dir, opts, err);
    }
    werk_hf_hparams hp;
    if ((s = werk_hf_hparams_from_gguf(g, &hp, err))) {
        return s;
    }
    int64_t emb = werk_gguf_find_tensor(g, "token_embd.weight");
    if (emb < 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing tensor 'token_embd.weight'", src_name(g));
    }
    const werk_gguf_tensor *te = werk_gguf_tensor_at(g, emb);
    if (te->n_dims != 2) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: token_embd.weight is not 2-D", src_name(g));
    }
    hp.n_vocab   = te->shape[0];
    hp.tied      = werk_gguf_find_tensor(g, "output.weight") < 0;
    hp.attn_bias = werk_gguf_find_tensor(g, "blk.0.attn_q.bias") >= 0;
    hp.mlp_bias  = werk_gguf_find_tensor(g, "blk.0.ffn_gate.bias") >= 0;
    if (hp.arch == WERK_HF_ARCH_QWEN2 && !hp.attn_bias) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: qwen2 model without q/k/v biases", src_name(g));
    }
    out_tensor *ot = calloc((size_t)n, sizeof(*ot));
    if (!ot) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    for (int64_t i = 0; i < n && s == WERK_OK; i++) {
        s = prepare(g, &hp, werk_gguf_tensor_at(g, i), opts->type, &ot[i], err);
    }
    if (s == WERK_OK) {
        qsort(ot, (size_t)n, sizeof(*ot), cmp_out);
        for (int64_t i = 0; i < n; i++) {
            ot[i].t.name = ot[i].hf_name; // the structs moved
        }
        uint64_t max_shard = opts->max_shard_bytes ? opts->max_shard_bytes : DEFAULT_MAX_SHARD_BYTES;
        s                  = write_weights(dir, ot, n, max_shard, opts->progress, err);
    }
    for (int64_t i = 0; i < n; i++) {
        free(ot[i].map);
        free(ot[i].data);
    }
    free(ot);
    if (s == WERK_OK) {
        s = write_configs(&hp, opts->type, dir, err);
    }
    if (s == WERK_OK) {
        bool written = false;
        s            = werk_hf_tokenizer_export(g, dir, &written, err);
        if (s == WERK_OK && !written) {
            werk_log(WERK_LOG_WARN, "%s: the GGUF has no vocab; %s has no tokenizer files", src_name(g), dir);
        }
    }
    if (s) {
        werk_err_prefix(err, "HF export to %s", dir);
    }
    return s;
}
