"""`trilemma compare` end to end on a small problem: outputs, resume, and bad requests."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from trilemma.cli import main
from trilemma.compare import family_job, run_comparison
from trilemma.compare import runner as runner_module
from trilemma.data import load_data
from trilemma.errors import RunError
from trilemma.training import Budget, train

FIELDS = ("fid", "kid", "precision", "recall", "density", "coverage", "classes_covered",
          "sharpness", "samples_per_s", "nfe", "train_seconds", "parameters", "peak_memory_bytes")


@pytest.mark.slow  # the shared small comparison takes a while to train
def test_outputs_hold_every_family_with_its_figures(small_comparison):
    out, _ = small_comparison
    stored = json.loads((out / "results.json").read_text())
    assert set(stored["families"]) == {"vae", "gan", "diffusion"}
    for name, entry in stored["families"].items():
        for field in FIELDS:
            assert entry[field] is not None, (name, field)
        assert entry["steps"] == 12  # the same budget for every family
        assert entry["provenance"]["n_generated"] == 60
        assert entry["provenance"]["extractor"] == "lenet-digits"
        # A curve point at half the budget and one at its end.
        points = entry["curves"][0]["points"]
        assert [p["fraction"] for p in points] == [0.5, 1.0]
        assert points[-1]["step"] == 12
    assert stored["families"]["diffusion"]["nfe"] == 20
    assert stored["families"]["gan"]["nfe"] == 1
    assert [row["nfe"] for row in stored["families"]["diffusion"]["nfe_curve"]] == [2, 4]
    assert stored["recommendation"]["family"] in stored["families"]
    assert {c["verdict"] for c in stored["claims"]} <= {"supported", "contradicted", "mixed", "not measured"}
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["family"] for r in rows] == ["vae", "gan", "diffusion"]
    assert float(rows[2]["fid"]) == pytest.approx(stored["families"]["diffusion"]["fid"], rel=1e-5)


def test_fraction_of_peak_is_against_the_peak_of_the_training_precision(tmp_path, monkeypatch, small_settings):
    """A bf16 run is held against the bf16 matmul peak, and the report names that precision."""
    asked = []

    def fake_peak(device, dtype=torch.float32, **kwargs):
        asked.append(dtype)
        return 1000.0

    monkeypatch.setattr(runner_module, "matmul_peak_gflops", fake_peak)
    out = tmp_path / "out"
    results = run_comparison(small_settings(families=("vae",), precision="bf16", n_samples=40, n_curve=20),
                             out, progress=False)
    assert asked == [torch.bfloat16]
    assert results["matmul_peak_precision"] == "bf16"
    vae = results["families"]["vae"]
    assert vae["training_provenance"]["precision"] == "bf16"
    achieved = vae["training_gflops_per_image"] * vae["images_per_s"]
    assert vae["fraction_of_peak"] == pytest.approx(achieved / 1000.0, rel=1e-6)
    assert "bf16 matmul peak 1000 GFLOP/s" in (out / "report.html").read_text()


@pytest.mark.slow  # the shared small comparison takes a while to train
def test_checkpoints_serve_trilemma_sample(small_comparison, tmp_path):
    out, _ = small_comparison
    for family in ("vae", "gan", "diffusion"):
        target = tmp_path / f"{family}.npz"
        assert main(["sample", str(out / "runs" / f"{family}-seed0"), "--n", "5", "--out", str(target),
                     "--sampler-steps", "2"] if family == "diffusion" else
                    ["sample", str(out / "runs" / f"{family}-seed0"), "--n", "5", "--out", str(target)]) == 0
        assert np.load(target)["x"].shape == (5, 8, 8, 1)


@pytest.mark.slow
def test_resume_retrains_nothing_that_finished(tmp_path, monkeypatch, small_settings):
    out = tmp_path / "out"
    settings = small_settings(families=("vae", "gan"), n_samples=40, n_curve=20)
    calls = []
    real_train = family_job.train

    def counting_train(family, *args, **kwargs):
        calls.append(family)
        return real_train(family, *args, **kwargs)

    monkeypatch.setattr(family_job, "train", counting_train)

    class Stop(Exception):
        pass

    def stop_after_first(record):
        raise Stop

    with pytest.raises(Stop):
        run_comparison(settings, out, progress=False, side_by_side=False, on_family_done=stop_after_first)
    assert calls == ["vae"]
    finished = out / "runs" / "vae-seed0" / "evaluation.json"
    stamp = finished.stat().st_mtime_ns
    # The GAN had started: 5 of its 12 steps, as if the comparison was killed mid-way.
    train("gan", load_data("digits"), out / "runs" / "gan-seed0", budget=Budget(steps=5),
          progress=False, overrides=settings.overrides["gan"], precision="fp32", device="cpu")
    results = run_comparison(settings, out, progress=False, side_by_side=False)
    assert calls == ["vae", "gan"]  # the VAE was not trained again
    assert finished.stat().st_mtime_ns == stamp
    assert results["families"]["gan"]["steps"] == 12  # resumed to the full budget
    assert set(results["families"]) == {"vae", "gan"}


def test_other_settings_in_the_same_folder_are_refused(tmp_path, small_settings):
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(RunError, match="not empty"):
        run_comparison(small_settings(), out, progress=False)
    assert (out / "mine.txt").read_text() == "keep"


@pytest.mark.slow  # the shared small comparison takes a while to train
def test_changed_budget_is_refused_on_resume(small_comparison, capsys):
    out, _ = small_comparison
    code = main(["compare", "--data", "digits", "--steps", "99", "--out", str(out), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("trilemma: error:") and "other settings" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["--families", "vae,nosuch"], "unknown family nosuch"),
    (["--priorities", "beauty=2"], "not CRITERION=WEIGHT"),
    (["--priorities", "speed=-1"], "must be a finite number"),
    (["--data", "no/such/folder"], "no/such/folder"),
])
def test_bad_requests_get_one_line(tmp_path, capsys, argv, message):
    code = main(["compare", "--out", str(tmp_path / "out"), "--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # the shared small comparison takes a while to train
def test_capabilities_section_measures_every_family_alike(small_comparison):
    out, _ = small_comparison
    section = json.loads((out / "results.json").read_text())["capabilities"]
    assert set(section["methods"]) == {"vae", "gan", "diffusion"}
    assert section["methods"]["diffusion"]["inpaint"] == "repaint"
    assert section["methods"]["gan"]["upscale"] is None
    for name in ("vae", "gan", "diffusion"):
        inpainting = section["inpainting"][name]
        assert inpainting["known_pixels_identical"] is True
        assert 0.0 <= inpainting["label_recovery"] <= 1.0
        assert 0.0 < section["interpolation"][name]["smoothness"] <= 1.0
        assert 0.0 <= section["anomaly"][name]["auroc_uniform_noise"] <= 1.0
    # The knob: temperature and truncation are swept; unconditional diffusion has no guidance.
    assert section["sweeps"]["vae"]["knob"] == "temperature"
    assert section["sweeps"]["gan"]["knob"] == "truncation"
    assert "unavailable" in section["sweeps"]["diffusion"]
    assert "inpainting_grid" not in section  # pictures live in the report, not in results.json
    text = (out / "report.html").read_text()
    assert "<h2>Capabilities</h2>" in text and "Inpainting the centre" in text
