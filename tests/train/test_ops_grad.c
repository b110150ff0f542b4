/* tests/train/test_ops_grad.c - finite-difference checks of every backward op and of werk_train_grad
 *
 * Each op is wrapped as a scalar L = sum_i w_i y_i (w random) and its backward, fed dy = w,
 * is compared with central differences (L(x + h) - L(x - h)) / (2h) over every input
 * element (the step actually taken in float is used as the denominator). Tolerance, per
 * element: |fd - grad| <= 2e-3 max|grad| + 1e-5. Why that is safe and still sharp: the
 * ops compute in double and round their outputs to float (relative 2^-24 each), so L of
 * n outputs carries about sqrt(n) 6e-8 |y| of noise, / 2h with h = 1e-2 gives < 1e-5 for
 * these sizes; the truncation error of central differences is h^2 f''' / 6 ~ 2e-5 for the
 * O(1) inputs used; a wrong or missing term of a backward gives an O(1) relative error.
 *
 * Ops: rmsnorm (with and without gain), rope NORM and NEOX (full and partial n_rot), the
 * training attention (GQA 4 heads on 2 kv heads; causal, sliding window, packed documents,
 * several query tiles), glu SiLU and GELU-tanh, LoRA, embedding, the chunked LM head +
 * cross-entropy (ignored targets, several chunks, a partial last chunk). Then, on the tiny
 * random models (converted from fixtures/tiny/<family>/hf), werk_train_grad with packed
 * documents, ignored targets and LoRA dropout: the loss difference for a few perturbed
 * LoRA parameters against the gradient, and packed rows against the same documents run
 * one per row (sums of gradients equal).
 */
#include "werk_test.h"

#include "infer/model_int.h"
#include "train/grad_int.h"
#include "train/train.h"

static uint64_t rng_state = 0x1234567u;

static float frand(void) { // uniform in [-1, 1)
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / 4503599627370496.0 - 1.0);
}

static float *rand_vec(int64_t n, float amp) {
    float *v = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        v[i] = amp * frand();
    }
    return v;
}

static double dot_w(const float *y, const float *w, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        s += (double)y[i] * w[i];
    }
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Central differences of f over every stride-th element of x against grad. */
static void fd_check(const char *label, float *x, int64_t n, int64_t stride, const float *grad, loss_fn f,
                     void *ctx, double h) {
    double gmax = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        gmax = fabs(grad[i]) > gmax ? fabs(grad[i]) : gmax;
    }
    double  tol   = 2e-3 * gmax + 1e-5;
    int64_t n_bad = 0;
    for (int64_t i = 0; i < n; i += stride) {
        float save = x[i], xp = (float)(save + h), xm = (float)(save - h);
        x[i]       = xp;
        double lp  = f(ctx);
        x[i]       = xm;
        double lm  = f(ctx);
        x[i]       = save;
        double fd  = (lp - lm) / ((double)xp - (double)xm);
        double e   = fabs(fd - grad[i]);
        worst      = e > worst ? e : worst;
        if (e > tol && n_bad++ < 3) {
            fprintf(stderr, "  %s[%lld]: fd %.7g grad %.7g\n", label, (long long)i, fd, grad[i]);
        }
    }
    printf("%-40s max |fd - grad| %.3g (max |grad| %.3g, tol %.3g)\n", label, worst, gmax, tol);
    WT_CHECK(n_bad == 0 && gmax > 0, "%s: %lld of %lld elements off", label, (long long)n_bad,
             (long long)((n + stride - 1) / stride));
}

// ---- rmsnorm -----------------------------------------------------------------------------

typedef struct rms_ctx {
    float  *x, *g, *w, *y;
    int64_t rows, n;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    werk_op_rmsnorm_fwd(c->y, c->x, c->g, c->rows, c->n, 1e-5f);
    return dot_w(c->y, c->w, c->rows * c->n);
}

static void test_rmsnorm(bool gain) {
    rms_ctx c = {.rows = 3, .n = 8};
    c.x       = rand_vec(24, 1.0f);
    c.g       = gain ? rand_vec(8, 1.0f) : NULL;
    c.w       = rand_vec(24, 1.0f);
    c.y       = malloc(24 * sizeof(float));
    float *dx = malloc(24 * sizeof(float));
    werk_op_rmsnorm_bwd(dx, c.w, c.x, c.g, c.rows, c.n, 1e-5f);
    fd_check(gain ? "rmsnorm (gain)" : "rmsnorm (no gain)", c.x, 24, 1, dx, rms_loss, &c, 1e-2);
    // in place (dx == dy), as the trainer uses it
    float *dy = malloc(24 * sizeof(float));
    memcpy(dy, c.w, 24 * sizeof(float));
    werk_op_rmsnorm_bwd(dy, dy, c.x, c.g, c.rows, c.n, 1e-5f);
    WT_CHECK(memcmp(dy, dx, 24 * sizeof(float)) == 0, "rmsnorm backward in place differs");
    free(dy);
    free(dx);
    free(c.x);
    free(c.g);
    free(c.w);
    free(c.y);
}

// ---- rope --------------------------------------------------------------------------------

typedef struct rope_ctx {
    float         *x, *w, *y;
    int64_t        n_tok, n_head, hd, n_rot;
    const int32_t *pos;
    werk_rope_style style;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    int64_t   n = c->n_tok * c->n_head * c->hd;
    memcpy(c->y, c->x, (size_t)n * sizeof(float));
    werk_op_rope_fwd(c->y, c->n_tok, c->n_head, c->hd, c->n_rot, c->pos, 10000.0f, c->style);
    return dot_w(c->y, c->w, n);
}

static void test_rope(werk_rope_style style, int64_t n_rot) {
    static const int32_t pos[3] = {0, 3, 11};
    rope_ctx c = {.n_tok = 3, .n_head = 2, .hd = 8, .n_rot = n_rot, .pos = pos, .style = style};
    int64_t  n = 48;
    c.x        = rand_vec(n, 1.0f);
    c.w        = rand_vec(n, 1.0f);
    c.y        = malloc((size_t)n * sizeof(float));
    float *dx  = malloc((size_t)n * sizeof(float));
    memcpy(dx, c.w, (size_t)n * sizeof(float));
    werk_op_rope_bwd(dx, c.n_tok, c.n_head, c.hd, c.n_rot, pos, 10000.0f, style);
    char label[64];
    snprintf(label, sizeof(label), "rope %s n_rot %lld of 8", style == WERK_ROPE_NORM ? "NORM" : "NEOX",
             (long long)n_rot);
    fd_check(label, c.x, n, 1, dx, rope_loss, &c, 1e-2);
    // the backward is the inverse rotation: bwd(fwd(x)) == x
    memcpy(c.y, c.x, (size_t)n * sizeof(float));
    werk_op_rope_fwd(c.y, c.n_tok, c.n_head, c.hd, c.n_rot, pos, 10000.0f, style);
    werk_op_rope_bwd(c.y, c.n_tok, c.n_head, c.hd, c.n_rot, pos, 10000.0f, style);
    WT_CLOSE(c.y, c.x, n, 1e-6, 0, label);
    free(dx);
    free(c.x);
    free(c.w);
    free(c.y);
}

// ---- attention ---------------------------------------------------------------------------

typedef struct att_ctx {
    float         *q, *k, *v, *w, *out, *lse;
    int64_t        B, T, nh, nkv, hd, window;
    const int32_t *start;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    werk_op_attention_fwd_masked(c->out, c->lse, c->q, c->k, c->v, c->B, c->T, c->nh, c->nkv, c->hd, 0.5f,
                                 c->window, c->start);
    return dot_w(c->out, c->w, c->B * c->T * c->nh * c->hd);
}

static void test_attention(int64_t T, int64_t window, bool packed, int64_t stride) {
    att_ctx c = {.B = 2, .T = T, .nh = 4, .nkv = 2, .hd = 4, .window = window};
    int64_t N = c.B * T, qn = N * c.nh * c.hd, kn = N * c.nkv * c.hd;
    int32_t *start = NULL;
    if (packed) { // row 0: documents of T/3, T/3, rest; row 1: one token, then the rest
        start = malloc((size_t)N * sizeof(int32_t));
        for (int64_t i = 0; i < T; i++) {
            start[i]     = (int32_t)(i < T / 3 ? 0 : i < 2 * (T / 3) ? T / 3 : 2 * (T / 3));
            start[T + i] = i < 1 ? 0 : 1;
        }
    }
    c.start = start;
    c.q     = rand_vec(qn, 1.5f);
    c.k     = rand_vec(kn, 1.5f);
    c.v     = rand_vec(kn, 1.0f);
    c.w     = rand_vec(qn, 1.0f);
    c.out   = malloc((size_t)qn * sizeof(float));
    c.lse   = malloc((size_t)(N * c.nh) * sizeof(float));
    float *dq = malloc((size_t)qn * sizeof(float)), *dk = malloc((size_t)kn * sizeof(float));
    float *dv = malloc((size_t)kn * sizeof(float));
    att_loss(&c);
    werk_op_attention_bwd(dq, dk, dv, c.w, c.out, c.lse, c.q, c.k, c.v, c.B, T, c.nh, c.nkv, c.hd, 0.5f, window,
                          start);
    char label[96], l2[160];
    snprintf(label, sizeof(label), "attention T %lld window %lld%s", (long long)T, (long long)window,
             packed ? " packed" : "");
    snprintf(l2, sizeof(l2), "%s dq", label);
    fd_check(l2, c.q, qn, stride, dq, att_loss, &c, 1e-2);
    snprintf(l2, sizeof(l2), "%s dk", label);
    fd_check(l2, c.k, kn, stride, dk, att_loss, &c, 1e-2);
    snprintf(l2, sizeof(l2), "%s dv", label);
    fd_check(l2, c.v, kn, stride, dv, att_loss, &c, 1e-2);
    if (!packed) { // one document per row: the inference path gives the same output
        float *ref = malloc((size_t)qn * sizeof(float));
        att_loss(&c);
        for (int64_t b = 0; b < c.B; b++) {
            werk_op_attention_fwd(ref + b * T * c.nh * c.hd, c.q + b * T * c.nh * c.hd, c.k + b * T * c.nkv * c.hd,
                                  c.v + b * T * c.nkv * c.hd, T, c.nh, c.nkv, c.hd, 0.5f, window);
        }
        snprintf(l2, sizeof(l2), "%s vs inference", label);
        WT_CLOSE(c.out, ref, qn, 2e-6, 1e-5, l2);
        free(ref);
    } else { // each document alone gives the same output as packed
        float *ref = malloc((size_t)qn * sizeof(float)), *lse = malloc((size_t)(N * c.nh) * sizeof(float));
        att_loss(&c);
        for (int64_t i0 = 0; i0 < N;) {
            int64_t b = i0 / T, i1 = i0 + 1;
            while (i1 < (b + 1) * T && start[i1] == start[i0]) {
                i1++;
            }
            werk_op_attention_fwd_masked(ref + i0 * c.nh * c.hd, lse, c.q + i0 * c.nh * c.hd,
                                         c.k + i0 * c.nkv * c.hd, c.v + i0 * c.nkv * c.hd, 1, i1 - i0, c.nh, c.nkv,
                                         c.hd, 0.5f, window, NULL);
            i0 = i1;
        }
        snprintf(l2, sizeof(l2), "%s vs documents alone", label);
        WT_CLOSE(c.out, ref, qn, 2e-6, 1e-5, l2);
        free(ref);
        free(lse);
    }
    free(start);
    free(c.q);
    free(c.k);
    free(c.v);
    free(c.w);
    free(c.out);
    free(c.lse);
    free(dq);
    free(dk);
    free(dv);
}

// ---- glu ---------------------------------------------------------------------------------

typedef struct glu_ctx {
    float   *g, *u, *w, *h;
    int64_t  n;
    werk_act act;
} glu_ctx;

static double glu_loss(void *p) {
    glu_ctx *c = p;
    werk_op_glu_fwd(c->h, c->g, c->u, c->n, c->act);
    return dot_w(c->h, c->w, c->n);
}

static void test_glu(werk_act act) {
    glu_ctx c = {.n = 32, .act = act};
    c.g       = rand_vec(32, 4.0f);
    c.u       = rand_vec(32, 2.0f);
    c.w       = rand_vec(32, 1.0f);
    c.h       = malloc(32 * sizeof(float));
    float *dg = malloc(32 * sizeof(float)), *du = malloc(32 * sizeof(float));
    werk_op_glu_bwd(dg, du, c.w, c.g, c.u, c.n, act);
    const char *name = act == WERK_ACT_SILU ? "glu SiLU" : "glu GELU-tanh";
    char        label[64];
    snprintf(label, sizeof(label), "%s d gate", name);
    fd_check(label, c.g, 32, 1, dg, glu_loss, &c, 1e-2);
    snprintf(label, sizeof(label), "%s d up", name);
    fd_check(label, c.u, 32, 1, du, glu_loss, &c, 1e-2);
    free(c.g);
    free(c.u);
    free(c.w);
    free(c.h);
    free(dg);
    free(du);
}

// ---- lora --------------------------------------------------------------------------------

typedef struct lora_ctx {
    float  *x, *a, *b, *w, *y, *tmp;
    int64_t n, in, out, r;
} lora_ctx;

static double lora_loss(void *p) {
    lora_ctx *c = p;
    memset(c->y, 0, (size_t)(c->n * c->out) * sizeof(float));
    werk_op_lora_fwd(c->y, c->x, c->n, c->a, c->b, c->r, c->in, c->out, 1.5f, c->tmp);
    return dot_w(c->y, c->w, c->n * c->out);
}

static void test_lora(void) {
    lora_ctx c = {.n = 3, .in = 5, .out = 4, .r = 2};
    c.x        = rand_vec(15, 1.0f);
    c.a        = rand_vec(10, 1.0f);
    c.b        = rand_vec(8, 1.0f);
    c.w        = rand_vec(12, 1.0f);
    c.y        = malloc(12 * sizeof(float));
    c.tmp      = malloc(12 * sizeof(float));
    float *dx = calloc(15, sizeof(float)), *da = calloc(10, sizeof(float)), *db = calloc(8, sizeof(float));
    werk_op_lora_bwd(dx, da, db, c.w, c.x, c.n, c.a, c.b, c.r, c.in, c.out, 1.5f, c.tmp);
    fd_check("lora dx", c.x, 15, 1, dx, lora_loss, &c, 1e-2);
    fd_check("lora dA", c.a, 10, 1, da, lora_loss, &c, 1e-2);
    fd_check("lora dB", c.b, 8, 1, db, lora_loss, &c, 1e-2);
    free(c.x);
    free(c.a);
    free(c.b);
    free(c.w);
    free(c.y);
    free(c.tmp);
    free(dx);
    free(da);
    free(db);
}

// ---- embedding ---------------------------------------------------------------------------

typedef struct emb_ctx {
    werk_wview     e;
    float         *tab, *w, *y;
    const int32_t *tok;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    WT_CHECK(werk_op_embed_fwd(c->y, &c->e, c->tok, 4, 2.0f, NULL) == WERK_OK, "embed forward");
    return dot_w(c->y, c->w, 4 * 3);
}

static void test_embed(void) {
    static const int32_t tok[4] = {2, 0, 2, 4};
    emb_ctx c = {.tok = tok};
    c.tab     = rand_vec(15, 1.0f);
    c.w       = rand_vec(12, 1.0f);
    c.y       = malloc(12 * sizeof(float));
    c.e       = (werk_wview){.name = "emb", .type = WERK_DTYPE_F32, .data = c.tab, .rows = 5, .cols = 3,
                             .row_bytes = 3 * sizeof(float)};
    float *d = calloc(15, sizeof(float));
    werk_op_embed_bwd(d, c.w, tok, 4, 3, 2.0f);
    fd_check("embedding (repeated token)", c.tab, 15, 1, d, emb_loss, &c, 1e-2);
    free(c.tab);
    free(c.w);
    free(c.y);
    free(d);
}

// ---- chunked LM head + cross-entropy -----------------------------------------------------

typedef struct ce_ctx {
    float         *x, *dx, *scratch;
    werk_wview     w;
    const int32_t *targets;
    int64_t        n, chunk;
} ce_ctx;

static double ce_loss(void *p) {
    ce_ctx *c    = p;
    double  loss = 0;
    int64_t ns   = 0;
    WT_CHECK(werk_ce_fwd_bwd(c->dx, c->x, c->targets, c->n, &c->w, c->chunk, c->scratch, &loss, &ns, NULL) ==
                 WERK_OK,
             "ce");
    return loss;
}

static void test_ce(int64_t chunk) {
    static const int32_t targets[6] = {3, -100, 22, 0, -100, 11};
    enum { N = 6, D = 5, V = 23 };
    ce_ctx c  = {.n = N, .chunk = chunk, .targets = targets};
    float *wt = rand_vec(V * D, 1.0f);
    c.w = (werk_wview){.name = "out", .type = WERK_DTYPE_F32, .data = wt, .rows = V, .cols = D,
                       .row_bytes = D * sizeof(float)};
    c.x       = rand_vec(N * D, 2.0f);
    c.dx      = malloc(N * D * sizeof(float));
    c.scratch = malloc((size_t)werk_ce_scratch(N, &c.w, chunk) * sizeof(float));
    float  *g = malloc(N * D * sizeof(float));
    double  loss = 0;
    int64_t ns   = 0;
    WT_CHECK(werk_ce_fwd_bwd(g, c.x, targets, N, &c.w, chunk, c.scratch, &loss, &ns, NULL) == WERK_OK, "ce");
    // reference in double: full logits, log-softmax
    double ref = 0;
    for (int64_t i = 0; i < N; i++) {
        if (targets[i] < 0) {
            for (int64_t d = 0; d < D; d++) {
                WT_CHECK(g[i * D + d] == 0.0f, "ce: gradient on an ignored row");
            }
            continue;
        }
        double z[V], mx = -INFINITY, s = 0;
        for (int64_t v = 0; v < V; v++) {
            z[v] = dot_w(c.x + i * D, wt + v * D, D);
            mx   = z[v] > mx ? z[v] : mx;
        }
        for (int64_t v = 0; v < V; v++) {
            s += exp(z[v] - mx);
        }
        ref += mx + log(s) - z[targets[i]];
    }
    char label[64];
    snprintf(label, sizeof(label), "chunked CE (V %d, chunk %lld)", V, (long long)chunk);
    printf("%-40s loss %.9f ref %.9f\n", label, loss, ref);
    WT_CHECK(ns == 4 && fabs(loss - ref) <= 1e-6 * fabs(ref), "%s: loss %.9g ref %.9g, %lld scored", label, loss,
             ref, (long long)ns);
    fd_check(label, c.x, N * D, 1, g, ce_loss, &c, 1e-2);
    // bad target
    int32_t bad[6] = {3, 1, 23, 0, 0, 0};
    werk_err err   = {0};
    WT_CHECK(werk_ce_fwd_bwd(g, c.x, bad, N, &c.w, chunk, c.scratch, &loss, &ns, &err) == WERK_E_ARG,
             "ce: a target past the vocabulary must fail");
    free(wt);
    free(c.x);
    free(c.dx);
    free(c.scratch);
    free(g);
}

// ---- werk_train_grad end to end ----------------------------------------------------------

typedef struct e2e_ctx {
    werk_model       *m;
    werk_lora        *params, *grads;
    werk_train_ws    *ws;
    werk_train_batch *batch;
} e2e_ctx;

static double e2e_loss(void *p) {
    e2e_ctx *c    = p;
    double   loss = 0;
    int64_t  ns   = 0;
    werk_err err  = {0};
    WT_CHECK(werk_train_grad(c->ws, c->m, c->params, c->grads, c->batch, 7, &loss, &ns, &err) == WERK_OK, "%s",
             err.msg);
    return loss;
}

static void randomize_lora(werk_lora *l, float amp) {
    int64_t n;
    float  *p = werk_lora_params(l, &n);
    for (int64_t i = 0; i < n; i++) {
        p[i] = amp * frand();
    }
}

static const werk_wview *slot_weight(const werk_model *m, int64_t il, int slot) {
    const werk_layer *L = &m->layers[il];
    const werk_wview *w[WERK_LORA_N_SLOTS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
    return w[slot];
}

/* Largest |g| entry index of n. */
static int64_t argmax_abs(const float *g, int64_t n) {
    int64_t k = 0;
    for (int64_t i = 1; i < n; i++) {
        k = fabsf(g[i]) > fabsf(g[k]) ? i : k;
    }
    return k;
}

static void test_e2e(const char *family, const char *gguf, uint32_t slot_mask) {
    werk_err       err = {0};
    werk_gguf     *g   = NULL;
    werk_model    *m   = NULL;
    werk_lora     *l = NULL, *gr = NULL, *gr2 = NULL, *gsep = NULL;
    werk_train_ws *ws = NULL, *ws1 = NULL;
    WT_CHECK(werk_gguf_read(gguf, &g, &err) == WERK_OK && werk_model_load(g, &m, &err) == WERK_OK, "%s: %s", family,
             err.msg);
    if (!m) {
        werk_gguf_free(g);
        return;
    }
    if (m->window > 0) {
        m->window = 3; // make the sliding window bite inside the short documents below
    }
    WT_CHECK(werk_lora_alloc(m, 2, 4.0f, false, slot_mask, &l, &err) == WERK_OK, "%s: %s", family, err.msg);
    WT_CHECK(l && werk_lora_alloc_like(l, &gr, &err) == WERK_OK && werk_lora_alloc_like(l, &gr2, &err) == WERK_OK &&
                 werk_lora_alloc_like(l, &gsep, &err) == WERK_OK,
             "%s: %s", family, err.msg);
    if (!gsep) {
        goto out;
    }
    randomize_lora(l, 0.3f);
    // two rows of 12: row 0 packs documents of 5, 4 and 3 tokens, row 1 holds one of 12
    enum { B = 2, T = 12 };
    static const int64_t doc_len[4] = {5, 4, 3, 12};
    int32_t tok[B * T], tgt[B * T], pos[B * T], doc[B * T];
    for (int64_t i = 0, d = 0, p0 = 0; i < B * T; i++) {
        if (i - p0 == doc_len[d]) {
            p0 = i;
            d++;
        }
        tok[i] = (int32_t)((i * 37 + 11) % m->n_vocab);
        doc[i] = (int32_t)d;
        pos[i] = (int32_t)(i - p0);
    }
    for (int64_t i = 0; i < B * T; i++) { // next token of the same document; a few unscored
        bool last = i % T == T - 1 || doc[i + 1] != doc[i];
        tgt[i]    = last || i == 0 || i == 13 || i == 16 ? -100 : tok[i + 1];
    }
    werk_train_batch batch = {.B = B, .T = T, .tokens = tok, .targets = tgt, .pos = pos, .doc = doc};
    werk_train_opts  opts  = {.dropout = 0.25f, .dropout_seed = 99, .vocab_chunk = 100};
    WT_CHECK(werk_train_ws_init(m, l, B, T, &opts, &ws, &err) == WERK_OK, "%s: %s", family, err.msg);
    if (!ws) {
        goto out;
    }
    double  loss = 0;
    int64_t ns   = 0;
    WT_CHECK(werk_train_grad(ws, m, l, gr, &batch, 7, &loss, &ns, &err) == WERK_OK, "%s: %s", family, err.msg);
    WT_CHECK(ns == 17, "%s: %lld scored targets, expected 17", family, (long long)ns);
    { // recompute (with dropout) gives the same bits
        werk_train_opts ro  = opts;
        werk_train_ws  *wsr = NULL;
        double          lr  = 0;
        int64_t         nr  = 0, n1, n2;
        ro.recompute        = true;
        WT_CHECK(werk_train_ws_init(m, l, B, T, &ro, &wsr, &err) == WERK_OK &&
                     werk_train_grad(wsr, m, l, gr2, &batch, 7, &lr, &nr, &err) == WERK_OK,
                 "%s: %s", family, err.msg);
        const float *p1 = werk_lora_params_const(gr, &n1), *p2 = werk_lora_params_const(gr2, &n2);
        WT_CHECK(n1 == n2 && memcmp(p1, p2, (size_t)n1 * sizeof(float)) == 0 && lr == loss,
                 "%s: recompute with dropout changes the result", family);
        werk_train_ws_free(wsr);
    }
    // finite differences (h = 2e-3 on parameters of size ~0.3) on the largest-gradient
    // entry of A and of B of every pair of the first, a middle (gemma3: sliding) and the last
    // layer: a summed float32 loss of ~100 carries ~1e-5 of noise, so |fd - grad| <= 1e-2
    // |grad| + 2e-3 is well above noise and truncation
    e2e_ctx c = {.m = m, .params = l, .grads = gr2, .ws = ws, .batch = &batch};
    double  worst = 0;
    int64_t n_bad = 0, n_fd = 0;
    for (int64_t i = 0; i < m->n_layer * WERK_LORA_N_SLOTS; i++) {
        werk_lora_mat *lm = &l->mats[i], *gm = &gr->mats[i];
        int64_t        il = i / WERK_LORA_N_SLOTS;
        if (!lm->a || (il != 0 && il != m->n_layer / 2 && il != m->n_layer - 1)) {
            continue;
        }
        const werk_wview *w = slot_weight(m, i / WERK_LORA_N_SLOTS, (int)(i % WERK_LORA_N_SLOTS));
        for (int part = 0; part < 2; part++) {
            float  *x = part ? lm->b : lm->a, *gx = part ? gm->b : gm->a;
            int64_t size = part ? w->rows * lm->r : lm->r * w->cols;
            int64_t k    = argmax_abs(gx, size);
            float   save = x[k], xp = save + 2e-3f, xm = save - 2e-3f;
            x[k]         = xp;
            double lp    = e2e_loss(&c);
            x[k]         = xm;
            double lm2   = e2e_loss(&c);
            x[k]         = save;
            double fd = (lp - lm2) / ((double)xp - (double)xm), e = fabs(fd - gx[k]);
            worst     = e / (fabs(gx[k]) + 1e-30) > worst ? e / (fabs(gx[k]) + 1e-30) : worst;
            n_fd++;
            if (e > 1e-2 * fabs(gx[k]) + 2e-3) {
                n_bad++;
                fprintf(stderr, "  %s pair %lld %c[%lld]: fd %.7g grad %.7g\n", family, (long long)i, part ? 'B' : 'A',
                        (long long)k, fd, gx[k]);
            }
        }
    }
    printf("%-12s train_grad: %lld finite differences, max rel err %.3g (loss %.4f over %lld)\n", family,
           (long long)n_fd, worst, loss, (long long)ns);
    WT_CHECK(n_bad == 0 && n_fd > 0, "%s: %lld of %lld finite differences off", family, (long long)n_bad,
             (long long)n_fd);

    // packed rows == the same documents run one per row (no dropout: the masks index by position in the batch)
    werk_train_ws_free(ws);
    ws              = NULL;
    opts.dropout    = 0;
    int64_t n_par;
    float  *gz      = werk_lora_params(gr, &n_par);
    memset(gz, 0, (size_t)n_par * sizeof(float));
    double  lp      = 0, ls = 0;
    int64_t np      = 0, nsep = 0;
    WT_CHECK(werk_train_ws_init(m, l, B, T, &opts, &ws, &err) == WERK_OK &&
                 werk_train_grad(ws, m, l, gr, &batch, 7, &lp, &np, &err) == WERK_OK,
             "%s: %s", family, err.msg);
    for (int64_t d = 0, i0 = 0; d < 4 && !err.code; i0 += doc_len[d], d++) {
        werk_train_batch one = {.B = 1, .T = doc_len[d], .tokens = tok + i0, .targets = tgt + i0};
        WT_CHECK(werk_train_ws_init(m, l, 1, doc_len[d], &opts, &ws1, &err) == WERK_OK &&
                     werk_train_grad(ws1, m, l, gsep, &one, 7, &ls, &nsep, &err) == WERK_OK,
                 "%s: %s", family, err.msg);
        werk_train_ws_free(ws1);
        ws1 = NULL;
    }
    int64_t      n;
    const float *pa = werk_lora_params_const(gr, &n), *pb = werk_lora_params_const(gsep, &n);
    double       dn = 0, rn = 0;
    for (int64_t i = 0; i < n; i++) {
        dn += ((double)pa[i] - pb[i]) * ((double)pa[i] - pb[i]);
        rn += (double)pb[i] * pb[i];
    }
    printf("%-12s packed vs one document per row: loss %.9g vs %.9g, grad rel diff %.3g\n", family, lp, ls,
           sqrt(dn / rn));
    WT_CHECK(np == nsep && fabs(lp - ls) <= 1e-5 * fabs(ls) && sqrt(dn / rn) <= 1e-5,
             "%s: packed documents differ from documents alone", family);
out:
    werk_train_ws_free(ws);
    werk_train_ws_free(ws1);
    werk_lora_free(gsep);
    werk_lora_free(gr2);
    werk_lora_free(gr);
    werk_lora_free(l);
    werk_model_free(m);
    werk_gguf_free(g);
}

static void e2e_family(const char *family, uint32_t slot_mask) {
    char rel[256], hf[1024], out[1024], cmd[4096], name[128], *log = NULL;
    snprintf(rel, sizeof(rel), "tiny/%s/hf", family);
    const char *root = wt_env("WERK_FIXTURES");
    struct stat st;
    snprintf(hf, sizeof(hf), "%s/%s", root, rel);
    if (!*root || stat(hf, &st) != 0 || !*wt_env("WERK_BIN")) {
        printf("(no %s fixture or werk binary: end-to-end check skipped)\n", rel);
        return;
    }
    snprintf(name, sizeof(name), "opsgrad_tiny_%s.gguf", family);
    wt_tmp(out, sizeof(out), name);
    snprintf(cmd, sizeof(cmd), "'%s' convert '%s' '%s'", wt_env("WERK_BIN"), hf, out);
    int rc = wt_run(cmd, &log);
    WT_CHECK(rc == 0, "%s failed: %s", cmd, log ? log : "");
    free(log);
    if (rc == 0) {
        test_e2e(family, out, slot_mask);
    }
}

int main(void) {
    test_rmsnorm(true);
    test_rmsnorm(false);
    test_rope(WERK_ROPE_NORM, 8);
    test_rope(WERK_ROPE_NEOX, 8);
    test_rope(WERK_ROPE_NORM, 4);
    test_rope(WERK_ROPE_NEOX, 4);
    test_attention(7, 0, false, 1);
    test_attention(7, 3, false, 1);
    test_attention(9, 0, true, 1);
    test_attention(9, 2, true, 1);
    test_attention(150, 40, true, 13); // three query tiles
    test_glu(WERK_ACT_SILU);
    test_glu(WERK_ACT_GELU_TANH);
    test_lora();
    test_embed();
    test_ce(4);
    test_ce(23);
    test_ce(0);
    // all seven projections, except llama: q, v and down only (the untargeted paths)
    const char    *fams[] = {"llama", "qwen2", "qwen3", "gemma3"};
    const uint32_t masks[] = {0x45, 0x7f, 0x7f, 0x7f};
    for (int f = 0; f < 4; f++) {
        e2e_family(fams[f], masks[f]);
    }
    return wt_done();
}
