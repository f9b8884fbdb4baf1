/* `iclab train` and `iclab info`. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_ckpt.h"
#include "iclab/icl_dist.h"
#include "iclab/icl_train.h"

static void train_usage(FILE *f) {
    icl_train_config c;
    icl_train_config_default(&c);
    fprintf(f,
            "usage: iclab train [--preset NAME] [--out DIR] [--resume | --overwrite] [options]\n\n"
            "Trains the toy in-context regression transformer; the run folder gets config.json, train.csv,\n"
            "eval.csv, eval_positions.csv, estimators.csv and checkpoints/*.gguf.\n"
            "iclab train --task lm --corpus DIR trains a language model instead (iclab train --task lm --help).\n\n"
            "  --preset NAME     start from a preset: %s (default: paper)\n"
            "  --out DIR         run folder (default: runs/<preset>)\n"
            "  --resume          continue the run in --out from its latest checkpoint (bit-identical)\n"
            "  --overwrite       replace an existing run folder\n"
            "  --stop-after N    stop (with a checkpoint) after step N\n"
            "  --quiet           no progress bar\n"
            "Under mpirun -np N (a build with Open MPI) each step's batch is split over the N ranks (data\n"
            "parallel; N must divide --batch); only rank 0 writes. See docs/sweep.md.\n\n"
            "options (defaults are the paper's):\n",
            icl_train_presets());
    for (int i = 0; i < icl_train_n_fields; i++) {
        char v[64];
        icl_config_field_format(&c, &icl_train_fields[i], v, sizeof v);
        fprintf(f, "  --%-14s %s (default %s)\n", icl_train_fields[i].flag, icl_train_fields[i].help, v);
    }
}

/* 1 if the arguments ask for --task lm (the language-model trainer, cmd_train_lm.c). */
static int wants_lm(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if ((!strcmp(argv[i], "--task") && i + 1 < argc && !strcmp(argv[i + 1], "lm")) || !strcmp(argv[i], "--task=lm"))
            return 1;
    return 0;
}

static int train_toy(int argc, char **argv);

/* Prints the error on rank 0; other ranks fail the same way on bad input and agree on set-up
 * failures, so they print only a failure of their own inside the training loop. */
static int train_fail(const icl_err *err) {
    if (icl_dist_rank() == 0) return cli_fail("train", err);
    if (icl_train_failed_alone() && !icl_dist_peer_failed()) {
        icl_err e = *err;
        icl_err_prefix(&e, "rank %d: ", icl_dist_rank());
        return cli_fail("train", &e);
    }
    return 1;
}

int cmd_train(int argc, char **argv) {
    if (wants_lm(argc, argv)) return cmd_train_lm(argc, argv);
    icl_err err;
    if (icl_dist_init(&err)) return train_fail(&err);
    int r = train_toy(argc, argv);
    /* a rank that failed inside the training loop would leave the others waiting: end the job */
    if (r && icl_train_failed_alone()) icl_dist_abort(r);
    icl_dist_finalize();
    return r;
}

static int train_toy(int argc, char **argv) {
    icl_err err;
    icl_train_config c;
    const char *preset = "paper", *out = NULL;
    icl_train_options opt = {.mode = ICL_RUN_NEW, .progress = stderr, .stop_after = 0};
    /* the preset first, so flags override it wherever they appear */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            train_usage(stdout);
            return 0;
        }
        if (!strncmp(argv[i], "--preset", 8) && (argv[i][8] == 0 || argv[i][8] == '=')) {
            char name[64];
            int j = i;
            preset = cli_flag_value(argc, argv, &j, name, sizeof name, &err);
            if (!preset) return train_fail(&err);
        }
    }
    if (icl_train_config_preset(&c, preset, &err)) return train_fail(&err);
    int64_t steps_flag = 0;
    const char *config_flag = NULL; /* a configuration flag other than --steps (not allowed with --resume) */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2)) {
            icl_errf(&err, "unexpected argument '%s' (see iclab train --help)", a);
            return train_fail(&err);
        }
        if (!strcmp(a, "--resume")) { opt.mode = ICL_RUN_RESUME; continue; }
        if (!strcmp(a, "--overwrite")) { opt.mode = ICL_RUN_OVERWRITE; continue; }
        if (!strcmp(a, "--quiet")) { opt.progress = NULL; continue; }
        if (!strcmp(a, "--bf16") && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) { /* bare: on */
            c.bf16 = 1;
            config_flag = "bf16";
            continue;
        }
        char name[64];
        const char *v = cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) return train_fail(&err);
        if (!strcmp(name, "preset")) continue;
        if (!strcmp(name, "out")) { out = v; continue; }
        if (!strcmp(name, "stop-after")) {
            char *end;
            opt.stop_after = strtoll(v, &end, 10);
            if (*end || opt.stop_after < 1) {
                icl_errf(&err, "--stop-after: '%s' is not a positive integer", v);
                return train_fail(&err);
            }
            continue;
        }
        const icl_config_field *f = NULL;
        for (int k = 0; k < icl_train_n_fields; k++)
            if (!strcmp(icl_train_fields[k].flag, name)) f = &icl_train_fields[k];
        if (!f) {
            icl_errf(&err, "unknown option --%s (see iclab train --help)", name);
            return train_fail(&err);
        }
        if (icl_config_field_parse(&c, f, v, &err)) return train_fail(&err);
        if (!strcmp(name, "steps")) steps_flag = c.steps;
        else config_flag = f->flag;
    }
    if (opt.mode == ICL_RUN_RESUME && !out) {
        icl_errf(&err, "--resume needs --out DIR, the run folder to continue");
        return train_fail(&err);
    }
    if (opt.mode == ICL_RUN_RESUME && config_flag) {
        icl_errf(&err, "--%s cannot be changed when resuming: the configuration comes from the checkpoint (only --steps may extend it)", config_flag);
        return train_fail(&err);
    }
    char defdir[256];
    if (!out) {
        snprintf(defdir, sizeof defdir, "runs/%s", preset);
        out = defdir;
    }
    if (opt.mode == ICL_RUN_RESUME) c.steps = steps_flag; /* only an explicit --steps extends a resumed run */
    else if (icl_train_config_validate(&c, &err)) return train_fail(&err);
    if (icl_dist_rank() != 0) opt.progress = NULL;
    if (opt.progress) fprintf(opt.progress, "%s %s\n", opt.mode == ICL_RUN_RESUME ? "resuming" : "training into", out);
    if (icl_train(out, &c, &opt, &err)) return train_fail(&err);
    if (opt.progress) fprintf(opt.progress, "done: %s\n", out);
    return 0;
}

int cmd_info(int argc, char **argv) {
    icl_err err;
    if (argc != 2 || !strcmp(argv[1], "--help")) {
        fprintf(argc == 2 ? stdout : stderr, "usage: iclab info CHECKPOINT.gguf\n");
        return argc == 2 ? 0 : 2;
    }
    icl_model m;
    icl_train_config c;
    icl_ckpt_state st;
    if (icl_ckpt_load(argv[1], &m, &c, &st, &err)) return cli_fail("info", &err);
    printf("checkpoint %s: step %" PRId64 ", %zu parameters\n", argv[1], st.step, m.n_params);
    for (int i = 0; i < icl_train_n_fields; i++) {
        char v[64];
        icl_config_field_format(&c, &icl_train_fields[i], v, sizeof v);
        printf("  %-20s %s\n", icl_train_fields[i].key, v);
    }
    int nc = icl_task_n_concepts(&c.task), K = c.task.n_points;
    double *mse = malloc(sizeof(double) * nc * K), *mean = malloc(sizeof(double) * nc);
    int *counts = malloc(sizeof(int) * nc);
    int r = icl_eval_heldout(&m, &c, mse, mean, counts, &err);
    if (!r)
        for (int k = 0; k < nc; k++) {
            char name[64];
            icl_task_concept_name(&c.task, k, name, sizeof name);
            printf("held-out normalised MSE, %s: %.4f (%d sequences)\n", name, mean[k], counts[k]);
        }
    free(mse); free(mean); free(counts);
    icl_model_free(&m);
    return r ? cli_fail("info", &err) : 0;
}
