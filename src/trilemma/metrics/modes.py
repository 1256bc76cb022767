"""Mode collapse on 2-D Gaussian mixtures: the protocol of VEEGAN (Srivastava et al. 2017) as
implemented by PacGAN (Lin et al. 2018).

A sample is *high quality* if it lies within 3σ of its nearest mode centre. A mode is
*covered* if it is the nearest centre of at least one high-quality sample. The published
tables draw 2,500 samples and average over 5 (VEEGAN) or 10 (PacGAN) training runs.

Stacked MNIST's 1,000 modes (`categorical_mode_statistics`) are read by a classifier instead;
at a few thousand samples even a perfect model misses some of them, so every figure comes with
its `finite_sample_ceiling`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from trilemma.data.mixtures import MIXTURES
from trilemma.metrics._inputs import ArrayLike, as_matrix


def mode_statistics(points: ArrayLike, centres: ArrayLike, sigma: float) -> dict:
    """Modes covered, fraction of high-quality samples and reverse KL for 2-D `points`.

    Returns a dict with:

    - ``modes_covered`` (int): modes that are the nearest centre of ≥ 1 high-quality sample;
    - ``high_quality_fraction`` (float in [0, 1]): samples within 3·sigma (inclusive) of their
      nearest centre, over all samples;
    - ``reverse_kl`` (float, nats): KL(p ‖ u) = Σₘ pₘ log(pₘ · M), where p is the histogram of
      the high-quality samples over the M modes (normalised to sum to 1) and u is uniform over
      the M modes. Modes with pₘ = 0 contribute 0 (the limit of p log p). It is 0 when the
      high-quality samples spread evenly over all modes and log(M / c) when they spread evenly
      over c modes. ``inf`` when there is no high-quality sample, since p is then undefined;
    - ``mode_counts`` (list of int): the unnormalised histogram behind p, one entry per centre;
    - ``n`` (int): number of samples.
    """
    x = as_matrix(points, "points")
    c = as_matrix(centres, "centres")
    if x.shape[1] != c.shape[1]:
        raise ValueError(f"points have {x.shape[1]} coordinates, centres {c.shape[1]}")
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    nearest_distance, nearest_mode = torch.cdist(
        x, c, compute_mode="donot_use_mm_for_euclid_dist"
    ).min(dim=1)
    high_quality = nearest_distance <= 3 * sigma
    counts = torch.bincount(nearest_mode[high_quality], minlength=c.shape[0])
    total = int(counts.sum())
    if total == 0:
        reverse_kl = math.inf
    else:
        p = counts[counts > 0].double() / total
        reverse_kl = float((p * torch.log(p * c.shape[0])).sum())
    return {
        "modes_covered": int((counts > 0).sum()),
        "high_quality_fraction": total / x.shape[0],
        "reverse_kl": reverse_kl,
        "mode_counts": [int(v) for v in counts],
        "n": int(x.shape[0]),
    }


def mode_statistics_for(name: str, points: ArrayLike) -> dict:
    """`mode_statistics` against the centres and σ of a built-in mixture ("ring8", "grid25")."""
    if name not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}; built-in ones: {', '.join(sorted(MIXTURES))}")
    mixture = MIXTURES[name]()
    return mode_statistics(points, np.asarray(mixture.centres), mixture.sigma)


def categorical_mode_statistics(modes: np.ndarray, n_modes: int) -> dict:
    """Modes covered and KL(p ‖ uniform) in nats for samples already read as mode ids in
    [0, n_modes) (Stacked MNIST: 100·red + 10·green + blue digit)."""
    counts = np.bincount(np.asarray(modes, dtype=np.int64), minlength=n_modes)
    if len(counts) != n_modes:
        raise ValueError(f"mode ids must lie in [0, {n_modes})")
    p = counts[counts > 0] / counts.sum()
    return {"modes_covered": int((counts > 0).sum()), "reverse_kl": float((p * np.log(p * n_modes)).sum()),
            "n": int(counts.sum())}


def finite_sample_ceiling(n: int, n_modes: int, draws: int = 200, seed: int = 0) -> dict:
    """What a perfect model (uniform over the modes) shows with n samples: the expected modes
    covered, M(1 − (1 − 1/M)^n), with its standard deviation (the occupancy variance
    M·q₁ + M(M − 1)·q₂ − M²·q₁², q_k = (1 − k/M)^n), their difference at 3 standard deviations
    (`modes_floor`, which a perfect model stays above about 99.9% of the time), and the mean
    KL to uniform of `draws` seeded uniform samples (`kl_floor`): the KL is never 0 at finite n."""
    q1, q2 = (1 - 1 / n_modes) ** n, (1 - 2 / n_modes) ** n
    expected = n_modes * (1 - q1)
    std = math.sqrt(max(0.0, n_modes * q1 + n_modes * (n_modes - 1) * q2 - n_modes**2 * q1**2))
    rng = np.random.default_rng(seed)
    kl = np.mean([categorical_mode_statistics(rng.integers(0, n_modes, n), n_modes)["reverse_kl"]
                  for _ in range(draws)])
    return {"modes_expected": expected, "modes_std": std, "modes_floor": expected - 3 * std, "kl_floor": float(kl)}
