/* convert/gguf_read.c - GGUF v2/v3 reader: validates a hostile file into a werk_gguf
 *
 * Layout (little-endian; "str" is a u64 byte count followed by that many bytes, no NUL):
 *
 *   OFFSET  SIZE      DESCRIPTION
 *   0       4         magic "GGUF"
 *   4       4         version (u32): 2 or 3 (1 used u32 counts and is refused; a big-endian
 *                     file shows up here as 0x0N000000 and is refused)
 *   8       8         n_tensors (u64)
 *   16      8         n_kv (u64)
 *   24      ...       n_kv key/values: key (str), value type (u32), value
 *                       scalar: 1/2/4/8 bytes; bool: 1 byte; string: str
 *                       array: element type (u32), count (u64), elements (an element of
 *                       an array of arrays is again type + count + elements)
 *   ...     ...       n_tensors tensor infos: name (str), n_dims (u32), ne[n_dims] (u64 each,
 *                     innermost first), ggml type (u32), offset (u64, from the data section)
 *   ...     ...       zero padding to `alignment` (general.alignment, u32, default 32)
 *   D       ...       data section: tensor bytes at D + offset, each offset aligned
 *
 * Every count, length and offset is checked against the bytes left before it is used or
 * anything is allocated (DESIGN.md "Inputs are hostile"; the classes of llama.cpp's GGUF
 * advisories, e.g. CVE-2025-53630): n_dims 1..4, each dim > 0, element count and byte
 * size overflow-free, row length a multiple of the block size, alignment a power of two
 * <= 1 MiB of type u32, offsets aligned, data inside the file, tensors not overlapping,
 * keys and tensor names unique and without NUL bytes. Allocations are bounded by a
 * constant times the file size: an array of n elements is accepted only if n minimal
 * encodings of its element type fit in the bytes left. Arrays nest at most
 * WERK_GGUF_MAX_DEPTH deep. Errors read "<file>: <what> at offset N".
 *
 * Shapes are stored outermost-first in werk_gguf_tensor: shape[i] = ne[n_dims-1-i].
 */
#include "convert/gguf_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF reader assumes a little-endian host");

/* The smallest encodings, used to bound counts by the bytes left. */
enum {
    MIN_KV_BYTES     = 8 + 4 + 1,         // empty key, type, a 1-byte value
    MIN_TENSOR_BYTES = 8 + 4 + 8 + 4 + 8, // empty name, n_dims, one ne, type, offset
    MIN_ARRAY_BYTES  = 4 + 8,             // nested array element: type + count
    MIN_STR_BYTES    = 8,
};

typedef struct reader {
    const uint8_t *p;
    size_t         size;
    size_t         off;
    const char    *path;
    werk_err      *err;
    werk_arena     tmp;      // per key/value scratch (string tables, nested arrays)
    char           what[96]; // "key '<key>'" while reading a value, for messages
} reader;

// ---- primitives ---------------------------------------------------------------------------

static size_t left(const reader *r) { return r->size - r->off; }

static werk_status need(reader *r, uint64_t n, const char *what) {
    if (n > left(r)) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: truncated: %s needs %" PRIu64 " bytes, %zu left at offset %zu", r->path, what,
                         n, left(r), r->off);
    }
    return WERK_OK;
}

static werk_status rd_u32(reader *r, uint32_t *v, const char *what) {
    werk_status s = need(r, 4, what);
    if (s) {
        return s;
    }
    memcpy(v, r->p + r->off, 4);
    r->off += 4;
    return WERK_OK;
}

static werk_status rd_u64(reader *r, uint64_t *v, const char *what) {
    werk_status s = need(r, 8, what);
    if (s) {
        return s;
    }
    memcpy(v, r->p + r->off, 8);
    r->off += 8;
    return WERK_OK;
}

/* A string borrowed from the file (not NUL-terminated). */
static werk_status rd_str(reader *r, werk_gguf_str *out, const char *what) {
    size_t      at = r->off;
    uint64_t    len;
    werk_status s = rd_u64(r, &len, what);
    if (s) {
        return s;
    }
    if (len > left(r)) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: %s: string length %" PRIu64 " exceeds the %zu bytes left at offset %zu",
                         r->path, what, len, left(r), at);
    }
    out->len  = len;
    out->data = (const char *)r->p + r->off;
    r->off += (size_t)len;
    return WERK_OK;
}

/* A key or tensor name: no NUL inside; copied NUL-terminated into the scratch arena. */
static werk_status rd_name(reader *r, const char **out, const char *what) {
    size_t        at = r->off;
    werk_gguf_str s;
    werk_status   st = rd_str(r, &s, what);
    if (st) {
        return st;
    }
    if (memchr(s.data, 0, (size_t)s.len)) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: %s contains a NUL byte at offset %zu", r->path, what,
                         at);
    }
    char *p = werk_arena_strndup(&r->tmp, s.data, (size_t)s.len);
    if (!p) {
        return WERK_FAIL(r->err, WERK_E_OOM, "%s: out of memory reading %s at offset %zu", r->path, what, at);
    }
    *out = p;
    return WERK_OK;
}

// ---- values -----------------------------------------------------------------------------

static werk_status rd_value(reader *r, werk_gguf_type type, werk_gguf_value *v, int depth, const char *key);

/* Array body (element type, count, elements) into v. Scalars and strings are borrowed
 * from the file; tables of strings / nested arrays go to the scratch arena, their size
 * bounded by the bytes left. */
static werk_status rd_array(reader *r, werk_gguf_value *v, int depth, const char *key) {
    size_t      at = r->off;
    uint32_t    et;
    uint64_t    n;
    werk_status s = rd_u32(r, &et, "array element type");
    if (s == WERK_OK) {
        s = rd_u64(r, &n, "array count");
    }
    if (s) {
        return s;
    }
    if (et >= WERK_GGUF_TYPE_COUNT) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: key '%s': unknown array element type %u at offset %zu",
                         r->path, key, et, at);
    }
    if (et == WERK_GGUF_ARRAY && depth + 1 >= WERK_GGUF_MAX_DEPTH) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: key '%s': arrays nested deeper than %d at offset %zu",
                         r->path, key, WERK_GGUF_MAX_DEPTH, at);
    }
    size_t min_elem = et == WERK_GGUF_STRING  ? MIN_STR_BYTES
                      : et == WERK_GGUF_ARRAY ? MIN_ARRAY_BYTES
                                              : werk_gguf_type_size((werk_gguf_type)et);
    if (n > left(r) / min_elem) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: key '%s': array count %" PRIu64 " exceeds the %zu bytes left at offset %zu",
                         r->path, key, n, left(r), at);
    }
    memset(v, 0, sizeof(*v));
    v->type          = WERK_GGUF_ARRAY;
    v->arr.elem_type = (werk_gguf_type)et;
    v->arr.n         = n;
    if (n == 0) {
        return WERK_OK;
    }
    if (et == WERK_GGUF_STRING) {
        // n <= left/8, so the table is at most 2x the bytes left.
        werk_gguf_str *tab = werk_arena_alloc(&r->tmp, (size_t)n * sizeof(*tab));
        if (!tab) {
            return WERK_FAIL(r->err, WERK_E_OOM, "%s: key '%s': out of memory for %" PRIu64 " strings",
                             r->path, key, n);
        }
        for (uint64_t i = 0; i < n; i++) {
            s = rd_str(r, &tab[i], r->what);
            if (s) {
                return s;
            }
        }
        v->arr.data = tab;
    } else if (et == WERK_GGUF_ARRAY) {
        werk_gguf_value *tab = werk_arena_alloc(&r->tmp, (size_t)n * sizeof(*tab));
        if (!tab) {
            return WERK_FAIL(r->err, WERK_E_OOM, "%s: key '%s': out of memory for %" PRIu64 " arrays",
                             r->path, key, n);
        }
        for (uint64_t i = 0; i < n; i++) {
            s = rd_array(r, &tab[i], depth + 1, key);
            if (s) {
                return s;
            }
        }
        v->arr.data = tab;
    } else {
        v->arr.data = r->p + r->off; // copied (and bools normalised) by werk_gguf_set
        r->off += (size_t)(n * min_elem);
    }
    return WERK_OK;
}

static werk_status rd_value(reader *r, werk_gguf_type type, werk_gguf_value *v, int depth, const char *key) {
    memset(v, 0, sizeof(*v));
    v->type = type;
    if (type == WERK_GGUF_STRING) {
        return rd_str(r, &v->str, r->what);
    }
    if (type == WERK_GGUF_ARRAY) {
        return rd_array(r, v, depth, key);
    }
    size_t      n = werk_gguf_type_size(type);
    werk_status s = need(r, n, r->what);
    if (s) {
        return s;
    }
    if (type == WERK_GGUF_BOOL) {
        v->b = r->p[r->off] != 0;
    } else {
        memcpy(&v->u64, r->p + r->off, n); // union: every scalar member starts at the same address
    }
    r->off += n;
    return WERK_OK;
}

static werk_status rd_kv(reader *r, werk_gguf *g) {
    size_t      at = r->off;
    const char *key;
    uint32_t    type;
    werk_status s = rd_name(r, &key, "key");
    if (s == WERK_OK) {
        s = rd_u32(r, &type, "value type");
    }
    if (s) {
        return s;
    }
    if (type >= WERK_GGUF_TYPE_COUNT) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: key '%s': unknown value type %u at offset %zu", r->path,
                         key, type, at);
    }
    if (werk_gguf_find_kv(g, key) >= 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: duplicate key '%s' at offset %zu", r->path, key, at);
    }
    snprintf(r->what, sizeof(r->what), "key '%s'", key);
    werk_gguf_value v;
    s = rd_value(r, (werk_gguf_type)type, &v, 0, key);
    if (s) {
        return s;
    }
    if (strcmp(key, "general.alignment") == 0) {
        if (v.type != WERK_GGUF_UINT32) {
            return WERK_FAIL(r->err, WERK_E_FORMAT,
                             "%s: general.alignment has type %s, expected u32 at offset %zu", r->path,
                             werk_gguf_type_name(v.type), at);
        }
        if (v.u32 == 0 || (v.u32 & (v.u32 - 1)) != 0 || v.u32 > WERK_GGUF_MAX_ALIGNMENT) {
            return WERK_FAIL(r->err, WERK_E_FORMAT,
                             "%s: general.alignment %u is not a power of two in 1..%u at offset %zu", r->path,
                             v.u32, WERK_GGUF_MAX_ALIGNMENT, at);
        }
    }
    s = werk_gguf_set(g, key, &v, r->err);
    if (s) {
        werk_err_prefix(r->err, "%s: key at offset %zu", r->path, at);
    }
    return s;
}

// ---- tensor infos ----------------------------------------------------------------------------

typedef struct tinfo {
    int64_t  index; // in g
    uint64_t offset;
    uint64_t nbytes;
    size_t   at; // file offset of the info, for messages
} tinfo;

static werk_status rd_tensor_info(reader *r, werk_gguf *g, uint64_t alignment, tinfo *ti) {
    size_t      at = r->off;
    const char *name;
    uint32_t    n_dims;
    werk_status s = rd_name(r, &name, "tensor name");
    if (s == WERK_OK) {
        s = rd_u32(r, &n_dims, "tensor n_dims");
    }
    if (s) {
        return s;
    }
    if (n_dims < 1 || n_dims > WERK_MAX_DIMS) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: tensor '%s': n_dims %u not in 1..%d at offset %zu",
                         r->path, name, n_dims, WERK_MAX_DIMS, at);
    }
    uint64_t ne[WERK_MAX_DIMS];
    uint64_t nel = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        s = rd_u64(r, &ne[i], "tensor dimension");
        if (s) {
            return s;
        }
        if (ne[i] == 0 || ne[i] > INT64_MAX) {
            return WERK_FAIL(r->err, WERK_E_FORMAT,
                             "%s: tensor '%s': dimension %u is %" PRIu64 " at offset %zu", r->path, name, i,
                             ne[i], at);
        }
        if (!werk_mul_u64(nel, ne[i], &nel) || nel > INT64_MAX) {
            return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: tensor '%s': element count overflows at offset %zu",
                             r->path, name, at);
        }
    }
    uint32_t ggml_type;
    uint64_t offset;
    s = rd_u32(r, &ggml_type, "tensor type");
    if (s == WERK_OK) {
        s = rd_u64(r, &offset, "tensor offset");
    }
    if (s) {
        return s;
    }
    werk_dtype type;
    if (ggml_type > INT32_MAX || !werk_dtype_from_ggml((int)ggml_type, &type)) {
        return WERK_FAIL(r->err, WERK_E_UNSUPPORTED,
                         "%s: tensor '%s' has ggml type %u, which werk does not support, at offset %zu",
                         r->path, name, ggml_type, at);
    }
    const werk_dtype_info *di = werk_dtype_get(type);
    if (ne[0] % (uint64_t)di->block_size != 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: tensor '%s': row length %" PRIu64
                         " is not a multiple of the %s block size %" PRId64 " at offset %zu",
                         r->path, name, ne[0], di->name, di->block_size, at);
    }
    uint64_t nbytes;
    werk_err e2 = {0};
    if (werk_dtype_bytes(type, nel, &nbytes, &e2) != WERK_OK) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: tensor '%s': byte size overflows (%s) at offset %zu",
                         r->path, name, e2.msg, at);
    }
    if (offset % alignment != 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: tensor '%s': data offset %" PRIu64
                         " is not a multiple of the alignment %" PRIu64 " at offset %zu",
                         r->path, name, offset, alignment, at);
    }
    if (werk_gguf_find_tensor(g, name) >= 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: duplicate tensor name '%s' at offset %zu", r->path, name,
                         at);
    }
    int64_t shape[WERK_MAX_DIMS];
    for (uint32_t i = 0; i < n_dims; i++) {
        shape[i] = (int64_t)ne[n_dims - 1 - i];
    }
    s = werk_gguf_add_tensor(g, name, type, (int)n_dims, shape, NULL, nbytes, &ti->index, r->err);
    if (s) {
        werk_err_prefix(r->err, "tensor info at offset %zu", at);
        return s;
    }
    ti->offset = offset;
    ti->nbytes = nbytes;
    ti->at     = at;
    return WERK_OK;
}

static int cmp_tinfo_offset(const void *a, const void *b) {
    const tinfo *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

// ---- the file ---------------------------------------------------------------------------

/* Magic, version and the two counts; the counts are bounded by the bytes left. */
static werk_status rd_header(reader *r, werk_gguf *g, uint64_t *n_tensors, uint64_t *n_kv) {
    if (r->size < 4) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: not a GGUF file (%zu bytes) at offset 0", r->path,
                         r->size);
    }
    if (memcmp(r->p, WERK_GGUF_MAGIC, 4) != 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: not a GGUF file (bad magic) at offset 0", r->path);
    }
    r->off = 4;
    uint32_t    version;
    werk_status s = rd_u32(r, &version, "version");
    if (s) {
        return s;
    }
    if (version != 0 && (version & 0xFFFFu) == 0) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: big-endian GGUF (version %08x) is not supported at offset 4", r->path, version);
    }
    if (version == 1) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: GGUF v1 is not supported (convert it again) at offset 4",
                         r->path);
    }
    if (version != 2 && version != 3) {
        return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: unsupported GGUF version %u at offset 4", r->path,
                         version);
    }
    if ((s = werk_gguf_set_origin(g, r->path, version, r->err))) {
        return s;
    }
    if ((s = rd_u64(r, n_tensors, "tensor count")) || (s = rd_u64(r, n_kv, "key/value count"))) {
        return s;
    }
    if (*n_kv > left(r) / MIN_KV_BYTES) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: key/value count %" PRIu64 " exceeds the %zu bytes left at offset 16", r->path,
                         *n_kv, left(r));
    }
    if (*n_tensors > left(r) / MIN_TENSOR_BYTES) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: tensor count %" PRIu64 " exceeds the %zu bytes left at offset 8", r->path,
                         *n_tensors, left(r));
    }
    return WERK_OK;
}

/* Checks every tensor's byte range against the data section and against each other
 * (sorting infos by offset), then points the tensors at their bytes. */
static werk_status place_tensors(reader *r, werk_gguf *g, tinfo *infos, uint64_t n, uint64_t alignment) {
    if (n == 0) {
        return WERK_OK;
    }
    uint64_t data_start;
    if (!werk_align_u64(r->off, alignment, &data_start) || data_start > r->size) {
        return WERK_FAIL(r->err, WERK_E_FORMAT,
                         "%s: data section would start past the end of the file (%zu bytes) at offset %zu",
                         r->path, r->size, r->off);
    }
    uint64_t data_size = r->size - data_start;
    for (uint64_t i = 0; i < n; i++) {
        const tinfo *ti = &infos[i];
        uint64_t     end;
        if (!werk_add_u64(ti->offset, ti->nbytes, &end) || end > data_size) {
            const char *name = werk_gguf_tensor_at(g, ti->index)->name;
            return WERK_FAIL(r->err, WERK_E_FORMAT,
                             "%s: tensor '%s': data [%" PRIu64 ", +%" PRIu64 ") lies outside the %" PRIu64
                             "-byte data section at offset %zu",
                             r->path, name, ti->offset, ti->nbytes, data_size, ti->at);
        }
    }
    qsort(infos, (size_t)n, sizeof(*infos), cmp_tinfo_offset);
    for (uint64_t i = 1; i < n; i++) {
        const tinfo *a = &infos[i - 1], *b = &infos[i];
        if (a->offset + a->nbytes > b->offset) { // both ends checked above: no overflow
            return WERK_FAIL(r->err, WERK_E_FORMAT, "%s: tensors '%s' and '%s' overlap at offset %zu",
                             r->path, werk_gguf_tensor_at(g, a->index)->name,
                             werk_gguf_tensor_at(g, b->index)->name, b->at);
        }
    }
    for (uint64_t i = 0; i < n; i++) {
        werk_gguf_tensor *t = werk_gguf_tensor_at_mut(g, infos[i].index);
        t->offset           = infos[i].offset;
        t->data             = r->p + data_start + infos[i].offset;
    }
    return WERK_OK;
}

static werk_status parse(reader *r, werk_gguf *g) {
    uint64_t    n_tensors = 0, n_kv = 0;
    werk_status s = rd_header(r, g, &n_tensors, &n_kv);
    for (uint64_t i = 0; i < n_kv && s == WERK_OK; i++) {
        s = rd_kv(r, g);
        werk_arena_free(&r->tmp); // the value was copied into g
    }
    if (s) {
        return s;
    }
    uint64_t alignment = werk_gguf_alignment(g);                 // validated in rd_kv
    tinfo   *infos     = werk_calloc(n_tensors, sizeof(*infos)); // n_tensors <= size / 32
    if (!infos) {
        return WERK_FAIL(r->err, WERK_E_OOM, "%s: out of memory for %" PRIu64 " tensor infos", r->path,
                         n_tensors);
    }
    for (uint64_t i = 0; i < n_tensors && s == WERK_OK; i++) {
        s = rd_tensor_info(r, g, alignment, &infos[i]);
        werk_arena_free(&r->tmp);
    }
    if (s == WERK_OK) {
        s = place_tensors(r, g, infos, n_tensors, alignment);
    }
    free(infos);
    return s;
}

werk_status
werk_gguf_read_mem(const void *data, size_t size, const char *name, werk_gguf **out, werk_err *err) {
    *out         = NULL;
    werk_gguf *g = werk_gguf_init();
    if (!g) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", name);
    }
    reader r = {.p = data, .size = data ? size : 0, .off = 0, .path = name, .err = err};
    werk_arena_init(&r.tmp);
    werk_status s = parse(&r, g);
    werk_arena_free(&r.tmp);
    if (s) {
        werk_gguf_free(g);
        return s;
    }
    *out = g;
    return WERK_OK;
}

werk_status werk_gguf_read(const char *path, werk_gguf **out, werk_err *err) {
    *out = NULL;
    werk_mmap   m;
    werk_status s = werk_mmap_open(&m, path, err);
    if (s) {
        return s;
    }
    werk_gguf *g = NULL;
    s            = werk_gguf_read_mem(m.data, m.size, path, &g, err);
    if (s == WERK_OK) {
        s = werk_gguf_hold_mmap(g, &m, err);
    }
    if (s) {
        werk_mmap_close(&m);
        werk_gguf_free(g);
        return s;
    }
    *out = g;
    return WERK_OK;
}
