"""Training, resuming and sampling under torchrun with DDP: 2 gloo processes on the CPU,
launched by the tests themselves, against single-process runs over the same global batch."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ddp_cases import CASES, STEPS
from trilemma.checkpoints import latest_checkpoint, load_checkpoint
from trilemma.data import load_data
from trilemma.metrics.features import extractor_for
from trilemma.sampling import generate, load_run
from trilemma.training import Budget, train

pytestmark = pytest.mark.slow  # real processes under torchrun

HERE = Path(__file__).parent
LAUNCH_TIMEOUT = 240  # seconds; a hung collective fails the test instead of the suite


def _env() -> dict[str, str]:
    src = str(HERE.parent / "src")
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([src, str(HERE)])}


def _torchrun(nproc: int, *args) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *map(str, args)]


def _files(run_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))


def _assert_same_weights(a: Path, b: Path, atol: float = 1e-5) -> None:
    model_a, ema_a, _ = load_checkpoint(latest_checkpoint(a))
    model_b, ema_b, _ = load_checkpoint(latest_checkpoint(b))
    assert model_a.keys() == model_b.keys() and ema_a.keys() == ema_b.keys()
    for key in model_a:  # summation order differs across ranks: float tolerance, not equality
        torch.testing.assert_close(model_b[key], model_a[key], atol=atol, rtol=1e-4, msg=key)
    for key in ema_a:
        torch.testing.assert_close(ema_b[key], ema_a[key], atol=atol, rtol=1e-4, msg=key)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every case trained in this process, then again by 2 DDP ranks (tests/ddp_worker.py)."""
    root = tmp_path_factory.mktemp("ddp")
    for case, (family, spec, overrides) in CASES.items():
        train(family, load_data(spec), root / "single" / case, budget=Budget(steps=STEPS), seed=1,
              overrides=overrides, progress=False, device="cpu")
    done = subprocess.run(_torchrun(2, HERE / "ddp_worker.py", root / "ddp", root / "single" / "diffusion"),
                          env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_ddp_gives_the_single_process_weights_over_the_same_global_batch(runs, case):
    _assert_same_weights(runs / "single" / case, runs / "ddp" / case)
    _, _, single = load_checkpoint(latest_checkpoint(runs / "single" / case))
    _, _, ddp = load_checkpoint(latest_checkpoint(runs / "ddp" / case))
    assert ddp["losses"] == pytest.approx(single["losses"], rel=1e-4, abs=1e-6)  # the global batch's
    assert ddp["world_size"] == 2 and single["world_size"] == 1


def test_ddp_run_records_its_world_and_batch_rule(runs):
    config = json.loads((runs / "ddp" / "vae" / "config.json").read_text())
    assert config["distributed"]["world_size"] == 2 and config["distributed"]["backend"] == "gloo"
    assert config["distributed"]["global_batch"] == 32 and config["distributed"]["per_rank_batch"] == 16
    assert config["family_config"]["optim"]["lr"] == json.loads(
        (runs / "single" / "vae" / "config.json").read_text())["family_config"]["optim"]["lr"]
    assert config["device"]["type"] == "cpu" and config["compile"] is False


def test_rank_zero_alone_writes_the_same_files_as_one_process(runs):
    # The worker fails if rank 1 calls a file-writing function; the files are one run's.
    for case in CASES:
        assert _files(runs / "ddp" / case) == _files(runs / "single" / case)


def test_ddp_run_stopped_early_resumes_in_one_process(runs):
    """Stopped at step 3 by one rank's on_step (both stop), resumed here with world size 1."""
    stopped = runs / "ddp" / "stopped"
    assert latest_checkpoint(stopped).name == "step-00000003"
    result = train("diffusion", load_data("digits"), stopped, resume=True, progress=False, device="cpu")
    assert result.steps == STEPS
    _assert_same_weights(runs / "single" / "diffusion", stopped)


def test_sampling_split_over_two_ranks_equals_one_process(runs):
    run = load_run(runs / "single" / "diffusion", "cpu")
    single = generate(run.family, run.normalizer, 11, seed=4, batch_size=3)
    split = np.load(runs / "ddp" / "samples.npy")
    np.testing.assert_allclose(split, single.x, atol=1e-5)
    assert json.loads((runs / "ddp" / "world.json").read_text()) == {"world_size": 2}
    np.testing.assert_allclose(np.load(runs / "ddp" / "samples-rank-local.npy"), single.x[:5], atol=1e-5)


def test_feature_extraction_split_over_two_ranks_equals_one_process(runs):
    extractor = extractor_for("digits", (1, 8, 8), device="cpu")
    extractor.batch_size = 16
    single = extractor.features(load_data("digits").x_heldout[:50])
    np.testing.assert_allclose(np.load(runs / "ddp" / "features.npy"), single, rtol=1e-6, atol=1e-9)


def _latest_step(run: Path) -> int:
    """The step latest.json points at (replaced atomically, so never half-read); -1 before one."""
    try:
        return json.loads((run / "latest.json").read_text())["step"]
    except FileNotFoundError:
        return -1


def test_cli_run_killed_mid_way_resumes_under_torchrun(tmp_path):
    """`torchrun -m trilemma train` killed after its first checkpoint past step 0, resumed by
    torchrun, ends with the weights of an uninterrupted single-process run."""
    steps, args = 150, ["--family", "vae", "--data", "digits", "--batch-size", "32", "--seed", "2",
                        "--device", "cpu", "--quiet"]
    run = tmp_path / "run"
    launch = subprocess.Popen(_torchrun(2, "-m", "trilemma", "train", *args, "--out", run, "--steps", steps,
                                        "--checkpoint-every", 5),
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while _latest_step(run) < 1 and launch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    launch.send_signal(signal.SIGTERM)  # torchrun stops its workers wherever they are
    output = launch.communicate(timeout=60)[0]
    killed_at = json.loads((run / "latest.json").read_text())["step"]
    assert 0 < killed_at < steps, output[-3000:]

    done = subprocess.run(_torchrun(2, "-m", "trilemma", "train", *args, "--out", run, "--steps", steps, "--resume"),
                          env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"done after {steps} steps" in done.stdout and done.stdout.count("done after") == 1  # rank 0 prints
    assert (run / "samples.png").exists()
    train("vae", load_data("digits"), tmp_path / "straight", budget=Budget(steps=steps), seed=2,
          overrides={"batch_size": 32}, progress=False, device="cpu")
    _assert_same_weights(tmp_path / "straight", run)

    sampled = subprocess.run(_torchrun(2, "-m", "trilemma", "sample", run, "--samples", 10, "--batch-size", 3,
                                       "--out", tmp_path / "samples.npz", "--device", "cpu"),
                             env=_env(), capture_output=True, text=True, timeout=LAUNCH_TIMEOUT, check=False)
    assert sampled.returncode == 0, sampled.stdout[-3000:] + sampled.stderr[-3000:]
    assert sampled.stdout.count("10 samples from") == 1  # rank 0 writes and reports
    loaded = load_run(run, "cpu")
    single = generate(loaded.family, loaded.normalizer, 10, seed=0, batch_size=3)
    np.testing.assert_array_equal(np.load(tmp_path / "samples.npz")["x"], single.x)


def test_a_single_process_run_creates_no_process_group(tmp_path):
    train("vae", load_data("ring8"), tmp_path / "run", budget=Budget(steps=2), progress=False, device="cpu",
          overrides={"mlp_width": 16})
    assert not torch.distributed.is_initialized()
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["distributed"]["world_size"] == 1 and config["distributed"]["backend"] is None
