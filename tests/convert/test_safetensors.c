/* tests/convert/test_safetensors.c - safetensors reader/writer (convert/safetensors.c)
 *
 * Round trip of every dtype (bool and u8 included), a 0-d scalar, an empty tensor and
 * metadata; f32 -> f16/bf16 conversion, row_map and add on write; sharded checkpoints
 * through an index and a folder (with every index inconsistency as a negative); and the
 * reference implementation's rules as named negatives, each a clean WERK_E_FORMAT with a
 * one-line message naming the file, plus truncation at every byte of a small valid file.
 * Leaves $WERK_TEST_TMP/werk_written.safetensors + werk_written.manifest.json for
 * test_safetensors_oracle.py (the Python `safetensors` package reads them back).
 */
#include "convert/convert.h"
#include "werk_test.h"

#include <inttypes.h>

// ---- helpers ---------------------------------------------------------------------------

static werk_err g_err;

static werk_err *err0(void) {
    memset(&g_err, 0, sizeof(g_err));
    return &g_err;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    WT_CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n         = fread(b, 1, (size_t)sz, f);
    fclose(f);
    return b;
}

/* 8-byte length + header + data_len bytes (0x5a) into a malloc'd buffer. */
static uint8_t *make_st(const char *header, size_t hn, size_t data_len, uint64_t n_override, size_t *size) {
    uint64_t n = n_override ? n_override : hn;
    *size      = 8 + hn + data_len;
    uint8_t *b = malloc(*size);
    for (int i = 0; i < 8; i++) {
        b[i] = (uint8_t)(n >> (8 * i));
    }
    memcpy(b + 8, header, hn);
    memset(b + 8 + hn, 0x5a, data_len);
    return b;
}

static const char *NEG_NAME = "/data/neg.safetensors";

/* Expects werk_st_read_mem to fail with `code` and a one-line message naming the file and
 * containing `needle`. */
static void expect_fail_n(const char *label,
                          const char *header,
                          size_t      hn,
                          size_t      data_len,
                          uint64_t    n_override,
                          werk_status code,
                          const char *needle) {
    size_t      size;
    uint8_t    *b  = make_st(header, hn, data_len, n_override, &size);
    werk_st    *st = (werk_st *)1;
    werk_status s  = werk_st_read_mem(b, size, NEG_NAME, &st, err0());
    WT_CHECK(s == code, "%s: status %d (want %d): %s", label, (int)s, (int)code, g_err.msg);
    WT_CHECK(st == NULL, "%s: table returned with an error", label);
    if (s != WERK_OK) {
        WT_CHECK(strncmp(g_err.msg, NEG_NAME, strlen(NEG_NAME)) == 0,
                 "%s: message does not name the file: %s", label, g_err.msg);
        WT_CHECK(strchr(g_err.msg, '\n') == NULL, "%s: message is not one line: %s", label, g_err.msg);
        WT_CHECK(!needle || strstr(g_err.msg, needle), "%s: message '%s' lacks '%s'", label, g_err.msg,
                 needle);
    } else {
        werk_st_free(st);
    }
    free(b);
}

static void expect_fail(const char *label,
                        const char *header,
                        size_t      data_len,
                        uint64_t    n_override,
                        werk_status code,
                        const char *needle) {
    expect_fail_n(label, header, strlen(header), data_len, n_override, code, needle);
}

static void expect_ok_mem(const char *label, const char *header, size_t data_len, int64_t n_tensors) {
    size_t      size;
    uint8_t    *b  = make_st(header, strlen(header), data_len, 0, &size);
    werk_st    *st = NULL;
    werk_status s  = werk_st_read_mem(b, size, NEG_NAME, &st, err0());
    WT_CHECK(s == WERK_OK, "%s: %s", label, g_err.msg);
    WT_CHECK(werk_st_n_tensors(st) == n_tensors, "%s: %" PRId64 " tensors", label, werk_st_n_tensors(st));
    werk_st_free(st);
    free(b);
}

static werk_gguf_tensor
mk(const char *name, werk_dtype type, int n_dims, const int64_t *shape, const void *data) {
    werk_gguf_tensor t;
    memset(&t, 0, sizeof(t));
    t.name     = name;
    t.type     = type;
    t.src_type = type;
    t.n_dims   = n_dims;
    for (int d = 0; d < WERK_MAX_DIMS; d++) {
        t.shape[d] = d < n_dims ? shape[d] : 1;
    }
    t.data = data;
    return t;
}

// ---- round trip ------------------------------------------------------------------------

enum { N_RT = 13 };

typedef struct rt_case {
    const char *name;
    werk_dtype  type;
    const char *st_dtype;
    int         n_dims;
    int64_t     shape[4];
    size_t      nbytes;
} rt_case;

static const rt_case RT[N_RT] = {
    {"f64.weight", WERK_DTYPE_F64, "F64", 2, {3, 5}, 3 * 5 * 8},
    {"f32.weight", WERK_DTYPE_F32, "F32", 3, {2, 3, 4}, 2 * 3 * 4 * 4},
    {"f16.weight", WERK_DTYPE_F16, "F16", 1, {7}, 7 * 2},
    {"bf16.weight", WERK_DTYPE_BF16, "BF16", 4, {2, 1, 3, 2}, 12 * 2},
    {"i64.ids", WERK_DTYPE_I64, "I64", 1, {3}, 3 * 8},
    {"i32.ids", WERK_DTYPE_I32, "I32", 2, {2, 2}, 4 * 4},
    {"i16.ids", WERK_DTYPE_I16, "I16", 1, {5}, 5 * 2},
    {"i8.ids", WERK_DTYPE_I8, "I8", 1, {9}, 9},
    {"u8.bytes", WERK_DTYPE_U8, "U8", 2, {4, 4}, 16},
    {"bool.mask", WERK_DTYPE_BOOL, "BOOL", 1, {6}, 6},
    {"scalar", WERK_DTYPE_F32, "F32", 0, {0}, 4},
    {"empty.weight", WERK_DTYPE_F16, "F16", 2, {3, 0}, 0},
    {"unicode.\xc3\xa4\xe2\x82\xac\"q\\", WERK_DTYPE_I8, "I8", 1, {1}, 1},
};

static void fill(uint8_t *buf, size_t n, const rt_case *c, int k) {
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)(i * 31 + (size_t)k * 7 + 1);
    }
    if (c->type == WERK_DTYPE_BOOL) {
        for (size_t i = 0; i < n; i++) {
            buf[i] &= 1;
        }
    }
    if (c->type == WERK_DTYPE_F32 || c->type == WERK_DTYPE_F64 || c->type == WERK_DTYPE_F16 ||
        c->type == WERK_DTYPE_BF16) {
        // Finite values (random bytes could be NaN, which is fine but hard to print).
        for (size_t i = 0; i < n / 4 && c->type == WERK_DTYPE_F32; i++) {
            float v = (float)i * 0.25f - 1.5f + (float)k;
            memcpy(buf + 4 * i, &v, 4);
        }
        for (size_t i = 0; i < n / 8 && c->type == WERK_DTYPE_F64; i++) {
            double v = (double)i / 3.0 - 2.0;
            memcpy(buf + 8 * i, &v, 8);
        }
        for (size_t i = 0; i < n / 2 && c->type == WERK_DTYPE_F16; i++) {
            uint16_t h = werk_fp32_to_fp16((float)i - 3.5f);
            memcpy(buf + 2 * i, &h, 2);
        }
        for (size_t i = 0; i < n / 2 && c->type == WERK_DTYPE_BF16; i++) {
            uint16_t h = werk_fp32_to_bf16((float)i * 1.5f - 7.0f);
            memcpy(buf + 2 * i, &h, 2);
        }
    }
}

static void hex_sha256(const void *data, size_t n, char hex[65]) {
    werk_sha256 s;
    werk_sha256_init(&s);
    werk_sha256_update(&s, data, n);
    uint8_t d[32];
    werk_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
}

/* JSON string literal for the manifest (names here are printable UTF-8). */
static void fput_json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fputc('\\', f);
        }
        fputc(*s, f);
    }
    fputc('"', f);
}

static void test_round_trip(void) {
    uint8_t                *bufs[N_RT];
    werk_gguf_tensor        ts[N_RT];
    const werk_gguf_tensor *tp[N_RT];
    for (int k = 0; k < N_RT; k++) {
        bufs[k] = malloc(RT[k].nbytes ? RT[k].nbytes : 1);
        fill(bufs[k], RT[k].nbytes, &RT[k], k);
        ts[k] = mk(RT[k].name, RT[k].type, RT[k].n_dims, RT[k].shape, RT[k].nbytes ? bufs[k] : NULL);
        tp[k] = &ts[k];
    }
    const char *mk_keys[] = {"format", "werk.note", "quote\"key"};
    const char *mk_vals[] = {"pt", "gr\xc3\xbc\xc3\x9f \xe2\x82\xac\nline2", "back\\slash"};
    char        path[1024];
    wt_tmp(path, sizeof(path), "werk_written.safetensors");
    werk_status s = werk_st_write(path, tp, N_RT, mk_keys, mk_vals, 3, err0());
    WT_CHECK(s == WERK_OK, "write: %s", g_err.msg);

    // Layout: header length a multiple of 8, starts with '{', padded with spaces.
    size_t   fsize = 0;
    uint8_t *raw   = slurp(path, &fsize);
    WT_CHECK(raw && fsize > 8, "cannot read back %s", path);
    if (raw && fsize > 8) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--) {
            n = (n << 8) | raw[i];
        }
        WT_CHECK(n % 8 == 0, "header length %" PRIu64 " is not a multiple of 8", n);
        WT_CHECK(n + 8 <= fsize && raw[8] == '{', "header does not start with '{'");
        WT_CHECK(memcmp(raw + 8, "{\"__metadata__\":", 16) == 0, "__metadata__ is not first");
        size_t total = 0;
        for (int k = 0; k < N_RT; k++) {
            total += RT[k].nbytes;
        }
        WT_CHECK(fsize == 8 + n + total, "file size %zu != 8 + %" PRIu64 " + %zu", fsize, n, total);
        size_t end = 8 + (size_t)n;
        while (end > 8 && raw[end - 1] == ' ') {
            end--;
        }
        WT_CHECK(raw[end - 1] == '}', "header is not '}' followed by spaces");
        WT_CHECK(8 + n - end < 8, "more than 7 padding spaces");
    }
    free(raw);

    werk_st *st = NULL;
    s           = werk_st_read(path, &st, err0());
    WT_CHECK(s == WERK_OK, "read back: %s", g_err.msg);
    if (s == WERK_OK) {
        WT_CHECK(werk_st_n_tensors(st) == N_RT, "%" PRId64 " tensors", werk_st_n_tensors(st));
        for (int k = 0; k < N_RT && k < werk_st_n_tensors(st); k++) {
            const werk_st_tensor *t = werk_st_tensor_at(st, k);
            WT_CHECK(strcmp(t->name, RT[k].name) == 0, "tensor %d is '%s', want '%s' (order kept)", k,
                     t->name, RT[k].name);
            WT_CHECK(werk_st_find(st, RT[k].name) == k, "find '%s'", RT[k].name);
            WT_CHECK(t->type == RT[k].type, "%s: type %s", RT[k].name, werk_dtype_name(t->type));
            WT_CHECK(t->n_dims == RT[k].n_dims, "%s: n_dims %d", RT[k].name, t->n_dims);
            for (int d = 0; d < WERK_MAX_DIMS; d++) {
                int64_t want = d < RT[k].n_dims ? RT[k].shape[d] : 1;
                WT_CHECK(t->shape[d] == want, "%s: shape[%d] = %" PRId64, RT[k].name, d, t->shape[d]);
            }
            WT_CHECK(t->nbytes == RT[k].nbytes, "%s: %" PRIu64 " bytes", RT[k].name, t->nbytes);
            WT_CHECK(RT[k].nbytes == 0 || memcmp(t->data, bufs[k], RT[k].nbytes) == 0, "%s: bytes differ",
                     RT[k].name);
        }
        WT_CHECK(werk_st_find(st, "nope") == -1, "find of a missing tensor");
        for (int i = 0; i < 3; i++) {
            const char *v = werk_st_metadata(st, mk_keys[i]);
            WT_CHECK(v && strcmp(v, mk_vals[i]) == 0, "metadata %s = %s", mk_keys[i], v ? v : "(null)");
        }
        WT_CHECK(werk_st_metadata(st, "missing") == NULL, "missing metadata key");
    }
    werk_st_free(st);
    // werk_st_read_any on the file itself, and on a folder holding only it.
    s = werk_st_read_any(path, &st, err0());
    WT_CHECK(s == WERK_OK && werk_st_n_tensors(st) == N_RT, "read_any(file): %s", g_err.msg);
    werk_st_free(st);

    // Manifest for the Python oracle.
    char mpath[1024];
    wt_tmp(mpath, sizeof(mpath), "werk_written.manifest.json");
    FILE *f = fopen(mpath, "w");
    if (f) {
        fprintf(f, "{\"metadata\": {");
        for (int i = 0; i < 3; i++) {
            fprintf(f, "%s", i ? ", " : "");
            fput_json_str(f, mk_keys[i]);
            fprintf(f, ": ");
            // values hold a newline: escape it
            fputc('"', f);
            for (const char *p = mk_vals[i]; *p; p++) {
                if (*p == '\n') {
                    fputs("\\n", f);
                } else {
                    if (*p == '"' || *p == '\\') {
                        fputc('\\', f);
                    }
                    fputc(*p, f);
                }
            }
            fputc('"', f);
        }
        fprintf(f, "}, \"tensors\": [");
        for (int k = 0; k < N_RT; k++) {
            char hex[65];
            hex_sha256(bufs[k], RT[k].nbytes, hex);
            fprintf(f, "%s{\"name\": ", k ? ", " : "");
            fput_json_str(f, RT[k].name);
            fprintf(f, ", \"dtype\": \"%s\", \"shape\": [", RT[k].st_dtype);
            for (int d = 0; d < RT[k].n_dims; d++) {
                fprintf(f, "%s%" PRId64, d ? ", " : "", RT[k].shape[d]);
            }
            fprintf(f, "], \"sha256\": \"%s\"}", hex);
        }
        fprintf(f, "]}\n");
        fclose(f);
    }
    for (int k = 0; k < N_RT; k++) {
        free(bufs[k]);
    }

    // No tensors, no metadata: "{}" padded.
    wt_tmp(path, sizeof(path), "st_empty.safetensors");
    s = werk_st_write(path, NULL, 0, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_OK, "empty write: %s", g_err.msg);
    s = werk_st_read(path, &st, err0());
    WT_CHECK(s == WERK_OK && werk_st_n_tensors(st) == 0, "empty read: %s", g_err.msg);
    werk_st_free(st);
    remove(path);
}

// ---- conversion on write ---------------------------------------------------------------

static void test_convert(void) {
    enum { R = 3, C = 5 };
    float src[R * C];
    for (int i = 0; i < R * C; i++) {
        src[i] = (float)i * 0.37f - 2.1f + (i == 7 ? 1e-3f : 0.0f);
    }
    int64_t          shape[2]    = {R, C};
    werk_gguf_tensor a           = mk("to_f16", WERK_DTYPE_F16, 2, shape, src);
    a.src_type                   = WERK_DTYPE_F32;
    werk_gguf_tensor b           = mk("to_bf16", WERK_DTYPE_BF16, 2, shape, src);
    b.src_type                   = WERK_DTYPE_F32;
    int64_t          rmap[R]     = {2, 0, 1};
    werk_gguf_tensor c           = mk("permuted_plus_one", WERK_DTYPE_F32, 2, shape, src);
    c.row_map                    = rmap;
    c.add                        = 1.0f;
    int32_t          ints[R * 2] = {10, 11, 20, 21, 30, 31};
    int64_t          ishape[2]   = {R, 2};
    werk_gguf_tensor d           = mk("int_rows", WERK_DTYPE_I32, 2, ishape, ints);
    d.row_map                    = rmap;
    const werk_gguf_tensor *tp[] = {&a, &b, &c, &d};
    char                    path[1024];
    wt_tmp(path, sizeof(path), "st_convert.safetensors");
    werk_status s = werk_st_write(path, tp, 4, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_OK, "convert write: %s", g_err.msg);
    werk_st *st = NULL;
    s           = werk_st_read(path, &st, err0());
    WT_CHECK(s == WERK_OK, "convert read: %s", g_err.msg);
    if (s == WERK_OK) {
        const werk_st_tensor *ta = werk_st_tensor_at(st, werk_st_find(st, "to_f16"));
        const werk_st_tensor *tb = werk_st_tensor_at(st, werk_st_find(st, "to_bf16"));
        const werk_st_tensor *tc = werk_st_tensor_at(st, werk_st_find(st, "permuted_plus_one"));
        const werk_st_tensor *td = werk_st_tensor_at(st, werk_st_find(st, "int_rows"));
        WT_CHECK(ta && ta->type == WERK_DTYPE_F16 && ta->nbytes == R * C * 2, "to_f16 header");
        WT_CHECK(tb && tb->type == WERK_DTYPE_BF16 && tb->nbytes == R * C * 2, "to_bf16 header");
        WT_CHECK(tc && tc->type == WERK_DTYPE_F32 && tc->nbytes == R * C * 4, "permuted header");
        WT_CHECK(td && td->type == WERK_DTYPE_I32 && td->nbytes == R * 2 * 4, "int_rows header");
        if (ta && tb && tc && td) {
            int bad_a = 0, bad_b = 0, bad_c = 0;
            for (int i = 0; i < R * C; i++) {
                uint16_t ha, hb;
                float    vc;
                memcpy(&ha, (const uint8_t *)ta->data + 2 * i, 2);
                memcpy(&hb, (const uint8_t *)tb->data + 2 * i, 2);
                memcpy(&vc, (const uint8_t *)tc->data + 4 * i, 4);
                bad_a += ha != werk_fp32_to_fp16(src[i]);
                bad_b += hb != werk_fp32_to_bf16(src[i]);
                float want = src[rmap[i / C] * C + i % C] + 1.0f;
                bad_c += vc != want;
            }
            WT_CHECK(bad_a == 0, "%d f16 values differ from werk_fp32_to_fp16", bad_a);
            WT_CHECK(bad_b == 0, "%d bf16 values differ from werk_fp32_to_bf16", bad_b);
            WT_CHECK(bad_c == 0, "%d permuted+1 values differ", bad_c);
            int32_t got[R * 2];
            memcpy(got, td->data, sizeof(got));
            WT_CHECK(got[0] == 30 && got[1] == 31 && got[2] == 10 && got[5] == 21,
                     "int rows not permuted exactly");
        }
    }
    werk_st_free(st);
    remove(path);

    // Writer errors: nothing is left at the path.
    wt_tmp(path, sizeof(path), "st_write_bad.safetensors");
    remove(path);
    werk_gguf_tensor        dup1 = mk("same", WERK_DTYPE_F32, 2, shape, src);
    werk_gguf_tensor        dup2 = mk("same", WERK_DTYPE_F32, 2, shape, src);
    const werk_gguf_tensor *dp[] = {&dup1, &dup2};
    s                            = werk_st_write(path, dp, 2, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_E_ARG && strstr(g_err.msg, "duplicate"), "duplicate names on write: %s", g_err.msg);
    werk_gguf_tensor        q    = mk("q", WERK_DTYPE_Q8_0, 2, shape, src);
    const werk_gguf_tensor *qp[] = {&q};
    s                            = werk_st_write(path, qp, 1, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_E_UNSUPPORTED, "q8_0 in safetensors: status %d %s", (int)s, g_err.msg);
    int64_t          bad_map[R]  = {0, 3, 1};
    werk_gguf_tensor e           = mk("bad_map", WERK_DTYPE_F32, 2, shape, src);
    e.row_map                    = bad_map;
    const werk_gguf_tensor *ep[] = {&a, &e};
    s                            = werk_st_write(path, ep, 2, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_E_ARG && strstr(g_err.msg, "row_map"), "bad row_map: %s", g_err.msg);
    const char *mkeys[] = {"k", "k"}, *mvals[] = {"1", "2"};
    s = werk_st_write(path, NULL, 0, mkeys, mvals, 2, err0());
    WT_CHECK(s == WERK_E_ARG, "duplicate metadata key on write");
    werk_gguf_tensor        nonutf8 = mk("bad\xff", WERK_DTYPE_F32, 2, shape, src);
    const werk_gguf_tensor *np[]    = {&nonutf8};
    s                               = werk_st_write(path, np, 1, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_E_ARG, "non-UTF-8 name on write: %d %s", (int)s, g_err.msg);
    struct stat sb;
    WT_CHECK(stat(path, &sb) != 0, "a failed write left %s behind", path);
}

// ---- shards --------------------------------------------------------------------------

static void write_shard(const char *dir, const char *file, const char *const *names, int n, float base) {
    static float            vals[8][6];
    werk_gguf_tensor        ts[8];
    const werk_gguf_tensor *tp[8];
    int64_t                 shape[2] = {2, 3};
    for (int k = 0; k < n; k++) {
        for (int i = 0; i < 6; i++) {
            vals[k][i] = base + (float)(k * 6 + i);
        }
        ts[k] = mk(names[k], WERK_DTYPE_F32, 2, shape, vals[k]);
        tp[k] = &ts[k];
    }
    char path[1200];
    snprintf(path, sizeof(path), "%s/%s", dir, file);
    werk_status s = werk_st_write(path, tp, n, NULL, NULL, 0, err0());
    WT_CHECK(s == WERK_OK, "shard %s: %s", file, g_err.msg);
}

static void write_index(const char *path, const char *const *names, const char *const *shards, int n) {
    werk_status s = werk_st_write_index(path, names, shards, n, 123, err0());
    WT_CHECK(s == WERK_OK, "index %s: %s", path, g_err.msg);
}

static void expect_index_fail(const char *label, const char *path, werk_status code, const char *needle) {
    werk_st    *st = NULL;
    werk_status s  = werk_st_read_any(path, &st, err0());
    WT_CHECK(s == code, "%s: status %d (want %d): %s", label, (int)s, (int)code, g_err.msg);
    WT_CHECK(st == NULL, "%s: table returned", label);
    WT_CHECK(!needle || strstr(g_err.msg, needle), "%s: message '%s' lacks '%s'", label, g_err.msg, needle);
    WT_CHECK(strchr(g_err.msg, '\n') == NULL, "%s: not one line", label);
    werk_st_free(st);
}

static void test_shards(void) {
    char dir[1024], path[1200], cmd[2600];
    wt_tmp(dir, sizeof(dir), "st_shards");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    WT_CHECK(wt_run(cmd, NULL) == 0, "mkdir %s", dir);
    const char *s1[] = {"model.layers.0.w", "model.embed"};
    const char *s2[] = {"model.layers.1.w"};
    write_shard(dir, "model-00001-of-00002.safetensors", s1, 2, 0.0f);
    write_shard(dir, "model-00002-of-00002.safetensors", s2, 1, 100.0f);
    const char *names[]  = {"model.layers.1.w", "model.embed", "model.layers.0.w"};
    const char *shards[] = {"model-00002-of-00002.safetensors", "model-00001-of-00002.safetensors",
                            "model-00001-of-00002.safetensors"};
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    write_index(path, names, shards, 3);

    // The index as transformers writes it.
    size_t n   = 0;
    char  *idx = (char *)slurp(path, &n);
    WT_CHECK(idx &&
                 strstr(idx, "{\n  \"metadata\": {\n    \"total_size\": 123\n  },\n  \"weight_map\": {\n    "
                             "\"model.embed\": \"model-00001-of-00002.safetensors\",\n"),
             "index text: %s", idx ? idx : "(null)");
    free(idx);

    const char *targets[2] = {path, dir};
    for (int w = 0; w < 2; w++) {
        werk_st    *st = NULL;
        werk_status s  = werk_st_read_any(targets[w], &st, err0());
        WT_CHECK(s == WERK_OK, "sharded read of %s: %s", targets[w], g_err.msg);
        if (s != WERK_OK) {
            continue;
        }
        WT_CHECK(werk_st_n_tensors(st) == 3, "%" PRId64 " tensors", werk_st_n_tensors(st));
        // Shards in file-name order, each in offset order.
        const char *order[] = {"model.layers.0.w", "model.embed", "model.layers.1.w"};
        for (int k = 0; k < 3 && k < werk_st_n_tensors(st); k++) {
            WT_CHECK(strcmp(werk_st_tensor_at(st, k)->name, order[k]) == 0, "tensor %d is %s", k,
                     werk_st_tensor_at(st, k)->name);
        }
        int64_t i = werk_st_find(st, "model.layers.1.w");
        WT_CHECK(i >= 0, "find across shards");
        if (i >= 0) {
            float v;
            memcpy(&v, (const uint8_t *)werk_st_tensor_at(st, i)->data + 4 * 5, 4);
            WT_CHECK(v == 105.0f, "shard 2 data: %g", v);
        }
        i = werk_st_find(st, "model.embed");
        if (i >= 0) {
            float v;
            memcpy(&v, (const uint8_t *)werk_st_tensor_at(st, i)->data, 4);
            WT_CHECK(v == 6.0f, "shard 1 data: %g", v);
        }
        werk_st_free(st);
    }

    // Negatives, each in its own index file beside the shards.
    snprintf(path, sizeof(path), "%s/missing.safetensors.index.json", dir);
    const char *n_missing[] = {"model.layers.1.w", "model.embed", "model.layers.0.w", "model.ghost"};
    const char *s_missing[] = {shards[0], shards[1], shards[2], "model-00002-of-00002.safetensors"};
    write_index(path, n_missing, s_missing, 4);
    expect_index_fail("listed but missing from its shard", path, WERK_E_FORMAT,
                      "tensor 'model.ghost' listed in the index is missing from shard model-00002-of-00002");

    snprintf(path, sizeof(path), "%s/unlisted.safetensors.index.json", dir);
    write_index(path, names, shards, 2); // model.layers.0.w not listed
    expect_index_fail("in a shard but not listed", path, WERK_E_FORMAT,
                      "tensor 'model.layers.0.w' in shard model-00001-of-00002.safetensors is not listed");

    snprintf(path, sizeof(path), "%s/wrong.safetensors.index.json", dir);
    const char *s_wrong[] = {shards[0], shards[0], shards[2]};
    write_index(path, names, s_wrong, 3);
    expect_index_fail("listed in the wrong shard", path, WERK_E_FORMAT,
                      "lists tensor 'model.embed' in shard");

    const char *s3[] = {"model.embed"};
    write_shard(dir, "extra.safetensors", s3, 1, 0.0f);
    snprintf(path, sizeof(path), "%s/dup.safetensors.index.json", dir);
    const char *n_dup[] = {"model.layers.1.w", "model.embed", "model.layers.0.w"};
    const char *s_dup[] = {shards[0], "extra.safetensors", shards[2]};
    write_index(path, n_dup, s_dup, 3);
    expect_index_fail("duplicate name across shards", path, WERK_E_FORMAT, "'model.embed' is in two shards");

    snprintf(path, sizeof(path), "%s/nofile.safetensors.index.json", dir);
    const char *s_nofile[] = {"model-00003-of-00003.safetensors"};
    write_index(path, names, s_nofile, 1);
    expect_index_fail("missing shard file", path, WERK_E_IO, "model-00003-of-00003.safetensors");

    const char *raw_cases[][3] = {
        {"escape.safetensors.index.json", "{\"weight_map\": {\"a\": \"../x.safetensors\"}}",
         "relative shard"},
        {"abs.safetensors.index.json", "{\"weight_map\": {\"a\": \"/etc/passwd\"}}", "relative shard"},
        {"nomap.safetensors.index.json", "{\"metadata\": {}}", "no \"weight_map\""},
        {"empty.safetensors.index.json", "{\"weight_map\": {}}", "lists no tensors"},
        {"nonstr.safetensors.index.json", "{\"weight_map\": {\"a\": 1}}", "relative shard"},
        {"dupkey.safetensors.index.json", "{\"weight_map\": {\"a\": \"x\", \"a\": \"y\"}}", "duplicate key"},
    };
    for (size_t k = 0; k < sizeof(raw_cases) / sizeof(raw_cases[0]); k++) {
        snprintf(path, sizeof(path), "%s/%s", dir, raw_cases[k][0]);
        write_bytes(path, raw_cases[k][1], strlen(raw_cases[k][1]));
        expect_index_fail(raw_cases[k][0], path, WERK_E_FORMAT, raw_cases[k][2]);
    }
    werk_status s = werk_st_write_index(path, names, (const char *const[]){"a", "b", "../c"}, 3, 0, err0());
    WT_CHECK(s == WERK_E_ARG, "index writer accepted ../");
    s = werk_st_write_index(path, (const char *const[]){"a", "a"}, (const char *const[]){"x", "y"}, 2, 0,
                            err0());
    WT_CHECK(s == WERK_E_ARG, "index writer accepted a duplicate");

    // Folders: several indexes beside the standard one -> the standard one wins (checked
    // above); none of either -> a clear error.
    char dir2[1200];
    snprintf(dir2, sizeof(dir2), "%s/empty_dir", dir);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir2);
    wt_run(cmd, NULL);
    expect_index_fail("folder without safetensors", dir2, WERK_E_IO, "no .safetensors file");
    // A folder with one non-standard file (a PEFT adapter).
    write_shard(dir2, "adapter_model.safetensors", s3, 1, 0.0f);
    werk_st *st = NULL;
    s           = werk_st_read_any(dir2, &st, err0());
    WT_CHECK(s == WERK_OK && werk_st_n_tensors(st) == 1, "folder with adapter_model.safetensors: %s",
             g_err.msg);
    werk_st_free(st);
    write_shard(dir2, "other.safetensors", s3, 1, 0.0f);
    expect_index_fail("folder with two files", dir2, WERK_E_ARG, "name the one");
    expect_index_fail("missing path", "/nonexistent/model.safetensors", WERK_E_IO, "/nonexistent");
}

// ---- hostile files ---------------------------------------------------------------------

#define T1 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"

static void test_negatives(void) {
    expect_ok_mem("baseline", T1, 8, 1);
    expect_ok_mem("header listed out of offset order",
                  "{\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[8,10]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  10, 2);
    expect_ok_mem("unknown fields ignored (as serde)",
                  "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"extra\":1}}", 1, 1);
    expect_ok_mem("__metadata__ null", "{\"__metadata__\":null}", 0, 0);
    expect_ok_mem("padding spaces", T1 "       ", 8, 1);
    expect_ok_mem("two empty tensors at offset 0",
                  "{\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                  "\"f\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[0,0]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                  8, 3);

    expect_fail("header length > 100 MB", T1, 8, 100000001ull, WERK_E_FORMAT, "exceeds the 100 MB limit");
    expect_fail("header length 2^64-1", T1, 8, UINT64_MAX, WERK_E_FORMAT, "100 MB");
    expect_fail("header length > file", T1, 8, 1000, WERK_E_FORMAT, "exceeds the file size");
    expect_fail("header length = file - 7", T1, 8, strlen(T1) + 9, WERK_E_FORMAT, "exceeds the file size");
    expect_fail("empty header", "", 0, 0, WERK_E_FORMAT, "invalid JSON");
    expect_fail("non-object header (array)", "[]", 0, 0, WERK_E_FORMAT, "not a JSON object");
    expect_fail("non-object header (string)", "\"x\"", 0, 0, WERK_E_FORMAT, "not a JSON object");
    expect_fail("non-object header (number)", "7", 0, 0, WERK_E_FORMAT, "not a JSON object");
    expect_fail("header not JSON", "{\"a\":", 0, 0, WERK_E_FORMAT, "invalid JSON at byte");
    expect_fail_n("header with NUL", "{}\0\0\0\0\0\0", 8, 0, 0, WERK_E_FORMAT, "control byte 0x00");
    expect_fail("header not UTF-8", "{\"a\xff\":{}}", 0, 0, WERK_E_FORMAT, "not UTF-8");
    expect_fail("duplicate key in header JSON",
                "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
                2, 0, WERK_E_FORMAT, "duplicate key \"a\"");
    expect_fail("header nested too deep", "{\"a\":{\"shape\":[[1]]}}", 0, 0, WERK_E_FORMAT, "nested deeper");
    expect_fail("tensor entry not an object", "{\"a\":[1]}", 0, 0, WERK_E_FORMAT, "not an object");
    expect_fail("bad dtype", "{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
                WERK_E_FORMAT, "unknown dtype 'F33'");
    expect_fail("dtype not a string", "{\"a\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0,
                WERK_E_FORMAT, "dtype");
    expect_fail("missing shape", "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, 0, WERK_E_FORMAT,
                "\"shape\"");
    expect_fail("shape product overflow",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", 8,
                0, WERK_E_FORMAT, "overflows");
    expect_fail("shape x dtype size overflow",
                "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,1073741824],\"data_offsets\":[0,8]}}", 8, 0,
                WERK_E_FORMAT, "overflows");
    expect_fail("negative dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1,4],\"data_offsets\":[0,8]}}", 8, 0,
                WERK_E_FORMAT, "shape[0] is not a non-negative integer");
    expect_fail("fractional dim", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,1.5],\"data_offsets\":[0,8]}}", 8,
                0, WERK_E_FORMAT, "shape[1]");
    expect_fail("dim above 2^53", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,8]}}", 8, 0,
                WERK_E_FORMAT, "shape[0]");
    expect_fail("data_offsets end < begin (out of order)",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0, WERK_E_FORMAT,
                "end 0 < begin 8");
    expect_fail("data_offsets with 3 entries",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, 0, WERK_E_FORMAT,
                "data_offsets");
    expect_fail("data_offsets negative", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}",
                8, 0, WERK_E_FORMAT, "data_offsets");
    expect_fail("shape x size != range", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                4, 0, WERK_E_FORMAT, "is 8 bytes but data_offsets span 4");
    expect_fail("overlapping tensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, 0, WERK_E_FORMAT, "overlaps");
    expect_fail("same range twice",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
                8, 0, WERK_E_FORMAT, "overlaps");
    expect_fail("gap between tensors",
                "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                20, 0, WERK_E_FORMAT, "leaves a gap");
    expect_fail("first tensor not at 0", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, 0, WERK_E_FORMAT, "leaves a gap");
    expect_fail("trailing bytes after the data", T1, 9, 0, WERK_E_FORMAT, "ends at byte 8");
    expect_fail("data shorter than declared", T1, 7, 0, WERK_E_FORMAT, "has 7 data bytes");
    expect_fail("no tensors but data", "{}", 3, 0, WERK_E_FORMAT, "has 3 data bytes");
    expect_fail("__metadata__ value not a string", "{\"__metadata__\":{\"k\":1}}", 0, 0, WERK_E_FORMAT,
                "not a string");
    expect_fail("__metadata__ not an object", "{\"__metadata__\":\"x\"}", 0, 0, WERK_E_FORMAT,
                "__metadata__ is not an object");
    expect_fail("F4 odd element count", "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", 2,
                0, WERK_E_FORMAT, "not whole bytes");
    expect_fail("tensor name with control escape",
                "{\"a\\n\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, 0, WERK_E_FORMAT,
                "tensor 'a?'");
    // Valid layout, but werk cannot use it: unsupported, naming tensor and dtype.
    expect_fail("F8_E4M3 dtype", "{\"fp8\":{\"dtype\":\"F8_E4M3\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
                0, WERK_E_UNSUPPORTED, "tensor 'fp8': dtype F8_E4M3 is not supported");
    expect_fail("rank 5", "{\"r5\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,2]}}", 2, 0,
                WERK_E_UNSUPPORTED, "tensor 'r5': 5 dimensions");
    expect_fail("layout checked before dtype support",
                "{\"fp8\":{\"dtype\":\"F8_E5M2\",\"shape\":[4],\"data_offsets\":[0,4]}}", 5, 0, WERK_E_FORMAT,
                "has 5 data bytes");

    // Too small for the length field.
    uint8_t tiny[7] = {1, 0, 0, 0, 0, 0, 0};
    for (size_t n = 0; n <= sizeof(tiny); n++) {
        werk_st *st = NULL;
        WT_CHECK(werk_st_read_mem(tiny, n, NEG_NAME, &st, err0()) == WERK_E_FORMAT && st == NULL &&
                     strstr(g_err.msg, "too small"),
                 "%zu-byte file: %s", n, g_err.msg);
    }

    // Truncation at every offset of a small valid file (written by werk, with metadata).
    char path[1024];
    wt_tmp(path, sizeof(path), "st_trunc.safetensors");
    float                   v[6]     = {1, 2, 3, 4, 5, 6};
    int64_t                 shape[2] = {2, 3};
    int64_t                 shape1   = 6;
    werk_gguf_tensor        a        = mk("a", WERK_DTYPE_F32, 2, shape, v);
    werk_gguf_tensor        b        = mk("b", WERK_DTYPE_I8, 1, &shape1, v);
    const werk_gguf_tensor *tp[]     = {&a, &b};
    const char             *mkey[] = {"format"}, *mval[] = {"pt"};
    werk_status             s = werk_st_write(path, tp, 2, mkey, mval, 1, err0());
    WT_CHECK(s == WERK_OK, "%s", g_err.msg);
    size_t   n   = 0;
    uint8_t *all = slurp(path, &n);
    int      bad = 0;
    for (size_t k = 0; all && k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, all, k);
        werk_st *st = NULL;
        s           = werk_st_read_mem(cut, k, NEG_NAME, &st, err0());
        if (s != WERK_E_FORMAT || st || strncmp(g_err.msg, NEG_NAME, strlen(NEG_NAME)) != 0 ||
            strchr(g_err.msg, '\n')) {
            if (bad++ < 3) {
                fprintf(stderr, "  truncated at %zu: status %d: %s\n", k, (int)s, g_err.msg);
            }
        }
        werk_st_free(st);
        free(cut);
    }
    WT_CHECK(bad == 0, "%d of %zu truncations not rejected cleanly", bad, n);
    // The same through a real file: the message names the path.
    if (all && n > 20) {
        char tpath[1024];
        wt_tmp(tpath, sizeof(tpath), "st_truncated.safetensors");
        write_bytes(tpath, all, n - 3);
        werk_st *st = NULL;
        s           = werk_st_read(tpath, &st, err0());
        WT_CHECK(s == WERK_E_FORMAT && strncmp(g_err.msg, tpath, strlen(tpath)) == 0, "truncated file: %s",
                 g_err.msg);
        remove(tpath);
    }
    free(all);
    remove(path);
}

int main(void) {
    test_round_trip();
    test_convert();
    test_shards();
    test_negatives();
    return wt_done();
}
