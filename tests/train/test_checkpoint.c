/* tests/train/test_checkpoint.c - checkpoint round trip (bit-exact), hyper-parameter checks
 * on resume, truncated / corrupted / foreign files -> clean errors, newest-file lookup */
#include "werk_test.h"

#include "train/train_int.h"

#include <math.h>
#include <stdint.h>

enum { N = 5000 };

static void fill(float *x, int n, uint64_t seed) {
    for (int i = 0; i < n; i++) {
        uint32_t bits = (uint32_t)(werk_train_rng_next(&seed) >> 32);
        memcpy(&x[i], &bits, 4);
        if (isnan(x[i])) { // keep every bit pattern but NaNs (compared by bits anyway)
            x[i] = (float)i;
        }
    }
}

static werk_ckpt_hp make_hp(void) {
    werk_ckpt_hp hp = {.n_params     = N,
                       .rank         = 8,
                       .alpha        = 16.0f,
                       .slot_mask    = 0x7f,
                       .rslora       = 0,
                       .optim        = 0,
                       .batch        = 4,
                       .seq          = 64,
                       .grad_accum   = 2,
                       .n_train_rows = 100,
                       .seed         = 42};
    memset(hp.data_hash, 'a', 64);
    memset(hp.base_hash, 'b', 64);
    return hp;
}

static int64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static void copy_prefix(const char *src, const char *dst, int64_t n, int64_t flip_at) {
    FILE *f = fopen(src, "rb"), *g = fopen(dst, "wb");
    for (int64_t i = 0; f && g && i < n; i++) {
        int c = fgetc(f);
        if (c == EOF) {
            break;
        }
        fputc(i == flip_at ? c ^ 0x40 : c, g);
    }
    if (f) {
        fclose(f);
    }
    if (g) {
        fclose(g);
    }
}

int main(void) {
    char dir[512], path[600], bad[600];
    wt_tmp(dir, sizeof(dir), "ckpt_test");
    WT_CHECK(werk_mkdir_p(dir, NULL) == WERK_OK, "mkdir");
    snprintf(path, sizeof(path), "%s/step-00000012.ckpt.zst", dir);

    static float p[N], m[N], v[N], p2[N], m2[N], v2[N];
    fill(p, N, 1);
    fill(m, N, 2);
    fill(v, N, 3);
    werk_ckpt_hp    hp = make_hp();
    werk_ckpt_state st = {.step        = 12,
                          .epoch       = 1,
                          .cursor      = 37,
                          .rng         = 0x1234567890abcdefull,
                          .best_val    = 2.5,
                          .best_step   = 10,
                          .n_bad_evals = 1,
                          .tokens_seen = 9999};
    for (int i = 0; i <= 12; i++) {
        werk_loss_rec r = {i, 3.0 - i * 0.1, i % 5 == 0 ? 2.9 - i * 0.1 : NAN, 1e-3, 123.0};
        WT_CHECK(werk_loss_log_add(&st.log, &r, NULL) == WERK_OK, "log add");
    }
    werk_err err = {0};
    WT_CHECK(werk_ckpt_save(path, &hp, &st, p, m, v, &err) == WERK_OK, "save: %s", err.msg);

    // round trip: every bit back
    werk_ckpt_state st2;
    WT_CHECK(werk_ckpt_load(path, &hp, &st2, p2, m2, v2, &err) == WERK_OK, "load: %s", err.msg);
    WT_CHECK(memcmp(p, p2, sizeof(p)) == 0 && memcmp(m, m2, sizeof(m)) == 0 && memcmp(v, v2, sizeof(v)) == 0,
             "params/moments bit-exact");
    WT_CHECK(st2.step == 12 && st2.epoch == 1 && st2.cursor == 37 && st2.rng == st.rng &&
                 st2.best_val == 2.5 && st2.best_step == 10 && st2.n_bad_evals == 1 &&
                 st2.tokens_seen == 9999,
             "state fields");
    WT_CHECK(st2.log.n == 13 && st2.log.recs[12].train_loss == st.log.recs[12].train_loss &&
                 isnan(st2.log.recs[1].val_loss) && st2.log.recs[5].val_loss == st.log.recs[5].val_loss,
             "log records (%lld)", (long long)st2.log.n);
    werk_loss_log_free(&st2.log);

    // hyper-parameters that differ -> a clear error naming the flag
    werk_ckpt_hp other = hp;
    other.rank         = 16;
    err                = (werk_err){0};
    WT_CHECK(werk_ckpt_load(path, &other, &st2, p2, m2, v2, &err) == WERK_E_ARG && strstr(err.msg, "--rank"),
             "rank mismatch: %s", err.msg);
    other = hp;
    memset(other.data_hash, 'c', 64);
    WT_CHECK(werk_ckpt_load(path, &other, &st2, p2, m2, v2, &err) == WERK_E_ARG && strstr(err.msg, "data"),
             "data mismatch: %s", err.msg);
    other       = hp;
    other.alpha = 32.0f;
    WT_CHECK(werk_ckpt_load(path, &other, &st2, p2, m2, v2, &err) == WERK_E_ARG && strstr(err.msg, "--alpha"),
             "alpha mismatch: %s", err.msg);

    // truncated at several points, and one flipped byte at several points
    int64_t size = file_size(path);
    WT_CHECK(size > 100, "size %lld", (long long)size);
    snprintf(bad, sizeof(bad), "%s/bad.ckpt.zst", dir);
    int64_t cuts[] = {0, 5, 20, size / 2, size - 4, size - 1};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        copy_prefix(path, bad, cuts[i], -1);
        err           = (werk_err){0};
        werk_status s = werk_ckpt_load(bad, &hp, &st2, p2, m2, v2, &err);
        WT_CHECK(s == WERK_E_FORMAT, "truncated at %lld: status %d (%s)", (long long)cuts[i], s, err.msg);
    }
    int64_t flips[] = {20, size / 3, size / 2, size - 2};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        copy_prefix(path, bad, size, flips[i]);
        err           = (werk_err){0};
        werk_status s = werk_ckpt_load(bad, &hp, &st2, p2, m2, v2, &err);
        WT_CHECK(s == WERK_E_FORMAT || s == WERK_E_ARG, "byte %lld flipped: status %d (%s)",
                 (long long)flips[i], s, err.msg);
    }
    // trailing garbage after the frame
    copy_prefix(path, bad, size, -1);
    FILE *f = fopen(bad, "ab");
    fputs("junk", f);
    fclose(f);
    WT_CHECK(werk_ckpt_load(bad, &hp, &st2, p2, m2, v2, &err) == WERK_E_FORMAT, "trailing bytes: %s",
             err.msg);
    // not a checkpoint at all
    f = fopen(bad, "wb");
    fputs("hello, not zstd", f);
    fclose(f);
    WT_CHECK(werk_ckpt_load(bad, &hp, &st2, p2, m2, v2, &err) == WERK_E_FORMAT, "foreign file: %s", err.msg);
    remove(bad);
    WT_CHECK(werk_ckpt_load(bad, &hp, &st2, p2, m2, v2, &err) == WERK_E_IO, "missing file: %s", err.msg);

    // newest lookup: dir/checkpoints/ preferred, highest step wins
    char sub[600], newer[700], *found = NULL;
    snprintf(sub, sizeof(sub), "%s/run/checkpoints", dir);
    WT_CHECK(werk_mkdir_p(sub, NULL) == WERK_OK, "mkdir");
    snprintf(newer, sizeof(newer), "%s/step-00000003.ckpt.zst", sub);
    WT_CHECK(werk_ckpt_save(newer, &hp, &st, p, m, v, NULL) == WERK_OK, "save 3");
    snprintf(newer, sizeof(newer), "%s/step-00000020.ckpt.zst", sub);
    WT_CHECK(werk_ckpt_save(newer, &hp, &st, p, m, v, NULL) == WERK_OK, "save 20");
    char run[600];
    snprintf(run, sizeof(run), "%s/run", dir);
    WT_CHECK(werk_ckpt_find(run, &found, &err) == WERK_OK && found && strcmp(found, newer) == 0, "find: %s",
             found ? found : err.msg);
    free(found);
    found = NULL;
    WT_CHECK(werk_ckpt_find(path, &found, &err) == WERK_OK && strcmp(found, path) == 0, "find a file");
    free(found);
    found = NULL;
    WT_CHECK(werk_ckpt_find(sub, &found, &err) == WERK_OK, "find in checkpoints/ itself");
    free(found);
    found = NULL;
    char empty[600];
    snprintf(empty, sizeof(empty), "%s/empty", dir);
    werk_mkdir_p(empty, NULL);
    WT_CHECK(werk_ckpt_find(empty, &found, &err) == WERK_E_IO && !found, "no checkpoint: %s", err.msg);

    werk_loss_log_free(&st.log);
    return wt_done();
}
