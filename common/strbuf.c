/* common/strbuf.c - a growable NUL-terminated string buffer
 *
 * For building text (JSON headers, config files) piece by piece. Allocation failure is
 * sticky: after it, appends do nothing and `oom` stays true, so callers check once at the
 * end instead of after every append.
 */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>

void werk_strbuf_put(werk_strbuf *b, const char *s, size_t n) {
    if (b->oom) {
        return;
    }
    if (n > SIZE_MAX - b->n - 1) {
        b->oom = true;
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p   = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void werk_strbuf_puts(werk_strbuf *b, const char *s) {
    werk_strbuf_put(b, s, strlen(s));
}

void werk_strbuf_free(werk_strbuf *b) {
    free(b->p);
    memset(b, 0, sizeof(*b));
}
