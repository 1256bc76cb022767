"""Sampling speed, training cost read from a run folder, FLOP counting and peak memory."""

from pathlib import Path

import pytest
import torch

from trilemma.data import load_data
from trilemma.families import DataShape, build_family
from trilemma.metrics.speed import (
    matmul_peak_gflops,
    peak_memory,
    sampling_speed,
    training_cost,
    training_step_flops,
)
from trilemma.training import Budget, train


@pytest.fixture(scope="module")
def grid():
    return load_data("grid25")


@pytest.fixture(scope="module")
def vae_run(grid, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("speed") / "vae"
    result = train("vae", grid, run_dir, budget=Budget(steps=20), progress=False)
    return run_dir, result


def test_sampling_speed_reports_throughput_latency_and_nfe(grid):
    family = build_family("diffusion", DataShape("points", (2,)), mlp_width=32)
    speed = sampling_speed(family, grid.normalizer, n=60, batch_size=25, seed=0, repeats=3,
                           sampler="ddim", steps=4)
    assert speed["nfe"] == 4 and speed["n"] == 60 and speed["latency_batch_size"] == 25
    assert speed["samples_per_s"] == pytest.approx(60 / speed["seconds"])
    assert speed["latency_s"] > 0
    assert speed["options"] == {"sampler": "ddim", "steps": 4} and speed["device"] == "cpu"
    assert speed["max_rss_bytes"] > 0


def test_training_cost_reads_the_run_folder(vae_run):
    run_dir, result = vae_run
    cost = training_cost(run_dir, peak_gflops=10.0)
    assert cost["steps"] == 20 and cost["family"] == "vae"
    assert cost["train_seconds"] == pytest.approx(result.seconds)
    assert cost["images_per_s"] == pytest.approx(result.images_per_second)
    assert cost["batch_size"] == 512
    assert cost["parameters"] == sum(p.numel() for p in build_family(
        "vae", DataShape("points", (2,))).parameters())
    assert cost["achieved_gflops"] == pytest.approx(
        cost["flops_per_step"] * 20 / cost["train_seconds"] / 1e9)
    assert cost["fraction_of_peak"] == pytest.approx(cost["achieved_gflops"] / 10.0)


def test_flops_of_a_training_step_match_a_count_by_hand():
    # The points VAE is two MLPs of Linear layers (2 → 256 → 256 → 256 → out). A Linear layer
    # costs 2·B·in·out FLOPs forward, as much again for the weight gradient, and as much again
    # for the input gradient, except where the input needs no gradient (the data x).
    batch = 64
    family = build_family("vae", DataShape("points", (2,)))
    latent = family.config.latent_dim
    encoder = [(2, 256), (256, 256), (256, 256), (256, 2 * latent)]
    decoder = [(latent, 256), (256, 256), (256, 256), (256, 2)]
    forward = sum(2 * batch * i * o for i, o in encoder + decoder)
    expected = 3 * forward - 2 * batch * 2 * 256
    x = torch.randn(batch, 2)
    before = {k: v.clone() for k, v in family.state_dict().items()}
    assert training_step_flops(family, x) == expected
    # Counting works on a copy: the caller's weights are untouched.
    assert all(torch.equal(before[k], v) for k, v in family.state_dict().items())


def test_peak_memory_is_the_kernels_high_water_mark():
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("needs Linux's /proc")
    memory = peak_memory("cpu")
    high_water = next(line for line in status.read_text().splitlines()
                      if line.startswith("VmHWM"))
    kib = int(high_water.split()[1])
    assert memory["max_rss_bytes"] == pytest.approx(kib * 1024, rel=0.05)
    assert memory["cuda_max_allocated_bytes"] is None


def test_matmul_peak_is_a_plausible_rate():
    peak = matmul_peak_gflops("cpu", size=256, repeats=3)
    assert 0.1 < peak < 1e5
