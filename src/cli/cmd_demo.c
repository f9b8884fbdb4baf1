/* `iclab demo`: the project's main job on defaults. Trains the demo configuration (a few minutes on
 * a 2-core CPU) into runs/demo, decodes every checkpoint, runs the causal tests at the end of
 * training and writes the report. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_causal.h"
#include "iclab/icl_decode.h"
#include "iclab/icl_runplot.h"
#include "iclab/icl_train.h"

int cmd_demo(int argc, char **argv) {
    icl_err err;
    const char *out = "runs/demo", *preset = "demo";
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: iclab demo [--out DIR] [--threads N] [--preset demo]\n\n"
                   "Trains the demo configuration (iclab train --preset demo) into DIR (default runs/demo,\n"
                   "replaced if it is an earlier iclab run), then runs iclab decode, iclab patch and iclab report\n"
                   "on it: open DIR/report.html. --preset tiny runs the same steps on the tiny preset in seconds\n"
                   "(the test suite's check of this path; its report shows nothing learnt).\n");
            return 0;
        }
        char name[64];
        const char *v = strncmp(argv[i], "--", 2) ? NULL : cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) {
            if (strncmp(argv[i], "--", 2)) icl_errf(&err, "unexpected argument '%s'", argv[i]);
            return cli_fail("demo", &err);
        }
        if (!strcmp(name, "out")) out = v;
        else if (!strcmp(name, "preset")) preset = v;
        else if (!strcmp(name, "threads")) {
            if (cli_parse_int(name, v, 1, 1024, &threads, &err)) return cli_fail("demo", &err);
        } else {
            icl_errf(&err, "unknown option --%s (see iclab demo --help)", name);
            return cli_fail("demo", &err);
        }
    }
    icl_train_config c;
    if (icl_train_config_preset(&c, preset, &err)) return cli_fail("demo", &err);
    c.threads = threads;
    icl_train_options opt = {.mode = ICL_RUN_OVERWRITE, .progress = stderr};
    fprintf(stderr, "iclab demo: training the %s configuration into %s\n", preset, out);
    if (icl_train(out, &c, &opt, &err)) return cli_fail("demo", &err);
    icl_decode_config dc;
    icl_decode_config_default(&dc);
    fprintf(stderr, "iclab demo: task decodability of every checkpoint x layer\n");
    if (icl_decode_run(out, &dc, NULL, 0, stderr, &err)) return cli_fail("demo", &err);
    /* causal tests and the algorithm comparison at every checkpoint, so the report can show when the
     * model switches algorithm */
    fprintf(stderr, "iclab demo: patching, head ablation and algorithm comparison at every checkpoint\n");
    int64_t steps[4096];
    int n = icl_ckpt_schedule(&c, steps, 4096);
    char *list = malloc((size_t)n * 24 + 1), *p = list;
    if (!list) return 1;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, i ? ",%lld" : "%lld", (long long)steps[i]);
    /* patch every y token entering the last block: where the concepts become decodable (one y token
     * alone moves the prediction by less than 0.001, see docs/reproduction.md) */
    char layer[16];
    snprintf(layer, sizeof layer, "%d", c.n_layer - 1);
    char *patch_argv[] = {"patch", (char *)out, "--per-concept", "100", "--at", "all-y", "--layer", layer, "--steps", list, NULL};
    int pr = cmd_patch(10, patch_argv);
    free(list);
    if (pr) return 1;
    if (icl_run_report(out, &err)) return cli_fail("demo", &err);
    printf("open %s/report.html (figures in %s/figures, data in the CSV files)\n", out, out);
    return 0;
}
