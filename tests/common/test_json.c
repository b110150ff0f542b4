/* tests/common/test_json.c - werk_json_parse / werk_json_read_file on hostile input
 *
 * Checks the hardening around cJSON (common/json.c): trailing garbage, truncation at
 * every byte, embedded NUL and control bytes, invalid UTF-8, nesting depth (incl. a
 * 100k-deep bracket bomb), duplicate keys at any depth, huge numbers, error offsets,
 * and that a 300k-key object (a vocab) parses and is checked in well under a second.
 */
#include "common/common.h"
#include "werk_test.h"

#include <cjson/cJSON.h>

static werk_status parse(const char *s, size_t len, int depth, cJSON **out, werk_err *err) {
    memset(err, 0, sizeof(*err));
    return werk_json_parse(s, len, depth, "t.json", out, err);
}

/* Parses a C string; returns the status and frees the tree. */
static werk_status try_str(const char *s, int depth, werk_err *err) {
    cJSON      *j  = NULL;
    werk_status st = parse(s, strlen(s), depth, &j, err);
    if (st == WERK_OK) {
        WT_CHECK(j != NULL, "ok without a tree for %s", s);
    } else {
        WT_CHECK(j == NULL, "tree returned with an error for %s", s);
        WT_CHECK(strncmp(err->msg, "t.json: ", 8) == 0, "message does not name the source: %s", err->msg);
        WT_CHECK(strchr(err->msg, '\n') == NULL, "message is not one line: %s", err->msg);
    }
    cJSON_Delete(j);
    return st;
}

static void expect_ok(const char *s) {
    werk_err    err;
    werk_status st = try_str(s, 0, &err);
    WT_CHECK(st == WERK_OK, "rejected valid JSON %s: %s", s, err.msg);
}

static void expect_bad(const char *label, const char *s, size_t len, const char *needle) {
    werk_err    err;
    cJSON      *j  = NULL;
    werk_status st = parse(s, len, 0, &j, &err);
    WT_CHECK(st == WERK_E_FORMAT, "%s: accepted (status %d)", label, (int)st);
    WT_CHECK(j == NULL, "%s: tree returned with an error", label);
    if (st != WERK_OK && needle) {
        WT_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", label, err.msg, needle);
    }
    if (st != WERK_OK) {
        WT_CHECK(strchr(err.msg, '\n') == NULL, "%s: message is not one line", label);
    }
    cJSON_Delete(j);
}

static void test_valid(void) {
    expect_ok("{}");
    expect_ok("[]");
    expect_ok("  {\"a\": [1, 2, {\"b\": null}], \"c\": \"x\\ty\\u00e9\\ud83d\\ude00\"}  \n");
    expect_ok("\"just a string\"");
    expect_ok("42");
    expect_ok("{\"tab\":\"a\tb\"}"); // raw tab is tolerated
    expect_ok("{\"utf8\":\"gr\xc3\xbc\xc3\x9f \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    expect_ok("\xEF\xBB\xBF{\"bom\":1}");
    expect_ok("{\"a\":{\"x\":1},\"b\":{\"x\":1}}"); // same key in different objects
    expect_ok("{\"brackets in strings\":\"[[[[{{{{\\\"]]]]\"}");

    cJSON      *j = NULL;
    werk_err    err;
    const char *s  = "{\"n\": 3, \"s\": \"v\", \"arr\": [true, false]}";
    werk_status st = parse(s, strlen(s), 0, &j, &err);
    WT_CHECK(st == WERK_OK, "%s", err.msg);
    if (st == WERK_OK) {
        WT_CHECK(cJSON_GetObjectItemCaseSensitive(j, "n")->valuedouble == 3, "n");
        WT_CHECK(strcmp(cJSON_GetObjectItemCaseSensitive(j, "s")->valuestring, "v") == 0, "s");
        WT_CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "arr")) == 2, "arr");
    }
    cJSON_Delete(j);
    // Not NUL-terminated input: only len bytes are read.
    char buf[8] = {'[', '1', ']', 'X', 'X', 'X', 'X', 'X'};
    st          = parse(buf, 3, 0, &j, &err);
    WT_CHECK(st == WERK_OK, "length-bounded input: %s", err.msg);
    cJSON_Delete(j);
}

static void test_trailing_and_truncated(void) {
    expect_bad("trailing garbage", "{} x", 4, "at byte 3");
    expect_bad("two values", "{}{}", 4, "at byte 2");
    expect_bad("two numbers", "1 2", 3, "invalid JSON at byte");
    expect_bad("trailing comma", "{\"a\":1,}", 8, "invalid JSON at byte");
    expect_bad("empty", "", 0, "empty");
    expect_bad("whitespace only", "  \n ", 4, "invalid JSON");
    expect_bad("bare word", "nul", 3, "invalid JSON");
    expect_bad("single quote", "{'a':1}", 7, "invalid JSON");
    expect_bad("unterminated string", "\"abc", 4, "invalid JSON");
    const char *lc = "{\n  \"a\": 1,\n  x\n}";
    expect_bad("line/column", lc, strlen(lc), "(line 3, column ");

    // Every strict prefix of an object is invalid.
    const char *doc =
        "{\"model\":{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]},\"x\":-1.5e3,\"t\":true}";
    size_t n          = strlen(doc);
    int    n_accepted = 0;
    for (size_t k = 0; k < n; k++) {
        cJSON   *j = NULL;
        werk_err err;
        if (parse(doc, k, 0, &j, &err) != WERK_E_FORMAT || j) {
            n_accepted++;
        }
        cJSON_Delete(j);
    }
    WT_CHECK(n_accepted == 0, "%d truncations of a valid document accepted", n_accepted);
    expect_ok(doc);
}

static void test_bytes(void) {
    expect_bad("NUL after value", "{\"a\":1}\0", 8, "control byte 0x00");
    expect_bad("NUL inside string", "{\"a\":\"x\0y\"}", 11, "at byte 7");
    expect_bad("NUL then garbage", "{}\0garbage", 10, "control byte 0x00");
    expect_bad("control byte in string", "[\"a\x01\"]", 5, "control byte 0x01");
    expect_bad("escape in whitespace", "[1,\x1b 2]", 6, "control byte 0x1b");
    expect_bad("overlong NUL", "[\"\xc0\x80\"]", 6, "not UTF-8");
    expect_bad("overlong slash", "[\"\xe0\x80\xaf\"]", 7, "not UTF-8");
    expect_bad("surrogate", "[\"\xed\xa0\x80\"]", 7, "not UTF-8");
    expect_bad("above U+10FFFF", "[\"\xf4\x90\x80\x80\"]", 8, "not UTF-8");
    expect_bad("F5 lead", "[\"\xf5\x80\x80\x80\"]", 8, "not UTF-8");
    expect_bad("stray continuation", "[\"\x80\"]", 5, "not UTF-8");
    expect_bad("truncated sequence", "[\"\xe2\x82\"]", 6, "not UTF-8");
    expect_bad("lone escaped surrogate", "[\"\\udc00\"]", 10, "invalid JSON");
    expect_bad("bad escape", "[\"\\q\"]", 6, "invalid JSON");
}

static void test_depth(void) {
    char  *s = malloc(300001);
    size_t n = 0;
    // 64 levels: fine by default; 65: rejected.
    for (int d = 64; d <= 65; d++) {
        n = 0;
        for (int i = 0; i < d; i++) {
            s[n++] = '[';
        }
        for (int i = 0; i < d; i++) {
            s[n++] = ']';
        }
        s[n] = 0;
        werk_err    err;
        werk_status st = try_str(s, 0, &err);
        if (d == 64) {
            WT_CHECK(st == WERK_OK, "64 levels rejected: %s", err.msg);
        } else {
            WT_CHECK(st == WERK_E_FORMAT && strstr(err.msg, "deeper than 64") && strstr(err.msg, "byte 64"),
                     "65 levels: %s", err.msg);
        }
    }
    werk_err err;
    WT_CHECK(try_str("{\"a\":{\"b\":[1]}}", 3, &err) == WERK_OK, "depth 3 with max 3: %s", err.msg);
    WT_CHECK(try_str("{\"a\":{\"b\":[[1]]}}", 3, &err) == WERK_E_FORMAT, "depth 4 with max 3 accepted");
    WT_CHECK(try_str("[\"[[[[[[[[[[\"]", 2, &err) == WERK_OK, "brackets in a string counted: %s", err.msg);
    WT_CHECK(try_str("[\"\\\"[[[[[[[\"]", 2, &err) == WERK_OK, "escaped quote ends string: %s", err.msg);
    // A bracket bomb: 100k levels, unclosed and closed, objects too.
    n = 0;
    for (int i = 0; i < 100000; i++) {
        s[n++] = '[';
    }
    WT_CHECK(parse(s, n, 0, &(cJSON *){NULL}, &err) == WERK_E_FORMAT, "100k '[' accepted");
    for (int i = 0; i < 100000; i++) {
        s[n++] = ']';
    }
    WT_CHECK(parse(s, n, 100000, &(cJSON *){NULL}, &err) == WERK_E_FORMAT,
             "100k levels accepted with big max");
    n = 0;
    for (int i = 0; i < 50000; i++) {
        memcpy(s + n, "{\"a\":", 5);
        n += 5;
    }
    WT_CHECK(parse(s, n, 0, &(cJSON *){NULL}, &err) == WERK_E_FORMAT, "object bomb accepted");
    free(s);
}

static void test_duplicates(void) {
    expect_bad("top-level duplicate", "{\"a\":1,\"b\":2,\"a\":3}", 19, "duplicate key \"a\" in object /");
    const char *deep = "{\"model\":{\"vocab\":{\"x\":0,\"y\":1,\"x\":2}}}";
    expect_bad("duplicate at depth", deep, strlen(deep), "duplicate key \"x\" in object /model/vocab");
    const char *arr = "{\"m\":[{\"k\":1},{\"k\":1,\"k\":2}]}";
    expect_bad("duplicate inside array", arr, strlen(arr), "in object /m/1");
    const char *empty = "{\"\":1,\"\":2}";
    expect_bad("duplicate empty key", empty, strlen(empty), "duplicate key \"\"");
    const char *esc = "{\"\\u0041\":1,\"A\":2}";
    expect_bad("duplicate through escape", esc, strlen(esc), "duplicate key \"A\"");
}

static void test_numbers(void) {
    const char *cases[] = {"[1e999]",  "[-1e999]",           "[123456789012345678901234567890]",
                           "[1e-999]", "[9007199254740993]", "[-0]"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        werk_err err;
        WT_CHECK(try_str(cases[i], 0, &err) == WERK_OK, "%s: %s", cases[i], err.msg);
    }
    cJSON   *j = NULL;
    werk_err err;
    if (parse("[1e999]", 7, 0, &j, &err) == WERK_OK) {
        WT_CHECK(isinf(j->child->valuedouble), "1e999 is not inf");
    }
    cJSON_Delete(j);
    // A 200-digit number: cJSON reads at most 63 characters of a number; whatever it
    // does, the result is a clean status.
    char big[256] = "[";
    memset(big + 1, '7', 200);
    big[201]       = ']';
    big[202]       = 0;
    werk_status st = try_str(big, 0, &err);
    WT_CHECK(st == WERK_OK || st == WERK_E_FORMAT, "200-digit number: status %d", (int)st);
    expect_bad("NaN", "[NaN]", 5, "invalid JSON");
    expect_bad("Infinity", "[Infinity]", 10, "invalid JSON");
}

static void test_big_object(void) {
    const int n_keys = 300000;
    size_t    cap    = (size_t)n_keys * 32 + 16;
    char     *s      = malloc(cap);
    size_t    n      = 0;
    s[n++]           = '{';
    for (int i = 0; i < n_keys; i++) {
        n += (size_t)snprintf(s + n, cap - n, "%s\"tok_%d\u2581x\":%d", i ? "," : "", i, i);
    }
    s[n++]         = '}';
    double      t0 = werk_time_s();
    cJSON      *j  = NULL;
    werk_err    err;
    werk_status st = parse(s, n, 0, &j, &err);
    double      dt = werk_time_s() - t0;
    WT_CHECK(st == WERK_OK, "300k keys: %s", err.msg);
    if (j) {
        WT_CHECK(cJSON_GetArraySize(j) == n_keys, "size %d", cJSON_GetArraySize(j));
    }
    cJSON_Delete(j);
    printf("300k-key object: %.3f s\n", dt);
    // The same with one duplicate at the very end.
    n--;
    n += (size_t)snprintf(s + n, cap - n, ",\"tok_7\u2581x\":1}");
    t0 = werk_time_s();
    st = parse(s, n, 0, &j, &err);
    dt = werk_time_s() - t0;
    WT_CHECK(st == WERK_E_FORMAT && strstr(err.msg, "duplicate key \"tok_7"), "late duplicate: %s", err.msg);
    free(s);
}

static void test_read_file(void) {
    char path[1024];
    wt_tmp(path, sizeof(path), "test_json_file.json");
    const char *doc = "{\"hidden_size\": 64, \"dup\": 1, \"dup\": 2}";
    FILE       *f   = fopen(path, "wb");
    WT_CHECK(f != NULL, "cannot write %s", path);
    if (!f) {
        return;
    }
    fputs(doc, f);
    fclose(f);
    cJSON   *j = NULL;
    werk_err err;
    memset(&err, 0, sizeof(err));
    werk_status st = werk_json_read_file(path, 1 << 20, &j, &err);
    WT_CHECK(st == WERK_E_FORMAT && strstr(err.msg, path) && strstr(err.msg, "duplicate key \"dup\""),
             "file with duplicate: %s", err.msg);
    st = werk_json_read_file(path, 10, &j, &err);
    WT_CHECK(st == WERK_E_FORMAT && j == NULL, "size limit not applied (%d)", (int)st);
    f = fopen(path, "wb");
    fputs("{\"hidden_size\": 64}\n", f);
    fclose(f);
    st = werk_json_read_file(path, 1 << 20, &j, &err);
    WT_CHECK(st == WERK_OK && j && cJSON_GetObjectItemCaseSensitive(j, "hidden_size"), "valid file: %s",
             err.msg);
    cJSON_Delete(j);
    st = werk_json_read_file("/nonexistent/x.json", 1 << 20, &j, &err);
    WT_CHECK(st == WERK_E_IO && j == NULL, "missing file status %d", (int)st);
    remove(path);
}

int main(void) {
    test_valid();
    test_trailing_and_truncated();
    test_bytes();
    test_depth();
    test_duplicates();
    test_numbers();
    test_big_object();
    test_read_file();
    return wt_done();
}
