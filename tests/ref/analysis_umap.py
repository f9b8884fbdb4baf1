#!/usr/bin/python3
"""Reference values for the UMAP tests (umap-learn itself is not installed, so the C tests are
property-based; these pin the two pieces that have an exact reference):
  tests/fixtures/analysis_umap_ab.txt     a, b from scipy.optimize.curve_fit exactly as umap-learn's
                                          find_ab_params does it, one "spread min_dist a b" per line;
  tests/fixtures/analysis_umap_trust.bin  sklearn.manifold.trustworthiness on fixed data, so the
                                          test's own C implementation of that score can be checked
                                          before it is used to judge embeddings.
Trust layout (little-endian): "ICLTW1\\0\\0", int32 N, dX, dY, float32 X (N,dX), Y1 (N,dY), Y2 (N,dY),
float64 T(Y1,5), T(Y1,15), T(Y2,5), T(Y2,15).
Run from the repository root: /usr/bin/python3 tests/ref/analysis_umap.py"""
import numpy as np
from scipy.optimize import curve_fit
from sklearn.manifold import trustworthiness


def find_ab_params(spread, min_dist):
    def curve(x, a, b):
        return 1.0 / (1.0 + a * x ** (2 * b))

    xv = np.linspace(0, spread * 3, 300)
    yv = np.zeros(xv.shape)
    yv[xv < min_dist] = 1.0
    yv[xv >= min_dist] = np.exp(-(xv[xv >= min_dist] - min_dist) / spread)
    params, _ = curve_fit(curve, xv, yv)
    return params[0], params[1]


with open("tests/fixtures/analysis_umap_ab.txt", "w") as f:
    for spread, md in [(1.0, 0.1), (1.0, 0.0), (1.0, 0.5), (2.0, 0.3), (1.0, 0.01), (0.5, 0.25)]:
        a, b = find_ab_params(spread, md)
        f.write(f"{spread!r} {md!r} {a:.17g} {b:.17g}\n")
        print(f"spread {spread} min_dist {md}: a {a:.6f} b {b:.6f}")

rng = np.random.default_rng(3)
N, dX, dY = 60, 5, 2
X = rng.normal(size=(N, dX)).astype(np.float32)
Y1 = rng.normal(size=(N, dY)).astype(np.float32)  # unrelated: low trust
Y2 = (X[:, :dY] + 0.3 * rng.normal(size=(N, dY))).astype(np.float32)  # related: high trust
vals = [trustworthiness(X.astype(np.float64), Y.astype(np.float64), n_neighbors=k) for Y in (Y1, Y2) for k in (5, 15)]
with open("tests/fixtures/analysis_umap_trust.bin", "wb") as f:
    f.write(b"ICLTW1\0\0")
    f.write(np.array([N, dX, dY], "<i4").tobytes())
    for a in (X, Y1, Y2):
        f.write(a.astype("<f4").tobytes())
    f.write(np.array(vals, "<f8").tobytes())
print("trustworthiness", vals)
