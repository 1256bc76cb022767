"""The one reader of array files: `.npz` (``x``, optional ``y`` and ``provenance``) and `.npy`.

The format is what `trilemma sample` writes: ``x`` the samples (images or points), ``y``
optional integer class labels, ``provenance`` optional JSON text saying how the file was made.
An `.npz` holding a single array under another name, or an `.npy`, is read as ``x``. Files are
never unpickled, so a file cannot run code, and what a file declares is checked against the
bytes it holds before anything is allocated (`trilemma.io.npy`). Every problem is one
`DataError` line that starts with the file's path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trilemma.errors import DataError
from trilemma.io.npy import read_arrays

__all__ = ["ArrayFile", "check_finite", "read_array_file", "read_label_file"]

RESERVED = ("y", "provenance")  # names that are never the data array


@dataclass(frozen=True)
class ArrayFile:
    path: Path
    x: np.ndarray  # numeric, at least 2-D, finite
    y: np.ndarray | None  # int64 (N,), non-negative
    provenance: dict[str, Any] = field(default_factory=dict)  # {} when the file records none


def load_arrays(path: str | Path, what: str = "file") -> dict[str, np.ndarray]:
    """Every array of an .npz (by name) or an .npy (as ``x``), read without unpickling."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such {what}")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    return read_arrays(path)


def check_finite(x: np.ndarray, source: str) -> None:
    """One line naming the first sample with a NaN or infinity, if any."""
    if x.dtype.kind != "f" or x.size == 0:
        return
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{source}: holds NaN or infinite values (first at sample {int(bad.argmax())})")


def _data_array(arrays: dict[str, np.ndarray], path: Path) -> np.ndarray:
    if "x" in arrays:
        return arrays["x"]
    candidates = [name for name in arrays if name not in RESERVED]
    if len(candidates) == 1:
        return arrays[candidates[0]]
    raise DataError(f"{path}: holds arrays {sorted(arrays)}; name the data array 'x' (labels 'y')")


def _labels(y: np.ndarray | None, n: int, path: Path) -> np.ndarray | None:
    if y is None:
        return None
    if y.ndim != 1 or len(y) != n or y.dtype.kind not in "biu" or (len(y) and y.min() < 0):
        raise DataError(f"{path}: labels 'y' are {y.dtype} of shape {y.shape}; expected {n} "
                        "non-negative integers, one per sample")
    return y.astype(np.int64)


def _provenance(arrays: dict[str, np.ndarray], path: Path) -> dict[str, Any]:
    if "provenance" not in arrays:
        return {}
    try:
        made = json.loads(str(arrays["provenance"]))
    except ValueError:
        made = None
    if not isinstance(made, dict):
        raise DataError(f"{path}: 'provenance' must be a JSON object (as `trilemma sample` writes)")
    return made


def read_array_file(path: str | Path) -> ArrayFile:
    """The samples of an .npz/.npy file, checked for what every command needs: numbers, at
    least 2-D (points (N, D) or images (N, H, W[, C])), no NaN, labels that fit."""
    path = Path(path)
    arrays = load_arrays(path)
    x = _data_array(arrays, path)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{path}: data array has dtype {x.dtype}; expected numbers")
    if x.ndim < 2:
        raise DataError(f"{path}: data array has shape {x.shape}; expected (N, D) points or "
                        "(N, H, W[, C]) images")
    if x.size == 0:
        raise DataError(f"{path}: data array has shape {x.shape}, which holds no values")
    check_finite(x, str(path))
    return ArrayFile(path, x, _labels(arrays.get("y"), len(x), path), _provenance(arrays, path))


def _label_text(path: Path) -> np.ndarray:
    try:
        lines = [line.split(",")[-1].strip() for line in path.read_text().splitlines() if line.strip()]
        if lines and not lines[0].lstrip("-").replace(".", "", 1).isdigit():
            lines = lines[1:]  # a header
        return np.array([float(v) for v in lines])
    except (ValueError, OSError) as error:  # UnicodeDecodeError is a ValueError
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot read labels ({reason})") from None


def read_label_file(path: str | Path, n: int) -> np.ndarray:
    """0/1 labels (1 = anomalous), one per image: .npy, .npz (array 'labels', 'y' or
    'anomalous'), or a text/CSV file with one value per line (a non-numeric header skipped)."""
    path = Path(path)
    if path.suffix.lower() in (".npy", ".npz"):
        arrays = load_arrays(path, "labels file")
        names = ("x",) if path.suffix.lower() == ".npy" else ("labels", "y", "anomalous")
        key = next((k for k in names if k in arrays), None)
        if key is None:
            raise DataError(f"{path}: holds no array 'labels' or 'y'")
        labels = arrays[key]
    elif path.is_file():
        labels = _label_text(path)
    else:
        raise DataError(f"{path}: no such labels file")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise DataError(f"{path}: {len(labels)} labels for {n} images")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: labels must be 0 (normal) or 1 (anomalous)")
    return labels.astype(np.int64)
