/* tests/fuzz/fuzz_json.c - libFuzzer target: werk_json_parse on arbitrary bytes
 *
 * Any input must give either WERK_OK with a tree, or an error with a one-line message
 * naming the input. An accepted document, printed by cJSON and parsed again, must be
 * accepted again (the checks are a property of the document, not of its spelling).
 * Seeds: tests/fuzz/corpus/fuzz_json/ (replayed by ctest as fuzz/fuzz_json_corpus).
 */
#include "common/common.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON      *j   = NULL;
    werk_err    err = {0};
    int         max = size > 0 && (data[0] & 1) ? 8 : 0; // small and default depth limits
    werk_status s   = werk_json_parse((const char *)data, size, max, "fuzz.json", &j, &err);
    if (s != WERK_OK) {
        if (j || !err.msg[0] || strchr(err.msg, '\n') || strncmp(err.msg, "fuzz.json: ", 11) != 0) {
            __builtin_trap();
        }
        return 0;
    }
    if (!j) {
        __builtin_trap();
    }
    char *text = cJSON_PrintUnformatted(j);
    if (text) {
        cJSON *j2 = NULL;
        if (werk_json_parse(text, strlen(text), max, "fuzz.json (printed)", &j2, &err) != WERK_OK) {
            __builtin_trap();
        }
        cJSON_Delete(j2);
        free(text);
    }
    cJSON_Delete(j);
    return 0;
}
