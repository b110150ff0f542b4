/* convert/gguf_write.c - GGUF v3 writer: streams a werk_gguf to disk, converting tensors
 *
 * Layout written (little-endian; "str" = u64 byte count + bytes; see gguf_read.c):
 *
 *   OFFSET  SIZE      DESCRIPTION
 *   0       4         magic "GGUF"
 *   4       4         version 3 (u32)
 *   8       8         n_tensors (u64)
 *   16      8         n_kv (u64)
 *   24      ...       key/values in g's order: key (str), type (u32), value
 *   ...     ...       tensor infos in g's order: name (str), n_dims (u32), ne[] innermost
 *                     first (u64 each), ggml type (u32), offset (u64)
 *   ...     ...       zero padding to the alignment A
 *   D       ...       tensor data in g's order, each padded with zeros to a multiple of A,
 *                     so offset(i+1) = offset(i) + pad(nbytes(i), A)
 *
 * A = general.alignment if g has it (it is written as a normal key, only if present),
 * else 32. Tensor data is produced while streaming, never materialised whole: a tensor
 * whose type equals its src_type with no row_map/add is copied in large writes; a row
 * permutation of the same type copies rows; anything else goes through f32 (dequantize,
 * + add, quantize; werk_quantize_rows with the tensor's imatrix for block types) a few
 * megabytes of output at a time, converted in parallel, written in one piece. Scratch
 * memory is one row per thread for block output types (quantizers see whole rows) and
 * 64k elements per thread otherwise, plus a 4 MiB output buffer.
 *
 * Everything that can be checked is checked before the file is created; the file is
 * written through werk_afile (temporary, fsync, rename), so a failure or interrupt
 * (polled between pieces) never leaves a partial file at the destination.
 */
#include "convert/gguf_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the GGUF writer assumes a little-endian host");

/* Without OpenMP the loop runs on one thread (and no unknown-pragma warning). */
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL_FOR_IF_WORTH_IT _Pragma("omp parallel for schedule(static) if (worth_it)")
static int max_threads(void) { return omp_get_max_threads(); }
static int thread_id(void) { return omp_get_thread_num(); }
#else
#define PARALLEL_FOR_IF_WORTH_IT
static int max_threads(void) { return 1; }
static int thread_id(void) { return 0; }
#endif

enum {
    COPY_PIECE = 64 << 20, // bytes per write when copying straight
    OUT_CHUNK  = 4 << 20,  // output buffer flushed at this size when converting
    SEG_ELEMS  = 1 << 16,  // elements converted per step (f32 scratch of 256 KiB)
};

// ---- header buffer ----------------------------------------------------------------------

typedef struct hbuf {
    uint8_t *p;
    size_t   n, cap;
    bool     oom;
} hbuf;

static void hb_put(hbuf *b, const void *d, size_t n) {
    if (b->oom || n == 0) {
        return;
    }
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 4096;
        while (n > cap - b->n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p   = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}

static void hb_u32(hbuf *b, uint32_t v) { hb_put(b, &v, 4); }

static void hb_u64(hbuf *b, uint64_t v) { hb_put(b, &v, 8); }

static void hb_str(hbuf *b, const char *s, uint64_t len) {
    hb_u64(b, len);
    hb_put(b, s, (size_t)len);
}

/* Value without its type tag. Arrays: element type, count, elements. */
static void hb_value(hbuf *b, const werk_gguf_value *v) {
    switch (v->type) {
    case WERK_GGUF_STRING:
        hb_str(b, v->str.data, v->str.len);
        break;
    case WERK_GGUF_ARRAY: {
        werk_gguf_type et = v->arr.elem_type;
        hb_u32(b, (uint32_t)et);
        hb_u64(b, v->arr.n);
        if (et == WERK_GGUF_STRING) {
            const werk_gguf_str *s = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++) {
                hb_str(b, s[i].data, s[i].len);
            }
        } else if (et == WERK_GGUF_ARRAY) {
            const werk_gguf_value *s = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++) {
                hb_value(b, &s[i]);
            }
        } else {
            hb_put(b, v->arr.data, (size_t)(v->arr.n * werk_gguf_type_size(et))); // bools are 0/1 bytes
        }
        break;
    }
    case WERK_GGUF_BOOL: {
        uint8_t x = v->b ? 1 : 0;
        hb_put(b, &x, 1);
        break;
    }
    default:
        hb_put(b, &v->u64, werk_gguf_type_size(v->type)); // scalars share the union's start
        break;
    }
}

// ---- plan: what each tensor becomes -------------------------------------------------------

typedef enum tmode { MODE_COPY, MODE_PERMUTE, MODE_CONVERT } tmode;

/* A tensor is converted in units: whole rows, or, for a float output type and rows longer
 * than SEG_ELEMS, segments of SEG_ELEMS elements (whole blocks of the source type). A
 * quantized output type always gets whole rows, since quantizers may use row statistics
 * (the imatrix ones do). Units are numbered row-major and their outputs are contiguous in
 * the file, so a run of units fills the output buffer in order. Units are independent, so
 * a run is converted in parallel (OpenMP, when built with it); the bytes do not depend on
 * the thread count. */
typedef struct units {
    int64_t seg;        // elements per unit (the last unit of a row may be shorter)
    int64_t per_row;    // units per row
    size_t  seg_in;     // source bytes of a full unit
    size_t  seg_out;    // output bytes of a full unit
    bool    direct_f32; // quantize straight from the source (f32, aligned, no add)
} units;

typedef struct tplan {
    tmode    mode;
    uint64_t out_bytes;
    uint64_t offset; // in the data section
    int64_t  row_len, n_rows;
    size_t   src_row_bytes, dst_row_bytes;
    units    u; // MODE_CONVERT only
} tplan;

static void plan_units(const werk_gguf_tensor *t, tplan *p) {
    const werk_dtype_info *si = werk_dtype_get(t->src_type);
    const werk_dtype_info *di = werk_dtype_get(t->type);
    units                 *u  = &p->u;
    u->seg =
        di->is_quant || p->row_len <= SEG_ELEMS ? p->row_len : SEG_ELEMS / si->block_size * si->block_size;
    u->per_row = (p->row_len + u->seg - 1) / u->seg;
    u->seg_in  = (size_t)(u->seg / si->block_size) * si->type_size;
    u->seg_out = (size_t)(u->seg / di->block_size) * di->type_size;
    u->direct_f32 =
        t->src_type == WERK_DTYPE_F32 && t->add == 0.0f && ((uintptr_t)t->data % sizeof(float)) == 0;
}

static werk_status plan_tensor(const werk_gguf_tensor *t, const char *path, tplan *p, werk_err *err) {
    const werk_dtype_info *src = werk_dtype_get(t->src_type);
    const werk_dtype_info *dst = werk_dtype_get(t->type);
    if (dst->ggml_type < 0) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': type %s cannot be stored in GGUF", path,
                         t->name, dst->name);
    }
    if (strlen(t->name) >= WERK_GGUF_MAX_NAME) {
        return WERK_FAIL(err, WERK_E_ARG, "%s: tensor name '%s' is %zu bytes; GGUF allows at most %d", path,
                         t->name, strlen(t->name), WERK_GGUF_MAX_NAME - 1);
    }
    if (t->n_dims < 1 || t->n_dims > WERK_MAX_DIMS) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': %d dimensions", path, t->name, t->n_dims);
    }
    uint64_t nel = 1;
    for (int i = 0; i < t->n_dims; i++) {
        if (t->shape[i] <= 0 || !werk_mul_u64(nel, (uint64_t)t->shape[i], &nel) || nel > INT64_MAX) {
            return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor '%s': bad shape", path, t->name);
        }
    }
    p->row_len = t->shape[t->n_dims - 1];
    p->n_rows  = (int64_t)(nel / (uint64_t)p->row_len);
    if (p->row_len % dst->block_size != 0 || p->row_len % src->block_size != 0) {
        return WERK_FAIL(err, WERK_E_SHAPE,
                         "%s: tensor '%s': row length %" PRId64
                         " is not a multiple of the block size of %s / %s",
                         path, t->name, p->row_len, src->name, dst->name);
    }
    uint64_t    src_bytes, row;
    werk_status s = werk_dtype_bytes(t->src_type, nel, &src_bytes, err);
    if (s == WERK_OK) {
        s = werk_dtype_bytes(t->type, nel, &p->out_bytes, err);
    }
    if (s) {
        werk_err_prefix(err, "%s: tensor '%s'", path, t->name);
        return s;
    }
    if (src_bytes != t->nbytes || !t->data) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "%s: tensor '%s': %" PRIu64 " source bytes for %" PRIu64 " %s elements", path,
                         t->name, t->data ? t->nbytes : 0, nel, src->name);
    }
    werk_dtype_bytes(t->src_type, (uint64_t)p->row_len, &row, NULL);
    p->src_row_bytes = (size_t)row;
    werk_dtype_bytes(t->type, (uint64_t)p->row_len, &row, NULL);
    p->dst_row_bytes = (size_t)row;

    bool same = t->src_type == t->type && t->add == 0.0f;
    p->mode   = same ? (t->row_map ? MODE_PERMUTE : MODE_COPY) : MODE_CONVERT;
    if (p->mode == MODE_CONVERT) {
        plan_units(t, p);
        if (!werk_dtype_can_dequantize(t->src_type)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot convert from %s", path,
                             t->name, src->name);
        }
        if (t->type != WERK_DTYPE_F32 && !werk_dtype_can_quantize(t->type)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot convert to %s", path, t->name,
                             dst->name);
        }
    }
    if (t->row_map) {
        for (int64_t r = 0; r < p->n_rows; r++) {
            if (t->row_map[r] < 0 || t->row_map[r] >= p->n_rows) {
                return WERK_FAIL(err, WERK_E_ARG,
                                 "%s: tensor '%s': row_map[%" PRId64 "] = %" PRId64
                                 " is not a row (0..%" PRId64 ")",
                                 path, t->name, r, t->row_map[r], p->n_rows - 1);
            }
        }
    }
    return WERK_OK;
}

// ---- streaming data -----------------------------------------------------------------------

typedef struct wctx {
    werk_afile    af;
    const char   *path;
    werk_progress prog;
    bool          progress;
    float        *fbuf;            // fbuf_per_thread floats for each thread
    size_t        fbuf_per_thread; // the longest conversion unit, in elements
    uint8_t      *out;             // OUT_CHUNK, or one unit's output if that is larger
    size_t        out_n;
    werk_err     *err;
} wctx;

static werk_status poll_interrupt(wctx *w) {
    if (werk_interrupted()) {
        return WERK_FAIL(w->err, WERK_E_INTERRUPTED, "%s: interrupted while writing", w->path);
    }
    return WERK_OK;
}

static werk_status emit(wctx *w, const void *data, size_t n) {
    werk_status s = werk_afile_write(&w->af, data, n, w->err);
    if (s == WERK_OK && w->progress) {
        werk_progress_add(&w->prog, n);
    }
    return s;
}

static werk_status flush_out(wctx *w) {
    werk_status s = emit(w, w->out, w->out_n);
    w->out_n      = 0;
    return s ? s : poll_interrupt(w);
}

static werk_status write_copy(wctx *w, const werk_gguf_tensor *t) {
    const uint8_t *p = t->data;
    for (uint64_t done = 0; done < t->nbytes;) {
        size_t      n = t->nbytes - done < COPY_PIECE ? (size_t)(t->nbytes - done) : COPY_PIECE;
        werk_status s = emit(w, p + done, n);
        if (s == WERK_OK) {
            s = poll_interrupt(w);
        }
        if (s) {
            return s;
        }
        done += n;
    }
    return WERK_OK;
}

static werk_status write_permute(wctx *w, const werk_gguf_tensor *t, const tplan *p) {
    const uint8_t *base = t->data;
    for (int64_t r = 0; r < p->n_rows; r++) {
        const uint8_t *row = base + (size_t)t->row_map[r] * p->src_row_bytes;
        werk_status    s;
        if (p->src_row_bytes > OUT_CHUNK) {
            if ((s = flush_out(w)) || (s = emit(w, row, p->src_row_bytes))) {
                return s;
            }
            continue;
        }
        if (w->out_n + p->src_row_bytes > OUT_CHUNK && (s = flush_out(w))) {
            return s;
        }
        memcpy(w->out + w->out_n, row, p->src_row_bytes);
        w->out_n += p->src_row_bytes;
    }
    return flush_out(w);
}

static void convert_unit(const werk_gguf_tensor *t, const tplan *p, uint64_t k, float *fbuf, uint8_t *out) {
    const units   *u     = &p->u;
    int64_t        r     = (int64_t)(k / (uint64_t)u->per_row);
    int64_t        j     = (int64_t)(k % (uint64_t)u->per_row);
    int64_t        n     = p->row_len - j * u->seg < u->seg ? p->row_len - j * u->seg : u->seg;
    int64_t        src_r = t->row_map ? t->row_map[r] : r;
    const uint8_t *src = (const uint8_t *)t->data + (size_t)src_r * p->src_row_bytes + (size_t)j * u->seg_in;
    const float   *f;
    if (u->direct_f32) {
        f = (const float *)(const void *)src;
    } else {
        werk_dequantize_row(t->src_type, src, fbuf, n);
        if (t->add != 0.0f) {
            for (int64_t i = 0; i < n; i++) {
                fbuf[i] += t->add;
            }
        }
        f = fbuf;
    }
    if (t->type == WERK_DTYPE_F32) {
        memcpy(out, f, (size_t)n * sizeof(float));
    } else if (werk_dtype_get(t->type)->is_quant) {
        werk_quantize_rows(t->type, f, out, 1, n, t->imatrix); // a whole row (plan_units)
    } else {
        werk_quantize_row(t->type, f, out, n);
    }
}

static uint64_t unit_out_offset(const tplan *p, uint64_t k) {
    return (k / (uint64_t)p->u.per_row) * p->dst_row_bytes + (k % (uint64_t)p->u.per_row) * p->u.seg_out;
}

static werk_status write_convert(wctx *w, const werk_gguf_tensor *t, const tplan *p) {
    uint64_t n_units   = (uint64_t)p->n_rows * (uint64_t)p->u.per_row;
    uint64_t per_chunk = OUT_CHUNK / p->u.seg_out ? OUT_CHUNK / p->u.seg_out : 1; // w->out holds either
    for (uint64_t k0 = 0; k0 < n_units; k0 += per_chunk) {
        uint64_t k1       = n_units - k0 < per_chunk ? n_units : k0 + per_chunk;
        uint64_t off0     = unit_out_offset(p, k0);
        uint64_t off1     = k1 == n_units ? p->out_bytes : unit_out_offset(p, k1);
        int64_t  nk       = (int64_t)(k1 - k0);
        // Threads pay off for block (de)quantization; float casts are memory-bound, and a
        // second thread there only spins between chunks (measured: same wall time, 8x CPU).
        bool worth_it = nk > 1 && off1 - off0 > (64u << 10) &&
                        (werk_dtype_get(t->type)->is_quant || werk_dtype_get(t->src_type)->is_quant);
        (void)worth_it; // read only by the OpenMP pragma
        PARALLEL_FOR_IF_WORTH_IT
        for (int64_t i = 0; i < nk; i++) {
            uint64_t k = k0 + (uint64_t)i;
            convert_unit(t, p, k, w->fbuf + (size_t)thread_id() * w->fbuf_per_thread,
                         w->out + (unit_out_offset(p, k) - off0));
        }
        werk_status s = emit(w, w->out, (size_t)(off1 - off0));
        if (s == WERK_OK) {
            s = poll_interrupt(w);
        }
        if (s) {
            return s;
        }
    }
    return WERK_OK;
}

// ---- the file -----------------------------------------------------------------------------

static werk_status check_alignment(const werk_gguf *g, const char *path, uint64_t *align, werk_err *err) {
    const werk_gguf_value *v = werk_gguf_get(g, "general.alignment");
    *align                   = WERK_GGUF_DEFAULT_ALIGNMENT;
    if (!v) {
        return WERK_OK;
    }
    if (v->type != WERK_GGUF_UINT32) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: general.alignment has type %s, expected u32", path,
                         werk_gguf_type_name(v->type));
    }
    if (v->u32 == 0 || (v->u32 & (v->u32 - 1)) != 0 || v->u32 > WERK_GGUF_MAX_ALIGNMENT) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: general.alignment %u is not a power of two in 1..%u", path,
                         v->u32, WERK_GGUF_MAX_ALIGNMENT);
    }
    *align = v->u32;
    return WERK_OK;
}

static werk_status build_header(const werk_gguf *g, const tplan *plans, uint64_t align, hbuf *b) {
    int64_t n_tensors = werk_gguf_n_tensors(g);
    int64_t n_kv      = werk_gguf_n_kv(g);
    hb_put(b, WERK_GGUF_MAGIC, 4);
    hb_u32(b, 3);
    hb_u64(b, (uint64_t)n_tensors);
    hb_u64(b, (uint64_t)n_kv);
    for (int64_t i = 0; i < n_kv; i++) {
        const werk_gguf_kv *kv = werk_gguf_kv_at(g, i);
        hb_str(b, kv->key, strlen(kv->key));
        hb_u32(b, (uint32_t)kv->value.type);
        hb_value(b, &kv->value);
    }
    for (int64_t i = 0; i < n_tensors; i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        hb_str(b, t->name, strlen(t->name));
        hb_u32(b, (uint32_t)t->n_dims);
        for (int d = t->n_dims - 1; d >= 0; d--) {
            hb_u64(b, (uint64_t)t->shape[d]);
        }
        hb_u32(b, (uint32_t)werk_dtype_get(t->type)->ggml_type);
        hb_u64(b, plans[i].offset);
    }
    uint64_t end;
    if (!werk_align_u64(b->n, align, &end)) {
        b->oom = true;
        return WERK_E_OOM;
    }
    static const uint8_t zeros[WERK_GGUF_MAX_ALIGNMENT / 1024] = {0};
    for (uint64_t pad = end - b->n; pad > 0;) {
        size_t k = pad < sizeof(zeros) ? (size_t)pad : sizeof(zeros);
        hb_put(b, zeros, k);
        pad -= k;
    }
    return b->oom ? WERK_E_OOM : WERK_OK;
}

werk_status werk_gguf_write(const werk_gguf *g, const char *path, bool progress, werk_err *err) {
    uint64_t    align;
    werk_status s = check_alignment(g, path, &align, err);
    if (s) {
        return s;
    }
    int64_t n_tensors = werk_gguf_n_tensors(g);
    tplan  *plans     = werk_calloc((size_t)n_tensors, sizeof(*plans));
    if (!plans) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    uint64_t data_size = 0;
    for (int64_t i = 0; i < n_tensors && s == WERK_OK; i++) {
        s = plan_tensor(werk_gguf_tensor_at(g, i), path, &plans[i], err);
        uint64_t padded;
        if (s == WERK_OK) {
            plans[i].offset = data_size;
            if (!werk_align_u64(plans[i].out_bytes, align, &padded) ||
                !werk_add_u64(data_size, padded, &data_size)) {
                s = WERK_FAIL(err, WERK_E_SHAPE, "%s: data section size overflows", path);
            }
        }
    }
    hbuf hb = {0};
    if (s == WERK_OK && build_header(g, plans, align, &hb) != WERK_OK) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory building the header", path);
    }

    wctx w;
    memset(&w, 0, sizeof(w));
    w.path     = path;
    w.err      = err;
    w.progress = progress;
    if (s == WERK_OK) {
        size_t out_size   = OUT_CHUNK;
        w.fbuf_per_thread = 1;
        for (int64_t i = 0; i < n_tensors; i++) {
            if (plans[i].mode == MODE_CONVERT) {
                w.fbuf_per_thread =
                    (size_t)plans[i].u.seg > w.fbuf_per_thread ? (size_t)plans[i].u.seg : w.fbuf_per_thread;
                out_size = plans[i].u.seg_out > out_size ? plans[i].u.seg_out : out_size;
            }
        }
        uint64_t fbuf_n;
        if (werk_mul_u64((uint64_t)max_threads(), w.fbuf_per_thread, &fbuf_n) && fbuf_n <= SIZE_MAX / 4) {
            w.fbuf = werk_calloc((size_t)fbuf_n, sizeof(float));
        }
        w.out = werk_malloc(out_size);
        if (!w.fbuf || !w.out) {
            s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory for conversion buffers (rows of %zu elements)",
                          path, w.fbuf_per_thread);
        }
    }
    if (s == WERK_OK) {
        s = werk_afile_open(&w.af, path, err);
    }
    if (s == WERK_OK) {
        char        label[96];
        const char *base = strrchr(path, '/');
        snprintf(label, sizeof(label), "writing %s", base ? base + 1 : path);
        if (progress) {
            werk_progress_init(&w.prog, label, hb.n + data_size, true);
        }
        s = emit(&w, hb.p, hb.n);
        for (int64_t i = 0; i < n_tensors && s == WERK_OK; i++) {
            const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
            const tplan            *p = &plans[i];
            WERK_ASSERT(w.af.written == hb.n + p->offset);
            s = poll_interrupt(&w);
            if (s == WERK_OK) {
                s = p->mode == MODE_COPY      ? write_copy(&w, t)
                    : p->mode == MODE_PERMUTE ? write_permute(&w, t, p)
                                              : write_convert(&w, t, p);
            }
            uint64_t padded = p->out_bytes; // aligned without overflow when planned
            if (s == WERK_OK) {
                werk_align_u64(p->out_bytes, align, &padded);
                s = werk_afile_pad(&w.af, (size_t)(padded - p->out_bytes), err);
            }
        }
        if (s == WERK_OK) {
            WERK_ASSERT(w.af.written == hb.n + data_size);
            s = werk_afile_commit(&w.af, err);
            if (s == WERK_OK && progress) {
                werk_progress_done(&w.prog);
            }
        } else {
            werk_afile_abort(&w.af);
        }
    }
    free(w.fbuf);
    free(w.out);
    free(hb.p);
    free(plans);
    return s;
}
