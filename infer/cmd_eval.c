/* infer/cmd_eval.c - `werk eval`: loss / perplexity (and KLD against a reference) of a model
 *
 * werk eval --model M.gguf [--lora DIR]... --data F [--ref R.gguf] [--json] [--ctx N]
 * prints the result as text, or as one JSON object with --json. .txt windows are
 * min(model context, --ctx or 512) tokens.
 */
#define _POSIX_C_SOURCE 200809L
#include "infer/infer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LORAS 16

static void usage(FILE *f) {
    fprintf(f, "usage: werk eval --model M.gguf [--lora DIR]... --data F [--ref R.gguf] [--json] [--ctx N]\n"
               "  F: .jsonl / .jsonl.zst records ({\"text\"}, {\"prompt\",\"completion\"},\n"
               "     {\"input_ids\",\"labels\"}; label -100 = not scored) or text in sliding windows\n"
               "  --lora DIR  PEFT LoRA adapter applied at run time (repeatable)\n"
               "  --ref R     reference model: KL(ref || model) mean/median/p99, top-1 agreement\n"
               "  --ctx N     text window in tokens (default min(model context, 512))\n"
               "  --json      print one JSON object\n");
}

static int64_t model_ctx(const werk_gguf *g) {
    const char *arch  = NULL;
    bool        found = false;
    if (werk_gguf_get_str(g, "general.architecture", &arch, &found, NULL) || !found) {
        return 0;
    }
    char key[160];
    snprintf(key, sizeof(key), "%s.context_length", arch);
    uint32_t v = 0;
    if (werk_gguf_get_u32(g, key, &v, &found, NULL) || !found) {
        return 0;
    }
    return v;
}

int werk_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *ref = NULL, *loras[MAX_LORAS];
    int         n_loras = 0;
    bool        json    = false;
    int64_t     ctx     = 0;
    werk_err    err     = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--json") == 0) {
            json = true;
            continue;
        }
        if (strcmp(a, "--model") && strcmp(a, "--data") && strcmp(a, "--ref") && strcmp(a, "--lora") &&
            strcmp(a, "--ctx")) {
            WERK_FAIL(&err, WERK_E_ARG, "eval: unknown argument '%s' (see 'werk eval --help')", a);
            return werk_err_report(&err);
        }
        if (i + 1 >= argc) {
            WERK_FAIL(&err, WERK_E_ARG, "eval: %s needs a value", a);
            return werk_err_report(&err);
        }
        const char *v = argv[++i];
        if (strcmp(a, "--model") == 0) {
            model = v;
        } else if (strcmp(a, "--data") == 0) {
            data = v;
        } else if (strcmp(a, "--ref") == 0) {
            ref = v;
        } else if (strcmp(a, "--lora") == 0) {
            if (n_loras == MAX_LORAS) {
                WERK_FAIL(&err, WERK_E_ARG, "eval: at most %d --lora", MAX_LORAS);
                return werk_err_report(&err);
            }
            loras[n_loras++] = v;
        } else {
            char     *end = NULL;
            long long c   = strtoll(v, &end, 10);
            if (!*v || *end || c < 2 || c > (1 << 24)) {
                WERK_FAIL(&err, WERK_E_ARG, "eval: --ctx '%s' is not a context length in [2, 16777216]", v);
                return werk_err_report(&err);
            }
            ctx = c;
        }
    }
    if (!model || !data) {
        usage(stderr);
        return 2;
    }
    werk_gguf       *g = NULL, *rg = NULL;
    werk_model      *m = NULL, *rm = NULL;
    werk_tokenizer  *tok           = NULL;
    werk_lora       *ls[MAX_LORAS] = {0};
    werk_eval_result res           = {0};
    werk_status      st            = WERK_OK;
    st                             = werk_gguf_read(model, &g, &err);
    if (!st) {
        st = werk_model_load(g, &m, &err);
    }
    if (!st) {
        st = werk_tokenizer_init(g, &tok, &err);
    }
    for (int i = 0; !st && i < n_loras; i++) {
        st = werk_lora_load_peft(loras[i], m, 1.0f, &ls[i], &err);
    }
    if (!st && ref) {
        st = werk_gguf_read(ref, &rg, &err);
        if (!st) {
            st = werk_model_load(rg, &rm, &err);
        }
    }
    if (!st) {
        int64_t mc = model_ctx(g);
        int64_t n  = ctx ? ctx : 512;
        if (mc > 1 && mc < n) {
            n = mc;
        }
        const char *tmpl  = NULL;
        bool        found = false;
        if (werk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &found, NULL) || !found) {
            // no template stored (some Gemma GGUFs): gemma models all use the gemma turns
            const char *arch = NULL;
            bool        has  = false;
            tmpl             = NULL;
            if (!werk_gguf_get_str(g, "general.architecture", &arch, &has, NULL) && has &&
                strncmp(arch, "gemma", 5) == 0) {
                tmpl = "<start_of_turn>";
            }
        }
        werk_eval_opts o = {m, (const werk_lora *const *)ls, n_loras, rm, tok, n, tmpl};
        st               = werk_eval_file(&o, data, &res, &err);
    }
    int rc = 0;
    if (st) {
        rc = werk_err_report(&err);
    } else if (json) {
        printf("{\"records\": %" PRId64 ", \"tokens\": %" PRId64 ", \"loss\": %.17g, \"ppl\": %.17g",
               res.n_records, res.n_scored, res.loss, res.ppl);
        if (res.has_ref) {
            printf(", \"ref_loss\": %.17g, \"ref_ppl\": %.17g, \"delta_ppl\": %.17g, \"kld_mean\": %.17g, "
                   "\"kld_median\": %.17g, \"kld_p99\": %.17g, \"top1\": %.17g",
                   res.ref_loss, res.ref_ppl, res.ppl - res.ref_ppl, res.kld_mean, res.kld_median,
                   res.kld_p99, res.top1);
        }
        printf("}\n");
    } else {
        printf("records    %" PRId64 "\ntokens     %" PRId64 "\nloss       %.9f\nperplexity %.6f\n",
               res.n_records, res.n_scored, res.loss, res.ppl);
        if (res.has_ref) {
            printf("ref ppl    %.6f\ndelta ppl  %.6f\nKLD mean   %.9f\nKLD median %.9f\nKLD p99    %.9f\n"
                   "top-1      %.6f\n",
                   res.ref_ppl, res.ppl - res.ref_ppl, res.kld_mean, res.kld_median, res.kld_p99, res.top1);
        }
    }
    for (int i = 0; i < n_loras; i++) {
        werk_lora_free(ls[i]);
    }
    werk_tokenizer_free(tok);
    werk_model_free(m);
    werk_model_free(rm);
    werk_gguf_free(g);
    werk_gguf_free(rg);
    return rc;
}
