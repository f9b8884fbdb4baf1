/* Answering token-ICL prompts with a language model (icl_lm_answer): the teacher-forced greedy
 * decoding gives exactly what plain token-by-token greedy decoding gives, for answers the model
 * agrees with fully, partly and not at all; interventions: a zero vector changes nothing, adding a
 * vector at a position changes nothing before it; captured rows are the residual stream; the
 * linear fit. Models are random-weight GGUFs written by icl_mkmodel with real vocabularies
 * (ICLAB_VOCAB_DIR, set by make test). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "iclab/icl_lmeval.h"
#include "iclab/icl_mkmodel.h"
#include "iclab/icl_toktask.h"
#include "icl_test.h"

/* Plain greedy decoding: one token at a time, stop at EOS, a newline or max_new tokens. */
static char *greedy_reference(icl_lm_ctx *c, const icl_tokenizer *tk, const char *prompt, int max_new) {
    int32_t *ids = NULL;
    size_t n = 0;
    icl_err err;
    icl_lm_ctx_reset(c);
    if (icl_tokenizer_encode(tk, prompt, strlen(prompt), -1, 0, &ids, &n, &err)) return NULL;
    icl_lm_eval_opts o = {ICL_LM_LOGITS_LAST, -1, 0};
    int V = icl_lm_hp(icl_lm_ctx_model(c))->n_vocab;
    int32_t gen[256];
    int ng = 0;
    char *text = strdup("");
    size_t len = 0;
    int r = icl_lm_eval(c, ids, (int)n, &o, &err);
    while (!r && ng < max_new) {
        const float *l = icl_lm_logits(c);
        int32_t best = 0;
        for (int i = 1; i < V; i++)
            if (l[i] > l[best]) best = i;
        if (best == icl_tokenizer_eos(tk)) break;
        gen[ng++] = best;
        free(text);
        icl_tokenizer_decode_ex(tk, gen, (size_t)ng, ICL_TOK_DECODE_KEEP_PREFIX_SPACE | ICL_TOK_DECODE_SKIP_SPECIAL, &text,
                                &len, &err);
        if (memchr(text, '\n', len)) break;
        r = icl_lm_eval(c, &best, 1, &o, &err);
    }
    free(ids);
    return text;
}

/* The reference's verdict: the line (up to a newline) equals expected, spaces at the ends aside. */
static int reference_correct(const char *text, const char *expected) {
    const char *nl = strchr(text, '\n');
    return icl_answer_match(text, nl ? (size_t)(nl - text) : strlen(text), expected);
}

static void check_model(const char *arch, const char *vocab) {
    char path[512];
    snprintf(path, sizeof path, "/tmp/iclab_test_lmeval_%s_%d.gguf", arch, (int)getpid());
    icl_mkmodel_opts mo;
    icl_mkmodel_defaults(&mo, arch);
    mo.vocab_path = vocab;
    icl_err err;
    CHECK_MSG(icl_mkmodel_write(&mo, path, &err) == 0, "%s: %s", arch, err.msg);
    icl_lm *lm = NULL;
    icl_tokenizer *tk = NULL;
    icl_lm_ctx *c = NULL;
    CHECK(icl_lm_load(&lm, path, &err) == 0);
    CHECK(icl_tokenizer_load(&tk, icl_lm_gguf(lm), &err) == 0);
    CHECK(icl_lm_ctx_init(&c, lm, 0, 0, &err) == 0);
    if (!c) return;
    const icl_lm_hparams *hp = icl_lm_hp(lm);
    const int C = hp->n_embd, R = hp->n_layer + 1, max_new = 12;
    const char *prompts[3] = {"01011 11101 -> 01001\n00101 00000 -> 00000\n01000 10001 ->", "The cat sat ->",
                              "Apply XOR.\n1 2 -> 3\n4 5 ->"};
    int agree = 0, cases = 0;
    for (int p = 0; p < 3; p++) {
        char *ref = greedy_reference(c, tk, prompts[p], max_new);
        CHECK(ref != NULL);
        if (!ref) continue;
        /* Expected answers: the model's own text (forced path all the way), a prefix of it (then it goes
         * on), a first character then something else, and an unrelated one. */
        char own[256], pre[256], wrong[256];
        const char *nl = strchr(ref, '\n');
        size_t len = nl ? (size_t)(nl - ref) : strlen(ref);
        snprintf(own, sizeof own, "%.*s", (int)len, ref);
        snprintf(pre, sizeof pre, "%.*s", (int)(len / 2), ref);
        snprintf(wrong, sizeof wrong, "%.1sqqzz", ref);
        const char *answers[4] = {own, pre, wrong, " 01000"};
        for (int a = 0; a < 4; a++)
            for (int full = 0; full < 2; full++) {
                const char *expected = answers[a];
                while (*expected == ' ') expected++;
                icl_answer_opts o = {.add_bos = -1, .max_new = max_new, .full_output = full, .answer = 1, .patch_row = -1};
                icl_answer out;
                int rc = icl_lm_answer(c, tk, prompts[p], answers[a], expected, &o, NULL, 0, &out, &err);
                CHECK_MSG(rc == 0, "%s: %s", arch, err.msg);
                if (rc) continue;
                cases++;
                int want = reference_correct(ref, expected);
                CHECK_MSG(out.correct == want, "%s prompt %d answer '%s' full %d: correct %d, plain greedy says %d (it "
                          "decoded '%s')", arch, p, answers[a], full, out.correct, want, ref);
                if (full) CHECK_MSG(!strcmp(out.generated, ref), "%s: full output '%s' equals plain greedy '%s'", arch,
                                    out.generated, ref);
                else CHECK_MSG(!strncmp(out.generated, ref, strlen(out.generated)),
                               "%s: early-stopped output '%s' is a prefix of '%s'", arch, out.generated, ref);
                agree += out.correct;
                free(out.generated);
            }
        free(ref);
    }
    CHECK_MSG(agree >= 3, "%s: the model's own answer counts as correct (%d of %d cases)", arch, agree, cases);

    /* Captured rows are the residual stream; a zero vector added changes nothing; adding a vector at
     * the last prompt token changes that row and every later one, nothing of the rows before. */
    const char *prompt = prompts[0];
    int rows[8];
    for (int k = 0; k < R; k++) rows[k] = k;
    float *s0 = calloc((size_t)R * C, sizeof(float)), *s1 = calloc((size_t)R * C, sizeof(float));
    float *zero = calloc((size_t)C, sizeof(float)), *vec = malloc(sizeof(float) * C);
    for (int j = 0; j < C; j++) vec[j] = (float)(0.5 + 0.01 * j);
    icl_answer a0, a1;
    icl_answer_opts o = {.add_bos = -1, .answer = 1, .full_output = 1, .max_new = 6, .n_rows = R, .rows = rows,
                         .patch_row = -1};
    CHECK(icl_lm_answer(c, tk, prompt, " 01000", "01000", &o, s0, C, &a0, &err) == 0);
    o.patch_row = 1;
    o.patch_action = ICL_HOOK_ADD;
    o.patch_vec = zero;
    CHECK(icl_lm_answer(c, tk, prompt, " 01000", "01000", &o, s1, C, &a1, &err) == 0);
    CHECK_MSG(!memcmp(s0, s1, sizeof(float) * R * C), "adding a zero vector leaves every row bit-identical");
    CHECK(a0.generated && a1.generated && !strcmp(a0.generated, a1.generated));
    free(a1.generated);
    o.patch_vec = vec;
    CHECK(icl_lm_answer(c, tk, prompt, " 01000", "01000", &o, s1, C, &a1, &err) == 0);
    CHECK_MSG(!memcmp(s0, s1, sizeof(float) * C), "row 0 (before the patched layer) unchanged");
    double shift = 0;
    for (int j = 0; j < C; j++) shift += fabs((double)s1[C + j] - s0[C + j] - vec[j]);
    CHECK_MSG(shift < 1e-4 * C, "row 1 moved by exactly the vector (|dev| sum %g)", shift);
    int later_moved = 1;
    for (int k = 2; k < R; k++) later_moved &= memcmp(s0 + (size_t)k * C, s1 + (size_t)k * C, sizeof(float) * C) != 0;
    CHECK_MSG(later_moved, "rows after the patched one change");
    free(a0.generated);
    free(a1.generated);

    /* Positions: capture every position of the top layer with and without an ADD at position 5. */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(icl_tokenizer_encode(tk, prompt, strlen(prompt), -1, 0, &ids, &n, &err) == 0);
    float *all0 = malloc(sizeof(float) * n * C), *all1 = malloc(sizeof(float) * n * C);
    int pos5 = 5;
    icl_hook cap = {.site = ICL_SITE_RESID_POST, .layer = hp->n_layer - 1, .action = ICL_HOOK_CAPTURE, .out = all0};
    icl_hook hs[2] = {{.site = ICL_SITE_RESID_POST, .layer = 0, .positions = &pos5, .n_positions = 1, .action = ICL_HOOK_ADD,
                       .vec = vec},
                      cap};
    hs[1].out = all1;
    icl_lm_eval_opts eo = {ICL_LM_LOGITS_NONE, -1, 0};
    icl_lm_ctx_reset(c);
    CHECK(icl_lm_set_hooks(c, &cap, 1, &err) == 0 && icl_lm_eval(c, ids, (int)n, &eo, &err) == 0);
    icl_lm_ctx_reset(c);
    CHECK(icl_lm_set_hooks(c, hs, 2, &err) == 0 && icl_lm_eval(c, ids, (int)n, &eo, &err) == 0);
    CHECK_MSG(!memcmp(all0, all1, sizeof(float) * 5 * C), "positions before the patched one are untouched");
    int after = 1;
    for (size_t p = 5; p < n; p++) after &= memcmp(all0 + p * C, all1 + p * C, sizeof(float) * C) != 0;
    CHECK_MSG(after, "the patched position and every later one change");
    icl_lm_set_hooks(c, NULL, 0, &err);

    /* rewind: a prefix kept, a branch evaluated, the same logits as evaluating the branch from scratch */
    int32_t branch[3] = {ids[n - 1], ids[1], ids[2]};
    icl_lm_eval_opts last = {ICL_LM_LOGITS_LAST, -1, 0};
    float *l0 = malloc(sizeof(float) * hp->n_vocab);
    icl_lm_ctx_reset(c);
    CHECK(icl_lm_eval(c, ids, (int)n - 1, &last, &err) == 0 && icl_lm_eval(c, branch, 3, &last, &err) == 0);
    memcpy(l0, icl_lm_logits(c), sizeof(float) * hp->n_vocab);
    icl_lm_ctx_reset(c);
    CHECK(icl_lm_eval(c, ids, (int)n, &last, &err) == 0 && icl_lm_eval(c, ids, 2, &last, &err) == 0);
    CHECK(icl_lm_ctx_rewind(c, (int)n - 1, &err) == 0 && icl_lm_ctx_n_past(c) == (int)n - 1);
    CHECK(icl_lm_logits(c) == NULL);
    CHECK(icl_lm_eval(c, branch, 3, &last, &err) == 0);
    CHECK_MSG(!memcmp(l0, icl_lm_logits(c), sizeof(float) * hp->n_vocab), "a rewound branch equals a fresh one");
    CHECK(icl_lm_ctx_rewind(c, (int)n + 10, &err) == -1);

    /* LOGITS_TAIL: the last rows of LOGITS_ALL, bit for bit, also across internal steps (n_batch 4) */
    icl_lm_ctx *c4 = NULL;
    CHECK(icl_lm_ctx_init(&c4, lm, 0, 4, &err) == 0);
    size_t V = (size_t)hp->n_vocab;
    float *allv = malloc(sizeof(float) * n * V);
    icl_lm_eval_opts o_all = {ICL_LM_LOGITS_ALL, -1, 0};
    CHECK(c4 && icl_lm_eval(c4, ids, (int)n, &o_all, &err) == 0);
    if (c4) memcpy(allv, icl_lm_logits(c4), sizeof(float) * n * V);
    for (int nt = 1; c4 && nt <= 7; nt += 3) {
        icl_lm_eval_opts o_tail = {ICL_LM_LOGITS_TAIL, -1, nt};
        icl_lm_ctx_reset(c4);
        CHECK(icl_lm_eval(c4, ids, (int)n, &o_tail, &err) == 0);
        CHECK_MSG(!memcmp(icl_lm_logits(c4), allv + (n - nt) * V, sizeof(float) * nt * V),
                  "the last %d rows of logits equal LOGITS_ALL's", nt);
    }
    icl_lm_eval_opts o_bad = {ICL_LM_LOGITS_TAIL, -1, 0};
    icl_lm_ctx_reset(c4);
    CHECK(icl_lm_eval(c4, ids, (int)n, &o_bad, &err) == -1);
    icl_lm_ctx_free(c4);
    free(allv);
    free(l0);
    free(ids);
    free(all0);
    free(all1);
    free(s0);
    free(s1);
    free(zero);
    free(vec);
    icl_lm_ctx_free(c);
    icl_tokenizer_free(tk);
    icl_lm_free(lm);
    remove(path);
}

int main(void) {
    const char *dir = getenv("ICLAB_VOCAB_DIR");
    double a, b, r2;
    double x[4] = {0, 1, 2, 3}, y[4] = {1, 3, 5, 7.5};
    icl_linfit(x, y, 4, &a, &b, &r2);
    /* numpy: np.polyfit([0,1,2,3],[1,3,5,7.5],1) = [2.15, 0.9]; r^2 = corrcoef^2 = 0.9967654986522909 */
    CHECK_NEAR(a, 2.15, 1e-12);
    CHECK_NEAR(b, 0.9, 1e-12);
    CHECK_NEAR(r2, 0.9967654986522909, 1e-12);
    double cx[3] = {1, 1, 1};
    icl_linfit(cx, y, 3, &a, &b, &r2);
    CHECK(isnan(a) && isnan(r2));
    if (!dir) {
        printf("SKIP models: ICLAB_VOCAB_DIR is not set (make test sets it)\n");
        return icl_test_finish();
    }
    char v1[512], v2[512];
    snprintf(v1, sizeof v1, "%s/ggml-vocab-llama-bpe.gguf", dir);
    snprintf(v2, sizeof v2, "%s/ggml-vocab-llama-spm.gguf", dir);
    check_model("llama", v1);   /* byte-level BPE */
    check_model("qwen2", v1);
    check_model("llama", v2);   /* SentencePiece: the answer's leading space tokenizes differently */
    return icl_test_finish();
}
