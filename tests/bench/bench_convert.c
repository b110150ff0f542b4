/* tests/bench/bench_convert.c - f32 -> f16 GGUF conversion speed next to a plain copy
 *
 *   bench_convert [F32.gguf] [--runs N]
 *
 * Default input: $WERK_CACHE/models/gemma-3-270m-f32.gguf, made from the fetched Q4_K_M
 * file on first use. Both contenders read the same (page-cached) input and write an
 * fsynced output in the same folder, alternating, N runs each (default 5); prints TSV
 * (STYLE.md 3.10): op, input MB, variant, median ms, MB/s of input, ratio vs the copy.
 * Goal (issue 3): convert within 2x of the copy, i.e. ratio >= 0.5.
 */
#define _GNU_SOURCE
#include "convert/convert.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int copy_file(const char *src, const char *dst) {
    int in = open(src, O_RDONLY);
    int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0) {
        return -1;
    }
    static char buf[1 << 20];
    ssize_t     n;
    while ((n = read(in, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n) {
            return -1;
        }
    }
    fsync(out);
    close(in);
    close(out);
    return 0;
}

static werk_status convert_to(const char *src, const char *dst, werk_dtype type, werk_err *err) {
    werk_gguf  *g = NULL;
    werk_status s = werk_gguf_read(src, &g, err);
    if (s) {
        return s;
    }
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        werk_gguf_tensor *t = werk_gguf_tensor_at_mut(g, i);
        t->type             = (t->n_dims >= 2 || type == WERK_DTYPE_F32) ? type : WERK_DTYPE_F32;
    }
    s = werk_gguf_write(g, dst, false, err);
    werk_gguf_free(g);
    return s;
}

int main(int argc, char **argv) {
    const char *in   = NULL;
    int         runs = 5;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else {
            in = argv[i];
        }
    }
    if (runs < 1 || runs > 50) {
        runs = 5;
    }
    const char *cache = getenv("WERK_CACHE");
    char        def[4096], q4[4096];
    werk_err    err = {0};
    if (!in) {
        char home_cache[2048];
        if (!cache) {
            snprintf(home_cache, sizeof(home_cache), "%s/.cache/werk", getenv("HOME") ? getenv("HOME") : "/tmp");
            cache = home_cache;
        }
        snprintf(def, sizeof(def), "%s/models/gemma-3-270m-f32.gguf", cache);
        snprintf(q4, sizeof(q4), "%s/models/gemma-3-270m-q4_k_m.gguf", cache);
        struct stat st;
        if (stat(def, &st) != 0) {
            if (stat(q4, &st) != 0) {
                fprintf(stderr, "bench_convert: %s missing (run scripts/fetch-models)\n", q4);
                return 77;
            }
            fprintf(stderr, "bench_convert: making %s\n", def);
            if (convert_to(q4, def, WERK_DTYPE_F32, &err)) {
                return werk_err_report(&err);
            }
        }
        in = def;
    }
    struct stat st;
    if (stat(in, &st) != 0) {
        fprintf(stderr, "bench_convert: cannot stat %s\n", in);
        return 1;
    }
    double mb = (double)st.st_size / 1e6;
    char   out_copy[4200], out_conv[4200];
    snprintf(out_copy, sizeof(out_copy), "%s.bench-copy", in);
    snprintf(out_conv, sizeof(out_conv), "%s.bench-f16.gguf", in);

    double *t_copy = calloc((size_t)runs, sizeof(double));
    double *t_conv = calloc((size_t)runs, sizeof(double));
    copy_file(in, out_copy); // warm the page cache
    for (int r = 0; r < runs; r++) {
        double t0 = werk_time_s();
        if (copy_file(in, out_copy) != 0) {
            fprintf(stderr, "bench_convert: copy failed\n");
            return 1;
        }
        t_copy[r] = werk_time_s() - t0;
        t0        = werk_time_s();
        if (convert_to(in, out_conv, WERK_DTYPE_F16, &err)) {
            return werk_err_report(&err);
        }
        t_conv[r] = werk_time_s() - t0;
    }
    unlink(out_copy);
    unlink(out_conv);
    qsort(t_copy, (size_t)runs, sizeof(double), cmp_double);
    qsort(t_conv, (size_t)runs, sizeof(double), cmp_double);
    double copy_ms = 1e3 * t_copy[runs / 2], conv_ms = 1e3 * t_conv[runs / 2];
    printf("op\tinput_MB\tvariant\tms_median\tMB_per_s\tratio_vs_copy\n");
    printf("copy\t%.1f\tread+write+fsync\t%.1f\t%.1f\t1.00\n", mb, copy_ms, mb / (copy_ms / 1e3));
    printf("convert\t%.1f\tf32->f16\t%.1f\t%.1f\t%.2f\n", mb, conv_ms, mb / (conv_ms / 1e3), copy_ms / conv_ms);
    free(t_copy);
    free(t_conv);
    return 0;
}
