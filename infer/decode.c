/* infer/decode.c - incremental forward of one sequence: prompt prefill and single-token decode
 *
 * Same math as forward.c (see there), split in two paths sharing the KV cache:
 *   prefill: n tokens at positions 0..n-1 through the batched ops (OpenBLAS on
 *            dequantized tiles, f32 weights in place), attention blocked over queries
 *            with sgemm (prefill_attention), keys/values copied into the cache, the LM
 *            head for the last token only (one matvec, as a step);
 *   step:    one token at position n_past; every projection is a quantized matvec: the
 *            activation row is quantized once to the weight type's vec_dot_type
 *            (quantize_act), then one vec_dot per weight row, rows split over OpenMP
 *            threads (static schedule; each output element is one vec_dot call, so the
 *            result does not depend on the thread count); q/k/v and gate/up share one
 *            parallel loop (fewer barriers). Attention reads the cache (window on
 *            gemma3's local layers, GQA) in fixed chunks of positions over threads
 *            (attend1: keys/values read once for all heads, chunks merged in order).
 * Weights whose type has no dot kernel or whose width is not a multiple of the block
 * sizes fall back to a dequantized row dot (double accumulation, fixed order); so does
 * every matvec after werk_decoder_set_exact (tests: isolates the cache logic from the
 * activation quantization).
 * Accuracy: a step's logits differ from werk_forward's at the same position by the error
 * of quantizing activations (8-bit blocks for quantized weights: relative ~1/254 per block
 * element, accumulated over each dot) - for f32 weights the kernels are float dots with a
 * different summation order (~1e-6 relative).
 */
#include "infer/decode.h"

#include "infer/model_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct werk_decoder {
    const werk_model       *m;
    const werk_lora *const *loras;
    int                     n_loras;
    werk_kv_cache           kv;
    // step scratch
    float *x, *h, *q, *k, *v, *a, *u, *tmp;
    float *att;  // per chunk of ATT_CHUNK positions: [n_head] max, [n_head] sum, [n_head][head_dim] acc
    char  *qact; // MAX_FUSED quantized activation rows of qact_cap bytes each
    size_t qact_cap;
    bool   exact; // float row dots everywhere (werk_decoder_set_exact)
};

enum {
    MAX_FUSED = 3,  // matvecs sharing one input run in one parallel loop (q, k, v; gate, up)
    ATT_CHUNK = 64, // cached positions per attention work item of a step
};

static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

void werk_decoder_set_exact(werk_decoder *d, bool exact) { d->exact = exact; }

int64_t werk_decoder_n_past(const werk_decoder *d) { return d->kv.n_past; }

/* Bytes for a quantized activation row of w (0 when w takes the float fallback). */
static size_t qact_bytes(const werk_wview *w) {
    const werk_qfns *f = werk_qfns_get(w->type);
    uint64_t         b = 0;
    if (!f->vec_dot || !f->quantize_act) {
        return 0;
    }
    int64_t bs  = werk_dtype_get(w->type)->block_size;
    int64_t bsa = werk_dtype_get(f->vec_dot_type)->block_size;
    if (w->cols % bs || w->cols % bsa || werk_dtype_bytes(f->vec_dot_type, (uint64_t)w->cols, &b, NULL)) {
        return 0;
    }
    return (size_t)b;
}

/* y[w->rows] = W x through the dot kernels (see the file comment). */
static void qmatvec(werk_decoder *d, float *y, const float *x, const werk_wview *w) {
    const werk_qfns *f    = werk_qfns_get(w->type);
    size_t           qb   = d->exact ? 0 : qact_bytes(w);
    const char      *wd   = w->data;
    int64_t          rows = w->rows, cols = w->cols;
    if (qb) {
        f->quantize_act(x, d->qact, cols);
        const void *qa = d->qact;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            float s = 0;
            f->vec_dot(cols, &s, wd + (uint64_t)r * w->row_bytes, qa);
            y[r] = s;
        }
        return;
    }
    // fallback: one dequantized row at a time (row scratch per thread)
#pragma omp parallel
    {
        float *row = malloc((size_t)cols * sizeof(float));
        WERK_ASSERT(row);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            werk_dequantize_row(w->type, wd + (uint64_t)r * w->row_bytes, row, cols);
            double s = 0;
            for (int64_t c = 0; c < cols; c++) {
                s += (double)row[c] * x[c];
            }
            y[r] = (float)s;
        }
        free(row);
    }
}

/* ys[i][ws[i]->rows] = W_i x for n <= MAX_FUSED weights sharing the input x: one
 * parallel loop over all their rows (one barrier instead of n; each output is still one
 * vec_dot call, so the bits do not depend on the thread count). */
static void
qmatvec_fused(werk_decoder *d, float *const *ys, const float *x, const werk_wview *const *ws, int n) {
    int64_t          start[MAX_FUSED + 1] = {0};
    const werk_qfns *fs[MAX_FUSED];
    WERK_ASSERT(n >= 1 && n <= MAX_FUSED);
    for (int i = 0; i < n; i++) {
        if (d->exact || !qact_bytes(ws[i])) {
            for (int j = 0; j < n; j++) {
                qmatvec(d, ys[j], x, ws[j]);
            }
            return;
        }
        fs[i] = werk_qfns_get(ws[i]->type);
        fs[i]->quantize_act(x, d->qact + (size_t)i * d->qact_cap, ws[i]->cols);
        start[i + 1] = start[i] + ws[i]->rows;
    }
    const char *qact = d->qact;
    size_t      qcap = d->qact_cap;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < start[n]; r++) {
        int i = 0;
        while (r >= start[i + 1]) {
            i++;
        }
        const werk_wview *w = ws[i];
        float             s = 0;
        fs[i]->vec_dot(w->cols, &s, (const char *)w->data + (uint64_t)(r - start[i]) * w->row_bytes,
                       qact + (size_t)i * qcap);
        ys[i][r - start[i]] = s;
    }
}

/* Adds the adapters' updates of (layer il, slot) to y = x W^T (one row). */
static void lora1(werk_decoder *d, float *y, const float *x, const werk_wview *w, int64_t il, int slot) {
    for (int i = 0; i < d->n_loras; i++) {
        const werk_lora_mat *lm = &d->loras[i]->mats[il * WERK_LORA_N_SLOTS + slot];
        if (lm->a) {
            werk_op_lora_fwd(y, x, 1, lm->a, lm->b, lm->r, w->cols, w->rows, d->loras[i]->scale, d->tmp);
        }
    }
}

static void linear1(werk_decoder *d, float *y, const float *x, const werk_wview *w, int64_t il, int slot) {
    qmatvec(d, y, x, w);
    lora1(d, y, x, w, il, slot);
}

werk_status werk_decoder_init(const werk_model       *m,
                              const werk_lora *const *loras,
                              int                     n_loras,
                              int64_t                 n_ctx,
                              werk_decoder          **out,
                              werk_err               *err) {
    *out = NULL;
    if (n_loras < 0 || (n_loras > 0 && !loras)) {
        return WERK_FAIL(err, WERK_E_ARG, "decoder: bad adapter list");
    }
    int64_t max_r = 1;
    for (int i = 0; i < n_loras; i++) {
        if (!loras[i] || loras[i]->n_layer != m->n_layer) {
            return WERK_FAIL(err, WERK_E_ARG, "decoder: adapter %d was not loaded for this model", i);
        }
        max_r = max64(max_r, loras[i]->max_r);
    }
    werk_decoder *d = calloc(1, sizeof(*d));
    if (!d) {
        return WERK_FAIL(err, WERK_E_OOM, "decoder: out of memory");
    }
    d->m           = m;
    d->loras       = loras;
    d->n_loras     = n_loras;
    werk_status st = werk_kv_cache_init(&d->kv, m, n_ctx, err);
    if (st) {
        free(d);
        return st;
    }
    int64_t D = m->n_embd, qd = m->n_head * m->head_dim, kd = m->n_head_kv * m->head_dim, F = m->n_ff;
    int64_t wide = max64(max64(qd, F), D);
    size_t  qcap = qact_bytes(&m->output);
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L    = &m->layers[il];
        const werk_wview *ws[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
            size_t b = qact_bytes(ws[i]);
            qcap     = b > qcap ? b : qcap;
        }
    }
    d->x        = malloc((size_t)D * sizeof(float));
    d->h        = malloc((size_t)wide * sizeof(float));
    d->q        = malloc((size_t)qd * sizeof(float));
    d->k        = malloc((size_t)kd * sizeof(float));
    d->v        = malloc((size_t)kd * sizeof(float));
    d->a        = malloc((size_t)wide * sizeof(float));
    d->u        = malloc((size_t)F * sizeof(float));
    d->tmp      = malloc((size_t)max_r * sizeof(float));
    d->att      = malloc((size_t)(((n_ctx + ATT_CHUNK - 1) / ATT_CHUNK) * m->n_head * (m->head_dim + 2)) *
                         sizeof(float));
    d->qact     = malloc(qcap ? MAX_FUSED * qcap : 1);
    d->qact_cap = qcap;
    if (!d->x || !d->h || !d->q || !d->k || !d->v || !d->a || !d->u || !d->tmp || !d->att || !d->qact) {
        werk_decoder_free(d);
        return WERK_FAIL(err, WERK_E_OOM, "decoder: out of memory for context %lld", (long long)n_ctx);
    }
    *out = d;
    return WERK_OK;
}

void werk_decoder_free(werk_decoder *d) {
    if (!d) {
        return;
    }
    werk_kv_cache_free(&d->kv);
    free(d->x);
    free(d->h);
    free(d->q);
    free(d->k);
    free(d->v);
    free(d->a);
    free(d->u);
    free(d->tmp);
    free(d->att);
    free(d->qact);
    free(d);
}

enum { ATT_QBLOCK = 128 }; // prompt queries per attention block

/* Causal attention of the prompt (positions 0..T-1; window > 0: i sees i - window < j <= i)
 * through sgemm: per head and block of ATT_QBLOCK queries, the scores against every key
 * the block can see (s [ATT_QBLOCK, T]), masked, a softmax per row (float exponentials,
 * double sum; rows over OpenMP threads, one thread per row), then out = p v. Same math as
 * werk_op_attention_fwd (which sums in double: they differ by float rounding, ~1e-6). */
static void prefill_attention(float            *out,
                              const float      *q,
                              const float      *k,
                              const float      *v,
                              int64_t           T,
                              const werk_model *m,
                              int64_t           window,
                              float            *s) {
    int64_t hd = m->head_dim, qd = m->n_head * hd, kd = m->n_head_kv * hd, group = m->n_head / m->n_head_kv;
    for (int64_t h = 0; h < m->n_head; h++) {
        int64_t kh = h / group;
        for (int64_t i0 = 0; i0 < T; i0 += ATT_QBLOCK) {
            int64_t i1 = i0 + ATT_QBLOCK < T ? i0 + ATT_QBLOCK : T, nq = i1 - i0;
            int64_t j0 = window > 0 && i0 - window + 1 > 0 ? i0 - window + 1 : 0, nj = i1 - j0;
            werk_sgemm(false, true, nq, nj, hd, m->attn_scale, q + i0 * qd + h * hd, qd,
                       k + j0 * kd + kh * hd, kd, 0.0f, s, nj);
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < nq; r++) {
                int64_t i = i0 + r, lo = window > 0 && i - window + 1 > j0 ? i - window + 1 - j0 : 0;
                int64_t hi = i - j0; // last visible column
                float  *sr = s + r * nj;
                float   mx = sr[lo];
                for (int64_t c = lo + 1; c <= hi; c++) {
                    mx = sr[c] > mx ? sr[c] : mx;
                }
                double sum = 0;
                for (int64_t c = lo; c <= hi; c++) {
                    sr[c] = expf(sr[c] - mx);
                    sum += sr[c];
                }
                float inv = (float)(1.0 / sum);
                for (int64_t c = 0; c < nj; c++) {
                    sr[c] = c >= lo && c <= hi ? sr[c] * inv : 0.0f;
                }
            }
            werk_sgemm(false, false, nq, hd, nj, 1.0f, s, nj, v + j0 * kd + kh * hd, kd, 0.0f,
                       out + i0 * qd + h * hd, qd);
        }
    }
}

/* h = act(gate) up over n values in float (the prompt's share of werk_op_glu_fwd, which
 * works in double with libm's tanh: ~4x slower, same values to ~1e-7 relative):
 * GELU's tanh z = 1 - 2 / (1 + e^(2z)) (saturates to +-1 at overflow / underflow). */
static void prefill_glu(float *h, const float *gate, const float *up, int64_t n, werk_act act) {
    const float k = 0.7978845608028654f, c = 0.044715f;
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], a;
        if (act == WERK_ACT_SILU) {
            a = g / (1.0f + expf(-g));
        } else {
            float z = k * (g + c * g * g * g);
            a       = 0.5f * g * (2.0f - 2.0f / (1.0f + expf(2.0f * z)));
        }
        h[i] = a * up[i];
    }
}

/* Prefill: forward.c's loop over n tokens with cache writes (batch of one sequence). */
werk_status
werk_decoder_prefill(werk_decoder *d, const int32_t *tokens, int64_t n, float *logits, werk_err *err) {
    const werk_model *m = d->m;
    if (d->kv.n_past != 0) {
        return WERK_FAIL(err, WERK_E_ARG, "decoder: prefill needs an empty cache (%lld positions filled)",
                         (long long)d->kv.n_past);
    }
    if (n <= 0 || n > d->kv.n_ctx) {
        return WERK_FAIL(err, WERK_E_ARG, "decoder: prompt of %lld tokens does not fit context %lld",
                         (long long)n, (long long)d->kv.n_ctx);
    }
    int64_t D = m->n_embd, hd = m->head_dim, qd = m->n_head * hd, kd = m->n_head_kv * hd, F = m->n_ff;
    int64_t wide = max64(max64(qd, F), D), max_r = 1;
    int64_t scr_n = werk_model_matmul_scratch(m);
    for (int i = 0; i < d->n_loras; i++) {
        max_r = max64(max_r, d->loras[i]->max_r);
    }
    float      *x   = malloc((size_t)(n * D) * sizeof(float));
    float      *h   = malloc((size_t)(n * wide) * sizeof(float));
    float      *q   = malloc((size_t)(n * qd) * sizeof(float));
    float      *k   = malloc((size_t)(n * kd) * sizeof(float));
    float      *v   = malloc((size_t)(n * kd) * sizeof(float));
    float      *a   = malloc((size_t)(n * wide) * sizeof(float));
    float      *u   = malloc((size_t)(n * F) * sizeof(float));
    float      *s   = malloc((size_t)scr_n * sizeof(float));
    float      *tmp = malloc((size_t)(n * max_r) * sizeof(float));
    int32_t    *pos = malloc((size_t)n * sizeof(int32_t));
    float      *att = malloc((size_t)(ATT_QBLOCK * n) * sizeof(float));
    werk_status st  = WERK_OK;
    if (!x || !h || !q || !k || !v || !a || !u || !s || !tmp || !pos || !att) {
        st = WERK_FAIL(err, WERK_E_OOM, "decoder: out of memory for a prompt of %lld tokens", (long long)n);
        goto done;
    }
    for (int64_t t = 0; t < n; t++) {
        pos[t] = (int32_t)t;
    }
    if ((st = werk_op_embed_fwd(x, &m->tok_embd, tokens, n, m->embed_scale, err))) {
        goto done;
    }
#define LIN(y, in, w, slot)                                                                                  \
    do {                                                                                                     \
        werk_op_matmul_fwd((y), (in), n, (w), s);                                                            \
        for (int li = 0; li < d->n_loras; li++) {                                                            \
            const werk_lora_mat *lm = &d->loras[li]->mats[il * WERK_LORA_N_SLOTS + (slot)];                  \
            if (lm->a) {                                                                                     \
                werk_op_lora_fwd((y), (in), n, lm->a, lm->b, lm->r, (w)->cols, (w)->rows,                    \
                                 d->loras[li]->scale, tmp);                                                  \
            }                                                                                                \
        }                                                                                                    \
    } while (0)
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L = &m->layers[il];
        werk_op_rmsnorm_fwd(h, x, L->attn_norm, n, D, m->eps);
        LIN(q, h, &L->wq, WERK_LORA_Q);
        LIN(k, h, &L->wk, WERK_LORA_K);
        LIN(v, h, &L->wv, WERK_LORA_V);
        for (int64_t t = 0; t < n; t++) {
            for (int64_t j = 0; L->bq && j < qd; j++) {
                q[t * qd + j] += L->bq[j];
            }
            for (int64_t j = 0; L->bk && j < kd; j++) {
                k[t * kd + j] += L->bk[j];
            }
            for (int64_t j = 0; L->bv && j < kd; j++) {
                v[t * kd + j] += L->bv[j];
            }
        }
        if (L->q_norm) {
            werk_op_rmsnorm_fwd(q, q, L->q_norm, n * m->n_head, hd, m->eps);
        }
        if (L->k_norm) {
            werk_op_rmsnorm_fwd(k, k, L->k_norm, n * m->n_head_kv, hd, m->eps);
        }
        werk_op_rope_fwd(q, n, m->n_head, hd, m->n_rot, pos, L->rope_base, m->rope_style);
        werk_op_rope_fwd(k, n, m->n_head_kv, hd, m->n_rot, pos, L->rope_base, m->rope_style);
        memcpy(werk_kv_cache_k(&d->kv, il, 0), k, (size_t)(n * kd) * sizeof(float));
        memcpy(werk_kv_cache_v(&d->kv, il, 0), v, (size_t)(n * kd) * sizeof(float));
        prefill_attention(a, q, k, v, n, m, L->sliding ? m->window : 0, att);
        LIN(h, a, &L->wo, WERK_LORA_O);
        if (L->post_attn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_attn_norm, n, D, m->eps);
        }
        for (int64_t i = 0; i < n * D; i++) {
            x[i] += h[i];
        }
        werk_op_rmsnorm_fwd(h, x, L->ffn_norm, n, D, m->eps);
        LIN(a, h, &L->w_gate, WERK_LORA_GATE);
        LIN(u, h, &L->w_up, WERK_LORA_UP);
        prefill_glu(a, a, u, n * F, m->act);
        LIN(h, a, &L->w_down, WERK_LORA_DOWN);
        if (L->post_ffn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_ffn_norm, n, D, m->eps);
        }
        for (int64_t i = 0; i < n * D; i++) {
            x[i] += h[i];
        }
    }
#undef LIN
    d->kv.n_past = n;
    if (logits) {
        float *last = x + (n - 1) * D;
        werk_op_rmsnorm_fwd(last, last, m->out_norm, 1, D, m->eps);
        qmatvec(d, logits, last, &m->output); // one row: the dot kernels, not a dequantized head
    }
done:
    free(x);
    free(h);
    free(q);
    free(k);
    free(v);
    free(a);
    free(u);
    free(s);
    free(tmp);
    free(pos);
    free(att);
    return st;
}

/* Float dot with 8 partial sums in a fixed order (vectorisable, thread-independent). */
static double dot8(const float *a, const float *b, int64_t n) {
    float   p[8] = {0};
    int64_t c    = 0;
    for (; c + 8 <= n; c += 8) {
        for (int l = 0; l < 8; l++) {
            p[l] += a[c + l] * b[c + l];
        }
    }
    double s = 0;
    for (int l = 0; l < 8; l++) {
        s += p[l];
    }
    for (; c < n; c++) {
        s += (double)a[c] * b[c];
    }
    return s;
}

/* Attention of one query (all heads) over cached positions j0..p of layer il, split into
 * chunks of ATT_CHUNK positions (fixed boundaries, so the result does not depend on the
 * thread count): each chunk, on one thread, reads its keys and values once for all heads
 * and keeps per head the max score, the sum of e^(score - max) and the weighted value sum
 * (floats, fixed order); the chunks are then merged in order (rescaled to the overall max,
 * double). q.k are float dots with 8 fixed partial sums. */
static void attend1(werk_decoder *d, int64_t il, int64_t p, int64_t window) {
    const werk_model *m  = d->m;
    int64_t           hd = m->head_dim, n_kv = m->n_head_kv, n_head = m->n_head;
    int64_t           group = n_head / n_kv, kd = d->kv.kd;
    int64_t           j0   = window > 0 && p - window + 1 > 0 ? p - window + 1 : 0;
    int64_t           n_ch = (p - j0 + ATT_CHUNK) / ATT_CHUNK;
    int64_t           per  = n_head * (hd + 2); // floats per chunk
    float            *att  = d->att;
    const float      *K = werk_kv_cache_k(&d->kv, il, 0), *V = werk_kv_cache_v(&d->kv, il, 0);
    const float      *q     = d->q;
    float             scale = m->attn_scale;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n_ch; c++) {
        int64_t a = j0 + c * ATT_CHUNK, b = a + ATT_CHUNK <= p + 1 ? a + ATT_CHUNK : p + 1;
        float  *mx = att + c * per, *sum = mx + n_head, *acc = sum + n_head;
        float   sc[ATT_CHUNK];
        for (int64_t h = 0; h < n_head; h++) {
            int64_t      kh = h / group;
            const float *qh = q + h * hd;
            float        m1 = -INFINITY;
            for (int64_t j = a; j < b; j++) {
                sc[j - a] = (float)dot8(qh, K + j * kd + kh * hd, hd) * scale;
                m1        = sc[j - a] > m1 ? sc[j - a] : m1;
            }
            float  s1 = 0;
            float *ah = acc + h * hd;
            for (int64_t e = 0; e < hd; e++) {
                ah[e] = 0;
            }
            for (int64_t j = a; j < b; j++) {
                float        wj = expf(sc[j - a] - m1);
                const float *vj = V + j * kd + kh * hd;
                s1 += wj;
                for (int64_t e = 0; e < hd; e++) {
                    ah[e] += wj * vj[e];
                }
            }
            mx[h]  = m1;
            sum[h] = s1;
        }
    }
#pragma omp parallel for schedule(static)
    for (int64_t h = 0; h < n_head; h++) {
        float mall = -INFINITY;
        for (int64_t c = 0; c < n_ch; c++) {
            float mc = att[c * per + h];
            mall     = mc > mall ? mc : mall;
        }
        double tot = 0;
        for (int64_t c = 0; c < n_ch; c++) {
            float *base = att + c * per;
            float  r    = (float)exp((double)base[h] - mall); // the chunk's max is no longer needed
            base[h]     = r;
            tot += (double)r * base[n_head + h];
        }
        float *oh = d->a + h * hd;
        for (int64_t e = 0; e < hd; e++) {
            double o = 0;
            for (int64_t c = 0; c < n_ch; c++) {
                const float *base = att + c * per;
                o += (double)base[h] * base[2 * n_head + h * hd + e];
            }
            oh[e] = (float)(o / tot);
        }
    }
}

werk_status werk_decoder_step(werk_decoder *d, int32_t token, float *logits, werk_err *err) {
    const werk_model *m = d->m;
    int64_t           p = d->kv.n_past;
    if (p >= d->kv.n_ctx) {
        return WERK_FAIL(err, WERK_E_ARG, "decoder: context of %lld positions is full",
                         (long long)d->kv.n_ctx);
    }
    int64_t     D = m->n_embd, hd = m->head_dim, qd = m->n_head * hd, kd = m->n_head_kv * hd, F = m->n_ff;
    int32_t     pos = (int32_t)p;
    werk_status st  = werk_op_embed_fwd(d->x, &m->tok_embd, &token, 1, m->embed_scale, err);
    if (st) {
        return st;
    }
    float *x = d->x, *h = d->h, *q = d->q, *a = d->a;
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L = &m->layers[il];
        float            *k = werk_kv_cache_k(&d->kv, il, p), *v = werk_kv_cache_v(&d->kv, il, p);
        werk_op_rmsnorm_fwd(h, x, L->attn_norm, 1, D, m->eps);
        float *const            qkv[]  = {q, k, v};
        const werk_wview *const wqkv[] = {&L->wq, &L->wk, &L->wv};
        qmatvec_fused(d, qkv, h, wqkv, 3);
        lora1(d, q, h, &L->wq, il, WERK_LORA_Q);
        lora1(d, k, h, &L->wk, il, WERK_LORA_K);
        lora1(d, v, h, &L->wv, il, WERK_LORA_V);
        for (int64_t j = 0; L->bq && j < qd; j++) {
            q[j] += L->bq[j];
        }
        for (int64_t j = 0; L->bk && j < kd; j++) {
            k[j] += L->bk[j];
        }
        for (int64_t j = 0; L->bv && j < kd; j++) {
            v[j] += L->bv[j];
        }
        if (L->q_norm) {
            werk_op_rmsnorm_fwd(q, q, L->q_norm, m->n_head, hd, m->eps);
        }
        if (L->k_norm) {
            werk_op_rmsnorm_fwd(k, k, L->k_norm, m->n_head_kv, hd, m->eps);
        }
        werk_op_rope_fwd(q, 1, m->n_head, hd, m->n_rot, &pos, L->rope_base, m->rope_style);
        werk_op_rope_fwd(k, 1, m->n_head_kv, hd, m->n_rot, &pos, L->rope_base, m->rope_style);
        attend1(d, il, p, L->sliding ? m->window : 0);
        linear1(d, h, a, &L->wo, il, WERK_LORA_O);
        if (L->post_attn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_attn_norm, 1, D, m->eps);
        }
        for (int64_t i = 0; i < D; i++) {
            x[i] += h[i];
        }
        werk_op_rmsnorm_fwd(h, x, L->ffn_norm, 1, D, m->eps);
        float *const            gu[]  = {a, d->u};
        const werk_wview *const wgu[] = {&L->w_gate, &L->w_up};
        qmatvec_fused(d, gu, h, wgu, 2);
        lora1(d, a, h, &L->w_gate, il, WERK_LORA_GATE);
        lora1(d, d->u, h, &L->w_up, il, WERK_LORA_UP);
        werk_op_glu_fwd(a, a, d->u, F, m->act);
        linear1(d, h, a, &L->w_down, il, WERK_LORA_DOWN);
        if (L->post_ffn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_ffn_norm, 1, D, m->eps);
        }
        for (int64_t i = 0; i < D; i++) {
            x[i] += h[i];
        }
    }
    d->kv.n_past = p + 1;
    werk_op_rmsnorm_fwd(x, x, m->out_norm, 1, D, m->eps);
    qmatvec(d, logits, x, &m->output);
    return WERK_OK;
}
