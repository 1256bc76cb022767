"""Divergence survived: the rule (`trilemma.training.divergence`) on constructed losses, and
every family rolled back by an injected NaN, to the end of its step budget, across resumes."""

import json
import math

import pytest
import torch

from small import SMALL as SMALL_SETTINGS
from trilemma.checkpoints import latest_checkpoint, load_checkpoint
from trilemma.data import load_data
from trilemma.errors import TrainingDiverged
from trilemma.families import family_class, family_names
from trilemma.training import Budget, train
from trilemma.training.divergence import (
    EXPLOSION_FACTOR,
    FAULT_VARIABLE,
    WARMUP,
    DivergenceGuard,
)

SMALL = {name: {**settings, "batch_size": 32} for name, settings in SMALL_SETTINGS.items()}
STEPS, EVERY, FAULT = 12, 4, 7  # the NaN at step 7 goes back to the checkpoint of step 4


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _guard(history):
    guard = DivergenceGuard()
    for value in history:
        guard.accept({"loss": value})
    return guard


def test_non_finite_losses_diverge_from_the_first_step():
    guard = DivergenceGuard()
    assert guard.verdict({"d": 0.5, "g": float("nan")}) == "non-finite loss g=nan"
    assert "inf" in guard.verdict({"loss": -math.inf})
    assert guard.verdict({"loss": 1e30}) is None  # large, but no history to call it exploding


def test_a_loss_a_hundred_times_its_running_median_explodes():
    guard = _guard([2.0] * WARMUP)
    assert guard.verdict({"loss": 2.0 * EXPLOSION_FACTOR * 0.99}) is None
    reason = guard.verdict({"loss": -2.0 * EXPLOSION_FACTOR * 1.01})  # magnitude, either sign
    assert reason.startswith("exploding loss loss=-202") and "median magnitude 2" in reason
    # Before WARMUP accepted steps, only non-finite losses count.
    assert _guard([2.0] * (WARMUP - 1)).verdict({"loss": 1e6}) is None


def test_a_loss_near_zero_needs_to_pass_the_floor_too():
    guard = _guard([0.001] * WARMUP)
    assert guard.verdict({"loss": 5.0}) is None  # 5000x the median, but under the floor of 10
    assert guard.verdict({"loss": 11.0}) is not None


def test_the_median_is_over_recent_steps_per_loss():
    guard = DivergenceGuard()
    for _ in range(200):
        guard.accept({"d": 1000.0, "g": 1.0})
    for _ in range(100):  # the window keeps the last 100 steps only
        guard.accept({"d": 1.0, "g": 1.0})
    assert guard.verdict({"d": 150.0, "g": 1.0}).startswith("exploding loss d=150")
    assert guard.verdict({"d": 1.0, "g": 99.0}) is None


def test_a_family_names_the_losses_whose_explosion_counts():
    # A VAE's KL grows a hundredfold as a collapsed posterior comes into use; its total is watched.
    guard = DivergenceGuard(watched=("loss",))
    for _ in range(WARMUP):
        guard.accept({"loss": 40.0, "recon": 39.9, "kl": 0.1})
    assert guard.verdict({"loss": 35.0, "recon": 20.0, "kl": 15.0}) is None
    assert guard.verdict({"loss": 1e5, "recon": 20.0, "kl": 15.0}).startswith("exploding loss loss=")
    assert guard.verdict({"loss": 35.0, "recon": 20.0, "kl": math.nan}) == "non-finite loss kl=nan"
    assert family_class("vae").explosion_watch == ("loss",) and family_class("gan").explosion_watch is None


def test_the_fault_fires_as_often_as_its_step_is_listed(monkeypatch):
    monkeypatch.setenv(FAULT_VARIABLE, "5,5,9")
    guard = DivergenceGuard()
    assert guard.inject(4, {"a": 1.0}) == {"a": 1.0}
    assert math.isnan(guard.inject(5, {"a": 1.0})["a"])
    guard.roll_back(5, {"a": math.nan}, "non-finite", {"step": 4})
    assert math.isnan(guard.inject(5, {"a": 1.0})["a"])  # listed twice
    guard.roll_back(5, {"a": math.nan}, "non-finite", {"step": 4})
    assert guard.inject(5, {"a": 1.0}) == {"a": 1.0}
    assert math.isnan(guard.inject(9, {"a": 1.0})["a"])
    assert [r["lr_scale"] for r in guard.rollbacks] == [0.5, 0.25]
    monkeypatch.setenv(FAULT_VARIABLE, "five")
    with pytest.raises(ValueError, match=FAULT_VARIABLE):
        DivergenceGuard()


def _kwargs(name, seed):
    return {"budget": Budget(steps=STEPS), "seed": seed, "overrides": SMALL[name], "progress": False,
            "checkpoint_every_steps": EVERY}


def _rollbacks(run_dir):
    return json.loads((run_dir / "config.json").read_text()).get("rollbacks", [])


def _same_weights(a, b):
    model_a, ema_a, _ = load_checkpoint(latest_checkpoint(a))
    model_b, ema_b, _ = load_checkpoint(latest_checkpoint(b))
    return all(torch.equal(model_a[k], model_b[k]) for k in model_a) and all(
        torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


@pytest.mark.parametrize("name", family_names("image"))
def test_an_injected_nan_is_rolled_back_and_the_run_ends_at_its_budget(name, digits, tmp_path, monkeypatch):
    kwargs = _kwargs(name, 1)
    train(name, digits, tmp_path / "clean", **kwargs)
    monkeypatch.setenv(FAULT_VARIABLE, str(FAULT))
    result = train(name, digits, tmp_path / "faulty", **kwargs)
    assert result.steps == STEPS and not result.interrupted
    [rollback] = _rollbacks(tmp_path / "faulty")
    assert (rollback["step"], rollback["restored_step"], rollback["lr_scale"]) == (FAULT, 4, 0.5)
    assert set(rollback["losses"].values()) == {"nan"}
    model, ema, state = load_checkpoint(latest_checkpoint(tmp_path / "faulty"))
    assert state["step"] == STEPS and state["divergence"]["lr_scale"] == 0.5
    assert state["divergence"]["rollbacks"] == [rollback]
    assert all(torch.isfinite(v).all() for v in [*model.values(), *ema.values()])
    # From step 4 on it trained at half the learning rate: not the clean run's weights.
    assert not _same_weights(tmp_path / "clean", tmp_path / "faulty")


class Crash(Exception):
    """Stands for a kill: training ends without saving anything."""


def test_a_run_killed_between_a_rollback_and_the_next_checkpoint_resumes_exactly(digits, tmp_path, monkeypatch):
    """The rollback is in config.json but not yet in any checkpoint: the resumed run takes it
    from there, with its learning rate, and ends with the uninterrupted run's weights."""
    monkeypatch.setenv(FAULT_VARIABLE, str(FAULT))
    kwargs = _kwargs("vae", 1)
    train("vae", digits, tmp_path / "straight", **kwargs)
    seen = []

    def crash_after_the_rollback(step, elapsed, family, ema):
        seen.append(step)
        if step == 6 and seen.count(6) == 2:  # steps 5 and 6 again, after the rollback to 4
            raise Crash

    with pytest.raises(Crash):
        train("vae", digits, tmp_path / "crashed", on_step=crash_after_the_rollback, **kwargs)
    assert latest_checkpoint(tmp_path / "crashed").name == "step-00000004"
    assert len(_rollbacks(tmp_path / "crashed")) == 1
    _, _, state = load_checkpoint(latest_checkpoint(tmp_path / "crashed"))
    assert state["divergence"]["rollbacks"] == []
    monkeypatch.delenv(FAULT_VARIABLE)  # a fault that does not recur: the record alone must do
    resumed = train("vae", digits, tmp_path / "crashed", resume=True, progress=False,
                    checkpoint_every_steps=EVERY)
    assert resumed.steps == STEPS
    assert _rollbacks(tmp_path / "crashed") == _rollbacks(tmp_path / "straight")  # not recorded twice
    assert _same_weights(tmp_path / "straight", tmp_path / "crashed")


def test_a_rolled_back_run_stopped_and_resumed_ends_with_the_same_weights(digits, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_VARIABLE, str(FAULT))
    kwargs = _kwargs("gan", 2)
    train("gan", digits, tmp_path / "straight", **kwargs)
    stopped = train("gan", digits, tmp_path / "stopped", on_step=lambda step, *_: step == 10, **kwargs)
    assert stopped.interrupted and stopped.steps == 10
    train("gan", digits, tmp_path / "stopped", resume=True, progress=False)
    assert _rollbacks(tmp_path / "stopped") == _rollbacks(tmp_path / "straight")
    assert _same_weights(tmp_path / "straight", tmp_path / "stopped")


def test_the_fourth_divergence_stops_the_run(digits, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_VARIABLE, "5,5,5,5")
    with pytest.raises(TrainingDiverged, match=r"kl=nan at step 5, after 3 rollbacks; training stopped "
                                               r"\(the last good checkpoint, step 4"):
        train("vae", digits, tmp_path / "run", budget=Budget(steps=STEPS), overrides=SMALL["vae"],
              progress=False, checkpoint_every_steps=EVERY)
    assert [r["lr_scale"] for r in _rollbacks(tmp_path / "run")] == [0.5, 0.25, 0.125]


@pytest.mark.slow  # real processes under torchrun
def test_under_torchrun_every_rank_rolls_back_alike(digits, tmp_path):
    """Two gloo ranks, the NaN injected on both: they roll back together (a rank that went on
    alone would hang the other in DDP), record it once, and end where one process with the
    same fault ends."""
    import subprocess
    import sys

    from killing import cli_env

    args = ["--family", "vae", "--data", "digits", "--steps", STEPS, "--checkpoint-every", EVERY,
            "--seed", 1, "--batch-size", 32, "--set", "base_width=8", "--device", "cpu", "--quiet"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
              "-m", "trilemma", "train", *map(str, args), "--out", str(tmp_path / "ddp")]
    done = subprocess.run(launch, env=cli_env(**{FAULT_VARIABLE: str(FAULT)}), capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr.count("rolled back to step 4") == 1  # rank 0 reports
    [rollback] = _rollbacks(tmp_path / "ddp")
    assert (rollback["step"], rollback["restored_step"], rollback["lr_scale"]) == (FAULT, 4, 0.5)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv(FAULT_VARIABLE, str(FAULT))
    try:
        train("vae", digits, tmp_path / "single", **_kwargs("vae", 1))
    finally:
        monkeypatch.undo()
    single = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    ddp = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    assert ddp[2]["step"] == STEPS and ddp[2]["divergence"]["lr_scale"] == 0.5
    # The global batch's losses at the end agree (summation order differs across ranks: a float
    # tolerance); without the rollback they would be some 1% off.
    assert ddp[2]["losses"] == pytest.approx(single[2]["losses"], rel=1e-4)
