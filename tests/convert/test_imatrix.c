/* tests/convert/test_imatrix.c - reading llama.cpp importance matrices, both formats
 *
 * Small files are written here, byte by byte for the legacy .dat format and through
 * werk's GGUF writer for the current format (tensors NAME.in_sum2 / NAME.counts with
 * llama-imatrix's keys), then read back: importance = in_sum2 / count per matrix (1 where
 * the count is 0), legacy values / ncall. Then hostile variants of each: every truncation,
 * sizes beyond the file, unpaired or mistyped tensors, duplicate names, negative and
 * non-finite values, trailing garbage, and random byte flips, which must fail with one
 * clear error and never crash (the ASan build runs this too).
 */
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

// the code under test
#include "convert/convert.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

// ---- legacy .dat --------------------------------------------------------------------------

typedef struct bytes {
    uint8_t p[4096];
    size_t  n;
} bytes;

static void put_i32(bytes *b, int32_t v) {
    memcpy(b->p + b->n, &v, 4);
    b->n += 4;
}

static void put_f32(bytes *b, float v) {
    memcpy(b->p + b->n, &v, 4);
    b->n += 4;
}

static void put_str(bytes *b, const char *s) {
    size_t n = strlen(s);
    put_i32(b, (int32_t)n);
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* Two entries: blk.0.attn_q.weight (4 values over ncall 2), output.weight (2 values, ncall 0). */
static size_t legacy_file(bytes *b, bool trailer) {
    memset(b, 0, sizeof(*b));
    put_i32(b, 2);
    put_str(b, "output.weight");
    put_i32(b, 0); // ncall 0: values as they are
    put_i32(b, 2);
    put_f32(b, 3.0f);
    put_f32(b, 5.0f);
    put_str(b, "blk.0.attn_q.weight");
    put_i32(b, 2);
    put_i32(b, 4);
    for (int i = 0; i < 4; i++) {
        put_f32(b, (float)(2 * (i + 1))); // 2 4 6 8 -> 1 2 3 4
    }
    size_t entries_end = b->n;
    if (trailer) {
        put_i32(b, 7); // last chunk
        put_str(b, "wiki.train.raw");
    }
    return entries_end;
}

static void test_legacy(void) {
    bytes         b;
    werk_imatrix *im  = NULL;
    werk_err      err = {0};
    for (int trailer = 0; trailer < 2; trailer++) {
        legacy_file(&b, trailer);
        werk_status s = werk_imatrix_read_mem(b.p, b.n, "t.dat", &im, &err);
        WT_CHECK(s == WERK_OK, "legacy (trailer %d): %s", trailer, err.msg);
        if (s) {
            continue;
        }
        WT_CHECK(werk_imatrix_n_entries(im) == 2, "2 entries");
        WT_CHECK(strcmp(werk_imatrix_entry_at(im, 0)->name, "blk.0.attn_q.weight") == 0, "sorted by name");
        const werk_imatrix_entry *q = werk_imatrix_find(im, "blk.0.attn_q.weight");
        WT_CHECK(q && q->n_per_row == 4 && q->n_mat == 1, "attn_q entry");
        for (int i = 0; q && i < 4; i++) {
            WT_CHECK(q->values[i] == (float)(i + 1), "value %d / ncall: %g", i, q->values[i]);
        }
        const werk_imatrix_entry *o = werk_imatrix_find(im, "output.weight");
        WT_CHECK(o && o->values[0] == 3.0f && o->values[1] == 5.0f, "ncall 0 keeps the values");
        WT_CHECK(!werk_imatrix_find(im, "blk.1.attn_q.weight"), "absent entry");
        WT_CHECK(werk_imatrix_chunk_count(im) == (trailer ? 7 : -1), "chunk count");
        WT_CHECK(strcmp(werk_imatrix_dataset(im), trailer ? "wiki.train.raw" : "") == 0, "dataset '%s'",
                 werk_imatrix_dataset(im));
        werk_imatrix_free(im);
    }
}

static void expect_bad_legacy(const bytes *b, const char *what, const char *needle) {
    werk_imatrix *im  = NULL;
    werk_err      err = {0};
    werk_status   s   = werk_imatrix_read_mem(b->p, b->n, "bad.dat", &im, &err);
    WT_CHECK(s == WERK_E_FORMAT && im == NULL, "%s: status %d", what, s);
    WT_CHECK(strstr(err.msg, "bad.dat") != NULL, "%s: error names the file: %s", what, err.msg);
    if (needle) {
        WT_CHECK(strstr(err.msg, needle) != NULL, "%s: '%s' not in: %s", what, needle, err.msg);
    }
    werk_imatrix_free(im);
}

static void test_legacy_hostile(void) {
    bytes  b, c;
    size_t entries_end = legacy_file(&b, true);
    // every truncation fails, except exactly at the end of the entries (no trailer)
    for (size_t n = 0; n < b.n; n++) {
        c   = b;
        c.n = n;
        if (n == entries_end) {
            werk_imatrix *im  = NULL;
            werk_err      err = {0};
            WT_CHECK(werk_imatrix_read_mem(c.p, c.n, "cut.dat", &im, &err) == WERK_OK, "cut at entries end");
            werk_imatrix_free(im);
            continue;
        }
        werk_imatrix *im  = NULL;
        werk_err      err = {0};
        werk_status   s   = werk_imatrix_read_mem(c.p, c.n, "cut.dat", &im, &err);
        WT_CHECK(s == WERK_E_FORMAT && !im, "truncated at %zu of %zu: %d", n, b.n, s);
        werk_imatrix_free(im);
    }
    // field by field: offsets in legacy_file(): 0 n_entries, 4 len, 8 name (13 bytes),
    // 21 ncall, 25 nval, 29 values
    struct {
        size_t      off;
        int32_t     v;
        const char *what, *needle;
    } fields[] = {
        {0, 0, "zero entries", "entries"},
        {0, -1, "negative entries", "entries"},
        {0, 0x7fffffff, "entries beyond the file", "entries"},
        {4, 0, "empty name", "name length"},
        {4, -5, "negative name length", "name length"},
        {4, 100000, "name beyond the file", "name length"},
        {25, 0, "zero values", "value count"},
        {25, -1, "negative value count", "value count"},
        {25, 0x40000000, "values beyond the file", "value count"},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        legacy_file(&c, true);
        memcpy(c.p + fields[i].off, &fields[i].v, 4);
        expect_bad_legacy(&c, fields[i].what, fields[i].needle);
    }
    legacy_file(&c, true);
    c.p[10] = 0; // a NUL inside "output.weight"
    expect_bad_legacy(&c, "NUL in a name", "NUL");
    legacy_file(&c, true);
    float v = -1.0f;
    memcpy(c.p + 29, &v, 4);
    expect_bad_legacy(&c, "negative value", "value 0");
    legacy_file(&c, true);
    v = NAN;
    memcpy(c.p + 33, &v, 4);
    expect_bad_legacy(&c, "NaN value", "value 1");
    legacy_file(&c, true);
    v = INFINITY;
    memcpy(c.p + 33, &v, 4);
    expect_bad_legacy(&c, "infinite value", "value 1");
    legacy_file(&c, false);
    c.p[c.n++] = 1; // garbage after the entries, shorter than a trailer
    c.p[c.n++] = 2;
    c.p[c.n++] = 3;
    expect_bad_legacy(&c, "trailing garbage", "after the last entry");
    legacy_file(&c, true);
    c.p[c.n++] = 'x'; // one byte more than the dataset length says
    expect_bad_legacy(&c, "dataset length", "after the last entry");
    // duplicate names
    memset(&c, 0, sizeof(c));
    put_i32(&c, 2);
    for (int i = 0; i < 2; i++) {
        put_str(&c, "a.weight");
        put_i32(&c, 1);
        put_i32(&c, 1);
        put_f32(&c, 1.0f);
    }
    expect_bad_legacy(&c, "duplicate names", "duplicate");
    // nothing at all
    werk_imatrix *im  = NULL;
    werk_err      err = {0};
    WT_CHECK(werk_imatrix_read_mem(NULL, 0, "empty.dat", &im, &err) == WERK_E_FORMAT, "empty file");
    WT_CHECK(werk_imatrix_read("/nonexistent/x.imatrix", &im, &err) == WERK_E_IO, "missing file: %s",
             err.msg);
}

// ---- GGUF ----------------------------------------------------------------------------------

typedef struct gspec {
    const char *general_type; // NULL: no key
    bool        chunk_count;  // write imatrix.chunk_count
    int         sum2_type;    // werk_dtype of the in_sum2 tensors
    bool        drop_counts;  // leave out blk.0.attn_q.weight.counts
    bool        drop_sum2;    // leave out blk.1.ffn_down_exps.weight.in_sum2
    int         n_counts_exp; // counts of the expert entry (2 = right)
    float       neg_value;    // written into the first in_sum2 value (0 = leave)
    float       count0;       // count of attn_q (default 4)
} gspec;

static float    qsum2[8]  = {4, 8, 12, 16, 20, 24, 28, 32}; // attn_q: one matrix of 8
static float    esum2[6]  = {2, 4, 6, 1, 1, 1};             // experts: 2 matrices of 3
static float    ecount[2] = {2, 0};                         // the second expert saw nothing
static uint16_t qsum2_f16[8];

static werk_status write_gguf(const char *path, const gspec *sp, werk_err *err) {
    werk_gguf  *g = werk_gguf_init();
    werk_status s = g ? WERK_OK : WERK_E_OOM;
    if (s == WERK_OK && sp->general_type) {
        s = werk_gguf_set_str(g, "general.type", sp->general_type, err);
    }
    const char *ds[] = {"calibration.txt", "more.txt"};
    if (s == WERK_OK) {
        s = werk_gguf_set_arr_str(g, "imatrix.datasets", ds, NULL, 2, err);
    }
    if (s == WERK_OK && sp->chunk_count) {
        s = werk_gguf_set_u32(g, "imatrix.chunk_count", 12, err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_set_u32(g, "imatrix.chunk_size", 512, err);
    }
    static float q[8], qc[1];
    memcpy(q, qsum2, sizeof(q));
    if (sp->neg_value != 0.0f) {
        q[0] = sp->neg_value;
    }
    qc[0]            = sp->count0 != 0.0f ? sp->count0 : 4.0f;
    int64_t shape8[] = {8}, shape1[] = {1}, shape23[] = {2, 3}, shape21[] = {2, 1}, shape3[] = {3};
    if (s == WERK_OK) {
        if (sp->sum2_type == WERK_DTYPE_F16) {
            for (int i = 0; i < 8; i++) {
                qsum2_f16[i] = werk_fp32_to_fp16(q[i]);
            }
            s = werk_gguf_add_tensor(g, "blk.0.attn_q.weight.in_sum2", WERK_DTYPE_F16, 1, shape8, qsum2_f16,
                                     16, NULL, err);
        } else {
            s = werk_gguf_add_tensor(g, "blk.0.attn_q.weight.in_sum2", WERK_DTYPE_F32, 1, shape8, q, 32, NULL,
                                     err);
        }
    }
    if (s == WERK_OK && !sp->drop_counts) {
        s = werk_gguf_add_tensor(g, "blk.0.attn_q.weight.counts", WERK_DTYPE_F32, 1, shape1, qc, 4, NULL,
                                 err);
    }
    if (s == WERK_OK && !sp->drop_sum2) {
        s = werk_gguf_add_tensor(g, "blk.1.ffn_down_exps.weight.in_sum2", WERK_DTYPE_F32, 2, shape23, esum2,
                                 24, NULL, err);
    }
    if (s == WERK_OK) {
        if (sp->n_counts_exp == 2) {
            s = werk_gguf_add_tensor(g, "blk.1.ffn_down_exps.weight.counts", WERK_DTYPE_F32, 2, shape21,
                                     ecount, 8, NULL, err);
        } else {
            static float three[3] = {1, 1, 1};
            s = werk_gguf_add_tensor(g, "blk.1.ffn_down_exps.weight.counts", WERK_DTYPE_F32, 1, shape3, three,
                                     12, NULL, err);
        }
    }
    static float other[3] = {1, 2, 3};
    if (s == WERK_OK) { // ignored tensors (llama-imatrix writes NAME.in_sum too)
        s = werk_gguf_add_tensor(g, "blk.0.attn_q.weight.in_sum", WERK_DTYPE_F32, 1, shape3, other, 12, NULL,
                                 err);
    }
    if (s == WERK_OK) {
        s = werk_gguf_write(g, path, false, err);
    }
    werk_gguf_free(g);
    return s;
}

static const gspec good_spec = {
    .general_type = "imatrix", .chunk_count = true, .sum2_type = WERK_DTYPE_F32, .n_counts_exp = 2};

static void test_gguf(void) {
    char     path[512];
    werk_err err = {0};
    wt_tmp(path, sizeof(path), "imatrix_good.gguf");
    WT_CHECK(write_gguf(path, &good_spec, &err) == WERK_OK, "writing: %s", err.msg);
    werk_imatrix *im = NULL;
    werk_status   s  = werk_imatrix_read(path, &im, &err);
    WT_CHECK(s == WERK_OK, "reading: %s", err.msg);
    if (s) {
        return;
    }
    WT_CHECK(werk_imatrix_n_entries(im) == 2, "two entries (in_sum ignored)");
    const werk_imatrix_entry *q = werk_imatrix_find(im, "blk.0.attn_q.weight");
    WT_CHECK(q && q->n_per_row == 8 && q->n_mat == 1, "attn_q: %lld x %lld", q ? (long long)q->n_mat : -1,
             q ? (long long)q->n_per_row : -1);
    for (int i = 0; q && i < 8; i++) {
        WT_CHECK(q->values[i] == qsum2[i] / 4.0f, "attn_q value %d = in_sum2 / count: %g", i, q->values[i]);
    }
    const werk_imatrix_entry *e = werk_imatrix_find(im, "blk.1.ffn_down_exps.weight");
    WT_CHECK(e && e->n_per_row == 3 && e->n_mat == 2, "experts: 2 matrices of 3");
    if (e) {
        WT_CHECK(e->values[0] == 1.0f && e->values[1] == 2.0f && e->values[2] == 3.0f, "expert 0 / count 2");
        WT_CHECK(e->values[3] == 1.0f && e->values[4] == 1.0f && e->values[5] == 1.0f,
                 "expert 1: count 0 -> 1");
    }
    WT_CHECK(werk_imatrix_chunk_count(im) == 12, "chunk count");
    WT_CHECK(strcmp(werk_imatrix_dataset(im), "calibration.txt") == 0, "dataset");
    werk_imatrix_free(im);

    // without general.type (older llama-imatrix builds) it is still an imatrix
    gspec sp        = good_spec;
    sp.general_type = NULL;
    WT_CHECK(write_gguf(path, &sp, &err) == WERK_OK && werk_imatrix_read(path, &im, &err) == WERK_OK,
             "no general.type: %s", err.msg);
    werk_imatrix_free(im);
}

static void expect_bad_gguf(const gspec *sp, const char *what, const char *needle) {
    char     path[512];
    werk_err err = {0};
    wt_tmp(path, sizeof(path), "imatrix_bad.gguf");
    WT_CHECK(write_gguf(path, sp, &err) == WERK_OK, "%s: writing: %s", what, err.msg);
    werk_imatrix *im = NULL;
    werk_status   s  = werk_imatrix_read(path, &im, &err);
    WT_CHECK(s == WERK_E_FORMAT && !im, "%s: status %d", what, s);
    WT_CHECK(strstr(err.msg, needle) != NULL, "%s: '%s' not in: %s", what, needle, err.msg);
    werk_imatrix_free(im);
}

static void test_gguf_hostile(void) {
    gspec sp        = good_spec;
    sp.general_type = "model";
    expect_bad_gguf(&sp, "a model, not an imatrix", "not an imatrix");
    sp             = good_spec;
    sp.chunk_count = false;
    expect_bad_gguf(&sp, "no imatrix.chunk_count", "imatrix.chunk_count");
    sp           = good_spec;
    sp.sum2_type = WERK_DTYPE_F16;
    expect_bad_gguf(&sp, "f16 in_sum2", "expected f32");
    sp             = good_spec;
    sp.drop_counts = true;
    expect_bad_gguf(&sp, "in_sum2 without counts", "no matching .counts");
    sp           = good_spec;
    sp.drop_sum2 = true;
    expect_bad_gguf(&sp, "counts without in_sum2", "no matching .in_sum2");
    sp              = good_spec;
    sp.n_counts_exp = 3;
    expect_bad_gguf(&sp, "3 counts for 2 matrices", "3 counts for 2 matrices");
    sp           = good_spec;
    sp.neg_value = -4.0f;
    expect_bad_gguf(&sp, "negative sum", "must be finite");
    sp           = good_spec;
    sp.neg_value = NAN;
    expect_bad_gguf(&sp, "NaN sum", "must be finite");
    sp        = good_spec;
    sp.count0 = -1.0f;
    expect_bad_gguf(&sp, "negative count", "count 0");
    sp        = good_spec;
    sp.count0 = 1e-44f; // a tiny count overflows the quotient
    expect_bad_gguf(&sp, "overflowing quotient", "must be finite");

    // a GGUF without any in_sum2 tensor
    char     path[512];
    werk_err err = {0};
    wt_tmp(path, sizeof(path), "imatrix_none.gguf");
    werk_gguf *g = werk_gguf_init();
    werk_gguf_set_u32(g, "imatrix.chunk_count", 1, &err);
    werk_gguf_set_u32(g, "imatrix.chunk_size", 1, &err);
    static float one[1] = {1};
    int64_t      sh[]   = {1};
    werk_gguf_add_tensor(g, "x.weight", WERK_DTYPE_F32, 1, sh, one, 4, NULL, &err);
    WT_CHECK(werk_gguf_write(g, path, false, &err) == WERK_OK, "write: %s", err.msg);
    werk_gguf_free(g);
    werk_imatrix *im = NULL;
    WT_CHECK(werk_imatrix_read(path, &im, &err) == WERK_E_FORMAT && strstr(err.msg, "in_sum2"),
             "no entries: %s", err.msg);

    // random byte flips of a good file: any outcome but a crash; failures name the file
    wt_tmp(path, sizeof(path), "imatrix_good.gguf");
    WT_CHECK(write_gguf(path, &good_spec, &err) == WERK_OK, "write");
    char  *data = NULL;
    size_t size = 0;
    WT_CHECK(werk_read_file(path, 1 << 20, &data, &size, &err) == WERK_OK, "read back");
    uint32_t rng  = 12345;
    int      n_ok = 0, n_bad = 0;
    for (int it = 0; data && it < 3000; it++) {
        char *copy = malloc(size);
        memcpy(copy, data, size);
        for (int k = 0; k < 1 + it % 4; k++) {
            rng        = rng * 1103515245u + 12345u;
            size_t off = (rng >> 8) % size;
            rng        = rng * 1103515245u + 12345u;
            copy[off]  = (char)(rng >> 16);
        }
        werk_err    e2 = {0};
        werk_status s  = werk_imatrix_read_mem(copy, size, "flip.gguf", &im, &e2);
        if (s == WERK_OK) {
            n_ok++;
            werk_imatrix_free(im);
        } else {
            n_bad++;
            if (!strstr(e2.msg, "flip.gguf") && n_bad < 5) {
                WT_CHECK(strstr(e2.msg, "flip.gguf") != NULL, "flip error without the file name: %s", e2.msg);
            }
        }
        free(copy);
    }
    WT_CHECK(n_bad > 0, "byte flips: %d ok, %d rejected", n_ok, n_bad);
    free(data);
}

int main(void) {
    test_legacy();
    test_legacy_hostile();
    test_gguf();
    test_gguf_hostile();
    return wt_done();
}
