/* Concept decodability over checkpoints and layers (see icl_decode.h). */
#include "iclab/icl_decode.h"
#include <dirent.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_ckpt.h"
#include "iclab/icl_file.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_pca.h"
#include "iclab/icl_probe.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_umap.h"

enum { STREAM_PROBE = 3 }; /* after the training streams (init 0, held-out 1, train 2) */

void icl_decode_config_default(icl_decode_config *d) {
    d->per_concept = 100;
    d->demo = 0;
    d->k = 10;
    d->metric = ICL_METRIC_EUCLIDEAN;
    d->save_reps = 1;
    d->probe = 1;
    d->n_embed = 3;
    d->at[0] = 0;
    snprintf(d->table, sizeof d->table, "td");
}

int icl_probe_per_class(const float *X, const int *labels, int N, int d, int nc, uint64_t seed, double *acc, icl_err *err) {
    unsigned char *is_test = malloc(N);
    float *Xtr = malloc(sizeof(float) * (size_t)N * d);
    int *ytr = malloc(sizeof(int) * N), *pred = malloc(sizeof(int) * N), ntr = 0;
    int r = (!is_test || !Xtr || !ytr || !pred) ? icl_errf(err, "out of memory") : 0;
    if (!r) r = icl_stratified_split(labels, N, nc, 0.5, seed, is_test, err);
    icl_logreg lr;
    memset(&lr, 0, sizeof lr);
    if (!r) {
        for (int i = 0; i < N; i++)
            if (!is_test[i]) {
                memcpy(Xtr + (size_t)ntr * d, X + (size_t)i * d, sizeof(float) * d);
                ytr[ntr++] = labels[i];
            }
        icl_logreg_opts o;
        icl_logreg_opts_default(&o);
        o.standardize = 1;
        r = icl_logreg_fit(Xtr, ytr, ntr, d, nc, &o, &lr, err) || icl_logreg_predict(&lr, X, N, d, pred, err);
    }
    if (!r) {
        int right_all = 0, n_all = 0;
        for (int k = 0; k < nc; k++) {
            int right = 0, n = 0;
            for (int i = 0; i < N; i++)
                if (is_test[i] && labels[i] == k) {
                    n++;
                    right += pred[i] == k;
                }
            acc[k] = n ? (double)right / n : NAN;
            right_all += right;
            n_all += n;
        }
        acc[nc] = n_all ? (double)right_all / n_all : NAN;
    }
    icl_logreg_free(&lr);
    free(is_test);
    free(Xtr);
    free(ytr);
    free(pred);
    return r;
}

/* 2-D PCA and UMAP embeddings of every layer's points, saved as (L+1, N, 2) arrays. */
static int embed_layers(const char *dir, int64_t step, const float *reps, int L1, int N, int d, uint64_t seed, icl_err *err) {
    float *pca = malloc(sizeof(float) * (size_t)L1 * N * 2), *um = malloc(sizeof(float) * (size_t)L1 * N * 2);
    double *proj = malloc(sizeof(double) * (size_t)N * 2);
    int r = (!pca || !um || !proj) ? icl_errf(err, "out of memory") : 0;
    for (int l = 0; l < L1 && !r; l++) {
        const float *X = reps + (size_t)l * N * d;
        icl_pca p;
        memset(&p, 0, sizeof p);
        r = icl_pca_fit(X, N, d, 2, &p, proj, err);
        icl_pca_free(&p);
        for (int i = 0; i < N * 2 && !r; i++) pca[(size_t)l * N * 2 + i] = (float)proj[i];
        if (r) break;
        icl_umap_opts o;
        icl_umap_opts_default(&o);
        o.seed = seed;
        r = icl_umap(X, N, d, &o, um + (size_t)l * N * 2, err);
        if (r) icl_err_prefix(err, "UMAP of layer %d: ", l);
    }
    char path[4400];
    int64_t shape[3] = {L1, N, 2};
    snprintf(path, sizeof path, "%s/pca_step_%09" PRId64 ".npy", dir, step);
    if (!r) r = icl_npy_write_f32(path, pca, 3, shape, err);
    snprintf(path, sizeof path, "%s/umap_step_%09" PRId64 ".npy", dir, step);
    if (!r) r = icl_npy_write_f32(path, um, 3, shape, err);
    free(pca);
    free(um);
    free(proj);
    return r;
}

/* Which of the n decoded steps get embeddings: n_embed of them, log-spaced from 2% of training (or
 * the first non-zero step, if later) to the last (the paper's Fig. 11 shows epochs 5, 20 and 100
 * of about 300). */
static void pick_embed_steps(const int64_t *steps, int n, int n_embed, unsigned char *pick) {
    memset(pick, 0, n);
    int first = 0;
    while (first < n && steps[first] <= 0) first++;
    if (first >= n || n_embed < 1) return;
    double lo = log(fmax((double)steps[first], steps[n - 1] / 50.0)), hi = log((double)steps[n - 1]);
    for (int j = 0; j < n_embed; j++) {
        double target = n_embed > 1 ? lo + (hi - lo) * j / (n_embed - 1) : hi;
        int best = first;
        for (int i = first; i < n; i++)
            if (fabs(log((double)steps[i]) - target) < fabs(log((double)steps[best]) - target)) best = i;
        pick[best] = 1;
    }
}

int icl_probe_batch(const icl_train_config *c, int per_concept, icl_batch *b, icl_err *err) {
    int nc = icl_task_n_concepts(&c->task);
    if (per_concept < 1) return icl_errf(err, "need at least one probe sequence per concept");
    icl_batch one;
    if (icl_batch_alloc(b, nc * per_concept, &c->task, err)) return -1;
    if (icl_batch_alloc(&one, 1, &c->task, err)) {
        icl_batch_free(b);
        return -1;
    }
    icl_rng rng;
    icl_rng_seed_stream(&rng, c->seed, STREAM_PROBE);
    int K = c->task.n_points, D = c->task.dim;
    for (int k = 0; k < nc; k++)
        for (int i = 0; i < per_concept; i++) {
            if (icl_task_sample(&c->task, &rng, k, &one, err)) {
                icl_batch_free(&one);
                icl_batch_free(b);
                return -1;
            }
            size_t s = (size_t)k * per_concept + i;
            memcpy(b->x + s * K * D, one.x, sizeof(float) * K * D);
            memcpy(b->y + s * K, one.y, sizeof(float) * K);
            memcpy(b->w + s * D, one.w, sizeof(float) * D);
            b->concept[s] = k;
        }
    icl_batch_free(&one);
    return 0;
}

int icl_token_positions(const char *spec, int K, int *pos, int cap, icl_err *err) {
    int T = 2 * K, n = 0, k;
    char kind, tail;
    if (!strcmp(spec, "all") || !strcmp(spec, "x") || !strcmp(spec, "y")) {
        int first = spec[0] == 'y' ? 1 : 0, step = spec[0] == 'a' ? 1 : 2;
        for (int t = first; t < T; t += step) {
            if (n == cap) return icl_errf(err, "too many positions for '%s'", spec);
            pos[n++] = t;
        }
        return n;
    }
    if (cap < 1) return icl_errf(err, "no room for positions");
    if (!strcmp(spec, "last")) {
        pos[0] = T - 1;
        return 1;
    }
    if (sscanf(spec, "%c:%d%c", &kind, &k, &tail) == 2 && (kind == 'x' || kind == 'y')) {
        if (k < 1 || k > K) return icl_errf(err, "demonstration %d is out of range 1..%d in '%s'", k, K, spec);
        pos[0] = 2 * (k - 1) + (kind == 'y');
        return 1;
    }
    return icl_errf(err, "unknown position '%s' (all, last, x, y, x:K or y:K)", spec);
}

int icl_decode_position(const icl_train_config *c, int demo) {
    int K = c->task.n_points;
    if (demo == 0) demo = K;
    if (demo < 1 || demo > K) return -1;
    return 2 * (demo - 1) + 1;
}

int icl_capture_layers(icl_model *m, const icl_batch *b, int pos, int chunk, float *reps, icl_err *err) {
    int L = m->cfg.n_layer, C = m->cfg.n_embd, K = b->K, D = b->D, T = 2 * K, N = b->B, W = m->cfg.d_in;
    if (pos < 0 || pos >= T) return icl_errf(err, "position %d is outside the sequence (0..%d)", pos, T - 1);
    if (chunk < 1) chunk = 1;
    icl_hook *hooks = malloc(sizeof(icl_hook) * (L + 1));
    float *tokens = malloc(sizeof(float) * (size_t)chunk * T * W);
    float *cap = malloc(sizeof(float) * (size_t)(L + 1) * chunk * C);
    int r = 0;
    if (!hooks || !tokens || !cap) r = icl_errf(err, "out of memory capturing representations");
    for (int first = 0; first < N && !r; first += chunk) {
        int n = N - first < chunk ? N - first : chunk;
        for (int l = 0; l <= L; l++)
            hooks[l] = (icl_hook){.site = l == 0 ? ICL_SITE_RESID_PRE : ICL_SITE_RESID_POST, .layer = l == 0 ? 0 : l - 1,
                                  .positions = &pos, .n_positions = 1, .action = ICL_HOOK_CAPTURE,
                                  .out = cap + (size_t)l * chunk * C};
        icl_batch view = {.B = n, .K = K, .D = D, .x = b->x + (size_t)first * K * D, .y = b->y + (size_t)first * K};
        icl_batch_tokens(&view, W, tokens);
        r = icl_model_set_hooks(m, hooks, L + 1, err) || icl_model_forward(m, tokens, n, T, NULL, NULL, NULL, err);
        for (int l = 0; l <= L && !r; l++)
            memcpy(reps + ((size_t)l * N + first) * C, cap + (size_t)l * chunk * C, sizeof(float) * (size_t)n * C);
    }
    icl_model_set_hooks(m, NULL, 0, NULL);
    free(hooks);
    free(tokens);
    free(cap);
    return r ? -1 : 0;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* All checkpoint steps of a run, sorted. */
static int list_steps(const char *run_dir, int64_t **steps, int *n, icl_err *err) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/checkpoints", run_dir);
    DIR *d = opendir(dir);
    if (!d) return icl_errf(err, "%s has no checkpoints folder (is it an iclab run?)", run_dir);
    int cap = 64, cnt = 0;
    int64_t *s = malloc(sizeof(int64_t) * cap);
    struct dirent *e;
    while (s && (e = readdir(d))) {
        long long v;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.%7s", &v, tail) != 2 || strcmp(tail, "gguf")) continue;
        if (cnt == cap) {
            int64_t *ns = realloc(s, sizeof(int64_t) * (cap *= 2));
            if (!ns) {
                free(s);
                s = NULL;
                break;
            }
            s = ns;
        }
        s[cnt++] = v;
    }
    closedir(d);
    if (!s) return icl_errf(err, "out of memory listing checkpoints");
    if (cnt == 0) {
        free(s);
        return icl_errf(err, "%s has no checkpoints", run_dir);
    }
    qsort(s, cnt, sizeof(int64_t), cmp_i64);
    *steps = s;
    *n = cnt;
    return 0;
}

int icl_decode_run(const char *run_dir, const icl_decode_config *dc, const int64_t *want, int n_want, FILE *progress,
                   icl_err *err) {
    /* a file name inside decode/, never a path */
    int table_ok = dc->table[0] != 0;
    for (const char *t = dc->table; *t; t++) table_ok &= isalnum((unsigned char)*t) || *t == '_' || *t == '-';
    if (!table_ok) return icl_errf(err, "the TD table's name '%s' must be letters, digits, '_' or '-'", dc->table);
    int64_t *all = NULL;
    int n_all = 0;
    if (list_steps(run_dir, &all, &n_all, err)) return -1;
    /* the steps to decode: every checkpoint, or the requested ones (each must exist) */
    int64_t *steps = malloc(sizeof(int64_t) * (want ? n_want : n_all));
    int n_steps = 0;
    for (int i = 0; i < (want ? n_want : n_all); i++) {
        int64_t s = want ? want[i] : all[i];
        int found = 0;
        for (int j = 0; j < n_all; j++) found |= all[j] == s;
        if (!found) {
            free(all);
            free(steps);
            return icl_errf(err, "%s has no checkpoint at step %" PRId64, run_dir, s);
        }
        steps[n_steps++] = s;
    }
    free(all);
    char path[4400], dir[4200];
    icl_ckpt_path(run_dir, steps[0], path, sizeof path);
    icl_train_config c;
    int64_t st;
    if (icl_ckpt_peek(path, &c, &st, err)) {
        free(steps);
        return -1;
    }
    int nc = icl_task_n_concepts(&c.task), N = nc * dc->per_concept, L = c.n_layer, C = c.n_embd;
    int pos = icl_decode_position(&c, dc->demo);
    if (dc->at[0]) {
        int ps[2] = {0, 0};
        int np = icl_token_positions(dc->at, c.task.n_points, ps, 2, err);
        if (np != 1) {
            free(steps);
            return np < 0 ? -1 : icl_errf(err, "--at '%s' names %d positions; decode reads one", dc->at, np);
        }
        pos = ps[0];
    } else if (pos < 0) {
        free(steps);
        return icl_errf(err, "demonstration %d is out of range 1..%d", dc->demo, c.task.n_points);
    }
    /* every row names the token it was read at, so a report can say which (the default is the
     * y-token of the last demonstration, the paper's choice) */
    char token[40];
    if (dc->at[0]) snprintf(token, sizeof token, "%s", dc->at);
    else snprintf(token, sizeof token, "y:%d", dc->demo > 0 ? dc->demo : c.task.n_points);
    if (nc < 2) {
        free(steps);
        return icl_errf(err, "decodability needs at least two concepts (the run has %d)", nc);
    }
    if (N < dc->k + 1) {
        free(steps);
        return icl_errf(err, "the probe set (%d points) must be larger than k = %d", N, dc->k);
    }
    snprintf(dir, sizeof dir, "%s/decode", run_dir);
    icl_batch probe = {0};
    float *reps = malloc(sizeof(float) * (size_t)(L + 1) * N * C);
    double *overall = malloc(sizeof(double) * (L + 1)), *per = malloc(sizeof(double) * (size_t)(L + 1) * nc);
    int *labels = NULL;
    icl_afile af;
    int r = icl_mkdirs(dir, err) || icl_probe_batch(&c, dc->per_concept, &probe, err);
    if (!r && (!reps || !overall || !per)) r = icl_errf(err, "out of memory");
    if (!r) {
        labels = probe.concept;
        int64_t shape[1] = {N};
        snprintf(path, sizeof path, "%s/labels.npy", dir);
        r = icl_npy_write_i32(path, labels, 1, shape, err);
    }
    snprintf(path, sizeof path, "%s/%s.csv", dir, dc->table);
    if (!r) r = icl_afile_open(&af, path, err);
    if (r) goto done;
    icl_afile_printf(&af, err, "step,layer,concept,name,td,chance,probe_acc,token\n");
    icl_afile jl;
    snprintf(path, sizeof path, "%s/%s.jsonl", dir, dc->table);
    if (icl_afile_open(&jl, path, err)) {
        icl_afile_abort(&af);
        r = -1;
        goto done;
    }
    unsigned char *embed = malloc(n_steps);
    double *pacc = malloc(sizeof(double) * (size_t)(L + 1) * (nc + 1));
    if (!embed || !pacc) r = icl_errf(err, "out of memory");
    else pick_embed_steps(steps, n_steps, dc->n_embed, embed);
    icl_progress prog;
    icl_progress_init(&prog, progress, "decode", 0, n_steps);
    for (int i = 0; i < n_steps && !r; i++) {
        icl_model m;
        icl_train_config ck;
        icl_ckpt_state cs;
        icl_ckpt_path(run_dir, steps[i], path, sizeof path);
        if ((r = icl_ckpt_load(path, &m, &ck, &cs, err))) break;
        if (ck.n_layer != L || ck.n_embd != C || icl_task_n_concepts(&ck.task) != nc) {
            icl_model_free(&m);
            r = icl_errf(err, "%s does not match the run's other checkpoints", path);
            break;
        }
        r = icl_capture_layers(&m, &probe, pos, c.batch, reps, err);
        icl_model_free(&m);
        icl_td_stats stats;
        if (!r) r = icl_td_layers(reps, L + 1, labels, N, C, nc, dc->k, dc->metric, overall, per, NULL, &stats, err);
        for (int l = 0; l <= L && !r; l++) {
            double *acc = pacc + (size_t)l * (nc + 1);
            for (int k = 0; k <= nc; k++) acc[k] = NAN;
            if (dc->probe) r = icl_probe_per_class(reps + (size_t)l * N * C, labels, N, C, nc, c.seed, acc, err);
        }
        for (int l = 0; l <= L && !r; l++) {
            const double *acc = pacc + (size_t)l * (nc + 1);
            for (int k = 0; k <= nc; k++) {
                char name[64];
                if (k < nc) icl_task_concept_name(&c.task, k, name, sizeof name);
                else snprintf(name, sizeof name, "all");
                double td = k < nc ? per[(size_t)l * nc + k] : overall[l];
                icl_afile_printf(&af, err, "%" PRId64 ",%d,%d,%s,%.6g,%.6g,%.6g,%s\n", steps[i], l, k < nc ? k : -1, name, td,
                                 stats.chance_uniform, acc[k], token);
                char pv[32]; /* JSON has no NaN */
                if (isnan(acc[k])) snprintf(pv, sizeof pv, "null");
                else snprintf(pv, sizeof pv, "%.6g", acc[k]);
                icl_afile_printf(&jl, err,
                                 "{\"step\": %" PRId64 ", \"layer\": %d, \"concept\": %d, \"name\": \"%s\", \"td\": %.6g, "
                                 "\"chance\": %.6g, \"probe_acc\": %s, \"token\": \"%s\"}\n",
                                 steps[i], l, k < nc ? k : -1, name, td, stats.chance_uniform, pv, token);
            }
        }
        if (!r && embed[i]) r = embed_layers(dir, steps[i], reps, L + 1, N, C, c.seed, err);
        if (!r && dc->save_reps) {
            int64_t shape[3] = {L + 1, N, C};
            snprintf(path, sizeof path, "%s/reps_step_%09" PRId64 ".npy", dir, steps[i]);
            r = icl_npy_write_f32(path, reps, 3, shape, err);
        }
        icl_progress_update(&prog, i + 1, NULL);
    }
    free(embed);
    free(pacc);
    if (r) {
        icl_afile_abort(&af);
        icl_afile_abort(&jl);
    } else {
        r = icl_afile_commit(&af, err) || icl_afile_commit(&jl, err);
        icl_progress_finish(&prog, n_steps, NULL);
    }
done:
    icl_batch_free(&probe);
    free(reps);
    free(overall);
    free(per);
    free(steps);
    return r ? -1 : 0;
}
