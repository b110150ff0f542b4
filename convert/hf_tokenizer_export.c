/* convert/hf_tokenizer_export.c - GGUF tokenizer.ggml.* keys -> HF tokenizer files (export)
 *
 * The export half of hf_tokenizer.c's importer (whose header comment lists the files, the
 * GGUF keys and the import rules this inverts); what both share is in hf_tokenizer_int.h.
 *
 * Export writes the inverse, so that GGUF -> HF -> GGUF keeps every tokenizer key:
 *   - "gpt2": tokenizer.json (BPE vocab = tokens, merges verbatim, pre_tokenizer for `pre`
 *     from the table in hf_tokenizer.c, ByteLevel decoder, added_tokens = CONTROL (special) and
 *     USER_DEFINED tokens; trailing "[PADi]" UNUSED tokens are left out and come back as
 *     padding from config.json vocab_size).
 *   - "llama": tokenizer.model with the exact pieces/scores/types, and a tokenizer.json
 *     (BPE with byte_fallback, merges generated like transformers' SentencePieceExtractor:
 *     every split of a piece into two pieces of the vocab, grouped by piece, sorted by
 *     (left id, right id), then stably by (piece score, left length, right length)
 *     descending; normalizer Prepend("▁") if add_space_prefix + Replace(" ", "▁"); decoder
 *     Replace("▁", " "), ByteFallback, Fuse, Strip(1 left) if add_space_prefix).
 *     USER_DEFINED tokens that llama.cpp stored with U+2581 turned into ' ' are written back
 *     with U+2581 (the form SentencePiece and HF match on). tokenizer_config.json's
 *     added_tokens_decoder lists exactly the tokens the import rule maps back to the
 *     same type and score (CONTROL/USER_DEFINED with score -1000), so re-import is exact; a
 *     vocab whose unknown token llama.cpp turned into CONTROL gets it as UNKNOWN in
 *     tokenizer.model (SentencePiece requires one), and the decoder entry turns it back.
 *   - tokenizer_config.json: the special tokens, add_* flags present in the GGUF,
 *     add_prefix_space (llama arch), added_tokens_decoder, chat_template(s),
 *     model_max_length (<arch>.context_length), tokenizer_class PreTrainedTokenizerFast
 *     (transformers then follows tokenizer.json exactly; see build_tokenizer_config).
 * Other tokenizer.* keys (eot/fim ids, precompiled_charsmap, ...) have no HF home and are
 * dropped with a warning. All files are written atomically; JSON comes from cJSON.
 */
#define _GNU_SOURCE
#include "convert/convert_int.h"
#include "convert/hf_tokenizer_int.h"
#include "convert/tokenizer_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPM_MERGE_MAX_PIECE 1024 // bytes; longer pieces get no generated merges

// ---- export: reading the GGUF keys ------------------------------------------------------------

typedef struct tok_export {
    int64_t              n;
    const werk_gguf_str *tokens;
    int32_t             *types;  // malloc'd (default NORMAL)
    const float         *scores; // NULL if absent
    int64_t              n_merges;
    const werk_gguf_str *merges;
    const char          *model, *pre, *arch;
    int64_t              sp_id[SP_COUNT];
    int                  sp_add[SP_COUNT];
    int                  add_space_prefix;
    const char          *chat_template;
    const werk_gguf_str *named;      // tokenizer.chat_templates
    const char         **named_tmpl; // tokenizer.chat_template.NAME for each
    int64_t              n_named;
    int64_t              ctx_len; // <arch>.context_length, -1 if absent
    // HF forms of the tokens (U+2581 restored for USER_DEFINED, see the header)
    const char **hf_text;
    uint64_t    *hf_len;
    bool        *in_decoder; // listed in tokenizer_config added_tokens_decoder
    int64_t      n_hf;       // tokens written to tokenizer.json (trailing [PAD] left out)
    werk_arena   arena;
} tok_export;

static const char *gguf_name(const werk_gguf *g) {
    const char *p = werk_gguf_path(g);
    return p && *p ? p : "GGUF";
}

static werk_status
get_str_array(const werk_gguf *g, const char *key, const werk_gguf_str **out, int64_t *n, werk_err *err) {
    const werk_gguf_value *v = werk_gguf_get(g, key);
    *out                     = NULL;
    *n                       = 0;
    if (!v) {
        return WERK_OK;
    }
    if (v->type != WERK_GGUF_ARRAY || v->arr.elem_type != WERK_GGUF_STRING) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s' is not a string array", gguf_name(g), key);
    }
    if (v->arr.n > INT32_MAX) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s' has too many entries", gguf_name(g), key);
    }
    *out = v->arr.data;
    *n   = (int64_t)v->arr.n;
    return WERK_OK;
}

static bool int_elem(const werk_gguf_value *v, uint64_t i, int64_t *out) {
    const void *d = v->arr.data;
    switch (v->arr.elem_type) {
    case WERK_GGUF_INT8:
        *out = ((const int8_t *)d)[i];
        return true;
    case WERK_GGUF_UINT8:
        *out = ((const uint8_t *)d)[i];
        return true;
    case WERK_GGUF_INT16:
        *out = ((const int16_t *)d)[i];
        return true;
    case WERK_GGUF_UINT16:
        *out = ((const uint16_t *)d)[i];
        return true;
    case WERK_GGUF_INT32:
        *out = ((const int32_t *)d)[i];
        return true;
    case WERK_GGUF_UINT32:
        *out = ((const uint32_t *)d)[i];
        return true;
    case WERK_GGUF_INT64:
        *out = ((const int64_t *)d)[i];
        return true;
    case WERK_GGUF_UINT64:
        *out = (int64_t)((const uint64_t *)d)[i];
        return true;
    default:
        return false;
    }
}

static void export_free(tok_export *x) {
    free(x->types);
    werk_arena_free(&x->arena);
}

static werk_status export_read(const werk_gguf *g, tok_export *x, werk_err *err) {
    const char *gp = gguf_name(g);
    werk_status s;
    bool        found;
    if ((s = get_str_array(g, "tokenizer.ggml.tokens", &x->tokens, &x->n, err)) || x->n == 0) {
        return s;
    }
    if ((s = werk_gguf_get_str(g, "tokenizer.ggml.model", &x->model, &found, err))) {
        return s;
    }
    if (!found) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tokenizer.ggml.tokens without tokenizer.ggml.model", gp);
    }
    if ((s = werk_gguf_get_str(g, "tokenizer.ggml.pre", &x->pre, &found, err))) {
        return s;
    }
    if ((s = werk_gguf_get_str(g, "general.architecture", &x->arch, &found, err))) {
        return s;
    }
    x->types = werk_malloc((size_t)x->n * sizeof(int32_t));
    if (!x->types) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gp);
    }
    const werk_gguf_value *tv = werk_gguf_get(g, "tokenizer.ggml.token_type");
    if (tv && (tv->type != WERK_GGUF_ARRAY || tv->arr.n != (uint64_t)x->n)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tokenizer.ggml.token_type is not an array of %" PRId64 " entries", gp, x->n);
    }
    for (int64_t i = 0; i < x->n; i++) {
        int64_t t = WERK_TOKEN_NORMAL;
        if (tv && (!int_elem(tv, (uint64_t)i, &t) || t < WERK_TOKEN_NORMAL || t > WERK_TOKEN_BYTE)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: tokenizer.ggml.token_type[%" PRId64 "] is not a type 1..6", gp, i);
        }
        x->types[i] = (int32_t)t;
        if (!utf8_ok(x->tokens[i].data, x->tokens[i].len) || x->tokens[i].len == 0) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: token %" PRId64
                             " is empty or not valid UTF-8 (HF tokenizer files cannot hold it)",
                             gp, i);
        }
    }
    const werk_gguf_value *sv = werk_gguf_get(g, "tokenizer.ggml.scores");
    if (sv) {
        if (sv->type != WERK_GGUF_ARRAY || sv->arr.elem_type != WERK_GGUF_FLOAT32 ||
            sv->arr.n != (uint64_t)x->n) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: tokenizer.ggml.scores is not an f32 array of %" PRId64 " entries", gp,
                             x->n);
        }
        x->scores = sv->arr.data;
    }
    if ((s = get_str_array(g, "tokenizer.ggml.merges", &x->merges, &x->n_merges, err))) {
        return s;
    }
    for (int64_t i = 0; i < x->n_merges; i++) {
        if (!utf8_ok(x->merges[i].data, x->merges[i].len)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: merge %" PRId64 " is not valid UTF-8 (HF tokenizer files cannot hold it)",
                             gp, i);
        }
    }
    for (int t = 0; t < SP_COUNT; t++) {
        uint32_t id;
        x->sp_id[t] = -1;
        if ((s = werk_gguf_get_u32(g, sp_key[t], &id, &found, err))) {
            return s;
        }
        if (found && id < (uint64_t)x->n) {
            x->sp_id[t] = id;
        } else if (found) {
            werk_log(WERK_LOG_WARN, "%s: %s %u is outside the vocabulary; not exported", gp, sp_key[t], id);
        }
        bool add;
        x->sp_add[t] = -1;
        if (add_key[t]) {
            if ((s = werk_gguf_get_bool(g, add_key[t], &add, &found, err))) {
                return s;
            }
            if (found) {
                x->sp_add[t] = add;
            }
        }
    }
    bool aps;
    x->add_space_prefix = -1;
    if ((s = werk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &aps, &found, err))) {
        return s;
    }
    if (found) {
        x->add_space_prefix = aps;
    }
    if ((s = werk_gguf_get_str(g, "tokenizer.chat_template", &x->chat_template, &found, err)) ||
        (s = get_str_array(g, "tokenizer.chat_templates", &x->named, &x->n_named, err))) {
        return s;
    }
    if (x->n_named > 0) {
        x->named_tmpl = werk_arena_alloc(&x->arena, (size_t)x->n_named * sizeof(char *));
        if (!x->named_tmpl) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", gp);
        }
        for (int64_t i = 0; i < x->n_named; i++) {
            char key[256];
            snprintf(key, sizeof(key), "tokenizer.chat_template.%.200s", x->named[i].data);
            if ((s = werk_gguf_get_str(g, key, &x->named_tmpl[i], &found, err))) {
                return s;
            }
            if (!found) {
                werk_log(WERK_LOG_WARN, "%s: %s is missing; template dropped", gp, key);
            }
        }
    }
    if (x->chat_template && !utf8_ok(x->chat_template, strlen(x->chat_template))) {
        werk_log(WERK_LOG_WARN, "%s: tokenizer.chat_template is not valid UTF-8; not exported", gp);
        x->chat_template = NULL;
    }
    for (int64_t i = 0; i < x->n_named; i++) {
        if (!utf8_ok(x->named[i].data, x->named[i].len) ||
            (x->named_tmpl[i] && !utf8_ok(x->named_tmpl[i], strlen(x->named_tmpl[i])))) {
            werk_log(WERK_LOG_WARN, "%s: chat template %" PRId64 " is not valid UTF-8; not exported", gp, i);
            x->named_tmpl[i] = NULL;
        }
    }
    x->ctx_len = -1;
    if (x->arch) {
        char     key[160];
        uint32_t ctx;
        snprintf(key, sizeof(key), "%.100s.context_length", x->arch);
        if ((s = werk_gguf_get_u32(g, key, &ctx, &found, err))) {
            return s;
        }
        if (found) {
            x->ctx_len = ctx;
        }
    }
    // Warn about tokenizer keys HF files cannot carry.
    static const char *const known[] = {"tokenizer.ggml.model",
                                        "tokenizer.ggml.pre",
                                        "tokenizer.ggml.tokens",
                                        "tokenizer.ggml.scores",
                                        "tokenizer.ggml.token_type",
                                        "tokenizer.ggml.merges",
                                        "tokenizer.ggml.add_space_prefix",
                                        "tokenizer.chat_template",
                                        "tokenizer.chat_templates"};
    for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
        const char *k = werk_gguf_kv_at(g, i)->key;
        if (!starts_with(k, "tokenizer.") || starts_with(k, "tokenizer.chat_template.")) {
            continue;
        }
        bool ok = false;
        for (size_t j = 0; j < sizeof(known) / sizeof(known[0]) && !ok; j++) {
            ok = strcmp(k, known[j]) == 0;
        }
        for (int t = 0; t < SP_COUNT && !ok; t++) {
            ok = strcmp(k, sp_key[t]) == 0 || (add_key[t] && strcmp(k, add_key[t]) == 0);
        }
        if (!ok) {
            werk_log(WERK_LOG_WARN, "%s: %s has no place in the HF tokenizer files; dropped", gp, k);
        }
    }
    return WERK_OK;
}

/* Whether the import rule for added_tokens_decoder (CONTROL if special or looks special,
 * else USER_DEFINED with U+2581 -> ' ', score -1000) gives token i back unchanged. */
static bool decoder_roundtrips(const tok_export *x, int64_t i, bool with_scores) {
    if (with_scores && (!x->scores || x->scores[i] != -1000.0f)) {
        return false;
    }
    const char *t = x->tokens[i].data;
    if (x->types[i] == WERK_TOKEN_CONTROL) {
        return true;
    }
    return x->types[i] == WERK_TOKEN_USER_DEFINED && !looks_special(t) && !strstr(t, SPM_SPACE);
}

/* HF token forms, the added_tokens_decoder set, and for gpt2 the trailing [PADi] cut. */
static werk_status export_prepare(tok_export *x, bool spm, werk_err *err) {
    x->hf_text    = werk_arena_alloc(&x->arena, (size_t)x->n * sizeof(char *));
    x->hf_len     = werk_arena_alloc(&x->arena, (size_t)x->n * sizeof(uint64_t));
    x->in_decoder = werk_arena_alloc(&x->arena, (size_t)x->n);
    if (!x->hf_text || !x->hf_len || !x->in_decoder) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer export: out of memory");
    }
    for (int64_t i = 0; i < x->n; i++) {
        x->hf_text[i]    = x->tokens[i].data;
        x->hf_len[i]     = x->tokens[i].len;
        x->in_decoder[i] = decoder_roundtrips(x, i, spm);
        if (spm && x->types[i] == WERK_TOKEN_USER_DEFINED && x->in_decoder[i] && strchr(x->hf_text[i], ' ')) {
            char *t = str_replace_all(&x->arena, x->hf_text[i], " ", SPM_SPACE, &x->hf_len[i]);
            if (!t) {
                return WERK_FAIL(err, WERK_E_OOM, "tokenizer export: out of memory");
            }
            x->hf_text[i] = t;
        }
    }
    x->n_hf = x->n;
    if (!spm) {
        while (x->n_hf > 1 && x->types[x->n_hf - 1] == WERK_TOKEN_UNUSED) {
            char buf[32];
            snprintf(buf, sizeof(buf), "[PAD%" PRId64 "]", x->n_hf - 1);
            if (strcmp(x->hf_text[x->n_hf - 1], buf) != 0) {
                break;
            }
            x->n_hf--;
        }
    }
    // The HF vocab is a JSON object: its keys must be unique.
    strmap      map = {0};
    werk_status s   = strmap_init(&map, x->hf_text, x->hf_len, x->n_hf, err);
    if (s) {
        return s;
    }
    for (int64_t i = 0; i < x->n_hf && s == WERK_OK; i++) {
        int64_t j = strmap_find(&map, x->hf_text[i], x->hf_len[i]);
        if (j != i) {
            s = WERK_FAIL(err, WERK_E_UNSUPPORTED,
                          "tokenizer export: tokens %" PRId64 " and %" PRId64
                          " are both '%.60s'; an HF vocab needs unique tokens",
                          j, i, x->hf_text[i]);
        }
    }
    strmap_free(&map);
    return s;
}

// ---- export: JSON builders ------------------------------------------------------------------------

/* cJSON allocation failures surface as NULL items; one check at the end catches them all
 * (cJSON_Add* on a NULL parent is a no-op returning NULL). */
typedef struct jb {
    bool oom;
} jb;

static cJSON *jadd(jb *b, cJSON *parent, const char *key, cJSON *item) {
    if (!item) {
        b->oom = true;
        return NULL;
    }
    if (!parent) {
        cJSON_Delete(item);
        b->oom = true;
        return NULL;
    }
    if (key) {
        if (!cJSON_AddItemToObject(parent, key, item)) {
            cJSON_Delete(item);
            b->oom = true;
            return NULL;
        }
    } else if (!cJSON_AddItemToArray(parent, item)) {
        cJSON_Delete(item);
        b->oom = true;
        return NULL;
    }
    return item;
}

static cJSON *jobj(jb *b, cJSON *parent, const char *key) {
    return jadd(b, parent, key, cJSON_CreateObject());
}
static cJSON *jarr(jb *b, cJSON *parent, const char *key) {
    return jadd(b, parent, key, cJSON_CreateArray());
}
static void jset_str(jb *b, cJSON *parent, const char *key, const char *v) {
    jadd(b, parent, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}
static void jset_num(jb *b, cJSON *parent, const char *key, double v) {
    jadd(b, parent, key, cJSON_CreateNumber(v));
}
static void jset_bool(jb *b, cJSON *parent, const char *key, bool v) {
    jadd(b, parent, key, cJSON_CreateBool(v));
}
static void jset_null(jb *b, cJSON *parent, const char *key) { jadd(b, parent, key, cJSON_CreateNull()); }

static cJSON *
byte_level(jb *b, cJSON *parent, const char *key, bool add_prefix_space, bool trim_offsets, bool use_regex) {
    cJSON *o = jobj(b, parent, key);
    jset_str(b, o, "type", "ByteLevel");
    jset_bool(b, o, "add_prefix_space", add_prefix_space);
    jset_bool(b, o, "trim_offsets", trim_offsets);
    jset_bool(b, o, "use_regex", use_regex);
    return o;
}

static void added_tokens(jb *b, cJSON *root, const tok_export *x, bool spm) {
    cJSON *arr = jarr(b, root, "added_tokens");
    for (int64_t i = 0; i < x->n_hf; i++) {
        int32_t t = x->types[i];
        if (t != WERK_TOKEN_CONTROL && t != WERK_TOKEN_USER_DEFINED && !(spm && t == WERK_TOKEN_UNKNOWN)) {
            continue;
        }
        if (!spm && t == WERK_TOKEN_USER_DEFINED && !x->in_decoder[i]) {
            continue;
        }
        bool   special = t != WERK_TOKEN_USER_DEFINED;
        cJSON *o       = jobj(b, arr, NULL);
        jset_num(b, o, "id", (double)i);
        jset_str(b, o, "content", x->hf_text[i]);
        jset_bool(b, o, "single_word", false);
        jset_bool(b, o, "lstrip", false);
        jset_bool(b, o, "rstrip", false);
        jset_bool(b, o, "normalized", spm && !special);
        jset_bool(b, o, "special", special);
    }
}

static void special_item(jb *b, cJSON *arr, const char *tok, int type_id) {
    cJSON *o = jobj(b, jobj(b, arr, NULL), "SpecialToken");
    jset_str(b, o, "id", tok);
    jset_num(b, o, "type_id", type_id);
}

static void sequence_item(jb *b, cJSON *arr, const char *id, int type_id) {
    cJSON *o = jobj(b, jobj(b, arr, NULL), "Sequence");
    jset_str(b, o, "id", id);
    jset_num(b, o, "type_id", type_id);
}

/* TemplateProcessing adding bos/eos as the GGUF flags say. The pair template has no
 * separator between A and B, so re-import derives no add_sep_token from it (the
 * tokenizer_config.json flag carries that). NULL when nothing is added. */
static cJSON *template_processing(jb *b, const tok_export *x) {
    int64_t bos = x->sp_add[SP_BOS] == 1 ? x->sp_id[SP_BOS] : -1;
    int64_t eos = x->sp_add[SP_EOS] == 1 ? x->sp_id[SP_EOS] : -1;
    if (bos < 0 && eos < 0) {
        return NULL;
    }
    cJSON *o = cJSON_CreateObject();
    if (!o) {
        b->oom = true;
        return NULL;
    }
    jset_str(b, o, "type", "TemplateProcessing");
    cJSON *single = jarr(b, o, "single"), *pair = jarr(b, o, "pair");
    if (bos >= 0) {
        special_item(b, single, x->hf_text[bos], 0);
        special_item(b, pair, x->hf_text[bos], 0);
    }
    sequence_item(b, single, "A", 0);
    sequence_item(b, pair, "A", 0);
    sequence_item(b, pair, "B", 1);
    if (eos >= 0) {
        special_item(b, single, x->hf_text[eos], 0);
        special_item(b, pair, x->hf_text[eos], 1);
    }
    cJSON  *st     = jobj(b, o, "special_tokens");
    int64_t ids[2] = {bos, eos};
    for (int k = 0; k < 2; k++) {
        if (ids[k] < 0 || (k == 1 && ids[1] == ids[0])) {
            continue;
        }
        const char *t = x->hf_text[ids[k]];
        cJSON      *e = jobj(b, st, t);
        jset_str(b, e, "id", t);
        jadd(b, jarr(b, e, "ids"), NULL, cJSON_CreateNumber((double)ids[k]));
        jadd(b, jarr(b, e, "tokens"), NULL, cJSON_CreateString(t));
    }
    return o;
}

/* The unknown token: tokenizer.ggml.unknown_token_id, else the first UNKNOWN token. */
static int64_t export_unk(const tok_export *x) {
    for (int64_t i = 0; x->sp_id[SP_UNK] < 0 && i < x->n; i++) {
        if (x->types[i] == WERK_TOKEN_UNKNOWN) {
            return i;
        }
    }
    return x->sp_id[SP_UNK];
}

static cJSON *bpe_model(jb *b, cJSON *root, const tok_export *x, bool spm) {
    cJSON *m = jobj(b, root, "model");
    jset_str(b, m, "type", "BPE");
    jset_null(b, m, "dropout");
    int64_t unk = export_unk(x);
    jset_str(b, m, "unk_token", spm && unk >= 0 ? x->hf_text[unk] : NULL);
    jset_null(b, m, "continuing_subword_prefix");
    jset_null(b, m, "end_of_word_suffix");
    jset_bool(b, m, "fuse_unk", spm);
    bool byte_fallback = false;
    for (int64_t i = 0; spm && i < x->n && !byte_fallback; i++) {
        byte_fallback = x->types[i] == WERK_TOKEN_BYTE;
    }
    jset_bool(b, m, "byte_fallback", byte_fallback);
    jset_bool(b, m, "ignore_merges", !spm && str_eq(x->pre, "llama-bpe"));
    cJSON *vocab = jobj(b, m, "vocab");
    for (int64_t i = 0; i < x->n_hf && vocab; i++) {
        jset_num(b, vocab, x->hf_text[i], (double)i);
    }
    return m;
}

/* gpt2: merges verbatim ("a b"), or as [a, b] pairs when some merge is not exactly
 * "a b" with one space (split at the first space after position 0, as llama.cpp). */
static void gpt2_merges(jb *b, cJSON *model, const tok_export *x) {
    bool pairs = false;
    for (int64_t i = 0; i < x->n_merges && !pairs; i++) {
        const char *s = x->merges[i].data;
        const char *p = x->merges[i].len > 1 ? strchr(s + 1, ' ') : NULL;
        pairs         = !p || strchr(p + 1, ' ') || memchr(s, 0, x->merges[i].len) || s[0] == ' ';
    }
    cJSON *arr = jarr(b, model, "merges");
    for (int64_t i = 0; i < x->n_merges && arr; i++) {
        const char *s = x->merges[i].data;
        if (!pairs) {
            jadd(b, arr, NULL, cJSON_CreateString(s));
            continue;
        }
        const char *p    = x->merges[i].len > 1 ? strchr(s + 1, ' ') : NULL;
        size_t      la   = p ? (size_t)(p - s) : strlen(s);
        cJSON      *pair = jarr(b, arr, NULL);
        char       *a    = strndup(s, la);
        if (!a) {
            b->oom = true;
            return;
        }
        jadd(b, pair, NULL, cJSON_CreateString(a));
        jadd(b, pair, NULL, cJSON_CreateString(p ? p + 1 : ""));
        free(a);
    }
}

typedef struct spm_merge {
    int32_t l, r, piece;
    int32_t l_cp, r_cp; // code point lengths
    float   score;
    int64_t order; // position before the final sort (stability)
} spm_merge;

static int cmp_local(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->l != b->l) {
        return a->l < b->l ? -1 : 1;
    }
    return (a->r > b->r) - (a->r < b->r);
}

static int cmp_global(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) {
        return a->score > b->score ? -1 : 1;
    }
    if (a->l_cp != b->l_cp) {
        return a->l_cp > b->l_cp ? -1 : 1;
    }
    if (a->r_cp != b->r_cp) {
        return a->r_cp > b->r_cp ? -1 : 1;
    }
    return (a->order > b->order) - (a->order < b->order);
}

/* transformers' SentencePieceExtractor merges (see the header comment). */
static werk_status spm_merges(jb *b, cJSON *model, const tok_export *x, werk_err *err) {
    strmap      map = {0};
    werk_status s   = strmap_init(&map, x->hf_text, x->hf_len, x->n, err);
    if (s) {
        return s;
    }
    size_t     cap = 1024, n = 0;
    spm_merge *m = malloc(cap * sizeof(*m));
    if (!m) {
        strmap_free(&map);
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer export: out of memory");
    }
    // Bounds for hostile vocabs: pieces longer than SPM_MERGE_MAX_PIECE bytes get no merges
    // (real SentencePiece pieces are a few dozen bytes; long user-defined tokens are added
    // tokens, matched before BPE), and the merge count is capped, so time and memory stay
    // linear in the vocab's size.
    size_t  max_merges = (size_t)x->n * 16 + ((size_t)1 << 20);
    int64_t n_long     = 0;
    for (int64_t i = 0; i < x->n; i++) {
        const char *t     = x->hf_text[i];
        uint64_t    len   = x->hf_len[i];
        size_t      first = n;
        // A NaN score sorts last (a total order keeps qsort well-defined).
        float score = x->scores ? x->scores[i] : 0.0f;
        if (isnan(score)) {
            score = -INFINITY;
        }
        if (len > SPM_MERGE_MAX_PIECE) {
            n_long++;
            continue;
        }
        uint64_t h = 1469598103934665603ull; // fnv1a of the prefix t[0..k)
        for (uint64_t k = 1; k < len; k++) {
            h = (h ^ (unsigned char)t[k - 1]) * 1099511628211ull;
            if (((unsigned char)t[k] & 0xC0) == 0x80) {
                continue; // not a code point boundary
            }
            int64_t l = strmap_find_h(&map, h, t, k), r = l >= 0 ? strmap_find(&map, t + k, len - k) : -1;
            if (r < 0) {
                continue;
            }
            if (n == max_merges) {
                free(m);
                strmap_free(&map);
                return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                                 "tokenizer export: the vocab yields more than %zu merges (%" PRId64
                                 " tokens); "
                                 "not a SentencePiece vocab werk can convert",
                                 max_merges, x->n);
            }
            if (n == cap) {
                cap *= 2;
                spm_merge *nm = realloc(m, cap * sizeof(*m));
                if (!nm) {
                    free(m);
                    strmap_free(&map);
                    return WERK_FAIL(err, WERK_E_OOM, "tokenizer export: out of memory for merges");
                }
                m = nm;
            }
            m[n++] = (spm_merge){(int32_t)l,
                                 (int32_t)r,
                                 (int32_t)i,
                                 (int32_t)utf8_count(t, k),
                                 (int32_t)utf8_count(t + k, len - k),
                                 score,
                                 0};
        }
        if (n - first > 1) {
            qsort(m + first, n - first, sizeof(*m), cmp_local);
        }
    }
    if (n_long > 0) {
        werk_log(WERK_LOG_INFO, "tokenizer export: %" PRId64 " tokens longer than %d bytes get no merges",
                 n_long, SPM_MERGE_MAX_PIECE);
    }
    for (size_t k = 0; k < n; k++) {
        m[k].order = (int64_t)k;
    }
    qsort(m, n, sizeof(*m), cmp_global);
    cJSON *arr = jarr(b, model, "merges");
    for (size_t k = 0; k < n && arr && !b->oom; k++) {
        cJSON *pair = jarr(b, arr, NULL);
        jadd(b, pair, NULL, cJSON_CreateString(x->hf_text[m[k].l]));
        jadd(b, pair, NULL, cJSON_CreateString(x->hf_text[m[k].r]));
    }
    free(m);
    strmap_free(&map);
    return WERK_OK;
}

static cJSON *replace_item(jb *b, cJSON *arr, const char *from, const char *to) {
    cJSON *o = jobj(b, arr, NULL);
    jset_str(b, o, "type", "Replace");
    jset_str(b, jobj(b, o, "pattern"), "String", from);
    jset_str(b, o, "content", to);
    return o;
}

static werk_status build_tokenizer_json(const tok_export *x, bool spm, char **out, werk_err *err) {
    jb     b    = {false};
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer.json: out of memory");
    }
    jset_str(&b, root, "version", "1.0");
    jset_null(&b, root, "truncation");
    jset_null(&b, root, "padding");
    added_tokens(&b, root, x, spm);
    werk_status s = WERK_OK;
    if (spm) {
        bool   prefix = x->add_space_prefix != 0; // llama.cpp's default for SPM: true
        cJSON *norm   = jobj(&b, root, "normalizer");
        jset_str(&b, norm, "type", "Sequence");
        cJSON *list = jarr(&b, norm, "normalizers");
        if (prefix) {
            cJSON *p = jobj(&b, list, NULL);
            jset_str(&b, p, "type", "Prepend");
            jset_str(&b, p, "prepend", SPM_SPACE);
        }
        replace_item(&b, list, " ", SPM_SPACE);
        jset_null(&b, root, "pre_tokenizer");
        cJSON *tp = template_processing(&b, x);
        jadd(&b, root, "post_processor", tp ? tp : cJSON_CreateNull());
        cJSON *dec = jobj(&b, root, "decoder");
        jset_str(&b, dec, "type", "Sequence");
        cJSON *dl = jarr(&b, dec, "decoders");
        replace_item(&b, dl, SPM_SPACE, " ");
        jset_str(&b, jobj(&b, dl, NULL), "type", "ByteFallback");
        jset_str(&b, jobj(&b, dl, NULL), "type", "Fuse");
        if (prefix) {
            cJSON *st = jobj(&b, dl, NULL);
            jset_str(&b, st, "type", "Strip");
            jset_str(&b, st, "content", " ");
            jset_num(&b, st, "start", 1);
            jset_num(&b, st, "stop", 0);
        }
        cJSON *model = bpe_model(&b, root, x, true);
        s            = spm_merges(&b, model, x, err);
    } else {
        const char *pre = x->pre ? x->pre : "gpt-2";
        if (!x->pre) {
            werk_log(WERK_LOG_WARN, "tokenizer.json: no tokenizer.ggml.pre; writing the gpt-2 pre-tokenizer");
        }
        bool qwen2 = strcmp(pre, "qwen2") == 0, llama3 = strcmp(pre, "llama-bpe") == 0;
        if (qwen2) {
            jset_str(&b, jobj(&b, root, "normalizer"), "type", "NFC");
        } else {
            jset_null(&b, root, "normalizer");
        }
        if (strcmp(pre, "gpt-2") == 0) {
            byte_level(&b, root, "pre_tokenizer", false, true, true);
        } else if (strcmp(pre, "smollm") == 0) {
            cJSON *pt = jobj(&b, root, "pre_tokenizer");
            jset_str(&b, pt, "type", "Sequence");
            cJSON *list = jarr(&b, pt, "pretokenizers");
            cJSON *dg   = jobj(&b, list, NULL);
            jset_str(&b, dg, "type", "Digits");
            jset_bool(&b, dg, "individual_digits", true);
            byte_level(&b, list, NULL, false, true, true);
        } else if (qwen2 || llama3) {
            cJSON *pt = jobj(&b, root, "pre_tokenizer");
            jset_str(&b, pt, "type", "Sequence");
            cJSON *list = jarr(&b, pt, "pretokenizers");
            cJSON *sp   = jobj(&b, list, NULL);
            jset_str(&b, sp, "type", "Split");
            jset_str(&b, jobj(&b, sp, "pattern"), "Regex", llama3 ? LLAMA3_REGEX : QWEN2_REGEX);
            jset_str(&b, sp, "behavior", "Isolated");
            jset_bool(&b, sp, "invert", false);
            byte_level(&b, list, NULL, false, llama3, false);
        } else {
            cJSON_Delete(root);
            return WERK_FAIL(
                err, WERK_E_UNSUPPORTED,
                "tokenizer.json: byte-level pre-tokenizer '%.60s' is not one werk can write (gpt-2, "
                "llama-bpe, qwen2, smollm)",
                pre);
        }
        cJSON *tp = template_processing(&b, x);
        if (tp) {
            cJSON *pp = jobj(&b, root, "post_processor");
            jset_str(&b, pp, "type", "Sequence");
            cJSON *list = jarr(&b, pp, "processors");
            byte_level(&b, list, NULL, true, false, true);
            jadd(&b, list, NULL, tp);
        } else {
            byte_level(&b, root, "post_processor", true, false, true);
        }
        byte_level(&b, root, "decoder", true, true, true);
        cJSON *model = bpe_model(&b, root, x, false);
        gpt2_merges(&b, model, x);
    }
    if (s == WERK_OK && !b.oom) {
        *out = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    if (s) {
        return s;
    }
    if (b.oom || !*out) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer.json: out of memory building the JSON");
    }
    return WERK_OK;
}

static werk_status build_tokenizer_config(const tok_export *x, bool spm, char **out, werk_err *err) {
    jb     b    = {false};
    cJSON *root = cJSON_CreateObject();
    if (!root) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer_config.json: out of memory");
    }
    for (int t = 0; t < SP_COUNT; t++) {
        if (add_key[t] && x->sp_add[t] >= 0) {
            char key[32];
            snprintf(key, sizeof(key), "add_%s_token", sp_name[t]);
            jset_bool(&b, root, key, x->sp_add[t] == 1);
        }
    }
    // llama reads add_prefix_space back (LlamaModel); gemma3's importer rule restores it.
    if (x->add_space_prefix >= 0 && !(spm && str_eq(x->arch, "gemma3"))) {
        jset_bool(&b, root, "add_prefix_space", x->add_space_prefix == 1);
    }
    cJSON *dec = jobj(&b, root, "added_tokens_decoder");
    for (int64_t i = 0; i < x->n_hf && dec; i++) {
        if (!x->in_decoder[i]) {
            continue;
        }
        char key[24];
        snprintf(key, sizeof(key), "%" PRId64, i);
        bool   special = x->types[i] == WERK_TOKEN_CONTROL;
        cJSON *o       = jobj(&b, dec, key);
        jset_str(&b, o, "content", x->hf_text[i]);
        jset_bool(&b, o, "lstrip", false);
        jset_bool(&b, o, "normalized", spm && !special);
        jset_bool(&b, o, "rstrip", false);
        jset_bool(&b, o, "single_word", false);
        jset_bool(&b, o, "special", special);
    }
    for (int t = 0; t < SP_COUNT; t++) {
        if (x->sp_id[t] >= 0) {
            char key[32];
            snprintf(key, sizeof(key), "%s_token", sp_name[t]);
            jset_str(&b, root, key, x->hf_text[x->sp_id[t]]);
        }
    }
    if (x->n_named > 0) {
        cJSON *list = jarr(&b, root, "chat_template");
        if (x->chat_template) {
            cJSON *o = jobj(&b, list, NULL);
            jset_str(&b, o, "name", "default");
            jset_str(&b, o, "template", x->chat_template);
        }
        for (int64_t i = 0; i < x->n_named; i++) {
            if (!x->named_tmpl[i]) {
                continue;
            }
            cJSON *o = jobj(&b, list, NULL);
            jset_str(&b, o, "name", x->named[i].data);
            jset_str(&b, o, "template", x->named_tmpl[i]);
        }
    } else if (x->chat_template) {
        jset_str(&b, root, "chat_template", x->chat_template);
    }
    jset_bool(&b, root, "clean_up_tokenization_spaces", false);
    if (x->ctx_len > 0) {
        jset_num(&b, root, "model_max_length", (double)x->ctx_len);
    }
    // The generic class for every vocab: transformers then runs tokenizer.json as written.
    // Class-specific tokenizers (LlamaTokenizer, GemmaTokenizer in transformers 5) rebuild
    // the pipeline from vocab + merges with their own Metaspace settings, which treat leading
    // spaces differently from SentencePiece and llama.cpp (" Hello" loses its extra "▁").
    jset_str(&b, root, "tokenizer_class", "PreTrainedTokenizerFast");
    if (!b.oom) {
        *out = cJSON_PrintUnformatted(root);
    }
    cJSON_Delete(root);
    if (b.oom || !*out) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer_config.json: out of memory building the JSON");
    }
    return WERK_OK;
}

// ---- export: tokenizer.model ----------------------------------------------------------------------

static werk_status build_spm_model(const tok_export *x, uint8_t **out, size_t *size, werk_err *err) {
    werk_spm_model m;
    werk_spm_model_init(&m);
    m.n_pieces = x->n;
    m.pieces   = x->hf_text;
    m.lens     = x->hf_len;
    m.types    = malloc((size_t)x->n * sizeof(int32_t));
    m.scores   = malloc((size_t)x->n * sizeof(float));
    if (!m.types || !m.scores) {
        free(m.types);
        free(m.scores);
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer.model: out of memory");
    }
    bool have_unk = false;
    for (int64_t i = 0; i < x->n; i++) {
        m.types[i]  = x->types[i];
        m.scores[i] = x->scores ? x->scores[i] : 0.0f;
        have_unk |= x->types[i] == WERK_TOKEN_UNKNOWN;
        m.byte_fallback |= x->types[i] == WERK_TOKEN_BYTE;
    }
    // SentencePiece needs an UNKNOWN piece; llama.cpp turns <unk> into CONTROL when the
    // added_tokens_decoder lists it, and the decoder entry turns it back on re-import.
    int64_t unk = export_unk(x);
    if (!have_unk && unk >= 0 && x->types[unk] == WERK_TOKEN_CONTROL && x->in_decoder[unk]) {
        m.types[unk] = WERK_TOKEN_UNKNOWN;
    }
    m.model_type                   = WERK_SPM_BPE;
    m.allow_whitespace_only_pieces = true;
    m.unk_id                       = (int32_t)unk;
    m.bos_id                       = (int32_t)x->sp_id[SP_BOS];
    m.eos_id                       = (int32_t)x->sp_id[SP_EOS];
    m.pad_id                       = (int32_t)x->sp_id[SP_PAD];
    m.normalizer_name              = "identity";
    m.add_dummy_prefix             = x->add_space_prefix != 0;
    m.remove_extra_whitespaces     = false;
    m.escape_whitespaces           = true;
    werk_status s                  = werk_spm_model_encode(&m, out, size, err);
    free(m.types);
    free(m.scores);
    return s;
}

// ---- export: entry point ------------------------------------------------------------------------

werk_status werk_hf_tokenizer_export(const werk_gguf *g, const char *dir, bool *written, werk_err *err) {
    tok_export x;
    memset(&x, 0, sizeof(x));
    werk_arena_init(&x.arena);
    *written         = false;
    char       *json = NULL, *config = NULL;
    uint8_t    *model      = NULL;
    size_t      model_size = 0;
    werk_status s          = export_read(g, &x, err);
    if (s || x.n == 0) {
        export_free(&x);
        return s;
    }
    bool spm = strcmp(x.model, "llama") == 0;
    if (!spm && strcmp(x.model, "gpt2") != 0) {
        export_free(&x);
        return WERK_FAIL(
            err, WERK_E_UNSUPPORTED,
            "%s: tokenizer model '%.40s' cannot be exported to HF files (werk writes gpt2 and llama)",
            gguf_name(g), x.model);
    }
    if (!spm && x.n_merges == 0) {
        werk_log(WERK_LOG_WARN, "%s: gpt2 vocab without tokenizer.ggml.merges", gguf_name(g));
    }
    if (!spm) {
        for (int64_t i = 0; i < x.n; i++) {
            int32_t t = x.types[i];
            if (t == WERK_TOKEN_UNKNOWN || t == WERK_TOKEN_BYTE ||
                (t == WERK_TOKEN_USER_DEFINED && !decoder_roundtrips(&x, i, false))) {
                werk_log(WERK_LOG_WARN, "%s: token %" PRId64 " '%.40s' (type %d) becomes a plain vocab entry",
                         gguf_name(g), i, x.tokens[i].data, (int)t);
            }
        }
    }
    char path[4096];
    if ((s = export_prepare(&x, spm, err)) || (s = build_tokenizer_json(&x, spm, &json, err)) ||
        (s = build_tokenizer_config(&x, spm, &config, err)) ||
        (spm && (s = build_spm_model(&x, &model, &model_size, err))) || (s = werk_mkdir_p(dir, err))) {
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tokenizer.json", dir);
    if ((s = werk_write_file_atomic(path, json, strlen(json), err))) {
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    if ((s = werk_write_file_atomic(path, config, strlen(config), err))) {
        goto done;
    }
    snprintf(path, sizeof(path), "%s/tokenizer.model", dir);
    if (spm) {
        if ((s = werk_write_file_atomic(path, model, model_size, err))) {
            goto done;
        }
    } else if (unlink(path) == 0) {
        // A SentencePiece model left by an earlier export would not match this vocab.
        werk_log(WERK_LOG_INFO, "%s: removed the stale tokenizer.model", dir);
    }
    *written = true;
done:
    free(json);
    free(config);
    free(model);
    export_free(&x);
    return s;
}
