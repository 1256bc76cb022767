"""Surviving divergence: when a step's loss counts as diverged, and what is kept of each rollback.

The rule. A step's losses are *diverged* when any of them is NaN or infinite, or *exploding*:
once `WARMUP` steps have been accepted, a loss whose magnitude is more than `EXPLOSION_FACTOR`
(100) times the median of its magnitudes over the last `WINDOW` (100) accepted steps, and above
`EXPLOSION_FLOOR` (10; so that a loss that hovers near zero, as a GAN's can, never trips it).

What the training loop does then (`TrainingRun._rolled_back`): it restores the latest
checkpoint (weights, EMA, optimiser states, RNG state, step counter; a checkpoint of step 0 is
written before the first step, so there always is one), multiplies the learning-rate scale by
`LR_FACTOR` (0.5; every optimiser's learning rate is its schedule's times this scale), and goes
on. The time spent on the discarded steps still counts against a time budget: the budget is
what was spent, not what was kept. At the `MAX_ROLLBACKS + 1`-th divergence the run stops with
`TrainingDiverged`, the latest checkpoint kept.

The record. Each rollback is ``{"step", "losses", "reason", "restored_step", "lr_scale"}``
(``step``: the step whose losses diverged; ``lr_scale``: the scale from then on). The list is
kept in the training state of every checkpoint and in the run's config.json (``rollbacks``,
rewritten atomically at each rollback, before the run goes on). A run killed after a rollback
but before its next checkpoint resumes with the rollbacks config.json holds beyond the
checkpoint's, which therefore continues exactly as the uninterrupted run did.

Fault injection, a test hook: ``TRILEMMA_FAULT_NAN_AT_STEP=k`` (read once, when the run is set
up) turns the losses of step k into NaN, once per run: the fault does not fire again at a step
whose rollback the run has recorded, across resumes too. A comma list fires at each step
listed, as often as it is listed (``5,5,5,5``: four times at step 5, one more than the rollbacks
allowed).
"""

from __future__ import annotations

import math
import os
import statistics
from collections import deque
from typing import Any

WARMUP = 20
WINDOW = 100
EXPLOSION_FACTOR = 100.0
EXPLOSION_FLOOR = 10.0
LR_FACTOR = 0.5
MAX_ROLLBACKS = 3
FAULT_VARIABLE = "TRILEMMA_FAULT_NAN_AT_STEP"


def _fault_steps() -> list[int]:
    text = os.environ.get(FAULT_VARIABLE, "").strip()
    if not text:
        return []
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"{FAULT_VARIABLE}={text!r}: expected step numbers, e.g. 5 or 5,9") from None


class DivergenceGuard:
    """The divergence rule's memory (recent loss magnitudes), the rollbacks so far and the
    learning-rate scale they left. The same on every rank under torchrun: it only ever sees
    the all-reduced losses, and its state travels in the checkpoint."""

    def __init__(self, watched: tuple[str, ...] | None = None) -> None:
        self.watched = watched  # the losses the explosion rule reads (None: all of them)
        self.window: deque[list[float]] = deque(maxlen=WINDOW)
        self.rollbacks: list[dict[str, Any]] = []
        self.lr_scale = 1.0
        self.faults = _fault_steps()

    # ------------------------------------------------------------------ the rule

    def inject(self, step: int, losses: dict[str, float]) -> dict[str, float]:
        """The losses of `step`, made NaN when the fault hook asks for it there."""
        listed = self.faults.count(step)
        fired = sum(1 for r in self.rollbacks if r["step"] == step)
        if listed > fired:
            return {name: math.nan for name in losses}
        return losses

    def verdict(self, losses: dict[str, float]) -> str | None:
        """None when the losses are acceptable; else why they count as diverged."""
        bad = [f"{k}={v}" for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            return f"non-finite loss {', '.join(bad)}"
        if len(self.window) < WARMUP:
            return None
        for i, (name, value) in enumerate(losses.items()):
            if self.watched is not None and name not in self.watched:
                continue
            median = statistics.median(row[i] for row in self.window)
            if abs(value) > EXPLOSION_FLOOR and abs(value) > EXPLOSION_FACTOR * median:
                return (f"exploding loss {name}={value:.4g} (over {EXPLOSION_FACTOR:g}x its median "
                        f"magnitude {median:.4g} over the last {len(self.window)} steps)")
        return None

    def accept(self, losses: dict[str, float]) -> None:
        self.window.append([abs(v) for v in losses.values()])

    # ------------------------------------------------------------------ rollbacks

    @property
    def exhausted(self) -> bool:
        return len(self.rollbacks) >= MAX_ROLLBACKS

    def roll_back(self, step: int, losses: dict[str, float], reason: str, restored: dict[str, Any]) -> dict:
        """Record a rollback of the losses of `step` to the checkpoint whose training state is
        `restored`; the rule's memory goes back to that checkpoint's. Returns the record."""
        self.lr_scale *= LR_FACTOR
        record = {"step": step, "losses": {k: (v if math.isfinite(v) else str(v)) for k, v in losses.items()},
                  "reason": reason, "restored_step": int(restored["step"]), "lr_scale": self.lr_scale}
        self.rollbacks.append(record)
        self._load_window(restored)
        return record

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps of the guard (plain JSON)."""
        return {"lr_scale": self.lr_scale, "rollbacks": list(self.rollbacks),
                "window": [list(row) for row in self.window]}

    def load(self, state: dict[str, Any], recorded: list[dict[str, Any]]) -> None:
        """Resume from a checkpoint's training state. `recorded` is config.json's list: any
        rollback it holds beyond the checkpoint's happened after that checkpoint was written,
        and went back to it, so the run continues from here with that rollback's scale."""
        guard = state.get("divergence") or {}
        self.rollbacks = list(guard.get("rollbacks", []))
        self.lr_scale = float(guard.get("lr_scale", 1.0))
        if len(recorded) > len(self.rollbacks):
            self.rollbacks = list(recorded)
            self.lr_scale = float(recorded[-1]["lr_scale"])
        self._load_window(state)

    def _load_window(self, state: dict[str, Any]) -> None:
        self.window = deque(((state.get("divergence") or {}).get("window") or []), maxlen=WINDOW)
