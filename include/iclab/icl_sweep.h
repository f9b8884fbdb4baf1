/* Sweeps: a grid of toy-trainer configurations x seeds, trained as independent runs, one run folder
 * each (exactly what `iclab train` writes), sequentially or spread over MPI ranks (run i on rank
 * i % N), resumable, and summarised in one report. A sweep folder holds:
 *
 *   SWEEP/grid.txt            the base configuration, the axes and the seeds (a re-run must match it)
 *   SWEEP/runs/NAME/          one run folder per (configuration, seed), e.g. runs/lr=1e-4_seed=3
 *   SWEEP/status/NAME.json    {"status": ..., "wall_s": ...} of the rank that trained it
 *   SWEEP/sweep.csv, .json    one row per run: swept values, seed, steps, final losses, wall time, status
 *   SWEEP/sweep_concepts.csv  one row per concept of each run: its loss drop, TD halfway, TD lag,
 *                             MSE against the basis-agnostic level, best TD (and at the last
 *                             token when td.csv reads another), self/cross patching
 *   SWEEP/report.html         loss curves per configuration with the seeds overlaid, the plateau
 *                             table, and TD curves where `iclab decode` has been run on the runs
 * See docs/sweep.md. */
#ifndef ICL_SWEEP_H
#define ICL_SWEEP_H
#include <stdint.h>
#include <stdio.h>
#include "iclab/icl_train.h"

enum { ICL_SWEEP_MAX_AXES = 8, ICL_SWEEP_MAX_VALUES = 64, ICL_SWEEP_MAX_SEEDS = 1000, ICL_SWEEP_VALUE_LEN = 32 };

typedef struct icl_sweep {
    icl_train_config base; /* every run starts from it */
    int n_axes;
    const icl_config_field *field[ICL_SWEEP_MAX_AXES];
    int n_values[ICL_SWEEP_MAX_AXES];
    char value[ICL_SWEEP_MAX_AXES][ICL_SWEEP_MAX_VALUES][ICL_SWEEP_VALUE_LEN]; /* as written by the user */
    int n_seeds;
    uint64_t seeds[ICL_SWEEP_MAX_SEEDS];
    /* The report's plateau exit: the first evaluated step (> 0) whose held-out normalised MSE over
     * all concepts is below this (default ICL_SWEEP_PLATEAU_MSE). 1.0 is predicting 0, ignoring the
     * context, where the plateau sits; half of it is unambiguous. Not part of the grid. */
    double plateau_mse;
} icl_sweep;
#define ICL_SWEEP_PLATEAU_MSE 0.5

/* An empty grid on top of base: no axes, no seeds yet, plateau_mse at its default. */
void icl_sweep_init(icl_sweep *s, const icl_train_config *base);
/* Adds an axis from "FIELD=V1,V2,..." (FIELD a config key such as train.lr or its flag name such as
 * lr; not seed, which has icl_sweep_set_seeds). Each value is checked by icl_config_field_parse.
 * An unknown field, a repeated field, an empty list or a bad value is an error. */
int icl_sweep_add_axis(icl_sweep *s, const char *spec, icl_err *err);
/* The seeds from "A-B" (inclusive), "A,B,C" or a mix ("1-3,7"); no repeats. */
int icl_sweep_set_seeds(icl_sweep *s, const char *spec, icl_err *err);
/* Number of runs: the product of the axes' value counts times the seeds (0 if there are no seeds). */
int icl_sweep_n_runs(const icl_sweep *s);
/* Run i's configuration (validated) and folder name. Seeds vary fastest, then the last axis. */
int icl_sweep_run_config(const icl_sweep *s, int i, icl_train_config *c, char *name, size_t name_len, icl_err *err);

/* Creates the sweep folder and grid.txt, or checks that an existing one was made for the same grid
 * (a different grid is an error: its runs would not be what the folder says; the same grid with
 * seeds added is not: grid.txt is rewritten to list them all and the runs already there stay), and refuses a
 * non-empty folder without grid.txt. Only rank 0 looks at the folder; other ranks return 0 at once
 * and learn rank 0's outcome from icl_dist_agree. */
int icl_sweep_prepare(const char *dir, const icl_sweep *s, int rank, icl_err *err);
/* Trains the runs i with i % nranks == rank, in order: a finished run is skipped, an unfinished one
 * (with a checkpoint) resumed, a missing one started. Messages go to progress (NULL: quiet). A run
 * that fails is recorded as failed in its status file and the sweep goes on; *n_failed counts them.
 * Returns -1 only when the sweep itself cannot go on (SIGINT/SIGTERM, an unwritable sweep folder). */
int icl_sweep_train(const char *dir, const icl_sweep *s, int rank, int nranks, FILE *progress, int *n_failed, icl_err *err);
/* Writes sweep.csv, sweep.json and report.html from the run folders as they are now (call after
 * every rank has finished). Returns 0 or -1 with err set. */
int icl_sweep_report(const char *dir, const icl_sweep *s, icl_err *err);
#endif
