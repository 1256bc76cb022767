"""Checkpoints as safetensors plus JSON, written atomically. Never pickle.

Layout of a run directory::

    config.json                   what was trained, on what, how (written once at the start)
    latest.json                   points at the newest complete checkpoint
    checkpoints/step-00001234/    model.safetensors, ema.safetensors, state.safetensors, state.json

A checkpoint directory is filled under a temporary name, flushed to disk, then renamed;
only then does latest.json (replaced atomically) point to it, and only after that are older
checkpoints pruned. A crash at any moment, `kill -9` included, leaves the previous checkpoint
intact and findable. What a killed writer leaves behind (a temporary folder, a checkpoint
renamed but never pointed at, a temporary latest.json) is removed by the next writer, and
pruning never removes the checkpoint latest.json points at.

Test hook: with the environment variable ``TRILEMMA_TEST_CHECKPOINT_PAUSE=SECONDS`` the writer
announces each stage on stderr (``trilemma: test hook: checkpoint step-00000012 STAGE``) and
sleeps that long there, so that a test can kill the process at a known point inside it. The
stages, in order: ``writing`` (model weights written, the other files not yet), ``written``
(every file flushed in the temporary folder, not yet renamed), ``renamed`` (the folder has its
final name, latest.json still points at the previous checkpoint), ``pointed`` (latest.json
points at it, older checkpoints not yet pruned). Unset, the writer never sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trilemma.errors import RunError
from trilemma.io import fsync_directory, write_json
from trilemma.io.atomic import remove_leftovers

KEEP_CHECKPOINTS = 2  # the newest, and the one before it
PAUSE_VARIABLE = "TRILEMMA_TEST_CHECKPOINT_PAUSE"
TEMPORARY_PREFIX = ".tmp-"


def write_json_atomic(path: Path, obj: Any) -> None:
    """A run folder's JSON record (config.json, latest.json, …), by the one atomic writer."""
    write_json(path, obj)


def read_json(path: Path) -> Any:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunError(f"{path}: missing") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: not valid JSON ({error})") from None


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors needs contiguous CPU tensors that share no storage."""
    save_file({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(path))


def load_tensors(path: Path, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    if not Path(path).exists():
        raise RunError(f"{path}: missing")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as error:
        raise RunError(f"{path}: unreadable safetensors file ({error})") from None


# Nested training state (optimiser states, RNG states, counters) split into JSON + tensors.
def flatten_state(obj: Any, tensors: dict[str, torch.Tensor] | None = None, prefix: str = "s"):
    """Replace every tensor / array in a nested structure by a reference; returns (json, tensors)."""
    tensors = {} if tensors is None else tensors
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}"
        tensors[key] = obj
        return {"__tensor__": key}, tensors
    if isinstance(obj, np.ndarray):
        key = f"{prefix}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj))
        return {"__ndarray__": key}, tensors
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: flatten_state(v, tensors, f"{prefix}.{k}")[0] for k, v in obj.items()}, tensors
        items = [[k, flatten_state(v, tensors, f"{prefix}.{k}")[0]] for k, v in obj.items()]
        return {"__dict__": items}, tensors
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten_state(v, tensors, f"{prefix}.{i}")[0] for i, v in enumerate(obj)]}, tensors
    if isinstance(obj, list):
        return [flatten_state(v, tensors, f"{prefix}.{i}")[0] for i, v in enumerate(obj)], tensors
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj, tensors
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item(), tensors
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def unflatten_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy()
        if "__tuple__" in obj:
            return tuple(unflatten_state(v, tensors) for v in obj["__tuple__"])
        if "__dict__" in obj:
            return {k: unflatten_state(v, tensors) for k, v in obj["__dict__"]}
        return {k: unflatten_state(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten_state(v, tensors) for v in obj]
    return obj


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor],
    state: dict[str, Any],
) -> Path:
    """Write one complete checkpoint and point latest.json at it; prune old ones."""
    run_dir = Path(run_dir)
    root = run_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    final, tmp = root / name, root / f"{TEMPORARY_PREFIX}{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "model.safetensors", model)
    _pause(name, "writing")
    save_tensors(tmp / "ema.safetensors", ema)
    state_json, state_tensors = flatten_state(state)
    save_tensors(tmp / "state.safetensors", state_tensors)
    with open(tmp / "state.json", "w") as f:
        json.dump(state_json, f)
    for file in tmp.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    _pause(name, "written")
    if final.exists():
        # Renamed by a writer that was killed before it updated latest.json: nothing points at it.
        if _pointed_at(run_dir) == name:
            raise RunError(f"{final}: is the latest checkpoint already; a step is saved once")
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_directory(root)
    _pause(name, "renamed")
    write_json_atomic(run_dir / "latest.json", {"checkpoint": f"checkpoints/{name}", "step": step})
    _pause(name, "pointed")
    _prune(root, name)
    return final


def _pointed_at(run_dir: Path) -> str | None:
    pointer = run_dir / "latest.json"
    return Path(read_json(pointer)["checkpoint"]).name if pointer.exists() else None


def _prune(root: Path, newest: str) -> None:
    """Keep `newest` (latest.json points at it) and the checkpoint just before it. Remove the
    rest: older checkpoints, temporary folders, and any "later" checkpoint, which a killed
    writer renamed but never pointed at (the run went on from an earlier one since)."""
    steps = sorted(p.name for p in root.iterdir() if p.name.startswith("step-"))
    older = [n for n in steps if n < newest]
    keep = {newest, *older[len(older) - (KEEP_CHECKPOINTS - 1):]} if KEEP_CHECKPOINTS > 1 else {newest}
    for path in root.iterdir():
        stale = path.name.startswith("step-") and path.name not in keep
        if stale or path.name.startswith(TEMPORARY_PREFIX):
            shutil.rmtree(path, ignore_errors=True)


def clear_leftovers(run_dir: Path) -> None:
    """Remove what killed writers left in a run folder: temporary checkpoint folders and the
    temporary files of atomic writes (config.json, latest.json, samples, …). Called by the one
    process that is about to write into the folder, before it writes anything."""
    run_dir = Path(run_dir)
    remove_leftovers(run_dir)
    root = run_dir / "checkpoints"
    if root.is_dir():
        for path in root.iterdir():
            if path.name.startswith(TEMPORARY_PREFIX):
                shutil.rmtree(path, ignore_errors=True)


def _pause(name: str, stage: str) -> None:
    """The test hook (see the module's docstring); a no-op unless the variable is set."""
    seconds = os.environ.get(PAUSE_VARIABLE)
    if not seconds:
        return
    print(f"trilemma: test hook: checkpoint {name} {stage}", file=sys.stderr, flush=True)
    time.sleep(float(seconds))


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "latest.json"
    if not pointer.exists():
        return None
    path = Path(run_dir) / read_json(pointer)["checkpoint"]
    if not path.is_dir():
        raise RunError(f"{pointer}: points at {path}, which is missing")
    return path


def load_checkpoint(path: Path, device: str | torch.device = "cpu"):
    """Returns (model tensors, ema tensors, training state)."""
    model = load_tensors(path / "model.safetensors", device)
    ema = load_tensors(path / "ema.safetensors", device)
    state_tensors = load_tensors(path / "state.safetensors", "cpu")
    state = unflatten_state(read_json(path / "state.json"), state_tensors)
    return model, ema, state
