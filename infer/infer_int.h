/* infer/infer_int.h - private structures of werk's tokenizers (infer/tokenizer*.c only)
 *
 * werk_tokenizer is immutable after werk_tokenizer_init; werk_tokenizer_encode keeps its
 * scratch (symbols, merge queue, id list) on the stack of one call, so one tokenizer may
 * be shared by threads. tokenizer.c holds the vocab, hash maps, special-token split, the
 * merge loop shared by both models and decode; tokenizer_spm.c the SentencePiece-style
 * fragment (U+2581 spaces, byte fallback); tokenizer_bpe.c the byte-level BPE with its
 * PCRE2 pre-tokenizers.
 */
#ifndef WERK_INFER_INT_H
#define WERK_INFER_INT_H

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include "infer/infer.h"

#include <pcre2.h>
#include <string.h>

// tokenizer.ggml.token_type values
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };
enum { KIND_SPM = 0, KIND_BPE = 1 };
#define MAX_RE 4 // pre-tokenizer regexes applied one after another

// ---- string -> int32 hash map (open addressing, linear probing) ----------------------

typedef struct smap_slot {
    const char *s; // NULL: empty
    uint32_t    len;
    int32_t     val;
} smap_slot;

typedef struct smap {
    smap_slot *slots;
    uint64_t   mask;
} smap;

int32_t werk_tok_smap_get(const smap *m, const char *s, size_t len); // -1 if missing

// ---- the tokenizer ----------------------------------------------------------------------

typedef struct tok_entry {
    const char *text; // arena copy, NUL-terminated
    uint32_t    len;
    int32_t     type;
    float       score;
} tok_entry;

struct werk_tokenizer {
    int         kind;
    int32_t     n_vocab;
    tok_entry  *vocab;
    smap        tok_map;   // text -> id
    smap        merge_map; // "left right" -> rank (BPE)
    int32_t     bos, eos, unk;
    bool        add_space_prefix;
    bool        ignore_merges;
    int32_t     byte_tok[256]; // SPM: id of <0xXX>, -1 if none
    int32_t    *special;       // ids of special tokens, grouped by first byte, longest first
    int32_t     special_start[257];
    int         n_re;
    pcre2_code *re[MAX_RE];
    uint8_t     cp_to_byte[324]; // byte-level: code point -> byte (valid where cp_valid)
    bool        cp_valid[324];
    uint16_t    byte_to_cp[256];
    werk_arena  arena;
};

// ---- per-call scratch: ids, symbols, merge queue ---------------------------------------

typedef struct idvec {
    int32_t *p;
    int64_t  n, cap;
    bool     oom;
} idvec;

void werk_tok_idvec_push(idvec *v, int32_t id); // sets v->oom on failure

typedef struct symbol {
    int64_t off; // into the text being merged
    int64_t n;   // bytes, 0 once merged away
    int64_t prev, next;
} symbol;

typedef struct bigram {
    double   prio; // higher first (SPM: score, BPE: -rank)
    int64_t  left, right;
    uint64_t size;
} bigram;

typedef struct heap {
    bigram *p;
    int64_t n, cap;
    bool    oom;
} heap;

typedef struct merge_ctx {
    const werk_tokenizer *tok;
    const char           *text;
    symbol               *sym;
    int64_t               n_sym;
    heap                  q;
    char                 *scratch; // BPE: "left right"
    size_t                scratch_cap;
    bool                  oom;
} merge_ctx;

/* Splits text[0..len) into UTF-8 chars (invalid bytes alone) and merges adjacent pairs,
 * best first (SPM: a vocab token with the highest score; BPE: the lowest merge rank); leaves
 * the surviving symbols linked from m->sym[0]. m->sym must hold len symbols. False on OOM. */
bool werk_tok_merge_run(merge_ctx *m, const char *text, int64_t len);

static inline size_t werk_tok_utf8_len(uint8_t c) {
    static const uint8_t lens[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lens[c >> 4];
}

// Appends n bytes at buf[k] as far as cap allows; returns k + n.
static inline size_t werk_tok_put(char *buf, size_t cap, size_t k, const char *s, size_t n) {
    if (k < cap) {
        memcpy(buf + k, s, n < cap - k ? n : cap - k);
    }
    return k + n;
}

// ---- per model ---------------------------------------------------------------------------

/* SPM: one raw text fragment (no specials): escape ' ' as U+2581 (and prepend one when
 * prefix), merge, emit ids (byte fallback for unknown pieces). False on OOM. */
bool werk_tok_spm_fragment(
    const werk_tokenizer *tok, merge_ctx *m, const char *s, size_t n, bool prefix, idvec *out);
size_t werk_tok_spm_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap);

/* BPE: compiles the regexes named by tokenizer.ggml.pre (NULL: "default"). */
werk_status werk_tok_bpe_init_pre(werk_tokenizer *tok, const char *pre, const char *path, werk_err *err);
/* BPE: one raw text fragment: pre-tokenize, byte-encode each word, merge by rank, emit. */
bool   werk_tok_bpe_fragment(const werk_tokenizer *tok, merge_ctx *m, const char *s, size_t n, idvec *out);
size_t werk_tok_bpe_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap);

#endif
