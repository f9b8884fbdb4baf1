#!/usr/bin/python3
"""Writes tests/fixtures/analysis_pca_{tall,wide}.bin: scikit-learn PCA(n_components=m,
svd_solver='full') on float32 data (given to sklearn as the same values in float64).
tall: N=80 > d=12 (scatter-matrix path); wide: N=30 <= d=60 (Gram path).
Layout (little-endian): "ICLPCA1\\0", int32 N, d, m, float32 X (N,d), then float64
explained_variance_ (m), explained_variance_ratio_ (m), components_ (m,d), fit_transform (N,m).
Run from the repository root: /usr/bin/python3 tests/ref/analysis_pca.py"""
import numpy as np
from sklearn.decomposition import PCA


def write(path, X, m):
    X64 = X.astype(np.float64)
    p = PCA(n_components=m, svd_solver="full")
    Z = p.fit_transform(X64)
    with open(path, "wb") as f:
        f.write(b"ICLPCA1\0")
        f.write(np.array([X.shape[0], X.shape[1], m], "<i4").tobytes())
        f.write(X.astype("<f4").tobytes())
        for a in (p.explained_variance_, p.explained_variance_ratio_, p.components_, Z):
            f.write(np.ascontiguousarray(a, "<f8").tobytes())
    print(path, "explained variance", p.explained_variance_, "ratio", p.explained_variance_ratio_)


rng = np.random.default_rng(7)
# anisotropic Gaussian with distinct variances, rotated, on a large offset
N, d = 80, 12
S = np.diag(np.linspace(5, 0.3, d))
Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
X = (rng.normal(size=(N, d)) @ S @ Q.T + 20).astype(np.float32)
write("tests/fixtures/analysis_pca_tall.bin", X, 3)
N, d = 30, 60
base = rng.normal(size=(4, d)) * np.array([6, 4, 2.5, 1.5])[:, None]
X = (rng.normal(size=(N, 4)) @ base + 0.3 * rng.normal(size=(N, d)) - 7).astype(np.float32)
write("tests/fixtures/analysis_pca_wide.bin", X, 4)
