/* tests/bench/bench_dot.c - speed of the quant kernels per type and ISA level
 *
 *   bench_dot [--quick] [--only PREFIX] [--baseline old.tsv]
 *
 * What is timed (each variant this CPU runs: scalar, avx2, avx512; dot products by
 * kernel name, the rest through the werk_qfns table of that level; quant/dispatch.c
 * says which dot product the avx512 table takes per type):
 *   dot_<type>    a single-token matvec: vec_dot over every row of a weight matrix
 *                 of K = 2048 columns, activations quantized once beforehand; shapes
 *                 "L2" (~512 KiB of weights, cache-resident: the kernel's own speed) and
 *                 "DRAM" (~128 MiB: what decode sees on a real model). GB/s = weight
 *                 bytes read per second.
 *   act_<type>    quantize_act of a 2048-float activation row (f32 -> Q8_0/Q8_1/Q8_K);
 *                 GB/s of f32 input.
 *   deq_<type>    the table's dequantize of a 512 KiB weight row block; GB/s of weight
 *                 bytes.
 *   cvt_<a>_<b>   f16/bf16 row conversions of 16 Mi elements (64 MiB of f32); GB/s of
 *                 f32 bytes.
 * Each figure is the median of 7 samples after a warm-up; a sample repeats the
 * operation until it has run for at least 20 ms (--quick: 3 samples, 5 ms). Time is the
 * CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID), so other processes sharing
 * the cores do not count (they still share caches and memory bandwidth). --only runs the
 * ops whose name starts with PREFIX.
 *
 * Output: TSV (STYLE.md 3.10) with a header line:
 *   op shape variant ms_median GB/s ratio_vs_ref ratio_vs_baseline ns_per_256
 * ms_median is one operation (one whole matvec / row); ratio_vs_ref = scalar time /
 * this time; ratio_vs_baseline = the --baseline file's ms_median for the same
 * op/shape/variant / this one ("-" without); ns_per_256 = nanoseconds per 256 values.
 */
#define _POSIX_C_SOURCE 200809L

#include "quant/quant.h"
#include "quant/simd_int.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define K_COLS 2048
#define MAX_BASELINE 512

static int         n_samples  = 7;
static double      min_sample = 0.020;
static const char *only       = "";

static bool wanted(const char *op) { return strncmp(op, only, strlen(only)) == 0; }

// ---- timing ------------------------------------------------------------------------------

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*bench_fn)(void *ctx);

/* median seconds of one call of fn(ctx) */
static double time_median(bench_fn fn, void *ctx) {
    fn(ctx); // warm-up
    double samples[16];
    for (int s = 0; s < n_samples; s++) {
        int64_t reps = 0;
        double  t0   = now_s(), t;
        do {
            fn(ctx);
            reps++;
            t = now_s();
        } while (t - t0 < min_sample);
        samples[s] = (t - t0) / (double)reps;
    }
    qsort(samples, (size_t)n_samples, sizeof(double), cmp_double);
    return samples[n_samples / 2];
}

// ---- baseline -------------------------------------------------------------------------

static struct {
    char   key[160];
    double ms;
} baseline[MAX_BASELINE];
static int n_baseline;

static void load_baseline(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_dot: cannot read %s\n", path);
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), f) && n_baseline < MAX_BASELINE) {
        char   op[64], shape[64], variant[32];
        double ms;
        if (sscanf(line, "%63[^\t]\t%63[^\t]\t%31[^\t]\t%lf", op, shape, variant, &ms) == 4) {
            snprintf(baseline[n_baseline].key, sizeof(baseline[0].key), "%s|%s|%s", op, shape, variant);
            baseline[n_baseline++].ms = ms;
        }
    }
    fclose(f);
}

static double baseline_ms(const char *op, const char *shape, const char *variant) {
    char key[160];
    snprintf(key, sizeof(key), "%s|%s|%s", op, shape, variant);
    for (int i = 0; i < n_baseline; i++) {
        if (strcmp(baseline[i].key, key) == 0) {
            return baseline[i].ms;
        }
    }
    return 0;
}

/* one TSV line; ref_s is the scalar time of the same op/shape (0 if this is it) */
static void report(const char *op,
                   const char *shape,
                   const char *variant,
                   double      sec,
                   double      bytes,
                   double      n_values,
                   double      ref_s) {
    const double ms = sec * 1e3, base = baseline_ms(op, shape, variant);
    char         rb[32] = "-";
    if (base > 0) {
        snprintf(rb, sizeof(rb), "%.2f", base / ms);
    }
    printf("%s\t%s\t%s\t%.4f\t%.2f\t%.2f\t%s\t%.1f\n", op, shape, variant, ms, bytes / sec * 1e-9,
           ref_s > 0 ? ref_s / sec : 1.0, rb, sec * 1e9 * 256.0 / n_values);
    fflush(stdout);
}

static void fill_floats(float *x, int64_t n, uint64_t seed) {
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 11) * 0x1.0p-53 * 2.0 - 1.0);
    }
}

// ---- dot products ---------------------------------------------------------------------

typedef struct dot_ctx {
    werk_vec_dot_fn dot;
    const uint8_t  *w;
    size_t          row_bytes;
    int64_t         n_rows;
    const void     *act;
    float          *out;
} dot_ctx;

static void run_matvec(void *p) {
    dot_ctx *c = p;
    for (int64_t r = 0; r < c->n_rows; r++) {
        c->dot(K_COLS, &c->out[r], c->w + (size_t)r * c->row_bytes, c->act);
    }
}

#define DOTS(t, a, b)                                                                                        \
    {                                                                                                        \
        WERK_DTYPE_##t, { NULL, werk_##a##_dot_##b##_avx2, werk_##a##_dot_##b##_avx512 }                     \
    }
static const struct {
    werk_dtype      t;
    werk_vec_dot_fn simd[3]; // by werk_isa; [WERK_ISA_SCALAR] is the table's reference
} dot_types[] = {
    DOTS(F32, f32, f32),    DOTS(F16, f16, f16),    DOTS(BF16, bf16, bf16), DOTS(Q4_0, q4_0, q8_0),
    DOTS(Q4_1, q4_1, q8_1), DOTS(Q5_0, q5_0, q8_0), DOTS(Q5_1, q5_1, q8_1), DOTS(Q8_0, q8_0, q8_0),
    DOTS(Q2_K, q2_k, q8_k), DOTS(Q3_K, q3_k, q8_k), DOTS(Q4_K, q4_k, q8_k), DOTS(Q5_K, q5_k, q8_k),
    DOTS(Q6_K, q6_k, q8_k),
};

static void bench_dots(werk_isa best) {
    static const struct {
        const char *name;
        size_t      bytes;
    } shapes[] = {{"L2", (size_t)512 << 10}, {"DRAM", (size_t)128 << 20}};

    float *row = malloc(K_COLS * sizeof(float));
    float *act = malloc(K_COLS * sizeof(float));
    fill_floats(act, K_COLS, 7);
    for (size_t k = 0; k < sizeof(dot_types) / sizeof(dot_types[0]); k++) {
        const werk_dtype t = dot_types[k].t;
        char             op[32];
        snprintf(op, sizeof(op), "dot_%s", werk_dtype_name(t));
        if (!wanted(op)) {
            continue;
        }
        const werk_qfns *q0 = werk_qfns_get_isa(t, WERK_ISA_SCALAR);
        uint64_t         rb = 0, ab = 0;
        werk_dtype_bytes(t, K_COLS, &rb, NULL);
        werk_dtype_bytes(q0->vec_dot_type, K_COLS, &ab, NULL);
        void *aq = malloc(ab);
        q0->quantize_act(act, aq, K_COLS);
        for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
            const int64_t n_rows = (int64_t)(shapes[s].bytes / rb);
            uint8_t      *w      = malloc((size_t)n_rows * rb);
            float        *out    = malloc((size_t)n_rows * sizeof(float));
            // weights: 64 distinct quantized rows repeated (quantizing 128 MiB would dominate)
            for (int64_t r = 0; r < n_rows; r++) {
                if (r < 64) {
                    fill_floats(row, K_COLS, (uint64_t)r + 100);
                    werk_quantize_row(t, row, w + (size_t)r * rb, K_COLS);
                } else {
                    memcpy(w + (size_t)r * rb, w + (size_t)(r % 64) * rb, rb);
                }
            }
            char shape[64];
            snprintf(shape, sizeof(shape), "%s:%lldx%d", shapes[s].name, (long long)n_rows, K_COLS);
            double ref_s = 0;
            for (int isa = WERK_ISA_SCALAR; isa <= (int)best; isa++) {
                werk_vec_dot_fn fn  = isa == WERK_ISA_SCALAR ? q0->vec_dot : dot_types[k].simd[isa];
                dot_ctx         c   = {fn, w, (size_t)rb, n_rows, aq, out};
                const double    sec = time_median(run_matvec, &c);
                if (isa == WERK_ISA_SCALAR) {
                    ref_s = sec;
                }
                report(op, shape, werk_isa_name((werk_isa)isa), sec, (double)n_rows * (double)rb,
                       (double)n_rows * K_COLS, isa == WERK_ISA_SCALAR ? 0 : ref_s);
            }
            free(w);
            free(out);
        }
        free(aq);
    }
    free(row);
    free(act);
}

// ---- activation quantizers and dequantizers ------------------------------------------

typedef struct row_ctx {
    werk_quantize_fn   quant;
    werk_dequantize_fn deq;
    const void        *src;
    void              *dst;
    int64_t            n;
} row_ctx;

static void run_quant(void *p) {
    row_ctx *c = p;
    c->quant(c->src, c->dst, c->n);
}

static void run_deq(void *p) {
    row_ctx *c = p;
    c->deq(c->src, c->dst, c->n);
}

static void bench_act(werk_isa best) {
    static const werk_dtype types[] = {WERK_DTYPE_Q8_0, WERK_DTYPE_Q8_1, WERK_DTYPE_Q8_K};
    float                  *x       = malloc(K_COLS * sizeof(float));
    void                   *y       = malloc(K_COLS * 2);
    fill_floats(x, K_COLS, 3);
    for (size_t k = 0; k < 3; k++) {
        char op[32], shape[32];
        snprintf(op, sizeof(op), "act_%s", werk_dtype_name(types[k]));
        if (!wanted(op)) {
            continue;
        }
        snprintf(shape, sizeof(shape), "%d", K_COLS);
        double ref_s = 0;
        for (int isa = WERK_ISA_SCALAR; isa <= (int)best; isa++) {
            row_ctx      c   = {.quant = werk_qfns_get_isa(types[k], (werk_isa)isa)->quantize_act,
                                .src   = x,
                                .dst   = y,
                                .n     = K_COLS};
            const double sec = time_median(run_quant, &c);
            ref_s            = isa == WERK_ISA_SCALAR ? sec : ref_s;
            report(op, shape, werk_isa_name((werk_isa)isa), sec, K_COLS * 4.0, K_COLS,
                   isa == WERK_ISA_SCALAR ? 0 : ref_s);
        }
    }
    free(x);
    free(y);
}

static void bench_dequant(werk_isa best) {
    static const werk_dtype types[] = {WERK_DTYPE_Q8_0, WERK_DTYPE_Q5_0, WERK_DTYPE_Q4_1,
                                       WERK_DTYPE_Q4_K, WERK_DTYPE_Q6_K, WERK_DTYPE_Q4_0};
    const int64_t           n       = 256 * 1024; // ~140..290 KiB of weights, 1 MiB of f32
    float                  *x       = malloc((size_t)n * sizeof(float));
    float                  *y       = malloc((size_t)n * sizeof(float));
    void                   *q       = malloc((size_t)n * 2);
    fill_floats(x, n, 5);
    for (size_t k = 0; k < sizeof(types) / sizeof(types[0]); k++) {
        char op[32], shape[32];
        snprintf(op, sizeof(op), "deq_%s", werk_dtype_name(types[k]));
        if (!wanted(op)) {
            continue;
        }
        uint64_t qb = 0;
        werk_dtype_bytes(types[k], (uint64_t)n, &qb, NULL);
        werk_quantize_row(types[k], x, q, n);
        snprintf(shape, sizeof(shape), "%lld", (long long)n);
        double ref_s = 0;
        for (int isa = WERK_ISA_SCALAR; isa <= (int)best; isa++) {
            row_ctx c = {
                .deq = werk_qfns_get_isa(types[k], (werk_isa)isa)->dequantize, .src = q, .dst = y, .n = n};
            const double sec = time_median(run_deq, &c);
            ref_s            = isa == WERK_ISA_SCALAR ? sec : ref_s;
            report(op, shape, werk_isa_name((werk_isa)isa), sec, (double)qb, (double)n,
                   isa == WERK_ISA_SCALAR ? 0 : ref_s);
        }
    }
    free(x);
    free(y);
    free(q);
}

// ---- f16 / bf16 rows ----------------------------------------------------------------

static void bench_rows(werk_isa best) {
    const int64_t n = (int64_t)16 << 20;
    float        *f = malloc((size_t)n * sizeof(float));
    uint16_t     *h = malloc((size_t)n * 2);
    fill_floats(f, n, 11);
    werk_f32_to_f16_row_ref(f, h, n);
    static const char *const names[4] = {"cvt_f32_f16", "cvt_f16_f32", "cvt_f32_bf16", "cvt_bf16_f32"};
    for (int k = 0; k < 4; k++) {
        if (!wanted(names[k])) {
            continue;
        }
        double ref_s = 0;
        for (int isa = WERK_ISA_SCALAR; isa <= (int)best; isa++) {
            row_ctx c = {.n = n};
            if (k % 2 == 0) {
                c.src   = f;
                c.dst   = h;
                c.quant = isa == WERK_ISA_AVX512
                              ? (k ? werk_f32_to_bf16_row_avx512 : werk_f32_to_f16_row_avx512)
                          : isa == WERK_ISA_AVX2 ? (k ? werk_f32_to_bf16_row_avx2 : werk_f32_to_f16_row_avx2)
                                                 : (k ? werk_f32_to_bf16_row_ref : werk_f32_to_f16_row_ref);
            } else {
                c.src = h;
                c.dst = f;
                c.deq = isa == WERK_ISA_AVX512
                            ? (k == 3 ? werk_bf16_to_f32_row_avx512 : werk_f16_to_f32_row_avx512)
                        : isa == WERK_ISA_AVX2
                            ? (k == 3 ? werk_bf16_to_f32_row_avx2 : werk_f16_to_f32_row_avx2)
                            : (k == 3 ? werk_bf16_to_f32_row_ref : werk_f16_to_f32_row_ref);
            }
            const double sec = time_median(k % 2 == 0 ? run_quant : run_deq, &c);
            ref_s            = isa == WERK_ISA_SCALAR ? sec : ref_s;
            report(names[k], "16Mi", werk_isa_name((werk_isa)isa), sec, (double)n * 4.0, (double)n,
                   isa == WERK_ISA_SCALAR ? 0 : ref_s);
        }
    }
    free(f);
    free(h);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            n_samples  = 3;
            min_sample = 0.005;
        } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            only = argv[++i];
        } else if (strcmp(argv[i], "--baseline") == 0 && i + 1 < argc) {
            load_baseline(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_dot [--quick] [--only PREFIX] [--baseline old.tsv]\n");
            return 2;
        }
    }
    const werk_isa best = werk_qfns_get(WERK_DTYPE_F32)->isa;
    fprintf(stderr, "bench_dot: ISA levels scalar..%s\n", werk_isa_name(best));
    printf("op\tshape\tvariant\tms_median\tGB/s\tratio_vs_ref\tratio_vs_baseline\tns_per_256\n");
    bench_dots(best);
    bench_act(best);
    bench_dequant(best);
    bench_rows(best);
    return 0;
}
