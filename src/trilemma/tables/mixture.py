"""One-dimensional Gaussian mixtures fitted to every numeric column of a table at once: the modes
of CTGAN's mode-specific normalisation (Xu et al. 2019, §4.2).

CTGAN fits scikit-learn's `BayesianGaussianMixture` (10 components, a Dirichlet-process prior of
concentration 0.001) to each column in turn and keeps the components of weight > 0.005. Here one
batched EM serves all columns: the present values form a (columns, rows) array with a mask, and
each step is a handful of array operations over (columns, rows, components). The number of
components is chosen per column by the Bayesian information criterion (Schwarz 1978) over
1 … `MAX_COMPONENTS`, the role the Dirichlet-process prior plays in CTGAN; components under
`MIN_WEIGHT` are then dropped, as CTGAN does.

Each column is standardised before the fit, and every component's standard deviation is floored
at `SCALE_FLOOR` of the column's: an integer column's atoms would otherwise draw components of
zero width and unbounded likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_COMPONENTS = 10
MIN_WEIGHT = 0.005
SCALE_FLOOR = 0.01  # of the column's standard deviation
FIT_ROWS = 20_000  # values per column the fit reads at most (a seeded draw of them)
ITERATIONS = 100
TOLERANCE = 1e-4  # change of the mean log-likelihood per row that ends EM
_LOG_2PI = np.log(2 * np.pi)


@dataclass
class Modes:
    """A column's mixture, in the column's units: weights, means and standard deviations."""

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    def posterior(self, x: np.ndarray) -> np.ndarray:
        """(n, components): each value's responsibility under the mixture."""
        joint = _log_joint(x[:, None], self.weights, self.means, self.stds)
        return np.exp(joint - logsumexp(joint, axis=1, keepdims=True))

    def log_likelihood(self, x: np.ndarray) -> float:
        """Mean log-density of the values, in nats per value."""
        return float(logsumexp(_log_joint(x[:, None], self.weights, self.means, self.stds), axis=1).mean())


def logsumexp(a: np.ndarray, axis: int, keepdims: bool = False) -> np.ndarray:
    """log Σ exp(a) along `axis`, shifted by the maximum (scipy's takes 1.8× as long here)."""
    top = a.max(axis=axis, keepdims=True)
    out = top + np.log(np.exp(a - top).sum(axis=axis, keepdims=True))
    return out if keepdims else out.squeeze(axis)


def _log_joint(x, weights, means, stds):
    """log w_k + log N(x; μ_k, σ_k²), broadcast over whatever axes x and the parameters share."""
    return np.log(weights) - np.log(stds) - 0.5 * _LOG_2PI - 0.5 * ((x - means) / stds) ** 2


def fit_modes(columns: list[np.ndarray], max_components: int = MAX_COMPONENTS) -> list[Modes]:
    """The mixture of each column's values (NaN for a missing cell, left out), chosen by BIC."""
    if not columns:
        return []
    rng = np.random.default_rng(0)
    columns = [c[~np.isnan(c)] for c in map(np.asarray, columns)]
    columns = [rng.choice(c, FIT_ROWS, replace=False) if len(c) > FIT_ROWS else c for c in columns]
    lengths = [len(c) for c in columns]
    if min(lengths) == 0:
        raise ValueError("a column has no value to fit modes to")
    values = np.zeros((len(columns), max(lengths)))
    present = np.zeros_like(values, dtype=bool)
    for j, found in enumerate(columns):
        values[j, :len(found)], present[j, :len(found)] = found, True
    centre = np.array([np.mean(c) for c in columns])[:, None]
    spread = np.array([np.std(c) for c in columns])[:, None]
    spread = np.where(spread > 0, spread, 1.0)
    z = np.where(present, (values - centre) / spread, 0.0)
    counts = present.sum(axis=1)
    distinct = [len(np.unique(c)) for c in columns]  # a column of d values takes at most d modes

    best: list[tuple[float, np.ndarray, np.ndarray, np.ndarray] | None] = [None] * len(columns)
    for k in range(1, max_components + 1):
        weights, means, stds, log_likelihood = _em(z, present, k)
        # BIC = −2 log L + p log n, with p = 3k − 1 free parameters per column.
        bic = -2 * log_likelihood * counts + (3 * k - 1) * np.log(counts)
        for j in range(len(columns)):
            if k <= distinct[j] and (best[j] is None or bic[j] < best[j][0]):
                best[j] = (bic[j], weights[j], means[j], stds[j])
    out = []
    for j, (_, weights, means, stds) in enumerate(best):
        keep = weights > MIN_WEIGHT
        if not keep.any():
            keep = weights == weights.max()
        weights = weights[keep] / weights[keep].sum()
        order = np.argsort(means[keep])
        out.append(Modes(weights[order], means[keep][order] * spread[j, 0] + centre[j, 0],
                         stds[keep][order] * spread[j, 0]))
    return out


def _em(z: np.ndarray, present: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """EM for a k-component mixture of every row of z (standardised, masked by `present`);
    started from equal weights, means at the columns' quantiles and a common width."""
    count = present.sum(axis=1, keepdims=True)  # (C, 1)
    levels = (np.arange(k) + 0.5) / k
    means = np.stack([np.quantile(z[j, present[j]], levels) for j in range(len(z))])  # (C, k)
    stds = np.full_like(means, 1.0 / k)
    weights = np.full_like(means, 1.0 / k)
    mask = present[:, :, None]
    previous = np.full(len(z), -np.inf)
    active = np.ones(len(z), dtype=bool)  # columns still moving; a converged one is left as it is
    for _ in range(ITERATIONS):
        joint = _log_joint(z[:, :, None], weights[:, None], means[:, None], stds[:, None])  # (C, N, k)
        evidence = logsumexp(joint, axis=2, keepdims=True)
        log_likelihood = np.where(active, np.where(present, evidence[:, :, 0], 0.0).sum(axis=1) / count[:, 0],
                                  previous)
        active &= np.abs(log_likelihood - previous) >= TOLERANCE
        if not active.any():
            break
        previous = log_likelihood
        responsibility = np.where(mask, np.exp(joint - evidence), 0.0)
        mass = responsibility.sum(axis=1) + 1e-12  # (C, k)
        moving = active[:, None]
        weights = np.where(moving, np.clip(mass / count, 1e-12, None), weights)
        new_means = (responsibility * z[:, :, None]).sum(axis=1) / mass
        variance = (responsibility * (z[:, :, None] - new_means[:, None]) ** 2).sum(axis=1) / mass
        means = np.where(moving, new_means, means)
        stds = np.where(moving, np.sqrt(np.maximum(variance, SCALE_FLOOR ** 2)), stds)
    return weights, means, stds, previous
