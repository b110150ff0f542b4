/* tests/fuzz/fuzz_gguf.c - libFuzzer target for the GGUF reader (werk_gguf_read_mem)
 *
 * Parses the input as a GGUF file; on success walks every key/value (nested arrays and
 * strings included, reading every byte the parser handed out) and every tensor (first
 * and last data byte, shape, element and row counts), and runs the typed getters on
 * every key, so a sanitizer build sees any pointer or length the reader got wrong. The
 * corpus in tests/fuzz/corpus/fuzz_gguf/ replays in every build (replay_main.c).
 */
#include "convert/convert.h"

#include <stdint.h>
#include <string.h>

static uint64_t sink;

static void touch_bytes(const void *p, uint64_t n) {
    const uint8_t *b = p;
    for (uint64_t i = 0; i < n; i++) {
        sink += b[i];
    }
}

static void touch_value(const werk_gguf_value *v) {
    switch (v->type) {
    case WERK_GGUF_STRING:
        touch_bytes(v->str.data, v->str.len + 1); // NUL-terminated
        break;
    case WERK_GGUF_ARRAY:
        if (v->arr.elem_type == WERK_GGUF_STRING) {
            const werk_gguf_str *s = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++) {
                touch_bytes(s[i].data, s[i].len + 1);
            }
        } else if (v->arr.elem_type == WERK_GGUF_ARRAY) {
            const werk_gguf_value *s = v->arr.data;
            for (uint64_t i = 0; i < v->arr.n; i++) {
                touch_value(&s[i]);
            }
        } else {
            static const uint8_t size[WERK_GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
            touch_bytes(v->arr.data, v->arr.n * size[v->arr.elem_type]);
        }
        break;
    default:
        sink += v->u64;
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    werk_gguf *g   = NULL;
    werk_err   err = {0};
    if (werk_gguf_read_mem(data, size, "fuzz.gguf", &g, &err) != WERK_OK) {
        return 0;
    }
    for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
        const werk_gguf_kv *kv = werk_gguf_kv_at(g, i);
        touch_bytes(kv->key, strlen(kv->key));
        touch_value(&kv->value);
        if (werk_gguf_find_kv(g, kv->key) != i) {
            __builtin_trap(); // keys are unique and findable
        }
        uint32_t    u;
        float       f;
        const char *s;
        bool        b, found;
        werk_gguf_get_u32(g, kv->key, &u, &found, &err);
        werk_gguf_get_f32(g, kv->key, &f, &found, &err);
        werk_gguf_get_str(g, kv->key, &s, &found, &err);
        werk_gguf_get_bool(g, kv->key, &b, &found, &err);
    }
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        const uint8_t          *p = t->data;
        if (t->nbytes == 0 || !p || werk_gguf_find_tensor(g, t->name) != i) {
            __builtin_trap();
        }
        sink += p[0] + p[t->nbytes - 1];
        sink += (uint64_t)werk_gguf_tensor_nelements(t) + (uint64_t)werk_gguf_tensor_nrows(t);
    }
    sink += werk_gguf_alignment(g);
    werk_gguf_free(g);
    return 0;
}
