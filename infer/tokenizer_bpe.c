/* infer/tokenizer_bpe.c - byte-level BPE (tokenizer.ggml.model "gpt2": gpt-2, llama 3, qwen2, smollm)
 *
 * Like llama.cpp's llm_tokenizer_bpe: the text is cut into words by the pre-tokenizer
 * regexes of tokenizer.ggml.pre (each regex splits the pieces left by the one before; text
 * between matches stays a piece), every byte of a word becomes one code point of GPT-2's
 * byte-to-unicode table, and adjacent symbols are merged by the lowest merge rank
 * (priority queue; ties: leftmost). llama-bpe (ignore_merges) takes a whole word that is a
 * vocab token as is. Regexes run in PCRE2 (UTF, UCP, MATCH_INVALID_UTF: invalid bytes never
 * match and stay pieces of their own; JIT when available).
 */
#include "infer/infer_int.h"

#include <stdlib.h>
#include <string.h>

// Pre-tokenizer regexes per tokenizer.ggml.pre (llama.cpp llama-vocab.cpp, llm_tokenizer_bpe).
static const char *RE_GPT2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
static const char *RE_LLAMA3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *RE_QWEN2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static werk_status add_re(werk_tokenizer *tok, const char *pat, const char *path, werk_err *err) {
    int         ecode;
    PCRE2_SIZE  eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ecode, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof(msg));
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: pre-tokenizer regex: %s at %zu", path, (char *)msg,
                         (size_t)eoff);
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); // falls back to the interpreter
    tok->re[tok->n_re++] = re;
    return WERK_OK;
}

werk_status werk_tok_bpe_init_pre(werk_tokenizer *tok, const char *pre, const char *path, werk_err *err) {
    werk_status st = WERK_OK;
    if (!pre || strcmp(pre, "default") == 0) {
        if ((st = add_re(tok, "[\\p{P}\\$\\+<=>\\^~\\|]+", path, err)) ||
            (st = add_re(tok, RE_GPT2, path, err)) || (st = add_re(tok, "\\p{N}+", path, err)) ||
            (st = add_re(tok, "[0-9][0-9][0-9]", path, err))) {
            return st;
        }
    } else if (strcmp(pre, "gpt-2") == 0 || strcmp(pre, "phi-2") == 0) {
        st = add_re(tok, RE_GPT2, path, err);
    } else if (strcmp(pre, "llama-bpe") == 0 || strcmp(pre, "llama3") == 0) {
        st                 = add_re(tok, RE_LLAMA3, path, err);
        tok->ignore_merges = true;
    } else if (strcmp(pre, "qwen2") == 0 || strcmp(pre, "deepseek-r1-qwen") == 0) {
        st = add_re(tok, RE_QWEN2, path, err);
    } else if (strcmp(pre, "smollm") == 0) {
        if ((st = add_re(tok, "\\p{N}", path, err)) == WERK_OK) {
            st = add_re(tok, RE_GPT2, path, err);
        }
    } else {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported", path, pre);
    }
    return st;
}

/* One pre-tokenized word (raw bytes): byte-encode, merge by rank, emit. enc is scratch of at
 * least 2*n bytes, m->sym at least n symbols. */
static bool
bpe_word(const werk_tokenizer *tok, merge_ctx *m, const char *s, size_t n, char *enc, idvec *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t cp = tok->byte_to_cp[(uint8_t)s[i]];
        if (cp < 0x80) {
            enc[k++] = (char)cp;
        } else {
            enc[k++] = (char)(0xC0 | (cp >> 6));
            enc[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    if (tok->ignore_merges) {
        int32_t id = werk_tok_smap_get(&tok->tok_map, enc, k);
        if (id >= 0) {
            werk_tok_idvec_push(out, id);
            return true;
        }
    }
    if (!werk_tok_merge_run(m, enc, (int64_t)k)) {
        return false;
    }
    for (int64_t i = 0; m->n_sym > 0 && i != -1; i = m->sym[i].next) {
        const symbol *sy = &m->sym[i];
        int32_t       id = werk_tok_smap_get(&tok->tok_map, enc + sy->off, (size_t)sy->n);
        if (id >= 0) {
            werk_tok_idvec_push(out, id);
            continue;
        }
        for (int64_t j = 0; j < sy->n;) { // each byte-encoded char on its own
            int64_t cl = (int64_t)werk_tok_utf8_len((uint8_t)enc[sy->off + j]);
            if (cl > sy->n - j) {
                cl = sy->n - j;
            }
            int32_t c = werk_tok_smap_get(&tok->tok_map, enc + sy->off + j, (size_t)cl);
            if (c >= 0) {
                werk_tok_idvec_push(out, c);
            }
            j += cl;
        }
    }
    return true;
}

typedef struct span {
    size_t off, len;
} span;

typedef struct spanvec {
    span  *p;
    size_t n, cap;
    bool   oom;
} spanvec;

static void span_push(spanvec *v, size_t off, size_t len) {
    if (v->oom || len == 0) {
        return;
    }
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        span  *p   = realloc(v->p, cap * sizeof(span));
        if (!p) {
            v->oom = true;
            return;
        }
        v->p   = p;
        v->cap = cap;
    }
    v->p[v->n++] = (span){off, len};
}

bool werk_tok_bpe_fragment(const werk_tokenizer *tok, merge_ctx *m, const char *s, size_t n, idvec *out) {
    spanvec cur = {0}, nxt = {0};
    span_push(&cur, 0, n);
    bool ok = true;
    for (int r = 0; r < tok->n_re && ok; r++) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(tok->re[r], NULL);
        if (!md) {
            ok = false;
            break;
        }
        nxt.n = 0;
        for (size_t p = 0; p < cur.n; p++) {
            const char *sub  = s + cur.p[p].off;
            size_t      slen = cur.p[p].len, pos = 0, last = 0;
            while (pos < slen) {
                int rc = pcre2_match(tok->re[r], (PCRE2_SPTR)sub, slen, pos, 0, md, NULL);
                if (rc < 0) {
                    break;
                }
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t      a = ov[0], b = ov[1];
                if (a > last) {
                    span_push(&nxt, cur.p[p].off + last, a - last);
                }
                span_push(&nxt, cur.p[p].off + a, b - a);
                last = b;
                pos  = b > a ? b : b + 1; // empty match: step one byte
            }
            if (last < slen) {
                span_push(&nxt, cur.p[p].off + last, slen - last);
            }
        }
        pcre2_match_data_free(md);
        spanvec t = cur;
        cur       = nxt;
        nxt       = t;
        ok        = !cur.oom && !nxt.oom;
    }
    size_t maxw = 0;
    for (size_t i = 0; ok && i < cur.n; i++) {
        maxw = cur.p[i].len > maxw ? cur.p[i].len : maxw;
    }
    char *enc = ok ? werk_malloc(2 * maxw + 1) : NULL;
    m->sym    = ok ? werk_malloc((2 * maxw + 1) * sizeof(symbol)) : NULL;
    ok        = ok && enc && m->sym;
    for (size_t i = 0; ok && i < cur.n; i++) {
        ok = bpe_word(tok, m, s + cur.p[i].off, cur.p[i].len, enc, out);
    }
    free(enc);
    free(m->sym);
    m->sym = NULL;
    free(cur.p);
    free(nxt.p);
    return ok;
}

size_t werk_tok_bpe_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    const tok_entry *e = &tok->vocab[id];
    // byte-level: each code point of the text names one byte
    size_t k = 0;
    for (uint32_t i = 0; i < e->len;) {
        uint8_t  c  = (uint8_t)e->text[i];
        size_t   cl = werk_tok_utf8_len(c);
        uint32_t cp = 0;
        if (cl == 1) {
            cp = c;
        } else if (cl == 2 && i + 1 < e->len) {
            cp = ((uint32_t)(c & 0x1F) << 6) | ((uint8_t)e->text[i + 1] & 0x3F);
        } else {
            cp = 0xFFFFFFFF;
        }
        if (cp < 324 && tok->cp_valid[cp]) {
            char b = (char)tok->cp_to_byte[cp];
            k      = werk_tok_put(buf, cap, k, &b, 1);
        } else {
            if (cl > e->len - i) {
                cl = e->len - i;
            }
            k = werk_tok_put(buf, cap, k, e->text + i, cl);
        }
        i += (uint32_t)cl;
    }
    return k;
}
