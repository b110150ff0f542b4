/* convert/safetensors.c - safetensors files: read (single, sharded index, folder) and write
 *
 * Owns werk_st (a validated table of tensors pointing into memory-mapped files), the
 * index-driven sharded reader, the writer (werk_st_write, converting rows on the way out
 * like werk_gguf_write) and the index writer (werk_st_write_index).
 *
 * File layout (integers little-endian; offsets from the start of the file):
 *   OFFSET  SIZE  DESCRIPTION
 *   0       8     N: u64, byte length of the JSON header; N <= 100,000,000
 *   8       N     header: a UTF-8 JSON object
 *                   {"__metadata__": {"key": "value", ...},            (optional, strings only)
 *                    "NAME": {"dtype": "F32", "shape": [d0, d1, ...],   (outermost first)
 *                             "data_offsets": [begin, end]}, ...}
 *                 padded with spaces to a multiple of 8 (the reference writer does this, so
 *                 the data starts 8-aligned in the file; tensors themselves need not be
 *                 aligned: consumers read scalars with memcpy)
 *   8+N     rest  data: every tensor's bytes, row-major; data_offsets are relative to 8+N
 *
 * Rules enforced on read (huggingface/safetensors safetensors/src/tensor.rs, read_metadata
 * and Metadata::validate, audited 2023): N <= 100 MB and N <= file size - 8; the header is
 * valid UTF-8 JSON (no duplicate keys: common/json.c) holding an object; each tensor has a
 * known dtype, a shape of non-negative integers whose product times the dtype size does
 * not overflow and equals end - begin, and end >= begin; sorted by data_offsets the
 * tensors are contiguous from 0 (no gap, no overlap) and the last one ends exactly at the
 * end of the file. Valid files that werk cannot use (a dtype such as F8_E4M3, a rank above
 * WERK_MAX_DIMS) fail with WERK_E_UNSUPPORTED after the layout has been checked.
 *
 * Index file (model.safetensors.index.json, written by transformers):
 *   {"metadata": {"total_size": BYTES}, "weight_map": {"NAME": "model-00001-of-00002.safetensors", ...}}
 * Shards are opened once each (sorted by file name); every tensor of a shard must be listed
 * for that shard and every listed tensor must be in its shard; a name in two shards is an
 * error. Shard names are paths relative to the index's folder, without ".." components.
 *
 * Tensor data is used in place (little-endian, as on every host werk supports); a werk_st
 * holds the mappings its tensors point into. The header's cJSON tree is freed once the
 * table is built; it costs up to ~40x the header's bytes while it lives.
 */
#define _GNU_SOURCE
#include "convert/convert.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ST_MAX_HEADER 100000000u        // the reference implementation's MAX_HEADER_SIZE
#define ST_MAX_INDEX (256u << 20)       // an index JSON: ~100 bytes per tensor
#define ST_MAX_EXACT 9007199254740992.0 // 2^53: larger JSON numbers are not exact in a double
#define ST_INDEX_NAME "model.safetensors.index.json"

// ---- dtypes -------------------------------------------------------------------------------

typedef struct st_dtype {
    const char *name; // safetensors spelling
    int         type; // werk_dtype, or -1 for a dtype werk does not handle
    int         bits; // bits per element (sub-byte types pack several per byte)
} st_dtype;

// clang-format off
static const st_dtype ST_DTYPES[] = {
    {"F64", WERK_DTYPE_F64, 64}, {"F32", WERK_DTYPE_F32, 32}, {"F16", WERK_DTYPE_F16, 16},
    {"BF16", WERK_DTYPE_BF16, 16}, {"I64", WERK_DTYPE_I64, 64}, {"I32", WERK_DTYPE_I32, 32},
    {"I16", WERK_DTYPE_I16, 16}, {"I8", WERK_DTYPE_I8, 8}, {"U8", WERK_DTYPE_U8, 8},
    {"BOOL", WERK_DTYPE_BOOL, 8},
    // Valid safetensors dtypes werk does not handle: layout checked, then WERK_E_UNSUPPORTED.
    {"U64", -1, 64}, {"U32", -1, 32}, {"U16", -1, 16}, {"C64", -1, 64},
    {"F8_E4M3", -1, 8}, {"F8_E5M2", -1, 8}, {"F8_E4M3FNUZ", -1, 8}, {"F8_E5M2FNUZ", -1, 8},
    {"F8_E8M0", -1, 8}, {"E8M0", -1, 8},
    {"F6_E2M3", -1, 6}, {"F6_E3M2", -1, 6}, {"F4", -1, 4},
};
// clang-format on
enum { ST_N_DTYPES = (int)(sizeof(ST_DTYPES) / sizeof(ST_DTYPES[0])) };

static const st_dtype *dtype_by_name(const char *name) {
    for (int i = 0; i < ST_N_DTYPES; i++) {
        if (strcmp(ST_DTYPES[i].name, name) == 0) {
            return &ST_DTYPES[i];
        }
    }
    return NULL;
}

static const char *dtype_st_name(werk_dtype t) {
    for (int i = 0; i < ST_N_DTYPES; i++) {
        if (ST_DTYPES[i].type == (int)t) {
            return ST_DTYPES[i].name;
        }
    }
    return NULL;
}

// ---- the table ----------------------------------------------------------------------------

typedef struct st_meta {
    const char *key;
    const char *val;
} st_meta;

struct werk_st {
    werk_arena      arena;    // names, metadata strings
    werk_st_tensor *tensors;  // file order (shard by shard, each by offset)
    int32_t        *shard_of; // shard index of each tensor
    int64_t         n_tensors;
    int64_t         cap_tensors;
    int64_t        *by_name; // tensor indices sorted by name (werk_st_find)
    st_meta        *meta;    // __metadata__ in file order; a key repeated by a later shard is shadowed
    int64_t         n_meta;
    int64_t         cap_meta;
    werk_mmap      *maps; // owned mappings
    int             n_maps;
    int             cap_maps;
};

/* A name safe to print in a one-line message: at most 80 bytes, control bytes as '?'. */
static const char *show(char buf[96], const char *s) {
    snprintf(buf, 96, "%.80s%s", s, strlen(s) > 80 ? "..." : "");
    for (char *p = buf; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            *p = '?';
        }
    }
    return buf;
}

static werk_st *st_new(void) {
    werk_st *st = calloc(1, sizeof(*st));
    if (st) {
        werk_arena_init(&st->arena);
    }
    return st;
}

void werk_st_free(werk_st *st) {
    if (!st) {
        return;
    }
    for (int i = 0; i < st->n_maps; i++) {
        werk_mmap_close(&st->maps[i]);
    }
    free(st->maps);
    free(st->tensors);
    free(st->shard_of);
    free(st->by_name);
    free(st->meta);
    werk_arena_free(&st->arena);
    free(st);
}

static bool grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) {
        return true;
    }
    int64_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    void *q = realloc(*p, (size_t)n * elem);
    if (!q) {
        return false;
    }
    *p   = q;
    *cap = n;
    return true;
}

/* Appends one __metadata__ entry. Keys are unique within a file (the JSON parser rejects
 * duplicates); across shards a key may repeat and werk_st_metadata returns the first, so
 * no search here (a header may hold millions of keys). */
static werk_status add_meta(werk_st *st, const char *key, const char *val, const char *name, werk_err *err) {
    if (!grow((void **)&st->meta, &st->cap_meta, st->n_meta + 1, sizeof(*st->meta))) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
    }
    st_meta *m = &st->meta[st->n_meta];
    m->key     = werk_arena_strdup(&st->arena, key);
    m->val     = werk_arena_strdup(&st->arena, val);
    if (!m->key || !m->val) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
    }
    st->n_meta++;
    return WERK_OK;
}

// ---- parsing one file ---------------------------------------------------------------------

typedef struct st_entry {
    const cJSON    *node;
    const st_dtype *dt;
    int             n_dims;
    int64_t         shape[WERK_MAX_DIMS];
    uint64_t        begin, end;
} st_entry;

static uint64_t read_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* A JSON number that is an exact non-negative integer (< 2^53). */
static bool json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) {
        return false;
    }
    double d = j->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_EXACT)) { // also false for NaN
        return false;
    }
    uint64_t v = (uint64_t)d;
    if ((double)v != d) {
        return false;
    }
    *out = v;
    return true;
}

static int cmp_entry(const void *a, const void *b) {
    const st_entry *x = a, *y = b;
    if (x->begin != y->begin) {
        return x->begin < y->begin ? -1 : 1;
    }
    if (x->end != y->end) {
        return x->end < y->end ? -1 : 1;
    }
    return x < y ? -1 : (x > y);
}

/* Checks one tensor entry of the header; fills e. */
static werk_status parse_entry(const char *name, const cJSON *node, st_entry *e, werk_err *err) {
    char        nb[96];
    const char *tn = show(nb, node->string);
    if (!cJSON_IsObject(node)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': header entry is not an object", name, tn);
    }
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(node, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(node, "shape");
    const cJSON *offs  = cJSON_GetObjectItemCaseSensitive(node, "data_offsets");
    if (!cJSON_IsString(dtype)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", name, tn);
    }
    e->dt = dtype_by_name(dtype->valuestring);
    if (!e->dt) {
        char db[96];
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': unknown dtype '%s'", name, tn,
                         show(db, dtype->valuestring));
    }
    if (!cJSON_IsArray(shape)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': missing or non-array \"shape\"", name, tn);
    }
    uint64_t numel = 1;
    int      rank  = 0;
    for (const cJSON *d = shape->child; d; d = d->next, rank++) {
        uint64_t v;
        if (!json_uint(d, &v)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                             name, tn, rank);
        }
        if (!werk_mul_u64(numel, v, &numel)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': shape product overflows 64 bits", name,
                             tn);
        }
        if (rank < WERK_MAX_DIMS) {
            e->shape[rank] = (int64_t)v;
        }
    }
    e->n_dims = rank; // may exceed WERK_MAX_DIMS: reported as unsupported once the layout is checked
    uint64_t nbits;
    if (!werk_mul_u64(numel, (uint64_t)e->dt->bits, &nbits) || numel > (uint64_t)INT64_MAX) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': byte size of shape x %s overflows 64 bits",
                         name, tn, e->dt->name);
    }
    if (nbits % 8 != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tensor '%s': %" PRIu64 " elements of %s are not whole bytes", name, tn, numel,
                         e->dt->name);
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_uint(offs->child, &e->begin) ||
        !json_uint(offs->child->next, &e->end)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tensor '%s': \"data_offsets\" is not [begin, end] of non-negative integers",
                         name, tn);
    }
    if (e->end < e->begin) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s': data_offsets end %" PRIu64 " < begin %" PRIu64,
                         name, tn, e->end, e->begin);
    }
    if (e->end - e->begin != nbits / 8) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tensor '%s': shape x %s is %" PRIu64 " bytes but data_offsets span %" PRIu64,
                         name, tn, e->dt->name, nbits / 8, e->end - e->begin);
    }
    return WERK_OK;
}

/* Validates the safetensors bytes data[0..size) and appends its tensors (pointing into
 * data) and metadata to st. `name` names the file in messages. */
static werk_status
parse_file(werk_st *st, const uint8_t *data, size_t size, const char *name, int32_t shard, werk_err *err) {
    if (size < 8) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: file too small for a safetensors header (%zu bytes)", name,
                         size);
    }
    uint64_t n = read_le64(data);
    if (n > ST_MAX_HEADER) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: header length %" PRIu64 " exceeds the 100 MB limit", name,
                         n);
    }
    if (n > size - 8) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: header length %" PRIu64 " exceeds the file size (%zu bytes)", name, n, size);
    }
    uint64_t data_size = size - 8 - n;
    char     what[1200];
    snprintf(what, sizeof(what), "%s: header", name);
    cJSON *root = NULL;
    // Depth 3: header object > tensor object > shape / data_offsets arrays.
    werk_status s = werk_json_parse((const char *)data + 8, (size_t)n, 3, what, &root, err);
    if (s) {
        return s;
    }
    st_entry *ents   = NULL;
    int64_t   n_ents = 0;
    if (!cJSON_IsObject(root)) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: header is not a JSON object", name);
        goto done;
    }
    int64_t n_items = cJSON_GetArraySize(root);
    ents            = calloc(n_items ? (size_t)n_items : 1, sizeof(*ents));
    if (!ents) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory for %" PRId64 " header entries", name, n_items);
        goto done;
    }
    const cJSON *meta = NULL;
    for (const cJSON *c = root->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) {
            meta = c;
            continue;
        }
        s = parse_entry(name, c, &ents[n_ents], err);
        if (s) {
            goto done;
        }
        ents[n_ents++].node = c;
    }
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: __metadata__ is not an object", name);
            goto done;
        }
        for (const cJSON *m = meta->child; m; m = m->next) {
            if (!cJSON_IsString(m)) {
                char kb[96];
                s = WERK_FAIL(err, WERK_E_FORMAT, "%s: __metadata__ value of '%s' is not a string", name,
                              show(kb, m->string));
                goto done;
            }
        }
    }
    // Layout: sorted by offsets, contiguous from 0, ending at the end of the file.
    qsort(ents, (size_t)n_ents, sizeof(*ents), cmp_entry);
    uint64_t pos = 0;
    for (int64_t i = 0; i < n_ents; i++) {
        if (ents[i].begin != pos) {
            char nb[96];
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: tensor '%s': data_offsets begin %" PRIu64
                          " %s (previous tensor ends at %" PRIu64 ")",
                          name, show(nb, ents[i].node->string), ents[i].begin,
                          ents[i].begin < pos ? "overlaps the previous tensor" : "leaves a gap", pos);
            goto done;
        }
        pos = ents[i].end;
    }
    if (pos != data_size) {
        s = WERK_FAIL(err, WERK_E_FORMAT,
                      "%s: tensor data ends at byte %" PRIu64 " of the data section but the file has %" PRIu64
                      " data bytes (truncated or trailing bytes)",
                      name, pos, data_size);
        goto done;
    }
    // Valid file; now what werk cannot use.
    for (int64_t i = 0; i < n_ents; i++) {
        char nb[96];
        if (ents[i].dt->type < 0) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': dtype %s is not supported", name,
                          show(nb, ents[i].node->string), ents[i].dt->name);
            goto done;
        }
        if (ents[i].n_dims > WERK_MAX_DIMS) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': %d dimensions (werk supports up to %d)",
                          name, show(nb, ents[i].node->string), ents[i].n_dims, WERK_MAX_DIMS);
            goto done;
        }
    }
    if (meta && cJSON_IsObject(meta)) {
        for (const cJSON *m = meta->child; m; m = m->next) {
            s = add_meta(st, m->string, m->valuestring, name, err);
            if (s) {
                goto done;
            }
        }
    }
    if (!grow((void **)&st->tensors, &st->cap_tensors, st->n_tensors + n_ents, sizeof(*st->tensors))) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
        goto done;
    }
    int32_t *so = realloc(st->shard_of, (size_t)(st->cap_tensors ? st->cap_tensors : 1) * sizeof(*so));
    if (!so) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
        goto done;
    }
    st->shard_of             = so;
    const uint8_t *data_base = data + 8 + n;
    for (int64_t i = 0; i < n_ents; i++) {
        werk_st_tensor *t = &st->tensors[st->n_tensors];
        memset(t, 0, sizeof(*t));
        t->name = werk_arena_strdup(&st->arena, ents[i].node->string);
        if (!t->name) {
            s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
            goto done;
        }
        t->type   = (werk_dtype)ents[i].dt->type;
        t->n_dims = ents[i].n_dims;
        for (int d = 0; d < WERK_MAX_DIMS; d++) {
            t->shape[d] = d < t->n_dims ? ents[i].shape[d] : 1;
        }
        t->data                     = data_base + ents[i].begin;
        t->nbytes                   = ents[i].end - ents[i].begin;
        st->shard_of[st->n_tensors] = shard;
        st->n_tensors++;
    }
done:
    free(ents);
    cJSON_Delete(root);
    return s;
}

typedef struct name_idx {
    const char *name;
    int64_t     idx;
} name_idx;

static int cmp_name_idx(const void *a, const void *b) {
    const name_idx *x = a, *y = b;
    int             c = strcmp(x->name, y->name);
    return c ? c : (x->idx < y->idx ? -1 : (x->idx > y->idx));
}

/* Fills st->by_name. Names within one file are unique (the JSON parser rejects duplicate
 * keys); a name in two shards is returned as the pair *dup_a, *dup_b (-1 if none). */
static werk_status build_index(werk_st *st, int64_t *dup_a, int64_t *dup_b, werk_err *err) {
    *dup_a = *dup_b = -1;
    size_t    n     = (size_t)(st->n_tensors ? st->n_tensors : 1);
    name_idx *tmp   = malloc(n * sizeof(*tmp));
    free(st->by_name);
    st->by_name = malloc(n * sizeof(int64_t));
    if (!tmp || !st->by_name) {
        free(tmp);
        return WERK_FAIL(err, WERK_E_OOM, "out of memory indexing %" PRId64 " tensors", st->n_tensors);
    }
    for (int64_t i = 0; i < st->n_tensors; i++) {
        tmp[i].name = st->tensors[i].name;
        tmp[i].idx  = i;
    }
    qsort(tmp, (size_t)st->n_tensors, sizeof(*tmp), cmp_name_idx);
    for (int64_t i = 0; i < st->n_tensors; i++) {
        st->by_name[i] = tmp[i].idx;
        if (i > 0 && *dup_a < 0 && strcmp(tmp[i - 1].name, tmp[i].name) == 0) {
            *dup_a = tmp[i - 1].idx;
            *dup_b = tmp[i].idx;
        }
    }
    free(tmp);
    return WERK_OK;
}

// ---- reading ------------------------------------------------------------------------------

/* Maps path, keeps the mapping in st and appends its tensors. */
static werk_status read_file_into(werk_st *st, const char *path, int32_t shard, werk_err *err) {
    if (st->n_maps == st->cap_maps) {
        int        cap  = st->cap_maps ? st->cap_maps * 2 : 4;
        werk_mmap *maps = realloc(st->maps, (size_t)cap * sizeof(*maps));
        if (!maps) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        }
        st->maps     = maps;
        st->cap_maps = cap;
    }
    werk_mmap  *m = &st->maps[st->n_maps];
    werk_status s = werk_mmap_open(m, path, err);
    if (s) {
        return s;
    }
    st->n_maps++;
    return parse_file(st, m->data, m->size, path, shard, err);
}

static werk_status finish(werk_st *st, const char *name, werk_st **out, werk_err *err) {
    int64_t     a, b;
    werk_status s = build_index(st, &a, &b, err);
    if (s == WERK_OK && a >= 0) {
        char nb[96];
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: duplicate tensor name '%s'", name,
                      show(nb, st->tensors[a].name));
    }
    if (s) {
        werk_st_free(st);
        return s;
    }
    *out = st;
    return WERK_OK;
}

werk_status werk_st_read(const char *path, werk_st **out, werk_err *err) {
    *out        = NULL;
    werk_st *st = st_new();
    if (!st) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    werk_status s = read_file_into(st, path, 0, err);
    if (s) {
        werk_st_free(st);
        return s;
    }
    return finish(st, path, out, err);
}

werk_status werk_st_read_mem(const void *data, size_t size, const char *name, werk_st **out, werk_err *err) {
    *out = NULL;
    if (!name) {
        name = "<memory>";
    }
    werk_st *st = st_new();
    if (!st) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
    }
    werk_status s = parse_file(st, data, size, name, 0, err);
    if (s) {
        werk_st_free(st);
        return s;
    }
    return finish(st, name, out, err);
}

/* A shard name from an index: a relative path without ".." components. */
static bool shard_name_ok(const char *s) {
    if (!*s || s[0] == '/' || strlen(s) > 1024) {
        return false;
    }
    for (const char *p = s; *p;) {
        const char *q   = strchr(p, '/');
        size_t      len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            return false;
        }
        if (!q) {
            break;
        }
        p = q + 1;
    }
    return true;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

typedef struct wm_entry {
    const char *name;
    const char *shard;
    int32_t     shard_idx;
    bool        matched;
} wm_entry;

static int cmp_wm(const void *a, const void *b) {
    return strcmp(((const wm_entry *)a)->name, ((const wm_entry *)b)->name);
}

static werk_status read_index(const char *index_path, werk_st **out, werk_err *err) {
    *out             = NULL;
    cJSON       *j   = NULL;
    wm_entry    *wm  = NULL;
    const char **sh  = NULL;
    char        *dir = NULL;
    werk_st     *st  = NULL;
    werk_status  s   = werk_json_read_file(index_path, ST_MAX_INDEX, &j, err);
    if (s) {
        return s;
    }
    const cJSON *map = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: no \"weight_map\" object in the index", index_path);
        goto done;
    }
    int64_t n = cJSON_GetArraySize(map);
    if (n == 0) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: the index's weight_map lists no tensors", index_path);
        goto done;
    }
    wm = calloc((size_t)n, sizeof(*wm));
    sh = calloc((size_t)n, sizeof(*sh));
    if (!wm || !sh) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", index_path);
        goto done;
    }
    int64_t k = 0;
    for (const cJSON *c = map->child; c; c = c->next, k++) {
        char nb[96];
        if (!cJSON_IsString(c) || !shard_name_ok(c->valuestring)) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: weight_map entry '%s' is not a relative shard file name",
                          index_path, show(nb, c->string));
            goto done;
        }
        wm[k].name  = c->string;
        wm[k].shard = c->valuestring;
        sh[k]       = c->valuestring;
    }
    // The distinct shards, sorted by name; each is opened once.
    qsort(sh, (size_t)n, sizeof(*sh), cmp_str);
    int64_t n_sh = 0;
    for (int64_t i = 0; i < n; i++) {
        if (n_sh == 0 || strcmp(sh[n_sh - 1], sh[i]) != 0) {
            sh[n_sh++] = sh[i];
        }
    }
    for (int64_t i = 0; i < n; i++) {
        const char **p  = bsearch(&wm[i].shard, sh, (size_t)n_sh, sizeof(*sh), cmp_str);
        wm[i].shard_idx = (int32_t)(p - sh);
    }
    qsort(wm, (size_t)n, sizeof(*wm), cmp_wm);

    const char *slash = strrchr(index_path, '/');
    size_t      dlen  = slash ? (size_t)(slash - index_path) : 1;
    dir               = slash ? strndup(index_path, dlen ? dlen : 1) : strdup(".");
    st                = st_new();
    if (!dir || !st) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", index_path);
        goto done;
    }
    for (int64_t i = 0; i < n_sh; i++) {
        size_t plen = strlen(dir) + strlen(sh[i]) + 2;
        char  *p    = malloc(plen);
        if (!p) {
            s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", index_path);
            goto done;
        }
        snprintf(p, plen, "%s/%s", dir, sh[i]);
        s = read_file_into(st, p, (int32_t)i, err);
        free(p);
        if (s) {
            goto done;
        }
    }
    int64_t a, b;
    s = build_index(st, &a, &b, err);
    if (s) {
        goto done;
    }
    if (a >= 0) {
        char nb[96];
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' is in two shards: %s and %s", index_path,
                      show(nb, st->tensors[a].name), sh[st->shard_of[a]], sh[st->shard_of[b]]);
        goto done;
    }
    for (int64_t i = 0; i < st->n_tensors; i++) {
        char      nb[96];
        wm_entry  key = {st->tensors[i].name, NULL, 0, false};
        wm_entry *e   = bsearch(&key, wm, (size_t)n, sizeof(*wm), cmp_wm);
        if (!e) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' in shard %s is not listed in the index",
                          index_path, show(nb, st->tensors[i].name), sh[st->shard_of[i]]);
            goto done;
        }
        if (e->shard_idx != st->shard_of[i]) {
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: the index lists tensor '%s' in shard %s but it is in shard %s", index_path,
                          show(nb, e->name), e->shard, sh[st->shard_of[i]]);
            goto done;
        }
        e->matched = true;
    }
    for (int64_t i = 0; i < n; i++) {
        if (!wm[i].matched) {
            char nb[96];
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' listed in the index is missing from shard %s",
                          index_path, show(nb, wm[i].name), wm[i].shard);
            goto done;
        }
    }
    *out = st;
    st   = NULL;
done:
    werk_st_free(st);
    free(dir);
    free(sh);
    free(wm);
    cJSON_Delete(j);
    return s;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Picks the checkpoint in a folder: model.safetensors.index.json, model.safetensors, the
 * only *.safetensors.index.json, or the only *.safetensors. *out is malloc'd. */
static werk_status pick_in_dir(const char *dir, char **out, bool *is_index, werk_err *err) {
    *out   = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open folder", dir);
    }
    char          *idx = NULL, *one = NULL;
    int            n_idx = 0, n_one = 0;
    bool           std_idx = false, std_one = false;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *nm = e->d_name;
        if (nm[0] == '.') {
            continue;
        }
        if (has_suffix(nm, ".safetensors.index.json")) {
            if (!std_idx) {
                free(idx);
                idx = strdup(nm);
            }
            std_idx |= strcmp(nm, ST_INDEX_NAME) == 0;
            n_idx++;
        } else if (has_suffix(nm, ".safetensors")) {
            if (!std_one) {
                free(one);
                one = strdup(nm);
            }
            std_one |= strcmp(nm, "model.safetensors") == 0;
            n_one++;
        }
    }
    closedir(d);
    const char *pick = NULL;
    werk_status s    = WERK_OK;
    if (std_idx || n_idx == 1) {
        pick      = idx;
        *is_index = true;
    } else if (n_idx > 1) {
        s = WERK_FAIL(err, WERK_E_ARG, "%s: %d safetensors index files; name the one to read", dir, n_idx);
    } else if (std_one || n_one == 1) {
        pick      = one;
        *is_index = false;
    } else if (n_one > 1) {
        s = WERK_FAIL(err, WERK_E_ARG, "%s: %d .safetensors files and no index; name the one to read", dir,
                      n_one);
    } else {
        s = WERK_FAIL(err, WERK_E_IO, "%s: no .safetensors file or index in this folder", dir);
    }
    if (s == WERK_OK) {
        size_t n = strlen(dir) + strlen(pick ? pick : "") + 2;
        *out     = pick ? malloc(n) : NULL;
        if (!*out) {
            s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", dir);
        } else {
            snprintf(*out, n, "%s/%s", dir, pick);
        }
    }
    free(idx);
    free(one);
    return s;
}

werk_status werk_st_read_any(const char *path, werk_st **out, werk_err *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        return WERK_FAIL(err, WERK_E_IO, "%s: no such file or folder", path);
    }
    if (S_ISDIR(sb.st_mode)) {
        char       *file     = NULL;
        bool        is_index = false;
        werk_status s        = pick_in_dir(path, &file, &is_index, err);
        if (s) {
            return s;
        }
        s = is_index ? read_index(file, out, err) : werk_st_read(file, out, err);
        free(file);
        return s;
    }
    if (has_suffix(path, ".json")) {
        return read_index(path, out, err);
    }
    return werk_st_read(path, out, err);
}

// ---- queries ------------------------------------------------------------------------------

int64_t werk_st_n_tensors(const werk_st *st) { return st ? st->n_tensors : 0; }

const werk_st_tensor *werk_st_tensor_at(const werk_st *st, int64_t i) {
    if (!st || i < 0 || i >= st->n_tensors) {
        return NULL;
    }
    return &st->tensors[i];
}

int64_t werk_st_find(const werk_st *st, const char *name) {
    if (!st || !name || !st->by_name) {
        return -1;
    }
    int64_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int     c   = strcmp(st->tensors[st->by_name[mid]].name, name);
        if (c == 0) {
            return st->by_name[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}

const char *werk_st_metadata(const werk_st *st, const char *key) {
    if (!st || !key) {
        return NULL;
    }
    for (int64_t i = 0; i < st->n_meta; i++) {
        if (strcmp(st->meta[i].key, key) == 0) {
            return st->meta[i].val;
        }
    }
    return NULL;
}

// ---- writing ------------------------------------------------------------------------------

/* A growing string; `oom` sticks once an allocation failed. */

static void sb_u64(werk_strbuf *b, uint64_t v) {
    char t[24];
    snprintf(t, sizeof(t), "%" PRIu64, v);
    werk_strbuf_puts(b, t);
}

/* s as a JSON string literal (UTF-8 passed through; validity is checked by re-parsing). */
static void sb_json_str(werk_strbuf *b, const char *s) {
    werk_strbuf_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char)*p};
            werk_strbuf_put(b, e, 2);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof(e), "\\u%04x", *p);
            werk_strbuf_puts(b, e);
        } else {
            werk_strbuf_put(b, (const char *)p, 1);
        }
    }
    werk_strbuf_put(b, "\"", 1);
}

/* What werk_st_write does for one tensor. */
typedef struct st_plan {
    uint64_t numel;
    uint64_t out_bytes;
    uint64_t src_row_bytes;
    uint64_t out_row_bytes;
    int64_t  row_len;
    int64_t  n_rows;
    bool     rows;      // row by row (row_map, add or a type change) rather than one copy
    bool     via_float; // rows go through float (type change or add)
} st_plan;

static werk_status
plan_tensor(const werk_gguf_tensor *t, int64_t i, const char *path, st_plan *p, werk_err *err) {
    memset(p, 0, sizeof(*p));
    if (!t || !t->name) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor %" PRId64 " has no name", path, i);
    }
    char        nb[96];
    const char *tn = show(nb, t->name);
    if (strcmp(t->name, "__metadata__") == 0) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: a tensor cannot be named __metadata__", path);
    }
    if (t->n_dims < 0 || t->n_dims > WERK_MAX_DIMS) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': %d dimensions", path, tn, t->n_dims);
    }
    p->numel = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->shape[d] < 0 || !werk_mul_u64(p->numel, (uint64_t)t->shape[d], &p->numel)) {
            return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': bad shape", path, tn);
        }
    }
    if (p->numel > (uint64_t)INT64_MAX) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': too many elements", path, tn);
    }
    if ((unsigned)t->type >= WERK_DTYPE_COUNT || !dtype_st_name(t->type)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': type %s cannot be stored in safetensors",
                         path, tn, (unsigned)t->type < WERK_DTYPE_COUNT ? werk_dtype_name(t->type) : "?");
    }
    if ((unsigned)t->src_type >= WERK_DTYPE_COUNT) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': bad source type", path, tn);
    }
    p->row_len   = t->n_dims ? t->shape[t->n_dims - 1] : 1;
    p->n_rows    = p->row_len ? (int64_t)(p->numel / (uint64_t)p->row_len) : 0;
    p->via_float = t->src_type != t->type || t->add != 0.0f;
    p->rows      = p->via_float || t->row_map;
    werk_status s;
    if ((s = werk_dtype_bytes(t->type, p->numel, &p->out_bytes, err)) ||
        (s = werk_dtype_bytes(t->type, (uint64_t)p->row_len, &p->out_row_bytes, err)) ||
        (s = werk_dtype_bytes(t->src_type, (uint64_t)p->row_len, &p->src_row_bytes, err))) {
        werk_err_prefix(err, "%s: tensor '%s'", path, tn);
        return s;
    }
    if (p->via_float && (!werk_dtype_can_dequantize(t->src_type) || !werk_dtype_can_quantize(t->type))) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot convert %s to %s", path, tn,
                         werk_dtype_name(t->src_type), werk_dtype_name(t->type));
    }
    if (p->numel > 0 && !t->data) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': no data", path, tn);
    }
    return WERK_OK;
}

/* The header: {"__metadata__":{...},"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]},...}
 * padded with spaces to a multiple of 8, checked by parsing it back. */
static werk_status build_header(werk_strbuf                          *h,
                                const char                    *path,
                                const werk_gguf_tensor *const *tensors,
                                const st_plan                 *plans,
                                int64_t                        n_tensors,
                                const char *const             *meta_keys,
                                const char *const             *meta_vals,
                                int64_t                        n_meta,
                                werk_err                      *err) {
    werk_strbuf_puts(h, "{");
    if (n_meta > 0) {
        werk_strbuf_puts(h, "\"__metadata__\":{");
        for (int64_t i = 0; i < n_meta; i++) {
            if (i) {
                werk_strbuf_puts(h, ",");
            }
            sb_json_str(h, meta_keys[i]);
            werk_strbuf_puts(h, ":");
            sb_json_str(h, meta_vals[i]);
        }
        werk_strbuf_puts(h, "}");
    }
    uint64_t off = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const werk_gguf_tensor *t = tensors[i];
        if (i || n_meta > 0) {
            werk_strbuf_puts(h, ",");
        }
        sb_json_str(h, t->name);
        werk_strbuf_puts(h, ":{\"dtype\":\"");
        werk_strbuf_puts(h, dtype_st_name(t->type));
        werk_strbuf_puts(h, "\",\"shape\":[");
        for (int d = 0; d < t->n_dims; d++) {
            if (d) {
                werk_strbuf_puts(h, ",");
            }
            sb_u64(h, (uint64_t)t->shape[d]);
        }
        werk_strbuf_puts(h, "],\"data_offsets\":[");
        sb_u64(h, off);
        werk_strbuf_puts(h, ",");
        if (!werk_add_u64(off, plans[i].out_bytes, &off)) {
            return WERK_FAIL(err, WERK_E_ARG, "%s: total tensor size overflows", path);
        }
        sb_u64(h, off);
        werk_strbuf_puts(h, "]}");
    }
    werk_strbuf_puts(h, "}");
    while (!h->oom && h->n % 8 != 0) {
        werk_strbuf_puts(h, " ");
    }
    if (h->oom) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory building the header", path);
    }
    if (h->n > ST_MAX_HEADER) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: header of %zu bytes exceeds the 100 MB limit", path, h->n);
    }
    // Parse it back: catches names that are not UTF-8 and duplicate names or keys.
    cJSON *j = NULL;
    char   what[1200];
    snprintf(what, sizeof(what), "%s: header to write", path);
    werk_status s = werk_json_parse(h->p, h->n, 3, what, &j, err);
    cJSON_Delete(j);
    if (s == WERK_E_FORMAT) {
        s = WERK_E_ARG;
        if (err) {
            err->code = s;
        }
    }
    return s;
}

static werk_status
write_tensor(werk_afile *af, const char *path, const werk_gguf_tensor *t, const st_plan *p, werk_err *err) {
    if (!p->rows) {
        return werk_afile_write(af, t->data, (size_t)p->out_bytes, err);
    }
    float      *f = p->via_float ? malloc((size_t)(p->row_len ? p->row_len : 1) * sizeof(float)) : NULL;
    uint8_t    *o = p->via_float ? malloc(p->out_row_bytes ? (size_t)p->out_row_bytes : 1) : NULL;
    werk_status s = WERK_OK;
    if (p->via_float && (!f || !o)) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory converting tensor '%s'", path, t->name);
    }
    const uint8_t *src = t->data;
    for (int64_t r = 0; s == WERK_OK && r < p->n_rows; r++) {
        int64_t sr = t->row_map ? t->row_map[r] : r;
        if (sr < 0 || sr >= p->n_rows) {
            char nb[96];
            s = WERK_FAIL(err, WERK_E_ARG,
                          "%s: tensor '%s': row_map[%" PRId64 "] = %" PRId64 " is out of range", path,
                          show(nb, t->name), r, sr);
            break;
        }
        const uint8_t *row = src + (uint64_t)sr * p->src_row_bytes;
        if (!p->via_float) {
            s = werk_afile_write(af, row, (size_t)p->src_row_bytes, err);
            continue;
        }
        werk_dequantize_row(t->src_type, row, f, p->row_len);
        if (t->add != 0.0f) {
            for (int64_t k = 0; k < p->row_len; k++) {
                f[k] += t->add;
            }
        }
        werk_quantize_row(t->type, f, o, p->row_len);
        s = werk_afile_write(af, o, (size_t)p->out_row_bytes, err);
    }
    free(f);
    free(o);
    return s;
}

static bool has_duplicate(const char **names, int64_t n, const char **dup) {
    qsort(names, (size_t)n, sizeof(*names), cmp_str);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(names[i - 1], names[i]) == 0) {
            *dup = names[i];
            return true;
        }
    }
    return false;
}

werk_status werk_st_write(const char                    *path,
                          const werk_gguf_tensor *const *tensors,
                          int64_t                        n_tensors,
                          const char *const             *meta_keys,
                          const char *const             *meta_vals,
                          int64_t                        n_meta,
                          werk_err                      *err) {
    if (n_tensors < 0 || n_meta < 0 || (n_tensors && !tensors) || (n_meta && (!meta_keys || !meta_vals))) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: bad tensor or metadata list", path);
    }
    size_t       nt    = (size_t)(n_tensors ? n_tensors : 1);
    size_t       nm    = (size_t)(n_meta ? n_meta : 1);
    st_plan     *plans = calloc(nt, sizeof(*plans));
    const char **names = calloc(nt > nm ? nt : nm, sizeof(*names));
    werk_strbuf         h     = {0};
    werk_afile   af    = {0};
    werk_status  s     = WERK_OK;
    const char  *dup   = NULL;
    char         nb[96];
    if (!plans || !names) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        goto done;
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        if ((s = plan_tensor(tensors[i], i, path, &plans[i], err))) {
            goto done;
        }
        names[i] = tensors[i]->name;
    }
    if (has_duplicate(names, n_tensors, &dup)) {
        s = WERK_FAIL(err, WERK_E_ARG, "%s: duplicate tensor name '%s'", path, show(nb, dup));
        goto done;
    }
    for (int64_t i = 0; i < n_meta; i++) {
        if (!meta_keys[i] || !meta_vals[i]) {
            s = WERK_FAIL(err, WERK_E_ARG, "%s: metadata entry %" PRId64 " is NULL", path, i);
            goto done;
        }
        names[i] = meta_keys[i];
    }
    if (has_duplicate(names, n_meta, &dup)) {
        s = WERK_FAIL(err, WERK_E_ARG, "%s: duplicate metadata key '%s'", path, show(nb, dup));
        goto done;
    }
    if ((s = build_header(&h, path, tensors, plans, n_tensors, meta_keys, meta_vals, n_meta, err))) {
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) {
        len8[i] = (uint8_t)((uint64_t)h.n >> (8 * i));
    }
    if ((s = werk_afile_open(&af, path, err)) || (s = werk_afile_write(&af, len8, 8, err)) ||
        (s = werk_afile_write(&af, h.p, h.n, err))) {
        goto done;
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        if (werk_interrupted()) {
            s = WERK_FAIL(err, WERK_E_INTERRUPTED, "%s: interrupted", path);
            goto done;
        }
        if ((s = write_tensor(&af, path, tensors[i], &plans[i], err))) {
            goto done;
        }
    }
    s = werk_afile_commit(&af, err);
done:
    werk_afile_abort(&af);
    free(h.p);
    free(names);
    free(plans);
    return s;
}

typedef struct wi_pair {
    const char *name;
    const char *shard;
} wi_pair;

static int cmp_wi(const void *a, const void *b) {
    return strcmp(((const wi_pair *)a)->name, ((const wi_pair *)b)->name);
}

werk_status werk_st_write_index(const char        *path,
                                const char *const *tensor_names,
                                const char *const *shard_names,
                                int64_t            n,
                                uint64_t           total_size,
                                werk_err          *err) {
    if (n < 0 || (n && (!tensor_names || !shard_names))) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: bad tensor list", path);
    }
    wi_pair    *pairs = calloc((size_t)(n ? n : 1), sizeof(*pairs));
    werk_strbuf        h     = {0};
    werk_status s     = WERK_OK;
    if (!pairs) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < n; i++) {
        if (!tensor_names[i] || !shard_names[i] || !shard_name_ok(shard_names[i])) {
            s = WERK_FAIL(err, WERK_E_ARG, "%s: entry %" PRId64 " has no tensor name or a bad shard name",
                          path, i);
            goto done;
        }
        pairs[i].name  = tensor_names[i];
        pairs[i].shard = shard_names[i];
    }
    // transformers writes json.dumps(index, indent=2, sort_keys=True) + "\n".
    qsort(pairs, (size_t)n, sizeof(*pairs), cmp_wi);
    for (int64_t i = 1; i < n; i++) {
        if (strcmp(pairs[i - 1].name, pairs[i].name) == 0) {
            char nb[96];
            s = WERK_FAIL(err, WERK_E_ARG, "%s: duplicate tensor name '%s'", path, show(nb, pairs[i].name));
            goto done;
        }
    }
    werk_strbuf_puts(&h, "{\n  \"metadata\": {\n    \"total_size\": ");
    sb_u64(&h, total_size);
    werk_strbuf_puts(&h, n ? "\n  },\n  \"weight_map\": {\n" : "\n  },\n  \"weight_map\": {}\n}\n");
    for (int64_t i = 0; i < n; i++) {
        werk_strbuf_puts(&h, "    ");
        sb_json_str(&h, pairs[i].name);
        werk_strbuf_puts(&h, ": ");
        sb_json_str(&h, pairs[i].shard);
        werk_strbuf_puts(&h, i + 1 < n ? ",\n" : "\n  }\n}\n");
    }
    if (h.oom) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        goto done;
    }
    cJSON *j = NULL;
    if ((s = werk_json_parse(h.p, h.n, 4, path, &j, err))) {
        s = WERK_FAIL(err, WERK_E_ARG, "%s: cannot write this index: a name is not UTF-8", path);
        goto done;
    }
    cJSON_Delete(j);
    s = werk_write_file_atomic(path, h.p, h.n, err);
done:
    free(h.p);
    free(pairs);
    return s;
}
