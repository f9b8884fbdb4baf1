/* `iclab demo`: the project's main job on defaults. Trains the demo configuration (a few minutes on
 * a 2-core CPU) into runs/demo, decodes every checkpoint, runs the causal tests at every checkpoint
 * and writes the report. --full does the same with the reproduce preset (the paper's phase (c)),
 * --llm the LLM half. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "iclab/icl_file.h"
#include "iclab/icl_causal.h"
#include "iclab/icl_decode.h"
#include "iclab/icl_runplot.h"
#include "iclab/icl_train.h"

/* The corpus of the minilm preset (concept shares: docs/reproduction.md, "The mini-LM") and the
 * measured wall time of the whole LLM demo on 2 cores. */
#define MINILM_CORPUS "--text-share 0.3 --share bitwise=3,XNOR=0,NOR=0.25,pos:Adverb=0,pos:Preposition=0.25"
#define FULL_DEMO_TIME "about 65 minutes of training (estimated from 19.3 steps/s, not timed end to end)"
#define LLM_DEMO_TIME "11 minutes (11 min 19 s measured)"

/* The LLM half (`iclab demo --llm`). The corpus of each preset: the concept shares make some
 * concepts rare or absent in pretraining, so that ICL accuracy differs between concepts
 * (docs/reproduction.md, "The mini-LM"). */
static const char *llm_corpus_args(const char *preset) {
    if (!strcmp(preset, "minilm")) return MINILM_CORPUS;
    return "--bytes 300k --vocab 512";
}

/* One step of the demo: argv (NULL-terminated) through a command; the command prints its own error. */
static int llm_step(int (*cmd)(int, char **), char **argv) {
    int n = 0;
    while (argv[n]) n++;
    return cmd(n, argv);
}

/* A folder the LLM demo may replace: missing, empty, or an earlier LLM demo (it holds demo-llm.txt). */
static int llm_out_ok(const char *out, icl_err *err) {
    DIR *d = opendir(out);
    if (!d) return 0;
    struct dirent *e;
    int other = 0, mine = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!strcmp(e->d_name, "demo-llm.txt")) mine = 1;
        else other = 1;
    }
    closedir(d);
    if (other && !mine) return icl_errf(err, "refusing to overwrite %s: it is not an earlier iclab demo --llm folder", out);
    return 0;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int demo_llm(const char *out, const char *preset, int threads, const char *shots, const char *prompts) {
    icl_err err;
    if (strcmp(preset, "minilm") && strcmp(preset, "tiny")) {
        icl_errf(&err, "unknown preset '%s' for --llm (minilm or tiny)", preset);
        return cli_fail("demo", &err);
    }
    if (llm_out_ok(out, &err) || icl_mkdirs(out, &err)) return cli_fail("demo", &err);
    char corpus[4200], run[4200], model[4300], ev[2][4200], th[16], path[4300];
    snprintf(corpus, sizeof corpus, "%s/corpus", out);
    snprintf(run, sizeof run, "%s/lm", out);
    snprintf(model, sizeof model, "%s/model.gguf", run);
    snprintf(th, sizeof th, "%d", threads);
    const char *tasks[2] = {"bitwise", "pos"};
    for (int t = 0; t < 2; t++) snprintf(ev[t], sizeof ev[t], "%s/eval-%s", out, tasks[t]);
    /* the marker first, so an interrupted demo can be rerun into the same folder */
    snprintf(path, sizeof path, "%s/demo-llm.txt", out);
    char note[1024];
    int nn = snprintf(note, sizeof note,
                      "iclab demo --llm --preset %s --shots %s --prompts %s\ncorpus: iclab mkcorpus %s\n"
                      "train: iclab train --task lm --preset %s\n", preset, shots, prompts, llm_corpus_args(preset), preset);
    if (nn < 0 || nn >= (int)sizeof note) {
        icl_errf(&err, "--shots or --prompts is too long");
        return cli_fail("demo", &err);
    }
    if (icl_write_file_atomic(path, note, (size_t)nn, &err)) return cli_fail("demo", &err);
    double t0 = now_s(), t1;

    /* 1. the corpus and its tokenizer; the options are split at spaces (none holds one) */
    char cargs[512], *cargv[48];
    int nc = 0;
    snprintf(cargs, sizeof cargs, "%s", llm_corpus_args(preset));
    cargv[nc++] = "mkcorpus", cargv[nc++] = "--out", cargv[nc++] = corpus, cargv[nc++] = "--quiet";
    for (char *tok = strtok(cargs, " "); tok && nc < 46; tok = strtok(NULL, " ")) cargv[nc++] = tok;
    cargv[nc] = NULL;
    fprintf(stderr, "iclab demo --llm: the pretraining corpus into %s\n", corpus);
    if (llm_step(cmd_mkcorpus, cargv)) return 1;

    /* 2. pretraining */
    fprintf(stderr, "iclab demo --llm: training the %s preset into %s\n", preset, run);
    char *targv[] = {"train", "--task", "lm", "--preset", (char *)preset, "--corpus", corpus, "--out", run,
                     "--overwrite", "--threads", th, NULL};
    if (llm_step(cmd_train_lm, targv)) return 1;
    t1 = now_s();
    fprintf(stderr, "iclab demo --llm: corpus and training took %.0f s\n", t1 - t0);

    /* the interventions' shot count: 4, as the paper, or the largest listed when 4 is not (eval's peak rule) */
    char pshots[16] = "", sl[128];
    snprintf(sl, sizeof sl, "%s", shots);
    int best = -1;
    for (char *tok = strtok(sl, ","); tok; tok = strtok(NULL, ",")) {
        int k = atoi(tok);
        if (k == 4) {
            best = 4;
            break;
        }
        if (k > best) best = k;
    }
    snprintf(pshots, sizeof pshots, "%d", best < 0 ? 4 : best);

    /* 3. ICL accuracy and TD per layer, then the interventions at the peak layer, per task family */
    for (int t = 0; t < 2; t++) {
        fprintf(stderr, "iclab demo --llm: iclab eval --task %s (shots %s, %s prompts per concept) into %s\n", tasks[t],
                shots, prompts, ev[t]);
        char *eargv[] = {"eval", model, "--task", (char *)tasks[t], "--shots", (char *)shots, "--prompts",
                         (char *)prompts, "--out", ev[t], "--threads", th, NULL};
        if (llm_step(cmd_eval, eargv)) return 1;
        fprintf(stderr, "iclab demo --llm: iclab patch --layer peak --task %s --shots %s\n", tasks[t], pshots);
        char *pargv[] = {"patch", model, "--layer", "peak", "--task", (char *)tasks[t], "--shots", pshots, "--prompts", (char *)prompts,
                         "--out", ev[t], "--threads", th, NULL};
        if (llm_step(cmd_patch_lm, pargv)) return 1;
    }
    fprintf(stderr, "iclab demo --llm: done in %.0f s (evaluation and patching %.0f s)\n", now_s() - t0, now_s() - t1);
    printf("open %s/report.html and %s/report.html (model %s, training log %s/train.csv)\n", ev[0], ev[1], model, run);
    return 0;
}

int cli_analyse_run(const char *out, const icl_train_config *c, int demo) {
    icl_err err;
    icl_decode_config dc;
    icl_decode_config_default(&dc);
    dc.demo = demo;
    fprintf(stderr, "iclab: task decodability of every checkpoint x layer of %s\n", out);
    if (icl_decode_run(out, &dc, NULL, 0, stderr, &err)) return cli_fail("decode", &err);
    if (demo > 0 && demo < c->task.n_points) {
        /* the last token beside, so the report shows what the paper's reading position gives */
        fprintf(stderr, "iclab: task decodability at the last token too (decode/td_last.csv)\n");
        dc.demo = 0;
        dc.save_reps = dc.probe = dc.n_embed = 0;
        snprintf(dc.table, sizeof dc.table, "td_last");
        if (icl_decode_run(out, &dc, NULL, 0, stderr, &err)) return cli_fail("decode", &err);
    } else {
        /* a table from an earlier analysis of this folder would be read as this one's */
        char path[4200];
        snprintf(path, sizeof path, "%s/decode/td_last.csv", out);
        remove(path);
        snprintf(path, sizeof path, "%s/decode/td_last.jsonl", out);
        remove(path);
    }
    /* causal tests and the algorithm comparison at every checkpoint, so the report can show when the
     * model switches algorithm */
    fprintf(stderr, "iclab: patching and algorithm comparison at every checkpoint of %s (head ablation at the last)\n", out);
    int64_t steps[4096];
    int n = icl_ckpt_schedule(c, steps, 4096);
    char *list = malloc((size_t)n * 24 + 1), *p = list;
    if (!list) return 1;
    *p = 0;
    for (int i = 0; i < n; i++) p += sprintf(p, i ? ",%lld" : "%lld", (long long)steps[i]);
    /* patch every y token (one y token alone moves the prediction by less than 0.001, see
     * docs/reproduction.md) at the paper's relative depth, the same layer for every run */
    char layer[16];
    snprintf(layer, sizeof layer, "%d", icl_patch_paper_layer(c->n_layer));
    char *patch_argv[] = {"patch", (char *)out, "--per-concept", "100", "--at", "all-y", "--layer", layer, "--heads", "last", "--steps", list, NULL};
    int pr = cmd_patch(12, patch_argv);
    /* shift patching at the same layer and tokens decides phase (c)'s own-mean condition (icl_runplot.h):
     * replacing every y token erases the data they carry under pair tokens, shifting keeps it */
    char *shift_argv[] = {"patch", (char *)out, "--shift", "--per-concept", "100", "--at", "all-y", "--layer", layer, "--steps", list, NULL};
    if (!pr) pr = cmd_patch(11, shift_argv);
    /* transport patching (it decides, icl_runplot.h) where the concepts are told apart at the end:
     * when the concepts' means coincide, only a map that moves their covariance carries them
     * (docs/reproduction.md); 200 sequences per concept, 100 per half for each Gaussian (the
     * stricter measurement of docs/reproduction.md uses 1,600) */
    icl_run_phases *ph = pr ? NULL : malloc(sizeof *ph);
    if (ph && icl_run_phases_read(out, ph, &err) == 0 && ph->separation_layer >= 0) {
        /* the stream after the last block feeds only its own token's readout: patch the last block's input then */
        snprintf(layer, sizeof layer, "%d", ph->separation_layer < c->n_layer ? ph->separation_layer : c->n_layer - 1);
        fprintf(stderr, "iclab: transport patching after %s blocks (the shallowest depth with TD >= 0.9, else the best)\n", layer);
        char *transport_argv[] = {"patch", (char *)out, "--transport", "--per-concept", "200", "--at", "all-y", "--layer", layer, "--steps", list, NULL};
        pr = cmd_patch(11, transport_argv);
    }
    free(ph);
    free(list);
    if (pr) return 1;
    if (icl_run_report(out, &err)) return cli_fail("report", &err);
    return 0;
}

int cli_analysis_demo(const char *preset, const icl_train_config *c) {
    return !strcmp(preset, "reproduce") && c->task.n_points > 1 ? c->task.n_points - 1 : 0;
}

int cmd_demo(int argc, char **argv) {
    icl_err err;
    int llm = 0, llm_opts = 0;
    const char *shots = "1,4,10", *prompts = "100";
    const char *out = NULL, *preset = NULL;
    int threads = 2, full = 0;
    uint64_t seed = 0;
    int steps = 0, demo = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help")) {
            printf("usage: iclab demo [--out DIR] [--threads N] [--seed N] [--steps N] [--demo K] [--preset demo|tiny]\n"
                   "       iclab demo --full [--out DIR] [--threads N] [--seed N] [--steps N] [--demo K]\n"
                   "       iclab demo --llm [--out DIR] [--threads N] [--preset minilm|tiny] [--shots 1,4,10] [--prompts 100]\n\n"
                   "Trains the demo configuration (iclab train --preset demo) into DIR (default runs/demo,\n"
                   "replaced if it is an earlier iclab run), then runs iclab decode, iclab patch and iclab report\n"
                   "on it: open DIR/report.html. --preset tiny runs the same steps on the tiny preset in seconds\n"
                   "(the test suite's check of this path; its report shows nothing learnt).\n\n"
                   "--full trains the reproduce preset instead (the demo's task in pair tokens, 8 blocks, 75,000\n"
                   "steps, aiming at the paper's phase (c), every concept separated; %s on\n"
                   "2 cores) into DIR\n"
                   "(default runs/demo-full) and does the same analysis; its report's \"Phases, beside the\n"
                   "paper\" table says whether phase (c) was reached (docs/reproduction.md has the table of\n"
                   "seeds; the own-mean condition is read from transport patching at the shallowest layer\n"
                   "whose TD reaches 0.9, where the concepts are told apart).\n"
                   "--seed sets the training seed, --steps shortens (or lengthens) the training (a curriculum or\n"
                   "warm-up longer than half of it is cut to half), --demo K reads TD at the y-token of\n"
                   "demonstration K instead of the last (the paper's choice). --full reads it by default at\n"
                   "demonstration K - 1, the last y-token a prediction reads (the last one feeds none), and TD at\n"
                   "the last token goes beside it (decode/td_last.csv, the report's phase table).\n\n"
                   "--llm is the paper's LLM half on iclab's own mini language model, into DIR (default\n"
                   "runs/demo-llm, replaced if it is an earlier demo --llm folder): iclab mkcorpus into DIR/corpus,\n"
                   "iclab train --task lm --preset minilm into DIR/lm, then for bitwise and pos iclab eval (ICL\n"
                   "accuracy and TD per layer at --shots, --prompts prompts per concept and shot count) and iclab\n"
                   "patch --layer peak into DIR/eval-TASK: open DIR/eval-bitwise/report.html and\n"
                   "DIR/eval-pos/report.html. The defaults are the paper's shots and prompt count; on 2\n"
                   "cores the whole demo takes about %s,\n"
                   "nearly all of it training (eval and patch: about a minute). Afterwards `iclab eval DIR/lm\n"
                   "--task bitwise` is the checkpoint study (about 5 minutes for both tasks). --preset tiny runs\n"
                   "the same steps in seconds (the tests' check of the path; nothing is learnt).\n", FULL_DEMO_TIME, LLM_DEMO_TIME);
            return 0;
        }
        if (!strcmp(argv[i], "--llm")) {
            llm = 1;
            continue;
        }
        if (!strcmp(argv[i], "--full")) {
            full = 1;
            continue;
        }
        char name[64];
        const char *v = strncmp(argv[i], "--", 2) ? NULL : cli_flag_value(argc, argv, &i, name, sizeof name, &err);
        if (!v) {
            if (strncmp(argv[i], "--", 2)) icl_errf(&err, "unexpected argument '%s'", argv[i]);
            return cli_fail("demo", &err);
        }
        if (!strcmp(name, "out")) out = v;
        else if (!strcmp(name, "preset")) preset = v;
        else if (!strcmp(name, "shots")) shots = v, llm_opts = 1;
        else if (!strcmp(name, "prompts")) prompts = v, llm_opts = 1;
        else if (!strcmp(name, "seed")) {
            char *end;
            unsigned long long v64 = strtoull(v, &end, 10);
            if (!*v || *end || *v == '-' || v64 == 0) {
                icl_errf(&err, "--seed: '%s' is not a positive integer", v);
                return cli_fail("demo", &err);
            }
            seed = v64;
        } else if (!strcmp(name, "steps")) {
            if (cli_parse_int(name, v, 1, 100000000, &steps, &err)) return cli_fail("demo", &err);
        } else if (!strcmp(name, "threads")) {
            if (cli_parse_int(name, v, 1, 1024, &threads, &err)) return cli_fail("demo", &err);
        } else if (!strcmp(name, "demo")) {
            if (cli_parse_int(name, v, 1, 100000, &demo, &err)) return cli_fail("demo", &err);
        } else {
            icl_errf(&err, "unknown option --%s (see iclab demo --help)", name);
            return cli_fail("demo", &err);
        }
    }
    if (llm && (full || seed || steps || demo)) {
        icl_errf(&err, "--full, --seed, --steps and --demo are not options of --llm");
        return cli_fail("demo", &err);
    }
    if (llm) return demo_llm(out ? out : "runs/demo-llm", preset ? preset : "minilm", threads, shots, prompts);
    if (llm_opts) {
        icl_errf(&err, "--shots and --prompts belong to --llm");
        return cli_fail("demo", &err);
    }
    if (full && preset) {
        icl_errf(&err, "--full trains the reproduce preset; leave out --preset");
        return cli_fail("demo", &err);
    }
    if (full) preset = "reproduce";
    if (!out) out = full ? "runs/demo-full" : "runs/demo";
    if (!preset) preset = "demo";
    icl_train_config c;
    if (icl_train_config_preset(&c, preset, &err)) return cli_fail("demo", &err);
    c.threads = threads;
    if (seed) c.seed = seed;
    if (!demo) demo = cli_analysis_demo(preset, &c);
    if (demo > c.task.n_points) {
        icl_errf(&err, "--demo %d: the %s preset's sequences have %d demonstrations", demo, preset, c.task.n_points);
        return cli_fail("demo", &err);
    }
    if (steps) {
        c.steps = steps;
        /* a short try keeps both parts of the schedule */
        if (c.dense_steps > steps / 2) c.dense_steps = steps / 2;
        if (c.warmup > steps / 2) c.warmup = steps / 2;
    }
    icl_train_options opt = {.mode = ICL_RUN_OVERWRITE, .progress = stderr};
    fprintf(stderr, "iclab demo: training the %s configuration (seed %llu) into %s\n", preset, (unsigned long long)c.seed, out);
    if (icl_train(out, &c, &opt, &err)) return cli_fail("demo", &err);
    if (cli_analyse_run(out, &c, demo)) return 1;
    printf("open %s/report.html (figures in %s/figures, data in the CSV files)\n", out, out);
    return 0;
}
