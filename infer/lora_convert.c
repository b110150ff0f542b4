/* infer/lora_convert.c - adapter file conversion: PEFT dir <-> llama.cpp LoRA GGUF
 *
 * `werk convert ADAPTER OUT --base BASE.gguf` (what llama.cpp's convert_lora_to_gguf.py
 * does, and back): the base model gives the shapes, the architecture and the llama q/k
 * row order; the adapter is loaded (werk_lora_load) and saved in the other format. The
 * tensors keep their values bit for bit when the input is f32 and the output type is f32
 * (the default; --type f16/bf16 as llama.cpp's converter offers). The source path is
 * recorded as provenance ("training.source").
 */
#include "infer/lora_int.h"

werk_status werk_lora_convert(const char      *in,
                              const werk_gguf *base,
                              const char      *out,
                              bool             to_peft,
                              const char      *base_name,
                              werk_dtype       type,
                              werk_err        *err) {
    werk_model *m  = NULL;
    werk_lora  *l  = NULL;
    werk_status st = werk_model_load(base, &m, err);
    if (!st) {
        st = werk_lora_load(in, m, 1.0f, &l, err);
    }
    if (!st) {
        const char    *keys[] = {"source"}, *vals[] = {in};
        werk_lora_meta meta = {keys, vals, 1};
        st                  = to_peft ? werk_lora_save_peft_as(l, m, out, base_name, &meta, type, err)
                                      : werk_lora_save_gguf_as(l, m, out, &meta, type, err);
    }
    werk_lora_free(l);
    werk_model_free(m);
    return st;
}
