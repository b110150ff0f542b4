/* convert/imatrix.c - reader of llama.cpp importance matrices (imatrix GGUF and legacy .dat)
 *
 * An importance matrix holds, per weight tensor, the mean squared activation of every
 * input column (per expert for MoE tensors); quantizers weight their error by it.
 * llama.cpp's llama-imatrix writes two formats (tools/imatrix/imatrix.cpp, read by
 * tools/quantize/quantize.cpp's loaders):
 *
 * GGUF (current): general.type = "imatrix", imatrix.chunk_count (u32), imatrix.chunk_size
 * (u32), imatrix.datasets (string array), and per tensor NAME two f32 tensors:
 *   NAME.in_sum2   ne = {n_per_row, n_mat}   sums of squared activations
 *   NAME.counts    ne = {1, n_mat}           activations counted per matrix
 * (a trailing dimension of 1 is dropped on disk, so n_mat = 1 gives 1-D tensors). Other
 * tensors (NAME.in_sum, NAME.stats, ...) are ignored. Importance = in_sum2 / count, or 1
 * where count is 0 (the tensor saw no input during calibration).
 *
 * Legacy binary (.dat), little-endian:
 *   OFFSET  SIZE     DESCRIPTION
 *   0       4        n_entries (i32, >= 1)
 *   per entry:
 *           4        len (i32, >= 1): name length
 *           len      name (no NUL)
 *           4        ncall (i32): number of chunks the sums cover
 *           4        nval (i32, >= 1)
 *           4*nval   values (f32): sums, divided by ncall when ncall > 0
 *   optional trailer:
 *           4        last chunk (i32)
 *           4        dataset length (i32, >= 0)
 *           ...      dataset file name; the file ends here
 *
 * Everything is checked against the bytes present before it is read or allocated; values
 * buffers are bounded by the file's size.
 */
#include "convert/convert.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct werk_imatrix {
    werk_imatrix_entry *entries; // sorted by name
    int64_t             n;
    float              *values; // all entries' values
    char               *names;  // all entries' names, NUL-separated
    int64_t             chunk_count;
    char               *dataset;
};

void werk_imatrix_free(werk_imatrix *im) {
    if (!im) {
        return;
    }
    free(im->entries);
    free(im->values);
    free(im->names);
    free(im->dataset);
    free(im);
}

int64_t werk_imatrix_n_entries(const werk_imatrix *im) { return im->n; }

const werk_imatrix_entry *werk_imatrix_entry_at(const werk_imatrix *im, int64_t i) {
    WERK_ASSERT(i >= 0 && i < im->n);
    return &im->entries[i];
}

static int entry_cmp(const void *a, const void *b) {
    return strcmp(((const werk_imatrix_entry *)a)->name, ((const werk_imatrix_entry *)b)->name);
}

const werk_imatrix_entry *werk_imatrix_find(const werk_imatrix *im, const char *name) {
    if (im->n == 0) {
        return NULL;
    }
    werk_imatrix_entry key = {.name = name};
    return bsearch(&key, im->entries, (size_t)im->n, sizeof(key), entry_cmp);
}

int64_t werk_imatrix_chunk_count(const werk_imatrix *im) { return im->chunk_count; }

const char *werk_imatrix_dataset(const werk_imatrix *im) { return im->dataset ? im->dataset : ""; }

/* Allocates the entry table, value and name buffers of an imatrix (all zeroed). */
static werk_status imatrix_alloc(
    werk_imatrix **out, int64_t n, uint64_t n_values, uint64_t name_bytes, const char *path, werk_err *err) {
    werk_imatrix *im = calloc(1, sizeof(*im));
    if (im) {
        im->chunk_count = -1;
        im->entries     = calloc((size_t)n, sizeof(*im->entries));
        im->values      = calloc((size_t)(n_values ? n_values : 1), sizeof(float));
        im->names       = calloc((size_t)(name_bytes ? name_bytes : 1), 1);
    }
    if (!im || !im->entries || !im->values || !im->names) {
        werk_imatrix_free(im);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    *out = im;
    return WERK_OK;
}

/* Sorts the entries and rejects duplicate names. */
static werk_status imatrix_finish(werk_imatrix *im, const char *path, werk_err *err) {
    qsort(im->entries, (size_t)im->n, sizeof(*im->entries), entry_cmp);
    for (int64_t i = 1; i < im->n; i++) {
        if (strcmp(im->entries[i - 1].name, im->entries[i].name) == 0) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: duplicate entry '%s'", path, im->entries[i].name);
        }
    }
    return WERK_OK;
}

static werk_status
check_values(const float *v, uint64_t n, const char *path, const char *name, werk_err *err) {
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(v[i]) || v[i] < 0.0f) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: entry '%s': value %" PRIu64 " is %g (must be finite, >= 0)", path, name, i,
                             (double)v[i]);
        }
    }
    return WERK_OK;
}

// ---- legacy .dat ----------------------------------------------------------------------------

typedef struct cursor {
    const uint8_t *p;
    size_t         size, off;
} cursor;

static bool cur_i32(cursor *c, int32_t *v) {
    if (c->size - c->off < 4) {
        return false;
    }
    memcpy(v, c->p + c->off, 4);
    c->off += 4;
    return true;
}

static werk_status
read_legacy(const uint8_t *p, size_t size, const char *path, werk_imatrix **out, werk_err *err) {
    cursor  c = {.p = p, .size = size};
    int32_t n_entries;
    if (!cur_i32(&c, &n_entries)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: %zu bytes is too short for an imatrix", path, size);
    }
    // an entry takes at least 4 (len) + 1 (name) + 4 (ncall) + 4 (nval) + 4 (one value) bytes
    if (n_entries < 1 || (uint64_t)n_entries > (size - 4) / 17) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: legacy imatrix with %" PRId32 " entries in %zu bytes", path,
                         n_entries, size);
    }
    // First pass: validate the layout and count what to allocate.
    uint64_t n_values = 0, name_bytes = 0;
    for (int32_t i = 0; i < n_entries; i++) {
        int32_t len, ncall, nval;
        if (!cur_i32(&c, &len) || len < 1 || (size_t)len > c.size - c.off) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: entry %" PRId32 ": name length out of the file (offset %zu)", path, i,
                             c.off);
        }
        if (memchr(c.p + c.off, 0, (size_t)len)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: entry %" PRId32 ": name contains a NUL byte", path, i);
        }
        c.off += (size_t)len;
        name_bytes += (uint64_t)len + 1;
        if (!cur_i32(&c, &ncall) || !cur_i32(&c, &nval) || nval < 1 ||
            (uint64_t)nval > (c.size - c.off) / sizeof(float)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: entry %" PRId32 ": value count out of the file (offset %zu)", path, i,
                             c.off);
        }
        c.off += (size_t)nval * sizeof(float);
        n_values += (uint64_t)nval;
    }
    int64_t chunk_count = -1;
    size_t  ds_off = 0, ds_len = 0;
    if (c.off < c.size) {
        int32_t last, len;
        if (!cur_i32(&c, &last) || !cur_i32(&c, &len) || len < 0 || (size_t)len != c.size - c.off) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: %zu bytes after the last entry are not a dataset trailer", path,
                             c.size - c.off);
        }
        chunk_count = last;
        ds_off      = c.off;
        ds_len      = (size_t)len;
    }

    werk_imatrix *im;
    werk_status   s = imatrix_alloc(&im, n_entries, n_values, name_bytes, path, err);
    if (s) {
        return s;
    }
    im->chunk_count = chunk_count;
    if (ds_off) {
        im->dataset = malloc(ds_len + 1);
        if (!im->dataset) {
            werk_imatrix_free(im);
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        }
        memcpy(im->dataset, p + ds_off, ds_len);
        im->dataset[ds_len] = 0;
    }
    // Second pass: copy (the layout is known to be valid).
    c.off        = 4;
    float *vals  = im->values;
    char  *names = im->names;
    for (int32_t i = 0; i < n_entries && s == WERK_OK; i++) {
        int32_t len = 0, ncall = 0, nval = 0; // re-read: known to be present
        cur_i32(&c, &len);
        memcpy(names, c.p + c.off, (size_t)len);
        names[len] = 0;
        c.off += (size_t)len;
        cur_i32(&c, &ncall);
        cur_i32(&c, &nval);
        memcpy(vals, c.p + c.off, (size_t)nval * sizeof(float));
        c.off += (size_t)nval * sizeof(float);
        s = check_values(vals, (uint64_t)nval, path, names, err);
        if (s == WERK_OK && ncall > 0) {
            for (int32_t k = 0; k < nval; k++) {
                vals[k] /= (float)ncall;
            }
        }
        im->entries[i] = (werk_imatrix_entry){.name = names, .values = vals, .n_per_row = nval, .n_mat = 1};
        im->n++;
        names += len + 1;
        vals += nval;
    }
    if (s == WERK_OK) {
        s = imatrix_finish(im, path, err);
    }
    if (s) {
        werk_imatrix_free(im);
        return s;
    }
    *out = im;
    return WERK_OK;
}

// ---- GGUF ------------------------------------------------------------------------------------

static const char SUM2[]   = ".in_sum2";
static const char COUNTS[] = ".counts";

/* Length of name without suffix, or -1 if name does not end in it. */
static int64_t base_len(const char *name, const char *suffix) {
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcmp(name + n - k, suffix) == 0 ? (int64_t)(n - k) : -1;
}

/* The tensor BASE + suffix, -1 if absent. */
static int64_t find_partner(const werk_gguf *g, const char *base, int64_t blen, const char *suffix) {
    char buf[512];
    if ((size_t)blen + strlen(suffix) >= sizeof(buf)) {
        return -1;
    }
    memcpy(buf, base, (size_t)blen);
    strcpy(buf + blen, suffix);
    return werk_gguf_find_tensor(g, buf);
}

static werk_status check_f32(const werk_gguf_tensor *t, const char *path, werk_err *err) {
    if (t->src_type != WERK_DTYPE_F32) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' has type %s, expected f32", path, t->name,
                         werk_dtype_name(t->src_type));
    }
    return WERK_OK;
}

static werk_status gguf_meta(const werk_gguf *g, const char *path, werk_imatrix *im, werk_err *err) {
    const char *type;
    bool        found;
    werk_status s = werk_gguf_get_str(g, "general.type", &type, &found, err);
    if (s == WERK_OK && found && strcmp(type, "imatrix") != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: general.type is '%s', not an imatrix", path, type);
    }
    uint32_t chunks = 0, chunk_size = 0;
    if (s == WERK_OK) {
        s = werk_gguf_get_u32(g, "imatrix.chunk_count", &chunks, NULL, err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_get_u32(g, "imatrix.chunk_size", &chunk_size, NULL, err);
    }
    if (s) {
        werk_err_prefix(err, "not a llama.cpp imatrix");
        return s;
    }
    im->chunk_count           = chunks;
    const werk_gguf_value *ds = werk_gguf_get(g, "imatrix.datasets");
    if (ds) {
        if (ds->type != WERK_GGUF_ARRAY || ds->arr.elem_type != WERK_GGUF_STRING) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: imatrix.datasets is not an array of strings", path);
        }
        if (ds->arr.n > 0) {
            const werk_gguf_str *s0 = ds->arr.data;
            im->dataset             = malloc((size_t)s0->len + 1);
            if (!im->dataset) {
                return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
            }
            memcpy(im->dataset, s0->data, (size_t)s0->len);
            im->dataset[s0->len] = 0;
        }
    }
    return WERK_OK;
}

static werk_status
read_gguf(const void *data, size_t size, const char *path, werk_imatrix **out, werk_err *err) {
    werk_gguf  *g;
    werk_status s = werk_gguf_read_mem(data, size, path, &g, err);
    if (s) {
        return s;
    }
    // Pair every in_sum2 with its counts; count what to allocate.
    int64_t  n_entries = 0;
    uint64_t n_values = 0, name_bytes = 0;
    for (int64_t i = 0; i < werk_gguf_n_tensors(g) && s == WERK_OK; i++) {
        const werk_gguf_tensor *t  = werk_gguf_tensor_at(g, i);
        int64_t                 bs = base_len(t->name, SUM2), bc = base_len(t->name, COUNTS);
        if (bs == 0 || bc == 0) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor '%s' has no entry name", path, t->name);
        } else if (bc > 0 && find_partner(g, t->name, bc, SUM2) < 0) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s' has no matching %s tensor", path, t->name, SUM2);
        } else if (bs > 0) {
            int64_t j = find_partner(g, t->name, bs, COUNTS);
            if (j < 0) {
                s = WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s' has no matching %s tensor", path, t->name,
                              COUNTS);
                break;
            }
            const werk_gguf_tensor *ct = werk_gguf_tensor_at(g, j);
            if ((s = check_f32(t, path, err)) || (s = check_f32(ct, path, err))) {
                break;
            }
            int64_t n_mat = werk_gguf_tensor_nrows(t);
            if (werk_gguf_tensor_nelements(ct) != n_mat) {
                s = WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s' has %" PRId64 " counts for %" PRId64 " matrices",
                              path, ct->name, werk_gguf_tensor_nelements(ct), n_mat);
                break;
            }
            n_entries++;
            n_values += (uint64_t)werk_gguf_tensor_nelements(t); // bounded by the file's size
            name_bytes += (uint64_t)bs + 1;
        }
    }
    if (s == WERK_OK && n_entries == 0) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: no %s tensors: not an imatrix", path, SUM2);
    }
    werk_imatrix *im = NULL;
    if (s == WERK_OK) {
        s = imatrix_alloc(&im, n_entries, n_values, name_bytes, path, err);
    }
    if (s == WERK_OK) {
        s = gguf_meta(g, path, im, err);
    }
    float *vals  = im ? im->values : NULL;
    char  *names = im ? im->names : NULL;
    for (int64_t i = 0; s == WERK_OK && i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t  = werk_gguf_tensor_at(g, i);
        int64_t                 bs = base_len(t->name, SUM2);
        if (bs <= 0) {
            continue;
        }
        const werk_gguf_tensor *ct    = werk_gguf_tensor_at(g, find_partner(g, t->name, bs, COUNTS));
        int64_t                 n_mat = werk_gguf_tensor_nrows(t);
        int64_t                 n_row = t->shape[t->n_dims - 1];
        memcpy(names, t->name, (size_t)bs);
        names[bs] = 0;
        memcpy(vals, t->data, (size_t)t->nbytes); // data may be unaligned (alignment 1 is legal)
        s = check_values(vals, (uint64_t)(n_mat * n_row), path, names, err);
        for (int64_t j = 0; s == WERK_OK && j < n_mat; j++) {
            float count;
            memcpy(&count, (const uint8_t *)ct->data + 4 * j, 4);
            if (!isfinite(count) || count < 0.0f) {
                s = WERK_FAIL(err, WERK_E_FORMAT, "%s: '%s': count %" PRId64 " is %g", path, ct->name, j,
                              (double)count);
                break;
            }
            float *row = vals + j * n_row;
            for (int64_t k = 0; k < n_row; k++) {
                row[k] = count > 0.0f ? row[k] / count : 1.0f;
            }
            s = check_values(row, (uint64_t)n_row, path, names, err); // a tiny count can overflow
        }
        im->entries[im->n++] =
            (werk_imatrix_entry){.name = names, .values = vals, .n_per_row = n_row, .n_mat = n_mat};
        names += bs + 1;
        vals += n_mat * n_row;
    }
    if (s == WERK_OK) {
        s = imatrix_finish(im, path, err);
    }
    werk_gguf_free(g);
    if (s) {
        werk_imatrix_free(im);
        return s;
    }
    *out = im;
    return WERK_OK;
}

// ---- entry points ------------------------------------------------------------------------------

werk_status
werk_imatrix_read_mem(const void *data, size_t size, const char *name, werk_imatrix **out, werk_err *err) {
    *out = NULL;
    if (data && size >= 4 && memcmp(data, "GGUF", 4) == 0) {
        return read_gguf(data, size, name, out, err);
    }
    return read_legacy(data, data ? size : 0, name, out, err);
}

werk_status werk_imatrix_read(const char *path, werk_imatrix **out, werk_err *err) {
    *out = NULL;
    werk_mmap   m;
    werk_status s = werk_mmap_open(&m, path, err);
    if (s) {
        return s;
    }
    s = werk_imatrix_read_mem(m.data, m.size, path, out, err);
    werk_mmap_close(&m);
    return s;
}
