/* tests/werk_test.h - werk's whole test harness (STYLE.md 3.9)
 *
 * WT_CHECK(cond, fmt, ...)   records a failure with file:line and a message; the test goes on.
 * WT_CLOSE(got, ref, n, atol, rtol, label)  passes when |got-ref| <= atol + rtol*|ref| for
 *                            all n floats; otherwise prints max abs/rel error and the first
 *                            5 mismatches.
 * WT_SKIP(fmt, ...)          prints "SKIP: why" and exits 77 (ctest SKIP_RETURN_CODE).
 * wt_env(name)               the test environment (WERK_FIXTURES, WERK_BIN, ...), or "".
 * wt_fixture(buf, rel)       path under WERK_FIXTURES; skips the test if it is missing.
 * wt_tmp(buf, name)          a path in the test's scratch folder (WERK_TEST_TMP).
 * wt_run(cmd, &out)          runs a shell command, returns its exit status (-1 on a signal)
 *                            and (optionally) its stdout+stderr (malloc'd).
 * return wt_done();          prints "N checks, M failed" and returns the exit code.
 *
 * Include it first in a test file (it sets _GNU_SOURCE for popen and friends).
 */
#ifndef WERK_TEST_H
#define WERK_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int wt_n_checks;
static int wt_n_failed;

#define WT_CHECK(cond, ...)                                                                                  \
    do {                                                                                                     \
        wt_n_checks++;                                                                                       \
        if (!(cond)) {                                                                                       \
            wt_n_failed++;                                                                                   \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                  \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

#define WT_SKIP(...)                                                                                         \
    do {                                                                                                     \
        printf("SKIP: ");                                                                                    \
        printf(__VA_ARGS__);                                                                                 \
        printf("\n");                                                                                        \
        exit(77);                                                                                            \
    } while (0)

static inline int wt_close_impl(const float *got, const float *ref, long n, double atol, double rtol,
                                const char *label, const char *file, int line) {
    double max_abs = 0, max_rel = 0;
    long   n_bad   = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)ref[i]);
        if (isnan(got[i]) != isnan(ref[i])) {
            d = INFINITY;
        } else if (isnan(got[i])) {
            d = 0;
        }
        double r = d / (fabs((double)ref[i]) + 1e-30);
        if (d > max_abs) {
            max_abs = d;
        }
        if (r > max_rel && d > atol) {
            max_rel = r;
        }
        if (d > atol + rtol * fabs((double)ref[i])) {
            if (n_bad < 5) {
                fprintf(stderr, "  %s[%ld]: got %.9g ref %.9g\n", label, i, got[i], ref[i]);
            }
            n_bad++;
        }
    }
    wt_n_checks++;
    if (n_bad) {
        wt_n_failed++;
        fprintf(stderr, "FAIL %s:%d: %s: %ld of %ld values off (max abs %.3g, max rel %.3g; atol %.3g rtol %.3g)\n",
                file, line, label, n_bad, n, max_abs, max_rel, atol, rtol);
    }
    return n_bad == 0;
}
#define WT_CLOSE(got, ref, n, atol, rtol, label)                                                             \
    wt_close_impl((got), (ref), (long)(n), (atol), (rtol), (label), __FILE__, __LINE__)

static inline const char *wt_env(const char *name) {
    const char *v = getenv(name);
    return v ? v : "";
}

static inline const char *wt_fixture(char *buf, size_t n, const char *rel) {
    const char *root = wt_env("WERK_FIXTURES");
    snprintf(buf, n, "%s/%s", root, rel);
    struct stat st;
    if (!*root || stat(buf, &st) != 0) {
        WT_SKIP("fixture %s is missing (../shared/fixtures not beside the checkout?)", rel);
    }
    return buf;
}

static inline const char *wt_tmp(char *buf, size_t n, const char *name) {
    const char *root = wt_env("WERK_TEST_TMP");
    snprintf(buf, n, "%s/%s", *root ? root : "/tmp", name);
    return buf;
}

static inline int wt_run(const char *cmd, char **out) {
    char full[8192];
    snprintf(full, sizeof(full), "(%s) 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) {
        return -1;
    }
    size_t cap = 4096, len = 0;
    char  *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    if (buf) {
        buf[len] = 0;
    }
    int st = pclose(p);
    if (out) {
        *out = buf;
    } else {
        free(buf);
    }
    if (WIFSIGNALED(st)) {
        return -1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int wt_done(void) {
    printf("%d checks, %d failed\n", wt_n_checks, wt_n_failed);
    return wt_n_failed ? 1 : 0;
}

#endif
