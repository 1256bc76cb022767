"""A budget in minutes, turned into training steps once per machine.

On a CPU, `--minutes M` gives a family the steps that M minutes of one idle core run: its
training step is timed once on this machine, alone and single-threaded, and the rate (steps per
CPU-second) is kept in a cache file, so that every later run of the same family and settings on
the same machine gets the same number of steps. Neither another process nor a slower spell of a
shared host can change that number, and with the seed fixed the run, and the verdict built on it,
come out the same. Wall time and CPU time are still recorded beside it.

Measured on a 2-core virtual machine before this existed: the same single-threaded training,
counted in process CPU time, got 17% fewer steps in one quiet run than in a run beside a CPU
hog an hour later; the host itself, not the hog, had changed speed.

The cache: ``$TRILEMMA_CACHE/calibration.json`` (default ``~/.cache/trilemma``), one entry per
(processor, torch version, family, its full config, precision). Delete it to calibrate again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from trilemma import distributed
from trilemma.cache import cache_dir
from trilemma.clock import cpu_threads, machine_busy_seconds
from trilemma.data import Dataset
from trilemma.device import describe_device
from trilemma.ema import EMA
from trilemma.families import DataShape, family_class
from trilemma.training.budget import Budget

BURST_CPU_SECONDS = 1.5  # one timed burst of training steps
BURSTS = 3  # the best of these is the idle rate (load only ever slows a burst down)
PROGRESS_POINTS = 10  # budget fractions the timed steps cycle through


@dataclass
class Calibration:
    """Training steps per CPU-second of one idle core, for one family and config here."""

    steps_per_cpu_second: float
    measured: str  # when (UTC)
    key: str
    others_cpu_fraction: float | None  # what other processes took while it was measured
    cached: bool = False  # read from the cache rather than measured now

    def steps(self, cpu_seconds: float) -> int:
        return max(1, math.ceil(cpu_seconds * self.steps_per_cpu_second))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def calibrate(family_name: str, dataset: Dataset, *, conditional: bool = False,
              overrides: dict[str, Any] | None = None, precision: str = "fp32") -> Calibration:
    """The family's steps per CPU-second on one idle core of this machine: from the cache, or
    measured now (best of BURSTS bursts of real training steps on the data) and cached."""
    cls = family_class(family_name)
    data = DataShape(dataset.model_kind, dataset.sample_shape, dataset.num_classes if conditional else 0,
                     dataset.layout)
    config = cls.default_config(data, **(overrides or {}))
    key = _key(family_name, config.to_json(), precision)
    entries = _read_cache()
    if key in entries:
        return Calibration(**{**entries[key], "key": key, "cached": True})
    rate, others = _measure(cls, config, dataset, precision)
    calibration = Calibration(rate, datetime.now(timezone.utc).isoformat(timespec="seconds"), key, others)
    if others is None or others < 0.25:  # a measurement disturbed by other processes is not kept
        _write_cache({**_read_cache(), key: {k: v for k, v in calibration.to_json().items()
                                             if k not in ("key", "cached")}})
    return calibration


def calibrated_budget(budget: Budget, family_name: str, dataset: Dataset, *, conditional: bool,
                      overrides: dict[str, Any], precision: str) -> Budget:
    """A CPU time budget as the steps it gives on one idle core of this machine; under torchrun
    every rank takes rank 0's figure."""
    calibration = calibrate(family_name, dataset, conditional=conditional, overrides=overrides,
                            precision=precision)
    if distributed.is_distributed():
        calibration = distributed.gather_objects(calibration)[0]
    return Budget(steps=calibration.steps(budget.seconds), cpu_seconds=budget.seconds,
                  calibration=calibration.to_json())


def _key(family_name: str, config: dict[str, Any], precision: str) -> str:
    machine = describe_device(torch.device("cpu"))
    identity = {"processor": machine.get("name"), "torch": torch.__version__, "family": family_name,
                "config": config, "precision": precision}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


def _measure(cls: type, config: Any, dataset: Dataset, precision: str) -> tuple[float, float | None]:
    """Time bursts of the family's training step (with its EMA update) on real batches."""
    from trilemma.device import autocast

    state = torch.get_rng_state()
    try:
        torch.manual_seed(0)
        family = cls(config)
        optimizers = family.build_optimizers()
        ema = EMA(family.averaged_network(), config.optim.ema_power, config.optim.ema_max_decay)
        n = min(config.optim.batch_size, len(dataset.x_train))
        x = dataset.normalizer.to_model(dataset.x_train[:n])
        labels = dataset.y_train[:n] if config.data.num_classes else None
        device = torch.device("cpu")

        calls = [0]

        def step(i: int) -> None:
            # Successive steps sweep the budget's progress, so that a family trained in stages
            # of different cost (latent diffusion) is timed at the mix of stages a run has.
            family.training_progress = (calls[0] % PROGRESS_POINTS + 0.5) / PROGRESS_POINTS
            calls[0] += 1
            with autocast(device, precision):
                family.training_step(x, labels, optimizers)
            ema.update(i)

        with cpu_threads(1):
            for i in range(3):  # first calls allocate and tune
                step(i)
            busy_before, wall_before = machine_busy_seconds(), time.perf_counter()
            cpu_before = time.process_time()
            best = 0.0
            for _ in range(BURSTS):
                count, started = 0, time.process_time()
                while time.process_time() - started < BURST_CPU_SECONDS:
                    step(count)
                    count += 1
                best = max(best, count / (time.process_time() - started))
        others = _others_fraction(busy_before, machine_busy_seconds(), time.process_time() - cpu_before,
                                  time.perf_counter() - wall_before)
    finally:
        torch.set_rng_state(state)  # the caller's random stream is not moved
    return best, others


def _others_fraction(before, after, ours: float, wall: float) -> float | None:
    if before is None or after is None or wall <= 0:
        return None
    cores = os.cpu_count() or 1
    return max(0.0, ((after[0] - before[0]) - ours) / (cores * wall))


def _read_cache() -> dict[str, Any]:
    path = cache_dir() / "calibration.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: calibrate again
    return entries if isinstance(entries, dict) else {}


def _write_cache(entries: dict[str, Any]) -> None:
    from trilemma.io import write_json

    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        write_json(cache_dir() / "calibration.json", entries)
    except OSError:
        pass  # a read-only home: calibrate every time
