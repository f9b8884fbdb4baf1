/* `iclab patch RUN`: causal tests on the toy model's checkpoints — mean-activation patching between
 * concepts, single-head ablation, and the distance of the model's predictions to each reference
 * estimator. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_causal.h"
#include "iclab/icl_ckpt.h"
#include "iclab/icl_estim.h"
#include "iclab/icl_file.h"

/* The tables iclab patch writes into RUN/causal (--shift, --mse all: only a patching matrix of their own). */
enum { T_PATCH, T_HEADS, T_ALGO, T_OFFBASIS, N_TABLES };
static const char *const table_file[N_TABLES] = {"patch.csv", "heads.csv", "algo.csv", "offbasis.csv"};
static const char *const table_header[N_TABLES] = {"step,layer,source,target,delta_mse,base_mse,delta_se\n",
                                                   "step,layer,head,concept,delta_mse,base_mse\n",
                                                   "step,concept,estimator,distance\n", "step,concept,predictor,sensitivity\n"};

/* A checkpoint's head ablation, algorithm distances and off-basis sensitivity into t[T_HEADS..]. */
static int other_tables(icl_model *m, const icl_train_config *c, int64_t step, int per, int heads, icl_estimator_refs *refs,
                        icl_afile *t, icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), L = c->n_layer, H = c->n_head;
    double *base = malloc(sizeof(double) * nc), *hd = malloc(sizeof(double) * (size_t)L * H * nc);
    double *dist = malloc(sizeof(double) * nc * ICL_N_ESTIMATORS), *sens = malloc(sizeof(double) * nc * (1 + ICL_N_ESTIMATORS));
    int r = (!base || !hd || !dist || !sens) ? icl_errf(err, "out of memory") : 0;
    /* the estimators' predictions do not depend on the checkpoint: computed at the first one */
    if (!r && !refs->probe[0]) r = icl_estimator_refs_init(refs, c, per, err);
    if (!r && heads) r = icl_head_ablation(m, c, per, hd, base, err);
    for (int l = 0; l < L && !r && heads; l++)
        for (int h = 0; h < H; h++)
            for (int k = 0; k < nc; k++)
                icl_afile_printf(&t[T_HEADS], err, "%" PRId64 ",%d,%d,%d,%.6g,%.6g\n", step, l, h, k, hd[((size_t)l * H + h) * nc + k],
                                 base[k]);
    if (!r) r = icl_algorithm_distance(m, c, per, refs, dist, err);
    for (int k = 0; k < nc && !r; k++)
        for (int e = 0; e < ICL_N_ESTIMATORS; e++)
            icl_afile_printf(&t[T_ALGO], err, "%" PRId64 ",%d,%s,%.6g\n", step, k, icl_estimator_name((icl_estimator)e),
                             dist[k * ICL_N_ESTIMATORS + e]);
    /* off-basis sensitivity only means something for two or more bases */
    if (!r && c->task.kind == ICL_TASK_BASES && nc > 1) {
        r = icl_offbasis_sensitivity(m, c, per, refs, sens, err);
        for (int k = 0; k < nc && !r; k++)
            for (int e = -1; e < ICL_N_ESTIMATORS; e++)
                icl_afile_printf(&t[T_OFFBASIS], err, "%" PRId64 ",%d,%s,%.6g\n", step, k,
                                 e < 0 ? "model" : icl_estimator_name((icl_estimator)e), sens[k * (1 + ICL_N_ESTIMATORS) + 1 + e]);
    }
    free(base); free(hd); free(dist); free(sens);
    return r;
}

/* One checkpoint: the patching matrix into t[T_PATCH], and for the default matrix (replacement, final
 * prediction) the other tables. A spec layer < 0 means the paper's depth for this run. */
static int run_one(const char *run, int64_t step, icl_patch_spec spec, int heads, icl_estimator_refs *refs, icl_afile *t,
                   icl_err *err) {
    char path[4400];
    icl_model m;
    icl_train_config c;
    icl_ckpt_state st;
    icl_ckpt_path(run, step, path, sizeof path);
    if (icl_ckpt_load(path, &m, &c, &st, err)) return -1;
    int nc = icl_task_n_concepts(&c.task), L = c.n_layer;
    if (spec.layer < 0) spec.layer = icl_patch_paper_layer(L);
    const int layer = spec.layer, per = spec.per_concept;
    double *delta = malloc(sizeof(double) * nc * nc), *se = malloc(sizeof(double) * nc * nc), *base = malloc(sizeof(double) * nc);
    int r = (!delta || !se || !base) ? icl_errf(err, "out of memory") : 0;
    if (!r && layer >= L) r = icl_errf(err, "--layer %d out of range 0..%d for this run", layer, L - 1);
    if (!r) r = icl_patch_matrix(&m, &c, &spec, delta, se, base, err);
    for (int s = 0; s < nc && !r; s++)
        for (int q = 0; q < nc; q++)
            icl_afile_printf(&t[T_PATCH], err, "%" PRId64 ",%d,%d,%d,%.6g,%.6g,%.6g\n", step, layer, s, q, delta[s * nc + q], base[s],
                             se[s * nc + q]);
    if (!r && spec.mode == ICL_PATCH_REPLACE && !spec.all_positions && spec.at <= ICL_PATCH_AT_ALL_Y) r = other_tables(&m, &c, step, per, heads, refs, t, err);
    free(delta);
    free(se);
    free(base);
    icl_model_free(&m);
    return r;
}

int cmd_patch(int argc, char **argv) {
    icl_err err;
    const char *run = NULL;
    icl_patch_spec spec = {.layer = -1, .per_concept = 100};
    int heads_all = 1;
    int64_t steps[4096];
    int n_steps = 0;
    /* A GGUF language model instead of a run folder: the token-task interventions. */
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) && icl_is_gguf_file(argv[i])) return cmd_patch_lm(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help")) {
            printf("(iclab patch MODEL.gguf --layer L ...: interventions on a language model; see iclab patch MODEL.gguf --help)\n"
                   "usage: iclab patch RUN [--steps S1,S2,...] [--layer L] [--at SITE] [--per-concept 100] [--heads all|last]\n"
                   "       iclab patch RUN --shift|--transport [--steps ...] [--layer L] [--at SITE] [--per-concept 100]\n"
                   "       iclab patch RUN [--shift|--transport] --mse all [--steps ...] [--layer L] [--at SITE] [--per-concept 100]\n\n"
                   "For the listed checkpoints (default: the last), writes to RUN/causal/:\n"
                   "  patch.csv  mean-activation patching: replace the stream after L blocks at the y token of the last\n"
                   "             demonstration (--at all-y: at every demonstration's y token) of concept-s\n"
                   "             sequences by the mean of concept t there; change of the final prediction's MSE\n"
                   "             (delta_se: its standard error over the per-concept sequences). L\n"
                   "             defaults to the paper's depth (after 5 of 12 blocks): round(5 n_layer / 12), so 2 of 4, 3 of 8\n"
                   "  heads.csv  zero one head at a time; change of the MSE per concept (--heads last: only at the last\n"
                   "             listed checkpoint, the one the report draws; it costs a forward pass per head)\n"
                   "  algo.csv   distance of the model's predictions to each reference estimator, per concept\n"
                   "  offbasis.csv  how far the predictions (the model's and each estimator's) move when the coordinates of\n"
                   "             the other bases are redrawn: 0 for a learner that regresses on the sequence's own basis alone\n"
                   "--shift writes only causal/patch_shift.csv (the same columns): instead of replacing the stream, it\n"
                   "moves it by mean_t - mean_s, keeping the sequence's own data, so a self-patch changes nothing and a\n"
                   "cross-patch moves only the concept direction (the other tables are left as they are).\n"
                   "--transport writes only causal/patch_transport.csv: each concept's stream there is fitted with a\n"
                   "Gaussian, and a concept-s stream is carried onto concept t's by the optimal transport map (the\n"
                   "smallest move giving it t's mean and covariance), so a concept that lives in which directions vary,\n"
                   "with coinciding means, is carried too. The source Gaussian comes from one half of the mean set, the\n"
                   "target's from the other: the self cell is the noise floor, a cross cell must rise above it (the run\n"
                   "report reads phase (c) from this table when present: by more than 2 standard errors and by more\n"
                   "than half the unpatched MSE).\n"
                   "--mse all compares the MSE averaged over every position's prediction (the paper's test loss) instead\n"
                   "of the final prediction's, and writes only causal/patch_allpos.csv (--shift: patch_shift_allpos.csv):\n"
                   "a concept matters most before the demonstrations determine the weights, not at the last query.\n"
                   "--at SITE: last-y (default; the token TD reads), all-y (every demonstration's y token), query (the\n"
                   "final query's x token, where the last prediction is read) or all-tokens (every token, each moved by\n"
                   "its own position's means). query and all-tokens write only their matrix, to a file of their own:\n"
                   "patch[_shift][_allpos]_query.csv or ..._alltokens.csv.\n");
            return 0;
        }
        if (!strcmp(a, "--shift") || !strcmp(a, "--transport")) {
            int mode = a[2] == 's' ? ICL_PATCH_SHIFT : ICL_PATCH_TRANSPORT;
            if (spec.mode != ICL_PATCH_REPLACE && spec.mode != mode) {
                icl_errf(&err, "--shift and --transport exclude each other");
                return cli_fail("patch", &err);
            }
            spec.mode = mode;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            if (run) {
                icl_errf(&err, "unexpected argument '%s'", a);
                return cli_fail("patch", &err);
            }
            run = a;
            continue;
        }
        char name[64];
        const char *v = cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) return cli_fail("patch", &err);
        int bad = 0;
        if (!strcmp(name, "layer")) bad = cli_parse_int(name, v, 0, 1 << 20, &spec.layer, &err);
        else if (!strcmp(name, "at")) {
            for (spec.at = 0; icl_patch_site_name(spec.at) && strcmp(v, icl_patch_site_name(spec.at)); spec.at++) {}
            if (!icl_patch_site_name(spec.at)) bad = icl_errf(&err, "--at '%s' is not last-y, all-y, query or all-tokens", v);
        } else if (!strcmp(name, "mse")) {
            if (!strcmp(v, "all") || !strcmp(v, "last")) spec.all_positions = v[0] == 'a';
            else bad = icl_errf(&err, "--mse '%s' is not last or all", v);
        } else if (!strcmp(name, "heads")) {
            if (!strcmp(v, "all") || !strcmp(v, "last")) heads_all = v[0] == 'a';
            else bad = icl_errf(&err, "--heads '%s' is not all or last", v);
        } else if (!strcmp(name, "per-concept")) bad = cli_parse_int(name, v, 1, 100000, &spec.per_concept, &err);
        else if (!strcmp(name, "steps")) bad = cli_parse_steps(name, v, steps, 4096, &n_steps, &err);
        else bad = icl_errf(&err, "unknown option --%s (see iclab patch --help)", name);
        if (bad) return cli_fail("patch", &err);
    }
    if (!run) {
        icl_errf(&err, "missing the run folder (iclab patch RUN)");
        return cli_fail("patch", &err);
    }
    char path[4400], dir[4200];
    if (n_steps == 0) {
        if (icl_ckpt_latest(run, path, sizeof path, &steps[0], &err)) return cli_fail("patch", &err);
        n_steps = 1;
    }
    snprintf(dir, sizeof dir, "%s/causal", run);
    if (icl_mkdirs(dir, &err)) return cli_fail("patch", &err);
    /* --shift, --mse all and the query / all-tokens sites write their matrix beside patch.csv (a file
     * of their own, so the run analysis's tables stay what they were) and leave the others as they are */
    char matrix_file[64];
    int own_site = spec.at == ICL_PATCH_AT_QUERY || spec.at == ICL_PATCH_AT_ALL_TOKENS;
    snprintf(matrix_file, sizeof matrix_file, "patch%s%s%s.csv", spec.mode == ICL_PATCH_SHIFT ? "_shift" : spec.mode == ICL_PATCH_TRANSPORT ? "_transport" : "", spec.all_positions ? "_allpos" : "",
             spec.at == ICL_PATCH_AT_QUERY ? "_query" : spec.at == ICL_PATCH_AT_ALL_TOKENS ? "_alltokens" : "");
    const char *only = spec.mode != ICL_PATCH_REPLACE || spec.all_positions || own_site ? matrix_file : NULL;
    int n_tables = only ? 1 : N_TABLES, r = 0, opened = 0;
    icl_afile t[N_TABLES];
    for (; opened < n_tables && !r; opened++) {
        snprintf(path, sizeof path, "%s/%s", dir, only ? only : table_file[opened]);
        if ((r = icl_afile_open(&t[opened], path, &err))) break;
        icl_afile_printf(&t[opened], &err, "%s", table_header[opened]);
    }
    icl_estimator_refs refs = {0};
    for (int i = 0; i < n_steps && !r; i++) {
        if (n_steps < 8 || i + 1 == n_steps || (i + 1) % 8 == 0) fprintf(stderr, "patch: step %" PRId64 " (%d/%d)\n", steps[i], i + 1, n_steps);
        r = run_one(run, steps[i], spec, heads_all || i + 1 == n_steps, &refs, t, &err);
    }
    icl_estimator_refs_free(&refs);
    for (int k = 0; k < opened; k++) {
        if (r) icl_afile_abort(&t[k]);
        else r = icl_afile_commit(&t[k], &err);
    }
    if (r) return cli_fail("patch", &err);
    if (only) printf("wrote %s/%s\n", dir, only);
    else printf("wrote %s/patch.csv, heads.csv, algo.csv, offbasis.csv\n", dir);
    return 0;
}
