/* Causal tests on a small random model: the patching matrix, head ablation and algorithm distances
 * are finite and do not depend on how the probe set is cut into forward-pass chunks (a capture
 * buffer once followed the chunk wrongly and left the patched means uninitialised), and zeroing
 * heads of a random model does change its MSE. Off-basis sensitivity: 0 for the oracle and for a
 * model blind outside the basis, positive for the basis-agnostic estimators. */
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_causal.h"
#include "iclab/icl_estim.h"
#include "iclab/icl_pca.h"
#include "icl_test.h"

static int all_finite(const double *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

int main(void) {
    /* the paper's layer 5 of 12 and the same relative depth elsewhere, never the embedding or past
     * the last block's input */
    CHECK(icl_patch_paper_layer(12) == 5);
    CHECK(icl_patch_paper_layer(8) == 3);
    CHECK(icl_patch_paper_layer(4) == 2);
    CHECK(icl_patch_paper_layer(6) == 3);
    CHECK(icl_patch_paper_layer(2) == 1);
    CHECK(icl_patch_paper_layer(1) == 0);
    CHECK(icl_patch_paper_layer(24) == 10);
    icl_train_config c;
    icl_err err;
    CHECK(icl_train_config_preset(&c, "tiny", &err) == 0);
    icl_model_config mc;
    icl_train_model_config(&c, &mc);
    icl_model m;
    CHECK(icl_model_init(&m, &mc, &err) == 0);
    icl_rng rng;
    icl_rng_seed(&rng, 11);
    icl_model_init_weights(&m, &rng);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] += (float)(0.1 * icl_rng_normal(&rng));
    int nc = icl_task_n_concepts(&c.task), L = c.n_layer, H = c.n_head, per = 30;

    double d1[64], b1[8], d2[64], b2[8];
    c.batch = 7; /* several chunks, the last one partial */
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 0, 0, 0, per}, d1, NULL, b1, &err) == 0);
    c.batch = 500; /* one chunk */
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 0, 0, 0, per}, d2, NULL, b2, &err) == 0);
    CHECK(all_finite(d1, nc * nc) && all_finite(b1, nc));
    double maxd = 0;
    for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d1[i] - d2[i]));
    CHECK_MSG(maxd < 1e-6, "patching depends on the chunking (max difference %g)", maxd);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){L, 0, 0, 0, per}, d1, NULL, b1, &err) == -1); /* layer out of range */
    /* every y token: also independent of the chunking, and the same unpatched MSE */
    c.batch = 7;
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 0, 0, per}, d1, NULL, b1, &err) == 0);
    c.batch = 500;
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 0, 0, per}, d2, NULL, b2, &err) == 0);
    maxd = 0;
    for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d1[i] - d2[i]));
    CHECK_MSG(all_finite(d1, nc * nc) && maxd < 1e-6, "all-y patching depends on the chunking (%g)", maxd);
    for (int i = 0; i < nc; i++) CHECK(fabs(b1[i] - b2[i]) < 1e-6);
    /* shift patching (h + mean_t - mean_s): a self-shift adds exactly zero, so it changes nothing;
     * a cross-shift changes the prediction; the unpatched MSE is the same as with replacement */
    double se[64], se2[64];
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 1, 0, per}, d2, se, b2, &err) == 0);
    double maxcross = 0;
    for (int s = 0; s < nc; s++)
        for (int t = 0; t < nc; t++) {
            if (s == t) {
                CHECK_MSG(d2[s * nc + t] == 0, "self-shift of concept %d changed the MSE by %g", s, d2[s * nc + t]);
                CHECK_MSG(se[s * nc + t] == 0, "self-shift of concept %d has a standard error %g", s, se[s * nc + t]);
            } else {
                maxcross = fmax(maxcross, fabs(d2[s * nc + t]));
                CHECK_MSG(se[s * nc + t] > 0 && isfinite(se[s * nc + t]), "cross-shift %d->%d standard error %g", s, t, se[s * nc + t]);
            }
        }
    CHECK_MSG(maxcross > 1e-6, "no cross-shift moved the MSE (max %g)", maxcross);
    for (int i = 0; i < nc; i++) CHECK(fabs(b1[i] - b2[i]) < 1e-6);
    /* the standard error is that of a mean over the per-concept sequences: the delta of one sequence
     * per concept is that sequence's change, with no spread to measure (NaN, even for the self-shift);
     * and asking for it does not change the deltas */
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 1, 0, per}, d1, NULL, b1, &err) == 0);
    maxd = 0;
    for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d1[i] - d2[i]));
    CHECK_MSG(maxd == 0, "the standard error changed the deltas (%g)", maxd);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 1, 0, 1}, d1, se2, b1, &err) == 0);
    CHECK(isnan(se2[1]) && isnan(se2[0]));
    /* replacement with four times the sequences: about half the standard error (1/sqrt(n); each
     * estimate from 30 sequences is itself uncertain by roughly 15-30%, and the means get less noisy
     * too, so the band is wide). Not with shift here: in a random model the concept means barely
     * differ, so a shift is mostly the means' own noise and shrinks with n as well (SE ~ 1/n). */
    double *d4 = malloc(sizeof(double) * 64 * 3), *se4 = d4 + 64, *b4 = d4 + 128;
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 0, 0, per}, d2, se, b2, &err) == 0);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 0, 0, 4 * per}, d4, se4, b4, &err) == 0);
    double ratio = 0;
    for (int i = 0; i < nc * nc; i++) ratio += se[i] / se4[i] / (nc * nc);
    CHECK_MSG(ratio > 1.4 && ratio < 2.9, "standard error at 30 vs 120 sequences: mean ratio %.3f, expected about 2", ratio);
    free(d4);

    /* the query x token and every token: chunk-independent too; a self-shift at every token still
     * changes nothing; a patch at the query changes only the last prediction, so over every
     * position its change is exactly 1/K of the final prediction's */
    int K = c.task.n_points;
    for (int at = ICL_PATCH_AT_QUERY; at <= ICL_PATCH_AT_ALL_TOKENS; at++) {
        c.batch = 7;
        CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, at, 1, 0, per}, d1, se, b1, &err) == 0);
        c.batch = 500;
        CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, at, 1, 0, per}, d2, NULL, b2, &err) == 0);
        maxd = maxcross = 0;
        for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d1[i] - d2[i])), maxcross = fmax(maxcross, fabs(d1[i]));
        CHECK_MSG(all_finite(d1, nc * nc) && maxd < 1e-6, "%s patching depends on the chunking (%g)", icl_patch_site_name(at), maxd);
        CHECK_MSG(maxcross > 1e-6, "no %s cross-shift moved the MSE", icl_patch_site_name(at));
        for (int k = 0; k < nc; k++) CHECK(d1[k * nc + k] == 0 && se[k * nc + k] == 0);
    }
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, ICL_PATCH_AT_QUERY, 0, 0, per}, d1, NULL, b1, &err) == 0);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, ICL_PATCH_AT_QUERY, 0, 1, per}, d2, NULL, b2, &err) == 0);
    maxd = 0;
    for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d2[i] * K - d1[i]) / fmax(fabs(d1[i]), 1e-3));
    CHECK_MSG(maxd < 1e-5, "a query patch changed other positions' predictions (relative %g)", maxd);
    CHECK(icl_patch_site_name(ICL_PATCH_N_SITES) == NULL && icl_patch_site_name(-1) == NULL);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, ICL_PATCH_N_SITES, 0, 0, per}, d1, NULL, b1, &err) == -1);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 3, 0, per}, d1, NULL, b1, &err) == -1); /* no such mode */

    /* transport: chunk-independent, finite, with standard errors; the self cell is the two halves'
     * noise floor, not exactly zero; fewer than 4 sequences per concept cannot be split in halves */
    c.batch = 7;
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, ICL_PATCH_TRANSPORT, 0, per}, d1, se, b1, &err) == 0);
    c.batch = 500;
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, ICL_PATCH_TRANSPORT, 0, per}, d2, NULL, b2, &err) == 0);
    maxd = 0;
    for (int i = 0; i < nc * nc; i++) maxd = fmax(maxd, fabs(d1[i] - d2[i]));
    CHECK_MSG(all_finite(d1, nc * nc) && all_finite(se, nc * nc) && maxd < 1e-6, "transport patching: chunking difference %g", maxd);
    int self_moved = 0;
    for (int k = 0; k < nc; k++) self_moved |= d1[k * nc + k] != 0 && se[k * nc + k] > 0;
    CHECK_MSG(self_moved, "a self-transport moved nothing: the halves are not separate estimates");
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, ICL_PATCH_TRANSPORT, 0, 3}, d1, se, b1, &err) == -1);

    /* the Gaussian transport map itself: for random positive definite A and B (one nearly singular
     * direction in A, as the first tokens' streams have), T is symmetric, positive definite and
     * carries A onto B: T A T = B */
    enum { TN = 6 };
    double GA[TN * TN], GB[TN * TN], GT[TN * TN], ra[TN * TN], rb[TN * TN], ta[TN * TN];
    for (int i = 0; i < TN * TN; i++) ra[i] = icl_rng_normal(&rng), rb[i] = icl_rng_normal(&rng);
    for (int i = 0; i < TN; i++)
        for (int j = 0; j < TN; j++) {
            double sa = 0, sb = 0;
            for (int k = 0; k < TN; k++) sa += ra[i * TN + k] * ra[j * TN + k] * (k == 0 ? 1e-8 : 1), sb += rb[i * TN + k] * rb[j * TN + k];
            GA[i * TN + j] = sa + (i == j ? 1e-3 : 0);
            GB[i * TN + j] = sb;
        }
    CHECK(icl_gaussian_transport(GA, GB, TN, GT, &err) == 0);
    double asym = 0, resid = 0, scaleb = 0;
    for (int i = 0; i < TN; i++)
        for (int j = 0; j < TN; j++) {
            double s1v = 0;
            for (int k = 0; k < TN; k++) s1v += GT[i * TN + k] * GA[k * TN + j];
            ta[i * TN + j] = s1v;
            asym = fmax(asym, fabs(GT[i * TN + j] - GT[j * TN + i]));
        }
    for (int i = 0; i < TN; i++)
        for (int j = 0; j < TN; j++) {
            double s1v = 0;
            for (int k = 0; k < TN; k++) s1v += ta[i * TN + k] * GT[k * TN + j];
            resid = fmax(resid, fabs(s1v - GB[i * TN + j]));
            scaleb = fmax(scaleb, fabs(GB[i * TN + j]));
        }
    CHECK_MSG(asym < 1e-9 * scaleb, "transport map not symmetric (%g)", asym);
    CHECK_MSG(resid < 1e-8 * scaleb, "T A T differs from B by %g (scale %g)", resid, scaleb);
    double GTc[TN * TN], ev[TN], evec[TN * TN];
    memcpy(GTc, GT, sizeof GT);
    CHECK(icl_sym_eigen(GTc, TN, ev, evec, &err) == 0);
    CHECK_MSG(ev[TN - 1] > 0 && ev[0] >= ev[TN - 1], "transport map not positive definite (smallest eigenvalue %g)", ev[TN - 1]);

    double *h1 = malloc(sizeof(double) * L * H * nc), *h2 = malloc(sizeof(double) * L * H * nc);
    c.batch = 7;
    CHECK(icl_head_ablation(&m, &c, per, h1, b1, &err) == 0);
    c.batch = 500;
    CHECK(icl_head_ablation(&m, &c, per, h2, b2, &err) == 0);
    maxd = 0;
    for (int i = 0; i < L * H * nc; i++) maxd = fmax(maxd, fabs(h1[i] - h2[i]));
    CHECK(all_finite(h1, L * H * nc));
    CHECK_MSG(maxd < 1e-6, "head ablation depends on the chunking (max difference %g)", maxd);
    int any_effect = 0;
    for (int i = 0; i < L * H * nc; i++) any_effect |= fabs(h1[i]) > 1e-6;
    CHECK_MSG(any_effect, "zeroing heads of a random model changes its MSE");
    /* --mse all: the unpatched MSE over every position is head ablation's (the same probe
     * sequences, the same mean over positions); a self-shift still changes nothing; patching moves
     * the averaged MSE differently from the final prediction's */
    double dall[64], seall[64], ball[8];
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 1, 1, per}, dall, seall, ball, &err) == 0);
    for (int k = 0; k < nc; k++) CHECK_MSG(fabs(ball[k] - b2[k]) < 1e-9 * b2[k], "concept %d: all-position MSE %.9g, head ablation's %.9g", k, ball[k], b2[k]);
    CHECK(icl_patch_matrix(&m, &c, &(icl_patch_spec){1, 1, 1, 0, per}, d2, se, b1, &err) == 0);
    maxd = 0;
    for (int s = 0; s < nc; s++)
        for (int t = 0; t < nc; t++) {
            if (s == t) CHECK(dall[s * nc + t] == 0 && seall[s * nc + t] == 0);
            else CHECK(isfinite(dall[s * nc + t]) && seall[s * nc + t] > 0);
            maxd = fmax(maxd, fabs(dall[s * nc + t] - d2[s * nc + t]));
        }
    CHECK_MSG(maxd > 1e-9, "all-position patching equals the final prediction's (%g)", maxd);

    double a1[64 * ICL_N_ESTIMATORS], a2[64 * ICL_N_ESTIMATORS];
    c.batch = 7;
    CHECK(icl_algorithm_distance(&m, &c, per, NULL, a1, &err) == 0);
    c.batch = 500;
    CHECK(icl_algorithm_distance(&m, &c, per, NULL, a2, &err) == 0);
    CHECK(all_finite(a1, nc * ICL_N_ESTIMATORS));
    maxd = 0;
    for (int i = 0; i < nc * ICL_N_ESTIMATORS; i++) maxd = fmax(maxd, fabs(a1[i] - a2[i]));
    CHECK_MSG(maxd < 1e-6, "algorithm distance depends on the chunking (max difference %g)", maxd);

    /* Off-basis sensitivity: the oracle and the zero predictor never move; the basis-agnostic
     * estimators and the random model do; the result does not depend on the chunking. */
    enum { NS = 1 + ICL_N_ESTIMATORS };
    double s1[64 * NS], s2[64 * NS];
    c.batch = 7;
    CHECK(icl_offbasis_sensitivity(&m, &c, per, NULL, s1, &err) == 0);
    c.batch = 500;
    CHECK(icl_offbasis_sensitivity(&m, &c, per, NULL, s2, &err) == 0);
    maxd = 0;
    for (int i = 0; i < nc * NS; i++) maxd = fmax(maxd, fabs(s1[i] - s2[i]));
    CHECK_MSG(all_finite(s1, nc * NS) && maxd < 1e-6, "off-basis sensitivity depends on the chunking (%g)", maxd);
    for (int k = 0; k < nc; k++) {
        CHECK(s1[k * NS + 1 + ICL_EST_ORACLE_LS] == 0 && s1[k * NS + 1 + ICL_EST_ZERO] == 0);
        CHECK(s1[k * NS + 1 + ICL_EST_RIDGE] > 0.01 && s1[k * NS + 1 + ICL_EST_LASSO] > 0.001);
        CHECK(s1[k * NS] > 1e-6);
    }
    /* the estimators' predictions computed once and passed in give the same numbers, bit for bit */
    {
        icl_estimator_refs refs;
        double a3[64 * ICL_N_ESTIMATORS], s3[64 * NS];
        CHECK(icl_estimator_refs_init(&refs, &c, per, &err) == 0);
        CHECK(icl_algorithm_distance(&m, &c, per, &refs, a3, &err) == 0);
        CHECK(icl_offbasis_sensitivity(&m, &c, per, &refs, s3, &err) == 0);
        CHECK(memcmp(a3, a2, sizeof(double) * nc * ICL_N_ESTIMATORS) == 0);
        CHECK(memcmp(s3, s2, sizeof(double) * nc * NS) == 0);
        CHECK(icl_algorithm_distance(&m, &c, per + 1, &refs, a3, &err) == -1 && strstr(err.msg, "sequences per concept"));
        icl_estimator_refs_free(&refs);
        CHECK(refs.probe[0] == NULL);
    }
    /* A model blind to every coordinate outside basis 1 (read-in columns zeroed) does not move on
     * basis-1 sequences, whose redrawn coordinates are exactly those, but moves on the others. */
    int D = c.task.dim, C = c.n_embd;
    float mask[1024];
    icl_task_basis_mask(&c.task, 0, mask);
    for (int o = 0; o < C; o++)
        for (int d = 0; d < D; d++)
            if (mask[d] == 0) m.p[ICL_P_WIN][(size_t)o * D + d] = 0;
    CHECK(icl_offbasis_sensitivity(&m, &c, per, NULL, s1, &err) == 0);
    CHECK_MSG(s1[0] == 0, "a model blind outside basis 1 moved by %g on basis-1 sequences", s1[0]);
    for (int k = 1; k < nc; k++) CHECK_MSG(s1[k * NS] > 1e-6, "basis %d: sensitivity %g", k + 1, s1[k * NS]);
    /* only basis tasks with two or more bases */
    icl_train_config one = c;
    one.task.n_bases = 1;
    CHECK(icl_offbasis_sensitivity(&m, &one, per, NULL, s1, &err) == -1);
    icl_train_config fam = c;
    fam.task.kind = ICL_TASK_FAMILIES;
    CHECK(icl_offbasis_sensitivity(&m, &fam, per, NULL, s1, &err) == -1);

    free(h1);
    free(h2);
    icl_model_free(&m);
    return icl_test_finish();
}
