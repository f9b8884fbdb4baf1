/* `iclab finetune MODEL.gguf --task bitwise|pos|FILE`: a LoRA adapter on a layer range trained on
 * the task family's training split (icl_finetune.h); with --compare K the paper's whole §4.2
 * experiment: pretrained vs first-K vs last-K layers vs prompting, in one report. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "iclab/icl_finetune.h"

static const char *usage =
    "usage: iclab finetune MODEL.gguf [--task bitwise|pos|FILE.tsv] [--layers first:K|last:K|A-B|all] [--out DIR]\n"
    "                      [--rank 16] [--alpha 16] [--dropout 0.1] [--targets q,k,v,o,gate,up,down|all]\n"
    "                      [--steps N] [--batch 8] [--shots-min 1] [--shots-max 10] [--lr 1e-3] [--lr-min 1e-4]\n"
    "                      [--warmup N] [--weight-decay 0] [--grad-clip 1] [--checkpoints 8] [--resume]\n"
    "                      [--stop-after N] [--template T] [--brown data/brown] [--seed 1] [--ctx N] [--threads N]\n"
    "                      [--no-bos] [--quiet]\n"
    "       iclab finetune MODEL.gguf --compare K [the options above] [--shots 1,4,10] [--prompts 100]\n\n"
    "Trains a LoRA adapter (paper §4.2: rank 16, alpha 16, dropout 0.1, every matrix) on the layers named by\n"
    "--layers (first:K, last:K, A-B inclusive from 0, or all; default all) with the base model frozen in its\n"
    "stored type. Each step takes --batch ICL episodes of the task family's TRAINING split: a concept drawn\n"
    "uniformly (Null left out), --shots-min..--shots-max demonstrations, the query, and the answer with its\n"
    "newline; the next-token loss counts only the answer's tokens. AdamW with warm-up (5% of steps by\n"
    "default) and cosine decay to --lr-min; --steps defaults to 10,000 episodes (the paper's 10K samples).\n"
    "The folder (default runs/finetune-TASK) gets adapter.gguf (a llama.cpp LoRA adapter: llama-cli --lora),\n"
    "checkpoints/step_N.gguf on a log-spaced schedule, checkpoints/state.bin (exact --resume), train.csv and\n"
    "config.json. Evaluate with `iclab eval MODEL.gguf --lora DIR/adapter.gguf`.\n\n"
    "--compare K runs the paper's experiment into --out (default runs/compare-TASK): evaluations of the\n"
    "pretrained model and of the prompting condition, adapters on the first K and on the last K layers\n"
    "(K = 0: 10/32 of the layers, as the paper's 10 of Llama-3.1-8B's 32) and their evaluations, then\n"
    "comparison.csv and report.html (Table 1 and Fig. 24 with the paper's values beside ours). A stopped\n"
    "comparison continues where it stopped when run again.\n";

static int parse_f(const char *flag, const char *v, double lo, double hi, float *out, icl_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) return icl_errf(err, "--%s '%s' must be a number in [%g, %g]", flag, v, lo, hi);
    *out = (float)x;
    return 0;
}

static int parse_shots(const char *v, int *shots, int *n, icl_err *err) {
    *n = 0;
    for (const char *p = v; *p;) {
        char *end;
        long s = strtol(p, &end, 10);
        if (end == p || s < 0 || s > 256 || (*end && *end != ',') || *n >= 16)
            return icl_errf(err, "--shots '%s' is not a list of up to 16 numbers in 0..256", v);
        shots[(*n)++] = (int)s;
        p = *end ? end + 1 : end;
    }
    return *n ? 0 : icl_errf(err, "--shots is empty");
}

int cmd_finetune(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        }
    icl_finetune_cfg cfg;
    icl_finetune_cfg_default(&cfg);
    cfg.base.progress = stderr;
    icl_err err = {0};
    int compare = -1, rc = 0;
    const char *targets = NULL;
    char out_buf[512];
    for (int i = 1; !rc && i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        int n;
        if (!strcmp(a, "--resume")) cfg.resume = 1;
        else if (!strcmp(a, "--quiet")) cfg.base.progress = NULL;
        else if (!strcmp(a, "--no-bos")) cfg.base.add_bos = 0;
        else if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, &err);
            if (!v) rc = -1;
            else if (!strcmp(flag, "task")) cfg.base.task = v;
            else if (!strcmp(flag, "layers")) cfg.layers = v;
            else if (!strcmp(flag, "out")) cfg.base.out_dir = v;
            else if (!strcmp(flag, "targets")) targets = v;
            else if (!strcmp(flag, "template")) cfg.base.template_spec = v;
            else if (!strcmp(flag, "brown")) cfg.base.brown_dir = v;
            else if (!strcmp(flag, "rank")) rc = cli_parse_int(flag, v, 0, 4096, &cfg.lora.rank, &err);
            else if (!strcmp(flag, "alpha")) rc = parse_f(flag, v, 0, 1e6, &cfg.lora.alpha, &err);
            else if (!strcmp(flag, "dropout")) rc = parse_f(flag, v, 0, 0.99, &cfg.lora.dropout, &err);
            else if (!strcmp(flag, "steps")) rc = cli_parse_int(flag, v, 1, 100000000, &cfg.steps, &err);
            else if (!strcmp(flag, "batch")) rc = cli_parse_int(flag, v, 1, 256, &cfg.batch, &err);
            else if (!strcmp(flag, "shots-min")) rc = cli_parse_int(flag, v, 0, 255, &cfg.min_shots, &err);
            else if (!strcmp(flag, "shots-max")) rc = cli_parse_int(flag, v, 0, 255, &cfg.max_shots, &err);
            else if (!strcmp(flag, "lr")) rc = parse_f(flag, v, 1e-9, 10, &cfg.opt.lr, &err);
            else if (!strcmp(flag, "lr-min")) rc = parse_f(flag, v, 0, 10, &cfg.opt.lr_min, &err);
            else if (!strcmp(flag, "warmup")) {
                if (!(rc = cli_parse_int(flag, v, 0, 100000000, &n, &err))) cfg.opt.warmup = n;
            }
            else if (!strcmp(flag, "weight-decay")) rc = parse_f(flag, v, 0, 10, &cfg.opt.weight_decay, &err);
            else if (!strcmp(flag, "grad-clip")) rc = parse_f(flag, v, 0, 1e9, &cfg.opt.grad_clip, &err);
            else if (!strcmp(flag, "checkpoints")) rc = cli_parse_int(flag, v, 0, 64, &cfg.checkpoints, &err);
            else if (!strcmp(flag, "stop-after")) rc = cli_parse_int(flag, v, 1, 100000000, &cfg.stop_after, &err);
            else if (!strcmp(flag, "compare")) rc = cli_parse_int(flag, v, 0, 100000, &compare, &err);
            else if (!strcmp(flag, "shots")) rc = parse_shots(v, cfg.base.shots, &cfg.base.n_shots, &err);
            else if (!strcmp(flag, "prompts")) rc = cli_parse_int(flag, v, 1, 100000, &cfg.base.n_prompts, &err);
            else if (!strcmp(flag, "ctx")) rc = cli_parse_int(flag, v, 1, 1 << 20, &cfg.base.n_ctx, &err);
            else if (!strcmp(flag, "seed")) {
                if (!(rc = cli_parse_int(flag, v, 0, 2147483647, &n, &err))) cfg.base.seed = (uint64_t)n;
            } else if (!strcmp(flag, "threads")) {
                if (!(rc = cli_parse_int(flag, v, 1, 1024, &n, &err))) omp_set_num_threads(n);
            } else rc = icl_errf(&err, "unknown option --%s (see iclab finetune --help)", flag);
        } else if (!cfg.base.model) cfg.base.model = a;
        else rc = icl_errf(&err, "unexpected argument '%s'", a);
    }
    if (!rc && !cfg.base.model) rc = icl_errf(&err, "usage: iclab finetune MODEL.gguf --task bitwise|pos|FILE (see --help)");
    if (!rc && targets) rc = icl_lora_parse_targets(targets, &cfg.lora.targets, &err);
    if (!rc && cfg.lora.rank < 1) rc = icl_errf(&err, "--rank must be at least 1");
    if (!rc && cfg.max_shots < cfg.min_shots) rc = icl_errf(&err, "--shots-max %d is below --shots-min %d", cfg.max_shots, cfg.min_shots);
    if (!rc && compare >= 0 && cfg.layers) rc = icl_errf(&err, "--compare trains its own layer ranges: drop --layers");
    if (!rc && !cfg.base.out_dir) {
        const char *base = strrchr(cfg.base.task, '/');
        base = base ? base + 1 : cfg.base.task;
        snprintf(out_buf, sizeof out_buf, "runs/%s-%.*s", compare >= 0 ? "compare" : "finetune", (int)strcspn(base, "."), base);
        cfg.base.out_dir = out_buf;
    }
    if (!rc) rc = compare >= 0 ? icl_finetune_compare(&cfg, compare, &err) : icl_finetune_run(&cfg, &err);
    if (rc) return cli_fail("finetune", &err);
    if (cfg.base.progress)
        fprintf(stderr, "wrote %s/%s\n", cfg.base.out_dir,
                compare >= 0 ? "report.html" : cfg.stop_after ? "checkpoints/state.bin" : "adapter.gguf");
    return 0;
}
