#!/usr/bin/python3
"""Writes the Task Decodability fixtures (tests/fixtures/analysis_td_*.bin): leave-one-out k-NN
predictions of scikit-learn's KNeighborsClassifier, fitted on the other N-1 points for every point.

analysis_td_int.bin   small-integer coordinates, so every distance is exact in any precision: many
                      equal distances at the k-th neighbour, exact duplicate points (some with other
                      labels) and many tied votes (k even) exercise both tie rules.
                      Which of several points at exactly the k-th distance sklearn keeps is an
                      artefact of its search (kd-tree order, chunking, threads), not a rule; so for
                      points with such a boundary tie the fixture also stores the prediction of the
                      documented rule (lower index first), computed here in numpy, and the C test
                      compares with sklearn on every point without a boundary tie and with the
                      documented rule on all points.
analysis_td_float.bin continuous data on a large common offset (stresses Gram-matrix rounding),
                      Euclidean and cosine.

File layout (little-endian): "ICLTD1\\0\\0", int32 N, d, n_classes, n_cases, float32 X (N,d),
int32 labels (N), then per case: int32 k, int32 metric (0 euclidean, 1 cosine), int32 pred_sklearn (N),
int32 pred_rule (N) (exact distances, lower index first, smallest label among tied votes),
int32 boundary_tie (N) (1 where the k-th and (k+1)-th exact distances are equal).
Run from the repository root: /usr/bin/python3 tests/ref/analysis_td.py
"""
import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def loo_sklearn(X, y, k, metric):
    # The float32 values are passed as float64: the same numbers, but sklearn's cosine path would
    # otherwise round distances to float32 (~1e-7), which on this data reorders near neighbours.
    X = X.astype(np.float64)
    n = len(X)
    pred = np.empty(n, dtype=np.int32)
    for i in range(n):
        m = np.ones(n, bool)
        m[i] = False
        clf = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(X[m], y[m])
        pred[i] = clf.predict(X[i:i + 1])[0]
    return pred


def loo_exact(X, y, k, metric):
    """Exact distances in float64, lower index first among equal distances, smallest label among tied votes."""
    Xd = X.astype(np.float64)
    n, ncls = len(X), y.max() + 1
    pred = np.empty(n, dtype=np.int32)
    tie = np.zeros(n, np.int32)
    vote_ties = 0
    for i in range(n):
        if metric == "euclidean":
            D = ((Xd - Xd[i]) ** 2).sum(1)
        else:
            nr = np.linalg.norm(Xd, axis=1)
            D = 1 - (Xd @ Xd[i]) / (nr * nr[i])
        D[i] = np.inf
        order = np.lexsort((np.arange(n), D))[:k]
        if k < n - 1 and D[order[-1]] == np.sort(D)[k]:
            tie[i] = 1
        cnt = np.bincount(y[order], minlength=ncls)
        if (cnt == cnt.max()).sum() > 1:
            vote_ties += 1
        pred[i] = int(np.argmax(cnt))
    return pred, tie, vote_ties


def write(path, X, y, ncls, cases):
    with open(path, "wb") as f:
        f.write(b"ICLTD1\0\0")
        f.write(np.array([X.shape[0], X.shape[1], ncls, len(cases)], "<i4").tobytes())
        f.write(X.astype("<f4").tobytes())
        f.write(y.astype("<i4").tobytes())
        for k, metric, pred, rule, tie in cases:
            f.write(np.array([k, 0 if metric == "euclidean" else 1], "<i4").tobytes())
            f.write(pred.astype("<i4").tobytes())
            f.write(rule.astype("<i4").tobytes())
            f.write(tie.astype("<i4").tobytes())


def build(X, y, ncls, specs, path):
    cases = []
    for k, metric in specs:
        p = loo_sklearn(X, y, k, metric)
        e, tie, vt = loo_exact(X, y, k, metric)
        free = tie == 0
        agree = int((p == e)[free].sum())
        print(f"{path} k={k} {metric}: sklearn LOO TD={np.mean(p == y):.4f}, vote ties {vt}, "
              f"boundary distance ties {int(tie.sum())} (sklearn differs from the lower-index rule on "
              f"{int((p != e)[~free].sum())} of them), agreement elsewhere {agree}/{int(free.sum())}")
        assert agree == free.sum(), "sklearn disagrees with the documented rules away from boundary ties"
        cases.append((k, metric, p, e, tie))
    write(path, X, y, ncls, cases)


rng = np.random.default_rng(20240611)

# Integer data: 4 overlapping classes of unequal size in 9-D, entries in [-3, 3].
sizes = [40, 30, 30, 20]
centres = rng.integers(-1, 2, size=(4, 9))
X, y = [], []
for c, s in enumerate(sizes):
    X.append(np.clip(centres[c] + rng.integers(-2, 3, size=(s, 9)), -3, 3))
    y += [c] * s
X = np.concatenate(X).astype(np.float32)
y = np.array(y, np.int32)
perm = rng.permutation(len(y))
X, y = X[perm], y[perm]
# exact duplicates, a few of them carrying a different label than their twin
for t in range(12):
    a, b = rng.choice(len(y), 2, replace=False)
    X[b] = X[a]
    if t % 3 == 0:
        y[b] = (y[a] + 1) % 4
build(X, y, 4, [(10, "euclidean"), (4, "euclidean"), (1, "euclidean"), (7, "euclidean")],
      "tests/fixtures/analysis_td_int.bin")

# Continuous data: 3 classes in 64-D around a large shared offset.
n, d = 150, 64
y = np.repeat(np.arange(3), 50).astype(np.int32)
means = rng.normal(0, 0.35, size=(3, d))
X = (50.0 + means[y] + rng.normal(0, 1, size=(n, d))).astype(np.float32)
X[:, :8] *= 4  # some anisotropy
perm = rng.permutation(n)
X, y = X[perm], y[perm]
build(X, y, 3, [(10, "euclidean"), (5, "euclidean"), (10, "cosine"), (6, "cosine")],
      "tests/fixtures/analysis_td_float.bin")
