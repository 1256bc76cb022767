"""Shared by the benchmarks: the machine's measured matmul peak, and the results file."""

from __future__ import annotations

import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def matmul_peak_gflops(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 2048,
                       repeats: int = 10) -> float:
    """Best-of-three dense matmul throughput, the ceiling achieved FLOP/s is reported against."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(3):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 * repeats / best / 1e9


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
