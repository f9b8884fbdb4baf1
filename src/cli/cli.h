/* Shared helpers of the iclab command's subcommands. */
#ifndef ICLAB_CLI_H
#define ICLAB_CLI_H
#include <stddef.h>
#include <stdint.h>
#include "iclab/icl_err.h"

/* Prints "iclab <cmd>: message" to stderr and returns the exit status 1. */
int cli_fail(const char *cmd, const icl_err *err);
/* Splits "--name=value" / "--name value": returns the value or NULL (and sets err) if missing;
 * advances *i past a separate value. name_out gets the flag without dashes. */
const char *cli_flag_value(int argc, char **argv, int *i, char *name_out, size_t n, icl_err *err);

/* An integer flag value in lo..hi; a one-line error naming the flag otherwise. */
int cli_parse_int(const char *flag, const char *v, int lo, int hi, int *out, icl_err *err);
/* A comma-separated list of non-negative step numbers (at most cap). */
int cli_parse_steps(const char *flag, const char *v, int64_t *steps, int cap, int *n, icl_err *err);

int cmd_train(int argc, char **argv);
/* iclab sweep (cmd_sweep.c) */
int cmd_sweep(int argc, char **argv);
/* iclab train --task lm (cmd_train_lm.c) */
int cmd_train_lm(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_demo(int argc, char **argv);
/* What iclab demo runs after training (cmd_demo.c): iclab decode at every checkpoint, iclab patch
 * (every y token after icl_patch_paper_layer blocks, the algorithm comparison and the off-basis sensitivity at
 * every checkpoint, head ablation at the last) and the report. c is the run's configuration; TD is
 * read at the y-token of demonstration `demo` (0 = the last, the paper's choice); when that is not the
 * last token, TD at the last token goes beside it into decode/td_last.csv. Returns 0 or 1 (message printed). */
struct icl_train_config;
int cli_analyse_run(const char *run, const struct icl_train_config *c, int demo);

/* The demonstration whose y-token the analysis of a preset's runs reads by default (0 = the last):
 * for the reproduce preset, the last y-token a prediction reads (demonstration K - 1; the last y-token
 * feeds no prediction, docs/reproduction.md), for the others the paper's last. */
int cli_analysis_demo(const char *preset, const struct icl_train_config *c);
int cmd_decode(int argc, char **argv);
int cmd_patch(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_mkmodel(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_capture(int argc, char **argv);
int cmd_lmbench(int argc, char **argv);
int cmd_td(int argc, char **argv);
int cmd_eval(int argc, char **argv);
/* iclab finetune (cmd_finetune.c) */
int cmd_finetune(int argc, char **argv);
int cmd_patch_lm(int argc, char **argv);
int cmd_mkcorpus(int argc, char **argv);
/* 1 when path is a regular file starting with the GGUF magic. */
int icl_is_gguf_file(const char *path);

#endif
