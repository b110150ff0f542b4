/* tests/datasets/test_dataset.c - training sets: packing, targets, truncation, splits, shuffles
 *
 * Pre-tokenized records (no tokenizer): first-fit packing with document boundaries, targets
 * shifted inside documents, pos/doc, padding, --no-pack, records with nothing scored
 * dropped, .jsonl.zst, pre-tokenized records never cut, bad lines failing with file:line
 * or counted with skip_bad_lines, split (deterministic, disjoint, union = all), shuffle,
 * hash. With the stories260K tokenizer (converted from the llama2.c fixture): text records
 * get BOS + EOS (no BOS with no_bos), truncation is counted or refused (--no-truncate),
 * prompt/completion scores the completion only, {"messages"} records score the assistant
 * turns only (all with train_on_inputs), and bad conversations name file:line. With the
 * real models and data in $WERK_CACHE (each skipped when missing): SmolLM2's and Gemma 3's
 * chat rendering through werk_dataset_load, and the German validation set packed.
 */
#include "datasets/datasets.h"
#include "tests/werk_test.h"

#include <zstd.h>

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    WT_CHECK(f != NULL, "cannot write %s", path);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static werk_dataset_opts opts_of(int64_t seq, bool pack) {
    werk_dataset_opts o = {0};
    o.seq               = seq;
    o.pack              = pack;
    o.n_vocab           = 512;
    return o;
}

static werk_dataset *load(const char              *name,
                          const char              *text,
                          const werk_tokenizer    *tok,
                          const werk_dataset_opts *o,
                          werk_status             *st,
                          werk_err                *err) {
    char path[1024];
    wt_tmp(path, sizeof(path), name);
    write_text(path, text);
    werk_dataset *ds = NULL;
    memset(err, 0, sizeof(*err));
    *st = werk_dataset_load(path, tok, o, &ds, err);
    return ds;
}

static bool same(const int32_t *a, const int32_t *b, int n) {
    return memcmp(a, b, (size_t)n * sizeof(int32_t)) == 0;
}

static void print_row(const char *what, const int32_t *v, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) {
        fprintf(stderr, " %d", v[i]);
    }
    fputc('\n', stderr);
}

static void check_row(const werk_dataset *ds,
                      int64_t             r,
                      const int32_t      *tok,
                      const int32_t      *tgt,
                      const int32_t      *pos,
                      const int32_t      *doc,
                      const char         *label) {
    int32_t t[8], g[8], p[8], d[8];
    int     n = (int)werk_dataset_seq(ds);
    werk_dataset_row(ds, r, t, g, p, d);
    bool ok = same(t, tok, n) && same(g, tgt, n) && same(p, pos, n) && same(d, doc, n);
    WT_CHECK(ok, "%s: row %lld differs", label, (long long)r);
    if (!ok) {
        print_row("tokens", t, n), print_row("targets", g, n), print_row("pos", p, n), print_row("doc", d, n);
    }
}

// lengths 3, 5, 2; a one-token record and an all-unscored one (both dropped)
static const char PRETOK[] = "{\"input_ids\": [1, 2, 3]}\n"
                             "{\"input_ids\": [4, 5, 6, 7, 8], \"labels\": [-100, -100, 6, 7, 8]}\n"
                             "{\"input_ids\": [11]}\n"
                             "{\"input_ids\": [9, 10], \"labels\": [-100, 10]}\n"
                             "{\"input_ids\": [12, 13], \"labels\": [12, -100]}\n";

static void check_pretokenized(void) {
    werk_err          err = {0};
    werk_status       st;
    werk_dataset_opts o  = opts_of(8, true);
    werk_dataset     *ds = load("ds_pretok.jsonl", PRETOK, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "pack: %s", err.msg);
    if (ds) {
        werk_dataset_stats s;
        werk_dataset_get_stats(ds, &s);
        WT_CHECK(s.n_rows == 2 && werk_dataset_n_rows(ds) == 2, "pack: %lld rows", (long long)s.n_rows);
        WT_CHECK(s.n_records == 3 && s.n_dropped == 2 && s.n_tokens == 10 && s.n_scored == 6,
                 "pack stats: records %lld dropped %lld tokens %lld scored %lld", (long long)s.n_records,
                 (long long)s.n_dropped, (long long)s.n_tokens, (long long)s.n_scored);
        const int32_t t0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, g0[8] = {2, 3, -100, -100, 6, 7, 8, -100};
        const int32_t p0[8] = {0, 1, 2, 0, 1, 2, 3, 4}, d0[8] = {0, 0, 0, 1, 1, 1, 1, 1};
        check_row(ds, 0, t0, g0, p0, d0, "pack");
        const int32_t t1[8] = {9, 10, 0, 0, 0, 0, 0, 0},
                      g1[8] = {10, -100, -100, -100, -100, -100, -100, -100};
        const int32_t p1[8] = {0, 1, 0, 0, 0, 0, 0, 0}, d1[8] = {0, 0, 1, 1, 1, 1, 1, 1};
        check_row(ds, 1, t1, g1, p1, d1, "pack");
        char hex[65];
        WT_CHECK(!werk_sha256_file(wt_tmp((char[1024]){0}, 1024, "ds_pretok.jsonl"), hex, &err) &&
                     strcmp(hex, werk_dataset_hash(ds)) == 0,
                 "hash %s", werk_dataset_hash(ds));
    }
    werk_dataset_free(ds);

    // first-fit: a short document goes back into an earlier row with room
    o  = opts_of(8, true);
    ds = load("ds_firstfit.jsonl",
              "{\"input_ids\": [1, 2, 3, 4, 5]}\n{\"input_ids\": [6, 7, 8, 9, 10, 11]}\n{\"input_ids\": [12, "
              "13]}\n",
              NULL, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds && werk_dataset_n_rows(ds) == 2, "first fit: %s", err.msg);
    if (ds && werk_dataset_n_rows(ds) == 2) {
        const int32_t t0[8] = {1, 2, 3, 4, 5, 12, 13, 0}, g0[8] = {2, 3, 4, 5, -100, 13, -100, -100};
        const int32_t p0[8] = {0, 1, 2, 3, 4, 0, 1, 0}, d0[8] = {0, 0, 0, 0, 0, 1, 1, 2};
        check_row(ds, 0, t0, g0, p0, d0, "first fit");
    }
    werk_dataset_free(ds);

    // .jsonl.zst gives the same rows
    {
        char   zpath[1024];
        size_t cap = ZSTD_compressBound(strlen(PRETOK));
        char  *z   = malloc(cap);
        size_t zn  = ZSTD_compress(z, cap, PRETOK, strlen(PRETOK), 3);
        wt_tmp(zpath, sizeof(zpath), "ds_pretok.jsonl.zst");
        FILE *f = fopen(zpath, "wb");
        if (f && !ZSTD_isError(zn)) {
            fwrite(z, 1, zn, f);
        }
        if (f) {
            fclose(f);
        }
        free(z);
        o                 = opts_of(8, true);
        werk_dataset *zds = NULL;
        WT_CHECK(!werk_dataset_load(zpath, NULL, &o, &zds, &err) && zds && werk_dataset_n_rows(zds) == 2,
                 "zst: %s", err.msg);
        if (zds) {
            const int32_t t0[8] = {1, 2, 3, 4, 5, 6, 7, 8}, g0[8] = {2, 3, -100, -100, 6, 7, 8, -100};
            const int32_t p0[8] = {0, 1, 2, 0, 1, 2, 3, 4}, d0[8] = {0, 0, 0, 1, 1, 1, 1, 1};
            check_row(zds, 0, t0, g0, p0, d0, "zst");
        }
        werk_dataset_free(zds);
    }

    // --no-pack: one record per row
    o  = opts_of(8, false);
    ds = load("ds_nopack.jsonl", PRETOK, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds && werk_dataset_n_rows(ds) == 3, "no-pack: %s", err.msg);
    if (ds && werk_dataset_n_rows(ds) == 3) {
        const int32_t t1[8] = {4, 5, 6, 7, 8, 0, 0, 0}, g1[8] = {-100, 6, 7, 8, -100, -100, -100, -100};
        const int32_t p1[8] = {0, 1, 2, 3, 4, 0, 0, 0}, d1[8] = {0, 0, 0, 0, 0, 1, 1, 1};
        check_row(ds, 1, t1, g1, p1, d1, "no-pack");
    }
    werk_dataset_free(ds);

    // pre-tokenized records are never cut, even without --no-truncate
    const char *longrec = "{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n";
    o                   = opts_of(8, true);
    ds                  = load("ds_long.jsonl", longrec, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_E_FORMAT && !ds && strstr(err.msg, "ds_long.jsonl:2:") &&
                 strstr(err.msg, "never cut"),
             "long pre-tokenized: %d %s", (int)st, err.msg);
    o.skip_bad_lines = true;
    ds               = load("ds_long.jsonl", longrec, NULL, &o, &st, &err);
    if (ds) {
        werk_dataset_stats s;
        werk_dataset_get_stats(ds, &s);
        WT_CHECK(s.n_bad_lines == 1 && s.n_records == 1 && s.n_rows == 1,
                 "long skipped: bad %lld records %lld", (long long)s.n_bad_lines, (long long)s.n_records);
    }
    WT_CHECK(st == WERK_OK && ds, "long skipped: %s", err.msg);
    werk_dataset_free(ds);

    // bad lines: file:line, or counted and skipped
    const char *bad = "{\"input_ids\": [1, 2]}\n"
                      "{\"input_ids\": [1, 2\n"
                      "{\"input_ids\": [1, 2]}\n"
                      "{\"input_ids\": [1, 9999]}\n"
                      "\xff\xfe\n"
                      "{\"foo\": 1}\n"
                      "[1, 2]\n"
                      "{\"input_ids\": [3, 4], \"labels\": [1]}\n";
    o               = opts_of(8, true);
    ds              = load("ds_bad.jsonl", bad, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_E_FORMAT && !ds && strstr(err.msg, "ds_bad.jsonl:2: bad JSON"), "bad json: %s",
             err.msg);
    o.skip_bad_lines = true;
    ds               = load("ds_bad.jsonl", bad, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "skip bad: %s", err.msg);
    if (ds) {
        werk_dataset_stats s;
        werk_dataset_get_stats(ds, &s);
        WT_CHECK(s.n_bad_lines == 6 && s.n_records == 2, "skip bad: %lld bad, %lld records",
                 (long long)s.n_bad_lines, (long long)s.n_records);
    }
    werk_dataset_free(ds);
    const struct {
        const char *text, *where, *needle;
    } errs[] = {
        {"{\"input_ids\": [1, 2]}\n\xc3\x28\n", ":2:", "UTF-8"},
        {"{\"input_ids\": [1, 2]}\n{\"input_ids\": [1, 512]}\n", ":2:", "token id"},
        {"{\"input_ids\": [1, 2]}\n\n{\"x\": 3}\n", ":3:", "none of"},
        {"\n\n", ":2:", "empty file"},
        {"{\"input_ids\": [1]}\n", "ds_err.jsonl:", "no usable records"},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        o  = opts_of(8, true);
        ds = load("ds_err.jsonl", errs[i].text, NULL, &o, &st, &err);
        WT_CHECK(st == WERK_E_FORMAT && !ds && strstr(err.msg, errs[i].where) &&
                     strstr(err.msg, errs[i].needle),
                 "error case %zu: %d '%s'", i, (int)st, err.msg);
        werk_dataset_free(ds);
    }
    o  = opts_of(1, true);
    ds = load("ds_err.jsonl", PRETOK, NULL, &o, &st, &err);
    WT_CHECK(st == WERK_E_ARG && !ds, "seq 1: %d", (int)st);
    o  = opts_of(8, true);
    ds = NULL;
    st = werk_dataset_load("/nonexistent/x.jsonl", NULL, &o, &ds, &err);
    WT_CHECK(st == WERK_E_IO && !ds, "missing file: %d", (int)st);
}

static void check_split_shuffle(void) {
    werk_strbuf b = {0};
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf(line, sizeof(line), "{\"input_ids\": [%d, %d]}\n", i + 1, i + 100);
        werk_strbuf_puts(&b, line);
    }
    werk_err          err = {0};
    werk_status       st;
    werk_dataset_opts o = opts_of(4, false);
    werk_dataset     *a = load("ds_split.jsonl", b.p, NULL, &o, &st, &err);
    werk_dataset     *c = load("ds_split.jsonl", b.p, NULL, &o, &st, &err);
    werk_strbuf_free(&b);
    WT_CHECK(a && c && werk_dataset_n_rows(a) == 40, "split load: %s", err.msg);
    if (!a || !c) {
        werk_dataset_free(a);
        werk_dataset_free(c);
        return;
    }
    werk_dataset *va = NULL, *vc = NULL;
    WT_CHECK(!werk_dataset_split(a, 0.25, 7, &va, &err) && va, "split: %s", err.msg);
    WT_CHECK(!werk_dataset_split(c, 0.25, 7, &vc, &err) && vc, "split: %s", err.msg);
    if (va && vc) {
        WT_CHECK(werk_dataset_n_rows(va) == 10 && werk_dataset_n_rows(a) == 30, "split sizes %lld %lld",
                 (long long)werk_dataset_n_rows(va), (long long)werk_dataset_n_rows(a));
        int seen[41] = {0}, same_split = 1, ordered = 1, prev = 0;
        for (int64_t i = 0; i < werk_dataset_n_rows(a); i++) {
            int32_t t[4], t2[4];
            werk_dataset_row(a, i, t, NULL, NULL, NULL);
            werk_dataset_row(c, i, t2, NULL, NULL, NULL);
            seen[t[0]]++;
            same_split &= t[0] == t2[0];
            ordered &= t[0] > prev;
            prev = t[0];
        }
        prev = 0;
        for (int64_t i = 0; i < werk_dataset_n_rows(va); i++) {
            int32_t t[4], t2[4], g[4];
            werk_dataset_row(va, i, t, g, NULL, NULL);
            werk_dataset_row(vc, i, t2, NULL, NULL, NULL);
            seen[t[0]]++;
            same_split &= t[0] == t2[0];
            ordered &= t[0] > prev && t[1] == t[0] + 99 && g[0] == t[1];
            prev = t[0];
        }
        int all_once = 1;
        for (int i = 1; i <= 40; i++) {
            all_once &= seen[i] == 1;
        }
        WT_CHECK(all_once, "split: train and validation are disjoint and cover every row");
        WT_CHECK(same_split, "split: the same seed splits the same way");
        WT_CHECK(ordered, "split: both keep file order and whole rows");
        werk_dataset_stats s;
        werk_dataset_get_stats(va, &s);
        WT_CHECK(s.n_rows == 10 && s.n_records == 10 && s.n_tokens == 20 && s.n_scored == 10,
                 "val stats %lld %lld %lld %lld", (long long)s.n_rows, (long long)s.n_records,
                 (long long)s.n_tokens, (long long)s.n_scored);
        werk_dataset *one = NULL;
        WT_CHECK(werk_dataset_split(va, 1.5, 1, &one, &err) == WERK_E_ARG && !one, "split fraction 1.5");
        WT_CHECK(werk_dataset_split(va, 0.01, 1, &one, &err) == WERK_OK && one &&
                     werk_dataset_n_rows(one) == 1,
                 "at least one validation row");
        werk_dataset_free(one);
    }
    werk_dataset_free(va);
    werk_dataset_free(vc);
    werk_dataset_free(a);
    werk_dataset_free(c);

    int64_t p1[100], p2[100], p3[100], p4[100];
    werk_dataset_shuffle(p1, 100, 42, 0);
    werk_dataset_shuffle(p2, 100, 42, 0);
    werk_dataset_shuffle(p3, 100, 42, 1);
    werk_dataset_shuffle(p4, 100, 43, 0);
    int seen[100] = {0}, eq12 = 1, eq13 = 1, eq14 = 1, ident = 1;
    for (int i = 0; i < 100; i++) {
        if (p1[i] >= 0 && p1[i] < 100) {
            seen[p1[i]]++;
        }
        eq12 &= p1[i] == p2[i];
        eq13 &= p1[i] == p3[i];
        eq14 &= p1[i] == p4[i];
        ident &= p1[i] == i;
    }
    int perm = 1;
    for (int i = 0; i < 100; i++) {
        perm &= seen[i] == 1;
    }
    WT_CHECK(perm && !ident, "shuffle gives a permutation that moves rows");
    WT_CHECK(eq12 && !eq13 && !eq14, "shuffle: same (seed, epoch) same order; other epoch or seed differ");
    werk_dataset_shuffle(p1, 1, 5, 5);
    WT_CHECK(p1[0] == 0, "shuffle of one");
}

/* Decoded text of the tokens at targets' scored positions (what the loss sees). */
static char *scored_text(const werk_tokenizer *tok, const werk_dataset *ds, int64_t row) {
    int64_t  T = werk_dataset_seq(ds);
    int32_t *t = malloc((size_t)T * sizeof(int32_t)), *g = malloc((size_t)T * sizeof(int32_t));
    werk_dataset_row(ds, row, t, g, NULL, NULL);
    int64_t n = 0;
    for (int64_t i = 0; i < T; i++) {
        if (g[i] != WERK_LABEL_IGNORE) {
            t[n++] = g[i];
        }
    }
    char    *text = NULL;
    size_t   len  = 0;
    werk_err err  = {0};
    WT_CHECK(!werk_tokenizer_decode(tok, t, n, &text, &len, &err), "decode: %s", err.msg);
    free(t);
    free(g);
    return text;
}

static void check_text(const werk_tokenizer *tok) {
    werk_err          err = {0};
    werk_status       st;
    werk_dataset_opts o   = opts_of(64, true);
    int32_t           bos = werk_tokenizer_bos(tok), eos = werk_tokenizer_eos(tok);
    WT_CHECK(bos >= 0 && eos >= 0, "stories260K has BOS and EOS");
    const char *text =
        "{\"text\": \"Once upon a time there was a cat.\"}\n{\"text\": \"The dog ran to the big park.\"}\n";
    werk_dataset *ds = load("ds_text.jsonl", text, tok, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds && werk_dataset_n_rows(ds) == 1, "text: %s", err.msg);
    if (ds) {
        int32_t t[64], g[64], p[64], d[64];
        werk_dataset_row(ds, 0, t, g, p, d);
        int32_t *ids = NULL;
        int64_t  n   = 0;
        WT_CHECK(
            !werk_tokenizer_encode(tok, "Once upon a time there was a cat.", 33, true, false, &ids, &n, &err),
            "%s", err.msg);
        bool ok = n + 1 < 64 && t[0] == bos && same(t, ids, (int)n) && t[n] == eos && g[n - 1] == eos &&
                  g[n] == -100 && t[n + 1] == bos && p[n + 1] == 0 && d[n] == 0 && d[n + 1] == 1;
        WT_CHECK(ok, "text: BOS + text + EOS, then the next document");
        for (int64_t i = 0; i + 1 < n; i++) {
            WT_CHECK(g[i] == ids[i + 1] && p[i] == i, "text: target %lld", (long long)i);
        }
        free(ids);
        int64_t n_bos = 0;
        for (int i = 0; i < 64; i++) {
            n_bos += g[i] == bos;
        }
        WT_CHECK(n_bos == 0, "text: BOS is never a target");
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strstr(s, "Once upon a time there was a cat.") && strstr(s, "dog ran to the big park."),
                 "text: scored '%s'", s ? s : "");
        free(s);
    }
    werk_dataset_free(ds);

    // no_bos: the same documents without their BOS
    o.no_bos = true;
    ds       = load("ds_text.jsonl", text, tok, &o, &st, &err);
    if (ds) {
        int32_t t[64], p[64];
        werk_dataset_row(ds, 0, t, NULL, p, NULL);
        WT_CHECK(t[0] != bos && p[0] == 0, "no_bos: first token %d", t[0]);
    }
    WT_CHECK(st == WERK_OK && ds, "no_bos: %s", err.msg);
    werk_dataset_free(ds);

    // truncation: counted, or refused with --no-truncate
    o  = opts_of(8, true);
    ds = load("ds_trunc.jsonl", text, tok, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "trunc: %s", err.msg);
    if (ds) {
        werk_dataset_stats s;
        werk_dataset_get_stats(ds, &s);
        WT_CHECK(s.n_truncated == 2 && s.n_rows == 2 && s.n_tokens == 16 && s.n_scored == 14,
                 "trunc stats: %lld truncated, %lld rows %lld tokens %lld scored", (long long)s.n_truncated,
                 (long long)s.n_rows, (long long)s.n_tokens, (long long)s.n_scored);
    }
    werk_dataset_free(ds);
    o.no_truncate = true;
    ds            = load("ds_trunc.jsonl", text, tok, &o, &st, &err);
    WT_CHECK(st == WERK_E_FORMAT && !ds && strstr(err.msg, "ds_trunc.jsonl:1:") &&
                 strstr(err.msg, "no-truncate"),
             "no-truncate: %s", err.msg);

    // prompt/completion: the completion (and EOS) only, unless train_on_inputs
    const char *pc = "{\"prompt\": \"Where is the cat?\", \"completion\": \" In the garden.\"}\n";
    o              = opts_of(64, false);
    ds             = load("ds_pc.jsonl", pc, tok, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "prompt: %s", err.msg);
    if (ds) {
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strstr(s, "garden") && !strstr(s, "cat"), "prompt: scored '%s'", s ? s : "");
        free(s);
    }
    werk_dataset_free(ds);
    o.train_on_inputs = true;
    ds                = load("ds_pc.jsonl", pc, tok, &o, &st, &err);
    if (ds) {
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strstr(s, "garden") && strstr(s, "cat"), "prompt, train_on_inputs: scored '%s'",
                 s ? s : "");
        free(s);
    }
    werk_dataset_free(ds);

    // messages (a chatml template; stories260K has no turn tokens, so the markup is text)
    const char *msg = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                      "{\"role\": \"user\", \"content\": \"Where is the cat?\"}, "
                      "{\"role\": \"assistant\", \"content\": \"In the garden.\"}, "
                      "{\"role\": \"user\", \"content\": \"And the dog?\"}, "
                      "{\"role\": \"model\", \"content\": \"It sleeps.\"}]}\n";
    o               = opts_of(256, false);
    o.chat_template = "{% for m in messages %}<|im_start|>{{ m.role }}...{% endfor %}";
    ds              = load("ds_msg.jsonl", msg, tok, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "messages: %s", err.msg);
    if (ds) {
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strstr(s, "In the garden.") && strstr(s, "It sleeps.") && !strstr(s, "cat") &&
                     !strstr(s, "dog") && !strstr(s, "brief") && !strstr(s, "user"),
                 "messages: scored '%s'", s ? s : "");
        free(s);
    }
    werk_dataset_free(ds);
    o.train_on_inputs = true;
    ds                = load("ds_msg.jsonl", msg, tok, &o, &st, &err);
    if (ds) {
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strstr(s, "garden") && strstr(s, "cat") && strstr(s, "dog") && strstr(s, "brief"),
                 "messages, train_on_inputs: scored '%s'", s ? s : "");
        free(s);
    }
    werk_dataset_free(ds);
    o.train_on_inputs = false;
    const struct {
        const char *tmpl, *text, *needle;
    } errs[] = {
        {"<|im_start|>", "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}",
         "unknown role 'robot'"},
        {"<|im_start|>", "{\"messages\": [{\"role\": \"user\"}]}", "messages[0] needs"},
        {"<|im_start|>", "{\"messages\": []}", "non-empty"},
        {"<start_of_turn>",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"system\", \"content\": "
         "\"b\"}]}",
         "messages[1]: gemma has no system role"},
        {"<start_of_turn>", "{\"messages\": [{\"role\": \"system\", \"content\": \"b\"}]}",
         "needs a user turn"},
    };
    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
        char text2[512];
        snprintf(text2, sizeof(text2), "{\"text\": \"ok\"}\n%s\n", errs[i].text);
        o.chat_template = errs[i].tmpl;
        ds              = load("ds_msgerr.jsonl", text2, tok, &o, &st, &err);
        WT_CHECK(st == WERK_E_FORMAT && !ds && strstr(err.msg, "ds_msgerr.jsonl:2:") &&
                     strstr(err.msg, errs[i].needle),
                 "messages error %zu: %d '%s'", i, (int)st, err.msg);
        werk_dataset_free(ds);
    }
    o.chat_template = NULL; // stories260K has no turn tokens either
    ds              = load("ds_msgerr.jsonl", msg, tok, &o, &st, &err);
    WT_CHECK(st == WERK_E_UNSUPPORTED && !ds && strstr(err.msg, ":1:"), "messages without a style: %s",
             err.msg);
}

/* {"messages"} through werk_dataset_load with a real model's tokenizer: the conversation
 * as the model's template renders it (SmolLM2: its default system turn when the record has
 * none; Gemma 3's GGUF has no template: its turn tokens decide), the assistant turns scored. */
static void check_real_chat(const char *model, const char *rendered, bool bos, const char *scored) {
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    werk_err        err = {0};
    if (access(model, R_OK) != 0) {
        printf("note: %s missing: its chat rendering not checked\n", model);
        return;
    }
    if (werk_gguf_read(model, &g, &err) || werk_tokenizer_init(g, &tok, &err)) {
        WT_CHECK(0, "%s: %s", model, err.msg);
        werk_gguf_free(g);
        return;
    }
    const char *tmpl  = NULL;
    bool        found = false;
    (void)werk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &found, &err);
    werk_dataset_opts o = {.seq = 128, .pack = false, .chat_template = found ? tmpl : NULL};
    werk_status       st;
    werk_dataset     *ds = load("ds_real_chat.jsonl",
                                "{\"messages\": [{\"role\": \"user\", \"content\": \"Capital of France?\"}, "
                                    "{\"role\": \"assistant\", \"content\": \"Paris.\"}]}\n",
                                tok, &o, &st, &err);
    WT_CHECK(st == WERK_OK && ds, "%s: %s", model, err.msg);
    if (ds) {
        int32_t t[128], *ids = NULL;
        int64_t n = 0;
        werk_dataset_row(ds, 0, t, NULL, NULL, NULL);
        WT_CHECK(!werk_tokenizer_encode(tok, rendered, strlen(rendered), bos, true, &ids, &n, &err), "%s",
                 err.msg);
        WT_CHECK(n > 0 && n < 128 && same(t, ids, (int)n) && t[n] == 0,
                 "%s: row is not the rendered conversation", model);
        free(ids);
        char *s = scored_text(tok, ds, 0);
        WT_CHECK(s && strcmp(s, scored) == 0, "%s: scored '%s', want '%s'", model, s ? s : "", scored);
        free(s);
    }
    werk_dataset_free(ds);
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
}

/* The German validation set (scripts/fetch-data) with Gemma 3's tokenizer, when both are
 * there: it loads, packs densely and splits. */
static void check_german(void) {
    char        data[1024], model[1024];
    const char *cache = wt_env("WERK_CACHE");
    snprintf(data, sizeof(data), "%s/data/de-docs-val.jsonl", cache);
    snprintf(model, sizeof(model), "%s/models/gemma-3-270m-q4_k_m.gguf", cache);
    if (access(data, R_OK) != 0 || access(model, R_OK) != 0) {
        printf("note: %s or %s missing: German corpus not checked\n", data, model);
        return;
    }
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    werk_err        err = {0};
    if (werk_gguf_read(model, &g, &err) || werk_tokenizer_init(g, &tok, &err)) {
        WT_CHECK(0, "%s: %s", model, err.msg);
        werk_gguf_free(g);
        return;
    }
    werk_dataset_opts o  = {.seq = 512, .pack = true};
    werk_dataset     *ds = NULL, *val = NULL;
    WT_CHECK(!werk_dataset_load(data, tok, &o, &ds, &err), "%s", err.msg);
    if (ds) {
        werk_dataset_stats s;
        werk_dataset_get_stats(ds, &s);
        double fill = (double)s.n_tokens / (double)(s.n_rows * 512);
        printf("German val, seq 512: %lld records, %lld rows, %lld tokens (%.1f%% of the rows), %lld scored, "
               "%lld truncated\n",
               (long long)s.n_records, (long long)s.n_rows, (long long)s.n_tokens, 100 * fill,
               (long long)s.n_scored, (long long)s.n_truncated);
        WT_CHECK(s.n_records > 100 && s.n_bad_lines == 0 && s.n_dropped == 0 && fill > 0.8,
                 "German val stats");
        WT_CHECK(!werk_dataset_split(ds, 0.1, 1, &val, &err) && val, "%s", err.msg);
    }
    werk_dataset_free(val);
    werk_dataset_free(ds);
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
}

int main(void) {
    check_pretokenized();
    check_german();
    char smol[1024], gemma[1024];
    snprintf(smol, sizeof(smol), "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", wt_env("WERK_CACHE"));
    snprintf(gemma, sizeof(gemma), "%s/models/gemma-3-270m-q4_k_m.gguf", wt_env("WERK_CACHE"));
    check_real_chat(
        smol,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
        "<|im_end|>\n<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\nParis."
        "<|im_end|>\n",
        false, "Paris.<|im_end|>");
    check_real_chat(gemma,
                    "<start_of_turn>user\nCapital of France?<end_of_turn>\n<start_of_turn>model\nParis."
                    "<end_of_turn>\n",
                    true, "Paris.<end_of_turn>");
    check_split_shuffle();

    char bin[1000], tokf[1000], gguf[1000], cmd[4096], *log = NULL;
    snprintf(bin, sizeof(bin), "%s/stories260K/llama2c/stories260K.bin", wt_env("WERK_FIXTURES"));
    snprintf(tokf, sizeof(tokf), "%s/stories260K/llama2c/tok512.bin", wt_env("WERK_FIXTURES"));
    if (access(bin, R_OK) != 0 || access(tokf, R_OK) != 0) {
        printf("note: %s missing: tokenized records not checked\n", bin);
        return wt_done();
    }
    wt_tmp(gguf, sizeof(gguf), "ds_stories.gguf");
    snprintf(cmd, sizeof(cmd), "'%s' convert '%s' --vocab '%s' '%s'", wt_env("WERK_BIN"), bin, tokf, gguf);
    int rc = wt_run(cmd, &log);
    WT_CHECK(rc == 0, "%s failed: %s", cmd, log ? log : "");
    free(log);
    werk_gguf      *g   = NULL;
    werk_tokenizer *tok = NULL;
    werk_err        err = {0};
    if (rc == 0 && !werk_gguf_read(gguf, &g, &err) && !werk_tokenizer_init(g, &tok, &err)) {
        check_text(tok);
    } else {
        WT_CHECK(0, "%s: %s", gguf, err.msg);
    }
    werk_tokenizer_free(tok);
    werk_gguf_free(g);
    return wt_done();
}
