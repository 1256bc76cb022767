"""The feature extractor's contract: uint8 images in, float64 feature vectors out, with the
name, weights hash and limits every result records."""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import torch

from trilemma.metrics.features.images import ImageInput, as_uint8_nchw


def file_sha256(path: Path) -> str:
    """sha256 of a weights file, read in blocks so that a large file never sits in memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _device(device: str | torch.device) -> torch.device:
    if isinstance(device, torch.device):
        return device
    from trilemma.device import resolve_device

    return resolve_device(device)


class FeatureExtractor(ABC):
    """Maps uint8 images to float64 feature vectors (n, dim).

    Subclasses set `name`, `weights_sha256`, `dim` and `limits`, and implement `_embed`, which
    receives a uint8 NCHW batch already on `self.device`. `features` accepts NHWC NumPy or
    NCHW torch input (see `as_uint8_nchw`), batches it and runs without autograd.
    """

    name: str
    weights_sha256: str
    dim: int
    limits: str

    def __init__(self, device: str | torch.device = "cpu", batch_size: int = 256):
        self.device = _device(device)
        self.batch_size = int(batch_size)

    @abstractmethod
    def _embed(self, batch: torch.Tensor) -> torch.Tensor:
        """(b, dim) features of a uint8 NCHW batch on `self.device`."""

    def check_images(self, x: torch.Tensor) -> None:
        """Raise DataError if this extractor cannot take images like `x` (uint8 NCHW)."""

    @torch.inference_mode()
    def features(self, images: ImageInput) -> np.ndarray:
        """float64 (n, dim) features of `images` (uint8, NHWC NumPy or NCHW torch)."""
        from trilemma import distributed

        x = as_uint8_nchw(images)
        self.check_images(x)
        out = np.empty((x.shape[0], self.dim), dtype=np.float64)
        # Under torchrun the batches are dealt to the ranks and gathered: same batches, same numbers.
        rank, world = distributed.work_split()
        done = []
        for start in range(0, x.shape[0], self.batch_size)[rank::world]:
            batch = x[start:start + self.batch_size].to(self.device)
            done.append((start, self._embed(batch).double().cpu().numpy()))
        if world > 1:
            done = [item for part in distributed.gather_objects(done) for item in part]
        for start, features in done:
            out[start:start + len(features)] = features
        return out

    def describe(self) -> dict:
        """What a result records about the features it was computed on."""
        return {"name": self.name, "weights_sha256": self.weights_sha256, "dim": self.dim,
                "limits": self.limits}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"
