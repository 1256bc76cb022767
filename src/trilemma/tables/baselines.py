"""Rows made without training, scored beside the families of a table comparison, so that a
reader sees what training bought:

- ``marginals``: every column drawn on its own from the training rows (SDV's and synthcity's
  floor): real column shapes, no relation between columns.
- ``copula``: a Gaussian copula (SDV's `GaussianCopulaSynthesizer` is one): each column made
  normal (numbers and dates by the codec's quantile transform; categories, and the missing-cell
  flags, by the share of [0, 1] their frequency takes, as SDV's uniform encoder does), one
  correlation matrix fitted over all of them (pairwise, over the rows where both are present),
  rows drawn from that multivariate normal and taken
  back through each column's transform. It keeps every linear relation, and no other.
- ``real``: training rows themselves, the ceiling of fidelity (what a model that copies its
  data would score on the held-out rows) and the floor of privacy (every row is a copy).

Each returns encoded rows (`TableCodec`'s space), so one evaluation path scores them all.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from trilemma.tables.codec import TableCodec

BASELINES = {  # name: how the report heads its column
    "marginals": "marginals (untrained)",
    "copula": "copula (untrained)",
    "real": "real rows (ceiling)",
}
_RIDGE = 1e-6


def baseline_rows(name: str, codec: TableCodec, x_train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n rows of baseline `name` (one of `BASELINES`), fitted on the encoded training rows."""
    rng = np.random.default_rng(seed)
    if name == "real":
        picked = rng.choice(len(x_train), size=n, replace=n > len(x_train))
        return x_train[picked].copy()
    if name == "marginals":
        return independent_marginals(codec, x_train, n, rng)
    if name == "copula":
        return GaussianCopula.fit(codec, x_train).sample(n, rng)
    raise ValueError(f"unknown baseline '{name}' (known: {', '.join(BASELINES)})")


def independent_marginals(codec: TableCodec, x_train: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Each column's cells (its whole block, missing flag included) from an independent row."""
    rows = np.empty((n, x_train.shape[1]), dtype=x_train.dtype)
    for block in codec.blocks:
        where = slice(block.start, block.start + block.width)
        rows[:, where] = x_train[rng.integers(0, len(x_train), size=n), where]
    return rows


class GaussianCopula:
    """The copula's variables: one per number (its normal score), one per missing-cell flag and
    one per categorical block (both through the frequency intervals of their values)."""

    def __init__(self, codec: TableCodec, variables: list[tuple[str, slice, np.ndarray | None]],
                 correlation: np.ndarray):
        self.codec, self.variables, self.correlation = codec, variables, correlation

    @classmethod
    def fit(cls, codec: TableCodec, x_train: np.ndarray, seed: int = 0) -> GaussianCopula:
        rng = np.random.default_rng(seed)
        variables, scores = [], []
        for block in codec.blocks:
            if block.numeric:
                variables.append(("score", slice(block.start, block.start + 1), None))
                score = x_train[:, block.start].astype(np.float64)
                if block.has_missing:  # a missing cell's score (0) is no value: left out of the fit
                    score = np.where(x_train[:, block.start + 1] > 0, np.nan, score)
                scores.append(score)
                if block.has_missing:
                    flag = slice(block.start + 1, block.start + 2)
                    codes = (x_train[:, block.start + 1] > 0).astype(np.int64)
                    variables.append(("flag", flag, _edges(codes, 2)))
                    scores.append(_interval_scores(codes, variables[-1][2], rng))
            else:
                where = slice(block.start, block.start + block.width)
                codes = x_train[:, where].argmax(1)
                variables.append(("category", where, _edges(codes, block.width)))
                scores.append(_interval_scores(codes, variables[-1][2], rng))
        # Pairwise over the rows where both are present (pandas' `corr`).
        matrix = pd.DataFrame(np.stack(scores, axis=1)).corr().to_numpy()
        matrix = np.nan_to_num(matrix, nan=0.0)
        np.fill_diagonal(matrix, 1.0)
        return cls(codec, variables, matrix)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # A square root of the correlation that survives a matrix that is only nearly positive
        # semi-definite (collinear columns): eigenvalues clipped at a small ridge.
        values, vectors = np.linalg.eigh(self.correlation)
        root = vectors * np.sqrt(np.clip(values, _RIDGE, None))
        z = rng.standard_normal((n, len(self.variables))) @ root.T
        rows = np.full((n, self.codec.width), -1.0, dtype=np.float32)
        for j, (kind, where, edges) in enumerate(self.variables):
            if kind == "score":
                rows[:, where.start] = z[:, j]
                continue
            codes = np.clip(np.searchsorted(edges, ndtr(z[:, j]), side="right") - 1, 0, len(edges) - 2)
            if kind == "flag":
                rows[:, where.start] = np.where(codes == 1, 1.0, -1.0)
            else:
                rows[np.arange(n), where.start + codes] = 1.0
        return rows


def _edges(codes: np.ndarray, count: int) -> np.ndarray:
    """Each value's interval of [0, 1], as wide as its share of the rows: count + 1 edges."""
    shares = np.bincount(codes, minlength=count) / len(codes)
    return np.concatenate([[0.0], np.cumsum(shares)])


def _interval_scores(codes: np.ndarray, edges: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A normal score per row: a uniform point of its value's interval, through Φ⁻¹."""
    low, high = edges[codes], edges[codes + 1]
    u = low + (high - low) * rng.uniform(size=len(codes))
    return ndtri(np.clip(u, 1e-6, 1 - 1e-6))
