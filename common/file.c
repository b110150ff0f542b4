/* common/file.c - read-only mappings, bounded whole-file reads, atomic writes, folders
 *
 * Atomic writes (DESIGN.md "Files werk writes"): data goes to "<path>.tmp.<pid>" in the
 * destination folder, is fsynced, renamed over <path>, and the folder is fsynced. Open
 * The file is first opened unnamed (O_TMPFILE) where the file system allows, so a crash
 * or SIGKILL leaves nothing at all; it gets its temporary name only at commit. Named
 * temporaries are registered in a small table so the SIGINT/SIGTERM handler can unlink
 * them (async-signal-safe: unlink and _exit only). Where O_TMPFILE is unsupported,
 * SIGKILL can leave a *.tmp.<pid> file, but never a partial file at <path>.
 */
#define _GNU_SOURCE
#include "common/common.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

// ---- mmap ---------------------------------------------------------------------------

werk_status werk_mmap_open(werk_mmap *m, const char *path, werk_err *err) {
    memset(m, 0, sizeof(*m));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return WERK_FAIL(err, WERK_E_IO, "%s: not a regular file", path);
    }
    m->path = strdup(path);
    if (!m->path) {
        close(fd);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(m->path);
            memset(m, 0, sizeof(*m));
            return WERK_FAIL(err, WERK_E_IO, "%s: cannot map: %s", path, strerror(e));
        }
        m->data = p;
    }
    close(fd);
    return WERK_OK;
}

void werk_mmap_close(werk_mmap *m) {
    if (!m) {
        return;
    }
    if (m->data) {
        munmap((void *)m->data, m->size);
    }
    free(m->path);
    memset(m, 0, sizeof(*m));
}

werk_status werk_read_file(const char *path, size_t max_bytes, char **out, size_t *size, werk_err *err) {
    *out = NULL;
    if (size) {
        *size = 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return WERK_FAIL(err, WERK_E_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: file too large (%lld bytes, limit %zu)", path,
                         (long long)st.st_size, max_bytes);
    }
    size_t n   = (size_t)st.st_size;
    char  *buf = malloc(n + 1);
    if (!buf) {
        close(fd);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return WERK_FAIL(err, WERK_E_IO, "%s: read failed: %s", path, strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *out   = buf;
    if (size) {
        *size = n;
    }
    return WERK_OK;
}

// ---- signal-safe cleanup table ------------------------------------------------------

enum { AFILE_SLOTS = 64, AFILE_PATH_MAX = 4096 };

/* Temporaries to unlink on SIGINT/SIGTERM. Written only outside signal context with the
 * signal blocked; read by the handler. Process-wide by nature (signals are). */
static char                  g_tmp_paths[AFILE_SLOTS][AFILE_PATH_MAX];
static volatile sig_atomic_t g_tmp_used[AFILE_SLOTS];
static volatile sig_atomic_t g_interrupted;

static void on_signal(int sig) {
    for (int i = 0; i < AFILE_SLOTS; i++) {
        if (g_tmp_used[i]) {
            unlink(g_tmp_paths[i]);
        }
    }
    g_interrupted = 1;
    // Second signal or no long loop to notice: die with the conventional status.
    signal(sig, SIG_DFL);
    if (sig == SIGTERM) {
        raise(sig);
    }
    static const char msg[] = "\nwerk: interrupted\n";
    ssize_t           w     = write(2, msg, sizeof(msg) - 1);
    (void)w;
    _exit(130);
}

void werk_signals_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool werk_interrupted(void) {
    return g_interrupted != 0;
}

static int tmp_register(const char *path) {
    size_t n = strlen(path);
    if (n >= AFILE_PATH_MAX) {
        return -1;
    }
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    int slot = -1;
    for (int i = 0; i < AFILE_SLOTS; i++) {
        if (!g_tmp_used[i]) {
            memcpy(g_tmp_paths[i], path, n + 1);
            g_tmp_used[i] = 1;
            slot          = i;
            break;
        }
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    return slot;
}

static void tmp_unregister(int slot) {
    if (slot >= 0 && slot < AFILE_SLOTS) {
        g_tmp_used[slot] = 0;
    }
}

// ---- atomic files ---------------------------------------------------------------------

static werk_status fsync_dir_of(const char *path, werk_err *err) {
    char *copy = strdup(path);
    if (!copy) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    const char *dir = dirname(copy);
    int         fd  = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd); // best effort: some file systems refuse fsync on folders
        close(fd);
    }
    free(copy);
    return WERK_OK;
}

/* Opens an unnamed file in the destination folder (O_TMPFILE): a SIGKILL then leaves
 * nothing behind at all. Returns -1 where the file system does not support it. */
static int open_anon_in_dir_of(const char *path) {
#ifdef O_TMPFILE
    char *copy = strdup(path);
    if (!copy) {
        return -1;
    }
    int fd = open(dirname(copy), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    free(copy);
    return fd;
#else
    (void)path;
    return -1;
#endif
}

werk_status werk_afile_open(werk_afile *af, const char *path, werk_err *err) {
    memset(af, 0, sizeof(*af));
    af->slot     = -1;
    size_t n     = strlen(path) + 32;
    af->path     = strdup(path);
    af->tmp_path = malloc(n);
    if (!af->path || !af->tmp_path) {
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof(*af));
        af->slot = -1;
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    snprintf(af->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open_anon_in_dir_of(path);
    if (fd >= 0) {
        af->anon = true;
    } else {
        af->slot = tmp_register(af->tmp_path);
        fd       = open(af->tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        int e = errno;
        tmp_unregister(af->slot);
        free(af->path);
        free(af->tmp_path);
        memset(af, 0, sizeof(*af));
        af->slot = -1;
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot create: %s", path, strerror(e));
    }
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        werk_afile_abort(af);
        return WERK_FAIL(err, WERK_E_IO, "%s: cannot open stream", path);
    }
    setvbuf(af->f, NULL, _IOFBF, 1 << 20);
    return WERK_OK;
}

werk_status werk_afile_write(werk_afile *af, const void *data, size_t n, werk_err *err) {
    if (n && fwrite(data, 1, n, af->f) != n) {
        return WERK_FAIL(err, WERK_E_IO, "%s: write failed: %s", af->path, strerror(errno));
    }
    af->written += n;
    return WERK_OK;
}

werk_status werk_afile_pad(werk_afile *af, size_t n, werk_err *err) {
    static const uint8_t zeros[64] = {0};
    while (n) {
        size_t k      = n < sizeof(zeros) ? n : sizeof(zeros);
        werk_status s = werk_afile_write(af, zeros, k, err);
        if (s) {
            return s;
        }
        n -= k;
    }
    return WERK_OK;
}

werk_status werk_afile_commit(werk_afile *af, werk_err *err) {
    werk_status s = WERK_OK;
    if (fflush(af->f) != 0 || fsync(fileno(af->f)) != 0) {
        s = WERK_FAIL(err, WERK_E_IO, "%s: flush failed: %s", af->path, strerror(errno));
    }
    if (s == WERK_OK && af->anon) {
        // Give the unnamed file its temporary name, then rename it over the target.
        char proc[64];
        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fileno(af->f));
        af->slot = tmp_register(af->tmp_path);
        unlink(af->tmp_path);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, af->tmp_path, AT_SYMLINK_FOLLOW) != 0) {
            s = WERK_FAIL(err, WERK_E_IO, "%s: cannot link temporary file: %s", af->path, strerror(errno));
        }
    }
    if (fclose(af->f) != 0 && s == WERK_OK) {
        s = WERK_FAIL(err, WERK_E_IO, "%s: close failed: %s", af->path, strerror(errno));
    }
    af->f = NULL;
    if (s == WERK_OK && rename(af->tmp_path, af->path) != 0) {
        s = WERK_FAIL(err, WERK_E_IO, "%s: rename failed: %s", af->path, strerror(errno));
    }
    if (s != WERK_OK) {
        unlink(af->tmp_path);
    } else {
        s = fsync_dir_of(af->path, err);
    }
    tmp_unregister(af->slot);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof(*af));
    af->slot = -1;
    return s;
}

void werk_afile_abort(werk_afile *af) {
    if (!af || !af->tmp_path) {
        return;
    }
    if (af->f) {
        fclose(af->f);
    }
    if (!af->anon) {
        unlink(af->tmp_path);
    }
    tmp_unregister(af->slot);
    free(af->path);
    free(af->tmp_path);
    memset(af, 0, sizeof(*af));
    af->slot = -1;
}

werk_status werk_write_file_atomic(const char *path, const void *data, size_t n, werk_err *err) {
    werk_afile  af;
    werk_status s = werk_afile_open(&af, path, err);
    if (s) {
        return s;
    }
    s = werk_afile_write(&af, data, n, err);
    if (s) {
        werk_afile_abort(&af);
        return s;
    }
    return werk_afile_commit(&af, err);
}

werk_status werk_mkdir_p(const char *path, werk_err *err) {
    char *p = strdup(path);
    if (!p) {
        return WERK_FAIL(err, WERK_E_OOM, "out of memory");
    }
    for (char *c = p + 1;; c++) {
        if (*c == '/' || *c == 0) {
            char saved = *c;
            *c         = 0;
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return WERK_FAIL(err, WERK_E_IO, "%s: cannot create folder: %s", path, strerror(e));
            }
            *c = saved;
            if (saved == 0) {
                break;
            }
        }
    }
    free(p);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return WERK_FAIL(err, WERK_E_IO, "%s: not a folder", path);
    }
    return WERK_OK;
}
