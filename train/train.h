/* train/train.h - public API of werk's LoRA trainer
 *
 * Owns: the training forward pass (saving what backward needs) and its backward walk over
 * the model, producing gradients of the LoRA parameters only (base weights stay frozen in
 * their stored type); the chunked LM head + masked cross-entropy; optimizers (AdamW, SGD),
 * learning-rate schedules and gradient clipping; checkpoints (zstd, atomic) and resume;
 * the training loop and the `finetune` command. The per-op backward math sits beside each
 * forward op in infer/ops/ (forward and backward side by side).
 *
 * Gradients are of the SUM of cross-entropy over the scored tokens of a batch; the loop
 * divides by the number of scored tokens of the whole optimizer step (accumulated
 * micro-batches included), so loss = mean CE over all scored tokens of the step, as HF does.
 */
#ifndef WERK_TRAIN_H
#define WERK_TRAIN_H

#include "common/common.h"
#include "infer/infer.h"

#include <stdbool.h>
#include <stdint.h>

/* One micro-batch of B rows of T tokens (row-major [B*T]). Rows may pack several
 * documents: pos restarts at 0 at each document's first token and attention never crosses
 * a document boundary (a document is a maximal run of equal doc ids within a row).
 * targets[t] is the token position t must predict (already shifted: the label of t+1 of
 * the same document) or WERK_LABEL_IGNORE (-100) for unscored positions and padding. */
typedef struct werk_train_batch {
    int64_t        B, T;
    const int32_t *tokens;  // [B*T]
    const int32_t *targets; // [B*T]
    const int32_t *pos;     // [B*T] position of each token within its document
    const int32_t *doc;     // [B*T] document id of each token within its row; NULL: one per row
} werk_train_batch;

typedef struct werk_train_opts {
    float    dropout;      // LoRA dropout on the adapter's input (0: off)
    uint64_t dropout_seed; // mask = f(seed, step, layer, slot, element): thread independent
    bool     recompute;    // keep only each layer's input; recompute the rest in backward
    int64_t  vocab_chunk;  // LM head + cross-entropy processed this many vocab rows at a time (0: default)
} werk_train_opts;

/* Scratch for one (B, T) shape: activations saved by forward, backward buffers. */
typedef struct werk_train_ws werk_train_ws;

werk_status werk_train_ws_init(const werk_model     *m,
                               const werk_lora      *params,
                               int64_t               B,
                               int64_t               T,
                               const werk_train_opts *opts,
                               werk_train_ws       **out,
                               werk_err             *err);
void        werk_train_ws_free(werk_train_ws *ws); // NULL ok
/* Bytes the workspace holds (for memory reports). */
uint64_t werk_train_ws_bytes(const werk_train_ws *ws);

/* Forward + backward of one micro-batch with adapter params (f32, trainable) applied
 * unmerged. Adds d(sum of CE over scored tokens)/d(param) into grads (same shapes as
 * params: a werk_lora from werk_lora_alloc_like), adds the summed CE to *loss_sum and the
 * number of scored tokens to *n_scored. step feeds the dropout mask (mask = f(seed, step,
 * layer, slot, element index in the batch)): give every micro-batch its own value (e.g.
 * step * grad_accum + micro) or micro-batches of one step share masks. Deterministic: the
 * same inputs give the same bits for any thread count. */
werk_status werk_train_grad(werk_train_ws          *ws,
                            const werk_model       *m,
                            const werk_lora        *params,
                            werk_lora              *grads,
                            const werk_train_batch *batch,
                            int64_t                 step,
                            double                 *loss_sum,
                            int64_t                *n_scored,
                            werk_err               *err);

/* werk finetune --model BASE.gguf --lora DATA.jsonl [...] */
int werk_cmd_finetune(int argc, char **argv);

#endif
