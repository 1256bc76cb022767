"""How long a run trains, and the learning rate along the way."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trilemma.data import Dataset


@dataclass
class Budget:
    """Stop after this many optimisation steps, or this much training time, whichever first.

    The time is on the training clock (`trilemma.clock`): this process's CPU seconds on a CPU,
    wall seconds on a GPU."""

    steps: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.steps is None and self.seconds is None:
            raise ValueError("a budget needs steps or seconds")

    def progress(self, step: int, elapsed: float) -> float:
        fractions = []
        if self.steps:
            fractions.append(step / self.steps)
        if self.seconds:
            fractions.append(elapsed / self.seconds)
        return min(1.0, max(fractions))

    def done(self, step: int, elapsed: float) -> bool:
        return (self.steps is not None and step >= self.steps) or (
            self.seconds is not None and elapsed >= self.seconds
        )

    def to_json(self) -> dict:
        return {"steps": self.steps, "seconds": self.seconds}


def default_budget(dataset: Dataset) -> Budget:
    """Sized for a 2-core CPU: 45 CPU-seconds on 2-D sets, three CPU-minutes on images (on a
    GPU, as many wall seconds)."""
    return Budget(seconds=45.0 if dataset.kind == "points" else 180.0)


def learning_rate_scale(step: int, progress: float, warmup_steps: int, decay: str, final: float) -> float:
    """Linear warm-up over warmup_steps, then constant or cosine-annealed over the budget."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay == "cosine":
        return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return warm
