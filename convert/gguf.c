/* convert/gguf.c - the in-memory model description `werk_gguf`: key/values and tensors
 *
 * A werk_gguf owns one arena (keys, values, tensor names and shapes, everything a
 * setter copies), two pointer tables (kvs and tensors, in insertion order) with an
 * open-addressing hash index each (FNV-1a over the name; a Gemma vocab file has ~40 keys
 * but a large MoE model has thousands of tensors), and the mappings / malloc'd buffers
 * that tensor data points into (werk_gguf_hold_*).
 *
 * Invariants: keys and tensor names are unique and contain no NUL; every value reachable
 * from a kv lives in the arena (strings NUL-terminated, bool arrays hold only 0/1); every
 * tensor has 1..4 dims, each > 0, a product that fits int64, an innermost dimension that
 * is a multiple of its type's block size, and nbytes == werk_dtype_bytes(src_type, n).
 * Pointers returned by werk_gguf_kv_at / werk_gguf_tensor_at stay valid until the entry is
 * removed or g is freed (entries are allocated once; the tables hold pointers). Replacing
 * a kv's value keeps its position and its werk_gguf_kv address.
 */
#include "convert/gguf_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

// ---- the struct -------------------------------------------------------------------------

/* Open-addressing index: slot holds item index + 1, 0 = empty. cap is 0 or a power of 2. */
typedef struct name_index {
    int64_t *slots;
    uint64_t cap;
} name_index;

struct werk_gguf {
    werk_arena  arena;
    const char *path; // arena copy; "" when built in memory
    uint32_t    version;

    werk_gguf_kv **kvs;
    int64_t        n_kv, cap_kv;
    name_index     kv_index;

    werk_gguf_tensor **tensors;
    int64_t            n_tensors, cap_tensors;
    name_index         tensor_index;

    werk_mmap *mmaps;
    int        n_mmaps, cap_mmaps;
    void     **bufs;
    int        n_bufs, cap_bufs;
};

static const char *gname(const werk_gguf *g) { return g->path[0] ? g->path : "(in memory)"; }

/* Makes room for one more element in arr (n used of *cap, elements of elem bytes),
 * doubling from first_cap. Returns the (possibly moved) array, or NULL on OOM, in which
 * case arr is untouched and still owned by the caller. */
static void *grow_array(void *arr, int64_t *cap, int64_t n, int64_t first_cap, size_t elem) {
    if (n < *cap) {
        return arr;
    }
    int64_t new_cap = *cap ? 2 * *cap : first_cap;
    void   *p       = realloc(arr, (size_t)new_cap * elem);
    if (p) {
        *cap = new_cap;
    }
    return p;
}

// ---- value types ----------------------------------------------------------------------------

size_t werk_gguf_type_size(werk_gguf_type t) {
    switch (t) {
    case WERK_GGUF_UINT8:
    case WERK_GGUF_INT8:
    case WERK_GGUF_BOOL:
        return 1;
    case WERK_GGUF_UINT16:
    case WERK_GGUF_INT16:
        return 2;
    case WERK_GGUF_UINT32:
    case WERK_GGUF_INT32:
    case WERK_GGUF_FLOAT32:
        return 4;
    case WERK_GGUF_UINT64:
    case WERK_GGUF_INT64:
    case WERK_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

const char *werk_gguf_type_name(werk_gguf_type t) {
    // clang-format off
    static const char *const names[WERK_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
    };
    // clang-format on
    return (unsigned)t < WERK_GGUF_TYPE_COUNT ? names[t] : "?";
}

// ---- name index ---------------------------------------------------------------------------

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (uint8_t)*s;
        h *= 1099511628211ull;
    }
    return h;
}

typedef const char *(*name_at_fn)(const werk_gguf *g, int64_t i);

static const char *kv_name_at(const werk_gguf *g, int64_t i) { return g->kvs[i]->key; }
static const char *tensor_name_at(const werk_gguf *g, int64_t i) { return g->tensors[i]->name; }

static int64_t index_find(const werk_gguf *g, const name_index *ix, name_at_fn name_at, const char *name) {
    if (!ix->cap) {
        return -1;
    }
    uint64_t mask = ix->cap - 1;
    for (uint64_t h = hash_name(name) & mask;; h = (h + 1) & mask) {
        int64_t s = ix->slots[h];
        if (s == 0) {
            return -1;
        }
        if (strcmp(name_at(g, s - 1), name) == 0) {
            return s - 1;
        }
    }
}

static void index_put(name_index *ix, const char *name, int64_t i) {
    uint64_t mask = ix->cap - 1;
    uint64_t h    = hash_name(name) & mask;
    while (ix->slots[h] != 0) {
        h = (h + 1) & mask;
    }
    ix->slots[h] = i + 1;
}

/* Rebuilds the index for n items with room for at least one more (load <= 1/2). */
static werk_status index_rebuild(const werk_gguf *g, name_index *ix, name_at_fn name_at, int64_t n) {
    uint64_t cap = ix->cap ? ix->cap : 64;
    while (cap / 2 < (uint64_t)n + 1) {
        cap *= 2;
    }
    if (cap != ix->cap) {
        int64_t *slots = werk_calloc(cap, sizeof(int64_t));
        if (!slots) {
            return WERK_E_OOM;
        }
        free(ix->slots);
        ix->slots = slots;
        ix->cap   = cap;
    } else {
        memset(ix->slots, 0, cap * sizeof(int64_t));
    }
    for (int64_t i = 0; i < n; i++) {
        index_put(ix, name_at(g, i), i);
    }
    return WERK_OK;
}

/* Makes room in the index for item n (the one about to be appended). */
static werk_status index_reserve(const werk_gguf *g, name_index *ix, name_at_fn name_at, int64_t n) {
    if (ix->cap && (uint64_t)n + 1 <= ix->cap / 2) {
        return WERK_OK;
    }
    return index_rebuild(g, ix, name_at, n);
}

// ---- init / free ----------------------------------------------------------------------------

werk_gguf *werk_gguf_init(void) {
    werk_gguf *g = calloc(1, sizeof(*g));
    if (!g) {
        return NULL;
    }
    werk_arena_init(&g->arena);
    g->path    = "";
    g->version = 3;
    return g;
}

void werk_gguf_free(werk_gguf *g) {
    if (!g) {
        return;
    }
    for (int i = 0; i < g->n_mmaps; i++) {
        werk_mmap_close(&g->mmaps[i]);
    }
    for (int i = 0; i < g->n_bufs; i++) {
        free(g->bufs[i]);
    }
    free(g->mmaps);
    free(g->bufs);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_index.slots);
    free(g->tensor_index.slots);
    werk_arena_free(&g->arena);
    free(g);
}

werk_status werk_gguf_set_origin(werk_gguf *g, const char *path, uint32_t version, werk_err *err) {
    char *p = werk_arena_strdup(&g->arena, path ? path : "");
    if (!p) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path ? path : "");
    }
    g->path    = p;
    g->version = version;
    return WERK_OK;
}

uint32_t werk_gguf_version(const werk_gguf *g) { return g->version; }

const char *werk_gguf_path(const werk_gguf *g) { return g->path; }

uint64_t werk_gguf_alignment(const werk_gguf *g) {
    const werk_gguf_value *v = werk_gguf_get(g, "general.alignment");
    if (v && v->type == WERK_GGUF_UINT32 && v->u32 != 0 && (v->u32 & (v->u32 - 1)) == 0 &&
        v->u32 <= WERK_GGUF_MAX_ALIGNMENT) {
        return v->u32;
    }
    return WERK_GGUF_DEFAULT_ALIGNMENT;
}

// ---- memory held by g ---------------------------------------------------------------------

void *werk_gguf_alloc(werk_gguf *g, size_t n, werk_err *err) {
    void *p = werk_arena_alloc(&g->arena, n ? n : 1);
    if (!p) {
        WERK_FAIL(err, WERK_E_OOM, "%s: out of memory allocating %zu bytes", gname(g), n);
    }
    return p;
}

werk_status werk_gguf_hold_mmap(werk_gguf *g, werk_mmap *m, werk_err *err) {
    if (g->n_mmaps == g->cap_mmaps) {
        int        cap = g->cap_mmaps ? 2 * g->cap_mmaps : 4;
        werk_mmap *p   = realloc(g->mmaps, (size_t)cap * sizeof(*p));
        if (!p) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
        }
        g->mmaps     = p;
        g->cap_mmaps = cap;
    }
    g->mmaps[g->n_mmaps++] = *m;
    memset(m, 0, sizeof(*m));
    return WERK_OK;
}

werk_status werk_gguf_hold_buffer(werk_gguf *g, void *buf, werk_err *err) {
    if (g->n_bufs == g->cap_bufs) {
        int    cap = g->cap_bufs ? 2 * g->cap_bufs : 4;
        void **p   = realloc(g->bufs, (size_t)cap * sizeof(*p));
        if (!p) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
        }
        g->bufs     = p;
        g->cap_bufs = cap;
    }
    g->bufs[g->n_bufs++] = buf;
    return WERK_OK;
}

// ---- key/values: queries ------------------------------------------------------------------

int64_t werk_gguf_n_kv(const werk_gguf *g) { return g->n_kv; }

const werk_gguf_kv *werk_gguf_kv_at(const werk_gguf *g, int64_t i) {
    WERK_ASSERT(i >= 0 && i < g->n_kv);
    return g->kvs[i];
}

int64_t werk_gguf_find_kv(const werk_gguf *g, const char *key) {
    return index_find(g, &g->kv_index, kv_name_at, key);
}

const werk_gguf_value *werk_gguf_get(const werk_gguf *g, const char *key) {
    int64_t i = werk_gguf_find_kv(g, key);
    return i < 0 ? NULL : &g->kvs[i]->value;
}

/* Looks key up for a typed getter: *v = NULL and *found = false when missing; a missing
 * key with found == NULL is an error (the caller required it). */
static werk_status
getter_lookup(const werk_gguf *g, const char *key, const werk_gguf_value **v, bool *found, werk_err *err) {
    *v = werk_gguf_get(g, key);
    if (found) {
        *found = *v != NULL;
    } else if (!*v) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key '%s'", gname(g), key);
    }
    return WERK_OK;
}

static werk_status
wrong_type(const werk_gguf *g, const char *key, const werk_gguf_value *v, const char *want, werk_err *err) {
    return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s' has type %s, expected %s", gname(g), key,
                     werk_gguf_type_name(v->type), want);
}

/* Integer value of v as a signed/unsigned pair; false if v is not an integer type. */
static bool value_as_int(const werk_gguf_value *v, bool *neg, uint64_t *mag) {
    int64_t s;
    switch (v->type) {
    case WERK_GGUF_UINT8:
        *neg = false, *mag = v->u8;
        return true;
    case WERK_GGUF_UINT16:
        *neg = false, *mag = v->u16;
        return true;
    case WERK_GGUF_UINT32:
        *neg = false, *mag = v->u32;
        return true;
    case WERK_GGUF_UINT64:
        *neg = false, *mag = v->u64;
        return true;
    case WERK_GGUF_INT8:
        s = v->i8;
        break;
    case WERK_GGUF_INT16:
        s = v->i16;
        break;
    case WERK_GGUF_INT32:
        s = v->i32;
        break;
    case WERK_GGUF_INT64:
        s = v->i64;
        break;
    default:
        return false;
    }
    *neg = s < 0;
    *mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
    return true;
}

werk_status
werk_gguf_get_u32(const werk_gguf *g, const char *key, uint32_t *out, bool *found, werk_err *err) {
    const werk_gguf_value *v;
    werk_status            s = getter_lookup(g, key, &v, found, err);
    if (s || !v) {
        return s;
    }
    bool     neg;
    uint64_t mag;
    if (!value_as_int(v, &neg, &mag)) {
        return wrong_type(g, key, v, "an integer", err);
    }
    if (neg || mag > UINT32_MAX) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s': value %s%" PRIu64 " does not fit in u32",
                         gname(g), key, neg ? "-" : "", mag);
    }
    *out = (uint32_t)mag;
    return WERK_OK;
}

werk_status werk_gguf_get_f32(const werk_gguf *g, const char *key, float *out, bool *found, werk_err *err) {
    const werk_gguf_value *v;
    werk_status            s = getter_lookup(g, key, &v, found, err);
    if (s || !v) {
        return s;
    }
    bool     neg;
    uint64_t mag;
    if (v->type == WERK_GGUF_FLOAT32) {
        *out = v->f32;
    } else if (v->type == WERK_GGUF_FLOAT64) {
        *out = (float)v->f64;
    } else if (value_as_int(v, &neg, &mag)) {
        *out = neg ? -(float)mag : (float)mag; // e.g. rope_freq_base written as an integer
    } else {
        return wrong_type(g, key, v, "a number", err);
    }
    return WERK_OK;
}

werk_status
werk_gguf_get_str(const werk_gguf *g, const char *key, const char **out, bool *found, werk_err *err) {
    const werk_gguf_value *v;
    werk_status            s = getter_lookup(g, key, &v, found, err);
    if (s || !v) {
        return s;
    }
    if (v->type != WERK_GGUF_STRING) {
        return wrong_type(g, key, v, "string", err);
    }
    *out = v->str.data;
    return WERK_OK;
}

werk_status werk_gguf_get_bool(const werk_gguf *g, const char *key, bool *out, bool *found, werk_err *err) {
    const werk_gguf_value *v;
    werk_status            s = getter_lookup(g, key, &v, found, err);
    if (s || !v) {
        return s;
    }
    if (v->type != WERK_GGUF_BOOL) {
        return wrong_type(g, key, v, "bool", err);
    }
    *out = v->b;
    return WERK_OK;
}

// ---- key/values: setters ------------------------------------------------------------------

static werk_status copy_value(werk_gguf             *g,
                              werk_gguf_value       *dst,
                              const werk_gguf_value *src,
                              int                    depth,
                              const char            *key,
                              werk_err              *err);

static werk_status
copy_str(werk_gguf *g, werk_gguf_str *dst, const werk_gguf_str *src, const char *key, werk_err *err) {
    if (src->len && !src->data) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: key '%s': string of %" PRIu64 " bytes without data", gname(g),
                         key, src->len);
    }
    if (src->len >= SIZE_MAX) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': string too long", gname(g), key);
    }
    char *p = werk_arena_strndup(&g->arena, src->len ? src->data : "", (size_t)src->len);
    if (!p) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': out of memory for a %" PRIu64 "-byte string",
                         gname(g), key, src->len);
    }
    dst->len  = src->len;
    dst->data = p;
    return WERK_OK;
}

static werk_status copy_array(werk_gguf             *g,
                              werk_gguf_value       *dst,
                              const werk_gguf_value *src,
                              int                    depth,
                              const char            *key,
                              werk_err              *err) {
    werk_gguf_type et = src->arr.elem_type;
    uint64_t       n  = src->arr.n;
    if ((unsigned)et >= WERK_GGUF_TYPE_COUNT) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: key '%s': bad array element type %d", gname(g), key, (int)et);
    }
    if (et == WERK_GGUF_ARRAY && depth + 1 >= WERK_GGUF_MAX_DEPTH) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: key '%s': arrays nested deeper than %d", gname(g), key,
                         WERK_GGUF_MAX_DEPTH);
    }
    size_t   esize = et == WERK_GGUF_STRING  ? sizeof(werk_gguf_str)
                     : et == WERK_GGUF_ARRAY ? sizeof(werk_gguf_value)
                                             : werk_gguf_type_size(et);
    uint64_t bytes;
    if (!werk_mul_u64(n, esize, &bytes) || bytes > SIZE_MAX - 16) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': array of %" PRIu64 " elements too large", gname(g),
                         key, n);
    }
    if (n && !src->arr.data) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: key '%s': array of %" PRIu64 " elements without data",
                         gname(g), key, n);
    }
    dst->type          = WERK_GGUF_ARRAY;
    dst->arr.elem_type = et;
    dst->arr.n         = n;
    dst->arr.data      = NULL;
    if (n == 0) {
        return WERK_OK;
    }
    uint8_t *p = werk_arena_alloc(&g->arena, (size_t)bytes);
    if (!p) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': out of memory for %" PRIu64 " array elements",
                         gname(g), key, n);
    }
    dst->arr.data = p;
    if (et == WERK_GGUF_STRING) {
        const werk_gguf_str *s = src->arr.data;
        werk_gguf_str       *d = (werk_gguf_str *)p;
        for (uint64_t i = 0; i < n; i++) {
            werk_status st = copy_str(g, &d[i], &s[i], key, err);
            if (st) {
                return st;
            }
        }
    } else if (et == WERK_GGUF_ARRAY) {
        const werk_gguf_value *s = src->arr.data;
        werk_gguf_value       *d = (werk_gguf_value *)p;
        for (uint64_t i = 0; i < n; i++) {
            if (s[i].type != WERK_GGUF_ARRAY) {
                return WERK_FAIL(err, WERK_E_ARG,
                                 "%s: key '%s': element %" PRIu64 " of a nested array is a %s", gname(g), key,
                                 i, werk_gguf_type_name(s[i].type));
            }
            werk_status st = copy_value(g, &d[i], &s[i], depth + 1, key, err);
            if (st) {
                return st;
            }
        }
    } else if (et == WERK_GGUF_BOOL) {
        const uint8_t *s = src->arr.data; // bools are normalised to 0/1 (any nonzero is true)
        for (uint64_t i = 0; i < n; i++) {
            p[i] = s[i] != 0;
        }
    } else {
        memcpy(p, src->arr.data, (size_t)bytes);
    }
    return WERK_OK;
}

static werk_status copy_value(werk_gguf             *g,
                              werk_gguf_value       *dst,
                              const werk_gguf_value *src,
                              int                    depth,
                              const char            *key,
                              werk_err              *err) {
    switch (src->type) {
    case WERK_GGUF_STRING:
        dst->type = WERK_GGUF_STRING;
        return copy_str(g, &dst->str, &src->str, key, err);
    case WERK_GGUF_ARRAY:
        return copy_array(g, dst, src, depth, key, err);
    case WERK_GGUF_BOOL:
        dst->type = WERK_GGUF_BOOL;
        dst->b    = src->b;
        return WERK_OK;
    default:
        if ((unsigned)src->type >= WERK_GGUF_TYPE_COUNT) {
            return WERK_FAIL(err, WERK_E_ARG, "%s: key '%s': bad value type %d", gname(g), key,
                             (int)src->type);
        }
        *dst = *src; // scalar
        return WERK_OK;
    }
}

werk_status werk_gguf_set(werk_gguf *g, const char *key, const werk_gguf_value *v, werk_err *err) {
    werk_gguf_value copy;
    memset(&copy, 0, sizeof(copy));
    werk_status s = copy_value(g, &copy, v, 0, key, err);
    if (s) {
        return s;
    }
    int64_t i = werk_gguf_find_kv(g, key);
    if (i >= 0) {
        g->kvs[i]->value = copy; // old value stays in the arena until g is freed
        return WERK_OK;
    }
    werk_gguf_kv **kvs = grow_array(g->kvs, &g->cap_kv, g->n_kv, 32, sizeof(*kvs));
    if (!kvs) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    g->kvs = kvs;
    if (index_reserve(g, &g->kv_index, kv_name_at, g->n_kv) != WERK_OK) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    werk_gguf_kv *kv = werk_arena_alloc(&g->arena, sizeof(*kv));
    char         *k  = werk_arena_strdup(&g->arena, key);
    if (!kv || !k) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    kv->key         = k;
    kv->value       = copy;
    g->kvs[g->n_kv] = kv;
    index_put(&g->kv_index, k, g->n_kv);
    g->n_kv++;
    return WERK_OK;
}

werk_status werk_gguf_set_u32(werk_gguf *g, const char *key, uint32_t v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_UINT32, .u32 = v};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_i32(werk_gguf *g, const char *key, int32_t v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_INT32, .i32 = v};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_u64(werk_gguf *g, const char *key, uint64_t v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_UINT64, .u64 = v};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_f32(werk_gguf *g, const char *key, float v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_FLOAT32, .f32 = v};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_bool(werk_gguf *g, const char *key, bool v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_BOOL, .b = v};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_str(werk_gguf *g, const char *key, const char *v, werk_err *err) {
    werk_gguf_value val = {.type = WERK_GGUF_STRING, .str = {.len = strlen(v), .data = v}};
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_arr(
    werk_gguf *g, const char *key, werk_gguf_type elem_type, const void *data, uint64_t n, werk_err *err) {
    werk_gguf_value val;
    memset(&val, 0, sizeof(val));
    val.type          = WERK_GGUF_ARRAY;
    val.arr.elem_type = elem_type;
    val.arr.n         = n;
    val.arr.data      = data;
    return werk_gguf_set(g, key, &val, err);
}

werk_status werk_gguf_set_arr_str(
    werk_gguf *g, const char *key, const char *const *strs, const uint64_t *lens, uint64_t n, werk_err *err) {
    werk_gguf_value val;
    memset(&val, 0, sizeof(val));
    val.type          = WERK_GGUF_ARRAY;
    val.arr.elem_type = WERK_GGUF_STRING;
    val.arr.n         = n;
    if (n == 0) {
        return werk_gguf_set(g, key, &val, err);
    }
    // Build the string table in the arena, then copy it once more into place: strings are
    // copied by werk_gguf_set; only this n-entry table is extra (freed with g).
    uint64_t bytes;
    if (!werk_mul_u64(n, sizeof(werk_gguf_str), &bytes) || bytes > SIZE_MAX - 16) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': too many strings", gname(g), key);
    }
    werk_gguf_str *tab = malloc((size_t)bytes);
    if (!tab) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: key '%s': out of memory", gname(g), key);
    }
    for (uint64_t i = 0; i < n; i++) {
        tab[i].data = strs[i];
        tab[i].len  = lens ? lens[i] : strlen(strs[i]);
    }
    val.arr.data  = tab;
    werk_status s = werk_gguf_set(g, key, &val, err);
    free(tab);
    return s;
}

void werk_gguf_remove(werk_gguf *g, const char *key) {
    int64_t i = werk_gguf_find_kv(g, key);
    if (i < 0) {
        return;
    }
    memmove(&g->kvs[i], &g->kvs[i + 1], (size_t)(g->n_kv - i - 1) * sizeof(g->kvs[0]));
    g->n_kv--;
    // Same capacity, so this cannot fail.
    werk_status s = index_rebuild(g, &g->kv_index, kv_name_at, g->n_kv);
    WERK_ASSERT(s == WERK_OK);
}

// ---- tensors ----------------------------------------------------------------------------

int64_t werk_gguf_tensor_nelements(const werk_gguf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) {
        n *= t->shape[i];
    }
    return n;
}

int64_t werk_gguf_tensor_nrows(const werk_gguf_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i + 1 < t->n_dims; i++) {
        n *= t->shape[i];
    }
    return n;
}

int64_t werk_gguf_n_tensors(const werk_gguf *g) { return g->n_tensors; }

const werk_gguf_tensor *werk_gguf_tensor_at(const werk_gguf *g, int64_t i) {
    WERK_ASSERT(i >= 0 && i < g->n_tensors);
    return g->tensors[i];
}

werk_gguf_tensor *werk_gguf_tensor_at_mut(werk_gguf *g, int64_t i) {
    WERK_ASSERT(i >= 0 && i < g->n_tensors);
    return g->tensors[i];
}

int64_t werk_gguf_find_tensor(const werk_gguf *g, const char *name) {
    return index_find(g, &g->tensor_index, tensor_name_at, name);
}

werk_status werk_gguf_add_tensor(werk_gguf     *g,
                                 const char    *name,
                                 werk_dtype     type,
                                 int            n_dims,
                                 const int64_t *shape,
                                 const void    *data,
                                 uint64_t       nbytes,
                                 int64_t       *index,
                                 werk_err      *err) {
    if ((unsigned)type >= WERK_DTYPE_COUNT) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor '%s': bad type %d", gname(g), name, (int)type);
    }
    if (n_dims < 1 || n_dims > WERK_MAX_DIMS) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': %d dimensions (1..%d allowed)", gname(g), name,
                         n_dims, WERK_MAX_DIMS);
    }
    uint64_t n = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] <= 0) {
            return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': dimension %d is %" PRId64, gname(g), name,
                             i, shape[i]);
        }
        if (!werk_mul_u64(n, (uint64_t)shape[i], &n) || n > INT64_MAX) {
            return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': element count overflows", gname(g), name);
        }
    }
    const werk_dtype_info *ti = werk_dtype_get(type);
    if (shape[n_dims - 1] % ti->block_size != 0) {
        return WERK_FAIL(err, WERK_E_SHAPE,
                         "%s: tensor '%s': row length %" PRId64
                         " is not a multiple of the %s block size %" PRId64,
                         gname(g), name, shape[n_dims - 1], ti->name, ti->block_size);
    }
    uint64_t    want;
    werk_status s = werk_dtype_bytes(type, n, &want, err);
    if (s) {
        werk_err_prefix(err, "%s: tensor '%s'", gname(g), name);
        return s;
    }
    if (want != nbytes) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': %" PRIu64 " bytes given, %s needs %" PRIu64,
                         gname(g), name, nbytes, ti->name, want);
    }
    if (werk_gguf_find_tensor(g, name) >= 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: duplicate tensor name '%s'", gname(g), name);
    }
    werk_gguf_tensor **ts = grow_array(g->tensors, &g->cap_tensors, g->n_tensors, 64, sizeof(*ts));
    if (!ts) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    g->tensors = ts;
    if (index_reserve(g, &g->tensor_index, tensor_name_at, g->n_tensors) != WERK_OK) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    werk_gguf_tensor *t  = werk_arena_alloc(&g->arena, sizeof(*t));
    char             *nm = werk_arena_strdup(&g->arena, name);
    if (!t || !nm) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gname(g));
    }
    t->name   = nm;
    t->n_dims = n_dims;
    for (int i = 0; i < WERK_MAX_DIMS; i++) {
        t->shape[i] = i < n_dims ? shape[i] : 1;
    }
    t->type                  = type;
    t->src_type              = type;
    t->data                  = data;
    t->nbytes                = nbytes;
    t->row_map               = NULL;
    t->add                   = 0.0f;
    t->imatrix               = NULL;
    t->offset                = 0;
    g->tensors[g->n_tensors] = t;
    index_put(&g->tensor_index, nm, g->n_tensors);
    if (index) {
        *index = g->n_tensors;
    }
    g->n_tensors++;
    return WERK_OK;
}
