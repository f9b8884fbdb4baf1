/* The paper's pretrained-model analysis on a GGUF language model:
 *   iclab eval MODEL.gguf --task bitwise|pos|FILE   ICL accuracy and TD per layer, concept and shot count
 *   iclab patch MODEL.gguf --task ... --layer L     the mean-representation interventions (§4.1)
 * Both write into one folder (default runs/eval-TASK) and rebuild its report.html. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "cli.h"
#include "iclab/icl_lmeval.h"

static const char *eval_usage =
    "usage: iclab eval MODEL.gguf|RUN_DIR [--task bitwise|pos|FILE.tsv] [--shots 1,4,10] [--prompts 100] [--out DIR]\n"
    "                  [--prompting] [--template '{x} -> {y}\\n'] [--layers N] [--no-accuracy] [--k 10]\n"
    "                  [--metric euclidean|cosine] [--seed 1] [--brown data/brown] [--max-new N] [--full-output]\n"
    "                  [--peak-states-only] [--lora ADAPTER.gguf] [--ctx N] [--threads N] [--no-bos] [--quiet]\n\n"
    "For every concept of the task family and every shot count: --prompts prompts built from the test\n"
    "split (demonstrations '{x} -> {y}' one per line, then the query up to the answer), answered by greedy\n"
    "decoding and scored by exact match of the line (ICL accuracy); the hidden state at the prompt's last\n"
    "token at every layer (0 = embedding, l = after block l) and its task decodability (leave-one-out\n"
    "10-NN, paper §2) per layer and concept; the linear fit of accuracy on TD over concepts x shots at the\n"
    "peak layer (the layer of highest mean TD at 4 shots), UMAP and PCA of that layer. Writes config.json,\n"
    "task.tsv, predictions.jsonl, accuracy.csv, td.csv, fit.csv, states_sN.npy (layers, prompts, n_embd),\n"
    "labels.npy/.txt, embed_sN.npy, pca_sN.npy, figures/ and report.html into --out (runs/eval-TASK).\n\n"
    "Tasks: bitwise (AND, NAND, OR, NOR, XOR, XNOR, Null on 5-bit pairs), pos (first Noun, Adjective, Verb,\n"
    "Adverb, Preposition, Pronoun of a Brown-corpus sentence, Null; needs `make data`), or a file of\n"
    "'concept<TAB>input<TAB>output[<TAB>train|test]' lines (docs/tasks.md). --prompting puts the concept's\n"
    "instruction first ('Apply AND.'). --no-accuracy skips decoding: only the layers up to --layers run.\n"
    "--lora applies a LoRA adapter (from `iclab finetune`, or any llama.cpp LoRA GGUF for the model).\n\n"
    "RUN_DIR, a folder of `iclab train --task lm`, runs the checkpoint study (paper §3.5): the above on every\n"
    "RUN_DIR/checkpoints/step_N.gguf into --out/step_N (default --out: RUN_DIR/eval-TASK; states kept only at\n"
    "the peak row), then checkpoints.csv (step, shots, concept, accuracy, TD at the last checkpoint's peak\n"
    "layer, TD at the checkpoint's own peak layer, that layer), figures/checkpoints.png and report.html:\n"
    "accuracy and TD of every concept against training step.\n";

static const char *patch_usage =
    "usage: iclab patch MODEL.gguf --layer L [--task bitwise|pos|FILE.tsv] [--shots 4] [--prompts 100]\n"
    "                   [--replicates 5] [--replace] [--out DIR] [--prompting] [--template T] [--seed 1]\n"
    "                   [--brown data/brown] [--max-new N] [--lora ADAPTER.gguf] [--ctx N] [--threads N]\n"
    "                   [--no-bos] [--quiet]\n\n"
    "The paper's interventions (§4.1): the mean hidden state of layer L (0 = embedding, l = after block l)\n"
    "at the token before the answer is computed per concept on --prompts prompts of the training split;\n"
    "then, in each replicate (fresh test prompts), every concept's accuracy is measured unperturbed, with\n"
    "the Null concept's mean added at that token (negative) and with the concept's own mean added\n"
    "(positive); --replace puts the mean in place of the state instead. Writes intervention.csv,\n"
    "intervention_summary.csv (mean, std over replicates) and intervention_means.npy into --out\n"
    "(runs/eval-TASK) and rebuilds its report.html. The layer may be 'peak': the peak layer of an\n"
    "earlier `iclab eval` into the same folder.\n";

/* "1,4,10" -> shots */
static int parse_shots(const char *v, int *shots, int *n, icl_err *err) {
    *n = 0;
    for (const char *p = v; *p;) {
        char *end;
        long s = strtol(p, &end, 10);
        if (end == p || s < 0 || s > 256 || (*end && *end != ',') || *n >= 16)
            return icl_errf(err, "--shots '%s' is not a list of up to 16 numbers in 0..256", v);
        for (int i = 0; i < *n; i++)
            if (shots[i] == s) return icl_errf(err, "--shots '%s' names %ld twice", v, s);
        shots[(*n)++] = (int)s;
        p = *end ? end + 1 : end;
        if (*end && !*p) return icl_errf(err, "--shots '%s': trailing comma", v);
    }
    return *n ? 0 : icl_errf(err, "--shots is empty");
}

/* The peak layer an earlier eval wrote into dir/config.json. */
static int read_peak(const char *dir, int *row, icl_err *err) {
    int shots, rows;
    if (icl_eval_read_peak(dir, row, &shots, &rows, err))
        return icl_errf(err, "--layer peak needs an earlier `iclab eval` into %s", dir);
    return 0;
}

/* Options common to eval and patch; returns 1 when argv[*i] was one of them, 0 if not, -1 on error. */
static int common_flag(icl_eval_cfg *c, const char *flag, const char *v, icl_err *err) {
    if (!strcmp(flag, "task")) c->task = v;
    else if (!strcmp(flag, "shots")) return parse_shots(v, c->shots, &c->n_shots, err) ? -1 : 1;
    else if (!strcmp(flag, "prompts")) return cli_parse_int(flag, v, 1, 100000, &c->n_prompts, err) ? -1 : 1;
    else if (!strcmp(flag, "out")) c->out_dir = v;
    else if (!strcmp(flag, "template")) c->template_spec = v;
    else if (!strcmp(flag, "lora")) c->lora = v;
    else if (!strcmp(flag, "brown")) c->brown_dir = v;
    else if (!strcmp(flag, "max-new")) return cli_parse_int(flag, v, 1, 4096, &c->max_new, err) ? -1 : 1;
    else if (!strcmp(flag, "ctx")) return cli_parse_int(flag, v, 1, 1 << 20, &c->n_ctx, err) ? -1 : 1;
    else if (!strcmp(flag, "seed")) {
        int s;
        if (cli_parse_int(flag, v, 0, 2147483647, &s, err)) return -1;
        c->seed = (uint64_t)s;
    } else if (!strcmp(flag, "threads")) {
        int t;
        if (cli_parse_int(flag, v, 1, 1024, &t, err)) return -1;
        omp_set_num_threads(t);
    } else return 0;
    return 1;
}

/* The default folder: runs/eval-TASK (a task file's name without directory and extension). */
static void default_out(const icl_eval_cfg *c, char *buf, size_t n) {
    const char *base = strrchr(c->task, '/');
    base = base ? base + 1 : c->task;
    size_t len = strcspn(base, ".");
    snprintf(buf, n, "runs/eval-%.*s", (int)(len ? len : strlen(base)), base);
}

static int parse_common(int argc, char **argv, const char *cmd, icl_eval_cfg *c, const char **layer_arg, int *replicates,
                        int *replace, icl_err *err) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        char flag[32];
        if (!strcmp(a, "--prompting")) c->prompting = 1;
        else if (!strcmp(a, "--no-bos")) c->add_bos = 0;
        else if (!strcmp(a, "--quiet")) c->progress = NULL;
        else if (!strcmp(a, "--no-accuracy") && !layer_arg) c->accuracy = 0;
        else if (!strcmp(a, "--full-output") && !layer_arg) c->full_output = 1;
        else if (!strcmp(a, "--peak-states-only") && !layer_arg) c->save_states = 0;
        else if (!strcmp(a, "--replace") && layer_arg) *replace = 1;
        else if (!strncmp(a, "--", 2)) {
            const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, err);
            if (!v) return -1;
            int k = common_flag(c, flag, v, err);
            if (k < 0) return -1;
            if (k) continue;
            if (!layer_arg && !strcmp(flag, "layers")) {
                if (cli_parse_int(flag, v, 0, 100000, &c->max_row, err)) return -1;
            } else if (!layer_arg && !strcmp(flag, "k")) {
                if (cli_parse_int(flag, v, 1, 1000, &c->k, err)) return -1;
            } else if (!layer_arg && !strcmp(flag, "metric")) {
                if (icl_metric_parse(v, &c->metric, err)) return -1;
            } else if (layer_arg && !strcmp(flag, "layer")) *layer_arg = v;
            else if (layer_arg && !strcmp(flag, "replicates")) {
                if (cli_parse_int(flag, v, 1, 1000, replicates, err)) return -1;
            } else return icl_errf(err, "unknown option --%s (see iclab %s --help)", flag, cmd);
        } else if (!c->model) c->model = a;
        else return icl_errf(err, "unexpected argument '%s'", a);
    }
    if (!c->model) return icl_errf(err, "usage: iclab %s MODEL.gguf [options] (see --help)", cmd);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help")) {
            fputs(eval_usage, stdout);
            return 0;
        }
    icl_err err;
    icl_eval_cfg c;
    icl_eval_cfg_default(&c);
    c.progress = stderr;
    if (parse_common(argc, argv, "eval", &c, NULL, NULL, NULL, &err)) return cli_fail("eval", &err);
    char out[4096];
    struct stat sb;
    if (!stat(c.model, &sb) && S_ISDIR(sb.st_mode)) {
        /* a training run: the checkpoint study, by default into RUN/eval-TASK */
        if (!c.out_dir) {
            char name[4096];
            default_out(&c, name, sizeof name);
            snprintf(out, sizeof out, "%s/%s", c.model, name + 5); /* name without "runs/" */
            c.out_dir = out;
        }
        if (icl_eval_checkpoints(&c, c.model, &err)) return cli_fail("eval", &err);
        if (c.progress) fprintf(stderr, "iclab eval: wrote %s/checkpoints.csv and %s/report.html\n", c.out_dir, c.out_dir);
        return 0;
    }
    if (!c.out_dir) {
        default_out(&c, out, sizeof out);
        c.out_dir = out;
    }
    if (icl_eval_run(&c, &err)) return cli_fail("eval", &err);
    if (icl_eval_report(c.out_dir, &err)) return cli_fail("eval", &err);
    if (c.progress) fprintf(stderr, "iclab eval: wrote %s/report.html\n", c.out_dir);
    return 0;
}

int cmd_patch_lm(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help")) {
            fputs(patch_usage, stdout);
            return 0;
        }
    icl_err err;
    icl_intervene_cfg c;
    memset(&c, 0, sizeof c);
    icl_eval_cfg_default(&c.base);
    c.base.progress = stderr;
    c.base.shots[0] = 4;
    c.base.n_shots = 1;
    c.replicates = 5;
    c.action = ICL_HOOK_ADD;
    const char *layer = NULL;
    int replace = 0;
    if (parse_common(argc, argv, "patch", &c.base, &layer, &c.replicates, &replace, &err)) return cli_fail("patch", &err);
    if (replace) c.action = ICL_HOOK_REPLACE;
    if (c.base.n_shots != 1) {
        icl_errf(&err, "--shots takes one number here");
        return cli_fail("patch", &err);
    }
    char out[4096];
    if (!c.base.out_dir) {
        default_out(&c.base, out, sizeof out);
        c.base.out_dir = out;
    }
    if (!layer) {
        icl_errf(&err, "--layer L is needed (a layer number, or 'peak' after an `iclab eval` into the same folder)");
        return cli_fail("patch", &err);
    }
    if (!strcmp(layer, "peak")) {
        if (read_peak(c.base.out_dir, &c.row, &err)) return cli_fail("patch", &err);
    } else if (cli_parse_int("layer", layer, 0, 100000, &c.row, &err)) return cli_fail("patch", &err);
    if (icl_intervene_run(&c, &err)) return cli_fail("patch", &err);
    if (icl_eval_report(c.base.out_dir, &err)) return cli_fail("patch", &err);
    if (c.base.progress) fprintf(stderr, "iclab patch: wrote %s/report.html\n", c.base.out_dir);
    return 0;
}
