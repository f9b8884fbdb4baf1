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
    "  --seed 1    initialisation and data draws;  --threads N;  --quiet\n"
    "  --resume    continue the run in --out from its last saved state (below); give the run's own flags\n"
    "  --stop-after K   end after step K, saving the state, as if interrupted (--resume continues)\n"
    "  --log-windows FILE   write the start offset of every window used (kind,step,offset) to FILE\n\n"
    "Held-out loss: the last 2% of the corpus's tokens (at least one window) are never drawn for training;\n"
    "at each checkpoint and at the last step the mean loss on up to 16 fixed windows spread over them\n"
    "goes to eval.csv (step, heldout_loss).\n\n"
    "Resuming: at each checkpoint (and at --stop-after) checkpoints/state.bin gets the parameters, both\n"
    "AdamW moments, the step, the data generator's state and the configuration. --resume refuses a state\n"
    "whose configuration or corpus differs from the flags', drops train.csv and eval.csv rows after the\n"
    "saved step and continues: the files end as those of an uninterrupted run (seconds apart).\n\n"
    "--preset sets the fields below first, whatever its place; other flags override them (without a preset\n"
    "the defaults above apply). minilm is the mini-LM, the offline stand-in for a pretrained model (about\n"
    "20 minutes on 2 cores), meant for the corpus `iclab demo --llm` builds (docs/reproduction.md, \"The\n"
    "mini-LM\"); tiny runs in seconds (the tests' check of the path).\n";

typedef struct lm_args {
    const char *corpus, *out, *log_windows;
    int overwrite, quiet, threads, n_ckpt, batch, seed, resume;
    int64_t stop_after; /* 0: run to --steps */
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
        if (!strcmp(s, "--resume")) { a->resume = 1; continue; }
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
        else if (!strcmp(flag, "log-windows")) a->log_windows = v;
        else if (!strcmp(flag, "stop-after")) {
            r = cli_parse_int(flag, v, 1, 100000000, &x, err);
            a->stop_after = x;
        }
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
    if (a->resume && a->overwrite) return icl_errf(err, "--resume and --overwrite exclude each other");
    if (a->stop_after >= a->opt.steps)
        return icl_errf(err, "--stop-after %lld must be below --steps %lld", (long long)a->stop_after,
                        (long long)a->opt.steps);
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

/* ---------------------------------------------------------------- held-out split */

#define HELDOUT_WINDOWS 16 /* at most: an evaluation costs about as much as 16 / (3 batch) training steps */

/* The last 2% of the token stream (at least one window of T + 1) is held out. Training windows
 * start in [0, n_train - T), so they end before n_train; the held-out windows start at or after it. */
typedef struct lm_split {
    size_t n_train;             /* tokens [0, n_train) are the training part */
    size_t off[HELDOUT_WINDOWS]; /* held-out window starts */
    int n_off;
} lm_split;

static int make_split(size_t n_ids, int64_t T, lm_split *sp, icl_err *err) {
    size_t w = (size_t)T + 1, n_hold = n_ids / 50 > w ? n_ids / 50 : w;
    if (n_ids < n_hold + w + 1)
        return icl_errf(err,
                        "the corpus has %zu tokens, too few for one window of --ctx %lld + 1 and a held-out one "
                        "(%zu tokens needed)",
                        n_ids, (long long)T, n_hold + w + 1);
    sp->n_train = n_ids - n_hold;
    /* windows fitting in the held-out part without overlapping, spread evenly over it */
    size_t room = n_hold - w, fit = room / (size_t)T + 1;
    sp->n_off = fit < HELDOUT_WINDOWS ? (int)fit : HELDOUT_WINDOWS;
    for (int i = 0; i < sp->n_off; i++)
        sp->off[i] = sp->n_train + (sp->n_off > 1 ? room * (size_t)i / (size_t)(sp->n_off - 1) : 0);
    return 0;
}

/* Mean loss over the held-out windows, evaluated `batch` at a time (the training batch, so the
 * activation buffers do not grow). Forward only: the gradients and the optimizer are untouched. */
static int heldout_loss(icl_lmtrain *m, const int32_t *ids, const lm_split *sp, int batch, int64_t T, int32_t *tok,
                        int32_t *tgt, double *out, icl_err *err) {
    double sum = 0;
    for (int i = 0; i < sp->n_off; i += batch) {
        int nb = sp->n_off - i < batch ? sp->n_off - i : batch;
        for (int b = 0; b < nb; b++) {
            memcpy(tok + (size_t)b * T, ids + sp->off[i + b], sizeof(int32_t) * (size_t)T);
            memcpy(tgt + (size_t)b * T, ids + sp->off[i + b] + 1, sizeof(int32_t) * (size_t)T);
        }
        float loss;
        if (icl_lmtrain_forward(m, tok, tgt, nb, (int)T, &loss, err)) return -1;
        sum += (double)loss * nb; /* every window counts T positions */
    }
    *out = sum / sp->n_off;
    return 0;
}

/* ---------------------------------------------------------------- the state file */

/* checkpoints/state.bin, native byte order (little-endian where iclab builds):
 *   "ICLLMST\0", u32 version, u32 n_fields, f64 fields[n_fields] (the configuration, below),
 *   u64 corpus tokens, u64 corpus hash, i64 step, f64 seconds, u64 rng[4], u64 n_params,
 *   f32 params[n_params], f32 adam_m[n_params], f32 adam_v[n_params], u64 FNV-1a of all before.
 * The gradients are not saved: every step starts by zeroing them. */
#define STATE_MAGIC "ICLLMST"
#define STATE_VERSION 1u
#define N_FIELDS 21

typedef struct lm_state_hdr {
    double fields[N_FIELDS];
    uint64_t corpus_tokens, corpus_hash;
    int64_t step;
    double seconds;
    icl_rng rng;
    uint64_t n_params;
} lm_state_hdr;

/* The configuration a state must match: every field that changes the model, the data or the schedule. */
static const char *const field_names[N_FIELDS] = {
    "the vocabulary size", "--layers", "--width", "--heads", "--kv-heads", "--ff", "--ctx", "--tied", "--theta",
    "the RMSNorm epsilon", "--batch", "--seed", "--steps", "--warmup", "--lr", "--lr-min", "--weight-decay",
    "--grad-clip", "AdamW beta1", "AdamW beta2", "AdamW epsilon"};

static void config_fields(const lm_args *a, double *f) {
    const icl_lmtrain_config *c = &a->cfg;
    const icl_lmtrain_opt *o = &a->opt;
    double v[N_FIELDS] = {c->n_vocab, c->n_layer, c->n_embd, c->n_head, c->n_head_kv, c->n_ff,
                          c->n_ctx, c->tied, c->rope_theta, c->eps, a->batch, a->seed,
                          (double)o->steps, (double)o->warmup, o->lr, o->lr_min, o->weight_decay,
                          o->grad_clip, o->beta1, o->beta2, o->eps};
    memcpy(f, v, sizeof v);
}

/* A field as the user typed it: the shortest decimal that reads back as the same float (or integer). */
static const char *field_str(double v, char buf[32]) {
    if (v == floor(v) && fabs(v) < 1e15) {
        snprintf(buf, 32, "%.0f", v);
        return buf;
    }
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, 32, "%.*g", prec, v);
        double r = strtod(buf, NULL);
        if (r == v || (float)r == (float)v) break;
    }
    return buf;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ULL

static int state_put(icl_afile *af, uint64_t *h, const void *p, size_t n, icl_err *err) {
    *h = fnv1a(*h, p, n);
    return icl_afile_write(af, p, n, err);
}

static int state_save(const char *path, icl_lmtrain *m, const lm_state_hdr *hd, icl_err *err) {
    icl_afile af;
    uint64_t h = FNV_INIT;
    uint32_t ver[2] = {STATE_VERSION, N_FIELDS};
    size_t n = icl_lmtrain_n_params(m);
    if (icl_afile_open(&af, path, err)) return -1;
    if (state_put(&af, &h, STATE_MAGIC, 8, err) || state_put(&af, &h, ver, sizeof ver, err) ||
        state_put(&af, &h, hd->fields, sizeof hd->fields, err) ||
        state_put(&af, &h, &hd->corpus_tokens, 8, err) || state_put(&af, &h, &hd->corpus_hash, 8, err) ||
        state_put(&af, &h, &hd->step, 8, err) || state_put(&af, &h, &hd->seconds, 8, err) ||
        state_put(&af, &h, hd->rng.s, sizeof hd->rng.s, err) || state_put(&af, &h, &hd->n_params, 8, err) ||
        state_put(&af, &h, icl_lmtrain_buffer(m, ICL_LT_PARAMS), n * sizeof(float), err) ||
        state_put(&af, &h, icl_lmtrain_buffer(m, ICL_LT_ADAM_M), n * sizeof(float), err) ||
        state_put(&af, &h, icl_lmtrain_buffer(m, ICL_LT_ADAM_V), n * sizeof(float), err) ||
        icl_afile_write(&af, &h, 8, err)) {
        icl_afile_abort(&af);
        return icl_err_prefix(err, "writing %s: ", path);
    }
    return icl_afile_commit(&af, err);
}

/* Reads a state and checks it against the current flags (want) and corpus; fills the model's
 * parameters and moments and *hd. */
static int state_load(const char *path, icl_lmtrain *m, const lm_state_hdr *want, lm_state_hdr *hd, icl_err *err) {
    char *buf;
    size_t len;
    if (icl_read_file(path, &buf, &len, err)) return -1;
    size_t n = icl_lmtrain_n_params(m), fixed = 8 + 8 + sizeof hd->fields + 8 * 4 + sizeof hd->rng.s + 8;
    uint32_t ver[2];
    uint64_t h;
    int rc = -1;
    if (len < 16 || memcmp(buf, STATE_MAGIC, 8)) {
        icl_errf(err, "%s is not an iclab LM training state", path);
        goto done;
    }
    memcpy(ver, buf + 8, sizeof ver);
    if (ver[0] != STATE_VERSION || ver[1] != N_FIELDS) {
        icl_errf(err, "%s has state version %u (this iclab reads %u)", path, ver[0], STATE_VERSION);
        goto done;
    }
    if (len < fixed + 8) {
        icl_errf(err, "%s is truncated (%zu bytes)", path, len);
        goto done;
    }
    memcpy(&h, buf + len - 8, 8);
    if (fnv1a(FNV_INIT, buf, len - 8) != h) {
        icl_errf(err, "%s is damaged (checksum mismatch)", path);
        goto done;
    }
    const char *p = buf + 16;
    memcpy(hd->fields, p, sizeof hd->fields), p += sizeof hd->fields;
    memcpy(&hd->corpus_tokens, p, 8), p += 8;
    memcpy(&hd->corpus_hash, p, 8), p += 8;
    memcpy(&hd->step, p, 8), p += 8;
    memcpy(&hd->seconds, p, 8), p += 8;
    memcpy(hd->rng.s, p, sizeof hd->rng.s), p += sizeof hd->rng.s;
    memcpy(&hd->n_params, p, 8), p += 8;
    for (int i = 0; i < N_FIELDS; i++)
        if (hd->fields[i] != want->fields[i]) {
            char was[32], now[32];
            icl_errf(err, "the run was trained with %s %s, the flags give %s (pass the run's own flags)",
                     field_names[i], field_str(hd->fields[i], was), field_str(want->fields[i], now));
            goto done;
        }
    if (hd->corpus_tokens != want->corpus_tokens || hd->corpus_hash != want->corpus_hash) {
        icl_errf(err, "the corpus differs from the run's (%llu tokens then, %llu now, or other tokens)",
                 (unsigned long long)hd->corpus_tokens, (unsigned long long)want->corpus_tokens);
        goto done;
    }
    if (hd->n_params != n || len != fixed + 3 * n * sizeof(float) + 8 || hd->step < 1) {
        icl_errf(err, "%s does not fit the model (%llu parameters, %zu bytes)", path,
                 (unsigned long long)hd->n_params, len);
        goto done;
    }
    memcpy(icl_lmtrain_buffer(m, ICL_LT_PARAMS), p, n * sizeof(float)), p += n * sizeof(float);
    memcpy(icl_lmtrain_buffer(m, ICL_LT_ADAM_M), p, n * sizeof(float)), p += n * sizeof(float);
    memcpy(icl_lmtrain_buffer(m, ICL_LT_ADAM_V), p, n * sizeof(float));
    icl_lmtrain_set_steps_done(m, hd->step);
    rc = 0;
done:
    free(buf);
    return rc;
}

/* Resuming: keeps the header and the rows of steps <= step of a CSV whose first column is the step
 * (rows written after the saved state are redone), atomically. */
static int truncate_rows(const char *path, int64_t step, icl_err *err) {
    char *text;
    size_t len;
    if (icl_read_file(path, &text, &len, err)) return -1;
    size_t keep = 0;
    for (size_t i = 0; i < len;) {
        char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) + 1 : len;
        if (i > 0 && strtoll(text + i, NULL, 10) > step) break;
        if (nl) keep = end; /* a line without its newline is a torn write: dropped */
        i = end;
    }
    int rc = icl_write_file_atomic(path, text, keep, err);
    free(text);
    return rc;
}

/* Opens a CSV to append to (resume) or to write with its header. */
static FILE *open_csv(const char *path, int append, const char *header, icl_err *err) {
    FILE *f = fopen(path, append ? "a" : "w");
    if (!f) {
        icl_errf(err, "cannot write %s", path);
        return NULL;
    }
    if (!append) fprintf(f, "%s\n", header);
    return f;
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
    char tok_path[4200], path[4300], state_path[4300];
    icl_tokenizer *tk = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    icl_lmtrain *m = NULL;
    int rc = -1, have_log = 0;
    int64_t T = a.cfg.n_ctx, step0 = 0, last = a.stop_after ? a.stop_after : a.opt.steps;
    int32_t *tok = NULL, *tgt = NULL;
    FILE *csv = NULL, *ecsv = NULL;
    icl_afile wlog;
    lm_split sp = {0};
    lm_state_hdr want = {0}, st;
    double t_before = 0, hl = NAN; /* seconds of the steps before this invocation; the last held-out loss */
    icl_rng data;
    if (load_corpus(a.corpus, &tk, &ids, &n_ids, tok_path, sizeof tok_path, &err)) goto done;
    a.cfg.n_vocab = icl_tokenizer_n_vocab(tk);
    if (make_split(n_ids, T, &sp, &err)) goto done;
    if (icl_lmtrain_init(&m, &a.cfg, &err)) goto done;
    config_fields(&a, want.fields);
    want.corpus_tokens = n_ids;
    want.corpus_hash = fnv1a(FNV_INIT, ids, n_ids * sizeof(int32_t));
    snprintf(state_path, sizeof state_path, "%s/checkpoints/state.bin", a.out);
    snprintf(path, sizeof path, "%s/train.csv", a.out);
    if (a.resume) {
        if (!icl_path_exists(path)) {
            icl_errf(&err, "cannot resume: %s holds no run (no train.csv)", a.out);
            goto done;
        }
        if (!icl_path_exists(state_path)) {
            icl_errf(&err, "cannot resume: %s has no saved training state (it is written at each checkpoint)",
                     state_path);
            goto done;
        }
        if (state_load(state_path, m, &want, &st, &err)) {
            icl_err_prefix(&err, "cannot resume: ");
            goto done;
        }
        if (st.step >= a.opt.steps) {
            icl_errf(&err, "cannot resume: the run in %s is complete (%lld of %lld steps)", a.out, (long long)st.step,
                     (long long)a.opt.steps);
            goto done;
        }
        if (a.stop_after && a.stop_after <= st.step) {
            icl_errf(&err, "--stop-after %lld: the run is at step %lld already", (long long)a.stop_after,
                     (long long)st.step);
            goto done;
        }
        step0 = st.step, t_before = st.seconds, data = st.rng;
        if (truncate_rows(path, step0, &err)) goto done;
        snprintf(path, sizeof path, "%s/eval.csv", a.out);
        if (icl_path_exists(path) && truncate_rows(path, step0, &err)) goto done;
    } else {
        if (icl_path_exists(path) && !a.overwrite) {
            icl_errf(&err, "%s holds a run already (--overwrite replaces it, --resume continues it)", a.out);
            goto done;
        }
        snprintf(path, sizeof path, "%s/checkpoints", a.out);
        if (a.overwrite) {
            remove_checkpoints(path);
            unlink(state_path);
        }
        if (icl_mkdirs(path, &err)) goto done;
        icl_lmtrain_init_weights(m, (uint64_t)a.seed);
        icl_rng_seed_stream(&data, (uint64_t)a.seed, 0x6461746175ULL); /* the data draws: apart from the init */
    }
    snprintf(path, sizeof path, "%s/train.csv", a.out);
    if (!(csv = open_csv(path, a.resume, "step,loss,lr,grad_norm,seconds", &err))) goto done;
    snprintf(path, sizeof path, "%s/eval.csv", a.out);
    if (!(ecsv = open_csv(path, a.resume && icl_path_exists(path), "step,heldout_loss", &err))) goto done;
    if (a.log_windows) {
        if (icl_afile_open(&wlog, a.log_windows, &err)) goto done;
        have_log = 1;
        icl_afile_printf(&wlog, &err, "kind,step,offset\n");
        for (int i = 0; i < sp.n_off; i++) icl_afile_printf(&wlog, &err, "heldout,0,%zu\n", sp.off[i]);
    }
    if (!a.quiet) {
        fprintf(stderr, "train --task lm: %zu corpus tokens, vocabulary %d, %zu parameters, %lld steps of %d x %lld\n",
                n_ids, a.cfg.n_vocab, icl_lmtrain_n_params(m), (long long)a.opt.steps, a.batch, (long long)T);
        fprintf(stderr, "held out: tokens %zu-%zu (the last %zu), %d windows for eval.csv\n", sp.n_train, n_ids - 1,
                n_ids - sp.n_train, sp.n_off);
        if (a.resume) fprintf(stderr, "resuming %s at step %lld\n", a.out, (long long)step0);
    }
    tok = malloc(sizeof(int32_t) * (size_t)a.batch * T);
    tgt = malloc(sizeof(int32_t) * (size_t)a.batch * T);
    if (!tok || !tgt) {
        icl_errf(&err, "out of memory");
        goto done;
    }
    icl_progress prog;
    if (!a.quiet) icl_progress_init(&prog, stderr, "train", step0, a.opt.steps);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t s = step0 + 1; s <= last; s++) {
        for (int b = 0; b < a.batch; b++) {
            size_t o = (size_t)icl_rng_below(&data, (uint64_t)(sp.n_train - (size_t)T));
            memcpy(tok + (size_t)b * T, ids + o, sizeof(int32_t) * (size_t)T);
            memcpy(tgt + (size_t)b * T, ids + o + 1, sizeof(int32_t) * (size_t)T);
            if (have_log) icl_afile_printf(&wlog, &err, "train,%lld,%zu\n", (long long)s, o);
        }
        float loss, lr = icl_lmtrain_lr(&a.opt, s - 1);
        double gn;
        if (icl_lmtrain_step(m, tok, tgt, a.batch, (int)T, &a.opt, &loss, &gn, &err)) goto done;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double secs = t_before + (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(csv, "%lld,%.6f,%.6g,%.6g,%.3f\n", (long long)s, loss, lr, gn, secs);
        int ckpt = is_ckpt_step(s, a.opt.steps, a.n_ckpt);
        if (ckpt) {
            snprintf(path, sizeof path, "%s/checkpoints/step_%09lld.gguf", a.out, (long long)s);
            if (icl_lmtrain_save(m, path, tok_path, &err)) goto done;
        }
        if (ckpt || s == a.opt.steps) {
            if (heldout_loss(m, ids, &sp, a.batch, T, tok, tgt, &hl, &err)) goto done;
            fprintf(ecsv, "%lld,%.6f\n", (long long)s, hl);
        }
        if (ckpt || s == a.stop_after) {
            /* the rows up to this step reach the disk before the state that vouches for them */
            if (fflush(csv) || fflush(ecsv)) {
                icl_errf(&err, "cannot write %s/train.csv or eval.csv", a.out);
                goto done;
            }
            st = want;
            st.step = s, st.seconds = secs, st.rng = data, st.n_params = icl_lmtrain_n_params(m);
            if (state_save(state_path, m, &st, &err)) goto done;
        }
        if (!a.quiet) {
            char stat[64];
            if (isnan(hl)) snprintf(stat, sizeof stat, "loss %.4f", loss);
            else snprintf(stat, sizeof stat, "loss %.4f, held-out %.4f", loss, hl);
            icl_progress_update(&prog, s, stat);
        }
    }
    if (!a.quiet) icl_progress_finish(&prog, last, "done");
    if (have_log) {
        have_log = 0;
        if (icl_afile_commit(&wlog, &err)) goto done;
    }
    int c1 = fclose(csv), c2 = fclose(ecsv);
    csv = ecsv = NULL;
    if (c1 || c2) {
        icl_errf(&err, "cannot write %s/train.csv or eval.csv", a.out);
        goto done;
    }
    if (last < a.opt.steps) {
        if (!a.quiet)
            fprintf(stderr, "stopped after step %lld of %lld; --resume continues from %s\n", (long long)last,
                    (long long)a.opt.steps, state_path);
    } else {
        snprintf(path, sizeof path, "%s/model.gguf", a.out);
        if (icl_lmtrain_save(m, path, tok_path, &err)) goto done;
        if (!a.quiet) fprintf(stderr, "held-out loss %.4f at step %lld (%s/eval.csv)\nwrote %s\n", hl,
                              (long long)last, a.out, path);
    }
    rc = 0;
done:
    if (have_log) icl_afile_abort(&wlog);
    if (csv) fclose(csv);
    if (ecsv) fclose(ecsv);
    free(tok);
    free(tgt);
    free(ids);
    icl_lmtrain_free(m);
    icl_tokenizer_free(tk);
    return rc ? cli_fail("train", &err) : 0;
}
