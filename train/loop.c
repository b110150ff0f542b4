/* train/loop.c - the training loop of `werk finetune`: data stream, gradient accumulation,
 * clipping, optimizer and schedule, evaluation, best-by-val, early stop, checkpoints, Ctrl-C
 *
 * The rows of the training set form one endless stream: epoch e visits every row once in
 * the order werk_dataset_shuffle(seed, e) gives; a micro-batch is the next --batch rows of
 * that stream (a micro-batch may run over into the next epoch, so every step has the same
 * shape). An optimizer step sums werk_train_grad over --grad-accum micro-batches and then
 * divides the gradients by the number of scored tokens of the whole step, so the loss is
 * the mean cross-entropy over all scored tokens of the step (HF). Then: global-norm
 * clipping, lr = --lr x the schedule factor of this step, the optimizer update.
 *
 * Validation loss is computed with werk_forward_lora (no dropout) one document at a time:
 * each packed val row is split at its document boundaries, so attention never crosses a
 * document, exactly as in training; the loss is the mean CE over all scored val tokens.
 *
 * Everything that decides the numbers (data order, dropout masks, updates) is a function
 * of the seed and the step, and the state between steps fits in a checkpoint, so a run
 * resumed from a checkpoint gives the same bits as one that never stopped.
 *
 * Outputs under --out: adapter.gguf, adapter/ (PEFT), loss.jsonl, loss.svg, best/ (best
 * val adapter, both formats), checkpoints/step-N.ckpt.zst.
 */
#define _POSIX_C_SOURCE 200809L
#include "infer/model_int.h"
#include "train/train_int.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_KEEP 2 // newest checkpoints kept under <out>/checkpoints

typedef struct run {
    const werk_finetune_cfg *cfg;
    werk_gguf               *g;
    werk_model              *m;
    werk_tokenizer          *tok;
    werk_dataset            *train, *val;
    werk_lora               *params, *grads;
    werk_train_ws           *ws;
    werk_optim               opt;
    werk_ckpt_hp             hp;
    werk_ckpt_state          st;
    int64_t                  n_params, total_steps, n_rows;
    int64_t                 *perm;                         // [n_rows] row order of perm_epoch
    int64_t                  perm_epoch;                   // -1: none yet
    int32_t                 *tokens, *targets, *pos, *doc; // [batch * seq]
    float                   *logits;                       // [seq * n_vocab] for val
    char                     out_path[4096];
    char                     base_hash[65];
    char                     steps_str[32], seed_str[32];
} run;

static const char *out_file(run *r, const char *name) {
    snprintf(r->out_path, sizeof(r->out_path), "%s/%s", r->cfg->out, name);
    return r->out_path;
}

/* Ctrl-C: the command's handler sets cfg->stop (common's handler would exit at once). */
static bool stop_requested(const run *r) { return werk_interrupted() || (r->cfg->stop && *r->cfg->stop); }

// ---- data stream ---------------------------------------------------------------------------

static werk_status next_row(run *r, int64_t *row, werk_err *err) {
    if (r->st.cursor >= r->n_rows) {
        r->st.epoch++;
        r->st.cursor = 0;
    }
    if (r->perm_epoch != r->st.epoch) {
        werk_dataset_shuffle(r->perm, r->n_rows, r->cfg->seed, (uint64_t)r->st.epoch);
        r->perm_epoch = r->st.epoch;
    }
    *row = r->perm[r->st.cursor++];
    if (*row < 0 || *row >= r->n_rows) {
        return WERK_FAIL(err, WERK_E_ARG, "finetune: shuffle gave row %lld of %lld", (long long)*row,
                         (long long)r->n_rows);
    }
    return WERK_OK;
}

static werk_status fill_micro_batch(run *r, werk_err *err) {
    const int64_t B = r->cfg->batch, T = r->cfg->seq;
    for (int64_t b = 0; b < B; b++) {
        int64_t     row;
        werk_status s = next_row(r, &row, err);
        if (s) {
            return s;
        }
        werk_dataset_row(r->train, row, r->tokens + b * T, r->targets + b * T, r->pos + b * T,
                         r->doc + b * T);
    }
    return WERK_OK;
}

// ---- validation ------------------------------------------------------------------------------

/* Sum of CE over the scored targets of tokens[0..T) run as one document. */
static werk_status eval_document(run           *r,
                                 const int32_t *tokens,
                                 const int32_t *targets,
                                 int64_t        T,
                                 double        *sum,
                                 int64_t       *n,
                                 werk_err      *err) {
    bool any = false;
    for (int64_t t = 0; t < T; t++) {
        any = any || targets[t] != WERK_LABEL_IGNORE;
    }
    if (!any) {
        return WERK_OK;
    }
    const werk_lora *ls[1] = {r->params};
    werk_status      s     = werk_forward_lora(r->m, ls, 1, tokens, 1, T, r->logits, err);
    if (s) {
        return s;
    }
    const int64_t V = werk_model_n_vocab(r->m);
    for (int64_t t = 0; t < T; t++) {
        int32_t y = targets[t];
        if (y == WERK_LABEL_IGNORE) {
            continue;
        }
        if (y < 0 || y >= V) {
            return WERK_FAIL(err, WERK_E_FORMAT, "finetune: val target %d outside the vocabulary (%lld)", y,
                             (long long)V);
        }
        const float *z  = r->logits + t * V;
        double       mx = z[0];
        for (int64_t v = 1; v < V; v++) {
            mx = z[v] > mx ? z[v] : mx;
        }
        double se = 0;
        for (int64_t v = 0; v < V; v++) {
            se += exp((double)z[v] - mx);
        }
        *sum += mx + log(se) - (double)z[y];
        (*n)++;
    }
    return WERK_OK;
}

static werk_status eval_val(run *r, double *loss, werk_err *err) {
    const int64_t T      = r->cfg->seq;
    int64_t       n_rows = werk_dataset_n_rows(r->val);
    if (r->cfg->max_val_rows > 0 && n_rows > r->cfg->max_val_rows) {
        n_rows = r->cfg->max_val_rows;
    }
    double  sum = 0;
    int64_t n   = 0;
    for (int64_t i = 0; i < n_rows; i++) {
        if (stop_requested(r)) {
            return WERK_FAIL(err, WERK_E_INTERRUPTED, "finetune: interrupted");
        }
        werk_dataset_row(r->val, i, r->tokens, r->targets, r->pos, r->doc);
        for (int64_t s = 0; s < T;) { // one document at a time
            int64_t e = s + 1;
            while (e < T && r->doc[e] == r->doc[s] && r->pos[e] > r->pos[e - 1]) {
                e++;
            }
            werk_status st = eval_document(r, r->tokens + s, r->targets + s, e - s, &sum, &n, err);
            if (st) {
                return st;
            }
            s = e;
        }
    }
    if (n == 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "finetune: the validation set has no scored tokens");
    }
    *loss = sum / (double)n;
    return WERK_OK;
}

// ---- outputs -----------------------------------------------------------------------------------

static werk_status save_adapter(run *r, const char *gguf_name, const char *peft_name, werk_err *err) {
    const werk_finetune_cfg *c = r->cfg;
    snprintf(r->steps_str, sizeof(r->steps_str), "%" PRId64, r->st.step);
    snprintf(r->seed_str, sizeof(r->seed_str), "%" PRIu64, c->seed);
    const char    *keys[] = {"werk_version", "base_sha256", "data_sha256", "command_line",
                             "steps",        "seed",        "base_model"};
    const char    *vals[] = {WERK_VERSION,
                             r->base_hash,
                             werk_dataset_hash(r->train),
                          c->command_line ? c->command_line : "",
                             r->steps_str,
                             r->seed_str,
                             c->model};
    werk_lora_meta meta   = {keys, vals, (int)(sizeof(keys) / sizeof(keys[0]))};
    werk_status    s      = werk_lora_save_gguf(r->params, r->m, out_file(r, gguf_name), &meta, err);
    if (!s) {
        s = werk_lora_save_peft(r->params, r->m, out_file(r, peft_name), c->model, &meta, err);
    }
    return s;
}

static werk_status write_log(run *r, werk_err *err) {
    werk_status s = werk_loss_log_write_jsonl(&r->st.log, out_file(r, "loss.jsonl"), err);
    if (!s) {
        s = werk_loss_log_write_svg(&r->st.log, out_file(r, "loss.svg"), err);
    }
    return s;
}

static werk_status save_checkpoint(run *r, werk_err *err) {
    char name[64];
    snprintf(name, sizeof(name), "checkpoints/step-%08" PRId64 ".ckpt.zst", r->st.step);
    const float *p = werk_lora_params_const(r->params, &r->n_params);
    werk_status  s = werk_ckpt_save(out_file(r, name), &r->hp, &r->st, p, r->opt.m, r->opt.v, err);
    if (s) {
        return s;
    }
    // keep the newest CKPT_KEEP: remove step-(N - k * save_every) beyond them when present
    for (int64_t k = CKPT_KEEP; r->cfg->save_every > 0 && k < CKPT_KEEP + 4; k++) {
        int64_t old = r->st.step - k * r->cfg->save_every;
        if (old <= 0) {
            break;
        }
        snprintf(name, sizeof(name), "checkpoints/step-%08" PRId64 ".ckpt.zst", old);
        unlink(out_file(r, name));
    }
    return WERK_OK;
}

// ---- set-up ------------------------------------------------------------------------------------

static const char *chat_template_of(const werk_gguf *g) {
    const char *tmpl  = NULL;
    bool        found = false;
    if (!werk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &found, NULL) && found) {
        return tmpl;
    }
    const char *arch = NULL;
    if (!werk_gguf_get_str(g, "general.architecture", &arch, &found, NULL) && found &&
        strncmp(arch, "gemma", 5) == 0) {
        return "<start_of_turn>"; // no template stored (some Gemma GGUFs): gemma turns
    }
    return NULL;
}

static werk_status setup_data(run *r, werk_err *err) {
    const werk_finetune_cfg *c = r->cfg;
    werk_dataset_opts        o = c->data_opts;
    o.seq                      = c->seq;
    o.n_vocab                  = werk_model_n_vocab(r->m);
    o.chat_template            = chat_template_of(r->g);
    werk_status s              = werk_dataset_load(c->data, r->tok, &o, &r->train, err);
    if (s) {
        return s;
    }
    if (c->val) {
        s = werk_dataset_load(c->val, r->tok, &o, &r->val, err);
        if (!s && werk_dataset_n_rows(r->val) < 1) {
            s = WERK_FAIL(err, WERK_E_FORMAT, "%s: the validation set is empty", c->val);
        }
    } else if (c->val_split > 0) {
        s = werk_dataset_split(r->train, c->val_split, c->seed, &r->val, err);
    }
    if (s) {
        return s;
    }
    r->n_rows = werk_dataset_n_rows(r->train);
    if (r->n_rows < 1) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no training rows", c->data);
    }
    werk_dataset_stats ds;
    werk_dataset_get_stats(r->train, &ds);
    if (ds.n_scored < 1) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: no scored tokens to train on (all labels masked)", c->data);
    }
    werk_log(WERK_LOG_INFO,
             "finetune: %lld records, %lld rows, %lld tokens (%lld scored), %lld bad lines skipped, "
             "%lld truncated",
             (long long)ds.n_records, (long long)ds.n_rows, (long long)ds.n_tokens, (long long)ds.n_scored,
             (long long)ds.n_bad_lines, (long long)ds.n_truncated);
    return WERK_OK;
}

static werk_status setup_adapter(run *r, werk_err *err) {
    const werk_finetune_cfg *c = r->cfg;
    werk_status              s;
    if (c->init_adapter) {
        s = werk_lora_load(c->init_adapter, r->m, 1.0f, &r->params, err);
        if (s) {
            return s;
        }
    } else {
        s = werk_lora_alloc(r->m, c->rank, c->alpha, c->rslora, c->slot_mask, &r->params, err);
        if (s) {
            return s;
        }
        werk_lora_init_peft(r->params, r->m, c->seed);
    }
    werk_lora_params(r->params, &r->n_params);
    if (r->n_params < 1) {
        return WERK_FAIL(err, WERK_E_ARG, "finetune: the adapter has no parameters");
    }
    s = werk_lora_alloc_like(r->params, &r->grads, err);
    if (!s) {
        s = werk_optim_init(&r->opt, &c->optim, r->n_params, err);
    }
    return s;
}

static void fill_hp(run *r) {
    const werk_finetune_cfg *c = r->cfg;
    werk_ckpt_hp            *h = &r->hp;
    memset(h, 0, sizeof(*h));
    h->n_params     = r->n_params;
    h->rank         = werk_lora_rank(r->params);
    h->alpha        = werk_lora_alpha(r->params);
    h->slot_mask    = werk_lora_slot_mask(r->params);
    h->rslora       = r->params->rslora; // an --init-adapter brings its own
    h->optim        = (uint32_t)c->optim.kind;
    h->batch        = c->batch;
    h->seq          = c->seq;
    h->grad_accum   = c->grad_accum;
    h->n_train_rows = r->n_rows;
    h->seed         = c->seed;
    snprintf(h->data_hash, sizeof(h->data_hash), "%s", werk_dataset_hash(r->train));
    snprintf(h->base_hash, sizeof(h->base_hash), "%s", r->base_hash);
}

static werk_status setup_resume(run *r, werk_err *err) {
    char       *path = NULL;
    werk_status s    = werk_ckpt_find(r->cfg->resume, &path, err);
    if (s) {
        return s;
    }
    float *p = werk_lora_params(r->params, &r->n_params);
    s        = werk_ckpt_load(path, &r->hp, &r->st, p, r->opt.m, r->opt.v, err);
    if (!s) {
        r->opt.n_steps = r->st.step;
        werk_log(WERK_LOG_INFO, "finetune: resumed from %s at step %lld", path, (long long)r->st.step);
    }
    free(path);
    return s;
}

static int64_t steps_for_epochs(const werk_finetune_cfg *c, int64_t n_rows) {
    int64_t per_step = c->batch * c->grad_accum;
    return (c->epochs * n_rows + per_step - 1) / per_step;
}

// ---- one optimizer step ------------------------------------------------------------------------

/* Accumulates grads over grad_accum micro-batches; *loss = mean CE of the step (NAN when
 * nothing was scored). */
static werk_status accumulate(run *r, double *loss, int64_t *n_scored, werk_err *err) {
    int64_t n = 0;
    float  *g = werk_lora_params(r->grads, &n);
    memset(g, 0, (size_t)n * sizeof(float));
    double           sum    = 0;
    int64_t          scored = 0;
    werk_train_batch batch  = {r->cfg->batch, r->cfg->seq, r->tokens, r->targets, r->pos, r->doc};
    for (int64_t a = 0; a < r->cfg->grad_accum; a++) {
        if (stop_requested(r)) {
            return WERK_FAIL(err, WERK_E_INTERRUPTED, "finetune: interrupted");
        }
        werk_status s = fill_micro_batch(r, err);
        if (!s) {
            // each micro-batch gets its own dropout mask: the counter is unique per micro-batch
            int64_t micro = r->st.step * r->cfg->grad_accum + a;
            s = werk_train_grad(r->ws, r->m, r->params, r->grads, &batch, micro, &sum, &scored, err);
        }
        if (s) {
            return s;
        }
    }
    *n_scored = scored;
    *loss     = scored ? sum / (double)scored : NAN;
    if (scored) {
        const float d = (float)scored;
        for (int64_t i = 0; i < n; i++) {
            g[i] /= d;
        }
    }
    return WERK_OK;
}

static werk_status dump_grad(run *r, werk_err *err) {
    return werk_lora_save_peft(r->grads, r->m, r->cfg->dump_grad, NULL, NULL, err);
}

/* Evaluates, records best / early stop, saves best/ and the log. */
static werk_status do_eval(run *r, werk_loss_rec *rec, bool *stop, werk_err *err) {
    double      vl = NAN, t0 = werk_time_s();
    werk_status s = eval_val(r, &vl, err);
    if (s) {
        return s;
    }
    werk_log(WERK_LOG_INFO, "finetune: step %lld: val loss %.6f (perplexity %.4f; %.1f s)",
             (long long)r->st.step, vl, exp(vl), werk_time_s() - t0);
    rec->val_loss = vl;
    if (vl < r->st.best_val) {
        r->st.best_val    = vl;
        r->st.best_step   = r->st.step;
        r->st.n_bad_evals = 0;
        s                 = save_adapter(r, "best/adapter.gguf", "best/adapter", err);
    } else {
        r->st.n_bad_evals++;
        if (r->cfg->early_stop > 0 && r->st.n_bad_evals >= r->cfg->early_stop) {
            *stop = true;
        }
    }
    return s;
}

// ---- the loop ------------------------------------------------------------------------------------

static werk_status train(run *r, werk_finetune_result *res, werk_err *err) {
    const werk_finetune_cfg *c      = r->cfg;
    float                   *p      = werk_lora_params(r->params, &r->n_params);
    float                   *g      = werk_lora_params(r->grads, &r->n_params);
    const int64_t            BT     = c->batch * c->seq * c->grad_accum;
    werk_status              s      = WERK_OK;
    bool                     stop   = false;
    bool                     dumped = false;

    if (r->val && r->st.step == 0 && r->st.log.n == 0) { // val loss before training
        werk_loss_rec rec = {0, NAN, NAN, NAN, NAN};
        s                 = do_eval(r, &rec, &stop, err);
        if (!s) {
            res->val_before   = rec.val_loss;
            r->st.n_bad_evals = 0;
            s                 = werk_loss_log_add(&r->st.log, &rec, err);
        }
        if (!s) {
            s = write_log(r, err);
        }
        stop = false;
    } else if (r->val) {
        for (int64_t i = 0; i < r->st.log.n; i++) {
            if (r->st.log.recs[i].step == 0 && isfinite(r->st.log.recs[i].val_loss)) {
                res->val_before = r->st.log.recs[i].val_loss;
            }
        }
    }

    char          label[160];
    werk_progress prog;
    snprintf(label, sizeof(label), "finetune");
    if (c->progress) {
        werk_progress_init(&prog, label, (uint64_t)r->total_steps, false);
        werk_progress_add(&prog, (uint64_t)r->st.step);
    }
    double  t_train = 0; // seconds in forward/backward/update (not eval or saving)
    int64_t tok_run = 0, first_step = r->st.step;
    while (!s && !stop && r->st.step < r->total_steps) {
        int64_t epoch0 = r->st.epoch, cursor0 = r->st.cursor;
        double  t0       = werk_time_s();
        double  loss     = NAN;
        int64_t n_scored = 0;
        s                = accumulate(r, &loss, &n_scored, err);
        if (s) {
            r->st.epoch  = epoch0; // a step cut short is not taken: resume redoes it
            r->st.cursor = cursor0;
            break;
        }
        if (c->dump_grad && !dumped) {
            dumped = true;
            if ((s = dump_grad(r, err))) {
                break;
            }
        }
        double lr = c->lr * werk_sched_factor(c->schedule, r->st.step, c->warmup, r->total_steps);
        if (n_scored > 0) {
            werk_grad_clip(g, r->n_params, c->clip_grad_norm);
            werk_optim_step(&r->opt, p, g, lr);
        } else {
            werk_log(WERK_LOG_WARN, "finetune: step %lld has no scored tokens; no update",
                     (long long)(r->st.step + 1));
        }
        r->st.step++;
        r->st.tokens_seen += BT;
        tok_run += BT;
        double dt = werk_time_s() - t0;
        t_train += dt;
        werk_loss_rec rec = {r->st.step, loss, NAN, lr, dt > 0 ? (double)BT / dt : NAN};
        if (r->st.step == first_step + 1) {
            res->first_loss = loss;
        }
        res->last_loss = loss;
        bool eval_now  = r->val && ((c->eval_every > 0 && r->st.step % c->eval_every == 0) ||
                                   r->st.step == r->total_steps);
        if (eval_now) {
            s = do_eval(r, &rec, &stop, err);
            if (s) {
                if (s == WERK_E_INTERRUPTED) { // the step itself is done: keep its record
                    rec.val_loss = NAN;
                    werk_loss_log_add(&r->st.log, &rec, NULL);
                }
                break;
            }
            res->val_after = rec.val_loss;
        }
        if ((s = werk_loss_log_add(&r->st.log, &rec, err))) {
            break;
        }
        if (eval_now) {
            s = write_log(r, err);
        }
        if (!s && c->save_every > 0 && r->st.step % c->save_every == 0 && r->st.step < r->total_steps) {
            s = save_checkpoint(r, err);
        }
        if (c->progress) {
            double el           = t_train;
            char   val_part[48] = "";
            if (isfinite(rec.val_loss)) {
                snprintf(val_part, sizeof(val_part), " val %.4f", rec.val_loss);
            }
            snprintf(label, sizeof(label), "finetune loss %.4f%s %.0f tok/s", loss, val_part,
                     el > 0 ? (double)tok_run / el : 0.0);
            werk_progress_add(&prog, 1);
        }
        if (!s && stop_requested(r)) {
            s = WERK_FAIL(err, WERK_E_INTERRUPTED, "finetune: interrupted");
        }
    }
    if (c->progress) {
        werk_progress_done(&prog);
    }
    res->tok_per_s     = t_train > 0 ? (double)tok_run / t_train : 0;
    res->steps         = r->st.step;
    res->early_stopped = stop;
    if (s == WERK_E_INTERRUPTED) {
        res->interrupted = true;
        werk_err    e2   = {0};
        werk_status s2   = save_checkpoint(r, &e2);
        if (!s2) {
            s2 = write_log(r, &e2);
        }
        if (s2) {
            *err = e2;
            return s2;
        }
        werk_log(WERK_LOG_WARN,
                 "finetune: interrupted at step %lld; checkpoint saved under %s/checkpoints "
                 "(continue with --resume %s)",
                 (long long)r->st.step, c->out, c->out);
        return s;
    }
    if (s) {
        return s;
    }
    if (r->val && !isfinite(res->val_after)) { // early stop or resumed at the end
        for (int64_t i = r->st.log.n - 1; i >= 0; i--) {
            if (isfinite(r->st.log.recs[i].val_loss)) {
                res->val_after = r->st.log.recs[i].val_loss;
                break;
            }
        }
    }
    s = save_adapter(r, "adapter.gguf", "adapter", err);
    if (!s) {
        s = write_log(r, err);
    }
    if (!s) {
        s = save_checkpoint(r, err);
    }
    res->best_val  = r->st.best_val;
    res->best_step = r->st.best_step;
    return s;
}

werk_status werk_finetune_run(const werk_finetune_cfg *cfg, werk_finetune_result *res, werk_err *err) {
    memset(res, 0, sizeof(*res));
    res->val_before = res->val_after = res->best_val = NAN;
    res->first_loss = res->last_loss = NAN;
    res->best_step                   = -1;
    run r                            = {.cfg = cfg, .perm_epoch = -1};
    r.st.best_val                    = INFINITY;
    r.st.best_step                   = -1;
    r.st.rng      = cfg->seed; // all randomness is counter-based: f(seed, epoch) order, f(seed, step) dropout
    werk_status s = werk_gguf_read(cfg->model, &r.g, err);
    if (!s) {
        s = werk_model_load(r.g, &r.m, err);
        if (s) {
            werk_err_prefix(err, "%s", cfg->model);
        }
    }
    if (!s) {
        werk_err te = {0};
        if (werk_tokenizer_init(r.g, &r.tok, &te)) { // pre-tokenized data still works
            werk_log(WERK_LOG_WARN,
                     "finetune: %s: no usable tokenizer (%s); only pre-tokenized records will load",
                     cfg->model, te.msg);
            r.tok = NULL;
        }
    }
    if (!s) {
        s = werk_sha256_file(cfg->model, r.base_hash, err);
    }
    if (!s) {
        s = setup_data(&r, err);
    }
    if (!s) {
        s = setup_adapter(&r, err);
    }
    if (!s) {
        fill_hp(&r);
        res->train_rows = r.n_rows;
        res->val_rows   = r.val ? werk_dataset_n_rows(r.val) : 0;
        r.total_steps   = cfg->steps > 0 ? cfg->steps : steps_for_epochs(cfg, r.n_rows);
        size_t bt       = (size_t)(cfg->batch * cfg->seq);
        r.perm          = werk_malloc((size_t)r.n_rows * sizeof(int64_t));
        r.tokens        = werk_malloc(bt * sizeof(int32_t));
        r.targets       = werk_malloc(bt * sizeof(int32_t));
        r.pos           = werk_malloc(bt * sizeof(int32_t));
        r.doc           = werk_malloc(bt * sizeof(int32_t));
        r.logits =
            r.val ? werk_malloc((size_t)cfg->seq * (size_t)werk_model_n_vocab(r.m) * sizeof(float)) : NULL;
        if (!r.perm || !r.tokens || !r.targets || !r.pos || !r.doc || (r.val && !r.logits)) {
            s = WERK_FAIL(err, WERK_E_OOM, "finetune: out of memory for batch buffers");
        }
    }
    if (!s) {
        char sub[4200];
        snprintf(sub, sizeof(sub), "%s/checkpoints", cfg->out);
        s = werk_mkdir_p(sub, err);
        snprintf(sub, sizeof(sub), "%s/best", cfg->out);
        if (!s && r.val) {
            s = werk_mkdir_p(sub, err);
        }
    }
    if (!s && !cfg->resume) { // never mix two runs' checkpoints in one folder
        char    *old = NULL;
        werk_err e2  = {0};
        if (werk_ckpt_find(cfg->out, &old, &e2) == WERK_OK) {
            s = WERK_FAIL(
                err, WERK_E_ARG,
                "finetune: %s already holds a run's checkpoints (%s); continue it with --resume %s or "
                "choose another --out",
                cfg->out, old, cfg->out);
            free(old);
        }
    }
    if (!s && cfg->resume) {
        s = setup_resume(&r, err);
    }
    if (!s) {
        werk_train_opts to = {cfg->dropout, cfg->seed, cfg->recompute, 0};
        s                  = werk_train_ws_init(r.m, r.params, cfg->batch, cfg->seq, &to, &r.ws, err);
    }
    if (!s) {
        werk_log(WERK_LOG_INFO, "finetune: %lld trainable parameters, %lld steps, workspace %.1f MiB",
                 (long long)r.n_params, (long long)r.total_steps,
                 (double)werk_train_ws_bytes(r.ws) / 1048576.0);
        s = train(&r, res, err);
    }
    werk_train_ws_free(r.ws);
    werk_optim_free(&r.opt);
    werk_loss_log_free(&r.st.log);
    werk_lora_free(r.grads);
    werk_lora_free(r.params);
    werk_dataset_free(r.train);
    werk_dataset_free(r.val);
    werk_tokenizer_free(r.tok);
    werk_model_free(r.m);
    werk_gguf_free(r.g);
    free(r.perm);
    free(r.tokens);
    free(r.targets);
    free(r.pos);
    free(r.doc);
    free(r.logits);
    return s;
}
