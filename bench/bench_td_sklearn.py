#!/usr/bin/python3
"""scikit-learn doing the work of bench/bench_td.c: leave-one-out k-NN Task Decodability on every
layer. Usage: /usr/bin/python3 bench/bench_td_sklearn.py DUMP  (DUMP written by bench_td --dump).

Two sklearn forms are timed:
  * kneighbors(X=None) on a classifier fitted to all N points: sklearn leaves each point out of its
    own neighbour list, which is exactly leave-one-out, followed by the same majority vote as
    KNeighborsClassifier.predict (smallest label among tied counts). All layers.
  * the literal form: for every point, fit on the other N-1 and predict it (first layer only,
    extrapolated to all layers), checked to give the same predictions.
The TD values are compared with the ones bench_td computed in C.
"""
import sys
import time

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

path = sys.argv[1]
with open(path, "rb") as f:
    L, N, d, k, metric = np.frombuffer(f.read(20), "<i4")
    X = np.frombuffer(f.read(4 * L * N * d), "<f4").reshape(L, N, d)
    y = np.frombuffer(f.read(4 * N), "<i4").astype(np.int64)
    td_c = np.frombuffer(f.read(8 * L), "<f8")
metric = "euclidean" if metric == 0 else "cosine"
if metric == "cosine":
    # sklearn's cosine distances on float32 input are float32 (rounding-level near-ties reorder
    # neighbours, even between its own two forms below); the same values in float64 avoid that.
    X = X.astype(np.float64)
ncls = y.max() + 1
print(f"sklearn TD bench: {L} layers of {N} x {d}, k={k}, {metric}")


def td_layer(Xl):
    clf = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(Xl, y)
    ind = clf.kneighbors(return_distance=False)  # X=None: each point excluded from its own list
    votes = np.zeros((N, ncls), np.int64)
    np.add.at(votes, (np.repeat(np.arange(N), k), y[ind].ravel()), 1)
    pred = votes.argmax(1)  # first maximum = smallest tied label, as predict()
    return pred


td_layer(X[0])  # warm-up
best = 1e30
for rep in range(3):
    t0 = time.perf_counter()
    preds = [td_layer(X[l]) for l in range(L)]
    best = min(best, time.perf_counter() - t0)
td_sk = np.array([np.mean(p == y) for p in preds])
print("TD per layer:", " ".join(f"{v:.4f}" for v in td_sk))
print(f"best of 3: kneighbors(X=None) leave-one-out, all layers: {best:.3f} s total")
print(f"max |TD_sklearn - TD_iclab| over layers: {np.abs(td_sk - td_c).max():.2e}")

t0 = time.perf_counter()
lit = np.empty(N, np.int64)
for i in range(N):
    m = np.ones(N, bool)
    m[i] = False
    lit[i] = KNeighborsClassifier(n_neighbors=k, metric=metric).fit(X[0][m], y[m]).predict(X[0][i:i + 1])[0]
t_lit = time.perf_counter() - t0
print(f"literal refit-per-point leave-one-out, layer 0: {t_lit:.3f} s (x{L} layers = {t_lit * L:.1f} s); "
      f"same predictions as kneighbors(X=None): {int((lit == preds[0]).sum())}/{N}")
