/* tests/infer/test_tokenizer.c - tokenizer encode/decode: round trips, specials, BOS, real models
 *
 * On the llama.cpp vocab fixtures (SPM llama and byte-level gpt-2): decode(encode(x)) == x for
 * every .inp text and for random bytes (valid or not: byte fallback / byte-level covers all),
 * special tokens with and without parse_special, empty text, BOS, and a 1 MB timing check.
 * With the real models in $WERK_CACHE/models: known encodings of Gemma 3 (SPM, 262k vocab) and
 * SmolLM2 (gpt2 / smollm).
 */
#include "tests/werk_test.h"

#include "infer/infer.h"

#include <time.h>

static werk_tokenizer *load(const char *path) {
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    werk_err        err = {0};
    if (werk_gguf_read(path, &g, &err) || werk_tokenizer_init(g, &tok, &err)) {
        WT_CHECK(0, "%s: %s", path, err.msg);
    }
    werk_gguf_free(g);
    return tok;
}

// encode then decode; true when the text comes back
static bool round_trip(const werk_tokenizer *tok, const char *s, size_t n, bool bos, bool special) {
    int32_t *ids = NULL;
    int64_t  n_ids = 0;
    char    *back = NULL;
    size_t   blen = 0;
    werk_err err = {0};
    bool     ok  = werk_tokenizer_encode(tok, s, n, bos, special, &ids, &n_ids, &err) == WERK_OK &&
              werk_tokenizer_decode(tok, ids, n_ids, &back, &blen, &err) == WERK_OK && blen == n &&
              memcmp(back, s, n) == 0;
    free(ids);
    free(back);
    return ok;
}

static int64_t encode(const werk_tokenizer *tok, const char *s, bool bos, bool special, int32_t *out, int64_t cap) {
    int32_t *ids = NULL;
    int64_t  n   = 0;
    werk_err err = {0};
    if (werk_tokenizer_encode(tok, s, strlen(s), bos, special, &ids, &n, &err) != WERK_OK) {
        return -1;
    }
    for (int64_t i = 0; i < n && i < cap; i++) {
        out[i] = ids[i];
    }
    free(ids);
    return n;
}

static bool same(const int32_t *a, int64_t na, const int32_t *b, int64_t nb) {
    return na == nb && memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0;
}

static void check_inp(const werk_tokenizer *tok, const char *inp_path) {
    FILE *f = fopen(inp_path, "rb");
    if (!f) {
        WT_CHECK(0, "cannot open %s", inp_path);
        return;
    }
    static char buf[1 << 16];
    size_t      n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n]            = 0;
    const char *sep   = "\n__ggml_vocab_test__\n";
    char       *p     = buf;
    int         n_txt = 0, n_ok = 0;
    for (char *q; (q = strstr(p, sep)) != NULL; p = q + strlen(sep)) {
        n_txt++;
        bool ok = round_trip(tok, p, (size_t)(q - p), false, false) && round_trip(tok, p, (size_t)(q - p), true, true);
        n_ok += ok;
        WT_CHECK(ok, "%s: text %d does not round-trip", inp_path, n_txt - 1);
    }
    WT_CHECK(n_txt > 10, "%s: only %d texts", inp_path, n_txt);
    printf("%s: %d/%d texts round-trip\n", inp_path, n_ok, n_txt);
}

static void check_random(const werk_tokenizer *tok, const char *name) {
    uint64_t s   = 0x9E3779B97F4A7C15ull;
    int      bad = 0;
    char     buf[96];
    bool     lacks[256]; // bytes the vocab cannot encode (SmolLM2 has no token for 0xF5..0xFF and a few more)
    for (int b = 0; b < 256; b++) {
        char c   = (char)b;
        lacks[b] = !round_trip(tok, &c, 1, false, false);
    }
    for (int t = 0; t < 500; t++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        size_t n = s % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            // half the strings printable ASCII + some UTF-8, half any byte
            buf[i] = (t & 1) ? (char)(s >> 24) : (char)(32 + (s >> 24) % 95);
            if (buf[i] == '\xe2' || lacks[(uint8_t)buf[i]]) {
                buf[i] = 'x'; // keep U+2581 (SPM's space mark) out of the input
            }
        }
        bad += !round_trip(tok, buf, n, false, false);
    }
    WT_CHECK(bad == 0, "%s: %d/500 random strings do not round-trip", name, bad);
}

static void check_speed(const werk_tokenizer *tok, const char *name) {
    size_t n   = 1 << 20;
    char  *txt = malloc(n);
    const char *words[] = {"the ", "quick ", "brown ", "fox ", "Übermäßig ", "1234 ", "jumps\n", "🚀 ", "don't "};
    size_t k = 0;
    for (int i = 0; k < n; i++) {
        const char *w = words[(i * 7 + i / 3) % 9];
        size_t      l = strlen(w);
        if (k + l > n) {
            break;
        }
        memcpy(txt + k, w, l);
        k += l;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool ok = round_trip(tok, txt, k, false, false);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double sec = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("%s: 1 MB encode+decode in %.3f s\n", name, sec);
    WT_CHECK(ok, "%s: 1 MB text does not round-trip", name);
    WT_CHECK(sec < 10.0, "%s: 1 MB took %.1f s", name, sec);
    free(txt);
}

int main(void) {
    char path[4096], inp[4200];
    int32_t ids[64];
    int64_t n;

    // ---- llama SPM vocab (bos 1, eos 2, byte fallback, add_space_prefix)
    wt_fixture(path, sizeof(path), "vocab/ggml-vocab-llama-spm.gguf");
    werk_tokenizer *spm = load(path);
    if (spm) {
        snprintf(inp, sizeof(inp), "%s.inp", path);
        check_inp(spm, inp);
        check_random(spm, "llama-spm");
        WT_CHECK(werk_tokenizer_bos(spm) == 1 && werk_tokenizer_eos(spm) == 2, "bos/eos");
        WT_CHECK(werk_tokenizer_n_vocab(spm) == 32000, "n_vocab %d", werk_tokenizer_n_vocab(spm));
        WT_CHECK(encode(spm, "", false, true, ids, 64) == 0, "empty text gives no ids");
        n = encode(spm, "", true, true, ids, 64);
        WT_CHECK(n == 1 && ids[0] == 1, "empty text with BOS gives [1]");
        n = encode(spm, "Hello world", true, true, ids, 64);
        WT_CHECK(same(ids, n, (const int32_t[]){1, 15043, 3186}, 3), "BOS + Hello world (.out: 15043 3186)");
        n = encode(spm, "<s>Hi</s>", false, true, ids, 64);
        WT_CHECK(n >= 3 && ids[0] == 1 && ids[n - 1] == 2, "parse_special: <s>/</s> become 1/2 (n=%d)", (int)n);
        n = encode(spm, "<s>", false, false, ids, 64);
        WT_CHECK(n > 1 && ids[0] != 1, "without parse_special <s> is text");
        WT_CHECK(round_trip(spm, "Hello", 5, true, true), "decode drops a leading BOS");
        char   piece[16];
        size_t pl = werk_tokenizer_piece(spm, 15043, piece, sizeof(piece)); // "▁Hello"
        WT_CHECK(pl == 6 && memcmp(piece, " Hello", 6) == 0, "piece of 15043");
        WT_CHECK(werk_tokenizer_piece(spm, 3 + 0x41, piece, sizeof(piece)) == 1 && piece[0] == 'A', "<0x41>");
        check_speed(spm, "llama-spm");
    }
    werk_tokenizer_free(spm);

    // ---- gpt-2 byte-level BPE vocab
    wt_fixture(path, sizeof(path), "vocab/ggml-vocab-gpt-2.gguf");
    werk_tokenizer *bpe = load(path);
    if (bpe) {
        snprintf(inp, sizeof(inp), "%s.inp", path);
        check_inp(bpe, inp);
        check_random(bpe, "gpt-2");
        WT_CHECK(encode(bpe, "", false, true, ids, 64) == 0, "empty text gives no ids");
        n = encode(bpe, "Hello world", false, true, ids, 64);
        WT_CHECK(same(ids, n, (const int32_t[]){15496, 995}, 2), "gpt-2 Hello world");
        n = encode(bpe, "a<|endoftext|>b", false, true, ids, 64);
        WT_CHECK(n == 3 && ids[1] == 50256, "parse_special <|endoftext|>");
        n = encode(bpe, "<|endoftext|>", false, false, ids, 64);
        WT_CHECK(n > 1, "without parse_special <|endoftext|> is text");
        check_speed(bpe, "gpt-2");
    }
    werk_tokenizer_free(bpe);

    /* ---- real models. Expected ids from HF `tokenizers` (Tokenizer.from_file on the
     * tokenizer.json that `werk convert MODEL.gguf DIR --to hf` exports, encode(text,
     * add_special_tokens=False).ids), run with ~/.cache/werk/venv/bin/python3. */
    const char *cache = wt_env("WERK_CACHE");
    snprintf(path, sizeof(path), "%s/models/gemma-3-270m-q4_k_m.gguf", cache);
    if (*cache && access(path, R_OK) == 0) {
        werk_tokenizer *g = load(path);
        if (g) {
            WT_CHECK(werk_tokenizer_n_vocab(g) == 262144, "gemma n_vocab");
            n = encode(g, "Hello world", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){9259, 1902}, 2), "gemma Hello world");
            n = encode(g, " Hello  world\n\nfoo", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){26352, 138, 12392, 108, 26537}, 5), "gemma spaces");
            n = encode(g, "<start_of_turn>user\nHi<end_of_turn>\n", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){105, 2364, 107, 10979, 106, 107}, 6), "gemma turn");
            n = encode(g, "Die Katze saß auf der Matte. Äpfel über 1234567 Öl!", false, true, ids, 64);
            WT_CHECK(same(ids, n,
                          (const int32_t[]){13034, 21185, 1934, 890, 237435, 4238, 1556, 102451, 236761, 31083, 22744,
                                            535, 8046, 236743, 236770, 236778, 236800, 236812, 236810, 236825, 236832,
                                            110058, 236888},
                          23),
                     "gemma german");
            n = encode(g, "\t\tcode:  x = y  # z\n    return", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){255969, 3970, 236787, 138, 236781, 578, 570, 138, 236865, 904, 107,
                                                    140, 2060},
                          13),
                     "gemma code");
            WT_CHECK(round_trip(g, "Grüße, 世界! 🚀\n\n  x", strlen("Grüße, 世界! 🚀\n\n  x"), true, false), "gemma round trip");
            check_speed(g, "gemma");
        }
        werk_tokenizer_free(g);
    } else {
        printf("gemma model not found, skipped\n");
    }
    snprintf(path, sizeof(path), "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", cache);
    if (*cache && access(path, R_OK) == 0) {
        werk_tokenizer *s = load(path);
        if (s) {
            n = encode(s, "Hello world", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){19556, 905}, 2), "smollm Hello world");
            n = encode(s, "<|im_start|>user\nHi<|im_end|>", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){1, 4093, 198, 26843, 2}, 5), "smollm chatml");
            n = encode(s, "I've 3.14 $100 ---- \xf0\x9f\x9a\x80 \xe4\xbd\xa0\xe5\xa5\xbd\xe4\xb8\x96\xe7\x95\x8c", false,
                       true, ids, 64);
            WT_CHECK(same(ids, n,
                          (const int32_t[]){57, 3543, 216, 35, 30, 33, 36, 1885, 33, 32, 32, 216, 586, 15107, 244, 218,
                                            216, 18645, 250, 48392, 138, 7906, 240, 178, 239, 230},
                          26),
                     "smollm digits/emoji/cjk");
            n = encode(s, "\t\tcode:  x = y  # z\n    return", false, true, ids, 64);
            WT_CHECK(same(ids, n, (const int32_t[]){197, 197, 4635, 42, 216, 1792, 446, 329, 216, 907, 1892, 472, 1003},
                          13),
                     "smollm code");
            check_random(s, "smollm");
            check_speed(s, "smollm");
        }
        werk_tokenizer_free(s);
    } else {
        printf("SmolLM2 model not found, skipped\n");
    }
    return wt_done();
}
