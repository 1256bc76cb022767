"""KID against torchmetrics' KernelInceptionDistance fed the same features."""

import warnings

import numpy as np
import pytest
import torch
from torchmetrics.image.kid import KernelInceptionDistance

from trilemma.metrics import kid


class _GivenFeatures(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_kid(real: np.ndarray, fake: np.ndarray, subset_size: int, subsets: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "saves all features in buffer"
        metric = KernelInceptionDistance(
            feature=_GivenFeatures(), subset_size=subset_size, subsets=subsets
        )
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    mean, std = metric.compute()
    return float(mean), float(std)


@pytest.mark.parametrize("shift", [0.0, 0.3])
def test_matches_torchmetrics_on_whole_sets(shift: float) -> None:
    # With one subset as large as the sets, torchmetrics' random permutation uses every
    # sample and the unbiased MMD² does not depend on order: both are deterministic.
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 64))
    fake = rng.normal(size=(300, 64)) + shift
    ours, ours_std = kid(real, fake, subset_size=300, subsets=1)
    reference, _ = torchmetrics_kid(real, fake, subset_size=300, subsets=1)
    assert abs(ours - reference) <= 1e-6 * abs(reference) + 1e-12
    assert ours_std == 0.0


def test_agrees_with_torchmetrics_statistically_on_random_subsets() -> None:
    rng = np.random.default_rng(1)
    real = rng.normal(size=(600, 32))
    fake = rng.normal(size=(600, 32)) * 1.2 + 0.1
    torch.manual_seed(0)
    reference, reference_std = torchmetrics_kid(real, fake, subset_size=200, subsets=50)
    ours, ours_std = kid(real, fake, subset_size=200, subsets=50, seed=3)
    # Two independent means of 50 subset estimates differ by about std·√(2/50).
    assert abs(ours - reference) < 4 * reference_std * np.sqrt(2 / 50)
    assert 0.5 < ours_std / reference_std < 2.0
    # Both must be estimating the whole-set value.
    whole, _ = kid(real, fake, subset_size=600, subsets=1)
    assert abs(ours - whole) < 4 * ours_std / np.sqrt(50) + 0.2 * whole


def test_small_sets_use_the_smaller_size_and_seed_is_reproducible() -> None:
    rng = np.random.default_rng(2)
    real = rng.normal(size=(120, 16))
    fake = rng.normal(size=(80, 16))
    # subset_size 1000 > n: falls back to 80 for both sets, without raising.
    first = kid(real, fake, subsets=10, seed=5)
    assert first == kid(torch.from_numpy(real), torch.from_numpy(fake), subsets=10, seed=5)
    assert first != kid(real, fake, subsets=10, seed=6)
    assert all(isinstance(v, float) for v in first)
    same = kid(real[:80], real[:80], subset_size=80, subsets=1)
    assert same[0] < 0  # the unbiased estimate of MMD² between a set and itself


def test_hand_computed_unbiased_mmd() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(2, 20, 5))

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / 5 + 1) ** 3

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = (
        (kxx.sum() - np.trace(kxx)) / (20 * 19)
        + (kyy.sum() - np.trace(kyy)) / (20 * 19)
        - 2 * kxy.mean()
    )
    assert kid(x, y, subset_size=20, subsets=1)[0] == pytest.approx(expected, rel=1e-12)
