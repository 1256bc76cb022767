"""Where trilemma keeps what it can recompute: $TRILEMMA_CACHE, by default ~/.cache/trilemma."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("TRILEMMA_CACHE") or Path.home() / ".cache" / "trilemma")
