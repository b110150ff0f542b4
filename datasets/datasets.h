/* datasets/datasets.h - public API of werk's datasets module (JSONL records -> token ids)
 *
 * Owns: reading .jsonl and .jsonl.zst files line by line (each line bounded in length,
 * valid UTF-8, parsed with werk_json_parse) and turning each record into token ids plus
 * per-token labels (HF convention: a label of -100 is not scored; labels are shifted by
 * the consumer, so label[t] is the target predicted at position t-1).
 *
 * Record formats (one JSON object per line; blank lines are skipped):
 *   {"text": S}                          BOS + S; every token scored
 *   {"prompt": P, "completion": C}       BOS + P + C; only C's tokens scored (no EOS added)
 *   {"input_ids": [..], "labels": [..]}  pre-tokenized; labels optional (= input_ids)
 *   {"messages": [{"role","content"}..]} rendered in the chat style set with
 *                                        werk_datasets_set_chat_template (gemma, chatml, llama3);
 *                                        only assistant contents + their end-of-turn token scored;
 *                                        WERK_E_UNSUPPORTED without a known style
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
    int64_t  line; // 1-based line of the file the record came from
} werk_record;

typedef struct werk_jsonl werk_jsonl;

typedef enum werk_chat_style {
    WERK_CHAT_NONE = 0,
    WERK_CHAT_GEMMA,
    WERK_CHAT_CHATML,
    WERK_CHAT_LLAMA3
} werk_chat_style;

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

#endif
