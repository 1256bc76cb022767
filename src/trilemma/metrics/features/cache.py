"""Features computed once per (extractor, image content), in memory and optionally on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trilemma.io import write_atomic
from trilemma.metrics.features.base import FeatureExtractor
from trilemma.metrics.features.images import ImageInput, as_uint8_nchw, images_sha256


class FeatureCache:
    """Features keyed by extractor identity and image content, in memory and optionally on disk.

    The key is the extractor's name and weights hash plus the sha256 of the images, so a
    changed sample set or extractor can never be served stale features. With `directory`,
    each entry is also written as `<key>.npz` (read back with allow_pickle=False), so a report
    re-run over the same samples does not recompute. Arrays are returned as stored: callers
    must not modify them in place.
    """

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory).expanduser() if directory is not None else None
        self._memory: dict[str, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(extractor: FeatureExtractor, images_digest: str) -> str:
        return f"{extractor.name}-{extractor.weights_sha256[:16]}-{images_digest[:32]}"

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.npz"

    def get(self, key: str, n: int | None = None, dim: int | None = None) -> np.ndarray | None:
        """The stored (n, dim) features under `key`, or None (also for an unreadable file)."""
        if key in self._memory:
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                array = np.asarray(data["features"], dtype=np.float64)
        except (OSError, ValueError, KeyError):
            return None  # a truncated or foreign file is recomputed and overwritten
        if array.ndim != 2 or (n is not None and array.shape[0] != n) or (
                dim is not None and array.shape[1] != dim):
            return None
        self._memory[key] = array
        return array

    def put(self, key: str, features: np.ndarray) -> None:
        self._memory[key] = features
        path = self._path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomically, so an interrupted run never leaves a half-written entry.
        write_atomic(path, lambda f: np.savez(f, features=features))

    def __len__(self) -> int:
        return len(self._memory)


def cached_features(extractor: FeatureExtractor, images: ImageInput,
                    cache: FeatureCache | None = None) -> np.ndarray:
    """`extractor.features(images)`, computed once per (extractor, image content) in `cache`.

    Without a cache this simply computes the features.
    """
    x = as_uint8_nchw(images)
    if cache is None:
        return extractor.features(x)
    key = cache.key(extractor, images_sha256(x))
    found = cache.get(key, n=x.shape[0], dim=extractor.dim)
    if found is not None:
        cache.hits += 1
        return found
    cache.misses += 1
    features = extractor.features(x)
    cache.put(key, features)
    return features
