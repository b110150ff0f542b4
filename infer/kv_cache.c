/* infer/kv_cache.c - the f32 key/value cache of one sequence
 *
 * Layout (werk_kv_cache): k and v each hold n_layer x n_ctx x kd floats, kd = n_head_kv x
 * head_dim, keys stored after rope and k-norm. Sliding-window layers keep every position
 * too (simple, at most n_ctx per layer); attention reads only the window.
 */
#include "infer/decode.h"
#include "infer/model_int.h"

#include <stdlib.h>
#include <string.h>

werk_status werk_kv_cache_init(werk_kv_cache *c, const werk_model *m, int64_t n_ctx, werk_err *err) {
    memset(c, 0, sizeof(*c));
    uint64_t n = 0, bytes = 0;
    int64_t  kd = m->n_head_kv * m->head_dim;
    if (n_ctx <= 0 || n_ctx > (int64_t)1 << 24 || !werk_mul_u64((uint64_t)m->n_layer, (uint64_t)n_ctx, &n) ||
        !werk_mul_u64(n, (uint64_t)kd, &n) || !werk_mul_u64(n, sizeof(float), &bytes) ||
        bytes > SIZE_MAX / 2) {
        return WERK_FAIL(err, WERK_E_ARG, "kv cache: bad context %lld", (long long)n_ctx);
    }
    c->k = malloc(bytes ? (size_t)bytes : 1);
    c->v = malloc(bytes ? (size_t)bytes : 1);
    if (!c->k || !c->v) {
        werk_kv_cache_free(c);
        return WERK_FAIL(err, WERK_E_OOM, "kv cache: out of memory for %llu bytes",
                         (unsigned long long)(2 * bytes));
    }
    c->n_layer = m->n_layer;
    c->n_ctx   = n_ctx;
    c->kd      = kd;
    return WERK_OK;
}

void werk_kv_cache_free(werk_kv_cache *c) {
    if (!c) {
        return;
    }
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof(*c));
}
