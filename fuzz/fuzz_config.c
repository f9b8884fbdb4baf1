/* libFuzzer target for the configuration's JSON (config.json, icl_train_config_parse_json): any
 * bytes must give a validated config or a clear error. A config that parses must survive a round
 * trip: formatted the way icl_train_config_write_json does and parsed again, every field formats
 * the same. Build and run: see fuzz/README.md. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    icl_train_config c, c2;
    icl_err err;
    if (icl_train_config_parse_json(&c, (const char *)data, size, "fuzz", &err) != 0) {
        if (!err.msg[0]) abort();
        return 0;
    }
    static char json[16384];
    size_t n = 0;
    n += snprintf(json + n, sizeof json - n, "{\n");
    for (int i = 0; i < icl_train_n_fields; i++) {
        char v[64];
        icl_config_field_format(&c, &icl_train_fields[i], v, sizeof v);
        n += snprintf(json + n, sizeof json - n, "  \"%s\": %s%s\n", icl_train_fields[i].key, v,
                      i + 1 < icl_train_n_fields ? "," : "");
    }
    n += snprintf(json + n, sizeof json - n, "}\n");
    if (n >= sizeof json) abort();
    if (icl_train_config_parse_json(&c2, json, n, "round trip", &err) != 0) {
        fprintf(stderr, "the written config does not read back: %s\n%s", err.msg, json);
        abort();
    }
    for (int i = 0; i < icl_train_n_fields; i++) {
        char a[64], b[64];
        icl_config_field_format(&c, &icl_train_fields[i], a, sizeof a);
        icl_config_field_format(&c2, &icl_train_fields[i], b, sizeof b);
        if (strcmp(a, b)) {
            fprintf(stderr, "field %s: %s reads back as %s\n", icl_train_fields[i].key, a, b);
            abort();
        }
    }
    return 0;
}
