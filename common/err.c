/* common/err.c - error values, logging to stderr, release-mode asserts, checked malloc
 *
 * The only mutable global here is the log level, set by the command layer (werk.c).
 */
#include "common/common.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static werk_log_level g_log_level = WERK_LOG_WARN;

werk_status werk_err_set(werk_err *err, werk_status code, const char *file, int line, const char *fmt, ...) {
    if (err) {
        err->code = code;
        err->file = file;
        err->line = line;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        // Messages quote names from hostile files: keep every error one printable line.
        for (char *c = err->msg; *c; c++) {
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                *c = '?';
            }
        }
    }
    return code;
}

void werk_err_prefix(werk_err *err, const char *fmt, ...) {
    if (!err || err->code == WERK_OK) {
        return;
    }
    char    head[256];
    va_list ap;
    va_start(ap, fmt);
    int n_head = vsnprintf(head, sizeof(head), fmt, ap);
    va_end(ap);
    if (n_head < 0) {
        return;
    }
    size_t k = strlen(head);
    if (k + 2 >= sizeof(err->msg)) {
        return;
    }
    // shift the old message right by k + 2 bytes (truncating its end), then write the head
    size_t old_len = strlen(err->msg);
    size_t room    = sizeof(err->msg) - 1 - (k + 2);
    if (old_len > room) {
        old_len = room;
    }
    memmove(err->msg + k + 2, err->msg, old_len);
    err->msg[k + 2 + old_len] = 0;
    memcpy(err->msg, head, k);
    err->msg[k]     = ':';
    err->msg[k + 1] = ' ';
}

const char *werk_status_str(werk_status code) {
    switch (code) {
    case WERK_OK:
        return "ok";
    case WERK_E_ARG:
        return "bad argument";
    case WERK_E_IO:
        return "i/o error";
    case WERK_E_FORMAT:
        return "format error";
    case WERK_E_OOM:
        return "out of memory";
    case WERK_E_SHAPE:
        return "shape error";
    case WERK_E_NUMERIC:
        return "numeric error";
    case WERK_E_CUDA:
        return "cuda error";
    case WERK_E_UNSUPPORTED:
        return "unsupported";
    case WERK_E_INTERRUPTED:
        return "interrupted";
    }
    return "unknown error";
}

int werk_status_exit_code(werk_status code) {
    switch (code) {
    case WERK_OK:
        return 0;
    case WERK_E_ARG:
        return 2;
    case WERK_E_INTERRUPTED:
        return 130;
    default:
        return 1;
    }
}

void werk_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "werk: internal error: assertion '%s' failed (%s:%d)\n", expr, file, line);
    fflush(stderr);
    abort();
}

void werk_log_set_level(werk_log_level level) {
    g_log_level = level;
}

void werk_log(werk_log_level level, const char *fmt, ...) {
    if (level > g_log_level) {
        return;
    }
    static const char *const names[] = {"error", "warning", "info", "debug"};
    char    line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, "werk: %s: %s\n", names[level], line);
}

void *werk_malloc(size_t n) {
    return malloc(n ? n : 1);
}

void *werk_calloc(size_t n, size_t size) {
    if (n == 0 || size == 0) {
        return calloc(1, 1);
    }
    return calloc(n, size);
}

int werk_err_report(const werk_err *err) {
    if (!err || err->code == WERK_OK) {
        return 0;
    }
    fprintf(stderr, "werk: error: %s (%s:%d)\n", err->msg[0] ? err->msg : werk_status_str(err->code),
            err->file ? err->file : "?", err->line);
    return werk_status_exit_code(err->code);
}
