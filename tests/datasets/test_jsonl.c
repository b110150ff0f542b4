/* tests/datasets/test_jsonl.c - JSONL reader: record formats, file:line errors, .zst
 *
 * Pre-tokenized records (labels given, defaulted, -100), blank lines, CRLF; malformed
 * files (bad JSON, missing fields, wrong types, ids outside the vocab, length mismatch,
 * non-UTF-8, overlong line, empty file, truncated zstd) each fail with WERK_E_FORMAT
 * naming "file:line"; a .jsonl.zst written with ZSTD_compress reads back the same records.
 */
#include "datasets/datasets.h"
#include "tests/werk_test.h"

#include <zstd.h>

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    WT_CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

/* Reads all records of path; returns the status of the first failure, with err filled. */
static werk_status read_all(const char  *path,
                            size_t       max_line,
                            int64_t      n_vocab,
                            werk_record *recs,
                            int          max_recs,
                            int         *n_recs,
                            werk_err    *err) {
    werk_jsonl *r  = NULL;
    werk_status st = werk_datasets_open_jsonl(path, max_line, &r, err);
    *n_recs        = 0;
    while (!st) {
        werk_record rec = {0};
        bool        eof = false;
        st              = werk_datasets_next_record(r, NULL, n_vocab, &rec, &eof, err);
        if (st || eof) {
            werk_datasets_free_record(&rec);
            break;
        }
        if (*n_recs < max_recs) {
            recs[(*n_recs)++] = rec;
        } else {
            werk_datasets_free_record(&rec);
        }
    }
    werk_datasets_close_jsonl(r);
    return st;
}

static void expect_error(
    const char *name, const char *text, size_t len, size_t max_line, const char *where, const char *needle) {
    char path[1024];
    wt_tmp(path, sizeof(path), name);
    write_file(path, text, len);
    werk_record recs[4];
    int         n   = 0;
    werk_err    err = {0};
    werk_status st  = read_all(path, max_line, 512, recs, 4, &n, &err);
    for (int i = 0; i < n; i++) {
        werk_datasets_free_record(&recs[i]);
    }
    WT_CHECK(st == WERK_E_FORMAT, "%s: status %d (%s)", name, (int)st, err.msg);
    char loc[1100];
    snprintf(loc, sizeof(loc), "%s:%s:", path, where);
    WT_CHECK(strstr(err.msg, loc) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, loc);
    WT_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, needle);
}

static const char GOOD[] = "{\"input_ids\": [1, 2, 3], \"labels\": [-100, 2, 3]}\n"
                           "\n"
                           "{\"input_ids\": [5, 6]}\r\n"
                           "{\"labels\": [-100, -100], \"input_ids\": [7, 8]}";

static void check_good(const char *path, const char *label) {
    werk_record recs[4];
    int         n   = 0;
    werk_err    err = {0};
    werk_status st  = read_all(path, 0, 512, recs, 4, &n, &err);
    WT_CHECK(st == WERK_OK, "%s: %s", label, err.msg);
    WT_CHECK(n == 3, "%s: %d records", label, n);
    if (n == 3) {
        WT_CHECK(recs[0].n == 3 && recs[0].ids[2] == 3 && recs[0].labels[0] == -100 && recs[0].labels[1] == 2,
                 "%s: record 1", label);
        WT_CHECK(recs[0].line == 1 && recs[1].line == 3 && recs[2].line == 4, "%s: lines %lld %lld %lld",
                 label, (long long)recs[0].line, (long long)recs[1].line, (long long)recs[2].line);
        WT_CHECK(recs[1].n == 2 && recs[1].labels[0] == 5 && recs[1].labels[1] == 6, "%s: default labels",
                 label);
        WT_CHECK(recs[2].n == 2 && recs[2].labels[1] == -100 && recs[2].ids[0] == 7, "%s: record 3", label);
    }
    for (int i = 0; i < n; i++) {
        werk_datasets_free_record(&recs[i]);
    }
}

int main(void) {
    char path[1024];
    wt_tmp(path, sizeof(path), "jsonl_good.jsonl");
    write_file(path, GOOD, strlen(GOOD));
    check_good(path, "plain");

    // .zst round trip, once small and once spanning many decoder buffers
    size_t cap = ZSTD_compressBound(strlen(GOOD));
    char  *z   = malloc(cap);
    size_t zn  = ZSTD_compress(z, cap, GOOD, strlen(GOOD), 3);
    WT_CHECK(!ZSTD_isError(zn), "ZSTD_compress");
    wt_tmp(path, sizeof(path), "jsonl_good.jsonl.zst");
    write_file(path, z, zn);
    check_good(path, "zst");
    expect_error("jsonl_trunc.jsonl.zst", z, zn - 3, 0, "1", "truncated zstd");
    free(z);

    werk_strbuf big = {0};
    for (int i = 0; i < 20000; i++) {
        char line[128];
        snprintf(line, sizeof(line), "{\"input_ids\": [%d, %d, %d], \"labels\": [-100, %d, %d]}\n", i % 512,
                 (i * 7) % 512, (i * 13) % 512, (i * 7) % 512, (i * 13) % 512);
        werk_strbuf_puts(&big, line);
    }
    cap = ZSTD_compressBound(big.n);
    z   = malloc(cap);
    zn  = ZSTD_compress(z, cap, big.p, big.n, 1);
    WT_CHECK(!ZSTD_isError(zn), "ZSTD_compress big");
    wt_tmp(path, sizeof(path), "jsonl_big.jsonl.zst");
    write_file(path, z, zn);
    free(z);
    {
        werk_jsonl *r   = NULL;
        werk_err    err = {0};
        werk_status st  = werk_datasets_open_jsonl(path, 0, &r, &err);
        int64_t     n = 0, bad = 0;
        werk_record rec = {0};
        bool        eof = false;
        while (!st && !(st = werk_datasets_next_record(r, NULL, 512, &rec, &eof, &err)) && !eof) {
            bad += rec.n != 3 || rec.ids[1] != (int32_t)((n * 7) % 512) ||
                   rec.labels[2] != (int32_t)((n * 13) % 512);
            n++;
        }
        werk_datasets_free_record(&rec);
        werk_datasets_close_jsonl(r);
        WT_CHECK(st == WERK_OK && n == 20000 && bad == 0, "big zst: st %d n %lld bad %lld %s", (int)st,
                 (long long)n, (long long)bad, err.msg);
    }
    werk_strbuf_free(&big);

    const char *ok1 = "{\"input_ids\": [1]}\n";
    char        buf[4096];
    snprintf(buf, sizeof(buf), "%s{\"input_ids\": [1, 2]\n", ok1);
    expect_error("jsonl_badjson.jsonl", buf, strlen(buf), 0, "2", "bad JSON");
    snprintf(buf, sizeof(buf), "%s%s{\"labels\": [1]}\n", ok1, ok1);
    expect_error("jsonl_missing.jsonl", buf, strlen(buf), 0, "3", "none of");
    snprintf(buf, sizeof(buf), "{\"prompt\": \"a\"}\n");
    expect_error("jsonl_prompt_only.jsonl", buf, strlen(buf), 0, "1", "both");
    snprintf(buf, sizeof(buf), "%s{\"input_ids\": \"1 2\"}\n", ok1);
    expect_error("jsonl_type.jsonl", buf, strlen(buf), 0, "2", "must be an array");
    snprintf(buf, sizeof(buf), "{\"input_ids\": [1, 2.5]}\n");
    expect_error("jsonl_float.jsonl", buf, strlen(buf), 0, "1", "\"input_ids\"[1]");
    snprintf(buf, sizeof(buf), "{\"input_ids\": [1, 512]}\n");
    expect_error("jsonl_vocab.jsonl", buf, strlen(buf), 0, "1", "within the vocab");
    snprintf(buf, sizeof(buf), "{\"input_ids\": [1, 2], \"labels\": [-1, 2]}\n");
    expect_error("jsonl_label.jsonl", buf, strlen(buf), 0, "1", "\"labels\"[0]");
    snprintf(buf, sizeof(buf), "{\"input_ids\": [1, 2], \"labels\": [2]}\n");
    expect_error("jsonl_len.jsonl", buf, strlen(buf), 0, "1", "has 1 entries");
    snprintf(buf, sizeof(buf), "[1, 2]\n");
    expect_error("jsonl_array.jsonl", buf, strlen(buf), 0, "1", "JSON object");
    snprintf(buf, sizeof(buf), "{\"text\": 5}\n");
    expect_error("jsonl_text_type.jsonl", buf, strlen(buf), 0, "1", "must be a string");
    snprintf(buf, sizeof(buf), "%s{\"text\": \"caf\xe9\"}\n", ok1);
    expect_error("jsonl_utf8.jsonl", buf, strlen(buf), 0, "2", "invalid UTF-8");
    snprintf(buf, sizeof(buf), "{\"text\": \"\xc0\xaf\"}\n");
    expect_error("jsonl_overlong_utf8.jsonl", buf, strlen(buf), 0, "1", "invalid UTF-8");
    snprintf(buf, sizeof(buf), "{\"a\": 1, \"a\": 2}\n");
    expect_error("jsonl_dupkey.jsonl", buf, strlen(buf), 0, "1", "bad JSON");
    memset(buf, ' ', 300);
    memcpy(buf, ok1, strlen(ok1));
    memcpy(buf + strlen(ok1), "{\"input_ids\": [1]}", 18);
    buf[299] = '\n';
    expect_error("jsonl_long.jsonl", buf, 300, 100, "2", "longer than 100");
    expect_error("jsonl_empty.jsonl", "", 0, 0, "1", "empty file");
    expect_error("jsonl_blank.jsonl", "\n \n\n", 4, 0, "3", "empty file");

    // {"messages"} is refused as unsupported, naming the line
    {
        wt_tmp(path, sizeof(path), "jsonl_messages.jsonl");
        const char *m = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n";
        write_file(path, m, strlen(m));
        werk_record recs[1];
        int         n   = 0;
        werk_err    err = {0};
        werk_status st  = read_all(path, 0, 512, recs, 1, &n, &err);
        WT_CHECK(st == WERK_E_UNSUPPORTED && strstr(err.msg, ":1:"), "messages: %d %s", (int)st, err.msg);
    }
    // a text record without a tokenizer is an argument error, not a crash
    {
        wt_tmp(path, sizeof(path), "jsonl_text_notok.jsonl");
        write_file(path, "{\"text\": \"hi\"}\n", 15);
        werk_record recs[1];
        int         n   = 0;
        werk_err    err = {0};
        WT_CHECK(read_all(path, 0, 512, recs, 1, &n, &err) == WERK_E_ARG, "text without tokenizer: %s",
                 err.msg);
    }
    // a missing file is an I/O error
    {
        werk_jsonl *r   = NULL;
        werk_err    err = {0};
        WT_CHECK(werk_datasets_open_jsonl("/nonexistent/x.jsonl", 0, &r, &err) == WERK_E_IO && !r, "missing");
    }
    return wt_done();
}
