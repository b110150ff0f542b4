/* datasets/jsonl.c - JSONL / JSONL.zst record reader: lines -> token ids + labels
 *
 * Reads a file as a byte stream (plain, or zstd-decompressed with a bounded window), cuts
 * it into lines no longer than the caller's bound, checks each is UTF-8, parses it with
 * werk_json_parse and converts the record (formats in datasets.h) to ids and labels.
 * {"messages"} records are rendered by infer/chat.c (werk_chat_render_msgs), the one chat
 * renderer werk has: its markup is tokenized with special tokens parsed, message contents
 * never are. Errors name "file:line"; with skip_bad_lines a bad line (WERK_E_FORMAT:
 * bad UTF-8 or JSON, missing or wrong fields, unknown role, over-long line) is counted and
 * skipped instead.
 */
#define _POSIX_C_SOURCE 200809L
#include "datasets/datasets.h"
#include "infer/decode.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#define CHUNK ((size_t)1 << 16)

struct werk_jsonl {
    char           *path;
    FILE           *f;
    ZSTD_DCtx      *zd;   // NULL for a plain file
    size_t          zret; // last ZSTD_decompressStream result (0 = frame complete)
    bool            zin_eof;
    char           *zin; // compressed input buffer
    ZSTD_inBuffer   zib;
    char           *buf; // decompressed / read bytes
    size_t          pos, len;
    bool            eof;
    char           *line; // current line (NUL-terminated)
    size_t          line_cap, max_line;
    int64_t         lineno;
    int64_t         n_records;
    int64_t         n_bad;
    bool            train_on_inputs, skip_bad_lines;
    bool            no_bos;        // text and prompt records without BOS
    bool            line_too_long; // the last read_line failure was an over-long line
    bool            chat_given;    // a chat template was set (else the vocab's turn tokens decide)
    werk_chat_style chat;
    char           *chat_system; // chatml template's default system prompt, or NULL
};

static werk_status fill(werk_jsonl *r, werk_err *err) {
    r->pos = r->len = 0;
    if (!r->zd) {
        size_t n = fread(r->buf, 1, CHUNK, r->f);
        if (n == 0) {
            if (ferror(r->f)) {
                return WERK_FAIL(err, WERK_E_IO, "%s:%lld: read failed: %s", r->path,
                                 (long long)(r->lineno + 1), strerror(errno));
            }
            r->eof = true;
        }
        r->len = n;
        return WERK_OK;
    }
    while (r->len == 0) {
        if (r->zib.pos == r->zib.size && !r->zin_eof) {
            size_t n = fread(r->zin, 1, ZSTD_DStreamInSize(), r->f);
            if (n == 0) {
                if (ferror(r->f)) {
                    return WERK_FAIL(err, WERK_E_IO, "%s:%lld: read failed: %s", r->path,
                                     (long long)(r->lineno + 1), strerror(errno));
                }
                r->zin_eof = true;
            }
            r->zib.src  = r->zin;
            r->zib.size = n;
            r->zib.pos  = 0;
        }
        if (r->zin_eof && r->zib.pos == r->zib.size) {
            if (r->zret != 0) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: truncated zstd stream", r->path,
                                 (long long)(r->lineno + 1));
            }
            r->eof = true;
            return WERK_OK;
        }
        ZSTD_outBuffer ob = {r->buf, CHUNK, 0};
        size_t         rc = ZSTD_decompressStream(r->zd, &ob, &r->zib);
        if (ZSTD_isError(rc)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: zstd: %s", r->path, (long long)(r->lineno + 1),
                             ZSTD_getErrorName(rc));
        }
        r->zret = rc;
        r->len  = ob.pos;
    }
    return WERK_OK;
}

werk_status werk_datasets_open_jsonl(const char *path, size_t max_line, werk_jsonl **out, werk_err *err) {
    *out          = NULL;
    werk_jsonl *r = calloc(1, sizeof(*r));
    if (!r) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    r->max_line = max_line ? max_line : WERK_JSONL_MAX_LINE;
    r->path     = strdup(path);
    r->buf      = malloc(CHUNK);
    r->line_cap = 4096;
    r->line     = malloc(r->line_cap);
    if (!r->path || !r->buf || !r->line) {
        werk_datasets_close_jsonl(r);
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
    }
    r->f = fopen(path, "rb");
    if (!r->f) {
        werk_status st = WERK_FAIL(err, WERK_E_IO, "%s: cannot open: %s", path, strerror(errno));
        werk_datasets_close_jsonl(r);
        return st;
    }
    size_t pl = strlen(path);
    if (pl > 4 && strcmp(path + pl - 4, ".zst") == 0) {
        r->zd  = ZSTD_createDCtx();
        r->zin = malloc(ZSTD_DStreamInSize());
        if (!r->zd || !r->zin) {
            werk_datasets_close_jsonl(r);
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        }
        // bound the decoder's window (memory) to 128 MiB as zstd's long mode does
        size_t rc = ZSTD_DCtx_setParameter(r->zd, ZSTD_d_windowLogMax, 27);
        if (ZSTD_isError(rc)) {
            werk_datasets_close_jsonl(r);
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: zstd: %s", path, ZSTD_getErrorName(rc));
        }
    }
    *out = r;
    return WERK_OK;
}

void werk_datasets_close_jsonl(werk_jsonl *r) {
    if (!r) {
        return;
    }
    if (r->f) {
        fclose(r->f);
    }
    ZSTD_freeDCtx(r->zd);
    free(r->zin);
    free(r->buf);
    free(r->line);
    free(r->path);
    free(r->chat_system);
    free(r);
}

void werk_datasets_free_record(werk_record *rec) {
    free(rec->ids);
    free(rec->labels);
    memset(rec, 0, sizeof(*rec));
}

/* Reads one line (without its '\n', a trailing '\r' dropped) into r->line. *got = false at EOF.
 * A line longer than max_line is read to its end (so the next line can follow) and fails. */
static werk_status read_line(werk_jsonl *r, size_t *n_out, bool *got, werk_err *err) {
    size_t n        = 0;
    bool   too_long = false;
    *got            = false;
    for (;;) {
        if (r->pos == r->len) {
            if (r->eof) {
                break;
            }
            werk_status st = fill(r, err);
            if (st) {
                return st;
            }
            continue;
        }
        *got           = true;
        const char *s  = r->buf + r->pos;
        size_t      av = r->len - r->pos;
        const char *nl = memchr(s, '\n', av);
        size_t      k  = nl ? (size_t)(nl - s) : av;
        if (too_long || k > r->max_line - n) {
            too_long = true;
            r->pos += nl ? k + 1 : k;
            if (nl) {
                break;
            }
            continue;
        }
        if (n + k + 1 > r->line_cap) {
            size_t cap = r->line_cap;
            while (cap < n + k + 1) {
                cap *= 2;
            }
            char *p = realloc(r->line, cap);
            if (!p) {
                return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", r->path);
            }
            r->line     = p;
            r->line_cap = cap;
        }
        memcpy(r->line + n, s, k);
        n += k;
        r->pos += k;
        if (nl) {
            r->pos++;
            break;
        }
    }
    if (*got) {
        r->lineno++;
    }
    if (too_long) {
        r->line_too_long = true;
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: line longer than %zu bytes", r->path,
                         (long long)r->lineno, r->max_line);
    }
    if (n && r->line[n - 1] == '\r') {
        n--;
    }
    r->line[n] = 0;
    *n_out     = n;
    return WERK_OK;
}

/* Offset of the first byte that breaks UTF-8 (overlongs, surrogates, > U+10FFFF), or n. */
static size_t utf8_bad_at(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t   k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            k = 1, cp = c & 0x1F;
        } else if ((c & 0xF0) == 0xE0) {
            k = 2, cp = c & 0x0F;
        } else if ((c & 0xF8) == 0xF0) {
            k = 3, cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i <= k) {
            return i;
        }
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return i;
            }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return i;
        }
        i += k + 1;
    }
    return n;
}

static werk_status int_array(const werk_jsonl *r,
                             const cJSON      *a,
                             const char       *key,
                             int64_t           n_vocab,
                             bool              is_label,
                             int32_t         **out,
                             int64_t          *n_out,
                             werk_err         *err) {
    if (!cJSON_IsArray(a)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: \"%s\" must be an array of integers", r->path,
                         (long long)r->lineno, key);
    }
    int64_t  n = cJSON_GetArraySize(a);
    int32_t *v = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!v) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", r->path);
    }
    int64_t i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        double d  = cJSON_IsNumber(e) ? e->valuedouble : NAN;
        bool   ok = d == floor(d) && d >= (is_label ? WERK_LABEL_IGNORE : 0) && d <= 2147483647.0;
        if (ok && is_label && d < 0 && d != WERK_LABEL_IGNORE) {
            ok = false;
        }
        if (ok && n_vocab > 0 && d >= (double)n_vocab) {
            ok = false;
        }
        if (!ok) {
            free(v);
            return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: \"%s\"[%lld] is not a token id%s%s", r->path,
                             (long long)r->lineno, key, (long long)i, is_label ? " or -100" : "",
                             n_vocab > 0 ? " within the vocab" : "");
        }
        v[i] = (int32_t)d;
    }
    *out   = v;
    *n_out = n;
    return WERK_OK;
}

static werk_status append(werk_record *rec, const int32_t *ids, int64_t n, bool scored, werk_err *err) {
    int32_t *a = realloc(rec->ids, (size_t)(rec->n + n + 1) * sizeof(int32_t));
    if (a) {
        rec->ids = a;
    }
    int32_t *b = realloc(rec->labels, (size_t)(rec->n + n + 1) * sizeof(int32_t));
    if (b) {
        rec->labels = b;
    }
    if (!a || !b) {
        return WERK_FAIL(err, WERK_E_OOM, "record: out of memory");
    }
    for (int64_t i = 0; i < n; i++) {
        rec->ids[rec->n + i]    = ids[i];
        rec->labels[rec->n + i] = scored ? ids[i] : WERK_LABEL_IGNORE;
    }
    rec->n += n;
    return WERK_OK;
}

static werk_status encode_into(const werk_jsonl     *r,
                               const werk_tokenizer *tok,
                               const cJSON          *s,
                               const char           *key,
                               bool                  bos,
                               bool                  scored,
                               werk_record          *rec,
                               werk_err             *err) {
    if (!cJSON_IsString(s)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: \"%s\" must be a string", r->path,
                         (long long)r->lineno, key);
    }
    if (!tok) {
        return WERK_FAIL(err, WERK_E_ARG, "%s:%lld: text records need a tokenizer", r->path,
                         (long long)r->lineno);
    }
    int32_t    *ids = NULL;
    int64_t     n   = 0;
    werk_status st =
        werk_tokenizer_encode(tok, s->valuestring, strlen(s->valuestring), bos, false, &ids, &n, err);
    if (!st) {
        st = append(rec, ids, n, scored, err);
    }
    free(ids);
    return st;
}

/* Collects the rendered conversation, encoding runs of pieces of the same kind (markup or
 * content, scored or not) in one go so that tokens never split where the text does not. */
typedef struct chat_sink {
    const werk_jsonl     *r;
    const werk_tokenizer *tok;
    werk_record          *rec;
    werk_strbuf           run;
    bool                  markup, scored, bos;
} chat_sink;

static werk_status flush_run(chat_sink *c, werk_err *err) {
    if (c->run.oom) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", c->r->path);
    }
    if (!c->run.n && !c->bos) {
        return WERK_OK;
    }
    int32_t    *ids = NULL;
    int64_t     n   = 0;
    werk_status st =
        werk_tokenizer_encode(c->tok, c->run.p ? c->run.p : "", c->run.n, c->bos, c->markup, &ids, &n, err);
    if (!st) {
        st = append(c->rec, ids, n, c->scored, err);
    }
    free(ids);
    c->bos = false;
    werk_strbuf_free(&c->run);
    return st;
}

static werk_status chat_emit(void *ctx, const char *s, bool markup, bool assistant, werk_err *err) {
    chat_sink *c      = ctx;
    bool       scored = assistant || c->r->train_on_inputs;
    if (!*s) {
        return WERK_OK;
    }
    if (c->run.n && (markup != c->markup || scored != c->scored)) {
        werk_status st = flush_run(c, err);
        if (st) {
            return st;
        }
    }
    c->markup = markup;
    c->scored = scored;
    werk_strbuf_puts(&c->run, s);
    return WERK_OK;
}

/* {"messages": [{"role", "content"}...]} rendered in the model's chat style; the loss is on
 * each assistant turn's content and its end-of-turn marker only (everything with
 * train_on_inputs). */
static werk_status convert_messages(
    werk_jsonl *r, const cJSON *msg, const werk_tokenizer *tok, werk_record *rec, werk_err *err) {
    if (r->chat == WERK_CHAT_NONE && !r->chat_given) {
        werk_err ignore = {0};
        (void)werk_chat_style_of(NULL, tok, &r->chat, &r->chat_system, &ignore);
    }
    if (r->chat == WERK_CHAT_NONE) {
        return WERK_FAIL(
            err, WERK_E_UNSUPPORTED,
            "%s:%lld: {\"messages\"} records need a chat template of the gemma, chatml or llama3 "
            "style, and the model has none of these",
            r->path, (long long)r->lineno);
    }
    if (!tok) {
        return WERK_FAIL(err, WERK_E_ARG, "%s:%lld: chat records need a tokenizer", r->path,
                         (long long)r->lineno);
    }
    if (!cJSON_IsArray(msg) || !msg->child) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: \"messages\" must be a non-empty array", r->path,
                         (long long)r->lineno);
    }
    int64_t        n    = cJSON_GetArraySize(msg);
    werk_chat_msg *msgs = malloc((size_t)n * sizeof(*msgs));
    if (!msgs) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", r->path);
    }
    int64_t i = 0;
    for (const cJSON *m = msg->child; m; m = m->next, i++) {
        const cJSON *role = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "role") : NULL;
        const cJSON *cont = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "content") : NULL;
        if (!cJSON_IsString(role) || !cJSON_IsString(cont)) {
            free(msgs);
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s:%lld: messages[%lld] needs string \"role\" and \"content\"", r->path,
                             (long long)r->lineno, (long long)i);
        }
        if (!werk_chat_role_parse(role->valuestring, &msgs[i].role)) {
            free(msgs);
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s:%lld: messages[%lld]: unknown role '%.32s' (system, user, assistant)",
                             r->path, (long long)r->lineno, (long long)i, role->valuestring);
        }
        msgs[i].content = cont->valuestring;
    }
    chat_sink   c  = {.r = r, .tok = tok, .rec = rec, .bos = r->chat != WERK_CHAT_CHATML};
    werk_err    e2 = {0};
    werk_status st = werk_chat_render_msgs(r->chat, r->chat_system, msgs, n, false, chat_emit, &c, &e2);
    if (!st) {
        st = flush_run(&c, &e2);
    }
    werk_strbuf_free(&c.run);
    free(msgs);
    if (st) {
        return WERK_FAIL(err, st, "%s:%lld: %s", r->path, (long long)r->lineno, e2.msg);
    }
    rec->chat = true;
    return WERK_OK;
}

werk_status werk_datasets_set_chat_template(werk_jsonl *r, const char *chat_template) {
    free(r->chat_system);
    r->chat_system = NULL;
    r->chat        = WERK_CHAT_NONE;
    r->chat_given  = chat_template != NULL;
    if (!chat_template) {
        return WERK_E_UNSUPPORTED;
    }
    werk_err ignore = {0};
    return werk_chat_style_of(chat_template, NULL, &r->chat, &r->chat_system, &ignore);
}

void werk_datasets_set_options(werk_jsonl *r, bool train_on_inputs, bool skip_bad_lines) {
    r->train_on_inputs = train_on_inputs;
    r->skip_bad_lines  = skip_bad_lines;
}

void werk_datasets_set_no_bos(werk_jsonl *r, bool no_bos) { r->no_bos = no_bos; }

int64_t werk_datasets_n_bad_lines(const werk_jsonl *r) { return r->n_bad; }

static werk_status convert_record(werk_jsonl           *r,
                                  const cJSON          *o,
                                  const werk_tokenizer *tok,
                                  int64_t               n_vocab,
                                  werk_record          *rec,
                                  werk_err             *err) {
    if (!cJSON_IsObject(o)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: a record must be a JSON object", r->path,
                         (long long)r->lineno);
    }
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(o, "input_ids");
    const cJSON *txt = cJSON_GetObjectItemCaseSensitive(o, "text");
    const cJSON *pr  = cJSON_GetObjectItemCaseSensitive(o, "prompt");
    const cJSON *co  = cJSON_GetObjectItemCaseSensitive(o, "completion");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (ids) {
        int64_t     n = 0, nl = 0;
        werk_status st = int_array(r, ids, "input_ids", n_vocab, false, &rec->ids, &n, err);
        if (st) {
            return st;
        }
        rec->n            = n;
        const cJSON *labs = cJSON_GetObjectItemCaseSensitive(o, "labels");
        if (labs) {
            st = int_array(r, labs, "labels", n_vocab, true, &rec->labels, &nl, err);
            if (st) {
                return st;
            }
            if (nl != n) {
                return WERK_FAIL(err, WERK_E_FORMAT,
                                 "%s:%lld: \"labels\" has %lld entries, \"input_ids\" %lld", r->path,
                                 (long long)r->lineno, (long long)nl, (long long)n);
            }
        } else {
            rec->labels = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
            if (!rec->labels) {
                return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", r->path);
            }
            if (n) {
                memcpy(rec->labels, rec->ids, (size_t)n * sizeof(int32_t));
            }
        }
        rec->pretokenized = true;
        return WERK_OK;
    }
    if (txt) {
        return encode_into(r, tok, txt, "text", !r->no_bos, true, rec, err);
    }
    if (pr || co) {
        if (!pr || !co) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s:%lld: a prompt record needs both \"prompt\" and \"completion\"", r->path,
                             (long long)r->lineno);
        }
        werk_status st = encode_into(r, tok, pr, "prompt", !r->no_bos, r->train_on_inputs, rec, err);
        return st ? st : encode_into(r, tok, co, "completion", false, true, rec, err);
    }
    if (msg) {
        return convert_messages(r, msg, tok, rec, err);
    }
    return WERK_FAIL(
        err, WERK_E_FORMAT,
        "%s:%lld: record has none of \"text\", \"prompt\"/\"completion\", \"input_ids\", \"messages\"",
        r->path, (long long)r->lineno);
}

/* One non-blank line -> rec. */
static werk_status parse_line(
    werk_jsonl *r, size_t n, const werk_tokenizer *tok, int64_t n_vocab, werk_record *rec, werk_err *err) {
    size_t bad = utf8_bad_at((const unsigned char *)r->line, n);
    if (bad < n) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: invalid UTF-8 at byte %zu", r->path,
                         (long long)r->lineno, bad);
    }
    char what[64];
    snprintf(what, sizeof(what), "line %lld", (long long)r->lineno);
    cJSON   *o    = NULL;
    werk_err jerr = {0};
    if (werk_json_parse(r->line, n, 64, what, &o, &jerr)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: bad JSON (%s)", r->path, (long long)r->lineno,
                         jerr.msg);
    }
    werk_status st = convert_record(r, o, tok, n_vocab, rec, err);
    cJSON_Delete(o);
    return st;
}

werk_status werk_datasets_next_record(
    werk_jsonl *r, const werk_tokenizer *tok, int64_t n_vocab, werk_record *rec, bool *eof, werk_err *err) {
    werk_datasets_free_record(rec);
    *eof = false;
    for (;;) {
        size_t      n   = 0;
        bool        got = false;
        werk_status st  = read_line(r, &n, &got, err);
        if (st) {
            if (st == WERK_E_FORMAT && r->line_too_long && r->skip_bad_lines) {
                r->line_too_long = false;
                r->n_bad++;
                continue;
            }
            return st;
        }
        if (!got) {
            if (r->n_records == 0 && r->n_bad > 0) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s: no usable records (%lld bad lines skipped)",
                                 r->path, (long long)r->n_bad);
            }
            if (r->n_records == 0) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: no records (empty file)", r->path,
                                 (long long)(r->lineno ? r->lineno : 1));
            }
            *eof = true;
            return WERK_OK;
        }
        size_t j = 0;
        while (j < n && (r->line[j] == ' ' || r->line[j] == '\t')) {
            j++;
        }
        if (j == n) {
            continue; // blank line
        }
        st = parse_line(r, n, tok, n_vocab, rec, err);
        if (st) {
            werk_datasets_free_record(rec);
            if (st == WERK_E_FORMAT && r->skip_bad_lines) {
                r->n_bad++;
                continue;
            }
            return st;
        }
        rec->line = r->lineno;
        r->n_records++;
        return WERK_OK;
    }
}
