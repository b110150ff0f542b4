/* tests/bench/bench_train.c - LoRA training throughput against OpenBLAS sgemm, same run
 *
 *   bench_train [--model PATH]... [--threads N]... [--rank R] [--seq T] [--steps S]
 *
 * Default: the fetched SmolLM2-135M-Instruct (Q4_1) and Gemma 3 270M (Q4_K_M, and f32 when
 * $WERK_CACHE/models/gemma-3-270m-f32.gguf exists), rank 16 on all seven projections,
 * one row of 256 random tokens per micro-batch (every target scored), 1 and 2 threads.
 *
 * What is timed: werk_train_grad (forward, chunked LM head + cross-entropy, backward to
 * the LoRA gradients) per micro-batch, median of --steps after one warm-up, wall clock.
 * Achieved GFLOP/s = FLOPs per token x tokens/s with, as llm.c counts for a frozen base,
 *   FLOPs/token = 4 N + attention,  N = matmul parameters (LM head included):
 *   2N forward + 2N for the input gradients (no weight gradients: the base is frozen);
 *   attention = 3 x forward (QK^T and PV; backward does twice the forward's work) with
 *   forward = 4 x n_layer x n_head x head_dim x mean context (T+1)/2 per token.
 * LoRA's own FLOPs (small at rank 16) are left out, so the figure is conservative.
 * The roofline is cblas_sgemm GFLOP/s (best of 5) at the model's own prefill shapes ([T, n_embd] x
 * [n_embd, n_ff]) with the same thread count, measured in this run. Peak RSS is
 * the process's maximum resident set after each model (getrusage).
 *
 * Output: TSV (STYLE.md 3.10): model threads tok_s gflop_s sgemm_gflop_s ratio ws_mib peak_rss_mib
 */
#define _POSIX_C_SOURCE 200809L

#include "infer/model_int.h"
#include "bench_util.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define MAX_LIST 8


static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}



static int64_t matmul_params(const werk_model *m) {
    int64_t n = m->output.rows * m->output.cols;
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L    = &m->layers[il];
        const werk_wview *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) {
            n += ws[i]->rows * ws[i]->cols;
        }
    }
    return n;
}

static double peak_rss_mib(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int
bench_model(const char *path, const int *threads, int n_threads, int64_t rank, int64_t T, int steps) {
    werk_err    err = {0};
    werk_gguf  *g   = NULL;
    werk_model *m   = NULL;
    werk_lora  *p = NULL, *gr = NULL;
    if (werk_gguf_read(path, &g, &err) || werk_model_load(g, &m, &err) ||
        werk_lora_alloc(m, rank, (float)(2 * rank), false, WERK_LORA_ALL_LINEAR, &p, &err) ||
        werk_lora_alloc_like(p, &gr, &err)) {
        fprintf(stderr, "bench_train: %s: %s\n", path, err.msg);
        werk_lora_free(p), werk_model_free(m), werk_gguf_free(g);
        return 1;
    }
    // Non-zero A and B so every LoRA path does its real work.
    int64_t n_par = 0;
    float  *par   = werk_lora_params(p, &n_par);
    for (int64_t i = 0; i < n_par; i++) {
        par[i] = (float)((i * 2654435761u) % 2001) * 1e-5f - 0.01f;
    }
    int32_t *tok = malloc((size_t)T * sizeof(int32_t)), *tgt = malloc((size_t)T * sizeof(int32_t));
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    for (int64_t t = 0; t < T; t++) {
        tok[t] = (int32_t)((t * 7919 + 17) % m->n_vocab);
        pos[t] = (int32_t)t;
    }
    for (int64_t t = 0; t < T; t++) {
        tgt[t] = t + 1 < T ? tok[t + 1] : -100;
    }
    werk_train_batch b         = {.B = 1, .T = T, .tokens = tok, .targets = tgt, .pos = pos, .doc = NULL};
    werk_train_opts  o         = {0};
    const char      *name      = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    double           flops_tok = 4.0 * (double)matmul_params(m) +
                       3.0 * 4.0 * (double)(m->n_layer * m->n_head * m->head_dim) * (double)(T + 1) / 2.0;
    int rc = 0;
    for (int ti = 0; ti < n_threads; ti++) {
        bench_set_threads(threads[ti]);
        double sg = bench_sgemm_gflops(T, m->n_ff, m->n_embd, threads[ti]);
        werk_train_ws *ws = NULL;
        if (werk_train_ws_init(m, p, 1, T, &o, &ws, &err)) {
            fprintf(stderr, "bench_train: %s: %s\n", name, err.msg);
            rc = 1;
            break;
        }
        double t[32];
        for (int s = -1; s < steps; s++) {
            double  loss = 0;
            int64_t n_sc = 0;
            double  t0   = bench_wall_s();
            if (werk_train_grad(ws, m, p, gr, &b, s, &loss, &n_sc, &err)) {
                fprintf(stderr, "bench_train: %s: %s\n", name, err.msg);
                rc = 1;
                break;
            }
            if (s >= 0) {
                t[s] = bench_wall_s() - t0;
            }
        }
        if (rc) {
            werk_train_ws_free(ws);
            break;
        }
        qsort(t, (size_t)steps, sizeof(double), cmp_double);
        double tok_s = (double)T / t[steps / 2], gf = flops_tok * tok_s * 1e-9;
        printf("%s\t%d\t%.1f\t%.2f\t%.2f\t%.3f\t%.0f\t%.0f\n", name, threads[ti], tok_s, gf, sg, gf / sg,
               (double)werk_train_ws_bytes(ws) / (1 << 20), peak_rss_mib());
        fflush(stdout);
        werk_train_ws_free(ws);
    }
    free(tok), free(tgt), free(pos);
    werk_lora_free(gr), werk_lora_free(p), werk_model_free(m), werk_gguf_free(g);
    return rc;
}

int main(int argc, char **argv) {
    const char *models[MAX_LIST];
    int         threads[MAX_LIST], n_models = 0, n_threads = 0, steps = 3;
    int64_t     rank = 16, T = 256;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--model") && v && n_models < MAX_LIST) {
            models[n_models++] = v, i++;
        } else if (!strcmp(argv[i], "--threads") && v && n_threads < MAX_LIST) {
            threads[n_threads++] = atoi(v), i++;
        } else if (!strcmp(argv[i], "--rank") && v) {
            rank = atoll(v), i++;
        } else if (!strcmp(argv[i], "--seq") && v) {
            T = atoll(v), i++;
        } else if (!strcmp(argv[i], "--steps") && v) {
            steps = atoi(v), i++;
        } else if (!strcmp(argv[i], "--quick")) {
            steps = 1;
        } else {
            fprintf(stderr, "usage: bench_train [--model PATH]... [--threads N]... [--rank R] [--seq T] "
                            "[--steps S] [--quick]\n");
            return 2;
        }
    }
    if (steps < 1 || steps > 32 || rank < 1 || T < 2) {
        fprintf(stderr, "bench_train: bad --steps (1..32), --rank or --seq\n");
        return 2;
    }
    static char defaults[3][4096];
    if (n_models == 0) {
        const char *cache = getenv("WERK_CACHE");
        const char *home  = getenv("HOME");
        char        dir[3072];
        if (cache && *cache) {
            snprintf(dir, sizeof(dir), "%s/models", cache);
        } else {
            snprintf(dir, sizeof(dir), "%s/.cache/werk/models", home ? home : ".");
        }
        const char *files[3] = {"SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf",
                                "gemma-3-270m-f32.gguf"};
        for (int i = 0; i < 3; i++) {
            snprintf(defaults[i], sizeof(defaults[i]), "%s/%s", dir, files[i]);
            FILE *f = fopen(defaults[i], "rb");
            if (f) {
                fclose(f);
                models[n_models++] = defaults[i];
            }
        }
        if (n_models == 0) {
            fprintf(stderr, "bench_train: no model in %s (run scripts/fetch-models)\n", dir);
            return 1;
        }
    }
    if (n_threads == 0) {
        threads[0] = 1, threads[1] = 2, n_threads = 2;
    }
    printf("model\tthreads\ttok_s\tgflop_s\tsgemm_gflop_s\tratio\tws_mib\tpeak_rss_mib\n");
    int rc = 0;
    for (int i = 0; i < n_models; i++) {
        rc |= bench_model(models[i], threads, n_threads, rank, T, steps);
    }
    return rc;
}
