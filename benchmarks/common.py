"""Shared by the benchmarks: the machine's measured matmul peak, and the results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import torch

from trilemma.device import memory_format
from trilemma.families import DataShape, Family, build_family
from trilemma.metrics.speed import matmul_peak_gflops

__all__ = ["RESULTS", "bare_training_step", "machine", "matmul_peak_gflops", "record", "repeat_for"]

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    return {
        "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def record(name: str, payload: dict) -> Path:
    """Append one JSON line to benchmarks/results/<name>.jsonl."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.jsonl"
    line = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), **machine(), **payload}
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
    return path


def bare_training_step(name: str, data, device: torch.device) -> tuple[Family, torch.Tensor, Callable[[], None]]:
    """The family's default model, one fixed batch laid out as the training loop lays it out,
    and a function that runs one training step on it (three are run first, to warm up)."""
    torch.manual_seed(0)
    family = build_family(name, DataShape(data.kind, data.sample_shape))
    layout = memory_format(data.kind)
    family.to(device, memory_format=layout).train()
    optimizers = family.build_optimizers()
    batch_size = min(family.config.optim.batch_size, len(data.x_train))
    x = data.normalizer.to_model(data.x_train[:batch_size]).to(device).contiguous(memory_format=layout)

    def step() -> None:
        family.training_step(x, None, optimizers)

    for _ in range(3):
        step()
    return family, x, step


def repeat_for(seconds: float, step: Callable[[], None], clock: Callable[[], float] = time.perf_counter,
               finish: Callable[[], None] = lambda: None) -> tuple[int, float]:
    """Calls `step` until `seconds` of `clock` have passed, then `finish` (a device sync);
    returns the calls and the seconds they took on that clock."""
    steps, start = 0, clock()
    while clock() - start < seconds:
        step()
        steps += 1
    finish()
    return steps, clock() - start


def run_compare(options: list[str], out: Path) -> tuple[dict, float]:
    """`trilemma compare OPTIONS --quiet --out OUT` as its own process: (results.json, wall seconds).
    A failed comparison stops the benchmark with its last lines of stderr."""
    command = [sys.executable, "-m", "trilemma", "compare", *options, "--quiet", "--out", str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, env={**os.environ})
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"compare failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads((out / "results.json").read_text()), wall
