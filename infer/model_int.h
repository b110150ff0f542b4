/* infer/model_int.h - private model description and forward ops of the inference core
 *
 * A werk_model is architecture as data: hyper-parameters read from GGUF metadata plus
 * views of the weights (pointers into the werk_gguf's mapping, in their stored type),
 * with the differences between families (llama, qwen2, qwen3, gemma3) held as switches
 * (rope style, activation, q/k norms, biases, post norms, sliding window, embedding
 * scale, tied output). forward.c walks it; the ops under infer/ops/ do the math, one op
 * per file, forward only for now (each takes explicit inputs/outputs so a backward can sit
 * beside it). Layouts are row-major, outermost first: activations [n_tok, width].
 */
#ifndef WERK_INFER_MODEL_INT_H
#define WERK_INFER_MODEL_INT_H

#include "infer/infer.h"
#include "quant/quant.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum werk_rope_style {
    WERK_ROPE_NORM, // rotate pairs (2i, 2i+1): llama in GGUF's permuted order
    WERK_ROPE_NEOX, // rotate halves (i, i + n_rot/2): qwen2, qwen3, gemma3
} werk_rope_style;

typedef enum werk_act {
    WERK_ACT_SILU,      // SwiGLU
    WERK_ACT_GELU_TANH, // GELU (tanh approximation), gated
} werk_act;

/* A 2-D weight in its stored type: rows x cols, row-major, row_bytes per row. */
typedef struct werk_wview {
    const char *name;
    werk_dtype  type;
    const void *data;
    int64_t     rows, cols;
    uint64_t    row_bytes;
} werk_wview;

typedef struct werk_layer {
    const float *attn_norm, *ffn_norm;            // [n_embd]
    const float *post_attn_norm, *post_ffn_norm;  // gemma3, else NULL
    const float *q_norm, *k_norm;                 // [head_dim] (qwen3, gemma3), else NULL
    const float *bq, *bk, *bv;                    // biases (qwen2), else NULL
    werk_wview   wq, wk, wv, wo, w_gate, w_up, w_down;
    bool         sliding;   // attends to the last `window` positions only
    float        rope_base; // theta of this layer
} werk_layer;

struct werk_model {
    char            arch[32];
    int64_t         n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_rot;
    float           eps;
    float           embed_scale; // 1, or sqrt(n_embd) for gemma3
    float           attn_scale;  // 1/sqrt(head_dim)
    int64_t         window;      // sliding window (0: none)
    werk_rope_style rope_style;
    werk_act        act;
    werk_wview      tok_embd, output; // output == tok_embd when tied
    const float    *out_norm;
    werk_layer     *layers;
    float         **owned; // 1-D tensors dequantized to f32 (freed with the model)
    int64_t         n_owned, cap_owned;
};

/* The seven projections a LoRA adapter may target, per layer. */
typedef enum werk_lora_slot {
    WERK_LORA_Q,
    WERK_LORA_K,
    WERK_LORA_V,
    WERK_LORA_O,
    WERK_LORA_GATE,
    WERK_LORA_UP,
    WERK_LORA_DOWN,
    WERK_LORA_N_SLOTS
} werk_lora_slot;

/* The projection of layer L a LoRA slot targets (q,k,v,o,gate,up,down). */
const werk_wview *werk_layer_weight(const werk_layer *L, int slot);
/* Floats of werk_op_matmul scratch enough for every projection and the output of m. */
int64_t werk_model_matmul_scratch(const werk_model *m);

/* One low-rank pair, f32, rows in the GGUF's order (llama q/k B rows permuted like the
 * base weights): a [r, in], b [out, r]; a == NULL when the slot is not targeted. */
typedef struct werk_lora_mat {
    float  *a, *b;
    int64_t r;
} werk_lora_mat;

struct werk_lora {
    float          scale; // (alpha / r or alpha / sqrt(r) with rsLoRA) x the caller's scale
    int64_t        n_layer;
    int64_t        max_r;
    werk_lora_mat *mats; // n_layer * WERK_LORA_N_SLOTS, [layer][slot]
    /* All parameters, one f32 array (mats[].a/.b point into it): layer-major, slots in
     * werk_lora_slot order, A then B of each targeted pair. */
    float   *flat;
    int64_t  n_flat;
    int64_t  rank;      // r of every targeted pair
    float    alpha;     // lora_alpha as configured (scale = alpha / r or / sqrt(r))
    bool     rslora;
    uint32_t slot_mask; // slots targeted in at least one layer
};

/* werk_forward_lora without the LM head: hidden [B*T, n_embd] = the final-normed states
 * (logits = hidden output^T), so callers can apply the head in vocabulary chunks. */
werk_status werk_forward_hidden_lora(const werk_model *m, const werk_lora *const *loras, int n_loras,
                                     const int32_t *tokens, int64_t B, int64_t T, float *hidden, werk_err *err);

// ---- ops (infer/ops/*.c) ---------------------------------------------------------------

/* C[M,N] = alpha op(A) op(B) + beta C, row-major (ta/tb: A/B transposed), through
 * OpenBLAS in fixed pieces run on OpenMP threads (infer/ops/gemm.c): bit-identical for
 * any thread count. Every sgemm of werk goes through it. werk_gemm_init sets OpenBLAS to
 * one thread (done by the first werk_sgemm; call it before timing anything). */
void werk_gemm_init(void);
void werk_sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* y[r,:] = x[r,:] / sqrt(mean(x[r,:]^2) + eps) * w (w NULL: no gain). y may be x. */
void werk_op_rmsnorm_fwd(float *y, const float *x, const float *w, int64_t n_rows, int64_t n, float eps);
/* dx = d(rmsnorm)/dx^T dy for the same x, w; dx may be dy. */
void werk_op_rmsnorm_bwd(float *dx, const float *dy, const float *x, const float *w, int64_t n_rows, int64_t n,
                         float eps);

/* In place on x [n_tok, n_head * head_dim]: rotates the first n_rot dims of each head by
 * pos[t] * base^(-2i/n_rot). */
void werk_op_rope_fwd(float *x, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, float base, werk_rope_style style);
/* In place on dx (same shape): the transposed rotation, i.e. the gradient through rope. */
void werk_op_rope_bwd(float *dx, int64_t n_tok, int64_t n_head, int64_t head_dim, int64_t n_rot,
                      const int32_t *pos, float base, werk_rope_style style);

/* Causal attention for one sequence of T tokens: q [T, n_head*hd], k/v [T, n_kv*hd],
 * out [T, n_head*hd]; GQA (head h reads kv head h / (n_head/n_kv)); window > 0: position
 * i sees j with i - window < j <= i. */
void werk_op_attention_fwd(float *out, const float *q, const float *k, const float *v, int64_t T,
                           int64_t n_head, int64_t n_kv, int64_t hd, float scale, int64_t window);
/* Training attention over B rows of T tokens that may pack several documents: q/out
 * [B*T, n_head*hd], k/v [B*T, n_kv*hd]; start [B*T] is the index within its row of the
 * first token of each token's document (NULL: one document per row); row i sees j with
 * max(start_i, i - window + 1) <= j <= i (window 0: no window). lse [B*T, n_head] receives
 * each row's log-sum-exp of scores for the backward. */
void werk_op_attention_fwd_masked(float *out, float *lse, const float *q, const float *k, const float *v, int64_t B,
                                  int64_t T, int64_t n_head, int64_t n_kv, int64_t hd, float scale, int64_t window,
                                  const int32_t *start);
/* Backward of werk_op_attention_fwd_masked given its inputs, out and lse: writes dq, dk, dv. */
void werk_op_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *out, const float *lse,
                           const float *q, const float *k, const float *v, int64_t B, int64_t T, int64_t n_head,
                           int64_t n_kv, int64_t hd, float scale, int64_t window, const int32_t *start);

/* y[n, w->rows] = x[n, w->cols] W^T for W in any dequantizable type, through OpenBLAS on
 * dequantized row tiles; scratch holds werk_op_matmul_scratch(w) floats. */
int64_t werk_op_matmul_scratch(const werk_wview *w);
void    werk_op_matmul_fwd(float *y, const float *x, int64_t n, const werk_wview *w, float *scratch);
/* dx[n, w->cols] += dy[n, w->rows] W (the backward of werk_op_matmul_fwd to its input),
 * same row tiles and scratch size as the forward. */
void werk_op_matmul_bwd_x(float *dx, const float *dy, int64_t n, const werk_wview *w, float *scratch);
/* Naive oracle (double accumulation, one row dequantized at a time). */
void werk_op_matmul_fwd_ref(float *y, const float *x, int64_t n, const werk_wview *w);

/* y[n, out] += scale * (x[n, in] A^T) B^T with a [r, in], b [out, r] (unmerged LoRA);
 * tmp holds n * r floats. */
void werk_op_lora_fwd(float *y, const float *x, int64_t n, const float *a, const float *b, int64_t r, int64_t in,
                      int64_t out, float scale, float *tmp);
/* Backward of werk_op_lora_fwd: da [r, in] += , db [out, r] += , dx [n, in] += (dx NULL:
 * skipped); tmp holds 2 * n * r floats. */
void werk_op_lora_bwd(float *dx, float *da, float *db, const float *dy, const float *x, int64_t n, const float *a,
                      const float *b, int64_t r, int64_t in, int64_t out, float scale, float *tmp);

/* h[i] = act(gate[i]) * up[i], n values. */
void werk_op_glu_fwd(float *h, const float *gate, const float *up, int64_t n, werk_act act);
/* dgate[i] = dh[i] up[i] act'(gate[i]), dup[i] = dh[i] act(gate[i]) (written; may alias gate/up). */
void werk_op_glu_bwd(float *dgate, float *dup, const float *dh, const float *gate, const float *up, int64_t n,
                     werk_act act);

/* y[i,:] = scale * row tok[i] of emb; fails on a token outside [0, emb->rows). */
werk_status werk_op_embed_fwd(float *y, const werk_wview *emb, const int32_t *tok, int64_t n, float scale,
                              werk_err *err);
/* demb[tok[i], :] += scale dy[i, :] (demb f32 [rows, cols]; tokens already range-checked). */
void werk_op_embed_bwd(float *demb, const float *dy, const int32_t *tok, int64_t n, int64_t cols, float scale);

#endif
