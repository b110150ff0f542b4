/* datasets/dataset.c - training sets: JSONL records -> rows of seq tokens (packed or one per row)
 *
 * Owns werk_dataset_*: reads every record of a file (datasets/jsonl.c), makes each one a
 * document and lays the documents out in rows of seq tokens, in memory:
 *   - Text records ({"text"}, {"prompt","completion"}) get the tokenizer's EOS appended,
 *     scored, in both layouts, so that the model learns to stop (as HF and axolotl do);
 *     {"messages"} records end with their scored end-of-turn marker and get nothing;
 *     pre-tokenized records are used exactly as given.
 *   - Targets are shifted inside a document: target[t] = label[t+1] of the same document;
 *     a document's last token and padding get WERK_LABEL_IGNORE. A record with no scored
 *     target after shifting is dropped (counted in n_dropped).
 *   - A tokenized record longer than seq is cut to its first seq tokens (counted in
 *     n_truncated), or refused with no_truncate. Pre-tokenized records are never re-cut: one
 *     longer than seq is refused. A refused record fails with "file:line: reason", or is
 *     counted as a bad line with skip_bad_lines.
 *   - Packing (opts->pack): whole documents, in file order, go first-fit into the rows
 *     (a document is never split across rows; the search looks at the last 1024 rows).
 *     pos restarts at 0 at each document, doc is the document's index within its row.
 *     Without packing each document has a row of its own.
 *   - Padding: token 0, pos 0, target WERK_LABEL_IGNORE, doc = the row's number of
 *     documents (a document of its own, never attended to from a real one).
 * Row order is the file's; werk_dataset_shuffle gives each epoch's order and
 * werk_dataset_split holds out a seeded fraction of rows. All of it is deterministic.
 */
#include "datasets/datasets.h"
#include "infer/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FIT_WINDOW 1024 // rows a packed document may go back to

struct werk_dataset {
    int64_t            seq, n_rows, cap_rows;
    int32_t           *tokens, *targets, *pos, *doc; // [cap_rows * seq]
    int64_t           *used;                         // [cap_rows] real tokens in a row
    int32_t           *n_docs;                       // [cap_rows] documents in a row
    werk_dataset_stats st;
    char               hash[65];
};

void werk_dataset_free(werk_dataset *ds) {
    if (!ds) {
        return;
    }
    free(ds->tokens);
    free(ds->targets);
    free(ds->pos);
    free(ds->doc);
    free(ds->used);
    free(ds->n_docs);
    free(ds);
}

int64_t werk_dataset_n_rows(const werk_dataset *ds) { return ds->n_rows; }

int64_t werk_dataset_seq(const werk_dataset *ds) { return ds->seq; }

void werk_dataset_get_stats(const werk_dataset *ds, werk_dataset_stats *st) { *st = ds->st; }

const char *werk_dataset_hash(const werk_dataset *ds) { return ds->hash; }

static bool grow(werk_dataset *ds, int64_t rows) {
    if (rows <= ds->cap_rows) {
        return true;
    }
    int64_t cap = ds->cap_rows ? ds->cap_rows : 64;
    while (cap < rows) {
        cap *= 2;
    }
    size_t   cells = (size_t)(cap * ds->seq);
    int32_t *a[4]  = {ds->tokens, ds->targets, ds->pos, ds->doc};
    for (int i = 0; i < 4; i++) {
        int32_t *p = realloc(a[i], cells * sizeof(int32_t));
        if (!p) {
            return false;
        }
        a[i] = p;
        // store at once so that a later failure frees what grew
        ds->tokens = a[0], ds->targets = a[1], ds->pos = a[2], ds->doc = a[3];
    }
    int64_t *u = realloc(ds->used, (size_t)cap * sizeof(int64_t));
    if (u) {
        ds->used = u;
    }
    int32_t *d = realloc(ds->n_docs, (size_t)cap * sizeof(int32_t));
    if (d) {
        ds->n_docs = d;
    }
    if (!u || !d) {
        return false;
    }
    ds->cap_rows = cap;
    return true;
}

/* Appends an empty (all padding) row; its index, or -1 when out of memory. */
static int64_t new_row(werk_dataset *ds) {
    if (!grow(ds, ds->n_rows + 1)) {
        return -1;
    }
    int64_t r = ds->n_rows++, o = r * ds->seq;
    for (int64_t t = 0; t < ds->seq; t++) {
        ds->tokens[o + t]  = 0;
        ds->targets[o + t] = WERK_LABEL_IGNORE;
        ds->pos[o + t]     = 0;
        ds->doc[o + t]     = 0;
    }
    ds->used[r]   = 0;
    ds->n_docs[r] = 0;
    return r;
}

/* Writes a document of n tokens at the end of row r (which has room for it). */
static void put_doc(werk_dataset *ds, int64_t r, const int32_t *ids, const int32_t *labels, int64_t n) {
    int64_t o = r * ds->seq + ds->used[r];
    for (int64_t t = 0; t < n; t++) {
        ds->tokens[o + t]  = ids[t];
        ds->targets[o + t] = t + 1 < n ? labels[t + 1] : WERK_LABEL_IGNORE;
        ds->pos[o + t]     = (int32_t)t;
        ds->doc[o + t]     = ds->n_docs[r];
    }
    ds->used[r] += n;
    ds->n_docs[r]++;
}

/* Padding's doc id (the row's document count) and the row-derived statistics. */
static void finish(werk_dataset *ds) {
    ds->st.n_rows   = ds->n_rows;
    ds->st.n_tokens = ds->st.n_scored = 0;
    for (int64_t r = 0; r < ds->n_rows; r++) {
        int64_t o = r * ds->seq;
        for (int64_t t = ds->used[r]; t < ds->seq; t++) {
            ds->doc[o + t] = ds->n_docs[r];
        }
        ds->st.n_tokens += ds->used[r];
        for (int64_t t = 0; t < ds->seq; t++) {
            ds->st.n_scored += ds->targets[o + t] != WERK_LABEL_IGNORE;
        }
    }
}

/* Places one document (already within seq tokens). */
static werk_status
place(werk_dataset *ds, bool pack, const int32_t *ids, const int32_t *labels, int64_t n, werk_err *err) {
    int64_t r = -1;
    if (pack) {
        int64_t from = ds->n_rows > FIT_WINDOW ? ds->n_rows - FIT_WINDOW : 0;
        for (int64_t i = from; i < ds->n_rows; i++) {
            if (ds->seq - ds->used[i] >= n) {
                r = i;
                break;
            }
        }
    }
    if (r < 0) {
        r = new_row(ds);
        if (r < 0) {
            return WERK_FAIL(err, WERK_E_OOM, "dataset: out of memory at %lld rows", (long long)ds->n_rows);
        }
    }
    put_doc(ds, r, ids, labels, n);
    return WERK_OK;
}

/* Makes rec (with an EOS appended to text records) a document and places it; refused
 * records are bad lines (counted with skip_bad_lines). */
static werk_status add_record(werk_dataset            *ds,
                              const char              *path,
                              const werk_dataset_opts *o,
                              int32_t                  eos,
                              werk_record             *rec,
                              werk_err                *err) {
    if (!rec->pretokenized && !rec->chat && eos >= 0) {
        int32_t *a = realloc(rec->ids, (size_t)(rec->n + 1) * sizeof(int32_t));
        if (a) {
            rec->ids = a;
        }
        int32_t *b = realloc(rec->labels, (size_t)(rec->n + 1) * sizeof(int32_t));
        if (b) {
            rec->labels = b;
        }
        if (!a || !b) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", path);
        }
        rec->ids[rec->n]    = eos;
        rec->labels[rec->n] = eos;
        rec->n++;
    }
    int64_t n = rec->n;
    if (n > ds->seq) {
        if (rec->pretokenized || o->no_truncate) {
            if (o->skip_bad_lines) {
                ds->st.n_bad_lines++;
                return WERK_OK;
            }
            return WERK_FAIL(err, WERK_E_FORMAT, "%s:%lld: record has %lld tokens, more than --seq %lld%s",
                             path, (long long)rec->line, (long long)n, (long long)ds->seq,
                             rec->pretokenized ? " (pre-tokenized records are never cut)"
                                               : " (--no-truncate)");
        }
        n = ds->seq;
        ds->st.n_truncated++;
    }
    bool scored = false;
    for (int64_t t = 1; t < n && !scored; t++) {
        scored = rec->labels[t] != WERK_LABEL_IGNORE;
    }
    if (!scored) {
        ds->st.n_dropped++;
        return WERK_OK;
    }
    ds->st.n_records++;
    return place(ds, o->pack, rec->ids, rec->labels, n, err);
}

werk_status werk_dataset_load(const char              *path,
                              const werk_tokenizer    *tok,
                              const werk_dataset_opts *opts,
                              werk_dataset           **out,
                              werk_err                *err) {
    *out = NULL;
    if (opts->seq < 2 || opts->seq > ((int64_t)1 << 30)) {
        return WERK_FAIL(err, WERK_E_ARG, "dataset: --seq %lld out of range (2 .. 2^30)",
                         (long long)opts->seq);
    }
    werk_dataset *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        return WERK_FAIL(err, WERK_E_OOM, "dataset: out of memory");
    }
    ds->seq        = opts->seq;
    werk_status st = werk_sha256_file(path, ds->hash, err);
    werk_jsonl *r  = NULL;
    if (!st) {
        st = werk_datasets_open_jsonl(path, 0, &r, err);
    }
    if (!st) {
        if (opts->chat_template) {
            (void)werk_datasets_set_chat_template(r, opts->chat_template); // unknown: messages records fail
        }
        werk_datasets_set_options(r, opts->train_on_inputs, opts->skip_bad_lines);
        werk_datasets_set_no_bos(r, opts->no_bos);
    }
    int64_t     n_vocab = opts->n_vocab > 0 ? opts->n_vocab : tok ? werk_tokenizer_n_vocab(tok) : 0;
    int32_t     eos     = tok ? werk_tokenizer_eos(tok) : -1;
    werk_record rec     = {0};
    while (!st) {
        bool eof = false;
        st       = werk_datasets_next_record(r, tok, n_vocab, &rec, &eof, err);
        if (st || eof) {
            break;
        }
        st = add_record(ds, path, opts, eos, &rec, err);
    }
    werk_datasets_free_record(&rec);
    if (r) {
        ds->st.n_bad_lines += werk_datasets_n_bad_lines(r);
    }
    werk_datasets_close_jsonl(r);
    if (!st && ds->n_rows == 0) {
        st = WERK_FAIL(err, WERK_E_FORMAT,
                       "%s: no usable records (%lld dropped with nothing to score, %lld bad lines skipped)",
                       path, (long long)ds->st.n_dropped, (long long)ds->st.n_bad_lines);
    }
    if (st) {
        werk_dataset_free(ds);
        return st;
    }
    finish(ds);
    *out = ds;
    return WERK_OK;
}

void werk_dataset_row(
    const werk_dataset *ds, int64_t i, int32_t *tokens, int32_t *targets, int32_t *pos, int32_t *doc) {
    size_t o = (size_t)(i * ds->seq), n = (size_t)ds->seq * sizeof(int32_t);
    if (tokens) {
        memcpy(tokens, ds->tokens + o, n);
    }
    if (targets) {
        memcpy(targets, ds->targets + o, n);
    }
    if (pos) {
        memcpy(pos, ds->pos + o, n);
    }
    if (doc) {
        memcpy(doc, ds->doc + o, n);
    }
}

/* Copies row i of src to the end of dst (which has room). */
static void copy_row(werk_dataset *dst, const werk_dataset *src, int64_t i) {
    int64_t r = dst->n_rows++;
    werk_dataset_row(src, i, dst->tokens + r * dst->seq, dst->targets + r * dst->seq, dst->pos + r * dst->seq,
                     dst->doc + r * dst->seq);
    dst->used[r]   = src->used[i];
    dst->n_docs[r] = src->n_docs[i];
}

static void count_records(werk_dataset *ds) {
    ds->st.n_records = 0;
    for (int64_t r = 0; r < ds->n_rows; r++) {
        ds->st.n_records += ds->n_docs[r];
    }
    finish(ds);
}

werk_status
werk_dataset_split(werk_dataset *ds, double frac, uint64_t seed, werk_dataset **val, werk_err *err) {
    *val      = NULL;
    int64_t n = ds->n_rows;
    if (!(frac > 0 && frac < 1)) {
        return WERK_FAIL(err, WERK_E_ARG, "dataset: validation fraction %g is not in (0, 1)", frac);
    }
    if (n < 2) {
        return WERK_FAIL(err, WERK_E_ARG, "dataset: %lld row(s) cannot be split into training and validation",
                         (long long)n);
    }
    int64_t n_val      = llround(frac * (double)n);
    n_val              = n_val < 1 ? 1 : n_val > n - 1 ? n - 1 : n_val;
    int64_t      *perm = malloc((size_t)n * sizeof(int64_t));
    bool         *in   = calloc((size_t)n, 1);
    werk_dataset *v    = calloc(1, sizeof(*v));
    if (v) {
        v->seq = ds->seq;
    }
    if (!perm || !in || !v || !grow(v, n_val)) {
        free(perm);
        free(in);
        werk_dataset_free(v);
        return WERK_FAIL(err, WERK_E_OOM, "dataset: out of memory splitting %lld rows", (long long)n);
    }
    // its own stream: not the order of any training epoch drawn from the same seed
    werk_dataset_shuffle(perm, n, seed, UINT64_MAX);
    for (int64_t i = 0; i < n_val; i++) {
        in[perm[i]] = true;
    }
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) {
        if (in[i]) {
            copy_row(v, ds, i);
        } else {
            if (kept != i) {
                werk_dataset_row(ds, i, ds->tokens + kept * ds->seq, ds->targets + kept * ds->seq,
                                 ds->pos + kept * ds->seq, ds->doc + kept * ds->seq);
                ds->used[kept]   = ds->used[i];
                ds->n_docs[kept] = ds->n_docs[i];
            }
            kept++;
        }
    }
    ds->n_rows = kept;
    memcpy(v->hash, ds->hash, sizeof(v->hash));
    count_records(ds);
    count_records(v);
    free(perm);
    free(in);
    *val = v;
    return WERK_OK;
}

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void werk_dataset_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch) {
    werk_rng rng;
    werk_rng_seed(&rng, seed ^ splitmix64(epoch ^ 0x5DA7A5E7ull));
    for (int64_t i = 0; i < n; i++) {
        perm[i] = i;
    }
    // Fisher-Yates with unbiased draws in [0, i] (rejection of the short last interval)
    for (int64_t i = n - 1; i > 0; i--) {
        uint64_t m     = (uint64_t)i + 1;
        uint64_t limit = UINT64_MAX - UINT64_MAX % m;
        uint64_t x;
        do {
            x = werk_rng_next(&rng);
        } while (x >= limit);
        int64_t j = (int64_t)(x % m), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
