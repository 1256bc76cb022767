"""Kernel Inception Distance (KID).

Bińkowski et al. 2018, "Demystifying MMD GANs": the unbiased estimator of the squared maximum
mean discrepancy with the cubic polynomial kernel k(x, y) = (xᵀy / d + 1)³, averaged over
random subsets. Defaults follow torch-fidelity and torchmetrics (100 subsets of 1,000). Unlike
FID it is unbiased, so it stays meaningful at the small sample counts of quick evaluations.
"""

from __future__ import annotations

import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix


def _polynomial_kernel_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σᵢⱼ k(aᵢ, bⱼ) for the cubic kernel; in place, since the m × m matrix is the whole cost."""
    kernel = a @ b.T
    return kernel.div_(a.shape[1]).add_(1.0).pow_(3).sum()


def _unbiased_mmd2(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² between two subsets of m samples each.

    Within-set sums leave out the diagonal k(x, x) (Gretton et al. 2012, eq. 3); the cross
    term keeps every pair.
    """
    m, d = real.shape

    def diagonal_sum(x: torch.Tensor) -> torch.Tensor:
        return ((x * x).sum(dim=1) / d + 1.0).pow(3).sum()

    within = (
        _polynomial_kernel_sum(real, real)
        - diagonal_sum(real)
        + _polynomial_kernel_sum(fake, fake)
        - diagonal_sum(fake)
    )
    return within / (m * (m - 1)) - 2 * _polynomial_kernel_sum(real, fake) / (m * m)


def _random_subsets(n: int, m: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """`count` rows of m distinct indices in [0, n): without replacement within a subset,
    independently across subsets, as torchmetrics' repeated randperm does."""
    return torch.rand(count, n, generator=generator).argsort(dim=1)[:, :m]


def kid(
    real: ArrayLike,
    fake: ArrayLike,
    subset_size: int = 1000,
    subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean and standard deviation of the unbiased polynomial-kernel MMD² over random subsets.

    Each subset draws `subset_size` real and `subset_size` fake features without replacement.
    When either set is smaller than `subset_size`, the subset size becomes
    min(n_real, n_fake). The standard deviation is the population one (ddof = 0), as in
    torch-fidelity and torchmetrics. Computed in float64; `seed` makes the subsets
    reproducible. KID can be slightly negative when the two sets match.
    """
    x = as_matrix(real, "real")
    y = as_matrix(fake, "fake")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: real {x.shape[1]}, fake {y.shape[1]}")
    if subsets < 1 or subset_size < 2:
        raise ValueError("kid needs subsets >= 1 and subset_size >= 2")
    m = min(subset_size, x.shape[0], y.shape[0])
    if m < 2:
        raise ValueError("kid needs at least 2 real and 2 fake samples")
    generator = torch.Generator().manual_seed(seed)
    real_index = _random_subsets(x.shape[0], m, subsets, generator)
    fake_index = _random_subsets(y.shape[0], m, subsets, generator)
    scores = torch.stack(
        [_unbiased_mmd2(x[r], y[f]) for r, f in zip(real_index, fake_index, strict=True)]
    )
    return float(scores.mean()), float(scores.std(correction=0))
