/* infer/forward.c - full-sequence reference forward pass: tokens [B, T] -> logits [B, T, V]
 *
 * Float32 activations, deterministic. Per layer (pre-norm transformer):
 *   h = rmsnorm(x) ; q,k,v = h W^T (+ bias) ; [q/k rmsnorm per head] ; rope(q, k)
 *   a = attention(q, k, v) (causal, sliding window on gemma3's local layers) ; o = a Wo^T
 *   [o = rmsnorm(o) (gemma3 post-attention norm)] ; x += o
 *   h = rmsnorm(x) ; f = (act(h Wg^T) * h Wu^T) Wd^T ; [f = rmsnorm(f)] ; x += f
 * then logits = rmsnorm(x) Wout^T. LoRA adapters (werk_lora) add scale (x A^T) B^T to the
 * projection they target, unmerged. Matmuls run over all B*T tokens at once; attention per
 * sequence. Positions are 0..T-1 in every sequence. Memory: O(B*T*(n_embd + n_ff + V)).
 * werk_forward_hidden_lora stops before the LM head (final-normed hidden states), for
 * callers that apply the head in vocabulary chunks (eval.c: no B*T*V buffer).
 */
#include "infer/model_int.h"

#include <stdlib.h>
#include <string.h>

static void add_bias(float *y, const float *b, int64_t n, int64_t w) {
    if (!b) {
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < w; j++) {
            y[i * w + j] += b[j];
        }
    }
}

typedef struct lin_ctx {
    const werk_lora *const *loras;
    int                     n_loras;
    float                  *scratch, *tmp;
    int64_t                 n;
} lin_ctx;

/* y = x W^T plus every adapter's update of (layer il, slot). */
static void linear(const lin_ctx *c, float *y, const float *x, const werk_wview *w, int64_t il, int slot) {
    werk_op_matmul_fwd(y, x, c->n, w, c->scratch);
    for (int i = 0; i < c->n_loras; i++) {
        const werk_lora_mat *lm = &c->loras[i]->mats[il * WERK_LORA_N_SLOTS + slot];
        if (lm->a) {
            werk_op_lora_fwd(y, x, c->n, lm->a, lm->b, lm->r, w->cols, w->rows, c->loras[i]->scale, c->tmp);
        }
    }
}

static int64_t max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

werk_status werk_forward(const werk_model *m, const int32_t *tokens, int64_t B, int64_t T, float *logits,
                         werk_err *err) {
    return werk_forward_lora(m, NULL, 0, tokens, B, T, logits, err);
}

werk_status werk_forward_lora(const werk_model *m, const werk_lora *const *loras, int n_loras, const int32_t *tokens,
                              int64_t B, int64_t T, float *logits, werk_err *err) {
    if (B <= 0 || T <= 0 || B > (int64_t)1 << 20 || T > (int64_t)1 << 20 || B * T > (int64_t)1 << 24) {
        return WERK_FAIL(err, WERK_E_ARG, "forward: bad batch %lld x %lld", (long long)B, (long long)T);
    }
    float *hidden = malloc((size_t)(B * T * m->n_embd) * sizeof(float));
    float *s      = malloc((size_t)werk_op_matmul_scratch(&m->output) * sizeof(float));
    if (!hidden || !s) {
        free(hidden);
        free(s);
        return WERK_FAIL(err, WERK_E_OOM, "forward: out of memory for %lld tokens", (long long)(B * T));
    }
    werk_status st = werk_forward_hidden_lora(m, loras, n_loras, tokens, B, T, hidden, err);
    if (!st) {
        werk_op_matmul_fwd(logits, hidden, B * T, &m->output, s);
    }
    free(hidden);
    free(s);
    return st;
}

werk_status werk_forward_hidden_lora(const werk_model *m, const werk_lora *const *loras, int n_loras,
                                     const int32_t *tokens, int64_t B, int64_t T, float *hidden, werk_err *err) {
    int64_t max_r = 1;
    if (n_loras > 0 && !loras) {
        return WERK_FAIL(err, WERK_E_ARG, "forward: %d adapters but no list", n_loras);
    }
    for (int i = 0; i < n_loras; i++) {
        if (!loras[i] || loras[i]->n_layer != m->n_layer) {
            return WERK_FAIL(err, WERK_E_ARG, "forward: adapter %d was not loaded for this model", i);
        }
        max_r = max64(max_r, loras[i]->max_r);
    }
    if (n_loras < 0 || B <= 0 || T <= 0 || B > (int64_t)1 << 20 || T > (int64_t)1 << 20 ||
        B * T > (int64_t)1 << 24) {
        return WERK_FAIL(err, WERK_E_ARG, "forward: bad batch %lld x %lld", (long long)B, (long long)T);
    }
    int64_t N = B * T, D = m->n_embd, hd = m->head_dim;
    int64_t qd = m->n_head * hd, kd = m->n_head_kv * hd, F = m->n_ff;
    int64_t wide    = max64(max64(qd, F), D);
    int64_t scr_n   = werk_model_matmul_scratch(m);
    float   *x = malloc((size_t)(N * D) * sizeof(float));
    float   *h = malloc((size_t)(N * wide) * sizeof(float));
    float   *q = malloc((size_t)(N * qd) * sizeof(float));
    float   *k = malloc((size_t)(N * kd) * sizeof(float));
    float   *v = malloc((size_t)(N * kd) * sizeof(float));
    float   *a = malloc((size_t)(N * wide) * sizeof(float));
    float   *u = malloc((size_t)(N * F) * sizeof(float));
    float   *s = malloc((size_t)scr_n * sizeof(float));
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    float   *tmp = malloc((size_t)(N * max_r) * sizeof(float));
    werk_status st = WERK_OK;
    if (!x || !h || !q || !k || !v || !a || !u || !s || !pos || !tmp) {
        st = WERK_FAIL(err, WERK_E_OOM, "forward: out of memory for %lld tokens", (long long)N);
        goto done;
    }
    for (int64_t t = 0; t < T; t++) {
        pos[t] = (int32_t)t;
    }
    lin_ctx lc = {.loras = loras, .n_loras = n_loras, .scratch = s, .tmp = tmp, .n = N};
    if ((st = werk_op_embed_fwd(x, &m->tok_embd, tokens, N, m->embed_scale, err))) {
        goto done;
    }
    for (int64_t il = 0; il < m->n_layer; il++) {
        const werk_layer *L = &m->layers[il];
        // attention block
        werk_op_rmsnorm_fwd(h, x, L->attn_norm, N, D, m->eps);
        linear(&lc, q, h, &L->wq, il, WERK_LORA_Q);
        linear(&lc, k, h, &L->wk, il, WERK_LORA_K);
        linear(&lc, v, h, &L->wv, il, WERK_LORA_V);
        add_bias(q, L->bq, N, qd);
        add_bias(k, L->bk, N, kd);
        add_bias(v, L->bv, N, kd);
        if (L->q_norm) {
            werk_op_rmsnorm_fwd(q, q, L->q_norm, N * m->n_head, hd, m->eps);
        }
        if (L->k_norm) {
            werk_op_rmsnorm_fwd(k, k, L->k_norm, N * m->n_head_kv, hd, m->eps);
        }
        for (int64_t b = 0; b < B; b++) {
            werk_op_rope_fwd(q + b * T * qd, T, m->n_head, hd, m->n_rot, pos, L->rope_base, m->rope_style);
            werk_op_rope_fwd(k + b * T * kd, T, m->n_head_kv, hd, m->n_rot, pos, L->rope_base, m->rope_style);
            werk_op_attention_fwd(a + b * T * qd, q + b * T * qd, k + b * T * kd, v + b * T * kd, T, m->n_head,
                                  m->n_head_kv, hd, m->attn_scale, L->sliding ? m->window : 0);
        }
        linear(&lc, h, a, &L->wo, il, WERK_LORA_O);
        if (L->post_attn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_attn_norm, N, D, m->eps);
        }
        for (int64_t i = 0; i < N * D; i++) {
            x[i] += h[i];
        }
        // feed-forward block
        werk_op_rmsnorm_fwd(h, x, L->ffn_norm, N, D, m->eps);
        linear(&lc, a, h, &L->w_gate, il, WERK_LORA_GATE);
        linear(&lc, u, h, &L->w_up, il, WERK_LORA_UP);
        werk_op_glu_fwd(a, a, u, N * F, m->act);
        linear(&lc, h, a, &L->w_down, il, WERK_LORA_DOWN);
        if (L->post_ffn_norm) {
            werk_op_rmsnorm_fwd(h, h, L->post_ffn_norm, N, D, m->eps);
        }
        for (int64_t i = 0; i < N * D; i++) {
            x[i] += h[i];
        }
    }
    werk_op_rmsnorm_fwd(hidden, x, m->out_norm, N, D, m->eps);
done:
    free(x);
    free(h);
    free(q);
    free(k);
    free(v);
    free(a);
    free(u);
    free(s);
    free(pos);
    free(tmp);
    return st;
}
