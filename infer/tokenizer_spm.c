/* infer/tokenizer_spm.c - SentencePiece-style BPE (tokenizer.ggml.model "llama": llama, gemma)
 *
 * Like llama.cpp's llm_tokenizer_spm: spaces become U+2581 (one prepended with
 * add_space_prefix at the start and after a special token), the text is split into UTF-8
 * chars, and the adjacent pair whose concatenation is a vocab token with the highest score
 * is merged first (priority queue; ties: leftmost). A final piece that is no token is
 * emitted as byte tokens <0xXX> (byte fallback), or as the unknown token without them.
 */
#include "infer/infer_int.h"

#include <stdlib.h>
#include <string.h>

static void spm_bytes(const werk_tokenizer *tok, const char *s, int64_t n, idvec *out) {
    for (int64_t j = 0; j < n; j++) {
        uint8_t c  = (uint8_t)s[j];
        int32_t id = tok->byte_tok[c];
        if (id < 0) {
            id = werk_tok_smap_get(&tok->tok_map, (const char *)&s[j], 1);
        }
        if (id < 0) {
            id = tok->unk;
        }
        if (id >= 0) {
            werk_tok_idvec_push(out, id);
        }
    }
}

/* One raw fragment: escape spaces (and prefix one), merge, emit. */
bool werk_tok_spm_fragment(
    const werk_tokenizer *tok, merge_ctx *m, const char *s, size_t n, bool prefix, idvec *out) {
    size_t n_sp = 0;
    for (size_t i = 0; i < n; i++) {
        n_sp += s[i] == ' ';
    }
    size_t tlen = n + 2 * n_sp + (prefix ? 3 : 0);
    char  *t    = werk_malloc(tlen + 1);
    m->sym      = werk_malloc((tlen + 1) * sizeof(symbol));
    if (!t || !m->sym) {
        free(t);
        return false;
    }
    size_t k = 0;
    if (prefix) {
        memcpy(t + k, "\xe2\x96\x81", 3), k += 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            memcpy(t + k, "\xe2\x96\x81", 3), k += 3;
        } else {
            t[k++] = s[i];
        }
    }
    bool ok = werk_tok_merge_run(m, t, (int64_t)tlen);
    if (ok && m->n_sym > 0) {
        for (int64_t i = 0; i != -1; i = m->sym[i].next) {
            const symbol *sy = &m->sym[i];
            int32_t       id = werk_tok_smap_get(&tok->tok_map, t + sy->off, (size_t)sy->n);
            if (id >= 0) {
                werk_tok_idvec_push(out, id);
            } else {
                spm_bytes(tok, t + sy->off, sy->n, out);
            }
        }
    }
    free(t);
    free(m->sym);
    m->sym = NULL;
    return ok;
}

size_t werk_tok_spm_piece(const werk_tokenizer *tok, int32_t id, char *buf, size_t cap) {
    const tok_entry *e = &tok->vocab[id];
    if (e->type == TT_BYTE) {
        for (int b = 0; b < 256; b++) {
            if (tok->byte_tok[b] == id) {
                char c = (char)b;
                return werk_tok_put(buf, cap, 0, &c, 1);
            }
        }
    }
    if (e->type == TT_UNKNOWN) {
        return werk_tok_put(buf, cap, 0, "\xe2\x96\x85", 3);
    }
    size_t k = 0;
    for (uint32_t i = 0; i < e->len;) {
        if (i + 3 <= e->len && memcmp(e->text + i, "\xe2\x96\x81", 3) == 0) {
            k = werk_tok_put(buf, cap, k, " ", 1);
            i += 3;
        } else {
            k = werk_tok_put(buf, cap, k, e->text + i, 1);
            i++;
        }
    }
    return k;
}
