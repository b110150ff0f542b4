/* train/checkpoint.c - training checkpoints: one zstd-compressed file per save, written
 * atomically, validated whole on load
 *
 * A checkpoint holds everything a run needs to continue bit-exactly: the adapter's flat
 * parameters, the optimizer moments, the step, the data cursor (epoch and index into that
 * epoch's shuffled row order), the RNG state, early-stop bookkeeping and the loss log so
 * far, plus the hyper-parameters that must be equal on resume (checked field by field).
 * The file is a single zstd frame with a content checksum; inside, little-endian:
 *
 *   OFFSET  SIZE    DESCRIPTION
 *   0       8       magic "WERKCKPT"
 *   8       4       version (1)
 *   12      4       zero
 *   16      104     hp: n_params, rank (i64); alpha (f32 bits), slot_mask, rslora, optim (u32);
 *                   batch, seq, grad_accum, n_train_rows (i64); seed (u64)
 *   120     128     data SHA-256 hex (64 bytes), base model SHA-256 hex (64 bytes)
 *   248     72      state: step, epoch, cursor (i64); rng (u64); best_val (f64); best_step,
 *                   n_bad_evals, tokens_seen, n_log (i64)
 *   320     40*n_log  log records: step (i64), train_loss, val_loss, lr, tok_per_s (f64)
 *   ...     4*n_params x 3   params, m, v (f32)
 *
 * Files are named step-NNNNNNNN.ckpt.zst in <out>/checkpoints/.
 */
#define _POSIX_C_SOURCE 200809L
#include "train/train_int.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#define CKPT_MAGIC "WERKCKPT"
#define CKPT_VERSION 1u
#define CKPT_FIXED_BYTES 320
#define CKPT_LOG_REC 40

// ---- little-endian packing ---------------------------------------------------------------

static void put_u32(uint8_t *p, uint32_t x) {
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(x >> (8 * i));
    }
}
static void put_u64(uint8_t *p, uint64_t x) {
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(x >> (8 * i));
    }
}
static void put_f64(uint8_t *p, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    put_u64(p, u);
}
static uint32_t get_u32(const uint8_t *p) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        x |= (uint32_t)p[i] << (8 * i);
    }
    return x;
}
static uint64_t get_u64(const uint8_t *p) {
    uint64_t x = 0;
    for (int i = 0; i < 8; i++) {
        x |= (uint64_t)p[i] << (8 * i);
    }
    return x;
}
static double get_f64(const uint8_t *p) {
    uint64_t u = get_u64(p);
    double   x;
    memcpy(&x, &u, 8);
    return x;
}

static bool host_is_little_endian(void) {
    const uint32_t one = 1;
    uint8_t        b;
    memcpy(&b, &one, 1);
    return b == 1;
}

static void pack_fixed(uint8_t *b, const werk_ckpt_hp *hp, const werk_ckpt_state *st) {
    memset(b, 0, CKPT_FIXED_BYTES);
    memcpy(b, CKPT_MAGIC, 8);
    put_u32(b + 8, CKPT_VERSION);
    put_u64(b + 16, (uint64_t)hp->n_params);
    put_u64(b + 24, (uint64_t)hp->rank);
    uint32_t alpha_bits;
    memcpy(&alpha_bits, &hp->alpha, 4);
    put_u32(b + 32, alpha_bits);
    put_u32(b + 36, hp->slot_mask);
    put_u32(b + 40, hp->rslora);
    put_u32(b + 44, hp->optim);
    put_u64(b + 48, (uint64_t)hp->batch);
    put_u64(b + 56, (uint64_t)hp->seq);
    put_u64(b + 64, (uint64_t)hp->grad_accum);
    put_u64(b + 72, (uint64_t)hp->n_train_rows);
    put_u64(b + 80, hp->seed);
    // 88..119 reserved (zero)
    memcpy(b + 120, hp->data_hash, 64);
    memcpy(b + 184, hp->base_hash, 64);
    put_u64(b + 248, (uint64_t)st->step);
    put_u64(b + 256, (uint64_t)st->epoch);
    put_u64(b + 264, (uint64_t)st->cursor);
    put_u64(b + 272, st->rng);
    put_f64(b + 280, st->best_val);
    put_u64(b + 288, (uint64_t)st->best_step);
    put_u64(b + 296, (uint64_t)st->n_bad_evals);
    put_u64(b + 304, (uint64_t)st->tokens_seen);
    put_u64(b + 312, (uint64_t)st->log.n);
}

static void unpack_hp(const uint8_t *b, werk_ckpt_hp *hp) {
    memset(hp, 0, sizeof(*hp));
    hp->n_params        = (int64_t)get_u64(b + 16);
    hp->rank            = (int64_t)get_u64(b + 24);
    uint32_t alpha_bits = get_u32(b + 32);
    memcpy(&hp->alpha, &alpha_bits, 4);
    hp->slot_mask    = get_u32(b + 36);
    hp->rslora       = get_u32(b + 40);
    hp->optim        = get_u32(b + 44);
    hp->batch        = (int64_t)get_u64(b + 48);
    hp->seq          = (int64_t)get_u64(b + 56);
    hp->grad_accum   = (int64_t)get_u64(b + 64);
    hp->n_train_rows = (int64_t)get_u64(b + 72);
    hp->seed         = get_u64(b + 80);
    memcpy(hp->data_hash, b + 120, 64);
    memcpy(hp->base_hash, b + 184, 64);
    hp->data_hash[64] = hp->base_hash[64] = 0;
}

// ---- writing -----------------------------------------------------------------------------

typedef struct zwriter {
    werk_afile *af;
    ZSTD_CCtx  *cctx;
    uint8_t    *out;
    size_t      out_cap;
} zwriter;

static werk_status zw_put(zwriter *w, const void *data, size_t n, ZSTD_EndDirective mode, werk_err *err) {
    ZSTD_inBuffer in = {data, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->out, w->out_cap, 0};
        size_t         rc  = ZSTD_compressStream2(w->cctx, &out, &in, mode);
        if (ZSTD_isError(rc)) {
            return WERK_FAIL(err, WERK_E_IO, "%s: zstd: %s", w->af->path, ZSTD_getErrorName(rc));
        }
        if (out.pos) {
            werk_status st = werk_afile_write(w->af, w->out, out.pos, err);
            if (st) {
                return st;
            }
        }
        bool done = mode == ZSTD_e_end ? rc == 0 : in.pos == in.size;
        if (done) {
            return WERK_OK;
        }
    }
}

werk_status werk_ckpt_save(const char            *path,
                           const werk_ckpt_hp    *hp,
                           const werk_ckpt_state *st,
                           const float           *params,
                           const float           *m,
                           const float           *v,
                           werk_err              *err) {
    if (!host_is_little_endian()) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "checkpoint: big-endian hosts are not supported");
    }
    uint8_t fixed[CKPT_FIXED_BYTES];
    pack_fixed(fixed, hp, st);
    werk_afile af = {0};
    zwriter    w  = {&af, ZSTD_createCCtx(), NULL, ZSTD_CStreamOutSize()};
    w.out         = malloc(w.out_cap);
    werk_status s = WERK_OK;
    if (!w.cctx || !w.out) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: cannot set up zstd", path);
    }
    if (!s && (ZSTD_isError(ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_compressionLevel, 3)) ||
               ZSTD_isError(ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_checksumFlag, 1)))) {
        s = WERK_FAIL(err, WERK_E_IO, "%s: cannot set zstd parameters", path);
    }
    if (!s) {
        s = werk_afile_open(&af, path, err);
    }
    if (!s) {
        s = zw_put(&w, fixed, sizeof(fixed), ZSTD_e_continue, err);
    }
    for (int64_t i = 0; !s && i < st->log.n; i++) {
        const werk_loss_rec *r = &st->log.recs[i];
        uint8_t              rec[CKPT_LOG_REC];
        put_u64(rec, (uint64_t)r->step);
        put_f64(rec + 8, r->train_loss);
        put_f64(rec + 16, r->val_loss);
        put_f64(rec + 24, r->lr);
        put_f64(rec + 32, r->tok_per_s);
        s = zw_put(&w, rec, sizeof(rec), ZSTD_e_continue, err);
    }
    const float *arrays[3] = {params, m, v};
    for (int k = 0; !s && k < 3; k++) {
        s = zw_put(&w, arrays[k], (size_t)hp->n_params * sizeof(float), ZSTD_e_continue, err);
    }
    if (!s) {
        s = zw_put(&w, NULL, 0, ZSTD_e_end, err);
    }
    if (!s) {
        s = werk_afile_commit(&af, err);
    } else {
        werk_afile_abort(&af);
    }
    ZSTD_freeCCtx(w.cctx);
    free(w.out);
    return s;
}

// ---- reading -----------------------------------------------------------------------------

typedef struct zreader {
    const char   *path;
    FILE         *f;
    ZSTD_DCtx    *dctx;
    uint8_t      *in_buf;
    size_t        in_cap;
    ZSTD_inBuffer in;
    size_t        last_rc; // last ZSTD_decompressStream result: 0 = frame complete
    bool          file_eof;
} zreader;

/* Fills dst with exactly n decompressed bytes; a short read is "truncated". */
static werk_status zr_get(zreader *r, void *dst, size_t n, werk_err *err) {
    ZSTD_outBuffer out = {dst, n, 0};
    while (out.pos < out.size) {
        if (r->in.pos == r->in.size && !r->file_eof) {
            size_t got = fread(r->in_buf, 1, r->in_cap, r->f);
            if (got == 0) {
                if (ferror(r->f)) {
                    return WERK_FAIL(err, WERK_E_IO, "%s: read error: %s", r->path, strerror(errno));
                }
                r->file_eof = true;
            }
            r->in = (ZSTD_inBuffer){r->in_buf, got, 0};
        }
        size_t before_in = r->in.pos, before_out = out.pos;
        size_t rc = ZSTD_decompressStream(r->dctx, &out, &r->in);
        if (ZSTD_isError(rc)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint is corrupt (zstd: %s)", r->path,
                             ZSTD_getErrorName(rc));
        }
        r->last_rc = rc;
        if (out.pos < out.size && r->in.pos == before_in && out.pos == before_out && r->file_eof) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint is truncated", r->path);
        }
        if (rc == 0 && out.pos < out.size) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint is truncated (frame ends early)", r->path);
        }
    }
    return WERK_OK;
}

/* After the last expected byte: the frame must end there (checksum verified) and nothing
 * may follow it. */
static werk_status zr_finish(zreader *r, werk_err *err) {
    uint8_t extra;
    while (r->last_rc != 0) {
        ZSTD_outBuffer out = {&extra, 1, 0};
        if (r->in.pos == r->in.size && !r->file_eof) {
            size_t got = fread(r->in_buf, 1, r->in_cap, r->f);
            if (got == 0) {
                r->file_eof = true;
            }
            r->in = (ZSTD_inBuffer){r->in_buf, got, 0};
        }
        size_t before = r->in.pos;
        size_t rc     = ZSTD_decompressStream(r->dctx, &out, &r->in);
        if (ZSTD_isError(rc)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint is corrupt (zstd: %s)", r->path,
                             ZSTD_getErrorName(rc));
        }
        if (out.pos) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint has more data than its header says",
                             r->path);
        }
        r->last_rc = rc;
        if (rc != 0 && r->file_eof && r->in.pos == before) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint is truncated (no frame end)", r->path);
        }
    }
    if (r->in.pos < r->in.size || fgetc(r->f) != EOF) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: trailing bytes after the checkpoint", r->path);
    }
    return WERK_OK;
}

static werk_status
check_hp(const char *path, const werk_ckpt_hp *got, const werk_ckpt_hp *want, werk_err *err) {
#define HP_INT(field, flag)                                                                                  \
    if (got->field != want->field) {                                                                         \
        return WERK_FAIL(err, WERK_E_ARG,                                                                    \
                         "%s: checkpoint has %s %lld, this run %lld (resume with the same " flag ")", path,  \
                         #field, (long long)got->field, (long long)want->field);                             \
    }
    HP_INT(rank, "--rank")
    HP_INT(slot_mask, "--targets")
    HP_INT(rslora, "--rslora")
    HP_INT(optim, "--optimizer")
    HP_INT(batch, "--batch")
    HP_INT(seq, "--seq")
    HP_INT(grad_accum, "--grad-accum")
    HP_INT(n_params, "model and adapter shape")
    HP_INT(n_train_rows, "data and data flags")
    HP_INT(seed, "--seed")
#undef HP_INT
    if (memcmp(&got->alpha, &want->alpha, sizeof(float)) != 0) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "%s: checkpoint has alpha %g, this run %g (resume with the same --alpha)", path,
                         (double)got->alpha, (double)want->alpha);
    }
    if (strcmp(got->data_hash, want->data_hash) != 0) {
        return WERK_FAIL(
            err, WERK_E_ARG,
            "%s: the training data changed since this checkpoint (sha256 %.12s..., now %.12s...)", path,
            got->data_hash, want->data_hash);
    }
    if (strcmp(got->base_hash, want->base_hash) != 0) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "%s: the base model changed since this checkpoint (sha256 %.12s..., now %.12s...)",
                         path, got->base_hash, want->base_hash);
    }
    return WERK_OK;
}

werk_status werk_ckpt_load(const char         *path,
                           const werk_ckpt_hp *expect,
                           werk_ckpt_state    *st,
                           float              *params,
                           float              *m,
                           float              *v,
                           werk_err           *err) {
    memset(st, 0, sizeof(*st));
    if (!host_is_little_endian()) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "checkpoint: big-endian hosts are not supported");
    }
    zreader r = {.path = path, .last_rc = 1};
    r.f       = fopen(path, "rb");
    if (!r.f) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open checkpoint: %s", path, strerror(errno));
    }
    r.dctx        = ZSTD_createDCtx();
    r.in_cap      = ZSTD_DStreamInSize();
    r.in_buf      = malloc(r.in_cap);
    werk_status s = WERK_OK;
    if (!r.dctx || !r.in_buf) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: cannot set up zstd", path);
    } else if (ZSTD_isError(ZSTD_DCtx_setParameter(r.dctx, ZSTD_d_windowLogMax, 27))) {
        s = WERK_FAIL(err, WERK_E_IO, "%s: cannot set zstd parameters", path);
    }
    uint8_t fixed[CKPT_FIXED_BYTES];
    if (!s) {
        s = zr_get(&r, fixed, sizeof(fixed), err);
    }
    if (!s && memcmp(fixed, CKPT_MAGIC, 8) != 0) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: not a werk checkpoint (bad magic)", path);
    }
    if (!s && get_u32(fixed + 8) != CKPT_VERSION) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: checkpoint version %u, this werk reads %u", path,
                      get_u32(fixed + 8), CKPT_VERSION);
    }
    werk_ckpt_hp got;
    if (!s) {
        unpack_hp(fixed, &got);
        s = check_hp(path, &got, expect, err);
    }
    int64_t n_log = 0;
    if (!s) {
        st->step        = (int64_t)get_u64(fixed + 248);
        st->epoch       = (int64_t)get_u64(fixed + 256);
        st->cursor      = (int64_t)get_u64(fixed + 264);
        st->rng         = get_u64(fixed + 272);
        st->best_val    = get_f64(fixed + 280);
        st->best_step   = (int64_t)get_u64(fixed + 288);
        st->n_bad_evals = (int64_t)get_u64(fixed + 296);
        st->tokens_seen = (int64_t)get_u64(fixed + 304);
        n_log           = (int64_t)get_u64(fixed + 312);
        if (st->step < 0 || st->epoch < 0 || st->cursor < 0 || st->cursor > expect->n_train_rows ||
            n_log < 0 || n_log > st->step + 1 || st->tokens_seen < 0) {
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: checkpoint state out of range (step %lld, epoch %lld, "
                          "cursor %lld, %lld log records)",
                          path, (long long)st->step, (long long)st->epoch, (long long)st->cursor,
                          (long long)n_log);
        }
    }
    for (int64_t i = 0; !s && i < n_log; i++) { // grows with the bytes actually present
        uint8_t rec[CKPT_LOG_REC];
        s = zr_get(&r, rec, sizeof(rec), err);
        if (!s) {
            werk_loss_rec lr = {(int64_t)get_u64(rec), get_f64(rec + 8), get_f64(rec + 16), get_f64(rec + 24),
                                get_f64(rec + 32)};
            s                = werk_loss_log_add(&st->log, &lr, err);
        }
    }
    float *arrays[3] = {params, m, v};
    for (int k = 0; !s && k < 3; k++) {
        s = zr_get(&r, arrays[k], (size_t)expect->n_params * sizeof(float), err);
    }
    if (!s) {
        s = zr_finish(&r, err);
    }
    if (s) {
        werk_loss_log_free(&st->log);
    }
    ZSTD_freeDCtx(r.dctx);
    free(r.in_buf);
    fclose(r.f);
    return s;
}

// ---- finding the newest checkpoint ----------------------------------------------------------

/* Highest step-N.ckpt.zst in dir; *best_step -1 if none. */
static werk_status newest_in(const char *dir, char **path, long long *best_step, werk_err *err) {
    DIR *d = opendir(dir);
    if (!d) {
        return WERK_OK;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long n   = -1;
        int       len = 0;
        if (sscanf(e->d_name, "step-%lld.ckpt.zst%n", &n, &len) == 1 && len > 0 && e->d_name[len] == 0 &&
            n > *best_step) {
            size_t need = strlen(dir) + strlen(e->d_name) + 2;
            char  *p    = malloc(need);
            if (!p) {
                closedir(d);
                return WERK_FAIL(err, WERK_E_OOM, "out of memory");
            }
            snprintf(p, need, "%s/%s", dir, e->d_name);
            free(*path);
            *path      = p;
            *best_step = n;
        }
    }
    closedir(d);
    return WERK_OK;
}

werk_status werk_ckpt_find(const char *dir, char **path, werk_err *err) {
    *path = NULL;
    struct stat sb;
    if (stat(dir, &sb) != 0) {
        return WERK_FAIL(err, WERK_E_IO, "--resume %s: %s", dir, strerror(errno));
    }
    if (S_ISREG(sb.st_mode)) {
        *path = strdup(dir);
        return *path ? WERK_OK : WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    size_t need = strlen(dir) + 16;
    char  *sub  = malloc(need);
    if (!sub) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    snprintf(sub, need, "%s/checkpoints", dir);
    long long   best = -1;
    werk_status s    = newest_in(sub, path, &best, err);
    free(sub);
    if (!s && best < 0) {
        s = newest_in(dir, path, &best, err);
    }
    if (!s && best < 0) {
        s = WERK_FAIL(err, WERK_E_IO,
                      "--resume %s: no checkpoint (step-N.ckpt.zst) there or in its checkpoints/", dir);
    }
    return s;
}
