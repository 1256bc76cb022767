"""Mode collapse seen while a model trains, read from its quality curve.

A comparison scores every family at equal fractions of its budget with the same number of
samples (the curve points; the end point reuses that many of the final samples). The rule, on
one run's points in step order: collapse *begins* at the first point where

- the classes covered (or, on a built-in 2-D mixture, the modes covered) are at least
  max(`COVERAGE_DROP_MIN`, `COVERAGE_DROP_FRACTION` × the best) = max(2, 10% of the best) below
  the best earlier point: a class of 10, or a mode of 25, missing once is sampling noise, two
  are not; or
- recall is more than `RECALL_DROP` (0.10) below the best earlier point.

Recall, classes and modes all measure how much of the data a model covers; a model that
improves never loses them, so a loss of either is what collapse looks like on a curve. The
detection says where it began (the step of the first point that shows it, and of the point
before), what fell, and whether the last point is back within the margins ("recovered").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

COVERAGE_DROP_MIN = 2
COVERAGE_DROP_FRACTION = 0.10
RECALL_DROP = 0.10
SIGNALS = (("classes_covered", "classes covered"), ("modes_covered", "modes covered"), ("recall", "recall"))


def _margin(key: str, best: float) -> float:
    """How far below its best a figure must fall to count."""
    if key == "recall":
        return RECALL_DROP
    return max(COVERAGE_DROP_MIN, math.ceil(COVERAGE_DROP_FRACTION * best))


def _fallen(point: dict[str, Any], best: dict[str, tuple[float, int]]) -> list[str]:
    """What in `point` is below the best earlier values by more than its margin."""
    signals = []
    for key, label in SIGNALS:
        value = point.get(key)
        if value is None or key not in best:
            continue
        top, top_step = best[key]
        margin = _margin(key, top)
        fallen = top - value > margin if key == "recall" else top - value >= margin
        if fallen:
            text = f"{value:.2f}" if key == "recall" else f"{value:.0f}"
            was = f"{top:.2f}" if key == "recall" else f"{top:.0f}"
            signals.append(f"{label} fell from {was} (step {top_step}) to {text}")
    return signals


def detect_collapse(points: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The collapse a curve shows (see the module's rule), or None. Returns ``step`` (the first
    point that shows it), ``after_step`` (the point before), ``signals`` (what fell, from
    what to what) and ``recovered`` (the last point is within the margins again)."""
    ordered = sorted((p for p in points if p.get("step") is not None), key=lambda p: p["step"])
    best: dict[str, tuple[float, int]] = {}
    previous = None
    for point in ordered:
        signals = _fallen(point, best)
        if signals:
            last = ordered[-1]
            return {"step": int(point["step"]), "after_step": previous, "signals": signals,
                    "recovered": last is not point and not _fallen(last, best)}
        for key, _ in SIGNALS:
            value = point.get(key)
            if value is not None and (key not in best or value > best[key][0]):
                best[key] = (value, int(point["step"]))
        previous = int(point["step"])
    return None
