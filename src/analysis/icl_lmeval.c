/* Token ICL on GGUF language models (paper §3, §4.1): prompts answered by exact greedy decoding,
 * hidden states at the token before the answer, TD per layer, the accuracy-on-TD fit, and the
 * mean-representation interventions. See icl_lmeval.h. */
#include "iclab/icl_lmeval.h"
#include "iclab/icl_lora.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_file.h"
#include "iclab/icl_npy.h"
#include "iclab/icl_pca.h"
#include "iclab/icl_progress.h"
#include "iclab/icl_toktask.h"
#include "iclab/icl_umap.h"
#include "iclab/icl_utf8.h"

/* ---- one prompt ------------------------------------------------------------------------------ */

/* Greedy choice: the highest logit, the lowest id among ties (as icl_lm_sample at temperature 0). */
static int32_t argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

enum { ANSWER_OPEN = 0, ANSWER_RIGHT = 1, ANSWER_WRONG = 2 };

/* Where decoding stands after text: finished right or wrong (a newline ended the line), or open
 * (no newline yet). With can_stop_early, an open text that can no longer become the expected
 * output counts as wrong already. */
static int answer_state(const char *text, size_t len, const char *expected, int can_stop_early) {
    const char *nl = memchr(text, '\n', len);
    if (nl) return icl_answer_match(text, (size_t)(nl - text), expected) ? ANSWER_RIGHT : ANSWER_WRONG;
    if (!can_stop_early) return ANSWER_OPEN;
    size_t i = 0, m = strlen(expected);
    while (i < len && (text[i] == ' ' || text[i] == '\t')) i++;
    size_t rest = len - i;
    if (rest <= m) return memcmp(text + i, expected, rest) ? ANSWER_WRONG : ANSWER_OPEN;
    if (memcmp(text + i, expected, m)) return ANSWER_WRONG;
    for (size_t j = i + m; j < len; j++)
        if (text[j] != ' ' && text[j] != '\t' && text[j] != '\r') return ANSWER_WRONG;
    return ANSWER_OPEN;
}

/* Site and layer of hidden-state row r (0 = embedding, l = after block l). */
static void row_site(int r, icl_site *site, int *layer) {
    *site = r == 0 ? ICL_SITE_RESID_PRE : ICL_SITE_RESID_POST;
    *layer = r == 0 ? 0 : r - 1;
}

int icl_lm_answer(icl_lm_ctx *c, const icl_tokenizer *tk, const char *prompt, const char *answer_text,
                  const char *expected, const icl_answer_opts *o, float *states, size_t row_stride,
                  icl_answer *out, icl_err *err) {
    memset(out, 0, sizeof *out);
    int32_t *ids = NULL, *forced = NULL, *gen = NULL;
    size_t n = 0, m = 0;
    char *text = NULL;
    icl_hook hooks[1 + 512];
    int r = 0;
    if (o->n_rows > 512) return icl_errf(err, "at most 512 rows can be captured");
    icl_lm_ctx_reset(c);
    if (icl_tokenizer_encode(tk, prompt, strlen(prompt), o->add_bos, 0, &ids, &n, err)) return -1;
    if (n == 0) r = icl_errf(err, "the prompt has no tokens");
    else if (n >= (size_t)icl_lm_ctx_n_ctx(c))
        r = icl_errf(err, "the prompt has %zu tokens: it does not fit the context of %d with an answer (fewer shots, or --ctx)",
                     n, icl_lm_ctx_n_ctx(c));
    int last = (int)n - 1, nh = 0;
    if (!r && o->patch_row >= 0) {
        hooks[nh] = (icl_hook){.positions = &last, .n_positions = 1, .action = o->patch_action, .vec = o->patch_vec};
        row_site(o->patch_row, &hooks[nh].site, &hooks[nh].layer);
        nh++;
    }
    for (int k = 0; !r && k < o->n_rows; k++) {
        hooks[nh] = (icl_hook){.positions = &last, .n_positions = 1, .action = ICL_HOOK_CAPTURE,
                               .out = states + (size_t)k * row_stride};
        row_site(o->rows[k], &hooks[nh].site, &hooks[nh].layer);
        nh++;
    }
    if (!r) r = icl_lm_set_hooks(c, hooks, nh, err);
    out->n_prompt_tokens = (int)n;
    if (!r && !o->answer) {
        int top = o->n_rows ? o->rows[o->n_rows - 1] : 1;
        if (o->patch_row > top) top = o->patch_row;
        icl_lm_eval_opts eo = {ICL_LM_LOGITS_NONE, top > 0 ? top - 1 : 0, 0};
        r = icl_lm_eval(c, ids, (int)n, &eo, err);
        goto done;
    }
    /* Teacher forcing: the expected answer and the newline that ends it are evaluated in the same
     * batch as the prompt (the states at the prompt's last token do not see them: attention is
     * causal), with logits at the prompt's last token and at each fed token. */
    if (!r) {
        size_t alen = strlen(answer_text);
        char *line = malloc(alen + 2);
        if (!line) r = icl_errf(err, "out of memory");
        else {
            memcpy(line, answer_text, alen);
            memcpy(line + alen, "\n", 2);
            r = icl_tokenizer_encode(tk, line, alen + 1, 0, 0, &forced, &m, err);
            free(line);
        }
    }
    int room = icl_lm_ctx_n_ctx(c) - (int)n;
    if (!r && (int)m > room) m = (size_t)room;
    int32_t *all_ids = r ? NULL : malloc(sizeof(int32_t) * (n + m));
    if (!r && !all_ids) r = icl_errf(err, "out of memory");
    if (!r) {
        memcpy(all_ids, ids, sizeof(int32_t) * n);
        if (m) memcpy(all_ids + n, forced, sizeof(int32_t) * m);
    }
    icl_lm_eval_opts last_only = {ICL_LM_LOGITS_LAST, -1, 0}, tail = {ICL_LM_LOGITS_TAIL, -1, (int)m + 1};
    if (!r) r = icl_lm_eval(c, all_ids, (int)(n + m), &tail, err);
    free(all_ids);
    const int V = icl_lm_hp(icl_lm_ctx_model(c))->n_vocab;
    int max_new = o->max_new > 0 ? o->max_new : (int)m + 8;
    /* Kept aside: a later single-token eval overwrites the context's logits. Row 0 follows the
     * prompt, row i + 1 the fed token i. */
    float *forced_logits = r ? NULL : malloc(sizeof(float) * (m + 1) * (size_t)V);
    if (!r && !forced_logits) r = icl_errf(err, "out of memory");
    if (!r) memcpy(forced_logits, icl_lm_logits(c), sizeof(float) * (m + 1) * (size_t)V);
    int32_t next = r ? 0 : argmax(forced_logits, V);
    gen = malloc(sizeof(int32_t) * (size_t)(max_new + 1));
    if (!r && !gen) r = icl_errf(err, "out of memory");
    int on_forced = 1, ng = 0, state = ANSWER_OPEN;
    int32_t eos = icl_tokenizer_eos(tk);
    size_t tlen = 0;
    while (!r && ng < max_new) {
        if (next == eos) break;
        gen[ng++] = next;
        free(text);
        text = NULL;
        r = icl_tokenizer_decode_ex(tk, gen, (size_t)ng, ICL_TOK_DECODE_KEEP_PREFIX_SPACE | ICL_TOK_DECODE_SKIP_SPECIAL,
                                    &text, &tlen, err);
        if (r) break;
        state = answer_state(text, tlen, expected, !o->full_output);
        if (state != ANSWER_OPEN || ng == max_new) break;
        int i = ng - 1; /* the token just appended sits at position n + i */
        if (on_forced && i < (int)m && next == forced[i]) {
            next = argmax(forced_logits + (size_t)(i + 1) * V, V);
            continue;
        }
        if (on_forced) { /* the model leaves the expected answer: keep the agreeing prefix, decode on */
            on_forced = 0;
            r = icl_lm_ctx_rewind(c, (int)n + i, err);
        }
        if (!r && icl_lm_ctx_n_past(c) >= icl_lm_ctx_n_ctx(c)) break;
        if (!r) r = icl_lm_eval(c, &next, 1, &last_only, err);
        if (!r) {
            out->n_decoded++;
            next = argmax(icl_lm_logits(c), V);
        }
    }
    if (!r) {
        if (state == ANSWER_OPEN) state = text && icl_answer_match(text, tlen, expected) ? ANSWER_RIGHT : ANSWER_WRONG;
        out->correct = state == ANSWER_RIGHT;
        out->generated = text ? text : strdup("");
        text = NULL;
        if (!out->generated) r = icl_errf(err, "out of memory");
    }
    free(forced_logits);
done:
    if (r) icl_lm_set_hooks(c, NULL, 0, NULL);
    else r = icl_lm_set_hooks(c, NULL, 0, err);
    free(ids);
    free(forced);
    free(gen);
    free(text);
    return r;
}

/* ---- the evaluation of a task family ---------------------------------------------------------- */

void icl_eval_cfg_default(icl_eval_cfg *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->task = "bitwise";
    cfg->brown_dir = "data/brown";
    cfg->shots[0] = 1, cfg->shots[1] = 4, cfg->shots[2] = 10, cfg->n_shots = 3;
    cfg->n_prompts = 100;
    cfg->accuracy = 1;
    cfg->max_row = -1;
    cfg->k = 10;
    cfg->metric = ICL_METRIC_EUCLIDEAN;
    cfg->add_bos = -1;
    cfg->save_states = 1;
    cfg->seed = 1;
}

void icl_linfit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2) {
    double mx = 0, my = 0, sxx = 0, sxy = 0, syy = 0;
    *slope = *intercept = *r2 = NAN;
    if (n < 2) return;
    for (int i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= n, my /= n;
    for (int i = 0; i < n; i++) {
        sxx += (x[i] - mx) * (x[i] - mx);
        sxy += (x[i] - mx) * (y[i] - my);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (!(sxx > 0)) return;
    *slope = sxy / sxx;
    *intercept = my - *slope * mx;
    *r2 = syy > 0 ? sxy * sxy / (sxx * syy) : NAN;
}

/* JSON string literal of s: valid UTF-8 passed through, control characters escaped, and a byte
 * that is not valid UTF-8 (a decoded token may end inside a character) written as U+FFFD. */
static int json_str(icl_afile *f, const char *s, icl_err *err) {
    char buf[8];
    if (icl_afile_write(f, "\"", 1, err)) return -1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *e = NULL;
        int u = *p >= 0x80 ? icl_utf8_len(p) : 1;
        if (u == 0) e = "\ufffd";
        else if (u > 1) {
            if (icl_afile_write(f, p, (size_t)u, err)) return -1;
            p += u - 1;
            continue;
        }
        if (*p == '"') e = "\\\"";
        else if (*p == '\\') e = "\\\\";
        else if (*p == '\n') e = "\\n";
        else if (*p == '\t') e = "\\t";
        else if (*p == '\r') e = "\\r";
        else if (*p < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", *p);
            e = buf;
        }
        if (e ? icl_afile_write(f, e, strlen(e), err) : icl_afile_write(f, p, 1, err)) return -1;
    }
    return icl_afile_write(f, "\"", 1, err);
}

/* Commits f when everything written went well (r == 0), else removes its temporary file. */
static int afile_finish(icl_afile *f, int r, icl_err *err) {
    if (r) {
        icl_afile_abort(f);
        return r;
    }
    return icl_afile_commit(f, err);
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void icl_lm_session_close(icl_lm_session *s) {
    icl_lm_ctx_free(s->ctx);
    icl_tokenizer_free(s->tk);
    icl_lm_free(s->lm);
    memset(s, 0, sizeof *s);
}

int icl_lm_session_open(icl_lm_session *s, const char *path, int n_ctx, int need_tokenizer, icl_err *err) {
    memset(s, 0, sizeof *s);
    int r = icl_lm_load(&s->lm, path, err);
    if (!r && need_tokenizer && icl_tokenizer_load(&s->tk, icl_lm_gguf(s->lm), err)) r = icl_err_prefix(err, "%s: ", path);
    if (!r && s->tk && icl_tokenizer_n_vocab(s->tk) > icl_lm_hp(s->lm)->n_vocab)
        r = icl_errf(err, "%s: the tokenizer has %d tokens but the embedding only %d rows", path,
                     icl_tokenizer_n_vocab(s->tk), icl_lm_hp(s->lm)->n_vocab);
    if (!r) r = icl_lm_ctx_init(&s->ctx, s->lm, n_ctx, 0, err);
    if (r) icl_lm_session_close(s);
    return r;
}

int icl_eval_read_peak(const char *dir, int *peak, int *peak_shots, int *rows, icl_err *err) {
    char *path = path_join(dir, "config.json"), *text = NULL;
    size_t n;
    if (!path) return icl_errf(err, "out of memory");
    int r = icl_read_file(path, &text, &n, err);
    const char *p = r ? NULL : strstr(text, "\"peak_layer\":"), *q = r ? NULL : strstr(text, "\"peak_shots\":"),
               *w = r ? NULL : strstr(text, "\"rows\":");
    if (!r && !(p && q && w)) r = icl_errf(err, "%s lacks peak_layer, peak_shots or rows", path);
    if (!r) *peak = atoi(p + 13), *peak_shots = atoi(q + 13), *rows = atoi(w + 7);
    if (!r && (*rows < 1 || *rows > 100000)) r = icl_errf(err, "%s: bad rows %d", path, *rows);
    free(text);
    free(path);
    return r;
}

int icl_eval_task_open(icl_toktask *t, const icl_eval_cfg *cfg, icl_err *err) {
    if (!strcmp(cfg->task, "bitwise")) return icl_toktask_bitwise(t, cfg->seed, err);
    if (!strcmp(cfg->task, "pos")) {
        if (!icl_path_exists(cfg->brown_dir))
            return icl_errf(err, "the part-of-speech task needs the Brown corpus in %s (run `make data`, or --brown DIR)",
                            cfg->brown_dir);
        return icl_toktask_pos(t, cfg->brown_dir, cfg->seed, err);
    }
    if (!icl_path_exists(cfg->task)) return icl_errf(err, "--task '%s' is not bitwise, pos or a task file", cfg->task);
    return icl_toktask_load(t, cfg->task, err);
}

/* Everything eval and patch share: the task, the template, the model. */
typedef struct study {
    icl_toktask task;
    icl_template tp;
    icl_lm_session s;
    icl_lora *lora; /* cfg->lora, applied in s.ctx */
    int n_rows; /* n_layer + 1 */
    int C;
} study;

static void study_close(study *st) {
    icl_lm_session_close(&st->s);
    icl_lora_free(st->lora);
    icl_template_free(&st->tp);
    icl_toktask_free(&st->task);
}

static int study_open(study *st, const icl_eval_cfg *cfg, icl_err *err) {
    memset(st, 0, sizeof *st);
    if (icl_eval_task_open(&st->task, cfg, err)) return -1;
    int r = icl_template_parse(&st->tp, cfg->template_spec ? cfg->template_spec : ICL_TOKTASK_DEFAULT_TEMPLATE, err);
    if (!r) r = icl_mkdirs(cfg->out_dir, err);
    if (!r) r = icl_lm_session_open(&st->s, cfg->model, cfg->n_ctx, 1, err);
    if (!r && cfg->lora)
        r = icl_lora_load(&st->lora, cfg->lora, st->s.lm, err) || icl_lm_ctx_set_lora(st->s.ctx, st->lora, err);
    if (!r) {
        st->n_rows = icl_lm_hp(st->s.lm)->n_layer + 1;
        st->C = icl_lm_hp(st->s.lm)->n_embd;
    }
    if (r) study_close(st);
    return r;
}

/* One episode of concept c with `shots` demonstrations from split, its prompt and answer. */
static int episode(const study *st, int c, int split, int shots, int prompting, icl_rng *rng, char **prompt,
                   char **answer, const icl_tokex **query, icl_err *err) {
    const icl_tokex *demos[256];
    if (shots > 256) return icl_errf(err, "at most 256 demonstrations");
    if (icl_episode_draw(&st->task, c, split, shots, rng, query, demos, err)) return -1;
    return icl_prompt_build(&st->task, &st->tp, prompting, demos, shots, *query, prompt, answer, err);
}

/* The episodes of one shot count: n_prompts per concept, from the stream (seed, shots, concept). */
typedef struct shot_result {
    int shots, N;
    float *states;      /* (rows, N, C) */
    int *labels;        /* (N) */
    int *correct;       /* (N) */
    double *td;         /* (rows, n_concepts) */
    double *td_all;     /* (rows) */
} shot_result;

static void shot_free(shot_result *r) {
    free(r->states);
    free(r->labels);
    free(r->correct);
    free(r->td);
    free(r->td_all);
    memset(r, 0, sizeof *r);
}

static int run_shots(study *st, const icl_eval_cfg *cfg, int shots, int n_rows, icl_afile *pred, shot_result *res,
                     icl_progress *prog, int64_t *done, icl_err *err) {
    const int K = st->task.n_concepts, N = K * cfg->n_prompts, C = st->C;
    memset(res, 0, sizeof *res);
    res->shots = shots;
    res->N = N;
    res->states = malloc(sizeof(float) * (size_t)n_rows * N * C);
    res->labels = malloc(sizeof(int) * N);
    res->correct = malloc(sizeof(int) * N);
    res->td = malloc(sizeof(double) * n_rows * K);
    res->td_all = malloc(sizeof(double) * n_rows);
    int *rows = malloc(sizeof(int) * n_rows);
    if (!res->states || !res->labels || !res->correct || !res->td || !res->td_all || !rows) {
        free(rows);
        return icl_errf(err, "out of memory for %d x %d x %d states", n_rows, N, C);
    }
    for (int k = 0; k < n_rows; k++) rows[k] = k;
    icl_answer_opts ao = {.add_bos = cfg->add_bos, .max_new = cfg->max_new, .full_output = cfg->full_output,
                          .answer = cfg->accuracy, .n_rows = n_rows, .rows = rows, .patch_row = -1};
    int r = 0;
    for (int c = 0; !r && c < K; c++) {
        icl_rng rng;
        icl_rng_seed_stream(&rng, cfg->seed, (uint64_t)shots * 1000003u + (uint64_t)c);
        for (int p = 0; !r && p < cfg->n_prompts; p++) {
            int i = c * cfg->n_prompts + p;
            char *prompt = NULL, *answer = NULL;
            const icl_tokex *q = NULL;
            icl_answer a = {0};
            r = episode(st, c, ICL_SPLIT_TEST, shots, cfg->prompting, &rng, &prompt, &answer, &q, err);
            if (!r) r = icl_lm_answer(st->s.ctx, st->s.tk, prompt, answer, q->output, &ao, res->states + (size_t)i * C,
                                      (size_t)N * C, &a, err);
            if (r) icl_err_prefix(err, "%s, %d shots, prompt %d: ", st->task.concepts[c], shots, p + 1);
            res->labels[i] = c;
            res->correct[i] = a.correct;
            if (!r) r = icl_afile_printf(pred, err, "{\"shots\":%d,\"concept\":", shots);
            if (!r) r = json_str(pred, st->task.concepts[c], err);
            if (!r) r = icl_afile_printf(pred, err, ",\"index\":%d,\"prompt_tokens\":%d,\"prompt\":", p, a.n_prompt_tokens);
            if (!r) r = json_str(pred, prompt, err);
            if (!r) r = icl_afile_printf(pred, err, ",\"expected\":");
            if (!r) r = json_str(pred, q->output, err);
            if (!r && cfg->accuracy) {
                r = icl_afile_printf(pred, err, ",\"generated\":");
                if (!r) r = json_str(pred, a.generated, err);
                if (!r) r = icl_afile_printf(pred, err, ",\"correct\":%d", a.correct);
            }
            if (!r) r = icl_afile_printf(pred, err, "}\n");
            free(a.generated);
            free(prompt);
            free(answer);
            ++*done;
            if (prog) icl_progress_update(prog, *done, NULL);
        }
    }
    free(rows);
    if (!r)
        r = icl_td_layers(res->states, n_rows, res->labels, N, C, K, cfg->k, cfg->metric, res->td_all, res->td, NULL,
                          NULL, err);
    return r;
}

/* The row where the mean TD over concepts is highest (the first on ties). */
static int peak_row(const shot_result *res, int n_rows, int K) {
    int best = 0;
    double best_v = -1;
    for (int l = 0; l < n_rows; l++) {
        double m = 0;
        for (int c = 0; c < K; c++) m += res->td[l * K + c];
        if (m / K > best_v + 1e-12) best_v = m / K, best = l;
    }
    return best;
}

static int write_config(const icl_eval_cfg *cfg, const study *st, int n_rows, int peak, int ref_shots, icl_err *err) {
    char *path = path_join(cfg->out_dir, "config.json");
    icl_afile f;
    if (!path) return icl_errf(err, "out of memory");
    int r = icl_afile_open(&f, path, err);
    const icl_lm_hparams *hp = icl_lm_hp(st->s.lm);
    if (!r) r = icl_afile_printf(&f, err, "{\n  \"kind\": \"lm-eval\",\n  \"model\": ");
    if (!r) r = json_str(&f, cfg->model, err);
    if (!r) r = icl_afile_printf(&f, err, ",\n  \"lora\": ");
    if (!r) r = cfg->lora ? json_str(&f, cfg->lora, err) : icl_afile_printf(&f, err, "null");
    if (!r) r = icl_afile_printf(&f, err, ",\n  \"arch\": ");
    if (!r) r = json_str(&f, hp->arch_name, err);
    if (!r) r = icl_afile_printf(&f, err, ",\n  \"n_layer\": %d,\n  \"n_embd\": %d,\n  \"task\": ", hp->n_layer, hp->n_embd);
    if (!r) r = json_str(&f, st->task.family, err);
    if (!r) r = icl_afile_printf(&f, err, ",\n  \"template\": ");
    if (!r) r = json_str(&f, cfg->template_spec ? cfg->template_spec : ICL_TOKTASK_DEFAULT_TEMPLATE, err);
    if (!r) r = icl_afile_printf(&f, err, ",\n  \"concepts\": [");
    for (int c = 0; !r && c < st->task.n_concepts; c++) {
        if (c) r = icl_afile_printf(&f, err, ", ");
        if (!r) r = json_str(&f, st->task.concepts[c], err);
    }
    if (!r) r = icl_afile_printf(&f, err, "],\n  \"shots\": [");
    for (int i = 0; !r && i < cfg->n_shots; i++) r = icl_afile_printf(&f, err, "%s%d", i ? ", " : "", cfg->shots[i]);
    if (!r)
        r = icl_afile_printf(&f, err,
                             "],\n  \"prompts_per_concept\": %d,\n  \"prompting\": %d,\n  \"accuracy\": %d,\n"
                             "  \"rows\": %d,\n  \"k\": %d,\n  \"metric\": \"%s\",\n  \"seed\": %llu,\n"
                             "  \"peak_layer\": %d,\n  \"peak_shots\": %d\n}\n",
                             cfg->n_prompts, cfg->prompting, cfg->accuracy, n_rows, cfg->k, icl_metric_name(cfg->metric),
                             (unsigned long long)cfg->seed, peak, ref_shots);
    r = afile_finish(&f, r, err);
    free(path);
    return r;
}

static int write_npy_f32(const char *dir, const char *name, const float *data, int ndim, const int64_t *shape,
                         icl_err *err) {
    char *path = path_join(dir, name);
    int r = path ? icl_npy_write_f32(path, data, ndim, shape, err) : icl_errf(err, "out of memory");
    free(path);
    return r;
}

/* UMAP and PCA of one row of a shot count's states: embed_sN.npy and pca_sN.npy (N, 2). */
static int write_embeddings(const char *dir, const shot_result *res, int row, int C, uint64_t seed, icl_err *err) {
    const int N = res->N;
    const float *X = res->states + (size_t)row * N * C;
    float *emb = malloc(sizeof(float) * 2 * N);
    double *proj = malloc(sizeof(double) * 2 * N);
    int r = (!emb || !proj) ? icl_errf(err, "out of memory") : 0;
    icl_umap_opts uo;
    icl_umap_opts_default(&uo);
    uo.seed = seed;
    char name[64];
    int64_t shape[2] = {N, 2};
    if (!r && N >= 4) {
        r = icl_umap(X, N, C, &uo, emb, err);
        snprintf(name, sizeof name, "embed_s%d.npy", res->shots);
        if (!r) r = write_npy_f32(dir, name, emb, 2, shape, err);
    }
    icl_pca pca = {0};
    if (!r && N >= 2 && C >= 2) {
        r = icl_pca_fit(X, N, C, 2, &pca, proj, err);
        for (int i = 0; !r && i < 2 * N; i++) emb[i] = (float)proj[i];
        snprintf(name, sizeof name, "pca_s%d.npy", res->shots);
        if (!r) r = write_npy_f32(dir, name, emb, 2, shape, err);
        icl_pca_free(&pca);
    }
    free(emb);
    free(proj);
    return r;
}

int icl_eval_run(const icl_eval_cfg *cfg, icl_err *err) {
    if (cfg->n_shots < 1 || cfg->n_prompts < 1) return icl_errf(err, "nothing to evaluate: no shot counts or no prompts");
    if (cfg->n_prompts * 2 <= cfg->k) return icl_errf(err, "too few prompts for %d nearest neighbours", cfg->k);
    study st;
    if (study_open(&st, cfg, err)) return -1;
    const int K = st.task.n_concepts, C = st.C;
    int n_rows = cfg->max_row < 0 ? st.n_rows : cfg->max_row + 1, r = 0;
    if (n_rows > st.n_rows) r = icl_errf(err, "layer %d is past the model's last (%d)", cfg->max_row, st.n_rows - 1);
    char *task_path = path_join(cfg->out_dir, "task.tsv");
    if (!r) r = task_path ? icl_toktask_save(&st.task, task_path, err) : icl_errf(err, "out of memory");
    free(task_path);
    /* The reference shot count (4, else the largest) runs first: its peak row is the one embedded. */
    int order[16], ref = 0, n = cfg->n_shots;
    for (int i = 0; i < n; i++)
        if (cfg->shots[i] == 4 || (cfg->shots[ref] != 4 && cfg->shots[i] > cfg->shots[ref])) ref = i;
    order[0] = ref;
    for (int i = 0, j = 1; i < n; i++)
        if (i != ref) order[j++] = i;
    shot_result *res = calloc((size_t)n, sizeof *res);
    icl_afile pred = {0}, acc = {0}, tdf = {0};
    char *pred_path = path_join(cfg->out_dir, "predictions.jsonl"), *acc_path = path_join(cfg->out_dir, "accuracy.csv"),
         *td_path = path_join(cfg->out_dir, "td.csv");
    if (!r && (!res || !pred_path || !acc_path || !td_path)) r = icl_errf(err, "out of memory");
    if (!r) r = icl_afile_open(&pred, pred_path, err);
    icl_progress prog;
    int64_t done = 0;
    if (!r && cfg->progress) icl_progress_init(&prog, cfg->progress, "eval", 0, (int64_t)n * K * cfg->n_prompts);
    int peak = 0;
    for (int oi = 0; !r && oi < n; oi++) {
        shot_result *sr = &res[order[oi]];
        r = run_shots(&st, cfg, cfg->shots[order[oi]], n_rows, &pred, sr, cfg->progress ? &prog : NULL, &done, err);
        if (!r && oi == 0) peak = peak_row(sr, n_rows, K);
        char name[64];
        int64_t shape[3] = {n_rows, sr->N, C};
        snprintf(name, sizeof name, "states_s%d.npy", sr->shots);
        if (!r && cfg->save_states) r = write_npy_f32(cfg->out_dir, name, sr->states, 3, shape, err);
        if (!r && !cfg->save_states) {
            shape[0] = 1;
            snprintf(name, sizeof name, "states_s%d_layer%d.npy", sr->shots, peak);
            r = write_npy_f32(cfg->out_dir, name, sr->states + (size_t)peak * sr->N * C, 3, shape, err);
        }
        if (!r) r = write_embeddings(cfg->out_dir, sr, peak, C, cfg->seed, err);
        free(sr->states); /* the big part; TD and answers stay */
        sr->states = NULL;
    }
    if (!r && cfg->progress) icl_progress_finish(&prog, done, NULL);
    r = afile_finish(&pred, r, err);
    /* labels.npy and concepts.txt: the rows of every states file are concept-major, n_prompts each. */
    if (!r) {
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)K * cfg->n_prompts);
        char *lp = path_join(cfg->out_dir, "labels.npy"), *cp = path_join(cfg->out_dir, "labels.txt");
        if (!lab || !lp || !cp) r = icl_errf(err, "out of memory");
        for (int i = 0; !r && i < K * cfg->n_prompts; i++) lab[i] = i / cfg->n_prompts;
        int64_t shape[1] = {(int64_t)K * cfg->n_prompts};
        if (!r) r = icl_npy_write_i32(lp, lab, 1, shape, err);
        icl_afile f = {0};
        if (!r) r = icl_afile_open(&f, cp, err);
        for (int c = 0; !r && c < K; c++) r = icl_afile_printf(&f, err, "%s\n", st.task.concepts[c]);
        r = afile_finish(&f, r, err);
        free(lab);
        free(lp);
        free(cp);
    }
    /* accuracy.csv and td.csv */
    if (!r) r = icl_afile_open(&acc, acc_path, err);
    if (!r) r = icl_afile_printf(&acc, err, "shots,concept,accuracy,correct,n\n");
    for (int i = 0; !r && i < n; i++)
        for (int c = 0; !r && c < K; c++) {
            int ok = 0;
            for (int p = 0; p < cfg->n_prompts; p++) ok += res[i].correct[c * cfg->n_prompts + p];
            if (cfg->accuracy)
                r = icl_afile_printf(&acc, err, "%d,%s,%.6f,%d,%d\n", res[i].shots, st.task.concepts[c],
                                     (double)ok / cfg->n_prompts, ok, cfg->n_prompts);
        }
    r = afile_finish(&acc, r, err);
    if (!r) r = icl_afile_open(&tdf, td_path, err);
    if (!r) r = icl_afile_printf(&tdf, err, "shots,layer,concept,td\n");
    for (int i = 0; !r && i < n; i++)
        for (int l = 0; !r && l < n_rows; l++) {
            for (int c = 0; !r && c < K; c++)
                r = icl_afile_printf(&tdf, err, "%d,%d,%s,%.6f\n", res[i].shots, l, st.task.concepts[c], res[i].td[l * K + c]);
            if (!r) r = icl_afile_printf(&tdf, err, "%d,%d,all,%.6f\n", res[i].shots, l, res[i].td_all[l]);
        }
    r = afile_finish(&tdf, r, err);
    /* fit.csv: accuracy on TD at the peak row over concepts (Null left out) x shots. */
    if (!r && cfg->accuracy) {
        double *x = malloc(sizeof(double) * n * K), *y = malloc(sizeof(double) * n * K);
        int m = 0;
        if (!x || !y) r = icl_errf(err, "out of memory");
        for (int i = 0; !r && i < n; i++)
            for (int c = 0; c < K; c++) {
                if (c == st.task.null_concept) continue;
                int ok = 0;
                for (int p = 0; p < cfg->n_prompts; p++) ok += res[i].correct[c * cfg->n_prompts + p];
                x[m] = res[i].td[peak * K + c];
                y[m++] = (double)ok / cfg->n_prompts;
            }
        double a, b, r2;
        if (!r) icl_linfit(x, y, m, &a, &b, &r2);
        char *fp = path_join(cfg->out_dir, "fit.csv");
        icl_afile f = {0};
        if (!r && !fp) r = icl_errf(err, "out of memory");
        if (!r) r = icl_afile_open(&f, fp, err);
        if (!r)
            r = icl_afile_printf(&f, err, "layer,slope,intercept,r2,points\n%d,%.6f,%.6f,%.6f,%d\n", peak, a, b, r2, m);
        r = afile_finish(&f, r, err);
        free(fp);
        free(x);
        free(y);
    }
    if (!r) r = write_config(cfg, &st, n_rows, peak, cfg->shots[ref], err);
    for (int i = 0; res && i < n; i++) shot_free(&res[i]);
    free(res);
    free(pred_path);
    free(acc_path);
    free(td_path);
    study_close(&st);
    return r;
}

/* ---- interventions (paper §4.1) ---------------------------------------------------------------- */

static const char *const condition_names[3] = {"unperturbed", "negative", "positive"};

int icl_intervene_run(const icl_intervene_cfg *cfg, icl_err *err) {
    const icl_eval_cfg *b = &cfg->base;
    if (cfg->replicates < 1 || b->n_prompts < 1) return icl_errf(err, "nothing to run: no replicates or no prompts");
    if (cfg->action != ICL_HOOK_ADD && cfg->action != ICL_HOOK_REPLACE) return icl_errf(err, "the intervention adds or replaces");
    study st;
    if (study_open(&st, b, err)) return -1;
    const int K = st.task.n_concepts, C = st.C, shots = b->shots[0], null = st.task.null_concept;
    int r = 0;
    if (null < 0) r = icl_errf(err, "the task has no Null concept: the negative intervention needs one");
    else if (cfg->row < 0 || cfg->row >= st.n_rows)
        r = icl_errf(err, "--layer %d is outside the model's layers 0..%d", cfg->row, st.n_rows - 1);
    float *means = calloc((size_t)K * C, sizeof(float)), *state = malloc(sizeof(float) * C);
    double *acc = calloc((size_t)cfg->replicates * K * 3, sizeof(double));
    double *sum = calloc((size_t)C, sizeof(double));
    if (!r && (!means || !state || !acc || !sum)) r = icl_errf(err, "out of memory");
    icl_progress prog;
    int64_t done = 0, total = (int64_t)K * b->n_prompts + (int64_t)cfg->replicates * (K - 1) * b->n_prompts * 3;
    if (!r && b->progress) icl_progress_init(&prog, b->progress, "patch", 0, total);
    /* The concept means, from prompts of the training split (the test split when a task file has none). */
    icl_answer_opts mo = {.add_bos = b->add_bos, .answer = 0, .n_rows = 1, .rows = &cfg->row, .patch_row = -1};
    for (int c = 0; !r && c < K; c++) {
        int split = st.task.count[2 * c + ICL_SPLIT_TRAIN] > (size_t)shots ? ICL_SPLIT_TRAIN : ICL_SPLIT_TEST;
        icl_rng rng;
        icl_rng_seed_stream(&rng, b->seed, 0x6d65616e0000ull + (uint64_t)c);
        memset(sum, 0, sizeof(double) * C);
        for (int p = 0; !r && p < b->n_prompts; p++) {
            char *prompt = NULL, *answer = NULL;
            const icl_tokex *q;
            icl_answer a = {0};
            r = episode(&st, c, split, shots, b->prompting, &rng, &prompt, &answer, &q, err);
            if (!r) r = icl_lm_answer(st.s.ctx, st.s.tk, prompt, answer, q->output, &mo, state, 0, &a, err);
            for (int j = 0; !r && j < C; j++) sum[j] += state[j];
            free(a.generated);
            free(prompt);
            free(answer);
            if (b->progress) icl_progress_update(&prog, ++done, "means");
        }
        for (int j = 0; !r && j < C; j++) means[(size_t)c * C + j] = (float)(sum[j] / b->n_prompts);
    }
    /* Replicates: fresh test prompts; each answered unperturbed, with Null's mean and with its own. */
    for (int rep = 0; !r && rep < cfg->replicates; rep++)
        for (int c = 0; !r && c < K; c++) {
            if (c == null) continue;
            icl_rng rng;
            icl_rng_seed_stream(&rng, b->seed, 0x7265700000000ull + (uint64_t)rep * 4096 + (uint64_t)c);
            int ok[3] = {0, 0, 0};
            for (int p = 0; !r && p < b->n_prompts; p++) {
                char *prompt = NULL, *answer = NULL;
                const icl_tokex *q;
                r = episode(&st, c, ICL_SPLIT_TEST, shots, b->prompting, &rng, &prompt, &answer, &q, err);
                for (int cond = 0; !r && cond < 3; cond++) {
                    icl_answer_opts ao = {.add_bos = b->add_bos, .max_new = b->max_new, .answer = 1,
                                          .patch_row = cond ? cfg->row : -1, .patch_action = cfg->action,
                                          .patch_vec = means + (size_t)(cond == 1 ? null : c) * C};
                    icl_answer a = {0};
                    r = icl_lm_answer(st.s.ctx, st.s.tk, prompt, answer, q->output, &ao, NULL, 0, &a, err);
                    ok[cond] += a.correct;
                    free(a.generated);
                    if (b->progress) icl_progress_update(&prog, ++done, condition_names[cond]);
                }
                free(prompt);
                free(answer);
            }
            for (int cond = 0; cond < 3; cond++) acc[((size_t)rep * K + c) * 3 + cond] = (double)ok[cond] / b->n_prompts;
        }
    if (!r && b->progress) icl_progress_finish(&prog, done, NULL);
    char *p1 = path_join(b->out_dir, "intervention.csv"), *p2 = path_join(b->out_dir, "intervention_summary.csv");
    if (!r && (!p1 || !p2)) r = icl_errf(err, "out of memory");
    icl_afile f = {0};
    if (!r) r = icl_afile_open(&f, p1, err);
    if (!r) {
        icl_afile_printf(&f, err, "replicate,concept,condition,accuracy,layer,action,shots\n");
        for (int rep = 0; rep < cfg->replicates; rep++)
            for (int c = 0; c < K; c++)
                for (int cond = 0; c != null && cond < 3; cond++)
                    icl_afile_printf(&f, err, "%d,%s,%s,%.6f,%d,%s,%d\n", rep, st.task.concepts[c], condition_names[cond],
                                     acc[((size_t)rep * K + c) * 3 + cond], cfg->row,
                                     cfg->action == ICL_HOOK_ADD ? "add" : "replace", shots);
        r = icl_afile_commit(&f, err);
    }
    if (!r) r = icl_afile_open(&f, p2, err);
    if (!r) {
        icl_afile_printf(&f, err, "task,concept,condition,mean,std,replicates,layer,action,shots\n");
        for (int c = 0; c < K; c++)
            for (int cond = 0; c != null && cond < 3; cond++) {
                double m = 0, v = 0;
                for (int rep = 0; rep < cfg->replicates; rep++) m += acc[((size_t)rep * K + c) * 3 + cond];
                m /= cfg->replicates;
                for (int rep = 0; rep < cfg->replicates; rep++) {
                    double d = acc[((size_t)rep * K + c) * 3 + cond] - m;
                    v += d * d;
                }
                /* population std, as the paper's error bars (paper.md §4.2) */
                icl_afile_printf(&f, err, "%s,%s,%s,%.6f,%.6f,%d,%d,%s,%d\n", b->task, st.task.concepts[c], condition_names[cond], m,
                                 sqrt(v / cfg->replicates), cfg->replicates, cfg->row,
                                 cfg->action == ICL_HOOK_ADD ? "add" : "replace", shots);
            }
        r = icl_afile_commit(&f, err);
    }
    int64_t shape[2] = {K, C};
    if (!r) r = write_npy_f32(b->out_dir, "intervention_means.npy", means, 2, shape, err);
    free(p1);
    free(p2);
    free(means);
    free(state);
    free(acc);
    free(sum);
    study_close(&st);
    return r;
}
