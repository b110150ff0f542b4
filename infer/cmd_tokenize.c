/* infer/cmd_tokenize.c - `werk tokenize`: text -> token ids with a model's tokenizer
 *
 * werk tokenize --model M.gguf (--text T | --file F) [--bos] prints the ids, space
 * separated, on one line. Special tokens written in the text ("<start_of_turn>") are parsed.
 */
#include "infer/infer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: werk tokenize --model M.gguf (--text T | --file F) [--bos]\n"
               "  prints the token ids of the text, space separated, on one line\n"
               "  --bos   prepend the vocab's BOS token\n");
}

int werk_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL;
    bool        bos = false;
    werk_err    err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--bos") == 0) {
            bos = true;
        } else if (strcmp(a, "--model") == 0 || strcmp(a, "--text") == 0 || strcmp(a, "--file") == 0) {
            if (i + 1 >= argc) {
                WERK_FAIL(&err, WERK_E_ARG, "tokenize: %s needs a value", a);
                return werk_err_report(&err);
            }
            const char *v = argv[++i];
            if (a[2] == 'm') {
                model = v;
            } else if (a[2] == 't') {
                text = v;
            } else {
                file = v;
            }
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "tokenize: unknown argument '%s' (see 'werk tokenize --help')", a);
            return werk_err_report(&err);
        }
    }
    if (!model || (!text) == (!file)) {
        usage(stderr);
        return 2;
    }
    char  *buf = NULL;
    size_t len = 0;
    if (file) {
        if (werk_read_file(file, (size_t)1 << 34, &buf, &len, &err)) {
            return werk_err_report(&err);
        }
    }
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    int32_t        *ids = NULL;
    int64_t         n   = 0;
    int             rc  = 0;
    if (werk_gguf_read(model, &g, &err) || werk_tokenizer_init(g, &tok, &err) ||
        werk_tokenizer_encode(tok, file ? buf : text, file ? len : strlen(text), bos, true, &ids, &n, &err)) {
        rc = werk_err_report(&err);
    } else {
        for (int64_t i = 0; i < n; i++) {
            printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
        }
        printf("\n");
    }
    free(ids);
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
    free(buf);
    return rc;
}
