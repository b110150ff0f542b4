/* convert/llama2c.c - llama2.c checkpoint (+ tokenizer .bin) -> werk_gguf (arch llama)
 *
 * Karpathy's llama2.c "legacy" export (export.py legacy_export / run.c read_checkpoint),
 * all little-endian; the checkpoint is memory-mapped and every tensor points into it.
 *
 * Checkpoint:
 * OFFSET  SIZE            DESCRIPTION
 * 0       4 x 7           int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads,
 *                         vocab_size (negative: an unshared classifier follows), seq_len
 * 28      4 x V*D         token_embedding_table (vocab, dim)
 *         4 x L*D         rms_att_weight        (layer, dim)
 *         4 x L*D*D       wq                    (layer, dim, dim)
 *         4 x L*KV*D      wk                    (layer, kv_dim, dim), kv_dim = dim*n_kv/n_heads
 *         4 x L*KV*D      wv                    (layer, kv_dim, dim)
 *         4 x L*D*D       wo                    (layer, dim, dim)
 *         4 x L*D         rms_ffn_weight        (layer, dim)
 *         4 x L*H*D       w1 (gate)             (layer, hidden, dim)
 *         4 x L*D*H       w2 (down)             (layer, dim, hidden)
 *         4 x L*H*D       w3 (up)               (layer, hidden, dim)
 *         4 x D           rms_final_weight      (dim)
 *         4 x S*HS/2      freq_cis_real         (seq_len, head_size/2), skipped
 *         4 x S*HS/2      freq_cis_imag         skipped
 *         4 x V*D         wcls                  only if vocab_size < 0
 * The file must end exactly there. Q/K rows are in Meta's interleaved order, which is
 * llama.cpp's: no permutation.
 *
 * Tokenizer (tokenizer.py export / run.c build_tokenizer):
 * OFFSET  SIZE            DESCRIPTION
 * 0       4               int32 max_token_length
 * 4       per token:      float32 score, int32 len, len bytes (UTF-8)
 * The exporter wrote '▁' as ' ' and BOS/EOS as "\n<s>\n" / "\n</s>\n"; both are undone.
 * Token types as llama.cpp's SentencePiece import: <unk> UNKNOWN(2), <s> </s> CONTROL(3),
 * <0xXX> BYTE(6), else NORMAL(1); ids unk 0, bos 1, eos 2.
 */
#include "convert/hf_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define L2C_HEADER_BYTES 28
#define L2C_MAGIC 0x616b3432u // "ak42": llama2.c's newer (version 1/2) export format
#define L2C_MAX_TOKEN_LEN 4096

static int32_t rd_i32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t  r;
    memcpy(&r, &v, 4);
    return r;
}

static float rd_f32(const uint8_t *p) {
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    float    f;
    memcpy(&f, &v, 4);
    return f;
}

typedef struct l2c_dims {
    int64_t dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len;
    bool    shared;
} l2c_dims;

// ---- tokenizer --------------------------------------------------------------------------------

typedef struct tok_list {
    char    **strs;
    uint64_t *lens;
    float    *scores;
    int32_t  *types;
    int64_t   n;
} tok_list;

static void tok_list_free(tok_list *t) {
    if (t->strs) {
        for (int64_t i = 0; i < t->n; i++) {
            free(t->strs[i]);
        }
    }
    free(t->strs);
    free(t->lens);
    free(t->scores);
    free(t->types);
    memset(t, 0, sizeof(*t));
}

static bool is_byte_token(const char *s, uint64_t n) {
    static const char hex[] = "0123456789ABCDEF";
    return n == 6 && memcmp(s, "<0x", 3) == 0 && strchr(hex, s[3]) && strchr(hex, s[4]) && s[5] == '>';
}

/* One token's text as SentencePiece had it: "\n<s>\n" -> "<s>", ' ' -> U+2581. */
static werk_status tok_decode(const uint8_t *p, uint64_t n, char **out, uint64_t *out_len, werk_err *err) {
    if (n == 5 && memcmp(p, "\n<s>\n", 5) == 0) {
        p = (const uint8_t *)"<s>";
        n = 3;
    } else if (n == 6 && memcmp(p, "\n</s>\n", 6) == 0) {
        p = (const uint8_t *)"</s>";
        n = 4;
    }
    uint64_t spaces = 0;
    for (uint64_t i = 0; i < n; i++) {
        spaces += p[i] == ' ';
    }
    char *s = malloc(n + 2 * spaces + 1);
    if (!s) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    uint64_t k = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (p[i] == ' ') {
            memcpy(s + k, "\xe2\x96\x81", 3);
            k += 3;
        } else {
            s[k++] = (char)p[i];
        }
    }
    s[k]     = 0;
    *out     = s;
    *out_len = k;
    return WERK_OK;
}

static werk_status read_tokenizer(const char *path, int64_t n_vocab, tok_list *t, werk_err *err) {
    werk_mmap   m = {0};
    werk_status s = werk_mmap_open(&m, path, err);
    if (s) {
        return s;
    }
    const uint8_t *p = m.data;
    uint64_t       n = m.size, off = 4;
    if (n < 4) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: %" PRIu64 " bytes is too short for a llama2.c tokenizer", path,
                      n);
        goto done;
    }
    int32_t max_len = rd_i32(p);
    if (max_len < 1 || max_len > L2C_MAX_TOKEN_LEN) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: max_token_length %" PRId32 " is out of range [1, %d]", path,
                      max_len, L2C_MAX_TOKEN_LEN);
        goto done;
    }
    // Each token takes at least 8 bytes: the count is bounded by the file, and must
    // match the checkpoint's vocabulary.
    if ((uint64_t)n_vocab > (n - 4) / 8) {
        s = WERK_FAIL(err, WERK_E_FORMAT,
                      "%s: %" PRIu64 " bytes cannot hold %" PRId64 " tokens (the checkpoint's "
                      "vocab_size)",
                      path, n, n_vocab);
        goto done;
    }
    t->strs   = calloc((size_t)n_vocab, sizeof(*t->strs));
    t->lens   = calloc((size_t)n_vocab, sizeof(*t->lens));
    t->scores = calloc((size_t)n_vocab, sizeof(*t->scores));
    t->types  = calloc((size_t)n_vocab, sizeof(*t->types));
    if (!t->strs || !t->lens || !t->scores || !t->types) {
        s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        goto done;
    }
    for (int64_t i = 0; i < n_vocab; i++) {
        if (n - off < 8) {
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: truncated at token %" PRId64 " of %" PRId64 " (offset %" PRIu64 ")", path, i,
                          n_vocab, off);
            goto done;
        }
        float   score = rd_f32(p + off);
        int32_t len   = rd_i32(p + off + 4);
        off += 8;
        if (len < 0 || len > max_len || (uint64_t)len > n - off) {
            s = WERK_FAIL(err, WERK_E_FORMAT,
                          "%s: token %" PRId64 ": length %" PRId32 " is out of range (offset %" PRIu64 ")",
                          path, i, len, off - 4);
            goto done;
        }
        if ((s = tok_decode(p + off, (uint64_t)len, &t->strs[i], &t->lens[i], err))) {
            goto done;
        }
        t->n++;
        off += (uint64_t)len;
        t->scores[i]    = score;
        const char *str = t->strs[i];
        if (strcmp(str, "<unk>") == 0) {
            t->types[i] = 2;
        } else if (strcmp(str, "<s>") == 0 || strcmp(str, "</s>") == 0) {
            t->types[i] = 3;
        } else if (is_byte_token(str, t->lens[i])) {
            t->types[i] = 6;
        } else {
            t->types[i] = 1;
        }
    }
    if (off != n) {
        s = WERK_FAIL(err, WERK_E_FORMAT,
                      "%s: %" PRIu64 " bytes after the %" PRId64 " tokens (tokenizer has more "
                      "tokens than the checkpoint's vocab_size?)",
                      path, n - off, n_vocab);
    }
done:
    werk_mmap_close(&m);
    return s;
}

static werk_status set_vocab(werk_gguf *g, const tok_list *t, werk_err *err) {
    werk_status s;
    if ((s = werk_gguf_set_str(g, "tokenizer.ggml.model", "llama", err)) ||
        (s = werk_gguf_set_str(g, "tokenizer.ggml.pre", "default", err)) ||
        (s = werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", (const char *const *)t->strs, t->lens,
                                   (uint64_t)t->n, err)) ||
        (s = werk_gguf_set_arr(g, "tokenizer.ggml.scores", WERK_GGUF_FLOAT32, t->scores, (uint64_t)t->n,
                               err)) ||
        (s = werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, t->types, (uint64_t)t->n,
                               err)) ||
        (s = werk_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 1, err)) ||
        (s = werk_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 2, err)) ||
        (s = werk_gguf_set_u32(g, "tokenizer.ggml.unknown_token_id", 0, err))) {
        return s;
    }
    return WERK_OK;
}

// ---- checkpoint ---------------------------------------------------------------------------------

static werk_status read_header(const char *path, const werk_mmap *m, l2c_dims *d, werk_err *err) {
    if (m->size < L2C_HEADER_BYTES) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: %zu bytes is too short for a llama2.c checkpoint", path,
                         m->size);
    }
    if ((uint32_t)rd_i32(m->data) == L2C_MAGIC) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: llama2.c version 1/2 export (magic \"ak42\") is not supported; "
                         "export with --version 0 (legacy)",
                         path);
    }
    int32_t h[7];
    for (int i = 0; i < 7; i++) {
        h[i] = rd_i32(m->data + 4 * i);
    }
    d->dim      = h[0];
    d->hidden   = h[1];
    d->n_layers = h[2];
    d->n_heads  = h[3];
    d->n_kv     = h[4];
    d->shared   = h[5] > 0;
    d->vocab    = h[5] < 0 ? -(int64_t)h[5] : h[5];
    d->seq_len  = h[6];
    if (d->dim < 1 || d->hidden < 1 || d->n_layers < 1 || d->n_heads < 1 || d->n_kv < 1 || d->vocab < 1 ||
        d->seq_len < 1) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: not a llama2.c checkpoint (header dim %" PRId32 ", hidden %" PRId32
                         ", layers %" PRId32 ", heads %" PRId32 ", kv heads %" PRId32 ", vocab %" PRId32
                         ", seq %" PRId32 ": all must be positive)",
                         path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    }
    if (d->dim % d->n_heads != 0 || d->n_heads % d->n_kv != 0 || (d->dim / d->n_heads) % 2 != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: inconsistent llama2.c header: dim %" PRId64 ", %" PRId64 " heads, %" PRId64
                         " kv heads (dim must split into heads of even size, heads into kv groups)",
                         path, d->dim, d->n_heads, d->n_kv);
    }
    return WERK_OK;
}

/* Float count of each section, in file order; false on overflow. */
enum {
    S_EMB,
    S_RMS_ATT,
    S_WQ,
    S_WK,
    S_WV,
    S_WO,
    S_RMS_FFN,
    S_W1,
    S_W2,
    S_W3,
    S_RMS_FINAL,
    S_FREQ,
    S_CLS,
    S_COUNT
};

static bool section_sizes(const l2c_dims *d, uint64_t n[S_COUNT], uint64_t *total_bytes) {
    uint64_t D = (uint64_t)d->dim, H = (uint64_t)d->hidden, L = (uint64_t)d->n_layers, V = (uint64_t)d->vocab;
    uint64_t KV = D / (uint64_t)d->n_heads * (uint64_t)d->n_kv, HS = D / (uint64_t)d->n_heads;
    uint64_t LD, LDD, LKV, LHD, t;
    bool     ok = werk_mul_u64(L, D, &LD) && werk_mul_u64(LD, D, &LDD) && werk_mul_u64(LD, KV, &LKV) &&
              werk_mul_u64(LD, H, &LHD) && werk_mul_u64(V, D, &n[S_EMB]) &&
              werk_mul_u64((uint64_t)d->seq_len, HS, &t);
    if (!ok) {
        return false;
    }
    n[S_RMS_ATT]   = LD;
    n[S_WQ]        = LDD;
    n[S_WK]        = LKV;
    n[S_WV]        = LKV;
    n[S_WO]        = LDD;
    n[S_RMS_FFN]   = LD;
    n[S_W1]        = LHD;
    n[S_W2]        = LHD;
    n[S_W3]        = LHD;
    n[S_RMS_FINAL] = D;
    n[S_FREQ]      = t; // real + imag, each seq_len * head_size / 2
    n[S_CLS]       = d->shared ? 0 : n[S_EMB];
    uint64_t sum   = 0;
    for (int i = 0; i < S_COUNT; i++) {
        if (!werk_add_u64(sum, n[i], &sum)) {
            return false;
        }
    }
    return werk_mul_u64(sum, 4, &sum) && werk_add_u64(sum, L2C_HEADER_BYTES, total_bytes);
}

static werk_status
add2(werk_gguf *g, const char *name, int64_t d0, int64_t d1, const uint8_t *data, werk_err *err) {
    int64_t shape[2] = {d0, d1};
    return werk_gguf_add_tensor(g, name, WERK_DTYPE_F32, d1 ? 2 : 1, shape, data,
                                (uint64_t)d0 * (uint64_t)(d1 ? d1 : 1) * 4, NULL, err);
}

static werk_status build(const char      *path,
                         const werk_mmap *m,
                         const l2c_dims  *d,
                         const char      *tok_path,
                         werk_gguf       *g,
                         werk_err        *err) {
    uint64_t    n[S_COUNT], total;
    werk_status s;
    if (!section_sizes(d, n, &total)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: llama2.c header sizes overflow", path);
    }
    if (total != m->size) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: file is %zu bytes, the llama2.c header (dim %" PRId64 ", hidden %" PRId64
                         ", %" PRId64 " layers, vocab %" PRId64 "%s) implies %" PRIu64,
                         path, m->size, d->dim, d->hidden, d->n_layers, d->vocab,
                         d->shared ? "" : ", unshared classifier", total);
    }
    const uint8_t *sec[S_COUNT];
    const uint8_t *p = m->data + L2C_HEADER_BYTES;
    for (int i = 0; i < S_COUNT; i++) {
        sec[i] = p;
        p += n[i] * 4;
    }
    int64_t         D = d->dim, H = d->hidden, KV = d->dim / d->n_heads * d->n_kv;
    werk_hf_hparams hp = {
        .arch            = WERK_HF_ARCH_LLAMA,
        .n_vocab         = d->vocab,
        .n_embd          = D,
        .n_layer         = d->n_layers,
        .n_ff            = H,
        .n_head          = d->n_heads,
        .n_head_kv       = d->n_kv,
        .head_dim        = D / d->n_heads,
        .n_ctx           = d->seq_len,
        .rms_eps         = 1e-5f,
        .rope_base       = 10000.0f,
        .rope_base_local = 10000.0f,
        .tied            = d->shared,
        .bos_id          = -1,
        .eos_id          = -1,
        .pad_id          = -1,
    };
    if (hp.n_ctx > INT32_MAX || hp.n_embd > (1 << 24) || hp.n_ff > (1 << 24) || hp.n_vocab > (1 << 24)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: llama2.c header dimensions are out of range", path);
    }
    // The model name is the file's base name without .bin.
    const char *slash = strrchr(path, '/');
    char        name[256];
    snprintf(name, sizeof(name), "%s", slash ? slash + 1 : path);
    size_t nl = strlen(name);
    if (nl > 4 && strcmp(name + nl - 4, ".bin") == 0) {
        name[nl - 4] = 0;
    }
    if ((s = werk_hf_hparams_to_gguf(&hp, name, g, err))) {
        return s;
    }
    if (tok_path) {
        tok_list t = {0};
        s          = read_tokenizer(tok_path, d->vocab, &t, err);
        if (s == WERK_OK) {
            s = set_vocab(g, &t, err);
        }
        tok_list_free(&t);
        if (s) {
            return s;
        }
    } else {
        werk_log(WERK_LOG_WARN, "%s: no tokenizer given (--vocab tok.bin); the GGUF has no vocab", path);
    }
    if ((s = add2(g, "token_embd.weight", d->vocab, D, sec[S_EMB], err))) {
        return s;
    }
    for (int64_t l = 0; l < d->n_layers; l++) {
        char     nm[64];
        uint64_t uD = (uint64_t)D, uH = (uint64_t)H, uKV = (uint64_t)KV, ul = (uint64_t)l;
        // clang-format off
        const struct { const char *name; int s; int64_t d0, d1; uint64_t per_layer; } t[] = {
            {"attn_norm.weight",   S_RMS_ATT, D,  0, uD},
            {"attn_q.weight",      S_WQ,      D,  D, uD * uD},
            {"attn_k.weight",      S_WK,      KV, D, uKV * uD},
            {"attn_v.weight",      S_WV,      KV, D, uKV * uD},
            {"attn_output.weight", S_WO,      D,  D, uD * uD},
            {"ffn_norm.weight",    S_RMS_FFN, D,  0, uD},
            {"ffn_gate.weight",    S_W1,      H,  D, uH * uD},
            {"ffn_down.weight",    S_W2,      D,  H, uH * uD},
            {"ffn_up.weight",      S_W3,      H,  D, uH * uD},
        };
        // clang-format on
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            snprintf(nm, sizeof(nm), "blk.%" PRId64 ".%s", l, t[i].name);
            // Bounded by the exact size check above: l * per_layer * 4 stays inside the section.
            if ((s = add2(g, nm, t[i].d0, t[i].d1, sec[t[i].s] + ul * t[i].per_layer * 4, err))) {
                return s;
            }
        }
    }
    if ((s = add2(g, "output_norm.weight", D, 0, sec[S_RMS_FINAL], err))) {
        return s;
    }
    if (!d->shared && (s = add2(g, "output.weight", d->vocab, D, sec[S_CLS], err))) {
        return s;
    }
    if ((s = werk_gguf_set_u32(g, "general.file_type", 0, err)) ||
        (s = werk_gguf_set_u32(g, "general.quantization_version", 2, err))) {
        return s;
    }
    return WERK_OK;
}

werk_status werk_llama2c_import(const char *bin_path, const char *tok_path, werk_gguf **out, werk_err *err) {
    *out          = NULL;
    werk_mmap   m = {0};
    werk_status s = werk_mmap_open(&m, bin_path, err);
    if (s) {
        return s;
    }
    l2c_dims d;
    if ((s = read_header(bin_path, &m, &d, err))) {
        werk_mmap_close(&m);
        return s;
    }
    werk_gguf *g = werk_gguf_init();
    if (!g) {
        werk_mmap_close(&m);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", bin_path);
    }
    s = build(bin_path, &m, &d, tok_path, g, err);
    if (s == WERK_OK) {
        s = werk_gguf_hold_mmap(g, &m, err);
    }
    werk_mmap_close(&m); // no-op once g holds it
    if (s) {
        werk_gguf_free(g);
        return s;
    }
    *out = g;
    return WERK_OK;
}
