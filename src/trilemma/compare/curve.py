"""A family's quality curve on file: ``runs/FAMILY-seedS/curve.jsonl``, one JSON point per line,
appended (and fsync'ed) as each interval evaluation is taken during training.

A process killed with SIGKILL while appending can leave a half-written last line. Reading skips
it, a resumed comparison cuts it off before training goes on, and every point is recorded once:
a point is taken for a fraction of the budget that the file does not hold yet, and reading keeps
the first point of each fraction.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def read_curve(path: Path) -> list[dict[str, Any]]:
    """The curve points on file, each fraction of the budget once. A process killed while
    appending leaves a half-written last line: it is skipped here (and cut off before the next
    point is written), and its point is taken again when resumed training passes its step."""
    if not path.exists():
        return []
    points, fractions = [], set()
    for line in path.read_bytes().decode("utf-8", "replace").splitlines():
        try:
            point = json.loads(line)
        except json.JSONDecodeError:
            continue
        fraction = point.get("fraction") if isinstance(point, dict) else None
        if not isinstance(point, dict) or (fraction is not None and fraction in fractions):
            continue
        fractions.add(fraction)
        points.append(point)
    return points


def cut_partial_line(path: Path) -> None:
    """Cut a half-written last line (no final newline) off the curve file, if it has one."""
    if not path.exists():
        return
    with open(path, "r+b") as f:
        data = f.read()
        whole = data.rfind(b"\n") + 1
        if whole != len(data):
            f.truncate(whole)
            f.flush()
            os.fsync(f.fileno())


def append_curve(path: Path, point: dict[str, Any]) -> None:
    """One point as one line, flushed to disk, on a line of its own."""
    cut_partial_line(path)
    with open(path, "a") as f:
        f.write(json.dumps(point) + "\n")
        f.flush()
        os.fsync(f.fileno())
