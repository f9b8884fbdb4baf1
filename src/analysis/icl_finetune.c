/* LoRA finetuning on token ICL tasks and the paper's first-k vs last-k comparison (see
 * icl_finetune.h). */
#include "iclab/icl_finetune.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "iclab/icl_csv.h"
#include "iclab/icl_file.h"
#include "iclab/icl_plot.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_report.h"
#include "iclab/icl_rng.h"

void icl_finetune_cfg_default(icl_finetune_cfg *c) {
    memset(c, 0, sizeof *c);
    icl_eval_cfg_default(&c->base);
    icl_lora_cfg_default(&c->lora);
    c->batch = 8;
    c->steps = 0; /* 10000 samples / batch */
    c->min_shots = 1, c->max_shots = 10;
    c->checkpoints = 8;
    icl_lmtrain_opt_defaults(&c->opt);
    c->opt.lr = 1e-3f, c->opt.lr_min = 1e-4f, c->opt.weight_decay = 0.0f, c->opt.grad_clip = 1.0f;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- the state file
 * checkpoints/state.bin, native byte order: "ICLFTST\0", u32 version, u32 n_fields, f64 fields
 * (the configuration that must match on resume), i64 step, f64 seconds, u64 rng[4], u64 n_params,
 * f32 params, adam_m, adam_v, u64 FNV-1a of everything before. */
enum { STATE_VERSION = 1, N_FIELDS = 9 };

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

static void state_fields(const icl_finetune_cfg *cfg, const icl_lora_cfg *lc, int steps, double *f) {
    double v[N_FIELDS] = {lc->rank, lc->alpha, lc->dropout, lc->layer_lo, lc->layer_hi, lc->targets, cfg->batch, steps,
                          (double)cfg->base.seed};
    memcpy(f, v, sizeof v);
}

static int state_save(const char *path, const double *fields, int64_t step, double seconds, const icl_rng *rng,
                      icl_lora *a, icl_lora_trainer *t, icl_err *err) {
    icl_afile f;
    if (icl_afile_open(&f, path, err)) return -1;
    uint64_t h = 0xcbf29ce484222325ull, np = icl_lora_n_params(a);
    uint32_t head[2] = {STATE_VERSION, N_FIELDS};
    const void *parts[] = {"ICLFTST", head, fields, &step, &seconds, rng->s, &np, icl_lora_params(a),
                           icl_lora_trainer_moment(t, 0), icl_lora_trainer_moment(t, 1)};
    size_t sizes[] = {8, sizeof head, sizeof(double) * N_FIELDS, 8, 8, 32, 8, np * 4, np * 4, np * 4};
    int r = 0;
    for (size_t i = 0; !r && i < sizeof sizes / sizeof sizes[0]; i++) {
        h = fnv(h, parts[i], sizes[i]);
        r = icl_afile_write(&f, parts[i], sizes[i], err);
    }
    if (!r) r = icl_afile_write(&f, &h, 8, err);
    if (r) {
        icl_afile_abort(&f);
        return -1;
    }
    return icl_afile_commit(&f, err);
}

static int state_load(const char *path, const double *fields, int64_t *step, double *seconds, icl_rng *rng, icl_lora *a,
                      icl_lora_trainer *t, icl_err *err) {
    char *data;
    size_t n;
    if (icl_read_file(path, &data, &n, err)) return -1;
    uint64_t np = icl_lora_n_params(a);
    size_t need = 8 + 8 + 8 * N_FIELDS + 8 + 8 + 32 + 8 + np * 12 + 8;
    int r = 0;
    uint32_t head[2];
    if (n != need || memcmp(data, "ICLFTST", 8)) r = icl_errf(err, "%s is not a finetuning state of this adapter's size", path);
    if (!r) memcpy(head, data + 8, 8);
    if (!r && (head[0] != STATE_VERSION || head[1] != N_FIELDS)) r = icl_errf(err, "%s: unknown state version", path);
    uint64_t h;
    if (!r) {
        memcpy(&h, data + n - 8, 8);
        if (fnv(0xcbf29ce484222325ull, data, n - 8) != h) r = icl_errf(err, "%s is damaged (checksum)", path);
    }
    if (!r && memcmp(data + 16, fields, 8 * N_FIELDS))
        r = icl_errf(err, "%s was written with other options (rank, alpha, dropout, layers, targets, batch, steps, seed)",
                     path);
    if (!r) {
        const char *p = data + 16 + 8 * N_FIELDS;
        uint64_t np2;
        memcpy(step, p, 8), memcpy(seconds, p + 8, 8), memcpy(rng->s, p + 16, 32), memcpy(&np2, p + 48, 8);
        p += 56;
        if (np2 != np) r = icl_errf(err, "%s: %llu parameters, the adapter has %llu", path, (unsigned long long)np2,
                                    (unsigned long long)np);
        if (!r) {
            memcpy(icl_lora_params(a), p, np * 4);
            memcpy(icl_lora_trainer_moment(t, 0), p + np * 4, np * 4);
            memcpy(icl_lora_trainer_moment(t, 1), p + np * 8, np * 4);
            icl_lora_trainer_set_steps(t, *step);
        }
    }
    free(data);
    return r;
}

/* ---------------------------------------------------------------- training */

/* Log-spaced checkpoint steps (the last step always), ascending, unique; returns the count. */
static int schedule(int steps, int n, int *out) {
    int m = 0;
    for (int k = 1; k <= n; k++) {
        int s = (int)lround(exp(log((double)steps) * k / n));
        if (s < 1) s = 1;
        if (k == n) s = steps;
        if (!m || s > out[m - 1]) out[m++] = s;
    }
    return m;
}

/* One batch: B episodes (concept uniform over the trained ones, shots uniform), tokens padded at the
 * end (causal attention: padding changes nothing before it) and targets only on the answer. */
static int make_batch(const icl_toktask *task, const icl_template *tp, const icl_tokenizer *tk, const int *concepts,
                      int nc, const icl_finetune_cfg *cfg, int n_ctx, icl_rng *rng, int32_t *tok, int32_t *tgt, int *T_out,
                      int *n_answer, icl_err *err) {
    int B = cfg->batch, T = 0, r = 0;
    int32_t *seq[256] = {0};
    size_t len[256] = {0}, plen[256] = {0};
    *n_answer = 0;
    for (int b = 0; !r && b < B; b++) {
        int c = concepts[icl_rng_below(rng, (uint64_t)nc)];
        int shots = cfg->min_shots + (int)icl_rng_below(rng, (uint64_t)(cfg->max_shots - cfg->min_shots + 1));
        const icl_tokex *demos[256], *query;
        char *prompt = NULL, *answer = NULL;
        int32_t *pa = NULL, *pb = NULL;
        size_t na = 0, nb = 0;
        r = icl_episode_draw(task, c, ICL_SPLIT_TRAIN, shots, rng, &query, demos, err);
        if (!r) r = icl_prompt_build(task, tp, 0, demos, shots, query, &prompt, &answer, err);
        if (!r) r = icl_tokenizer_encode(tk, prompt, strlen(prompt), cfg->base.add_bos, 0, &pa, &na, err);
        if (!r) {
            size_t al = strlen(answer);
            char *line = malloc(al + 2);
            if (!line) r = icl_errf(err, "out of memory");
            else {
                memcpy(line, answer, al);
                memcpy(line + al, "\n", 2);
                r = icl_tokenizer_encode(tk, line, al + 1, 0, 0, &pb, &nb, err);
                free(line);
            }
        }
        if (!r && (na == 0 || nb == 0)) r = icl_errf(err, "an episode tokenized to an empty prompt or answer");
        if (!r && na + nb > (size_t)n_ctx)
            r = icl_errf(err, "an episode of %zu tokens exceeds the model's context of %d (lower --max-shots)", na + nb, n_ctx);
        if (!r && !(seq[b] = malloc(sizeof(int32_t) * (na + nb)))) r = icl_errf(err, "out of memory");
        if (!r) {
            memcpy(seq[b], pa, na * 4);
            memcpy(seq[b] + na, pb, nb * 4);
            len[b] = na + nb, plen[b] = na;
            if ((int)len[b] > T) T = (int)len[b];
        }
        free(prompt), free(answer), free(pa), free(pb);
    }
    for (int b = 0; !r && b < B; b++)
        for (int i = 0; i < T; i++) {
            size_t k = (size_t)b * T + i;
            tok[k] = (size_t)i < len[b] ? seq[b][i] : seq[b][len[b] - 1];
            /* position i predicts token i+1: the answer's tokens, from the prompt's last position on */
            int in_answer = (size_t)i + 1 >= plen[b] && (size_t)i + 1 < len[b];
            tgt[k] = in_answer ? seq[b][i + 1] : -1;
            *n_answer += in_answer;
        }
    for (int b = 0; b < B; b++) free(seq[b]);
    *T_out = T;
    return r;
}

/* train.csv rows kept in memory; on resume the first `step` rows of the old file are kept. */
typedef struct rows {
    char *buf;
    size_t n, cap;
} rows;

static int rows_add(rows *w, const char *line) {
    size_t l = strlen(line);
    if (w->n + l + 1 > w->cap) {
        size_t cap = (w->cap ? w->cap * 2 : 4096) + l;
        char *p = realloc(w->buf, cap);
        if (!p) return -1;
        w->buf = p, w->cap = cap;
    }
    memcpy(w->buf + w->n, line, l + 1);
    w->n += l;
    return 0;
}

static int rows_resume(rows *w, const char *path, int64_t step, icl_err *err) {
    char *data;
    size_t n;
    if (icl_read_file(path, &data, &n, err)) return -1;
    const char *p = strchr(data, '\n');
    int64_t k = 0;
    while (p && k < step) {
        const char *q = strchr(p + 1, '\n');
        if (!q) break;
        char line[512];
        size_t l = (size_t)(q - p);
        if (l >= sizeof line) break;
        memcpy(line, p + 1, l);
        line[l] = 0;
        if (rows_add(w, line)) break;
        p = q, k++;
    }
    free(data);
    return k == step ? 0 : icl_errf(err, "%s has %lld rows, the state is at step %lld", path, (long long)k, (long long)step);
}

static int write_rows(const char *path, const rows *w, icl_err *err) {
    icl_afile f;
    if (icl_afile_open(&f, path, err)) return -1;
    const char *head = "step,loss,lr,grad_norm,answer_tokens,seconds\n";
    if (icl_afile_write(&f, head, strlen(head), err) || (w->n && icl_afile_write(&f, w->buf, w->n, err))) {
        icl_afile_abort(&f);
        return -1;
    }
    return icl_afile_commit(&f, err);
}

static int write_config(const icl_finetune_cfg *cfg, const icl_lora_cfg *lc, const icl_lm *lm, int steps,
                        const char *task_family, icl_err *err) {
    char *path = join(cfg->base.out_dir, "config.json");
    if (!path) return icl_errf(err, "out of memory");
    icl_afile f;
    int r = icl_afile_open(&f, path, err);
    if (!r)
        r = icl_afile_printf(&f, err,
                             "{\n  \"kind\": \"lora-finetune\",\n  \"model\": \"%s\",\n  \"arch\": \"%s\",\n  \"n_layer\": %d,\n"
                             "  \"task\": \"%s\",\n  \"layer_lo\": %d,\n  \"layer_hi\": %d,\n  \"targets\": %u,\n"
                             "  \"rank\": %d,\n  \"alpha\": %g,\n  \"dropout\": %g,\n  \"steps\": %d,\n  \"batch\": %d,\n"
                             "  \"min_shots\": %d,\n  \"max_shots\": %d,\n  \"lr\": %g,\n  \"lr_min\": %g,\n"
                             "  \"warmup\": %lld,\n  \"weight_decay\": %g,\n  \"grad_clip\": %g,\n  \"seed\": %llu\n}\n",
                             cfg->base.model, icl_lm_hp(lm)->arch_name, icl_lm_hp(lm)->n_layer, task_family, lc->layer_lo,
                             lc->layer_hi, lc->targets, lc->rank, lc->alpha, lc->dropout, steps, cfg->batch,
                             cfg->min_shots, cfg->max_shots, cfg->opt.lr, cfg->opt.lr_min, (long long)cfg->opt.warmup,
                             cfg->opt.weight_decay, cfg->opt.grad_clip, (unsigned long long)cfg->base.seed);
    if (r) icl_afile_abort(&f);
    else r = icl_afile_commit(&f, err);
    free(path);
    return r;
}

int icl_finetune_run(const icl_finetune_cfg *cfg, icl_err *err) {
    const icl_eval_cfg *b = &cfg->base;
    if (cfg->batch < 1 || cfg->batch > 256) return icl_errf(err, "batch %d must be in 1..256", cfg->batch);
    if (cfg->min_shots < 0 || cfg->max_shots < cfg->min_shots || cfg->max_shots > 255)
        return icl_errf(err, "shots %d..%d: need 0 <= min <= max <= 255", cfg->min_shots, cfg->max_shots);
    if (cfg->steps < 0 || cfg->checkpoints < 0) return icl_errf(err, "steps and checkpoints must be >= 0");
    int steps = cfg->steps ? cfg->steps : (10000 + cfg->batch - 1) / cfg->batch;
    icl_toktask task = {0};
    icl_template tp = {0};
    icl_lm_session s = {0};
    icl_lora *a = NULL;
    icl_lora_trainer *t = NULL;
    int32_t *tok = NULL, *tgt = NULL;
    char *ckdir = join(b->out_dir, "checkpoints"), *state = join(b->out_dir, "checkpoints/state.bin"),
         *csv = join(b->out_dir, "train.csv");
    rows w = {0};
    int r = !ckdir || !state || !csv ? icl_errf(err, "out of memory") : 0;
    if (!r) r = icl_eval_task_open(&task, b, err);
    if (!r) r = icl_template_parse(&tp, b->template_spec ? b->template_spec : ICL_TOKTASK_DEFAULT_TEMPLATE, err);
    if (!r) r = icl_lm_session_open(&s, b->model, 64, 1, err);
    int concepts[256], nc = 0;
    for (int c = 0; !r && c < task.n_concepts && nc < 256; c++)
        if (c != task.null_concept) concepts[nc++] = c;
    if (!r && !nc) r = icl_errf(err, "the task has no concept to train on (only Null)");
    icl_lora_cfg lc = cfg->lora;
    const icl_lm_hparams *hp = r ? NULL : icl_lm_hp(s.lm);
    if (!r && cfg->layers) r = icl_lora_parse_layers(cfg->layers, hp->n_layer, &lc.layer_lo, &lc.layer_hi, err);
    if (!r && lc.layer_hi < 0) lc.layer_hi = hp->n_layer;
    if (!r) r = icl_mkdirs(ckdir, err);
    if (!r) r = icl_lora_init(&a, s.lm, &lc, b->seed, err);
    if (!r) r = icl_lora_trainer_init(&t, s.lm, a, b->seed, err);
    icl_rng rng;
    icl_rng_seed_stream(&rng, b->seed, 0x4c6f5241);
    double fields[N_FIELDS], seconds = 0;
    state_fields(cfg, &lc, steps, fields);
    int64_t step = 0;
    if (!r && cfg->resume) {
        if (!icl_path_exists(state)) r = icl_errf(err, "--resume: no %s", state);
        if (!r) r = state_load(state, fields, &step, &seconds, &rng, a, t, err);
        if (!r) r = rows_resume(&w, csv, step, err);
    } else if (!r && icl_path_exists(state)) {
        r = icl_errf(err, "%s already holds a finetuning run: --resume it or choose another --out", b->out_dir);
    }
    int n_ctx = hp ? hp->n_ctx_train : 0;
    if (!r && !(tok = malloc(sizeof(int32_t) * (size_t)cfg->batch * n_ctx)))
        r = icl_errf(err, "out of memory");
    if (!r && !(tgt = malloc(sizeof(int32_t) * (size_t)cfg->batch * n_ctx))) r = icl_errf(err, "out of memory");
    icl_lmtrain_opt o = cfg->opt;
    o.steps = steps;
    if (o.warmup <= 0 || o.warmup >= steps) o.warmup = steps / 20 > 0 ? steps / 20 : 1;
    int sched[64], ns = schedule(steps, cfg->checkpoints > 0 ? (cfg->checkpoints < 64 ? cfg->checkpoints : 64) : 1, sched);
    icl_progress prog;
    if (!r && b->progress) icl_progress_init(&prog, b->progress, "finetune", step, steps);
    double t0 = now_s() - seconds;
    for (; !r && step < steps; step++) {
        int T, n_ans;
        float loss;
        double gn;
        r = make_batch(&task, &tp, s.tk, concepts, nc, cfg, n_ctx, &rng, tok, tgt, &T, &n_ans, err);
        if (!r) r = icl_lora_train_step(t, tok, tgt, cfg->batch, T, &o, &loss, &gn, err);
        if (r) break;
        char line[256], status[64];
        snprintf(line, sizeof line, "%lld,%.6f,%.6g,%.6g,%d,%.3f\n", (long long)step + 1, loss,
                 icl_lmtrain_lr(&o, step), gn, n_ans, now_s() - t0);
        if (rows_add(&w, line)) r = icl_errf(err, "out of memory");
        snprintf(status, sizeof status, "loss %.4f", loss);
        if (b->progress) icl_progress_update(&prog, step + 1, status);
        int save = (cfg->stop_after && step + 1 == cfg->stop_after) || step + 1 == steps;
        for (int k = 0; k < ns; k++) save |= sched[k] == step + 1;
        if (!r && save) {
            char name[64];
            snprintf(name, sizeof name, "checkpoints/step_%09lld.gguf", (long long)step + 1);
            char *p = join(b->out_dir, name);
            r = !p ? icl_errf(err, "out of memory") : icl_lora_save(a, s.lm, p, err);
            free(p);
            if (!r) r = write_rows(csv, &w, err);
            if (!r) r = state_save(state, fields, step + 1, now_s() - t0, &rng, a, t, err);
        }
        if (cfg->stop_after && step + 1 == cfg->stop_after) {
            step++;
            break;
        }
    }
    if (!r && b->progress) icl_progress_finish(&prog, step, NULL);
    if (!r && step == steps) {
        char *p = join(b->out_dir, "adapter.gguf");
        r = !p ? icl_errf(err, "out of memory") : icl_lora_save(a, s.lm, p, err);
        free(p);
        if (!r) r = write_config(cfg, &lc, s.lm, steps, task.family, err);
    }
    free(tok), free(tgt), free(w.buf), free(ckdir), free(state), free(csv);
    icl_lora_trainer_free(t);
    icl_lora_free(a);
    icl_lm_session_close(&s);
    icl_template_free(&tp);
    icl_toktask_free(&task);
    return r;
}

/* ---------------------------------------------------------------- the comparison (paper §4.2) */

enum { COND_PT, COND_FIRST, COND_LAST, COND_PROMPT, N_COND };
static const char *const cond_key[N_COND] = {"pretrained", "first", "last", "prompting"};

/* The paper's Table 1 (mean +- population std over the six tasks) and Fig. 24 (accuracy % per
 * task: pretrained, FT last 10, FT first 10), Llama-3.1-8B; spec paper.md §4.2. */
typedef struct paper_t1 {
    double td[N_COND], td_sd[N_COND], acc[N_COND], acc_sd[N_COND];
} paper_t1;
static const paper_t1 t1_pos = {{0.68, 0.95, 0.68, 0.97}, {0.11, 0.02, 0.11, 0.02},
                                {25.5, 69.4, 33.9, 34.4}, {6.7, 14.2, 12.3, 10.3}};
static const paper_t1 t1_bitwise = {{0.43, 0.85, 0.43, 0.90}, {0.13, 0.11, 0.13, 0.10},
                                    {26.2, 90.2, 66.3, 57.2}, {15.5, 15.0, 9.01, 30.1}};
typedef struct paper_f24 {
    const char *concept;
    double pt, last, first;
} paper_f24;
static const paper_f24 f24[] = {
    {"Noun", 30.6, 40.5, 93.9},     {"Pronoun", 27.1, 51.7, 70.3}, {"Verb", 37.1, 40.1, 82.2},
    {"Adverb", 20.4, 30.1, 56.8},   {"Adjective", 19.5, 11.5, 47.8}, {"Preposition", 16.4, 23.3, 65.2},
    {"AND", 28, 65, 99}, {"NAND", 26, 77, 94}, {"OR", 49, 73, 100}, {"NOR", 13, 72, 94}, {"XOR", 39, 61, 97},
    {"XNOR", 2, 50, 57}};

static const paper_f24 *f24_lookup(const char *concept) {
    for (size_t i = 0; i < sizeof f24 / sizeof f24[0]; i++)
        if (!strcmp(f24[i].concept, concept)) return &f24[i];
    return NULL;
}

/* Accuracy and TD (at `layer`, and at the eval's own peak) per concept of an eval folder at its
 * peak shot count; concepts in the order of accuracy.csv. */
typedef struct cond_res {
    int n, peak, shots;
    char names[64][32];
    double acc[64], td_at[64], td_own[64];
} cond_res;

static int read_eval(const char *dir, int layer, cond_res *c, icl_err *err) {
    int rows;
    memset(c, 0, sizeof *c);
    if (icl_eval_read_peak(dir, &c->peak, &c->shots, &rows, err)) return -1;
    if (layer < 0) layer = c->peak;
    char *ap = join(dir, "accuracy.csv"), *tp = join(dir, "td.csv");
    icl_csv a = {0}, t = {0};
    int r = !ap || !tp ? icl_errf(err, "out of memory") : 0;
    if (!r) r = icl_csv_read(&a, ap, err);
    if (!r) r = icl_csv_read(&t, tp, err);
    int as = r ? -1 : icl_csv_col(&a, "shots"), ac = r ? -1 : icl_csv_col(&a, "concept"),
        aa = r ? -1 : icl_csv_col(&a, "accuracy"), ts = r ? -1 : icl_csv_col(&t, "shots"),
        tl = r ? -1 : icl_csv_col(&t, "layer"), tc = r ? -1 : icl_csv_col(&t, "concept"), tt = r ? -1 : icl_csv_col(&t, "td");
    if (!r && (as < 0 || ac < 0 || aa < 0 || ts < 0 || tl < 0 || tc < 0 || tt < 0))
        r = icl_errf(err, "%s: accuracy.csv or td.csv lacks a column", dir);
    for (int i = 0; !r && i < a.n_rows; i++) {
        if ((int)icl_csv_num(&a, i, as) != c->shots || c->n >= 64) continue;
        snprintf(c->names[c->n], sizeof c->names[0], "%s", icl_csv_str(&a, i, ac));
        c->acc[c->n] = icl_csv_num(&a, i, aa);
        c->td_at[c->n] = c->td_own[c->n] = NAN;
        for (int j = 0; j < t.n_rows; j++) {
            if ((int)icl_csv_num(&t, j, ts) != c->shots || strcmp(icl_csv_str(&t, j, tc), c->names[c->n])) continue;
            int l = (int)icl_csv_num(&t, j, tl);
            if (l == layer) c->td_at[c->n] = icl_csv_num(&t, j, tt);
            if (l == c->peak) c->td_own[c->n] = icl_csv_num(&t, j, tt);
        }
        c->n++;
    }
    if (!r && !c->n) r = icl_errf(err, "%s: no accuracy at %d shots", dir, c->shots);
    icl_csv_free(&a), icl_csv_free(&t);
    free(ap), free(tp);
    return r;
}

int icl_finetune_compare(const icl_finetune_cfg *cfg, int k, icl_err *err) {
    const char *out = cfg->base.out_dir;
    icl_lm *lm;
    if (icl_lm_load(&lm, cfg->base.model, err)) return -1;
    int L = icl_lm_hp(lm)->n_layer;
    icl_lm_free(lm);
    if (k <= 0) k = (int)lround(L * 10.0 / 32.0) > 0 ? (int)lround(L * 10.0 / 32.0) : 1;
    if (k > L) return icl_errf(err, "--compare %d: the model has %d layers", k, L);
    if (icl_mkdirs(out, err)) return -1;
    char dir[N_COND][1024], evaldir[N_COND][1024], layers[2][32];
    snprintf(dir[COND_PT], sizeof dir[0], "%s/pretrained", out);
    snprintf(dir[COND_PROMPT], sizeof dir[0], "%s/prompting", out);
    snprintf(dir[COND_FIRST], sizeof dir[0], "%s/first-%d", out, k);
    snprintf(dir[COND_LAST], sizeof dir[0], "%s/last-%d", out, k);
    snprintf(layers[0], sizeof layers[0], "first:%d", k);
    snprintf(layers[1], sizeof layers[1], "last:%d", k);
    for (int c = 0; c < N_COND; c++) {
        int arm = c == COND_FIRST || c == COND_LAST;
        snprintf(evaldir[c], sizeof evaldir[0], arm ? "%s/eval" : "%s", dir[c]);
        char adapter[1100], done[1100];
        snprintf(adapter, sizeof adapter, "%s/adapter.gguf", dir[c]);
        if (arm && !icl_path_exists(adapter)) { /* train (resuming a run that was stopped) */
            icl_finetune_cfg ft = *cfg;
            ft.layers = layers[c == COND_LAST];
            ft.base.out_dir = dir[c];
            char state[1100];
            snprintf(state, sizeof state, "%s/checkpoints/state.bin", dir[c]);
            ft.resume = icl_path_exists(state);
            if (cfg->base.progress) fprintf(cfg->base.progress, "LoRA on the %s layers (%s)\n", c == COND_FIRST ? "first" : "last", ft.layers);
            if (icl_finetune_run(&ft, err)) return -1;
        }
        snprintf(done, sizeof done, "%s/td.csv", evaldir[c]);
        if (icl_path_exists(done)) continue; /* evaluated by an earlier run of the comparison */
        icl_eval_cfg e = cfg->base;
        e.out_dir = evaldir[c];
        e.lora = arm ? adapter : NULL;
        e.prompting = c == COND_PROMPT;
        if (cfg->base.progress) fprintf(cfg->base.progress, "evaluating: %s\n", cond_key[c]);
        if (icl_eval_run(&e, err)) return -1;
    }
    /* comparison.csv */
    cond_res *res = calloc(N_COND, sizeof *res);
    if (!res) return icl_errf(err, "out of memory");
    int r = read_eval(evaldir[COND_PT], -1, &res[COND_PT], err);
    for (int c = 1; !r && c < N_COND; c++) r = read_eval(evaldir[c], res[COND_PT].peak, &res[c], err);
    char *csv = join(out, "comparison.csv");
    icl_afile f;
    if (!r && !csv) r = icl_errf(err, "out of memory");
    if (!r) r = icl_afile_open(&f, csv, err);
    if (!r) r = icl_afile_printf(&f, err, "condition,layers,concept,shots,accuracy,td,td_layer,td_own_peak,own_peak\n");
    for (int c = 0; !r && c < N_COND; c++)
        for (int i = 0; !r && i < res[c].n; i++)
            r = icl_afile_printf(&f, err, "%s,%s,%s,%d,%.6f,%.6f,%d,%.6f,%d\n", cond_key[c],
                                 c == COND_FIRST ? layers[0] : c == COND_LAST ? layers[1] : "", res[c].names[i],
                                 res[c].shots, res[c].acc[i], res[c].td_at[i], res[COND_PT].peak, res[c].td_own[i],
                                 res[c].peak);
    if (!r) r = icl_afile_commit(&f, err);
    free(csv);
    free(res);
    return r ? -1 : icl_finetune_report(out, err);
}

/* ---------------------------------------------------------------- report */

static void mean_sd(const double *v, const int *use, int n, double *m, double *sd) {
    double s = 0, s2 = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (use[i] && isfinite(v[i])) s += v[i], k++;
    *m = k ? s / k : NAN;
    for (int i = 0; i < n; i++)
        if (use[i] && isfinite(v[i])) s2 += (v[i] - *m) * (v[i] - *m);
    *sd = k ? sqrt(s2 / k) : NAN; /* population std, as the paper's Table 1 */
}

int icl_finetune_report(const char *out, icl_err *err) {
    char *csv_path = join(out, "comparison.csv"), *fig_dir = join(out, "figures"), *html = join(out, "report.html");
    icl_csv t = {0};
    int r = !csv_path || !fig_dir || !html ? icl_errf(err, "out of memory") : 0;
    if (!r) r = icl_csv_read(&t, csv_path, err);
    if (!r) r = icl_mkdirs(fig_dir, err);
    int cc = r ? -1 : icl_csv_col(&t, "condition"), cl = r ? -1 : icl_csv_col(&t, "layers"),
        cn = r ? -1 : icl_csv_col(&t, "concept"), ca = r ? -1 : icl_csv_col(&t, "accuracy"),
        ct = r ? -1 : icl_csv_col(&t, "td"), cs = r ? -1 : icl_csv_col(&t, "shots"), cp = r ? -1 : icl_csv_col(&t, "td_layer");
    if (!r && (cc < 0 || cl < 0 || cn < 0 || ca < 0 || ct < 0 || cs < 0 || cp < 0))
        r = icl_errf(err, "%s lacks a column", csv_path);
    /* concepts (in the pretrained rows' order) x conditions */
    char names[64][32], arm_layers[N_COND][32] = {{0}};
    double acc[N_COND][64], td[N_COND][64];
    int nk = 0, shots = 0, td_layer = 0;
    for (int c = 0; c < N_COND; c++)
        for (int i = 0; i < 64; i++) acc[c][i] = td[c][i] = NAN;
    for (int i = 0; !r && i < t.n_rows; i++) {
        int c = 0;
        while (c < N_COND && strcmp(icl_csv_str(&t, i, cc), cond_key[c])) c++;
        if (c == N_COND) continue;
        const char *name = icl_csv_str(&t, i, cn);
        int k = 0;
        while (k < nk && strcmp(names[k], name)) k++;
        if (k == nk) {
            if (nk == 64) continue;
            snprintf(names[nk++], sizeof names[0], "%s", name);
        }
        acc[c][k] = icl_csv_num(&t, i, ca);
        td[c][k] = icl_csv_num(&t, i, ct);
        shots = (int)icl_csv_num(&t, i, cs);
        td_layer = (int)icl_csv_num(&t, i, cp);
        snprintf(arm_layers[c], sizeof arm_layers[0], "%s", icl_csv_str(&t, i, cl));
    }
    if (!r && !nk) r = icl_errf(err, "%s has no rows", csv_path);
    /* the task family: bitwise or pos when its concept names say so */
    int is_pos = 0, is_bit = 0, use[64];
    for (int k = 0; k < nk; k++) {
        use[k] = strcmp(names[k], "Null") != 0;
        if (!strcmp(names[k], "Noun")) is_pos = 1;
        if (!strcmp(names[k], "XNOR")) is_bit = 1;
    }
    const paper_t1 *p1 = is_pos ? &t1_pos : is_bit ? &t1_bitwise : NULL;
    icl_report *rep = r ? NULL : icl_report_new("iclab: LoRA finetuning of the first vs the last layers (paper §4.2)");
    const char *cond_name[N_COND] = {"Pretrained", "FT first", "FT last", "Prompting"};
    char label[N_COND][160];
    for (int c = 0; c < N_COND; c++)
        snprintf(label[c], sizeof label[0], "%s%s%s%s", cond_name[c], arm_layers[c][0] ? " (" : "", arm_layers[c],
                 arm_layers[c][0] ? ")" : "");
    if (rep) {
        icl_report_p(rep,
                     "Task decodability (TD) and ICL accuracy at %d shots, averaged over the task's concepts (Null left out), "
                     "for the pretrained model, LoRA adapters trained on the first and on the last layers, and the "
                     "prompting condition (the concept's instruction first). TD is measured at the pretrained model's peak "
                     "layer (hidden-state row %d) for every condition, as the paper reads TD at one layer. The paper's "
                     "values are Llama-3.1-8B with adapters on its first / last 10 of 32 layers (Table 1, Fig. 24).",
                     shots, td_layer);
        icl_report_h2(rep, "Table 1: average TD and accuracy");
        const char *head[5] = {"condition", "avg TD (ours)", "avg accuracy % (ours)", "avg TD (paper)",
                               "avg accuracy % (paper)"};
        char cell[N_COND][5][64];
        const char *row_label[N_COND];
        const char *cells[N_COND * 5];
        for (int c = 0; c < N_COND; c++) {
            double ma, sa, mt, st;
            mean_sd(acc[c], use, nk, &ma, &sa);
            mean_sd(td[c], use, nk, &mt, &st);
            row_label[c] = label[c];
            snprintf(cell[c][1], 64, "%.2f \u00b1 %.2f", mt, st);
            snprintf(cell[c][2], 64, "%.1f \u00b1 %.1f", 100 * ma, 100 * sa);
            if (p1) {
                snprintf(cell[c][3], 64, "%.2f \u00b1 %.2f", p1->td[c], p1->td_sd[c]);
                snprintf(cell[c][4], 64, "%.1f \u00b1 %.1f", p1->acc[c], p1->acc_sd[c]);
            } else {
                snprintf(cell[c][3], 64, "-");
                snprintf(cell[c][4], 64, "-");
            }
            for (int j = 0; j < 5; j++) cells[c * 5 + j] = j ? cell[c][j] : row_label[c];
        }
        icl_report_table(rep, 5, head, N_COND, cells);
        double mf, ml, sd;
        mean_sd(acc[COND_FIRST], use, nk, &mf, &sd);
        mean_sd(acc[COND_LAST], use, nk, &ml, &sd);
        icl_report_p(rep, "First minus last layers: %+.1f accuracy points here%s.", 100 * (mf - ml),
                     p1 ? (is_pos ? "; the paper: +35.5 (POS)" : "; the paper: +23.9 (bitwise)") : "");
        icl_report_h2(rep, "Per concept (Fig. 24)");
        const char *h2[9] = {"concept", "PT acc %", "FT last acc %", "FT first acc %", "prompting acc %",
                             "PT / last / first TD", "paper PT %", "paper FT last %", "paper FT first %"};
        char (*pc)[64] = calloc((size_t)nk * 9, 64);
        const char **pcells = calloc((size_t)nk * 9, sizeof *pcells);
        for (int k = 0; pc && pcells && k < nk; k++) {
            const paper_f24 *pf = f24_lookup(names[k]);
            snprintf(pc[k * 9], 64, "%s", names[k]);
            snprintf(pc[k * 9 + 1], 64, "%.0f", 100 * acc[COND_PT][k]);
            snprintf(pc[k * 9 + 2], 64, "%.0f", 100 * acc[COND_LAST][k]);
            snprintf(pc[k * 9 + 3], 64, "%.0f", 100 * acc[COND_FIRST][k]);
            snprintf(pc[k * 9 + 4], 64, "%.0f", 100 * acc[COND_PROMPT][k]);
            snprintf(pc[k * 9 + 5], 64, "%.2f / %.2f / %.2f", td[COND_PT][k], td[COND_LAST][k], td[COND_FIRST][k]);
            if (pf) {
                snprintf(pc[k * 9 + 6], 64, "%.1f", pf->pt);
                snprintf(pc[k * 9 + 7], 64, "%.1f", pf->last);
                snprintf(pc[k * 9 + 8], 64, "%.1f", pf->first);
            } else
                for (int j = 6; j < 9; j++) snprintf(pc[k * 9 + j], 64, "-");
            for (int j = 0; j < 9; j++) pcells[k * 9 + j] = pc[k * 9 + j];
        }
        if (pc && pcells) icl_report_table(rep, 9, h2, nk, pcells);
        free(pc);
        free(pcells);
        /* figures: accuracy and TD per concept, one bar per condition */
        const char *groups[64];
        for (int k = 0; k < nk; k++) groups[k] = names[k];
        for (int which = 0; which < 2; which++) {
            icl_fig *fig = icl_fig_bars(which ? "Task decodability per concept" : "ICL accuracy per concept", NULL,
                                        which ? "TD" : "accuracy", groups, nk);
            for (int c = 0; c < N_COND; c++) icl_fig_add_bars(fig, label[c], which ? td[c] : acc[c], NULL, nk);
            icl_fig_set_ylim(fig, 0, 1);
            char path[1100];
            snprintf(path, sizeof path, "%s/%s.png", fig_dir, which ? "finetune_td" : "finetune_accuracy");
            int bad = icl_fig_save(fig, path, 0, 0, err);
            snprintf(path, sizeof path, "%s/%s.svg", fig_dir, which ? "finetune_td" : "finetune_accuracy");
            if (!bad) bad = icl_fig_save(fig, path, 0, 0, err);
            if (!bad)
                bad = icl_report_figure(rep, fig,
                                        which ? "TD per concept at the pretrained model's peak layer, by condition."
                                              : "ICL accuracy per concept by condition (the paper's Fig. 24).",
                                        0, 0, err);
            icl_fig_free(fig);
            if (bad) r = -1;
        }
        icl_report_p(rep, "Data: comparison.csv; each condition's own evaluation folder (pretrained/, prompting/, "
                          "first-K/eval/, last-K/eval/) holds its full report, and first-K/ and last-K/ hold the adapters.");
    }
    if (!r) r = rep ? icl_report_write(rep, html, err) : icl_errf(err, "out of memory");
    icl_report_free(rep);
    icl_csv_free(&t);
    free(csv_path), free(fig_dir), free(html);
    return r;
}
