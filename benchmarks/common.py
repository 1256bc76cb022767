"""Shared by the benchmarks: the machine's measured matmul peak, and the results file."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import torch

from trilemma.metrics.speed import matmul_peak_gflops

__all__ = ["RESULTS", "machine", "matmul_peak_gflops", "record"]

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
