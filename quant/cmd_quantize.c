/* quant/cmd_quantize.c - the `werk quantize` command: parse arguments, run the job, print
 *
 *   werk quantize IN.gguf OUT.gguf (--q4_k | --type PRESET) [--pure] [--output-tensor-type T]
 *                 [--token-embedding-type T] [--tensor-type REGEX=T]... [--leave-output-tensor]
 *                 [--imatrix FILE] [--threads N] [--dry-run] [--json] [--no-measure]
 *
 * Presets are llama-quantize's mixes (Q4_K_M ...); `--q4_k` (and `--q8_0`, `--q6_k`, ...)
 * stores every quantized weight as that one type (the preset of that type with --pure).
 * stdout gets the per-tensor table (name, types, shape, bytes, relative RMSE) and totals,
 * or one JSON object with --json; stderr gets progress and warnings. Usage errors exit 2
 * with one error line.
 */
#include "convert/convert.h"
#include "quant/quant.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#endif

enum { MAX_OVERRIDES = 64 };

static void usage(FILE *f) {
    fprintf(f, "usage: werk quantize IN.gguf OUT.gguf (--q4_k | --type PRESET) [options]\n"
               "\n"
               "  --type PRESET             a llama.cpp mix (below); Q3_K, Q4_K, Q5_K = the _M mixes\n"
               "  --q4_k, --q6_k, --q8_0 .. every quantized weight as that type (= its preset, --pure)\n"
               "  --pure                    no mix: every quantized weight gets the preset's type\n"
               "  --output-tensor-type T    type of output.weight (and of token_embd.weight if tied)\n"
               "  --token-embedding-type T  type of token_embd.weight\n"
               "  --tensor-type REGEX=T     tensors whose name matches the POSIX extended REGEX get T\n"
               "                            (repeatable, first match wins; e.g. 'attn_v=q8_0')\n"
               "  --leave-output-tensor     output.weight keeps its type\n"
               "  --imatrix FILE            importance matrix from llama-imatrix (GGUF or legacy .dat)\n"
               "  --threads N               threads (default: all cores)\n"
               "  --dry-run                 show the plan and sizes, write nothing\n"
               "  --json                    the table as one JSON object on stdout\n"
               "  --no-measure              skip the relative-RMSE pass after writing\n"
               "\n"
               "Types T: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K q3_K q4_K q5_K q6_K.\n"
               "Weights (2-D tensors named *weight, not norms) are quantized; rows that do not fit\n"
               "a type's block fall back as in llama.cpp (q4_K -> q5_0, q6_K -> q8_0, ...).\n"
               "\n"
               "presets:\n");
    for (int i = 0; i < werk_quant_preset_count(); i++) {
        const werk_quant_preset *p = werk_quant_preset_at(i);
        fprintf(f, "  %-7s %2u  %s\n", p->name, p->ftype, p->help);
    }
}

/* Types a user may ask for: the storable ones werk can write. */
static bool storable(werk_dtype t) {
    switch (t) {
    case WERK_DTYPE_F32:
    case WERK_DTYPE_F16:
    case WERK_DTYPE_BF16:
    case WERK_DTYPE_Q4_0:
    case WERK_DTYPE_Q4_1:
    case WERK_DTYPE_Q5_0:
    case WERK_DTYPE_Q5_1:
    case WERK_DTYPE_Q8_0:
    case WERK_DTYPE_Q2_K:
    case WERK_DTYPE_Q3_K:
    case WERK_DTYPE_Q4_K:
    case WERK_DTYPE_Q5_K:
    case WERK_DTYPE_Q6_K:
        return true;
    default:
        return false;
    }
}

static werk_status parse_type(const char *opt, const char *v, werk_dtype *out, werk_err *err) {
    if (!werk_dtype_from_name(v, out) || !storable(*out)) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "quantize: %s: unknown type '%s' (f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_K..q6_K)",
                         opt, v);
    }
    return WERK_OK;
}

typedef struct args {
    werk_quantize_job   job;
    const char         *type_name; // --type
    const char         *shortcut;  // --q4_k ...
    werk_quant_override over[MAX_OVERRIDES];
    int                 n_over;
    int                 threads;
    bool                json;
} args;

/* --q4_k style flag: the name after "--" is a storable type. */
static bool shortcut_type(const char *a, werk_dtype *t) {
    return a[0] == '-' && a[1] == '-' && werk_dtype_from_name(a + 2, t) && storable(*t);
}

static werk_status parse_args(int argc, char **argv, args *a, bool *help, werk_err *err) {
    werk_quantize_job *job                = &a->job;
    job->opts.output_type                 = WERK_DTYPE_COUNT;
    job->opts.token_embd_type             = WERK_DTYPE_COUNT;
    job->progress                         = true;
    job->measure                          = true;
    static const char *const with_value[] = {
        "--type",   "--output-tensor-type", "--token-embedding-type", "--tensor-type", "--imatrix",
        "--threads"};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char        name[64];
        const char *val = NULL;
        // --opt=value or --opt value
        const char *eq = arg[0] == '-' && arg[1] == '-' ? strchr(arg, '=') : NULL;
        size_t      nl = eq ? (size_t)(eq - arg) : strlen(arg);
        snprintf(name, sizeof(name), "%.*s", (int)(nl < sizeof(name) ? nl : sizeof(name) - 1), arg);
        bool takes = false;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++) {
            takes |= strcmp(name, with_value[k]) == 0;
        }
        if (takes) {
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                return WERK_FAIL(err, WERK_E_ARG, "quantize: %s needs a value", name);
            }
        } else if (eq) {
            return WERK_FAIL(err, WERK_E_ARG, "quantize: %s takes no value", name);
        }
        werk_dtype  t;
        werk_status s = WERK_OK;
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            *help = true;
            return WERK_OK;
        } else if (strcmp(name, "--type") == 0) {
            a->type_name = val;
        } else if (strcmp(name, "--output-tensor-type") == 0) {
            s = parse_type(name, val, &job->opts.output_type, err);
        } else if (strcmp(name, "--token-embedding-type") == 0) {
            s = parse_type(name, val, &job->opts.token_embd_type, err);
        } else if (strcmp(name, "--tensor-type") == 0) {
            const char *sep = strrchr(val, '=');
            if (!sep || sep == val) {
                return WERK_FAIL(err, WERK_E_ARG, "quantize: --tensor-type wants REGEX=TYPE (got '%s')", val);
            }
            if (a->n_over == MAX_OVERRIDES) {
                return WERK_FAIL(err, WERK_E_ARG, "quantize: more than %d --tensor-type options",
                                 MAX_OVERRIDES);
            }
            // the pattern is the argument up to the last '=' (a type never contains one)
            s = parse_type(name, sep + 1, &a->over[a->n_over].type, err);
            if (s == WERK_OK) {
                char *pat = malloc((size_t)(sep - val) + 1);
                if (!pat) {
                    return WERK_FAIL(err, WERK_E_OOM, "quantize: out of memory");
                }
                memcpy(pat, val, (size_t)(sep - val));
                pat[sep - val]               = 0;
                a->over[a->n_over++].pattern = pat;
            }
        } else if (strcmp(name, "--imatrix") == 0) {
            job->imatrix_path = val;
        } else if (strcmp(name, "--threads") == 0) {
            char *end;
            long  n = strtol(val, &end, 10);
            if (end == val || *end || n < 1 || n > 4096) {
                return WERK_FAIL(err, WERK_E_ARG, "quantize: --threads wants a number 1..4096 (got '%s')",
                                 val);
            }
            a->threads = (int)n;
        } else if (strcmp(arg, "--pure") == 0) {
            job->opts.pure = true;
        } else if (strcmp(arg, "--leave-output-tensor") == 0) {
            job->opts.leave_output = true;
        } else if (strcmp(arg, "--dry-run") == 0) {
            job->dry_run = true;
        } else if (strcmp(arg, "--json") == 0) {
            a->json = true;
        } else if (strcmp(arg, "--no-measure") == 0) {
            job->measure = false;
        } else if (shortcut_type(arg, &t)) {
            if (a->shortcut) {
                return WERK_FAIL(err, WERK_E_ARG, "quantize: %s and %s both given", a->shortcut, arg);
            }
            a->shortcut = arg;
        } else if (arg[0] == '-' && arg[1] != 0) {
            return WERK_FAIL(err, WERK_E_ARG, "quantize: unknown option '%s' (see 'werk quantize --help')",
                             arg);
        } else if (!job->in) {
            job->in = arg;
        } else if (!job->out) {
            job->out = arg;
        } else {
            return WERK_FAIL(err, WERK_E_ARG, "quantize: unexpected argument '%s'", arg);
        }
        if (s) {
            return s;
        }
    }
    if (!job->in || (!job->out && !job->dry_run)) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "quantize: needs IN.gguf and OUT.gguf (see 'werk quantize --help')");
    }
    if (!a->type_name && !a->shortcut) {
        return WERK_FAIL(err, WERK_E_ARG,
                         "quantize: say what to make: --q4_k or --type PRESET (e.g. Q4_K_M)");
    }
    if (a->type_name && a->shortcut) {
        return WERK_FAIL(err, WERK_E_ARG, "quantize: --type and %s both given", a->shortcut);
    }
    if (a->type_name) {
        job->opts.preset = werk_quant_preset_find(a->type_name);
        if (!job->opts.preset) {
            return WERK_FAIL(err, WERK_E_ARG, "quantize: unknown preset '%s' (see 'werk quantize --help')",
                             a->type_name);
        }
    } else {
        werk_dtype t;
        shortcut_type(a->shortcut, &t);
        job->opts.preset = werk_quant_preset_for_type(t);
        job->opts.pure   = true;
        WERK_ASSERT(job->opts.preset); // every storable type has a preset
    }
    job->opts.overrides   = a->over;
    job->opts.n_overrides = a->n_over;
    return WERK_OK;
}

static void free_args(args *a) {
    for (int i = 0; i < a->n_over; i++) {
        free((char *)a->over[i].pattern);
    }
    free(a);
}

// ---- printing ---------------------------------------------------------------------------------

static void shape_str(const werk_quant_report_row *r, char *buf, size_t n) {
    size_t k = 0;
    buf[0]   = 0;
    for (int d = 0; d < r->n_dims && k < n; d++) {
        k += (size_t)snprintf(buf + k, n - k, d ? "x%" PRId64 : "%" PRId64, r->shape[d]);
    }
}

static double bpw(uint64_t bytes, uint64_t n) { return n ? 8.0 * (double)bytes / (double)n : 0.0; }

static void print_table(const werk_quant_report *r, bool measured, bool pure) {
    printf("%-40s %-6s    %-6s %-16s %12s %10s  %s\n", "tensor", "from", "type", "shape", "bytes",
           measured ? "rel_rmse" : "", "note");
    for (int64_t i = 0; i < r->n_rows; i++) {
        const werk_quant_report_row *row = &r->rows[i];
        char                         shape[80], rmse[32], note[96];
        shape_str(row, shape, sizeof(shape));
        if (row->rel_rmse < 0 || (!measured && row->choice.type != row->src_type)) {
            snprintf(rmse, sizeof(rmse), "%s", measured ? "?" : "");
        } else if (row->choice.type == row->src_type) {
            snprintf(rmse, sizeof(rmse), "-");
        } else {
            snprintf(rmse, sizeof(rmse), "%.4g", row->rel_rmse);
        }
        note[0] = 0;
        if (row->choice.fallback) {
            snprintf(note + strlen(note), sizeof(note) - strlen(note), "fallback from %s ",
                     werk_dtype_name(row->choice.wanted));
        }
        if (row->choice.manual) {
            snprintf(note + strlen(note), sizeof(note) - strlen(note), "manual ");
        }
        if (row->requant) {
            snprintf(note + strlen(note), sizeof(note) - strlen(note), "requantized ");
        }
        if (row->imatrix) {
            snprintf(note + strlen(note), sizeof(note) - strlen(note), "imatrix ");
        }
        printf("%-40s %-6s -> %-6s %-16s %12" PRIu64 " %10s  %s\n", row->name, werk_dtype_name(row->src_type),
               werk_dtype_name(row->choice.type), shape, row->bytes, rmse, note);
    }
    printf("total: %" PRId64 " tensors, %" PRIu64 " weights: %.2f MiB (%.2f bpw) -> %.2f MiB (%.2f bpw), "
           "preset %s%s; %" PRId64 " fallbacks",
           r->n_rows, r->n_elements, (double)r->src_bytes / 1048576.0, bpw(r->src_bytes, r->n_elements),
           (double)r->bytes / 1048576.0, bpw(r->bytes, r->n_elements), r->preset->name, pure ? " (pure)" : "",
           r->n_fallback);
    if (r->file_bytes) {
        printf("; file %" PRIu64 " bytes", r->file_bytes);
    }
    printf("\n");
}

static int print_json(const werk_quantize_job *job, const werk_quant_report *r) {
    cJSON *o  = cJSON_CreateObject();
    cJSON *ts = cJSON_AddArrayToObject(o, "tensors");
    cJSON_AddStringToObject(o, "input", job->in);
    if (!job->dry_run) {
        cJSON_AddStringToObject(o, "output", job->out);
    }
    cJSON_AddStringToObject(o, "preset", r->preset->name);
    cJSON_AddBoolToObject(o, "pure", job->opts.pure);
    cJSON_AddNumberToObject(o, "file_type", r->preset->ftype);
    cJSON_AddBoolToObject(o, "dry_run", job->dry_run);
    for (int64_t i = 0; i < r->n_rows; i++) {
        const werk_quant_report_row *row = &r->rows[i];
        cJSON                       *t   = cJSON_CreateObject();
        cJSON_AddItemToArray(ts, t);
        cJSON_AddStringToObject(t, "name", row->name);
        cJSON_AddStringToObject(t, "category", werk_tensor_cat_name(row->choice.cat));
        cJSON_AddStringToObject(t, "src_type", werk_dtype_name(row->src_type));
        cJSON_AddStringToObject(t, "type", werk_dtype_name(row->choice.type));
        cJSON_AddStringToObject(t, "wanted", werk_dtype_name(row->choice.wanted));
        cJSON *shape = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < row->n_dims; d++) {
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)row->shape[d]));
        }
        cJSON_AddNumberToObject(t, "src_bytes", (double)row->src_bytes);
        cJSON_AddNumberToObject(t, "bytes", (double)row->bytes);
        cJSON_AddBoolToObject(t, "quantize", row->choice.quantize);
        cJSON_AddBoolToObject(t, "fallback", row->choice.fallback);
        cJSON_AddBoolToObject(t, "manual", row->choice.manual);
        cJSON_AddBoolToObject(t, "requantized", row->requant);
        cJSON_AddBoolToObject(t, "imatrix", row->imatrix);
        if (row->rel_rmse >= 0) {
            cJSON_AddNumberToObject(t, "rel_rmse", row->rel_rmse);
        } else {
            cJSON_AddNullToObject(t, "rel_rmse");
        }
    }
    cJSON *tot = cJSON_AddObjectToObject(o, "total");
    cJSON_AddNumberToObject(tot, "tensors", (double)r->n_rows);
    cJSON_AddNumberToObject(tot, "elements", (double)r->n_elements);
    cJSON_AddNumberToObject(tot, "src_bytes", (double)r->src_bytes);
    cJSON_AddNumberToObject(tot, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(tot, "src_bpw", bpw(r->src_bytes, r->n_elements));
    cJSON_AddNumberToObject(tot, "bpw", bpw(r->bytes, r->n_elements));
    cJSON_AddNumberToObject(tot, "file_bytes", (double)r->file_bytes);
    cJSON_AddNumberToObject(tot, "fallbacks", (double)r->n_fallback);
    cJSON_AddNumberToObject(tot, "requantized", (double)r->n_requant);
    cJSON_AddNumberToObject(tot, "imatrix", (double)r->n_imatrix);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!text) {
        werk_err err = {0};
        WERK_FAIL(&err, WERK_E_OOM, "quantize: out of memory printing JSON");
        return werk_err_report(&err);
    }
    printf("%s\n", text);
    cJSON_free(text);
    return 0;
}

int werk_cmd_quantize(int argc, char **argv) {
    args    *a    = calloc(1, sizeof(*a));
    werk_err err  = {0};
    bool     help = false;
    if (!a) {
        WERK_FAIL(&err, WERK_E_OOM, "quantize: out of memory");
        return werk_err_report(&err);
    }
    werk_status s = parse_args(argc, argv, a, &help, &err);
    if (s || help) {
        free_args(a);
        if (help) {
            usage(stdout);
            return 0;
        }
        return werk_err_report(&err);
    }
    if (a->threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(a->threads);
#endif
    }
    werk_quant_report *rep = NULL;
    s                      = werk_quantize_run(&a->job, &rep, &err);
    int rc                 = 0;
    if (s) {
        rc = werk_err_report(&err);
    } else if (a->json) {
        rc = print_json(&a->job, rep);
    } else {
        print_table(rep, a->job.measure && !a->job.dry_run, a->job.opts.pure);
        if (!a->job.dry_run) {
            fprintf(stderr, "werk: wrote %s\n", a->job.out);
        }
    }
    werk_quant_report_free(rep);
    free_args(a);
    return rc;
}
