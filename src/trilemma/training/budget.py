"""How long a run trains, and the learning rate along the way."""

from __future__ import annotations

import math
from dataclasses import dataclass

from trilemma.data import Dataset


@dataclass
class Budget:
    """Stop after this many optimisation steps, or this much training time, whichever first.

    A time budget on a CPU is turned into steps before training starts (`calibration`): the
    steps `seconds` of one idle core run, measured once per machine, so that the run does not
    depend on what else the machine is doing. `cpu_seconds` and `calibration` then record the
    request and the rate behind the steps. On a GPU `seconds` counts wall seconds."""

    steps: int | None = None
    seconds: float | None = None
    cpu_seconds: float | None = None  # the time budget a calibrated step budget stands for
    calibration: dict | None = None

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
        record = {"steps": self.steps, "seconds": self.seconds}
        if self.cpu_seconds is not None:
            record.update(cpu_seconds=self.cpu_seconds, calibration=self.calibration)
        return record

    @classmethod
    def from_json(cls, record: dict) -> Budget:
        return cls(record.get("steps"), record.get("seconds"), record.get("cpu_seconds"),
                   record.get("calibration"))


def resumed_budget(given: Budget | None, stored: Budget) -> Budget:
    """A resumed run keeps its own budget, and so the steps a calibration gave it, unless the
    caller asks for another one than the time budget it stands for."""
    if given is None or (given.seconds is not None and given.steps is None and given.seconds == stored.cpu_seconds):
        return stored
    return given


def default_budget(dataset: Dataset) -> Budget:
    """Sized for a 2-core CPU: the steps 45 seconds of one idle core run on 2-D sets, 90 on
    tables, three minutes on images (on a GPU, as many wall seconds)."""
    return Budget(seconds={"points": 45.0, "table": 90.0}.get(dataset.kind, 180.0))


def learning_rate_scale(step: int, progress: float, warmup_steps: int, decay: str, final: float) -> float:
    """Linear warm-up over warmup_steps, then constant or cosine-annealed over the budget."""
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if decay == "cosine":
        return warm * (final + (1 - final) * 0.5 * (1 + math.cos(math.pi * progress)))
    return warm
