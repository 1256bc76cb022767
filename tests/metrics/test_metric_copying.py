"""AuthPct, C_T and the generalisation gap: each against its definition computed independently
(scipy, scikit-learn, a dense loop), then on digits: training images with a little noise are
flagged, fresh held-out images are not."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from scipy.stats import mannwhitneyu

from trilemma.data import load_data
from trilemma.metrics.copying import _log_kernels, authpct, c_t, fit_bandwidths, generalisation_gap
from trilemma.metrics.features import extractor_for


def test_authpct_is_its_definition_with_duplicates_and_blocks():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(2300, 6))
    train[5] = train[9]  # a duplicate: its nearest other training point is at distance 0
    fake = np.concatenate([rng.normal(size=(400, 6)), train[:100] + 1e-3, train[[5]] + 0.5])
    between = cdist(train, train)
    np.fill_diagonal(between, np.inf)
    to_fake = cdist(fake, train)
    nearest = to_fake.argmin(axis=1)
    expected = 100 * np.mean(between.min(axis=1)[nearest] < to_fake.min(axis=1))
    assert authpct(train, fake) == pytest.approx(expected, abs=1e-12)
    assert authpct(train, train[10:110] + 1e-3) == 0.0  # (the duplicate pair would be authentic)


def test_c_t_with_one_cell_is_the_z_scored_mann_whitney_test():
    rng = np.random.default_rng(1)
    train, heldout, fake = rng.normal(size=(600, 4)), rng.normal(size=(150, 4)), rng.normal(size=(120, 4)) * 0.8
    fake_d, heldout_d = cdist(fake, train).min(axis=1), cdist(heldout, train).min(axis=1)
    u = mannwhitneyu(fake_d, heldout_d, alternative="less").statistic
    n, m = len(heldout), len(fake)
    expected = (u - (n * m / 2 - 0.5)) / math.sqrt(n * m * (n + m + 1) / 12)
    assert c_t(train, heldout, fake, cells=1)["c_t"] == pytest.approx(expected, abs=1e-9)


def test_c_t_weights_the_cells_by_their_heldout_share_and_skips_thin_ones():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [50.0, 0.0], [0.0, 50.0]])

    def around(counts):
        return np.concatenate([centre + rng.normal(size=(k, 2)) for centre, k in zip(centres, counts)])

    train, heldout = around([400, 300, 300]), around([100, 60, 40])
    fake = around([80, 70, 10])  # the third cell has 10 samples, not more than 20: left out
    result = c_t(train, heldout, fake)
    kept = [row for row in result["cells"] if row["z"] is not None]
    assert len(kept) == 2
    expected = sum(r["heldout_share"] * r["z"] for r in kept) / sum(r["heldout_share"] for r in kept)
    assert result["c_t"] == pytest.approx(expected)
    assert sorted(round(r["heldout_share"], 6) for r in kept) == [0.3, 0.5]


def test_the_bandwidths_maximise_the_training_likelihood_and_the_kernels_are_normalised():
    rng = np.random.default_rng(3)
    train, kernels = torch.from_numpy(rng.normal(size=(300, 3))), torch.from_numpy(rng.normal(size=(40, 3)))
    fitted = fit_bandwidths(train, kernels)

    def mean_log_likelihood(log_variance):
        return float(_log_kernels(train, kernels, log_variance).logsumexp(dim=1).mean())

    for shift in (-0.3, 0.3):
        assert mean_log_likelihood(fitted) > mean_log_likelihood(fitted + shift)
    # Each kernel is an isotropic Gaussian with variance exp(log_variance) up to the 2π constant.
    point, log_variance = train[:1], fitted
    direct = [-0.5 * float(((point - k) ** 2).sum()) / math.exp(v) - 1.5 * float(v) - math.log(40)
              for k, v in zip(kernels, log_variance)]
    assert _log_kernels(point, kernels, log_variance)[0].tolist() == pytest.approx(direct)
    assert logsumexp(direct) == pytest.approx(float(_log_kernels(point, kernels, log_variance).logsumexp(dim=1)))


@pytest.fixture(scope="module")
def digit_features():
    data = load_data("mnist")
    extractor = extractor_for("mnist", data.sample_shape)
    rng = torch.Generator().manual_seed(0)
    train = data.x_train[torch.randperm(len(data.x_train), generator=rng)[:3000]]  # the split is in class order
    noisy = (train[:500].float() + 8 * torch.randn(train[:500].shape, generator=rng)).clamp(0, 255).round()
    heldout = data.x_heldout[torch.randperm(len(data.x_heldout), generator=rng)]
    return {name: extractor.features(x.to(torch.uint8)) for name, x in
            (("train", train), ("test", heldout[:500]), ("fresh", heldout[500:1000]), ("copies", noisy))}


def test_copies_are_flagged_and_fresh_images_are_not(digit_features):
    f = digit_features
    copies, fresh = c_t(f["train"], f["test"], f["copies"])["c_t"], c_t(f["train"], f["test"], f["fresh"])["c_t"]
    assert copies <= -3 and abs(fresh) < 2, (copies, fresh)
    real = authpct(f["train"], f["test"])
    assert authpct(f["train"], f["copies"]) < real / 2 < authpct(f["train"], f["fresh"]), real
    # The gap sets as many training points as there are held-out ones against them: with the
    # copies' 500 sources as the training set, each copy's kernel can find its own source.
    copied_gap = generalisation_gap(f["train"][:500], f["test"], f["copies"])
    fresh_gap = generalisation_gap(f["train"][:500], f["test"], f["fresh"])
    assert copied_gap > 30 and abs(fresh_gap) < 10, (copied_gap, fresh_gap)
    diluted = generalisation_gap(f["train"], f["test"], f["copies"])  # 500 of 3,000 sources compared
    assert fresh_gap < diluted < copied_gap
