/* infer/model.c - werk_gguf -> werk_model (architecture as data)
 *
 * Reads the hyper-parameters of a llama, qwen2, qwen3 or gemma3 GGUF (keys
 * "<arch>.embedding_length", ".block_count", ".attention.head_count[_kv]",
 * ".attention.key_length", ".feed_forward_length", ".rope.freq_base[_swa]",
 * ".rope.dimension_count", ".attention.layer_norm_rms_epsilon", ".attention.sliding_window")
 * and makes views of the weights in their stored type (pointers into the werk_gguf, which
 * must outlive the model). Family differences become the switches of struct werk_model.
 * Every tensor's type, rank and shape is checked against the hyper-parameters; a missing
 * tensor or an unknown architecture is an error naming it. 1-D tensors (norms, biases) are
 * small and are dequantized to owned f32 copies.
 */
#include "infer/model_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static werk_status get_u32(const werk_gguf *g, const char *arch, const char *key, bool required, uint32_t def,
                           int64_t *out, werk_err *err) {
    char     full[128];
    uint32_t v     = def;
    bool     found = false;
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    werk_status st = werk_gguf_get_u32(g, full, &v, &found, err);
    if (st) {
        return st;
    }
    if (!found && required) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key %s", werk_gguf_path(g), full);
    }
    *out = v;
    return WERK_OK;
}

static werk_status get_f32(const werk_gguf *g, const char *arch, const char *key, float def, float *out,
                           werk_err *err) {
    char full[128];
    bool found = false;
    snprintf(full, sizeof(full), "%s.%s", arch, key);
    *out = def;
    return werk_gguf_get_f32(g, full, out, &found, err);
}

static const werk_gguf_tensor *find(const werk_gguf *g, const char *name) {
    int64_t i = werk_gguf_find_tensor(g, name);
    return i < 0 ? NULL : werk_gguf_tensor_at(g, i);
}

/* A 2-D weight of shape [rows, cols] named name (required unless opt). */
static werk_status load_2d(const werk_gguf *g, const char *name, int64_t rows, int64_t cols, bool opt,
                           werk_wview *out, werk_err *err) {
    memset(out, 0, sizeof(*out));
    const werk_gguf_tensor *t = find(g, name);
    if (!t) {
        return opt ? WERK_OK
                   : WERK_FAIL(err, WERK_E_FORMAT, "%s: missing tensor %s", werk_gguf_path(g), name);
    }
    if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor %s has shape [%lld, %lld] (%d dims), expected [%lld, %lld]",
                         werk_gguf_path(g), name, (long long)t->shape[0], (long long)t->shape[1], t->n_dims,
                         (long long)rows, (long long)cols);
    }
    if (!werk_dtype_can_dequantize(t->src_type)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor %s has type %s, which werk cannot read",
                         werk_gguf_path(g), name, werk_dtype_name(t->src_type));
    }
    uint64_t rb, total;
    werk_status st = werk_dtype_bytes(t->src_type, (uint64_t)cols, &rb, err);
    if (st) {
        return st;
    }
    if (!werk_mul_u64(rb, (uint64_t)rows, &total) || total > t->nbytes) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor %s holds %llu bytes, too few for its shape",
                         werk_gguf_path(g), name, (unsigned long long)t->nbytes);
    }
    out->name      = t->name;
    out->type      = t->src_type;
    out->data      = t->data;
    out->rows      = rows;
    out->cols      = cols;
    out->row_bytes = rb;
    return WERK_OK;
}

/* A 1-D tensor of n values as an owned f32 copy (NULL when optional and missing). */
static werk_status load_1d(werk_model *m, const werk_gguf *g, const char *name, int64_t n, bool opt,
                           const float **out, werk_err *err) {
    *out                      = NULL;
    const werk_gguf_tensor *t = find(g, name);
    if (!t) {
        return opt ? WERK_OK
                   : WERK_FAIL(err, WERK_E_FORMAT, "%s: missing tensor %s", werk_gguf_path(g), name);
    }
    if (werk_gguf_tensor_nelements(t) != n || t->shape[0] != n) {
        return WERK_FAIL(err, WERK_E_SHAPE, "%s: tensor %s has %lld values, expected %lld", werk_gguf_path(g),
                         name, (long long)werk_gguf_tensor_nelements(t), (long long)n);
    }
    if (!werk_dtype_can_dequantize(t->src_type)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tensor %s has type %s, which werk cannot read",
                         werk_gguf_path(g), name, werk_dtype_name(t->src_type));
    }
    uint64_t nb;
    werk_status st = werk_dtype_bytes(t->src_type, (uint64_t)n, &nb, err);
    if (st) {
        return st;
    }
    if (nb > t->nbytes) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tensor %s is truncated", werk_gguf_path(g), name);
    }
    if (m->n_owned == m->cap_owned) {
        int64_t cap = m->cap_owned ? 2 * m->cap_owned : 64;
        float **o   = realloc(m->owned, (size_t)cap * sizeof(*o));
        if (!o) {
            return WERK_FAIL(err, WERK_E_OOM, "model: out of memory");
        }
        m->owned     = o;
        m->cap_owned = cap;
    }
    float *f = malloc((size_t)n * sizeof(float));
    if (!f) {
        return WERK_FAIL(err, WERK_E_OOM, "model: out of memory");
    }
    werk_dequantize_row(t->src_type, t->data, f, n);
    m->owned[m->n_owned++] = f;
    *out                   = f;
    return WERK_OK;
}

static werk_status load_layer(werk_model *m, const werk_gguf *g, int64_t il, werk_err *err) {
    werk_layer *L  = &m->layers[il];
    int64_t     d  = m->n_embd, qd = m->n_head * m->head_dim, kd = m->n_head_kv * m->head_dim;
    bool        gm = strcmp(m->arch, "gemma3") == 0;
    bool        qk = gm || strcmp(m->arch, "qwen3") == 0;
    char        nm[96];
    werk_status st = WERK_OK;
#define T1(field, suffix, n, opt)                                                                            \
    do {                                                                                                     \
        snprintf(nm, sizeof(nm), "blk.%lld.%s", (long long)il, suffix);                                      \
        if ((st = load_1d(m, g, nm, n, opt, &L->field, err))) {                                              \
            return st;                                                                                       \
        }                                                                                                    \
    } while (0)
#define T2(field, suffix, r, c)                                                                              \
    do {                                                                                                     \
        snprintf(nm, sizeof(nm), "blk.%lld.%s", (long long)il, suffix);                                      \
        if ((st = load_2d(g, nm, r, c, false, &L->field, err))) {                                            \
            return st;                                                                                       \
        }                                                                                                    \
    } while (0)
    T1(attn_norm, "attn_norm.weight", d, false);
    T1(ffn_norm, "ffn_norm.weight", d, false);
    T1(post_attn_norm, "post_attention_norm.weight", d, !gm);
    T1(post_ffn_norm, "post_ffw_norm.weight", d, !gm);
    T1(q_norm, "attn_q_norm.weight", m->head_dim, !qk);
    T1(k_norm, "attn_k_norm.weight", m->head_dim, !qk);
    T1(bq, "attn_q.bias", qd, true);
    T1(bk, "attn_k.bias", kd, true);
    T1(bv, "attn_v.bias", kd, true);
    T2(wq, "attn_q.weight", qd, d);
    T2(wk, "attn_k.weight", kd, d);
    T2(wv, "attn_v.weight", kd, d);
    T2(wo, "attn_output.weight", d, qd);
    T2(w_gate, "ffn_gate.weight", m->n_ff, d);
    T2(w_up, "ffn_up.weight", m->n_ff, d);
    T2(w_down, "ffn_down.weight", d, m->n_ff);
#undef T1
#undef T2
    return WERK_OK;
}

static werk_status load(werk_model *m, const werk_gguf *g, werk_err *err) {
    const char *arch  = NULL;
    bool        found = false;
    werk_status st    = werk_gguf_get_str(g, "general.architecture", &arch, &found, err);
    if (st) {
        return st;
    }
    if (!found) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key general.architecture", werk_gguf_path(g));
    }
    if (strcmp(arch, "llama") && strcmp(arch, "qwen2") && strcmp(arch, "qwen3") && strcmp(arch, "gemma3")) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: architecture '%s' is not supported (llama, qwen2, qwen3, gemma3 are)",
                         werk_gguf_path(g), arch);
    }
    snprintf(m->arch, sizeof(m->arch), "%s", arch);
    bool gm = strcmp(arch, "gemma3") == 0;
    if ((st = get_u32(g, arch, "embedding_length", true, 0, &m->n_embd, err)) ||
        (st = get_u32(g, arch, "block_count", true, 0, &m->n_layer, err)) ||
        (st = get_u32(g, arch, "attention.head_count", true, 0, &m->n_head, err)) ||
        (st = get_u32(g, arch, "attention.head_count_kv", false, (uint32_t)m->n_head, &m->n_head_kv, err)) ||
        (st = get_u32(g, arch, "feed_forward_length", true, 0, &m->n_ff, err))) {
        return st;
    }
    if (m->n_embd <= 0 || m->n_layer <= 0 || m->n_head <= 0 || m->n_head_kv <= 0 || m->n_ff <= 0 ||
        m->n_head % m->n_head_kv || m->n_layer > 4096 || m->n_head > 4096) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: bad hyper-parameters (n_embd %lld, layers %lld, heads %lld/%lld)",
                         werk_gguf_path(g), (long long)m->n_embd, (long long)m->n_layer, (long long)m->n_head,
                         (long long)m->n_head_kv);
    }
    if ((st = get_u32(g, arch, "attention.key_length", false, (uint32_t)(m->n_embd / m->n_head), &m->head_dim,
                      err))) {
        return st;
    }
    if ((st = get_u32(g, arch, "rope.dimension_count", false, (uint32_t)m->head_dim, &m->n_rot, err))) {
        return st;
    }
    if (m->head_dim <= 0 || m->n_rot <= 0 || m->n_rot > m->head_dim || m->n_rot % 2) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: bad head_dim %lld / rope dims %lld", werk_gguf_path(g),
                         (long long)m->head_dim, (long long)m->n_rot);
    }
    float base = 10000.0f, base_swa = 10000.0f;
    if ((st = get_f32(g, arch, "rope.freq_base", 10000.0f, &base, err)) ||
        (st = get_f32(g, arch, "rope.freq_base_swa", 10000.0f, &base_swa, err)) ||
        (st = get_f32(g, arch, "attention.layer_norm_rms_epsilon", 1e-6f, &m->eps, err))) {
        return st;
    }
    m->window = 0;
    if (gm && (st = get_u32(g, arch, "attention.sliding_window", false, 0, &m->window, err))) {
        return st;
    }
    m->rope_style  = strcmp(arch, "llama") == 0 ? WERK_ROPE_NORM : WERK_ROPE_NEOX;
    m->act         = gm ? WERK_ACT_GELU_TANH : WERK_ACT_SILU;
    m->embed_scale = gm ? (float)sqrt((double)m->n_embd) : 1.0f;
    m->attn_scale  = (float)(1.0 / sqrt((double)m->head_dim));

    const werk_gguf_tensor *te = find(g, "token_embd.weight");
    if (!te) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing tensor token_embd.weight", werk_gguf_path(g));
    }
    m->n_vocab = te->shape[0];
    if ((st = load_2d(g, "token_embd.weight", m->n_vocab, m->n_embd, false, &m->tok_embd, err)) ||
        (st = load_2d(g, "output.weight", m->n_vocab, m->n_embd, true, &m->output, err)) ||
        (st = load_1d(m, g, "output_norm.weight", m->n_embd, false, &m->out_norm, err))) {
        return st;
    }
    if (!m->output.data) {
        m->output = m->tok_embd; // tied
    }
    m->layers = calloc((size_t)m->n_layer, sizeof(werk_layer));
    if (!m->layers) {
        return WERK_FAIL(err, WERK_E_OOM, "model: out of memory");
    }
    for (int64_t il = 0; il < m->n_layer; il++) {
        if ((st = load_layer(m, g, il, err))) {
            return st;
        }
        // gemma3: 5 sliding-window layers, then one global (pattern 6)
        m->layers[il].sliding   = gm && m->window > 0 && (il + 1) % 6 != 0;
        m->layers[il].rope_base = m->layers[il].sliding ? base_swa : base;
    }
    return WERK_OK;
}

werk_status werk_model_load(const werk_gguf *g, werk_model **out, werk_err *err) {
    *out          = NULL;
    werk_model *m = calloc(1, sizeof(*m));
    if (!m) {
        return WERK_FAIL(err, WERK_E_OOM, "model: out of memory");
    }
    werk_status st = load(m, g, err);
    if (st) {
        werk_model_free(m);
        return st;
    }
    *out = m;
    return WERK_OK;
}

void werk_model_free(werk_model *m) {
    if (!m) {
        return;
    }
    for (int64_t i = 0; i < m->n_owned; i++) {
        free(m->owned[i]);
    }
    free(m->owned);
    free(m->layers);
    free(m);
}

const werk_wview *werk_layer_weight(const werk_layer *L, int slot) {
    const werk_wview *w[WERK_LORA_N_SLOTS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return w[slot];
}

int64_t werk_model_matmul_scratch(const werk_model *m) {
    int64_t n = werk_op_matmul_scratch(&m->output);
    for (int64_t il = 0; il < m->n_layer; il++) {
        for (int s = 0; s < WERK_LORA_N_SLOTS; s++) {
            int64_t k = werk_op_matmul_scratch(werk_layer_weight(&m->layers[il], s));
            n         = k > n ? k : n;
        }
    }
    return n;
}

int64_t werk_model_n_vocab(const werk_model *m) {
    return m->n_vocab;
}
