"""The one atomic writer: a file is either its old self or its complete new self, never half.

Every file trilemma writes for a user or for a later run (sample files, results, reports,
CSV tables, pictures, JSON records, cached features) goes through `write_atomic`: the bytes go
to a hidden temporary file in the same folder (so that the rename never crosses a file
system), are flushed and fsync'ed, the temporary file is renamed over the target with
`os.replace` (atomic on POSIX and Windows), and the folder is fsync'ed so that the rename
itself survives a power cut. A failure at any point removes the temporary file and leaves
the previous file untouched.

Checkpoint *folders* use a folder-level version of the same idea in `trilemma.checkpoints`.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["fsync_directory", "is_leftover", "jsonable", "remove_leftovers", "write_atomic",
           "write_bytes", "write_json", "write_npz", "write_text"]

# The temporary name `write_atomic` gives a file while writing it: ".NAME.8-hex-digits.tmp".
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")


def fsync_directory(path: str | Path) -> None:
    """Flush a folder's entries (a rename in it) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    # A random name rather than mkstemp: mkstemp creates mode 0600, and the rename would keep
    # it, so a results file would stop being readable by the user's group.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")  # matches _TEMPORARY
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def write_bytes(path: str | Path, data: bytes) -> Path:
    return write_atomic(path, lambda f: f.write(data))


def write_text(path: str | Path, text: str) -> Path:
    """UTF-8 text, newlines written as given (CSV writers choose their own)."""
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Indented JSON with a final newline, keys in insertion order."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_npz(path: str | Path, arrays: dict[str, np.ndarray], provenance: dict | None = None) -> Path:
    """An uncompressed .npz of `arrays`, plus `provenance` as a JSON string (never a pickle)."""
    if provenance is not None:
        arrays = {**arrays, "provenance": np.array(json.dumps(provenance))}
    return write_atomic(path, lambda f: np.savez(f, **arrays))


def jsonable(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null (browsers' JSON.parse rejects them), NumPy
    and torch scalars become Python numbers, tuples become lists."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item") and callable(value.item):  # NumPy and torch scalars
        return jsonable(value.item())
    return value


def is_leftover(name: str) -> bool:
    """Whether a file name is one of `write_atomic`'s temporary names: what a writer killed
    with SIGKILL (which no `except` sees) leaves behind."""
    return bool(_TEMPORARY.match(name))


def remove_leftovers(folder: str | Path) -> list[Path]:
    """Delete the temporary files killed writers left in `folder` (not below it); returns them.
    Call it only where no other writer can be at work in that folder at the same time."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = [p for p in folder.iterdir() if is_leftover(p.name) and p.is_file()]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
