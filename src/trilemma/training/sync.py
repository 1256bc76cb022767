"""How often the training loop waits for the device: every step on a CPU, every K steps on a GPU.

On a GPU a step is queued, not run, when the host reaches its end. Reading its losses back
(for the non-finite and exploding-loss rule, `training.divergence`) makes the host wait until
the queue drains, and the GPU then idles while the host queues the next step: at small
networks that costs most of the throughput (measured on an H200: 1,140 images/s through the
loop against 6,000-7,000 for the bare step, `benchmarks/results/scale-note.md`). So on a GPU the
loop keeps each step's losses on the device and reads a window of K steps at once: one
transfer (one all-reduce under DDP) per window. The divergence rule then judges the window's
steps in order; a bad one rolls the run back to its latest checkpoint, which always precedes
the window, since checkpoints are only taken between windows.

K is adapted to the measured step time, so that a window lasts about `WINDOW_SECONDS` (at most
`MAX_STEPS` steps, and 1 for the first window, which measures): a time budget then ends at most
that late, and the host reads the clock, the stop flags and the callbacks only between windows.
Inside a window the budget's clock is estimated from the last window's mean step time, so every
rank of a DDP run computes the same learning rate. On a CPU there is no queue to drain and K is 1:
the loop is exactly the step-by-step one.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_SECONDS = 0.5
MAX_STEPS = 64


@dataclass
class SyncPolicy:
    """The window length K: fixed (`every`), or adapted on a GPU to the measured step time."""

    every: int | None = None  # None: 1 on a CPU, adapted on a GPU
    device_type: str = "cpu"
    mean_step_seconds: float | None = None  # of the latest window

    def steps(self) -> int:
        if self.every is not None:
            return max(1, self.every)
        if self.device_type == "cpu" or not self.mean_step_seconds:
            return 1
        return int(min(MAX_STEPS, max(1, WINDOW_SECONDS // self.mean_step_seconds)))

    def measured(self, seconds: float, steps: int) -> None:
        if steps:
            self.mean_step_seconds = seconds / steps

    def estimate(self, elapsed: float, steps_into_window: int) -> float:
        """The budget's clock `steps_into_window` steps past the last window's end."""
        return elapsed + steps_into_window * (self.mean_step_seconds or 0.0)
