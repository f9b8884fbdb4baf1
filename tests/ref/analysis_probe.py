#!/usr/bin/python3
"""Writes tests/fixtures/analysis_probe_{multi,binary}.bin: scikit-learn
LogisticRegression(multi_class='multinomial', penalty='l2', solver='lbfgs', tol 1e-12,
max_iter 100000) fitted on the training part of a stratified split, optionally after StandardScaler in a
pipeline, plus the exact optimum of the same objective found here by Newton's method.
sklearn's lbfgs stops on scipy's default relative-decrease test (ftol 2.2e-9) whatever its gtol, so its
probabilities can be ~1e-4 off the optimum (checked below: within 1e-3); the C test compares tightly
with the exact optimum and loosely (1e-3, identical classes) with sklearn.
For two classes sklearn reports coef_ = W_1 of the two-row softmax (W_0 = -W_1), checked below.
Layout (little-endian): "ICLLR1\\0\\0", int32 N, d, K, n_cases, float32 X (N,d), int32 y (N); per case:
int32 standardize, int32 pad, float64 C, uint8 is_train (N), float64 W (K,d) and b (K) (centred) of the
exact optimum, float64 its probabilities (N,K), float64 sklearn's predict_proba (N,K), int32 sklearn's
predict (N).
Run from the repository root: /usr/bin/python3 tests/ref/analysis_probe.py"""
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def newton(Xt, yt, K, C):
    """Exact minimiser of mean softmax loss + |W|^2 / (2 C n), intercept unpenalised."""
    n, d = Xt.shape
    A = np.hstack([Xt, np.ones((n, 1))])
    Y = np.eye(K)[yt]
    theta = np.zeros((K, d + 1))
    lam = 1.0 / (C * n)
    R = np.zeros(d + 1)
    R[:d] = lam
    for it in range(100):
        Z = A @ theta.T
        Z -= Z.max(1, keepdims=True)
        P = np.exp(Z)
        P /= P.sum(1, keepdims=True)
        G = ((P - Y).T @ A) / n + theta * R
        if np.abs(G).max() < 1e-14:
            break
        H = np.zeros((K * (d + 1), K * (d + 1)))
        for i in range(n):
            S = np.diag(P[i]) - np.outer(P[i], P[i])
            H += np.kron(S, np.outer(A[i], A[i]))
        H /= n
        H += np.diag(np.tile(R, K))
        step = np.linalg.lstsq(H, G.ravel(), rcond=None)[0]  # singular along the common intercept
        theta -= step.reshape(K, d + 1)
    W, b = theta[:, :d], theta[:, d] - theta[:, d].mean()
    return W, b, np.abs(G).max()


def fit(X, y, train, C, standardize):
    lr = LogisticRegression(multi_class="multinomial", C=C, tol=1e-12, max_iter=100000)
    model = make_pipeline(StandardScaler(), lr) if standardize else lr
    model.fit(X[train].astype(np.float64), y[train])
    P = model.predict_proba(X.astype(np.float64))
    return lr.coef_, lr.intercept_, P, model.predict(X.astype(np.float64)).astype(np.int32), lr.n_iter_[0]


def write(path, X, y, K, cases):
    N, d = X.shape
    with open(path, "wb") as f:
        f.write(b"ICLLR1\0\0")
        f.write(np.array([N, d, K, len(cases)], "<i4").tobytes())
        f.write(X.astype("<f4").tobytes())
        f.write(y.astype("<i4").tobytes())
        for C, standardize, seed in cases:
            idx = np.arange(N)
            tr, _ = train_test_split(idx, test_size=0.5, stratify=y, random_state=seed)
            train = np.zeros(N, bool)
            train[tr] = True
            coef, icpt, P, pred, nit = fit(X, y, train, C, standardize)
            X64 = X.astype(np.float64)
            Xs = X64
            if standardize:
                mu, sd = X64[train].mean(0), X64[train].std(0)
                Xs = (X64 - mu) / np.where(sd > 0, sd, 1)
            W, b, gmax = newton(Xs[train], y[train], K, C)
            Z = Xs @ W.T + b
            Pe = np.exp(Z - Z.max(1, keepdims=True))
            Pe /= Pe.sum(1, keepdims=True)
            dP = np.abs(Pe - P).max()
            assert dP < 1e-3 and (Pe.argmax(1) == pred).all()
            if K == 2:
                assert np.abs(coef[0] - W[1]).max() < 1e-3 * np.abs(W).max()
            f.write(np.array([standardize, 0], "<i4").tobytes())
            f.write(np.array([C], "<f8").tobytes())
            f.write(train.astype(np.uint8).tobytes())
            for a in (W, b, Pe, P):
                f.write(np.ascontiguousarray(a, "<f8").tobytes())
            f.write(pred.astype("<i4").tobytes())
            acc = np.mean(pred[~train] == y[~train])
            print(f"{path} C={C} standardize={standardize}: sklearn {nit} lbfgs iterations, held-out accuracy "
                  f"{acc:.3f}, max |P_sklearn - P_exact| {dP:.1e} (Newton max|grad| {gmax:.1e})")


rng = np.random.default_rng(11)
# 3 overlapping classes in 10-D, features on different scales and offsets
N, d, K = 120, 10, 3
y = np.repeat(np.arange(K), N // K)
means = rng.normal(0, 1.0, size=(K, d))
X = means[y] + rng.normal(0, 1.2, size=(N, d))
X = X * np.linspace(0.5, 4, d) + np.linspace(-3, 5, d)
perm = rng.permutation(N)
X, y = X[perm].astype(np.float32), y[perm].astype(np.int32)
write("tests/fixtures/analysis_probe_multi.bin", X, y, K, [(1.0, 0, 0), (0.5, 1, 1), (100.0, 0, 2)])
# two classes
N, d, K = 80, 6, 2
y = np.repeat(np.arange(K), N // K)
X = rng.normal(0, 1, size=(N, d)) + 0.8 * y[:, None] * rng.normal(size=d)
perm = rng.permutation(N)
X, y = X[perm].astype(np.float32), y[perm].astype(np.int32)
write("tests/fixtures/analysis_probe_binary.bin", X, y, K, [(1.0, 0, 0), (0.2, 1, 3)])
