/* Hooks on the engine's forward pass: capture matches the stored activations, replacing a
 * representation with itself changes nothing to the last bit, adding a vector shifts exactly that
 * representation, zeroing a head changes only what causally depends on it, bad hooks are refused. */
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_decode.h"
#include "iclab/icl_model.h"
#include "icl_test.h"

int main(void) {
    icl_model_config cfg = {.n_layer = 3, .n_head = 4, .n_embd = 16, .n_ctx = 12, .d_in = 5, .d_out = 1, .mlp_mult = 4};
    int B = 3, T = 10, C = 16, hs = 4, L = 3;
    icl_model m;
    icl_err err;
    icl_rng rng;
    icl_rng_seed(&rng, 3);
    CHECK(icl_model_init(&m, &cfg, &err) == 0);
    icl_model_init_weights(&m, &rng);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(0.05 * icl_rng_normal(&rng)); /* non-trivial biases */
    float *tok = malloc(sizeof(float) * B * T * 5);
    for (int i = 0; i < B * T * 5; i++) tok[i] = (float)icl_rng_normal(&rng);
    size_t NC = (size_t)B * T * C;
    float *out0 = malloc(sizeof(float) * B * T), *resid0 = malloc(sizeof(float) * (L + 1) * NC);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    memcpy(out0, m.a[ICL_A_OUT], sizeof(float) * B * T);
    memcpy(resid0, m.a[ICL_A_RESID], sizeof(float) * (L + 1) * NC);

    /* capture the residual after block 1 at positions {2, 7, 9}: equals the stored activations */
    int pos[3] = {2, 7, 9};
    float *cap = malloc(sizeof(float) * B * 3 * C);
    icl_hook h = {.site = ICL_SITE_RESID_POST, .layer = 1, .positions = pos, .n_positions = 3, .action = ICL_HOOK_CAPTURE, .out = cap};
    CHECK(icl_model_set_hooks(&m, &h, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    int same = 1;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 3; k++)
            if (memcmp(cap + ((size_t)b * 3 + k) * C, resid0 + 2 * NC + ((size_t)b * T + pos[k]) * C, sizeof(float) * C)) same = 0;
    CHECK_MSG(same, "captured vectors equal the stored residual stream");
    CHECK(memcmp(m.a[ICL_A_OUT], out0, sizeof(float) * B * T) == 0);

    /* replace with itself (per sequence): bit-identical outputs */
    icl_hook rep = {.site = ICL_SITE_RESID_POST, .layer = 1, .positions = pos, .n_positions = 3, .action = ICL_HOOK_REPLACE,
                    .vec = cap, .per_sequence = 1};
    CHECK(icl_model_set_hooks(&m, &rep, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    CHECK_MSG(memcmp(m.a[ICL_A_OUT], out0, sizeof(float) * B * T) == 0, "self-replacement leaves the output unchanged");
    /* a backward pass is refused while an intervention is set */
    float *tg = calloc(B * T, sizeof(float));
    CHECK(icl_model_forward(&m, tok, B, T, tg, NULL, NULL, &err) == 0);
    CHECK(icl_model_backward(&m, &err) == -1);

    /* add a vector at the last position of the block-0 input: the stream there moves by exactly it,
     * and the positions before it are untouched (causality) */
    float v[16];
    for (int j = 0; j < C; j++) v[j] = 0.25f * (j + 1);
    int last = T - 1;
    icl_hook add = {.site = ICL_SITE_RESID_PRE, .layer = 0, .positions = &last, .n_positions = 1, .action = ICL_HOOK_ADD, .vec = v};
    CHECK(icl_model_set_hooks(&m, &add, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    double maxdev = 0;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < C; j++) {
            size_t i = ((size_t)b * T + last) * C + j;
            maxdev = fmax(maxdev, fabs((double)m.a[ICL_A_RESID][i] - resid0[i] - v[j]));
        }
    CHECK_MSG(maxdev < 1e-6, "added vector shifts the stream by exactly it (dev %g)", maxdev);
    int earlier_same = 1, last_changed = 1;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < last; t++)
            if (m.a[ICL_A_OUT][b * T + t] != out0[b * T + t]) earlier_same = 0;
        if (m.a[ICL_A_OUT][b * T + last] == out0[b * T + last]) last_changed = 0;
    }
    CHECK(earlier_same);
    CHECK(last_changed);

    /* zero head 2 of layer 1 at position 4: its channels become zero there, the other heads' channels
     * and everything before layer 1 stay bit-identical, outputs before position 4 are unchanged,
     * the output at position 4 changes */
    int p4 = 4;
    icl_hook z = {.site = ICL_SITE_HEAD_OUT, .layer = 1, .head = 2, .positions = &p4, .n_positions = 1, .action = ICL_HOOK_ZERO};
    CHECK(icl_model_set_hooks(&m, &z, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    CHECK(memcmp(m.a[ICL_A_RESID], resid0, sizeof(float) * 2 * NC) == 0); /* streams 0 and 1 */
    int zeroed = 1, others_same = 1;
    float *atty1 = m.a[ICL_A_ATTY] + NC;
    for (int b = 0; b < B; b++)
        for (int j = 0; j < C; j++) {
            float val = atty1[((size_t)b * T + p4) * C + j];
            if (j / hs == 2 && val != 0) zeroed = 0;
        }
    /* rerun without hooks to compare the other heads' outputs at layer 1 */
    float *atty_ref = malloc(sizeof(float) * NC);
    memcpy(atty_ref, atty1, sizeof(float) * NC);
    CHECK(icl_model_set_hooks(&m, NULL, 0, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == 0);
    for (size_t i = 0; i < NC; i++) {
        int t = (int)(i / C) % T, j = (int)(i % C);
        if (!(t == p4 && j / hs == 2) && atty_ref[i] != atty1[i]) others_same = 0;
    }
    CHECK(zeroed);
    CHECK_MSG(others_same, "zeroing one head leaves the other heads' outputs bit-identical");
    CHECK(memcmp(m.a[ICL_A_OUT], out0, sizeof(float) * B * T) == 0); /* hooks removed: back to the original */

    /* bad hooks */
    icl_hook bad = {.site = ICL_SITE_RESID_POST, .layer = 3, .action = ICL_HOOK_ZERO};
    CHECK(icl_model_set_hooks(&m, &bad, 1, &err) == -1);
    bad.layer = 0;
    bad.site = ICL_SITE_HEAD_OUT;
    bad.head = 4;
    CHECK(icl_model_set_hooks(&m, &bad, 1, &err) == -1);
    int far = 12;
    icl_hook badpos = {.site = ICL_SITE_RESID_PRE, .layer = 0, .positions = &far, .n_positions = 1, .action = ICL_HOOK_ZERO};
    CHECK(icl_model_set_hooks(&m, &badpos, 1, &err) == -1);
    far = 11; /* inside the context but past this batch's T = 10 */
    CHECK(icl_model_set_hooks(&m, &badpos, 1, &err) == 0);
    CHECK(icl_model_forward(&m, tok, B, T, NULL, NULL, NULL, &err) == -1);
    icl_hook nocap = {.site = ICL_SITE_RESID_PRE, .layer = 0, .action = ICL_HOOK_CAPTURE};
    CHECK(icl_model_set_hooks(&m, &nocap, 1, &err) == -1);

    /* named position sets of a 4-pair sequence (tokens x1 y1 x2 y2 x3 y3 x4 y4) */
    int ps[16];
    CHECK(icl_token_positions("all", 4, ps, 16, &err) == 8 && ps[7] == 7);
    CHECK(icl_token_positions("x", 4, ps, 16, &err) == 4 && ps[0] == 0 && ps[3] == 6);
    CHECK(icl_token_positions("y", 4, ps, 16, &err) == 4 && ps[0] == 1 && ps[3] == 7);
    CHECK(icl_token_positions("last", 4, ps, 16, &err) == 1 && ps[0] == 7);
    CHECK(icl_token_positions("y:2", 4, ps, 16, &err) == 1 && ps[0] == 3);
    CHECK(icl_token_positions("x:4", 4, ps, 16, &err) == 1 && ps[0] == 6);
    CHECK(icl_token_positions("y:5", 4, ps, 16, &err) == -1);
    CHECK(icl_token_positions("z:1", 4, ps, 16, &err) == -1);
    CHECK(icl_token_positions("y:1x", 4, ps, 16, &err) == -1);
    CHECK(icl_token_positions("all", 4, ps, 3, &err) == -1);

    free(tok); free(out0); free(resid0); free(cap); free(tg); free(atty_ref);
    icl_model_free(&m);
    return icl_test_finish();
}
