/* tests/bench/bench_quant_rows.c - quantizer speed and error, werk vs ggml's reference
 *
 *   bench_quant_rows [--rows N] [--types q4_k,q6_k,...] [--reps R] [MODEL.gguf ...]
 *
 * Default models: $WERK_CACHE/models/gemma-3-270m-f32.gguf (else the Q4_K_M file) and
 * SmolLM2-135M-Instruct.Q4_1.gguf. From every 2-D tensor it takes up to N rows (default
 * 64), evenly spaced, dequantized to f32; a row whose length is not a multiple of 256 is
 * joined with its neighbours to lcm(cols, 256) values (the quantizers see blocks, so this
 * only changes which values share a row). Each type is run without and with a synthetic
 * imatrix (per-column mean square of a seeded heavy-tailed activation matrix) through
 * werk's default quantizer and, for the K-quants, ggml's reference algorithm
 * (quant/kquant_ggml.c), on one thread, best of R runs (default 3).
 *
 * TSV (STYLE.md 3.10): type, imatrix (0/1), variant, MB/s of f32 input, cycles per 256
 * values (at the measured rate, from /proc/cpuinfo's MHz when present, else 0), RMSE,
 * importance-weighted RMSE, speed ratio vs ggml, RMSE ratio vs ggml (weighted ratio with
 * an imatrix). Goal (issue 4): speed ratio >= 2 and error ratio <= 1.
 */
#define _GNU_SOURCE
#include "convert/convert.h"
#include "quant/quant.h"
#include "quant/quant_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef void (*qfn)(const float *src, void *dst, int64_t n);
typedef void (*qfn_imat)(const float *src, void *dst, int64_t n, const float *imatrix);

typedef struct variant {
    werk_dtype  type;
    const char *name;
    qfn         plain;
    qfn_imat    imat;
} variant;

// clang-format off
static const variant variants[] = {
    {WERK_DTYPE_Q2_K, "ggml", werk_q2_k_quantize_ggml, werk_q2_k_quantize_ggml_imat},
    {WERK_DTYPE_Q2_K, "werk", werk_q2_k_quantize_ref,  werk_q2_k_quantize_imat},
    {WERK_DTYPE_Q3_K, "ggml", werk_q3_k_quantize_ggml, werk_q3_k_quantize_ggml_imat},
    {WERK_DTYPE_Q3_K, "werk", werk_q3_k_quantize_ref,  werk_q3_k_quantize_imat},
    {WERK_DTYPE_Q4_K, "ggml", werk_q4_k_quantize_ggml, werk_q4_k_quantize_ggml_imat},
    {WERK_DTYPE_Q4_K, "werk", werk_q4_k_quantize_ref,  werk_q4_k_quantize_imat},
    {WERK_DTYPE_Q5_K, "ggml", werk_q5_k_quantize_ggml, werk_q5_k_quantize_ggml_imat},
    {WERK_DTYPE_Q5_K, "werk", werk_q5_k_quantize_ref,  werk_q5_k_quantize_imat},
    {WERK_DTYPE_Q6_K, "ggml", werk_q6_k_quantize_ggml, werk_q6_k_quantize_ggml_imat},
    {WERK_DTYPE_Q6_K, "werk", werk_q6_k_quantize_ref,  werk_q6_k_quantize_imat},
    {WERK_DTYPE_Q4_0, "werk", werk_q4_0_quantize_ref,  werk_q4_0_quantize_imat},
    {WERK_DTYPE_Q4_1, "werk", werk_q4_1_quantize_ref,  werk_q4_1_quantize_imat},
    {WERK_DTYPE_Q5_0, "werk", werk_q5_0_quantize_ref,  werk_q5_0_quantize_imat},
    {WERK_DTYPE_Q5_1, "werk", werk_q5_1_quantize_ref,  werk_q5_1_quantize_imat},
    {WERK_DTYPE_Q8_0, "werk", werk_q8_0_quantize_ref,  NULL},
};
// clang-format on

typedef struct sample {
    int64_t n_rows, n_per_row;
    float  *x;    // n_rows * n_per_row
    float  *imat; // n_per_row
} sample;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double rng_uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(void) {
    return sqrt(-2.0 * log(rng_uniform())) * cos(6.283185307179586 * rng_uniform());
}

/* Per-column mean square of T activations: column scales log-normal, samples Student-t(3). */
static void synthetic_imatrix(float *imat, int64_t n) {
    for (int64_t j = 0; j < n; j++) {
        double c = exp(rng_normal()), s = 0;
        for (int t = 0; t < 32; t++) {
            double chi2 = 0;
            for (int k = 0; k < 3; k++) {
                double g = rng_normal();
                chi2 += g * g;
            }
            double a = c * rng_normal() / sqrt(chi2 / 3.0);
            s += a * a;
        }
        imat[j] = (float)(s / 32);
    }
}

static int64_t gcd64(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a         = b;
        b         = t;
    }
    return a;
}

/* Appends samples of every 2-D tensor of the model at path. */
static int load_samples(const char *path, int64_t max_rows, sample **out, int *n_out) {
    werk_gguf *g = NULL;
    werk_err   err;
    if (werk_gguf_read(path, &g, &err)) {
        fprintf(stderr, "bench_quant_rows: %s\n", err.msg);
        return -1;
    }
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        if (t->n_dims != 2 || !werk_dtype_can_dequantize(t->src_type)) {
            continue;
        }
        const int64_t cols = t->shape[1], rows = t->shape[0];
        const int64_t len  = cols / gcd64(cols, WERK_QK_K) * WERK_QK_K; // lcm(cols, 256)
        const int64_t join = len / cols, n_long = rows / join;
        if (n_long < 1) {
            continue;
        }
        const int64_t n_take = n_long < max_rows ? n_long : max_rows;
        const size_t  rbytes =
            (size_t)(cols / werk_dtype_get(t->src_type)->block_size) * werk_dtype_get(t->src_type)->type_size;
        sample s = {.n_rows = n_take, .n_per_row = len};
        s.x      = malloc((size_t)(n_take * len) * sizeof(float));
        s.imat   = malloc((size_t)len * sizeof(float));
        for (int64_t r = 0; r < n_take; r++) {
            const int64_t lr = r * n_long / n_take; // evenly spaced long rows
            for (int64_t k = 0; k < join; k++) {
                const uint8_t *src = (const uint8_t *)t->data + (size_t)(lr * join + k) * rbytes;
                werk_dequantize_row(t->src_type, src, s.x + r * len + k * cols, cols);
            }
        }
        synthetic_imatrix(s.imat, len);
        *out               = realloc(*out, (size_t)(*n_out + 1) * sizeof(sample));
        (*out)[(*n_out)++] = s;
    }
    werk_gguf_free(g);
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_mhz(void) {
    FILE  *f = fopen("/proc/cpuinfo", "r");
    char   line[256];
    double mhz = 0;
    while (f && fgets(line, sizeof(line), f)) {
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return mhz;
}

typedef struct result {
    double mbps, rmse, wrmse;
} result;

static result run(const variant *v, bool use_imat, const sample *smp, int n_smp, int reps) {
    const werk_dtype_info *ti   = werk_dtype_get(v->type);
    double                 best = 1e30, n_vals = 0, err2 = 0, werr2 = 0, wsum = 0;
    for (int rep = 0; rep < reps; rep++) {
        double t_total = 0;
        for (int s = 0; s < n_smp; s++) {
            const sample *S     = &smp[s];
            const size_t  rbyte = (size_t)(S->n_per_row / ti->block_size) * ti->type_size;
            uint8_t      *q     = malloc(rbyte * (size_t)S->n_rows);
            double        t0    = now_s();
            for (int64_t r = 0; r < S->n_rows; r++) {
                const float *x = S->x + r * S->n_per_row;
                if (use_imat) {
                    v->imat(x, q + (size_t)r * rbyte, S->n_per_row, S->imat);
                } else {
                    v->plain(x, q + (size_t)r * rbyte, S->n_per_row);
                }
            }
            t_total += now_s() - t0;
            if (rep == 0) {
                float *y = malloc((size_t)S->n_per_row * sizeof(float));
                for (int64_t r = 0; r < S->n_rows; r++) {
                    const float *x = S->x + r * S->n_per_row;
                    werk_dequantize_row(v->type, q + (size_t)r * rbyte, y, S->n_per_row);
                    for (int64_t j = 0; j < S->n_per_row; j++) {
                        double e = (double)x[j] - (double)y[j];
                        err2 += e * e;
                        werr2 += S->imat[j] * e * e;
                        wsum += S->imat[j];
                    }
                    n_vals += (double)S->n_per_row;
                }
                free(y);
            }
            free(q);
        }
        best = t_total < best ? t_total : best;
    }
    result r = {.mbps = n_vals * 4 / best / 1e6, .rmse = sqrt(err2 / n_vals), .wrmse = sqrt(werr2 / wsum)};
    return r;
}

int main(int argc, char **argv) {
    int64_t     max_rows = 64;
    int         reps     = 3;
    const char *types    = NULL;
    const char *models[8];
    int         n_models = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--rows") && i + 1 < argc) {
            max_rows = atoll(argv[++i]);
        } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--types") && i + 1 < argc) {
            types = argv[++i];
        } else if (n_models < 8) {
            models[n_models++] = argv[i];
        }
    }
    char        def[3][1024];
    const char *cache = getenv("WERK_CACHE");
    char        home_cache[900];
    if (!cache) {
        snprintf(home_cache, sizeof(home_cache), "%s/.cache/werk", getenv("HOME") ? getenv("HOME") : ".");
        cache = home_cache;
    }
    if (n_models == 0) {
        snprintf(def[0], sizeof(def[0]), "%s/models/gemma-3-270m-f32.gguf", cache);
        snprintf(def[1], sizeof(def[1]), "%s/models/gemma-3-270m-q4_k_m.gguf", cache);
        snprintf(def[2], sizeof(def[2]), "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
        FILE *f            = fopen(def[0], "rb");
        models[n_models++] = f ? def[0] : def[1];
        if (f) {
            fclose(f);
        }
        models[n_models++] = def[2];
    }
    sample *smp   = NULL;
    int     n_smp = 0;
    for (int m = 0; m < n_models; m++) {
        if (load_samples(models[m], max_rows, &smp, &n_smp)) {
            return 1;
        }
    }
    double n_vals = 0;
    for (int s = 0; s < n_smp; s++) {
        n_vals += (double)(smp[s].n_rows * smp[s].n_per_row);
    }
    fprintf(stderr, "bench_quant_rows: %d tensors, %.1f M values\n", n_smp, n_vals / 1e6);
    const double mhz = cpu_mhz();
    printf("type\timatrix\tvariant\tMB/s\tcycles_per_256\trmse\twrmse\tspeed_vs_ggml\terr_vs_ggml\n");
    for (int imat = 0; imat <= 1; imat++) {
        result ref = {0};
        for (size_t k = 0; k < sizeof(variants) / sizeof(variants[0]); k++) {
            const variant *v = &variants[k];
            if (types && !strstr(types, werk_dtype_name(v->type))) {
                continue;
            }
            if (imat && !v->imat) {
                continue;
            }
            result r = run(v, imat, smp, n_smp, reps);
            if (!strcmp(v->name, "ggml")) {
                ref = r;
            } else if (k == 0 || variants[k - 1].type != v->type) {
                ref = (result){0}; // no ggml row for this type
            }
            double cyc = mhz > 0 ? mhz * 1e6 / (r.mbps * 1e6 / 1024.0) : 0; // 256 floats = 1024 bytes
            double sp = ref.mbps > 0 ? r.mbps / ref.mbps : 1, er = 1;
            if (ref.mbps > 0) {
                er = imat ? r.wrmse / ref.wrmse : r.rmse / ref.rmse;
            }
            printf("%s\t%d\t%s\t%.2f\t%.0f\t%.6g\t%.6g\t%.2f\t%.4f\n", werk_dtype_name(v->type), imat,
                   v->name, r.mbps, cyc, r.rmse, r.wrmse, sp, er);
            fflush(stdout);
        }
    }
    for (int s = 0; s < n_smp; s++) {
        free(smp[s].x);
        free(smp[s].imat);
    }
    free(smp);
    return 0;
}
