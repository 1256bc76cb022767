"""The one evaluation path: metric orderings a user would rely on, provenance, and the
`trilemma evaluate` command on sample files and trained runs."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trilemma.data import load_data
from trilemma.data.mixtures import MIXTURES
from trilemma.evaluation import (
    SampleMismatch,
    check_samples,
    default_nfe_steps,
    evaluate,
    fid_against_nfe,
    frechet_bias_estimate,
)
from trilemma.metrics.features import DomainClassifierExtractor, FeatureCache
from trilemma.metrics.frechet import fid
from trilemma.sampling import load_run

N = 1000


@pytest.fixture(scope="module")
def mnist():
    return load_data("mnist")


@pytest.fixture(scope="module")
def extractor():
    return DomainClassifierExtractor("mnist")


@pytest.fixture(scope="module")
def cache():
    return FeatureCache()


@pytest.fixture(scope="module")
def real_images(mnist):
    """N training images in random order, NHWC uint8 as `generate` returns them."""
    index = torch.from_numpy(np.random.default_rng(0).choice(len(mnist.x_train), N, replace=False))
    return mnist.x_train[index].permute(0, 2, 3, 1).numpy(), mnist.y_train[index].numpy()


def _blur(images: np.ndarray) -> np.ndarray:
    """A 5×5 box blur: removes the strokes' edges while keeping the digit recognisable."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
    x = F.avg_pool2d(x, 5, stride=1, padding=2, count_include_pad=False)
    return x.round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def three_sets(mnist, extractor, cache, real_images):
    images, _ = real_images
    noise = np.random.default_rng(1).integers(0, 256, images.shape, dtype=np.uint8)
    provenance = {"sampler": "none", "nfe": 0, "seed": 5}
    return {
        name: evaluate(x, mnist, extractor=extractor, cache=cache, provenance=provenance)
        for name, x in (("real", images), ("blurred", _blur(images)), ("noise", noise))
    }


def test_fd_and_kid_order_real_blurred_noise(three_sets):
    fd = {name: r["metrics"]["FD-lenet-mnist"] for name, r in three_sets.items()}
    kid = {name: r["metrics"]["kid_mean"] for name, r in three_sets.items()}
    assert fd["real"] < fd["blurred"] < fd["noise"]
    assert kid["real"] < min(kid["blurred"], kid["noise"])
    for result in three_sets.values():
        metrics = result["metrics"]
        assert metrics["fid"] == metrics["FD-lenet-mnist"]
        assert metrics["fid_name"] == "FD-lenet-mnist"
    real = three_sets["real"]["metrics"]
    # Real training images against held-out ones sit at the real-vs-real level of FD.
    assert real["fid"] < 3 * real["fid_real_floor"]
    assert real["classes_covered"] == 10 and real["num_classes"] == 10
    assert real["class_kl_to_real"] < 0.02
    assert real["classifier_score"] > 8 > three_sets["noise"]["metrics"]["classifier_score"]
    assert real["precision"] > 0.6 and real["recall"] > 0.6
    # Noise lands in one corner of feature space: inside some large real ball, which is the
    # outlier weakness of precision (Naeem et al. 2020), but it covers nothing.
    assert three_sets["noise"]["metrics"]["coverage"] < 0.05
    assert three_sets["noise"]["metrics"]["recall"] < 0.05


def test_sharpness_and_memorisation_see_blur_and_copies(three_sets):
    real, blurred = three_sets["real"]["metrics"], three_sets["blurred"]["metrics"]
    assert 0.8 < real["relative_sharpness"] < 1.25
    assert blurred["relative_sharpness"] < 0.5 * real["relative_sharpness"]
    # The "real" samples are training images: each is its own nearest training image.
    assert real["near_copy_fraction_pixels"] == 1.0
    assert real["memorisation_ratio_pixels"] < 0.01
    noise = three_sets["noise"]["metrics"]
    assert noise["near_copy_fraction_pixels"] == 0.0 and noise["memorisation_ratio_pixels"] > 1


def test_held_out_images_are_not_near_copies(mnist, extractor, cache):
    unseen = mnist.x_heldout.permute(0, 2, 3, 1).numpy()
    result = evaluate(unseen, mnist, extractor=extractor, cache=cache, reference="train",
                      n_real=N, provenance={})
    metrics, details = result["metrics"], result["details"]
    assert metrics["memorisation_ratio_features"] == pytest.approx(1.0)
    assert metrics["near_copy_fraction_pixels"] == pytest.approx(
        details["memorisation_pixels"]["heldout_near_copy_fraction"])
    assert metrics["near_copy_fraction_pixels"] < 0.2


def test_missing_half_the_classes_lowers_recall_coverage_and_classes(mnist, extractor, cache,
                                                                      real_images):
    images, labels = real_images
    full = evaluate(images[:500], mnist, extractor=extractor, cache=cache, provenance={})
    half = evaluate(images[labels < 5][:500], mnist, extractor=extractor, cache=cache,
                    provenance={})
    assert half["metrics"]["recall"] < full["metrics"]["recall"] - 0.2
    assert half["metrics"]["coverage"] < full["metrics"]["coverage"] - 0.2
    assert half["metrics"]["classes_covered"] <= 6 < full["metrics"]["classes_covered"]
    assert half["metrics"]["class_kl_to_real"] > 0.5
    # Fidelity is untouched: every sample is still a real digit.
    assert half["metrics"]["precision"] > 0.6
    # Fewer kinds of digit: fewer effectively distinct samples; and within a class that is
    # still there, as diverse as before.
    assert half["metrics"]["vendi"] < 0.8 * full["metrics"]["vendi"]  # measured 6.3 against 8.7
    assert half["details"]["vendi_per_class"][3] == pytest.approx(full["details"]["vendi_per_class"][3], rel=0.2)
    assert set(half["details"]["vendi_per_class"]) <= {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}


def test_copies_of_a_few_images_have_a_vendi_score_of_that_few(mnist, extractor, cache, real_images):
    images, _ = real_images
    copies = evaluate(np.repeat(images[:3], 100, axis=0), mnist, extractor=extractor, cache=cache,
                      provenance={})
    real = evaluate(images[:300], mnist, extractor=extractor, cache=cache, provenance={})
    assert 1 < copies["metrics"]["vendi"] <= 3 + 1e-6
    assert real["metrics"]["vendi"] > 3 and real["metrics"]["vendi_real"] > 3


def test_provenance_records_how_every_number_was_made(mnist, extractor, cache, three_sets,
                                                      real_images):
    p = three_sets["real"]["provenance"]
    assert p["extractor"] == "lenet-mnist" and p["extractor_sha256"] == extractor.weights_sha256
    assert (p["n_real"], p["n_generated"], p["reference"]) == (len(mnist.x_heldout), N, "heldout")
    assert (p["sampler"], p["nfe"], p["seed"], p["evaluation_seed"]) == ("none", 0, 5, 0)
    assert p["data"] == "mnist" and p["feature_dim"] == 64
    images, labels = real_images
    result = evaluate(images[:200], mnist, samples_y=labels[:200], extractor=extractor,
                      cache=cache, n_real=300, reference="train", seed=3,
                      provenance={"sampler": "ddim", "nfe": 20, "seed": 9, "run": {"step": 7}})
    p = result["provenance"]
    assert (p["n_real"], p["reference_available"], p["reference"]) == (300, 4000, "train")
    assert (p["sampler"], p["nfe"], p["seed"], p["evaluation_seed"]) == ("ddim", 20, 9, 3)
    assert p["run"] == {"step": 7} and p["n_generated"] == 200
    assert result["metrics"]["kid_subset_size"] == 200
    # Labels the samples were asked for agree with what the classifier sees in them.
    assert result["metrics"]["label_agreement"] > 0.95
    assert any("biased" in note for note in result["notes"])


def test_samples_of_the_wrong_shape_or_type_are_refused(mnist):
    with pytest.raises(SampleMismatch, match=r"^x\.npz: samples are 32x32x3 but mnist images "
                                              r"are 28x28x1$"):
        check_samples(np.zeros((20, 32, 32, 3), np.uint8), mnist, "x.npz")
    with pytest.raises(SampleMismatch, match=r"^x\.npz: float images must lie in \[0, 1\]"):
        check_samples(np.full((20, 28, 28, 1), 2.0, np.float32), mnist, "x.npz")
    # Floats in [0, 1] are intensities, read as every command reads them: level = round(255 x).
    levels = mnist.x_heldout[:20]
    np.testing.assert_array_equal(check_samples(levels.numpy() / 255.0, mnist), levels)
    with pytest.raises(SampleMismatch, match="2-D points but mnist images are 28x28x1"):
        check_samples(np.zeros((20, 2), np.float32), mnist, "x.npz")
    # The data layer's NCHW tensors are accepted as they are.
    assert check_samples(mnist.x_heldout[:20], mnist).shape == (20, 1, 28, 28)


def test_points_of_a_mixture_get_the_mode_protocol():
    ring = load_data("ring8")
    mixture = MIXTURES["ring8"]()
    points = mixture.sample(2500, np.random.default_rng(4))
    result = evaluate(points, ring, provenance={})
    metrics = result["metrics"]
    assert metrics["modes_covered"] == 8 and metrics["high_quality_fraction"] > 0.97
    assert metrics["precision"] > 0.9 and metrics["coverage"] > 0.9
    half = points[np.linalg.norm(points - mixture.centres[:4][:, None], axis=2).min(0) < 0.1]
    collapsed = evaluate(half, ring, provenance={})["metrics"]
    assert collapsed["modes_covered"] == 4 and collapsed["reverse_kl_modes"] == pytest.approx(
        np.log(2), abs=0.05)
    assert collapsed["coverage"] < 0.6
    assert result["provenance"]["extractor"] == "raw-coordinates"


def test_other_points_get_fd_on_raw_coordinates(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "blob.npy", rng.normal(size=(600, 3)).astype(np.float32))
    blob = load_data(str(tmp_path / "blob.npy"))
    points = rng.normal(size=(300, 3))
    near = evaluate(points, blob, provenance={})["metrics"]
    far = evaluate(points + 2.0, blob, provenance={})["metrics"]
    assert near["fid_name"] == "FD-raw" and "modes_covered" not in near
    assert near["FD-raw"] < 0.2 and far["FD-raw"] > 10
    assert near["fid"] == pytest.approx(fid(blob.x_heldout.numpy(), points))


def test_the_bias_estimate_matches_simulated_gaussians():
    rng = np.random.default_rng(0)
    d, n, m = 16, 400, 300
    reference = rng.normal(size=(20_000, d))
    simulated = np.mean([fid(rng.normal(size=(n, d)), rng.normal(size=(m, d))) for _ in range(8)])
    assert frechet_bias_estimate(reference, n, m) == pytest.approx(simulated, rel=0.15)
    isotropic = d * (d + 5) / 4 * (1 / n + 1 / m)
    assert frechet_bias_estimate(reference, n, m) == pytest.approx(isotropic, rel=0.05)


def test_default_nfe_steps_keep_ddpm_affordable():
    assert default_nfe_steps(100)["ddpm"] == (100, 250, 1000)
    assert default_nfe_steps(500)["ddpm"] == (100,)
    assert default_nfe_steps(2000)["ddpm"] == ()
    assert default_nfe_steps(2000)["dpm-solver++"] == (5, 10, 20, 50)


# ----------------------------------------------------------------------------- runs and the CLI

@pytest.fixture(scope="module")
def diffusion_run(trained_run):
    return trained_run("diffusion-ring8")


@pytest.fixture(scope="module")
def vae_run(trained_run):
    return trained_run("vae")


def test_fid_against_nfe_has_one_row_per_sampler_and_step_count(diffusion_run):
    run = load_run(diffusion_run, "cpu")
    rows = fid_against_nfe(run.family, run.normalizer, load_data("ring8"),
                           samplers=("ddim", "dpm-solver++"), steps=(2, 8), n=200)
    assert [(r["sampler"], r["steps"], r["nfe"]) for r in rows] == [
        ("ddim", 2, 2), ("ddim", 8, 8), ("dpm-solver++", 2, 2), ("dpm-solver++", 8, 8)]
    for row in rows:
        assert row["fid_name"] == "FD-raw" and row["fid"] >= 0 and row["samples_per_s"] > 0
        assert row["n_generated"] == 200 and row["reference"] == "heldout"
        assert 0 <= row["modes_covered"] <= 8


def test_cli_evaluates_a_run_and_writes_json(run_cli, vae_run, tmp_path):
    out = tmp_path / "eval.json"
    code, stdout, stderr = run_cli("evaluate", vae_run, "--n", 200, "--json", out,
                                   "--iwae-k", 5, "--device", "cpu")
    assert code == 0, stderr
    assert "FD-lenet-digits" in stdout and "provenance: lenet-digits" in stdout
    result = json.loads(out.read_text())
    p = result["provenance"]
    assert (p["sampler"], p["nfe"], p["n_generated"], p["seed"]) == ("decoder", 1, 200, 0)
    assert p["run"]["family"] == "vae" and p["run"]["step"] == 100
    assert p["run"]["train_seconds"] > 0 and p["data"] == "digits"
    assert result["metrics"]["num_classes"] == 10
    assert result["likelihood"]["k"] == 5 and result["likelihood"]["nll_nats"] > 0


def test_cli_bounds_a_diffusion_runs_likelihood_and_refuses_it_for_a_vae(run_cli, diffusion_run, vae_run, tmp_path):
    out = tmp_path / "eval.json"
    code, stdout, stderr = run_cli("evaluate", diffusion_run, "--n", 200, "--json", out, "--vlb-steps", 20,
                                   "--device", "cpu")
    assert code == 0, stderr
    assert "NLL bound in bits per dimension" in stdout
    bound = json.loads(out.read_text())["diffusion_bound"]
    assert bound["steps"] == 20 and bound["n"] == 1000 and bound["split"] == "heldout"
    assert math.isfinite(bound["nll_nats"]) and bound["space"] == "data"
    code, _, stderr = run_cli("evaluate", vae_run, "--vlb-steps", 20, "--device", "cpu")
    assert code == 2 and "--vlb-steps" in stderr and "Traceback" not in stderr


def test_cli_evaluates_a_sample_file(run_cli, tmp_path):
    digits = load_data("digits")
    path = tmp_path / "samples.npz"
    np.savez(path, x=digits.x_train[:300].permute(0, 2, 3, 1).numpy(),
             y=digits.y_train[:300].numpy())
    out = tmp_path / "eval.json"
    code, _, stderr = run_cli("evaluate", path, "--data", "digits", "--json", out, "--n", 250)
    assert code == 0, stderr
    result = json.loads(out.read_text())
    assert result["provenance"]["n_generated"] == 250
    assert result["provenance"]["sampler"] is None and result["provenance"]["source"] == str(path)
    assert "label_agreement" in result["metrics"]


def test_cli_refuses_samples_of_the_wrong_shape_in_one_line(run_cli, tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, x=np.zeros((20, 32, 32, 3), np.uint8))
    code, _, stderr = run_cli("evaluate", path, "--data", "mnist")
    assert code == 2
    assert stderr.strip() == (f"trilemma: error: {path}: samples are 32x32x3 but mnist images "
                              "are 28x28x1")
    assert "Traceback" not in stderr


def test_cli_nfe_curve_on_a_diffusion_run(run_cli, diffusion_run, tmp_path):
    out = tmp_path / "curve.json"
    code, stdout, stderr = run_cli("evaluate", diffusion_run, "--n", 300, "--nfe-curve",
                                   "--nfe-curve-n", 20, "--json", out, "--device", "cpu")
    assert code == 0, stderr
    assert "modes covered" in stdout and "against network evaluations" in stdout
    rows = json.loads(out.read_text())["nfe_curve"]
    assert {r["sampler"] for r in rows} == {"ddpm", "ddim", "dpm-solver++"}
    assert [r["nfe"] for r in rows if r["sampler"] == "ddpm"] == [100, 250, 1000]
