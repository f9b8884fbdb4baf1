/* `iclab decode RUN`: task decodability of every checkpoint x layer of a training run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_decode.h"

int cmd_decode(int argc, char **argv) {
    icl_err err;
    icl_decode_config dc;
    icl_decode_config_default(&dc);
    const char *run = NULL;
    int64_t steps[4096];
    int n_steps = 0, have_steps = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("usage: iclab decode RUN [--steps S1,S2,...] [--per-concept 100] [--demo K] [--k 10]\n"
                   "                        [--at x:K|y:K|last] [--metric euclidean|cosine] [--embed 3] [--no-probe] [--no-reps]\n"
                   "                        [--table td]\n\n"
                   "For every checkpoint (or the listed steps) and every layer (0 = embedding, l = after block l),\n"
                   "captures the residual stream of a fixed probe set (per-concept sequences of each concept) at the\n"
                   "y-token of demonstration K (default: the last; --at picks another token) and measures leave-one-out\n"
                   "kNN task decodability.\n"
                   "Also fits a held-out linear probe per layer, and embeds every layer in 2-D (PCA, UMAP with\n"
                   "n_neighbors 15, min_dist 0.1) at --embed log-spaced checkpoints. Writes RUN/decode/td.csv and\n"
                   "td.jsonl, labels.npy, reps_step_N.npy (layers x points x width), pca_/umap_step_N.npy.\n"
                   "--table NAME writes the TD table as decode/NAME.csv and .jsonl instead, to keep a second reading\n"
                   "(another token) beside td.csv, which reports read as the run's TD.\n");
            return 0;
        }
        if (strncmp(a, "--", 2)) {
            if (run) {
                icl_errf(&err, "unexpected argument '%s'", a);
                return cli_fail("decode", &err);
            }
            run = a;
            continue;
        }
        if (!strcmp(a, "--no-reps")) {
            dc.save_reps = 0;
            continue;
        }
        if (!strcmp(a, "--no-probe")) {
            dc.probe = 0;
            continue;
        }
        char name[64];
        const char *v = cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) return cli_fail("decode", &err);
        int bad = 0;
        if (!strcmp(name, "per-concept")) bad = cli_parse_int(name, v, 1, 100000, &dc.per_concept, &err);
        else if (!strcmp(name, "demo")) bad = cli_parse_int(name, v, 1, 65536, &dc.demo, &err);
        else if (!strcmp(name, "k")) bad = cli_parse_int(name, v, 1, 10000, &dc.k, &err);
        else if (!strcmp(name, "embed")) bad = cli_parse_int(name, v, 0, 100, &dc.n_embed, &err);
        else if (!strcmp(name, "at")) {
            if (strlen(v) >= sizeof dc.at) bad = icl_errf(&err, "--at: '%s' is too long", v);
            else snprintf(dc.at, sizeof dc.at, "%s", v);
        }
        else if (!strcmp(name, "table")) {
            if (strlen(v) >= sizeof dc.table) bad = icl_errf(&err, "--table: '%s' is too long", v);
            else snprintf(dc.table, sizeof dc.table, "%s", v);
        }
        else if (!strcmp(name, "metric")) bad = icl_metric_parse(v, &dc.metric, &err);
        else if (!strcmp(name, "steps")) {
            have_steps = 1;
            bad = cli_parse_steps(name, v, steps, 4096, &n_steps, &err);
        } else bad = icl_errf(&err, "unknown option --%s (see iclab decode --help)", name);
        if (bad) return cli_fail("decode", &err);
    }
    if (!run) {
        icl_errf(&err, "missing the run folder (iclab decode RUN)");
        return cli_fail("decode", &err);
    }
    if (icl_decode_run(run, &dc, have_steps ? steps : NULL, n_steps, stderr, &err)) return cli_fail("decode", &err);
    printf("wrote %s/decode/%s.csv\n", run, dc.table);
    return 0;
}
