"""Nearest-training-sample distances: copies are flagged, fresh samples look like held-out."""

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from trilemma.metrics import memorisation


def _data(seed: int = 0, dim: int = 32):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(1500, dim)), rng.normal(size=(300, dim)), rng


def test_exact_copies_are_near_copies() -> None:
    train, heldout, rng = _data()
    copies = train[rng.choice(len(train), 200, replace=False)]
    result = memorisation(train, heldout, copies, chunk_size=256)
    assert result["near_copy_fraction"] == 1.0
    assert result["fake_median_distance"] < 1e-2
    assert result["median_ratio"] < 1e-2


def test_fresh_samples_look_like_heldout() -> None:
    train, heldout, rng = _data(1)
    fresh = rng.normal(size=(300, 32))
    result = memorisation(train, heldout, fresh, chunk_size=256)
    assert result["median_ratio"] == pytest.approx(1.0, abs=0.1)
    assert result["near_copy_fraction"] == 0.0
    assert result["heldout_near_copy_fraction"] == 0.0


def test_distances_match_scipy() -> None:
    train, heldout, rng = _data(2, dim=8)
    fake = rng.normal(size=(250, 8)) * 0.9 + 5.0  # offset: exercises the centring
    result = memorisation(train, heldout, fake, chunk_size=100)
    fake_nearest = cdist(fake, train).min(axis=1)
    heldout_nearest = cdist(heldout, train).min(axis=1)
    assert result["fake_mean_distance"] == pytest.approx(fake_nearest.mean(), rel=1e-4)
    assert result["fake_median_distance"] == pytest.approx(np.median(fake_nearest), rel=1e-4)
    assert result["heldout_median_distance"] == pytest.approx(np.median(heldout_nearest), rel=1e-4)
    threshold = 0.5 * np.median(heldout_nearest)
    assert result["near_copy_threshold"] == pytest.approx(threshold, rel=1e-4)


def test_partial_copying() -> None:
    train, heldout, rng = _data(3)
    fake = np.concatenate([train[:50], rng.normal(size=(150, 32))])
    assert memorisation(train, heldout, fake)["near_copy_fraction"] == pytest.approx(0.25)


def test_uint8_rows_converted_a_block_at_a_time_match_the_float_rows():
    rng = np.random.default_rng(4)
    train = rng.integers(0, 256, (700, 48), dtype=np.uint8)
    heldout = rng.integers(0, 256, (150, 48), dtype=np.uint8)
    fake = np.concatenate([train[:40], rng.integers(0, 256, (60, 48), dtype=np.uint8)])
    as_float = memorisation(*(a.astype(np.float32) / 255 for a in (train, heldout, fake)), chunk_size=128)
    blockwise = memorisation(train, heldout, fake, chunk_size=128, uint8_scale=1 / 255)
    assert blockwise.keys() == as_float.keys()
    for key, value in as_float.items():
        assert blockwise[key] == pytest.approx(value, rel=1e-4, abs=1e-5), key  # float32 cdist rounding
    assert blockwise["near_copy_fraction"] == pytest.approx(0.4)
