/* infer/eval.c - loss, perplexity and KL divergence of a model over a data file
 *
 * Runs the forward without its LM head (werk_forward_hidden_lora) one record (JSONL) or one
 * window (text) at a time, keeps the hidden states of the scored positions only (label !=
 * -100 at t+1, predicted at t), and applies the LM head in chunks of vocabulary rows
 * (OpenBLAS on dequantized tiles): per scored position an online log-sum-exp (running
 * max, rescaled sum in double), the target's logit and the argmax (first of equal maxima).
 * With a reference model both heads run on the same chunk, and KL(ref || model) =
 * sum_i p_i (y_i - x_i) + lse(x) - lse(y) is accumulated in the same pass (sum of
 * e^(y_i - max y) (y_i - x_i), rescaled with the running max of y). Memory is
 * O(positions x chunk), never positions x vocab; one double per scored token is kept for
 * the KL median / p99. Positions are updated in parallel (OpenMP), each by one thread in
 * vocabulary order, so the figures do not depend on the thread count.
 */
#define _POSIX_C_SOURCE 200809L
#include "datasets/datasets.h"
#include "infer/infer.h"
#include "infer/model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CHUNK_FLOATS = 1 << 21 }; // logits per chunk and model (8 MiB)

typedef struct acc {
    double  nll, ref_nll;
    int64_t n, agree;
    double *kl;
    int64_t n_kl, cap_kl;
} acc;

/* Running softmax statistics of one scored position (model x, reference y). */
typedef struct pos_stat {
    double  mx, sx;     // running max of x, sum of e^(x - mx)
    double  my, sy, q;  // same for y; q = sum e^(y - my) (y - x)
    double  xt, yt;     // target logits
    int64_t ax, ay;     // argmaxes
} pos_stat;

/* Buffers of one sequence, grown as needed. */
typedef struct work {
    float    *hid, *ref_hid;   // [T, D] hidden states of the forward
    float    *hs, *ref_hs;     // [n_scored, D] those of the scored positions
    float    *lg, *ref_lg;     // [n_scored, chunk] logits of one vocabulary chunk
    float    *scratch;         // matmul tiles
    pos_stat *ps;
    int32_t  *tgt;
    int64_t   cap_t, cap_lg;
} work;

static void work_free(work *w) {
    free(w->hid);
    free(w->ref_hid);
    free(w->hs);
    free(w->ref_hs);
    free(w->lg);
    free(w->ref_lg);
    free(w->scratch);
    free(w->ps);
    free(w->tgt);
    memset(w, 0, sizeof(*w));
}

static werk_status work_reserve(work *w, const werk_eval_opts *o, int64_t T, int64_t chunk, werk_err *err) {
    int64_t D = o->model->n_embd, RD = o->ref ? o->ref->n_embd : 1;
    bool    ok = true;
    if (T > w->cap_t) {
        free(w->hid);
        free(w->ref_hid);
        free(w->hs);
        free(w->ref_hs);
        free(w->ps);
        free(w->tgt);
        w->hid     = malloc((size_t)(T * D) * sizeof(float));
        w->hs      = malloc((size_t)(T * D) * sizeof(float));
        w->ref_hid = malloc((size_t)(T * RD) * sizeof(float));
        w->ref_hs  = malloc((size_t)(T * RD) * sizeof(float));
        w->ps      = malloc((size_t)T * sizeof(pos_stat));
        w->tgt     = malloc((size_t)T * sizeof(int32_t));
        ok         = w->hid && w->hs && w->ref_hid && w->ref_hs && w->ps && w->tgt;
        w->cap_t   = ok ? T : 0;
    }
    if (ok && T * chunk > w->cap_lg) {
        free(w->lg);
        free(w->ref_lg);
        w->lg     = malloc((size_t)(T * chunk) * sizeof(float));
        w->ref_lg = malloc((size_t)(o->ref ? T * chunk : 1) * sizeof(float));
        ok        = w->lg && w->ref_lg;
        w->cap_lg = ok ? T * chunk : 0;
    }
    if (ok && !w->scratch) {
        int64_t n = werk_op_matmul_scratch(&o->model->output);
        if (o->ref && werk_op_matmul_scratch(&o->ref->output) > n) {
            n = werk_op_matmul_scratch(&o->ref->output);
        }
        w->scratch = malloc((size_t)n * sizeof(float));
        ok         = w->scratch != NULL;
    }
    if (!ok) {
        return WERK_FAIL(err, WERK_E_OOM, "eval: out of memory for a sequence of %lld tokens", (long long)T);
    }
    return WERK_OK;
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

/* Rows [r0, r0 + n) of the LM head of m. */
static werk_wview head_rows(const werk_model *m, int64_t r0, int64_t n) {
    werk_wview w = m->output;
    w.data       = (const char *)m->output.data + (uint64_t)r0 * m->output.row_bytes;
    w.rows       = n;
    return w;
}

/* Folds one chunk of logits (columns c0..c0+nc of the vocabulary) of scored position i
 * into its statistics. y NULL: no reference. */
static void fold_chunk(pos_stat *p, const float *x, const float *y, int64_t c0, int64_t nc, int32_t tgt) {
    float   cx = x[0];
    int64_t ax = 0;
    for (int64_t c = 1; c < nc; c++) {
        if (x[c] > cx) {
            cx = x[c];
            ax = c;
        }
    }
    if (cx > p->mx) {
        p->sx *= exp(p->mx - (double)cx);
        p->mx = cx;
        p->ax = c0 + ax;
    }
    double s = 0;
    for (int64_t c = 0; c < nc; c++) {
        s += exp((double)x[c] - p->mx);
    }
    p->sx += s;
    if (tgt >= c0 && tgt < c0 + nc) {
        p->xt = x[tgt - c0];
        p->yt = y ? y[tgt - c0] : 0;
    }
    if (!y) {
        return;
    }
    float   cy = y[0];
    int64_t ay = 0;
    for (int64_t c = 1; c < nc; c++) {
        if (y[c] > cy) {
            cy = y[c];
            ay = c;
        }
    }
    if (cy > p->my) {
        double r = exp(p->my - (double)cy);
        p->sy *= r;
        p->q *= r;
        p->my = cy;
        p->ay = c0 + ay;
    }
    double sy = 0, q = 0;
    for (int64_t c = 0; c < nc; c++) {
        double e = exp((double)y[c] - p->my);
        sy += e;
        q += e * ((double)y[c] - (double)x[c]);
    }
    p->sy += sy;
    p->q += q;
}

/* Scores targets ids[t+1] for t in [from, T-1) whose label is not ignored. labels may be
 * NULL (= ids). Fills rec's sums. */
static werk_status score_seq(const werk_eval_opts *o,
                             const int32_t        *ids,
                             const int32_t        *labels,
                             int64_t               T,
                             int64_t               from,
                             work                 *w,
                             acc                  *a,
                             werk_eval_record     *rec,
                             werk_err             *err) {
    if (T < 2) {
        return WERK_OK;
    }
    const werk_model *m = o->model, *rm = o->ref;
    int64_t           V = werk_model_n_vocab(m), D = m->n_embd, RD = rm ? rm->n_embd : 0;
    int64_t           chunk = o->vocab_chunk > 0 ? o->vocab_chunk : CHUNK_FLOATS / T;
    chunk                   = chunk > V ? V : o->vocab_chunk > 0 || chunk >= 256 ? chunk : 256;
    werk_status st          = work_reserve(w, o, T, chunk, err);
    if (st) {
        return st;
    }
    int64_t ns = 0; // scored positions, gathered
    for (int64_t t = from; t + 1 < T; t++) {
        int32_t tgt = labels ? labels[t + 1] : ids[t + 1];
        if (tgt == WERK_LABEL_IGNORE) {
            continue;
        }
        if (tgt < 0 || tgt >= V) {
            return WERK_FAIL(err, WERK_E_FORMAT, "eval: target token %d outside the vocab of %lld", (int)tgt,
                             (long long)V);
        }
        w->tgt[ns++] = (int32_t)t; // position for now, target below
    }
    if (ns == 0) {
        return WERK_OK;
    }
    st = werk_forward_hidden_lora(m, o->loras, o->n_loras, ids, 1, T, w->hid, err);
    if (!st && rm) {
        st = werk_forward_hidden_lora(rm, NULL, 0, ids, 1, T, w->ref_hid, err);
    }
    if (st) {
        return st;
    }
    for (int64_t i = 0; i < ns; i++) {
        int64_t t = w->tgt[i];
        memcpy(w->hs + i * D, w->hid + t * D, (size_t)D * sizeof(float));
        if (rm) {
            memcpy(w->ref_hs + i * RD, w->ref_hid + t * RD, (size_t)RD * sizeof(float));
        }
        w->tgt[i] = labels ? labels[t + 1] : ids[t + 1];
        w->ps[i]  = (pos_stat){.mx = -INFINITY, .my = -INFINITY};
    }
    for (int64_t c0 = 0; c0 < V; c0 += chunk) {
        int64_t    nc = V - c0 < chunk ? V - c0 : chunk;
        werk_wview hv = head_rows(m, c0, nc);
        werk_op_matmul_fwd(w->lg, w->hs, ns, &hv, w->scratch);
        if (rm) {
            werk_wview rv = head_rows(rm, c0, nc);
            werk_op_matmul_fwd(w->ref_lg, w->ref_hs, ns, &rv, w->scratch);
        }
        pos_stat      *ps = w->ps;
        const int32_t *tg = w->tgt;
        const float   *lg = w->lg, *rl = rm ? w->ref_lg : NULL;
#pragma omp parallel for schedule(static) if (ns * nc >= 65536)
        for (int64_t i = 0; i < ns; i++) {
            fold_chunk(&ps[i], lg + i * nc, rl ? rl + i * nc : NULL, c0, nc, tg[i]);
        }
    }
    for (int64_t i = 0; i < ns; i++) {
        const pos_stat *p  = &w->ps[i];
        double          lz = p->mx + log(p->sx);
        double          nl = lz - p->xt;
        a->nll += nl;
        a->n++;
        rec->nll += nl;
        rec->n_scored++;
        if (rm) {
            double ly = p->my + log(p->sy);
            double kl = p->q / p->sy + lz - ly;
            kl        = kl < 0 ? 0 : kl;
            a->ref_nll += ly - p->yt;
            a->agree += p->ax == p->ay;
            rec->ref_nll += ly - p->yt;
            rec->agree += p->ax == p->ay;
            rec->kld += kl;
            if ((st = push_kl(a, kl, err))) {
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

static bool is_jsonl(const char *path) {
    size_t n = strlen(path);
    return (n >= 6 && strcmp(path + n - 6, ".jsonl") == 0) ||
           (n >= 10 && strcmp(path + n - 10, ".jsonl.zst") == 0);
}

static werk_status report_record(const werk_eval_opts *o, const werk_eval_record *rec, werk_err *err) {
    return o->on_record ? o->on_record(o->user, rec, err) : WERK_OK;
}

werk_status werk_eval_file(const werk_eval_opts *o, const char *path, werk_eval_result *res, werk_err *err) {
    memset(res, 0, sizeof(*res));
    int64_t V = werk_model_n_vocab(o->model);
    if (o->ref && werk_model_n_vocab(o->ref) != V) {
        return WERK_FAIL(err, WERK_E_SHAPE, "eval: reference vocab %lld differs from the model's %lld",
                         (long long)werk_model_n_vocab(o->ref), (long long)V);
    }
    acc         a  = {0};
    work        w  = {0};
    werk_status st = WERK_OK;
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
            werk_eval_record er = {.index = res->n_records, .line = rec.line, .n_tokens = rec.n};
            st                  = score_seq(o, rec.ids, rec.labels, rec.n, 0, &w, &a, &er, err);
            if (!st) {
                st = report_record(o, &er, err);
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
            // position t predicts s+t+1: score the targets after `done`
            int64_t          from = done - s > 0 ? done - s : 0;
            werk_eval_record er   = {.index = res->n_records, .n_tokens = e - s};
            st                    = score_seq(o, ids + s, NULL, e - s, from, &w, &a, &er, err);
            if (!st) {
                st = report_record(o, &er, err);
            }
            res->n_records++;
            done = e - 1;
            if (e == n) {
                break;
            }
        }
        free(ids);
    }
    work_free(&w);
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
