/* tests/fuzz/fuzz_safetensors.c - libFuzzer target: werk_st_read_mem on arbitrary bytes
 *
 * Any input must give either WERK_OK with a table whose every tensor lies inside the
 * input and matches its shape and dtype, or an error with a one-line message naming the
 * input - never a crash, hang, leak or large allocation. Seeds: tests/fuzz/corpus/
 * fuzz_safetensors/ (also replayed by ctest as fuzz/fuzz_safetensors_corpus).
 */
#include "convert/convert.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    werk_st    *st  = NULL;
    werk_err    err = {0};
    werk_status s   = werk_st_read_mem(data, size, "fuzz.safetensors", &st, &err);
    if (s != WERK_OK) {
        if (st || !err.msg[0] || strchr(err.msg, '\n') || strncmp(err.msg, "fuzz.safetensors: ", 18) != 0) {
            __builtin_trap();
        }
        return 0;
    }
    volatile uint8_t sink = 0;
    for (int64_t i = 0; i < werk_st_n_tensors(st); i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        if (!t || t->n_dims < 0 || t->n_dims > WERK_MAX_DIMS) {
            __builtin_trap();
        }
        const uint8_t *p   = t->data;
        uintptr_t      off = (uintptr_t)p - (uintptr_t)data;
        if ((uintptr_t)p < (uintptr_t)data || off > size || t->nbytes > size - off) {
            __builtin_trap();
        }
        uint64_t n = 1;
        for (int d = 0; d < t->n_dims; d++) {
            if (t->shape[d] < 0 || !werk_mul_u64(n, (uint64_t)t->shape[d], &n)) {
                __builtin_trap();
            }
        }
        uint64_t want = 0;
        if (werk_dtype_bytes(t->type, n, &want, NULL) != WERK_OK || want != t->nbytes) {
            __builtin_trap();
        }
        if (t->nbytes) {
            sink ^= p[0] ^ p[t->nbytes - 1];
        }
        if (werk_st_find(st, t->name) != i) {
            __builtin_trap();
        }
    }
    (void)werk_st_metadata(st, "format");
    (void)sink;
    werk_st_free(st);
    return 0;
}
