/* tests/fuzz/fuzz_spm_model.c - libFuzzer target for the SentencePiece tokenizer.model codec
 *
 * Parses the input with werk_spm_model_parse; on success reads every byte the parser
 * handed out, then checks the round-trip property: encode -> parse gives the same pieces
 * (bytes, score bits, types), TrainerSpec and NormalizerSpec fields. The corpus in
 * tests/fuzz/corpus/fuzz_spm_model/ replays in every build (replay_main.c).
 */
#include "convert/tokenizer_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t sink;

static void same_or_trap(const werk_spm_model *a, const werk_spm_model *b) {
    if (a->n_pieces != b->n_pieces || a->model_type != b->model_type ||
        a->byte_fallback != b->byte_fallback ||
        a->allow_whitespace_only_pieces != b->allow_whitespace_only_pieces ||
        a->treat_whitespace_as_suffix != b->treat_whitespace_as_suffix || a->unk_id != b->unk_id ||
        a->bos_id != b->bos_id || a->eos_id != b->eos_id || a->pad_id != b->pad_id ||
        a->add_dummy_prefix != b->add_dummy_prefix ||
        a->remove_extra_whitespaces != b->remove_extra_whitespaces ||
        a->escape_whitespaces != b->escape_whitespaces ||
        strcmp(a->normalizer_name, b->normalizer_name) != 0) {
        __builtin_trap();
    }
    for (int64_t i = 0; i < a->n_pieces; i++) {
        if (a->lens[i] != b->lens[i] || memcmp(a->pieces[i], b->pieces[i], a->lens[i]) != 0 ||
            memcmp(&a->scores[i], &b->scores[i], 4) != 0 || a->types[i] != b->types[i]) {
            __builtin_trap();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    werk_spm_model m, back;
    werk_err       err = {0};
    werk_spm_model_init(&m);
    if (werk_spm_model_parse(data, size, "fuzz.model", &m, &err) != WERK_OK) {
        if (m.n_pieces != 0 || err.code != WERK_E_FORMAT) {
            __builtin_trap(); // failures leave the model empty and are format errors
        }
        return 0;
    }
    for (int64_t i = 0; i < m.n_pieces; i++) {
        if (m.lens[i] == 0 || m.pieces[i][m.lens[i]] != 0 || m.types[i] < 1 || m.types[i] > 6) {
            __builtin_trap();
        }
        for (uint64_t k = 0; k < m.lens[i]; k++) {
            sink += (uint8_t)m.pieces[i][k];
        }
    }
    sink += strlen(m.normalizer_name);
    uint8_t *enc;
    size_t   n;
    if (werk_spm_model_encode(&m, &enc, &n, &err) != WERK_OK) {
        if (err.code != WERK_E_OOM) {
            __builtin_trap(); // whatever parses must encode
        }
        werk_spm_model_free(&m);
        return 0;
    }
    werk_spm_model_init(&back);
    if (werk_spm_model_parse(enc, n, "fuzz.reencoded", &back, &err) != WERK_OK) {
        __builtin_trap();
    }
    same_or_trap(&m, &back);
    free(enc);
    werk_spm_model_free(&back);
    werk_spm_model_free(&m);
    return 0;
}
