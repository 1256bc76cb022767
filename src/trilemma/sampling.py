"""The one sampling path: load a run, put its EMA weights in place, draw samples in batches,
and hand them back in the user's space (uint8 NHWC images or float32 points)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.checkpoints import latest_checkpoint, load_tensors, read_json
from trilemma.data import Normalizer
from trilemma.device import memory_format, resolve_device, sampling_generator
from trilemma.errors import RunError
from trilemma.families import Family, family_class


@dataclass
class LoadedRun:
    run_dir: Path
    family: Family
    normalizer: Normalizer
    config: dict
    step: int


@dataclass
class Samples:
    x: np.ndarray  # uint8 (N, H, W, C) images or float32 (N, D) points
    y: np.ndarray | None
    nfe: int  # network evaluations per sample
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return len(self.x) / self.seconds if self.seconds > 0 else float("inf")


def load_run(run_dir: str | Path, device: str = "auto") -> LoadedRun:
    """The family of a run with its averaged (EMA) weights, ready to sample."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: no such run folder")
    config = read_json(run_dir / "config.json")
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None:
        raise RunError(f"{run_dir}: holds no checkpoint yet (training has not saved one)")
    torch_device = resolve_device(device)
    cls = family_class(config["family"])
    family_config = cls.config_class.from_json(config["family_config"])
    family = cls(family_config).to(torch_device, memory_format=memory_format(family_config.data.kind))
    try:
        family.load_state_dict(load_tensors(checkpoint / "model.safetensors", torch_device))
        family.averaged_network().load_state_dict(load_tensors(checkpoint / "ema.safetensors", torch_device))
    except RuntimeError as error:
        raise RunError(f"{checkpoint}: weights do not match the run's config ({str(error).splitlines()[0]})") from None
    family.eval()
    normalizer = Normalizer.from_json(config["data"]["normalizer"])
    step = read_json(run_dir / "latest.json")["step"]
    return LoadedRun(run_dir, family, normalizer, config, step)


def generate(
    family: Family,
    normalizer: Normalizer,
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 500,
    labels: np.ndarray | None = None,
    **options: Any,
) -> Samples:
    """n samples in user space, in batches, timed; options go to the family's sample()."""
    generator = sampling_generator(seed)
    xs, ys, nfe = [], [], 0
    was_training = family.training
    family.eval()
    started = time.perf_counter()
    for first in range(0, n, batch_size):
        count = min(batch_size, n - first)
        batch_labels = None if labels is None else torch.as_tensor(labels[first:first + count], dtype=torch.long)
        out = family.sample(count, generator, labels=batch_labels, **options)
        xs.append(normalizer.from_model(out.x))
        if out.labels is not None:
            ys.append(out.labels.cpu().numpy())
        nfe = out.nfe
    if family.device.type == "cuda":
        torch.cuda.synchronize(family.device)
    seconds = time.perf_counter() - started
    family.train(was_training)
    y = np.concatenate(ys).astype(np.int64) if ys else None
    info = {"seed": seed, "n": n, "nfe": nfe, **{k: v for k, v in options.items() if v is not None}}
    return Samples(np.concatenate(xs), y, nfe, seconds, info)
