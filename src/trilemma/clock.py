"""What a budget counts, and how speed is timed: the CPU time of this process on a CPU, wall
time on a GPU.

Another process on the machine can take wall time from a run but not its CPU time: a training
step costs the same CPU seconds whether the machine is idle or busy, as long as the process
does not burn CPU waiting. That holds for single-threaded work, which is why training on a CPU
runs on one thread by default (`DEFAULT_CPU_THREADS`): measured on a 2-core machine with a
`while True: pass` process beside it, the default diffusion step kept 96% of its steps per
CPU-second on one thread, while two intra-op threads spin-waiting for each other lost 57% of
theirs (and 73% of their wall-clock rate). A GPU is not shared that way; there the clock is
the wall clock.
"""

from __future__ import annotations

import os
import time
from contextlib import contextmanager

import torch

DEFAULT_CPU_THREADS = 1


def unit_of(device: torch.device) -> str:
    """'cpu' (process CPU seconds) on a CPU, 'wall' (seconds) on a GPU."""
    return "cpu" if device.type == "cpu" else "wall"


def now(unit: str) -> float:
    return time.process_time() if unit == "cpu" else time.perf_counter()


def describe(unit: str) -> str:
    return "CPU-seconds (this process)" if unit == "cpu" else "seconds (wall clock)"


@contextmanager
def cpu_threads(count: int | None):
    """torch's intra-op threads set to `count` for the block, then put back (None: unchanged)."""
    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def machine_busy_seconds() -> tuple[float, float] | None:
    """(CPU seconds every process of the machine has been busy, idle seconds) since boot, from
    /proc/stat (Linux); None elsewhere. Differences of two readings give the machine's load."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    busy = sum(ticks[:8]) - idle  # user nice system idle iowait irq softirq steal
    return busy / hz, idle / hz


def process_cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) process `pid` has used so far, from /proc/PID/stat (Linux);
    None elsewhere or once the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the command name: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
