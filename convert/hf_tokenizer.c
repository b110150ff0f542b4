/* convert/hf_tokenizer.c - HF tokenizer files -> GGUF tokenizer.ggml.* keys (import)
 *
 * Owns the vocabulary half of the HF importer (the weights half is hf_import.c; the
 * exporter is hf_tokenizer_export.c / hf_export.c). Files read (and, by the exporter,
 * written), all in one HF model folder:
 *   tokenizer.json         HF `tokenizers` serialization: model (BPE vocab + merges),
 *                          added_tokens, normalizer, pre_tokenizer, post_processor, decoder
 *   tokenizer.model        SentencePiece ModelProto (spm_model.c)
 *   tokenizer_config.json  transformers: bos/eos/unk/sep/pad/mask tokens, add_*_token flags,
 *                          added_tokens_decoder, chat_template, add_prefix_space
 *   added_tokens.json, chat_template.jinja, chat_template.json, config.json (vocab_size):
 *                          read only, as llama.cpp's convert_hf_to_gguf.py does
 * GGUF keys (llama.cpp's names): tokenizer.ggml.{model, pre, tokens, scores, token_type,
 * merges, bos/eos/unknown/seperator/padding/mask_token_id, add_bos/add_eos/add_sep_token,
 * add_space_prefix}, tokenizer.chat_template (+ .NAME and tokenizer.chat_templates).
 *
 * Import follows convert_hf_to_gguf.py (facts, not code, taken from it):
 *   - tokenizer.json with a byte-level BPE (no byte_fallback) -> model "gpt2" (get_vocab_base):
 *     vocab + added_tokens in id order; ids must be dense 0..n-1 (a hole is an error);
 *     added tokens that are special or look special (does_token_look_special) -> CONTROL,
 *     other added tokens -> USER_DEFINED with U+2581 turned into ' ', the rest NORMAL;
 *     merges as "a b" strings (the [a, b] pair form is joined with ' ', spaces inside a
 *     part written as U+0120 as gguf-py does).
 *   - else tokenizer.model when present -> model "llama", pre "default"
 *     (_create_vocab_sentencepiece): pieces, scores and types exactly as stored; then
 *     added_tokens.json entries -> USER_DEFINED, tokenizer_config.json added_tokens_decoder
 *     entries -> CONTROL (special or looks special) / USER_DEFINED (U+2581 -> ' '), both with
 *     score -1000. Only BPE SentencePiece models are accepted.
 *   - else tokenizer.json BPE with byte_fallback (a SentencePiece vocab converted by
 *     transformers, no tokenizer.model) -> model "llama", pre "default", types as above plus
 *     BYTE for "<0xHH>" and UNKNOWN for model.unk_token. The scores are derived, since the
 *     JSON has none (llama.cpp's LlamaHfVocab gives every token -1000, which loses the merge
 *     order its SPM tokenizer needs). Rule: walk the merges in rank order; the k-th distinct
 *     token produced by a merge (a+b) gets score -k (so the first merge result scores 0 and
 *     llama.cpp's "highest score merges first" equals HF's "lowest rank merges first");
 *     NORMAL tokens no merge produces get -(K+1) with K the number of distinct merge
 *     results; BYTE and UNKNOWN tokens 0; added tokens -1000.
 *   - any other model type (Unigram, WordPiece, WordLevel) -> WERK_E_UNSUPPORTED naming it.
 *   - tokenizer.ggml.pre: llama.cpp hashes a tokenization of a probe text; werk has no
 *     tokenizer here, so it reads the pre_tokenizer JSON structure instead:
 *       ByteLevel (use_regex true)                           -> "gpt-2"
 *       Sequence[Digits(individual_digits), ByteLevel(regex)] -> "smollm"
 *       Sequence[Split(Regex R, Isolated), ByteLevel(no regex)] with R the Llama 3 regex
 *         ("\p{N}{1,3}") -> "llama-bpe", with R the Qwen2 regex ("\p{N}") -> "qwen2".
 *     Names llama.cpp gives to the same pre-tokenizer under other hashes (starcoder/refact
 *     = smollm's regex; dbrx/smaug-bpe = llama-bpe's) tokenize identically there. Anything
 *     else is WERK_E_UNSUPPORTED with the structure in the message.
 *   - special tokens (gguf-py SpecialVocab): tokenizer_config.json *_token (string or
 *     {"content": ...}) looked up in tokenizer.json added_tokens, then in the vocab;
 *     add_*_token flags from the TemplateProcessing/RobertaProcessing post-processor, then
 *     tokenizer_config.json (which wins); chat_template from tokenizer_config.json (a
 *     string, or a list of {name, template}: "default" -> tokenizer.chat_template, the others
 *     -> tokenizer.chat_template.NAME + tokenizer.chat_templates), else chat_template.jinja,
 *     else chat_template.json. bos/eos/pad from config.json are hf_config.c's job.
 *   - architecture rules of convert_hf_to_gguf.py: llama: tokenizer_config add_prefix_space
 *     -> add_space_prefix, and a 49152-token vocab gets add_bos_token false (granite small /
 *     SmolLM); gemma3 with tokenizer.model: add_space_prefix false. A vocab shorter than
 *     config.json vocab_size is padded with "[PADi]" UNUSED tokens (score -10000 for SPM),
 *     at most doubling it, except for gemma3 (hf_import.c cuts token_embd instead).
 *
 * The export direction (GGUF keys -> tokenizer.json, tokenizer.model, tokenizer_config.json)
 * is hf_tokenizer_export.c; what both share is in hf_tokenizer_int.h.
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

#define GPT2_SPACE "\xc4\xa0" // U+0120, byte-level BPE's space

// ---- small helpers --------------------------------------------------------------------

static bool file_exists(const char *dir, const char *name, char *path, size_t size) {
    snprintf(path, size, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static const cJSON *jget(const cJSON *obj, const char *key) {
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

static const char *jstr(const cJSON *obj, const char *key) {
    const cJSON *v = jget(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* -1 missing or not a bool, else 0/1. */
static int jbool(const cJSON *obj, const char *key) {
    const cJSON *v = jget(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

// ---- the vocabulary being imported -------------------------------------------------------

typedef struct tok_vocab {
    int64_t      n;
    const char **text; // borrowed from a cJSON tree / spm model, or in arena
    uint64_t    *len;
    int32_t     *types;
    float       *scores; // NULL for gpt2
    int64_t      n_merges;
    const char **merges;
    uint64_t    *merge_len;
    const char  *model; // "gpt2" | "llama"
    const char  *pre;
    // special tokens and flags
    int64_t sp_id[SP_COUNT];  // -1 unset
    int     sp_add[SP_COUNT]; // -1 unset
    int     add_space_prefix; // -1 unset
    // chat templates
    const char  *chat_template;
    int64_t      n_named;
    const char **named_names;
    const char **named_templates;
    werk_arena   arena;
} tok_vocab;

static void vocab_init(tok_vocab *v) {
    memset(v, 0, sizeof(*v));
    for (int i = 0; i < SP_COUNT; i++) {
        v->sp_id[i]  = -1;
        v->sp_add[i] = -1;
    }
    v->add_space_prefix = -1;
    werk_arena_init(&v->arena);
}

static void vocab_free(tok_vocab *v) { werk_arena_free(&v->arena); }

static void *varr(tok_vocab *v, uint64_t n, size_t size) {
    uint64_t bytes;
    if (!werk_mul_u64(n ? n : 1, size, &bytes) || bytes > SIZE_MAX / 2) {
        return NULL;
    }
    return werk_arena_alloc(&v->arena, (size_t)bytes);
}

static werk_status vocab_alloc(tok_vocab *v, int64_t n, bool scores, const char *what, werk_err *err) {
    v->n     = n;
    v->text  = varr(v, (uint64_t)n, sizeof(*v->text));
    v->len   = varr(v, (uint64_t)n, sizeof(*v->len));
    v->types = varr(v, (uint64_t)n, sizeof(*v->types));
    if (scores) {
        v->scores = varr(v, (uint64_t)n, sizeof(*v->scores));
    }
    if (!v->text || !v->len || !v->types || (scores && !v->scores)) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory for %" PRId64 " tokens", what, n);
    }
    return WERK_OK;
}

/* Token id for a JSON number: an integer in [0, limit). */
static bool json_id(const cJSON *v, int64_t limit, int64_t *out) {
    if (!cJSON_IsNumber(v)) {
        return false;
    }
    double d = v->valuedouble;
    if (!(d >= 0) || d >= (double)limit || d != floor(d)) {
        return false;
    }
    *out = (int64_t)d;
    return true;
}

/* Grows the vocab to config.json's vocab_size with "[PADi]" UNUSED tokens, as
 * convert_hf_to_gguf.py does (get_vocab_base, _create_vocab_sentencepiece). */
static werk_status vocab_pad(tok_vocab *v, int64_t vocab_size, const char *what, werk_err *err) {
    if (vocab_size <= v->n) {
        return WERK_OK;
    }
    if (vocab_size > 2 * v->n) {
        werk_log(WERK_LOG_WARN,
                 "%s: config.json vocab_size %" PRId64 " is more than twice the %" PRId64
                 " tokens; not padding",
                 what, vocab_size, v->n);
        return WERK_OK;
    }
    tok_vocab old = *v;
    if (vocab_alloc(v, vocab_size, old.scores != NULL, what, err)) {
        return WERK_E_OOM;
    }
    memcpy(v->text, old.text, (size_t)old.n * sizeof(*v->text));
    memcpy(v->len, old.len, (size_t)old.n * sizeof(*v->len));
    memcpy(v->types, old.types, (size_t)old.n * sizeof(*v->types));
    if (old.scores) {
        memcpy(v->scores, old.scores, (size_t)old.n * sizeof(*v->scores));
    }
    for (int64_t i = old.n; i < vocab_size; i++) {
        char buf[32];
        int  k     = snprintf(buf, sizeof(buf), "[PAD%" PRId64 "]", i);
        v->text[i] = werk_arena_strndup(&v->arena, buf, (size_t)k);
        if (!v->text[i]) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
        }
        v->len[i]   = (uint64_t)k;
        v->types[i] = WERK_TOKEN_UNUSED;
        if (v->scores) {
            v->scores[i] = -10000.0f;
        }
    }
    werk_log(WERK_LOG_INFO,
             "%s: vocab padded from %" PRId64 " to %" PRId64 " tokens (config.json vocab_size)", what, old.n,
             vocab_size);
    return WERK_OK;
}

// ---- import: tokenizer.json ---------------------------------------------------------------

/* Describes a pre_tokenizer for messages: "Sequence[Split, ByteLevel]". */
static void describe_pre(const cJSON *pt, char *buf, size_t size) {
    const char *type = jstr(pt, "type");
    if (!pt || cJSON_IsNull(pt)) {
        snprintf(buf, size, "none");
    } else if (str_eq(type, "Sequence")) {
        size_t       k     = (size_t)snprintf(buf, size, "Sequence[");
        const cJSON *item  = NULL;
        bool         first = true;
        cJSON_ArrayForEach(item, jget(pt, "pretokenizers")) {
            const char *t = jstr(item, "type");
            if (k < size) {
                k += (size_t)snprintf(buf + k, size - k, "%s%s", first ? "" : ", ", t ? t : "?");
            }
            first = false;
        }
        if (k < size) {
            snprintf(buf + k, size - k, "]");
        }
    } else {
        snprintf(buf, size, "%s", type ? type : "?");
    }
}

/* tokenizer.ggml.pre from the pre_tokenizer structure (see the header comment). */
static werk_status detect_pre(const cJSON *root, const char *what, const char **pre, werk_err *err) {
    const cJSON *pt = jget(root, "pre_tokenizer");
    const cJSON *items[4];
    int          n = 0;
    if (str_eq(jstr(pt, "type"), "Sequence")) {
        const cJSON *item = NULL;
        cJSON_ArrayForEach(item, jget(pt, "pretokenizers")) {
            if (n == 4) {
                n = 5;
                break;
            }
            items[n++] = item;
        }
    } else if (cJSON_IsObject(pt)) {
        items[n++] = pt;
    }
    *pre = NULL;
    if (n >= 1 && n <= 2 && str_eq(jstr(items[n - 1], "type"), "ByteLevel")) {
        bool regex = jbool(items[n - 1], "use_regex") != 0; // default true
        if (n == 1 && regex) {
            *pre = "gpt-2";
        } else if (n == 2 && regex && str_eq(jstr(items[0], "type"), "Digits") &&
                   jbool(items[0], "individual_digits") == 1) {
            *pre = "smollm";
        } else if (n == 2 && !regex && str_eq(jstr(items[0], "type"), "Split") &&
                   jbool(items[0], "invert") != 1) {
            const char *re       = jstr(jget(items[0], "pattern"), "Regex");
            const char *behavior = jstr(items[0], "behavior");
            if (re && (!behavior || str_eq(behavior, "Isolated"))) {
                if (strcmp(re, LLAMA3_REGEX) == 0) {
                    *pre = "llama-bpe";
                } else if (strcmp(re, QWEN2_REGEX) == 0) {
                    *pre = "qwen2";
                }
            }
        }
    }
    if (!*pre) {
        char desc[256];
        describe_pre(pt, desc, sizeof(desc));
        const char *re = n >= 1 ? jstr(jget(items[0], "pattern"), "Regex") : NULL;
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: byte-level BPE pre-tokenizer not recognized (%s%s%.80s%s); werk knows gpt-2, "
                         "llama-bpe (Llama 3), qwen2 and smollm",
                         what, desc, re ? ", regex \"" : "", re ? re : "", re ? "\"" : "");
    }
    return WERK_OK;
}

/* "a b" for a merge given as a string or as an [a, b] pair (spaces inside a part become
 * U+0120 as in gguf-py). The string form is kept verbatim, as llama.cpp stores it. */
static werk_status merge_text(tok_vocab   *v,
                              const cJSON *m,
                              int64_t      i,
                              const char  *what,
                              const char **out,
                              uint64_t    *len,
                              werk_err    *err) {
    if (cJSON_IsString(m)) {
        *out = m->valuestring;
        *len = strlen(m->valuestring);
        return WERK_OK;
    }
    const cJSON *a = cJSON_IsArray(m) ? cJSON_GetArrayItem(m, 0) : NULL;
    const cJSON *b = cJSON_IsArray(m) ? cJSON_GetArrayItem(m, 1) : NULL;
    if (!cJSON_IsString(a) || !cJSON_IsString(b) || cJSON_GetArraySize(m) != 2) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: model.merges[%" PRId64 "] is neither \"a b\" nor [a, b]",
                         what, i);
    }
    uint64_t la, lb;
    char    *pa = str_replace_all(&v->arena, a->valuestring, " ", GPT2_SPACE, &la);
    char    *pb = pa ? str_replace_all(&v->arena, b->valuestring, " ", GPT2_SPACE, &lb) : NULL;
    char    *s  = pb ? werk_arena_alloc(&v->arena, la + lb + 2) : NULL;
    if (!s) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
    }
    memcpy(s, pa, la);
    s[la] = ' ';
    memcpy(s + la + 1, pb, lb);
    *out = s;
    *len = la + 1 + lb;
    return WERK_OK;
}

/* Scores for a SentencePiece-style vocab from the merge ranks (rule in the header). */
static werk_status derive_scores(tok_vocab *v, const cJSON *merges, const char *what, werk_err *err) {
    strmap      map = {0};
    werk_status s   = strmap_init(&map, v->text, v->len, v->n, err);
    if (s) {
        return s;
    }
    bool *seen = werk_calloc((size_t)v->n, 1);
    if (!seen) {
        strmap_free(&map);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
    }
    int64_t      k = 0, i = 0;
    const cJSON *m   = NULL;
    char        *buf = NULL;
    size_t       cap = 0;
    cJSON_ArrayForEach(m, merges) {
        // The merge result a+b, with a and b taken raw (no U+0120 rewriting).
        const char *a = NULL, *b = NULL;
        size_t      la = 0, lb = 0;
        if (cJSON_IsString(m)) {
            const char *sp = m->valuestring[0] ? strchr(m->valuestring + 1, ' ') : NULL;
            if (sp) {
                a = m->valuestring, la = (size_t)(sp - a), b = sp + 1, lb = strlen(b);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) && cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            a = cJSON_GetArrayItem(m, 0)->valuestring, b = cJSON_GetArrayItem(m, 1)->valuestring;
            la = strlen(a), lb = strlen(b);
        }
        if (!a) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: model.merges[%" PRId64 "] is neither \"a b\" nor [a, b]",
                          what, i);
            break;
        }
        if (la + lb > cap) {
            cap      = (la + lb) * 2 + 64;
            char *nb = realloc(buf, cap);
            if (!nb) {
                s = WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
                break;
            }
            buf = nb;
        }
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int64_t id = strmap_find(&map, buf, la + lb);
        if (id >= 0 && !seen[id]) {
            seen[id] = true;
            if (v->types[id] == WERK_TOKEN_NORMAL) {
                v->scores[id] = -(float)k;
            }
            k++;
        }
        i++;
    }
    if (s == WERK_OK) {
        for (int64_t t = 0; t < v->n; t++) {
            int32_t ty = v->types[t];
            if (ty == WERK_TOKEN_NORMAL && !seen[t]) {
                v->scores[t] = -(float)(k + 1);
            } else if (ty == WERK_TOKEN_CONTROL || ty == WERK_TOKEN_USER_DEFINED) {
                v->scores[t] = -1000.0f;
            } else if (ty != WERK_TOKEN_NORMAL) {
                v->scores[t] = 0.0f;
            }
        }
    }
    free(buf);
    free(seen);
    strmap_free(&map);
    return s;
}

static bool is_byte_token(const char *t, uint64_t n) {
    static const char hex[] = "0123456789ABCDEFabcdef";
    return n == 6 && t[0] == '<' && t[1] == '0' && t[2] == 'x' && t[3] && strchr(hex, t[3]) && t[4] &&
           strchr(hex, t[4]) && t[5] == '>';
}

/* tokenizer.json -> tokens, types (+ scores or merges). */
static werk_status import_json_vocab(const cJSON *root, const char *what, tok_vocab *v, werk_err *err) {
    const cJSON *model = jget(root, "model");
    if (!cJSON_IsObject(model)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no \"model\" object", what);
    }
    const cJSON *merges = jget(model, "merges");
    const char  *type   = jstr(model, "type");
    if (!type && jget(model, "type")) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: model.type is not a string", what);
    }
    if (!type) {
        if (!merges) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: model has no \"type\" (and no merges)", what);
        }
        type = "BPE";
    }
    if (strcmp(type, "BPE") != 0) {
        return WERK_FAIL(
            err, WERK_E_UNSUPPORTED,
            "%s: tokenizer model type '%.40s' is not supported (werk reads BPE tokenizers: byte-level "
            "as GPT-2/Llama 3/Qwen2, or SentencePiece-style with byte_fallback)",
            what, type);
    }
    const cJSON *vocab = jget(model, "vocab");
    if (!cJSON_IsObject(vocab)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: model.vocab is not an object", what);
    }
    if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: model.merges is not an array", what);
    }
    int bf = jbool(model, "byte_fallback");
    if (bf < 0 && jget(model, "byte_fallback") && !cJSON_IsNull(jget(model, "byte_fallback"))) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: model.byte_fallback is not a bool", what);
    }
    bool         byte_fallback = bf == 1;
    const cJSON *added         = jget(root, "added_tokens");
    if (added && !cJSON_IsArray(added) && !cJSON_IsNull(added)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: added_tokens is not an array", what);
    }
    int64_t n_vocab = cJSON_GetArraySize(vocab),
            n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    int64_t cap     = n_vocab + n_added;
    if (cap == 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: empty vocabulary", what);
    }
    if (cap > INT32_MAX) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: %" PRId64 " tokens is too many", what, cap);
    }
    werk_status s = vocab_alloc(v, cap, byte_fallback, what, err);
    if (s) {
        return s;
    }
    uint8_t *is_added = varr(v, (uint64_t)cap, 1), *is_special = varr(v, (uint64_t)cap, 1);
    if (!is_added || !is_special) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, vocab) {
        int64_t id;
        if (!json_id(item, cap, &id)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: vocab entry '%.60s' has id %.0f, not an integer in 0..%" PRId64
                             " (ids must be dense)",
                             what, item->string, cJSON_IsNumber(item) ? item->valuedouble : -1.0, cap - 1);
        }
        if (v->text[id]) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: vocab ids collide: '%.60s' and '%.60s' both have id %" PRId64, what,
                             v->text[id], item->string, id);
        }
        v->text[id] = item->string;
        v->len[id]  = strlen(item->string);
    }
    int64_t i = 0;
    cJSON_ArrayForEach(item, added) {
        int64_t     id;
        const char *content = jstr(item, "content");
        if (!content || !json_id(jget(item, "id"), cap, &id)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: added_tokens[%" PRId64
                             "] needs a string \"content\" and an integer \"id\" in 0..%" PRId64,
                             what, i, cap - 1);
        }
        if (v->text[id] && strcmp(v->text[id], content) != 0) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: added token '%.60s' has id %" PRId64 ", already used by '%.60s'", what,
                             content, id, v->text[id]);
        }
        v->text[id]    = content;
        v->len[id]     = strlen(content);
        is_added[id]   = 1;
        is_special[id] = jbool(item, "special") == 1;
        i++;
    }
    int64_t n = cap;
    while (n > 0 && !v->text[n - 1]) {
        n--;
    }
    for (int64_t id = 0; id < n; id++) {
        if (!v->text[id]) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: token ids are not dense: id %" PRId64 " is missing (of 0..%" PRId64 ")",
                             what, id, n - 1);
        }
    }
    v->n                  = n;
    const char *unk_token = jstr(model, "unk_token");
    for (int64_t id = 0; id < n; id++) {
        int32_t t = WERK_TOKEN_NORMAL;
        if (is_added[id]) {
            if (is_special[id] || looks_special(v->text[id])) {
                t = WERK_TOKEN_CONTROL;
            } else {
                t = WERK_TOKEN_USER_DEFINED;
                if (strstr(v->text[id], SPM_SPACE)) { // pre-normalize user-defined spaces
                    v->text[id] = str_replace_all(&v->arena, v->text[id], SPM_SPACE, " ", &v->len[id]);
                    if (!v->text[id]) {
                        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
                    }
                }
            }
        } else if (byte_fallback && is_byte_token(v->text[id], v->len[id])) {
            t = WERK_TOKEN_BYTE;
        } else if (byte_fallback && str_eq(unk_token, v->text[id])) {
            t = WERK_TOKEN_UNKNOWN;
        }
        v->types[id] = t;
    }
    if (byte_fallback) {
        v->model = "llama";
        v->pre   = "default";
        return derive_scores(v, merges, what, err);
    }
    v->model = "gpt2";
    if ((s = detect_pre(root, what, &v->pre, err))) {
        return s;
    }
    int64_t nm = cJSON_IsArray(merges) ? cJSON_GetArraySize(merges) : 0;
    if (nm == 0) {
        werk_log(WERK_LOG_WARN, "%s: byte-level BPE without merges; the vocab will not tokenize", what);
        return WERK_OK;
    }
    v->merges    = varr(v, (uint64_t)nm, sizeof(*v->merges));
    v->merge_len = varr(v, (uint64_t)nm, sizeof(*v->merge_len));
    if (!v->merges || !v->merge_len) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory for %" PRId64 " merges", what, nm);
    }
    i = 0;
    cJSON_ArrayForEach(item, merges) {
        if ((s = merge_text(v, item, i, what, &v->merges[i], &v->merge_len[i], err))) {
            return s;
        }
        i++;
    }
    v->n_merges = nm;
    return WERK_OK;
}

/* A tokenizer.json whose model is a byte-level BPE: BPE without byte_fallback, with a
 * ByteLevel decoder or pre-tokenizer (this decides it over tokenizer.model). */
static bool json_is_byte_level(const cJSON *root) {
    const cJSON *model = jget(root, "model");
    const char  *type  = jstr(model, "type");
    if ((type && strcmp(type, "BPE") != 0) || jbool(model, "byte_fallback") == 1 || !jget(model, "vocab")) {
        return false;
    }
    const cJSON *pt = jget(root, "pre_tokenizer"), *item = NULL;
    bool         bl =
        str_eq(jstr(jget(root, "decoder"), "type"), "ByteLevel") || str_eq(jstr(pt, "type"), "ByteLevel");
    cJSON_ArrayForEach(item, jget(pt, "pretokenizers")) { bl |= str_eq(jstr(item, "type"), "ByteLevel"); }
    return bl;
}

// ---- import: tokenizer.model ----------------------------------------------------------------

static werk_status import_spm_vocab(werk_spm_model *spm, const char *what, tok_vocab *v, werk_err *err) {
    if (spm->model_type != WERK_SPM_BPE) {
        static const char *const names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: SentencePiece model type %s is not supported (werk reads BPE models)", what,
                         names[spm->model_type >= 1 && spm->model_type <= 4 ? spm->model_type : 0]);
    }
    if (spm->n_pieces == 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no pieces", what);
    }
    werk_status s = vocab_alloc(v, spm->n_pieces, true, what, err);
    if (s) {
        return s;
    }
    for (int64_t i = 0; i < v->n; i++) {
        v->text[i]   = spm->pieces[i];
        v->len[i]    = spm->lens[i];
        v->scores[i] = spm->scores[i];
        v->types[i]  = spm->types[i];
    }
    v->model = "llama";
    v->pre   = "default";
    return WERK_OK;
}

/* Sets token id's text/type/score from an added-token entry (llama.cpp's rule). */
static werk_status
apply_added(tok_vocab *v, int64_t id, const char *content, bool special, werk_err *err, const char *what) {
    if (special || looks_special(content)) {
        v->types[id] = WERK_TOKEN_CONTROL;
        v->text[id]  = content;
        v->len[id]   = strlen(content);
    } else {
        v->types[id] = WERK_TOKEN_USER_DEFINED;
        v->text[id]  = str_replace_all(&v->arena, content, SPM_SPACE, " ", &v->len[id]);
        if (!v->text[id]) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
        }
    }
    v->scores[id] = -1000.0f;
    return WERK_OK;
}

/* added_tokens.json ({content: id}) and tokenizer_config.json added_tokens_decoder
 * ({"id": {"content": ..., "special": ...}}) over a SentencePiece vocab. */
static werk_status spm_added_tokens(
    tok_vocab *v, const cJSON *added_json, const cJSON *config, const char *what, werk_err *err) {
    const cJSON *item = NULL;
    werk_status  s;
    const cJSON *added_obj = cJSON_IsObject(added_json) ? added_json : NULL;
    cJSON_ArrayForEach(item, added_obj) {
        int64_t id;
        if (!json_id(item, v->n, &id)) {
            werk_log(WERK_LOG_WARN, "%s: added_tokens.json: ignoring '%.60s' (id out of range)", what,
                     item->string);
            continue;
        }
        v->text[id]   = item->string;
        v->len[id]    = strlen(item->string);
        v->types[id]  = WERK_TOKEN_USER_DEFINED;
        v->scores[id] = -1000.0f;
    }
    const cJSON *dec = jget(config, "added_tokens_decoder");
    if (dec && !cJSON_IsObject(dec)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tokenizer_config.json added_tokens_decoder is not an object", what);
    }
    cJSON_ArrayForEach(item, dec) {
        char       *end;
        const char *key     = item->string;
        long long   id      = (key[0] >= '0' && key[0] <= '9') ? strtoll(key, &end, 10) : -1;
        const char *content = jstr(item, "content");
        if (id < 0 || *end || !content) {
            return WERK_FAIL(
                err, WERK_E_FORMAT,
                "%s: tokenizer_config.json added_tokens_decoder entry '%.40s' needs a decimal id key and "
                "a string content",
                what, key);
        }
        if (id >= v->n) {
            werk_log(WERK_LOG_WARN,
                     "%s: ignoring added token %lld '%.60s': id out of range (max %" PRId64 ")", what, id,
                     content, v->n - 1);
            continue;
        }
        if (v->types[id] != WERK_TOKEN_UNUSED && strcmp(v->text[id], content) != 0) {
            werk_log(WERK_LOG_INFO, "%s: replacing token %lld '%.60s' -> '%.60s'", what, id, v->text[id],
                     content);
        }
        if ((s = apply_added(v, id, content, jbool(item, "special") == 1, err, what))) {
            return s;
        }
    }
    return WERK_OK;
}

// ---- import: special tokens, flags, chat templates -------------------------------------------

/* Content of a tokenizer_config.json *_token entry (a string or an AddedToken dict). */
static const char *config_token(const cJSON *config, const char *name) {
    char key[32];
    snprintf(key, sizeof(key), "%s_token", name);
    const cJSON *e = jget(config, key);
    if (cJSON_IsString(e)) {
        return e->valuestring;
    }
    return jstr(e, "content");
}

static const char *special_token_id(const cJSON *item) { return jstr(jget(item, "SpecialToken"), "id"); }

/* gguf-py SpecialVocab's reading of the post-processor: which of bos/eos/sep it adds. */
static void parse_post_processor(const cJSON *tok_json,
                                 const char  *bos,
                                 const char  *eos,
                                 const char  *sep,
                                 const char  *cls,
                                 bool         have_config,
                                 tok_vocab   *v) {
    const cJSON *pp = jget(tok_json, "post_processor");
    if (!cJSON_IsObject(pp)) {
        return;
    }
    const cJSON *list = jget(pp, "processors");
    int64_t      n    = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 1;
    for (int64_t k = 0; k < n; k++) {
        const cJSON *proc = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, (int)k) : pp;
        const char  *type = jstr(proc, "type");
        if (str_eq(type, "RobertaProcessing")) {
            v->sp_add[SP_BOS] = v->sp_add[SP_EOS] = v->sp_add[SP_SEP] = 1;
            continue;
        }
        if (!str_eq(type, "TemplateProcessing")) {
            continue;
        }
        const cJSON *single = jget(proc, "single"), *pair = jget(proc, "pair");
        int64_t      ns    = cJSON_IsArray(single) ? cJSON_GetArraySize(single) : 0;
        const char  *first = NULL, *last = NULL;
        if (ns > 1) {
            if ((first = special_token_id(cJSON_GetArrayItem(single, 0)))) {
                if (!have_config) {
                    bos = first;
                }
                v->sp_add[SP_BOS] = str_eq(first, bos) || str_eq(first, cls);
            }
            if ((last = special_token_id(cJSON_GetArrayItem(single, (int)ns - 1)))) {
                if (!have_config) {
                    eos = last;
                }
                // (SpecialVocab also re-routes a differing eos to eot/eom; werk keeps eos)
                v->sp_add[SP_EOS] = str_eq(last, eos);
            }
        }
        int64_t np = cJSON_IsArray(pair) ? cJSON_GetArraySize(pair) : 0;
        if (np == 0) {
            continue;
        }
        int64_t lo = 0, hi = np; // slice [lo, hi)
        if (first && str_eq(special_token_id(cJSON_GetArrayItem(pair, 0)), first)) {
            lo = 1;
        }
        if (last && str_eq(special_token_id(cJSON_GetArrayItem(pair, (int)np - 1)), last)) {
            hi = np - 1;
        }
        if (hi - lo < 1) {
            continue;
        }
        const char *a = jstr(jget(cJSON_GetArrayItem(pair, (int)lo), "Sequence"), "id");
        const char *b = jstr(jget(cJSON_GetArrayItem(pair, (int)hi - 1), "Sequence"), "id");
        if (!str_eq(a, "A") || !str_eq(b, "B") || hi - lo - 2 < 1) {
            continue;
        }
        bool        add_sep = false;
        const char *e       = special_token_id(cJSON_GetArrayItem(pair, (int)lo + 1));
        if (e && (str_eq(e, sep) || str_eq(e, eos)) && !last) {
            add_sep = true;
        }
        if (hi - lo - 2 == 2) {
            const char *e2 = special_token_id(cJSON_GetArrayItem(pair, (int)lo + 2));
            if (e2 && (str_eq(e2, sep) || str_eq(e2, eos))) {
                add_sep = true;
            }
        }
        v->sp_add[SP_SEP] = add_sep;
    }
}

/* Template names keep only [A-Za-z0-9] and '_' (gguf-py add_chat_template). */
static char *template_name(werk_arena *a, const char *name) {
    char *s = werk_arena_strdup(a, name);
    for (char *p = s; p && *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
            *p = '_';
        }
    }
    return s;
}

static werk_status set_chat_template(tok_vocab *v, const cJSON *tmpl, const char *what, werk_err *err) {
    if (cJSON_IsString(tmpl)) {
        v->chat_template = tmpl->valuestring;
        return WERK_OK;
    }
    if (!cJSON_IsArray(tmpl)) {
        if (tmpl && !cJSON_IsNull(tmpl)) {
            werk_log(WERK_LOG_WARN, "%s: chat_template is neither a string nor a list; ignored", what);
        }
        return WERK_OK;
    }
    int64_t n          = cJSON_GetArraySize(tmpl);
    v->named_names     = varr(v, (uint64_t)n, sizeof(char *));
    v->named_templates = varr(v, (uint64_t)n, sizeof(char *));
    if (!v->named_names || !v->named_templates) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
    }
    const cJSON *item = NULL;
    cJSON_ArrayForEach(item, tmpl) {
        const char *name = jstr(item, "name"), *t = jstr(item, "template");
        if (!name || !*name || !t) {
            continue;
        }
        char *clean = template_name(&v->arena, name);
        if (!clean) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", what);
        }
        if (strcmp(clean, "default") == 0) {
            v->chat_template = t;
            continue;
        }
        bool dup = false;
        for (int64_t j = 0; j < v->n_named; j++) {
            if (strcmp(v->named_names[j], clean) == 0) {
                v->named_templates[j] = t;
                dup                   = true;
            }
        }
        if (!dup) {
            v->named_names[v->n_named]       = clean;
            v->named_templates[v->n_named++] = t;
        }
    }
    return WERK_OK;
}

/* Special token ids, add flags, chat template (SpecialVocab order). tok_json may be NULL. */
static werk_status
import_specials(tok_vocab *v, const cJSON *tok_json, const cJSON *config, const char *what, werk_err *err) {
    const char *bos = config_token(config, "bos"), *eos = config_token(config, "eos");
    const char *sep = config_token(config, "sep"), *cls = config_token(config, "cls");
    if (!bos && cls) {
        bos = cls;
    }
    if (!eos && sep) {
        eos = sep;
    }
    if (tok_json) {
        parse_post_processor(tok_json, bos, eos, sep, cls, config != NULL, v);
    }
    if (!config) {
        return WERK_OK;
    }
    werk_status s = set_chat_template(v, jget(config, "chat_template"), what, err);
    if (s) {
        return s;
    }
    strmap map = {0};
    if ((s = strmap_init(&map, v->text, v->len, v->n, err))) {
        return s;
    }
    const cJSON *added = jget(tok_json, "added_tokens");
    if (!cJSON_IsArray(added)) {
        added = NULL;
    }
    for (int t = 0; t < SP_COUNT; t++) {
        char key[32];
        snprintf(key, sizeof(key), "add_%s_token", sp_name[t]);
        int add = jbool(config, key);
        if (add >= 0) {
            v->sp_add[t] = add;
        }
        const char *content = t == SP_BOS ? bos : t == SP_EOS ? eos : config_token(config, sp_name[t]);
        if (!content) {
            continue;
        }
        int64_t      id   = -1;
        const cJSON *item = NULL;
        cJSON_ArrayForEach(item, added) {
            if (str_eq(jstr(item, "content"), content) && json_id(jget(item, "id"), INT32_MAX, &id)) {
                break;
            }
            id = -1;
        }
        if (id < 0) {
            id = strmap_find(&map, content, strlen(content));
        }
        if (id < 0 || id >= v->n) {
            werk_log(WERK_LOG_WARN, "%s: %s_token '%.60s' is not in the vocabulary; not set", what,
                     sp_name[t], content);
            continue;
        }
        v->sp_id[t] = id;
    }
    strmap_free(&map);
    return WERK_OK;
}

/* chat_template.jinja / chat_template.json when tokenizer_config.json has none. */
static werk_status import_chat_template_files(tok_vocab *v, const char *dir, cJSON **keep, werk_err *err) {
    char path[4096];
    if (file_exists(dir, "chat_template.jinja", path, sizeof(path))) {
        char       *text;
        size_t      n;
        werk_status s = werk_read_file(path, WERK_CONFIG_JSON_MAX, &text, &n, err);
        if (s) {
            return s;
        }
        v->chat_template = werk_arena_strndup(&v->arena, text, n);
        free(text);
        return v->chat_template ? WERK_OK : WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    if (file_exists(dir, "chat_template.json", path, sizeof(path))) {
        werk_status s = werk_json_read_file(path, WERK_CONFIG_JSON_MAX, keep, err);
        if (s) {
            return s;
        }
        return set_chat_template(v, jget(*keep, "chat_template"), path, err);
    }
    return WERK_OK;
}

// ---- import: into the werk_gguf -------------------------------------------------------------

static werk_status vocab_to_gguf(const tok_vocab *v, werk_gguf *g, werk_err *err) {
    werk_status s;
    if ((s = werk_gguf_set_str(g, "tokenizer.ggml.model", v->model, err)) ||
        (s = werk_gguf_set_str(g, "tokenizer.ggml.pre", v->pre, err)) ||
        (s = werk_gguf_set_arr_str(g, "tokenizer.ggml.tokens", v->text, v->len, (uint64_t)v->n, err))) {
        return s;
    }
    if (v->scores && (s = werk_gguf_set_arr(g, "tokenizer.ggml.scores", WERK_GGUF_FLOAT32, v->scores,
                                            (uint64_t)v->n, err))) {
        return s;
    }
    if ((s = werk_gguf_set_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32, v->types, (uint64_t)v->n,
                               err))) {
        return s;
    }
    if (v->merges && (s = werk_gguf_set_arr_str(g, "tokenizer.ggml.merges", v->merges, v->merge_len,
                                                (uint64_t)v->n_merges, err))) {
        return s;
    }
    for (int t = 0; t < SP_COUNT; t++) {
        if (v->sp_id[t] >= 0 && (s = werk_gguf_set_u32(g, sp_key[t], (uint32_t)v->sp_id[t], err))) {
            return s;
        }
    }
    for (int t = 0; t < SP_COUNT; t++) {
        if (add_key[t] && v->sp_add[t] >= 0 &&
            (s = werk_gguf_set_bool(g, add_key[t], v->sp_add[t] == 1, err))) {
            return s;
        }
    }
    if (v->add_space_prefix >= 0 &&
        (s = werk_gguf_set_bool(g, "tokenizer.ggml.add_space_prefix", v->add_space_prefix == 1, err))) {
        return s;
    }
    for (int64_t i = 0; i < v->n_named; i++) {
        char key[256];
        snprintf(key, sizeof(key), "tokenizer.chat_template.%.200s", v->named_names[i]);
        if ((s = werk_gguf_set_str(g, key, v->named_templates[i], err))) {
            return s;
        }
    }
    if (v->n_named > 0 && (s = werk_gguf_set_arr_str(g, "tokenizer.chat_templates", v->named_names, NULL,
                                                     (uint64_t)v->n_named, err))) {
        return s;
    }
    if (v->chat_template && (s = werk_gguf_set_str(g, "tokenizer.chat_template", v->chat_template, err))) {
        return s;
    }
    return WERK_OK;
}

/* Architecture rules of convert_hf_to_gguf.py (see the header comment). */
static void apply_arch_rules(tok_vocab *v, const char *arch, const cJSON *config, bool from_spm) {
    if (str_eq(arch, "llama")) {
        int aps = jbool(config, "add_prefix_space");
        if (aps >= 0) {
            v->add_space_prefix = aps;
        }
        if (v->n == 49152) {
            v->sp_add[SP_BOS] = 0;
        }
    } else if (str_eq(arch, "gemma3") && from_spm) {
        v->add_space_prefix = 0;
    }
}

werk_status werk_hf_tokenizer_import_mem(const char *json,
                                         size_t      json_len,
                                         const char *config,
                                         size_t      config_len,
                                         const char *arch,
                                         const char *what,
                                         werk_gguf  *g,
                                         werk_err   *err) {
    cJSON      *root = NULL, *cfg = NULL;
    tok_vocab   v;
    werk_status s;
    vocab_init(&v);
    if (!what) {
        what = "tokenizer.json";
    }
    if ((s = werk_json_parse(json, json_len, 0, what, &root, err))) {
        goto done;
    }
    if (config && (s = werk_json_parse(config, config_len, 0, "tokenizer_config.json", &cfg, err))) {
        goto done;
    }
    if ((s = import_json_vocab(root, what, &v, err)) || (s = import_specials(&v, root, cfg, what, err))) {
        goto done;
    }
    apply_arch_rules(&v, arch, cfg, false);
    s = vocab_to_gguf(&v, g, err);
done:
    vocab_free(&v);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return s;
}

/* config.json vocab_size (or text_config.vocab_size), 0 if absent. */
static int64_t config_vocab_size(const char *dir) {
    char path[4096];
    if (!file_exists(dir, "config.json", path, sizeof(path))) {
        return 0;
    }
    cJSON *cfg = NULL;
    if (werk_json_read_file(path, WERK_CONFIG_JSON_MAX, &cfg, NULL) != WERK_OK) {
        return 0; // hf_config.c reports a bad config.json
    }
    const cJSON *vs = jget(cfg, "vocab_size");
    if (!vs) {
        vs = jget(jget(cfg, "text_config"), "vocab_size");
    }
    int64_t n = 0;
    if (!json_id(vs, INT32_MAX, &n)) {
        n = 0;
    }
    cJSON_Delete(cfg);
    return n;
}

werk_status
werk_hf_tokenizer_import(const char *dir, const char *arch, werk_gguf *g, bool *found, werk_err *err) {
    char path_json[4096], path_model[4096], path_config[4096], path_added[4096];
    bool have_json   = file_exists(dir, "tokenizer.json", path_json, sizeof(path_json));
    bool have_model  = file_exists(dir, "tokenizer.model", path_model, sizeof(path_model));
    bool have_config = file_exists(dir, "tokenizer_config.json", path_config, sizeof(path_config));
    bool have_added  = file_exists(dir, "added_tokens.json", path_added, sizeof(path_added));
    *found           = have_json || have_model;
    if (!*found) {
        return WERK_OK;
    }
    cJSON         *root = NULL, *cfg = NULL, *added = NULL, *tmpl_json = NULL;
    werk_spm_model spm;
    tok_vocab      v;
    werk_status    s    = WERK_OK;
    const char    *what = path_json;
    werk_spm_model_init(&spm);
    vocab_init(&v);
    if (have_json && (s = werk_json_read_file(path_json, WERK_TOKENIZER_JSON_MAX, &root, err))) {
        goto done;
    }
    if (have_config && (s = werk_json_read_file(path_config, WERK_TOKENIZER_JSON_MAX, &cfg, err))) {
        goto done;
    }
    bool from_spm = have_model && !(root && json_is_byte_level(root));
    if (from_spm) {
        what = path_model;
        if ((s = werk_spm_model_read(path_model, &spm, err)) || (s = import_spm_vocab(&spm, what, &v, err))) {
            goto done;
        }
        if (have_added && (s = werk_json_read_file(path_added, WERK_CONFIG_JSON_MAX, &added, err))) {
            goto done;
        }
        if ((s = spm_added_tokens(&v, added, cfg, what, err))) {
            goto done;
        }
    } else {
        if (have_model) {
            werk_log(WERK_LOG_INFO, "%s: byte-level BPE tokenizer.json; tokenizer.model ignored", dir);
        }
        if ((s = import_json_vocab(root, what, &v, err))) {
            goto done;
        }
    }
    if (!str_eq(arch, "gemma3") && (s = vocab_pad(&v, config_vocab_size(dir), what, err))) {
        goto done;
    }
    if ((s = import_specials(&v, root, cfg, what, err))) {
        goto done;
    }
    if (!v.chat_template && v.n_named == 0 && cfg && !jget(cfg, "chat_template") &&
        (s = import_chat_template_files(&v, dir, &tmpl_json, err))) {
        goto done;
    }
    apply_arch_rules(&v, arch, cfg, from_spm);
    s = vocab_to_gguf(&v, g, err);
done:
    vocab_free(&v);
    werk_spm_model_free(&spm);
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    cJSON_Delete(added);
    cJSON_Delete(tmpl_json);
    return s;
}
