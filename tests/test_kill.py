"""kill -9 at any instant. The checkpoint writer on folders as killed writers leave them; then
`trilemma train` itself, as a real process, killed with SIGKILL at random moments and inside the
checkpoint writer (its documented pause hook), resumed until done: the weights must be those of
an uninterrupted run, bit for bit, for every family."""

import json
import random
import shutil
import time

import pytest
import torch

from killing import Watched, cli_env
from small import SMALL
from trilemma.checkpoints import (
    PAUSE_VARIABLE,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from trilemma.data import load_data
from trilemma.families import family_names
from trilemma.training import Budget, train

FILES = ["ema.safetensors", "model.safetensors", "state.json", "state.safetensors"]
STAGES = ("writing", "written", "renamed", "pointed")  # the pause hook's, in checkpoints.py
STEPS, EVERY, SEED = 200, 5, 3
SETS = {name: [arg for key, value in settings.items()
              for arg in ("--set", f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]
        for name, settings in SMALL.items()}
OVERRIDES = SMALL


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def _steps(run_dir):
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def _whole(run_dir) -> bool:
    """latest.json, where there is one, points at a complete, loadable checkpoint."""
    if not (run_dir / "latest.json").exists():
        return True
    path = latest_checkpoint(run_dir)
    load_checkpoint(path)
    return sorted(p.name for p in path.iterdir()) == FILES


# ---------------------------------------------------------------------------- the writer


def test_a_checkpoint_a_killed_writer_renamed_but_never_pointed_at_is_pruned_not_the_latest(digits, tmp_path):
    """Two checkpoints past latest.json's (time-based checkpoints fall on other steps after a
    resume): pruning by name alone kept them and deleted the one latest.json points at."""
    run = tmp_path / "run"
    train("vae", digits, run, budget=Budget(steps=4), overrides=OVERRIDES["vae"], progress=False,
          checkpoint_every_steps=2)
    checkpoints = run / "checkpoints"
    for orphan in ("step-00000009", "step-00000011"):
        shutil.copytree(checkpoints / "step-00000004", checkpoints / orphan)
    (checkpoints / ".tmp-step-00000013").mkdir()
    train("vae", digits, run, budget=Budget(steps=6), resume=True, progress=False, checkpoint_every_steps=2)
    assert _steps(run) == ["step-00000004", "step-00000006"]
    assert latest_checkpoint(run).name == "step-00000006" and _whole(run)


def test_a_step_renamed_earlier_is_replaced_when_the_run_reaches_it_again(tmp_path):
    model = {"w": torch.zeros(2)}
    state = {"step": 1}
    save_checkpoint(tmp_path, 1, model, model, state)
    (tmp_path / "checkpoints" / "step-00000002").mkdir()  # half a folder, never pointed at
    save_checkpoint(tmp_path, 2, {"w": torch.ones(2)}, model, {"step": 2})
    assert latest_checkpoint(tmp_path).name == "step-00000002" and _whole(tmp_path)
    assert torch.equal(load_checkpoint(latest_checkpoint(tmp_path))[0]["w"], torch.ones(2))


def test_leftovers_of_killed_writers_are_removed_when_training_starts(digits, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".config.json.0123abcd.tmp").write_text('{"fam')  # killed while writing config.json
    train("vae", digits, run, budget=Budget(steps=2), overrides=OVERRIDES["vae"], progress=False)
    assert not (run / ".config.json.0123abcd.tmp").exists()
    (run / ".latest.json.89abcdef.tmp").write_text("{")
    (run / "checkpoints" / ".tmp-step-00000003").mkdir()
    (run / "notes.txt").write_text("mine")  # not a leftover: never touched
    train("vae", digits, run, budget=Budget(steps=3), resume=True, progress=False)
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.json", "latest.json", "notes.txt"]
    assert _steps(run) == ["step-00000002", "step-00000003"]


def test_the_pause_hook_announces_each_stage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(PAUSE_VARIABLE, "0")
    save_checkpoint(tmp_path, 7, {"w": torch.zeros(1)}, {"w": torch.zeros(1)}, {"step": 7})
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"trilemma: test hook: checkpoint step-00000007 {stage}" for stage in STAGES]


# ---------------------------------------------------------------------------- real kills


def _train_args(name, run):
    return ["train", "--family", name, "--data", "digits", "--out", run, "--steps", STEPS,
            "--checkpoint-every", EVERY, "--seed", SEED, "--batch-size", 32, "--device", "cpu",
            "--quiet", *SETS[name]]


def _resume(run):
    return ["--resume"] if (run / "config.json").exists() else []


def _kill_once(name, run, how: str, rng: random.Random) -> str:
    """Start the run (resuming it if it has begun), SIGKILL it at the moment `how` names: a
    stage of the checkpoint writer at its 1st-3rd checkpoint, or a random instant once the
    first checkpoint of this process is being written. Returns what was done."""
    args = [*_train_args(name, run), *_resume(run)]
    if how in STAGES:
        watched = Watched(args, cli_env(**{PAUSE_VARIABLE: "0.3"}))
        nth = rng.randint(1, 3)
        for _ in range(nth):
            line = watched.wait_line(lambda text: text.rstrip().endswith(f" {how}"), timeout=300)
        moment = f"in the writer, {how}, {line.split()[-2] if line else 'never reached'}"
    else:
        watched = Watched(args, cli_env(**{PAUSE_VARIABLE: "0"}))  # announces, never sleeps
        line = watched.wait_line(lambda text: "test hook: checkpoint" in text, timeout=300)
        delay = rng.uniform(0.0, 0.3)
        time.sleep(delay)
        moment = f"{delay:.3f} s after {line.split()[-2] if line else 'nothing'}"
    assert watched.kill(), f"{name}: finished before the kill ({moment}); stderr: {''.join(watched.stderr)[-1500:]}"
    return moment


@pytest.mark.slow  # real processes: about half a minute per family
@pytest.mark.parametrize("name", family_names("image"))
def test_train_killed_at_any_instant_and_resumed_ends_with_the_uninterrupted_weights(name, digits, tmp_path):
    train(name, digits, tmp_path / "straight", budget=Budget(steps=STEPS), seed=SEED, device="cpu",
          overrides={**OVERRIDES[name], "batch_size": 32}, progress=False)
    rng = random.Random(f"kill-{name}")
    # Two stages of the writer and one random instant per family, the stages taken in turn, so
    # that the six families kill the writer at every stage three times between them.
    first = family_names("image").index(name)
    plan = [STAGES[first % len(STAGES)], STAGES[(first + 1) % len(STAGES)], "random"]
    rng.shuffle(plan)
    run, moments = tmp_path / "killed", []
    for how in plan:
        moments.append(_kill_once(name, run, how, rng))
        assert _whole(run), moments  # a kill never hides the previous checkpoint
    watched = Watched([*_train_args(name, run), *_resume(run)], cli_env())
    code, output = watched.finish(timeout=300)
    assert code == 0 and f"done after {STEPS} steps" in output, (moments, output[-2000:])

    straight = load_checkpoint(latest_checkpoint(tmp_path / "straight"))
    killed = load_checkpoint(latest_checkpoint(run))
    for a, b, what in ((straight[0], killed[0], "model"), (straight[1], killed[1], "ema")):
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), (what, key, moments)
    assert killed[2]["step"] == STEPS
    # Nothing a killed writer left behind survives the run.
    assert latest_checkpoint(run).name == f"step-{STEPS:08d}" and len(_steps(run)) <= 2, _steps(run)
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert json.loads((run / "config.json").read_text()).get("rollbacks") is None
