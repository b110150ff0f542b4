/* tests/quant/test_kquant_ggml_oracle.c - werk's ggml-reference quantizers equal llama.cpp's
 *
 * werk keeps ggml's scale searches (quant/kquant_ggml.c) as the yardstick its own K-quant
 * quantizers are measured against, and uses ggml's algorithms as its legacy-format
 * quantizers (Q4_0 ... Q5_1, with and without an imatrix) and its activation quantizers
 * (Q8_0, Q8_1, Q8_K). This test loads ggml itself - libggml-base.so from the PyPI package
 * llama-cpp-python - and checks every one of them byte for byte on Gaussian,
 * heavy-tailed, sparse, one-sided, constant and rescaled rows, with and without a
 * (synthetic) imatrix.
 *
 * The library: $WERK_GGML_LIB, else the one next to python3's llama_cpp module. Skips (77)
 * when neither loads.
 */
#include "quant/quant.h"
#include "quant/quant_int.h"
#include "werk_test.h" // first: it defines _GNU_SOURCE

#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_ROWS 8
#define N_COLS 1024

typedef size_t (*ggml_quantize_fn)(
    const float *src, void *dst, int64_t nrow, int64_t n_per_row, const float *imatrix);
typedef void (*ggml_row_fn)(const float *src, void *dst, int64_t n);

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uniform(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return ((double)(rng >> 11) + 0.5) / 9007199254740992.0;
}

static double normal(void) { return sqrt(-2.0 * log(uniform())) * cos(6.283185307179586 * uniform()); }

static const char *set_names[] = {"gaussian", "heavy-tailed", "sparse", "positive",
                                  "constant", "tiny",         "huge"};
enum { N_SETS = 7 };

static void fill(float *x, int64_t n, int set) {
    for (int64_t i = 0; i < n; i++) {
        double g = normal(), v;
        switch (set) {
        case 0:
            v = g;
            break;
        case 1: {
            double chi2 = 0;
            for (int k = 0; k < 3; k++) {
                double h = normal();
                chi2 += h * h;
            }
            v = 0.02 * g / sqrt(chi2 / 3.0);
            break;
        }
        case 2:
            v = uniform() < 0.1 ? g : 0.0;
            break;
        case 3:
            v = fabs(g);
            break;
        case 4:
            v = 0.37;
            break;
        case 5:
            v = 1e-3 * g;
            break;
        default:
            v = 1e3 * g;
            break;
        }
        x[i] = (float)v;
    }
}

static void *open_ggml(void) {
    const char *env = getenv("WERK_GGML_LIB");
    if (env && *env) {
        return dlopen(env, RTLD_NOW | RTLD_LOCAL);
    }
    char *out = NULL;
    int   rc  = wt_run("python3 -c \"import llama_cpp, os; "
                          "print(os.path.join(os.path.dirname(llama_cpp.__file__), 'lib', 'libggml-base.so'))\" "
                          "2>/dev/null",
                       &out);
    void *h   = NULL;
    if (rc == 0 && out) {
        out[strcspn(out, "\r\n")] = 0;
        h                         = dlopen(out, RTLD_NOW | RTLD_LOCAL);
    }
    free(out);
    return h;
}

typedef struct pair {
    werk_dtype  type;
    const char *ggml_name; // quantize_<type>(src, dst, nrow, n_per_row, imatrix)
    void (*werk_plain)(const float *, void *, int64_t);
    void (*werk_imat)(const float *, void *, int64_t, const float *);
} pair;

static const pair pairs[] = {
    {WERK_DTYPE_Q2_K, "quantize_q2_K", werk_q2_k_quantize_ggml, werk_q2_k_quantize_ggml_imat},
    {WERK_DTYPE_Q3_K, "quantize_q3_K", werk_q3_k_quantize_ggml, werk_q3_k_quantize_ggml_imat},
    {WERK_DTYPE_Q4_K, "quantize_q4_K", werk_q4_k_quantize_ggml, werk_q4_k_quantize_ggml_imat},
    {WERK_DTYPE_Q5_K, "quantize_q5_K", werk_q5_k_quantize_ggml, werk_q5_k_quantize_ggml_imat},
    {WERK_DTYPE_Q6_K, "quantize_q6_K", werk_q6_k_quantize_ggml, werk_q6_k_quantize_ggml_imat},
    {WERK_DTYPE_Q4_0, "quantize_q4_0", werk_q4_0_quantize_ref, werk_q4_0_quantize_imat},
    {WERK_DTYPE_Q4_1, "quantize_q4_1", werk_q4_1_quantize_ref, werk_q4_1_quantize_imat},
    {WERK_DTYPE_Q5_0, "quantize_q5_0", werk_q5_0_quantize_ref, werk_q5_0_quantize_imat},
    {WERK_DTYPE_Q5_1, "quantize_q5_1", werk_q5_1_quantize_ref, werk_q5_1_quantize_imat},
    {WERK_DTYPE_Q8_0, "quantize_q8_0", werk_q8_0_quantize_ref, NULL},
};

static size_t row_bytes(werk_dtype t, int64_t n) {
    uint64_t b = 0;
    WERK_ASSERT(werk_dtype_bytes(t, (uint64_t)n, &b, NULL) == WERK_OK);
    return (size_t)b;
}

/* Number of blocks whose bytes differ. */
static int64_t diff_blocks(const uint8_t *a, const uint8_t *b, size_t bytes, size_t block) {
    int64_t n = 0;
    for (size_t off = 0; off < bytes; off += block) {
        n += memcmp(a + off, b + off, block) != 0;
    }
    return n;
}

int main(void) {
    void *lib = open_ggml();
    if (!lib) {
        WT_SKIP("no libggml-base.so to compare with (pip install llama-cpp-python, or set WERK_GGML_LIB)");
    }
    float *x    = malloc(sizeof(float) * N_ROWS * N_COLS);
    float *imat = malloc(sizeof(float) * N_COLS);
    for (int64_t j = 0; j < N_COLS; j++) {
        double c = exp(normal()), g = normal();
        imat[j] = (float)(c * c * (0.5 + g * g));
    }
    const size_t max_bytes = N_ROWS * (N_COLS / WERK_QK_K) * sizeof(block_q8_K);
    uint8_t     *ref = malloc(max_bytes), *got = malloc(max_bytes);
    int          n_compared = 0;

    for (int set = 0; set < N_SETS; set++) {
        fill(x, N_ROWS * N_COLS, set);
        for (size_t k = 0; k < sizeof(pairs) / sizeof(pairs[0]); k++) {
            const pair      *p = &pairs[k];
            ggml_quantize_fn g = (ggml_quantize_fn)dlsym(lib, p->ggml_name);
            WT_CHECK(g != NULL, "%s not found in libggml-base", p->ggml_name);
            if (!g) {
                continue;
            }
            const size_t rb = row_bytes(p->type, N_COLS), bytes = rb * N_ROWS;
            for (int use_imat = 0; use_imat <= (p->werk_imat != NULL); use_imat++) {
                memset(ref, 0, bytes);
                memset(got, 0xFF, bytes);
                g(x, ref, N_ROWS, N_COLS, use_imat ? imat : NULL);
                for (int r = 0; r < N_ROWS; r++) {
                    if (use_imat) {
                        p->werk_imat(x + r * N_COLS, got + r * rb, N_COLS, imat);
                    } else {
                        p->werk_plain(x + r * N_COLS, got + r * rb, N_COLS);
                    }
                }
                int64_t nd = diff_blocks(ref, got, bytes, werk_dtype_get(p->type)->type_size);
                WT_CHECK(nd == 0, "%s %s%s: %lld of %lld blocks differ from ggml's", werk_dtype_name(p->type),
                         set_names[set], use_imat ? " (imatrix)" : "", (long long)nd,
                         (long long)(bytes / werk_dtype_get(p->type)->type_size));
                n_compared++;
            }
        }
        // activation quantizers (row functions)
        const struct {
            werk_dtype  type;
            const char *name;
        } act[] = {{WERK_DTYPE_Q8_0, "quantize_row_q8_0_ref"},
                   {WERK_DTYPE_Q8_1, "quantize_row_q8_1_ref"},
                   {WERK_DTYPE_Q8_K, "quantize_row_q8_K_ref"}};
        for (size_t k = 0; k < sizeof(act) / sizeof(act[0]); k++) {
            ggml_row_fn g = (ggml_row_fn)dlsym(lib, act[k].name);
            WT_CHECK(g != NULL, "%s not found in libggml-base", act[k].name);
            if (!g) {
                continue;
            }
            const size_t bytes = row_bytes(act[k].type, N_COLS) * N_ROWS;
            memset(ref, 0, bytes); // ggml leaves an all-zero Q8_K block's bsums untouched; werk zeroes them
            memset(got, 0xFF, bytes);
            g(x, ref, N_ROWS * N_COLS);
            werk_quantize_row(act[k].type, x, got, N_ROWS * N_COLS);
            int64_t nd = diff_blocks(ref, got, bytes, werk_dtype_get(act[k].type)->type_size);
            WT_CHECK(nd == 0, "%s %s: %lld blocks differ from ggml's %s", werk_dtype_name(act[k].type),
                     set_names[set], (long long)nd, act[k].name);
            n_compared++;
        }
    }
    printf("compared %d (type, data, imatrix) cases with ggml\n", n_compared);
    free(x);
    free(imat);
    free(ref);
    free(got);
    dlclose(lib);
    return wt_done();
}
