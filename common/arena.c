/* common/arena.c - bump allocator: many small allocations freed together
 *
 * Chunks are malloc'd on demand (at least 64 KiB, or the request) and linked; every
 * allocation is zeroed and 16-byte aligned. werk_arena_free releases all chunks.
 */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

struct werk_arena_chunk {
    werk_arena_chunk *next;
    size_t            cap;
    size_t            used;
    _Alignas(16) unsigned char data[];
};

enum { ARENA_MIN_CHUNK = 64 * 1024 };

void werk_arena_init(werk_arena *a) {
    a->head  = NULL;
    a->total = 0;
}

void *werk_arena_alloc(werk_arena *a, size_t n) {
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n) {
        return NULL;
    }
    werk_arena_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_MIN_CHUNK ? need : ARENA_MIN_CHUNK;
        if (cap > SIZE_MAX - sizeof(werk_arena_chunk)) {
            return NULL;
        }
        werk_arena_chunk *nc = malloc(sizeof(werk_arena_chunk) + cap);
        if (!nc) {
            return NULL;
        }
        nc->cap  = cap;
        nc->used = 0;
        // Keep the partially used head first if the new chunk is a one-off big block.
        if (c && need > ARENA_MIN_CHUNK) {
            nc->next = c->next;
            c->next  = nc;
        } else {
            nc->next = c;
            a->head  = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += need;
    a->total += need;
    memset(p, 0, n);
    return p;
}

char *werk_arena_strndup(werk_arena *a, const char *s, size_t n) {
    if (n == SIZE_MAX) {
        return NULL;
    }
    char *p = werk_arena_alloc(a, n + 1);
    if (!p) {
        return NULL;
    }
    if (n) {
        memcpy(p, s, n);
    }
    p[n] = 0;
    return p;
}

char *werk_arena_strdup(werk_arena *a, const char *s) {
    return werk_arena_strndup(a, s, strlen(s));
}

void werk_arena_free(werk_arena *a) {
    werk_arena_chunk *c = a->head;
    while (c) {
        werk_arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head  = NULL;
    a->total = 0;
}
