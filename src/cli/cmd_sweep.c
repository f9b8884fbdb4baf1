/* `iclab sweep`: a grid of toy-trainer configurations x seeds, sequential or over MPI ranks (icl_sweep.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_dist.h"
#include "iclab/icl_causal.h"
#include "iclab/icl_runplot.h"
#include "iclab/icl_sweep.h"

static void sweep_usage(FILE *f) {
    fprintf(f,
            "usage: iclab sweep [--preset NAME] --out DIR [--seeds A-B|A,B,..] [--set FIELD=V1,V2,..]... [train options]\n\n"
            "Trains every configuration of the grid (the product of the --set lists) with every seed as an\n"
            "independent `iclab train` run in DIR/runs/NAME, then writes DIR/sweep.csv, sweep.json and report.html\n"
            "(loss curves with the seeds overlaid, which seeds left the plateau, TD curves of decoded runs).\n"
            "Running it again skips finished runs and resumes unfinished ones. Under mpirun -np N run i goes to\n"
            "rank i %% N (give --threads 1 when the ranks share the cores). See docs/sweep.md.\n\n"
            "  --preset NAME     the base configuration's preset: %s (default: tiny)\n"
            "  --out DIR         the sweep folder (required)\n"
            "  --seeds SPEC      seeds: a range 1-4, a list 1,5,9, or both (default: the base seed)\n"
            "  --set F=V1,V2     a swept field (a flag of iclab train such as lr, or its key train.lr); repeatable\n"
            "  --report-only     rewrite the report from the run folders as they are; train nothing\n"
            "  --analyse         after training, decode and patch every finished run at every checkpoint and\n"
            "                    write its report.html (what iclab demo does), so the sweep report gets its\n"
            "                    phase table: when each concept's loss fell and TD rose, and phase (c)\n"
            "  --demo K          with --analyse: TD at the y-token of demonstration K (default: the last;\n"
            "                    for --preset reproduce, K - 1 as iclab demo --full, the last token beside it)\n"
            "  --plateau-mse X   the report's plateau exit: held-out normalised MSE below X (default %g)\n"
            "  --quiet           no messages about the runs\n"
            "  --FLAG VALUE      any option of iclab train sets the base configuration (e.g. --steps 200)\n",
            icl_train_presets(), ICL_SWEEP_PLATEAU_MSE);
}

static int sweep_main(int argc, char **argv);

int cmd_sweep(int argc, char **argv) {
    icl_err err;
    if (icl_dist_init(&err)) return cli_fail("sweep", &err);
    int r = sweep_main(argc, argv);
    icl_dist_finalize();
    return r;
}

/* Rank 0 prints: every rank fails the same way on bad input and agrees on the rest (a run that
 * fails on another rank is reported in that rank's progress line and in the run's status file). */
static int sweep_fail(const icl_err *err) {
    if (icl_dist_rank() == 0) return cli_fail("sweep", err);
    return 1;
}

/* --analyse: the runs of this rank that finished training and have not been decoded, patched and
 * shift- or transport-patched up to their last step get cli_analyse_run (an analysed run is skipped when the sweep runs again), at
 * demonstration `demo` (0: the preset's default for each run, cli_analysis_demo). */
static int analyse_runs(const char *out, const icl_sweep *s, const char *preset, int demo, int rank, int nranks, FILE *progress,
                        icl_err *err) {
    static icl_run_phases p; /* large: off the stack */
    for (int i = rank; i < icl_sweep_n_runs(s); i += nranks) {
        icl_train_config c;
        char name[256], run[4400];
        if (icl_sweep_run_config(s, i, &c, name, sizeof name, err)) return -1;
        snprintf(run, sizeof run, "%s/runs/%s", out, name);
        icl_err e;
        if (icl_run_phases_read(run, &p, &e) || !(p.last_eval_step >= (double)c.steps)) continue; /* not trained to the end */
        if (p.td_step == (double)c.steps && p.patch_step == (double)c.steps && p.patch_kind != ICL_PATCH_REPLACE) continue;
        if (progress) fprintf(progress, "sweep: analysing %s\n", name);
        if (cli_analyse_run(run, &c, demo ? demo : cli_analysis_demo(preset, &c))) return icl_errf(err, "the analysis of %s failed", name);
    }
    return 0;
}

static int sweep_main(int argc, char **argv) {
    icl_err err;
    const char *preset = "tiny", *out = NULL, *seeds = NULL;
    int report_only = 0, analyse = 0, demo = 0;
    double plateau_mse = ICL_SWEEP_PLATEAU_MSE;
    FILE *progress = stderr;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (icl_dist_rank() == 0) sweep_usage(stdout);
            return 0;
        }
        if (!strncmp(argv[i], "--preset", 8) && (argv[i][8] == 0 || argv[i][8] == '=')) {
            char name[64];
            int j = i;
            preset = cli_flag_value(argc, argv, &j, name, sizeof name, &err);
            if (!preset) return sweep_fail(&err);
        }
    }
    icl_train_config base;
    if (icl_train_config_preset(&base, preset, &err)) return sweep_fail(&err);
    static icl_sweep s; /* about 25 KB: kept off the stack */
    const char *sets[ICL_SWEEP_MAX_AXES + 1];
    int n_sets = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            icl_errf(&err, "unexpected argument '%s' (see iclab sweep --help)", a);
            return sweep_fail(&err);
        }
        if (!strcmp(a, "--quiet")) { progress = NULL; continue; }
        if (!strcmp(a, "--report-only")) { report_only = 1; continue; }
        if (!strcmp(a, "--analyse")) { analyse = 1; continue; }
        char name[64];
        const char *v = cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) return sweep_fail(&err);
        if (!strcmp(name, "preset")) continue;
        if (!strcmp(name, "out")) { out = v; continue; }
        if (!strcmp(name, "seeds")) { seeds = v; continue; }
        if (!strcmp(name, "demo")) {
            if (cli_parse_int(name, v, 1, 100000, &demo, &err)) return sweep_fail(&err);
            continue;
        }
        if (!strcmp(name, "plateau-mse")) {
            char *end;
            plateau_mse = strtod(v, &end);
            if (!*v || *end || !(plateau_mse > 0 && plateau_mse < 1e9)) {
                icl_errf(&err, "--plateau-mse: '%s' is not a positive number", v);
                return sweep_fail(&err);
            }
            continue;
        }
        if (!strcmp(name, "set")) {
            if (n_sets > ICL_SWEEP_MAX_AXES) {
                icl_errf(&err, "--set: at most %d swept fields", ICL_SWEEP_MAX_AXES);
                return sweep_fail(&err);
            }
            sets[n_sets++] = v;
            continue;
        }
        const icl_config_field *f = NULL;
        for (int k = 0; k < icl_train_n_fields; k++)
            if (!strcmp(icl_train_fields[k].flag, name)) f = &icl_train_fields[k];
        if (!f) {
            icl_errf(&err, "unknown option --%s (see iclab sweep --help)", name);
            return sweep_fail(&err);
        }
        if (icl_config_field_parse(&base, f, v, &err)) return sweep_fail(&err);
    }
    if (!out) {
        icl_errf(&err, "--out DIR is required: the sweep folder");
        return sweep_fail(&err);
    }
    /* the base itself need not be valid on its own (a swept field may fix it), each run must be */
    icl_sweep_init(&s, &base);
    s.plateau_mse = plateau_mse;
    for (int k = 0; k < n_sets; k++)
        if (icl_sweep_add_axis(&s, sets[k], &err)) return sweep_fail(&err);
    if (seeds) {
        if (icl_sweep_set_seeds(&s, seeds, &err)) return sweep_fail(&err);
    } else {
        s.seeds[0] = base.seed;
        s.n_seeds = 1;
    }
    int n = icl_sweep_n_runs(&s);
    for (int i = 0; i < n; i++) {
        icl_train_config c;
        char name[256];
        if (icl_sweep_run_config(&s, i, &c, name, sizeof name, &err)) return sweep_fail(&err);
    }
    int rank = icl_dist_rank(), size = icl_dist_size();
    if (icl_dist_agree(icl_sweep_prepare(out, &s, rank, &err), &err)) return sweep_fail(&err);
    if (progress && rank == 0)
        fprintf(progress, "sweep %s: %d run%s on %d rank%s\n", out, n, n == 1 ? "" : "s", size, size == 1 ? "" : "s");
    int n_failed = 0, rc = 0;
    if (!report_only) rc = icl_sweep_train(out, &s, rank, size, progress, &n_failed, &err);
    if (!rc && analyse && !report_only) rc = analyse_runs(out, &s, preset, demo, rank, size, progress, &err);
    /* every rank waits here for the others (the agreement is collective) before rank 0 reports */
    if (icl_dist_agree(rc, &err)) return sweep_fail(&err);
    double failed = n_failed;
    if (icl_dist_sum_f64(&failed, 1, &err)) return sweep_fail(&err);
    if (rank == 0) {
        if (icl_sweep_report(out, &s, &err)) return sweep_fail(&err);
        if (progress) fprintf(progress, "wrote %s/sweep.csv, sweep.json, sweep_concepts.csv and report.html\n", out);
    }
    if (failed > 0) {
        icl_errf(&err, "%d of %d runs failed (see %s/sweep.csv and status/)", (int)failed, n, out);
        return rank == 0 ? cli_fail("sweep", &err) : 1;
    }
    return 0;
}
