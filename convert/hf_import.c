/* convert/hf_import.c - HF model folder -> werk_gguf (llama.cpp's keys and tensor names)
 *
 * An HF folder is config.json + safetensors (model.safetensors, or the shards listed in
 * model.safetensors.index.json "weight_map", or model*.safetensors) + tokenizer files.
 * Shards are memory-mapped here and the mappings handed to the werk_gguf
 * (werk_gguf_hold_mmap): tensor data points into them, nothing is copied or converted,
 * and types stay as stored (bf16 stays bf16). What llama.cpp's convert_hf_to_gguf.py
 * changes is recorded as transforms the writers apply while streaming:
 *   - llama: q_proj / k_proj rows permuted from HF's rotate-half order to llama.cpp's
 *     interleaved order (row_map; LlamaModel.permute with n_head for Q, n_head_kv for K);
 *   - gemma3: every "*norm.weight" stored as 1 + w (Gemma3Model.norm_shift): add = 1 for
 *     f32 norms, a copy computed in the source type for bf16/f16 ones (as llama.cpp rounds),
 *     and token_embd trimmed to the tokenizer's vocabulary (Gemma3Model.modify_tensors).
 * Tensors are ordered token_embd, blk.0 .. blk.N-1 (by name), output_norm, output, so
 * the result does not depend on how the checkpoint was sharded. A folder with tokenizer
 * files but no safetensors gives a vocab-only werk_gguf (as llama.cpp's --vocab-only).
 */
#define _GNU_SOURCE
#include "convert/hf_int.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_SHARDS 100000
#define NAME_MAX_LEN 256

typedef struct entry {
    char        name[NAME_MAX_LEN]; // GGUF name
    char       *hf_name;            // malloc'd, for messages and the index check
    int64_t     layer;
    int         shard;
    werk_dtype  type;
    int         n_dims;
    int64_t     shape[WERK_MAX_DIMS];
    const void *data;
    uint64_t    nbytes;
} entry;

typedef struct import_ctx {
    const char     *dir;
    werk_hf_hparams hp;
    bool            have_config;
    werk_gguf      *g;
    char          **shards; // file names (not paths), sorted
    int             n_shards;
    cJSON          *index; // model.safetensors.index.json, or NULL
    entry          *entries;
    int64_t         n_entries, cap_entries;
} import_ctx;

static bool file_exists(const char *dir, const char *name) {
    char        p[4096];
    struct stat st;
    int         k = snprintf(p, sizeof(p), "%s/%s", dir, name);
    return k > 0 && (size_t)k < sizeof(p) && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* A shard name from an index is a plain file name in the folder: no path, no dot file. */
static bool safe_shard_name(const char *s) {
    size_t n = strlen(s);
    return n > 0 && n < NAME_MAX_LEN && s[0] != '.' && !strchr(s, '/') && !strchr(s, '\\') &&
           ends_with(s, ".safetensors");
}

static werk_status add_shard(import_ctx *c, const char *name, werk_err *err) {
    for (int i = 0; i < c->n_shards; i++) {
        if (strcmp(c->shards[i], name) == 0) {
            return WERK_OK;
        }
    }
    if (c->n_shards >= MAX_SHARDS) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: more than %d shards", c->dir, MAX_SHARDS);
    }
    char **p = realloc(c->shards, (size_t)(c->n_shards + 1) * sizeof(*p));
    if (!p) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    c->shards = p;
    if (!(c->shards[c->n_shards] = strdup(name))) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    c->n_shards++;
    return WERK_OK;
}

/* The shard list: from the index's weight_map, else model.safetensors, else every
 * model*.safetensors in the folder (as llama.cpp's get_model_part_names). */
static werk_status find_shards(import_ctx *c, werk_err *err) {
    char        path[4096];
    werk_status s;
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", c->dir);
    if (file_exists(c->dir, "model.safetensors.index.json")) {
        if ((s = werk_json_read_file(path, WERK_CONFIG_JSON_MAX, &c->index, err))) {
            return s;
        }
        const cJSON *wm = cJSON_GetObjectItemCaseSensitive(c->index, "weight_map");
        if (!cJSON_IsObject(wm)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing object 'weight_map'", path);
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, wm) {
            if (!cJSON_IsString(e) || !safe_shard_name(e->valuestring)) {
                return WERK_FAIL(err, WERK_E_FORMAT,
                                 "%s: weight_map['%s'] is not a .safetensors file name here", path,
                                 e->string);
            }
            if ((s = add_shard(c, e->valuestring, err))) {
                return s;
            }
        }
        if (c->n_shards == 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: empty weight_map", path);
        }
    } else if (file_exists(c->dir, "model.safetensors")) {
        if ((s = add_shard(c, "model.safetensors", err))) {
            return s;
        }
    } else {
        DIR *d = opendir(c->dir);
        if (!d) {
            return WERK_FAIL(err, WERK_E_IO, "%s: cannot list folder: %s", c->dir, strerror(errno));
        }
        struct dirent *de;
        s = WERK_OK;
        while (s == WERK_OK && (de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, "model", 5) == 0 && safe_shard_name(de->d_name) &&
                file_exists(c->dir, de->d_name)) {
                s = add_shard(c, de->d_name, err);
            }
        }
        closedir(d);
        if (s) {
            return s;
        }
    }
    if (c->n_shards > 1) {
        qsort(c->shards, (size_t)c->n_shards, sizeof(c->shards[0]), cmp_str);
    }
    return WERK_OK;
}

// ---- tensors ---------------------------------------------------------------------------------

static werk_status
add_entry(import_ctx *c, const werk_st_tensor *t, int shard, const char *path, werk_err *err) {
    if (ends_with(t->name, ".rotary_emb.inv_freq")) {
        return WERK_OK; // a buffer some old checkpoints saved; recomputed from the config
    }
    if (c->hp.tied && strcmp(t->name, "lm_head.weight") == 0) {
        werk_log(WERK_LOG_INFO, "%s: lm_head.weight ignored (tie_word_embeddings)", path);
        return WERK_OK;
    }
    entry e = {0};
    if (!werk_hf_name_to_gguf(c->hp.arch, t->name, e.name, sizeof(e.name), &e.layer)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s' has no GGUF name for architecture %s",
                         path, t->name, werk_hf_arch_get(c->hp.arch)->gguf_name);
    }
    if (t->type != WERK_DTYPE_F32 && t->type != WERK_DTYPE_F16 && t->type != WERK_DTYPE_BF16) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: tensor '%s' has type %s (werk converts F32, F16, BF16)", path, t->name,
                         werk_dtype_name(t->type));
    }
    if (t->n_dims < 1 || t->n_dims > 2) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s' has %d dimensions (1 or 2 expected)", path,
                         t->name, t->n_dims);
    }
    if (e.layer >= c->hp.n_layer) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tensor '%s' is in layer %" PRId64 " but num_hidden_layers is %" PRId64, path,
                         t->name, e.layer, c->hp.n_layer);
    }
    e.shard  = shard;
    e.type   = t->type;
    e.n_dims = t->n_dims;
    for (int i = 0; i < WERK_MAX_DIMS; i++) {
        e.shape[i] = i < t->n_dims ? t->shape[i] : 1;
    }
    e.data   = t->data;
    e.nbytes = t->nbytes;
    if (c->n_entries == c->cap_entries) {
        int64_t cap = c->cap_entries ? 2 * c->cap_entries : 256;
        entry  *p   = realloc(c->entries, (size_t)cap * sizeof(*p));
        if (!p) {
            return WERK_FAIL(err, WERK_E_OOM, "out of memory");
        }
        c->entries     = p;
        c->cap_entries = cap;
    }
    if (!(e.hf_name = strdup(t->name))) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    c->entries[c->n_entries++] = e;
    return WERK_OK;
}

/* Checks the index's weight_map names this tensor and this shard. */
static werk_status check_index(const import_ctx *c, const char *hf_name, int shard, werk_err *err) {
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(c->index, "weight_map");
    const cJSON *v  = cJSON_GetObjectItemCaseSensitive(wm, hf_name);
    if (!v) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tensor '%s' is in %s but not in model.safetensors.index.json", c->dir, hf_name,
                         c->shards[shard]);
    }
    if (strcmp(v->valuestring, c->shards[shard]) != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' is in %s but the index says %s", c->dir,
                         hf_name, c->shards[shard], v->valuestring);
    }
    return WERK_OK;
}

static werk_status load_shard(import_ctx *c, int shard, int64_t *n_in_shards, werk_err *err) {
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", c->dir, c->shards[shard]);
    werk_mmap   m  = {0};
    werk_st    *st = NULL;
    werk_status s  = werk_mmap_open(&m, path, err);
    if (s == WERK_OK) {
        s = werk_st_read_mem(m.data, m.size, path, &st, err);
    }
    for (int64_t i = 0; s == WERK_OK && i < werk_st_n_tensors(st); i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        if (c->index) {
            s = check_index(c, t->name, shard, err);
            (*n_in_shards)++;
        }
        if (s == WERK_OK) {
            s = add_entry(c, t, shard, path, err);
        }
    }
    werk_st_free(st);
    if (s == WERK_OK) {
        s = werk_gguf_hold_mmap(c->g, &m, err); // tensor data stays valid: g owns the mapping now
    }
    werk_mmap_close(&m); // no-op once held
    return s;
}

static int group_of(const entry *e) {
    if (e->layer >= 0) {
        return 1;
    }
    return strcmp(e->name, "token_embd.weight") == 0 ? 0 : 2;
}

static int cmp_entry(const void *pa, const void *pb) {
    const entry *a = pa, *b = pb;
    int          ga = group_of(a), gb = group_of(b);
    if (ga != gb) {
        return ga < gb ? -1 : 1;
    }
    if (a->layer != b->layer) {
        return a->layer < b->layer ? -1 : 1;
    }
    if (ga == 2) { // output_norm before output
        return -strcmp(a->name, b->name);
    }
    return strcmp(a->name, b->name);
}

static werk_status check_shape(const import_ctx *c, const entry *e, werk_err *err) {
    int     nd;
    int64_t want[2];
    if (!werk_hf_expected_shape(&c->hp, e->name, &nd, want)) {
        return WERK_OK;
    }
    if (e->n_dims != nd || e->shape[0] != want[0] || (nd == 2 && e->shape[1] != want[1])) {
        char got_s[64], want_s[64];
        if (e->n_dims == 2) {
            snprintf(got_s, sizeof(got_s), "[%" PRId64 ", %" PRId64 "]", e->shape[0], e->shape[1]);
        } else {
            snprintf(got_s, sizeof(got_s), "[%" PRId64 "]", e->shape[0]);
        }
        if (nd == 2) {
            snprintf(want_s, sizeof(want_s), "[%" PRId64 ", %" PRId64 "]", want[0], want[1]);
        } else {
            snprintf(want_s, sizeof(want_s), "[%" PRId64 "]", want[0]);
        }
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s' has shape %s, config.json implies %s", c->dir,
                         e->hf_name, got_s, want_s);
    }
    return WERK_OK;
}

static werk_status check_present(void *ctx, const char *gguf_name, werk_err *err) {
    const import_ctx *c = ctx;
    if (werk_gguf_find_tensor(c->g, gguf_name) >= 0) {
        return WERK_OK;
    }
    char hf[NAME_MAX_LEN];
    if (!werk_hf_name_from_gguf(c->hp.arch, gguf_name, hf, sizeof(hf), NULL)) {
        snprintf(hf, sizeof(hf), "%s", gguf_name);
    }
    return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing tensor '%s'", c->dir, hf);
}

/* llama: Q/K rows to llama.cpp's order. Weights get a row map; a bias (1-D, one "row")
 * gets a permuted copy in g's arena. */
static werk_status permute_qk(import_ctx *c, werk_gguf_tensor *t, int64_t n_head, werk_err *err) {
    int64_t rows = t->shape[0];
    if (rows % (2 * n_head) != 0) {
        return WERK_FAIL(err, WERK_E_SHAPE,
                         "%s: tensor '%s': %" PRId64 " rows do not split into %" PRId64 " heads", c->dir,
                         t->name, rows, n_head);
    }
    int64_t *map = werk_gguf_alloc(c->g, (size_t)rows * sizeof(int64_t), err);
    if (!map) {
        return WERK_E_OOM;
    }
    werk_hf_qk_row_map(map, rows, n_head, false);
    if (t->n_dims >= 2) {
        t->row_map = map;
        return WERK_OK;
    }
    size_t   es  = werk_dtype_get(t->src_type)->type_size;
    uint8_t *dst = werk_gguf_alloc(c->g, (size_t)t->nbytes, err);
    if (!dst) {
        return WERK_E_OOM;
    }
    for (int64_t r = 0; r < rows; r++) {
        memcpy(dst + (size_t)r * es, (const uint8_t *)t->data + (size_t)map[r] * es, es);
    }
    t->data = dst;
    return WERK_OK;
}

/* gemma3 norms: 1 + w. llama.cpp adds in the tensor's own type (torch: bf16 + 1 rounds to
 * bf16) and converts afterwards, so 16-bit norms are computed here into a copy in that
 * type (they are short vectors): every output type then holds llama.cpp's values. f32
 * norms get add = 1, which the writers apply in f32, the same thing. */
static werk_status norm_plus_one(import_ctx *c, werk_gguf_tensor *t, werk_err *err) {
    if (t->src_type == WERK_DTYPE_F32) {
        t->add = 1.0f;
        return WERK_OK;
    }
    int64_t   n   = werk_gguf_tensor_nelements(t);
    uint16_t *dst = werk_gguf_alloc(c->g, (size_t)n * sizeof(uint16_t), err);
    if (!dst) {
        return WERK_E_OOM;
    }
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
        if (t->src_type == WERK_DTYPE_BF16) {
            dst[i] = werk_fp32_to_bf16(werk_bf16_to_fp32(h) + 1.0f);
        } else {
            dst[i] = werk_fp32_to_fp16(werk_fp16_to_fp32(h) + 1.0f);
        }
    }
    t->data = dst;
    return WERK_OK;
}

static werk_status build_tensors(import_ctx *c, werk_err *err) {
    werk_status s;
    qsort(c->entries, (size_t)c->n_entries, sizeof(entry), cmp_entry);
    for (int64_t i = 0; i < c->n_entries; i++) {
        entry *e = &c->entries[i];
        if (i > 0 && strcmp(e->name, c->entries[i - 1].name) == 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' appears twice (%s and %s)", c->dir,
                             e->hf_name, c->shards[c->entries[i - 1].shard], c->shards[e->shard]);
        }
        if ((s = check_shape(c, e, err))) {
            return s;
        }
    }
    int64_t n_tok = -1; // gemma3: token_embd is cut to the tokenizer's vocabulary
    if (c->hp.arch == WERK_HF_ARCH_GEMMA3) {
        const werk_gguf_value *toks = werk_gguf_get(c->g, "tokenizer.ggml.tokens");
        if (toks && toks->type == WERK_GGUF_ARRAY && (int64_t)toks->arr.n < c->hp.n_vocab) {
            n_tok = (int64_t)toks->arr.n;
        }
    }
    const werk_hf_arch_info *ai = werk_hf_arch_get(c->hp.arch);
    for (int64_t i = 0; i < c->n_entries; i++) {
        entry   *e = &c->entries[i];
        int64_t  idx;
        uint64_t nbytes = e->nbytes;
        if (n_tok > 0 && strcmp(e->name, "token_embd.weight") == 0) {
            nbytes      = nbytes / (uint64_t)e->shape[0] * (uint64_t)n_tok;
            e->shape[0] = n_tok;
            werk_log(WERK_LOG_INFO,
                     "%s: token_embd cut from %" PRId64 " to %" PRId64 " rows (tokenizer size)", c->dir,
                     c->hp.n_vocab, n_tok);
        }
        if ((s = werk_gguf_add_tensor(c->g, e->name, e->type, e->n_dims, e->shape, e->data, nbytes, &idx,
                                      err))) {
            return s;
        }
        werk_gguf_tensor *t = werk_gguf_tensor_at_mut(c->g, idx);
        if (ai->permute_qk && e->layer >= 0) {
            const char *suffix = strchr(e->name + 4, '.') + 1;
            if (strncmp(suffix, "attn_q.", 7) == 0) {
                s = permute_qk(c, t, c->hp.n_head, err);
            } else if (strncmp(suffix, "attn_k.", 7) == 0) {
                s = permute_qk(c, t, c->hp.n_head_kv, err);
            }
            if (s) {
                return s;
            }
        }
        if (ai->norm_plus_one && ends_with(e->name, "norm.weight") && (s = norm_plus_one(c, t, err))) {
            return s;
        }
    }
    if (n_tok > 0) {
        char k[64];
        snprintf(k, sizeof(k), "%s.vocab_size", ai->gguf_name);
        if ((s = werk_gguf_set_u32(c->g, k, (uint32_t)n_tok, err))) {
            return s;
        }
    }
    return werk_hf_required_tensors(c->hp.arch, c->hp.n_layer, c->hp.tied, c->hp.attn_bias, check_present, c,
                                    err);
}

/* general.file_type as llama.cpp guesses it: from the first 2-D tensor's type. */
static werk_status set_file_type(werk_gguf *g, werk_err *err) {
    uint32_t ftype = 0; // ALL_F32
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        if (t->n_dims == 2) {
            ftype = t->type == WERK_DTYPE_F16 ? 1 : t->type == WERK_DTYPE_BF16 ? 32 : 0;
            break;
        }
    }
    werk_status s = werk_gguf_set_u32(g, "general.file_type", ftype, err);
    if (s == WERK_OK) {
        s = werk_gguf_set_u32(g, "general.quantization_version", 2, err);
    }
    return s;
}

/* The folder's last path component ("SmolLM2-135M" for /x/SmolLM2-135M/), for general.name. */
static void base_name(const char *dir, char *out, size_t n) {
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') {
        len--;
    }
    size_t start = len;
    while (start > 0 && dir[start - 1] != '/') {
        start--;
    }
    size_t k = len - start < n - 1 ? len - start : n - 1;
    memcpy(out, dir + start, k);
    out[k] = 0;
}

static werk_status import(import_ctx *c, werk_err *err) {
    char        path[4096];
    werk_status s;
    snprintf(path, sizeof(path), "%s/config.json", c->dir);
    c->have_config = file_exists(c->dir, "config.json");
    if ((s = find_shards(c, err))) {
        return s;
    }
    if (c->have_config) {
        if ((s = werk_hf_config_read(path, &c->hp, err))) {
            return s;
        }
        char name[256];
        base_name(c->dir, name, sizeof(name));
        if ((s = werk_hf_hparams_to_gguf(&c->hp, name, c->g, err))) {
            return s;
        }
    } else if (c->n_shards > 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing config.json", c->dir);
    }
    const char *arch  = c->have_config ? werk_hf_arch_get(c->hp.arch)->gguf_name : "llama";
    bool        found = false;
    if ((s = werk_hf_tokenizer_import(c->dir, arch, c->g, &found, err))) {
        return s;
    }
    if (!found) {
        if (c->n_shards == 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: no safetensors and no tokenizer files", c->dir);
        }
        werk_log(WERK_LOG_WARN,
                 "%s: no tokenizer files (tokenizer.json / tokenizer.model); the GGUF has no vocab", c->dir);
    }
    if (!c->have_config) {
        werk_log(WERK_LOG_WARN, "%s: no config.json: vocab-only output, architecture assumed llama", c->dir);
        return werk_gguf_set_str(c->g, "general.architecture", "llama", err);
    }
    if (c->n_shards == 0) {
        werk_log(WERK_LOG_WARN, "%s: no safetensors: vocab-only output (tokenizer and hyper-parameters)",
                 c->dir);
        return WERK_OK;
    }
    int64_t n_in_shards = 0;
    for (int i = 0; i < c->n_shards; i++) {
        if ((s = load_shard(c, i, &n_in_shards, err))) {
            return s;
        }
    }
    if (c->index) {
        int64_t n_index = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(c->index, "weight_map"));
        if (n_index != n_in_shards) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: model.safetensors.index.json lists %" PRId64
                             " tensors but the shards hold %" PRId64,
                             c->dir, n_index, n_in_shards);
        }
    }
    if ((s = build_tensors(c, err))) {
        return s;
    }
    return set_file_type(c->g, err);
}

werk_status werk_hf_import(const char *dir, werk_gguf **out, werk_err *err) {
    *out         = NULL;
    import_ctx c = {.dir = dir};
    c.g          = werk_gguf_init();
    if (!c.g) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
    }
    werk_status s = import(&c, err);
    for (int64_t i = 0; i < c.n_entries; i++) {
        free(c.entries[i].hf_name);
    }
    free(c.entries);
    for (int i = 0; i < c.n_shards; i++) {
        free(c.shards[i]);
    }
    free(c.shards);
    cJSON_Delete(c.index);
    if (s) {
        werk_gguf_free(c.g);
        return s;
    }
    *out = c.g;
    return WERK_OK;
}
