/* convert/hf_tokenizer_int.h - what the HF tokenizer importer and exporter share
 *
 * Private to hf_tokenizer.c (import) and hf_tokenizer_export.c (export): SentencePiece's
 * whitespace, the Llama 3 / Qwen2 pre-tokenizer regexes (tokenizer.ggml.pre "llama-bpe" /
 * "qwen2"), small string helpers (prefix/suffix tests, llama.cpp's looks-special rule,
 * UTF-8 checks, replace-all into an arena), a string -> id map, and the special tokens
 * (bos/eos/unk/sep/pad/mask) with their GGUF keys.
 */
#ifndef WERK_HF_TOKENIZER_INT_H
#define WERK_HF_TOKENIZER_INT_H

#include "common/common.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SPM_SPACE "\xe2\x96\x81" // U+2581, SentencePiece's whitespace

static const char LLAMA3_REGEX[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[]  = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                   "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// ---- small helpers --------------------------------------------------------------------

static inline bool str_eq(const char *a, const char *b) { return a && b && strcmp(a, b) == 0; }

static inline bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static inline bool ends_with(const char *s, const char *p) {
    size_t n = strlen(s), k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

/* convert_hf_to_gguf.py does_token_look_special: added tokens some models forget to mark
 * special (prefix and suffix tested independently, as Python's startswith/endswith). */
static inline bool looks_special(const char *t) {
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
static inline bool utf8_ok(const char *s, uint64_t n) {
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
static inline int64_t utf8_count(const char *s, uint64_t n) {
    int64_t c = 0;
    for (uint64_t i = 0; i < n; i++) {
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    return c;
}

/* Copies s replacing every `from` by `to` into the arena; NULL on OOM. */
static inline char *
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

static inline uint64_t fnv1a(const char *s, uint64_t n) {
    uint64_t h = 1469598103934665603ull;
    for (uint64_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    return h;
}

static inline werk_status
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
static inline int64_t strmap_find_h(const strmap *m, uint64_t hash, const char *s, uint64_t n) {
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

static inline int64_t strmap_find(const strmap *m, const char *s, uint64_t n) {
    return strmap_find_h(m, fnv1a(s, n), s, n);
}

static inline void strmap_free(strmap *m) {
    free(m->slots);
    m->slots = NULL;
}

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

#endif
