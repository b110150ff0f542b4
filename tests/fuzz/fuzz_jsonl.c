/* tests/fuzz/fuzz_jsonl.c - libFuzzer target: training sets (JSONL reader, packing, splits)
 *
 * Input: one byte of flags (bit 0: name the file .jsonl.zst; 1: pack; 2: skip bad lines;
 * 3: train on inputs; 4: no truncation; 5: a chatml template; 6: a gemma template; 7: no
 * BOS), one byte choosing seq (2..65), then the file's bytes. The file is loaded with
 * werk_dataset_load; with $WERK_FIXTURES the llama SPM vocab fixture is the tokenizer (text
 * and messages records), without it only pre-tokenized records can load. Any input must
 * give either a dataset whose rows keep the invariants (targets inside one document and
 * the vocab, pos restarting at 0 at each document, doc ids rising, statistics that match
 * the rows; a split that keeps every row once), or an error with a one-line message.
 * Seeds: tests/fuzz/corpus/fuzz_jsonl/ (replayed by ctest as fuzz/fuzz_jsonl_corpus).
 */
#define _GNU_SOURCE
#include "datasets/datasets.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static werk_tokenizer *fuzz_tok; // loaded once (the fuzzer's process lives for many inputs)
static bool            fuzz_tok_tried;

static const werk_tokenizer *tokenizer(void) {
    if (!fuzz_tok_tried) {
        fuzz_tok_tried   = true;
        const char *root = getenv("WERK_FIXTURES");
        char        path[4096];
        werk_gguf  *g   = NULL;
        werk_err    err = {0};
        snprintf(path, sizeof(path), "%s/vocab/ggml-vocab-llama-spm.gguf", root ? root : ".");
        if (root && werk_gguf_read(path, &g, &err) == WERK_OK) {
            (void)werk_tokenizer_init(g, &fuzz_tok, &err);
        }
        werk_gguf_free(g);
    }
    return fuzz_tok;
}

static void check_rows(const werk_dataset *ds, int64_t n_vocab) {
    int64_t  T = werk_dataset_seq(ds), R = werk_dataset_n_rows(ds), n_scored = 0, n_real = 0;
    int32_t *tok = malloc((size_t)T * sizeof(int32_t)), *tgt = malloc((size_t)T * sizeof(int32_t));
    int32_t *pos = malloc((size_t)T * sizeof(int32_t)), *doc = malloc((size_t)T * sizeof(int32_t));
    if (!tok || !tgt || !pos || !doc) {
        abort();
    }
    for (int64_t r = 0; r < R; r++) {
        werk_dataset_row(ds, r, tok, tgt, pos, doc);
        if (doc[0] != 0 || pos[0] != 0) {
            __builtin_trap();
        }
        for (int64_t t = 0; t < T; t++) {
            if (tok[t] < 0 || (n_vocab > 0 && tok[t] >= n_vocab)) {
                __builtin_trap();
            }
            if (t > 0 && doc[t] != doc[t - 1] && (doc[t] != doc[t - 1] + 1 || pos[t] != 0)) {
                __builtin_trap(); // documents are consecutive ids starting at position 0
            }
            if (t > 0 && doc[t] == doc[t - 1] && pos[t] != pos[t - 1] + 1 && pos[t] != 0) {
                __builtin_trap();
            }
            if (tgt[t] != WERK_LABEL_IGNORE) {
                n_scored++;
                if (tgt[t] < 0 || (n_vocab > 0 && tgt[t] >= n_vocab) || t + 1 >= T || doc[t + 1] != doc[t] ||
                    pos[t + 1] != pos[t] + 1) {
                    __builtin_trap(); // a target is the next token of the same document
                }
            }
        }
        // kept documents have >= 2 tokens, so the real tokens end after the last pos > 0;
        // the rest is padding: token 0, pos 0, unscored, one document of its own
        int64_t end = T;
        while (end > 0 && pos[end - 1] == 0) {
            end--;
        }
        for (int64_t t = end; t < T; t++) {
            if (tok[t] != 0 || tgt[t] != WERK_LABEL_IGNORE || doc[t] != doc[end]) {
                __builtin_trap();
            }
        }
        n_real += end;
    }
    werk_dataset_stats st;
    werk_dataset_get_stats(ds, &st);
    if (st.n_rows != R || st.n_scored != n_scored || st.n_tokens != n_real || st.n_records < R) {
        __builtin_trap();
    }
    free(tok);
    free(tgt);
    free(pos);
    free(doc);
}

static int64_t first_tokens_sum(const werk_dataset *ds) {
    int64_t  s = 0, T = werk_dataset_seq(ds);
    int32_t *tok = malloc((size_t)T * sizeof(int32_t));
    for (int64_t r = 0; tok && r < werk_dataset_n_rows(ds); r++) {
        werk_dataset_row(ds, r, tok, NULL, NULL, NULL);
        for (int64_t t = 0; t < T; t++) {
            s += tok[t];
        }
    }
    free(tok);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) {
        return 0;
    }
    uint8_t flags = data[0];
    char    path[256];
    snprintf(path, sizeof(path), "/tmp/werk_fuzz_jsonl.%ld%s", (long)getpid(),
             flags & 1 ? ".jsonl.zst" : ".jsonl");
    FILE *f = fopen(path, "wb");
    if (!f) {
        return 0;
    }
    fwrite(data + 2, 1, size - 2, f);
    fclose(f);
    const werk_tokenizer *tok = tokenizer();
    werk_dataset_opts     o   = {0};
    o.seq                     = 2 + data[1] % 64;
    o.pack                    = flags & 2;
    o.skip_bad_lines          = flags & 4;
    o.train_on_inputs         = flags & 8;
    o.no_truncate             = flags & 16;
    o.no_bos                  = flags & 128;
    o.chat_template           = flags & 32 ? "<|im_start|>" : flags & 64 ? "<start_of_turn>" : NULL;
    o.n_vocab                 = tok ? 0 : 1000;
    int64_t       n_vocab     = tok ? werk_tokenizer_n_vocab(tok) : 1000;
    werk_dataset *ds          = NULL;
    werk_err      err         = {0};
    werk_status   st          = werk_dataset_load(path, tok, &o, &ds, &err);
    unlink(path);
    if (st != WERK_OK) {
        if (ds || !err.msg[0] || strchr(err.msg, '\n')) {
            __builtin_trap();
        }
        return 0;
    }
    check_rows(ds, n_vocab);
    int64_t R = werk_dataset_n_rows(ds), sum = first_tokens_sum(ds);
    if (R >= 2) {
        werk_dataset *val = NULL;
        if (werk_dataset_split(ds, 0.3, flags, &val, &err) != WERK_OK || !val) {
            __builtin_trap();
        }
        if (werk_dataset_n_rows(ds) + werk_dataset_n_rows(val) != R || werk_dataset_n_rows(val) < 1 ||
            werk_dataset_n_rows(ds) < 1 || first_tokens_sum(ds) + first_tokens_sum(val) != sum) {
            __builtin_trap();
        }
        check_rows(val, n_vocab);
        werk_dataset_free(val);
    }
    int64_t *perm = malloc((size_t)R * sizeof(int64_t));
    char    *seen = calloc((size_t)R, 1);
    if (perm && seen) {
        werk_dataset_shuffle(perm, R, size, flags);
        for (int64_t i = 0; i < R; i++) {
            if (perm[i] < 0 || perm[i] >= R || seen[perm[i]]++) {
                __builtin_trap();
            }
        }
    }
    free(perm);
    free(seen);
    werk_dataset_free(ds);
    return 0;
}
