/* convert/cmd_convert.c - the `werk convert` command: parse arguments, open, write
 *
 *   werk convert IN OUT [--type f32|f16|bf16|q8_0] [--to gguf|hf] [--vocab tok.bin]
 *                [--lora ADAPTER | --lora-scaled ADAPTER S]...
 *   werk convert ADAPTER OUT --base BASE.gguf [--to gguf|hf] [--type f32|f16|bf16]
 *
 * IN: HF dir | .safetensors (config.json beside it) | .gguf | llama2.c .bin.
 * OUT: a .gguf file (default) or an HF dir (--to hf, or OUT without .gguf that is a folder
 * or ends in '/'). Without --type, float tensors keep their type and quantized tensors
 * are kept as they are for GGUF output (f32 for HF output). --lora merges adapters (PEFT
 * dirs or llama.cpp LoRA GGUFs) into a GGUF base: W' = W + scale B A (infer/lora_merge.c;
 * merged tensors keep f32/f16/bf16, quantized ones become f16 unless --type says).
 * With --base, IN is a LoRA adapter (PEFT dir or LoRA GGUF) for BASE and is rewritten as
 * a llama.cpp LoRA GGUF, or a PEFT dir with --to hf (infer/lora_convert.c).
 */
#include "convert/convert.h"
#include "infer/infer.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void usage(FILE *f) {
    fprintf(f, "usage: werk convert IN OUT [--type f32|f16|bf16|q8_0] [--to gguf|hf] [--vocab TOK.bin]\n"
               "\n"
               "  IN    HF dir, .safetensors (with config.json beside it), .gguf, or llama2.c .bin\n"
               "  OUT   .gguf file, or an HF dir with --to hf\n"
               "  --type T     store every 2-D weight as T (1-D tensors: f32)\n"
               "  --to FMT     gguf (default) or hf (config.json + safetensors + tokenizer files)\n"
               "  --vocab F    llama2.c tokenizer .bin for a llama2.c checkpoint\n"
               "  --lora A     merge a LoRA adapter (PEFT dir or LoRA .gguf) into a .gguf IN (repeatable)\n"
               "  --lora-scaled A S  the same with the adapter's update scaled by S\n"
               "  --base B     IN is a LoRA adapter for the model B.gguf: write it as a LoRA .gguf\n"
               "               (or a PEFT dir with --to hf); --type f32 (default), f16 or bf16\n");
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Sets the output type of every tensor for GGUF output: 1-D tensors (norms, biases) are
 * f32 whatever the type (as llama.cpp writes them); block types need the row length to
 * be a multiple of the block size, else the tensor is f32. */
static werk_status retype_for_gguf(werk_gguf *g, werk_dtype type, werk_err *err) {
    const werk_dtype_info *ti = werk_dtype_get(type);
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        werk_gguf_tensor *t = werk_gguf_tensor_at_mut(g, i);
        if (!werk_dtype_get(t->src_type)->is_float && !werk_dtype_get(t->src_type)->is_quant) {
            continue; // integer tensors are copied as they are
        }
        if (!werk_dtype_can_dequantize(t->src_type)) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "tensor '%s': cannot convert from type %s", t->name,
                             werk_dtype_name(t->src_type));
        }
        werk_dtype want = type;
        if (t->n_dims < 2 || (ti->is_quant && t->shape[t->n_dims - 1] % ti->block_size != 0)) {
            want = WERK_DTYPE_F32;
        }
        t->type = want;
    }
    uint32_t ftype = 0; // llama.cpp's LLAMA_FTYPE_*: ALL_F32 0, MOSTLY_F16 1, MOSTLY_Q8_0 7, MOSTLY_BF16 32
    switch (type) {
    case WERK_DTYPE_F32:
        ftype = 0;
        break;
    case WERK_DTYPE_F16:
        ftype = 1;
        break;
    case WERK_DTYPE_Q8_0:
        ftype = 7;
        break;
    case WERK_DTYPE_BF16:
        ftype = 32;
        break;
    default:
        break;
    }
    werk_status s = werk_gguf_set_u32(g, "general.file_type", ftype, err);
    if (s == WERK_OK && ti->is_quant) {
        s = werk_gguf_set_u32(g, "general.quantization_version", 2, err);
    }
    return s;
}

int werk_cmd_convert(int argc, char **argv) {
    const char *in = NULL, *out = NULL, *type_name = NULL, *to = NULL, *vocab = NULL, *loras[16];
    const char *base = NULL;
    float       lora_scales[16];
    int         n_loras = 0;
    werk_err    err = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--lora") == 0 || strcmp(a, "--lora-scaled") == 0) {
            bool  scaled = strcmp(a, "--lora-scaled") == 0;
            bool  ok     = i + 1 + scaled < argc && n_loras < 16;
            float sc     = 1.0f;
            if (ok && scaled) {
                char *end = NULL;
                sc        = strtof(argv[i + 2], &end);
                ok        = *argv[i + 2] && !*end && sc > -1e6f && sc < 1e6f;
            }
            if (!ok) {
                WERK_FAIL(&err, WERK_E_ARG, "convert: %s needs %s (at most 16 adapters)", a,
                          scaled ? "an adapter and a scale" : "an adapter");
                return werk_err_report(&err);
            }
            lora_scales[n_loras] = sc;
            loras[n_loras++]     = argv[i + 1];
            i += 1 + scaled;
            continue;
        }
        if (strcmp(a, "--type") == 0 || strcmp(a, "--to") == 0 || strcmp(a, "--vocab") == 0 ||
            strcmp(a, "--base") == 0) {
            if (i + 1 >= argc) {
                WERK_FAIL(&err, WERK_E_ARG, "convert: %s needs a value", a);
                return werk_err_report(&err);
            }
            const char *v = argv[++i];
            if (strcmp(a, "--type") == 0) {
                type_name = v;
            } else if (strcmp(a, "--to") == 0) {
                to = v;
            } else if (strcmp(a, "--base") == 0) {
                base = v;
            } else {
                vocab = v;
            }
        } else if (a[0] == '-' && a[1] != 0) {
            WERK_FAIL(&err, WERK_E_ARG, "convert: unknown option '%s' (see 'werk convert --help')", a);
            return werk_err_report(&err);
        } else if (!in) {
            in = a;
        } else if (!out) {
            out = a;
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "convert: unexpected argument '%s'", a);
            return werk_err_report(&err);
        }
    }
    if (!in || !out) {
        usage(stderr);
        return 2;
    }
    werk_dtype type     = WERK_DTYPE_COUNT;
    bool       has_type = type_name != NULL;
    if (has_type) {
        if (!werk_dtype_from_name(type_name, &type) ||
            (type != WERK_DTYPE_F32 && type != WERK_DTYPE_F16 && type != WERK_DTYPE_BF16 &&
             type != WERK_DTYPE_Q8_0)) {
            WERK_FAIL(&err, WERK_E_ARG, "convert: --type must be f32, f16, bf16 or q8_0 (got '%s'); "
                      "for 4-bit types use 'werk quantize'", type_name);
            return werk_err_report(&err);
        }
    }
    bool to_hf = false;
    if (to) {
        if (strcmp(to, "hf") == 0) {
            to_hf = true;
        } else if (strcmp(to, "gguf") != 0) {
            WERK_FAIL(&err, WERK_E_ARG, "convert: --to must be gguf or hf (got '%s')", to);
            return werk_err_report(&err);
        }
    } else {
        struct stat st;
        to_hf = ends_with(out, "/") || (stat(out, &st) == 0 && S_ISDIR(st.st_mode));
    }

    werk_gguf  *g = NULL;
    if (base) {
        if (n_loras || vocab || (has_type && type == WERK_DTYPE_Q8_0)) {
            WERK_FAIL(&err, WERK_E_ARG, "convert: --base (an adapter): no --lora/--vocab; --type f32|f16|bf16");
            return werk_err_report(&err);
        }
        werk_status bs = werk_gguf_read(base, &g, &err);
        if (bs == WERK_OK) {
            bs = werk_lora_convert(in, g, out, to_hf, base, has_type ? type : WERK_DTYPE_F32, &err);
        }
        werk_gguf_free(g);
        if (bs != WERK_OK) {
            return werk_err_report(&err);
        }
        fprintf(stderr, "werk: wrote %s\n", out);
        return 0;
    }
    werk_status s = werk_convert_open(in, vocab, &g, &err);
    if (s == WERK_OK && n_loras > 0) {
        s = werk_lora_merge_files(g, loras, lora_scales, n_loras, &err);
    }
    if (s == WERK_OK) {
        if (to_hf) {
            if (has_type && type == WERK_DTYPE_Q8_0) {
                s = WERK_FAIL(&err, WERK_E_ARG, "convert: HF output is f32, f16 or bf16");
            } else {
                werk_hf_export_opts opts = {.type = has_type ? type : WERK_DTYPE_F32, .progress = true};
                s = werk_hf_export(g, out, &opts, &err);
            }
        } else {
            if (has_type) {
                s = retype_for_gguf(g, type, &err);
            }
            if (s == WERK_OK) {
                s = werk_gguf_write(g, out, true, &err);
            }
        }
    }
    werk_gguf_free(g);
    if (s != WERK_OK) {
        return werk_err_report(&err);
    }
    fprintf(stderr, "werk: wrote %s\n", out);
    return 0;
}
