/* tests/infer/test_forward_ops.c - the forward ops of infer/ops/ against naive references
 *
 * matmul: OpenBLAS on dequantized tiles vs the naive loop, for f32/f16/q8_0/q4_K weights
 * (rows not a multiple of the tile); rmsnorm vs a direct formula; rope: position 0 is the
 * identity, NORM on a pair-interleaved vector equals NEOX on the halves, norms are kept;
 * attention: a window >= T equals no window, a window of 1 returns v; glu: known values;
 * werk_model_load: errors name an unsupported architecture, a missing key or tensor.
 */
#include "werk_test.h"

#include "infer/model_int.h"

static uint64_t rng = 88172645463325252ull;
static float    frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void test_matmul(werk_dtype t) {
    const int64_t rows = 150, cols = 512, n = 7;
    float        *wf = malloc(sizeof(float) * rows * cols), *x = malloc(sizeof(float) * n * cols);
    for (int64_t i = 0; i < rows * cols; i++) {
        wf[i] = frand();
    }
    for (int64_t i = 0; i < n * cols; i++) {
        x[i] = frand();
    }
    werk_err err = {0};
    uint64_t rb  = 0;
    WT_CHECK(werk_dtype_bytes(t, (uint64_t)cols, &rb, &err) == WERK_OK, "%s", err.msg);
    char *wq = malloc(rb * rows);
    for (int64_t r = 0; r < rows; r++) {
        werk_quantize_row(t, wf + r * cols, wq + r * rb, cols);
    }
    werk_wview w   = {.name = "w", .type = t, .data = wq, .rows = rows, .cols = cols, .row_bytes = rb};
    float     *s   = malloc(sizeof(float) * werk_op_matmul_scratch(&w));
    float     *y   = malloc(sizeof(float) * n * rows), *yr = malloc(sizeof(float) * n * rows);
    werk_op_matmul_fwd(y, x, n, &w, s);
    werk_op_matmul_fwd_ref(yr, x, n, &w);
    WT_CLOSE(y, yr, n * rows, 1e-4, 1e-5, werk_dtype_name(t));
    free(wf);
    free(x);
    free(wq);
    free(s);
    free(y);
    free(yr);
}

static void test_rmsnorm(void) {
    float x[2 * 8], w[8], y[2 * 8], ref[2 * 8];
    for (int i = 0; i < 16; i++) {
        x[i] = frand();
    }
    for (int i = 0; i < 8; i++) {
        w[i] = frand();
    }
    for (int r = 0; r < 2; r++) {
        double ss = 0;
        for (int i = 0; i < 8; i++) {
            ss += (double)x[r * 8 + i] * x[r * 8 + i];
        }
        for (int i = 0; i < 8; i++) {
            ref[r * 8 + i] = (float)(x[r * 8 + i] / sqrt(ss / 8 + 1e-5) * w[i]);
        }
    }
    werk_op_rmsnorm_fwd(y, x, w, 2, 8, 1e-5f);
    WT_CLOSE(y, ref, 16, 1e-6, 1e-6, "rmsnorm");
}

static void test_rope(void) {
    enum { T = 5, H = 2, HD = 8 };
    float   a[T * H * HD], b[T * H * HD], c[T * H * HD];
    int32_t pos[T] = {0, 1, 2, 7, 30};
    for (int i = 0; i < T * H * HD; i++) {
        a[i] = frand();
    }
    // b: a with each head's halves interleaved (NEOX order -> NORM order)
    for (int th = 0; th < T * H; th++) {
        for (int i = 0; i < HD / 2; i++) {
            b[th * HD + 2 * i]     = a[th * HD + i];
            b[th * HD + 2 * i + 1] = a[th * HD + i + HD / 2];
        }
    }
    memcpy(c, a, sizeof(a));
    werk_op_rope_fwd(a, T, H, HD, HD, pos, 10000.0f, WERK_ROPE_NEOX);
    werk_op_rope_fwd(b, T, H, HD, HD, pos, 10000.0f, WERK_ROPE_NORM);
    float back[T * H * HD];
    for (int th = 0; th < T * H; th++) {
        for (int i = 0; i < HD / 2; i++) {
            back[th * HD + i]          = b[th * HD + 2 * i];
            back[th * HD + i + HD / 2] = b[th * HD + 2 * i + 1];
        }
    }
    WT_CLOSE(back, a, T * H * HD, 1e-6, 0, "rope norm vs neox");
    WT_CLOSE(a, c, H * HD, 0, 0, "rope at position 0");
    for (int th = 0; th < T * H; th++) {
        double n0 = 0, n1 = 0;
        for (int i = 0; i < HD; i++) {
            n0 += (double)a[th * HD + i] * a[th * HD + i];
            n1 += (double)c[th * HD + i] * c[th * HD + i];
        }
        WT_CHECK(fabs(n0 - n1) < 1e-5, "rope keeps the norm (%g vs %g)", n0, n1);
    }
}

static void test_attention(void) {
    enum { T = 6, H = 4, KV = 2, HD = 4 };
    float q[T * H * HD], k[T * KV * HD], v[T * KV * HD], o1[T * H * HD], o2[T * H * HD];
    for (int i = 0; i < T * H * HD; i++) {
        q[i] = frand();
    }
    for (int i = 0; i < T * KV * HD; i++) {
        k[i] = frand();
        v[i] = frand();
    }
    werk_op_attention_fwd(o1, q, k, v, T, H, KV, HD, 0.5f, 0);
    werk_op_attention_fwd(o2, q, k, v, T, H, KV, HD, 0.5f, T);
    WT_CLOSE(o1, o2, T * H * HD, 0, 0, "window >= T");
    werk_op_attention_fwd(o2, q, k, v, T, H, KV, HD, 0.5f, 1);
    float ref[T * H * HD];
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            memcpy(ref + (t * H + h) * HD, v + (t * KV + h / 2) * HD, sizeof(float) * HD);
        }
    }
    WT_CLOSE(o2, ref, T * H * HD, 1e-7, 0, "window 1");
    // first position attends to itself only
    for (int h = 0; h < H; h++) {
        WT_CLOSE(o1 + h * HD, v + (h / 2) * HD, HD, 1e-7, 0, "position 0");
    }
}

static void test_glu(void) {
    float g[3] = {0.0f, 1.0f, -2.0f}, u[3] = {2.0f, 3.0f, 0.5f}, h[3];
    werk_op_glu_fwd(h, g, u, 3, WERK_ACT_SILU);
    float ref_silu[3] = {0.0f, (float)(3.0 / (1 + exp(-1.0))), (float)(0.5 * -2.0 / (1 + exp(2.0)))};
    WT_CLOSE(h, ref_silu, 3, 1e-7, 0, "silu");
    werk_op_glu_fwd(h, g, u, 3, WERK_ACT_GELU_TANH);
    float ref_gelu[3] = {0.0f, 3.0f * 0.8411919906f, 0.5f * -0.0454022884f};
    WT_CLOSE(h, ref_gelu, 3, 1e-6, 0, "gelu tanh");
}

static void test_model_errors(void) {
    werk_err    err = {0};
    werk_model *m   = NULL;
    werk_gguf  *g   = werk_gguf_init();
    WT_CHECK(werk_gguf_set_str(g, "general.architecture", "phi3", &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(werk_model_load(g, &m, &err) == WERK_E_UNSUPPORTED && strstr(err.msg, "phi3"), "%s", err.msg);
    WT_CHECK(werk_gguf_set_str(g, "general.architecture", "llama", &err) == WERK_OK, "%s", err.msg);
    WT_CHECK(werk_model_load(g, &m, &err) == WERK_E_FORMAT && strstr(err.msg, "llama.embedding_length"), "%s",
             err.msg);
    static float emb[16 * 8], norm[8];
    int64_t      se[2] = {16, 8}, sn[1] = {8};
    WT_CHECK(werk_gguf_set_u32(g, "llama.embedding_length", 8, &err) == WERK_OK &&
                 werk_gguf_set_u32(g, "llama.block_count", 1, &err) == WERK_OK &&
                 werk_gguf_set_u32(g, "llama.attention.head_count", 2, &err) == WERK_OK &&
                 werk_gguf_set_u32(g, "llama.feed_forward_length", 16, &err) == WERK_OK &&
                 werk_gguf_add_tensor(g, "token_embd.weight", WERK_DTYPE_F32, 2, se, emb, sizeof(emb), NULL, &err) ==
                     WERK_OK &&
                 werk_gguf_add_tensor(g, "output_norm.weight", WERK_DTYPE_F32, 1, sn, norm, sizeof(norm), NULL,
                                      &err) == WERK_OK,
             "%s", err.msg);
    WT_CHECK(werk_model_load(g, &m, &err) == WERK_E_FORMAT && strstr(err.msg, "blk.0.attn_norm.weight"), "%s",
             err.msg);
    WT_CHECK(m == NULL, "no model on failure");
    werk_gguf_free(g);
}

int main(void) {
    test_model_errors();
    test_matmul(WERK_DTYPE_F32);
    test_matmul(WERK_DTYPE_F16);
    test_matmul(WERK_DTYPE_Q8_0);
    test_matmul(WERK_DTYPE_Q4_K);
    test_rmsnorm();
    test_rope();
    test_attention();
    test_glu();
    return wt_done();
}
