/* convert/gguf_int.h - private glue between gguf.c, gguf_read.c and gguf_write.c
 *
 * Not for use outside convert/gguf_*.c: the limits every GGUF reader/writer path shares
 * and the one setter the reader needs that the public API does not offer (where a
 * werk_gguf came from).
 */
#ifndef WERK_GGUF_INT_H
#define WERK_GGUF_INT_H

#include "convert/convert.h"

#define WERK_GGUF_MAGIC "GGUF"
#define WERK_GGUF_DEFAULT_ALIGNMENT 32u
/* general.alignment above this is refused: no real file uses more than a page or two,
 * and a huge value would make padding a way to point past the file. */
#define WERK_GGUF_MAX_ALIGNMENT (1u << 20)
/* Tensor names are shorter than this in a GGUF llama.cpp loads (ggml's GGML_MAX_NAME,
 * counting the NUL). The reader accepts longer ones; the writer refuses them. */
#define WERK_GGUF_MAX_NAME 64
/* Nesting of arrays inside arrays (GGUF allows it; real files use one level at most). */
#define WERK_GGUF_MAX_DEPTH 8

/* Records the file a werk_gguf was read from (copied) and its GGUF version. */
werk_status werk_gguf_set_origin(werk_gguf *g, const char *path, uint32_t version, werk_err *err);

/* Size in bytes of one element of a scalar GGUF value type (bool: 1), 0 for STRING,
 * ARRAY and unknown types. */
size_t werk_gguf_type_size(werk_gguf_type t);

/* Name of a GGUF value type ("u32", "string", "array", ...), "?" if unknown. */
const char *werk_gguf_type_name(werk_gguf_type t);

#endif
