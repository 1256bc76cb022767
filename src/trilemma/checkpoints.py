"""Checkpoints as safetensors plus JSON, written atomically. Never pickle.

Layout of a run directory::

    config.json                   what was trained, on what, how (written once at the start)
    latest.json                   points at the newest complete checkpoint
    checkpoints/step-00001234/    model.safetensors, ema.safetensors, state.safetensors, state.json

A checkpoint directory is filled under a temporary name, flushed to disk, then renamed;
only then does latest.json (replaced atomically) point to it. A crash at any moment
leaves the previous checkpoint intact and findable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from trilemma.errors import RunError
from trilemma.io import fsync_directory, write_json

KEEP_CHECKPOINTS = 2


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
    final, tmp = root / name, root / f".tmp-{name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_tensors(tmp / "model.safetensors", model)
    save_tensors(tmp / "ema.safetensors", ema)
    state_json, state_tensors = flatten_state(state)
    save_tensors(tmp / "state.safetensors", state_tensors)
    with open(tmp / "state.json", "w") as f:
        json.dump(state_json, f)
    for file in tmp.iterdir():
        with open(file, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_directory(root)
    write_json_atomic(run_dir / "latest.json", {"checkpoint": f"checkpoints/{name}", "step": step})
    for old in sorted(p for p in root.iterdir() if p.name.startswith("step-"))[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


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
