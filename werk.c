/* werk.c - the `werk` program: a table of subcommands, help, version, verbosity
 *
 * Each subcommand lives in its module as `int werk_cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns a process exit code. This file only
 * dispatches; it is the one place that sets the log level and installs signal handlers.
 */
#include "common/common.h"
#include "convert/convert.h"
#include "infer/decode.h"
#include "infer/infer.h"
#include "train/train.h"

#include <stdio.h>
#include <string.h>

typedef struct werk_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help; // one line
} werk_command;

static const werk_command COMMANDS[] = {
    {"convert", werk_cmd_convert, "convert checkpoints: HF dir / safetensors / llama2.c / GGUF -> GGUF or HF"},
    {"inspect", werk_cmd_inspect, "show the metadata and tensors of a model file"},
    {"tokenize", werk_cmd_tokenize, "text -> token ids with a model's tokenizer"},
    {"infer", werk_cmd_infer, "generate text from a prompt or one chat turn"},
    {"eval", werk_cmd_eval, "loss, perplexity and KLD of a model over a data file"},
    {"logits", werk_cmd_logits, "full logits of a few records (parity checks with other tools)"},
    {"quantize", werk_cmd_quantize, "quantize a GGUF: llama.cpp's mixes (Q4_K_M ...) or one type (--q4_k)"},
    {"finetune", werk_cmd_finetune, "train a LoRA adapter on JSONL data (base frozen, quantized or not)"},
};
static const int N_COMMANDS = (int)(sizeof(COMMANDS) / sizeof(COMMANDS[0]));

static void usage(FILE *f) {
    fprintf(f, "usage: werk [-v|-q] COMMAND [ARGS...]\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) {
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].help);
    }
    fprintf(f, "  %-10s %s\n", "help", "werk help COMMAND: usage of a command");
    fprintf(f, "  %-10s %s\n", "version", "print werk's version");
    fprintf(f, "\nwerk CMD --help prints a command's usage.\n");
}

static const werk_command *find_command(const char *name) {
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(COMMANDS[i].name, name) == 0) {
            return &COMMANDS[i];
        }
    }
    return NULL;
}

int main(int argc, char **argv) {
    werk_signals_install();
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            werk_log_set_level(WERK_LOG_DEBUG);
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            werk_log_set_level(WERK_LOG_ERROR);
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("werk %s\n", WERK_VERSION);
            return 0;
        } else {
            fprintf(stderr, "werk: error: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[i];
    if (strcmp(name, "help") == 0) {
        if (i + 1 >= argc) {
            usage(stdout);
            return 0;
        }
        const werk_command *c = find_command(argv[i + 1]);
        if (!c) {
            fprintf(stderr, "werk: error: unknown command '%s'\n", argv[i + 1]);
            return 2;
        }
        char *help_argv[] = {(char *)c->name, "--help", NULL};
        return c->fn(2, help_argv);
    }
    if (strcmp(name, "version") == 0) {
        printf("werk %s\n", WERK_VERSION);
        return 0;
    }
    const werk_command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "werk: error: unknown command '%s' (see 'werk help')\n", name);
        return 2;
    }
    return c->fn(argc - i, argv + i);
}
