/* infer/cmd_logits.c - `werk logits`: full logits of a few records, for parity checks
 *
 * werk logits --model M.gguf [--lora PATH | --lora-scaled PATH S]... --data F.jsonl --out O.safetensors
 *
 * Runs the reference forward pass (werk_forward_lora: the same math as eval and the
 * trainer) on each record of F (.jsonl / .jsonl.zst in the formats of datasets.h; text
 * records are tokenized with the model's tokenizer; without one, pre-tokenized records only) and writes
 * tensor "record.<i>" [n_tokens, n_vocab] f32 per record, plus "tokens.<i>" [n_tokens] (i32 as f32 exact
 * integers would lose ids above 2^24, so they are stored as I32), into O atomically. This
 * is a debugging tool for comparing werk with other implementations (HF transformers +
 * PEFT, llama.cpp) logit for logit; it refuses inputs whose logits exceed 2 GiB. `werk
 * eval` is the streaming tool for real data.
 */
#include "convert/convert.h"
#include "datasets/datasets.h"
#include "infer/infer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LORAS 8
#define MAX_RECORDS 4096
#define MAX_LOGIT_BYTES ((uint64_t)2 << 30)

static void usage(FILE *f) {
    fprintf(f, "usage: werk logits --model M.gguf [--lora PATH]... --data F.jsonl --out O.safetensors\n"
               "Writes the full logits of every record of F (tensor record.<i> [tokens, vocab] f32,\n"
               "tokens.<i> [tokens] i32) for logit-by-logit comparisons with other tools.\n"
               "  --lora PATH          adapter (PEFT dir or LoRA .gguf), scale 1 (repeatable)\n"
               "  --lora-scaled PATH S adapter with scale S\n");
}

typedef struct records {
    float           **logits;
    int32_t         **ids;
    int64_t          *n;
    werk_gguf_tensor *t;
    int64_t           count;
    uint64_t          bytes;
} records;

static void records_free(records *r) {
    for (int64_t i = 0; i < r->count; i++) {
        free(r->logits[i]);
        free(r->ids[i]);
        free((char *)r->t[2 * i].name);
        free((char *)r->t[2 * i + 1].name);
    }
    free(r->logits), free(r->ids), free(r->n), free(r->t);
}

static werk_status run(const char             *data,
                       const werk_model       *m,
                       const werk_tokenizer   *tok,
                       const werk_lora *const *ls,
                       int                     n_loras,
                       records                *r,
                       werk_err               *err) {
    werk_jsonl *jl  = NULL;
    werk_record rec = {0};
    bool        eof = false;
    int64_t     V   = werk_model_n_vocab(m);
    r->logits       = calloc(MAX_RECORDS, sizeof(float *));
    r->ids          = calloc(MAX_RECORDS, sizeof(int32_t *));
    r->n            = calloc(MAX_RECORDS, sizeof(int64_t));
    r->t            = calloc(2 * MAX_RECORDS, sizeof(werk_gguf_tensor));
    if (!r->logits || !r->ids || !r->n || !r->t) {
        return WERK_FAIL(err, WERK_E_OOM, "logits: out of memory");
    }
    werk_status st = werk_datasets_open_jsonl(data, 0, &jl, err);
    while (!st) {
        st = werk_datasets_next_record(jl, tok, V, &rec, &eof, err);
        if (st || eof) {
            break;
        }
        uint64_t b = (uint64_t)rec.n * (uint64_t)V * sizeof(float);
        if (r->count == MAX_RECORDS || r->bytes + b > MAX_LOGIT_BYTES) {
            st = WERK_FAIL(err, WERK_E_ARG,
                           "logits: %s: more than %d records or 2 GiB of logits (use werk eval)", data,
                           MAX_RECORDS);
            break;
        }
        int64_t i    = r->count;
        r->logits[i] = malloc(b);
        r->ids[i]    = malloc((size_t)rec.n * sizeof(int32_t));
        char *n1 = malloc(32), *n2 = malloc(32);
        if (!r->logits[i] || !r->ids[i] || !n1 || !n2) {
            free(n1), free(n2);
            st = WERK_FAIL(err, WERK_E_OOM, "logits: out of memory for record %lld", (long long)i + 1);
            break;
        }
        r->count++;
        r->bytes += b;
        r->n[i] = rec.n;
        memcpy(r->ids[i], rec.ids, (size_t)rec.n * sizeof(int32_t));
        snprintf(n1, 32, "record.%lld", (long long)i);
        snprintf(n2, 32, "tokens.%lld", (long long)i);
        r->t[2 * i]     = (werk_gguf_tensor){.name     = n1,
                                             .n_dims   = 2,
                                             .shape    = {rec.n, V, 1, 1},
                                             .type     = WERK_DTYPE_F32,
                                             .src_type = WERK_DTYPE_F32,
                                             .data     = r->logits[i],
                                             .nbytes   = b};
        r->t[2 * i + 1] = (werk_gguf_tensor){.name     = n2,
                                             .n_dims   = 1,
                                             .shape    = {rec.n, 1, 1, 1},
                                             .type     = WERK_DTYPE_I32,
                                             .src_type = WERK_DTYPE_I32,
                                             .data     = r->ids[i],
                                             .nbytes   = (uint64_t)rec.n * sizeof(int32_t)};
        st              = werk_forward_lora(m, ls, n_loras, rec.ids, 1, rec.n, r->logits[i], err);
    }
    werk_datasets_free_record(&rec);
    werk_datasets_close_jsonl(jl);
    return st;
}

int werk_cmd_logits(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *out = NULL, *loras[MAX_LORAS];
    float       scales[MAX_LORAS];
    int         n_loras = 0;
    werk_err    err     = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        bool scaled = !strcmp(a, "--lora-scaled");
        if (scaled || !strcmp(a, "--lora")) {
            char *end = NULL;
            float sc  = scaled && i + 2 < argc ? strtof(argv[i + 2], &end) : 1.0f;
            if (n_loras == MAX_LORAS || i + 1 + scaled >= argc || (scaled && (!*argv[i + 2] || *end))) {
                WERK_FAIL(&err, WERK_E_ARG, "logits: %s needs %s (%d adapters at most)", a,
                          scaled ? "PATH S" : "PATH", MAX_LORAS);
                return werk_err_report(&err);
            }
            scales[n_loras]  = sc;
            loras[n_loras++] = argv[i + 1];
            i += 1 + scaled;
            continue;
        }
        if ((strcmp(a, "--model") && strcmp(a, "--data") && strcmp(a, "--out")) || i + 1 >= argc) {
            WERK_FAIL(&err, WERK_E_ARG, "logits: unknown argument or missing value '%s' (see --help)", a);
            return werk_err_report(&err);
        }
        const char *v                                                           = argv[++i];
        *(!strcmp(a, "--model") ? &model : !strcmp(a, "--data") ? &data : &out) = v;
    }
    if (!model || !data || !out) {
        usage(stderr);
        return 2;
    }
    werk_gguf      *g             = NULL;
    werk_model     *m             = NULL;
    werk_tokenizer *tok           = NULL;
    werk_lora      *ls[MAX_LORAS] = {0};
    records         r             = {0};
    werk_status     st            = werk_gguf_read(model, &g, &err);
    if (!st) {
        st = werk_model_load(g, &m, &err);
    }
    if (!st && werk_tokenizer_init(g, &tok, &err)) {
        tok = NULL; // no usable tokenizer: pre-tokenized records only
        err = (werk_err){0};
    }
    for (int i = 0; !st && i < n_loras; i++) {
        st = werk_lora_load(loras[i], m, scales[i], &ls[i], &err);
    }
    if (!st) {
        st = run(data, m, tok, (const werk_lora *const *)ls, n_loras, &r, &err);
    }
    if (!st) {
        const werk_gguf_tensor **tp = malloc((size_t)(2 * r.count + 1) * sizeof(*tp));
        if (!tp) {
            st = WERK_FAIL(&err, WERK_E_OOM, "logits: out of memory");
        } else {
            for (int64_t i = 0; i < 2 * r.count; i++) {
                tp[i] = &r.t[i];
            }
            st = werk_st_write(out, tp, 2 * r.count, NULL, NULL, 0, &err);
            free(tp);
        }
    }
    records_free(&r);
    for (int i = 0; i < n_loras; i++) {
        werk_lora_free(ls[i]);
    }
    werk_tokenizer_free(tok);
    werk_model_free(m);
    werk_gguf_free(g);
    return st ? werk_err_report(&err) : 0;
}
