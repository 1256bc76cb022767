"""A run folder as the training loop reads and writes it: refusing to overwrite, the run's
record (config.json), and the training state a checkpoint holds beside the weights."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from trilemma import __version__
from trilemma.checkpoints import read_json
from trilemma.data import Dataset, check_output_apart
from trilemma.errors import RunError
from trilemma.io.atomic import is_leftover

BATCH_RULE = ("the configured batch size is the global batch and the learning rate is unchanged; "
              "each of world_size ranks takes batch_size / world_size of every global batch")


def prepare_run_dir(run_dir: Path, resume: bool) -> dict | None:
    """Returns the stored run config when resuming; refuses to overwrite anything. Creates nothing."""
    config_path = run_dir / "config.json"
    if resume:
        if not config_path.exists():
            raise RunError(f"{run_dir}: no run to resume (config.json missing); drop --resume to start one")
        return read_json(config_path)
    if run_dir.exists():
        if config_path.exists():
            raise RunError(f"{run_dir}: already holds a run; pass --resume to continue it, or choose another --out")
        # A folder that holds only what a killed writer left (a half-written config.json's
        # temporary file) is as good as empty: the run never started.
        if run_dir.is_file() or any(not is_leftover(p.name) for p in run_dir.iterdir()):
            raise RunError(f"{run_dir}: exists and is not empty; choose a new or empty folder for --out")
    return None


def check_apart_from_data(run_dir: Path, dataset: Dataset) -> None:
    """A run folder may not lie in the folder of images it is trained on, nor be its data file:
    the next load of that folder would read the run's pictures as data."""
    spec = dataset.info.get("spec")
    if spec:
        check_output_apart(run_dir, spec, "run folder")


def check_resumable(stored: dict, run_dir: Path, family_name: str, dataset: Dataset) -> None:
    """A resumed run must be the same family on the same data."""
    if stored["family"] != family_name:
        raise RunError(f"{run_dir}: holds a {stored['family']} run, not {family_name}")
    if stored["data"]["spec"] != dataset.info.get("spec"):
        raise RunError(f"{run_dir}: was trained on '{stored['data']['spec']}', not '{dataset.info.get('spec')}'")


def run_record(**facts: Any) -> dict[str, Any]:
    """config.json of a new run: what was trained, on what, how; `facts` in the order given."""
    return {"trilemma_version": __version__, **facts,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def distributed_record(world: int, device: torch.device, global_batch: int) -> dict[str, Any]:
    backend = None if world == 1 else ("nccl" if device.type == "cuda" else "gloo")
    return {"world_size": world, "backend": backend, "global_batch": global_batch,
            "per_rank_batch": global_batch // world, "rule": BATCH_RULE}


def training_state(step: int, elapsed: float, optimizers: dict[str, torch.optim.Optimizer],
                   device: torch.device, **extra: Any) -> dict[str, Any]:
    """Everything besides the weights that resuming needs: counters, optimiser states and the
    RNG states, so that a resumed step budget ends exactly where an uninterrupted one does."""
    return {
        "step": step,
        "elapsed_seconds": elapsed,
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        **extra,
    }


def restore_training_state(state: dict[str, Any], optimizers: dict[str, torch.optim.Optimizer],
                           device: torch.device, grad_scaler: Any) -> tuple[int, float]:
    """Put a checkpoint's training state back; returns (step, training seconds so far)."""
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    torch.set_rng_state(state["rng"]["torch"])
    if device.type == "cuda" and state["rng"].get("cuda") is not None:
        torch.cuda.set_rng_state(state["rng"]["cuda"], device)
    if grad_scaler is not None and state.get("grad_scaler"):
        grad_scaler.load_state_dict(state["grad_scaler"])
    return state["step"], state["elapsed_seconds"]
