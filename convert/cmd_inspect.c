/* convert/cmd_inspect.c - the `werk inspect` command: what is in a model file
 *
 *   werk inspect FILE [--json] [--hash] [--full]
 *
 * FILE: .gguf, .safetensors (a single file or an index), or anything `werk convert`
 * reads. Prints metadata and the tensor table (name, type, shape, bytes). --hash adds
 * the SHA-256 of every tensor's bytes (what tests compare against independent readers);
 * --full prints whole arrays instead of their first elements. --json prints one JSON
 * object: {"format", "metadata": {...}, "tensors": [{"name","type","shape","nbytes",
 * "sha256"?}]}; GGUF arrays print as JSON arrays (strings as strings), 64-bit integers
 * as numbers when exact in a double and as strings otherwise.
 */
#include "convert/convert.h"
#include "convert/gguf_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f, "usage: werk inspect FILE [--json] [--hash] [--full]\n"
               "\n"
               "  FILE     .gguf, .safetensors, model.safetensors.index.json, HF dir, llama2.c .bin\n"
               "  --json   one JSON object on stdout\n"
               "  --hash   SHA-256 of every tensor's bytes\n"
               "  --full   whole metadata arrays (default: first 8 elements)\n");
}

static bool has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static void sha256_hex(const void *data, uint64_t n, char hex[65]) {
    werk_sha256 s;
    werk_sha256_init(&s);
    werk_sha256_update(&s, data, (size_t)n);
    uint8_t d[32];
    werk_sha256_final(&s, d);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    }
}

static const char *gguf_type_name(werk_gguf_type t) {
    static const char *const names[WERK_GGUF_TYPE_COUNT] = {
        "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"};
    return (unsigned)t < WERK_GGUF_TYPE_COUNT ? names[t] : "?";
}

/* One scalar element of type t at p, as JSON. */
static cJSON *scalar_json(werk_gguf_type t, const void *p) {
    switch (t) {
    case WERK_GGUF_UINT8:
        return cJSON_CreateNumber(*(const uint8_t *)p);
    case WERK_GGUF_INT8:
        return cJSON_CreateNumber(*(const int8_t *)p);
    case WERK_GGUF_UINT16:
        return cJSON_CreateNumber(*(const uint16_t *)p);
    case WERK_GGUF_INT16:
        return cJSON_CreateNumber(*(const int16_t *)p);
    case WERK_GGUF_UINT32:
        return cJSON_CreateNumber(*(const uint32_t *)p);
    case WERK_GGUF_INT32:
        return cJSON_CreateNumber(*(const int32_t *)p);
    case WERK_GGUF_FLOAT32:
        return cJSON_CreateNumber(*(const float *)p);
    case WERK_GGUF_BOOL:
        return cJSON_CreateBool(*(const uint8_t *)p != 0);
    case WERK_GGUF_FLOAT64:
        return cJSON_CreateNumber(*(const double *)p);
    case WERK_GGUF_UINT64:
    case WERK_GGUF_INT64: {
        char     buf[32];
        uint64_t u = *(const uint64_t *)p;
        if (t == WERK_GGUF_INT64) {
            int64_t v = (int64_t)u;
            if (v > -(INT64_C(1) << 53) && v < (INT64_C(1) << 53)) {
                return cJSON_CreateNumber((double)v);
            }
            snprintf(buf, sizeof(buf), "%" PRId64, v);
        } else {
            if (u < (UINT64_C(1) << 53)) {
                return cJSON_CreateNumber((double)u);
            }
            snprintf(buf, sizeof(buf), "%" PRIu64, u);
        }
        return cJSON_CreateString(buf);
    }
    default:
        return cJSON_CreateNull();
    }
}

static cJSON *value_json(const werk_gguf_value *v, bool full) {
    if (v->type == WERK_GGUF_STRING) {
        return cJSON_CreateString(v->str.data);
    }
    if (v->type != WERK_GGUF_ARRAY) {
        return scalar_json(v->type, &v->u8);
    }
    cJSON   *a = cJSON_CreateArray();
    uint64_t n = v->arr.n;
    if (!full && n > 8) {
        n = 8;
    }
    for (uint64_t i = 0; i < n; i++) {
        cJSON *e;
        if (v->arr.elem_type == WERK_GGUF_STRING) {
            e = cJSON_CreateString(((const werk_gguf_str *)v->arr.data)[i].data);
        } else if (v->arr.elem_type == WERK_GGUF_ARRAY) {
            e = value_json(&((const werk_gguf_value *)v->arr.data)[i], full);
        } else {
            e = scalar_json(v->arr.elem_type,
                            (const uint8_t *)v->arr.data + i * werk_gguf_type_size(v->arr.elem_type));
        }
        cJSON_AddItemToArray(a, e);
    }
    return a;
}

static void print_value_text(const werk_gguf_value *v, bool full) {
    if (v->type == WERK_GGUF_ARRAY) {
        printf("[%s x %" PRIu64 "] ", gguf_type_name(v->arr.elem_type), v->arr.n);
    }
    cJSON *j = value_json(v, full);
    char  *s = cJSON_PrintUnformatted(j);
    if (s) {
        size_t n = strlen(s);
        if (!full && n > 200) {
            printf("%.200s...", s);
        } else {
            fputs(s, stdout);
        }
        free(s);
    }
    if (v->type == WERK_GGUF_ARRAY && !full && v->arr.n > 8) {
        printf(" (first 8)");
    }
    cJSON_Delete(j);
}

typedef struct inspect_row {
    const char    *name;
    const char    *type;
    int            n_dims;
    const int64_t *shape;
    const void    *data;
    uint64_t       nbytes;
} inspect_row;

static cJSON *tensor_json(const inspect_row *r, bool hash) {
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "name", r->name);
    cJSON_AddStringToObject(t, "type", r->type);
    cJSON *shape = cJSON_AddArrayToObject(t, "shape");
    for (int d = 0; d < r->n_dims; d++) {
        cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)r->shape[d]));
    }
    cJSON_AddNumberToObject(t, "nbytes", (double)r->nbytes);
    if (hash) {
        char hex[65];
        sha256_hex(r->data, r->nbytes, hex);
        cJSON_AddStringToObject(t, "sha256", hex);
    }
    return t;
}

static void tensor_text(const inspect_row *r, bool hash) {
    char shape[96] = "";
    int  off       = 0;
    for (int d = 0; d < r->n_dims && off < (int)sizeof(shape) - 24; d++) {
        off += snprintf(shape + off, sizeof(shape) - (size_t)off, d ? ", %" PRId64 : "%" PRId64, r->shape[d]);
    }
    printf("%-40s %-6s [%s] %" PRIu64 " bytes", r->name, r->type, shape, r->nbytes);
    if (hash) {
        char hex[65];
        sha256_hex(r->data, r->nbytes, hex);
        printf(" sha256 %s", hex);
    }
    printf("\n");
}

static int inspect_safetensors(const char *path, bool json, bool hash) {
    werk_err    err = {0};
    werk_st    *st  = NULL;
    werk_status s   = werk_st_read_any(path, &st, &err);
    if (s) {
        return werk_err_report(&err);
    }
    cJSON *root = json ? cJSON_CreateObject() : NULL;
    cJSON *arr  = NULL;
    if (json) {
        cJSON_AddStringToObject(root, "format", "safetensors");
        arr = cJSON_AddArrayToObject(root, "tensors");
    } else {
        printf("format: safetensors, %" PRId64 " tensors\n", werk_st_n_tensors(st));
    }
    for (int64_t i = 0; i < werk_st_n_tensors(st); i++) {
        const werk_st_tensor *t = werk_st_tensor_at(st, i);
        inspect_row r = {t->name, werk_dtype_name(t->type), t->n_dims, t->shape, t->data, t->nbytes};
        if (json) {
            cJSON_AddItemToArray(arr, tensor_json(&r, hash));
        } else {
            tensor_text(&r, hash);
        }
    }
    if (json) {
        char *out = cJSON_PrintUnformatted(root);
        puts(out);
        free(out);
        cJSON_Delete(root);
    }
    werk_st_free(st);
    return 0;
}

int werk_cmd_inspect(int argc, char **argv) {
    const char *in   = NULL;
    bool        json = false, hash = false, full = false;
    werk_err    err  = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "--hash") == 0) {
            hash = true;
        } else if (strcmp(argv[i], "--full") == 0) {
            full = true;
        } else if (argv[i][0] == '-') {
            WERK_FAIL(&err, WERK_E_ARG, "inspect: unknown option '%s'", argv[i]);
            return werk_err_report(&err);
        } else if (!in) {
            in = argv[i];
        } else {
            WERK_FAIL(&err, WERK_E_ARG, "inspect: unexpected argument '%s'", argv[i]);
            return werk_err_report(&err);
        }
    }
    if (!in) {
        usage(stderr);
        return 2;
    }
    if (has_suffix(in, ".safetensors") || has_suffix(in, ".safetensors.index.json")) {
        return inspect_safetensors(in, json, hash);
    }
    werk_gguf  *g = NULL;
    werk_status s = werk_convert_open(in, NULL, &g, &err);
    if (s) {
        return werk_err_report(&err);
    }
    cJSON *root = NULL, *meta = NULL, *arr = NULL;
    if (json) {
        root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "format", "gguf");
        cJSON_AddNumberToObject(root, "version", werk_gguf_version(g));
        meta = cJSON_AddObjectToObject(root, "metadata");
        arr  = cJSON_AddArrayToObject(root, "tensors");
    } else {
        printf("format: gguf v%u, %" PRId64 " metadata keys, %" PRId64 " tensors\n", werk_gguf_version(g),
               werk_gguf_n_kv(g), werk_gguf_n_tensors(g));
    }
    for (int64_t i = 0; i < werk_gguf_n_kv(g); i++) {
        const werk_gguf_kv *kv = werk_gguf_kv_at(g, i);
        if (json) {
            cJSON_AddItemToObject(meta, kv->key, value_json(&kv->value, true));
        } else {
            printf("%-45s %-4s ", kv->key, gguf_type_name(kv->value.type));
            print_value_text(&kv->value, full);
            printf("\n");
        }
    }
    for (int64_t i = 0; i < werk_gguf_n_tensors(g); i++) {
        const werk_gguf_tensor *t = werk_gguf_tensor_at(g, i);
        inspect_row r = {t->name, werk_dtype_name(t->src_type), t->n_dims, t->shape, t->data, t->nbytes};
        if (json) {
            cJSON_AddItemToArray(arr, tensor_json(&r, hash));
        } else {
            tensor_text(&r, hash);
        }
    }
    if (json) {
        char *out = cJSON_PrintUnformatted(root);
        puts(out);
        free(out);
        cJSON_Delete(root);
    }
    werk_gguf_free(g);
    return 0;
}
