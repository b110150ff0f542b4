/* convert/hf_tokenizer.c - HF tokenizer files <-> GGUF tokenizer.ggml.* keys
 *
 * Owns the vocabulary half of the HF importer and exporter (the weights half is
 * hf_import.c / hf_export.c). Files read and written, all in one HF model folder:
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
 * Export writes the inverse, so that GGUF -> HF -> GGUF keeps every tokenizer key:
 *   - "gpt2": tokenizer.json (BPE vocab = tokens, merges verbatim, pre_tokenizer for `pre`
 *     from the table above, ByteLevel decoder, added_tokens = CONTROL (special) and
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
 *     added_tokens_decoder lists exactly the tokens the import rule above maps back to the
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
#include "convert/tokenizer_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPM_SPACE "\xe2\x96\x81" // U+2581, SentencePiece's whitespace
#define GPT2_SPACE "\xc4\xa0"    // U+0120, byte-level BPE's space
#define SPM_MERGE_MAX_PIECE 1024 // bytes; longer pieces get no generated merges

static const char LLAMA3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[]  = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

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

static bool str_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *p) {
    size_t n = strlen(s), k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

/* convert_hf_to_gguf.py does_token_look_special: added tokens some models forget to mark
 * special (prefix and suffix tested independently, as Python's startswith/endswith). */
static bool looks_special(const char *t) {
    static const char *const exact[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        if (strcmp(t, exact[i]) == 0) {
            return true;
        }
    }
    return (starts_with(t, "<|") && ends_with(t, "|>")) ||
           (starts_with(t, "<\xef\xbd\x9c") && ends_with(t, "\xef\xbd\x9c>")) || // <｜ ... ｜> (deepseek)
           (starts_with(t, "<unused") && ends_with(t, ">"));
}

/* True if s[0..n) is valid UTF-8 without NUL (what a JSON string can carry exactly). */
static bool utf8_ok(const char *s, uint64_t n) {
    const unsigned char *p = (const unsigned char *)s;
    uint64_t             i = 0;
    while (i < n) {
        unsigned char c = p[i];
        uint64_t      k;
        uint32_t      cp;
        if (c == 0) {
            return false;
        } else if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 2, cp = c & 0x1f;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 3, cp = c & 0x0f;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 4, cp = c & 0x07;
        } else {
            return false;
        }
        if (n - i < k) {
            return false;
        }
        for (uint64_t j = 1; j < k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
            return false;
        }
        i += k;
    }
    return true;
}

/* Number of code points in a UTF-8 string (bytes that do not continue a sequence). */
static int64_t utf8_count(const char *s, uint64_t n) {
    int64_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return c;
}

/* Copies s replacing every `from` by `to` into the arena; NULL on OOM. */
static char *
str_replace_all(werk_arena *a, const char *s, const char *from, const char *to, uint64_t *len_out) {
    size_t n = strlen(s), nf = strlen(from), nt = strlen(to), count = 0;
    for (const char *p = strstr(s, from); p; p = strstr(p + nf, from)) {
        count++;
    }
    size_t out_n = n - count * nf + count * nt;
    char  *out   = werk_arena_alloc(a, out_n + 1);
    if (!out) {
        return NULL;
    }
    char *o = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, from);
        if (!q) {
            memcpy(o, p, strlen(p));
            o += strlen(p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, nt);
        o += nt;
        p = q + nf;
    }
    *o = 0;
    if (len_out) {
        *len_out = out_n;
    }
    return out;
}

// ---- string -> id map (open addressing, FNV-1a; keeps the first id of a string) -----------

typedef struct strmap {
    int64_t           *slots; // id, -1 = empty
    uint64_t           mask;
    const char *const *strs;
    const uint64_t    *lens;
} strmap;

static uint64_t fnv1a(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    return h;
}

static werk_status
strmap_init(strmap *m, const char *const *strs, const uint64_t *lens, int64_t n, werk_err *err) {
    uint64_t cap = 16;
    while (cap < (uint64_t)n * 2) {
        cap <<= 1;
    }
    m->slots = werk_malloc(cap * sizeof(int64_t));
    if (!m->slots) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer: out of memory for a %" PRId64 "-token map", n);
    }
    memset(m->slots, 0xff, cap * sizeof(int64_t));
    m->mask = cap - 1;
    m->strs = strs;
    m->lens = lens;
    for (int64_t i = 0; i < n; i++) {
        if (!strs[i]) {
            continue;
        }
        uint64_t h = fnv1a(strs[i], lens[i]) & m->mask;
        while (m->slots[h] >= 0) {
            int64_t j = m->slots[h];
            if (lens[j] == lens[i] && memcmp(strs[j], strs[i], lens[i]) == 0) {
                break;
            }
            h = (h + 1) & m->mask;
        }
        if (m->slots[h] < 0) {
            m->slots[h] = i;
        }
    }
    return WERK_OK;
}

/* Lookup with a precomputed fnv1a(s, n) (prefixes hash incrementally). */
static int64_t strmap_find_h(const strmap *m, uint64_t hash, const char *s, uint64_t n) {
    uint64_t h = hash & m->mask;
    while (m->slots[h] >= 0) {
        int64_t j = m->slots[h];
        if (m->lens[j] == n && memcmp(m->strs[j], s, n) == 0) {
            return j;
        }
        h = (h + 1) & m->mask;
    }
    return -1;
}

static int64_t strmap_find(const strmap *m, const char *s, uint64_t n) {
    return strmap_find_h(m, fnv1a(s, n), s, n);
}

static void strmap_free(strmap *m) {
    free(m->slots);
    m->slots = NULL;
}

// ---- the vocabulary being imported -------------------------------------------------------

enum { SP_BOS, SP_EOS, SP_UNK, SP_SEP, SP_PAD, SP_MASK, SP_COUNT };
static const char *const sp_name[SP_COUNT] = {"bos", "eos", "unk", "sep", "pad", "mask"};
static const char *const sp_key[SP_COUNT]  = {
     "tokenizer.ggml.bos_token_id",       "tokenizer.ggml.eos_token_id",     "tokenizer.ggml.unknown_token_id",
     "tokenizer.ggml.seperator_token_id", "tokenizer.ggml.padding_token_id", "tokenizer.ggml.mask_token_id"};
/* add_*_token flags that have a GGUF key (gguf-py has add_add_{bos,eos,sep}_token only). */
static const char *const add_key[SP_COUNT] = {"tokenizer.ggml.add_bos_token",
                                              "tokenizer.ggml.add_eos_token",
                                              NULL,
                                              "tokenizer.ggml.add_sep_token",
                                              NULL,
                                              NULL};

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
    strmap      map;
    werk_status s = strmap_init(&map, v->text, v->len, v->n, err);
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
    strmap map;
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
    strmap      map;
    werk_status s = strmap_init(&map, x->hf_text, x->hf_len, x->n_hf, err);
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
    strmap      map;
    werk_status s = strmap_init(&map, x->hf_text, x->hf_len, x->n, err);
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
