/* tests/bench/bench_infer.c - prompt processing and decode speed against two rooflines, same run
 *
 *   bench_infer [--model PATH]... [--threads N]... [--prompt T] [--gen G] [--reps R] [--quick]
 *
 * Default: Gemma 3 270M at f32 ($WERK_CACHE/models/gemma-3-270m-f32.gguf, made with
 * `werk convert gemma-3-270m-q4_k_m.gguf ... --type f32` if missing), Q8_0 (the f32
 * quantized once with `werk quantize --q8_0` into $WERK_CACHE/bench/) and the fetched
 * Q4_K_M, each with 1 and 2 threads; a prompt of 512 random tokens, then 128 greedy steps
 * (--quick: 128 and 32, one run).
 *
 * What is timed (wall clock, the best of --reps runs, default 2; weights random or real: the
 * speed does not depend on their values):
 *   prefill: werk_decoder_prefill of the prompt (last token's logits only): tokens/s;
 *   decode:  werk_decoder_step x G after that prompt (greedy argmax of the logits).
 * Rooflines, measured in this run with the same thread count:
 *   copy GB/s: memcpy of a 256 MiB buffer split over the threads (bytes read + written,
 *   STREAM's convention); decode ideal tok/s = copy GB/s / bytes read per token, where
 *   bytes = every layer weight + the LM head (tied: the embedding) at their stored
 *   types + the mean K/V cache read over the G steps (f32, all positions seen by each
 *   layer's window). The embedding row read is left out (one row).
 *   sgemm GFLOP/s: cblas_sgemm at the model's prefill shapes ([T, n_embd] x [n_embd, n_ff],
 *   [T, n_ff] x [n_ff, n_embd]), the mean of both; prefill ideal tok/s = sgemm GFLOP/s /
 *   FLOPs per token, FLOPs = 2 x layer matmul parameters + attention 4 x n_head x
 *   head_dim x mean context per layer (the LM head runs for the last token only).
 * Output: TSV (STYLE.md 3.10) with a header line:
 *   model threads pp_tok_s pp_ideal pp_ratio tg_tok_s tg_ideal tg_ratio copy_gb_s sgemm_gflop_s mb_per_tok
 * tests/bench/bench_infer_llama.py times llama.cpp (llama-cpp-python) on the same files.
 */
#define _POSIX_C_SOURCE 200809L

#include "infer/decode.h"
#include "infer/model_int.h"
#include "bench_util.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_LIST 8



static bool exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}



static uint64_t wbytes(const werk_wview *w) { return (uint64_t)w->rows * w->row_bytes; }

/* Weight bytes a decode step reads (layers + LM head) and layer matmul parameters. */
static void model_sizes(const werk_model *m, uint64_t *bytes, double *params) {
    *bytes  = wbytes(&m->output);
    *params = 0;
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L    = &m->layers[il];
        const werk_wview *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            *bytes += wbytes(ws[i]);
            *params += (double)ws[i]->rows * (double)ws[i]->cols;
        }
    }
}

/* Positions layer il attends to at position p (window on sliding layers). */
static double ctx_at(const werk_model *m, int64_t il, int64_t p) {
    int64_t n = p + 1;
    if (m->layers[il].sliding && m->window > 0 && n > m->window) {
        n = m->window;
    }
    return (double)n;
}

static int32_t argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++) {
        if (x[i] > x[best]) {
            best = i;
        }
    }
    return (int32_t)best;
}

typedef struct run_result {
    double pp_s, tg_s; // seconds for the prompt, for the G steps
} run_result;

static int run_once(const werk_model *m, const int32_t *prompt, int64_t T, int64_t G, float *logits, run_result *r) {
    werk_decoder *d   = NULL;
    werk_err      err = {0};
    if (werk_decoder_init(m, NULL, 0, T + G + 1, &d, &err)) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        return 1;
    }
    double t0 = bench_wall_s();
    if (werk_decoder_prefill(d, prompt, T, logits, &err)) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        werk_decoder_free(d);
        return 1;
    }
    double t1 = bench_wall_s();
    for (int64_t g = 0; g < G; g++) {
        int32_t tok = argmax(logits, werk_model_n_vocab(m));
        if (werk_decoder_step(d, tok, logits, &err)) {
            fprintf(stderr, "bench_infer: %s\n", err.msg);
            werk_decoder_free(d);
            return 1;
        }
    }
    double t2 = bench_wall_s();
    r->pp_s   = t1 - t0;
    r->tg_s   = t2 - t1;
    werk_decoder_free(d);
    return 0;
}

static int bench_model(const char *path, const int *threads, int n_threads, int64_t T, int64_t G, int reps) {
    werk_gguf  *g   = NULL;
    werk_model *m   = NULL;
    werk_err    err = {0};
    if (werk_gguf_read(path, &g, &err) || werk_model_load(g, &m, &err)) {
        fprintf(stderr, "bench_infer: %s\n", err.msg);
        werk_gguf_free(g);
        return 1;
    }
    int64_t  V = werk_model_n_vocab(m);
    uint64_t wb;
    double   params;
    model_sizes(m, &wb, &params);
    // mean K/V bytes a decode step reads, over positions T..T+G-1
    double kv = 0, att_flops = 0;
    for (int64_t p = T; p < T + G; p++) {
        for (int64_t il = 0; il < m->n_layer; il++) {
            kv += 2.0 * ctx_at(m, il, p) * (double)(m->n_head_kv * m->head_dim) * sizeof(float);
        }
    }
    kv /= (double)G;
    for (int64_t p = 0; p < T; p++) {
        for (int64_t il = 0; il < m->n_layer; il++) {
            att_flops += 4.0 * (double)(m->n_head * m->head_dim) * ctx_at(m, il, p);
        }
    }
    double   flops_tok = 2.0 * params + att_flops / (double)T;
    double   bytes_tok = (double)wb + kv;
    int32_t *prompt    = malloc((size_t)T * sizeof(int32_t));
    float   *logits    = malloc((size_t)V * sizeof(float));
    uint64_t rng       = 0x2545F4914F6CDD1Dull;
    for (int64_t i = 0; i < T; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        prompt[i] = (int32_t)(2 + rng % (uint64_t)(V - 2 < 30000 ? V - 2 : 30000));
    }
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (int ti = 0; ti < n_threads; ti++) {
        bench_set_threads(threads[ti]);
        double     cbw  = bench_copy_gbs(threads[ti]);
        double     sg   = 0.5 * (bench_sgemm_gflops(T, m->n_ff, m->n_embd, threads[ti]) +
                                  bench_sgemm_gflops(T, m->n_embd, m->n_ff, threads[ti]));
        run_result best = {1e30, 1e30};
        for (int r = 0; r < reps; r++) {
            run_result rr;
            if (run_once(m, prompt, T, G, logits, &rr)) {
                free(prompt), free(logits), werk_model_free(m), werk_gguf_free(g);
                return 1;
            }
            best.pp_s = rr.pp_s < best.pp_s ? rr.pp_s : best.pp_s;
            best.tg_s = rr.tg_s < best.tg_s ? rr.tg_s : best.tg_s;
        }
        double pp = (double)T / best.pp_s, tg = (double)G / best.tg_s;
        double pp_ideal = sg * 1e9 / flops_tok, tg_ideal = cbw * 1e9 / bytes_tok;
        printf("%s\t%d\t%.1f\t%.1f\t%.3f\t%.2f\t%.2f\t%.3f\t%.2f\t%.1f\t%.1f\n", name, threads[ti], pp, pp_ideal,
               pp / pp_ideal, tg, tg_ideal, tg / tg_ideal, cbw, sg, bytes_tok / 1e6);
        fflush(stdout);
    }
    free(prompt);
    free(logits);
    werk_model_free(m);
    werk_gguf_free(g);
    return 0;
}

int main(int argc, char **argv) {
    const char *models[MAX_LIST];
    int         n_models = 0, threads[MAX_LIST], n_threads = 0, reps = 2;
    int64_t     T = 512, G = 128;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model") && n_models < MAX_LIST) {
            models[n_models++] = argv[++i];
        } else if (i + 1 < argc && !strcmp(argv[i], "--threads") && n_threads < MAX_LIST) {
            threads[n_threads++] = atoi(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--prompt")) {
            T = atoll(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--gen")) {
            G = atoll(argv[++i]);
        } else if (i + 1 < argc && !strcmp(argv[i], "--reps")) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--quick")) {
            T = 128, G = 32, reps = 1;
        } else if (!strcmp(argv[i], "--only") || !strcmp(argv[i], "--baseline")) {
            i++; // scripts/bench passes the other benches' options to every bench: not ours
        } else {
            fprintf(stderr, "usage: bench_infer [--model PATH]... [--threads N]... [--prompt T] [--gen G] [--reps R] "
                            "[--quick]\n");
            return 2;
        }
    }
    if (T < 1 || G < 1 || reps < 1) {
        fprintf(stderr, "bench_infer: bad --prompt / --gen / --reps\n");
        return 2;
    }
    static char f32[4096], q8[4096], q4[4096], dir[2048];
    if (!n_models) {
        const char *cache = getenv("WERK_CACHE");
        const char *home  = getenv("HOME");
        if (cache && *cache) {
            snprintf(dir, sizeof(dir), "%s", cache);
        } else {
            snprintf(dir, sizeof(dir), "%s/.cache/werk", home ? home : ".");
        }
        snprintf(f32, sizeof(f32), "%s/models/gemma-3-270m-f32.gguf", dir);
        snprintf(q4, sizeof(q4), "%s/models/gemma-3-270m-q4_k_m.gguf", dir);
        snprintf(q8, sizeof(q8), "%s/bench/gemma-3-270m-q8_0.gguf", dir);
        if (!exists(f32) && exists(q4)) {
            char *ca[] = {"convert", q4, f32, "--type", "f32", NULL};
            fprintf(stderr, "bench_infer: making %s from %s\n", f32, q4);
            fflush(stdout);
            if (werk_cmd_convert(5, ca) != 0) {
                fprintf(stderr, "bench_infer: convert failed\n");
            }
        }
        if (exists(f32) && !exists(q8)) {
            char bdir[4096];
            snprintf(bdir, sizeof(bdir), "%s/bench", dir);
            mkdir(bdir, 0755);
            // as `werk quantize --q8_0 --no-measure`, without its table on stdout
            werk_quantize_job  job = {.in = f32, .out = q8};
            werk_quant_report *rep = NULL;
            werk_err           err = {0};
            job.opts.preset        = werk_quant_preset_for_type(WERK_DTYPE_Q8_0);
            job.opts.pure          = true;
            job.opts.output_type   = WERK_DTYPE_COUNT;
            job.opts.token_embd_type = WERK_DTYPE_COUNT;
            fprintf(stderr, "bench_infer: quantizing %s -> %s\n", f32, q8);
            if (werk_quantize_run(&job, &rep, &err)) {
                fprintf(stderr, "bench_infer: quantize: %s\n", err.msg);
            }
            werk_quant_report_free(rep);
        }
        const char *cand[] = {f32, q8, q4};
        for (int i = 0; i < 3; i++) {
            if (exists(cand[i])) {
                models[n_models++] = cand[i];
            } else {
                fprintf(stderr, "bench_infer: %s missing, skipped\n", cand[i]);
            }
        }
    }
    if (!n_threads) {
        threads[n_threads++] = 1;
        threads[n_threads++] = 2;
    }
    printf("model\tthreads\tpp_tok_s\tpp_ideal\tpp_ratio\ttg_tok_s\ttg_ideal\ttg_ratio\tcopy_gb_s\tsgemm_gflop_s\t"
           "mb_per_tok\n");
    int rc = 0;
    for (int i = 0; i < n_models; i++) {
        rc |= bench_model(models[i], threads, n_threads, T, G, reps);
    }
    return rc;
}
