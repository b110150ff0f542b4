/* tests/common/test_common.c - common/: atomic files, mmap, bounded reads, arena, SHA-256, errors */
#include "werk_test.h"

#include "common/common.h"

#include <dirent.h>
#include <fcntl.h>

static int count_entries_with_prefix(const char *dir, const char *prefix) {
    DIR           *d = opendir(dir);
    struct dirent *e;
    int            n = 0;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
            n++;
        }
    }
    if (d) {
        closedir(d);
    }
    return n;
}

static void test_afile(void) {
    char dir[512], path[600];
    wt_tmp(dir, sizeof(dir), "common_afile");
    werk_err err = {0};
    WT_CHECK(werk_mkdir_p(dir, &err) == WERK_OK, "%s", err.msg);
    snprintf(path, sizeof(path), "%s/out.bin", dir);
    unlink(path);

    // commit: the file appears with exactly the bytes written
    werk_afile af;
    WT_CHECK(werk_afile_open(&af, path, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(access(path, F_OK) != 0, "target must not exist before commit");
    WT_CHECK(werk_afile_write(&af, "hello", 5, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(werk_afile_pad(&af, 3, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(werk_afile_commit(&af, &err) == WERK_OK, "%s", err.msg);
    char  *buf = NULL;
    size_t n   = 0;
    WT_CHECK(werk_read_file(path, 100, &buf, &n, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(n == 8 && memcmp(buf, "hello\0\0\0", 8) == 0, "content after commit (n=%zu)", n);
    free(buf);

    // abort: the old file stays intact and no temporary is left
    WT_CHECK(werk_afile_open(&af, path, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(werk_afile_write(&af, "XXXXXXXXXXXX", 12, &err) == WERK_OK, "%s", err.msg);
    werk_afile_abort(&af);
    WT_CHECK(werk_read_file(path, 100, &buf, &n, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(n == 8 && memcmp(buf, "hello", 5) == 0, "old content must survive an abort");
    free(buf);
    WT_CHECK(count_entries_with_prefix(dir, "out.bin.tmp") == 0, "temporary left behind");

    // bounded read refuses a file larger than the limit
    WT_CHECK(werk_read_file(path, 4, &buf, &n, &err) == WERK_E_FORMAT, "limit not enforced");
    WT_CHECK(strstr(err.msg, "out.bin") != NULL, "error names the file: %s", err.msg);

    // writing into a folder that does not exist fails cleanly
    char bad[700];
    snprintf(bad, sizeof(bad), "%s/no/such/dir/x.bin", dir);
    WT_CHECK(werk_write_file_atomic(bad, "x", 1, &err) == WERK_E_IO, "expected an i/o error");
}

static void test_mmap(void) {
    char     path[512];
    werk_err err = {0};
    wt_tmp(path, sizeof(path), "common_empty.bin");
    WT_CHECK(werk_write_file_atomic(path, "", 0, &err) == WERK_OK, "%s", err.msg);
    werk_mmap m;
    WT_CHECK(werk_mmap_open(&m, path, &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(m.size == 0 && m.data == NULL, "empty file maps to nothing");
    werk_mmap_close(&m);
    werk_mmap_close(&m); // idempotent
    WT_CHECK(werk_mmap_open(&m, "/nonexistent/file", &err) == WERK_E_IO, "missing file");
    WT_CHECK(werk_mmap_open(&m, "/tmp", &err) == WERK_E_IO, "a folder is not mappable");
}

static void test_arena(void) {
    werk_arena a;
    werk_arena_init(&a);
    char *s = werk_arena_strdup(&a, "abc");
    WT_CHECK(s && strcmp(s, "abc") == 0, "strdup");
    void *big = werk_arena_alloc(&a, 1 << 20);
    WT_CHECK(big && ((uintptr_t)big & 15) == 0, "big aligned allocation");
    for (int i = 0; i < 10000; i++) {
        unsigned char *p = werk_arena_alloc(&a, 24);
        WT_CHECK(p && ((uintptr_t)p & 15) == 0 && p[0] == 0 && p[23] == 0, "zeroed aligned allocation");
        if (!p) {
            break;
        }
        memset(p, 0xff, 24);
    }
    WT_CHECK(strcmp(s, "abc") == 0, "earlier allocations survive");
    WT_CHECK(werk_arena_alloc(&a, SIZE_MAX - 4) == NULL, "absurd size fails");
    werk_arena_free(&a);
}

static void hex(const uint8_t d[32], char out[65]) {
    for (int i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

static void test_sha256(void) {
    // FIPS 180-4 example vectors
    struct {
        const char *msg;
        const char *digest;
    } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        werk_sha256 s;
        uint8_t     d[32];
        char        h[65];
        werk_sha256_init(&s);
        // feed byte by byte to exercise the buffering
        for (const char *c = v[i].msg; *c; c++) {
            werk_sha256_update(&s, c, 1);
        }
        werk_sha256_final(&s, d);
        hex(d, h);
        WT_CHECK(strcmp(h, v[i].digest) == 0, "sha256(\"%s\") = %s", v[i].msg, h);
    }
    // one million 'a' in uneven chunks
    werk_sha256 s;
    uint8_t     d[32];
    char        h[65], chunk[997];
    memset(chunk, 'a', sizeof(chunk));
    werk_sha256_init(&s);
    size_t left = 1000000;
    while (left) {
        size_t k = left < sizeof(chunk) ? left : sizeof(chunk);
        werk_sha256_update(&s, chunk, k);
        left -= k;
    }
    werk_sha256_final(&s, d);
    hex(d, h);
    WT_CHECK(strcmp(h, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0, "1M a: %s", h);
}

static void test_errors(void) {
    werk_err err = {0};
    WT_CHECK(WERK_FAIL(&err, WERK_E_FORMAT, "%s: bad %d", "f.gguf", 7) == WERK_E_FORMAT, "returns code");
    werk_err_prefix(&err, "convert %s", "x");
    WT_CHECK(strcmp(err.msg, "convert x: f.gguf: bad 7") == 0, "prefix: %s", err.msg);
    WT_CHECK(err.line > 0 && strstr(err.file, "test_common.c"), "file:line recorded");
    WT_CHECK(WERK_FAIL(NULL, WERK_E_IO, "ignored") == WERK_E_IO, "NULL err allowed");
    WERK_FAIL(&err, WERK_E_FORMAT, "tensor '%s': bad", "a\nb\r\x1b[31m");
    WT_CHECK(strchr(err.msg, '\n') == NULL && strchr(err.msg, '\x1b') == NULL,
             "control bytes from untrusted names are replaced: %s", err.msg);
    WT_CHECK(werk_status_exit_code(WERK_E_ARG) == 2 && werk_status_exit_code(WERK_E_FORMAT) == 1,
             "exit codes");
    uint64_t r;
    WT_CHECK(!werk_mul_u64(UINT64_MAX / 2, 3, &r), "mul overflow detected");
    WT_CHECK(!werk_add_u64(UINT64_MAX, 1, &r), "add overflow detected");
    WT_CHECK(werk_align_u64(33, 32, &r) && r == 64, "align");
    WT_CHECK(!werk_align_u64(UINT64_MAX - 3, 32, &r), "align overflow detected");
}

int main(void) {
    test_afile();
    test_mmap();
    test_arena();
    test_sha256();
    test_errors();
    return wt_done();
}
