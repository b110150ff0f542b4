/* tests/convert/test_gguf.c - werk_gguf in memory, GGUF write/read round trips, hostile files
 *
 * (1) round trip: every value type (nested arrays, strings with NULs, empty arrays) and
 *     several tensor types survive build -> write -> read unchanged, with the layout GGUF
 *     requires (offsets and data section aligned, custom alignment honoured);
 * (2) conversion while writing: f32 -> f16 / bf16 / q8_0, row_map and add, rows longer
 *     than one conversion segment, against werk_quantize_row directly;
 * (3) hostile files, one named test per class of llama.cpp's GGUF advisories (DESIGN.md
 *     "Inputs are hostile"): each must fail with WERK_E_FORMAT (or UNSUPPORTED for an
 *     unknown tensor type) and a one-line message naming the file, never crash;
 *     every truncation of a small valid file fails the same way;
 * (4) getters, setters, removal, a many-tensor hash lookup, and an atomic write that
 *     fails midway (RLIMIT_FSIZE) leaving the old file intact.
 */
#include "convert/convert.h"
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

#include <dirent.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>

// ---- a byte builder for hand-made files ---------------------------------------------------

typedef struct bb {
    uint8_t *p;
    size_t   n, cap;
} bb;

static void bb_put(bb *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void bb_u8(bb *b, uint8_t v) { bb_put(b, &v, 1); }
static void bb_u32(bb *b, uint32_t v) { bb_put(b, &v, 4); }
static void bb_u64(bb *b, uint64_t v) { bb_put(b, &v, 8); }
static void bb_str(bb *b, const char *s) {
    bb_u64(b, strlen(s));
    bb_put(b, s, strlen(s));
}
static void bb_pad(bb *b, size_t align) {
    while (b->n % align) {
        bb_u8(b, 0);
    }
}
static void bb_header(bb *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    bb_put(b, "GGUF", 4);
    bb_u32(b, version);
    bb_u64(b, n_tensors);
    bb_u64(b, n_kv);
}
static void bb_kv_u32(bb *b, const char *key, uint32_t v) {
    bb_str(b, key);
    bb_u32(b, WERK_GGUF_UINT32);
    bb_u32(b, v);
}
static void bb_kv_str(bb *b, const char *key, const char *v) {
    bb_str(b, key);
    bb_u32(b, WERK_GGUF_STRING);
    bb_str(b, v);
}
/* Tensor info with ne[] innermost first, as on disk (at most 5 dims are written). */
static void
bb_tensor(bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off) {
    bb_str(b, name);
    bb_u32(b, n_dims);
    for (uint32_t i = 0; i < n_dims && i < 5; i++) {
        bb_u64(b, ne[i]);
    }
    bb_u32(b, type);
    bb_u64(b, off);
}
/* Pads to 32 and appends n zero bytes of data. */
static void bb_data(bb *b, size_t n) {
    bb_pad(b, 32);
    for (size_t i = 0; i < n; i++) {
        bb_u8(b, (uint8_t)i);
    }
}

// ---- expecting failures ----------------------------------------------------------------------

/* Reads a buffer (copied to an exact-size malloc so sanitizers see overreads) and checks
 * it fails with `code`, a message naming the file, and (for format errors) "offset". */
static void expect_fail(const char *label, const void *data, size_t n, werk_status code, const char *needle) {
    uint8_t *copy = malloc(n ? n : 1);
    memcpy(copy, data, n);
    werk_gguf  *g   = NULL;
    werk_err    err = {0};
    werk_status s   = werk_gguf_read_mem(copy, n, label, &g, &err);
    if (*wt_env("WERK_TEST_VERBOSE")) {
        printf("%-40s %s\n", label, err.msg);
    }
    WT_CHECK(s == code, "%s: status %d (%s), expected %d; msg: %s", label, (int)s, werk_status_str(s),
             (int)code, err.msg);
    WT_CHECK(g == NULL, "%s: g set on failure", label);
    WT_CHECK(strstr(err.msg, label) != NULL, "%s: message does not name the file: %s", label, err.msg);
    WT_CHECK(strchr(err.msg, '\n') == NULL, "%s: message has a newline: %s", label, err.msg);
    if (code == WERK_E_FORMAT) {
        WT_CHECK(strstr(err.msg, "offset") != NULL, "%s: message has no offset: %s", label, err.msg);
    }
    if (needle) {
        WT_CHECK(strstr(err.msg, needle) != NULL, "%s: message lacks '%s': %s", label, needle, err.msg);
    }
    werk_gguf_free(g);
    free(copy);
}

static void expect_bb_fail(const char *label, bb *b, werk_status code, const char *needle) {
    expect_fail(label, b->p, b->n, code, needle);
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* A file with one tensor info and `data` bytes of data. */
static void one_tensor_file(
    bb *b, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off, size_t data) {
    bb_header(b, 3, 1, 0);
    bb_tensor(b, name, n_dims, ne, type, off);
    bb_data(b, data);
}

// ---- hostile files, one per class ------------------------------------------------------------

static void test_hostile_n_dims(void) {
    bb       b    = {0};
    uint64_t ne[] = {4, 1, 1, 1, 1};
    one_tensor_file(&b, "t", 5, ne, 0, 0, 16);
    expect_bb_fail("n_dims_above_4", &b, WERK_E_FORMAT, "n_dims");
    one_tensor_file(&b, "t", 0, ne, 0, 0, 16);
    expect_bb_fail("n_dims_zero", &b, WERK_E_FORMAT, "n_dims");
    one_tensor_file(&b, "t", 0xFFFFFFFFu, ne, 0, 0, 16);
    expect_bb_fail("n_dims_huge", &b, WERK_E_FORMAT, "n_dims");
}

static void test_hostile_ne_overflow(void) {
    bb       b     = {0};
    uint64_t ne1[] = {1ull << 32, 1ull << 32};
    one_tensor_file(&b, "t", 2, ne1, 0, 0, 64);
    expect_bb_fail("ne_product_overflow", &b, WERK_E_FORMAT, "overflow");
    uint64_t ne2[] = {1ull << 31, 1ull << 31, 4}; // 2^64 elements
    one_tensor_file(&b, "t", 3, ne2, 0, 0, 64);
    expect_bb_fail("ne_product_overflow_3d", &b, WERK_E_FORMAT, "overflow");
    uint64_t ne3[] = {1ull << 62}; // fits int64, but x 4 bytes overflows
    one_tensor_file(&b, "t", 1, ne3, 0, 0, 64);
    expect_bb_fail("nelements_times_type_size_overflow", &b, WERK_E_FORMAT, "overflow");
    uint64_t ne4[] = {UINT64_MAX};
    one_tensor_file(&b, "t", 1, ne4, 0, 0, 64);
    expect_bb_fail("ne_negative_as_int64", &b, WERK_E_FORMAT, "dimension");
    uint64_t ne5[] = {4, 0};
    one_tensor_file(&b, "t", 2, ne5, 0, 0, 64);
    expect_bb_fail("ne_zero", &b, WERK_E_FORMAT, "dimension");
}

static void test_hostile_size_wrap(void) {
    bb       b    = {0};
    uint64_t ne[] = {16}; // 64 bytes of f32
    // offset + size wraps around 2^64 (the CVE-2025-53630 class: sum of sizes / padding).
    one_tensor_file(&b, "t", 1, ne, 0, UINT64_MAX - 31, 64);
    expect_bb_fail("offset_plus_size_wraps", &b, WERK_E_FORMAT, "outside");
    // Two tensors: the second's offset near the top so padding the first would wrap.
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "a", 1, ne, 0, 0);
    bb_tensor(&b, "b", 1, ne, 0, 0xFFFFFFFFFFFFFFE0ull);
    bb_data(&b, 128);
    expect_bb_fail("padding_sum_wraps", &b, WERK_E_FORMAT, "outside");
    // 2^62 f64 elements: the count fits int64, the byte size (x 8) does not.
    uint64_t ne2[] = {1ull << 61, 2};
    one_tensor_file(&b, "t", 2, ne2, 28, 0, 64);
    expect_bb_fail("f64_size_overflow", &b, WERK_E_FORMAT, "overflow");
}

static void test_hostile_alignment(void) {
    bb       b     = {0};
    uint64_t ne[]  = {8};
    uint32_t bad[] = {0, 3, 48, 1u << 31, (1u << 20) * 2};
    for (int i = 0; i < 5; i++) {
        char label[64];
        snprintf(label, sizeof(label), "alignment_%u", bad[i]);
        bb_header(&b, 3, 1, 1);
        bb_kv_u32(&b, "general.alignment", bad[i]);
        bb_tensor(&b, "t", 1, ne, 0, 0);
        bb_data(&b, 64);
        expect_bb_fail(label, &b, WERK_E_FORMAT, "alignment");
    }
    // Wrong type for a known key.
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "general.alignment");
    bb_u32(&b, WERK_GGUF_UINT64);
    bb_u64(&b, 32);
    expect_bb_fail("alignment_wrong_type_u64", &b, WERK_E_FORMAT, "alignment");
    bb_header(&b, 3, 0, 1);
    bb_kv_str(&b, "general.alignment", "32");
    expect_bb_fail("alignment_wrong_type_string", &b, WERK_E_FORMAT, "alignment");
    // Offset not a multiple of the alignment.
    one_tensor_file(&b, "t", 1, ne, 0, 16, 64);
    expect_bb_fail("offset_misaligned", &b, WERK_E_FORMAT, "alignment");
}

static void test_hostile_string_length(void) {
    bb b = {0};
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 1ull << 40); // key length
    bb_put(&b, "abcdefghijklmnop", 16);
    expect_bb_fail("key_length_beyond_file", &b, WERK_E_FORMAT, "string length");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, WERK_GGUF_STRING);
    bb_u64(&b, UINT64_MAX); // value length
    expect_bb_fail("value_string_length_beyond_file", &b, WERK_E_FORMAT, "string length");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, WERK_GGUF_STRING);
    bb_u64(&b, 5); // one byte short
    bb_put(&b, "abcd", 4);
    expect_bb_fail("value_string_length_one_past", &b, WERK_E_FORMAT, "string length");
    uint64_t ne[] = {8};
    bb_header(&b, 3, 1, 0);
    bb_u64(&b, 1ull << 62); // tensor name length
    bb_u32(&b, 1);
    bb_u64(&b, ne[0]);
    bb_data(&b, 64);
    expect_bb_fail("tensor_name_length_beyond_file", &b, WERK_E_FORMAT, "string length");
    bb_header(&b, 3, 0, 1);
    bb_u64(&b, 3);
    bb_put(&b, "a\0b", 3);
    bb_u32(&b, WERK_GGUF_UINT8);
    bb_u8(&b, 1);
    expect_bb_fail("key_with_nul", &b, WERK_E_FORMAT, "NUL");
}

static void test_hostile_array_count(void) {
    bb b = {0};
    struct {
        const char *label;
        uint32_t    et;
        uint64_t    n;
    } cases[] = {
        {"array_count_u8_beyond_file", WERK_GGUF_UINT8, 1ull << 40},
        {"array_count_u64_beyond_file", WERK_GGUF_UINT64, 1ull << 61},
        {"array_count_wraps_bytes", WERK_GGUF_UINT32, (UINT64_MAX / 4) + 2},
        {"array_count_strings_beyond_file", WERK_GGUF_STRING, 1ull << 40},
        {"array_count_arrays_beyond_file", WERK_GGUF_ARRAY, 1ull << 40},
        {"array_count_one_past", WERK_GGUF_UINT8, 9},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bb_header(&b, 3, 0, 1);
        bb_str(&b, "arr");
        bb_u32(&b, WERK_GGUF_ARRAY);
        bb_u32(&b, cases[i].et);
        bb_u64(&b, cases[i].n);
        bb_u64(&b, 0); // 8 bytes of payload
        expect_bb_fail(cases[i].label, &b, WERK_E_FORMAT, NULL);
    }
    // 100 strings of length 0 need 800 bytes; only 8 are there.
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "arr");
    bb_u32(&b, WERK_GGUF_ARRAY);
    bb_u32(&b, WERK_GGUF_STRING);
    bb_u64(&b, 100);
    bb_u64(&b, 0);
    expect_bb_fail("array_strings_truncated", &b, WERK_E_FORMAT, NULL);
    // Counts of kvs and tensors larger than the file could hold.
    bb_header(&b, 3, 0, 1ull << 60);
    expect_bb_fail("kv_count_beyond_file", &b, WERK_E_FORMAT, "count");
    bb_header(&b, 3, 1ull << 60, 0);
    expect_bb_fail("tensor_count_beyond_file", &b, WERK_E_FORMAT, "count");
    // Arrays nested past the depth bound (each level: type ARRAY, count 1).
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "deep");
    bb_u32(&b, WERK_GGUF_ARRAY);
    for (int i = 0; i < 40; i++) {
        bb_u32(&b, WERK_GGUF_ARRAY);
        bb_u64(&b, 1);
    }
    bb_u32(&b, WERK_GGUF_UINT8);
    bb_u64(&b, 0);
    expect_bb_fail("arrays_nested_too_deep", &b, WERK_E_FORMAT, "nested");
    // Unknown value types.
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, 13);
    bb_u32(&b, 0);
    expect_bb_fail("unknown_value_type", &b, WERK_E_FORMAT, "type");
    bb_header(&b, 3, 0, 1);
    bb_str(&b, "k");
    bb_u32(&b, WERK_GGUF_ARRAY);
    bb_u32(&b, 0xFFFFFFFFu);
    bb_u64(&b, 0);
    expect_bb_fail("unknown_array_element_type", &b, WERK_E_FORMAT, "type");
}

static void test_hostile_duplicates(void) {
    bb b = {0};
    bb_header(&b, 3, 0, 2);
    bb_kv_u32(&b, "general.x", 1);
    bb_kv_u32(&b, "general.x", 2);
    expect_bb_fail("duplicate_key", &b, WERK_E_FORMAT, "duplicate key");
    uint64_t ne[] = {8};
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "w", 1, ne, 0, 0);
    bb_tensor(&b, "w", 1, ne, 0, 32);
    bb_data(&b, 64);
    expect_bb_fail("duplicate_tensor_name", &b, WERK_E_FORMAT, "duplicate tensor");
}

static void test_hostile_block_size(void) {
    bb       b    = {0};
    uint64_t ne[] = {33, 2}; // q8_0 blocks are 32 wide
    one_tensor_file(&b, "q", 2, ne, 8, 0, 256);
    expect_bb_fail("first_dim_not_multiple_of_block", &b, WERK_E_FORMAT, "block size");
    uint64_t ne3[] = {128, 4}; // 512 elements = 2 q4_K blocks, but rows of 128 are not whole blocks
    one_tensor_file(&b, "q", 2, ne3, 12, 0, 1024);
    expect_bb_fail("q4_k_row_shorter_than_block", &b, WERK_E_FORMAT, "block size");
}

static void test_hostile_data_bounds(void) {
    bb       b    = {0};
    uint64_t ne[] = {8}; // 32 bytes
    one_tensor_file(&b, "t", 1, ne, 0, 0, 31);
    expect_bb_fail("data_one_byte_short", &b, WERK_E_FORMAT, "outside");
    one_tensor_file(&b, "t", 1, ne, 0, 1 << 20, 32);
    expect_bb_fail("data_outside_file", &b, WERK_E_FORMAT, "outside");
    bb_header(&b, 3, 1, 0);
    bb_tensor(&b, "t", 1, ne, 0, 0); // file ends before the data section
    expect_bb_fail("data_section_missing", &b, WERK_E_FORMAT, "past the end");
    uint64_t ne2[] = {16}; // 64 bytes at 0 and 32 bytes at 32: overlap
    bb_header(&b, 3, 2, 0);
    bb_tensor(&b, "a", 1, ne2, 0, 0);
    bb_tensor(&b, "b", 1, ne, 0, 32);
    bb_data(&b, 128);
    expect_bb_fail("tensors_overlap", &b, WERK_E_FORMAT, "overlap");
    one_tensor_file(&b, "t", 1, ne, 1234, 0, 32);
    expect_bb_fail("unknown_ggml_type", &b, WERK_E_UNSUPPORTED, "1234");
    one_tensor_file(&b, "t", 1, ne, 16, 0, 32); // IQ2_XXS: real but not werk's
    expect_bb_fail("unsupported_ggml_type_iq2_xxs", &b, WERK_E_UNSUPPORTED, "type 16");
}

static void test_hostile_header(void) {
    bb b = {0};
    bb_put(&b, "GGU", 3);
    expect_bb_fail("shorter_than_magic", &b, WERK_E_FORMAT, NULL);
    bb_header(&b, 3, 0, 0);
    b.p[0] = 'X';
    expect_bb_fail("bad_magic", &b, WERK_E_FORMAT, "magic");
    bb_header(&b, 1, 0, 0);
    expect_bb_fail("version_1", &b, WERK_E_FORMAT, "v1");
    bb_header(&b, 0x03000000u, 0, 0); // version 3 written big-endian
    expect_bb_fail("big_endian", &b, WERK_E_FORMAT, "big-endian");
    bb_header(&b, 4, 0, 0);
    expect_bb_fail("version_4", &b, WERK_E_FORMAT, "version");
    bb_header(&b, 0, 0, 0);
    expect_bb_fail("version_0", &b, WERK_E_FORMAT, "version");
    expect_fail("empty_file", "", 0, WERK_E_FORMAT, NULL);
}

// ---- building a model in memory ------------------------------------------------------------

static float    f32_data[4 * 64];
static uint16_t f16_data[2 * 32];
static uint8_t  q8_data[2 * 2 * 34];
static int32_t  i32_data[5] = {-1, 0, 1, 2, INT32_MAX};
static float    tail_data[8]; // 32 bytes: the last tensor ends exactly at an aligned end

/* Fills g with one key of every kind and a few tensors. */
static void build_model(werk_gguf *g) {
    werk_err e = {0};
    WT_CHECK(werk_gguf_set_str(g, "general.architecture", "llama", &e) == WERK_OK, "%s", e.msg);
    werk_gguf_value v;
    v = (werk_gguf_value){.type = WERK_GGUF_UINT8, .u8 = 200};
    werk_gguf_set(g, "t.u8", &v, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_INT8, .i8 = -100};
    werk_gguf_set(g, "t.i8", &v, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_UINT16, .u16 = 65535};
    werk_gguf_set(g, "t.u16", &v, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_INT16, .i16 = -32768};
    werk_gguf_set(g, "t.i16", &v, &e);
    werk_gguf_set_u32(g, "t.u32", 4000000000u, &e);
    werk_gguf_set_i32(g, "t.i32", -2000000000, &e);
    werk_gguf_set_f32(g, "t.f32", 3.25f, &e);
    werk_gguf_set_bool(g, "t.bool", true, &e);
    werk_gguf_set_u64(g, "t.u64", UINT64_MAX - 1, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_INT64, .i64 = INT64_MIN};
    werk_gguf_set(g, "t.i64", &v, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_FLOAT64, .f64 = -1.0 / 3.0};
    werk_gguf_set(g, "t.f64", &v, &e);
    v = (werk_gguf_value){.type = WERK_GGUF_STRING, .str = {.len = 7, .data = "a\0b\xc3\xa4z\0"}};
    werk_gguf_set(g, "t.str_nul", &v, &e);
    werk_gguf_set_str(g, "t.str_empty", "", &e);

    static const int32_t  ai32[]  = {1, -2, 3};
    static const float    af32[]  = {0.5f, -0.25f};
    static const uint8_t  abool[] = {1, 0, 1, 1};
    static const int64_t  ai64[]  = {INT64_MAX, -5};
    static const double   af64[]  = {1e300, -0.0};
    static const uint16_t au16[]  = {1, 65535};
    werk_gguf_set_arr(g, "a.i32", WERK_GGUF_INT32, ai32, 3, &e);
    werk_gguf_set_arr(g, "a.f32", WERK_GGUF_FLOAT32, af32, 2, &e);
    werk_gguf_set_arr(g, "a.bool", WERK_GGUF_BOOL, abool, 4, &e);
    werk_gguf_set_arr(g, "a.i64", WERK_GGUF_INT64, ai64, 2, &e);
    werk_gguf_set_arr(g, "a.f64", WERK_GGUF_FLOAT64, af64, 2, &e);
    werk_gguf_set_arr(g, "a.u16", WERK_GGUF_UINT16, au16, 2, &e);
    werk_gguf_set_arr(g, "a.empty", WERK_GGUF_UINT32, NULL, 0, &e);
    const char    *strs[] = {"hello", "", "w\0rld", "\xe2\x96\x81the"};
    const uint64_t lens[] = {5, 0, 5, 6};
    WT_CHECK(werk_gguf_set_arr_str(g, "a.str", strs, lens, 4, &e) == WERK_OK, "%s", e.msg);
    werk_gguf_set_arr_str(g, "a.str_empty", NULL, NULL, 0, &e);

    // [[1, 2], [], [3]] as u32, then [[["x"]], [["y", "zz"]]] (three levels).
    static const uint32_t inner0[] = {1, 2}, inner2[] = {3};
    werk_gguf_value       nested[3];
    memset(nested, 0, sizeof(nested));
    nested[0].type          = WERK_GGUF_ARRAY;
    nested[0].arr.elem_type = WERK_GGUF_UINT32;
    nested[0].arr.n         = 2;
    nested[0].arr.data      = inner0;
    nested[1].type          = WERK_GGUF_ARRAY;
    nested[1].arr.elem_type = WERK_GGUF_UINT32;
    nested[2]               = nested[0];
    nested[2].arr.n         = 1;
    nested[2].arr.data      = inner2;
    WT_CHECK(werk_gguf_set_arr(g, "a.nested", WERK_GGUF_ARRAY, nested, 3, &e) == WERK_OK, "%s", e.msg);
    werk_gguf_str   sx[] = {{1, "x"}}, sy[] = {{1, "y"}, {2, "zz"}};
    werk_gguf_value lvl2a   = {.type = WERK_GGUF_ARRAY,
                               .arr  = {.elem_type = WERK_GGUF_STRING, .n = 1, .data = sx}};
    werk_gguf_value lvl2b   = {.type = WERK_GGUF_ARRAY,
                               .arr  = {.elem_type = WERK_GGUF_STRING, .n = 2, .data = sy}};
    werk_gguf_value lvl1[2] = {
        {.type = WERK_GGUF_ARRAY, .arr = {.elem_type = WERK_GGUF_ARRAY, .n = 1, .data = &lvl2a}},
        {.type = WERK_GGUF_ARRAY, .arr = {.elem_type = WERK_GGUF_ARRAY, .n = 1, .data = &lvl2b}}};
    WT_CHECK(werk_gguf_set_arr(g, "a.nested3", WERK_GGUF_ARRAY, lvl1, 2, &e) == WERK_OK, "%s", e.msg);

    for (int i = 0; i < 4 * 64; i++) {
        f32_data[i] = (float)i * 0.37f - 20.0f;
    }
    for (int i = 0; i < 64; i++) {
        f16_data[i] = werk_fp32_to_fp16((float)i / 7.0f);
    }
    for (size_t i = 0; i < sizeof(q8_data); i++) {
        q8_data[i] = (uint8_t)(i * 13 + 1);
    }
    for (int i = 0; i < 8; i++) {
        tail_data[i] = (float)i;
    }
    int64_t s_f32[] = {4, 64}, s_f16[] = {2, 32}, s_q8[] = {2, 64}, s_i32[] = {5}, s_tail[] = {2, 2, 2};
    WT_CHECK(werk_gguf_add_tensor(g, "blk.0.w", WERK_DTYPE_F32, 2, s_f32, f32_data, sizeof(f32_data), NULL,
                                  &e) == WERK_OK,
             "%s", e.msg);
    WT_CHECK(werk_gguf_add_tensor(g, "blk.0.h", WERK_DTYPE_F16, 2, s_f16, f16_data, sizeof(f16_data), NULL,
                                  &e) == WERK_OK,
             "%s", e.msg);
    WT_CHECK(werk_gguf_add_tensor(g, "blk.0.q", WERK_DTYPE_Q8_0, 2, s_q8, q8_data, sizeof(q8_data), NULL,
                                  &e) == WERK_OK,
             "%s", e.msg);
    WT_CHECK(werk_gguf_add_tensor(g, "ids", WERK_DTYPE_I32, 1, s_i32, i32_data, sizeof(i32_data), NULL, &e) ==
                 WERK_OK,
             "%s", e.msg);
    WT_CHECK(werk_gguf_add_tensor(g, "tail", WERK_DTYPE_F32, 3, s_tail, tail_data, sizeof(tail_data), NULL,
                                  &e) == WERK_OK,
             "%s", e.msg);
}

static bool value_eq(const werk_gguf_value *a, const werk_gguf_value *b);

static bool array_eq(const werk_gguf_value *a, const werk_gguf_value *b) {
    if (a->arr.elem_type != b->arr.elem_type || a->arr.n != b->arr.n) {
        return false;
    }
    uint64_t n = a->arr.n;
    switch (a->arr.elem_type) {
    case WERK_GGUF_STRING: {
        const werk_gguf_str *x = a->arr.data, *y = b->arr.data;
        for (uint64_t i = 0; i < n; i++) {
            if (x[i].len != y[i].len || memcmp(x[i].data, y[i].data, x[i].len) != 0 ||
                y[i].data[y[i].len] != 0) {
                return false;
            }
        }
        return true;
    }
    case WERK_GGUF_ARRAY: {
        const werk_gguf_value *x = a->arr.data, *y = b->arr.data;
        for (uint64_t i = 0; i < n; i++) {
            if (!value_eq(&x[i], &y[i])) {
                return false;
            }
        }
        return true;
    }
    default: {
        size_t sz = a->arr.elem_type == WERK_GGUF_BOOL      ? 1
                    : a->arr.elem_type <= WERK_GGUF_INT8    ? 1
                    : a->arr.elem_type <= WERK_GGUF_INT16   ? 2
                    : a->arr.elem_type <= WERK_GGUF_FLOAT32 ? 4
                                                            : 8;
        return n == 0 || memcmp(a->arr.data, b->arr.data, n * sz) == 0;
    }
    }
}

static bool value_eq(const werk_gguf_value *a, const werk_gguf_value *b) {
    if (a->type != b->type) {
        return false;
    }
    switch (a->type) {
    case WERK_GGUF_UINT8:
    case WERK_GGUF_INT8:
        return a->u8 == b->u8;
    case WERK_GGUF_UINT16:
    case WERK_GGUF_INT16:
        return a->u16 == b->u16;
    case WERK_GGUF_UINT32:
    case WERK_GGUF_INT32:
    case WERK_GGUF_FLOAT32:
        return a->u32 == b->u32;
    case WERK_GGUF_BOOL:
        return a->b == b->b;
    case WERK_GGUF_STRING:
        return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0 &&
               b->str.data[b->str.len] == 0;
    case WERK_GGUF_ARRAY:
        return array_eq(a, b);
    default:
        return a->u64 == b->u64;
    }
}

static void check_same(const werk_gguf *a, const werk_gguf *b, const char *label) {
    WT_CHECK(werk_gguf_n_kv(a) == werk_gguf_n_kv(b), "%s: %" PRId64 " vs %" PRId64 " kvs", label,
             werk_gguf_n_kv(a), werk_gguf_n_kv(b));
    for (int64_t i = 0; i < werk_gguf_n_kv(a) && i < werk_gguf_n_kv(b); i++) {
        const werk_gguf_kv *x = werk_gguf_kv_at(a, i), *y = werk_gguf_kv_at(b, i);
        WT_CHECK(strcmp(x->key, y->key) == 0, "%s: kv %" PRId64 ": %s vs %s", label, i, x->key, y->key);
        WT_CHECK(value_eq(&x->value, &y->value), "%s: kv '%s' differs", label, x->key);
    }
    WT_CHECK(werk_gguf_n_tensors(a) == werk_gguf_n_tensors(b), "%s: tensor counts", label);
    for (int64_t i = 0; i < werk_gguf_n_tensors(a) && i < werk_gguf_n_tensors(b); i++) {
        const werk_gguf_tensor *x = werk_gguf_tensor_at(a, i), *y = werk_gguf_tensor_at(b, i);
        WT_CHECK(strcmp(x->name, y->name) == 0, "%s: tensor %" PRId64 " name", label, i);
        WT_CHECK(x->type == y->type && x->n_dims == y->n_dims, "%s: tensor '%s' type/dims", label, x->name);
        WT_CHECK(memcmp(x->shape, y->shape, sizeof(x->shape)) == 0, "%s: tensor '%s' shape", label, x->name);
        WT_CHECK(x->nbytes == y->nbytes && memcmp(x->data, y->data, x->nbytes) == 0, "%s: tensor '%s' bytes",
                 label, x->name);
    }
}

static void test_roundtrip(void) {
    werk_gguf *g = werk_gguf_init();
    build_model(g);
    char path[512];
    wt_tmp(path, sizeof(path), "gguf_roundtrip.gguf");
    werk_err e = {0};
    WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_OK, "write: %s", e.msg);
    werk_gguf *r = NULL;
    WT_CHECK(werk_gguf_read(path, &r, &e) == WERK_OK, "read: %s", e.msg);
    if (r) {
        check_same(g, r, "roundtrip");
        WT_CHECK(werk_gguf_version(r) == 3, "version %u", werk_gguf_version(r));
        WT_CHECK(strcmp(werk_gguf_path(r), path) == 0, "path");
        // Layout: 32-byte aligned offsets, each tensor padded.
        const werk_gguf_tensor *t0 = werk_gguf_tensor_at(r, 0), *t1 = werk_gguf_tensor_at(r, 1);
        WT_CHECK(t0->offset == 0 && t1->offset == 1024, "offsets %" PRIu64 " %" PRIu64, t0->offset,
                 t1->offset);
        for (int64_t i = 0; i < werk_gguf_n_tensors(r); i++) {
            const werk_gguf_tensor *t = werk_gguf_tensor_at(r, i);
            WT_CHECK(t->offset % 32 == 0 && (uintptr_t)t->data % 32 == 0, "tensor %s misaligned", t->name);
        }
        // Writing what was read gives the same bytes (a GGUF -> GGUF copy is exact).
        char path2[512];
        wt_tmp(path2, sizeof(path2), "gguf_roundtrip2.gguf");
        WT_CHECK(werk_gguf_write(r, path2, false, &e) == WERK_OK, "rewrite: %s", e.msg);
        char  *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        werk_read_file(path, 1 << 20, &a, &na, NULL);
        werk_read_file(path2, 1 << 20, &b, &nb, NULL);
        WT_CHECK(a && b && na == nb && memcmp(a, b, na) == 0, "rewrite differs (%zu vs %zu bytes)", na, nb);
        // Every truncation of this small valid file fails cleanly.
        int n_bad = 0;
        for (size_t n = 0; a && n < na; n++) {
            uint8_t *copy = malloc(n ? n : 1);
            memcpy(copy, a, n);
            werk_gguf  *t  = NULL;
            werk_err    te = {0};
            werk_status s  = werk_gguf_read_mem(copy, n, "truncated.gguf", &t, &te);
            if (s != WERK_E_FORMAT || t != NULL || !strstr(te.msg, "truncated.gguf") ||
                !strstr(te.msg, "offset")) {
                if (n_bad++ < 5) {
                    fprintf(stderr, "truncated at %zu: status %d msg %s\n", n, (int)s, te.msg);
                }
            }
            werk_gguf_free(t);
            free(copy);
        }
        WT_CHECK(n_bad == 0, "truncated_at_every_offset: %d of %zu truncations misbehaved", n_bad, na);
        // The same file with custom alignment 64.
        werk_gguf_set_u32(g, "general.alignment", 64, &e);
        WT_CHECK(werk_gguf_write(g, path2, false, &e) == WERK_OK, "write align 64: %s", e.msg);
        werk_gguf *r64 = NULL;
        WT_CHECK(werk_gguf_read(path2, &r64, &e) == WERK_OK, "read align 64: %s", e.msg);
        if (r64) {
            WT_CHECK(werk_gguf_alignment(r64) == 64, "alignment %" PRIu64, werk_gguf_alignment(r64));
            check_same(g, r64, "align64");
            for (int64_t i = 0; i < werk_gguf_n_tensors(r64); i++) {
                const werk_gguf_tensor *t = werk_gguf_tensor_at(r64, i);
                WT_CHECK(t->offset % 64 == 0 && (uintptr_t)t->data % 64 == 0, "tensor %s not 64-aligned",
                         t->name);
            }
        }
        werk_gguf_free(r64);
        free(a);
        free(b);
    }
    werk_gguf_free(r);
    werk_gguf_free(g);
}

// ---- conversion while writing ----------------------------------------------------------------

static void test_convert(void) {
    enum { ROWS = 3, COLS = 256, LONG = 200000 + 32 }; // LONG: several conversion segments
    float *w   = malloc(ROWS * COLS * sizeof(float));
    float *lng = malloc(LONG * sizeof(float));
    for (int i = 0; i < ROWS * COLS; i++) {
        w[i] = sinf((float)i * 0.1f) * 3.0f;
    }
    for (int i = 0; i < LONG; i++) {
        lng[i] = cosf((float)i * 0.001f) * 100.0f + 1e-3f * (float)i;
    }
    werk_dtype types[] = {WERK_DTYPE_F16, WERK_DTYPE_BF16, WERK_DTYPE_Q8_0, WERK_DTYPE_F32};
    for (int k = 0; k < 4; k++) {
        werk_dtype type = types[k];
        werk_gguf *g    = werk_gguf_init();
        werk_err   e    = {0};
        int64_t    sw[] = {ROWS, COLS}, sl[] = {LONG};
        int64_t    iw, ip, il;
        werk_gguf_add_tensor(g, "w", WERK_DTYPE_F32, 2, sw, w, ROWS * COLS * 4, &iw, &e);
        werk_gguf_add_tensor(g, "perm", WERK_DTYPE_F32, 2, sw, w, ROWS * COLS * 4, &ip, &e);
        werk_gguf_add_tensor(g, "long", WERK_DTYPE_F32, 1, sl, lng, LONG * 4, &il, &e);
        static const int64_t rmap[ROWS]         = {2, 0, 1};
        werk_gguf_tensor_at_mut(g, iw)->type    = type;
        werk_gguf_tensor_at_mut(g, ip)->type    = type;
        werk_gguf_tensor_at_mut(g, ip)->row_map = rmap;
        werk_gguf_tensor_at_mut(g, ip)->add     = 1.0f;
        werk_gguf_tensor_at_mut(g, il)->type    = type; // one row: segments, or whole for q8_0
        char path[512];
        wt_tmp(path, sizeof(path), "gguf_convert.gguf");
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_OK, "write %s: %s", werk_dtype_name(type),
                 e.msg);
        werk_gguf *r = NULL;
        WT_CHECK(werk_gguf_read(path, &r, &e) == WERK_OK, "read %s: %s", werk_dtype_name(type), e.msg);
        if (r) {
            uint64_t rb;
            werk_dtype_bytes(type, COLS, &rb, NULL);
            uint8_t *want = malloc(ROWS * rb);
            float   *row  = malloc(COLS * sizeof(float));
            // plain conversion
            for (int i = 0; i < ROWS; i++) {
                werk_quantize_row(type, w + i * COLS, want + i * rb, COLS);
            }
            const werk_gguf_tensor *t = werk_gguf_tensor_at(r, werk_gguf_find_tensor(r, "w"));
            WT_CHECK(t->type == type && t->nbytes == ROWS * rb && memcmp(t->data, want, ROWS * rb) == 0,
                     "w as %s differs", werk_dtype_name(type));
            // row_map + add
            for (int i = 0; i < ROWS; i++) {
                for (int j = 0; j < COLS; j++) {
                    row[j] = w[rmap[i] * COLS + j] + 1.0f;
                }
                werk_quantize_row(type, row, want + i * rb, COLS);
            }
            t = werk_gguf_tensor_at(r, werk_gguf_find_tensor(r, "perm"));
            WT_CHECK(t->nbytes == ROWS * rb && memcmp(t->data, want, ROWS * rb) == 0, "perm as %s differs",
                     werk_dtype_name(type));
            // a row longer than one segment
            t = werk_gguf_tensor_at(r, werk_gguf_find_tensor(r, "long"));
            if (type == WERK_DTYPE_F16 || type == WERK_DTYPE_BF16) {
                int n_bad = 0;
                for (int i = 0; i < LONG; i++) {
                    uint16_t h,
                        x = type == WERK_DTYPE_F16 ? werk_fp32_to_fp16(lng[i]) : werk_fp32_to_bf16(lng[i]);
                    memcpy(&h, (const uint8_t *)t->data + 2 * i, 2);
                    n_bad += h != x;
                }
                WT_CHECK(n_bad == 0, "long as %s: %d values differ", werk_dtype_name(type), n_bad);
            } else if (type == WERK_DTYPE_Q8_0) {
                uint64_t lb;
                werk_dtype_bytes(type, LONG, &lb, NULL);
                uint8_t *lq = malloc(lb);
                werk_quantize_row(type, lng, lq, LONG);
                WT_CHECK(t->nbytes == lb && memcmp(t->data, lq, lb) == 0, "long as q8_0 differs");
                free(lq);
            } else {
                WT_CHECK(memcmp(t->data, lng, LONG * 4) == 0, "long f32 differs");
            }
            free(want);
            free(row);
        }
        werk_gguf_free(r);
        werk_gguf_free(g);
    }
    // Same type with a row permutation (copied rows, no conversion) and a q8_0 source
    // dequantized to f32.
    {
        werk_gguf *g = werk_gguf_init();
        werk_err   e = {0};
        uint64_t   qb;
        werk_dtype_bytes(WERK_DTYPE_Q8_0, ROWS * COLS, &qb, NULL);
        uint8_t *q = malloc(qb);
        for (int i = 0; i < ROWS; i++) {
            werk_quantize_row(WERK_DTYPE_Q8_0, w + i * COLS, q + i * (qb / ROWS), COLS);
        }
        int64_t              sw[]   = {ROWS, COLS};
        static const int64_t rmap[] = {1, 2, 0};
        int64_t              ia, ib;
        werk_gguf_add_tensor(g, "perm_q8", WERK_DTYPE_Q8_0, 2, sw, q, qb, &ia, &e);
        werk_gguf_add_tensor(g, "deq_q8", WERK_DTYPE_Q8_0, 2, sw, q, qb, &ib, &e);
        werk_gguf_tensor_at_mut(g, ia)->row_map = rmap;
        werk_gguf_tensor_at_mut(g, ib)->type    = WERK_DTYPE_F32;
        char path[512];
        wt_tmp(path, sizeof(path), "gguf_convert2.gguf");
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_OK, "write: %s", e.msg);
        werk_gguf *r = NULL;
        WT_CHECK(werk_gguf_read(path, &r, &e) == WERK_OK, "read: %s", e.msg);
        if (r) {
            const werk_gguf_tensor *t  = werk_gguf_tensor_at(r, 0);
            size_t                  rb = qb / ROWS;
            bool                    ok = t->nbytes == qb;
            for (int i = 0; ok && i < ROWS; i++) {
                ok = memcmp((const uint8_t *)t->data + i * rb, q + rmap[i] * rb, rb) == 0;
            }
            WT_CHECK(ok, "permuted q8_0 rows differ");
            float *deq = malloc(ROWS * COLS * sizeof(float));
            werk_dequantize_row(WERK_DTYPE_Q8_0, q, deq, ROWS * COLS);
            t = werk_gguf_tensor_at(r, 1);
            WT_CHECK(t->type == WERK_DTYPE_F32 && memcmp(t->data, deq, ROWS * COLS * 4) == 0,
                     "q8_0 -> f32 differs");
            free(deq);
        }
        // An importance matrix reaches the quantizer: q4_K with and without one.
        werk_gguf *gi   = werk_gguf_init();
        float     *imat = malloc(COLS * sizeof(float));
        for (int j = 0; j < COLS; j++) {
            imat[j] = 1.0f + (float)(j % 7) * (float)(j % 7);
        }
        int64_t iq, in;
        werk_gguf_add_tensor(gi, "imat", WERK_DTYPE_F32, 2, sw, w, ROWS * COLS * 4, &iq, &e);
        werk_gguf_add_tensor(gi, "noimat", WERK_DTYPE_F32, 2, sw, w, ROWS * COLS * 4, &in, &e);
        werk_gguf_tensor_at_mut(gi, iq)->type    = WERK_DTYPE_Q4_K;
        werk_gguf_tensor_at_mut(gi, iq)->imatrix = imat;
        werk_gguf_tensor_at_mut(gi, in)->type    = WERK_DTYPE_Q4_K;
        WT_CHECK(werk_gguf_write(gi, path, false, &e) == WERK_OK, "write q4_K: %s", e.msg);
        werk_gguf *ri = NULL;
        WT_CHECK(werk_gguf_read(path, &ri, &e) == WERK_OK, "read q4_K: %s", e.msg);
        if (ri) {
            uint64_t kb;
            werk_dtype_bytes(WERK_DTYPE_Q4_K, ROWS * COLS, &kb, NULL);
            uint8_t *want = malloc(kb);
            werk_quantize_rows(WERK_DTYPE_Q4_K, w, want, ROWS, COLS, imat);
            const werk_gguf_tensor *t = werk_gguf_tensor_at(ri, 0);
            WT_CHECK(t->nbytes == kb && memcmp(t->data, want, kb) == 0, "q4_K with imatrix differs");
            werk_quantize_rows(WERK_DTYPE_Q4_K, w, want, ROWS, COLS, NULL);
            t = werk_gguf_tensor_at(ri, 1);
            WT_CHECK(t->nbytes == kb && memcmp(t->data, want, kb) == 0, "q4_K without imatrix differs");
            free(want);
        }
        werk_gguf_free(ri);
        werk_gguf_free(gi);
        free(imat);

        // Refusals before anything is written: a bad row_map, a type GGUF cannot store.
        static const int64_t bad_map[]          = {0, 3, 1};
        werk_gguf_tensor_at_mut(g, ia)->row_map = bad_map;
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_E_ARG, "bad row_map accepted");
        werk_gguf_tensor_at_mut(g, ia)->row_map = NULL;
        werk_gguf_tensor_at_mut(g, ia)->type    = WERK_DTYPE_U8;
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_E_UNSUPPORTED, "u8 tensor accepted");
        werk_gguf_tensor_at_mut(g, ia)->type = WERK_DTYPE_Q8_0;
        int64_t one[]                        = {1};
        werk_gguf_add_tensor(g, "blk.0.a_name_of_sixty_four_bytes_which_llama_cpp_cannot_load.weight",
                             WERK_DTYPE_F32, 1, one, w, 4, NULL, &e);
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_E_ARG && strstr(e.msg, "at most 63"),
                 "64-byte tensor name accepted: %s", e.msg);
        werk_gguf_set_str(g, "general.alignment", "32", &e);
        WT_CHECK(werk_gguf_write(g, path, false, &e) == WERK_E_FORMAT && strstr(e.msg, "alignment"),
                 "string alignment accepted: %s", e.msg);
        werk_gguf_free(r);
        werk_gguf_free(g);
        free(q);
    }
    free(w);
    free(lng);
}

// ---- getters, setters, lookups --------------------------------------------------------------

static void test_getters(void) {
    werk_gguf *g = werk_gguf_init();
    werk_err   e = {0};
    build_model(g);
    uint32_t u;
    bool     found;
    WT_CHECK(werk_gguf_get_u32(g, "t.u8", &u, &found, &e) == WERK_OK && found && u == 200, "u8 -> u32");
    WT_CHECK(werk_gguf_get_u32(g, "t.u16", &u, &found, &e) == WERK_OK && u == 65535, "u16 -> u32");
    WT_CHECK(werk_gguf_get_u32(g, "t.u32", &u, &found, &e) == WERK_OK && u == 4000000000u, "u32");
    WT_CHECK(werk_gguf_get_u32(g, "t.i16", &u, &found, &e) == WERK_E_FORMAT && strstr(e.msg, "t.i16"),
             "negative i16 -> u32: %s", e.msg);
    WT_CHECK(werk_gguf_get_u32(g, "t.u64", &u, &found, &e) == WERK_E_FORMAT, "huge u64 -> u32");
    werk_gguf_set_u64(g, "t.small64", 7, &e);
    WT_CHECK(werk_gguf_get_u32(g, "t.small64", &u, &found, &e) == WERK_OK && u == 7, "small u64 -> u32");
    werk_gguf_set_i32(g, "t.pos32", 12, &e);
    WT_CHECK(werk_gguf_get_u32(g, "t.pos32", &u, &found, &e) == WERK_OK && u == 12, "i32 -> u32");
    WT_CHECK(werk_gguf_get_u32(g, "general.architecture", &u, &found, &e) == WERK_E_FORMAT &&
                 strstr(e.msg, "general.architecture") && strstr(e.msg, "string"),
             "string -> u32: %s", e.msg);
    WT_CHECK(werk_gguf_get_u32(g, "t.f32", &u, &found, &e) == WERK_E_FORMAT, "f32 -> u32");
    WT_CHECK(werk_gguf_get_u32(g, "nope", &u, &found, &e) == WERK_OK && !found, "missing");
    WT_CHECK(werk_gguf_get_u32(g, "nope", &u, NULL, &e) == WERK_E_FORMAT && strstr(e.msg, "nope"),
             "missing required key");
    float f;
    WT_CHECK(werk_gguf_get_f32(g, "t.f32", &f, &found, &e) == WERK_OK && f == 3.25f, "f32");
    WT_CHECK(werk_gguf_get_f32(g, "t.f64", &f, &found, &e) == WERK_OK && f == (float)(-1.0 / 3.0),
             "f64 -> f32");
    WT_CHECK(werk_gguf_get_f32(g, "general.architecture", &f, &found, &e) == WERK_E_FORMAT, "string -> f32");
    const char *sv;
    WT_CHECK(werk_gguf_get_str(g, "general.architecture", &sv, &found, &e) == WERK_OK &&
                 strcmp(sv, "llama") == 0,
             "str");
    WT_CHECK(werk_gguf_get_str(g, "t.u32", &sv, &found, &e) == WERK_E_FORMAT, "u32 -> str");
    bool bv;
    WT_CHECK(werk_gguf_get_bool(g, "t.bool", &bv, &found, &e) == WERK_OK && bv, "bool");
    WT_CHECK(werk_gguf_get_bool(g, "t.u8", &bv, &found, &e) == WERK_E_FORMAT, "u8 -> bool");

    // Replacing keeps the position; removing keeps the others findable.
    int64_t pos = werk_gguf_find_kv(g, "t.u32");
    int64_t n   = werk_gguf_n_kv(g);
    werk_gguf_set_str(g, "t.u32", "now a string", &e);
    WT_CHECK(werk_gguf_find_kv(g, "t.u32") == pos && werk_gguf_n_kv(g) == n, "replace moved the key");
    WT_CHECK(werk_gguf_get(g, "t.u32")->type == WERK_GGUF_STRING, "replace kept the old type");
    werk_gguf_remove(g, "t.u8");
    werk_gguf_remove(g, "not there");
    WT_CHECK(werk_gguf_n_kv(g) == n - 1 && werk_gguf_find_kv(g, "t.u8") < 0, "remove");
    for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
        const werk_gguf_kv *kv = werk_gguf_kv_at(g, i);
        WT_CHECK(werk_gguf_find_kv(g, kv->key) == i, "find after remove: %s", kv->key);
    }
    WT_CHECK(werk_gguf_find_kv(g, "t.u32") == pos - 1, "order after remove");

    // Bad tensors are refused by add_tensor.
    int64_t s1[] = {2, 33}, s0[] = {0, 4}, s5[] = {1, 1, 1, 1, 1};
    WT_CHECK(werk_gguf_add_tensor(g, "bad", WERK_DTYPE_Q8_0, 2, s1, q8_data, 68, NULL, &e) != WERK_OK,
             "row 33 q8");
    WT_CHECK(werk_gguf_add_tensor(g, "bad", WERK_DTYPE_F32, 2, s0, f32_data, 0, NULL, &e) != WERK_OK,
             "zero dim");
    WT_CHECK(werk_gguf_add_tensor(g, "bad", WERK_DTYPE_F32, 5, s5, f32_data, 4, NULL, &e) != WERK_OK,
             "5 dims");
    int64_t s2[] = {2, 2};
    WT_CHECK(werk_gguf_add_tensor(g, "bad", WERK_DTYPE_F32, 2, s2, f32_data, 12, NULL, &e) != WERK_OK,
             "nbytes");
    WT_CHECK(werk_gguf_add_tensor(g, "ids", WERK_DTYPE_I32, 1, s2, i32_data, 8, NULL, &e) == WERK_E_FORMAT,
             "duplicate tensor accepted");
    werk_gguf_free(g);

    // Many tensors and keys: hash lookups stay right across table growth.
    g = werk_gguf_init();
    enum { MANY = 5000 };
    int64_t one[] = {1};
    for (int i = 0; i < MANY; i++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.ffn_down.weight", i);
        werk_gguf_add_tensor(g, name, WERK_DTYPE_F32, 1, one, f32_data, 4, NULL, &e);
        snprintf(name, sizeof(name), "key.%d", i);
        werk_gguf_set_u32(g, name, (uint32_t)i, &e);
    }
    int n_bad = 0;
    for (int i = 0; i < MANY; i++) {
        char name[64];
        snprintf(name, sizeof(name), "blk.%d.ffn_down.weight", i);
        n_bad += werk_gguf_find_tensor(g, name) != i;
        snprintf(name, sizeof(name), "key.%d", i);
        n_bad += werk_gguf_find_kv(g, name) != i;
    }
    WT_CHECK(n_bad == 0 && werk_gguf_find_tensor(g, "blk.5000.ffn_down.weight") < 0, "%d lookups wrong",
             n_bad);
    werk_gguf_free(g);
    werk_gguf_free(NULL);
}

// ---- atomic writes --------------------------------------------------------------------------

static void test_atomic_write(void) {
    char path[512];
    wt_tmp(path, sizeof(path), "gguf_atomic.gguf");
    werk_err   e     = {0};
    werk_gguf *small = werk_gguf_init();
    werk_gguf_set_str(small, "general.name", "old", &e);
    WT_CHECK(werk_gguf_write(small, path, false, &e) == WERK_OK, "write old: %s", e.msg);
    char  *old   = NULL;
    size_t n_old = 0;
    werk_read_file(path, 1 << 20, &old, &n_old, NULL);

    // A 4 MiB tensor, with the file size limit at 1 MiB: the write fails midway.
    werk_gguf *big  = werk_gguf_init();
    size_t     nbig = 1 << 20;
    float     *data = calloc(nbig, sizeof(float));
    int64_t    sh[] = {1024, 1024};
    werk_gguf_add_tensor(big, "big", WERK_DTYPE_F32, 2, sh, data, nbig * 4, NULL, &e);
    werk_gguf_tensor_at_mut(big, 0)->type = WERK_DTYPE_F16; // through the conversion path too
    werk_gguf_add_tensor(big, "big2", WERK_DTYPE_F32, 2, sh, data, nbig * 4, NULL, &e);

    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 1 << 20, .rlim_max = saved.rlim_max};
    setrlimit(RLIMIT_FSIZE, &lim);
    werk_status s = werk_gguf_write(big, path, false, &e);
    setrlimit(RLIMIT_FSIZE, &saved);
    WT_CHECK(s == WERK_E_IO, "write past the size limit: status %d (%s)", (int)s, e.msg);
    char  *now   = NULL;
    size_t n_now = 0;
    werk_read_file(path, 1 << 20, &now, &n_now, NULL);
    WT_CHECK(old && now && n_old == n_now && memcmp(old, now, n_old) == 0,
             "old file changed by a failed write");
    // No temporary left beside it (named "<path>.tmp.<pid>", or anonymous with O_TMPFILE).
    char dir[512];
    wt_tmp(dir, sizeof(dir), "");
    DIR           *d = opendir(dir);
    struct dirent *de;
    int            n_left = 0;
    while (d && (de = readdir(d))) {
        n_left += strncmp(de->d_name, "gguf_atomic.gguf.", 17) == 0;
    }
    if (d) {
        closedir(d);
    }
    WT_CHECK(n_left == 0, "%d temporaries left in %s", n_left, dir);

    // Without the limit the same write succeeds and replaces the file.
    WT_CHECK(werk_gguf_write(big, path, false, &e) == WERK_OK, "write big: %s", e.msg);
    werk_gguf *r = NULL;
    WT_CHECK(werk_gguf_read(path, &r, &e) == WERK_OK && werk_gguf_n_tensors(r) == 2, "read big: %s", e.msg);
    werk_gguf_free(r);
    werk_gguf_free(small);
    werk_gguf_free(big);
    free(data);
    free(old);
    free(now);
}

int main(void) {
    test_hostile_n_dims();
    test_hostile_ne_overflow();
    test_hostile_size_wrap();
    test_hostile_alignment();
    test_hostile_string_length();
    test_hostile_array_count();
    test_hostile_duplicates();
    test_hostile_block_size();
    test_hostile_data_bounds();
    test_hostile_header();
    test_roundtrip();
    test_convert();
    test_getters();
    test_atomic_write();
    return wt_done();
}
