#!/usr/bin/env python3
"""How the concepts are encoded in a run's captured streams: by their means, or only by which
directions vary. Reads what `iclab decode` writes (decode/reps_step_N.npy, (layers, points, width),
and decode/labels.npy) and prints, per depth:
  mean/spread  the concepts' mean distance from the overall mean over the root mean square distance
               of a point to its own concept's mean; about 1/sqrt(points per concept) when the
               means coincide and only sampling noise separates them (printed beside it)
  linear       5-fold cross-validated accuracy of a logistic regression on the stream
  10-NN        the same for a 10-nearest-neighbour classifier (what TD measures, without leave-one-out)
  quadratic    the same for a logistic regression on the products of pairs of the first 12
               principal coordinates: separable by second moments (which directions vary)
A concept that 10-NN and the quadratic classifier find but the linear one does not has no mean
offset for mean-activation patching to carry (docs/reproduction.md).
Needs numpy and scikit-learn (ICLAB_DEV=1 scripts/install-deps.sh):
  /usr/bin/python3 scripts/concept_geometry.py RUN/decode/reps_step_000075000.npy RUN/decode/labels.npy
"""
import sys
import warnings

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier


def main(reps_path, labels_path):
    reps = np.load(reps_path).astype(np.float64)
    labels = np.load(labels_path).astype(int)
    concepts = np.unique(labels)
    per = np.bincount(labels).min()
    print(f"{reps.shape[0]} depths, {reps.shape[1]} points, width {reps.shape[2]}, {per}+ per concept;"
          f" coinciding means give mean/spread about {1 / np.sqrt(per):.3f}")
    print("depth  mean/spread  linear  10-NN  quadratic")
    for depth, x in enumerate(reps):
        x = x - x.mean(0)
        means = np.array([x[labels == k].mean(0) for k in concepts])
        spread = np.sqrt(np.mean([((x[labels == k] - means[i]) ** 2).sum(1).mean() for i, k in enumerate(concepts)]))
        offset = np.sqrt((means ** 2).sum(1)).mean()
        linear = cross_val_score(LogisticRegression(max_iter=5000), x, labels, cv=5).mean()
        knn = cross_val_score(KNeighborsClassifier(10), x, labels, cv=5).mean()
        top = x @ np.linalg.svd(x, full_matrices=False)[2][:12].T
        pairs = np.einsum("ni,nj->nij", top, top).reshape(len(top), -1)
        quad = cross_val_score(LogisticRegression(max_iter=5000, C=0.1), pairs / pairs.std(), labels, cv=5).mean()
        print(f"{depth:5d}  {offset / spread:11.3f}  {linear:6.2f}  {knn:5.2f}  {quad:9.2f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: concept_geometry.py REPS.npy LABELS.npy")
    warnings.filterwarnings("ignore")
    main(sys.argv[1], sys.argv[2])
