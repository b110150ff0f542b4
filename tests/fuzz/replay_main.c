/* tests/fuzz/replay_main.c - runs a fuzz target over its corpus without libFuzzer
 *
 * Built for every tests/fuzz/fuzz_*.c so the corpus (tests/fuzz/corpus/<target>/) is a
 * regression test in every build, sanitizer build included. Arguments: files or folders.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    size_t   got = n > 0 ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    LLVMFuzzerTestOneInput(buf, got);
    free(buf);
    return 0;
}

int main(int argc, char **argv) {
    int n_run = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "missing corpus %s\n", argv[i]);
            return 1;
        }
        if (S_ISDIR(st.st_mode)) {
            DIR           *d = opendir(argv[i]);
            struct dirent *e;
            while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.') {
                    continue;
                }
                char p[4096];
                snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
                if (run_file(p)) {
                    return 1;
                }
                n_run++;
            }
            if (d) {
                closedir(d);
            }
        } else {
            if (run_file(argv[i])) {
                return 1;
            }
            n_run++;
        }
    }
    printf("%d inputs replayed, 0 crashes\n", n_run);
    return n_run > 0 ? 0 : 1;
}
