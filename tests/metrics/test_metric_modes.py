"""The VEEGAN/PacGAN 2-D mode-collapse protocol on point sets with known answers."""

import math

import numpy as np
import pytest

from trilemma.data.mixtures import grid25, ring8
from trilemma.metrics import mode_statistics, mode_statistics_for


def test_points_on_three_grid_centres() -> None:
    centres = grid25().centres
    points = np.repeat(centres[[0, 7, 24]], 10, axis=0)
    stats = mode_statistics_for("grid25", points)
    assert stats["modes_covered"] == 3
    assert stats["high_quality_fraction"] == 1.0
    # Even over 3 of 25 modes: Σ (1/3) log((1/3)·25) = log(25/3).
    assert stats["reverse_kl"] == pytest.approx(math.log(25 / 3))
    assert stats["n"] == 30
    assert sum(stats["mode_counts"]) == 30 and stats["mode_counts"][7] == 10


def test_uneven_histogram_and_far_points() -> None:
    centres = grid25().centres
    on_modes = np.concatenate([np.repeat(centres[[3]], 20, axis=0), centres[[12]].repeat(10, 0)])
    far = np.full((10, 2), 100.0)
    stats = mode_statistics_for("grid25", np.concatenate([on_modes, far]))
    assert stats["modes_covered"] == 2
    assert stats["high_quality_fraction"] == pytest.approx(30 / 40)
    p = np.array([2 / 3, 1 / 3])
    assert stats["reverse_kl"] == pytest.approx(float((p * np.log(p * 25)).sum()))


def test_no_high_quality_samples() -> None:
    # Midway between grid centres is 1.0 from the nearest one, far beyond 3σ = 0.15.
    points = np.array([[1.0, 1.0], [-3.0, 1.0], [3.0, -3.0]])
    stats = mode_statistics_for("grid25", points)
    assert stats["modes_covered"] == 0
    assert stats["high_quality_fraction"] == 0.0
    assert stats["reverse_kl"] == math.inf


def test_three_sigma_boundary() -> None:
    mixture = ring8()
    centre = mixture.centres[2]
    inside = centre + [2.9 * mixture.sigma, 0.0]
    outside = centre + [0.0, 3.1 * mixture.sigma]
    stats = mode_statistics(np.stack([inside, outside]), mixture.centres, mixture.sigma)
    assert stats["high_quality_fraction"] == 0.5
    assert stats["modes_covered"] == 1


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_samples_of_the_true_mixture(name: str) -> None:
    mixture = {"ring8": ring8, "grid25": grid25}[name]()
    points = mixture.sample(2500, np.random.default_rng(0))
    stats = mode_statistics_for(name, points)
    assert stats["modes_covered"] == len(mixture.centres)
    # P(|N(0, σ²I₂)| ≤ 3σ) = 1 − exp(−9/2).
    assert stats["high_quality_fraction"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)
    assert 0 <= stats["reverse_kl"] < 0.02


def test_unknown_mixture() -> None:
    with pytest.raises(ValueError, match="ring8"):
        mode_statistics_for("spiral", np.zeros((3, 2)))
