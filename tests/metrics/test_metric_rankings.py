"""Each metric orders controlled inputs the way its definition says it must."""

import numpy as np
import pytest

from trilemma.metrics import fid, kid, prdc

_CLUSTERS = 10
_DIM = 32


def _clustered(n: int, rng: np.random.Generator, clusters=range(_CLUSTERS)) -> np.ndarray:
    centres = np.random.default_rng(123).normal(scale=3.0, size=(_CLUSTERS, _DIM))
    chosen = rng.choice(np.asarray(list(clusters)), size=n)
    return centres[chosen] + rng.normal(size=(n, _DIM))


@pytest.fixture(scope="module")
def sets() -> dict[str, np.ndarray]:
    # Correlated Gaussian features of unit-order scale, like a pooled extractor layer. (With
    # |x|² ≫ d the cubic kernel, and KID's subset-to-subset spread, grow as |x|⁶.)
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(_DIM, _DIM)) / np.sqrt(_DIM)
    real = rng.normal(size=(1600, _DIM)) @ mixing + 0.5
    half_a, half_b = real[:800], real[800:]
    return {
        "real": half_a,
        "same": half_b,
        "perturbed": half_b + rng.normal(scale=0.7, size=half_b.shape),
        "noise": rng.normal(size=half_b.shape) * half_a.std() + half_a.mean(),
    }


def test_fid_and_kid_order_same_perturbed_noise(sets) -> None:
    real = sets["real"]
    fids = [fid(real, sets[name]) for name in ("same", "perturbed", "noise")]
    kids = [
        kid(real, sets[name], subset_size=400, subsets=50)[0]
        for name in ("same", "perturbed", "noise")
    ]
    assert fids[0] < fids[1] < fids[2]
    assert kids[0] < kids[1] < kids[2]


def test_missing_clusters_lower_recall_and_coverage() -> None:
    rng = np.random.default_rng(1)
    real = _clustered(800, rng)
    full = prdc(real, _clustered(800, rng))
    half = prdc(real, _clustered(800, rng, clusters=range(_CLUSTERS // 2)))
    assert half["recall"] < full["recall"] - 0.3
    assert half["coverage"] < full["coverage"] - 0.3
    # The fakes that exist are still on the real manifold.
    assert half["precision"] > 0.8
