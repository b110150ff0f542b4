/* train/grad.c - training forward (saving activations) and backward over the model for LoRA
 *
 * werk_train_grad walks the model as infer/forward.c does (gemma3 post norms, q/k norms,
 * qwen2 biases, embedding scale, tied output, sliding window, both rope styles) over
 * B x T tokens that may pack documents (positions restart, attention stays inside a
 * document), then runs the walk backward. Base weights stay frozen in their stored type:
 * only dx flows through them (werk_op_matmul_bwd_x); the LoRA pairs get dA and dB. Per
 * layer, forward and backward:
 *   h1 = rmsnorm(x) ; q,k,v = h1 W^T + lora (+ bias) ; [q/k rmsnorm per head] ; rope
 *   a = attention(q, k, v) ; o = a Wo^T + lora ; [o = rmsnorm(o)] ; x2 = x + o
 *   h2 = rmsnorm(x2) ; g, u = h2 Wg^T, h2 Wu^T (+ lora) ; f = glu(g, u) Wd^T + lora ;
 *   [f = rmsnorm(f)] ; y = x2 + f
 * and each step's backward in reverse. The loss is the summed cross-entropy of the scored
 * targets through the chunked LM head (train/loss.c). LoRA dropout multiplies the
 * adapter's input by keep/(1-p), keep = hash(seed, step, layer, slot, element) >= p, so
 * the mask is recomputed in backward and does not depend on threads. With opts.recompute
 * only each layer's input is kept; backward reruns the layer's forward before its backward.
 */
#include "train/grad_int.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Activations of one layer saved for its backward (the normed inputs h1, h2 and glu's
 * output are cheap to remake: the backward recomputes them when an adapter needs them). */
typedef struct layer_acts {
    float *qpre, *kpre, *q, *k, *v, *att, *lse, *opre, *x2, *gate, *up, *fpre;
} layer_acts;

struct werk_train_ws {
    int64_t         B, T, N, D, qd, kd, F, wide, max_r;
    werk_train_opts opts;
    int64_t         n_acts; // n_layer, or 1 with recompute
    layer_acts     *acts;
    float          *xin;    // [(n_layer + 1), N, D]: the input of each layer, then the final x
    float          *xn;     // [N, D] final-normed
    float          *dx, *dd, *dd2, *df1, *df2, *dq1, *dq, *dk, *dv, *xout;
    float          *hs;           // [N, wide] h1, h2 or glu's output of the layer at hand
    float          *drop, *ddrop; // [N, wide] dropped LoRA input and its gradient
    float          *mm_scratch, *lora_tmp, *ce_scratch;
    int32_t        *pos, *start;
    uint64_t        bytes;
};

// ---- allocation -----------------------------------------------------------------------

static float *ws_alloc(werk_train_ws *ws, int64_t n, bool *ok) {
    if (n <= 0) {
        return NULL;
    }
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) {
        *ok = false;
    }
    ws->bytes += (uint64_t)n * sizeof(float);
    return p;
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

static void acts_alloc(werk_train_ws *ws, const werk_model *m, const werk_layer *L, layer_acts *a, bool *ok) {
    int64_t N = ws->N;
    a->qpre = L->q_norm ? ws_alloc(ws, N * ws->qd, ok) : NULL;
    a->kpre = L->k_norm ? ws_alloc(ws, N * ws->kd, ok) : NULL;
    a->q    = ws_alloc(ws, N * ws->qd, ok);
    a->k    = ws_alloc(ws, N * ws->kd, ok);
    a->v    = ws_alloc(ws, N * ws->kd, ok);
    a->att  = ws_alloc(ws, N * ws->qd, ok);
    a->lse  = ws_alloc(ws, N * m->n_head, ok);
    a->opre = L->post_attn_norm ? ws_alloc(ws, N * ws->D, ok) : NULL;
    a->x2   = ws_alloc(ws, N * ws->D, ok);
    a->gate = ws_alloc(ws, N * ws->F, ok);
    a->up   = ws_alloc(ws, N * ws->F, ok);
    a->fpre = L->post_ffn_norm ? ws_alloc(ws, N * ws->D, ok) : NULL;
}

static void acts_free(layer_acts *a) {
    float *p[] = {a->qpre, a->kpre, a->q, a->k, a->v, a->att, a->lse, a->opre, a->x2, a->gate, a->up, a->fpre};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
        free(p[i]);
    }
}

werk_status werk_train_ws_init(const werk_model *m, const werk_lora *params, int64_t B, int64_t T,
                               const werk_train_opts *opts, werk_train_ws **out, werk_err *err) {
    *out = NULL;
    if (B <= 0 || T <= 0 || B > (int64_t)1 << 20 || T > (int64_t)1 << 20 || B * T > (int64_t)1 << 24) {
        return WERK_FAIL(err, WERK_E_ARG, "train: bad batch %lld x %lld", (long long)B, (long long)T);
    }
    if (params && params->n_layer != m->n_layer) {
        return WERK_FAIL(err, WERK_E_ARG, "train: adapter has %lld layers, model %lld", (long long)params->n_layer,
                         (long long)m->n_layer);
    }
    if (opts && (!(opts->dropout >= 0.0f) || opts->dropout >= 1.0f || opts->vocab_chunk < 0)) {
        return WERK_FAIL(err, WERK_E_ARG, "train: dropout must be in [0, 1) and vocab_chunk >= 0");
    }
    werk_train_ws *ws = calloc(1, sizeof(*ws));
    if (!ws) {
        return WERK_FAIL(err, WERK_E_OOM, "train: out of memory");
    }
    if (opts) {
        ws->opts = *opts;
    }
    ws->B = B;
    ws->T = T;
    ws->N = B * T;
    ws->D = m->n_embd;
    ws->qd = m->n_head * m->head_dim;
    ws->kd = m->n_head_kv * m->head_dim;
    ws->F = m->n_ff;
    ws->wide = max64(max64(ws->qd, ws->F), ws->D);
    ws->max_r = max64(params ? params->max_r : 1, 1);
    int64_t N = ws->N, D = ws->D;
    bool ok    = true;
    ws->n_acts = ws->opts.recompute ? 1 : m->n_layer;
    ws->acts   = calloc((size_t)ws->n_acts, sizeof(layer_acts));
    if (!ws->acts) {
        free(ws);
        return WERK_FAIL(err, WERK_E_OOM, "train: out of memory");
    }
    for (int64_t i = 0; i < ws->n_acts; i++) {
        // with recompute, one set serves every layer: size it for the layer with the most
        const werk_layer *L = &m->layers[i];
        werk_layer        any = *L;
        if (ws->opts.recompute) {
            for (int64_t j = 0; j < m->n_layer; j++) {
                const werk_layer *Lj = &m->layers[j];
                any.q_norm           = any.q_norm ? any.q_norm : Lj->q_norm;
                any.k_norm           = any.k_norm ? any.k_norm : Lj->k_norm;
                any.post_attn_norm   = any.post_attn_norm ? any.post_attn_norm : Lj->post_attn_norm;
                any.post_ffn_norm    = any.post_ffn_norm ? any.post_ffn_norm : Lj->post_ffn_norm;
            }
        }
        acts_alloc(ws, m, &any, &ws->acts[i], &ok);
    }
    ws->xin        = ws_alloc(ws, (m->n_layer + 1) * N * D, &ok);
    ws->xn         = ws_alloc(ws, N * D, &ok);
    ws->dx         = ws_alloc(ws, N * D, &ok);
    ws->dd         = ws_alloc(ws, N * D, &ok);
    ws->dd2        = ws_alloc(ws, N * D, &ok);
    ws->xout       = ws_alloc(ws, N * D, &ok);
    ws->hs         = ws_alloc(ws, N * ws->wide, &ok);
    ws->df1        = ws_alloc(ws, N * ws->F, &ok);
    ws->df2        = ws_alloc(ws, N * ws->F, &ok);
    ws->dq1        = ws_alloc(ws, N * ws->qd, &ok);
    ws->dq         = ws_alloc(ws, N * ws->qd, &ok);
    ws->dk         = ws_alloc(ws, N * ws->kd, &ok);
    ws->dv         = ws_alloc(ws, N * ws->kd, &ok);
    ws->drop       = ws->opts.dropout > 0 ? ws_alloc(ws, N * ws->wide, &ok) : NULL;
    ws->ddrop      = ws->opts.dropout > 0 ? ws_alloc(ws, N * ws->wide, &ok) : NULL;
    ws->mm_scratch = ws_alloc(ws, werk_model_matmul_scratch(m), &ok);
    ws->lora_tmp   = ws_alloc(ws, 2 * N * ws->max_r, &ok);
    ws->ce_scratch = ws_alloc(ws, werk_ce_scratch(N, &m->output, ws->opts.vocab_chunk), &ok);
    ws->pos        = malloc((size_t)N * sizeof(int32_t));
    ws->start      = malloc((size_t)N * sizeof(int32_t));
    ws->bytes += 2 * (uint64_t)N * sizeof(int32_t);
    if (!ok || !ws->pos || !ws->start) {
        werk_train_ws_free(ws);
        return WERK_FAIL(err, WERK_E_OOM, "train: out of memory for the workspace of %lld x %lld tokens",
                         (long long)B, (long long)T);
    }
    *out = ws;
    return WERK_OK;
}

void werk_train_ws_free(werk_train_ws *ws) {
    if (!ws) {
        return;
    }
    for (int64_t i = 0; ws->acts && i < ws->n_acts; i++) {
        acts_free(&ws->acts[i]);
    }
    free(ws->acts);
    float *p[] = {ws->xin, ws->xn,   ws->dx,    ws->dd,         ws->dd2,      ws->df1,       ws->df2,
                  ws->dq1, ws->dq,   ws->dk,    ws->dv,         ws->xout,     ws->drop,      ws->ddrop, ws->hs,
                  ws->mm_scratch, ws->lora_tmp, ws->ce_scratch};
    for (size_t i = 0; i < sizeof(p) / sizeof(p[0]); i++) {
        free(p[i]);
    }
    free(ws->pos);
    free(ws->start);
    free(ws);
}

uint64_t werk_train_ws_bytes(const werk_train_ws *ws) {
    return ws ? ws->bytes : 0;
}

// ---- LoRA dropout -----------------------------------------------------------------------

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* y[i] = x[i] keep_i / (1 - p) for n values, keep_i = u(seed, step, layer, slot, i) >= p. */
static void dropout_apply(float *y, const float *x, int64_t n, float p, uint64_t seed, int64_t step, int64_t il,
                          int slot) {
    uint64_t key = mix64(mix64(mix64(seed) ^ (uint64_t)step) ^ ((uint64_t)il * WERK_LORA_N_SLOTS + (uint64_t)slot));
    float    keep_scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(mix64(key ^ (uint64_t)i) >> 11) * (1.0 / 9007199254740992.0);
        y[i]     = u >= (double)p ? x[i] * keep_scale : 0.0f;
    }
}

// ---- forward -----------------------------------------------------------------------------

typedef struct walk {
    werk_train_ws    *ws;
    const werk_model *m;
    const werk_lora  *params;
    werk_lora        *grads;
    int64_t           step;
} walk;

static const werk_lora_mat *lora_of(const werk_lora *l, int64_t il, int slot) {
    if (!l) {
        return NULL;
    }
    const werk_lora_mat *lm = &l->mats[il * WERK_LORA_N_SLOTS + slot];
    return lm->a ? lm : NULL;
}

/* y = x W^T + the adapter's update of (il, slot) on dropout(x). */
static void linear_fwd(const walk *wk, float *y, const float *x, const werk_wview *w, int64_t il, int slot) {
    werk_train_ws *ws = wk->ws;
    werk_op_matmul_fwd(y, x, ws->N, w, ws->mm_scratch);
    const werk_lora_mat *lm = lora_of(wk->params, il, slot);
    if (!lm) {
        return;
    }
    const float *xl = x;
    if (ws->opts.dropout > 0) {
        dropout_apply(ws->drop, x, ws->N * w->cols, ws->opts.dropout, ws->opts.dropout_seed, wk->step, il, slot);
        xl = ws->drop;
    }
    werk_op_lora_fwd(y, xl, ws->N, lm->a, lm->b, lm->r, w->cols, w->rows, wk->params->scale, ws->lora_tmp);
}

static void add_bias(float *y, const float *b, int64_t n, int64_t w) {
    if (!b) {
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < w; j++) {
            y[i * w + j] += b[j];
        }
    }
}

static void add_into(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        y[i] += x[i];
    }
}

/* One layer forward: x [N, D] -> y [N, D], saving what the backward needs in a. */
static void layer_fwd(const walk *wk, int64_t il, const float *x, layer_acts *a, float *y) {
    werk_train_ws    *ws = wk->ws;
    const werk_model *m  = wk->m;
    const werk_layer *L  = &m->layers[il];
    int64_t           N = ws->N, D = ws->D, hd = m->head_dim;
    float            *h = ws->hs;
    werk_op_rmsnorm_fwd(h, x, L->attn_norm, N, D, m->eps);
    float *q = L->q_norm ? a->qpre : a->q, *k = L->k_norm ? a->kpre : a->k;
    linear_fwd(wk, q, h, &L->wq, il, WERK_LORA_Q);
    linear_fwd(wk, k, h, &L->wk, il, WERK_LORA_K);
    linear_fwd(wk, a->v, h, &L->wv, il, WERK_LORA_V);
    add_bias(q, L->bq, N, ws->qd);
    add_bias(k, L->bk, N, ws->kd);
    add_bias(a->v, L->bv, N, ws->kd);
    if (L->q_norm) {
        werk_op_rmsnorm_fwd(a->q, a->qpre, L->q_norm, N * m->n_head, hd, m->eps);
    }
    if (L->k_norm) {
        werk_op_rmsnorm_fwd(a->k, a->kpre, L->k_norm, N * m->n_head_kv, hd, m->eps);
    }
    werk_op_rope_fwd(a->q, N, m->n_head, hd, m->n_rot, ws->pos, L->rope_base, m->rope_style);
    werk_op_rope_fwd(a->k, N, m->n_head_kv, hd, m->n_rot, ws->pos, L->rope_base, m->rope_style);
    werk_op_attention_fwd_masked(a->att, a->lse, a->q, a->k, a->v, ws->B, ws->T, m->n_head, m->n_head_kv, hd,
                                 m->attn_scale, L->sliding ? m->window : 0, ws->start);
    float *o = L->post_attn_norm ? a->opre : y;
    linear_fwd(wk, o, a->att, &L->wo, il, WERK_LORA_O);
    if (L->post_attn_norm) {
        werk_op_rmsnorm_fwd(y, a->opre, L->post_attn_norm, N, D, m->eps);
    }
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N * D; i++) {
        a->x2[i] = x[i] + y[i];
    }
    werk_op_rmsnorm_fwd(h, a->x2, L->ffn_norm, N, D, m->eps);
    linear_fwd(wk, a->gate, h, &L->w_gate, il, WERK_LORA_GATE);
    linear_fwd(wk, a->up, h, &L->w_up, il, WERK_LORA_UP);
    werk_op_glu_fwd(h, a->gate, a->up, N * ws->F, m->act);
    float *f = L->post_ffn_norm ? a->fpre : y;
    linear_fwd(wk, f, h, &L->w_down, il, WERK_LORA_DOWN);
    if (L->post_ffn_norm) {
        werk_op_rmsnorm_fwd(y, a->fpre, L->post_ffn_norm, N, D, m->eps);
    }
    add_into(y, a->x2, N * D);
}

// ---- backward ----------------------------------------------------------------------------

/* dx [N, in] += dy W and the adapter's gradients (dA, dB into grads; its dx through the
 * dropout mask) for y = linear_fwd(x). */
static void linear_bwd(const walk *wk, float *dx, const float *dy, const float *x, const werk_wview *w, int64_t il,
                       int slot) {
    werk_train_ws *ws = wk->ws;
    werk_op_matmul_bwd_x(dx, dy, ws->N, w, ws->mm_scratch);
    const werk_lora_mat *lm = lora_of(wk->params, il, slot);
    if (!lm) {
        return;
    }
    werk_lora_mat *gm = &wk->grads->mats[il * WERK_LORA_N_SLOTS + slot];
    int64_t        n  = ws->N * w->cols;
    if (ws->opts.dropout > 0) {
        float p = ws->opts.dropout;
        dropout_apply(ws->drop, x, n, p, ws->opts.dropout_seed, wk->step, il, slot);
        memset(ws->ddrop, 0, (size_t)n * sizeof(float));
        werk_op_lora_bwd(ws->ddrop, gm->a, gm->b, dy, ws->drop, ws->N, lm->a, lm->b, lm->r, w->cols, w->rows,
                         wk->params->scale, ws->lora_tmp);
        dropout_apply(ws->ddrop, ws->ddrop, n, p, ws->opts.dropout_seed, wk->step, il, slot);
        add_into(dx, ws->ddrop, n);
    } else {
        werk_op_lora_bwd(dx, gm->a, gm->b, dy, x, ws->N, lm->a, lm->b, lm->r, w->cols, w->rows, wk->params->scale,
                         ws->lora_tmp);
    }
}

/* ws->dx holds dL/dy of layer il (input x, activations a); on return dL/dx. */
static void layer_bwd(const walk *wk, int64_t il, const float *x, const layer_acts *a) {
    werk_train_ws    *ws = wk->ws;
    const werk_model *m  = wk->m;
    const werk_layer *L  = &m->layers[il];
    int64_t           N = ws->N, D = ws->D, F = ws->F, hd = m->head_dim;
    // feed-forward block: y = x2 + [norm](act Wd^T)
    const float *df = ws->dx;
    if (L->post_ffn_norm) {
        werk_op_rmsnorm_bwd(ws->dd, ws->dx, a->fpre, L->post_ffn_norm, N, D, m->eps);
        df = ws->dd;
    }
    float *h = ws->hs; // inputs of the projections, remade only when an adapter needs them
    if (lora_of(wk->params, il, WERK_LORA_DOWN)) {
        werk_op_glu_fwd(h, a->gate, a->up, N * F, m->act);
    }
    memset(ws->df1, 0, (size_t)(N * F) * sizeof(float));
    linear_bwd(wk, ws->df1, df, h, &L->w_down, il, WERK_LORA_DOWN);
    werk_op_glu_bwd(ws->df1, ws->df2, ws->df1, a->gate, a->up, N * F, m->act);
    if (lora_of(wk->params, il, WERK_LORA_GATE) || lora_of(wk->params, il, WERK_LORA_UP)) {
        werk_op_rmsnorm_fwd(h, a->x2, L->ffn_norm, N, D, m->eps);
    }
    memset(ws->dd2, 0, (size_t)(N * D) * sizeof(float));
    linear_bwd(wk, ws->dd2, ws->df1, h, &L->w_gate, il, WERK_LORA_GATE);
    linear_bwd(wk, ws->dd2, ws->df2, h, &L->w_up, il, WERK_LORA_UP);
    werk_op_rmsnorm_bwd(ws->dd2, ws->dd2, a->x2, L->ffn_norm, N, D, m->eps);
    add_into(ws->dx, ws->dd2, N * D);
    // attention block: x2 = x + [norm](att Wo^T)
    const float *dout = ws->dx;
    if (L->post_attn_norm) {
        werk_op_rmsnorm_bwd(ws->dd, ws->dx, a->opre, L->post_attn_norm, N, D, m->eps);
        dout = ws->dd;
    }
    memset(ws->dq1, 0, (size_t)(N * ws->qd) * sizeof(float));
    linear_bwd(wk, ws->dq1, dout, a->att, &L->wo, il, WERK_LORA_O);
    werk_op_attention_bwd(ws->dq, ws->dk, ws->dv, ws->dq1, a->att, a->lse, a->q, a->k, a->v, ws->B, ws->T,
                          m->n_head, m->n_head_kv, hd, m->attn_scale, L->sliding ? m->window : 0, ws->start);
    werk_op_rope_bwd(ws->dq, N, m->n_head, hd, m->n_rot, ws->pos, L->rope_base, m->rope_style);
    werk_op_rope_bwd(ws->dk, N, m->n_head_kv, hd, m->n_rot, ws->pos, L->rope_base, m->rope_style);
    if (L->q_norm) {
        werk_op_rmsnorm_bwd(ws->dq, ws->dq, a->qpre, L->q_norm, N * m->n_head, hd, m->eps);
    }
    if (L->k_norm) {
        werk_op_rmsnorm_bwd(ws->dk, ws->dk, a->kpre, L->k_norm, N * m->n_head_kv, hd, m->eps);
    }
    if (lora_of(wk->params, il, WERK_LORA_Q) || lora_of(wk->params, il, WERK_LORA_K) ||
        lora_of(wk->params, il, WERK_LORA_V)) {
        werk_op_rmsnorm_fwd(h, x, L->attn_norm, N, D, m->eps);
    }
    memset(ws->dd2, 0, (size_t)(N * D) * sizeof(float));
    linear_bwd(wk, ws->dd2, ws->dq, h, &L->wq, il, WERK_LORA_Q);
    linear_bwd(wk, ws->dd2, ws->dk, h, &L->wk, il, WERK_LORA_K);
    linear_bwd(wk, ws->dd2, ws->dv, h, &L->wv, il, WERK_LORA_V);
    werk_op_rmsnorm_bwd(ws->dd2, ws->dd2, x, L->attn_norm, N, D, m->eps);
    add_into(ws->dx, ws->dd2, N * D);
}

// ---- the step ----------------------------------------------------------------------------

static werk_status check_args(const werk_train_ws *ws, const werk_model *m, const werk_lora *params,
                              const werk_lora *grads, const werk_train_batch *batch, werk_err *err) {
    if (!batch || batch->B != ws->B || batch->T != ws->T || !batch->tokens || !batch->targets) {
        return WERK_FAIL(err, WERK_E_ARG, "train: batch does not match the workspace (%lld x %lld)",
                         (long long)ws->B, (long long)ws->T);
    }
    if (!params || !grads || params->n_layer != m->n_layer || grads->n_layer != m->n_layer ||
        params->max_r > ws->max_r) {
        return WERK_FAIL(err, WERK_E_ARG, "train: adapter or gradients do not fit the model or the workspace");
    }
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        const werk_lora_mat *p = &params->mats[i], *g = &grads->mats[i];
        if (!p->a != !p->b || (p->a && (!g->a || !g->b || g->r != p->r || p->r > ws->max_r || p->r <= 0))) {
            return WERK_FAIL(err, WERK_E_ARG, "train: gradients are not shaped like the adapter (layer %lld)",
                             (long long)(i / WERK_LORA_N_SLOTS));
        }
    }
    for (int64_t i = 0; i < ws->N; i++) {
        if (batch->pos && batch->pos[i] < 0) {
            return WERK_FAIL(err, WERK_E_ARG, "train: negative position at %lld", (long long)i);
        }
    }
    return WERK_OK;
}

werk_status werk_train_grad(werk_train_ws *ws, const werk_model *m, const werk_lora *params, werk_lora *grads,
                            const werk_train_batch *batch, int64_t step, double *loss_sum, int64_t *n_scored,
                            werk_err *err) {
    werk_status st = check_args(ws, m, params, grads, batch, err);
    if (st) {
        return st;
    }
    int64_t B = ws->B, T = ws->T, N = ws->N, D = ws->D;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t t = 0; t < T; t++) {
            int64_t i    = b * T + t;
            bool    same = t > 0 && (!batch->doc || batch->doc[i] == batch->doc[i - 1]);
            ws->start[i] = same ? ws->start[i - 1] : (int32_t)t;
            ws->pos[i]   = batch->pos ? batch->pos[i] : (int32_t)(t - ws->start[i]);
        }
    }
    walk wk = {.ws = ws, .m = m, .params = params, .grads = grads, .step = step};
    if ((st = werk_op_embed_fwd(ws->xin, &m->tok_embd, batch->tokens, N, m->embed_scale, err))) {
        return st;
    }
    for (int64_t il = 0; il < m->n_layer; il++) {
        layer_acts *a = &ws->acts[ws->opts.recompute ? 0 : il];
        layer_fwd(&wk, il, ws->xin + il * N * D, a, ws->xin + (il + 1) * N * D);
    }
    const float *xf = ws->xin + m->n_layer * N * D;
    werk_op_rmsnorm_fwd(ws->xn, xf, m->out_norm, N, D, m->eps);
    double  loss = 0;
    int64_t ns   = 0;
    if ((st = werk_ce_fwd_bwd(ws->dd, ws->xn, batch->targets, N, &m->output, ws->opts.vocab_chunk, ws->ce_scratch,
                              &loss, &ns, err))) {
        return st;
    }
    werk_op_rmsnorm_bwd(ws->dx, ws->dd, xf, m->out_norm, N, D, m->eps);
    for (int64_t il = m->n_layer - 1; il >= 0; il--) {
        const float *x = ws->xin + il * N * D;
        layer_acts  *a = &ws->acts[ws->opts.recompute ? 0 : il];
        if (ws->opts.recompute) {
            layer_fwd(&wk, il, x, a, ws->xout);
        }
        layer_bwd(&wk, il, x, a);
    }
    *loss_sum += loss;
    *n_scored += ns;
    return WERK_OK;
}
