/* tests/convert/test_spm_model.c - SentencePiece tokenizer.model codec, tokenizer.json import on buffers
 *
 * (1) encode -> parse round trip of a model with every piece type, odd scores (-0.0,
 *     -1e9, NaN, inf) and all TrainerSpec/NormalizerSpec fields werk carries; a file
 *     write -> read round trip; the first bytes against a hand-encoded protobuf;
 * (2) hostile inputs: every truncation of a valid model, one named case per decoder check
 *     (overlong varint, length past the end, group wire type, field number 0, wrong wire
 *     type for a known field, empty piece, unknown piece type, unknown model type), and
 *     seeded random bytes; each fails with WERK_E_FORMAT and a message, never crashes;
 * (3) werk_hf_tokenizer_import_mem (tokenizer_int.h): byte-level BPE with both merge forms
 *     and added tokens, pre-tokenizer detection, special tokens from tokenizer_config.json,
 *     named chat templates, a byte_fallback vocab with its derived scores, and the named
 *     rejections (model types werk does not read, id holes/collisions, unknown
 *     pre-tokenizer);
 * (4) werk_hf_tokenizer_export (convert_int.h) on GGUFs built in memory: a tiny gpt2 and a
 *     tiny SentencePiece vocab with every special-token key, add flags and named chat
 *     templates go to HF files and back unchanged; bad GGUF values are named errors.
 */
#include "convert/convert_int.h"
#include "convert/tokenizer_int.h"
#include "werk_test.h" // first: it defines _GNU_SOURCE for popen

#include <inttypes.h>
#include <stdint.h>

// ---- (1) round trips ---------------------------------------------------------------------

#define N_PIECES 266

static const char *g_pieces[N_PIECES];
static uint64_t    g_lens[N_PIECES];
static float       g_scores[N_PIECES];
static int32_t     g_types[N_PIECES];
static char        g_bytes[256][8];

static void build_model(werk_spm_model *m) {
    werk_spm_model_init(m);
    static const char   *head[]        = {"<unk>",
                                          "<s>",
                                          "</s>",
                                          "\xe2\x96\x81",
                                          "a",
                                          "\xe2\x96\x81"
                                                   "a",
                                          "  ",
                                          "<pad>",
                                          "[PAD8]",
                                          "\xc3\xa4"};
    static const int32_t head_types[]  = {2, 3, 3, 1, 1, 1, 4, 3, 5, 1};
    static const float   head_scores[] = {0.0f,  -0.0f,    0.0f, -1.0f,    -2.0f,
                                          -1e9f, -1000.0f, NAN,  INFINITY, -3.5f};
    for (int i = 0; i < 10; i++) {
        g_pieces[i] = head[i];
        g_types[i]  = head_types[i];
        g_scores[i] = head_scores[i];
    }
    for (int b = 0; b < 256; b++) {
        snprintf(g_bytes[b], sizeof(g_bytes[b]), "<0x%02X>", b);
        g_pieces[10 + b] = g_bytes[b];
        g_types[10 + b]  = WERK_TOKEN_BYTE;
        g_scores[10 + b] = 0.0f;
    }
    for (int i = 0; i < N_PIECES; i++) {
        g_lens[i] = strlen(g_pieces[i]);
    }
    m->n_pieces                     = N_PIECES;
    m->pieces                       = g_pieces;
    m->lens                         = g_lens;
    m->scores                       = g_scores;
    m->types                        = g_types;
    m->model_type                   = WERK_SPM_BPE;
    m->byte_fallback                = true;
    m->allow_whitespace_only_pieces = true;
    m->treat_whitespace_as_suffix   = false;
    m->unk_id                       = 0;
    m->bos_id                       = 1;
    m->eos_id                       = 2;
    m->pad_id                       = -1; // 10-byte negative varint
    m->normalizer_name              = "identity";
    m->add_dummy_prefix             = false;
    m->remove_extra_whitespaces     = false;
    m->escape_whitespaces           = true;
}

static uint32_t bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static void check_same(const werk_spm_model *a, const werk_spm_model *b, const char *what) {
    WT_CHECK(a->n_pieces == b->n_pieces, "%s: %" PRId64 " pieces, expected %" PRId64, what, b->n_pieces,
             a->n_pieces);
    int bad = 0;
    for (int64_t i = 0; i < a->n_pieces && i < b->n_pieces; i++) {
        if (a->lens[i] != b->lens[i] || memcmp(a->pieces[i], b->pieces[i], a->lens[i]) != 0 ||
            bits(a->scores[i]) != bits(b->scores[i]) || a->types[i] != b->types[i] ||
            b->pieces[i][b->lens[i]] != 0) {
            if (bad++ < 3) {
                fprintf(stderr, "  %s: piece %" PRId64 " differs\n", what, i);
            }
        }
    }
    WT_CHECK(bad == 0, "%s: %d pieces differ", what, bad);
    WT_CHECK(a->model_type == b->model_type && a->byte_fallback == b->byte_fallback &&
                 a->allow_whitespace_only_pieces == b->allow_whitespace_only_pieces &&
                 a->treat_whitespace_as_suffix == b->treat_whitespace_as_suffix,
             "%s: trainer flags differ", what);
    WT_CHECK(a->unk_id == b->unk_id && a->bos_id == b->bos_id && a->eos_id == b->eos_id &&
                 a->pad_id == b->pad_id,
             "%s: special ids differ: %d %d %d %d", what, b->unk_id, b->bos_id, b->eos_id, b->pad_id);
    WT_CHECK(strcmp(a->normalizer_name, b->normalizer_name) == 0 &&
                 a->add_dummy_prefix == b->add_dummy_prefix &&
                 a->remove_extra_whitespaces == b->remove_extra_whitespaces &&
                 a->escape_whitespaces == b->escape_whitespaces,
             "%s: normalizer differs ('%s')", what, b->normalizer_name);
}

static void test_round_trip(uint8_t **enc_out, size_t *enc_size) {
    werk_spm_model m, back;
    build_model(&m);
    uint8_t    *buf = NULL;
    size_t      n   = 0;
    werk_err    err = {0};
    werk_status s   = werk_spm_model_encode(&m, &buf, &n, &err);
    WT_CHECK(s == WERK_OK, "encode: %s", err.msg);
    // piece 0 "<unk>" score 0 type UNKNOWN: 0A len | 0A 05 "<unk>" | 15 00000000 | 18 02
    static const uint8_t want[] = {0x0A, 0x0E, 0x0A, 0x05, '<', 'u', 'n',  'k',
                                   '>',  0x15, 0,    0,    0,   0,   0x18, 0x02};
    WT_CHECK(n > sizeof(want) && memcmp(buf, want, sizeof(want)) == 0,
             "first piece is not the expected protobuf");
    werk_spm_model_init(&back);
    s = werk_spm_model_parse(buf, n, "mem", &back, &err);
    WT_CHECK(s == WERK_OK, "parse: %s", err.msg);
    check_same(&m, &back, "memory round trip");
    werk_spm_model_free(&back);

    char path[512];
    wt_tmp(path, sizeof(path), "test_spm_model.model");
    s = werk_spm_model_write(path, &m, &err);
    WT_CHECK(s == WERK_OK, "write: %s", err.msg);
    werk_spm_model_init(&back);
    s = werk_spm_model_read(path, &back, &err);
    WT_CHECK(s == WERK_OK, "read: %s", err.msg);
    check_same(&m, &back, "file round trip");
    werk_spm_model_free(&back);
    unlink(path);

    // Proto defaults when the specs are absent: a lone piece.
    static const uint8_t lone[] = {0x0A, 0x03, 0x0A, 0x01, 'x'};
    werk_spm_model_init(&back);
    s = werk_spm_model_parse(lone, sizeof(lone), "lone", &back, &err);
    WT_CHECK(s == WERK_OK && back.n_pieces == 1 && back.types[0] == WERK_TOKEN_NORMAL &&
                 back.scores[0] == 0.0f && back.model_type == WERK_SPM_UNIGRAM && back.add_dummy_prefix &&
                 back.pad_id == -1 && back.bos_id == 1,
             "lone piece: defaults wrong (%s)", err.msg);
    werk_spm_model_free(&back);

    // Encoder rejects what it cannot write.
    uint8_t *b2;
    size_t   n2;
    g_types[3] = 9;
    s          = werk_spm_model_encode(&m, &b2, &n2, &err);
    WT_CHECK(s == WERK_E_ARG && b2 == NULL, "encode with a bad type: got %d", (int)s);
    g_types[3] = 1;
    g_lens[4]  = 0;
    s          = werk_spm_model_encode(&m, &b2, &n2, &err);
    WT_CHECK(s == WERK_E_ARG, "encode with an empty piece: got %d", (int)s);
    g_lens[4] = 1;
    *enc_out  = buf;
    *enc_size = n;
}

// ---- (2) hostile inputs --------------------------------------------------------------------

static void expect_format(const uint8_t *d, size_t n, const char *what, const char *needle) {
    werk_spm_model m;
    werk_err       err = {0};
    werk_spm_model_init(&m);
    werk_status s = werk_spm_model_parse(d, n, "bad.model", &m, &err);
    WT_CHECK(s == WERK_E_FORMAT, "%s: expected a format error, got %d", what, (int)s);
    WT_CHECK(strstr(err.msg, "bad.model") && (!needle || strstr(err.msg, needle)),
             "%s: message '%s' lacks '%s'", what, err.msg, needle ? needle : "bad.model");
    WT_CHECK(m.n_pieces == 0 && m.arena.head == NULL, "%s: model not left empty", what);
    werk_spm_model_free(&m);
}

static void test_hostile(const uint8_t *good, size_t n) {
    // Every truncation: parses only at a top-level field boundary, fails cleanly otherwise.
    int n_ok = 0, n_fail = 0;
    for (size_t k = 0; k < n; k++) {
        werk_spm_model m;
        werk_err       err = {0};
        werk_spm_model_init(&m);
        werk_status s = werk_spm_model_parse(good, k, "cut.model", &m, &err);
        if (s == WERK_OK) {
            n_ok++;
        } else {
            n_fail++;
            WT_CHECK(s == WERK_E_FORMAT && strstr(err.msg, "cut.model"), "truncation %zu: status %d '%s'", k,
                     (int)s, err.msg);
        }
        werk_spm_model_free(&m);
    }
    WT_CHECK(n_ok <= N_PIECES + 3 && n_fail > (int)n / 2, "truncations: %d parsed, %d failed", n_ok, n_fail);

    static const uint8_t overlong[]   = {0x0A, 0x80, 0x80, 0x80, 0x80, 0x80,
                                         0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
    static const uint8_t overflow[]   = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    static const uint8_t past_end[]   = {0x0A, 0x05, 0x0A, 0x01, 'x'};
    static const uint8_t huge_len[]   = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F};
    static const uint8_t group[]      = {0x0B, 0x0C};
    static const uint8_t field0[]     = {0x02, 0x00};
    static const uint8_t wire_bad[]   = {0x08, 0x01}; // pieces as a varint
    static const uint8_t empty[]      = {0x0A, 0x05, 0x15, 0x00, 0x00, 0x00, 0x00};
    static const uint8_t empty2[]     = {0x0A, 0x00};
    static const uint8_t bad_type[]   = {0x0A, 0x05, 0x0A, 0x01, 'x', 0x18, 0x07};
    static const uint8_t neg_type[]   = {0x0A, 0x0E, 0x0A, 0x01, 'x',  0x18, 0xFF, 0xFF,
                                         0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    static const uint8_t score_wire[] = {0x0A, 0x05, 0x0A, 0x01, 'x', 0x10, 0x01}; // score as varint
    static const uint8_t short_f32[]  = {0x0A, 0x05, 0x0A, 0x01, 'x', 0x15, 0x00};
    static const uint8_t inner_over[] = {0x0A, 0x03, 0x0A, 0x05, 'x'}; // piece length past its message
    static const uint8_t model_type[] = {0x12, 0x02, 0x18, 0x09};
    static const uint8_t norm_wire[]  = {0x1A, 0x02, 0x0D, 0x00}; // name (field 1) as fixed32, truncated
    static const uint8_t trunc_tag[]  = {0x0A, 0x03, 0x0A, 0x01, 'x', 0x80};
    expect_format(overlong, sizeof(overlong), "11-byte varint", "varint");
    expect_format(overflow, sizeof(overflow), "varint overflowing 64 bits", "overflows");
    expect_format(past_end, sizeof(past_end), "length past the end", "exceeds");
    expect_format(huge_len, sizeof(huge_len), "2^63 length", "exceeds");
    expect_format(group, sizeof(group), "group wire type", "wire type 3");
    expect_format(field0, sizeof(field0), "field number 0", "field number");
    expect_format(wire_bad, sizeof(wire_bad), "pieces with wire type 0", "wire type 0");
    expect_format(empty, sizeof(empty), "piece without text", "empty");
    expect_format(empty2, sizeof(empty2), "empty piece message", "empty");
    expect_format(bad_type, sizeof(bad_type), "piece type 7", "type 7");
    expect_format(neg_type, sizeof(neg_type), "piece type -1", "unknown type");
    expect_format(score_wire, sizeof(score_wire), "score as varint", "score");
    expect_format(short_f32, sizeof(short_f32), "truncated float", "truncated");
    expect_format(inner_over, sizeof(inner_over), "inner length past its message", "exceeds");
    expect_format(model_type, sizeof(model_type), "model_type 9", "model_type");
    expect_format(norm_wire, sizeof(norm_wire), "truncated fixed32 in normalizer_spec", "truncated");
    expect_format(trunc_tag, sizeof(trunc_tag), "truncated tag", "truncated varint");

    // Unknown fields of every wire type are skipped.
    static const uint8_t unknown[] = {0x20, 0x05,                                      // field 4 varint
                                      0x29, 1,    2,    3,    4,   5,    6,    7,   8, // field 5 fixed64
                                      0x35, 1,    2,    3,    4,                       // field 6 fixed32
                                      0x3A, 0x02, 0xFF, 0xFF,                          // field 7 bytes
                                      0x0A, 0x06, 0x0A, 0x01, 'x', 0xA0, 0x1F, 0x01};  // piece + field 500
    werk_spm_model       m;
    werk_err             err = {0};
    werk_spm_model_init(&m);
    WT_CHECK(werk_spm_model_parse(unknown, sizeof(unknown), "unknown", &m, &err) == WERK_OK &&
                 m.n_pieces == 1 && m.lens[0] == 1 && m.pieces[0][0] == 'x',
             "unknown fields not skipped: %s", err.msg);
    werk_spm_model_free(&m);

    // Seeded garbage: random bytes and single-byte mutations of the good model.
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    uint8_t  buf[512];
    int      crashes_avoided = 0;
    for (int it = 0; it < 3000; it++) {
        size_t k;
        if (it % 2) {
            k = 1 + (size_t)(rng % sizeof(buf));
            for (size_t i = 0; i < k; i++) {
                rng    = rng * 6364136223846793005ull + 1442695040888963407ull;
                buf[i] = (uint8_t)(rng >> 56);
            }
        } else {
            k = n < sizeof(buf) ? n : sizeof(buf);
            memcpy(buf, good, k);
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            buf[(rng >> 33) % k] ^= (uint8_t)(1u << ((rng >> 20) % 8));
        }
        werk_spm_model_init(&m);
        werk_status s = werk_spm_model_parse(buf, k, "rand", &m, &err);
        crashes_avoided += s == WERK_OK || s == WERK_E_FORMAT;
        werk_spm_model_free(&m);
    }
    WT_CHECK(crashes_avoided == 3000, "random inputs: %d of 3000 gave OK or FORMAT", crashes_avoided);
}

// ---- (3) tokenizer.json on buffers -----------------------------------------------------------

static werk_gguf *
import_json(const char *json, const char *config, const char *arch, werk_status want, const char *needle) {
    werk_gguf  *g   = werk_gguf_init();
    werk_err    err = {0};
    werk_status s   = werk_hf_tokenizer_import_mem(json, strlen(json), config, config ? strlen(config) : 0,
                                                   arch, "t.json", g, &err);
    WT_CHECK(s == want, "import: got %d (%s), expected %d", (int)s, err.msg, (int)want);
    if (needle) {
        WT_CHECK(strstr(err.msg, needle) != NULL, "import: message '%s' lacks '%s'", err.msg, needle);
    }
    if (s != WERK_OK) {
        werk_gguf_free(g);
        return NULL;
    }
    return g;
}

static const char *kv_str(const werk_gguf *g, const char *key) {
    const char *v     = NULL;
    bool        found = false;
    werk_gguf_get_str(g, key, &v, &found, NULL);
    return found ? v : "(missing)";
}

static int64_t kv_u32(const werk_gguf *g, const char *key) {
    uint32_t v;
    bool     found = false;
    werk_gguf_get_u32(g, key, &v, &found, NULL);
    return found ? (int64_t)v : -1;
}

static const werk_gguf_str *kv_strs(const werk_gguf *g, const char *key, uint64_t *n) {
    const werk_gguf_value *v = werk_gguf_get(g, key);
    *n                       = v && v->type == WERK_GGUF_ARRAY ? v->arr.n : 0;
    return v ? v->arr.data : NULL;
}

#define BYTE_LEVEL                                                                                           \
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}"

static void test_json_import(void) {
    // Byte-level BPE: string and pair merges, added tokens, specials from tokenizer_config.
    const char *json = "{\"added_tokens\":[{\"id\":4,\"content\":\"<|end|>\",\"special\":true},"
                       "{\"id\":5,\"content\":\"<x\xe2\x96\x81y>\",\"special\":false},{\"id\":6,\"content\":"
                       "\"<unused3>\",\"special\":false}],"
                       "\"pre_tokenizer\":" BYTE_LEVEL
                       ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"c d\":3},"
                       "\"merges\":[\"a b\",[\"c\",\"d e\"]]}}";
    const char *config =
        "{\"bos_token\":{\"content\":\"<|end|>\",\"special\":true},\"eos_token\":\"<|end|>\","
        "\"pad_token\":null,\"unk_token\":\"zz\",\"add_bos_token\":false,"
        "\"chat_template\":[{\"name\":\"default\",\"template\":\"D\"},{\"name\":\"tool use\","
        "\"template\":\"T\"}]}";
    werk_gguf *g = import_json(json, config, "qwen2", WERK_OK, NULL);
    if (g) {
        uint64_t             n, nm;
        const werk_gguf_str *toks = kv_strs(g, "tokenizer.ggml.tokens", &n);
        const werk_gguf_str *mer  = kv_strs(g, "tokenizer.ggml.merges", &nm);
        WT_CHECK(strcmp(kv_str(g, "tokenizer.ggml.model"), "gpt2") == 0, "model %s",
                 kv_str(g, "tokenizer.ggml.model"));
        WT_CHECK(strcmp(kv_str(g, "tokenizer.ggml.pre"), "gpt-2") == 0, "pre %s",
                 kv_str(g, "tokenizer.ggml.pre"));
        WT_CHECK(n == 7 && strcmp(toks[3].data, "c d") == 0 && strcmp(toks[5].data, "<x y>") == 0,
                 "tokens wrong (n=%" PRIu64 ")", n);
        WT_CHECK(nm == 2 && strcmp(mer[0].data, "a b") == 0 &&
                     strcmp(mer[1].data, "c d\xc4\xa0"
                                         "e") == 0,
                 "merges wrong: '%s'", nm == 2 ? mer[1].data : "?");
        const werk_gguf_value *tt = werk_gguf_get(g, "tokenizer.ggml.token_type");
        const int32_t         *ty = tt ? tt->arr.data : NULL;
        WT_CHECK(ty && ty[0] == 1 && ty[4] == 3 && ty[5] == 4 && ty[6] == 3, "token types wrong");
        WT_CHECK(werk_gguf_get(g, "tokenizer.ggml.scores") == NULL, "gpt2 vocab got scores");
        WT_CHECK(kv_u32(g, "tokenizer.ggml.bos_token_id") == 4 &&
                     kv_u32(g, "tokenizer.ggml.eos_token_id") == 4 &&
                     kv_u32(g, "tokenizer.ggml.padding_token_id") == -1 &&
                     kv_u32(g, "tokenizer.ggml.unknown_token_id") == -1,
                 "special ids wrong");
        bool b = true, found = false;
        werk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &found, NULL);
        WT_CHECK(found && !b, "add_bos_token not false");
        WT_CHECK(strcmp(kv_str(g, "tokenizer.chat_template"), "D") == 0 &&
                     strcmp(kv_str(g, "tokenizer.chat_template.tool_use"), "T") == 0,
                 "chat templates wrong");
        werk_gguf_free(g);
    }

    // Pre-tokenizer detection from the JSON structure.
    static const struct {
        const char *pre_json, *want;
    } pres[] = {
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Digits\",\"individual_digits\":true}"
         "," BYTE_LEVEL "]}",
         "smollm"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'"
         "re|'ve|'m|'ll|'d)"
         "|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
         "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
         "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
         "\"use_regex\":false}]}",
         "llama-bpe"},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t|'"
         "re|'ve|'m|'ll|'d)"
         "|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
         "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|"
         "\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","
         "\"use_regex\":false}]}",
         "qwen2"},
        {"{\"type\":\"Whitespace\"}", NULL},
        {"{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"}},"
         "{\"type\":\"ByteLevel\",\"use_regex\":false}]}",
         NULL},
    };
    for (size_t i = 0; i < sizeof(pres) / sizeof(pres[0]); i++) {
        char buf[2048];
        snprintf(buf, sizeof(buf),
                 "{\"pre_tokenizer\":%s,\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}",
                 pres[i].pre_json);
        g = import_json(buf, NULL, "llama", pres[i].want ? WERK_OK : WERK_E_UNSUPPORTED,
                        pres[i].want ? NULL : "pre-tokenizer not recognized");
        if (g) {
            WT_CHECK(strcmp(kv_str(g, "tokenizer.ggml.pre"), pres[i].want) == 0, "pre %zu: got %s, want %s",
                     i, kv_str(g, "tokenizer.ggml.pre"), pres[i].want);
            werk_gguf_free(g);
        }
    }

    // SentencePiece-style BPE (byte_fallback) without tokenizer.model: derived scores.
    const char *spm_json =
        "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\","
        "\"special\":true}],"
        "\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,"
        "\"<s>\":1,"
        "\"<0x0A>\":2,\"\xe2\x96\x81\":3,\"t\":4,\"h\":5,\"\xe2\x96\x81t\":6,\"\xe2\x96\x81th\":7,\"zz\":8,"
        "\"th\":9},"
        "\"merges\":[[\"\xe2\x96\x81\",\"t\"],\"\xe2\x96\x81t h\",\"t h\",\"\xe2\x96\x81 t\"]}}";
    g = import_json(spm_json, "{\"bos_token\":\"<s>\",\"unk_token\":\"<unk>\"}", "llama", WERK_OK, NULL);
    if (g) {
        const werk_gguf_value *sv = werk_gguf_get(g, "tokenizer.ggml.scores");
        const werk_gguf_value *tv = werk_gguf_get(g, "tokenizer.ggml.token_type");
        WT_CHECK(strcmp(kv_str(g, "tokenizer.ggml.model"), "llama") == 0 &&
                     strcmp(kv_str(g, "tokenizer.ggml.pre"), "default") == 0,
                 "byte_fallback vocab: model %s", kv_str(g, "tokenizer.ggml.model"));
        WT_CHECK(werk_gguf_get(g, "tokenizer.ggml.merges") == NULL, "llama vocab got merges");
        if (sv && tv && sv->arr.n == 10) {
            const float   *sc = sv->arr.data;
            const int32_t *ty = tv->arr.data;
            // merge results in order: ▁t (0), ▁th (-1), th (-2); K = 3 distinct results
            static const float   want_sc[10] = {-1000, -1000, 0, -4, -4, -4, 0, -1, -4, -2};
            static const int32_t want_ty[10] = {3, 3, 6, 1, 1, 1, 1, 1, 1, 1};
            for (int i = 0; i < 10; i++) {
                WT_CHECK(sc[i] == want_sc[i] && ty[i] == want_ty[i], "token %d: score %g type %d, want %g %d",
                         i, (double)sc[i], (int)ty[i], (double)want_sc[i], (int)want_ty[i]);
            }
        } else {
            WT_CHECK(false, "byte_fallback vocab: no scores/types");
        }
        WT_CHECK(kv_u32(g, "tokenizer.ggml.bos_token_id") == 1 &&
                     kv_u32(g, "tokenizer.ggml.unknown_token_id") == 0,
                 "byte_fallback vocab: special ids");
        werk_gguf_free(g);
    }

    // SmolLM rule: llama arch, 49152 tokens -> add_bos_token false; add_prefix_space -> add_space_prefix.
    // (covered end to end by test_tokenizer_files.py on the real model)

    // Rejections, each named.
    static const struct {
        const char *json;
        werk_status want;
        const char *needle;
    } bad[] = {
        {"{\"model\":{\"type\":\"Unigram\",\"vocab\":[[\"a\",0.0]]}}", WERK_E_UNSUPPORTED, "'Unigram'"},
        {"{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}", WERK_E_UNSUPPORTED, "'WordPiece'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]},\"pre_"
         "tokenizer\":" BYTE_LEVEL "}",
         WERK_E_FORMAT, "not an integer in 0..1"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"c\":2},\"merges\":[]},\"added_tokens\":[{\"id\":"
         "0,"
         "\"content\":\"a\"}],\"pre_tokenizer\":" BYTE_LEVEL "}",
         WERK_E_FORMAT, "id 1 is missing"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[]},\"added_tokens\":[{\"id\":"
         "3,"
         "\"content\":\"x\"}],\"pre_tokenizer\":" BYTE_LEVEL "}",
         WERK_E_FORMAT, "added_tokens[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", WERK_E_FORMAT,
         "collide"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1.5},\"merges\":[]}}", WERK_E_FORMAT, "'b'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", WERK_E_FORMAT, "'a'"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},\"added_tokens\":[{\"id\":0,"
         "\"content\":\"b\"}]}",
         WERK_E_FORMAT, "already used"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[7]},\"pre_tokenizer\":" BYTE_LEVEL "}",
         WERK_E_FORMAT, "merges[0]"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{}}}", WERK_E_FORMAT, "empty"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}", WERK_E_UNSUPPORTED, "none"},
        {"{\"model\":3}", WERK_E_FORMAT, "model"},
        {"[1,2]", WERK_E_FORMAT, "model"},
        {"{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"vocab\":{\"b\":0}}}", WERK_E_FORMAT, NULL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        g = import_json(bad[i].json, NULL, "llama", bad[i].want, bad[i].needle);
        werk_gguf_free(g);
    }
}

// ---- (4) export -> import on in-memory GGUFs -------------------------------------------------

static bool same_value(const werk_gguf_value *a, const werk_gguf_value *b) {
    if (a->type != b->type) {
        return false;
    }
    if (a->type == WERK_GGUF_STRING) {
        return a->str.len == b->str.len && memcmp(a->str.data, b->str.data, a->str.len) == 0;
    }
    if (a->type != WERK_GGUF_ARRAY) {
        return a->type == WERK_GGUF_BOOL ? a->b == b->b : a->u32 == b->u32;
    }
    if (a->arr.elem_type != b->arr.elem_type || a->arr.n != b->arr.n) {
        return false;
    }
    if (a->arr.elem_type == WERK_GGUF_STRING) {
        const werk_gguf_str *x = a->arr.data, *y = b->arr.data;
        for (uint64_t i = 0; i < a->arr.n; i++) {
            if (x[i].len != y[i].len || memcmp(x[i].data, y[i].data, x[i].len) != 0) {
                return false;
            }
        }
        return true;
    }
    return memcmp(a->arr.data, b->arr.data, a->arr.n * 4) == 0; // i32 / f32 bits
}

/* Exports g's vocab to a folder, imports it back (arch from g) and compares every
 * tokenizer.* key both ways. */
static void export_round_trip(werk_gguf *g, const char *label, const char *arch) {
    char dir[512], cmd[1024];
    wt_tmp(dir, sizeof(dir), label);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    wt_run(cmd, NULL);
    bool        written = false, found = false;
    werk_err    err = {0};
    werk_status s   = werk_hf_tokenizer_export(g, dir, &written, &err);
    WT_CHECK(s == WERK_OK && written, "%s: export: %s", label, err.msg);
    werk_gguf *h = werk_gguf_init();
    s            = werk_hf_tokenizer_import(dir, arch, h, &found, &err);
    WT_CHECK(s == WERK_OK && found, "%s: import: %s", label, err.msg);
    for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
        const werk_gguf_kv    *kv = werk_gguf_kv_at(g, i);
        const werk_gguf_value *v  = werk_gguf_get(h, kv->key);
        if (strncmp(kv->key, "tokenizer.", 10) == 0) {
            WT_CHECK(v && same_value(&kv->value, v), "%s: %s %s", label, kv->key, v ? "differs" : "lost");
        }
    }
    for (int64_t i = 0; i < werk_gguf_n_kv(h); i++) {
        WT_CHECK(werk_gguf_get(g, werk_gguf_kv_at(h, i)->key), "%s: %s appeared", label,
                 werk_gguf_kv_at(h, i)->key);
    }
    werk_gguf_free(h);
    wt_run(cmd, NULL);
}

static werk_status export_status(werk_gguf *g, const char *needle) {
    char dir[512];
    wt_tmp(dir, sizeof(dir), "tok_export_bad");
    bool        written = true;
    werk_err    err     = {0};
    werk_status s       = werk_hf_tokenizer_export(g, dir, &written, &err);
    WT_CHECK(!written || s == WERK_OK, "written despite an error");
    if (needle) {
        WT_CHECK(s != WERK_OK && strstr(err.msg, needle), "export: message '%s' lacks '%s'", err.msg, needle);
    }
    return s;
}

static void test_export(void) {
    // gpt2: every special key, add flags, a USER_DEFINED token, named chat templates.
    static const char *toks[]   = {"a",
                                   "b",
                                   "ab",
                                   "\xc4\xa0",
                                   "\xc4\xa0"
                                     "a",
                                   "<|end|>",
                                   "<pad>",
                                   "x y"};
    static int32_t     types[]  = {1, 1, 1, 1, 1, 3, 3, 4};
    static const char *merges[] = {"a b", "\xc4\xa0 a"};
    static const char *names[]  = {"tool_use", "rag"};
    werk_gguf         *g        = werk_gguf_init();
    werk_err           err      = {0};
    werk_gguf_set_str(g, "general.architecture", "llama", &err);
    werk_gguf_set_str(g, "tokenizer.ggml.model", "gpt2", &err);
    werk_gguf_set_str(g, "tokenizer.ggml.pre", "smollm", &err);
    werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, NULL, 8, &err);
    werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, types, 8, &err);
    werk_gguf_set_arr_str(g, "tokenizer.ggml.merges", merges, NULL, 2, &err);
    static const char *const ids[] = {"bos_token_id",       "eos_token_id",     "unknown_token_id",
                                      "seperator_token_id", "padding_token_id", "mask_token_id"};
    for (int i = 0; i < 6; i++) {
        char key[64];
        snprintf(key, sizeof(key), "tokenizer.ggml.%s", ids[i]);
        werk_gguf_set_u32(g, key, i < 4 ? 5 : 6, &err);
    }
    werk_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", true, &err);
    werk_gguf_set_bool(g, "tokenizer.ggml.add_eos_token", false, &err);
    werk_gguf_set_bool(g, "tokenizer.ggml.add_sep_token", false, &err);
    werk_gguf_set_bool(g, "tokenizer.ggml.add_space_prefix", false, &err);
    werk_gguf_set_str(g, "tokenizer.chat_template", "{{ default }}", &err);
    werk_gguf_set_str(g, "tokenizer.chat_template.tool_use", "{{ tools }}", &err);
    werk_gguf_set_str(g, "tokenizer.chat_template.rag", "{{ docs }}", &err);
    werk_gguf_set_arr_str(g, "tokenizer.chat_templates", names, NULL, 2, &err);
    export_round_trip(g, "tok_export_gpt2", "llama");

    // Bad values, one at a time.
    werk_gguf_set_str(g, "tokenizer.ggml.pre", "deepseek-llm", &err);
    export_status(g, "deepseek-llm");
    werk_gguf_set_str(g, "tokenizer.ggml.pre", "smollm", &err);
    werk_gguf_set_str(g, "tokenizer.ggml.model", "bert", &err);
    WT_CHECK(export_status(g, "'bert'") == WERK_E_UNSUPPORTED, "bert model not unsupported");
    werk_gguf_set_str(g, "tokenizer.ggml.model", "gpt2", &err);
    types[2] = 9;
    werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, types, 8, &err);
    WT_CHECK(export_status(g, "token_type[2]") == WERK_E_FORMAT, "bad token type not a format error");
    types[2] = 1;
    werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, types, 7, &err);
    WT_CHECK(export_status(g, "token_type") == WERK_E_FORMAT, "short token_type not a format error");
    werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, types, 8, &err);
    static const char *bad_toks[] = {"a", "b", "ab", "\xff", "x", "y", "z", "w"};
    werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", bad_toks, NULL, 8, &err);
    WT_CHECK(export_status(g, "token 3") == WERK_E_UNSUPPORTED, "invalid UTF-8 token not unsupported");
    static const char *dup_toks[] = {"a", "b", "ab", "a", "x", "y", "z", "w"};
    werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", dup_toks, NULL, 8, &err);
    WT_CHECK(export_status(g, "unique") == WERK_E_UNSUPPORTED, "duplicate tokens not unsupported");
    werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, NULL, 8, &err);
    werk_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 99, &err); // out of range: warned, not exported
    WT_CHECK(export_status(g, NULL) == WERK_OK, "out-of-range bos id should only warn");
    werk_gguf_free(g);

    g            = werk_gguf_init();
    bool written = true;
    WT_CHECK(werk_hf_tokenizer_export(g, "/nonexistent/never", &written, &err) == WERK_OK && !written,
             "no vocab: should write nothing");
    werk_gguf_free(g);

    // SentencePiece: scores, every type, a USER_DEFINED run of spaces stored as llama.cpp
    // does, an unknown token llama.cpp turned CONTROL, no add_space_prefix key.
    static const char *stoks[]   = {"<pad>", "<eos>",         "<bos>", "<unk>",  "<0x0A>", "\xe2\x96\x81",
                                    "t",     "\xe2\x96\x81t", "  ",    "[PAD9]", "<mask>"};
    static int32_t     stypes[]  = {3, 3, 3, 3, 6, 1, 1, 1, 4, 5, 3};
    static float       sscores[] = {-1000, -1000, 0, -1000, 0, -1, -2, -0.0f, -1000, -10000, -1000};
    g                            = werk_gguf_init();
    werk_gguf_set_str(g, "general.architecture", "llama", &err);
    werk_gguf_set_str(g, "tokenizer.ggml.model", "llama", &err);
    werk_gguf_set_str(g, "tokenizer.ggml.pre", "default", &err);
    werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", stoks, NULL, 11, &err);
    werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, stypes, 11, &err);
    werk_gguf_set_arr(g, "tokenizer.ggml.scores", WERK_GGUF_FLOAT32, sscores, 11, &err);
    werk_gguf_set_u32(g, "tokenizer.ggml.bos_token_id", 2, &err);
    werk_gguf_set_u32(g, "tokenizer.ggml.eos_token_id", 1, &err);
    werk_gguf_set_u32(g, "tokenizer.ggml.unknown_token_id", 3, &err);
    werk_gguf_set_u32(g, "tokenizer.ggml.padding_token_id", 0, &err);
    werk_gguf_set_bool(g, "tokenizer.ggml.add_bos_token", true, &err);
    werk_gguf_set_bool(g, "tokenizer.ggml.add_eos_token", true, &err);
    export_round_trip(g, "tok_export_spm", "llama");
    werk_gguf_set_arr(g, "tokenizer.ggml.scores", WERK_GGUF_FLOAT32, sscores, 10, &err);
    WT_CHECK(export_status(g, "scores") == WERK_E_FORMAT, "short scores not a format error");
    werk_gguf_free(g);
}

int main(void) {
    uint8_t *enc = NULL;
    size_t   n   = 0;
    test_round_trip(&enc, &n);
    if (enc) {
        test_hostile(enc, n);
        free(enc);
    }
    test_json_import();
    test_export();
    return wt_done();
}
