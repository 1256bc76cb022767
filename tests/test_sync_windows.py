"""The loop reads losses back once per window of K steps on a GPU (`training.sync`); with the
window fixed (`sync_every`) the same path runs on a CPU: same weights as step by step, the same
rollback, checkpoints where they fall step by step, on_step once per window."""

from __future__ import annotations

import json

import pytest
import torch

from small import SMALL
from trilemma.checkpoints import latest_checkpoint, load_checkpoint
from trilemma.data import load_data
from trilemma.training import Budget, train
from trilemma.training.divergence import FAULT_VARIABLE
from trilemma.training.sync import MAX_STEPS, SyncPolicy

STEPS, EVERY = 12, 4


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _train(name, data, run_dir, **kwargs):
    return train(name, data, run_dir, budget=Budget(steps=STEPS), seed=3, overrides=SMALL[name],
                 progress=False, checkpoint_every_steps=EVERY, **kwargs)


def _weights(run_dir):
    model, ema, state = load_checkpoint(latest_checkpoint(run_dir))
    return model, ema, state


@pytest.mark.parametrize("name", ["gan", "diffusion"])
def test_a_window_of_steps_gives_the_step_by_step_weights(name, digits, tmp_path):
    _train(name, digits, tmp_path / "one")
    calls = []
    result = _train(name, digits, tmp_path / "five", sync_every=5,
                    on_step=lambda step, *_: calls.append(step))
    assert result.steps == STEPS
    one, five = _weights(tmp_path / "one"), _weights(tmp_path / "five")
    for a, b in zip(one[:2], five[:2]):
        assert all(torch.equal(a[k], b[k]) for k in a)
    # Windows end at K steps or where a checkpoint falls due (every 4 steps): 4, 8, 12.
    assert calls == [4, 8, 12]
    saved = sorted(p.name for p in (tmp_path / "five" / "checkpoints").iterdir())  # the latest two kept
    assert saved == sorted(p.name for p in (tmp_path / "one" / "checkpoints").iterdir()) == [
        "step-00000008", "step-00000012"]


def test_a_nan_inside_a_window_rolls_back_to_the_checkpoint_before_it(digits, tmp_path, monkeypatch):
    monkeypatch.setenv(FAULT_VARIABLE, "6")
    result = _train("vae", digits, tmp_path / "run", sync_every=3)
    assert result.steps == STEPS
    [rollback] = json.loads((tmp_path / "run" / "config.json").read_text())["rollbacks"]
    assert (rollback["step"], rollback["restored_step"]) == (6, 4)
    model, _, state = _weights(tmp_path / "run")
    assert state["step"] == STEPS and all(torch.isfinite(v).all() for v in model.values())


def test_the_window_adapts_to_the_step_time_on_a_gpu_only():
    assert SyncPolicy(device_type="cpu", mean_step_seconds=0.001).steps() == 1
    gpu = SyncPolicy(device_type="cuda")
    assert gpu.steps() == 1  # the first window measures
    gpu.measured(0.05, 10)  # 5 ms a step: 100 fit in the window's half second
    assert gpu.steps() == MAX_STEPS
    gpu.measured(1.0, 4)  # 250 ms a step
    assert gpu.steps() == 2
    assert gpu.estimate(10.0, 3) == pytest.approx(10.75)
    assert SyncPolicy(every=7, device_type="cpu").steps() == 7


def test_a_fused_adam_keeps_the_groups_and_settings_and_steps_alike():
    from trilemma.device import fused

    torch.manual_seed(0)
    a, b = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    b.load_state_dict(a.state_dict())
    plain = torch.optim.Adam([{"params": [a.weight], "lr": 1e-2}, {"params": [a.bias], "lr": 1e-3}],
                             betas=(0.0, 0.99))
    made = fused(torch.optim.Adam([{"params": [b.weight], "lr": 1e-2}, {"params": [b.bias], "lr": 1e-3}],
                                  betas=(0.0, 0.99)))
    assert [g["fused"] for g in made.param_groups] == [True, True]
    assert [g["lr"] for g in made.param_groups] == [1e-2, 1e-3] and made.defaults["betas"] == (0.0, 0.99)
    x = torch.randn(8, 4)
    for model, optimizer in ((a, plain), (b, made)):
        for _ in range(3):
            optimizer.zero_grad()
            model(x).square().mean().backward()
            optimizer.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)
    sgd = torch.optim.SGD(a.parameters(), lr=0.1)
    assert fused(sgd) is sgd
