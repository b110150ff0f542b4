/* infer/cmd_infer.c - `werk infer`: generate text from a prompt or one chat turn
 *
 * werk infer --model M.gguf [--lora PATH | --lora-scaled PATH S]... (--prompt TEXT | --chat TEXT)
 *            [-n N] [--temp T]
 *            [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [--seed S] [--threads N]
 * Prefills the prompt (BOS per tokenizer.ggml.add_bos_token, default on for SentencePiece
 * vocabs), then decodes up to N tokens (default 128), writing each token's text to stdout
 * as soon as it is sampled (flushed). Stops at EOS or an end-of-turn token of the model's
 * chat style. Prints prefill and decode speed to stderr. Greedy unless --temp > 0.
 * Output depends only on the inputs and seed, not on --threads.
 */
#include "infer/decode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_LORAS 8
#define MAX_STOP 8

static void usage(FILE *f) {
    fprintf(f, "usage: werk infer --model M.gguf [--lora PATH]... (--prompt TEXT | --chat TEXT) [options]\n"
               "  -n N                tokens to generate (default 128)\n"
               "  --temp T            temperature (default 0: greedy)\n"
               "  --top-k K           keep the K most likely tokens (0: off)\n"
               "  --top-p P           keep the smallest set with mass >= P (1: off)\n"
               "  --min-p P           keep tokens with p >= P x p_max (0: off)\n"
               "  --repeat-penalty R  penalise the last 64 tokens (1: off)\n"
               "  --seed S            sampling seed (default 0)\n"
               "  --threads N         OpenMP threads\n"
               "  --lora PATH         LoRA adapter (PEFT dir or llama.cpp LoRA .gguf), applied unmerged\n"
               "                      (repeatable)\n"
               "  --lora-scaled PATH S  the same with the adapter's update scaled by S\n");
}

static bool parse_num(const char *s, double lo, double hi, double *out) {
    char  *end = NULL;
    double v   = strtod(s, &end);
    if (!*s || *end || !(v >= lo && v <= hi)) {
        return false;
    }
    *out = v;
    return true;
}

static int32_t single_id(const werk_tokenizer *tok, const char *s) {
    int32_t *ids = NULL, id = -1;
    int64_t  n = 0;
    if (werk_tokenizer_encode(tok, s, strlen(s), false, true, &ids, &n, NULL) == WERK_OK && n == 1) {
        id = ids[0];
    }
    free(ids);
    return id;
}

int werk_cmd_infer(int argc, char **argv) {
    const char         *model = NULL, *prompt = NULL, *chat = NULL, *lora_dirs[MAX_LORAS];
    float               lora_scales[MAX_LORAS];
    int                 n_lora_dirs = 0, threads = 0;
    int64_t             n_gen = 128;
    werk_sampler_params sp    = werk_sampler_default_params();
    werk_err            err   = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--lora-scaled")) {
            double s = 0;
            if (i + 2 >= argc || n_lora_dirs >= MAX_LORAS || !parse_num(argv[i + 2], -1e6, 1e6, &s)) {
                WERK_FAIL(&err, WERK_E_ARG, "infer: --lora-scaled needs PATH S (%d adapters at most)",
                          MAX_LORAS);
                return werk_err_report(&err);
            }
            lora_scales[n_lora_dirs]  = (float)s;
            lora_dirs[n_lora_dirs++] = argv[i + 1];
            i += 2;
            continue;
        }
        if (i + 1 >= argc) {
            WERK_FAIL(&err, WERK_E_ARG, "infer: '%s' needs a value or is unknown (see 'werk infer --help')",
                      a);
            return werk_err_report(&err);
        }
        const char *v  = argv[++i];
        double      x  = 0;
        bool        ok = true;
        if (!strcmp(a, "--model")) {
            model = v;
        } else if (!strcmp(a, "--prompt")) {
            prompt = v;
        } else if (!strcmp(a, "--chat")) {
            chat = v;
        } else if (!strcmp(a, "--lora")) {
            ok = n_lora_dirs < MAX_LORAS;
            if (ok) {
                lora_scales[n_lora_dirs]  = 1.0f;
                lora_dirs[n_lora_dirs++] = v;
            }
        } else if (!strcmp(a, "-n")) {
            ok    = parse_num(v, 0, 1 << 20, &x);
            n_gen = (int64_t)x;
        } else if (!strcmp(a, "--temp")) {
            ok      = parse_num(v, 0, 1e6, &x);
            sp.temp = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            ok       = parse_num(v, 0, 1e9, &x);
            sp.top_k = (int32_t)x;
        } else if (!strcmp(a, "--top-p")) {
            ok       = parse_num(v, 0, 1, &x);
            sp.top_p = (float)x;
        } else if (!strcmp(a, "--min-p")) {
            ok       = parse_num(v, 0, 1, &x);
            sp.min_p = (float)x;
        } else if (!strcmp(a, "--repeat-penalty")) {
            ok                = parse_num(v, 1e-3, 1e3, &x);
            sp.repeat_penalty = (float)x;
        } else if (!strcmp(a, "--seed")) {
            char *end = NULL;
            errno     = 0;
            sp.seed   = strtoull(v, &end, 10);
            ok        = *v && *v != '-' && !*end && errno == 0;
        } else if (!strcmp(a, "--threads")) {
            ok      = parse_num(v, 1, 1024, &x);
            threads = (int)x;
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "infer: unknown argument '%s' (see 'werk infer --help')", a);
            return werk_err_report(&err);
        }
        if (!ok) {
            WERK_FAIL(&err, WERK_E_ARG, "infer: bad value '%s' for %s", v, a);
            return werk_err_report(&err);
        }
    }
    if (!model || (!prompt == !chat)) {
        usage(stderr);
        WERK_FAIL(&err, WERK_E_ARG, "infer: need --model and one of --prompt / --chat");
        return werk_err_report(&err);
    }
#ifdef _OPENMP
    if (threads > 0) {
        omp_set_num_threads(threads);
    }
#endif
    werk_gguf      *g                = NULL;
    werk_tokenizer *tok              = NULL;
    werk_model     *m                = NULL;
    werk_lora      *loras[MAX_LORAS] = {0};
    werk_decoder   *dec              = NULL;
    werk_sampler   *smp              = NULL;
    char           *text = NULL, *system = NULL;
    int32_t        *ids    = NULL;
    float          *logits = NULL;
    int64_t         n_ids  = 0;
    int             rc     = 0;
    werk_chat_style style;
    bool            have_style = false, add_bos = true, found = false;
    int32_t         stop[MAX_STOP];
    int             n_stop = 0;
    if (werk_gguf_read(model, &g, &err) || werk_tokenizer_init(g, &tok, &err) ||
        werk_model_load(g, &m, &err)) {
        goto fail;
    }
    for (int i = 0; i < n_lora_dirs; i++) {
        if (werk_lora_load(lora_dirs[i], m, lora_scales[i], &loras[i], &err)) {
            goto fail;
        }
    }
    {
        const char *mdl = NULL;
        bool        f2  = false;
        if (werk_gguf_get_str(g, "tokenizer.ggml.model", &mdl, &f2, &err)) {
            goto fail;
        }
        add_bos = !(f2 && strcmp(mdl, "gpt2") == 0);
    }
    if (werk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, &found, &err)) {
        goto fail;
    }
    if (chat) {
        if (werk_chat_detect(g, tok, &style, &system, &err) ||
            werk_chat_render(style, system, chat, &text, &err)) {
            goto fail;
        }
        have_style = true;
    } else {
        werk_err ignore = {0};
        have_style      = werk_chat_detect(g, tok, &style, &system, &ignore) == WERK_OK;
    }
    if (werk_tokenizer_encode(tok, chat ? text : prompt, strlen(chat ? text : prompt), add_bos, chat != NULL,
                              &ids, &n_ids, &err)) {
        goto fail;
    }
    if (n_ids == 0) {
        WERK_FAIL(&err, WERK_E_ARG, "infer: the prompt encodes to no tokens");
        goto fail;
    }
    if (werk_tokenizer_eos(tok) >= 0) {
        stop[n_stop++] = werk_tokenizer_eos(tok);
    }
    if (have_style) {
        for (const char *const *s = werk_chat_stop_tokens(style); *s && n_stop < MAX_STOP; s++) {
            int32_t id = single_id(tok, *s);
            if (id >= 0) {
                stop[n_stop++] = id;
            }
        }
    }
    int64_t V = werk_model_n_vocab(m);
    logits    = malloc((size_t)V * sizeof(float));
    if (!logits) {
        WERK_FAIL(&err, WERK_E_OOM, "infer: out of memory");
        goto fail;
    }
    if (werk_decoder_init(m, (const werk_lora *const *)loras, n_lora_dirs, n_ids + n_gen + 1, &dec, &err) ||
        werk_sampler_init(&sp, V, &smp, &err)) {
        goto fail;
    }
    for (int64_t i = 0; i < n_ids; i++) {
        werk_sampler_accept(smp, ids[i]);
    }
    double t0 = werk_time_s();
    if (werk_decoder_prefill(dec, ids, n_ids, logits, &err)) {
        goto fail;
    }
    double  t1    = werk_time_s();
    int64_t n_out = 0;
    char    piece[256];
    for (; n_out < n_gen; n_out++) {
        int32_t t       = werk_sampler_sample(smp, logits);
        bool    is_stop = false;
        for (int i = 0; i < n_stop; i++) {
            is_stop |= t == stop[i];
        }
        if (is_stop) {
            break;
        }
        size_t len = werk_tokenizer_piece(tok, t, piece, sizeof(piece));
        fwrite(piece, 1, len < sizeof(piece) ? len : sizeof(piece), stdout);
        fflush(stdout);
        werk_sampler_accept(smp, t);
        if (n_out + 1 < n_gen && werk_decoder_step(dec, t, logits, &err)) {
            goto fail;
        }
    }
    double t2 = werk_time_s();
    fputc('\n', stdout);
    fflush(stdout);
    int64_t n_steps = n_out < n_gen ? n_out : (n_out > 0 ? n_out - 1 : 0);
    fprintf(stderr, "werk infer: prefill %lld tokens %.2f tok/s, decode %lld tokens %.2f tok/s\n",
            (long long)n_ids, (double)n_ids / (t1 - t0 > 0 ? t1 - t0 : 1e-9), (long long)n_steps,
            n_steps > 0 ? (double)n_steps / (t2 - t1 > 0 ? t2 - t1 : 1e-9) : 0.0);
    goto done;
fail:
    rc = werk_err_report(&err);
done:
    free(logits);
    free(ids);
    free(text);
    free(system);
    werk_sampler_free(smp);
    werk_decoder_free(dec);
    for (int i = 0; i < n_lora_dirs; i++) {
        werk_lora_free(loras[i]);
    }
    werk_model_free(m);
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
    return rc;
}
