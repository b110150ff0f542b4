/* tests/bench/bench_quantize.c - quantizing Gemma 3 270M: werk against ggml's algorithms
 *
 *   bench_quantize [GEMMA_F32.gguf] [--reps N] [--baseline old.tsv]
 *
 * The Gemma 3 270M f32 checkpoint (default $WERK_CACHE/models/gemma-3-270m-f32.gguf, or
 * `werk convert gemma-3-270m-q4_k_m.gguf OUT --type f32`) is quantized with the plans of
 * Q4_K_M and Q8_0 (quant/presets.c), with 1 and 2 threads:
 *   werk   werk_quantize_rows, what `werk quantize` writes
 *   ref    werk's scalar implementation of ggml's reference algorithm for each type, run in
 *          the same process on the same rows and threads: for the K-quants ggml's scale
 *          searches (werk_<fmt>_quantize_ggml, quant/kquant_ggml.c), for the 32-element
 *          types ggml's quantize_row_<fmt>_ref (werk_<fmt>_quantize_ref, bit-identical)
 *   e2e    werk_quantize_run: read, plan, quantize and write the GGUF (no RMSE pass)
 * Rows are cut into chunks of 16 handed out to the threads (OpenMP, dynamic), the same for
 * werk and ref. Each kernel run is timed N times (default 3); the median is reported.
 * MB/s counts f32 input bytes of the converted tensors (e2e: of the whole input file).
 * rel_rmse is ||deq(q(x)) - x|| / ||x|| over all converted weights: the ratio of speeds is
 * only a win if werk's error is not larger than ref's.
 *
 * TSV on stdout: op shape variant threads ms_median MB/s ratio_vs_ref rel_rmse cpu_ms
 * ratio_vs_baseline (baseline_ms / ms from --baseline's row with the same op, shape,
 * variant and threads; "-" without one). cpu_ms is process CPU time (all threads), useful
 * when other jobs share the machine.
 */
#define _POSIX_C_SOURCE 200809L // clock_gettime, unlink
#include "convert/convert.h"
#include "quant/quant.h"
#include "quant/quant_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef void (*quant_fn)(const float *src, void *dst, int64_t n);

/* ggml's reference algorithm per type (the yardstick). */
static const struct {
    werk_dtype type;
    quant_fn   fn;
} ref_fns[] = {
    {WERK_DTYPE_Q2_K, werk_q2_k_quantize_ggml}, {WERK_DTYPE_Q3_K, werk_q3_k_quantize_ggml},
    {WERK_DTYPE_Q4_K, werk_q4_k_quantize_ggml}, {WERK_DTYPE_Q5_K, werk_q5_k_quantize_ggml},
    {WERK_DTYPE_Q6_K, werk_q6_k_quantize_ggml}, {WERK_DTYPE_Q4_0, werk_q4_0_quantize_ref},
    {WERK_DTYPE_Q4_1, werk_q4_1_quantize_ref},  {WERK_DTYPE_Q5_0, werk_q5_0_quantize_ref},
    {WERK_DTYPE_Q5_1, werk_q5_1_quantize_ref},  {WERK_DTYPE_Q8_0, werk_q8_0_quantize_ref},
};

static quant_fn ref_fn(werk_dtype t) {
    for (size_t i = 0; i < sizeof(ref_fns) / sizeof(ref_fns[0]); i++) {
        if (ref_fns[i].type == t) {
            return ref_fns[i].fn;
        }
    }
    return NULL;
}

typedef struct job {
    const float *x;      // f32 source rows
    uint8_t     *out[2]; // werk, ref
    werk_dtype   type;
    int64_t      n_rows, n_per_row;
    size_t       row_bytes;
} job;

enum { CHUNK = 16 };

static void set_threads(int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

/* Quantizes every job's rows with werk (which = 0) or ref (which = 1). */
static void run(job *jobs, int n_jobs, int which) {
    for (int j = 0; j < n_jobs; j++) {
        job     *jb       = &jobs[j];
        int64_t  n_chunks = (jb->n_rows + CHUNK - 1) / CHUNK;
        quant_fn rf       = ref_fn(jb->type);
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1)
#endif
        for (int64_t c = 0; c < n_chunks; c++) {
            int64_t r0 = c * CHUNK, nr = jb->n_rows - r0 < CHUNK ? jb->n_rows - r0 : CHUNK;
            if (which == 0) {
                werk_quantize_rows(jb->type, jb->x + r0 * jb->n_per_row,
                                   jb->out[0] + (size_t)r0 * jb->row_bytes, nr, jb->n_per_row, NULL);
            } else {
                for (int64_t r = r0; r < r0 + nr; r++) {
                    rf(jb->x + r * jb->n_per_row, jb->out[1] + (size_t)r * jb->row_bytes, jb->n_per_row);
                }
            }
        }
    }
}

static double rel_rmse(const job *jobs, int n_jobs, int which) {
    double se = 0, sx = 0;
    for (int j = 0; j < n_jobs; j++) {
        const job *jb = &jobs[j];
        float     *y  = malloc((size_t)jb->n_per_row * sizeof(float));
        for (int64_t r = 0; r < jb->n_rows; r++) {
            const float *x = jb->x + r * jb->n_per_row;
            werk_dequantize_row(jb->type, jb->out[which] + (size_t)r * jb->row_bytes, y, jb->n_per_row);
            for (int64_t k = 0; k < jb->n_per_row; k++) {
                double d = (double)y[k] - (double)x[k];
                se += d * d;
                sx += (double)x[k] * (double)x[k];
            }
        }
        free(y);
    }
    return sqrt(se / sx);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// ---- baseline ------------------------------------------------------------------------------

typedef struct baseline {
    char   key[160];
    double ms;
} baseline;

static baseline *base;
static int       n_base;

static void load_baseline(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_quantize: cannot read baseline %s\n", path);
        return;
    }
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        char   op[32], shape[64], variant[32];
        int    threads;
        double ms;
        if (sscanf(line, "%31s %63s %31s %d %lf", op, shape, variant, &threads, &ms) == 5) {
            base = realloc(base, (size_t)(n_base + 1) * sizeof(*base));
            snprintf(base[n_base].key, sizeof(base[n_base].key), "%s %s %s %d", op, shape, variant, threads);
            base[n_base++].ms = ms;
        }
    }
    fclose(f);
}

static void row(const char *op,
                const char *shape,
                const char *variant,
                int         threads,
                double      ms,
                double      mb,
                double      ratio_ref,
                double      rmse,
                double      cpu_ms) {
    char key[160], rb[32] = "-", rr[32] = "-", rm[32] = "-";
    snprintf(key, sizeof(key), "%s %s %s %d", op, shape, variant, threads);
    for (int i = 0; i < n_base; i++) {
        if (strcmp(base[i].key, key) == 0) {
            snprintf(rb, sizeof(rb), "%.2f", base[i].ms / ms);
        }
    }
    if (ratio_ref > 0) {
        snprintf(rr, sizeof(rr), "%.2f", ratio_ref);
    }
    if (rmse >= 0) {
        snprintf(rm, sizeof(rm), "%.6f", rmse);
    }
    printf("%s\t%s\t%s\t%d\t%.1f\t%.1f\t%s\t%s\t%.0f\t%s\n", op, shape, variant, threads, ms, mb / (ms / 1e3),
           rr, rm, cpu_ms, rb);
    fflush(stdout);
}

// ---- main -------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    const char *path = NULL;
    int         reps = 3;
    char        def[1024];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (strcmp(argv[i], "--baseline") == 0 && i + 1 < argc) {
            load_baseline(argv[++i]);
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        const char *cache = getenv("WERK_CACHE"), *home = getenv("HOME");
        if (cache) {
            snprintf(def, sizeof(def), "%s/models/gemma-3-270m-f32.gguf", cache);
        } else {
            snprintf(def, sizeof(def), "%s/.cache/werk/models/gemma-3-270m-f32.gguf", home ? home : ".");
        }
        path = def;
    }
    if (reps < 1) {
        reps = 1;
    }
    werk_err   err = {0};
    werk_gguf *g   = NULL;
    if (werk_gguf_read(path, &g, &err) != WERK_OK) {
        fprintf(
            stderr,
            "bench_quantize: SKIP: %s (make it with: werk convert gemma-3-270m-q4_k_m.gguf %s --type f32)\n",
            err.msg, path);
        return 0;
    }
    int64_t  n_t        = werk_gguf_n_tensors(g);
    uint64_t file_bytes = 0;
    for (int64_t i = 0; i < n_t; i++) {
        file_bytes += werk_gguf_tensor_at(g, i)->nbytes;
    }
    printf(
        "op\tshape\tvariant\tthreads\tms_median\tMB/s\tratio_vs_ref\trel_rmse\tcpu_ms\tratio_vs_baseline\n");
    const char *presets[] = {"Q4_K_M", "Q8_0"};
    for (int pi = 0; pi < 2; pi++) {
        werk_quant_opts o       = {.preset = werk_quant_preset_find(presets[pi])};
        o.output_type           = WERK_DTYPE_COUNT;
        o.token_embd_type       = WERK_DTYPE_COUNT;
        werk_quant_choice *plan = calloc((size_t)n_t, sizeof(*plan));
        job               *jobs = calloc((size_t)n_t, sizeof(*jobs));
        if (werk_quant_plan_gguf(g, &o, plan, &err) != WERK_OK) {
            fprintf(stderr, "bench_quantize: plan: %s\n", err.msg);
            return 1;
        }
        int    n_jobs = 0;
        double mb     = 0;
        for (int64_t i = 0; i < n_t; i++) {
            const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
            if (t->src_type != WERK_DTYPE_F32 || plan[i].type == WERK_DTYPE_F32) {
                continue;
            }
            if (!ref_fn(plan[i].type) || !werk_dtype_can_quantize(plan[i].type)) {
                fprintf(stderr, "bench_quantize: no quantizer for %s\n", werk_dtype_name(plan[i].type));
                return 1;
            }
            job *jb       = &jobs[n_jobs++];
            jb->x         = t->data;
            jb->type      = plan[i].type;
            jb->n_per_row = t->shape[t->n_dims - 1];
            jb->n_rows    = werk_gguf_tensor_nrows(t);
            uint64_t rb;
            werk_dtype_bytes(jb->type, (uint64_t)jb->n_per_row, &rb, NULL);
            jb->row_bytes = (size_t)rb;
            jb->out[0]    = malloc(jb->row_bytes * (size_t)jb->n_rows);
            jb->out[1]    = malloc(jb->row_bytes * (size_t)jb->n_rows);
            mb += (double)t->nbytes / 1e6;
        }
        char shape[64];
        snprintf(shape, sizeof(shape), "gemma-3-270m:%s", presets[pi]);
        uint8_t *first   = NULL; // werk's bytes with 1 thread, to check 2 threads give the same
        size_t   first_n = 0;
        for (int threads = 1; threads <= 2; threads++) {
            set_threads(threads);
            double ms[2], cpu[2], rmse[2];
            for (int which = 0; which < 2; which++) {
                double *t_ms = calloc((size_t)reps, sizeof(double));
                double  c0   = cpu_s();
                run(jobs, n_jobs, which); // warm-up (page cache, allocator)
                c0 = cpu_s();
                for (int r = 0; r < reps; r++) {
                    double t0 = werk_time_s();
                    run(jobs, n_jobs, which);
                    t_ms[r] = 1e3 * (werk_time_s() - t0);
                }
                cpu[which] = 1e3 * (cpu_s() - c0) / reps;
                qsort(t_ms, (size_t)reps, sizeof(double), cmp_double);
                ms[which]   = t_ms[reps / 2];
                rmse[which] = rel_rmse(jobs, n_jobs, which);
                free(t_ms);
            }
            row("quantize", shape, "werk", threads, ms[0], mb, ms[1] / ms[0], rmse[0], cpu[0]);
            row("quantize", shape, "ref", threads, ms[1], mb, 1.0, rmse[1], cpu[1]);
            // werk's bytes must not depend on the thread count
            size_t total = 0;
            for (int j = 0; j < n_jobs; j++) {
                total += jobs[j].row_bytes * (size_t)jobs[j].n_rows;
            }
            uint8_t *all = malloc(total), *p = all;
            for (int j = 0; j < n_jobs; j++) {
                memcpy(p, jobs[j].out[0], jobs[j].row_bytes * (size_t)jobs[j].n_rows);
                p += jobs[j].row_bytes * (size_t)jobs[j].n_rows;
            }
            if (!first) {
                first   = all;
                first_n = total;
            } else {
                if (total != first_n || memcmp(first, all, total) != 0) {
                    fprintf(stderr, "bench_quantize: %s: werk's bytes differ between 1 and 2 threads\n",
                            shape);
                }
                free(all);
            }
        }
        free(first);
        for (int j = 0; j < n_jobs; j++) {
            free(jobs[j].out[0]);
            free(jobs[j].out[1]);
        }
        free(jobs);
        free(plan);

        // end to end: the command's library call, writing a file
        char out[1100];
        snprintf(out, sizeof(out), "%s.bench-%s.gguf", path, presets[pi]);
        for (int threads = 1; threads <= 2; threads++) {
            set_threads(threads);
            werk_quantize_job  qjob = {.in = path, .out = out, .opts = o};
            werk_quant_report *rep  = NULL;
            double             c0 = cpu_s(), t0 = werk_time_s();
            werk_status        s  = werk_quantize_run(&qjob, &rep, &err);
            double             ms = 1e3 * (werk_time_s() - t0);
            if (s) {
                fprintf(stderr, "bench_quantize: e2e: %s\n", err.msg);
            } else {
                row("quantize", shape, "e2e", threads, ms, (double)file_bytes / 1e6, -1, -1,
                    1e3 * (cpu_s() - c0));
            }
            werk_quant_report_free(rep);
            unlink(out);
        }
    }
    werk_gguf_free(g);
    free(base);
    return 0;
}
