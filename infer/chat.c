/* infer/chat.c - chat templates: recognise the style, render a conversation
 *
 * werk does not run Jinja: it recognises three template families by their marker tokens
 * in tokenizer.chat_template - gemma (<start_of_turn>), chatml (<|im_start|>) and llama3
 * (<|start_header_id|>) - and renders their fixed text. This is the one renderer of werk:
 * `werk infer --chat` (one user turn plus the reply prompt) and the datasets' {"messages"}
 * records (whole conversations, assistant turns marked for the loss) both use it. Turns:
 *   gemma   <start_of_turn>user\nU<end_of_turn>\n<start_of_turn>model\nA<end_of_turn>\n
 *           (no system role: a leading system message S is written as "S\n\n" before the
 *           first user turn's text, as Gemma's template does)
 *   chatml  <|im_start|>ROLE\nC<|im_end|>\n
 *   llama3  <|start_header_id|>ROLE<|end_header_id|>\n\nC<|eot_id|>
 * The reply prompt is the opening of an assistant turn. A chatml template that writes a
 * literal default system turn (SmolLM2) gives that text, used when the messages have no
 * system turn. Without a template the vocab decides (a turn token that encodes to one id).
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

bool werk_chat_role_parse(const char *name, werk_chat_role *out) {
    if (strcmp(name, "system") == 0) {
        *out = WERK_CHAT_SYSTEM;
    } else if (strcmp(name, "user") == 0) {
        *out = WERK_CHAT_USER;
    } else if (strcmp(name, "assistant") == 0 || strcmp(name, "model") == 0) {
        *out = WERK_CHAT_ASSISTANT;
    } else {
        return false;
    }
    return true;
}

werk_status werk_chat_style_of(
    const char *tmpl, const werk_tokenizer *tok, werk_chat_style *out, char **system, werk_err *err) {
    *out    = WERK_CHAT_NONE;
    *system = NULL;
    if (tmpl) {
        if (strstr(tmpl, "<start_of_turn>")) {
            *out = WERK_CHAT_GEMMA;
        } else if (strstr(tmpl, "<|start_header_id|>")) {
            *out = WERK_CHAT_LLAMA3;
        } else if (strstr(tmpl, "<|im_start|>")) {
            *out    = WERK_CHAT_CHATML;
            *system = chatml_system(tmpl);
        } else {
            return WERK_FAIL(err, WERK_E_UNSUPPORTED,
                             "chat template is not one werk knows (gemma, chatml, llama3)");
        }
        return WERK_OK;
    }
    if (tok && vocab_has(tok, "<start_of_turn>") && vocab_has(tok, "<end_of_turn>")) {
        *out = WERK_CHAT_GEMMA;
    } else if (tok && vocab_has(tok, "<|start_header_id|>") && vocab_has(tok, "<|eot_id|>")) {
        *out = WERK_CHAT_LLAMA3;
    } else if (tok && vocab_has(tok, "<|im_start|>") && vocab_has(tok, "<|im_end|>")) {
        *out = WERK_CHAT_CHATML;
    } else {
        return WERK_FAIL(err, WERK_E_UNSUPPORTED, "no tokenizer.chat_template and no known turn tokens");
    }
    return WERK_OK;
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
    werk_err e2 = {0};
    st          = werk_chat_style_of(found ? tmpl : NULL, tok, out, system, &e2);
    if (st) {
        return WERK_FAIL(err, st, "%s: %s", werk_gguf_path(g), e2.msg);
    }
    return WERK_OK;
}

static const char *role_name(werk_chat_style style, werk_chat_role role) {
    if (role == WERK_CHAT_SYSTEM) {
        return "system";
    }
    if (role == WERK_CHAT_USER) {
        return "user";
    }
    return style == WERK_CHAT_GEMMA ? "model" : "assistant";
}

/* The markup opening a turn of role. */
static werk_status
open_turn(werk_chat_style style, werk_chat_role role, werk_chat_emit emit, void *ctx, werk_err *err) {
    const char *name = role_name(style, role);
    const char *pre  = style == WERK_CHAT_GEMMA    ? "<start_of_turn>"
                       : style == WERK_CHAT_CHATML ? "<|im_start|>"
                                                   : "<|start_header_id|>";
    const char *post = style == WERK_CHAT_LLAMA3 ? "<|end_header_id|>\n\n" : "\n";
    werk_status st   = emit(ctx, pre, true, false, err);
    if (!st) {
        st = emit(ctx, name, true, false, err);
    }
    return st ? st : emit(ctx, post, true, false, err);
}

werk_status werk_chat_render_msgs(werk_chat_style      style,
                                  const char          *system,
                                  const werk_chat_msg *msgs,
                                  int64_t              n,
                                  bool                 gen_prompt,
                                  werk_chat_emit       emit,
                                  void                *ctx,
                                  werk_err            *err) {
    if (style != WERK_CHAT_GEMMA && style != WERK_CHAT_CHATML && style != WERK_CHAT_LLAMA3) {
        return WERK_FAIL(err, WERK_E_ARG, "chat: unknown style %d", (int)style);
    }
    const char *end          = style == WERK_CHAT_GEMMA    ? "<end_of_turn>"
                               : style == WERK_CHAT_CHATML ? "<|im_end|>"
                                                           : "<|eot_id|>";
    const char *sep          = style == WERK_CHAT_LLAMA3 ? "" : "\n"; // after the end-of-turn marker
    const char *gemma_prefix = NULL;                                  // gemma: system text for the first turn
    werk_status st           = WERK_OK;
    int64_t     i0           = 0;
    if (n > 0 && msgs[0].role == WERK_CHAT_SYSTEM) {
        system = msgs[0].content;
        i0     = 1;
    }
    if (system && style == WERK_CHAT_GEMMA) {
        if (i0 == 1 && (n < 2 || msgs[1].role != WERK_CHAT_USER)) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "messages[%lld]: gemma needs a user turn after the system message",
                             (long long)(n < 2 ? 0 : 1));
        }
        gemma_prefix = system;
    } else if (system) {
        st = open_turn(style, WERK_CHAT_SYSTEM, emit, ctx, err);
        if (!st) {
            st = emit(ctx, system, false, false, err);
        }
        if (!st) {
            st = emit(ctx, end, true, false, err);
        }
        if (!st) {
            st = emit(ctx, sep, true, false, err);
        }
    }
    for (int64_t i = i0; i < n && !st; i++) {
        werk_chat_role role = msgs[i].role;
        bool           as   = role == WERK_CHAT_ASSISTANT;
        if (role == WERK_CHAT_SYSTEM && style == WERK_CHAT_GEMMA) {
            return WERK_FAIL(err, WERK_E_FORMAT,
                             "messages[%lld]: gemma has no system role (only a leading system message is "
                             "allowed)",
                             (long long)i);
        }
        st = open_turn(style, role, emit, ctx, err);
        if (!st && gemma_prefix && role == WERK_CHAT_USER) {
            st = emit(ctx, gemma_prefix, false, false, err);
            if (!st) {
                st = emit(ctx, "\n\n", false, false, err);
            }
            gemma_prefix = NULL;
        }
        if (!st) {
            st = emit(ctx, msgs[i].content, false, as, err);
        }
        if (!st) {
            st = emit(ctx, end, true, as, err);
        }
        if (!st) {
            st = emit(ctx, sep, true, false, err);
        }
    }
    if (!st && gen_prompt) {
        st = open_turn(style, WERK_CHAT_ASSISTANT, emit, ctx, err);
        if (!st && gemma_prefix) {
            return WERK_FAIL(err, WERK_E_FORMAT, "gemma: a system message needs a user turn");
        }
    }
    return st;
}

static werk_status emit_to_strbuf(void *ctx, const char *s, bool markup, bool assistant, werk_err *err) {
    (void)markup, (void)assistant;
    werk_strbuf *b = ctx;
    werk_strbuf_puts(b, s);
    return b->oom ? WERK_FAIL(err, WERK_E_OOM, "chat: out of memory") : WERK_OK;
}

werk_status
werk_chat_render(werk_chat_style style, const char *system, const char *user, char **out, werk_err *err) {
    werk_chat_msg msg = {WERK_CHAT_USER, user};
    werk_strbuf   b   = {0};
    // gemma's template has no system role; `infer --chat` never had one for it
    werk_status st = werk_chat_render_msgs(style, style == WERK_CHAT_GEMMA ? NULL : system, &msg, 1, true,
                                           emit_to_strbuf, &b, err);
    if (st) {
        werk_strbuf_free(&b);
        return st;
    }
    *out = b.p ? b.p : calloc(1, 1);
    return *out ? WERK_OK : WERK_FAIL(err, WERK_E_OOM, "chat: out of memory");
}

const char *const *werk_chat_stop_tokens(werk_chat_style style) {
    static const char *const gemma[]  = {"<end_of_turn>", "<eos>", NULL};
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama3[] = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>", NULL};
    return style == WERK_CHAT_GEMMA ? gemma : style == WERK_CHAT_LLAMA3 ? llama3 : chatml;
}
