"""The one sampling path: load a run, put its EMA weights in place, draw samples in batches,
and hand them back in the user's space (uint8 NHWC images or float32 points).

Each batch has its own seeded noise (batch 0 the plain seed), so under torchrun the batches
are dealt round-robin to the ranks and gathered, and the result is the single-process one."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma import distributed
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
    seconds: float  # wall clock
    info: dict[str, Any] = field(default_factory=dict)
    cpu_seconds: float | None = None  # this process's CPU time for the same work

    @property
    def samples_per_second(self) -> float:
        """Samples per wall-clock second."""
        return len(self.x) / self.seconds if self.seconds > 0 else float("inf")

    def rate(self, unit: str) -> float:
        """Samples per second of `unit`'s clock (`trilemma.clock`): per CPU-second of this
        process ("cpu"), which another process cannot take, or per wall second ("wall")."""
        seconds = self.cpu_seconds if unit == "cpu" and self.cpu_seconds is not None else self.seconds
        return len(self.x) / seconds if seconds > 0 else float("inf")


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


def batch_seed(seed: int, batch: int) -> int:
    """The noise seed of one batch: the run's seed for the first (so n <= batch_size samples are
    what they always were), a hash of (seed, batch) for the others."""
    if batch == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"trilemma-sample:{seed}:{batch}".encode()).digest()[:8], "little") >> 1


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
    """n samples in user space, in batches, timed; options go to the family's sample().

    Under torchrun every rank must call this (or wrap a rank-0-only call in
    `distributed.rank_local()`): each draws its share of the batches and every rank gets all n
    samples back, equal to a single-process call with the same seed."""
    distributed.init(family.device)
    rank, world = distributed.work_split()
    done: list[tuple[int, np.ndarray, np.ndarray | None, int]] = []
    was_training = family.training
    family.eval()
    started, cpu_started = time.perf_counter(), time.process_time()
    for batch, first in enumerate(range(0, n, batch_size)):
        if batch % world != rank:
            continue
        count = min(batch_size, n - first)
        batch_labels = None if labels is None else torch.as_tensor(labels[first:first + count], dtype=torch.long)
        out = family.sample(count, sampling_generator(batch_seed(seed, batch)), labels=batch_labels, **options)
        y_batch = out.labels.cpu().numpy() if out.labels is not None else None
        done.append((batch, normalizer.from_model(out.x), y_batch, out.nfe))
    if family.device.type == "cuda":
        torch.cuda.synchronize(family.device)
    if world > 1:
        done = sorted((item for part in distributed.gather_objects(done) for item in part), key=lambda d: d[0])
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    family.train(was_training)
    xs = [x for _, x, _, _ in done]
    ys = [y for _, _, y, _ in done if y is not None]
    nfe = done[-1][3] if done else 0
    y = np.concatenate(ys).astype(np.int64) if ys else None
    info = {"seed": seed, "n": n, "nfe": nfe, **{k: v for k, v in options.items() if v is not None}}
    return Samples(np.concatenate(xs), y, nfe, seconds, info, cpu_seconds)
