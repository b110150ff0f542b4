/* common/json.c - hardened JSON parsing on top of cJSON
 *
 * JSON comes from strangers (config.json, tokenizer.json, safetensors headers, JSONL
 * records), so cJSON's permissive parser gets a guard on each side (DESIGN.md "Inputs are
 * hostile"):
 *   before: one pass over the raw bytes rejects NUL and other control bytes (JSON allows
 *           only tab, LF and CR as raw bytes below 0x20), invalid UTF-8 (overlong forms,
 *           surrogates, code points above U+10FFFF) and nesting deeper than max_depth -
 *           all with the byte offset; a leading UTF-8 byte-order mark is skipped;
 *   parse:  cJSON_ParseWithLengthOpts on a NUL-terminated buffer with
 *           require_null_terminated, so trailing garbage is an error at its offset;
 *   after:  a walk over the tree (recursion bounded by max_depth) rejects duplicate keys
 *           in any object, sorting each object's keys (O(n log n): a 262k-entry vocab
 *           is checked in milliseconds), and names the object by its path.
 * Numbers are cJSON doubles: a value too large for a double becomes +-inf, and integers
 * above 2^53 lose precision, so callers range-check what they read. A "\u0000" escape
 * ends cJSON's C string early (the key or value is truncated at it).
 */
#include "common/common.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum { JSON_DEFAULT_DEPTH = 64, JSON_MAX_DEPTH = 1000 /* cJSON's own CJSON_NESTING_LIMIT */ };

// ---- byte-level checks ----------------------------------------------------------------

/* 1-based line and column of byte `off` in s, for messages. */
static void line_col(const char *s, size_t off, size_t *line, size_t *col) {
    size_t l = 1, c = 1;
    for (size_t i = 0; i < off; i++) {
        if (s[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col  = c;
}

static werk_status
fail_at(const char *s, size_t base, size_t off, const char *what, const char *why, werk_err *err) {
    size_t line, col;
    line_col(s, off, &line, &col);
    return WERK_FAIL(err, WERK_E_FORMAT, "%s: invalid JSON at byte %zu (line %zu, column %zu): %s", what,
                     base + off, line, col, why);
}

/* Length of the valid UTF-8 sequence starting at s[i] (1..4), or 0 if it is invalid. */
static size_t utf8_len(const unsigned char *s, size_t i, size_t n) {
    unsigned char c = s[i];
    size_t        k;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        k = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        k = 3;
        if (c == 0xE0) {
            lo = 0xA0; // no overlong 3-byte forms
        } else if (c == 0xED) {
            hi = 0x9F; // no UTF-16 surrogates
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        k = 4;
        if (c == 0xF0) {
            lo = 0x90; // no overlong 4-byte forms
        } else if (c == 0xF4) {
            hi = 0x8F; // nothing above U+10FFFF
        }
    } else {
        return 0;
    }
    if (n - i < k || s[i + 1] < lo || s[i + 1] > hi) {
        return 0;
    }
    for (size_t j = 2; j < k; j++) {
        if ((s[i + j] & 0xC0) != 0x80) {
            return 0;
        }
    }
    return k;
}

/* One pass over the text: control bytes, UTF-8, nesting depth (tracking strings so that
 * brackets inside them do not count). Exact for valid JSON; for invalid JSON it may report
 * a different problem than cJSON would, but never accepts what cJSON rejects. */
static werk_status
scan_bytes(const char *text, size_t len, size_t base, int max_depth, const char *what, werk_err *err) {
    const unsigned char *s         = (const unsigned char *)text;
    int                  depth     = 0;
    bool                 in_string = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c >= 0x80) {
            size_t k = utf8_len(s, i, len);
            if (k == 0) {
                return fail_at(text, base, i, what, "not UTF-8", err);
            }
            i += k;
            continue;
        }
        if (c < 0x20 && !(c == '\t' || c == '\n' || c == '\r')) {
            char why[48];
            snprintf(why, sizeof(why), "control byte 0x%02x", c);
            return fail_at(text, base, i, what, why, err);
        }
        if (in_string) {
            if (c == '\\') {
                i += 2; // the escaped byte is never a quote that ends the string
                continue;
            }
            if (c == '"') {
                in_string = false;
            }
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) {
                char why[64];
                snprintf(why, sizeof(why), "nested deeper than %d levels", max_depth);
                return fail_at(text, base, i, what, why, err);
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
        i++;
    }
    return WERK_OK;
}

// ---- duplicate keys ---------------------------------------------------------------------

/* Ancestors of the node being checked, for naming an object in messages. */
typedef struct json_frame {
    const struct json_frame *up;
    const cJSON             *node;
    int                      index; // position in an array parent
} json_frame;

typedef struct dup_ctx {
    const char **keys; // scratch, reused by every object (sorted, checked, then dropped)
    size_t       cap;
    const char  *what;
    werk_err    *err;
} dup_ctx;

static int cmp_key(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "/model/vocab" or "/messages/3" (keys truncated, control bytes shown as '?'). */
static void frame_path(const json_frame *f, char *out, size_t n) {
    const json_frame *chain[64];
    int               k = 0;
    for (; f && k < 64; f = f->up) {
        chain[k++] = f;
    }
    size_t len = 0;
    out[0]     = 0;
    for (int i = k - 1; i >= 0 && len + 1 < n; i--) {
        const json_frame *c = chain[i];
        if (!c->up) {
            continue; // the root
        }
        char seg[48];
        if (c->node->string && cJSON_IsObject(c->up->node)) {
            snprintf(seg, sizeof(seg), "%.40s", c->node->string);
        } else {
            snprintf(seg, sizeof(seg), "%d", c->index);
        }
        for (char *p = seg; *p; p++) {
            if ((unsigned char)*p < 0x20) {
                *p = '?';
            }
        }
        int w = snprintf(out + len, n - len, "/%s", seg);
        if (w < 0) {
            break;
        }
        len += (size_t)w < n - len ? (size_t)w : n - len - 1;
    }
    if (len == 0) {
        snprintf(out, n, "/");
    }
}

static werk_status check_dups(dup_ctx *ctx, const json_frame *frame) {
    const cJSON *node = frame->node;
    if (!cJSON_IsObject(node) && !cJSON_IsArray(node)) {
        return WERK_OK;
    }
    if (cJSON_IsObject(node)) {
        size_t n = 0;
        for (const cJSON *c = node->child; c; c = c->next) {
            if (n == ctx->cap) {
                size_t       cap  = ctx->cap ? ctx->cap * 2 : 64;
                const char **keys = realloc(ctx->keys, cap * sizeof(*keys));
                if (!keys) {
                    return WERK_FAIL(ctx->err, WERK_E_OOM, "%s: out of memory checking JSON keys", ctx->what);
                }
                ctx->keys = keys;
                ctx->cap  = cap;
            }
            ctx->keys[n++] = c->string ? c->string : "";
        }
        if (n > 1) {
            qsort(ctx->keys, n, sizeof(*ctx->keys), cmp_key);
            for (size_t i = 1; i < n; i++) {
                if (strcmp(ctx->keys[i - 1], ctx->keys[i]) == 0) {
                    char path[256], key[80];
                    frame_path(frame, path, sizeof(path));
                    snprintf(key, sizeof(key), "%.64s", ctx->keys[i]);
                    for (char *p = key; *p; p++) {
                        if ((unsigned char)*p < 0x20) {
                            *p = '?';
                        }
                    }
                    return WERK_FAIL(ctx->err, WERK_E_FORMAT,
                                     "%s: invalid JSON: duplicate key \"%s\" in object %s", ctx->what, key,
                                     path);
                }
            }
        }
    }
    int index = 0;
    for (const cJSON *c = node->child; c; c = c->next, index++) {
        if (!c->child) {
            continue; // scalar, or an empty container
        }
        json_frame  f  = {frame, c, index};
        werk_status st = check_dups(ctx, &f);
        if (st != WERK_OK) {
            return st;
        }
    }
    return WERK_OK;
}

// ---- parsing --------------------------------------------------------------------------

/* Parses buf[0..len), where buf[len] == 0. */
static werk_status
parse_terminated(const char *buf, size_t len, int max_depth, const char *what, cJSON **out, werk_err *err) {
    *out = NULL;
    if (max_depth <= 0) {
        max_depth = JSON_DEFAULT_DEPTH;
    }
    if (max_depth > JSON_MAX_DEPTH) {
        max_depth = JSON_MAX_DEPTH;
    }
    size_t base = 0;
    if (len >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
        base = 3; // UTF-8 byte-order mark
    }
    const char *text = buf + base;
    size_t      n    = len - base;
    werk_status st   = scan_bytes(text, n, base, max_depth, what, err);
    if (st != WERK_OK) {
        return st;
    }
    const char *end  = NULL;
    cJSON      *root = cJSON_ParseWithLengthOpts(text, n + 1, &end, 1);
    if (!root) {
        size_t off = 0;
        if (end && end >= text && end <= text + n) {
            off = (size_t)(end - text);
        }
        return fail_at(text, base, off, what, n == 0 ? "empty" : "syntax error", err);
    }
    dup_ctx    ctx   = {NULL, 0, what, err};
    json_frame frame = {NULL, root, 0};
    st               = check_dups(&ctx, &frame);
    free(ctx.keys);
    if (st != WERK_OK) {
        cJSON_Delete(root);
        return st;
    }
    *out = root;
    return WERK_OK;
}

werk_status
werk_json_parse(const char *text, size_t len, int max_depth, const char *what, cJSON **out, werk_err *err) {
    *out = NULL;
    if (!what) {
        what = "JSON";
    }
    if (len == SIZE_MAX) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: JSON text too large", what);
    }
    char *buf = malloc(len + 1);
    if (!buf) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory copying %zu bytes of JSON", what, len);
    }
    if (len) {
        memcpy(buf, text, len);
    }
    buf[len]       = 0;
    werk_status st = parse_terminated(buf, len, max_depth, what, out, err);
    free(buf);
    return st;
}

werk_status werk_json_read_file(const char *path, size_t max_bytes, cJSON **out, werk_err *err) {
    *out            = NULL;
    char       *buf = NULL;
    size_t      len = 0;
    werk_status st  = werk_read_file(path, max_bytes, &buf, &len, err);
    if (st != WERK_OK) {
        return st;
    }
    st = parse_terminated(buf, len, 0, path, out, err); // werk_read_file NUL-terminates
    free(buf);
    return st;
}
