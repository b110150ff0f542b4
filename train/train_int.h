/* train/train_int.h - private pieces of the trainer: optimizers, schedules, checkpoints,
 * the loss log, LoRA initialisation and the training loop behind `werk finetune`
 *
 * Everything here works on the flat f32 parameter array of a werk_lora (werk_lora_params:
 * layer-major, slots q,k,v,o,gate,up,down, A then B) and visits it in that fixed order, so
 * results never depend on the thread count. Tests link against these directly.
 */
#ifndef WERK_TRAIN_INT_H
#define WERK_TRAIN_INT_H

#include "datasets/datasets.h"
#include "train/train.h"

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

// ---- optimizers (train/optim.c) ---------------------------------------------------------

typedef enum werk_optim_kind { WERK_OPTIM_ADAMW = 0, WERK_OPTIM_SGD = 1 } werk_optim_kind;

typedef struct werk_optim_hp {
    werk_optim_kind kind;
    float           beta1, beta2, eps; // AdamW (torch defaults 0.9, 0.999, 1e-8)
    float           weight_decay;      // AdamW: decoupled (p -= lr*wd*p); SGD: added to the gradient
} werk_optim_hp;

/* Optimizer state for n parameters: first and second moments (zero for SGD) and the
 * number of steps taken (AdamW's bias correction uses t = n_steps after the increment). */
typedef struct werk_optim {
    werk_optim_hp hp;
    int64_t       n;
    int64_t       n_steps;
    float        *m, *v; // [n] each, malloc'd
} werk_optim;

werk_status werk_optim_init(werk_optim *o, const werk_optim_hp *hp, int64_t n, werk_err *err);
void        werk_optim_free(werk_optim *o); // zeroed or initialised; resets o
/* One update of params[0..n) with gradients g at learning rate lr, as torch.optim.AdamW /
 * torch.optim.SGD (momentum 0) do it. Elementwise: the same bits for any thread count. */
void werk_optim_step(werk_optim *o, float *params, const float *g, double lr);

/* L2 norm of g[0..n), summed in double in index order. */
double werk_grad_norm(const float *g, int64_t n);
/* torch.nn.utils.clip_grad_norm_: scales g by max_norm / (norm + 1e-6) when that is below
 * 1 (max_norm <= 0: off). Returns the norm before clipping. */
double werk_grad_clip(float *g, int64_t n, double max_norm);

// ---- learning-rate schedules (train/schedule.c) -----------------------------------------

typedef enum werk_sched_kind {
    WERK_SCHED_COSINE = 0,
    WERK_SCHED_LINEAR,
    WERK_SCHED_CONSTANT
} werk_sched_kind;

/* The factor HF's get_{cosine,linear,constant}_schedule_with_warmup gives at scheduler
 * step `step` (0-based: the factor used by optimizer step step+1) of n_total steps. */
double werk_sched_factor(werk_sched_kind kind, int64_t step, int64_t n_warmup, int64_t n_total);
/* "cosine" / "linear" / "constant" -> kind; false for another name. */
bool        werk_sched_parse(const char *name, werk_sched_kind *kind);
const char *werk_sched_name(werk_sched_kind kind);

// ---- loss log (train/log.c) ---------------------------------------------------------------

typedef struct werk_loss_rec {
    int64_t step;       // optimizer steps done
    double  train_loss; // mean CE of that step (NAN for an eval-only record)
    double  val_loss;   // NAN when not evaluated at this step
    double  lr;         // learning rate used by that step
    double  tok_per_s;  // training tokens per second over that step
} werk_loss_rec;

typedef struct werk_loss_log {
    werk_loss_rec *recs;
    int64_t        n, cap;
} werk_loss_log;

werk_status werk_loss_log_add(werk_loss_log *log, const werk_loss_rec *rec, werk_err *err);
void        werk_loss_log_free(werk_loss_log *log); // resets log
/* One JSON object a line: {"step", "train_loss", "val_loss", "lr", "tokens_per_s"}
 * (a missing value is null); written atomically. */
werk_status werk_loss_log_write_jsonl(const werk_loss_log *log, const char *path, werk_err *err);
/* An SVG line chart of train loss (and val loss where present) against step; atomic. */
werk_status werk_loss_log_write_svg(const werk_loss_log *log, const char *path, werk_err *err);

// ---- checkpoints (train/checkpoint.c) -----------------------------------------------------

/* What must be equal between the run that wrote a checkpoint and the run that resumes it. */
typedef struct werk_ckpt_hp {
    int64_t  n_params, rank;
    float    alpha;
    uint32_t slot_mask;
    uint32_t rslora;
    uint32_t optim; // werk_optim_kind
    int64_t  batch, seq, grad_accum, n_train_rows;
    uint64_t seed;
    char     data_hash[65]; // SHA-256 hex of the training file
    char     base_hash[65]; // SHA-256 hex of the base model file
} werk_ckpt_hp;

/* Where the run stands. */
typedef struct werk_ckpt_state {
    int64_t       step;        // optimizer steps done
    int64_t       epoch;       // epoch of the next micro-batch
    int64_t       cursor;      // index into that epoch's shuffled row order
    uint64_t      rng;         // the loop's random state (dropout / shuffle seed stream)
    double        best_val;    // best val loss so far (INFINITY: none)
    int64_t       best_step;   // step of best_val (-1: none)
    int64_t       n_bad_evals; // evals since best_val improved (early stop)
    int64_t       tokens_seen; // training tokens processed
    werk_loss_log log;         // history so far (owned by the caller on save; filled on load)
} werk_ckpt_state;

/* Writes one zstd-compressed checkpoint file atomically (werk_afile): header, hp, state,
 * the log, params, m, v (each n_params floats). */
werk_status werk_ckpt_save(const char            *path,
                           const werk_ckpt_hp    *hp,
                           const werk_ckpt_state *st,
                           const float           *params,
                           const float           *m,
                           const float           *v,
                           werk_err              *err);
/* Reads path, checks it is whole (zstd checksum, sizes) and that its hp equals expect
 * (a clear error naming the first field that differs), then fills st (st->log malloc'd),
 * params, m and v (expect->n_params floats each). Never trusts a size in the file. */
werk_status werk_ckpt_load(const char         *path,
                           const werk_ckpt_hp *expect,
                           werk_ckpt_state    *st,
                           float              *params,
                           float              *m,
                           float              *v,
                           werk_err           *err);
/* The newest checkpoint under dir: dir itself if it is a file, else the highest
 * step-*.ckpt.zst in dir/checkpoints/ or dir/. *path malloc'd. */
werk_status werk_ckpt_find(const char *dir, char **path, werk_err *err);

// ---- LoRA initialisation (train/init.c) -----------------------------------------------------

/* PEFT's default: every A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform_ with a=sqrt(5)),
 * drawn from seed in parameter order; every B = 0. */
void werk_lora_init_peft(werk_lora *l, const werk_model *m, uint64_t seed);

/* 64-bit random stream (splitmix64) used by the trainer. */
uint64_t werk_train_rng_next(uint64_t *state);

// ---- the training loop (train/loop.c) ---------------------------------------------------------

typedef struct werk_finetune_cfg {
    const char       *model, *data, *val, *out, *resume, *init_adapter;
    double            val_split; // 0: none
    int64_t           rank;
    float             alpha, dropout;
    bool              rslora;
    uint32_t          slot_mask;
    werk_optim_hp     optim;
    double            lr, clip_grad_norm;
    int64_t           warmup;
    werk_sched_kind   schedule;
    int64_t           batch, seq, grad_accum, steps, epochs;
    bool              recompute;
    int64_t           eval_every, save_every, early_stop, max_val_rows;
    werk_dataset_opts data_opts; // seq / n_vocab / chat_template filled by the loop
    uint64_t          seed;
    const char       *dump_grad;       // write the first step's (scaled) gradient here as raw f32 (tests)
    const char       *command_line;    // recorded in the adapter's provenance
    bool              progress;        // show the progress line
    const volatile sig_atomic_t *stop; // set (by a signal handler) to stop at the next step with a checkpoint
} werk_finetune_cfg;

typedef struct werk_finetune_result {
    int64_t steps; // optimizer steps done in total
    int64_t train_rows, val_rows;
    double  first_loss, last_loss;
    double  val_before, val_after, best_val; // NAN when there is no val set
    int64_t best_step;
    double  tok_per_s; // mean over this run
    bool    early_stopped, interrupted;
} werk_finetune_result;

/* Runs a whole fine-tune as cfg says and writes its outputs under cfg->out. */
werk_status werk_finetune_run(const werk_finetune_cfg *cfg, werk_finetune_result *res, werk_err *err);

#endif
