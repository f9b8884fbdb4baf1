#!/usr/bin/python3
"""Writes the reference fixtures for tests/test_estim.c: small fixed regression sequences and the
in-context predictions of numpy / scikit-learn estimators on them.

Run from the repository root:  /usr/bin/python3 tests/ref/estim_ref.py
Writes tests/fixtures/estim_<name>.bin, one per case, little-endian:
  int32[8]   magic 0x454C4349 ("ICLE"), version 1, B, K, D, n_bases, rank, groups
  float64[3] noise_var (informational), ridge lambda, lasso alpha
  int32[B]   concept of each sequence
  int32[B]   flags: bit 0 = rank-deficient by construction (duplicate / zero columns)
  float32    x (B,K,D), y (B,K), w (B,D)
  float64    expected predictions (5,B,K) in icl_estimator order: oracle-ls, ls, ridge, lasso, zero
The prediction at position k uses pairs 0..k-1 of the sequence (k = 0 predicts 0), exactly as
icl_estimate documents. References: np.linalg.lstsq(rcond=None) (min-norm least squares),
sklearn Ridge(fit_intercept=False, solver="svd"), sklearn Lasso(fit_intercept=False, tol=1e-12,
max_iter=10**6). The data are drawn with numpy's own generator (seeded), not iclab's, so the
estimators are checked independently of the task sampler; the basis masks follow the rule
documented in include/iclab/icl_task.h and are recomputed here.
"""
import struct
import sys
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import Lasso, Ridge

MAGIC = 0x454C4349


def basis_mask(D, n_bases, rank, groups, concept):
    m = np.zeros(D)
    if groups == 0:
        m[concept * rank:(concept + 1) * rank] = 1
        return m
    blk = D // groups
    P = n_bases // groups
    g, j = divmod(concept, P)
    start = (j * blk) // P
    for t in range(rank):
        m[g * blk + (start + t) % blk] = 1
    return m


def predictions(X, y, fit):
    """pred[k] = fit(X[:k], y[:k]) . X[k], pred[0] = 0."""
    K = X.shape[0]
    pred = np.zeros(K)
    for k in range(1, K):
        w = fit(X[:k], y[:k])
        pred[k] = X[k] @ w
    return pred


def lstsq(X, y):
    return np.linalg.lstsq(X, y, rcond=None)[0]


def make_case(name, seed, B, K, D, n_bases, rank, groups, noise_var, lam, alpha, degenerate):
    rng = np.random.default_rng(seed)
    concept = np.array([s % n_bases for s in range(B)], dtype=np.int32)
    flags = np.zeros(B, dtype=np.int32)
    x = rng.standard_normal((B, K, D)).astype(np.float32)
    w = np.zeros((B, D), dtype=np.float32)
    for s in range(B):
        w[s] = (rng.standard_normal(D) * basis_mask(D, n_bases, rank, groups, concept[s])).astype(np.float32)
    for s, kind in degenerate:
        cols = np.flatnonzero(basis_mask(D, n_bases, rank, groups, concept[s]))
        if kind == "dup":  # two identical columns inside the basis: rank deficient at every k
            x[s, :, cols[1]] = x[s, :, cols[0]]
        elif kind == "zero":  # a basis column that is identically zero
            x[s, :, cols[0]] = 0
        flags[s] |= 1
    xd = x.astype(np.float64)
    y = (np.einsum("bkd,bd->bk", xd, w.astype(np.float64)) +
         np.sqrt(noise_var) * rng.standard_normal((B, K))).astype(np.float32)
    yd = y.astype(np.float64)

    pred = np.zeros((5, B, K))
    for s in range(B):
        cols = np.flatnonzero(basis_mask(D, n_bases, rank, groups, concept[s]))
        pred[0, s] = predictions(xd[s][:, cols], yd[s], lstsq)
        pred[1, s] = predictions(xd[s], yd[s], lstsq)
        pred[2, s] = predictions(xd[s], yd[s],
                                 lambda X, t: Ridge(alpha=lam, fit_intercept=False, solver="svd").fit(X, t).coef_)
        pred[3, s] = predictions(
            xd[s], yd[s],
            lambda X, t: Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=10**6).fit(X, t).coef_)
        # pred[4] (zero) stays 0

    path = f"tests/fixtures/estim_{name}.bin"
    with open(path, "wb") as f:
        f.write(struct.pack("<8i", MAGIC, 1, B, K, D, n_bases, rank, groups))
        f.write(struct.pack("<3d", noise_var, lam, alpha))
        f.write(concept.astype("<i4").tobytes())
        f.write(flags.astype("<i4").tobytes())
        f.write(x.astype("<f4").tobytes())
        f.write(y.astype("<f4").tobytes())
        f.write(w.astype("<f4").tobytes())
        f.write(pred.astype("<f8").tobytes())
    print(f"wrote {path}")


def main():
    warnings.simplefilter("ignore", ConvergenceWarning)
    # D=8, two disjoint bases of rank 4, K=12: under- and over-determined positions for all estimators.
    make_case("d8", seed=8, B=4, K=12, D=8, n_bases=2, rank=4, groups=0, noise_var=0.01, lam=0.05, alpha=0.01,
              degenerate=[(3, "dup")])
    # The paper's shape: D=16, 4 disjoint bases of rank 4, K=20; one sequence with a zero column.
    make_case("d16", seed=16, B=5, K=20, D=16, n_bases=4, rank=4, groups=0, noise_var=0.01, lam=0.1, alpha=0.02,
              degenerate=[(4, "zero")])
    # Overlapping bases (paper §1.6): D=16, 8 bases in 2 groups, K=20.
    make_case("d16g2", seed=162, B=8, K=20, D=16, n_bases=8, rank=4, groups=2, noise_var=0.01, lam=0.01,
              alpha=0.005, degenerate=[])
    return 0


if __name__ == "__main__":
    sys.exit(main())
