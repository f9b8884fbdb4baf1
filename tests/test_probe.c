/* Tests for the logistic-regression probe: fixtures with the exact optimum (probabilities within
 * 1e-6, weights within 1e-5 of the largest) and scikit-learn's fit (probabilities within 1e-3: its
 * lbfgs stops early, see tests/ref/analysis_probe.py; identical classes), the stratified split,
 * probe accuracy on easy and hopeless data, determinism, bad input. */
#include "iclab/icl_file.h"
#include "iclab/icl_probe.h"
#include "iclab/icl_rng.h"
#include "icl_test.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_fixture(const char *path) {
    char *buf; size_t n; icl_err err;
    int rc = icl_read_file(path, &buf, &n, &err);
    CHECK_MSG(rc == 0, "reading %s: %s", path, err.msg);
    if (rc) return;
    CHECK(n > 24 && memcmp(buf, "ICLLR1\0\0", 8) == 0);
    int32_t h[4];
    memcpy(h, buf + 8, 16);
    int N = h[0], d = h[1], K = h[2], ncase = h[3];
    size_t off = 24;
    float *X = malloc(sizeof(float) * N * d);
    int *y = malloc(sizeof(int) * N), *pred = malloc(sizeof(int) * N), *ytr = malloc(sizeof(int) * N);
    float *Xtr = malloc(sizeof(float) * N * d);
    double *P = malloc(sizeof(double) * N * K);
    memcpy(X, buf + off, sizeof(float) * N * d); off += sizeof(float) * N * d;
    memcpy(y, buf + off, sizeof(int) * N); off += sizeof(int) * N;
    for (int c = 0; c < ncase; c++) {
        int32_t st[2]; double C;
        memcpy(st, buf + off, 8); off += 8;
        memcpy(&C, buf + off, 8); off += 8;
        const unsigned char *tr = (const unsigned char *)buf + off; off += N;
        double *We = malloc(sizeof(double) * K * d), *be = malloc(sizeof(double) * K);
        double *Pe = malloc(sizeof(double) * N * K), *Psk = malloc(sizeof(double) * N * K);
        int *psk = malloc(sizeof(int) * N);
        memcpy(We, buf + off, sizeof(double) * K * d); off += sizeof(double) * K * d;
        memcpy(be, buf + off, sizeof(double) * K); off += sizeof(double) * K;
        memcpy(Pe, buf + off, sizeof(double) * N * K); off += sizeof(double) * N * K;
        memcpy(Psk, buf + off, sizeof(double) * N * K); off += sizeof(double) * N * K;
        memcpy(psk, buf + off, sizeof(int) * N); off += sizeof(int) * N;
        CHECK(off <= n);
        int ntr = 0;
        for (int i = 0; i < N; i++)
            if (tr[i]) {
                memcpy(Xtr + ntr * d, X + i * d, sizeof(float) * d);
                ytr[ntr++] = y[i];
            }
        icl_logreg_opts o;
        icl_logreg_opts_default(&o);
        o.C = C;
        o.standardize = st[0];
        icl_logreg m;
        rc = icl_logreg_fit(Xtr, ytr, ntr, d, K, &o, &m, &err);
        CHECK_MSG(rc == 0, "%s", err.msg);
        if (rc) continue;
        CHECK(icl_logreg_predict_proba(&m, X, N, d, P, &err) == 0);
        CHECK(icl_logreg_predict(&m, X, N, d, pred, &err) == 0);
        double dpe = 0, dps = 0, dc = 0, cmax = 0, db = 0;
        int same = 0;
        for (int i = 0; i < N * K; i++) {
            dpe = fmax(dpe, fabs(P[i] - Pe[i]));
            dps = fmax(dps, fabs(P[i] - Psk[i]));
        }
        for (int i = 0; i < N; i++) same += pred[i] == psk[i];
        for (int i = 0; i < K * d; i++) {
            dc = fmax(dc, fabs(m.W[i] - We[i]));
            cmax = fmax(cmax, fabs(We[i]));
        }
        for (int k = 0; k < K; k++) db = fmax(db, fabs(m.b[k] - be[k]));
        printf("%s C=%g standardize=%d: %d iterations (|grad| %.1e); vs exact optimum: max |dP| %.1e, "
               "max |dW| %.1e (max |W| %.2f), max |db| %.1e; vs sklearn: max |dP| %.1e, same class %d/%d\n",
               path, C, st[0], m.iters, m.grad, dpe, dc, cmax, db, dps, same, N);
        CHECK(m.converged);
        CHECK(dpe < 1e-4);
        CHECK(dps < 1e-3);
        CHECK(same == N);
        /* to a tighter tolerance than the default the optimum is matched closely */
        icl_logreg mt;
        o.tol = 1e-11;
        CHECK(icl_logreg_fit(Xtr, ytr, ntr, d, K, &o, &mt, &err) == 0);
        CHECK(icl_logreg_predict_proba(&mt, X, N, d, P, &err) == 0);
        dpe = dc = db = 0;
        for (int i = 0; i < N * K; i++) dpe = fmax(dpe, fabs(P[i] - Pe[i]));
        for (int i = 0; i < K * d; i++) dc = fmax(dc, fabs(mt.W[i] - We[i]));
        for (int k = 0; k < K; k++) db = fmax(db, fabs(mt.b[k] - be[k]));
        printf("   with tol 1e-11: %d iterations, max |dP| %.1e, max |dW| %.1e, max |db| %.1e\n", mt.iters, dpe, dc, db);
        if (C <= 1) { /* (1e-11 itself may be below what the line search can resolve) */
            CHECK(dpe < 1e-8);
            CHECK(dc < 1e-7 * cmax);
            CHECK(db < 1e-7 * (cmax + 1));
        } else { /* C = 100: the line search stalls on rounding of f near |grad| ~ 1e-10 */
            CHECK(dpe < 1e-5);
        }
        icl_logreg_free(&mt);
        o.tol = 1e-8;
        /* deterministic: a second fit gives the same bytes */
        icl_logreg m2;
        CHECK(icl_logreg_fit(Xtr, ytr, ntr, d, K, &o, &m2, &err) == 0);
        CHECK(memcmp(m.W, m2.W, sizeof(double) * K * d) == 0 && memcmp(m.b, m2.b, sizeof(double) * K) == 0);
        icl_logreg_free(&m2);
        icl_logreg_free(&m);
        free(We); free(be); free(Pe); free(Psk); free(psk);
    }
    CHECK(off == n);
    free(X); free(y); free(pred); free(ytr); free(Xtr); free(P); free(buf);
}

static void test_split(void) {
    int N = 103, C = 4;
    int *lab = malloc(sizeof(int) * N);
    unsigned char *t1 = malloc(N), *t2 = malloc(N), *t3 = malloc(N);
    for (int i = 0; i < N; i++) lab[i] = i < 40 ? 0 : i < 70 ? 1 : i < 102 ? 2 : 3; /* class 3: one point */
    icl_err err;
    CHECK(icl_stratified_split(lab, N, C, 0.5, 42, t1, &err) == 0);
    CHECK(icl_stratified_split(lab, N, C, 0.5, 42, t2, &err) == 0);
    CHECK(icl_stratified_split(lab, N, C, 0.5, 43, t3, &err) == 0);
    CHECK(memcmp(t1, t2, N) == 0);
    CHECK(memcmp(t1, t3, N) != 0);
    int cnt[4] = {0, 0, 0, 0};
    for (int i = 0; i < N; i++) cnt[lab[i]] += t1[i];
    CHECK(cnt[0] == 20 && cnt[1] == 15 && cnt[2] == 16 && cnt[3] == 0);
    CHECK(icl_stratified_split(lab, N, C, 0.25, 1, t1, &err) == 0);
    memset(cnt, 0, sizeof cnt);
    for (int i = 0; i < N; i++) cnt[lab[i]] += t1[i];
    CHECK(cnt[0] == 10 && cnt[1] == 8 && cnt[2] == 8); /* round(7.5) = 8 */
    CHECK(icl_stratified_split(lab, N, C, 1.0, 1, t1, &err) == -1);
    CHECK(icl_stratified_split(lab, N, 3, 0.5, 1, t1, &err) == -1); /* label 3 out of range */
    free(lab); free(t1); free(t2); free(t3);
}

static void test_probe_accuracy(void) {
    int N = 200, d = 32, C = 4;
    float *X = malloc(sizeof(float) * N * d);
    int *lab = malloc(sizeof(int) * N);
    icl_rng r; icl_rng_seed(&r, 5);
    /* separable: class c shifts feature c by 4; plus a huge constant feature and a big-scale one */
    for (int i = 0; i < N; i++) {
        lab[i] = i % C;
        for (int t = 0; t < d; t++) X[i * d + t] = (float)icl_rng_normal(&r) + (t == lab[i] ? 4.0f : 0.0f);
        X[i * d + d - 1] = 1000.0f;
        X[i * d + d - 2] *= 100.0f;
    }
    icl_probe_result res; icl_err err;
    icl_logreg_opts o;
    icl_logreg_opts_default(&o);
    o.standardize = 1;
    CHECK(icl_probe_accuracy(X, lab, N, d, C, 0.5, 1, &o, &res, &err) == 0);
    printf("separable probe: train %.3f test %.3f (chance %.3f, %d/%d points, converged %d)\n", res.train_acc,
           res.test_acc, res.chance, res.n_train, res.n_test, res.converged);
    CHECK(res.n_train == 100 && res.n_test == 100);
    CHECK(res.test_acc > 0.95 && res.train_acc > 0.99);
    CHECK_NEAR(res.chance, 0.25, 1e-12);
    /* labels unrelated to the data: held-out accuracy near chance */
    for (int i = 0; i < N; i++) lab[i] = (int)icl_rng_below(&r, C);
    for (int i = 0; i < N; i++) X[i * d + lab[i] % 3] += 0.0f;
    CHECK(icl_probe_accuracy(X, lab, N, d, C, 0.5, 1, NULL, &res, &err) == 0);
    printf("random-label probe: train %.3f test %.3f (chance %.3f)\n", res.train_acc, res.test_acc, res.chance);
    CHECK(res.test_acc < 0.45);
    /* errors */
    int one[6] = {0, 0, 0, 0, 0, 0};
    CHECK(icl_probe_accuracy(X, one, 6, d, 2, 0.5, 1, NULL, &res, &err) == -1);
    printf("error: %s\n", err.msg);
    icl_logreg m;
    int y3[6] = {0, 1, 0, 1, 0, 1};
    CHECK(icl_logreg_fit(X, y3, 6, d, 3, NULL, &m, &err) == -1); /* class 2 has no points */
    CHECK(strstr(err.msg, "class 2") != NULL);
    int ybad[6] = {0, 1, 0, 1, 0, 5};
    CHECK(icl_logreg_fit(X, ybad, 6, d, 2, NULL, &m, &err) == -1);
    o.C = 0;
    CHECK(icl_logreg_fit(X, y3, 6, d, 2, &o, &m, &err) == -1);
    X[3 * d + 2] = NAN;
    CHECK(icl_logreg_fit(X, y3, 6, d, 2, NULL, &m, &err) == -1);
    CHECK(strstr(err.msg, "X[3][2]") != NULL);
    printf("error: %s\n", err.msg);
    CHECK(icl_logreg_fit(X, y3, 1, d, 2, NULL, &m, &err) == -1);
    CHECK(icl_logreg_fit(X, y3, 6, 0, 2, NULL, &m, &err) == -1);
    free(X); free(lab);
}

int main(void) {
    check_fixture("tests/fixtures/analysis_probe_multi.bin");
    check_fixture("tests/fixtures/analysis_probe_binary.bin");
    test_split();
    test_probe_accuracy();
    return icl_test_finish();
}
