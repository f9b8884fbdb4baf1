/* The training loop of the toy ICL model and its held-out evaluation (see icl_train.h). */
#define _XOPEN_SOURCE 700
#include "iclab/icl_train.h"
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_ckpt.h"
#include "iclab/icl_dist.h"
#include "iclab/icl_estim.h"
#include "iclab/icl_file.h"
#include "iclab/icl_progress.h"

/* RNG streams derived from the seed: independent and fixed, whatever else the run does. */
enum { STREAM_INIT = 0, STREAM_HELDOUT = 1, STREAM_TRAIN = 2 };

int icl_ckpt_schedule(const icl_train_config *c, int64_t *steps, int cap) {
    int n = 0;
    int64_t total = c->steps;
    /* collect candidates, then sort and deduplicate */
    int64_t tmp[4096];
    int nt = 0;
    tmp[nt++] = 0;
    tmp[nt++] = total;
    for (int i = 0; i < c->ckpt_log && nt < 4000; i++) {
        double f = c->ckpt_log > 1 ? (double)i / (c->ckpt_log - 1) : 1.0;
        tmp[nt++] = (int64_t)llround(exp(f * log((double)total)));
    }
    if (c->ckpt_every > 0)
        for (int64_t s = c->ckpt_every; s < total && nt < 4090; s += c->ckpt_every) tmp[nt++] = s;
    for (int i = 1; i < nt; i++) /* insertion sort: nt is small */
        for (int j = i; j > 0 && tmp[j - 1] > tmp[j]; j--) {
            int64_t t = tmp[j];
            tmp[j] = tmp[j - 1];
            tmp[j - 1] = t;
        }
    for (int i = 0; i < nt; i++)
        if ((i == 0 || tmp[i] != tmp[i - 1]) && n < cap) steps[n++] = tmp[i];
    return n;
}

int icl_heldout_batch(const icl_train_config *c, icl_batch *b, icl_err *err) {
    if (icl_batch_alloc(b, c->eval_size, &c->task, err)) return -1;
    icl_rng rng;
    icl_rng_seed_stream(&rng, c->seed, STREAM_HELDOUT);
    if (icl_task_sample(&c->task, &rng, -1, b, err)) {
        icl_batch_free(b);
        return -1;
    }
    return 0;
}

/* Targets (B,T,1) with y_k at token 2k (the x token that predicts it) and the mask selecting them. */
static void make_targets(const icl_batch *b, int first, int count, float *targets, float *mask) {
    int K = b->K, T = 2 * K;
    for (int i = 0; i < count; i++)
        for (int t = 0; t < T; t++) {
            targets[(size_t)i * T + t] = t % 2 == 0 ? b->y[(size_t)(first + i) * K + t / 2] : 0.0f;
            mask[(size_t)i * T + t] = t % 2 == 0 ? 1.0f : 0.0f;
        }
}

/* Copies sequences [first, first+count) of src into the B = count batch dst (same K, D). */
static void batch_slice(const icl_batch *src, int first, int count, icl_batch *dst) {
    dst->B = count;
    dst->K = src->K;
    dst->D = src->D;
    dst->x = src->x + (size_t)first * src->K * src->D;
    dst->y = src->y + (size_t)first * src->K;
    dst->w = src->w + (size_t)first * src->D;
    dst->concept = src->concept + first;
}

static int eval_batch(icl_model *m, const icl_train_config *c, const icl_batch *hb, double *mse, double *mean, int *counts,
                      icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points, T = 2 * K, W = m->cfg.d_in;
    int chunk = c->batch;
    double scale = icl_task_y_scale(&c->task);
    float *tokens = malloc(sizeof(float) * (size_t)chunk * T * W);
    int *cnt = calloc(nc, sizeof(int));
    if (!tokens || !cnt) {
        free(tokens);
        free(cnt);
        return icl_errf(err, "out of memory in evaluation");
    }
    memset(mse, 0, sizeof(double) * nc * K);
    int rc = 0;
    for (int first = 0; first < hb->B && !rc; first += chunk) {
        int n = hb->B - first < chunk ? hb->B - first : chunk;
        icl_batch view;
        batch_slice(hb, first, n, &view);
        icl_batch_tokens(&view, W, tokens);
        rc = icl_model_forward(m, tokens, n, T, NULL, NULL, NULL, err);
        const float *out = m->a[ICL_A_OUT];
        for (int i = 0; i < n && !rc; i++) {
            int k = view.concept[i];
            cnt[k]++;
            for (int p = 0; p < K; p++) {
                double d = (double)out[(size_t)i * T + 2 * p] - view.y[(size_t)i * K + p];
                mse[(size_t)k * K + p] += d * d / scale;
            }
        }
    }
    for (int k = 0; k < nc; k++) {
        double s = 0;
        for (int p = 0; p < K; p++) {
            if (cnt[k]) mse[(size_t)k * K + p] /= cnt[k];
            s += mse[(size_t)k * K + p];
        }
        mean[k] = cnt[k] ? s / K : NAN;
        if (counts) counts[k] = cnt[k];
    }
    free(tokens);
    free(cnt);
    return rc;
}

int icl_eval_heldout(icl_model *m, const icl_train_config *c, double *mse, double *mean, int *counts, icl_err *err) {
    icl_batch hb;
    if (icl_heldout_batch(c, &hb, err)) return -1;
    int r = eval_batch(m, c, &hb, mse, mean, counts, err);
    icl_batch_free(&hb);
    return r;
}

/* ---------------------------------------------------------------- run folder */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

static int dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) return 1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) empty = 0;
    closedir(d);
    return empty;
}

static int prepare_new_dir(const char *dir, icl_run_mode mode, icl_err *err) {
    if (icl_path_exists(dir) && !dir_is_empty(dir)) {
        char cfg[4200];
        snprintf(cfg, sizeof cfg, "%s/config.json", dir);
        if (mode != ICL_RUN_OVERWRITE)
            return icl_errf(err, "run folder %s already exists (use --resume to continue it or --overwrite to replace it)", dir);
        if (!icl_path_exists(cfg)) return icl_errf(err, "refusing to overwrite %s: it is not an iclab run folder (no config.json)", dir);
        if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) return icl_errf(err, "cannot remove %s: %s", dir, strerror(errno));
    }
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoints", dir);
    return icl_mkdirs(ck, err);
}

/* Keeps the header and the complete rows whose first field (a step) is <= max_step. */
static int truncate_csv(const char *path, int64_t max_step, icl_err *err) {
    char *data;
    size_t n;
    if (!icl_path_exists(path)) return 0;
    if (icl_read_file(path, &data, &n, err)) return -1;
    char *out = malloc(n + 1);
    if (!out) {
        free(data);
        return icl_errf(err, "out of memory");
    }
    size_t o = 0;
    int line = 0;
    for (char *p = data; p < data + n;) {
        char *nl = memchr(p, '\n', (size_t)(data + n - p));
        if (!nl) break; /* an incomplete last row: dropped */
        size_t len = (size_t)(nl - p) + 1;
        if (line == 0 || strtoll(p, NULL, 10) <= max_step) {
            memcpy(out + o, p, len);
            o += len;
        }
        line++;
        p = nl + 1;
    }
    int r = icl_write_file_atomic(path, out, o, err);
    free(out);
    free(data);
    return r;
}

static FILE *open_csv(const char *dir, const char *name, const char *header, icl_err *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int exists = icl_path_exists(path);
    FILE *f = fopen(path, "a");
    if (!f) {
        icl_errf(err, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!exists) fprintf(f, "%s\n", header);
    return f;
}

static int write_estimators(const char *dir, const icl_train_config *c, const icl_batch *hb, icl_err *err) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points, B = hb->B;
    double scale = icl_task_y_scale(&c->task);
    static const icl_estimator ests[] = {ICL_EST_ORACLE_LS, ICL_EST_LS, ICL_EST_RIDGE, ICL_EST_LASSO, ICL_EST_ZERO};
    float *pred = malloc(sizeof(float) * (size_t)B * K);
    double *sum = malloc(sizeof(double) * (size_t)(nc + 1) * K);
    int *cnt = malloc(sizeof(int) * (nc + 1));
    char path[4200];
    snprintf(path, sizeof path, "%s/estimators.csv", dir);
    icl_afile af;
    if (!pred || !sum || !cnt || icl_afile_open(&af, path, err)) {
        free(pred); free(sum); free(cnt);
        return pred && sum && cnt ? -1 : icl_errf(err, "out of memory");
    }
    icl_afile_printf(&af, err, "estimator,concept,position,mse\n");
    int r = 0;
    for (size_t e = 0; e < sizeof ests / sizeof ests[0] && !r; e++) {
        r = icl_estimate(&c->task, hb, ests[e], icl_estimator_default_param(ests[e]), pred, err);
        if (r) break;
        memset(sum, 0, sizeof(double) * (size_t)(nc + 1) * K);
        memset(cnt, 0, sizeof(int) * (nc + 1));
        for (int b = 0; b < B; b++) {
            int k = hb->concept[b];
            cnt[k]++;
            cnt[nc]++;
            for (int p = 0; p < K; p++) {
                double d = (double)pred[(size_t)b * K + p] - hb->y[(size_t)b * K + p];
                sum[(size_t)k * K + p] += d * d / scale;
                sum[(size_t)nc * K + p] += d * d / scale;
            }
        }
        for (int k = 0; k <= nc; k++)
            for (int p = 0; p < K; p++)
                icl_afile_printf(&af, err, "%s,%d,%d,%.6g\n", icl_estimator_name(ests[e]), k == nc ? -1 : k, p,
                                 cnt[k] ? sum[(size_t)k * K + p] / cnt[k] : NAN);
    }
    free(pred); free(sum); free(cnt);
    if (r) {
        icl_afile_abort(&af);
        return -1;
    }
    return icl_afile_commit(&af, err);
}

/* ---------------------------------------------------------------- the loop */

int icl_train_sample(const icl_train_config *c, int64_t step, icl_rng *rng, icl_batch *b, icl_err *err) {
    if (step >= c->dense_steps) return icl_task_sample(&c->task, rng, -1, b, err);
    if (c->task.kind == ICL_TASK_FAMILIES) {
        if (icl_task_sample(&c->task, rng, c->curriculum == ICL_CURRICULUM_FAMILIES ? -1 : ICL_FAMILY_LINEAR, b, err)) return -1;
    } else {
        icl_task_config cur = c->task;
        if (c->curriculum == ICL_CURRICULUM_FAMILIES) {
            cur.kind = ICL_TASK_FAMILIES;
            cur.sparse_k = c->task.rank;
        } else {
            cur.n_bases = 1;
            cur.rank = cur.dim;
            cur.groups = 0;
        }
        if (icl_task_sample(&cur, rng, -1, b, err)) return -1;
        float s = (float)sqrt((double)c->task.rank / c->task.dim); /* the families' and dense E[y^2] is D, the task's rank */
        for (size_t i = 0; i < (size_t)b->B * b->K; i++) b->y[i] *= s;
        for (size_t i = 0; i < (size_t)b->B * b->D; i++) b->w[i] *= s;
    }
    memset(b->concept, 0, (size_t)b->B * sizeof(int));
    return 0;
}

static volatile sig_atomic_t stop_requested = 0;
static int last_interrupted = 0, last_failed_alone = 0;
static void on_signal(int sig) {
    (void)sig;
    stop_requested = 1;
}

int icl_train_interrupted(void) { return last_interrupted; }
int icl_train_failed_alone(void) { return last_failed_alone; }

/* ---------------------------------------------------------------- data parallel
 * RUN/data_parallel.json records the rank count of a run trained on more than one rank, so that it
 * is resumed on the same count (another count sums the gradients in another order: a different,
 * not a wrong, continuation). No file = 1 rank. */
static int dp_file_ranks(const char *run_dir, int *ranks, icl_err *err) {
    char path[4200], *text;
    size_t n;
    snprintf(path, sizeof path, "%s/data_parallel.json", run_dir);
    *ranks = 1;
    if (!icl_path_exists(path)) return 0;
    if (icl_read_file(path, &text, &n, err)) return -1;
    const char *k = strstr(text, "\"ranks\":");
    *ranks = k ? atoi(k + 8) : 0;
    free(text);
    if (*ranks < 1) return icl_errf(err, "%s is malformed (no \"ranks\": N)", path);
    return 0;
}

/* icl_dist_agree among the ranks of a data-parallel run; alone, just rc. */
static int dp_agree(int nranks, int rc, icl_err *err) { return nranks > 1 ? icl_dist_agree(rc, err) : rc ? -1 : 0; }

static int dp_file_write(const char *run_dir, int ranks, int batch, icl_err *err) {
    char path[4200], text[128];
    snprintf(path, sizeof path, "%s/data_parallel.json", run_dir);
    int n = snprintf(text, sizeof text, "{\"ranks\": %d, \"batch_per_rank\": %d}\n", ranks, batch / ranks);
    return icl_write_file_atomic(path, text, (size_t)n, err);
}

static float lr_at(const icl_train_config *c, int64_t step) {
    if (step < c->warmup) return c->lr * (float)(step + 1) / (float)c->warmup;
    if (c->schedule == ICL_LR_COSINE) {
        double f = (double)(step - c->warmup) / (double)(c->steps - c->warmup > 0 ? c->steps - c->warmup : 1);
        return (float)(c->lr_min + 0.5 * (c->lr - c->lr_min) * (1.0 + cos(M_PI * f)));
    }
    return c->lr;
}

static int log_eval(FILE *fe, FILE *fp, const icl_train_config *c, int64_t step, const double *mse, const double *mean,
                    const int *counts, double *all_out) {
    int nc = icl_task_n_concepts(&c->task), K = c->task.n_points;
    double all = 0;
    int total = 0;
    for (int k = 0; k < nc; k++) {
        char name[64];
        icl_task_concept_name(&c->task, k, name, sizeof name);
        fprintf(fe, "%" PRId64 ",%d,%s,%.6g\n", step, k, name, mean[k]);
        for (int p = 0; p < K; p++) fprintf(fp, "%" PRId64 ",%d,%d,%.6g\n", step, k, p, mse[(size_t)k * K + p]);
        if (counts[k]) {
            all += mean[k] * counts[k];
            total += counts[k];
        }
    }
    all = total ? all / total : NAN;
    fprintf(fe, "%" PRId64 ",-1,all,%.6g\n", step, all);
    fflush(fe);
    fflush(fp);
    *all_out = all;
    return ferror(fe) || ferror(fp) ? -1 : 0;
}

int icl_train(const char *run_dir, const icl_train_config *cfg_in, const icl_train_options *opt, icl_err *err) {
    icl_train_config c = *cfg_in;
    icl_model m;
    icl_ckpt_state st;
    memset(&m, 0, sizeof m);
    int64_t ck_steps[4096];
    char path[4200];
    /* Data parallel (icl_dist.h): every rank draws the same global batch from the same RNG stream and
     * trains on its own slice of it; the gradients are summed over ranks. Only rank 0 writes files. */
    const int rank = opt->local ? 0 : icl_dist_rank(), nranks = opt->local ? 1 : icl_dist_size(), writer = rank == 0;
    FILE *progress = writer ? opt->progress : NULL;
    last_interrupted = last_failed_alone = 0;

    /* Under data parallel every early return below goes through one dp_agree, so a failure on one
     * rank (rank 0's file writes above all) never leaves the others waiting. */
    if (opt->mode == ICL_RUN_RESUME) {
        int64_t latest;
        int lrc = 0;
        if (!icl_path_exists(run_dir)) lrc = icl_errf(err, "cannot resume: run folder %s does not exist", run_dir);
        else if (icl_ckpt_latest(run_dir, path, sizeof path, &latest, err)) lrc = icl_err_prefix(err, "cannot resume: ");
        else if (icl_ckpt_load(path, &m, &c, &st, err)) lrc = -1;
        else {
            int was;
            if (dp_file_ranks(run_dir, &was, err)) lrc = -1;
            else if (was != nranks)
                lrc = icl_errf(err, "run %s was trained on %d rank%s; resume it on the same number (%s)", run_dir, was,
                               was == 1 ? "" : "s", was == 1 ? "without mpirun" : "mpirun -np N");
            else {
                if (cfg_in->steps > c.steps) c.steps = cfg_in->steps; /* resuming may extend a run */
                if (st.step >= c.steps)
                    lrc = icl_errf(err, "run %s is already complete (%" PRId64 " steps); pass --steps to extend it", run_dir, st.step);
            }
        }
        static const char *csvs[] = {"train.csv", "eval.csv", "eval_positions.csv"};
        for (int i = 0; i < 3 && writer && !lrc; i++) {
            snprintf(path, sizeof path, "%s/%s", run_dir, csvs[i]);
            lrc = truncate_csv(path, st.step, err);
        }
        if (dp_agree(nranks, lrc, err)) {
            icl_model_free(&m);
            return -1;
        }
    } else {
        if (icl_train_config_validate(&c, err)) return -1;
        if (c.batch % nranks)
            return icl_errf(err, "the batch of %d sequences cannot be split evenly over %d ranks; use a rank count that divides it", c.batch, nranks);
        icl_model_config mc;
        icl_train_model_config(&c, &mc);
        int prc = icl_model_init(&m, &mc, err);
        if (!prc && writer) prc = prepare_new_dir(run_dir, opt->mode, err);
        if (!prc && writer && nranks > 1) prc = dp_file_write(run_dir, nranks, c.batch, err);
        if (dp_agree(nranks, prc, err)) {
            icl_model_free(&m);
            return -1;
        }
        icl_rng init;
        icl_rng_seed_stream(&init, c.seed, STREAM_INIT);
        icl_model_init_weights(&m, &init);
        st.step = 0;
        icl_rng_seed_stream(&st.rng, c.seed, STREAM_TRAIN);
    }
    snprintf(path, sizeof path, "%s/config.json", run_dir);
    if (dp_agree(nranks, writer ? icl_train_config_write_json(&c, path, err) : 0, err)) {
        icl_model_free(&m);
        return -1;
    }
    if (c.bf16 && icl_model_set_bf16(&m, 1, err)) { /* a resumed run keeps its checkpoint's setting */
        icl_model_free(&m);
        return -1;
    }
    omp_set_num_threads(c.threads);

    int K = c.task.n_points, T = 2 * K, W = m.cfg.d_in, B = c.batch, nc = icl_task_n_concepts(&c.task);
    int Bl = B / nranks, first = rank * Bl; /* this rank's slice of the global batch */
    int n_ck = icl_ckpt_schedule(&c, ck_steps, 4096), ck_i = 0;
    while (ck_i < n_ck && ck_steps[ck_i] <= st.step) ck_i++;
    icl_batch batch = {0}, heldout = {0};
    float *tokens = malloc(sizeof(float) * (size_t)B * T * W), *targets = malloc(sizeof(float) * (size_t)B * T);
    float *mask = malloc(sizeof(float) * (size_t)B * T);
    double *mse = malloc(sizeof(double) * (size_t)nc * K), *mean = malloc(sizeof(double) * nc);
    int *counts = malloc(sizeof(int) * nc);
    FILE *ftrain = NULL, *feval = NULL, *fpos = NULL;
    int rc = -1, setup = 0;
    double y_scale = icl_task_y_scale(&c.task), last_eval = NAN;
    /* The set-up, whose failures on rank 0 alone the other ranks learn of through icl_dist_agree. */
    if (!tokens || !targets || !mask || !mse || !mean || !counts) setup = icl_errf(err, "out of memory");
    if (!setup && (icl_batch_alloc(&batch, B, &c.task, err) || icl_heldout_batch(&c, &heldout, err))) setup = -1;
    if (!setup && writer && opt->mode != ICL_RUN_RESUME) {
        if (progress) fprintf(progress, "reference estimators on %d held-out sequences...\n", c.eval_size);
        setup = write_estimators(run_dir, &c, &heldout, err);
    }
    if (!setup && writer) {
        ftrain = open_csv(run_dir, "train.csv", "step,loss,loss_norm,lr,grad_norm,elapsed_s", err);
        feval = ftrain ? open_csv(run_dir, "eval.csv", "step,concept,name,mse", err) : NULL;
        fpos = feval ? open_csv(run_dir, "eval_positions.csv", "step,concept,position,mse", err) : NULL;
        if (!fpos) setup = -1;
    }
    if (!setup && st.step == 0 && writer) {
        if (eval_batch(&m, &c, &heldout, mse, mean, counts, err) ||
            log_eval(feval, fpos, &c, 0, mse, mean, counts, &last_eval))
            setup = -1;
        icl_ckpt_path(run_dir, 0, path, sizeof path);
        if (!setup && icl_ckpt_save(path, &m, &c, &st, err)) setup = -1;
    }
    if (dp_agree(nranks, setup, err)) goto done;

    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    stop_requested = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);

    icl_adam_config ac = {c.lr, c.beta1, c.beta2, c.eps, c.weight_decay};
    icl_progress prog;
    icl_progress_init(&prog, progress, "train", st.step, c.steps);
    double t0 = icl_now(), loss_avg = NAN;
    int64_t stop_at = opt->stop_after > 0 && opt->stop_after < c.steps ? opt->stop_after : c.steps;
    rc = 0;
    int stop_now = 0; /* this step ends the run on a signal (agreed among the ranks) */
    for (int64_t step = st.step; step < stop_at && !rc; step++) {
        float lr = lr_at(&c, step), loss;
        if ((rc = icl_train_sample(&c, step, &st.rng, &batch, err))) break;
        icl_batch mine;
        batch_slice(&batch, first, Bl, &mine);
        icl_batch_tokens(&mine, W, tokens);
        make_targets(&batch, first, Bl, targets, mask);
        icl_model_zero_grad(&m);
        if ((rc = icl_model_forward(&m, tokens, Bl, T, targets, mask, &loss, err))) break;
        if ((rc = icl_model_backward(&m, err))) break;
        if (nranks > 1) {
            /* Each slice's loss is the mean over its Bl sequences (all with K targets), so the global
             * mean and its gradient are the averages over ranks: sum, then scale by 1/N. The stop
             * flag travels along so that every rank stops after the same step; it is taken (and
             * cleared) here, so a signal arriving later counts at the next step instead of being lost. */
            int mine = stop_requested;
            stop_requested = 0;
            double ctl[2] = {loss, mine ? 1.0 : 0.0};
            if ((rc = icl_dist_sum_f32(m.grads, m.n_params, err)) || (rc = icl_dist_sum_f64(ctl, 2, err))) break;
            icl_grad_scale(&m, 1.0f / (float)nranks);
            loss = (float)(ctl[0] / nranks);
            stop_now = ctl[1] > 0;
        }
        double gnorm = icl_grad_norm(&m);
        if (!isfinite(loss) || !isfinite(gnorm)) {
            rc = icl_errf(err, "training diverged at step %" PRId64 " (loss %g); try a lower --lr or --grad-clip", step, loss);
            break;
        }
        if (c.grad_clip > 0 && gnorm > c.grad_clip) icl_grad_scale(&m, (float)(c.grad_clip / gnorm));
        icl_adam_step(&m, &ac, lr);
        st.step = step + 1;
        loss_avg = isnan(loss_avg) ? loss : 0.98 * loss_avg + 0.02 * loss;
        if (nranks == 1) stop_now = stop_requested;
        if (!writer) { /* no metrics, checkpoints or progress: those are rank 0's */
            if (stop_now) break;
            continue;
        }
        if (st.step % c.log_every == 0)
            fprintf(ftrain, "%" PRId64 ",%.6g,%.6g,%.6g,%.6g,%.3f\n", st.step, loss, loss / y_scale, lr, gnorm, icl_now() - t0);
        int ck_due = ck_i < n_ck && ck_steps[ck_i] == st.step;
        int stopping = stop_now || st.step == stop_at;
        if (st.step % c.eval_every == 0 || ck_due || st.step == c.steps) {
            if ((rc = eval_batch(&m, &c, &heldout, mse, mean, counts, err))) break;
            if ((rc = log_eval(feval, fpos, &c, st.step, mse, mean, counts, &last_eval))) {
                icl_errf(err, "writing metrics in %s failed", run_dir);
                break;
            }
            fflush(ftrain);
        }
        if (ck_due || stopping) {
            if (ck_due) ck_i++;
            icl_ckpt_path(run_dir, st.step, path, sizeof path);
            if ((rc = icl_ckpt_save(path, &m, &c, &st, err))) break;
        }
        char status[96];
        snprintf(status, sizeof status, "loss %.4f test %.4f", loss_avg / y_scale, last_eval);
        icl_progress_update(&prog, st.step, status);
        if (stop_now) {
            if (progress) fprintf(progress, "\nstopped at step %" PRId64 "; continue with --resume\n", st.step);
            break;
        }
    }
    if (!rc) {
        char status[96];
        snprintf(status, sizeof status, "loss %.4f test %.4f", loss_avg / y_scale, last_eval);
        icl_progress_finish(&prog, st.step, status);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    /* a failure inside the loop may be this rank's alone while the others wait in a collective call */
    if (rc && nranks > 1) last_failed_alone = 1;
    if (!rc && stop_now) last_interrupted = 1;
    if (!rc && stop_now) rc = icl_errf(err, "interrupted at step %" PRId64 " (checkpoint saved)", st.step);
done:
    if (ftrain && fclose(ftrain) && !rc) rc = icl_errf(err, "writing %s/train.csv failed", run_dir);
    if (feval && fclose(feval) && !rc) rc = icl_errf(err, "writing %s/eval.csv failed", run_dir);
    if (fpos && fclose(fpos) && !rc) rc = icl_errf(err, "writing %s/eval_positions.csv failed", run_dir);
    icl_batch_free(&batch);
    icl_batch_free(&heldout);
    free(tokens); free(targets); free(mask); free(mse); free(mean); free(counts);
    icl_model_free(&m);
    /* The other ranks wait until rank 0 has closed its files: a rank that exits first (after a stop,
     * with a non-zero status) makes mpirun end the job, which could cut rank 0's last CSV rows. */
    if (nranks > 1 && !last_failed_alone) {
        icl_err e2;
        icl_dist_barrier(&e2);
    }
    return rc;
}
