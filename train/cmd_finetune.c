/* train/cmd_finetune.c - `werk finetune`: flags -> werk_finetune_cfg, run, print a summary
 *
 * werk finetune --model BASE.gguf --lora DATA.jsonl [--val VAL.jsonl | --val-split F]
 *               [LoRA, optimizer, schedule, data, output flags; see usage()]
 * Defaults follow PEFT / HF Trainer where they make sense on a CPU (see usage()). Errors
 * are one "werk: error: ..." line and a non-zero exit; Ctrl-C saves a checkpoint, exit 130.
 */
#define _POSIX_C_SOURCE 200809L
#include "train/train_int.h"

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void usage(FILE *f) {
    fprintf(f,
            "usage: werk finetune --model BASE.gguf --lora DATA.jsonl [options]\n"
            "Trains a LoRA adapter on DATA (base weights frozen in their stored type, quantized too).\n"
            "DATA: .jsonl / .jsonl.zst with {\"text\"}, {\"prompt\",\"completion\"}, {\"messages\"} or\n"
            "{\"input_ids\",\"labels\"} records. Loss: mean cross-entropy over the scored tokens of a step.\n"
            "\n"
            "data:\n"
            "  --val FILE            validation set (default: none)\n"
            "  --val-split F         or hold out a seeded fraction F of the training rows\n"
            "  --seq T               tokens per row (default 512)\n"
            "  --no-pack             one record per row (default: pack whole records into rows)\n"
            "  --no-truncate         a record longer than --seq is an error (default: truncated)\n"
            "  --skip-bad-lines      skip and count malformed lines (default: stop at the first)\n"
            "  --train-on-inputs     score prompt/user tokens too (default: completions only)\n"
            "LoRA:\n"
            "  --rank R              rank (default 8)\n"
            "  --alpha A             scale alpha/R (default 16)\n"
            "  --dropout P           dropout on the adapter's input (default 0)\n"
            "  --rslora              scale alpha/sqrt(R)\n"
            "  --targets T           all-linear (default) or a list of q,k,v,o,gate,up,down\n"
            "  --init-adapter PATH   start from an adapter (PEFT dir or LoRA .gguf): its rank, alpha\n"
            "                        and targets replace --rank/--alpha/--targets\n"
            "optimizer:\n"
            "  --optimizer adamw|sgd (default adamw; betas 0.9,0.999, eps 1e-8 as torch)\n"
            "  --beta1 B --beta2 B --eps E   AdamW constants\n"
            "  --weight-decay W      AdamW: decoupled; SGD: L2 added to the gradient (default 0)\n"
            "  --lr X                peak learning rate (default 2e-4)\n"
            "  --warmup N            linear warmup steps (default 0)\n"
            "  --schedule S          cosine|linear|constant after warmup (default linear, as HF)\n"
            "  --clip-grad-norm X    clip the global gradient norm to X, 0 = off (default 1.0)\n"
            "  --batch B             rows per micro-batch (default 4)\n"
            "  --grad-accum K        micro-batches per optimizer step (default 1)\n"
            "  --steps N | --epochs E   length of the run (default 1 epoch; --steps 0 writes the\n"
            "                        initial adapter)\n"
            "  --seed S              data order, LoRA init, dropout (default 42)\n"
            "  --recompute           recompute activations in backward (less memory)\n"
            "  --threads N           OpenMP threads (results do not depend on it)\n"
            "  --device cpu          (cuda: not built)\n"
            "output:\n"
            "  --out DIR             (default finetune-out): adapter.gguf (llama.cpp LoRA), adapter/\n"
            "                        (PEFT), loss.jsonl, loss.svg, best/ (best val adapter),\n"
            "                        checkpoints/step-N.ckpt.zst\n"
            "  --eval-every N        val loss every N steps (default 0: before and after training)\n"
            "  --max-val-rows N      evaluate at most N val rows (default all)\n"
            "  --early-stop N        stop after N evals without a better val loss (default off)\n"
            "  --save-every N        checkpoint every N steps (default 0: at the end and on Ctrl-C)\n"
            "  --resume DIR          continue from the newest checkpoint in DIR (same flags)\n"
            "  --no-progress         no progress line\n"
            "  --json                print the summary as one JSON object\n");
}

// ---- Ctrl-C: finish the step, write a checkpoint, exit 130 --------------------------------

/* Process-wide by nature (signals are): set by the first SIGINT/SIGTERM; a second one goes
 * to common's handler (removes temporaries, exits 130 at once). */
static volatile sig_atomic_t g_stop;
static struct sigaction      g_old_int, g_old_term;

static void on_stop_signal(int sig) {
    if (g_stop) {
        sigaction(sig, sig == SIGINT ? &g_old_int : &g_old_term, NULL);
        raise(sig);
        return;
    }
    g_stop                  = 1;
    static const char msg[] = "\nwerk: interrupted: saving a checkpoint (again to quit at once)\n";
    ssize_t           w     = write(2, msg, sizeof(msg) - 1);
    (void)w;
}

static void install_stop_handler(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &g_old_int);
    sigaction(SIGTERM, &sa, &g_old_term);
}

static void restore_signal_handlers(void) {
    sigaction(SIGINT, &g_old_int, NULL);
    sigaction(SIGTERM, &g_old_term, NULL);
}

typedef struct parse_state {
    werk_finetune_cfg cfg;
    bool              json;
    int               threads;
    const char       *device;
    bool              lora_shape_set; // --rank / --alpha / --targets / --rslora given
} parse_state;

static werk_status
parse_i64(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out, werk_err *err) {
    char     *end = NULL;
    long long x   = strtoll(v, &end, 10);
    if (!*v || *end || x < lo || x > hi) {
        return WERK_FAIL(err, WERK_E_ARG, "finetune: %s wants an integer in [%lld, %lld] (got '%s')", flag,
                         (long long)lo, (long long)hi, v);
    }
    *out = x;
    return WERK_OK;
}

static werk_status
parse_f64(const char *flag, const char *v, double lo, double hi, double *out, werk_err *err) {
    char  *end = NULL;
    double x   = strtod(v, &end);
    if (!*v || *end || !isfinite(x) || x < lo || x > hi) {
        return WERK_FAIL(err, WERK_E_ARG, "finetune: %s wants a number in [%g, %g] (got '%s')", flag, lo, hi,
                         v);
    }
    *out = x;
    return WERK_OK;
}

static werk_status parse_targets(const char *v, uint32_t *mask, werk_err *err) {
    if (strcmp(v, "all-linear") == 0 || strcmp(v, "all") == 0) {
        *mask = WERK_LORA_ALL_LINEAR;
        return WERK_OK;
    }
    static const char *const names[] = {"q", "k", "v", "o", "gate", "up", "down"};
    *mask                            = 0;
    const char *p                    = v;
    while (*p) {
        size_t n = strcspn(p, ",");
        int    k = -1;
        for (int i = 0; i < 7; i++) {
            size_t ln = strlen(names[i]);
            // accept "q" and HF's "q_proj"
            if ((n == ln && strncmp(p, names[i], n) == 0) ||
                (n == ln + 5 && strncmp(p, names[i], ln) == 0 && strncmp(p + ln, "_proj", 5) == 0)) {
                k = i;
            }
        }
        if (k < 0) {
            return WERK_FAIL(
                err, WERK_E_ARG,
                "finetune: --targets '%s': '%.*s' is not one of q,k,v,o,gate,up,down (or all-linear)", v,
                (int)n, p);
        }
        *mask |= 1u << k;
        p += n;
        if (*p == ',') {
            p++;
        }
    }
    if (!*mask) {
        return WERK_FAIL(err, WERK_E_ARG, "finetune: --targets names no projection");
    }
    return WERK_OK;
}

static const char *const VALUE_FLAGS[] = {
    "--model",          "--lora",    "--val",          "--val-split",    "--seq",          "--rank",
    "--alpha",          "--dropout", "--targets",      "--init-adapter", "--optimizer",    "--beta1",
    "--beta2",          "--eps",     "--weight-decay", "--lr",           "--warmup",       "--schedule",
    "--clip-grad-norm", "--batch",   "--grad-accum",   "--steps",        "--epochs",       "--seed",
    "--threads",        "--device",  "--out",          "--eval-every",   "--max-val-rows", "--early-stop",
    "--save-every",     "--resume",  "--dump-grad",    "--recipe"};

static bool is_value_flag(const char *a) {
    for (size_t i = 0; i < sizeof(VALUE_FLAGS) / sizeof(VALUE_FLAGS[0]); i++) {
        if (strcmp(a, VALUE_FLAGS[i]) == 0) {
            return true;
        }
    }
    return false;
}

static werk_status
parse_value(parse_state *ps, const char *a, const char *v, bool *steps_set, bool *epochs_set, werk_err *err) {
    werk_finetune_cfg *c = &ps->cfg;
    double             d = 0;
    int64_t            n = 0;
    werk_status        s = WERK_OK;
    if (!strcmp(a, "--rank") || !strcmp(a, "--alpha") || !strcmp(a, "--targets")) {
        ps->lora_shape_set = true;
    }
    if (!strcmp(a, "--model")) {
        c->model = v;
    } else if (!strcmp(a, "--lora")) {
        c->data = v;
    } else if (!strcmp(a, "--val")) {
        c->val = v;
    } else if (!strcmp(a, "--val-split")) {
        s = parse_f64(a, v, 1e-9, 0.9, &c->val_split, err);
    } else if (!strcmp(a, "--seq")) {
        s = parse_i64(a, v, 2, 1 << 20, &c->seq, err);
    } else if (!strcmp(a, "--rank")) {
        s = parse_i64(a, v, 1, 4096, &c->rank, err);
    } else if (!strcmp(a, "--alpha")) {
        s        = parse_f64(a, v, 1e-6, 1e6, &d, err);
        c->alpha = (float)d;
    } else if (!strcmp(a, "--dropout")) {
        s          = parse_f64(a, v, 0, 0.99, &d, err);
        c->dropout = (float)d;
    } else if (!strcmp(a, "--targets")) {
        s = parse_targets(v, &c->slot_mask, err);
    } else if (!strcmp(a, "--init-adapter")) {
        c->init_adapter = v;
    } else if (!strcmp(a, "--optimizer")) {
        if (!strcmp(v, "adamw")) {
            c->optim.kind = WERK_OPTIM_ADAMW;
        } else if (!strcmp(v, "sgd")) {
            c->optim.kind = WERK_OPTIM_SGD;
        } else {
            s = WERK_FAIL(err, WERK_E_ARG, "finetune: --optimizer '%s': use adamw or sgd", v);
        }
    } else if (!strcmp(a, "--beta1") || !strcmp(a, "--beta2")) {
        s                                                  = parse_f64(a, v, 0, 0.999999, &d, err);
        *(a[6] == '1' ? &c->optim.beta1 : &c->optim.beta2) = (float)d;
    } else if (!strcmp(a, "--eps")) {
        s            = parse_f64(a, v, 0, 1, &d, err);
        c->optim.eps = (float)d;
    } else if (!strcmp(a, "--weight-decay")) {
        s                     = parse_f64(a, v, 0, 10, &d, err);
        c->optim.weight_decay = (float)d;
    } else if (!strcmp(a, "--lr")) {
        s = parse_f64(a, v, 0, 100, &c->lr, err);
    } else if (!strcmp(a, "--warmup")) {
        s = parse_i64(a, v, 0, INT64_C(1) << 40, &c->warmup, err);
    } else if (!strcmp(a, "--schedule")) {
        if (!werk_sched_parse(v, &c->schedule)) {
            s = WERK_FAIL(err, WERK_E_ARG, "finetune: --schedule '%s': use cosine, linear or constant", v);
        }
    } else if (!strcmp(a, "--clip-grad-norm")) {
        s = parse_f64(a, v, 0, 1e9, &c->clip_grad_norm, err);
    } else if (!strcmp(a, "--batch")) {
        s = parse_i64(a, v, 1, 1 << 16, &c->batch, err);
    } else if (!strcmp(a, "--grad-accum")) {
        s = parse_i64(a, v, 1, 1 << 16, &c->grad_accum, err);
    } else if (!strcmp(a, "--steps")) {
        s          = parse_i64(a, v, 0, INT64_C(1) << 40, &c->steps, err);
        *steps_set = true;
    } else if (!strcmp(a, "--epochs")) {
        s           = parse_i64(a, v, 1, 1 << 20, &c->epochs, err);
        *epochs_set = true;
    } else if (!strcmp(a, "--seed")) {
        s       = parse_i64(a, v, 0, INT64_MAX, &n, err);
        c->seed = (uint64_t)n;
    } else if (!strcmp(a, "--threads")) {
        s           = parse_i64(a, v, 1, 4096, &n, err);
        ps->threads = (int)n;
    } else if (!strcmp(a, "--device")) {
        ps->device = v;
    } else if (!strcmp(a, "--out")) {
        c->out = v;
    } else if (!strcmp(a, "--eval-every")) {
        s = parse_i64(a, v, 0, INT64_C(1) << 40, &c->eval_every, err);
    } else if (!strcmp(a, "--max-val-rows")) {
        s = parse_i64(a, v, 0, INT64_C(1) << 40, &c->max_val_rows, err);
    } else if (!strcmp(a, "--early-stop")) {
        s = parse_i64(a, v, 0, INT64_C(1) << 40, &c->early_stop, err);
    } else if (!strcmp(a, "--save-every")) {
        s = parse_i64(a, v, 0, INT64_C(1) << 40, &c->save_every, err);
    } else if (!strcmp(a, "--resume")) {
        c->resume = v;
    } else if (!strcmp(a, "--dump-grad")) { // hidden: first step's gradient as a PEFT dir (tests)
        c->dump_grad = v;
    } else if (!strcmp(a, "--recipe")) {
        s = WERK_FAIL(err, WERK_E_UNSUPPORTED,
                      "finetune: --recipe is not supported yet; give the flags instead");
    }
    return s;
}

/* argv joined with spaces, arguments with spaces or quotes single-quoted. */
static char *join_command_line(int argc, char **argv) {
    werk_strbuf b = {0};
    werk_strbuf_puts(&b, "werk");
    for (int i = 0; i < argc; i++) {
        werk_strbuf_puts(&b, " ");
        bool plain = argv[i][0] && strpbrk(argv[i], " \t\n'\"\\$`") == NULL;
        if (plain) {
            werk_strbuf_puts(&b, argv[i]);
            continue;
        }
        werk_strbuf_puts(&b, "'");
        for (const char *p = argv[i]; *p; p++) {
            if (*p == '\'') {
                werk_strbuf_puts(&b, "'\\''");
            } else {
                werk_strbuf_put(&b, p, 1);
            }
        }
        werk_strbuf_puts(&b, "'");
    }
    if (b.oom) {
        werk_strbuf_free(&b);
        return NULL;
    }
    return b.p;
}

static void print_json_num(const char *key, double x, bool last) {
    if (isfinite(x)) {
        printf("\"%s\": %.9g%s", key, x, last ? "" : ", ");
    } else {
        printf("\"%s\": null%s", key, last ? "" : ", ");
    }
}

int werk_cmd_finetune(int argc, char **argv) {
    parse_state        ps  = {0};
    werk_err           err = {0};
    werk_finetune_cfg *c   = &ps.cfg;
    c->rank                = 8;
    c->alpha               = 16.0f;
    c->slot_mask           = WERK_LORA_ALL_LINEAR;
    c->optim               = (werk_optim_hp){WERK_OPTIM_ADAMW, 0.9f, 0.999f, 1e-8f, 0.0f};
    c->lr                  = 2e-4;
    c->schedule            = WERK_SCHED_LINEAR;
    c->clip_grad_norm      = 1.0;
    c->batch               = 4;
    c->grad_accum          = 1;
    c->seq                 = 512;
    c->seed                = 42;
    c->progress            = true;
    c->data_opts.pack      = true;
    bool steps_set = false, epochs_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--rslora")) {
            c->rslora         = true;
            ps.lora_shape_set = true;
        } else if (!strcmp(a, "--recompute")) {
            c->recompute = true;
        } else if (!strcmp(a, "--no-pack")) {
            c->data_opts.pack = false;
        } else if (!strcmp(a, "--no-truncate")) {
            c->data_opts.no_truncate = true;
        } else if (!strcmp(a, "--skip-bad-lines")) {
            c->data_opts.skip_bad_lines = true;
        } else if (!strcmp(a, "--train-on-inputs")) {
            c->data_opts.train_on_inputs = true;
        } else if (!strcmp(a, "--no-progress")) {
            c->progress = false;
        } else if (!strcmp(a, "--json")) {
            ps.json = true;
        } else if (is_value_flag(a)) {
            if (i + 1 >= argc) {
                WERK_FAIL(&err, WERK_E_ARG, "finetune: %s needs a value", a);
                return werk_err_report(&err);
            }
            if (parse_value(&ps, a, argv[++i], &steps_set, &epochs_set, &err)) {
                return werk_err_report(&err);
            }
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "finetune: unknown argument '%s' (see 'werk finetune --help')", a);
            return werk_err_report(&err);
        }
    }
    if (!c->model || !c->data) {
        usage(stderr);
        WERK_FAIL(&err, WERK_E_ARG, "finetune: need --model BASE.gguf and --lora DATA.jsonl");
        return werk_err_report(&err);
    }
    if (steps_set && epochs_set) {
        WERK_FAIL(&err, WERK_E_ARG, "finetune: give --steps or --epochs, not both");
        return werk_err_report(&err);
    }
    if (c->val && c->val_split > 0) {
        WERK_FAIL(&err, WERK_E_ARG, "finetune: give --val or --val-split, not both");
        return werk_err_report(&err);
    }
    if (ps.device && strcmp(ps.device, "cpu") != 0) {
        if (strcmp(ps.device, "cuda") == 0) {
            WERK_FAIL(&err, WERK_E_UNSUPPORTED,
                      "finetune: --device cuda: this werk was not built with CUDA training "
                      "support; use --device cpu");
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "finetune: --device '%s': use cpu or cuda", ps.device);
        }
        return werk_err_report(&err);
    }
    if (c->init_adapter && ps.lora_shape_set) {
        werk_log(WERK_LOG_WARN, "finetune: --init-adapter brings its own rank, alpha and targets; "
                                "--rank/--alpha/--targets/--rslora are ignored");
    }
    if (!steps_set && !epochs_set) {
        c->epochs = 1;
    }
    if (!c->out) {
        c->out = c->resume ? c->resume : "finetune-out";
    }
#ifdef _OPENMP
    if (ps.threads > 0) {
        omp_set_num_threads(ps.threads);
    }
#endif
    char *cmdline   = join_command_line(argc, argv);
    c->command_line = cmdline;
    c->stop         = &g_stop;
    install_stop_handler();
    werk_finetune_result res;
    werk_status          s = werk_finetune_run(c, &res, &err);
    restore_signal_handlers();
    free(cmdline);
    if (s) {
        return werk_err_report(&err);
    }
    if (ps.json) {
        printf("{\"steps\": %" PRId64 ", \"train_rows\": %" PRId64 ", \"val_rows\": %" PRId64 ", ", res.steps,
               res.train_rows, res.val_rows);
        print_json_num("train_loss_first", res.first_loss, false);
        print_json_num("train_loss_last", res.last_loss, false);
        print_json_num("val_loss_before", res.val_before, false);
        print_json_num("val_loss_after", res.val_after, false);
        print_json_num("val_loss_best", res.best_val, false);
        printf("\"best_step\": %" PRId64 ", \"early_stopped\": %s, ", res.best_step,
               res.early_stopped ? "true" : "false");
        print_json_num("tokens_per_s", res.tok_per_s, false);
        printf("\"out\": \"");
        for (const char *p = c->out; *p; p++) {
            if (*p == '"' || *p == '\\') {
                putchar('\\');
            }
            if ((unsigned char)*p >= 0x20) {
                putchar(*p);
            }
        }
        printf("\"}\n");
    } else {
        printf("steps       %" PRId64 "%s\n", res.steps, res.early_stopped ? " (early stop)" : "");
        printf("train loss  %.6f -> %.6f\n", res.first_loss, res.last_loss);
        if (isfinite(res.val_before) || isfinite(res.val_after)) {
            printf("val loss    %.6f -> %.6f (best %.6f at step %" PRId64 ")\n", res.val_before,
                   res.val_after, res.best_val, res.best_step);
        }
        printf("tokens/s    %.1f\n", res.tok_per_s);
        printf("adapter     %s/adapter.gguf, %s/adapter/ (PEFT)\n", c->out, c->out);
    }
    return 0;
}
