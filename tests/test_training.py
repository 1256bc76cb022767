"""The one training loop: budgets, checkpoints, resume equivalence, divergence detection
(the rollbacks themselves: tests/test_divergence.py)."""

import json
import math

import numpy as np
import pytest
import torch

from small import SMALL as SMALL_SETTINGS
from trilemma.checkpoints import flatten_state, latest_checkpoint, load_checkpoint, unflatten_state
from trilemma.data import load_data
from trilemma.errors import RunError, TrainingDiverged
from trilemma.families import family_names
from trilemma.sampling import generate, load_run
from trilemma.training import Budget, learning_rate_scale, train

SMALL = {**SMALL_SETTINGS, "vae": {}, "gan": {}}


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


@pytest.fixture(scope="module")
def grid():
    return load_data("grid25")


def _weights(run_dir):
    model, ema, _ = load_checkpoint(latest_checkpoint(run_dir))
    return model, ema


# Flow matching with its reflow stage: stopped before the switch, which the resumed run then makes.
STAGED = {"flow-reflow": ("flow", {**SMALL_SETTINGS["flow"], "reflow": True, "reflow_fraction": 0.5,
                                   "reflow_pairs": 32, "reflow_steps": 2})}


@pytest.mark.parametrize("case", [*family_names("image"), *STAGED])
def test_resume_ends_with_the_same_weights_as_an_uninterrupted_run(case, digits, tmp_path):
    name, overrides = STAGED.get(case, (case, SMALL.get(case)))
    budget = Budget(steps=12)
    train(name, digits, tmp_path / "straight", budget=budget, seed=3, overrides=overrides, progress=False)
    stopped = train(name, digits, tmp_path / "resumed", budget=budget, seed=3, overrides=overrides,
                    progress=False, on_step=lambda step, elapsed, family, ema: step == 5)
    assert stopped.interrupted and stopped.steps == 5
    resumed = train(name, digits, tmp_path / "resumed", budget=budget, resume=True, progress=False)
    assert resumed.steps == 12
    (model_a, ema_a), (model_b, ema_b) = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert model_a.keys() == model_b.keys()
    for key in model_a:
        assert torch.equal(model_a[key], model_b[key]), key
    for key in ema_a:
        assert torch.equal(ema_a[key], ema_b[key]), key


def test_checkpoint_round_trip_gives_identical_samples(grid, tmp_path):
    result = train("gan", grid, tmp_path / "run", budget=Budget(steps=20), progress=False)
    assert result.steps == 20
    files = sorted(p.name for p in latest_checkpoint(tmp_path / "run").iterdir())
    assert files == ["ema.safetensors", "model.safetensors", "state.json", "state.safetensors"]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["family"] == "gan" and config["data"]["spec"] == "grid25" and config["seed"] == 0
    a = load_run(tmp_path / "run", "cpu")
    b = load_run(tmp_path / "run", "cpu")
    sa = generate(a.family, a.normalizer, 100, seed=5)
    sb = generate(b.family, b.normalizer, 100, seed=5)
    assert np.array_equal(sa.x, sb.x) and sa.x.dtype == np.float32
    # Sampling uses the EMA generator, not the raw one.
    model, ema, _ = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    for key, value in ema.items():
        assert torch.equal(a.family.generator.state_dict()[key], value)
    assert any(not torch.equal(model[f"generator.{k}"], v) for k, v in ema.items())


def test_checkpoints_are_pruned_and_latest_points_at_a_complete_one(grid, tmp_path):
    train("vae", grid, tmp_path / "run", budget=Budget(steps=9), checkpoint_every_steps=2, progress=False)
    steps = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert steps == ["step-00000008", "step-00000009"]
    assert latest_checkpoint(tmp_path / "run").name == "step-00000009"
    assert not list((tmp_path / "run" / "checkpoints").glob(".tmp*"))


def test_training_state_round_trips_without_pickle():
    state = {
        "step": 7,
        "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.99)}]},
        "rng": torch.get_rng_state(),
        "numpy": np.arange(4),
    }
    as_json, tensors = flatten_state(state)
    json.dumps(as_json)  # plain JSON
    back = unflatten_state(json.loads(json.dumps(as_json)), tensors)
    assert back["optimizer"]["state"][0]["exp_avg"].tolist() == [1, 1, 1]
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.99)
    assert torch.equal(back["rng"], state["rng"]) and back["numpy"].tolist() == [0, 1, 2, 3]


def test_a_loss_that_stays_non_finite_stops_training_after_three_rollbacks(grid, tmp_path):
    def poison(step, elapsed, family, ema):  # every pass through step 3 poisons the weights again
        if step == 3:
            with torch.no_grad():
                for p in family.parameters():
                    p.fill_(float("nan"))

    with pytest.raises(TrainingDiverged, match=r"at step 4, after 3 rollbacks; training stopped"):
        train("diffusion", grid, tmp_path / "run", budget=Budget(steps=10), progress=False,
              checkpoint_every_steps=2, on_step=poison)
    # Each rollback went back to step 2 and halved the learning rate; the record says so.
    rollbacks = json.loads((tmp_path / "run" / "config.json").read_text())["rollbacks"]
    assert [(r["step"], r["restored_step"], r["lr_scale"]) for r in rollbacks] == [
        (4, 2, 0.5), (4, 2, 0.25), (4, 2, 0.125)]
    assert rollbacks[0]["losses"] == {"loss": "nan"} and "non-finite" in rollbacks[0]["reason"]
    # The last good checkpoint is still there and finite.
    model, _, state = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert state["step"] == 2 and all(torch.isfinite(v).all() for v in model.values())


def test_run_folder_is_never_overwritten(grid, tmp_path):
    train("vae", grid, tmp_path / "run", budget=Budget(steps=2), progress=False)
    with pytest.raises(RunError, match="already holds a run"):
        train("vae", grid, tmp_path / "run", budget=Budget(steps=2), progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "thesis.tex").write_text("precious")
    with pytest.raises(RunError, match="not empty"):
        train("vae", grid, tmp_path / "busy", budget=Budget(steps=2), progress=False)
    assert (tmp_path / "busy" / "thesis.tex").read_text() == "precious"
    with pytest.raises(RunError, match="holds a vae run"):
        train("gan", grid, tmp_path / "run", budget=Budget(steps=4), resume=True, progress=False)


def test_learning_rate_schedule():
    assert learning_rate_scale(0, 0.0, 10, "none", 0.1) == pytest.approx(0.1)
    assert learning_rate_scale(50, 0.0, 10, "cosine", 0.1) == pytest.approx(1.0)
    assert learning_rate_scale(50, 0.5, 10, "cosine", 0.1) == pytest.approx(0.55)
    assert learning_rate_scale(50, 1.0, 10, "cosine", 0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("n, world", [(20, 1), (23, 4), (3, 8), (1000, 3)])
def test_each_ranks_epoch_order_is_what_a_distributed_sampler_gives(n, world):
    from torch.utils.data.distributed import DistributedSampler

    from trilemma.training.batches import epoch_order

    for rank in range(world):
        for epoch in (0, 5):
            sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=7)
            sampler.set_epoch(epoch)
            assert epoch_order(n, 7 + epoch, world, rank).tolist() == list(sampler)


def test_the_ema_averages_every_float_tensor_and_copies_the_others():
    from trilemma.ema import EMA

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(network, power=0.75, max_decay=0.999)
    before = {k: v.clone() for k, v in ema.state_dict().items()}
    network.train()(torch.randn(8, 3))  # running statistics and the batch count move
    network.load_state_dict({k: v + 1 if v.dtype.is_floating_point else v for k, v in network.state_dict().items()})
    ema.update(3)
    weight = 1 - ema.decay(3)
    for name, value in network.state_dict().items():
        expected = before[name] + weight * (value - before[name]) if value.dtype.is_floating_point else value
        assert torch.allclose(ema.state_dict()[name], expected), name


def test_a_time_budget_on_a_cpu_is_the_steps_calibrated_for_this_machine(grid, tmp_path, monkeypatch):
    from trilemma.training import calibration

    monkeypatch.setenv("TRILEMMA_CACHE", str(tmp_path / "cache"))
    first = train("vae", grid, tmp_path / "a", budget=Budget(seconds=1.0), progress=False)
    budget = json.loads((tmp_path / "a" / "config.json").read_text())["budget"]
    rate = budget["calibration"]["steps_per_cpu_second"]
    assert budget["cpu_seconds"] == 1.0 and budget["steps"] == first.steps == math.ceil(rate) > 1
    assert budget["calibration"]["cached"] is False

    # The next run reads the rate back: the same steps, whatever the machine is doing meanwhile.
    monkeypatch.setattr(calibration, "_measure", lambda *a: pytest.fail("measured again"))
    second = train("vae", grid, tmp_path / "b", budget=Budget(seconds=1.0), progress=False)
    again = json.loads((tmp_path / "b" / "config.json").read_text())["budget"]
    assert second.steps == first.steps and again["calibration"]["cached"] is True


def test_a_calibration_disturbed_by_other_processes_is_not_kept(grid, tmp_path, monkeypatch):
    from trilemma.training import calibration

    monkeypatch.setenv("TRILEMMA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(calibration, "_measure", lambda *a: (50.0, 0.6))  # others took 60%
    result = train("vae", grid, tmp_path / "run", budget=Budget(seconds=0.5), progress=False)
    assert result.steps == 25 and not (tmp_path / "cache" / "calibration.json").exists()


def test_bf16_autocast_trains_and_is_recorded(digits, tmp_path):
    result = train("diffusion", digits, tmp_path / "run", budget=Budget(steps=3), precision="bf16",
                   overrides=SMALL["diffusion"], progress=False)
    assert result.steps == 3 and all(np.isfinite(v) for v in result.losses.values())
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["precision"] == "bf16"
    model, _, _ = load_checkpoint(latest_checkpoint(tmp_path / "run"))
    assert all(v.dtype == torch.float32 for v in model.values())  # weights stay fp32 under autocast


def test_fp16_on_cpu_is_refused(grid, tmp_path):
    from trilemma.errors import UnsupportedRequest

    with pytest.raises(UnsupportedRequest, match="fp16 needs a CUDA device"):
        train("vae", grid, tmp_path / "run", budget=Budget(steps=1), precision="fp16", progress=False)
