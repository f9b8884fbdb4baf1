/* `iclab report RUN`: figures and a self-contained report.html for a run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_file.h"
#include "iclab/icl_lmeval.h"
#include "iclab/icl_runplot.h"

/* 1 when dir holds what `iclab eval` or `iclab patch MODEL.gguf` writes (not a training run). */
static int is_eval_folder(const char *dir) {
    char path[4200], *text = NULL;
    size_t n;
    icl_err err;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!icl_path_exists(path)) {
        snprintf(path, sizeof path, "%s/intervention_summary.csv", dir);
        return icl_path_exists(path);
    }
    if (icl_read_file(path, &text, &n, &err)) return 0;
    int yes = strstr(text, "\"kind\": \"lm-eval\"") != NULL;
    free(text);
    return yes;
}

int cmd_report(int argc, char **argv) {
    icl_err err;
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        printf("usage: iclab report RUN\n\nDraws RUN/figures/*.png|svg and writes RUN/report.html from the run's CSV files\n"
               "(train, eval, estimators; decode/ and causal/ when iclab decode / iclab patch have run).\n"
               "RUN may also be a folder of `iclab eval` / `iclab patch MODEL.gguf`: its report is rebuilt.\n");
        return 0;
    }
    if (argc != 2 || !strncmp(argv[1], "--", 2)) {
        icl_errf(&err, "usage: iclab report RUN");
        return cli_fail("report", &err);
    }
    if (is_eval_folder(argv[1]) ? icl_eval_report(argv[1], &err) : icl_run_report(argv[1], &err))
        return cli_fail("report", &err);
    printf("wrote %s/report.html\n", argv[1]);
    return 0;
}
