/* quant/quantize_model.c - the quantize job: plan a GGUF's tensor types, write, measure
 *
 * Glue between the mixes (quant/presets.c) and the file formats (convert/): model facts
 * from GGUF metadata, the per-tensor plan over a werk_gguf, importance weights from an
 * imatrix file attached to the tensors that have an entry, the write through
 * werk_gguf_write (atomic, streaming, multi-threaded), and a second pass over the written
 * file that measures every converted tensor's relative RMSE against its source:
 * ||deq(q(x)) - x|| / ||x|| over the whole tensor, summed per row in double and added in
 * row order, so the number does not depend on the thread count.
 *
 * This is the library side of `werk quantize` (quant/cmd_quantize.c parses arguments and
 * prints); it depends on convert/ for GGUF and imatrix files, which nothing else in quant/
 * does.
 */
#define _POSIX_C_SOURCE 200809L // strdup
#include "convert/convert.h"
#include "quant/quant.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Without OpenMP the loops run on one thread (and no unknown-pragma warning). */
#ifdef _OPENMP
#include <omp.h>
#define PARALLEL_FOR_DYNAMIC _Pragma("omp parallel for schedule(dynamic, 64)")
static int max_threads(void) { return omp_get_max_threads(); }
static int thread_id(void) { return omp_get_thread_num(); }
#else
#define PARALLEL_FOR_DYNAMIC
static int max_threads(void) { return 1; }
static int thread_id(void) { return 0; }
#endif

// ---- model facts ------------------------------------------------------------------------

/* An integer key, or the first element of an integer array (per-layer values, as some
 * architectures store head counts). *out untouched if the key is missing. */
static werk_status get_count(const werk_gguf *g, const char *key, int64_t *out, werk_err *err) {
    const werk_gguf_value *v = werk_gguf_get(g, key);
    if (!v) {
        return WERK_OK;
    }
    if (v->type == WERK_GGUF_ARRAY) {
        if (v->arr.n == 0) {
            return WERK_OK;
        }
        const uint8_t *p = v->arr.data;
        int64_t        x = 0;
        switch (v->arr.elem_type) { // packed host-order elements; copied, may be unaligned
        case WERK_GGUF_UINT8:
            x = p[0];
            break;
        case WERK_GGUF_INT8:
            x = (int8_t)p[0];
            break;
        case WERK_GGUF_UINT16: {
            uint16_t y;
            memcpy(&y, p, 2);
            x = y;
            break;
        }
        case WERK_GGUF_INT16: {
            int16_t y;
            memcpy(&y, p, 2);
            x = y;
            break;
        }
        case WERK_GGUF_UINT32: {
            uint32_t y;
            memcpy(&y, p, 4);
            x = y;
            break;
        }
        case WERK_GGUF_INT32: {
            int32_t y;
            memcpy(&y, p, 4);
            x = y;
            break;
        }
        case WERK_GGUF_UINT64: {
            uint64_t y;
            memcpy(&y, p, 8);
            x = y > INT64_MAX ? INT64_MAX : (int64_t)y;
            break;
        }
        case WERK_GGUF_INT64:
            memcpy(&x, p, 8);
            break;
        default:
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s' is an array of a non-integer type",
                             werk_gguf_path(g), key);
        }
        *out = x < 0 ? 0 : x; // the first layer's value
        return WERK_OK;
    }
    uint32_t    u;
    bool        found;
    werk_status s = werk_gguf_get_u32(g, key, &u, &found, err);
    if (s == WERK_OK && found) {
        *out = u;
    }
    return s;
}

werk_status werk_quant_model_from_gguf(const werk_gguf *g, werk_quant_model *m, werk_err *err) {
    memset(m, 0, sizeof(*m));
    m->arch = "";
    const char *arch;
    bool        found;
    werk_status s = werk_gguf_get_str(g, "general.architecture", &arch, &found, err);
    if (s) {
        return s;
    }
    if (found) {
        m->arch = arch;
    }
    static const struct {
        const char *suffix;
        size_t      field;
    } keys[] = {
        {"block_count", offsetof(werk_quant_model, n_layer)},
        {"attention.head_count", offsetof(werk_quant_model, n_head)},
        {"attention.head_count_kv", offsetof(werk_quant_model, n_head_kv)},
        {"expert_count", offsetof(werk_quant_model, n_expert)},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && s == WERK_OK; i++) {
        char key[256];
        snprintf(key, sizeof(key), "%s.%s", m->arch, keys[i].suffix);
        s = get_count(g, key, (int64_t *)(void *)((char *)m + keys[i].field), err);
    }
    return s;
}

werk_status
werk_quant_plan_gguf(const werk_gguf *g, const werk_quant_opts *o, werk_quant_choice *out, werk_err *err) {
    werk_quant_model m;
    werk_status      s = werk_quant_model_from_gguf(g, &m, err);
    if (s) {
        return s;
    }
    int64_t           n = werk_gguf_n_tensors(g);
    werk_quant_tinfo *t = n ? calloc((size_t)n, sizeof(*t)) : NULL;
    if (n && !t) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", werk_gguf_path(g));
    }
    for (int64_t i = 0; i < n; i++) {
        const werk_gguf_tensor *gt = werk_gguf_tensor_at(g, i);
        t[i].name                  = gt->name;
        t[i].n_dims                = gt->n_dims;
        t[i].src_type              = gt->src_type;
        for (int d = 0; d < 4; d++) {
            t[i].shape[d] = d < gt->n_dims ? gt->shape[d] : 1;
        }
    }
    s = werk_quant_plan(&m, o, t, n, out, err);
    free(t);
    return s;
}

// ---- report -------------------------------------------------------------------------------

void werk_quant_report_free(werk_quant_report *r) {
    if (!r) {
        return;
    }
    if (r->rows) {
        for (int64_t i = 0; i < r->n_rows; i++) {
            free((char *)r->rows[i].name);
        }
    }
    free(r->rows);
    free(r);
}

static werk_status report_init(const werk_gguf         *g,
                               const werk_quant_opts   *o,
                               const werk_quant_choice *plan,
                               werk_quant_report      **out,
                               werk_err                *err) {
    int64_t            n = werk_gguf_n_tensors(g);
    werk_quant_report *r = calloc(1, sizeof(*r));
    if (r) {
        r->rows = calloc((size_t)(n ? n : 1), sizeof(*r->rows));
    }
    if (!r || !r->rows) {
        werk_quant_report_free(r);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", werk_gguf_path(g));
    }
    r->preset = o->preset;
    r->n_rows = n;
    for (int64_t i = 0; i < n; i++) {
        const werk_gguf_tensor *t   = werk_gguf_tensor_at(g, i);
        werk_quant_report_row  *row = &r->rows[i];
        row->name                   = strdup(t->name);
        if (!row->name) {
            werk_quant_report_free(r);
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", werk_gguf_path(g));
        }
        row->n_dims = t->n_dims;
        for (int d = 0; d < 4; d++) {
            row->shape[d] = d < t->n_dims ? t->shape[d] : 1;
        }
        row->src_type  = t->src_type;
        row->choice    = plan[i];
        row->src_bytes = t->nbytes;
        row->rel_rmse  = plan[i].type == t->src_type ? 0.0 : -1.0;
        uint64_t nel   = (uint64_t)werk_gguf_tensor_nelements(t);
        werk_dtype_bytes(plan[i].type, nel, &row->bytes, NULL); // the plan fits the row length
        row->requant = werk_dtype_get(t->src_type)->is_quant && plan[i].type != t->src_type;
        r->n_elements += nel;
        r->src_bytes += row->src_bytes;
        r->bytes += row->bytes;
        r->n_fallback += plan[i].fallback;
        r->n_requant += row->requant;
    }
    *out = r;
    return WERK_OK;
}

// ---- importance weights -----------------------------------------------------------------------

/* Points t->imatrix at the entry for t, if the imatrix has one of the right size. */
static werk_status attach_imatrix(werk_gguf_tensor      *t,
                                  werk_quant_report_row *row,
                                  const werk_imatrix    *im,
                                  const char            *im_path,
                                  int64_t               *n_missing,
                                  int64_t               *n_experts_skipped,
                                  werk_err              *err) {
    const werk_imatrix_entry *e = werk_imatrix_find(im, t->name);
    if (!e) {
        werk_log(WERK_LOG_DEBUG, "imatrix %s: no entry for %s", im_path, t->name);
        (*n_missing)++;
        return WERK_OK;
    }
    int64_t n_row = t->shape[t->n_dims - 1];
    int64_t total = e->n_per_row * e->n_mat;
    if (total == n_row) {
        t->imatrix   = e->values;
        row->imatrix = true;
        return WERK_OK;
    }
    if (t->n_dims == 3 && total == n_row * t->shape[0]) {
        (*n_experts_skipped)++; // one vector per expert: the writer takes one per tensor
        return WERK_OK;
    }
    if (row->choice.cat == WERK_TCAT_TOKEN_EMBD) {
        werk_log(WERK_LOG_WARN,
                 "imatrix %s: entry '%s' has %" PRId64 " values for rows of %" PRId64 "; not used", im_path,
                 t->name, total, n_row);
        return WERK_OK;
    }
    return WERK_FAIL(err, WERK_E_FORMAT,
                     "imatrix %s: entry '%s' has %" PRId64 " values, the tensor has rows of %" PRId64
                     " (an imatrix of another model?)",
                     im_path, t->name, total, n_row);
}

static werk_status
use_imatrix(werk_gguf *g, werk_quant_report *r, const werk_imatrix *im, const char *path, werk_err *err) {
    int64_t n_missing = 0, n_experts = 0, n_quant = 0;
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        werk_quant_report_row *row = &r->rows[i];
        if (!row->choice.quantize || !werk_dtype_get(row->choice.type)->is_quant ||
            row->choice.type == row->src_type) {
            continue;
        }
        n_quant++;
        werk_status s =
            attach_imatrix(werk_gguf_tensor_at_mut(g, i), row, im, path, &n_missing, &n_experts, err);
        if (s) {
            return s;
        }
        r->n_imatrix += row->imatrix;
    }
    if (n_missing) {
        werk_log(WERK_LOG_WARN, "imatrix %s: no entry for %" PRId64 " of %" PRId64 " quantized tensors", path,
                 n_missing, n_quant);
    }
    if (n_experts) {
        werk_log(WERK_LOG_WARN, "imatrix %s: per-expert weights of %" PRId64 " tensors not used", path,
                 n_experts);
    }
    return WERK_OK;
}

static werk_status
set_metadata(werk_gguf *g, const werk_quantize_job *job, const werk_imatrix *im, werk_err *err) {
    char preset[64];
    snprintf(preset, sizeof(preset), "%s%s", job->opts.preset->name, job->opts.pure ? " pure" : "");
    werk_status s = werk_gguf_set_u32(g, "general.quantization_version", 2, err);
    if (s == WERK_OK) {
        s = werk_gguf_set_u32(g, "general.file_type", job->opts.preset->ftype, err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_set_str(g, "werk.version", WERK_VERSION, err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_set_str(g, "werk.quantize.preset", preset, err);
    }
    if (im) { // llama-quantize's keys
        if (s == WERK_OK) {
            s = werk_gguf_set_str(g, "quantize.imatrix.file", job->imatrix_path, err);
        }
        if (s == WERK_OK && *werk_imatrix_dataset(im)) {
            s = werk_gguf_set_str(g, "quantize.imatrix.dataset", werk_imatrix_dataset(im), err);
        }
        if (s == WERK_OK) {
            s = werk_gguf_set_i32(g, "quantize.imatrix.entries_count", (int32_t)werk_imatrix_n_entries(im),
                                  err);
        }
        if (s == WERK_OK && werk_imatrix_chunk_count(im) >= 0) {
            s = werk_gguf_set_i32(g, "quantize.imatrix.chunks_count", (int32_t)werk_imatrix_chunk_count(im),
                                  err);
        }
    }
    return s;
}

// ---- measuring ------------------------------------------------------------------------------

/* Relative RMSE of dst (the written tensor) against src (its source). */
static werk_status
measure_tensor(const werk_gguf_tensor *src, const werk_gguf_tensor *dst, double *rel, werk_err *err) {
    int64_t  n_row  = src->shape[src->n_dims - 1];
    int64_t  n_rows = werk_gguf_tensor_nrows(src);
    uint64_t src_row_bytes, dst_row_bytes;
    werk_dtype_bytes(src->src_type, (uint64_t)n_row, &src_row_bytes, NULL);
    werk_dtype_bytes(dst->src_type, (uint64_t)n_row, &dst_row_bytes, NULL);
    size_t  nt  = (size_t)max_threads();
    double *e2  = calloc((size_t)n_rows, sizeof(double));
    double *x2  = calloc((size_t)n_rows, sizeof(double));
    float  *buf = malloc(nt * 2 * (size_t)n_row * sizeof(float)); // x and y rows per thread
    bool    oom = !e2 || !x2 || !buf;
    if (!oom) {
        PARALLEL_FOR_DYNAMIC
        for (int64_t r = 0; r < n_rows; r++) {
            float *x = buf + (size_t)thread_id() * 2 * (size_t)n_row, *y = x + n_row;
            werk_dequantize_row(src->src_type, (const uint8_t *)src->data + (size_t)r * src_row_bytes, x,
                                n_row);
            werk_dequantize_row(dst->src_type, (const uint8_t *)dst->data + (size_t)r * dst_row_bytes, y,
                                n_row);
            double se = 0, sx = 0;
            for (int64_t k = 0; k < n_row; k++) {
                double d = (double)y[k] - (double)x[k];
                se += d * d;
                sx += (double)x[k] * (double)x[k];
            }
            e2[r] = se;
            x2[r] = sx;
        }
    }
    double se = 0, sx = 0;
    for (int64_t r = 0; !oom && r < n_rows; r++) {
        se += e2[r];
        sx += x2[r];
    }
    free(e2);
    free(x2);
    free(buf);
    if (oom) {
        return WERK_FAIL(err, WERK_E_OOM, "measuring '%s': out of memory", src->name);
    }
    *rel = sx > 0 ? sqrt(se / sx) : (se > 0 ? INFINITY : 0.0);
    return WERK_OK;
}

static werk_status
measure(const werk_gguf *g, const char *out_path, werk_quant_report *r, bool progress, werk_err *err) {
    werk_gguf  *w;
    werk_status s = werk_gguf_read(out_path, &w, err);
    if (s) {
        werk_err_prefix(err, "reading back");
        return s;
    }
    if (werk_gguf_n_tensors(w) != werk_gguf_n_tensors(g)) {
        werk_gguf_free(w);
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: reading back: %" PRId64 " tensors, wrote %" PRId64,
                         out_path, werk_gguf_n_tensors(w), werk_gguf_n_tensors(g));
    }
    uint64_t total = 0;
    for (int64_t i = 0; i < r->n_rows; i++) {
        total += r->rows[i].rel_rmse < 0 ? r->rows[i].src_bytes : 0;
    }
    werk_progress prog;
    if (progress) {
        werk_progress_init(&prog, "measuring", total, true);
    }
    for (int64_t i = 0; i < r->n_rows && s == WERK_OK; i++) {
        werk_quant_report_row  *row = &r->rows[i];
        const werk_gguf_tensor *src = werk_gguf_tensor_at(g, i);
        const werk_gguf_tensor *dst = werk_gguf_tensor_at(w, i);
        if (strcmp(src->name, dst->name) != 0 || dst->src_type != row->choice.type) {
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: reading back: tensor %" PRId64 " is '%s' %s, wrote '%s' %s", out_path, i,
                          dst->name, werk_dtype_name(dst->src_type), src->name,
                          werk_dtype_name(row->choice.type));
            break;
        }
        if (row->rel_rmse >= 0) {
            continue;
        }
        if (werk_interrupted()) {
            s = WERK_FAIL(err, WERK_E_INTERRUPTED, "%s: interrupted while measuring", out_path);
            break;
        }
        s = measure_tensor(src, dst, &row->rel_rmse, err);
        if (progress) {
            werk_progress_add(&prog, row->src_bytes);
        }
    }
    if (s == WERK_OK && progress) {
        werk_progress_done(&prog);
    }
    werk_gguf_free(w);
    return s;
}

// ---- the job ----------------------------------------------------------------------------------

werk_status werk_quantize_run(const werk_quantize_job *job, werk_quant_report **rep, werk_err *err) {
    *rep = NULL;
    WERK_ASSERT(job && job->in && job->opts.preset && (job->dry_run || job->out));
    werk_imatrix *im = NULL;
    werk_gguf    *g  = NULL;
    werk_status   s  = WERK_OK;
    if (job->imatrix_path) {
        s = werk_imatrix_read(job->imatrix_path, &im, err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_read(job->in, &g, err);
    }
    int64_t            n    = g ? werk_gguf_n_tensors(g) : 0;
    werk_quant_choice *plan = NULL;
    werk_quant_opts    opts = job->opts;
    opts.has_imatrix        = im != NULL;
    if (s == WERK_OK) {
        plan = calloc((size_t)(n ? n : 1), sizeof(*plan));
        s    = plan ? werk_quant_plan_gguf(g, &opts, plan, err) : WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    werk_quant_report *r = NULL;
    if (s == WERK_OK) {
        s = report_init(g, &opts, plan, &r, err);
    }
    for (int64_t i = 0; s == WERK_OK && i < n; i++) {
        werk_gguf_tensor *t = werk_gguf_tensor_at_mut(g, i);
        if (!werk_dtype_can_dequantize(t->src_type) && plan[i].type != t->src_type) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor '%s': cannot convert from %s", job->in,
                          t->name, werk_dtype_name(t->src_type));
        }
        t->type = plan[i].type;
    }
    if (s == WERK_OK && im) {
        s = use_imatrix(g, r, im, job->imatrix_path, err);
    }
    if (s == WERK_OK && r->n_requant) {
        werk_log(WERK_LOG_WARN,
                 "%s: requantizing %" PRId64
                 " already quantized tensors (dequantized, then quantized again): "
                 "quality is lower than quantizing the f32/f16/bf16 original",
                 job->in, r->n_requant);
    }
    if (s == WERK_OK && r->n_fallback) {
        werk_log(WERK_LOG_WARN,
                 "%" PRId64 " of %" PRId64 " tensors use a fallback type: their rows do not fit the chosen "
                 "type's block",
                 r->n_fallback, n);
    }
    if (s == WERK_OK && !job->dry_run) {
        s = set_metadata(g, job, im, err);
        if (s == WERK_OK) {
            s = werk_gguf_write(g, job->out, job->progress, err);
        }
        struct stat st;
        if (s == WERK_OK && stat(job->out, &st) == 0) {
            r->file_bytes = (uint64_t)st.st_size;
        }
        if (s == WERK_OK && job->measure) {
            s = measure(g, job->out, r, job->progress, err);
        }
    }
    free(plan);
    werk_gguf_free(g);
    werk_imatrix_free(im);
    if (s) {
        werk_quant_report_free(r);
        return s;
    }
    *rep = r;
    return WERK_OK;
}
