/* The paper's pretrained-model analysis (§3, §4.1) on any GGUF language model: token ICL prompts
 * answered by greedy decoding and scored by exact match, the hidden state at the token before the
 * answer captured at every layer, task decodability per layer and concept, the fit of accuracy on
 * TD, and the mean-representation interventions.
 *
 * Layers are counted as Hugging Face's hidden_states: row 0 is the embedding (the residual stream
 * entering block 0), row l (1..n_layer) the residual stream after block l, so "layer 15" of a
 * 32-layer model means what the paper means by it.
 *
 * Greedy decoding is done exactly but cheaply: the prompt is evaluated, then the expected answer
 * and a newline are fed in one batch (teacher forcing); the greedy tokens are the argmaxes as long
 * as they equal the fed ones, and from the first disagreement on the context is rewound and the
 * model decodes one token at a time. Decoding stops at the end of the line, at the end-of-sequence
 * token, after max_new tokens, or (unless full_output) as soon as the text can no longer match. */
#ifndef ICL_LMEVAL_H
#define ICL_LMEVAL_H
#include <stdint.h>
#include <stdio.h>
#include "iclab/icl_err.h"
#include "iclab/icl_knn.h"
#include "iclab/icl_lm.h"
#include "iclab/icl_model.h"
#include "iclab/icl_tokenizer.h"
#include "iclab/icl_toktask.h"

/* A GGUF model, its tokenizer and one context: what every command on a language model starts from. */
typedef struct icl_lm_session {
    icl_lm *lm;
    icl_tokenizer *tk; /* NULL when opened without one */
    icl_lm_ctx *ctx;
} icl_lm_session;

/* Loads path, its tokenizer (when need_tokenizer; the tokenizer must fit the embedding) and a context
 * of n_ctx positions (0: the model's, capped as icl_lm_ctx_init says). On failure nothing is left to
 * free (*s is zeroed). */
int icl_lm_session_open(icl_lm_session *s, const char *path, int n_ctx, int need_tokenizer, icl_err *err);
/* Frees what is open; safe on a zeroed session. */
void icl_lm_session_close(icl_lm_session *s);

/* How one prompt is run. */
typedef struct icl_answer_opts {
    int add_bos;          /* -1: the tokenizer's default; 0/1 */
    int max_new;          /* most tokens generated; 0 = the answer's tokens + 8 */
    int full_output;      /* 1: decode to the end of the line even when the answer is already wrong */
    int answer;           /* 0: no decoding (states only): the model runs up to the last captured row */
    int n_rows;           /* hidden-state rows captured at the prompt's last token (sorted ascending) */
    const int *rows;      /* (n_rows) in 0..n_layer */
    int patch_row;        /* -1: none; else the row changed at the prompt's last token */
    icl_hook_action patch_action; /* ICL_HOOK_ADD or ICL_HOOK_REPLACE, with patch_vec (n_embd) */
    const float *patch_vec;
} icl_answer_opts;

typedef struct icl_answer {
    int correct;          /* the decoded line equals the expected output (spaces at both ends ignored) */
    char *generated;      /* malloc'd: the decoded text (see above for where decoding stops) */
    int n_prompt_tokens;  /* the prompt's tokens, BOS included */
    int n_decoded;        /* tokens decoded one at a time after teacher forcing (0 for most prompts) */
} icl_answer;

/* Runs prompt through c and, with opts->answer, decodes the model's greedy answer and compares it
 * with expected; answer_text is the continuation fed for teacher forcing (the answer as the
 * template writes it, e.g. " 01000"). states, when n_rows > 0: row k of the capture goes to
 * states + k * row_stride (n_embd floats). out->generated must be freed. The context is reset
 * first. */
int icl_lm_answer(icl_lm_ctx *c, const icl_tokenizer *tk, const char *prompt, const char *answer_text,
                  const char *expected, const icl_answer_opts *opts, float *states, size_t row_stride,
                  icl_answer *out, icl_err *err);

/* What `iclab eval` does. */
typedef struct icl_eval_cfg {
    const char *model;         /* GGUF path */
    const char *lora;          /* a LoRA adapter file for the model (icl_lora.h) applied throughout, or NULL */
    const char *task;          /* "bitwise", "pos" or a task file */
    const char *brown_dir;     /* pos: the Brown corpus directory */
    const char *template_spec; /* NULL: ICL_TOKTASK_DEFAULT_TEMPLATE */
    const char *out_dir;
    int shots[16], n_shots;
    int n_prompts;             /* prompts per concept and shot count (100) */
    int prompting;             /* 1: the concept's instruction starts every prompt */
    int accuracy;              /* 0: TD only */
    int max_row;               /* last hidden-state row captured; -1 = every layer */
    int k;                     /* kNN neighbours (10) */
    icl_metric metric;
    int add_bos, max_new, full_output, n_ctx;
    int save_states;           /* 1: states_sN.npy for every shot count (else only the peak row) */
    uint64_t seed;
    FILE *progress;            /* NULL: quiet */
} icl_eval_cfg;

void icl_eval_cfg_default(icl_eval_cfg *cfg);

/* Builds the task, writes it to OUT/task.tsv, runs n_prompts episodes per concept and shot count
 * from the test split and writes into OUT: config.json, predictions.jsonl (every prompt, its
 * answer and the decoded text), accuracy.csv, td.csv (per shots, layer, concept), fit.csv (the
 * linear fit of accuracy on TD over concepts x shots at the peak layer, Null left out),
 * states_sN.npy (rows, N, n_embd) with labels.npy / concepts.txt, embed_sN.npy (UMAP of the peak
 * row, N x 2) and pca_sN.npy. The peak layer is the row of highest mean TD at 4 shots (or the
 * largest shot count when 4 is not asked for). */
int icl_eval_run(const icl_eval_cfg *cfg, icl_err *err);

/* What `iclab patch MODEL.gguf` does (paper §4.1). */
typedef struct icl_intervene_cfg {
    icl_eval_cfg base;         /* model, task, template, shots[0], n_prompts, seed, out_dir ... */
    int row;                   /* the layer (hidden-state row 0..n_layer) patched */
    icl_hook_action action;    /* ADD (the paper's) or REPLACE */
    int replicates;            /* 5 */
} icl_intervene_cfg;

/* Means of the row's state at the last prompt token per concept from n_prompts training-split
 * prompts; then, per replicate (fresh test prompts), accuracy per concept unperturbed, with the
 * Null mean (negative) and with the concept's own mean (positive). Writes OUT/intervention.csv
 * (replicate, concept, condition, accuracy), OUT/intervention_summary.csv (mean, std over
 * replicates) and OUT/intervention_means.npy (concepts, n_embd). Needs a Null concept. */
int icl_intervene_run(const icl_intervene_cfg *cfg, icl_err *err);

/* The task family cfg->task names (bitwise, pos from cfg->brown_dir, or a task file), with the
 * splits drawn from cfg->seed. */
int icl_eval_task_open(icl_toktask *t, const icl_eval_cfg *cfg, icl_err *err);

/* Ordinary least squares y = a + b x over n points: slope, intercept and R^2 (NaN when x is
 * constant or n < 2). */
void icl_linfit(const double *x, const double *y, int n, double *slope, double *intercept, double *r2);

/* The checkpoint steps of an `iclab train --task lm` run folder (run_dir/checkpoints/step_N.gguf),
 * ascending, in a malloc'd array; an error when the folder has none. */
int icl_run_checkpoints(const char *run_dir, int64_t **steps, int *n, icl_err *err);

/* The checkpoint study (paper §3.5): icl_eval_run with cfg on every checkpoint of run_dir (cfg->model
 * is ignored) into cfg->out_dir/step_N (states kept only at each peak row), then
 * cfg->out_dir/checkpoints.csv (step, shots, concept, accuracy, td at the LAST checkpoint's peak layer,
 * td at the checkpoint's own peak layer, that layer), figures/checkpoints.png/.svg and report.html
 * (accuracy and TD against step per concept, and per concept the step at which each rose). */
int icl_eval_checkpoints(const icl_eval_cfg *cfg, const char *run_dir, icl_err *err);

/* The peak layer, its shot count and the number of hidden-state rows an eval wrote into
 * dir/config.json. */
int icl_eval_read_peak(const char *dir, int *peak, int *peak_shots, int *rows, icl_err *err);

/* report.html and figures/ of an eval folder, from the files above (and the intervention files
 * when present), with the paper's Llama-3.1-8B numbers beside ours where the task matches. */
int icl_eval_report(const char *out_dir, icl_err *err);

#endif
