/* infer/decode.h - incremental generation: KV cache, prefill + single-token decode, sampling, chat
 *
 * A werk_decoder runs one sequence: werk_decoder_prefill pushes a prompt through the
 * reference ops (OpenBLAS tiles) filling the KV cache, werk_decoder_step pushes one token
 * through the quantized dot kernels (werk_qfns_get: activation quantized once per matvec,
 * vec_dot per weight row, OpenMP over rows; every output element is computed by one thread
 * in a fixed order, so any thread count gives the same bits). The sampler (infer/sample.c)
 * turns logits into a token with its own seeded PRNG; chat.c renders conversations in the
 * model's chat template (for `infer --chat` and the datasets' {"messages"} records).
 * Declared here, not in infer.h, so infer.h stays unchanged.
 */
#ifndef WERK_INFER_DECODE_H
#define WERK_INFER_DECODE_H

#include "infer/infer.h"

#include <stdbool.h>
#include <stdint.h>

// ---- KV cache (infer/kv_cache.c) -------------------------------------------------------

/* f32 keys and values after rope: k/v [n_layer][n_ctx][kd], kd = n_head_kv * head_dim. */
typedef struct werk_kv_cache {
    int64_t n_layer, n_ctx, kd;
    int64_t n_past; // positions filled
    float  *k, *v;
} werk_kv_cache;

werk_status          werk_kv_cache_init(werk_kv_cache *c, const werk_model *m, int64_t n_ctx, werk_err *err);
void                 werk_kv_cache_free(werk_kv_cache *c); // zeroes c; NULL ok
static inline float *werk_kv_cache_k(const werk_kv_cache *c, int64_t il, int64_t pos) {
    return c->k + (il * c->n_ctx + pos) * c->kd;
}
static inline float *werk_kv_cache_v(const werk_kv_cache *c, int64_t il, int64_t pos) {
    return c->v + (il * c->n_ctx + pos) * c->kd;
}

// ---- decoder (infer/decode.c) ------------------------------------------------------------

typedef struct werk_decoder werk_decoder;

/* A decoder for m with n_loras adapters (kept by pointer: they and m must outlive it) and
 * room for n_ctx positions. */
werk_status werk_decoder_init(const werk_model       *m,
                              const werk_lora *const *loras,
                              int                     n_loras,
                              int64_t                 n_ctx,
                              werk_decoder          **out,
                              werk_err               *err);
void        werk_decoder_free(werk_decoder *d); // NULL ok
int64_t     werk_decoder_n_past(const werk_decoder *d);
/* exact: every step matvec dequantizes weight rows and dots in double with f32
 * activations (slow; matches werk_forward to ~1e-5) instead of the quantized kernels. */
void werk_decoder_set_exact(werk_decoder *d, bool exact);

/* Runs n tokens at positions n_past.. (the cache must be empty: prompts start at 0);
 * logits: n_vocab floats for the last token, or NULL. */
werk_status
werk_decoder_prefill(werk_decoder *d, const int32_t *tokens, int64_t n, float *logits, werk_err *err);
/* Runs one token at position n_past; logits: n_vocab floats. WERK_E_ARG when full. */
werk_status werk_decoder_step(werk_decoder *d, int32_t token, float *logits, werk_err *err);

// ---- sampling (infer/sample.c) ------------------------------------------------------------

/* xoshiro256** seeded through splitmix64. */
typedef struct werk_rng {
    uint64_t s[4];
} werk_rng;
void     werk_rng_seed(werk_rng *r, uint64_t seed);
uint64_t werk_rng_next(werk_rng *r);
double   werk_rng_uniform(werk_rng *r); // [0, 1), 53 bits

typedef struct werk_sampler_params {
    float    temp;           // <= 0: greedy
    int32_t  top_k;          // 0: off
    float    top_p;          // >= 1: off
    float    min_p;          // <= 0: off
    float    repeat_penalty; // 1: off
    int32_t  repeat_last_n;  // tokens of history the penalty looks at
    uint64_t seed;
} werk_sampler_params;

/* Defaults: greedy, top_k 0, top_p 1, min_p 0, penalty 1 over the last 64, seed 0. */
werk_sampler_params werk_sampler_default_params(void);

typedef struct werk_sampler werk_sampler;
werk_status
     werk_sampler_init(const werk_sampler_params *p, int64_t n_vocab, werk_sampler **out, werk_err *err);
void werk_sampler_free(werk_sampler *s); // NULL ok
/* Records a token of context (prompt or generated) for the repetition penalty. */
void werk_sampler_accept(werk_sampler *s, int32_t token);
/* The distribution the sampler draws from: probs[n_vocab], 0 where masked. Order of the
 * chain (llama.cpp's default): repetition penalty, top-k, top-p, min-p on the softmax of
 * the penalised logits, then temperature over the survivors. Greedy: one-hot argmax. */
void werk_sampler_probs(werk_sampler *s, const float *logits, float *probs);
/* Draws a token (does not accept it). */
int32_t werk_sampler_sample(werk_sampler *s, const float *logits);

// ---- chat template (infer/chat.c) --------------------------------------------------------
// One implementation of chat rendering, used by `werk infer --chat` and by the datasets'
// {"messages"} records.

typedef enum werk_chat_style {
    WERK_CHAT_NONE = 0,
    WERK_CHAT_GEMMA,
    WERK_CHAT_CHATML,
    WERK_CHAT_LLAMA3
} werk_chat_style;

typedef enum werk_chat_role { WERK_CHAT_SYSTEM, WERK_CHAT_USER, WERK_CHAT_ASSISTANT } werk_chat_role;

typedef struct werk_chat_msg {
    werk_chat_role role;
    const char    *content;
} werk_chat_msg;

/* "system", "user", "assistant" (and "model", gemma's name for the assistant); false if
 * the name is none of these. */
bool werk_chat_role_parse(const char *name, werk_chat_role *out);

/* Recognises the style of a tokenizer.chat_template text by its marker tokens; tmpl NULL:
 * tok's turn tokens decide (a marker that encodes to one id; tok NULL ok). *system:
 * chatml's default system prompt when the template hard-codes one (SmolLM2), else NULL;
 * malloc'd (caller frees). WERK_E_UNSUPPORTED (with a message) when nothing is known. */
werk_status werk_chat_style_of(
    const char *tmpl, const werk_tokenizer *tok, werk_chat_style *out, char **system, werk_err *err);
/* werk_chat_style_of on tokenizer.chat_template of g (errors name the file). */
werk_status werk_chat_detect(
    const werk_gguf *g, const werk_tokenizer *tok, werk_chat_style *out, char **system, werk_err *err);

/* Receives the rendered conversation piece by piece: markup (template text whose special
 * tokens are parsed) or message content (never parsed for special tokens); assistant marks
 * an assistant turn's content and its end-of-turn marker (what supervised tuning scores). */
typedef werk_status (*werk_chat_emit)(void *ctx, const char *s, bool markup, bool assistant, werk_err *err);

/* Renders msgs[0..n) in style, then (gen_prompt) the opening of the assistant's reply.
 * system: a default system prompt used when msgs has no system message (NULL ok). Gemma
 * has no system role: a leading system message is prepended to the first user turn, as
 * its template does; any other placement is WERK_E_FORMAT ("messages[i]: ..."). BOS is
 * never emitted: the caller's encode adds it. */
werk_status werk_chat_render_msgs(werk_chat_style      style,
                                  const char          *system,
                                  const werk_chat_msg *msgs,
                                  int64_t              n,
                                  bool                 gen_prompt,
                                  werk_chat_emit       emit,
                                  void                *ctx,
                                  werk_err            *err);
/* One user turn (after system, if not NULL) plus the generation prompt as one string,
 * malloc'd (caller frees). */
werk_status
werk_chat_render(werk_chat_style style, const char *system, const char *user, char **out, werk_err *err);
/* Names of the end-of-turn tokens of a style ("<end_of_turn>", ...), NULL-terminated. */
const char *const *werk_chat_stop_tokens(werk_chat_style style);

/* werk infer --model M.gguf [--lora DIR]... (--prompt T | --chat T) [-n N] [...] */
int werk_cmd_infer(int argc, char **argv);

#endif
