/* infer/chat.c - chat templates: recognise the style, render one user turn
 *
 * werk does not run Jinja: it recognises three template families by their marker tokens
 * in tokenizer.chat_template - gemma (<start_of_turn>), chatml (<|im_start|>) and llama3
 * (<|start_header_id|>) - and renders their fixed text for one user turn plus the prompt
 * for the reply:
 *   gemma   <start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\n
 *   chatml  [<|im_start|>system\nS<|im_end|>\n]<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n
 *   llama3
 * <|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n A
 * chatml template that writes a literal default system turn (SmolLM2) gives that text as S. Without a
 * template the vocab decides (a turn token that encodes to one id).
 */
#include "infer/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool vocab_has(const werk_tokenizer *tok, const char *s) {
    int32_t *ids = NULL;
    int64_t  n   = 0;
    bool     ok  = werk_tokenizer_encode(tok, s, strlen(s), false, true, &ids, &n, NULL) == WERK_OK && n == 1;
    free(ids);
    return ok;
}

/* The literal default system prompt of a chatml template, or NULL. */
static char *chatml_system(const char *tmpl) {
    const char *key = "<|im_start|>system\\n", *alt = "<|im_start|>system\n";
    const char *p  = strstr(tmpl, key);
    size_t      kl = strlen(key);
    if (!p) {
        p  = strstr(tmpl, alt);
        kl = strlen(alt);
    }
    if (!p || (p > tmpl && p[-1] != '\'' && p[-1] != '"')) {
        return NULL; // not the start of a string literal: the system text comes from messages
    }
    const char *b = p + kl, *e = strstr(b, "<|im_end|>");
    if (!e || memchr(b, '{', (size_t)(e - b)) || memchr(b, '\'', (size_t)(e - b))) {
        return NULL;
    }
    char *out = malloc((size_t)(e - b) + 1);
    if (out) {
        memcpy(out, b, (size_t)(e - b));
        out[e - b] = 0;
    }
    return out;
}

werk_status werk_chat_detect(
    const werk_gguf *g, const werk_tokenizer *tok, werk_chat_style *out, char **system, werk_err *err) {
    const char *tmpl  = NULL;
    bool        found = false;
    *system           = NULL;
    werk_status st    = werk_gguf_get_str(g, "tokenizer.chat_template", &tmpl, &found, err);
    if (st) {
        return st;
    }
    if (found) {
        if (strstr(tmpl, "<start_of_turn>")) {
            *out = WERK_CHAT_GEMMA;
        } else if (strstr(tmpl, "<|start_header_id|>")) {
            *out = WERK_CHAT_LLAMA3;
        } else if (strstr(tmpl, "<|im_start|>")) {
            *out    = WERK_CHAT_CHATML;
            *system = chatml_system(tmpl);
        } else {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "%s: chat template is not one werk knows (gemma, chatml, llama3)",
                             werk_gguf_path(g));
        }
        return WERK_OK;
    }
    if (vocab_has(tok, "<start_of_turn>") && vocab_has(tok, "<end_of_turn>")) {
        *out = WERK_CHAT_GEMMA;
    } else if (vocab_has(tok, "<|start_header_id|>") && vocab_has(tok, "<|eot_id|>")) {
        *out = WERK_CHAT_LLAMA3;
    } else if (vocab_has(tok, "<|im_start|>") && vocab_has(tok, "<|im_end|>")) {
        *out = WERK_CHAT_CHATML;
    } else {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "%s: no tokenizer.chat_template and no known turn tokens",
                         werk_gguf_path(g));
    }
    return WERK_OK;
}

werk_status
werk_chat_render(werk_chat_style style, const char *system, const char *user, char **out, werk_err *err) {
    size_t n   = strlen(user) + (system ? strlen(system) : 0) + 160;
    char  *buf = malloc(n);
    if (!buf) {
        return WERK_FAIL(err, WERK_E_OOM, "chat: out of memory");
    }
    switch (style) {
    case WERK_CHAT_GEMMA:
        snprintf(buf, n, "<start_of_turn>user\n%s<end_of_turn>\n<start_of_turn>model\n", user);
        break;
    case WERK_CHAT_CHATML:
        snprintf(buf, n, "%s%s%s<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n",
                 system ? "<|im_start|>system\n" : "", system ? system : "", system ? "<|im_end|>\n" : "",
                 user);
        break;
    case WERK_CHAT_LLAMA3:
        snprintf(buf, n,
                 "<|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|><|start_header_id|>assistant"
                 "<|end_header_id|>\n\n",
                 user);
        break;
    default:
        free(buf);
        return WERK_FAIL(err, WERK_E_ARG, "chat: unknown style %d", (int)style);
    }
    *out = buf;
    return WERK_OK;
}

const char *const *werk_chat_stop_tokens(werk_chat_style style) {
    static const char *const gemma[]  = {"<end_of_turn>", "<eos>", NULL};
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", NULL};
    return style == WERK_CHAT_GEMMA ? gemma : style == WERK_CHAT_LLAMA3 ? llama3 : chatml;
}
