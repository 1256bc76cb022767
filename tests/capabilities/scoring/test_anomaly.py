"""Anomaly scores: one per image in input order, higher for what the model never saw."""

import csv

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from trilemma.capabilities import anomaly_scores, auroc, score_method
from trilemma.capabilities.anomaly import score_images
from trilemma.errors import UnsupportedRequest


def _real_and_noise(digits, n=100, seed=0):
    rng = np.random.default_rng(seed)
    real = digits.x_heldout[:n].numpy().transpose(0, 2, 3, 1)
    noise = rng.integers(0, 256, size=real.shape, dtype=np.uint8)
    return real, noise


def test_auroc_matches_a_hand_computed_case_and_sklearn():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    labels = np.array([0, 0, 1, 1])
    # Pairs (anomaly, normal): (0.35 > 0.1), (0.35 < 0.4), (0.8 > both): 3 of 4.
    assert auroc(scores, labels) == pytest.approx(0.75)
    rng = np.random.default_rng(1)
    scores, labels = rng.normal(size=200).round(1), rng.integers(0, 2, 200)  # with ties
    assert auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(UnsupportedRequest, match="both normal"):
        auroc(scores, np.zeros(200))


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_uniform_noise_scores_higher_than_real_digits(runs, digits, family):
    run = runs(family)
    real, noise = _real_and_noise(digits)
    columns = score_images(run, np.concatenate([real, noise]))
    labels = np.r_[np.zeros(len(real)), np.ones(len(noise))]
    assert columns["score"].shape == (200,) and np.isfinite(columns["score"]).all()
    assert auroc(columns["score"], labels) > 0.9, score_method(run.family)


@pytest.mark.parametrize("family", ["vae", "diffusion", "gan"])
def test_scores_follow_the_inputs_order_and_are_deterministic(runs, digits, family):
    run = runs(family)
    real, noise = _real_and_noise(digits, n=20)
    x = np.concatenate([real, noise])
    order = np.random.default_rng(0).permutation(len(x))
    first = score_images(run, x, batch_size=16)
    again = score_images(run, x, batch_size=16)
    permuted = score_images(run, x[order], batch_size=16)
    for name in first:
        assert np.array_equal(first[name], again[name])
        np.testing.assert_allclose(permuted[name], first[name][order], rtol=1e-5, atol=1e-6)


def test_conditional_vae_scores_marginalise_over_classes(runs, digits):
    run = runs("cvae")
    real, _ = _real_and_noise(digits, n=50)
    x_model = run.normalizer.to_model(__import__("torch").from_numpy(real.transpose(0, 3, 1, 2).copy()))
    columns = anomaly_scores(run.family, x_model, k=4)
    assert set(columns) == {"score", "nll_nats", "bits_per_dim", "reconstruction_error"}
    assert np.isfinite(columns["score"]).all() and (columns["score"] > 0).all()


def test_anomaly_cli_writes_one_row_per_image_and_the_auroc(run_cli, runs, digits, tmp_path):
    run = runs("vae")
    real, noise = _real_and_noise(digits, n=30)
    images = tmp_path / "images.npz"
    np.savez(images, x=np.concatenate([real, noise]))
    np.save(tmp_path / "labels.npy", np.r_[np.zeros(30), np.ones(30)].astype(np.int64))
    out = tmp_path / "scores.csv"
    code, stdout, err = run_cli("anomaly", run.run_dir, "--images", images, "--out", out,
                                "--labels", tmp_path / "labels.npy", "--k", 4)
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 60 and [int(r["index"]) for r in rows] == list(range(60))
    assert {"score", "nll_nats", "reconstruction_error", "anomalous"} <= set(rows[0])
    scores = np.array([float(r["score"]) for r in rows])
    assert scores[30:].mean() > scores[:30].mean()
    assert "AUROC" in stdout and "score" in stdout

    # The held-out split of a data spec, with a class marked as the anomaly.
    code, stdout, err = run_cli("anomaly", run.run_dir, "--data", "digits", "--anomalous-classes", "0",
                                "--out", out, "--k", 2)
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == len(digits.x_heldout)
    assert [int(r["anomalous"]) for r in rows] == (digits.y_heldout.numpy() == 0).astype(int).tolist()


def test_images_may_come_as_float_intensities_or_channels_first(runs, digits):
    run = runs("gan")
    real, _ = _real_and_noise(digits, n=10)
    as_uint8 = score_images(run, real)["score"]
    np.testing.assert_allclose(score_images(run, real.astype(np.float32) / 255)["score"], as_uint8, rtol=1e-6)
    np.testing.assert_allclose(score_images(run, real.transpose(0, 3, 1, 2))["score"], as_uint8, rtol=1e-6)
    with pytest.raises(__import__("trilemma").errors.DataError, match="float images must lie in"):
        score_images(run, real.astype(np.float32))
