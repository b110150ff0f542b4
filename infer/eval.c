/* infer/eval.c - loss, perplexity and KL divergence of a model over a data file
 *
 * Runs the reference forward (werk_forward_lora) one record (JSONL) or one window (text)
 * at a time and accumulates, for each scored target (label != -100 at t+1, predicted at t),
 * -log softmax(logits[t])[target] in double. With a reference model it also runs the
 * reference over the same tokens and keeps one double per scored token (KL(ref||model))
 * for the mean / median / p99; no logits outlive their record or window.
 */
#define _POSIX_C_SOURCE 200809L
#include "datasets/datasets.h"
#include "infer/infer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct acc {
    double  nll, ref_nll;
    int64_t n, agree;
    double *kl;
    int64_t n_kl, cap_kl;
} acc;

/* log-sum-exp of one row, and its argmax. */
static double row_lse(const float *x, int64_t V, int64_t *argmax) {
    float   mx = x[0];
    int64_t am = 0;
    for (int64_t i = 1; i < V; i++) {
        if (x[i] > mx) {
            mx = x[i];
            am = i;
        }
    }
    double s = 0;
    for (int64_t i = 0; i < V; i++) {
        s += exp((double)x[i] - (double)mx);
    }
    *argmax = am;
    return (double)mx + log(s);
}

static werk_status push_kl(acc *a, double v, werk_err *err) {
    if (a->n_kl == a->cap_kl) {
        int64_t cap = a->cap_kl ? a->cap_kl * 2 : 4096;
        double *p   = realloc(a->kl, (size_t)cap * sizeof(double));
        if (!p) {
            return WERK_FAIL(err, WERK_E_OOM, "eval: out of memory for %lld KL values", (long long)cap);
        }
        a->kl     = p;
        a->cap_kl = cap;
    }
    a->kl[a->n_kl++] = v;
    return WERK_OK;
}

/* Scores targets ids[t+1] for t in [from, T-1) whose label is not ignored. labels may be
 * NULL (= ids). */
static werk_status score_seq(const werk_eval_opts *o,
                             const int32_t        *ids,
                             const int32_t        *labels,
                             int64_t               T,
                             int64_t               from,
                             float                *logits,
                             float                *ref_logits,
                             acc                  *a,
                             werk_err             *err) {
    if (T < 2) {
        return WERK_OK;
    }
    int64_t     V  = werk_model_n_vocab(o->model);
    werk_status st = werk_forward_lora(o->model, o->loras, o->n_loras, ids, 1, T, logits, err);
    if (!st && o->ref) {
        st = werk_forward(o->ref, ids, 1, T, ref_logits, err);
    }
    if (st) {
        return st;
    }
    for (int64_t t = from; t + 1 < T; t++) {
        int32_t tgt = labels ? labels[t + 1] : ids[t + 1];
        if (tgt == WERK_LABEL_IGNORE) {
            continue;
        }
        if (tgt < 0 || tgt >= V) {
            return WERK_FAIL(err, WERK_E_FORMAT, "eval: target token %d outside the vocab of %lld", (int)tgt,
                             (long long)V);
        }
        const float *x  = logits + t * V;
        int64_t      am = 0;
        double       lz = row_lse(x, V, &am);
        a->nll += lz - (double)x[tgt];
        a->n++;
        if (o->ref) {
            const float *y  = ref_logits + t * V;
            int64_t      bm = 0;
            double       ly = row_lse(y, V, &bm);
            double       kl = 0;
            for (int64_t i = 0; i < V; i++) {
                double lp = (double)y[i] - ly;
                kl += exp(lp) * (lp - ((double)x[i] - lz));
            }
            a->ref_nll += ly - (double)y[tgt];
            a->agree += am == bm;
            st = push_kl(a, kl < 0 ? 0 : kl, err);
            if (st) {
                return st;
            }
        }
    }
    return WERK_OK;
}

static int cmp_double(const void *pa, const void *pb) {
    double x = *(const double *)pa, y = *(const double *)pb;
    return (x > y) - (x < y);
}

static werk_status alloc_logits(
    const werk_eval_opts *o, int64_t T, float **logits, float **ref_logits, int64_t *cap, werk_err *err) {
    if (T <= *cap) {
        return WERK_OK;
    }
    int64_t  V = werk_model_n_vocab(o->model);
    uint64_t bytes;
    if (!werk_mul_u64((uint64_t)T, (uint64_t)V, &bytes) || !werk_mul_u64(bytes, sizeof(float), &bytes) ||
        bytes > ((uint64_t)1 << 40)) {
        return WERK_FAIL(err, WERK_E_OOM, "eval: logits of %lld tokens x %lld too large", (long long)T,
                         (long long)V);
    }
    free(*logits);
    free(*ref_logits);
    *ref_logits = NULL;
    *cap        = 0;
    *logits     = malloc(bytes);
    if (o->ref) {
        *ref_logits = malloc(bytes);
    }
    if (!*logits || (o->ref && !*ref_logits)) {
        return WERK_FAIL(err, WERK_E_OOM, "eval: out of memory for %llu bytes of logits",
                         (unsigned long long)bytes);
    }
    *cap = T;
    return WERK_OK;
}

static bool is_jsonl(const char *path) {
    size_t n = strlen(path);
    return (n >= 6 && strcmp(path + n - 6, ".jsonl") == 0) ||
           (n >= 10 && strcmp(path + n - 10, ".jsonl.zst") == 0);
}

werk_status werk_eval_file(const werk_eval_opts *o, const char *path, werk_eval_result *res, werk_err *err) {
    memset(res, 0, sizeof(*res));
    int64_t V = werk_model_n_vocab(o->model);
    if (o->ref && werk_model_n_vocab(o->ref) != V) {
        return WERK_FAIL(err, WERK_E_SHAPE, "eval: reference vocab %lld differs from the model's %lld",
                         (long long)werk_model_n_vocab(o->ref), (long long)V);
    }
    acc         a      = {0};
    float      *logits = NULL, *ref_logits = NULL;
    int64_t     cap = 0;
    werk_status st  = WERK_OK;
    if (is_jsonl(path)) {
        werk_jsonl *r   = NULL;
        werk_record rec = {0};
        bool        eof = false;
        st              = werk_datasets_open_jsonl(path, 0, &r, err);
        if (!st) {
            (void)werk_datasets_set_chat_template(r, o->chat_template); // unknown: messages records fail
        }
        while (!st) {
            st = werk_datasets_next_record(r, o->tok, V, &rec, &eof, err);
            if (st || eof) {
                break;
            }
            st = alloc_logits(o, rec.n, &logits, &ref_logits, &cap, err);
            if (!st) {
                st = score_seq(o, rec.ids, rec.labels, rec.n, 0, logits, ref_logits, &a, err);
            }
            res->n_records++;
        }
        werk_datasets_free_record(&rec);
        werk_datasets_close_jsonl(r);
    } else {
        char    *text = NULL;
        size_t   len  = 0;
        int32_t *ids  = NULL;
        int64_t  n    = 0;
        if (o->n_ctx < 2) {
            return WERK_FAIL(err, WERK_E_ARG, "eval: context %lld too short", (long long)o->n_ctx);
        }
        st = werk_read_file(path, (size_t)1 << 32, &text, &len, err);
        if (!st) {
            st = werk_tokenizer_encode(o->tok, text, len, true, false, &ids, &n, err);
        }
        free(text);
        if (!st && n < 2) {
            st = WERK_FAIL(err, WERK_E_FORMAT, "%s: fewer than 2 tokens of text", path);
        }
        int64_t stride = o->n_ctx / 2, done = 0; // targets ids[1..done] scored so far
        for (int64_t s = 0; !st; s += stride) {
            int64_t e = s + o->n_ctx < n ? s + o->n_ctx : n;
            st        = alloc_logits(o, e - s, &logits, &ref_logits, &cap, err);
            if (!st) {
                // position t predicts s+t+1: score the targets after `done`
                int64_t from = done - s > 0 ? done - s : 0;
                st           = score_seq(o, ids + s, NULL, e - s, from, logits, ref_logits, &a, err);
            }
            res->n_records++;
            done = e - 1;
            if (e == n) {
                break;
            }
        }
        free(ids);
    }
    free(logits);
    free(ref_logits);
    if (!st && a.n == 0) {
        st = WERK_FAIL(err, WERK_E_FORMAT, "%s: no scored tokens", path);
    }
    if (!st) {
        res->n_scored = a.n;
        res->loss     = a.nll / (double)a.n;
        res->ppl      = exp(res->loss);
        if (o->ref) {
            res->has_ref  = true;
            res->ref_loss = a.ref_nll / (double)a.n;
            res->ref_ppl  = exp(res->ref_loss);
            res->top1     = (double)a.agree / (double)a.n;
            double sum    = 0;
            for (int64_t i = 0; i < a.n_kl; i++) {
                sum += a.kl[i];
            }
            res->kld_mean = sum / (double)a.n_kl;
            qsort(a.kl, (size_t)a.n_kl, sizeof(double), cmp_double);
            res->kld_median = a.n_kl % 2 ? a.kl[a.n_kl / 2] : 0.5 * (a.kl[a.n_kl / 2 - 1] + a.kl[a.n_kl / 2]);
            int64_t k       = (int64_t)ceil(0.99 * (double)a.n_kl) - 1;
            res->kld_p99    = a.kl[k < 0 ? 0 : k];
        }
    }
    free(a.kl);
    return st;
}
