"""Images in the one layout feature extraction reads: uint8 NCHW on the CPU, and their hash."""

from __future__ import annotations

import numpy as np
import torch

from trilemma.io import as_uint8_nchw as io_as_uint8_nchw
from trilemma.io import images_sha256 as io_images_sha256

ImageInput = np.ndarray | torch.Tensor


def as_uint8_nchw(images: ImageInput) -> torch.Tensor:
    """The uint8 (N, C, H, W) CPU tensor of images in any form `trilemma.io.as_images` reads:
    uint8 or floats in [0, 1], NHW, NHWC or NCHW (a torch tensor is NCHW). Features of float
    images are those of their 0-255 levels, as `Normalizer.from_model` rounds them."""
    return io_as_uint8_nchw(images)


def images_sha256(images: ImageInput) -> str:
    """sha256 of the canonical uint8 NCHW bytes and shape, so every layout hashes the same."""
    return io_images_sha256(images)
