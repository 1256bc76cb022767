"""Requests a run cannot serve end in one line, exit code 2, no traceback."""

import numpy as np
import pytest

from trilemma.capabilities import augmentation_table, conditional_accuracy, stratified_subset


def _one_line_error(run_cli, *args, match):
    code, _, err = run_cli(*args)
    assert code == 2, err
    assert err.startswith("trilemma: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert match in err, err


@pytest.mark.parametrize("shape, what", [((5, 28, 28, 1), "28x28x1"), ((5, 8, 8, 3), "8x8x3"),
                                         ((5, 8, 8), None)])
def test_anomaly_checks_image_size_and_channels_against_the_run(run_cli, runs, tmp_path, shape, what):
    run = runs("gan")
    images = tmp_path / "images.npz"
    np.savez(images, x=np.zeros(shape, dtype=np.uint8))
    args = ("anomaly", run.run_dir, "--images", images, "--out", tmp_path / "s.csv")
    if what is None:  # N×H×W is a one-channel image: accepted
        code, _, err = run_cli(*args)
        assert code == 0, err
        return
    _one_line_error(run_cli, *args, match=f"images are {what} but the run makes 8x8x1")


def test_requests_a_family_cannot_serve(run_cli, runs, tmp_path):
    diffusion, vae, cvae = runs("diffusion"), runs("vae"), runs("cvae")
    _one_line_error(run_cli, "truncation", diffusion.run_dir, match="unconditional diffusion model has no")
    _one_line_error(run_cli, "augment", vae.run_dir, match="unconditional vae run")
    _one_line_error(run_cli, "conditional", vae.run_dir, match="train with --conditional")
    _one_line_error(run_cli, "sample", cvae.run_dir, "--n", 4, "--out", tmp_path / "s.npz", "--class", 10,
                    match="class 10 is out of range")
    _one_line_error(run_cli, "anomaly", vae.run_dir, "--out", tmp_path / "s.txt", "--data", "digits",
                    match="must end in .csv")
    _one_line_error(run_cli, "anomaly", vae.run_dir, "--out", tmp_path / "s.csv", "--data", "mnist",
                    match="images are 28x28x1 but the run makes 8x8x1")
    _one_line_error(run_cli, "truncation", vae.run_dir, "--data", "mnist", match="holds 28x28x1")


def test_stratified_subset_takes_each_class_equally():
    labels = np.repeat(np.arange(10), 30)
    index = stratified_subset(labels, 100, 10, seed=0)
    assert len(set(index)) == 100 and np.bincount(labels[index]).tolist() == [10] * 10
    assert not np.array_equal(index, stratified_subset(labels, 100, 10, seed=1))


def test_conditional_accuracy_and_augmentation_tables(runs, digits):
    run = runs("cvae")
    result = conditional_accuracy(run, digits, per_class=10, cas=False)
    assert result["n"] == 100 and len(result["per_class_agreement"]) == 10
    assert np.array(result["confusion"]).sum(1).tolist() == [10] * 10
    assert result["agreement"] == pytest.approx(np.trace(result["confusion"]) / 100)

    table = augmentation_table([run], digits, n_real=50, n_generated=100, seeds=[0], steps=20)
    real_only, augmented = table["rows"]
    assert real_only["source"] == "real only" and augmented["source"] == "vae"
    assert 0 <= augmented["mean"] <= 1
    assert augmented["gain"] == pytest.approx(augmented["mean"] - real_only["mean"])


def test_conditional_cli_reports_agreement_per_class(run_cli, runs, tmp_path):
    run = runs("cvae")
    code, out, err = run_cli("conditional", run.run_dir, "--per-class", 5, "--no-cas", "--temperature", 0.5,
                             "--json", tmp_path / "c.json")
    assert code == 0, err
    assert "agreement with the requested class" in out and "temperature 0.5" in out
    result = __import__("json").loads((tmp_path / "c.json").read_text())
    assert result["n"] == 50 and result["options"] == {"temperature": 0.5} and result["cas"] is None
