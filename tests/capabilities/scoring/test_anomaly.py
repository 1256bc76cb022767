"""Anomaly scores: one per image in input order, higher for what the model never saw."""

import csv

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from trilemma.capabilities import anomaly_scores, auroc, score_method
from trilemma.capabilities.anomaly import mahalanobis, score_images, training_reference
from trilemma.errors import DataError, UnsupportedRequest


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


def test_mahalanobis_matches_a_direct_computation_with_the_shrunk_covariance():
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(0)
    reference = rng.normal(size=(300, 2)) @ np.array([[2.0, 0.0], [1.5, 0.5]]) + [3.0, -1.0]
    points = rng.normal(size=(7, 2)) * 3
    covariance = LedoitWolf().fit(reference).covariance_
    centred = points - reference.mean(0)
    expected = np.sqrt(np.einsum("ni,ij,nj->n", centred, np.linalg.inv(covariance), centred))
    np.testing.assert_allclose(mahalanobis(points, reference), expected, rtol=1e-10)
    # One-dimensional: |x − mean| / std, up to the shrinkage (none for one feature).
    column = reference[:, :1]
    np.testing.assert_allclose(mahalanobis(np.array([[5.0]]), column),
                               [abs(5.0 - column.mean()) / column.std()], rtol=1e-10)
    with pytest.raises(UnsupportedRequest, match="at least 2"):
        mahalanobis(points, reference[:1])


@pytest.mark.parametrize("family", ["vae", pytest.param("diffusion", marks=pytest.mark.slow)])
def test_typicality_is_two_sided_distance_of_the_statistics_from_the_reference(runs, digits, family):
    # Likelihood-like statistics flag what is less likely than the data; the typicality score
    # also flags what is *more* likely than training images are (a thin 1, a blank page).
    run = runs(family)
    real, noise = _real_and_noise(digits, n=100)
    reference = digits.x_train[:400].numpy().transpose(0, 2, 3, 1)
    x = np.concatenate([real, noise[:20]])
    raw = score_images(run, x, reference=None)
    ref = score_images(run, reference, reference=None)
    typical = score_images(run, x, reference=reference)
    if family == "vae":
        np.testing.assert_array_equal(raw["score"], raw["nll_nats"])
        features = lambda c: np.stack([c["nll_nats"], np.log(c["reconstruction_error"] + 1e-12),
                                       c["kl_nats"], c["posterior_entropy_nats"]], 1)
        np.testing.assert_allclose(typical["score"], mahalanobis(features(raw), features(ref)), rtol=1e-10)
        statistic = raw["nll_nats"]
    else:
        np.testing.assert_array_equal(raw["score"], raw["denoising_error"])
        log_ref = np.log(ref["denoising_error"])
        expected = np.abs(np.log(raw["denoising_error"]) - log_ref.mean()) / log_ref.std()
        np.testing.assert_allclose(typical["score"], expected, rtol=1e-8)
        statistic = raw["denoising_error"]
    # The most likely tenth of the real digits: ranked normal by the raw statistic, anomalous
    # (above the median) by typicality.
    likeliest = np.argsort(statistic[:100])[:10]
    assert (raw["score"][likeliest] < np.median(raw["score"][:100])).all()
    assert np.median(typical["score"][likeliest]) > np.median(typical["score"][:100])


def test_the_training_reference_is_a_seeded_draw_of_the_runs_own_training_split(runs, digits):
    run = runs("vae")
    reference = training_reference(run, n=50, seed=3)
    assert reference.shape == (50, *digits.x_train.shape[1:])
    assert torch.equal(reference, training_reference(run, n=50, seed=3))
    everything = run.normalizer.to_model(digits.x_train)
    assert all((everything == row).flatten(1).all(1).any() for row in reference)
    assert len(training_reference(run, n=10**6)) == len(digits.x_train)


@pytest.mark.parametrize("family", ["vae", "gan", "diffusion"])
def test_uniform_noise_scores_higher_than_real_digits(runs, digits, family):
    run = runs(family)
    real, noise = _real_and_noise(digits)
    columns = score_images(run, np.concatenate([real, noise]))
    labels = np.r_[np.zeros(len(real)), np.ones(len(noise))]
    assert columns["score"].shape == (200,) and np.isfinite(columns["score"]).all()
    assert auroc(columns["score"], labels) > 0.9, score_method(run.family)
    assert auroc(score_images(run, np.concatenate([real, noise]), reference=None)["score"], labels) > 0.9


@pytest.mark.parametrize("family", ["vae", pytest.param("diffusion", marks=pytest.mark.slow), "gan"])
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


def test_posterior_kl_and_entropy_match_torch_distributions(runs, digits):
    from torch.distributions import Normal, kl_divergence

    run = runs("vae")
    real, _ = _real_and_noise(digits, n=20)
    x_model = run.normalizer.to_model(torch.from_numpy(real.transpose(0, 3, 1, 2).copy()))
    columns = anomaly_scores(run.family, x_model, k=2)
    with torch.no_grad():
        mean, log_variance = run.family.encode(x_model, None)
    posterior = Normal(mean.double(), (0.5 * log_variance.double()).exp())
    prior = Normal(torch.zeros_like(posterior.loc), torch.ones_like(posterior.scale))
    np.testing.assert_allclose(columns["kl_nats"], kl_divergence(posterior, prior).sum(1), rtol=1e-6)
    np.testing.assert_allclose(columns["posterior_entropy_nats"], posterior.entropy().sum(1), rtol=1e-6)


def test_conditional_vae_scores_marginalise_over_classes(runs, digits):
    run = runs("cvae")
    real, _ = _real_and_noise(digits, n=50)
    x_model = run.normalizer.to_model(torch.from_numpy(real.transpose(0, 3, 1, 2).copy()))
    columns = anomaly_scores(run.family, x_model, k=4)
    assert set(columns) == {"score", "nll_nats", "bits_per_dim", "reconstruction_error", "kl_nats",
                            "posterior_entropy_nats"}
    assert np.isfinite(columns["score"]).all() and (columns["score"] > 0).all()
    np.testing.assert_array_equal(columns["score"], columns["nll_nats"])  # no reference: the raw NLL


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
    typical = [float(r["score"]) for r in rows]

    # --reference none: the raw NLL; --reference FILE: those images' statistics.
    code, stdout, err = run_cli("anomaly", run.run_dir, "--data", "digits", "--out", out, "--k", 2,
                                "--reference", "none")
    assert code == 0, err
    rows = list(csv.DictReader(out.open()))
    assert [float(r["score"]) for r in rows] == [float(r["nll_nats"]) for r in rows] != typical
    reference = tmp_path / "reference.npz"
    np.savez(reference, x=digits.x_train[:300].numpy().transpose(0, 2, 3, 1))
    code, stdout, err = run_cli("anomaly", run.run_dir, "--data", "digits", "--out", out, "--k", 2,
                                "--reference", reference)
    assert code == 0, err
    from_file = [float(r["score"]) for r in csv.DictReader(out.open())]
    assert from_file != typical and np.corrcoef(from_file, typical)[0, 1] > 0.9


def test_a_reference_of_the_wrong_size_or_a_missing_training_set_is_a_one_line_error(run_cli, runs, digits,
                                                                                     tmp_path):
    run = runs("vae")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, x=np.zeros((10, 9, 9, 1), dtype=np.uint8))
    code, _, err = run_cli("anomaly", run.run_dir, "--data", "digits", "--out", tmp_path / "s.csv",
                           "--reference", wrong)
    assert code == 2 and err.count("\n") == 1 and "typicality reference" in err and "8x8" in err, err
    moved = type(run)(run.run_dir, run.family, run.normalizer,
                      {**run.config, "data": {**run.config["data"], "spec": str(tmp_path / "gone.npz")}}, run.step)
    with pytest.raises(DataError, match="give in-distribution images with --reference"):
        training_reference(moved)


def test_images_may_come_as_float_intensities_or_channels_first(runs, digits):
    run = runs("gan")
    real, _ = _real_and_noise(digits, n=10)
    as_uint8 = score_images(run, real)["score"]
    np.testing.assert_allclose(score_images(run, real.astype(np.float32) / 255)["score"], as_uint8, rtol=1e-6)
    np.testing.assert_allclose(score_images(run, real.transpose(0, 3, 1, 2))["score"], as_uint8, rtol=1e-6)
    with pytest.raises(__import__("trilemma").errors.DataError, match="float images must lie in"):
        score_images(run, real.astype(np.float32))
