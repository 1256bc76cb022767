"""The Vendi score (Friedman & Dieng 2023): the effective number of distinct samples.

With a similarity kernel k (k(x, x) = 1) and K the n × n matrix of k over the samples, the
score is exp of the Shannon entropy of the eigenvalues of K / n: n for n samples that are all
dissimilar (K = I), 1 when they are all the same. Here k is the cosine similarity of feature
vectors, the choice of the reference implementation (`vendi_score.vendi.score_dual`), so K / n
= X Xᵀ / n for unit-norm rows X and its non-zero eigenvalues are those of Xᵀ X / n: the d × d
problem is solved whichever of n and d is smaller.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix


def vendi_score(features: ArrayLike) -> float:
    """The Vendi score of the rows of `features` under cosine similarity (order q = 1), in
    [1, min(n, d)]. Rows of zeros are refused: they have no direction."""
    x = as_matrix(features, "features")
    norms = x.norm(dim=1, keepdim=True)
    if (norms == 0).any():
        raise ValueError("features: a row of zeros has no cosine similarity")
    x = x / norms
    n, d = x.shape
    gram = x.T @ x / n if d <= n else x @ x.T / n
    eigenvalues = torch.linalg.eigvalsh(gram).clamp(min=0)
    p = eigenvalues[eigenvalues > 0]
    p = p / p.sum()  # the eigenvalues sum to trace(K) / n = 1 already, up to rounding
    return math.exp(float(-(p * p.log()).sum()))


def vendi_per_class(features: ArrayLike, labels: ArrayLike) -> dict[int, float]:
    """The Vendi score within each class (by `labels`, e.g. the classifier's prediction for
    samples); classes with fewer than 2 members are left out."""
    x = as_matrix(features, "features")
    y = np.asarray(labels).reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(y)} labels for {len(x)} feature rows")
    return {int(c): vendi_score(x[torch.as_tensor(y == c)]) for c in np.unique(y) if (y == c).sum() >= 2}
