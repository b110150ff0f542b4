/* datasets/datasets.h - public API of werk's datasets module (JSONL records -> token ids)
 *
 * Owns: reading .jsonl and .jsonl.zst files line by line (each line bounded in length,
 * valid UTF-8, parsed with werk_json_parse) and turning each record into token ids plus
 * per-token labels (HF convention: a label of -100 is not scored; labels are shifted by
 * the consumer, so label[t] is the target predicted at position t-1).
 *
 * Record formats (one JSON object per line; blank lines are skipped):
 *   {"text": S}                          BOS + S (no BOS with no_bos); every token scored
 *   {"prompt": P, "completion": C}       BOS + P + C; only C's tokens scored (all with
 *                                        train_on_inputs; the reader adds no EOS,
 *                                        werk_dataset_load does)
 *   {"input_ids": [..], "labels": [..]}  pre-tokenized; labels optional (= input_ids)
 *   {"messages": [{"role","content"}..]} rendered in the chat style set with
 *                                        werk_datasets_set_chat_template (gemma, chatml, llama3;
 *                                        none set: the tokenizer's turn tokens) by infer/chat.c;
 *                                        roles system, user, assistant (or "model"); only assistant
 *                                        contents + their end-of-turn token scored (train_on_inputs:
 *                                        all); WERK_E_UNSUPPORTED without a known style
 * A bad line fails with WERK_E_FORMAT "file:line: reason".
 */
#ifndef WERK_DATASETS_H
#define WERK_DATASETS_H

#include "common/common.h"
#include "infer/infer.h"

#include <stdbool.h>
#include <stdint.h>

#define WERK_LABEL_IGNORE (-100)

/* Default bound on one line's length in bytes (decompressed). */
#define WERK_JSONL_MAX_LINE ((size_t)64 << 20)

typedef struct werk_record {
    int32_t *ids;    // [n] malloc'd
    int32_t *labels; // [n] malloc'd; WERK_LABEL_IGNORE = not scored
    int64_t  n;
    int64_t  line;         // 1-based line of the file the record came from
    bool     pretokenized; // from {"input_ids"}
    bool     chat;         // from {"messages"}
} werk_record;

typedef struct werk_jsonl werk_jsonl;

/* Opens path for reading; a name ending in ".zst" is decompressed as a zstd stream.
 * max_line: longest accepted line in bytes (0 = WERK_JSONL_MAX_LINE). */
werk_status werk_datasets_open_jsonl(const char *path, size_t max_line, werk_jsonl **out, werk_err *err);
void        werk_datasets_close_jsonl(werk_jsonl *r); // NULL ok

/* Reads the next record into *rec (freeing what it held before). tok may be NULL for
 * pre-tokenized files only; n_vocab > 0 bounds input ids and labels. *eof is set (and rec
 * left empty) after the last record; an empty file (no records at all) is WERK_E_FORMAT. */
werk_status werk_datasets_next_record(
    werk_jsonl *r, const werk_tokenizer *tok, int64_t n_vocab, werk_record *rec, bool *eof, werk_err *err);
void werk_datasets_free_record(werk_record *rec); // resets rec

/* Recognises the style of a model's tokenizer.chat_template (NULL ok) for {"messages"}
 * records: WERK_E_UNSUPPORTED (no error text; messages records then fail) when unknown. */
werk_status werk_datasets_set_chat_template(werk_jsonl *r, const char *chat_template);
/* train_on_inputs: score prompts, system and user turns too; skip_bad_lines: a bad line
 * (WERK_E_FORMAT) is counted and skipped instead of failing. */
void    werk_datasets_set_options(werk_jsonl *r, bool train_on_inputs, bool skip_bad_lines);
int64_t werk_datasets_n_bad_lines(const werk_jsonl *r);
/* no_bos: text and prompt records start without BOS (a GGUF whose tokenizer.ggml.add_bos_token
 * is false, e.g. SmolLM2); {"messages"} records follow their chat style either way. */
void werk_datasets_set_no_bos(werk_jsonl *r, bool no_bos);

// ---- training sets: tokenized, packed rows (datasets/dataset.c) -------------------------

typedef struct werk_dataset_opts {
    int64_t     seq;              // tokens per row (>= 2)
    bool        pack;             // several whole documents per row (false: one record per row)
    bool        no_truncate;      // a record longer than seq is an error instead of truncated
                                  // (pre-tokenized ones always are; text records get EOS)
    bool        skip_bad_lines;   // count and skip bad lines instead of failing
    bool        train_on_inputs;  // score prompt / user / system tokens too
    const char *chat_template;    // tokenizer.chat_template for {"messages"} records (NULL: turn tokens)
    int64_t     n_vocab;          // bound on token ids (pre-tokenized records)
    bool        no_bos;           // text records without BOS (tokenizer.ggml.add_bos_token false)
} werk_dataset_opts;

typedef struct werk_dataset_stats {
    int64_t n_records, n_bad_lines, n_truncated, n_rows, n_tokens, n_scored;
    int64_t n_dropped; // records with no scored target after shifting
} werk_dataset_stats;

/* All rows of a training file in memory, in file order. A row is seq tokens with, per
 * position, the next-token target (shifted inside one document; WERK_LABEL_IGNORE where
 * not scored or padding), the position within its document and the document index within
 * the row (see train/train.h werk_train_batch). */
typedef struct werk_dataset werk_dataset;

werk_status werk_dataset_load(const char *path, const werk_tokenizer *tok, const werk_dataset_opts *opts,
                              werk_dataset **out, werk_err *err);
void        werk_dataset_free(werk_dataset *ds); // NULL ok
int64_t     werk_dataset_n_rows(const werk_dataset *ds);
int64_t     werk_dataset_seq(const werk_dataset *ds);
void        werk_dataset_get_stats(const werk_dataset *ds, werk_dataset_stats *st);
/* Copies row i (0 <= i < n_rows) into seq-long arrays (a NULL array is not copied). */
void werk_dataset_row(const werk_dataset *ds, int64_t i, int32_t *tokens, int32_t *targets, int32_t *pos,
                      int32_t *doc);
/* Moves a seeded random fraction of ds's rows (at least one, at most all but one) into a
 * new dataset *val; ds keeps the rest, both in their original order. */
werk_status werk_dataset_split(werk_dataset *ds, double frac, uint64_t seed, werk_dataset **val, werk_err *err);
/* perm[0..n) = a permutation of 0..n-1 drawn from (seed, epoch): the row order of an epoch. */
void werk_dataset_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch);
/* SHA-256 (hex) of the file's bytes as read, for provenance. */
const char *werk_dataset_hash(const werk_dataset *ds);

#endif
