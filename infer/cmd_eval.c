/* infer/cmd_eval.c - `werk eval`: loss / perplexity (and KLD against a reference) of a model
 *
 * werk eval --model M.gguf [--lora PATH]... --data F [--ref R.gguf] [--json] [--ctx N] [--report DIR]
 * prints the result as text, or as one JSON object with --json. .txt windows are
 * min(model context, --ctx or 512) tokens. --report DIR writes, each file atomically:
 * report.json (every figure of --json plus the inputs and the run time), records.jsonl
 * (one line per record / window: its tokens, scored tokens, loss, and with --ref its
 * reference loss, mean KLD and top-1 agreement) and report.md (a short table).
 */
#define _POSIX_C_SOURCE 200809L
#include "infer/infer.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_LORAS 16

static void usage(FILE *f) {
    fprintf(f, "usage: werk eval --model M.gguf [--lora PATH]... --data F [--ref R.gguf] [--json] [--ctx N]\n"
               "  F: .jsonl / .jsonl.zst records ({\"text\"}, {\"prompt\",\"completion\"},\n"
               "     {\"input_ids\",\"labels\"}; label -100 = not scored) or text in sliding windows\n"
               "  --lora PATH LoRA adapter (PEFT dir or llama.cpp LoRA .gguf) applied at run time\n"
               "              (repeatable); --lora-scaled PATH S scales its update by S\n"
               "  --ref R     reference model: KL(ref || model) mean/median/p99, top-1 agreement\n"
               "  --ctx N     text window in tokens (default min(model context, 512))\n"
               "  --json      print one JSON object\n"
               "  --report DIR  write report.json, records.jsonl and report.md into DIR\n"
               "  --vocab-chunk N  LM head rows per chunk (default: ~8 MiB of logits)\n");
}

/* --report: records.jsonl is streamed into an atomic file while eval runs. */
typedef struct report_ctx {
    werk_afile records;
    bool       has_ref;
} report_ctx;

static werk_status report_record(void *user, const werk_eval_record *r, werk_err *err) {
    report_ctx *rc = user;
    char        line[512];
    double      ns = r->n_scored > 0 ? (double)r->n_scored : 1;
    int n = snprintf(line, sizeof(line), "{\"index\": %" PRId64 ", \"line\": %" PRId64 ", \"tokens\": %" PRId64
                     ", \"scored\": %" PRId64 ", \"nll\": %.17g, \"loss\": %.17g",
                     r->index, r->line, r->n_tokens, r->n_scored, r->nll, r->nll / ns);
    if (rc->has_ref) {
        n += snprintf(line + n, sizeof(line) - (size_t)n,
                      ", \"ref_loss\": %.17g, \"kld_mean\": %.17g, \"top1\": %.17g", r->ref_nll / ns,
                      r->kld / ns, (double)r->agree / ns);
    }
    n += snprintf(line + n, sizeof(line) - (size_t)n, "}\n");
    return werk_afile_write(&rc->records, line, (size_t)n, err);
}

static double wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static werk_status write_text(const char *dir, const char *name, const char *text, werk_err *err) {
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path)) {
        return WERK_FAIL(err, WERK_E_ARG, "eval: report path too long: %s", dir);
    }
    werk_afile  af = {0};
    werk_status st = werk_afile_open(&af, path, err);
    if (!st) {
        st = werk_afile_write(&af, text, strlen(text), err);
    }
    if (!st) {
        st = werk_afile_commit(&af, err);
    }
    werk_afile_abort(&af);
    return st;
}

/* A number written with %.17g (exact round trip, as --json prints it; cJSON's own printer
 * is not exact); non-finite values become null. */
static void add_num(cJSON *o, const char *key, double v) {
    char buf[64];
    if (isfinite(v)) {
        snprintf(buf, sizeof(buf), "%.17g", v);
        cJSON_AddRawToObject(o, key, buf);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

/* report.json and report.md for a finished run. */
static werk_status write_report(const char *dir, const char *model, const char *data, const char *ref,
                                const char *const *loras, int n_loras, int64_t ctx, const werk_eval_result *res,
                                double seconds, werk_err *err) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject(), *ls = cJSON_CreateArray();
    for (int i = 0; i < n_loras; i++) {
        cJSON_AddItemToArray(ls, cJSON_CreateString(loras[i]));
    }
    cJSON_AddStringToObject(in, "model", model);
    cJSON_AddStringToObject(in, "data", data);
    if (ref) {
        cJSON_AddStringToObject(in, "ref", ref);
    } else {
        cJSON_AddNullToObject(in, "ref");
    }
    cJSON_AddItemToObject(in, "loras", ls);
    add_num(in, "ctx", (double)ctx);
    cJSON_AddItemToObject(o, "inputs", in);
    add_num(o, "records", (double)res->n_records);
    add_num(o, "tokens", (double)res->n_scored);
    add_num(o, "loss", res->loss);
    add_num(o, "ppl", res->ppl);
    if (res->has_ref) {
        add_num(o, "ref_loss", res->ref_loss);
        add_num(o, "ref_ppl", res->ref_ppl);
        add_num(o, "delta_ppl", res->ppl - res->ref_ppl);
        add_num(o, "kld_mean", res->kld_mean);
        add_num(o, "kld_median", res->kld_median);
        add_num(o, "kld_p99", res->kld_p99);
        add_num(o, "top1", res->top1);
    }
    add_num(o, "seconds", seconds);
    add_num(o, "tokens_per_s", seconds > 0 ? (double)res->n_scored / seconds : 0);
    char       *js = cJSON_Print(o);
    werk_status st = WERK_OK;
    if (!js) {
        st = WERK_FAIL(err, WERK_E_OOM, "eval: out of memory for report.json");
    } else {
        size_t n  = strlen(js);
        char  *nl = malloc(n + 2);
        if (!nl) {
            st = WERK_FAIL(err, WERK_E_OOM, "eval: out of memory for report.json");
        } else {
            memcpy(nl, js, n);
            memcpy(nl + n, "\n", 2);
            st = write_text(dir, "report.json", nl, err);
            free(nl);
        }
        free(js);
    }
    cJSON_Delete(o);
    if (st) {
        return st;
    }
    char md[4096];
    int  n = snprintf(md, sizeof(md),
                      "# werk eval\n\n"
                      "model `%s`, data `%s`%s%s%s, %d adapter(s), text window %" PRId64 " tokens\n\n"
                      "| figure | value |\n|---|---|\n"
                      "| records | %" PRId64 " |\n| scored tokens | %" PRId64 " |\n"
                      "| loss (nats/token) | %.6f |\n| perplexity | %.4f |\n",
                      model, data, ref ? ", reference `" : "", ref ? ref : "", ref ? "`" : "", n_loras, ctx,
                      res->n_records, res->n_scored, res->loss, res->ppl);
    if (res->has_ref && n > 0 && n < (int)sizeof(md)) {
        n += snprintf(md + n, sizeof(md) - (size_t)n,
                      "| reference perplexity | %.4f |\n| delta perplexity | %+.4f |\n"
                      "| KLD mean | %.6g |\n| KLD median | %.6g |\n| KLD p99 | %.6g |\n"
                      "| top-1 agreement | %.4f |\n",
                      res->ref_ppl, res->ppl - res->ref_ppl, res->kld_mean, res->kld_median, res->kld_p99,
                      res->top1);
    }
    if (n > 0 && n < (int)sizeof(md)) {
        n += snprintf(md + n, sizeof(md) - (size_t)n,
                      "\n%.1f s, %.1f scored tokens/s. Per record: records.jsonl; all figures: report.json.\n",
                      seconds, seconds > 0 ? (double)res->n_scored / seconds : 0);
    }
    return write_text(dir, "report.md", md, err);
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
    const char *model = NULL, *data = NULL, *ref = NULL, *report = NULL, *loras[MAX_LORAS];
    int         n_loras = 0;
    float       lora_scales[MAX_LORAS];
    bool        json    = false;
    int64_t     ctx = 0, vocab_chunk = 0;
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
        if (strcmp(a, "--lora-scaled") == 0) {
            char *end = NULL;
            float sc  = i + 2 < argc ? strtof(argv[i + 2], &end) : 0;
            bool  bad = i + 2 >= argc || n_loras == MAX_LORAS || !*argv[i + 2] || *end;
            if (bad || !(sc > -1e6f && sc < 1e6f)) {
                WERK_FAIL(&err, WERK_E_ARG, "eval: --lora-scaled needs PATH S (%d adapters at most)",
                          MAX_LORAS);
                return werk_err_report(&err);
            }
            lora_scales[n_loras] = sc;
            loras[n_loras++]     = argv[i + 1];
            i += 2;
            continue;
        }
        if (strcmp(a, "--model") && strcmp(a, "--data") && strcmp(a, "--ref") && strcmp(a, "--lora") &&
            strcmp(a, "--ctx") && strcmp(a, "--report") && strcmp(a, "--vocab-chunk")) {
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
        } else if (strcmp(a, "--report") == 0) {
            report = v;
        } else if (strcmp(a, "--vocab-chunk") == 0) {
            char     *end = NULL;
            long long c   = strtoll(v, &end, 10);
            if (!*v || *end || c < 1 || c > (1 << 24)) {
                WERK_FAIL(&err, WERK_E_ARG, "eval: --vocab-chunk '%s' is not a row count in [1, 16777216]", v);
                return werk_err_report(&err);
            }
            vocab_chunk = c;
        } else if (strcmp(a, "--lora") == 0) {
            if (n_loras == MAX_LORAS) {
                WERK_FAIL(&err, WERK_E_ARG, "eval: at most %d --lora", MAX_LORAS);
                return werk_err_report(&err);
            }
            lora_scales[n_loras] = 1.0f;
            loras[n_loras++]     = v;
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
        st = werk_lora_load(loras[i], m, lora_scales[i], &ls[i], &err);
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
        werk_eval_opts o = {.model         = m,
                            .loras         = (const werk_lora *const *)ls,
                            .n_loras       = n_loras,
                            .ref           = rm,
                            .tok           = tok,
                            .n_ctx         = n,
                            .chat_template = tmpl,
                            .vocab_chunk   = vocab_chunk};
        report_ctx     rc = {.has_ref = rm != NULL};
        if (report) {
            char path[4096];
            st = werk_mkdir_p(report, &err);
            if (!st && snprintf(path, sizeof(path), "%s/records.jsonl", report) >= (int)sizeof(path)) {
                st = WERK_FAIL(&err, WERK_E_ARG, "eval: report path too long: %s", report);
            }
            if (!st) {
                st = werk_afile_open(&rc.records, path, &err);
            }
            o.on_record = report_record;
            o.user      = &rc;
        }
        double t0 = wall_s();
        if (!st) {
            st = werk_eval_file(&o, data, &res, &err);
        }
        double secs = wall_s() - t0;
        if (!st && report) {
            st = werk_afile_commit(&rc.records, &err);
        }
        if (!st && report) {
            st = write_report(report, model, data, ref, loras, n_loras, n, &res, secs, &err);
        }
        werk_afile_abort(&rc.records);
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
