/* convert/hf_config.c - HF config.json <-> hyper-parameters <-> GGUF keys
 *
 * Reads config.json (untrusted: every field type- and range-checked) into werk_hf_hparams,
 * writes them as the GGUF keys llama.cpp's convert_hf_to_gguf.py writes, reads them back
 * from a GGUF, and prints config.json / generation_config.json that transformers loads.
 *
 * config.json field          GGUF key (<a> = general.architecture)
 * -------------------------  ---------------------------------------------------------
 * max_position_embeddings    <a>.context_length
 * hidden_size                <a>.embedding_length
 * num_hidden_layers          <a>.block_count
 * intermediate_size          <a>.feed_forward_length
 * num_attention_heads        <a>.attention.head_count
 * num_key_value_heads        <a>.attention.head_count_kv
 * rms_norm_eps               <a>.attention.layer_norm_rms_epsilon
 * rope theta (full layers)   <a>.rope.freq_base
 * rope theta (sliding)       <a>.rope.freq_base_swa        (gemma3)
 * rope linear factor         <a>.rope.scaling.type/.factor
 * head_dim                   <a>.attention.key_length/value_length (qwen3, gemma3; others
 *                            only when head_dim != hidden_size / num_attention_heads)
 * head_dim                   <a>.rope.dimension_count      (llama)
 * vocab_size                 <a>.vocab_size
 * sliding_window             <a>.attention.sliding_window  (gemma3)
 * final_logit_softcapping    <a>.final_logit_softcapping   (gemma3, when set)
 * bos/eos/pad_token_id       tokenizer.ggml.{bos,eos,padding}_token_id (only if the
 *                            tokenizer files did not set them)
 *
 * RoPE base: transformers-5 `rope_parameters` (flat {rope_theta, rope_type} or, for
 * gemma3, per layer type {full_attention: {...}, sliding_attention: {...}}) wins over the
 * older `rope_theta` / `rope_local_base_freq` / `rope_scaling`, as in transformers 5.
 * gemma3 in llama.cpp (llama-model.cpp, LLM_ARCH_GEMMA3): sliding-window pattern 6 (every
 * 6th layer is full attention), local RoPE base 10000 unless <a>.rope.freq_base_swa says
 * otherwise (current convert_hf_to_gguf.py writes that key from rope_parameters), query
 * scale 1/sqrt(head_dim). Configs that disagree are converted with a warning.
 */
#include "convert/hf_int.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DIM (1 << 24) // any one dimension (vocab, hidden, ffn); the largest real ones are ~1M
#define MAX_LAYERS 4096
#define MAX_HEADS 4096
#define GEMMA3_SWA_PATTERN 6
#define GEMMA3_LOCAL_BASE 10000.0f

// ---- reading config.json ---------------------------------------------------------------------

typedef struct cfg {
    const cJSON *root;
    const cJSON *text; // text_config (multimodal wrappers), searched first; may be NULL
    const char  *what;
} cfg;

static const cJSON *field(const cfg *c, const char *key) {
    const cJSON *v = c->text ? cJSON_GetObjectItemCaseSensitive(c->text, key) : NULL;
    if (!v) {
        v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    }
    return v;
}

static const char *json_kind(const cJSON *v) {
    if (cJSON_IsNumber(v)) {
        return "a number";
    } else if (cJSON_IsString(v)) {
        return "a string";
    } else if (cJSON_IsBool(v)) {
        return "a boolean";
    } else if (cJSON_IsArray(v)) {
        return "an array";
    } else if (cJSON_IsObject(v)) {
        return "an object";
    }
    return "null";
}

/* Integer field in [lo, hi]. Missing or null: *out = def if !required. */
static werk_status get_int(const cfg  *c,
                           const char *key,
                           bool        required,
                           int64_t     def,
                           int64_t     lo,
                           int64_t     hi,
                           int64_t    *out,
                           werk_err   *err) {
    const cJSON *v = field(c, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing field '%s'", c->what, key);
        }
        *out = def;
        return WERK_OK;
    }
    if (!cJSON_IsNumber(v)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' must be an integer (got %s)", c->what, key,
                         json_kind(v));
    }
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: field '%s' = %g is not an integer in [%" PRId64 ", %" PRId64 "]", c->what, key,
                         d, lo, hi);
    }
    *out = (int64_t)d;
    return WERK_OK;
}

/* Number field from object o (not the config root), finite and > 0. */
static werk_status get_pos_float_in(const cJSON *o,
                                    const char  *what,
                                    const char  *path,
                                    const char  *key,
                                    bool        *found,
                                    float       *out,
                                    werk_err    *err) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    *found         = false;
    if (!v || cJSON_IsNull(v)) {
        return WERK_OK;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || !(v->valuedouble > 0) ||
        !isfinite((float)v->valuedouble) || (float)v->valuedouble == 0.0f) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s%s' must be a positive number (got %s)", what,
                         path, key, cJSON_IsNumber(v) ? "a value out of range" : json_kind(v));
    }
    *out   = (float)v->valuedouble;
    *found = true;
    return WERK_OK;
}

static werk_status get_float(const cfg *c, const char *key, float def, float *out, werk_err *err) {
    bool        found = false;
    werk_status s     = get_pos_float_in(c->text, c->what, "", key, &found, out, err);
    if (s == WERK_OK && !found) {
        s = get_pos_float_in(c->root, c->what, "", key, &found, out, err);
    }
    if (s == WERK_OK && !found) {
        *out = def;
    }
    return s;
}

static werk_status get_bool(const cfg *c, const char *key, bool def, bool *out, werk_err *err) {
    const cJSON *v = field(c, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return WERK_OK;
    }
    if (!cJSON_IsBool(v)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' must be true or false (got %s)", c->what, key,
                         json_kind(v));
    }
    *out = cJSON_IsTrue(v);
    return WERK_OK;
}

/* String field or NULL if missing/null. */
static werk_status get_str(const cfg *c, const char *key, const char **out, werk_err *err) {
    const cJSON *v = field(c, key);
    *out           = NULL;
    if (!v || cJSON_IsNull(v)) {
        return WERK_OK;
    }
    if (!cJSON_IsString(v)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' must be a string (got %s)", c->what, key,
                         json_kind(v));
    }
    *out = v->valuestring;
    return WERK_OK;
}

/* Token id: integer, null, or a list of integers (eos in Llama 3 style configs: the first
 * one is taken). -1 when missing. */
static werk_status get_token_id(const cfg *c, const char *key, int64_t *out, werk_err *err) {
    const cJSON *v = field(c, key);
    *out           = -1;
    if (v && cJSON_IsArray(v)) {
        v = cJSON_GetArrayItem(v, 0);
        if (!v) {
            return WERK_OK;
        }
    }
    if (!v || cJSON_IsNull(v)) {
        return WERK_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || !(v->valuedouble >= 0) ||
        v->valuedouble >= (double)MAX_DIM) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' must be a token id (got %s)", c->what, key,
                         cJSON_IsNumber(v) ? "a number out of range" : json_kind(v));
    }
    *out = (int64_t)v->valuedouble;
    return WERK_OK;
}

static const char *const SUPPORTED =
    "LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM";

static werk_status detect_arch(const cfg *c, werk_hf_arch *arch, werk_err *err) {
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(c->root, "architectures");
    const char  *cls   = NULL;
    const char  *mtype = NULL;
    if (archs && !cJSON_IsNull(archs)) {
        if (!cJSON_IsArray(archs)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: field 'architectures' must be an array of strings (got %s)", c->what,
                             json_kind(archs));
        }
        const cJSON *a0 = cJSON_GetArrayItem(archs, 0);
        if (a0 && !cJSON_IsString(a0)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: field 'architectures' must be an array of strings",
                             c->what);
        }
        cls = a0 ? a0->valuestring : NULL;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c->root, "model_type");
    if (mt && !cJSON_IsNull(mt)) {
        if (!cJSON_IsString(mt)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: field 'model_type' must be a string (got %s)", c->what,
                             json_kind(mt));
        }
        mtype = mt->valuestring;
    }
    if (!cls && !mtype) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing field 'architectures' (and 'model_type')", c->what);
    }
    for (int a = 0; a < WERK_HF_ARCH_COUNT; a++) {
        const werk_hf_arch_info *ai = werk_hf_arch_get((werk_hf_arch)a);
        if ((cls && strcmp(cls, ai->hf_class) == 0) || (!cls && strcmp(mtype, ai->model_type) == 0)) {
            if (cls && mtype && strcmp(mtype, ai->model_type) != 0) {
                werk_log(WERK_LOG_WARN,
                         "%s: model_type '%s' does not match %s (expected '%s'); converting as %s", c->what,
                         mtype, cls, ai->model_type, ai->gguf_name);
            }
            *arch = (werk_hf_arch)a;
            return WERK_OK;
        }
    }
    return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                     "%s: architecture '%s' (model_type '%s') is not supported; werk converts %s", c->what,
                     cls ? cls : "?", mtype ? mtype : "?", SUPPORTED);
}

/* rope_parameters / rope_scaling object (or NULL) -> full and local parameter objects. */
static werk_status read_rope(const cfg *c, werk_hf_hparams *hp, werk_err *err) {
    const char  *key = "rope_parameters";
    const cJSON *rp  = field(c, key);
    if (!rp || cJSON_IsNull(rp)) {
        key = "rope_scaling";
        rp  = field(c, key);
    }
    if (rp && cJSON_IsNull(rp)) {
        rp = NULL;
    }
    if (rp && !cJSON_IsObject(rp)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' must be an object (got %s)", c->what, key,
                         json_kind(rp));
    }
    const cJSON *full = rp, *local = NULL;
    char         full_path[64] = "", local_path[64] = "";
    if (rp) {
        snprintf(full_path, sizeof(full_path), "%s.", key);
        const cJSON *fa = cJSON_GetObjectItemCaseSensitive(rp, "full_attention");
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(rp, "sliding_attention");
        if ((fa && !cJSON_IsObject(fa)) || (sa && !cJSON_IsObject(sa))) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%s' per layer type must hold objects", c->what,
                             key);
        }
        if (fa || sa) {
            full  = fa;
            local = sa;
            snprintf(full_path, sizeof(full_path), "%s.full_attention.", key);
            snprintf(local_path, sizeof(local_path), "%s.sliding_attention.", key);
        }
    }
    const werk_hf_arch_info *ai = werk_hf_arch_get(hp->arch);
    bool                     found;
    werk_status s = get_pos_float_in(full, c->what, full_path, "rope_theta", &found, &hp->rope_base, err);
    if (s == WERK_OK && !found) {
        s = get_float(c, "rope_theta", ai->rope_base_default, &hp->rope_base, err);
    }
    if (s) {
        return s;
    }
    s = get_pos_float_in(local, c->what, local_path, "rope_theta", &found, &hp->rope_base_local, err);
    if (s == WERK_OK && !found) {
        s = get_float(c, "rope_local_base_freq", GEMMA3_LOCAL_BASE, &hp->rope_base_local, err);
    }
    if (s) {
        return s;
    }
    // RoPE type per layer kind: only plain RoPE and linear scaling are supported.
    const cJSON *objs[2]  = {full, local};
    const char  *paths[2] = {full_path, local_path};
    for (int i = 0; i < 2; i++) {
        if (!objs[i]) {
            continue;
        }
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(objs[i], "rope_type");
        if (!t || cJSON_IsNull(t)) {
            t = cJSON_GetObjectItemCaseSensitive(objs[i], "type");
        }
        if (!t || cJSON_IsNull(t)) {
            continue;
        }
        if (!cJSON_IsString(t)) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: field '%srope_type' must be a string (got %s)", c->what,
                             paths[i], json_kind(t));
        }
        if (strcmp(t->valuestring, "default") == 0) {
            continue;
        }
        if (strcmp(t->valuestring, "linear") == 0 && i == 0) {
            float factor = 0;
            s            = get_pos_float_in(objs[i], c->what, paths[i], "factor", &found, &factor, err);
            if (s) {
                return s;
            }
            if (!found) {
                return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing field '%sfactor' for linear RoPE scaling",
                                 c->what, paths[i]);
            }
            if (factor != 1.0f) {
                hp->rope_scale = factor;
            }
            continue;
        }
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: RoPE type '%s' (%srope_type) is not supported",
                         c->what, t->valuestring, paths[i]);
    }
    return WERK_OK;
}

static werk_status check_act(const cfg *c, const char *key, const char *want, werk_err *err) {
    const char *act;
    werk_status s = get_str(c, key, &act, err);
    if (s == WERK_OK && act && strcmp(act, want) != 0) {
        s = WERK_FAIL(err, WERK_E_UNSUPPORTED,
                      "%s: %s '%s' is not supported for this architecture (expected '%s')", c->what, key, act,
                      want);
    }
    return s;
}

/* Gemma 3 switches llama.cpp does not read from the file: warn where the config disagrees
 * with what llama.cpp assumes, refuse what changes the math in ways werk cannot store. */
static werk_status read_gemma3(const cfg *c, werk_hf_hparams *hp, werk_err *err) {
    werk_status s = get_int(c, "sliding_window", false, 4096, 1, INT32_MAX, &hp->sliding_window, err);
    if (s) {
        return s;
    }
    const cJSON *sc = field(c, "attn_logit_softcapping");
    if (sc && !cJSON_IsNull(sc)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: attn_logit_softcapping is not supported for gemma3",
                         c->what);
    }
    hp->final_softcap = 0;
    s                 = get_float(c, "final_logit_softcapping", 0.0f, &hp->final_softcap, err);
    if (s) {
        return s;
    }
    bool bidir = false;
    if ((s = get_bool(c, "use_bidirectional_attention", false, &bidir, err))) {
        return s;
    }
    if (bidir) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: use_bidirectional_attention is not supported",
                         c->what);
    }
    int64_t qscale = 0;
    if ((s = get_int(c, "query_pre_attn_scalar", false, hp->head_dim, 1, INT32_MAX, &qscale, err))) {
        return s;
    }
    if (qscale != hp->head_dim) {
        werk_log(WERK_LOG_WARN,
                 "%s: query_pre_attn_scalar %" PRId64 " != head_dim %" PRId64
                 "; llama.cpp scales queries by 1/sqrt(head_dim)",
                 c->what, qscale, hp->head_dim);
    }
    int64_t pattern = GEMMA3_SWA_PATTERN;
    if ((s = get_int(c, "sliding_window_pattern", false, GEMMA3_SWA_PATTERN, 1, MAX_LAYERS, &pattern, err))) {
        return s;
    }
    const cJSON *lt       = field(c, "layer_types");
    bool         mismatch = pattern != GEMMA3_SWA_PATTERN;
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != hp->n_layer) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "%s: field 'layer_types' must be an array of %" PRId64 " strings", c->what,
                             hp->n_layer);
        }
        int64_t      i = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, lt) {
            bool full;
            if (cJSON_IsString(e) && strcmp(e->valuestring, "full_attention") == 0) {
                full = true;
            } else if (cJSON_IsString(e) && strcmp(e->valuestring, "sliding_attention") == 0) {
                full = false;
            } else {
                return WERK_FAIL(err, WERK_E_FORMAT,
                                 "%s: layer_types[%" PRId64
                                 "] must be \"full_attention\" or \"sliding_attention\"",
                                 c->what, i);
            }
            mismatch |= full != ((i + 1) % GEMMA3_SWA_PATTERN == 0);
            i++;
        }
    }
    if (mismatch) {
        werk_log(WERK_LOG_WARN,
                 "%s: layer types differ from llama.cpp's gemma3 pattern (every %dth layer full "
                 "attention); the GGUF cannot record this",
                 c->what, GEMMA3_SWA_PATTERN);
    }
    return WERK_OK;
}

static werk_status config_from_json(const cJSON *root, const char *what, werk_hf_hparams *hp, werk_err *err) {
    memset(hp, 0, sizeof(*hp));
    if (!cJSON_IsObject(root)) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: not a JSON object", what);
    }
    cfg          c  = {root, NULL, what};
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (tc && cJSON_IsObject(tc)) {
        c.text = tc;
    }
    werk_status s = detect_arch(&c, &hp->arch, err);
    if (s) {
        return s;
    }
    const werk_hf_arch_info *ai     = werk_hf_arch_get(hp->arch);
    bool                     gemma3 = hp->arch == WERK_HF_ARCH_GEMMA3;
    // clang-format off
    if ((s = get_int(&c, "vocab_size",          true,  0, 1, MAX_DIM,    &hp->n_vocab, err)) ||
        (s = get_int(&c, "hidden_size",         true,  0, 1, MAX_DIM,    &hp->n_embd, err)) ||
        (s = get_int(&c, "num_hidden_layers",   true,  0, 1, MAX_LAYERS, &hp->n_layer, err)) ||
        (s = get_int(&c, "intermediate_size",   true,  0, 1, MAX_DIM,    &hp->n_ff, err)) ||
        (s = get_int(&c, "num_attention_heads", !gemma3, 8, 1, MAX_HEADS, &hp->n_head, err)) ||
        (s = get_int(&c, "num_key_value_heads", false, gemma3 ? 4 : hp->n_head, 1, MAX_HEADS, &hp->n_head_kv, err)) ||
        (s = get_int(&c, "max_position_embeddings", false, gemma3 ? 131072 : 2048, 1, INT32_MAX, &hp->n_ctx, err))) {
        return s;
    }
    // clang-format on
    if (hp->n_head % hp->n_head_kv != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: num_attention_heads %" PRId64
                         " is not a multiple of num_key_value_heads %" PRId64,
                         what, hp->n_head, hp->n_head_kv);
    }
    int64_t def_hd = gemma3 ? 256 : hp->n_embd / hp->n_head;
    if ((s = get_int(&c, "head_dim", false, def_hd, 1, MAX_DIM, &hp->head_dim, err))) {
        return s;
    }
    if (!gemma3 && hp->n_embd % hp->n_head != 0 && !field(&c, "head_dim")) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: hidden_size %" PRId64 " is not a multiple of num_attention_heads %" PRId64
                         " and head_dim is missing",
                         what, hp->n_embd, hp->n_head);
    }
    if (hp->arch == WERK_HF_ARCH_QWEN2 && hp->head_dim * hp->n_head != hp->n_embd) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: qwen2 needs hidden_size = num_attention_heads x head_dim",
                         what);
    }
    if (ai->permute_qk && hp->head_dim % 2 != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: head_dim %" PRId64 " must be even for RoPE", what,
                         hp->head_dim);
    }
    if ((s = get_float(&c, "rms_norm_eps", 1e-6f, &hp->rms_eps, err)) || (s = read_rope(&c, hp, err))) {
        return s;
    }
    if ((s = get_bool(&c, "tie_word_embeddings", gemma3, &hp->tied, err))) {
        return s;
    }
    hp->attn_bias = ai->qkv_bias;
    if (!ai->qkv_bias && (s = get_bool(&c, "attention_bias", false, &hp->attn_bias, err))) {
        return s;
    }
    if (hp->arch == WERK_HF_ARCH_LLAMA && (s = get_bool(&c, "mlp_bias", false, &hp->mlp_bias, err))) {
        return s;
    }
    if ((s = check_act(&c, gemma3 ? "hidden_activation" : "hidden_act", gemma3 ? "gelu_pytorch_tanh" : "silu",
                       err))) {
        return s;
    }
    if ((s = get_token_id(&c, "bos_token_id", &hp->bos_id, err)) ||
        (s = get_token_id(&c, "eos_token_id", &hp->eos_id, err)) ||
        (s = get_token_id(&c, "pad_token_id", &hp->pad_id, err))) {
        return s;
    }
    if (gemma3) {
        return read_gemma3(&c, hp, err);
    }
    bool swa = false;
    if ((s = get_bool(&c, "use_sliding_window", false, &swa, err))) {
        return s;
    }
    if (swa) {
        werk_log(WERK_LOG_WARN, "%s: use_sliding_window is ignored (llama.cpp runs %s with full attention)",
                 what, ai->gguf_name);
    }
    return WERK_OK;
}

werk_status
werk_hf_config_parse(const char *text, size_t len, const char *what, werk_hf_hparams *hp, werk_err *err) {
    cJSON      *root = NULL;
    werk_status s    = werk_json_parse(text, len, 0, what, &root, err);
    if (s == WERK_OK) {
        s = config_from_json(root, what, hp, err);
    }
    cJSON_Delete(root);
    return s;
}

werk_status werk_hf_config_read(const char *path, werk_hf_hparams *hp, werk_err *err) {
    cJSON      *root = NULL;
    werk_status s    = werk_json_read_file(path, WERK_CONFIG_JSON_MAX, &root, err);
    if (s == WERK_OK) {
        s = config_from_json(root, path, hp, err);
    }
    cJSON_Delete(root);
    return s;
}

// ---- hyper-parameters <-> GGUF keys -------------------------------------------------------------

static bool head_dim_is_default(const werk_hf_hparams *hp) {
    return hp->n_head > 0 && hp->head_dim * hp->n_head == hp->n_embd;
}

werk_status
werk_hf_hparams_to_gguf(const werk_hf_hparams *hp, const char *name, werk_gguf *g, werk_err *err) {
    const werk_hf_arch_info *ai = werk_hf_arch_get(hp->arch);
    const char              *a  = ai->gguf_name;
    char                     k[128];
    werk_status              s;
#define KEY(suffix) (snprintf(k, sizeof(k), "%s.%s", a, suffix), k)
    if ((s = werk_gguf_set_str(g, "general.architecture", a, err)) ||
        (s = werk_gguf_set_str(g, "general.type", "model", err))) {
        return s;
    }
    if (name && *name && (s = werk_gguf_set_str(g, "general.name", name, err))) {
        return s;
    }
    // clang-format off
    if ((s = werk_gguf_set_u32(g, KEY("context_length"), (uint32_t)hp->n_ctx, err)) ||
        (s = werk_gguf_set_u32(g, KEY("embedding_length"), (uint32_t)hp->n_embd, err)) ||
        (s = werk_gguf_set_u32(g, KEY("block_count"), (uint32_t)hp->n_layer, err)) ||
        (s = werk_gguf_set_u32(g, KEY("feed_forward_length"), (uint32_t)hp->n_ff, err)) ||
        (s = werk_gguf_set_u32(g, KEY("attention.head_count"), (uint32_t)hp->n_head, err)) ||
        (s = werk_gguf_set_u32(g, KEY("attention.head_count_kv"), (uint32_t)hp->n_head_kv, err)) ||
        (s = werk_gguf_set_f32(g, KEY("rope.freq_base"), hp->rope_base, err)) ||
        (s = werk_gguf_set_f32(g, KEY("attention.layer_norm_rms_epsilon"), hp->rms_eps, err))) {
        return s;
    }
    // clang-format on
    if (ai->always_head_dim || !head_dim_is_default(hp)) {
        if ((s = werk_gguf_set_u32(g, KEY("attention.key_length"), (uint32_t)hp->head_dim, err)) ||
            (s = werk_gguf_set_u32(g, KEY("attention.value_length"), (uint32_t)hp->head_dim, err))) {
            return s;
        }
    }
    if (hp->arch == WERK_HF_ARCH_LLAMA &&
        (s = werk_gguf_set_u32(g, KEY("rope.dimension_count"), (uint32_t)hp->head_dim, err))) {
        return s;
    }
    if ((s = werk_gguf_set_u32(g, KEY("vocab_size"), (uint32_t)hp->n_vocab, err))) {
        return s;
    }
    if (hp->rope_scale > 0) {
        if ((s = werk_gguf_set_str(g, KEY("rope.scaling.type"), "linear", err)) ||
            (s = werk_gguf_set_f32(g, KEY("rope.scaling.factor"), hp->rope_scale, err))) {
            return s;
        }
    }
    if (hp->arch == WERK_HF_ARCH_GEMMA3) {
        if ((s = werk_gguf_set_u32(g, KEY("attention.sliding_window"), (uint32_t)hp->sliding_window, err)) ||
            (s = werk_gguf_set_f32(g, KEY("rope.freq_base_swa"), hp->rope_base_local, err))) {
            return s;
        }
        if (hp->final_softcap > 0 &&
            (s = werk_gguf_set_f32(g, KEY("final_logit_softcapping"), hp->final_softcap, err))) {
            return s;
        }
        if (hp->rope_base_local != GEMMA3_LOCAL_BASE) {
            werk_log(WERK_LOG_WARN,
                     "gemma3: local RoPE base %g differs from llama.cpp's fixed 10000 (stored as "
                     "gemma3.rope.freq_base_swa)",
                     (double)hp->rope_base_local);
        }
    }
#undef KEY
    const struct {
        const char *key;
        int64_t     id;
    } ids[] = {{"tokenizer.ggml.bos_token_id", hp->bos_id},
               {"tokenizer.ggml.eos_token_id", hp->eos_id},
               {"tokenizer.ggml.padding_token_id", hp->pad_id}};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        if (ids[i].id >= 0 && werk_gguf_find_kv(g, ids[i].key) < 0 &&
            (s = werk_gguf_set_u32(g, ids[i].key, (uint32_t)ids[i].id, err))) {
            return s;
        }
    }
    return WERK_OK;
}

/* Where g came from, for messages. */
static const char *gname(const werk_gguf *g) {
    const char *p = werk_gguf_path(g);
    return p && *p ? p : "model";
}

/* u32 key <a>.<suffix> into *out (int64); missing: required -> error, else def. */
static werk_status gguf_u32(const werk_gguf *g,
                            const char      *a,
                            const char      *suffix,
                            bool             required,
                            int64_t          def,
                            int64_t         *out,
                            werk_err        *err) {
    char     k[128];
    uint32_t v     = 0;
    bool     found = false;
    snprintf(k, sizeof(k), "%s.%s", a, suffix);
    werk_status s = werk_gguf_get_u32(g, k, &v, &found, err);
    if (s) {
        return s;
    }
    if (!found) {
        if (required) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key '%s'", gname(g), k);
        }
        *out = def;
        return WERK_OK;
    }
    *out = v;
    return WERK_OK;
}

static werk_status gguf_f32(const werk_gguf *g,
                            const char      *a,
                            const char      *suffix,
                            bool             required,
                            float            def,
                            float           *out,
                            werk_err        *err) {
    char k[128];
    bool found = false;
    snprintf(k, sizeof(k), "%s.%s", a, suffix);
    werk_status s = werk_gguf_get_f32(g, k, out, &found, err);
    if (s) {
        return s;
    }
    if (!found) {
        if (required) {
            return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key '%s'", gname(g), k);
        }
        *out = def;
    } else if (!isfinite(*out) || *out < 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: key '%s' = %g is out of range", gname(g), k, (double)*out);
    }
    return WERK_OK;
}

werk_status werk_hf_hparams_from_gguf(const werk_gguf *g, werk_hf_hparams *hp, werk_err *err) {
    memset(hp, 0, sizeof(*hp));
    const char *a     = NULL;
    bool        found = false;
    werk_status s     = werk_gguf_get_str(g, "general.architecture", &a, &found, err);
    if (s) {
        return s;
    }
    if (!found) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: missing key 'general.architecture'", gname(g));
    }
    if (!werk_hf_arch_from_gguf(a, &hp->arch)) {
        return WERK_FAIL(
            err, WERK_E_UNSUPPORTED,
            "%s: architecture '%s' cannot be exported to HF (werk exports llama, qwen2, qwen3, gemma3)",
            gname(g), a);
    }
    const werk_hf_arch_info *ai     = werk_hf_arch_get(hp->arch);
    bool                     gemma3 = hp->arch == WERK_HF_ARCH_GEMMA3;
    // clang-format off
    if ((s = gguf_u32(g, a, "context_length", true, 0, &hp->n_ctx, err)) ||
        (s = gguf_u32(g, a, "embedding_length", true, 0, &hp->n_embd, err)) ||
        (s = gguf_u32(g, a, "block_count", true, 0, &hp->n_layer, err)) ||
        (s = gguf_u32(g, a, "feed_forward_length", true, 0, &hp->n_ff, err)) ||
        (s = gguf_u32(g, a, "attention.head_count", true, 0, &hp->n_head, err)) ||
        (s = gguf_u32(g, a, "attention.head_count_kv", false, hp->n_head, &hp->n_head_kv, err)) ||
        (s = gguf_f32(g, a, "attention.layer_norm_rms_epsilon", true, 0, &hp->rms_eps, err)) ||
        (s = gguf_f32(g, a, "rope.freq_base", false, 10000.0f, &hp->rope_base, err))) {
        return s;
    }
    // clang-format on
    if (hp->n_embd < 1 || hp->n_layer < 1 || hp->n_head < 1 || hp->n_head_kv < 1 || hp->n_ff < 1 ||
        hp->n_head % hp->n_head_kv != 0 || (!gemma3 && hp->n_embd % hp->n_head != 0)) {
        return WERK_FAIL(err, WERK_E_FORMAT,
                         "%s: inconsistent hyper-parameters (embedding %" PRId64 ", heads %" PRId64
                         ", kv heads %" PRId64 ")",
                         gname(g), hp->n_embd, hp->n_head, hp->n_head_kv);
    }
    if ((s = gguf_u32(g, a, "attention.key_length", false, hp->n_embd / hp->n_head, &hp->head_dim, err))) {
        return s;
    }
    int64_t vlen = 0;
    if ((s = gguf_u32(g, a, "attention.value_length", false, hp->head_dim, &vlen, err))) {
        return s;
    }
    if (vlen != hp->head_dim || hp->head_dim < 1) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: key_length %" PRId64 " != value_length %" PRId64,
                         gname(g), hp->head_dim, vlen);
    }
    if (hp->arch == WERK_HF_ARCH_QWEN2 && !head_dim_is_default(hp)) {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                         "%s: qwen2 with head_dim != hidden_size / heads has no HF config", gname(g));
    }
    if (ai->permute_qk && hp->head_dim % 2 != 0) {
        return WERK_FAIL(err, WERK_E_FORMAT, "%s: head dimension %" PRId64 " is odd", gname(g), hp->head_dim);
    }
    const char *stype = NULL;
    char        k[128];
    snprintf(k, sizeof(k), "%s.rope.scaling.type", a);
    if ((s = werk_gguf_get_str(g, k, &stype, &found, err))) {
        return s;
    }
    if (found && strcmp(stype, "none") != 0) {
        if (strcmp(stype, "linear") != 0) {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: RoPE scaling '%s' is not supported", gname(g),
                             stype);
        }
        if ((s = gguf_f32(g, a, "rope.scaling.factor", true, 0, &hp->rope_scale, err))) {
            return s;
        }
        if (hp->rope_scale == 1.0f) {
            hp->rope_scale = 0;
        }
    }
    if (gemma3) {
        if ((s = gguf_u32(g, a, "attention.sliding_window", true, 0, &hp->sliding_window, err)) ||
            (s = gguf_f32(g, a, "rope.freq_base_swa", false, GEMMA3_LOCAL_BASE, &hp->rope_base_local, err)) ||
            (s = gguf_f32(g, a, "final_logit_softcapping", false, 0, &hp->final_softcap, err))) {
            return s;
        }
    }
    hp->n_vocab = 0;
    if ((s = gguf_u32(g, a, "vocab_size", false, 0, &hp->n_vocab, err))) {
        return s;
    }
    const werk_gguf_value *toks = werk_gguf_get(g, "tokenizer.ggml.tokens");
    if (hp->n_vocab == 0 && toks && toks->type == WERK_GGUF_ARRAY) {
        hp->n_vocab = (int64_t)toks->arr.n;
    }
    hp->tied               = werk_gguf_find_tensor(g, "output.weight") < 0;
    const char *id_keys[3] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                              "tokenizer.ggml.padding_token_id"};
    int64_t    *ids[3]     = {&hp->bos_id, &hp->eos_id, &hp->pad_id};
    for (int i = 0; i < 3; i++) {
        uint32_t v;
        *ids[i] = -1;
        if ((s = werk_gguf_get_u32(g, id_keys[i], &v, &found, err))) {
            return s;
        }
        if (found) {
            *ids[i] = v;
        }
    }
    return WERK_OK;
}

// ---- config.json / generation_config.json ------------------------------------------------------

/* The shortest decimal that reads back as the same float (1e-05, not 9.99999974738e-06). */
static double short_float(float f) {
    char buf[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(buf, sizeof(buf), "%.*g", p, (double)f);
        if ((float)strtod(buf, NULL) == f) {
            return strtod(buf, NULL);
        }
    }
    return (double)f;
}

static const char *dtype_str(werk_dtype t) {
    switch (t) {
    case WERK_DTYPE_F16:
        return "float16";
    case WERK_DTYPE_BF16:
        return "bfloat16";
    default:
        return "float32";
    }
}

static void add_id(cJSON *o, const char *key, int64_t id) {
    if (id >= 0) {
        cJSON_AddNumberToObject(o, key, (double)id);
    } else {
        cJSON_AddNullToObject(o, key);
    }
}

static cJSON *rope_obj(float theta, float scale) {
    cJSON *r = cJSON_CreateObject();
    if (r) {
        cJSON_AddNumberToObject(r, "rope_theta", short_float(theta));
        cJSON_AddStringToObject(r, "rope_type", scale > 0 ? "linear" : "default");
        if (scale > 0) {
            cJSON_AddNumberToObject(r, "factor", short_float(scale));
        }
    }
    return r;
}

/* JSON text as transformers writes it (json.dumps(indent=2, sort_keys=True) + "\n"):
 * two-space indent, keys sorted, one array element per line. Scalars and keys are printed
 * by cJSON, which escapes strings and picks the number format. */

static void jb_indent(werk_strbuf *b, int depth) {
    for (int i = 0; i < depth; i++) {
        werk_strbuf_put(b, "  ", 2);
    }
}

/* cJSON's compact text of a scalar node (or of a string, for keys). */
static void jb_scalar(werk_strbuf *b, const cJSON *item) {
    char *t = cJSON_PrintUnformatted(item);
    if (!t) {
        b->oom = true;
        return;
    }
    werk_strbuf_puts(b, t);
    free(t);
}

static int cmp_key(const void *a, const void *b) {
    return strcmp((*(const cJSON *const *)a)->string, (*(const cJSON *const *)b)->string);
}

static void jb_value(werk_strbuf *b, const cJSON *item, int depth) {
    bool obj = cJSON_IsObject(item), arr = cJSON_IsArray(item);
    if (!obj && !arr) {
        jb_scalar(b, item);
        return;
    }
    int n = cJSON_GetArraySize(item);
    if (n == 0) {
        werk_strbuf_puts(b, obj ? "{}" : "[]");
        return;
    }
    const cJSON **kids = malloc((size_t)n * sizeof(*kids));
    if (!kids) {
        b->oom = true;
        return;
    }
    int          i = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, item) { kids[i++] = c; }
    if (obj) {
        qsort(kids, (size_t)n, sizeof(*kids), cmp_key);
    }
    werk_strbuf_puts(b, obj ? "{\n" : "[\n");
    for (i = 0; i < n; i++) {
        jb_indent(b, depth + 1);
        if (obj) {
            cJSON *k = cJSON_CreateString(kids[i]->string);
            if (!k) {
                b->oom = true;
            } else {
                jb_scalar(b, k);
                cJSON_Delete(k);
            }
            werk_strbuf_puts(b, ": ");
        }
        jb_value(b, kids[i], depth + 1);
        werk_strbuf_puts(b, i + 1 < n ? ",\n" : "\n");
    }
    jb_indent(b, depth);
    werk_strbuf_puts(b, obj ? "}" : "]");
    free(kids);
}

static werk_status finish_json(cJSON *o, char **out, werk_err *err) {
    werk_strbuf b = {0};
    if (!o) {
        b.oom = true;
    } else {
        jb_value(&b, o, 0);
        werk_strbuf_puts(&b, "\n");
    }
    cJSON_Delete(o);
    if (b.oom) {
        free(b.p);
        *out = NULL;
        return WERK_FAIL(err, WERK_E_OOM, "config.json: out of memory");
    }
    *out = b.p;
    return WERK_OK;
}

werk_status werk_hf_config_json(const werk_hf_hparams *hp, werk_dtype dtype, char **out, werk_err *err) {
    const werk_hf_arch_info *ai     = werk_hf_arch_get(hp->arch);
    bool                     gemma3 = hp->arch == WERK_HF_ARCH_GEMMA3;
    cJSON                   *o      = cJSON_CreateObject();
    cJSON                   *archs  = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(archs, cJSON_CreateString(ai->hf_class));
    cJSON_AddStringToObject(o, "model_type", ai->model_type);
    if (hp->arch != WERK_HF_ARCH_QWEN2) {
        cJSON_AddBoolToObject(o, "attention_bias", hp->attn_bias);
    }
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    add_id(o, "bos_token_id", hp->bos_id);
    add_id(o, "eos_token_id", hp->eos_id);
    add_id(o, "pad_token_id", hp->pad_id);
    cJSON_AddStringToObject(o, "dtype", dtype_str(dtype));
    if (hp->arch != WERK_HF_ARCH_QWEN2) {
        cJSON_AddNumberToObject(o, "head_dim", (double)hp->head_dim);
    }
    cJSON_AddStringToObject(o, gemma3 ? "hidden_activation" : "hidden_act",
                            gemma3 ? "gelu_pytorch_tanh" : "silu");
    cJSON_AddNumberToObject(o, "hidden_size", (double)hp->n_embd);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)hp->n_ff);
    if (hp->arch != WERK_HF_ARCH_LLAMA) {
        cJSON *lt = cJSON_AddArrayToObject(o, "layer_types");
        for (int64_t i = 0; i < hp->n_layer; i++) {
            bool full = !gemma3 || (i + 1) % GEMMA3_SWA_PATTERN == 0;
            cJSON_AddItemToArray(lt, cJSON_CreateString(full ? "full_attention" : "sliding_attention"));
        }
    }
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)hp->n_ctx);
    if (hp->arch == WERK_HF_ARCH_LLAMA) {
        cJSON_AddBoolToObject(o, "mlp_bias", hp->mlp_bias);
    }
    if (hp->arch == WERK_HF_ARCH_QWEN2 || hp->arch == WERK_HF_ARCH_QWEN3) {
        cJSON_AddNumberToObject(o, "max_window_layers",
                                28); // transformers default; unused without sliding window
    }
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)hp->n_head);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)hp->n_layer);
    cJSON_AddNumberToObject(o, "num_key_value_heads", (double)hp->n_head_kv);
    if (hp->arch == WERK_HF_ARCH_LLAMA) {
        cJSON_AddNumberToObject(o, "pretraining_tp", 1);
    }
    cJSON_AddNumberToObject(o, "rms_norm_eps", short_float(hp->rms_eps));
    // transformers 5 reads rope_parameters; transformers 4 reads rope_theta (+ rope_scaling,
    // rope_local_base_freq). Both are written and agree.
    if (gemma3) {
        cJSON *rp = cJSON_AddObjectToObject(o, "rope_parameters");
        cJSON_AddItemToObject(rp, "full_attention", rope_obj(hp->rope_base, hp->rope_scale));
        cJSON_AddItemToObject(rp, "sliding_attention", rope_obj(hp->rope_base_local, 0));
        cJSON_AddNumberToObject(o, "rope_local_base_freq", short_float(hp->rope_base_local));
    } else {
        cJSON_AddItemToObject(o, "rope_parameters", rope_obj(hp->rope_base, hp->rope_scale));
    }
    if (hp->rope_scale > 0) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "linear");
        cJSON_AddNumberToObject(rs, "factor", short_float(hp->rope_scale));
    } else {
        cJSON_AddNullToObject(o, "rope_scaling");
    }
    cJSON_AddNumberToObject(o, "rope_theta", short_float(hp->rope_base));
    if (gemma3) {
        cJSON_AddNullToObject(o, "attn_logit_softcapping");
        if (hp->final_softcap > 0) {
            cJSON_AddNumberToObject(o, "final_logit_softcapping", short_float(hp->final_softcap));
        } else {
            cJSON_AddNullToObject(o, "final_logit_softcapping");
        }
        cJSON_AddNumberToObject(o, "query_pre_attn_scalar", (double)hp->head_dim);
        cJSON_AddNumberToObject(o, "sliding_window", (double)hp->sliding_window);
        cJSON_AddBoolToObject(o, "use_bidirectional_attention", false);
    } else if (hp->arch != WERK_HF_ARCH_LLAMA) {
        cJSON_AddNullToObject(o, "sliding_window");
        cJSON_AddBoolToObject(o, "use_sliding_window", false);
    }
    cJSON_AddBoolToObject(o, "tie_word_embeddings", hp->tied);
    cJSON_AddStringToObject(o, "torch_dtype", dtype_str(dtype));
    cJSON_AddBoolToObject(o, "use_cache", true);
    cJSON_AddNumberToObject(o, "vocab_size", (double)hp->n_vocab);
    return finish_json(o, out, err);
}

werk_status werk_hf_generation_json(const werk_hf_hparams *hp, char **out, werk_err *err) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "_from_model_config", true);
    if (hp->bos_id >= 0) {
        cJSON_AddNumberToObject(o, "bos_token_id", (double)hp->bos_id);
    }
    if (hp->eos_id >= 0) {
        cJSON_AddNumberToObject(o, "eos_token_id", (double)hp->eos_id);
    }
    if (hp->pad_id >= 0) {
        cJSON_AddNumberToObject(o, "pad_token_id", (double)hp->pad_id);
    }
    cJSON_AddBoolToObject(o, "use_cache", true);
    return finish_json(o, out, err);
}
