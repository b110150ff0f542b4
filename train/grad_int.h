/* train/grad_int.h - private pieces of the backward pass: the chunked LM head + masked
 * cross-entropy (train/loss.c) used by werk_train_grad (train/grad.c) and its tests.
 */
#ifndef WERK_TRAIN_GRAD_INT_H
#define WERK_TRAIN_GRAD_INT_H

#include "infer/model_int.h"

/* Default number of vocabulary rows per LM-head chunk. */
enum { WERK_CE_DEFAULT_CHUNK = 4096 };

/* Floats of scratch werk_ce_fwd_bwd needs for n rows of width w->cols and chunk vocab rows
 * (the scratch must be aligned for doubles, as malloc's is). */
int64_t werk_ce_scratch(int64_t n, const werk_wview *w, int64_t chunk);

/* LM head + cross-entropy, forward and backward in one pass over the vocabulary:
 * x [n, D] (final-normed hidden states), w [V, D] (output weight, stored type),
 * targets [n] (< 0: not scored). Logits are made chunk vocab rows at a time with an online
 * softmax (never [n, V]); dx [n, D] receives d(sum CE)/dx (0 on unscored rows); the summed
 * CE is added to *loss_sum and the number of scored rows to *n_scored. Fails on a target
 * >= V. */
werk_status werk_ce_fwd_bwd(float *dx, const float *x, const int32_t *targets, int64_t n, const werk_wview *w,
                            int64_t chunk, float *scratch, double *loss_sum, int64_t *n_scored, werk_err *err);

#endif
