"""Fréchet distance between Gaussians fitted to two sets of features (FID).

Heusel et al. 2017, "GANs trained by a two time-scale update rule converge to a local Nash
equilibrium": d² = ||μ₁ − μ₂||² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁ Σ₂)^½. Named after the extractor
that produced the features (FID-inception, FD-lenet-mnist, ...); only Inception features give
numbers comparable with published FIDs. The estimate is biased upwards at small n (about
d²/2n for two samples of one d-dimensional Gaussian), so always report n beside it.
"""

from __future__ import annotations

import numpy as np
import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix


def frechet_statistics(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and unbiased covariance (d, d) of `features` (n, d), both float64.

    The covariance divides by n − 1, as torchmetrics and pytorch-fid do. Features are centred
    before the product rather than using E[xxᵀ] − μμᵀ, which loses digits when |μ| is large
    against the spread.
    """
    x = as_matrix(features, "features")
    if x.shape[0] < 2:
        raise ValueError("a covariance needs at least 2 samples")
    mu = x.mean(dim=0)
    centred = x - mu
    sigma = centred.T @ centred / (x.shape[0] - 1)
    return mu.numpy(), sigma.numpy()


def _trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr (Σ₁ Σ₂)^½ through the symmetric matrix Σ₁^½ Σ₂ Σ₁^½, which has the same eigenvalues.

    Σ₁Σ₂ itself is not symmetric, so a symmetric eigen-solver on it is wrong and a general one
    returns complex rounding noise; the symmetric form is positive semi-definite, so its
    eigenvalues are real and only tiny negative rounding needs clipping.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(sigma1)
    root1 = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0.0, None))) @ eigenvectors.T
    middle = root1 @ sigma2 @ root1
    middle = (middle + middle.T) / 2
    return float(np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum())


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64.

    ||μ₁ − μ₂||² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½ (Dowson & Landau 1982). Accepts the
    cached output of `frechet_statistics`.
    """
    mu1_, mu2_ = (np.asarray(torch.as_tensor(m).double().cpu()).ravel() for m in (mu1, mu2))
    s1, s2 = (np.asarray(torch.as_tensor(s).double().cpu()) for s in (sigma1, sigma2))
    if mu1_.shape != mu2_.shape or s1.shape != s2.shape or s1.shape != (mu1_.size,) * 2:
        raise ValueError(
            f"mismatched statistics: means {mu1_.shape}, {mu2_.shape}; "
            f"covariances {s1.shape}, {s2.shape}"
        )
    # Covariances estimated in floating point are symmetric only to rounding.
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    difference = mu1_ - mu2_
    value = difference @ difference + np.trace(s1) + np.trace(s2)
    value -= 2 * _trace_sqrt_product(s1, s2)
    # Identical statistics give ±1e-12 of rounding; a distance is never negative.
    return max(float(value), 0.0)


def fid(real: ArrayLike, fake: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to `real` and `fake` features (n, d)."""
    real_mu, real_sigma = frechet_statistics(real)
    fake_mu, fake_sigma = frechet_statistics(fake)
    if real_mu.shape != fake_mu.shape:
        raise ValueError(f"feature dimensions differ: real {real_mu.size}, fake {fake_mu.size}")
    return frechet_distance(real_mu, real_sigma, fake_mu, fake_sigma)


def frechet_bias_estimate(reference_features: ArrayLike, n_real: int, n_generated: int) -> float:
    """The Fréchet distance expected between two independent samples, of sizes n_real and
    n_generated, of the Gaussian fitted to `reference_features`: FD's bias at these n.

    Second-order expansion with Σ's eigenvalues λ: (1/n_real + 1/n_generated) ·
    [1.25 tr Σ + Σᵢⱼ λᵢλⱼ / (√λᵢ + √λⱼ)²]. For Σ = I in d dimensions that is
    d(d + 5)/4 · (1/n_real + 1/n_generated), the d²/2n of METRICS.md at n_real = n_generated.
    It approximates Gaussian features; real features only roughly.
    """
    _, sigma = frechet_statistics(reference_features)
    eigenvalues = np.clip(np.linalg.eigvalsh((sigma + sigma.T) / 2), 0.0, None)
    roots = np.sqrt(eigenvalues)
    denominator = (roots[:, None] + roots[None, :]) ** 2
    pair = np.divide(np.outer(eigenvalues, eigenvalues), denominator,
                     out=np.zeros_like(denominator), where=denominator > 0)
    return float((1 / n_real + 1 / n_generated) * (1.25 * eigenvalues.sum() + pair.sum()))
