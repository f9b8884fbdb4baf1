/* The whole model against PyTorch (fixture from tests/ref/model_ref.py, float64 reference):
 * loss, every layer's residual stream and the outputs, every parameter gradient, and the
 * parameters after three Adam steps. Tolerances (fp32 engine vs float64 reference):
 *   loss, residuals, outputs: relative L2 error <= 1e-5
 *   gradients: relative L2 error <= 1e-4 per parameter tensor (the target)
 *   params after three Adam steps fed the same gradients: max abs error <= 1e-6 (lr 1e-3: 0.1% of a step) */
#include <stdlib.h>
#include <string.h>
#include "iclab/icl_model.h"
#include "icl_test.h"

static float *read_floats(FILE *f, size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p || fread(p, sizeof(float), n, f) != n) {
        fprintf(stderr, "fixture truncated\n");
        exit(1);
    }
    return p;
}

int main(void) {
    FILE *f = fopen("tests/fixtures/model_ref.bin", "rb");
    CHECK(f != NULL);
    if (!f) return icl_test_finish();
    int hdr[10];
    CHECK(fread(hdr, sizeof(int), 10, f) == 10);
    icl_model_config cfg = {.n_layer = hdr[0], .n_head = hdr[1], .n_embd = hdr[2], .n_ctx = hdr[3], .d_in = hdr[4],
                            .d_out = hdr[5], .mlp_mult = hdr[6]};
    int B = hdr[7], T = hdr[8], L = cfg.n_layer, C = cfg.n_embd, O = cfg.d_out;
    size_t np = (size_t)hdr[9];
    icl_model m;
    icl_err err;
    CHECK(icl_model_init(&m, &cfg, &err) == 0);
    CHECK(m.n_params == np);
    float *params = read_floats(f, np), *tokens = read_floats(f, (size_t)B * T * cfg.d_in);
    float *targets = read_floats(f, (size_t)B * T * O), *mask = read_floats(f, (size_t)B * T * O);
    float *loss_ref = read_floats(f, 1), *resid_ref = read_floats(f, (size_t)(L + 1) * B * T * C);
    float *out_ref = read_floats(f, (size_t)B * T * O), *grads_ref = read_floats(f, np), *params3 = read_floats(f, np);
    fclose(f);

    memcpy(m.params, params, np * sizeof(float));
    float loss = 0;
    CHECK(icl_model_forward(&m, tokens, B, T, targets, mask, &loss, &err) == 0);
    CHECK_NEAR(loss, loss_ref[0], 1e-5 * fabs(loss_ref[0]));
    for (int l = 0; l <= L; l++) {
        size_t n = (size_t)B * T * C;
        double e = icl_rel_l2(m.a[ICL_A_RESID] + l * n, resid_ref + l * n, n);
        CHECK_MSG(e <= 1e-5, "residual stream %d: relative error %.3g", l, e);
    }
    CHECK(icl_rel_l2(m.a[ICL_A_OUT], out_ref, (size_t)B * T * O) <= 1e-5);

    icl_model_zero_grad(&m);
    CHECK(icl_model_backward(&m, &err) == 0);
    double worst = 0;
    for (int i = 0; i < ICL_NPARAMS; i++) {
        size_t off = m.g[i] - m.grads;
        double e = icl_rel_l2(m.g[i], grads_ref + off, m.param_sizes[i]);
        if (e > worst) worst = e;
        CHECK_MSG(e <= 1e-4, "gradient of %s: relative error %.3g", icl_param_specs[i].name, e);
    }
    printf("loss %.8f (ref %.8f), worst gradient relative error %.3g\n", loss, loss_ref[0], worst);

    /* three Adam steps from the initial parameters with the reference's gradients */
    memcpy(m.params, params, np * sizeof(float));
    memset(m.adam_m, 0, np * sizeof(float));
    memset(m.adam_v, 0, np * sizeof(float));
    m.adam_t = 0;
    icl_adam_config ac = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.9999f, .eps = 1e-8f, .weight_decay = 0};
    const float scales[3] = {1.0f, -0.5f, 2.0f};
    for (int s = 0; s < 3; s++) {
        for (size_t i = 0; i < np; i++) m.grads[i] = grads_ref[i] * scales[s];
        icl_adam_step(&m, &ac, ac.lr);
    }
    double maxd = 0;
    for (size_t i = 0; i < np; i++) maxd = fmax(maxd, fabs((double)m.params[i] - params3[i]));
    CHECK_MSG(maxd <= 1e-6, "params after 3 Adam steps: max abs error %.3g", maxd);
    printf("params after 3 Adam steps: max abs error %.3g\n", maxd);

    /* backward without targets is refused; a too-long sequence is refused */
    CHECK(icl_model_forward(&m, tokens, B, T, NULL, NULL, NULL, &err) == 0);
    CHECK(icl_model_backward(&m, &err) == -1);
    CHECK(icl_model_forward(&m, tokens, 1, cfg.n_ctx + 1, NULL, NULL, NULL, &err) == -1);

    free(params); free(tokens); free(targets); free(mask); free(loss_ref); free(resid_ref); free(out_ref);
    free(grads_ref); free(params3);
    icl_model_free(&m);
    return icl_test_finish();
}
