"""FID against torchmetrics (an independent implementation) and against a closed form."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from trilemma.metrics import fid, frechet_distance, frechet_statistics


class _GivenFeatures(torch.nn.Module):
    """Feature extractor that returns its input, so torchmetrics sees our feature vectors."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        # torchmetrics reads num_features instead of probing with a dummy 299x299 image.
        self.num_features = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def torchmetrics_fid(real: np.ndarray, fake: np.ndarray) -> float:
    metric = FrechetInceptionDistance(feature=_GivenFeatures(real.shape[1]))
    # float64 in, so torchmetrics does not round its result back to float32.
    metric.update(torch.from_numpy(real).double(), real=True)
    metric.update(torch.from_numpy(fake).double(), real=False)
    return float(metric.compute())


def test_matches_torchmetrics_on_random_features() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 64))
    fake = rng.normal(size=(300, 64)) @ rng.normal(scale=0.3, size=(64, 64)) + 0.5
    ours, reference = fid(real, fake), torchmetrics_fid(real, fake)
    assert abs(ours - reference) / reference < 1e-4


@pytest.mark.parametrize("n", [50, 300])
def test_matches_torchmetrics_when_covariances_are_near_singular(n: int) -> None:
    # Rank-10 features in 64 dimensions (and, for n = 50, fewer samples than dimensions):
    # most covariance eigenvalues are rounding noise that a careless square root turns into
    # NaN or an imaginary part.
    rng = np.random.default_rng(1)
    real = rng.normal(size=(n, 10)) @ rng.normal(size=(10, 64))
    fake = rng.normal(size=(n, 10)) @ rng.normal(size=(10, 64)) + 0.1
    ours, reference = fid(real, fake), torchmetrics_fid(real, fake)
    assert np.isfinite(ours)
    assert abs(ours - reference) / reference < 1e-4


def test_trace_term_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(2, 500, 16))
    mu1, s1 = frechet_statistics(a)
    mu2, s2 = frechet_statistics(b @ rng.normal(size=(16, 16)))
    root = scipy.linalg.sqrtm(s1 @ s2)
    assert np.abs(root.imag).max() < 1e-6
    expected = ((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(root.real)
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-8)


def test_closed_form_for_diagonal_gaussians() -> None:
    # N(0, diag a) vs N(m, diag b): ||m||² + Σ (√a − √b)².
    rng = np.random.default_rng(3)
    a = np.array([1.0, 2.0, 0.5, 4.0, 1.0, 0.25, 3.0, 1.5])
    b = np.array([0.5, 2.0, 2.0, 1.0, 1.0, 1.0, 0.25, 3.0])
    m = np.array([1.0, 0.0, -1.0, 0.5, 0.0, 0.0, 0.0, 0.25])
    n = 200_000
    real = rng.normal(size=(n, 8)) * np.sqrt(a)
    fake = rng.normal(size=(n, 8)) * np.sqrt(b) + m
    expected = (m**2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert fid(real, fake) == pytest.approx(expected, rel=0.01)


def test_statistics_round_trip_and_inputs() -> None:
    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(2, 200, 8)).astype(np.float32)
    from_arrays = fid(real, fake)
    assert isinstance(from_arrays, float)
    assert fid(torch.from_numpy(real), torch.from_numpy(fake)) == pytest.approx(from_arrays)
    stats = frechet_statistics(real) + frechet_statistics(fake)
    assert frechet_distance(*stats) == pytest.approx(from_arrays)
    assert fid(real, real) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        fid(real, fake[:, :4])
