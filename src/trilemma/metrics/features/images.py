"""Images in the one layout feature extraction reads: uint8 NCHW on the CPU, and their hash."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from trilemma.errors import DataError

ImageInput = np.ndarray | torch.Tensor


def as_uint8_nchw(images: ImageInput) -> torch.Tensor:
    """The uint8 (N, C, H, W) CPU tensor for images given in either of trilemma's layouts.

    NumPy arrays are read as NHWC (what `trilemma sample` writes and image files hold);
    torch tensors as NCHW (what the data layer holds). A 3-D input is a stack of grayscale
    images (N, H, W). As a convenience a NumPy array whose last axis cannot be a channel
    axis (not 1 or 3) but whose second can is read as NCHW. Raises DataError for anything
    else, and for non-uint8 data: features of float images would depend on an unstated
    scaling, so the caller must quantise first (`Normalizer.from_model` does).
    """
    if isinstance(images, torch.Tensor):
        x = images.detach().cpu()
        if x.ndim == 3:
            x = x[:, None]
    else:
        array = np.asarray(images)
        if array.ndim == 3:
            array = array[:, None]
        elif array.ndim == 4 and not (array.shape[-1] not in (1, 3) and array.shape[1] in (1, 3)):
            array = array.transpose(0, 3, 1, 2)
        x = torch.from_numpy(np.ascontiguousarray(array))
    if x.dtype != torch.uint8:
        raise DataError(f"images must be uint8 (0-255) to extract features; got {x.dtype}")
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in (1, 3):
        raise DataError(
            "images must be a non-empty stack of 1- or 3-channel images, NHWC (NumPy) or NCHW "
            f"(torch); got shape {tuple(images.shape)}"
        )
    # Standard NCHW strides, exactly: a transposed NHWC array with one channel counts as
    # contiguous to NumPy and torch alike, yet convolutions may then take the channels-last
    # path and round differently, so the two layouts would not give identical features.
    _, c, h, w = x.shape
    if x.stride() != (c * h * w, h * w, w, 1):
        x = x.clone(memory_format=torch.contiguous_format)
    return x


def images_sha256(images: ImageInput) -> str:
    """sha256 of the canonical uint8 NCHW bytes and shape, so both layouts hash the same."""
    x = as_uint8_nchw(images)
    digest = hashlib.sha256(repr(tuple(x.shape)).encode())
    digest.update(x.numpy().tobytes())
    return digest.hexdigest()
