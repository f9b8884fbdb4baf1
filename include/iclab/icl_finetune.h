/* Layer-restricted LoRA finetuning on token ICL tasks (paper §4.2, Table 1, Fig. 24): one adapter
 * per task family, trained on ICL episodes of its training split with the next-token loss on the
 * answer tokens only; and the paper's comparison, pretrained vs first-k vs last-k layers vs
 * prompting, as one experiment with one report. */
#ifndef ICL_FINETUNE_H
#define ICL_FINETUNE_H
#include <stdio.h>
#include "iclab/icl_err.h"
#include "iclab/icl_lmeval.h"
#include "iclab/icl_lmtrain.h"
#include "iclab/icl_lora.h"

typedef struct icl_finetune_cfg {
    /* the model, task, template, Brown folder, seed, BOS and context settings, progress, and the
     * output folder; shots/prompts are used only by the comparison's evaluations */
    icl_eval_cfg base;
    icl_lora_cfg lora;
    const char *layers;      /* "first:K", "last:K", "A-B" or "all" (overrides lora's range) */
    int steps;               /* optimizer steps (default 10000 samples / batch) */
    int batch;               /* episodes per step (8) */
    int min_shots, max_shots;/* demonstrations per training episode, uniform in [min, max] (1, 10) */
    int checkpoints;         /* adapters saved on a log-spaced schedule (8; the last step included) */
    icl_lmtrain_opt opt;     /* lr 1e-3 -> 1e-4 cosine, warm-up 5% of steps, no weight decay, clip 1 */
    int resume;              /* continue out_dir from its state file */
    int stop_after;          /* 0, or stop (with a checkpoint) after this step (for tests of resume) */
} icl_finetune_cfg;

void icl_finetune_cfg_default(icl_finetune_cfg *cfg);

/* Trains an adapter on base.model for base.task into base.out_dir: adapter.gguf (the last step),
 * checkpoints/step_N.gguf, checkpoints/state.bin (adapter, AdamW moments, step, the episode
 * generator: exact resume), train.csv (step, loss, lr, grad_norm, answer_tokens, seconds) and
 * config.json. The Null concept (if any) is left out of the training episodes. */
int icl_finetune_run(const icl_finetune_cfg *cfg, icl_err *err);

/* The paper's §4.2 experiment into base.out_dir: evaluations (base's shots, prompts, seed; at
 * every layer) of the pretrained model (pretrained/), of the prompting condition (prompting/), and
 * of adapters trained on the first k and the last k layers (first-k/, last-k/: the adapter folder,
 * its evaluation in eval/), then comparison.csv (condition, concept, accuracy and TD at 4 shots,
 * TD at the pretrained model's peak layer and at the condition's own), figures/ and report.html
 * with the paper's Table 1 and Fig. 24 values beside ours. k = 0: the paper's share, 10 of 32
 * layers, rounded, at least 1. */
int icl_finetune_compare(const icl_finetune_cfg *cfg, int k, icl_err *err);

/* report.html and figures of a comparison folder, from its comparison.csv. */
int icl_finetune_report(const char *out_dir, icl_err *err);

#endif
