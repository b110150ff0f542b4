/* convert/spm_model.c - SentencePiece tokenizer.model (protobuf ModelProto) reader and writer
 *
 * Owns the protobuf wire format for the one message werk needs: sentencepiece's
 * ModelProto (src/sentencepiece_model.proto, proto2). A minimal hand-written decoder and
 * encoder; no protobuf library. The reader treats the file as hostile: every varint is at
 * most 10 bytes, every length is checked against the bytes left in its enclosing message,
 * unknown fields are skipped, groups (wire types 3/4) are refused, and allocations are
 * bounded by the input size (a piece costs at least 2 bytes of input). The writer emits
 * what sentencepiece.SentencePieceProcessor needs to load a BPE model with byte fallback.
 *
 * Wire format (https://protobuf.dev/programming-guides/encoding/), each field:
 *   OFFSET  SIZE    DESCRIPTION
 *   0       1..5    tag varint: field_number << 3 | wire_type (field_number 1..2^29-1)
 *   k       ...     wire 0: varint (int32 negatives are 10-byte sign-extended varints)
 *                   wire 1: 8 bytes little-endian
 *                   wire 2: varint length L, then L bytes (strings, bytes, sub-messages)
 *                   wire 5: 4 bytes little-endian (float)
 *
 * Fields read and written (field number, wire type, meaning):
 *   ModelProto      1 (2) SentencePiece pieces, repeated     2 (2) TrainerSpec
 *                   3 (2) NormalizerSpec     (4 self_test_data, 5 denormalizer_spec: skipped)
 *   SentencePiece   1 (2) piece string, non-empty   2 (5) score float
 *                   3 (0) type: 1 NORMAL (default) 2 UNKNOWN 3 CONTROL 4 USER_DEFINED 5 UNUSED 6 BYTE
 *   TrainerSpec     3 (0) model_type (1 UNIGRAM default, 2 BPE, 3 WORD, 4 CHAR)
 *                   4 (0) vocab_size   24 (0) treat_whitespace_as_suffix
 *                   26 (0) allow_whitespace_only_pieces   35 (0) byte_fallback
 *                   40..43 (0) unk_id bos_id eos_id pad_id (defaults 0 1 2 -1)
 *                   45..48 (2) unk_piece bos_piece eos_piece pad_piece (written only)
 *   NormalizerSpec  1 (2) name   3 (0) add_dummy_prefix   4 (0) remove_extra_whitespaces
 *                   5 (0) escape_whitespaces   (defaults true)
 */
#include "convert/tokenizer_int.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

// ---- model lifetime ---------------------------------------------------------------

void werk_spm_model_init(werk_spm_model *m) {
    memset(m, 0, sizeof(*m));
    m->model_type               = WERK_SPM_UNIGRAM;
    m->unk_id                   = 0;
    m->bos_id                   = 1;
    m->eos_id                   = 2;
    m->pad_id                   = -1;
    m->normalizer_name          = "";
    m->add_dummy_prefix         = true;
    m->remove_extra_whitespaces = true;
    m->escape_whitespaces       = true;
    werk_arena_init(&m->arena);
}

void werk_spm_model_free(werk_spm_model *m) {
    if (!m) {
        return;
    }
    werk_arena_free(&m->arena);
    werk_spm_model_init(m);
}

// ---- decoder ------------------------------------------------------------------------

typedef struct pb_reader {
    const uint8_t *p;
    const uint8_t *end;
    const uint8_t *base; // start of the whole input, for offsets in messages
    const char    *name;
} pb_reader;

typedef struct pb_field {
    uint32_t       num;
    int            wire;
    uint64_t       v;    // wire 0, 1, 5
    const uint8_t *data; // wire 2
    uint64_t       len;  // wire 2
    size_t         off;  // offset of the tag in the input
} pb_field;

static werk_status pb_varint(pb_reader *r, uint64_t *out, werk_err *err) {
    uint64_t v   = 0;
    size_t   off = (size_t)(r->p - r->base);
    for (int i = 0; i < 10; i++) {
        if (r->p >= r->end) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: truncated varint at offset %zu", r->name, off);
        }
        uint8_t b = *r->p++;
        if (i == 9 && b > 1) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: varint at offset %zu overflows 64 bits", r->name, off);
        }
        v |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *out = v;
            return WERK_OK;
        }
    }
    return WERK_FAIL(err, WERK_E_FORMAT, "%s: varint at offset %zu longer than 10 bytes", r->name, off);
}

static uint64_t load_le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

/* Reads the next field of the message in r (r->p < r->end). */
static werk_status pb_next(pb_reader *r, pb_field *f, werk_err *err) {
    memset(f, 0, sizeof(*f));
    f->off = (size_t)(r->p - r->base);
    uint64_t    tag;
    werk_status s = pb_varint(r, &tag, err);
    if (s != WERK_OK) {
        return s;
    }
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1fffffffu) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: bad field number %" PRIu64 " at offset %zu", r->name,
                         tag >> 3, f->off);
    }
    f->num      = (uint32_t)(tag >> 3);
    f->wire     = (int)(tag & 7);
    size_t left = (size_t)(r->end - r->p);
    switch (f->wire) {
    case 0:
        return pb_varint(r, &f->v, err);
    case 1:
    case 5: {
        size_t k = f->wire == 1 ? 8 : 4;
        if (left < k) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: field %u at offset %zu: %zu-byte value truncated",
                             r->name, f->num, f->off, k);
        }
        f->v = load_le(r->p, (int)k);
        r->p += k;
        return WERK_OK;
    }
    case 2:
        s = pb_varint(r, &f->len, err);
        if (s != WERK_OK) {
            return s;
        }
        left = (size_t)(r->end - r->p);
        if (f->len > left) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: field %u at offset %zu: length %" PRIu64 " exceeds the %zu bytes left",
                             r->name, f->num, f->off, f->len, left);
        }
        f->data = r->p;
        r->p += f->len;
        return WERK_OK;
    default:
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field %u at offset %zu: unsupported wire type %d", r->name,
                         f->num, f->off, f->wire);
    }
}

static werk_status
pb_expect(const pb_reader *r, const pb_field *f, int wire, const char *what, werk_err *err) {
    if (f->wire != wire) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: %s (field %u) at offset %zu has wire type %d, expected %d",
                         r->name, what, f->num, f->off, f->wire, wire);
    }
    return WERK_OK;
}

static pb_reader pb_sub(const pb_reader *r, const pb_field *f) {
    pb_reader s = {f->data, f->data + f->len, r->base, r->name};
    return s;
}

static float f32_from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static werk_status
parse_piece(const pb_reader *outer, const pb_field *pf, werk_spm_model *m, int64_t i, werk_err *err) {
    pb_reader      r     = pb_sub(outer, pf);
    const uint8_t *piece = NULL;
    uint64_t       len   = 0;
    float          score = 0.0f;
    int32_t        type  = WERK_TOKEN_NORMAL;
    while (r.p < r.end) {
        pb_field    f;
        werk_status s = pb_next(&r, &f, err);
        if (s != WERK_OK) {
            return s;
        }
        if (f.num == 1) {
            if ((s = pb_expect(&r, &f, 2, "piece", err)) != WERK_OK) {
                return s;
            }
            piece = f.data;
            len   = f.len;
        } else if (f.num == 2) {
            if ((s = pb_expect(&r, &f, 5, "score", err)) != WERK_OK) {
                return s;
            }
            score = f32_from_bits((uint32_t)f.v);
        } else if (f.num == 3) {
            if ((s = pb_expect(&r, &f, 0, "type", err)) != WERK_OK) {
                return s;
            }
            if (f.v < WERK_TOKEN_NORMAL || f.v > WERK_TOKEN_BYTE) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s: piece %" PRId64 " has unknown type %" PRIu64,
                                 r.name, i, f.v);
            }
            type = (int32_t)f.v;
        }
    }
    if (len == 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: piece %" PRId64 " (offset %zu) is empty", outer->name, i,
                         pf->off);
    }
    char *copy = werk_arena_strndup(&m->arena, (const char *)piece, (size_t)len);
    if (!copy) {
        return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", outer->name);
    }
    m->pieces[i] = copy;
    m->lens[i]   = len;
    m->scores[i] = score;
    m->types[i]  = type;
    return WERK_OK;
}

static werk_status
parse_bool(const pb_reader *r, const pb_field *f, const char *what, bool *out, werk_err *err) {
    werk_status s = pb_expect(r, f, 0, what, err);
    if (s == WERK_OK) {
        *out = f->v != 0;
    }
    return s;
}

static werk_status
parse_trainer(const pb_reader *outer, const pb_field *tf, werk_spm_model *m, werk_err *err) {
    pb_reader r = pb_sub(outer, tf);
    while (r.p < r.end) {
        pb_field    f;
        werk_status s = pb_next(&r, &f, err);
        if (s != WERK_OK) {
            return s;
        }
        switch (f.num) {
        case 3:
            if ((s = pb_expect(&r, &f, 0, "trainer_spec.model_type", err)) != WERK_OK) {
                return s;
            }
            if (f.v < WERK_SPM_UNIGRAM || f.v > WERK_SPM_CHAR) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s: unknown trainer_spec.model_type %" PRIu64, r.name,
                                 f.v);
            }
            m->model_type = (int32_t)f.v;
            break;
        case 24:
            s = parse_bool(&r, &f, "trainer_spec.treat_whitespace_as_suffix", &m->treat_whitespace_as_suffix,
                           err);
            break;
        case 26:
            s = parse_bool(&r, &f, "trainer_spec.allow_whitespace_only_pieces",
                           &m->allow_whitespace_only_pieces, err);
            break;
        case 35:
            s = parse_bool(&r, &f, "trainer_spec.byte_fallback", &m->byte_fallback, err);
            break;
        case 40:
        case 41:
        case 42:
        case 43: {
            static const char *const names[] = {"unk_id", "bos_id", "eos_id", "pad_id"};
            if ((s = pb_expect(&r, &f, 0, names[f.num - 40], err)) != WERK_OK) {
                return s;
            }
            int32_t  v       = (int32_t)(uint32_t)f.v; // int32 semantics: low 32 bits
            int32_t *dst[]   = {&m->unk_id, &m->bos_id, &m->eos_id, &m->pad_id};
            *dst[f.num - 40] = v;
            break;
        }
        default:
            break;
        }
        if (s != WERK_OK) {
            return s;
        }
    }
    return WERK_OK;
}

static werk_status
parse_normalizer(const pb_reader *outer, const pb_field *nf, werk_spm_model *m, werk_err *err) {
    pb_reader r = pb_sub(outer, nf);
    while (r.p < r.end) {
        pb_field    f;
        werk_status s = pb_next(&r, &f, err);
        if (s != WERK_OK) {
            return s;
        }
        switch (f.num) {
        case 1: {
            if ((s = pb_expect(&r, &f, 2, "normalizer_spec.name", err)) != WERK_OK) {
                return s;
            }
            char *name = werk_arena_strndup(&m->arena, (const char *)f.data, (size_t)f.len);
            if (!name) {
                return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory", r.name);
            }
            m->normalizer_name = name;
            break;
        }
        case 3:
            s = parse_bool(&r, &f, "normalizer_spec.add_dummy_prefix", &m->add_dummy_prefix, err);
            break;
        case 4:
            s = parse_bool(&r, &f, "normalizer_spec.remove_extra_whitespaces", &m->remove_extra_whitespaces,
                           err);
            break;
        case 5:
            s = parse_bool(&r, &f, "normalizer_spec.escape_whitespaces", &m->escape_whitespaces, err);
            break;
        default:
            break;
        }
        if (s != WERK_OK) {
            return s;
        }
    }
    return WERK_OK;
}

static werk_status
parse_model(const uint8_t *data, size_t size, const char *name, werk_spm_model *m, werk_err *err) {
    // Pass 1: frame the top-level fields and count the pieces.
    pb_reader   r = {data, data + size, data, name};
    int64_t     n = 0;
    werk_status s;
    while (r.p < r.end) {
        pb_field f;
        if ((s = pb_next(&r, &f, err)) != WERK_OK) {
            return s;
        }
        if (f.num == 1) {
            if ((s = pb_expect(&r, &f, 2, "pieces", err)) != WERK_OK) {
                return s;
            }
            n++;
        }
    }
    if (n > INT32_MAX) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: %" PRId64 " pieces (more than 2^31-1)", name, n);
    }
    // Each piece took at least 2 input bytes, so these allocations are bounded by size.
    size_t un = (size_t)n;
    if (n > 0) {
        m->pieces = werk_arena_alloc(&m->arena, un * sizeof(*m->pieces));
        m->lens   = werk_arena_alloc(&m->arena, un * sizeof(*m->lens));
        m->scores = werk_arena_alloc(&m->arena, un * sizeof(*m->scores));
        m->types  = werk_arena_alloc(&m->arena, un * sizeof(*m->types));
        if (!m->pieces || !m->lens || !m->scores || !m->types) {
            return WERK_FAIL(err, WERK_E_OOM, "%s: out of memory for %" PRId64 " pieces", name, n);
        }
    }
    // Pass 2: decode.
    r         = (pb_reader){data, data + size, data, name};
    int64_t i = 0;
    while (r.p < r.end) {
        pb_field f;
        if ((s = pb_next(&r, &f, err)) != WERK_OK) {
            return s;
        }
        if (f.num == 1) {
            s = parse_piece(&r, &f, m, i++, err);
        } else if (f.num == 2) {
            s = pb_expect(&r, &f, 2, "trainer_spec", err);
            if (s == WERK_OK) {
                s = parse_trainer(&r, &f, m, err);
            }
        } else if (f.num == 3) {
            s = pb_expect(&r, &f, 2, "normalizer_spec", err);
            if (s == WERK_OK) {
                s = parse_normalizer(&r, &f, m, err);
            }
        }
        if (s != WERK_OK) {
            return s;
        }
    }
    m->n_pieces = n;
    return WERK_OK;
}

werk_status
werk_spm_model_parse(const void *data, size_t size, const char *name, werk_spm_model *m, werk_err *err) {
    if (!name) {
        name = "tokenizer.model";
    }
    werk_status s = parse_model(data, size, name, m, err);
    if (s != WERK_OK) {
        werk_spm_model_free(m);
    }
    return s;
}

werk_status werk_spm_model_read(const char *path, werk_spm_model *m, werk_err *err) {
    werk_mmap   map;
    werk_status s = werk_mmap_open(&map, path, err);
    if (s != WERK_OK) {
        return s;
    }
    if (map.size > WERK_SPM_MODEL_MAX) {
        s = WERK_FAIL(err, WERK_E_FORMAT, "%s: file too large for a tokenizer.model (%zu bytes, limit %u)",
                      path, map.size, WERK_SPM_MODEL_MAX);
    } else {
        s = werk_spm_model_parse(map.data, map.size, path, m, err);
    }
    werk_mmap_close(&map);
    return s;
}

// ---- encoder ------------------------------------------------------------------------

/* A writer that only counts when p is NULL, so one function gives both size and bytes. */
typedef struct pb_writer {
    uint8_t *p;
    size_t   n;
} pb_writer;

static void w_byte(pb_writer *w, uint8_t b) {
    if (w->p) {
        w->p[w->n] = b;
    }
    w->n++;
}

static void w_varint(pb_writer *w, uint64_t v) {
    while (v >= 0x80) {
        w_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    w_byte(w, (uint8_t)v);
}

static void w_tag(pb_writer *w, uint32_t num, int wire) { w_varint(w, (uint64_t)num << 3 | (uint64_t)wire); }

static void w_bytes(pb_writer *w, uint32_t num, const void *data, size_t len) {
    w_tag(w, num, 2);
    w_varint(w, len);
    if (w->p && len) {
        memcpy(w->p + w->n, data, len);
    }
    w->n += len;
}

static void w_int32(pb_writer *w, uint32_t num, int32_t v) {
    w_tag(w, num, 0);
    w_varint(w, (uint64_t)(int64_t)v); // negatives: 10-byte sign extension, as protobuf does
}

static void w_bool(pb_writer *w, uint32_t num, bool v) {
    w_tag(w, num, 0);
    w_byte(w, v ? 1 : 0);
}

static void w_float(pb_writer *w, uint32_t num, float x) {
    uint32_t u = f32_bits(x);
    w_tag(w, num, 5);
    for (int i = 0; i < 4; i++) {
        w_byte(w, (uint8_t)(u >> (8 * i)));
    }
}

/* Writes a sub-message: counts its body first, then writes length + body. */
typedef void (*pb_body_fn)(pb_writer *w, const werk_spm_model *m, int64_t i);

static void w_message(pb_writer *w, uint32_t num, pb_body_fn body, const werk_spm_model *m, int64_t i) {
    pb_writer count = {NULL, 0};
    body(&count, m, i);
    w_tag(w, num, 2);
    w_varint(w, count.n);
    if (w->p) {
        pb_writer sub = {w->p + w->n, 0};
        body(&sub, m, i);
    }
    w->n += count.n;
}

static void piece_body(pb_writer *w, const werk_spm_model *m, int64_t i) {
    w_bytes(w, 1, m->pieces[i], (size_t)m->lens[i]);
    w_float(w, 2, m->scores[i]);
    w_int32(w, 3, m->types[i]);
}

static void special_piece(pb_writer *w, const werk_spm_model *m, uint32_t num, int32_t id) {
    if (id >= 0 && id < m->n_pieces) {
        w_bytes(w, num, m->pieces[id], (size_t)m->lens[id]);
    }
}

static void trainer_body(pb_writer *w, const werk_spm_model *m, int64_t unused) {
    (void)unused;
    w_int32(w, 3, m->model_type);
    w_int32(w, 4, (int32_t)m->n_pieces);
    w_bool(w, 24, m->treat_whitespace_as_suffix);
    w_bool(w, 26, m->allow_whitespace_only_pieces);
    w_bool(w, 35, m->byte_fallback);
    w_int32(w, 40, m->unk_id);
    w_int32(w, 41, m->bos_id);
    w_int32(w, 42, m->eos_id);
    w_int32(w, 43, m->pad_id);
    special_piece(w, m, 45, m->unk_id);
    special_piece(w, m, 46, m->bos_id);
    special_piece(w, m, 47, m->eos_id);
    special_piece(w, m, 48, m->pad_id);
}

static void normalizer_body(pb_writer *w, const werk_spm_model *m, int64_t unused) {
    (void)unused;
    const char *name = m->normalizer_name ? m->normalizer_name : "";
    if (*name) {
        w_bytes(w, 1, name, strlen(name));
    }
    w_bool(w, 3, m->add_dummy_prefix);
    w_bool(w, 4, m->remove_extra_whitespaces);
    w_bool(w, 5, m->escape_whitespaces);
}

static void model_body(pb_writer *w, const werk_spm_model *m) {
    for (int64_t i = 0; i < m->n_pieces; i++) {
        w_message(w, 1, piece_body, m, i);
    }
    w_message(w, 2, trainer_body, m, 0);
    w_message(w, 3, normalizer_body, m, 0);
}

werk_status werk_spm_model_encode(const werk_spm_model *m, uint8_t **out, size_t *size, werk_err *err) {
    *out  = NULL;
    *size = 0;
    if (m->n_pieces < 0 || m->n_pieces > INT32_MAX) {
        return WERK_FAIL(err, WERK_E_ARG, "tokenizer.model: bad piece count %" PRId64, m->n_pieces);
    }
    // Validate and bound the size before counting (each piece: <= 32 bytes of framing).
    uint64_t total = 4096;
    for (int64_t i = 0; i < m->n_pieces; i++) {
        if (m->lens[i] == 0) {
            return WERK_FAIL(err, WERK_E_ARG, "tokenizer.model: piece %" PRId64 " is empty", i);
        }
        if (m->types[i] < WERK_TOKEN_NORMAL || m->types[i] > WERK_TOKEN_BYTE) {
            return WERK_FAIL(err, WERK_E_ARG, "tokenizer.model: piece %" PRId64 " has bad type %d", i,
                             (int)m->types[i]);
        }
        if (!werk_add_u64(total, m->lens[i], &total) || !werk_add_u64(total, 32, &total)) {
            return WERK_FAIL(err, WERK_E_ARG, "tokenizer.model: pieces too large");
        }
    }
    if (total > SIZE_MAX / 2) {
        return WERK_FAIL(err, WERK_E_ARG, "tokenizer.model: pieces too large");
    }
    pb_writer count = {NULL, 0};
    model_body(&count, m);
    uint8_t *buf = werk_malloc(count.n ? count.n : 1);
    if (!buf) {
        return WERK_FAIL(err, WERK_E_OOM, "tokenizer.model: out of memory for %zu bytes", count.n);
    }
    pb_writer w = {buf, 0};
    model_body(&w, m);
    WERK_ASSERT(w.n == count.n);
    *out  = buf;
    *size = w.n;
    return WERK_OK;
}

werk_status werk_spm_model_write(const char *path, const werk_spm_model *m, werk_err *err) {
    uint8_t    *buf;
    size_t      n;
    werk_status s = werk_spm_model_encode(m, &buf, &n, err);
    if (s != WERK_OK) {
        werk_err_prefix(err, "%s", path);
        return s;
    }
    s = werk_write_file_atomic(path, buf, n, err);
    free(buf);
    return s;
}
