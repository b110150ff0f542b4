/* tests/convert/test_llama2c.c - llama2.c checkpoint and tokenizer import
 *
 * Synthetic checkpoints (every float = its index in the file) check the section layout,
 * shared and unshared classifiers; truncated, oversized, inconsistent and overflowing
 * headers, the "ak42" v1/v2 magic, and broken tokenizer files must fail cleanly with a
 * message. stories260K (the real fixture) loads with the right shapes and vocab.
 */
#define _GNU_SOURCE // truncate, off_t: werk_test.h sets it too, but after hf_int.h has included libc
#include "convert/hf_int.h"
#include "werk_test.h"

#include <inttypes.h>

typedef struct hdr {
    int32_t dim, hidden, layers, heads, kv, vocab, seq;
} hdr;

/* Floats in a checkpoint with header h (without the header), or -1 on nonsense. */
static int64_t n_floats(const hdr *h) {
    int64_t D = h->dim, H = h->hidden, L = h->layers, V = h->vocab < 0 ? -(int64_t)h->vocab : h->vocab;
    int64_t KV = D / h->heads * h->kv, HS = D / h->heads;
    return V * D + L * D + L * D * D + 2 * L * KV * D + L * D * D + L * D + 3 * L * H * D + D + h->seq * HS +
           (h->vocab < 0 ? V * D : 0);
}

/* Writes header + n floats (value = index) + extra bytes (negative: cut). */
static void write_ckpt(const char *path, const hdr *h, int64_t n, int64_t extra) {
    FILE *f = fopen(path, "wb");
    WT_CHECK(f != NULL, "open %s", path);
    if (!f) {
        return;
    }
    fwrite(h, sizeof(*h), 1, f);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)i;
        fwrite(&v, 4, 1, f);
    }
    for (int64_t i = 0; i < extra; i++) {
        fputc(0, f);
    }
    fclose(f);
    if (extra < 0) {
        WT_CHECK(truncate(path, (off_t)(sizeof(*h) + 4 * n + extra)) == 0, "truncate");
    }
}

static float first(const werk_gguf *g, const char *name) {
    int64_t i = werk_gguf_find_tensor(g, name);
    WT_CHECK(i >= 0, "missing %s", name);
    if (i < 0) {
        return -1;
    }
    float v;
    memcpy(&v, werk_gguf_tensor_at(g, i)->data, 4);
    return v;
}

static void test_layout(void) {
    char path[4096];
    wt_tmp(path, sizeof(path), "l2c_ok.bin");
    // D 8, H 12, L 2, 4 heads (head size 2), 2 kv heads (kv dim 4), V 10, seq 3
    for (int shared = 1; shared >= 0; shared--) {
        hdr h = {8, 12, 2, 4, 2, shared ? 10 : -10, 3};
        write_ckpt(path, &h, n_floats(&h), 0);
        werk_gguf *g   = NULL;
        werk_err   err = {0};
        WT_CHECK(werk_llama2c_import(path, NULL, &g, &err) == WERK_OK, "import: %s", err.msg);
        if (!g) {
            continue;
        }
        WT_CHECK(werk_gguf_n_tensors(g) == 2 + 2 * 9 + !shared, "%" PRId64 " tensors",
                 werk_gguf_n_tensors(g));
        // offsets of each section's first float: emb 0, rms_att 80, wq 96, wk 224, wv 288,
        // wo 352, rms_ffn 480, w1 496, w2 688, w3 880, rms_final 1072, freq 1080, wcls 1086
        WT_CHECK(first(g, "token_embd.weight") == 0, "emb");
        WT_CHECK(first(g, "blk.0.attn_norm.weight") == 80 && first(g, "blk.1.attn_norm.weight") == 88,
                 "rms_att");
        WT_CHECK(first(g, "blk.0.attn_q.weight") == 96 && first(g, "blk.1.attn_q.weight") == 160, "wq");
        WT_CHECK(first(g, "blk.0.attn_k.weight") == 224 && first(g, "blk.1.attn_k.weight") == 256, "wk");
        WT_CHECK(first(g, "blk.1.attn_v.weight") == 320 && first(g, "blk.1.attn_output.weight") == 416,
                 "wv/wo");
        WT_CHECK(first(g, "blk.1.ffn_norm.weight") == 488, "rms_ffn");
        WT_CHECK(first(g, "blk.1.ffn_gate.weight") == 592 && first(g, "blk.1.ffn_down.weight") == 784 &&
                     first(g, "blk.1.ffn_up.weight") == 976,
                 "w1/w2/w3");
        WT_CHECK(first(g, "output_norm.weight") == 1072, "rms_final");
        if (!shared) {
            WT_CHECK(first(g, "output.weight") == 1086, "wcls after freq_cis");
        } else {
            WT_CHECK(werk_gguf_find_tensor(g, "output.weight") < 0, "shared classifier: no output.weight");
        }
        const werk_gguf_tensor *k = werk_gguf_tensor_at(g, werk_gguf_find_tensor(g, "blk.0.attn_k.weight"));
        WT_CHECK(k->shape[0] == 4 && k->shape[1] == 8 && !k->row_map, "attn_k [kv_dim, dim], no permutation");
        const werk_gguf_tensor *d = werk_gguf_tensor_at(g, werk_gguf_find_tensor(g, "blk.0.ffn_down.weight"));
        WT_CHECK(d->shape[0] == 8 && d->shape[1] == 12, "ffn_down [dim, hidden]");
        uint32_t v     = 0;
        bool     found = false;
        WT_CHECK(werk_gguf_get_u32(g, "llama.context_length", &v, &found, &err) == WERK_OK && v == 3, "ctx");
        WT_CHECK(werk_gguf_get_u32(g, "llama.attention.head_count_kv", &v, &found, &err) == WERK_OK && v == 2,
                 "kv");
        werk_gguf_free(g);
    }
}

static void
expect_bad(const char *label, const hdr *h, int64_t n, int64_t extra, werk_status code, const char *needle) {
    char path[4096];
    wt_tmp(path, sizeof(path), "l2c_bad.bin");
    write_ckpt(path, h, n, extra);
    werk_gguf  *g   = NULL;
    werk_err    err = {0};
    werk_status s   = werk_llama2c_import(path, NULL, &g, &err);
    WT_CHECK(s == code && g == NULL, "%s: status %d (%s), want %d", label, s, err.msg, code);
    WT_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", label, err.msg, needle);
    werk_gguf_free(g);
}

static void test_bad_checkpoints(void) {
    hdr     ok = {8, 12, 2, 4, 2, 10, 3};
    int64_t n  = n_floats(&ok);
    expect_bad("truncated by 1", &ok, n, -1, WERK_E_FORMAT, "implies");
    expect_bad("truncated by a float", &ok, n - 1, 0, WERK_E_FORMAT, "implies");
    expect_bad("oversized", &ok, n, 4, WERK_E_FORMAT, "implies");
    expect_bad("unshared flag without wcls", &(hdr){8, 12, 2, 4, 2, -10, 3}, n, 0, WERK_E_FORMAT, "implies");
    expect_bad("zero dim", &(hdr){0, 12, 2, 4, 2, 10, 3}, 10, 0, WERK_E_FORMAT, "positive");
    expect_bad("negative layers", &(hdr){8, 12, -2, 4, 2, 10, 3}, 10, 0, WERK_E_FORMAT, "positive");
    expect_bad("dim % heads", &(hdr){8, 12, 2, 3, 1, 10, 3}, 10, 0, WERK_E_FORMAT, "inconsistent");
    expect_bad("heads % kv", &(hdr){8, 12, 2, 4, 3, 10, 3}, 10, 0, WERK_E_FORMAT, "inconsistent");
    expect_bad("odd head size", &(hdr){12, 12, 2, 4, 2, 10, 3}, 10, 0, WERK_E_FORMAT, "inconsistent");
    expect_bad("huge dims", &(hdr){1 << 30, 1 << 30, 1 << 30, 2, 1, INT32_MAX, INT32_MAX}, 10, 0,
               WERK_E_FORMAT, "llama2.c");
    expect_bad("magic ak42", &(hdr){0x616b3432, 1, 1, 1, 1, 1, 1}, 10, 0, WERK_E_UNSUPPORTED, "ak42");
    // shorter than the header
    char path[4096];
    wt_tmp(path, sizeof(path), "l2c_short.bin");
    FILE *f = fopen(path, "wb");
    fwrite("abcdefgh", 1, 8, f);
    fclose(f);
    werk_gguf *g   = NULL;
    werk_err   err = {0};
    WT_CHECK(werk_llama2c_import(path, NULL, &g, &err) == WERK_E_FORMAT && !g, "8-byte file: %s", err.msg);
    f = fopen(path, "wb");
    fclose(f);
    WT_CHECK(werk_llama2c_import(path, NULL, &g, &err) != WERK_OK && !g, "empty file: %s", err.msg);
    wt_tmp(path, sizeof(path), "l2c_does_not_exist.bin");
    WT_CHECK(werk_llama2c_import(path, NULL, &g, &err) == WERK_E_IO && !g, "missing file: %s", err.msg);
}

// ---- tokenizer -------------------------------------------------------------------------------

typedef struct tok {
    float       score;
    int32_t     len; // 0: strlen(s)
    const char *s;
} tok;

static void write_tok(const char *path, int32_t max_len, const tok *t, int n, int extra) {
    FILE *f = fopen(path, "wb");
    fwrite(&max_len, 4, 1, f);
    for (int i = 0; i < n; i++) {
        int32_t len = t[i].len != 0 ? t[i].len : (int32_t)strlen(t[i].s);
        fwrite(&t[i].score, 4, 1, f);
        fwrite(&len, 4, 1, f);
        fwrite(t[i].s, 1, strlen(t[i].s), f);
    }
    for (int i = 0; i < extra; i++) {
        fputc('x', f);
    }
    fclose(f);
}

static const werk_gguf_str *token_at(const werk_gguf *g, uint64_t i) {
    const werk_gguf_value *v = werk_gguf_get(g, "tokenizer.ggml.tokens");
    WT_CHECK(v && v->type == WERK_GGUF_ARRAY && v->arr.elem_type == WERK_GGUF_STRING && i < v->arr.n,
             "tokens");
    return v && i < v->arr.n ? &((const werk_gguf_str *)v->arr.data)[i] : NULL;
}

static void test_tokenizer(void) {
    char ckpt[4096], tokp[4096];
    wt_tmp(ckpt, sizeof(ckpt), "l2c_tok.bin");
    wt_tmp(tokp, sizeof(tokp), "l2c_tok512.bin");
    hdr h = {8, 12, 2, 4, 2, 10, 3};
    write_ckpt(ckpt, &h, n_floats(&h), 0);
    const tok toks[10] = {{0, 0, "<unk>"},   {0, 0, "\n<s>\n"}, {0, 0, "\n</s>\n"}, {0, 0, "<0x0A>"},
                          {0, 0, "<0xFF>"},  {-1.5f, 0, " t"},  {-2, 0, "he"},      {-3, 0, " the "},
                          {-4, 0, "<0xfg>"}, {-5, 0, " "}};
    write_tok(tokp, 8, toks, 10, 0);
    werk_gguf *g   = NULL;
    werk_err   err = {0};
    WT_CHECK(werk_llama2c_import(ckpt, tokp, &g, &err) == WERK_OK, "import with tokenizer: %s", err.msg);
    if (g) {
        const werk_gguf_str *t1 = token_at(g, 1), *t5 = token_at(g, 5), *t7 = token_at(g, 7),
                            *t9 = token_at(g, 9);
        WT_CHECK(t1 && t1->len == 3 && memcmp(t1->data, "<s>", 3) == 0, "BOS restored");
        WT_CHECK(t5 && t5->len == 4 && memcmp(t5->data, "\xe2\x96\x81t", 4) == 0, "' t' -> '\u2581t'");
        WT_CHECK(t7 && t7->len == 9 && memcmp(t7->data, "\xe2\x96\x81the\xe2\x96\x81", 9) == 0, "' the '");
        WT_CHECK(t9 && t9->len == 3, "' ' -> '\u2581'");
        const werk_gguf_value *ty = werk_gguf_get(g, "tokenizer.ggml.token_type");
        const werk_gguf_value *sc = werk_gguf_get(g, "tokenizer.ggml.scores");
        WT_CHECK(ty && ty->arr.n == 10 && ty->arr.elem_type == WERK_GGUF_INT32, "token_type");
        if (ty && ty->arr.n == 10) {
            const int32_t *tt       = ty->arr.data;
            const int32_t  want[10] = {2, 3, 3, 6, 6, 1, 1, 1, 1, 1};
            WT_CHECK(memcmp(tt, want, sizeof(want)) == 0, "types %d %d %d %d %d .. %d", tt[0], tt[1], tt[2],
                     tt[3], tt[4], tt[8]);
        }
        WT_CHECK(sc && sc->arr.n == 10 && ((const float *)sc->arr.data)[5] == -1.5f, "scores");
        const char *s = NULL;
        bool        found;
        WT_CHECK(werk_gguf_get_str(g, "tokenizer.ggml.model", &s, &found, &err) == WERK_OK && found &&
                     strcmp(s, "llama") == 0,
                 "tokenizer.ggml.model");
        uint32_t id;
        WT_CHECK(werk_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &id, &found, &err) == WERK_OK && id == 2,
                 "eos");
        werk_gguf_free(g);
        g = NULL;
    }
    // broken tokenizers
    struct {
        const char *label;
        int32_t     max_len;
        int         n, extra;
        tok         bad; // replaces token 6 when len != 0
        const char *needle;
    } cases[] = {
        {"fewer tokens than vocab_size", 8, 9, 0, {0, 0, NULL}, "truncated"},
        {"more tokens than vocab_size", 8, 10, 10, {0, 0, NULL}, "after"},
        {"negative length", 8, 10, 0, {0, -7, "ab"}, "length"},
        {"length past the end", 8, 10, 0, {0, 1000000, "ab"}, "length"},
        {"length above max_token_length", 2, 10, 0, {0, 0, "abc"}, "length"},
        {"max_token_length 0", 0, 10, 0, {0, 0, NULL}, "max_token_length"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        tok t[10];
        memcpy(t, toks, sizeof(t));
        if (cases[c].bad.s) {
            t[6] = cases[c].bad;
        }
        write_tok(tokp, cases[c].max_len, t, cases[c].n, cases[c].extra);
        if (cases[c].bad.len == 1000000) { // cut the file right after that token's length field
            int64_t keep = 4;
            for (int i = 0; i < 6; i++) {
                keep += 8 + (int64_t)strlen(t[i].s);
            }
            WT_CHECK(truncate(tokp, (off_t)(keep + 8 + 2)) == 0, "truncate");
        }
        err                = (werk_err){0};
        werk_status status = werk_llama2c_import(ckpt, tokp, &g, &err);
        WT_CHECK(status == WERK_E_FORMAT && !g, "%s: status %d (%s)", cases[c].label, status, err.msg);
        WT_CHECK(strstr(err.msg, cases[c].needle) != NULL, "%s: '%s' lacks '%s'", cases[c].label, err.msg,
                 cases[c].needle);
        werk_gguf_free(g);
        g = NULL;
    }
    FILE *f = fopen(tokp, "wb");
    fwrite("ab", 1, 2, f);
    fclose(f);
    WT_CHECK(werk_llama2c_import(ckpt, tokp, &g, &err) == WERK_E_FORMAT && !g, "2-byte tokenizer: %s",
             err.msg);
}

static void test_stories260k(void) {
    char bin[4096], tokp[4096];
    wt_fixture(bin, sizeof(bin), "stories260K/llama2c/stories260K.bin");
    wt_fixture(tokp, sizeof(tokp), "stories260K/llama2c/tok512.bin");
    werk_gguf *g   = NULL;
    werk_err   err = {0};
    WT_CHECK(werk_llama2c_import(bin, tokp, &g, &err) == WERK_OK, "stories260K: %s", err.msg);
    if (!g) {
        return;
    }
    WT_CHECK(werk_gguf_n_tensors(g) == 2 + 5 * 9, "%" PRId64 " tensors", werk_gguf_n_tensors(g));
    struct {
        const char *name;
        int64_t     d0, d1;
    } want[] = {{"token_embd.weight", 512, 64},     {"blk.0.attn_q.weight", 64, 64},
                {"blk.4.attn_k.weight", 32, 64},    {"blk.2.attn_v.weight", 32, 64},
                {"blk.3.ffn_gate.weight", 172, 64}, {"blk.3.ffn_down.weight", 64, 172},
                {"blk.1.ffn_norm.weight", 64, 1},   {"output_norm.weight", 64, 1}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        int64_t k = werk_gguf_find_tensor(g, want[i].name);
        WT_CHECK(k >= 0, "missing %s", want[i].name);
        if (k >= 0) {
            const werk_gguf_tensor *t = werk_gguf_tensor_at(g, k);
            WT_CHECK(t->shape[0] == want[i].d0 && t->shape[1] == want[i].d1 && t->type == WERK_DTYPE_F32,
                     "%s: [%" PRId64 ", %" PRId64 "]", t->name, t->shape[0], t->shape[1]);
        }
    }
    WT_CHECK(werk_gguf_find_tensor(g, "output.weight") < 0, "shared classifier");
    uint32_t v;
    bool     found;
    WT_CHECK(werk_gguf_get_u32(g, "llama.attention.head_count", &v, &found, &err) == WERK_OK && v == 8,
             "heads");
    WT_CHECK(werk_gguf_get_u32(g, "llama.attention.head_count_kv", &v, &found, &err) == WERK_OK && v == 4,
             "kv");
    WT_CHECK(werk_gguf_get_u32(g, "llama.context_length", &v, &found, &err) == WERK_OK && v == 512, "ctx");
    const werk_gguf_str *t = token_at(g, 2);
    WT_CHECK(t && t->len == 4 && memcmp(t->data, "</s>", 4) == 0, "EOS token");
    const werk_gguf_value *toks = werk_gguf_get(g, "tokenizer.ggml.tokens");
    WT_CHECK(toks && toks->arr.n == 512, "512 tokens");
    werk_gguf_free(g);
}

int main(void) {
    test_layout();
    test_bad_checkpoints();
    test_tokenizer();
    test_stories260k();
    return wt_done();
}
