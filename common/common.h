/* common/common.h - the few helpers every werk module uses
 *
 * Owns: error reporting (werk_status / werk_err), logging to stderr, release-mode
 * asserts, overflow-checked arithmetic, read-only file mappings (werk_mmap), a bump
 * allocator (werk_arena), atomic file writes (werk_afile: tmp + fsync + rename +
 * fsync of the folder), bounded whole-file reads, SHA-256, and a progress line.
 *
 * Rules (DESIGN.md, STYLE.md 3.4/3.5): a fallible function returns werk_status and takes
 * `werk_err *err` last (NULL allowed). Library code never exits and never writes to
 * stdout; only werk.c prints errors. Untrusted sizes are checked with werk_mul_u64 /
 * werk_add_u64 before use. No global mutable state here except the log level, which
 * only the command layer sets.
 */
#ifndef WERK_COMMON_H
#define WERK_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define WERK_VERSION "0.1.0"

// ---- errors -------------------------------------------------------------------

typedef enum werk_status {
    WERK_OK = 0,
    WERK_E_ARG,         // bad command-line argument or API misuse by a caller
    WERK_E_IO,          // open/read/write/rename failed
    WERK_E_FORMAT,      // malformed or hostile input file
    WERK_E_OOM,         // allocation failed or would exceed a bound
    WERK_E_SHAPE,       // shapes do not fit
    WERK_E_NUMERIC,     // NaN/inf or other bad numbers
    WERK_E_CUDA,        // CUDA runtime error
    WERK_E_UNSUPPORTED, // valid input werk does not handle (architecture, tensor type)
    WERK_E_INTERRUPTED, // SIGINT/SIGTERM seen; work stopped cleanly
} werk_status;

typedef struct werk_err {
    werk_status code;
    const char *file; // source file where the error was raised
    int         line;
    char        msg[512];
} werk_err;

/* Fills err (if not NULL) and returns code. Use through WERK_FAIL. */
werk_status werk_err_set(werk_err *err, werk_status code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#define WERK_FAIL(err, code, ...) werk_err_set((err), (code), __FILE__, __LINE__, __VA_ARGS__)

/* Prepends "<context>: " to err->msg (if err is not NULL and holds an error). */
void werk_err_prefix(werk_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Short name of a status code ("format error", ...). Never NULL. */
const char *werk_status_str(werk_status code);

/* Process exit code for a status: 2 for usage errors, 1 otherwise, 130 for interrupts. */
int werk_status_exit_code(werk_status code);

/* Command layer only: prints "werk: error: <msg> (<file>:<line>)" to stderr as one line
 * and returns the exit code for err->code. */
int werk_err_report(const werk_err *err);

// ---- asserts (programmer errors only; never for untrusted bytes) ---------------

void werk_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define WERK_ASSERT(x)                                                                                       \
    do {                                                                                                     \
        if (!(x)) {                                                                                          \
            werk_assert_fail(#x, __FILE__, __LINE__);                                                        \
        }                                                                                                    \
    } while (0)

// ---- logging ------------------------------------------------------------------

typedef enum werk_log_level { WERK_LOG_ERROR = 0, WERK_LOG_WARN, WERK_LOG_INFO, WERK_LOG_DEBUG } werk_log_level;

/* Logs one line to stderr ("werk: warning: ..."), if level <= the current level. */
void werk_log(werk_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Set by the command layer only (-v / -q). Default WERK_LOG_WARN. */
void werk_log_set_level(werk_log_level level);

// ---- checked arithmetic ---------------------------------------------------------

/* Return false on overflow (result left unspecified). */
static inline bool werk_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool werk_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
/* Rounds x up to a multiple of align (a power of two); false on overflow. */
static inline bool werk_align_u64(uint64_t x, uint64_t align, uint64_t *out) {
    uint64_t t;
    if (!werk_add_u64(x, align - 1, &t)) {
        return false;
    }
    *out = t & ~(align - 1);
    return true;
}

/* malloc/calloc that return NULL for n == 0 too, never abort. Free with free(). */
void *werk_malloc(size_t n);
void *werk_calloc(size_t n, size_t size);

// ---- read-only file mapping -----------------------------------------------------

typedef struct werk_mmap {
    const uint8_t *data; // NULL for an empty file
    size_t         size;
    char          *path; // owned copy, for error messages
} werk_mmap;

/* Maps path read-only (MAP_PRIVATE). On error *m is zeroed. */
werk_status werk_mmap_open(werk_mmap *m, const char *path, werk_err *err);
/* Unmaps; no-op on a zeroed map. Tensors pointing into it become invalid. */
void werk_mmap_close(werk_mmap *m);

/* Reads a whole file into a NUL-terminated malloc'd buffer; fails with WERK_E_FORMAT
 * if it is larger than max_bytes. *size excludes the NUL. Caller frees. */
werk_status werk_read_file(const char *path, size_t max_bytes, char **out, size_t *size, werk_err *err);

// ---- arena (bump allocator, freed whole) --------------------------------------

typedef struct werk_arena_chunk werk_arena_chunk;
typedef struct werk_arena {
    werk_arena_chunk *head;
    size_t            total; // bytes handed out, for diagnostics
} werk_arena;

void  werk_arena_init(werk_arena *a);
/* 16-byte aligned, zeroed. NULL on OOM. */
void *werk_arena_alloc(werk_arena *a, size_t n);
/* Copies n bytes and appends a NUL. NULL on OOM. */
char *werk_arena_strndup(werk_arena *a, const char *s, size_t n);
char *werk_arena_strdup(werk_arena *a, const char *s);
void  werk_arena_free(werk_arena *a);

// ---- atomic file writes -----------------------------------------------------------

/* A file written unnamed (O_TMPFILE) or as "<path>.tmp.<pid>" in the destination folder
 * and renamed into place by werk_afile_commit (after fsync of the file, then fsync of the
 * folder). A crash, SIGKILL or werk_afile_abort leaves no file at <path>; SIGINT/SIGTERM
 * (werk_signals_install) remove a named temporary. */
typedef struct werk_afile {
    FILE    *f;
    char    *path;
    char    *tmp_path;
    uint64_t written;
    int      slot; // index in the signal-cleanup table, -1 if none
    bool     anon; // opened with O_TMPFILE: no name until commit
} werk_afile;

werk_status werk_afile_open(werk_afile *af, const char *path, werk_err *err);
werk_status werk_afile_write(werk_afile *af, const void *data, size_t n, werk_err *err);
/* Writes n zero bytes. */
werk_status werk_afile_pad(werk_afile *af, size_t n, werk_err *err);
werk_status werk_afile_commit(werk_afile *af, werk_err *err);
/* Closes and removes the temporary. Safe on a zeroed or committed afile. */
void        werk_afile_abort(werk_afile *af);

/* Writes a whole buffer atomically. */
werk_status werk_write_file_atomic(const char *path, const void *data, size_t n, werk_err *err);

/* Creates a folder (and parents), mode 0755; ok if it exists. */
werk_status werk_mkdir_p(const char *path, werk_err *err);

// ---- interrupts (command layer) ---------------------------------------------------

/* Installs SIGINT/SIGTERM handlers that remove open werk_afile temporaries and set the
 * interrupted flag. Called once by werk.c. */
void werk_signals_install(void);
/* True once SIGINT/SIGTERM was received. Long loops poll this and return
 * WERK_E_INTERRUPTED. */
bool werk_interrupted(void);

// ---- hashing ------------------------------------------------------------------------

typedef struct werk_sha256 {
    uint32_t h[8];
    uint64_t n_bytes;
    uint8_t  buf[64];
    size_t   n_buf;
} werk_sha256;

void werk_sha256_init(werk_sha256 *s);
void werk_sha256_update(werk_sha256 *s, const void *data, size_t n);
void werk_sha256_final(werk_sha256 *s, uint8_t out[32]);
/* Hex digest of a file's bytes into hex[65]. */
werk_status werk_sha256_file(const char *path, char hex[65], werk_err *err);

// ---- string building ----------------------------------------------------------------

/* A growable NUL-terminated string; zero-initialize it ({0}). On allocation failure `oom`
 * becomes true and further appends do nothing; check it once at the end. */
typedef struct werk_strbuf {
    char  *p; // NULL until the first append
    size_t n, cap;
    bool   oom;
} werk_strbuf;

void werk_strbuf_put(werk_strbuf *b, const char *s, size_t n);
void werk_strbuf_puts(werk_strbuf *b, const char *s);
void werk_strbuf_free(werk_strbuf *b); // NULL p ok; resets b

// ---- JSON (cJSON, hardened: DESIGN.md "Inputs are hostile") -----------------------

typedef struct cJSON cJSON;

/* Parses len bytes of JSON (copied to a NUL-terminated buffer, parsed with
 * cJSON_ParseWithLengthOpts, trailing garbage rejected). Rejects duplicate keys in any
 * object and nesting deeper than max_depth (0 = 64). `what` names the source in errors
 * ("config.json", "data.jsonl:17"). *out is owned by the caller (cJSON_Delete). */
werk_status werk_json_parse(const char *text, size_t len, int max_depth, const char *what, cJSON **out,
                            werk_err *err);
/* Reads and parses a JSON file no larger than max_bytes. */
werk_status werk_json_read_file(const char *path, size_t max_bytes, cJSON **out, werk_err *err);

// ---- CPU features ---------------------------------------------------------------------

typedef enum werk_isa { WERK_ISA_SCALAR = 0, WERK_ISA_AVX2, WERK_ISA_AVX512 } werk_isa;

/* Best SIMD level this CPU and OS support (AVX2 implies FMA and F16C; AVX512 means
 * F+DQ+BW+VL), capped by WERK_ISA=scalar|avx2|avx512 in the environment. */
werk_isa    werk_cpu_isa(void);
const char *werk_isa_name(werk_isa isa);

// ---- progress line ----------------------------------------------------------------

/* "label [#####     ] 42% 123.4 MB/s ETA 3s" on a terminal (stderr), rewritten in
 * place at most 10 times a second; on a non-terminal, a plain line every 10%. */
typedef struct werk_progress {
    const char *label;
    uint64_t    total;
    uint64_t    done;
    double      t_start;
    double      t_last;
    int         last_decile;
    bool        tty;
    bool        bytes; // rate in MB/s (else items/s)
} werk_progress;

void   werk_progress_init(werk_progress *p, const char *label, uint64_t total, bool bytes);
void   werk_progress_add(werk_progress *p, uint64_t n);
void   werk_progress_done(werk_progress *p);
double werk_time_s(void); // monotonic seconds

#endif
