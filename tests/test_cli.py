"""End to end through the command line, as a user runs it: train, sample, errors."""

import json

import numpy as np
import pytest

from trilemma.metrics import mode_statistics_for


def _train_and_sample(run_cli, tmp_path, family, data, steps, *extra):
    run = tmp_path / f"{family}-{data}"
    code, out, err = run_cli("train", "--family", family, "--data", data, "--out", run,
                             "--steps", steps, "--quiet", *extra)
    assert code == 0, err
    assert "done after" in out and (run / "samples.png").exists()
    code, out, err = run_cli("sample", run, "--n", 2500, "--out", tmp_path / f"{family}.npz", "--seed", 1)
    assert code == 0, err
    x = np.load(tmp_path / f"{family}.npz")["x"]
    assert x.shape == (2500, 2) and x.dtype == np.float32 and np.isfinite(x).all()
    return x, out


@pytest.mark.slow
def test_diffusion_covers_grid25_modes(run_cli, tmp_path):
    x, out = _train_and_sample(run_cli, tmp_path, "diffusion", "grid25", 1500)
    assert "network evaluations per sample" in out
    stats = mode_statistics_for("grid25", x)
    assert stats["modes_covered"] >= 22 and stats["high_quality_fraction"] >= 0.3, stats


@pytest.mark.slow
def test_vae_covers_ring8(run_cli, tmp_path):
    x, _ = _train_and_sample(run_cli, tmp_path, "vae", "ring8", 1500)
    stats = mode_statistics_for("ring8", x)
    # A VAE spreads mass between modes (few high-quality samples) but reaches every one.
    assert stats["modes_covered"] >= 6, stats
    assert np.abs(np.sqrt((x**2).sum(1)) - 1).mean() < 0.3


@pytest.mark.slow
def test_gan_learns_the_ring(run_cli, tmp_path):
    x, _ = _train_and_sample(run_cli, tmp_path, "gan", "ring8", 1500)
    stats = mode_statistics_for("ring8", x)
    # GANs may collapse onto a few modes (that is data for the report), but what they make is on the ring.
    assert stats["modes_covered"] >= 1, stats
    assert np.median(np.abs(np.sqrt((x**2).sum(1)) - 1)) < 0.15


def test_image_run_writes_uint8_nhwc_and_labels_for_conditional(run_cli, tmp_path):
    run = tmp_path / "digits"
    code, _, err = run_cli("train", "--family", "vae", "--data", "digits", "--out", run, "--steps", 30,
                           "--conditional", "--quiet")
    assert code == 0, err
    code, _out, err = run_cli("sample", run, "--n", 20, "--out", tmp_path / "s.npz", "--class", 3,
                             "--grid", tmp_path / "grid.png")
    assert code == 0, err
    arrays = np.load(tmp_path / "s.npz")
    assert arrays["x"].shape == (20, 8, 8, 1) and arrays["x"].dtype == np.uint8
    assert arrays["y"].tolist() == [3] * 20 and (tmp_path / "grid.png").exists()
    config = json.loads((run / "config.json").read_text())
    assert config["family_config"]["data"]["num_classes"] == 10


def test_diffusion_sampler_flags(run_cli, tmp_path):
    run = tmp_path / "d"
    code, _, err = run_cli("train", "--family", "diffusion", "--data", "ring8", "--out", run, "--steps", 5, "--quiet")
    assert code == 0, err
    for sampler, steps, nfe in [("ddpm", 30, 30), ("ddim", 10, 10), ("dpm-solver++", 4, 4)]:
        code, out, err = run_cli("sample", run, "--n", 8, "--out", tmp_path / "s.npz", "--sampler", sampler,
                                 "--sampler-steps", steps)
        assert code == 0 and f"{nfe} network evaluations per sample" in out, err


@pytest.mark.parametrize(
    "args, expected",
    [
        (["sample", "{run}", "--n", "4", "--out", "{tmp}/s.npz", "--sampler", "ddim"], "no sampling option(s): sampler"),
        (["sample", "{run}", "--n", "4", "--out", "{tmp}/s.npz", "--class", "2"], "unconditional"),
        (["sample", "{tmp}/missing", "--n", "4", "--out", "{tmp}/s.npz"], "no such run folder"),
        (["sample", "{run}", "--n", "4", "--out", "{tmp}/s.txt"], "must end in .npz"),
        (["sample", "{run}", "--n", "4", "--out", "{tmp}/s.npz", "--truncation", "2"], "truncation"),
        (["train", "--family", "gan", "--data", "ring8", "--out", "{run}", "--steps", "2"], "already holds a run"),
        (["train", "--family", "gan", "--data", "ring8", "--out", "{tmp}/new", "--steps", "2", "--set", "los=hinge"],
         "no setting 'los'"),
        (["train", "--family", "gan", "--data", "ring8", "--out", "{tmp}/new4", "--steps", "2", "--set", "r1_gamma=high"],
         "setting 'r1_gamma' takes a number"),
        (["train", "--family", "diffusion", "--data", "digits", "--out", "{tmp}/new5", "--steps", "2",
          "--set", "channels=16,x"], "setting 'channels' takes a list of int values"),
        (["train", "--family", "diffusion", "--data", "digits", "--out", "{tmp}/new6", "--steps", "2",
          "--set", "patch=3"], "setting 'patch' must divide the image size 8x8"),
        (["train", "--family", "gan", "--data", "ring8", "--out", "{tmp}/new2", "--steps", "2", "--conditional"],
         "needs labelled data"),
        (["train", "--family", "gan", "--data", "ring8", "--out", "{tmp}/new3", "--device", "tpu"], "unknown device"),
    ],
)
def test_bad_requests_get_one_line(run_cli, tmp_path, args, expected):
    run = tmp_path / "gan"
    code, _, err = run_cli("train", "--family", "gan", "--data", "ring8", "--out", run, "--steps", 2, "--quiet")
    assert code == 0, err
    code, _, err = run_cli(*[a.format(run=run, tmp=tmp_path) for a in args])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], err
