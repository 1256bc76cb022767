"""Data copying beyond nearest-neighbour ratios: authenticity, the C_T test and the
generalisation gap of a kernel density on the samples.

All three look at the same question as `metrics.memorisation` (are the samples closer to the
training set than unseen real data is?) from the three angles the literature settled on, as
dgm-eval (Stein et al. 2023) computes them:

- **AuthPct** (Alaa et al. 2022, in the form of Jiralerspong et al. 2023): a sample is
  *authentic* unless it sits closer to its nearest training point than that training point's
  own nearest other training point does. A copy with a little noise is not authentic; a fresh
  real image usually is. Reported in per cent, beside the held-out images' own figure.
- **C_T** (Meehan et al. 2020, "A non-parametric test to detect data-copying in generative
  models"): the training set is cut into cells by k-means (k = 3, after a 64-component PCA of
  wider features); in each cell the distances of the samples and of the held-out points to
  their nearest training point are compared by a Mann-Whitney U test, Z-scored under the null
  (mean nm/2 − ½, the continuity correction the reference code applies, variance
  nm(n + m + 1)/12). C_T is the mean of the cells' Z weighted by their share of held-out
  points, over the cells holding more than 20 samples. ≪ 0: samples closer than real data
  (copying; ≤ −3 is the usual alarm); ≫ 0: farther (underfitting); about 0 otherwise.
- **Generalisation gap** (the overfitting score of Jiralerspong et al. 2023, "Feature
  Likelihood Divergence"): a Gaussian kernel sits on each sample, with its own bandwidth fitted
  to make the training points likely (100 Adam steps); then each kernel is asked whether it
  gives more likelihood to training points than to as many held-out points. The figure is the
  share of kernels that do, in per cent, minus 50: about 0 for a model that generalises, up to
  50 for one that copies. Only as many training points as there are held-out points are set
  against them, so when the training set is k times larger, a copy's own source is among them
  about once in k and the gap of a copying model shrinks towards 50 / k.

Features go in as (n, d) arrays; points are their own features.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix

PCA_COMPONENTS = 64
CELLS = 3
MIN_SAMPLES_PER_CELL = 20
FIT_STEPS = 100
# The gap's kernel fit holds a (train × samples) matrix through 100 steps: at most this many
# of each, drawn at random (seeded; a data set's split may be in class order).
GAP_MAX_TRAIN = 1_000
GAP_MAX_KERNELS = 1_000


def _nearest(queries: torch.Tensor, references: torch.Tensor, chunk: int = 2048,
             own: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(distance, index) of each query's nearest reference, in blocks; `own[i]`, when given, is
    query i's own index among the references, which is then skipped."""
    best = torch.full((len(queries),), math.inf, dtype=queries.dtype)
    where = torch.zeros(len(queries), dtype=torch.long)
    for q in range(0, len(queries), chunk):
        block = queries[q:q + chunk]
        for r in range(0, len(references), chunk):
            distances = torch.cdist(block, references[r:r + chunk])
            if own is not None:
                mine = own[q:q + chunk] - r
                inside = (mine >= 0) & (mine < distances.shape[1])
                distances[inside.nonzero().squeeze(1), mine[inside]] = math.inf
            value, index = distances.min(dim=1)
            better = value < best[q:q + chunk]
            best[q:q + chunk] = torch.where(better, value, best[q:q + chunk])
            where[q:q + chunk] = torch.where(better, index + r, where[q:q + chunk])
    return best, where


def _centred(**sets: ArrayLike) -> list[torch.Tensor]:
    """float64 matrices centred on the first set's mean (cdist keeps small distances exact)."""
    names = list(sets)
    matrices = [as_matrix(x, name) for name, x in sets.items()]
    if len({m.shape[1] for m in matrices}) != 1:
        raise ValueError("feature dimensions differ: " + ", ".join(f"{n} {m.shape[1]}" for n, m in zip(names, matrices)))
    centre = matrices[0].mean(dim=0)
    return [m - centre for m in matrices]


def authpct(train: ArrayLike, fake: ArrayLike) -> float:
    """Per cent of `fake` that is authentic: its nearest training point is closer to another
    training point than to it."""
    reference, samples = _centred(train=train, fake=fake)
    if len(reference) < 2:
        raise ValueError("train needs at least 2 points")
    distance, nearest = _nearest(samples, reference)
    needed = nearest.unique()
    own_distance, _ = _nearest(reference[needed], reference, own=needed)
    neighbour = torch.full((len(reference),), math.inf, dtype=reference.dtype)
    neighbour[needed] = own_distance
    return float(100.0 * (neighbour[nearest] < distance).double().mean())


def _z_of_u(fake_distance: np.ndarray, heldout_distance: np.ndarray) -> float:
    """The Mann-Whitney U of the samples' nearest-train distances against the held-out points',
    Z-scored under the null as the C_T reference code does."""
    from scipy.stats import mannwhitneyu

    m, n = len(fake_distance), len(heldout_distance)
    u = mannwhitneyu(fake_distance, heldout_distance, alternative="less").statistic
    return float((u - (n * m / 2 - 0.5)) / math.sqrt(n * m * (n + m + 1) / 12))


def c_t(train: ArrayLike, heldout: ArrayLike, fake: ArrayLike, cells: int = CELLS, seed: int = 0) -> dict:
    """Meehan et al.'s C_T with its cells' Z scores and shares. A cell without held-out points is
    left out (the reference code stops there)."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    reference, unseen, samples = (x.numpy() for x in _centred(train=train, heldout=heldout, fake=fake))
    if reference.shape[1] > PCA_COMPONENTS and len(reference) > PCA_COMPONENTS:
        pca = PCA(n_components=PCA_COMPONENTS, random_state=seed).fit(reference)
        reference, unseen, samples = pca.transform(reference), pca.transform(unseen), pca.transform(samples)
    kmeans = KMeans(n_clusters=cells, n_init=10, random_state=seed).fit(reference)
    labels = [kmeans.predict(x) for x in (reference, unseen, samples)]
    threshold = MIN_SAMPLES_PER_CELL / len(samples)
    rows = []
    for cell in range(cells):
        members = [torch.from_numpy(np.ascontiguousarray(x[label == cell])) for x, label in
                   zip((reference, unseen, samples), labels)]
        share_fake, share_heldout = len(members[2]) / len(samples), len(members[1]) / len(unseen)
        if share_fake <= threshold or not len(members[1]) or not len(members[0]):
            rows.append({"cell": cell, "z": None, "heldout_share": share_heldout, "fake_share": share_fake})
            continue
        fake_distance = _nearest(members[2], members[0])[0].numpy()
        heldout_distance = _nearest(members[1], members[0])[0].numpy()
        rows.append({"cell": cell, "z": _z_of_u(fake_distance, heldout_distance),
                     "heldout_share": share_heldout, "fake_share": share_fake})
    kept = [row for row in rows if row["z"] is not None]
    weight = sum(row["heldout_share"] for row in kept)
    value = sum(row["heldout_share"] * row["z"] for row in kept) / weight if weight > 0 else math.nan
    return {"c_t": float(value), "cells": rows}


def _log_kernels(points: torch.Tensor, kernels: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """log of each kernel's Gaussian density (times 1/M) at each point: (points, kernels)."""
    squared = torch.cdist(points, kernels) ** 2
    dim = kernels.shape[1]
    return -0.5 * squared / log_variance.exp() - 0.5 * dim * log_variance - math.log(len(kernels))


def fit_bandwidths(train: torch.Tensor, kernels: torch.Tensor, steps: int = FIT_STEPS) -> torch.Tensor:
    """Per-kernel log variances that maximise the training points' mean log-likelihood under
    the kernel mixture: Adam at 0.5 from 0, a tenth of that after half the steps, clamped to
    [−100, 20] (as the FLD reference fits them; the dimension's 2π constant does not move it)."""
    squared = torch.cdist(train, kernels) ** 2
    dim = kernels.shape[1]
    log_variance = torch.zeros(len(kernels), dtype=train.dtype, requires_grad=True)
    optimiser = torch.optim.Adam([log_variance], lr=0.5)
    for step in range(steps):
        if step == steps // 2:
            optimiser.param_groups[0]["lr"] = 0.05
        log_density = -0.5 * squared / log_variance.exp() - 0.5 * dim * log_variance - math.log(len(kernels))
        loss = -torch.logsumexp(log_density, dim=1).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            log_variance.clamp_(-100.0, 20.0)
    return log_variance.detach()


def generalisation_gap(train: ArrayLike, heldout: ArrayLike, fake: ArrayLike, steps: int = FIT_STEPS,
                       seed: int = 0) -> float:
    """Per cent of the samples' kernels that find the training points likelier than as many
    held-out points, minus 50 (features standardised over the three sets together; float32, at
    most `GAP_MAX_TRAIN` training points and `GAP_MAX_KERNELS` samples)."""
    generator = torch.Generator().manual_seed(seed)

    def subset(x: ArrayLike, name: str, limit: int | None) -> torch.Tensor:
        matrix = as_matrix(x, name, torch.float32)
        return matrix[torch.randperm(len(matrix), generator=generator)[:limit]]

    matrices = [subset(train, "train", GAP_MAX_TRAIN), subset(heldout, "heldout", None),
                subset(fake, "fake", GAP_MAX_KERNELS)]
    together = torch.cat(matrices)
    scale = together.std(dim=0)
    scale[scale == 0] = 1.0
    reference, unseen, samples = ((m - together.mean(dim=0)) / scale for m in matrices)
    log_variance = fit_bandwidths(reference, samples, steps)
    size = min(len(reference), len(unseen))
    on_train = _log_kernels(reference[:size], samples, log_variance).logsumexp(dim=0)
    on_heldout = _log_kernels(unseen[:size], samples, log_variance).logsumexp(dim=0)
    return float(100.0 * (on_train > on_heldout).double().mean() - 50.0)


def copying_figures(train: ArrayLike, heldout: ArrayLike, fake: ArrayLike, details: dict) -> dict[str, float]:
    """The three figures for the samples, and AuthPct of the held-out points as their reference
    (an evaluation's metrics); C_T's cells go into `details`."""
    test = c_t(train, heldout, fake)
    details["c_t_cells"] = test["cells"]
    return {"authpct": authpct(train, fake), "authpct_heldout": authpct(train, heldout), "c_t": test["c_t"],
            "generalisation_gap": generalisation_gap(train, heldout, fake)}
