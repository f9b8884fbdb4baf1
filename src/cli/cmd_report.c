/* `iclab report RUN`: figures and a self-contained report.html for a run. */
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_runplot.h"

int cmd_report(int argc, char **argv) {
    icl_err err;
    if (argc == 2 && !strcmp(argv[1], "--help")) {
        printf("usage: iclab report RUN\n\nDraws RUN/figures/*.png|svg and writes RUN/report.html from the run's CSV files\n"
               "(train, eval, estimators; decode/ and causal/ when iclab decode / iclab patch have run).\n");
        return 0;
    }
    if (argc != 2 || !strncmp(argv[1], "--", 2)) {
        icl_errf(&err, "usage: iclab report RUN");
        return cli_fail("report", &err);
    }
    if (icl_run_report(argv[1], &err)) return cli_fail("report", &err);
    printf("wrote %s/report.html\n", argv[1]);
    return 0;
}
