/* convert/convert_open.c - opens any input `werk convert` accepts as one werk_gguf
 *
 * Detection, in order: a folder with config.json or tokenizer files -> HF dir; a PEFT
 * adapter folder (adapter_config.json) -> not a base model (adapters are merged with
 * `--lora`); a file starting with "GGUF" -> GGUF; a *.safetensors file -> the HF dir it
 * lives in; anything else -> llama2.c checkpoint (whose importer validates the size
 * exactly, so a random file is rejected). A llama2.c checkpoint takes its tokenizer from
 * `vocab`, else from tokenizer.bin beside it when present.
 */
#define _GNU_SOURCE
#include "convert/convert.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool path_exists(const char *dir, const char *name) {
    char        p[4096];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

werk_status werk_convert_open(const char *in, const char *vocab, werk_gguf **out, werk_err *err) {
    *out = NULL;
    struct stat st;
    if (stat(in, &st) != 0) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open: %s", in, strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) {
        if (path_exists(in, "adapter_config.json") && !path_exists(in, "config.json")) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: this is a PEFT adapter folder, not a base model (adapters are merged with "
                             "'werk convert BASE OUT --lora DIR')",
                             in);
        }
        if (!path_exists(in, "config.json") && !path_exists(in, "tokenizer.json") &&
            !path_exists(in, "tokenizer.model")) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: folder has no config.json (not an HF model folder)", in);
        }
        return werk_hf_import(in, out, err);
    }
    if (!S_ISREG(st.st_mode)) {
        return WERK_FAIL(err, WERK_E_IO, "%s: not a regular file or folder", in);
    }
    char  magic[4] = {0};
    FILE *f        = fopen(in, "rb");
    if (!f) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open: %s", in, strerror(errno));
    }
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got == 4 && memcmp(magic, "GGUF", 4) == 0) {
        return werk_gguf_read(in, out, err);
    }
    char *copy = strdup(in);
    if (!copy) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    const char *dir = dirname(copy);
    werk_status s;
    if (has_suffix(in, ".safetensors")) {
        if (!path_exists(dir, "config.json")) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: no config.json beside this .safetensors file", in);
        } else {
            s = werk_hf_import(dir, out, err);
        }
    } else if (has_suffix(in, ".json")) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: give the model folder, not a JSON file", in);
    } else {
        char tok[4096];
        if (!vocab) {
            snprintf(tok, sizeof(tok), "%s/tokenizer.bin", dir);
            struct stat ts;
            if (stat(tok, &ts) == 0 && strcmp(tok, in) != 0) {
                werk_log(WERK_LOG_INFO, "%s: using tokenizer %s", in, tok);
                vocab = tok;
            }
        }
        s = werk_llama2c_import(in, vocab, out, err);
    }
    free(copy);
    return s;
}
