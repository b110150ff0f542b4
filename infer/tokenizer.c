/* infer/tokenizer.c - werk_tokenizer: vocab from GGUF metadata, special tokens, merge loop, decode
 *
 * Owns werk_tokenizer (struct in infer_int.h): the vocab (tokenizer.ggml.tokens / scores /
 * token_type), a hash map text -> id, the merge ranks (tokenizer.ggml.merges, "left right"
 * -> rank), the special tokens split out of the text before tokenizing, the merge loop both
 * models share (tokenizer_spm.c, tokenizer_bpe.c hold the per-model parts), and decode.
 * Follows llama.cpp's llama-vocab.cpp in behaviour; written from its description.
 *
 * GGUF keys read:
 *   KEY                              TYPE            DESCRIPTION
 *   tokenizer.ggml.model             string          "llama" (SPM) or "gpt2" (byte-level BPE)
 *   tokenizer.ggml.pre               string          BPE pre-tokenizer: gpt-2, default, llama-bpe,
 *                                                    qwen2, smollm (missing: default)
 *   tokenizer.ggml.tokens            string[n]       token texts
 *   tokenizer.ggml.scores            f32[n]          SPM merge scores (optional)
 *   tokenizer.ggml.token_type        i32[n]          1 normal 2 unknown 3 control 4 user 6 byte
 *   tokenizer.ggml.merges            string[m]       BPE merges "a b" by rank
 *   tokenizer.ggml.bos/eos/unknown_token_id  u32     special ids (optional)
 *   tokenizer.ggml.add_space_prefix  bool            SPM: prepend U+2581 (default true)
 *
 * Special tokens: CONTROL and USER_DEFINED tokens (and UNKNOWN) are matched in the raw text
 * first (leftmost, longest at a position; llama.cpp splits longest-first over the whole text,
 * which differs only for overlapping specials). Without parse_special only USER_DEFINED ones.
 *
 * Decode: byte tokens give their byte, SPM's U+2581 gives ' ', byte-level BPE maps GPT-2's
 * byte-to-unicode table back; CONTROL and USER_DEFINED tokens give their text. A leading BOS
 * is skipped, and with add_space_prefix the first piece loses one leading space.
 */
#include "infer/infer_int.h"

#include <stdlib.h>
#include <string.h>

// ---- hash map ----------------------------------------------------------------------------

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static bool smap_init(smap *m, uint64_t n) {
    uint64_t cap = 16;
    while (cap < 2 * n + 2) {
        cap *= 2;
    }
    m->slots = werk_calloc(cap, sizeof(smap_slot));
    m->mask  = cap - 1;
    return m->slots != NULL;
}

/* Inserts; for a key already present, replace decides whether val overwrites (llama.cpp:
 * a duplicate token text maps to its last id, a duplicate merge keeps its first rank). */
static void smap_put(smap *m, const char *s, uint32_t len, int32_t val, bool replace) {
    uint64_t i = hash_bytes(s, len) & m->mask;
    while (m->slots[i].s) {
        if (m->slots[i].len == len && memcmp(m->slots[i].s, s, len) == 0) {
            if (replace) {
                m->slots[i].val = val;
            }
            return;
        }
        i = (i + 1) & m->mask;
    }
    m->slots[i] = (smap_slot){s, len, val};
}

int32_t werk_tok_smap_get(const smap *m, const char *s, size_t len) {
    if (!m->slots) {
        return -1;
    }
    uint64_t i = hash_bytes(s, len) & m->mask;
    while (m->slots[i].s) {
        if (m->slots[i].len == len && memcmp(m->slots[i].s, s, len) == 0) {
            return m->slots[i].val;
        }
        i = (i + 1) & m->mask;
    }
    return -1;
}

int32_t werk_tokenizer_n_vocab(const werk_tokenizer *tok) { return tok->n_vocab; }
int32_t werk_tokenizer_bos(const werk_tokenizer *tok) { return tok->bos; }
int32_t werk_tokenizer_eos(const werk_tokenizer *tok) { return tok->eos; }

void werk_tokenizer_free(werk_tokenizer *tok) {
    if (!tok) {
        return;
    }
    for (int i = 0; i < tok->n_re; i++) {
        pcre2_code_free(tok->re[i]);
    }
    free(tok->vocab);
    free(tok->tok_map.slots);
    free(tok->merge_map.slots);
    free(tok->special);
    werk_arena_free(&tok->arena);
    free(tok);
}

static const werk_gguf_value *get_arr(const werk_gguf *g, const char *key, werk_gguf_type et) {
    const werk_gguf_value *v = werk_gguf_get(g, key);
    if (!v || v->type != WERK_GGUF_ARRAY || v->arr.elem_type != et) {
        return NULL;
    }
    return v;
}

static int32_t get_id(const werk_gguf *g, const char *key, int32_t n_vocab) {
    const werk_gguf_value *v = werk_gguf_get(g, key);
    if (!v) {
        return -1;
    }
    int64_t id = -1;
    switch (v->type) {
    case WERK_GGUF_UINT32:
        id = v->u32;
        break;
    case WERK_GGUF_INT32:
        id = v->i32;
        break;
    case WERK_GGUF_UINT64:
        id = v->u64 > INT32_MAX ? -1 : (int64_t)v->u64;
        break;
    case WERK_GGUF_INT64:
        id = v->i64;
        break;
    default:
        break;
    }
    return (id >= 0 && id < n_vocab) ? (int32_t)id : -1;
}

typedef struct special_key {
    uint32_t first; // first byte of the text
    uint32_t len;
    int32_t  id;
} special_key;

// By first byte, then longest first, then id.
static int cmp_special(const void *a, const void *b) {
    const special_key *x = a, *y = b;
    if (x->first != y->first) {
        return x->first < y->first ? -1 : 1;
    }
    if (x->len != y->len) {
        return x->len > y->len ? -1 : 1;
    }
    return (x->id > y->id) - (x->id < y->id);
}

werk_status werk_tokenizer_init(const werk_gguf *g, werk_tokenizer **out, werk_err *err) {
    *out              = NULL;
    const char *path  = werk_gguf_path(g) ? werk_gguf_path(g) : "<gguf>";
    const char *model = NULL, *pre = NULL;
    bool        found = false;
    werk_status st    = werk_gguf_get_str(g, "tokenizer.ggml.model", &model, &found, err);
    if (st) {
        return st;
    }
    if (!found) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no tokenizer.ggml.model", path);
    }
    int kind;
    if (strcmp(model, "llama") == 0) {
        kind = KIND_SPM;
    } else if (strcmp(model, "gpt2") == 0) {
        kind = KIND_BPE;
    } else {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tokenizer model '%s' is not supported", path, model);
    }
    if ((st = werk_gguf_get_str(g, "tokenizer.ggml.pre", &pre, &found, err))) {
        return st;
    }
    if (!found) {
        pre = NULL;
    }
    const werk_gguf_value *tokens = get_arr(g, "tokenizer.ggml.tokens", WERK_GGUF_STRING);
    if (!tokens || tokens->arr.n == 0 || tokens->arr.n > INT32_MAX / 4) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: tokenizer.ggml.tokens missing, empty or too large", path);
    }
    int32_t                n      = (int32_t)tokens->arr.n;
    const werk_gguf_value *scores = get_arr(g, "tokenizer.ggml.scores", WERK_GGUF_FLOAT32);
    const werk_gguf_value *types  = get_arr(g, "tokenizer.ggml.token_type", WERK_GGUF_INT32);
    if ((scores && scores->arr.n != (uint64_t)n) || (types && types->arr.n != (uint64_t)n)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: tokenizer scores/token_type length differs from tokens (%d)", path, (int)n);
    }

    werk_tokenizer *tok = werk_calloc(1, sizeof(*tok));
    if (!tok) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer: out of memory", path);
    }
    werk_arena_init(&tok->arena);
    tok->kind    = kind;
    tok->n_vocab = n;
    tok->vocab   = werk_calloc((size_t)n, sizeof(tok_entry));
    if (!tok->vocab || !smap_init(&tok->tok_map, (uint64_t)n)) {
        st = WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer: out of memory", path);
        goto fail;
    }
    const werk_gguf_str *strs = tokens->arr.data;
    for (int32_t i = 0; i < n; i++) {
        if (strs[i].len > UINT32_MAX / 2) {
            st = WERK_FAIL(err, WERK_E_FORMAT, "%s: token %d is too long", path, (int)i);
            goto fail;
        }
        tok_entry *e = &tok->vocab[i];
        e->text      = werk_arena_strndup(&tok->arena, strs[i].data, strs[i].len);
        if (!e->text) {
            st = WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer: out of memory", path);
            goto fail;
        }
        e->len   = (uint32_t)strs[i].len;
        e->score = scores ? ((const float *)scores->arr.data)[i] : 0.0f;
        e->type  = types ? ((const int32_t *)types->arr.data)[i] : TT_NORMAL;
        if (e->len > 0) {
            smap_put(&tok->tok_map, e->text, e->len, i, true);
        }
    }
    tok->bos = get_id(g, "tokenizer.ggml.bos_token_id", n);
    tok->eos = get_id(g, "tokenizer.ggml.eos_token_id", n);
    tok->unk = get_id(g, "tokenizer.ggml.unknown_token_id", n);
    bool asp = kind == KIND_SPM;
    if ((st = werk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, &found, err))) {
        goto fail;
    }
    tok->add_space_prefix = kind == KIND_SPM && (found ? asp : true);

    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        tok->byte_tok[b] = werk_tok_smap_get(&tok->tok_map, name, 6);
    }
    // GPT-2's byte <-> unicode table: printable latin-1 bytes map to themselves, the rest to 256+k.
    {
        int k = 0;
        for (int b = 0; b < 256; b++) {
            bool self           = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            int  cp             = self ? b : 256 + k++;
            tok->byte_to_cp[b]  = (uint16_t)cp;
            tok->cp_to_byte[cp] = (uint8_t)b;
            tok->cp_valid[cp]   = true;
        }
    }

    // special tokens
    {
        int32_t n_sp = 0;
        for (int32_t i = 0; i < n; i++) {
            int32_t t = tok->vocab[i].type;
            if ((t == TT_CONTROL || t == TT_USER || t == TT_UNKNOWN) && tok->vocab[i].len > 0) {
                n_sp++;
            }
        }
        tok->special     = werk_malloc((size_t)(n_sp + 1) * sizeof(int32_t));
        special_key *key = werk_malloc((size_t)(n_sp + 1) * sizeof(special_key));
        if (!tok->special || !key) {
            free(key);
            st = WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer: out of memory", path);
            goto fail;
        }
        n_sp = 0;
        for (int32_t i = 0; i < n; i++) {
            const tok_entry *e = &tok->vocab[i];
            if ((e->type == TT_CONTROL || e->type == TT_USER || e->type == TT_UNKNOWN) && e->len > 0) {
                key[n_sp++] = (special_key){(uint8_t)e->text[0], e->len, i};
            }
        }
        qsort(key, (size_t)n_sp, sizeof(special_key), cmp_special);
        for (int32_t i = 0; i < n_sp; i++) {
            tok->special[i] = key[i].id;
        }
        free(key);
        int32_t j = 0;
        for (int b = 0; b <= 256; b++) {
            while (b < 256 && j < n_sp && (uint8_t)tok->vocab[tok->special[j]].text[0] < b) {
                j++;
            }
            tok->special_start[b] = b < 256 ? j : n_sp;
        }
    }

    if (kind == KIND_BPE) {
        const werk_gguf_value *merges = get_arr(g, "tokenizer.ggml.merges", WERK_GGUF_STRING);
        if (!merges) {
            st = WERK_FAIL(err, WERK_E_FORMAT, "%s: gpt2 tokenizer without tokenizer.ggml.merges", path);
            goto fail;
        }
        if (merges->arr.n > INT32_MAX / 4 || !smap_init(&tok->merge_map, merges->arr.n)) {
            st = WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer merges: out of memory", path);
            goto fail;
        }
        const werk_gguf_str *ms = merges->arr.data;
        for (uint64_t i = 0; i < merges->arr.n; i++) {
            if (ms[i].len > UINT32_MAX / 2) {
                continue;
            }
            const char *c = werk_arena_strndup(&tok->arena, ms[i].data, ms[i].len);
            if (!c) {
                st = WERK_FAIL(err, WERK_E_OOM, "%s: tokenizer merges: out of memory", path);
                goto fail;
            }
            smap_put(&tok->merge_map, c, (uint32_t)ms[i].len, (int32_t)i, false);
        }
        if ((st = werk_tok_bpe_init_pre(tok, pre, path, err))) {
            goto fail;
        }
    }
    *out = tok;
    return WERK_OK;
fail:
    werk_tokenizer_free(tok);
    return st;
}

// ---- merge loop (both models) ---------------------------------------------------------

void werk_tok_idvec_push(idvec *v, int32_t id) {
    if (v->oom) {
        return;
    }
    if (v->n == v->cap) {
        int64_t  cap = v->cap ? v->cap * 2 : 64;
        int32_t *p   = realloc(v->p, (size_t)cap * sizeof(int32_t));
        if (!p) {
            v->oom = true;
            return;
        }
        v->p   = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
}

static bool bigram_before(const bigram *a, const bigram *b) {
    return a->prio > b->prio || (a->prio == b->prio && a->left < b->left);
}

static void heap_push(heap *h, bigram b) {
    if (h->oom) {
        return;
    }
    if (h->n == h->cap) {
        int64_t cap = h->cap ? h->cap * 2 : 64;
        bigram *p   = realloc(h->p, (size_t)cap * sizeof(bigram));
        if (!p) {
            h->oom = true;
            return;
        }
        h->p   = p;
        h->cap = cap;
    }
    int64_t i = h->n++;
    while (i > 0) {
        int64_t par = (i - 1) / 2;
        if (!bigram_before(&b, &h->p[par])) {
            break;
        }
        h->p[i] = h->p[par];
        i       = par;
    }
    h->p[i] = b;
}

static bigram heap_pop(heap *h) {
    bigram  top  = h->p[0];
    bigram  last = h->p[--h->n];
    int64_t i    = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= h->n) {
            break;
        }
        if (c + 1 < h->n && bigram_before(&h->p[c + 1], &h->p[c])) {
            c++;
        }
        if (!bigram_before(&h->p[c], &last)) {
            break;
        }
        h->p[i] = h->p[c];
        i       = c;
    }
    if (h->n > 0) {
        h->p[i] = last;
    }
    return top;
}

static void try_bigram(merge_ctx *m, int64_t l, int64_t r) {
    if (l < 0 || r < 0) {
        return;
    }
    const symbol *a = &m->sym[l], *b = &m->sym[r];
    if (m->tok->kind == KIND_SPM) {
        int32_t id = werk_tok_smap_get(&m->tok->tok_map, m->text + a->off, (size_t)(a->n + b->n));
        if (id < 0) {
            return;
        }
        heap_push(&m->q, (bigram){m->tok->vocab[id].score, l, r, (uint64_t)(a->n + b->n)});
    } else {
        size_t need = (size_t)(a->n + b->n + 1);
        if (need > m->scratch_cap) {
            size_t cap = need * 2;
            char  *p   = realloc(m->scratch, cap);
            if (!p) {
                m->oom = true;
                return;
            }
            m->scratch     = p;
            m->scratch_cap = cap;
        }
        memcpy(m->scratch, m->text + a->off, (size_t)a->n);
        m->scratch[a->n] = ' ';
        memcpy(m->scratch + a->n + 1, m->text + b->off, (size_t)b->n);
        int32_t rank = werk_tok_smap_get(&m->tok->merge_map, m->scratch, need);
        if (rank < 0) {
            return;
        }
        heap_push(&m->q, (bigram){-(double)rank, l, r, (uint64_t)(a->n + b->n)});
    }
}

/* Splits text[0..len) into UTF-8 chars and merges pairs by priority; leaves the linked list
 * of surviving symbols in m->sym (first is index 0). */
bool werk_tok_merge_run(merge_ctx *m, const char *text, int64_t len) {
    m->text  = text;
    m->n_sym = 0;
    m->q.n   = 0;
    for (int64_t off = 0; off < len;) {
        /* One UTF-8 char; an invalid sequence is split into single bytes (llama.cpp keeps the
         * lead byte's length, which can swallow a following U+2581 and lose a space). */
        int64_t cl = (int64_t)werk_tok_utf8_len((uint8_t)text[off]);
        if (cl > len - off) {
            cl = 1;
        }
        for (int64_t j = 1; j < cl; j++) {
            if (((uint8_t)text[off + j] & 0xC0) != 0x80) {
                cl = 1;
            }
        }
        m->sym[m->n_sym] = (symbol){off, cl, m->n_sym - 1, off + cl == len ? -1 : m->n_sym + 1};
        m->n_sym++;
        off += cl;
    }
    for (int64_t i = 1; i < m->n_sym; i++) {
        try_bigram(m, i - 1, i);
    }
    while (m->q.n > 0 && !m->q.oom && !m->oom) {
        bigram  b = heap_pop(&m->q);
        symbol *l = &m->sym[b.left], *r = &m->sym[b.right];
        if (l->n == 0 || r->n == 0 || (uint64_t)(l->n + r->n) != b.size || l->next != b.right) {
            continue;
        }
        l->n += r->n;
        r->n    = 0;
        l->next = r->next;
        if (r->next >= 0) {
            m->sym[r->next].prev = b.left;
        }
        try_bigram(m, l->prev, b.left);
        try_bigram(m, b.left, l->next);
    }
    return !(m->q.oom || m->oom);
}

// ---- encode ---------------------------------------------------------------------------

/* Longest special token starting at text[i], or -1. */
static int32_t
match_special(const werk_tokenizer *tok, const char *text, size_t len, size_t i, bool parse_special) {
    uint8_t c = (uint8_t)text[i];
    for (int32_t j = tok->special_start[c]; j < tok->special_start[c + 1]; j++) {
        const tok_entry *e = &tok->vocab[tok->special[j]];
        if (!parse_special && e->type != TT_USER) {
            continue;
        }
        if (e->len <= len - i && memcmp(text + i, e->text, e->len) == 0) {
            return tok->special[j];
        }
    }
    return -1;
}

werk_status werk_tokenizer_encode(const werk_tokenizer *tok,
                                  const char           *text,
                                  size_t                len,
                                  bool                  add_bos,
                                  bool                  parse_special,
                                  int32_t             **ids,
                                  int64_t              *n_ids,
                                  werk_err             *err) {
    *ids                   = NULL;
    *n_ids                 = 0;
    idvec     out          = {0};
    merge_ctx m            = {.tok = tok};
    bool      ok           = true;
    bool      prev_special = true; // SPM: a fragment at the start or after a special gets the space prefix
    if (add_bos && tok->bos >= 0) {
        werk_tok_idvec_push(&out, tok->bos);
    }
    size_t start = 0;
    for (size_t i = 0; ok && i <= len;) {
        int32_t sp = i < len ? match_special(tok, text, len, i, parse_special) : -1;
        if (sp < 0 && i < len) {
            i++;
            continue;
        }
        if (i > start) {
            if (tok->kind == KIND_SPM) {
                ok = werk_tok_spm_fragment(tok, &m, text + start, i - start,
                                           tok->add_space_prefix && prev_special, &out);
            } else {
                ok = werk_tok_bpe_fragment(tok, &m, text + start, i - start, &out);
            }
            prev_special = false;
        }
        if (sp < 0) {
            break; // i == len
        }
        werk_tok_idvec_push(&out, sp);
        prev_special = true;
        i += tok->vocab[sp].len;
        start = i;
    }
    free(m.q.p);
    free(m.scratch);
    if (!ok || out.oom) {
        free(out.p);
        return WERK_FAIL(err, WERK_E_OOM, "tokenize: out of memory for %zu bytes of text", len);
    }
    if (!out.p) {
        out.p = werk_malloc(sizeof(int32_t)); // a valid pointer even for no ids
        if (!out.p) {
            return WERK_FAIL(err, WERK_E_OOM, "tokenize: out of memory");
        }
    }
    *ids   = out.p;
    *n_ids = out.n;
    return WERK_OK;
}

// ---- decode ---------------------------------------------------------------------------

size_t werk_tokenizer_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    if (id < 0 || id >= tok->n_vocab) {
        return 0;
    }
    const tok_entry *e = &tok->vocab[id];
    if (e->type == TT_CONTROL || e->type == TT_USER) {
        return werk_tok_put(buf, cap, 0, e->text, e->len);
    }
    return tok->kind == KIND_SPM ? werk_tok_spm_piece(tok, id, buf, cap)
                                 : werk_tok_bpe_piece(tok, id, buf, cap);
}

werk_status werk_tokenizer_decode(
    const werk_tokenizer *tok, const int32_t *ids, int64_t n_ids, char **text, size_t *len, werk_err *err) {
    *text          = NULL;
    *len           = 0;
    werk_strbuf sb = {0};
    char        small[256];
    bool        first = true;
    for (int64_t i = 0; i < n_ids; i++) {
        if (i == 0 && ids[0] == tok->bos && tok->bos >= 0) {
            continue;
        }
        size_t n   = werk_tokenizer_piece(tok, ids[i], small, sizeof(small));
        char  *p   = small;
        char  *big = NULL;
        if (n > sizeof(small)) {
            big = werk_malloc(n);
            if (!big) {
                werk_strbuf_free(&sb);
                return WERK_FAIL(err, WERK_E_OOM, "detokenize: out of memory");
            }
            werk_tokenizer_piece(tok, ids[i], big, n);
            p = big;
        }
        if (first && tok->add_space_prefix && n > 0 && p[0] == ' ') {
            p++, n--;
        }
        first = false;
        werk_strbuf_put(&sb, p, n);
        free(big);
    }
    werk_strbuf_put(&sb, "", 0);
    if (sb.oom || !sb.p) {
        werk_strbuf_free(&sb);
        return WERK_FAIL(err, WERK_E_OOM, "detokenize: out of memory");
    }
    *text = sb.p;
    *len  = sb.n;
    return WERK_OK;
}
