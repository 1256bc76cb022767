"""Precision, recall, density and coverage against the `prdc` package of Naeem et al."""

import numpy as np
import pytest
import torch
from prdc import compute_prdc

from trilemma.metrics import prdc


@pytest.mark.parametrize(
    ("n_real", "n_fake", "dim", "k", "chunk_size"),
    [(200, 150, 8, 3, 64), (500, 500, 16, 5, 128), (800, 600, 32, 10, 1024), (300, 700, 4, 1, 97)],
)
def test_matches_prdc_package(n_real, n_fake, dim, k, chunk_size, capsys) -> None:
    rng = np.random.default_rng(n_real + k)
    real = rng.normal(size=(n_real, dim))
    fake = rng.normal(size=(n_fake, dim)) * 1.1 + 0.2
    ours = prdc(real, fake, k=k, chunk_size=chunk_size)
    reference = compute_prdc(real, fake, nearest_k=k)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(reference[name]), abs=1e-6), name
        assert isinstance(ours[name], float)


def test_far_away_features_and_float32() -> None:
    # Features with a large common offset: centring must keep float32 distances usable.
    rng = np.random.default_rng(7)
    real = rng.normal(size=(400, 16)) + 1000.0
    fake = rng.normal(size=(400, 16)) + 1000.0
    reference = compute_prdc(real - 1000.0, fake - 1000.0, nearest_k=5)
    ours = prdc(torch.from_numpy(real).float(), torch.from_numpy(fake).float(), dtype=torch.float32)
    for name in ("precision", "recall", "density", "coverage"):
        assert ours[name] == pytest.approx(float(reference[name]), abs=0.02), name


def test_identical_sets_are_perfect_and_disjoint_sets_score_zero() -> None:
    rng = np.random.default_rng(8)
    real = rng.normal(size=(300, 8))
    same = prdc(real, real.copy())
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    apart = prdc(real, real + 100.0)
    assert apart == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_rejects_too_few_samples() -> None:
    with pytest.raises(ValueError):
        prdc(np.zeros((5, 2)), np.zeros((10, 2)), k=5)
