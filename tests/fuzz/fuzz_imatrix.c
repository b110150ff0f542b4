/* tests/fuzz/fuzz_imatrix.c - libFuzzer target: werk_imatrix_read_mem on arbitrary bytes
 *
 * Any input must give either WERK_OK with entries whose importance values are finite and
 * non-negative, or an error with a one-line message naming the input - never a crash,
 * hang, leak or large allocation. Seeds: tests/fuzz/corpus/fuzz_imatrix/ (a GGUF imatrix
 * and a legacy .dat file, valid and damaged; replayed by ctest as
 * fuzz/fuzz_imatrix_corpus).
 */
#include "convert/convert.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    werk_imatrix *im  = NULL;
    werk_err      err = {0};
    werk_status   s   = werk_imatrix_read_mem(data, size, "fuzz.imatrix", &im, &err);
    if (s != WERK_OK) {
        if (im || !err.msg[0] || strchr(err.msg, '\n') || strstr(err.msg, "fuzz.imatrix") == NULL) {
            __builtin_trap();
        }
        return 0;
    }
    for (int64_t i = 0; i < werk_imatrix_n_entries(im); i++) {
        const werk_imatrix_entry *e = werk_imatrix_entry_at(im, i);
        if (!e || !e->name || e->n_per_row < 0 || e->n_mat < 1 || werk_imatrix_find(im, e->name) != e) {
            __builtin_trap();
        }
        for (int64_t k = 0; k < e->n_per_row * e->n_mat; k++) {
            if (!isfinite(e->values[k]) || e->values[k] < 0) {
                __builtin_trap();
            }
        }
    }
    (void)werk_imatrix_dataset(im);
    werk_imatrix_free(im);
    return 0;
}
