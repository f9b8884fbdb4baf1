/* `iclab train --task lm`: pretrains a Llama-style language model (icl_lmtrain.h) on a corpus
 * from `iclab mkcorpus`, writing GGUF checkpoints on a log-spaced schedule (issue 12, item 3). */
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "iclab/icl_file.h"
#include "iclab/icl_lmtrain.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_rng.h"
#include "iclab/icl_tokenizer.h"

/* The presets: layers, width, heads, kv-heads, ctx, batch, steps, lr, lr-min, warm-up, checkpoints. */
typedef struct lm_preset {
    const char *name;
    int layers, width, heads, kv_heads, ctx, batch, steps;
    float lr, lr_min;
    int warmup, checkpoints;
} lm_preset;
static const lm_preset presets[] = {
    {"minilm", 4, 128, 4, 2, 1024, 2, 3000, 3e-3f, 3e-4f, 100, 16},
    {"tiny", 2, 32, 4, 2, 256, 2, 20, 1e-2f, 1e-3f, 5, 4},
};

static const char *usage =
    "usage: iclab train --task lm --corpus DIR [--preset minilm|tiny] [--out DIR] [--overwrite] [options]\n\n"
    "Pretrains a Llama-style language model (RMSNorm, RoPE, SwiGLU, grouped-query attention) on\n"
    "DIR/corpus.txt tokenized by DIR/tokenizer.gguf (both from `iclab mkcorpus`), on windows of --ctx + 1\n"
    "tokens drawn at random offsets. The run folder (default runs/lm) gets train.csv (step, loss, lr,\n"
    "grad_norm, seconds), checkpoints/step_N.gguf on a log-spaced schedule and model.gguf (the last step):\n"
    "llama GGUF files with the corpus's tokenizer, which `iclab run`, `iclab eval` and llama.cpp open.\n\n"
    "  --layers 4  --width 128  --heads 4  --kv-heads 2  --ff 0 (0: 8/3 width, rounded up to 32)\n"
    "  --ctx 128   --batch 16   --steps 2000  --tied 0|1 (default 0)  --theta 10000\n"
    "  --lr 3e-3   --lr-min 3e-4  --warmup 100  --weight-decay 0.1  --grad-clip 1\n"
    "  --checkpoints 12   log-spaced checkpoints (the last step included; 0: none but model.gguf)\n"
    "  --seed 1    initialisation and data draws;  --threads N;  --quiet\n\n"
    "--preset sets the fields below first, whatever its place; other flags override them (without a preset\n"
    "the defaults above apply). minilm is the mini-LM, the offline stand-in for a pretrained model (about\n"
    "20 minutes on 2 cores), meant for the corpus `iclab demo --llm` builds (docs/reproduction.md, \"The\n"
    "mini-LM\"); tiny runs in seconds (the tests' check of the path).\n";

typedef struct lm_args {
    const char *corpus, *out;
    int overwrite, quiet, threads, n_ckpt, batch, seed;
    icl_lmtrain_config cfg;
    icl_lmtrain_opt opt;
} lm_args;

static int parse_float(const char *flag, const char *v, double lo, double hi, float *out, icl_err *err) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi))
        return icl_errf(err, "--%s '%s' must be a number in [%g, %g]", flag, v, lo, hi);
    *out = (float)x;
    return 0;
}

static int parse_args(int argc, char **argv, lm_args *a, icl_err *err) {
    *a = (lm_args){.out = "runs/lm", .n_ckpt = 12, .batch = 16, .seed = 1};
    a->cfg = (icl_lmtrain_config){.n_embd = 128, .n_layer = 4, .n_head = 4, .n_head_kv = 2, .n_ff = 0, .n_ctx = 128,
                                  .rope_theta = 10000.0f, .eps = 1e-5f};
    icl_lmtrain_opt_defaults(&a->opt);
    a->opt.steps = 2000;
    /* --preset first, whatever its place, so that every other flag overrides it */
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--preset")) continue;
        const lm_preset *p = NULL;
        for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++)
            if (!strcmp(argv[i + 1], presets[k].name)) p = &presets[k];
        if (!p) return icl_errf(err, "unknown preset '%s' (minilm or tiny)", argv[i + 1]);
        a->cfg.n_layer = p->layers, a->cfg.n_embd = p->width, a->cfg.n_head = p->heads;
        a->cfg.n_head_kv = p->kv_heads, a->cfg.n_ctx = p->ctx, a->batch = p->batch;
        a->opt.steps = p->steps, a->opt.lr = p->lr, a->opt.lr_min = p->lr_min;
        a->opt.warmup = p->warmup, a->n_ckpt = p->checkpoints;
    }
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        char flag[32];
        if (!strcmp(s, "--overwrite")) { a->overwrite = 1; continue; }
        if (!strcmp(s, "--quiet")) { a->quiet = 1; continue; }
        if (strncmp(s, "--", 2)) return icl_errf(err, "unexpected argument '%s' (see iclab train --task lm --help)", s);
        const char *v = cli_flag_value(argc, argv, &i, flag, sizeof flag, err);
        if (!v) return -1;
        int r = 0, x;
        if (!strcmp(flag, "task")) r = strcmp(v, "lm") ? icl_errf(err, "--task %s: this is the lm trainer", v) : 0;
        else if (!strcmp(flag, "corpus")) a->corpus = v;
        else if (!strcmp(flag, "preset")) continue; /* applied above */
        else if (!strcmp(flag, "out")) a->out = v;
        else if (!strcmp(flag, "layers")) r = cli_parse_int(flag, v, 1, 256, &a->cfg.n_layer, err);
        else if (!strcmp(flag, "width")) r = cli_parse_int(flag, v, 2, 8192, &a->cfg.n_embd, err);
        else if (!strcmp(flag, "heads")) r = cli_parse_int(flag, v, 1, 256, &a->cfg.n_head, err);
        else if (!strcmp(flag, "kv-heads")) r = cli_parse_int(flag, v, 1, 256, &a->cfg.n_head_kv, err);
        else if (!strcmp(flag, "ff")) r = cli_parse_int(flag, v, 0, 65536, &a->cfg.n_ff, err);
        else if (!strcmp(flag, "ctx")) r = cli_parse_int(flag, v, 2, 8192, &a->cfg.n_ctx, err);
        else if (!strcmp(flag, "batch")) r = cli_parse_int(flag, v, 1, 4096, &a->batch, err);
        else if (!strcmp(flag, "tied")) r = cli_parse_int(flag, v, 0, 1, &a->cfg.tied, err);
        else if (!strcmp(flag, "theta")) r = parse_float(flag, v, 1.0001, 1e9, &a->cfg.rope_theta, err);
        else if (!strcmp(flag, "lr")) r = parse_float(flag, v, 0, 10, &a->opt.lr, err);
        else if (!strcmp(flag, "lr-min")) r = parse_float(flag, v, 0, 10, &a->opt.lr_min, err);
        else if (!strcmp(flag, "weight-decay")) r = parse_float(flag, v, 0, 10, &a->opt.weight_decay, err);
        else if (!strcmp(flag, "grad-clip")) r = parse_float(flag, v, 0, 1e9, &a->opt.grad_clip, err);
        else if (!strcmp(flag, "checkpoints")) r = cli_parse_int(flag, v, 0, 1000, &a->n_ckpt, err);
        else if (!strcmp(flag, "seed")) r = cli_parse_int(flag, v, 0, 2147483647, &a->seed, err);
        else if (!strcmp(flag, "threads")) r = cli_parse_int(flag, v, 1, 1024, &a->threads, err);
        else if (!strcmp(flag, "steps") || !strcmp(flag, "warmup")) {
            r = cli_parse_int(flag, v, flag[0] == 's' ? 1 : 0, 100000000, &x, err);
            if (flag[0] == 's') a->opt.steps = x;
            else a->opt.warmup = x;
        } else r = icl_errf(err, "unknown option --%s (see iclab train --task lm --help)", flag);
        if (r) return -1;
    }
    if (!a->corpus) return icl_errf(err, "--corpus DIR is required (a folder written by iclab mkcorpus)");
    if (a->cfg.n_ff == 0) a->cfg.n_ff = (a->cfg.n_embd * 8 / 3 + 31) / 32 * 32;
    if (a->opt.lr_min > a->opt.lr) return icl_errf(err, "--lr-min %g is above --lr %g", a->opt.lr_min, a->opt.lr);
    return 0;
}

/* The checkpoint steps: n log-spaced steps in [1, steps], the last one included, duplicates merged. */
static int is_ckpt_step(int64_t step, int64_t steps, int n) {
    if (n <= 0) return 0;
    if (step == steps) return 1;
    for (int i = 0; i < n - 1; i++) {
        int64_t s = (int64_t)llround(pow((double)steps, (double)i / (n - 1)));
        if (s == step) return 1;
    }
    return 0;
}

/* --overwrite: removes the previous run's checkpoints (step_*.gguf) from dir. */
static void remove_checkpoints(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (!strncmp(e->d_name, "step_", 5) && n > 5 && !strcmp(e->d_name + n - 5, ".gguf")) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

/* The corpus as tokens (documents framed by <|endoftext|>, matched as the special token). */
static int load_corpus(const char *dir, icl_tokenizer **tk, int32_t **ids, size_t *n, char *tok_path, size_t tp,
                       icl_err *err) {
    char path[4200];
    snprintf(tok_path, tp, "%s/tokenizer.gguf", dir);
    snprintf(path, sizeof path, "%s/corpus.txt", dir);
    if (icl_tokenizer_load_file(tk, tok_path, err)) return -1;
    char *text;
    size_t len;
    if (icl_read_file(path, &text, &len, err)) return -1;
    if (len == 0) {
        free(text);
        return icl_errf(err, "%s is empty", path);
    }
    int rc = icl_tokenizer_encode(*tk, text, len, 0, 1, ids, n, err);
    free(text);
    return rc;
}

int cmd_train_lm(int argc, char **argv) {
    icl_err err;
    lm_args a;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            for (size_t k = 0; k < sizeof presets / sizeof presets[0]; k++) {
                const lm_preset *p = &presets[k];
                printf("  %-7s --layers %d --width %d --heads %d --kv-heads %d --ctx %d --batch %d --steps %d\n"
                       "          --lr %g --lr-min %g --warmup %d --checkpoints %d\n",
                       p->name, p->layers, p->width, p->heads, p->kv_heads, p->ctx, p->batch, p->steps,
                       (double)p->lr, (double)p->lr_min, p->warmup, p->checkpoints);
            }
            return 0;
        }
    if (parse_args(argc, argv, &a, &err)) return cli_fail("train", &err);
    if (a.threads) omp_set_num_threads(a.threads);
    char tok_path[4200], path[4300];
    icl_tokenizer *tk = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    icl_lmtrain *m = NULL;
    int rc = -1;
    int64_t T = a.cfg.n_ctx;
    int32_t *tok = NULL, *tgt = NULL;
    FILE *csv = NULL;
    if (load_corpus(a.corpus, &tk, &ids, &n_ids, tok_path, sizeof tok_path, &err)) goto done;
    a.cfg.n_vocab = icl_tokenizer_n_vocab(tk);
    if (n_ids < (size_t)T + 2) {
        icl_errf(&err, "the corpus has %zu tokens, too few for one window of --ctx %lld + 1", n_ids, (long long)T);
        goto done;
    }
    if (icl_lmtrain_init(&m, &a.cfg, &err)) goto done;
    if (icl_path_exists(a.out) && !a.overwrite) {
        snprintf(path, sizeof path, "%s/train.csv", a.out);
        if (icl_path_exists(path)) {
            icl_errf(&err, "%s holds a run already (--overwrite replaces it)", a.out);
            goto done;
        }
    }
    snprintf(path, sizeof path, "%s/checkpoints", a.out);
    if (a.overwrite) remove_checkpoints(path);
    if (icl_mkdirs(path, &err)) goto done;
    snprintf(path, sizeof path, "%s/train.csv", a.out);
    csv = fopen(path, "w");
    if (!csv) {
        icl_errf(&err, "cannot write %s", path);
        goto done;
    }
    fprintf(csv, "step,loss,lr,grad_norm,seconds\n");
    icl_lmtrain_init_weights(m, (uint64_t)a.seed);
    if (!a.quiet)
        fprintf(stderr, "train --task lm: %zu corpus tokens, vocabulary %d, %zu parameters, %lld steps of %d x %lld\n",
                n_ids, a.cfg.n_vocab, icl_lmtrain_n_params(m), (long long)a.opt.steps, a.batch, (long long)T);
    tok = malloc(sizeof(int32_t) * (size_t)a.batch * T);
    tgt = malloc(sizeof(int32_t) * (size_t)a.batch * T);
    if (!tok || !tgt) {
        icl_errf(&err, "out of memory");
        goto done;
    }
    icl_rng data;
    icl_rng_seed_stream(&data, (uint64_t)a.seed, 0x6461746175ULL); /* the data draws: apart from the init */
    icl_progress prog;
    if (!a.quiet) icl_progress_init(&prog, stderr, "train", 0, a.opt.steps);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t s = 1; s <= a.opt.steps; s++) {
        for (int b = 0; b < a.batch; b++) {
            size_t o = (size_t)icl_rng_below(&data, (uint64_t)(n_ids - (size_t)T));
            memcpy(tok + (size_t)b * T, ids + o, sizeof(int32_t) * (size_t)T);
            memcpy(tgt + (size_t)b * T, ids + o + 1, sizeof(int32_t) * (size_t)T);
        }
        float loss, lr = icl_lmtrain_lr(&a.opt, s - 1);
        double gn;
        if (icl_lmtrain_step(m, tok, tgt, a.batch, (int)T, &a.opt, &loss, &gn, &err)) goto done;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(csv, "%lld,%.6f,%.6g,%.6g,%.3f\n", (long long)s, loss, lr, gn, secs);
        if (is_ckpt_step(s, a.opt.steps, a.n_ckpt)) {
            snprintf(path, sizeof path, "%s/checkpoints/step_%09lld.gguf", a.out, (long long)s);
            if (icl_lmtrain_save(m, path, tok_path, &err)) goto done;
        }
        if (!a.quiet) {
            char st[64];
            snprintf(st, sizeof st, "loss %.4f", loss);
            icl_progress_update(&prog, s, st);
        }
    }
    if (!a.quiet) icl_progress_finish(&prog, a.opt.steps, "done");
    snprintf(path, sizeof path, "%s/model.gguf", a.out);
    if (icl_lmtrain_save(m, path, tok_path, &err)) goto done;
    if (fclose(csv)) {
        csv = NULL;
        icl_errf(&err, "cannot write %s/train.csv", a.out);
        goto done;
    }
    csv = NULL;
    if (!a.quiet) fprintf(stderr, "wrote %s\n", path);
    rc = 0;
done:
    if (csv) fclose(csv);
    free(tok);
    free(tgt);
    free(ids);
    icl_lmtrain_free(m);
    icl_tokenizer_free(tk);
    return rc ? cli_fail("train", &err) : 0;
}
