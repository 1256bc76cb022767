"""Was the machine disturbed while a family trained? Measured, recorded, and turned into a
warning when it was.

On a CPU the budget is a number of steps calibrated on an idle core (`trilemma.training.calibration`),
so another process cannot shorten a family's training; it can only stretch its wall time. This
module measures by how much: over the
intervals a family trained, the CPU time our own processes got against what the machine could
give them (`min(cores, our processes)` cores), and the CPU time every other process took
(`/proc/stat`'s busy time minus ours). A single-threaded matmul before and after each family
(`matmul_gflops`) and the load average are recorded beside it, as evidence a reader can check.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

from trilemma.clock import machine_busy_seconds

WARN_LOSS = 0.25  # a family whose wall-clock throughput fell more than this is flagged


def matmul_gflops(size: int = 1024, repeats: int = 4) -> float:
    """Single-threaded float32 matmul throughput on the wall clock, best of three: what one
    core delivers right now (lower than when idle if other processes share it)."""
    from trilemma.clock import cpu_threads
    from trilemma.metrics.speed import matmul_peak_gflops

    with cpu_threads(1):
        return matmul_peak_gflops(torch.device("cpu"), torch.float32, size=size, repeats=repeats)


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


@dataclass
class Window:
    """What one family's training got from the machine, interval by interval."""

    ours: float = 0.0  # CPU seconds our processes used
    capacity: float = 0.0  # CPU seconds the machine could have given them
    others: float = 0.0  # CPU seconds every other process used
    machine: float = 0.0  # cores × wall seconds
    wall: float = 0.0

    def add(self, ours: float, others: float, wall: float, cores: int, our_processes: int) -> None:
        # Not clamped per interval: a process's CPU time can be read a tick late, which one
        # interval over-counts and the next gives back.
        self.ours += ours
        self.others += others
        self.capacity += min(cores, max(1, our_processes)) * wall
        self.machine += cores * wall
        self.wall += wall

    def to_json(self) -> dict[str, Any]:
        loss = min(1.0, max(0.0, 1 - self.ours / self.capacity)) if self.capacity > 0 else None
        others = max(0.0, self.others / self.machine) if self.machine else None
        return {"throughput_loss": loss, "others_cpu_fraction": others,
                "measured_wall_seconds": self.wall}


@dataclass
class MachineMonitor:
    """Samples the machine's busy time and our processes' CPU time; `tick` charges each
    interval to the windows of the families training in it."""

    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    windows: dict[str, Window] = field(default_factory=dict)
    _last: tuple[float, float, float] | None = None  # (wall, machine busy, ours)

    def tick(self, our_cpu_seconds: float, training: list[str], our_processes: int) -> None:
        """`our_cpu_seconds`: the CPU time all our processes have used so far (a running total);
        `training`: the keys of the families training during the interval just ended."""
        busy = machine_busy_seconds()
        now = (time.perf_counter(), busy[0] if busy else float("nan"), our_cpu_seconds)
        if self._last is not None and busy is not None:
            wall = now[0] - self._last[0]
            ours = now[2] - self._last[2]
            others = (now[1] - self._last[1]) - ours
            for key in training:
                self.windows.setdefault(key, Window()).add(ours, others, wall, self.cores, our_processes)
        self._last = now

    def report(self, key: str) -> dict[str, Any]:
        window = self.windows.get(key)
        return window.to_json() if window is not None else {"throughput_loss": None, "others_cpu_fraction": None}


def warnings(records: list[dict[str, Any]], calibration: float | None) -> list[str]:
    """One sentence per family and seed whose training lost more than `WARN_LOSS` of its
    wall-clock throughput to other processes."""
    out = []
    for record in records:
        c = record.get("contention") or {}
        loss = c.get("throughput_loss")
        if loss is None or loss <= WARN_LOSS:
            continue
        matmul = ""
        if c.get("matmul_gflops_before") is not None and calibration:
            matmul = (f"; single-core matmul {c['matmul_gflops_before']:.0f} GFLOP/s before it and "
                      f"{c.get('matmul_gflops_after') or float('nan'):.0f} after, against "
                      f"{calibration:.0f} at the start of the comparison")
        others = c.get("others_cpu_fraction")
        out.append(
            f"{record['family']} (seed {record['seed']}) trained on a busy machine: its processes got "
            f"{100 * (1 - loss):.0f}% of the CPU time they would have had"
            + (f", other processes took {100 * others:.0f}% of the machine" if others is not None else "")
            + (f", load average {c['load_average_after']:.1f}" if c.get("load_average_after") else "")
            + f"{matmul}. " + _steps_sentence(record))
    return out


def _steps_sentence(record: dict[str, Any]) -> str:
    """What the load did to the family's budget: nothing, unless its calibration was disturbed."""
    steps = record["training"]["steps"]
    calibration = (record["training"].get("budget") or {}).get("calibration") or {}
    others = calibration.get("others_cpu_fraction")
    if calibration and not calibration.get("cached") and others is not None and others >= WARN_LOSS:
        return (f"Its calibration was measured on this busy machine too (other processes took "
                f"{100 * others:.0f}%), so its {steps} steps may be fewer than an idle machine gives; "
                "the calibration was not kept, and a rerun on an idle machine measures it again.")
    return f"Its budget is a fixed number of steps, so its {steps} steps are what an idle machine gives; only its wall time grew."
