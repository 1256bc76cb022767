"""The one converter of images between the user's forms and trilemma's canonical one.

Canonical: uint8 (N, C, H, W) with C = 1 or 3, in standard C-order strides. The user's
forms, accepted by every command alike:

- dtype: uint8; other integers holding levels 0-255; bool (False = 0, True = 255); floats in
  [0, 1] (level = round(255 x), as `Normalizer.from_model` rounds);
- layout: (N, H, W) one channel, (N, H, W, C) as `trilemma sample` writes, or (N, C, H, W).

A 4-D NumPy array is read as NHWC when its last axis can hold channels, else as NCHW; when
the expected (C, H, W) is known, the layout that matches it wins, so an 8x3x3x3 stack is never
guessed wrong. A 4-D torch tensor is NCHW, as the data layer holds images. `ImageStack`
records the source's layout and dtype, so that an editing command answers "like the source".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trilemma.errors import DataError
from trilemma.io.arrays import check_finite

__all__ = ["ImageStack", "as_images", "as_uint8_nchw", "describe_shape", "images_sha256",
           "to_model_space", "to_pixels"]

CHANNELS = (1, 3)
LAYOUT_HELP = "images must be (N, H, W), (N, H, W, C) or (N, C, H, W) with C = 1 or 3"


def describe_shape(shape: Sequence[int]) -> str:
    """'28x28x1' for one image of (C, H, W) = (1, 28, 28) (height x width x channels, as users
    say it); '2-D points' for (2,)."""
    if len(shape) == 1:
        return f"{shape[0]}-D points"
    c, h, w = shape
    return f"{h}x{w}x{c}"


@dataclass
class ImageStack:
    """Images in canonical form, and how their source held them."""

    pixels: np.ndarray  # uint8 (N, C, H, W), standard strides
    layout: str  # the source's: "NHW", "NHWC" or "NCHW"
    dtype: np.dtype  # the source's
    source: str = "images"
    original: np.ndarray | None = field(default=None, repr=False)  # the source array itself

    @property
    def shape(self) -> tuple[int, int, int]:
        """One image's (C, H, W)."""
        return tuple(self.pixels.shape[1:])

    @property
    def nhwc(self) -> np.ndarray:
        """uint8 (N, H, W, C), the user's space (`trilemma sample`, pictures)."""
        return np.ascontiguousarray(self.pixels.transpose(0, 2, 3, 1))

    def tensor(self) -> torch.Tensor:
        return torch.from_numpy(self.pixels)

    def to_model(self, normalizer: Any = None) -> torch.Tensor:
        """NCHW floats in [-1, 1], by the run's `Normalizer` when given (the same map training used)."""
        if normalizer is not None:
            return normalizer.to_model(self.tensor())
        return self.tensor().float() / 127.5 - 1.0

    def like_source(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 NHWC `pixels` (user space) in the source's layout and dtype. A bool source gets
        uint8 levels back: edited pixels are no longer black and white."""
        out = pixels[..., 0] if self.layout == "NHW" else pixels
        out = out.transpose(0, 3, 1, 2) if self.layout == "NCHW" else out
        if self.dtype.kind == "f":
            return (out.astype(np.float64) / 255.0).astype(self.dtype)
        return np.ascontiguousarray(out.astype(np.uint8 if self.dtype.kind == "b" else self.dtype))

    def mask_like_source(self, hidden: np.ndarray) -> np.ndarray:
        """An (N, H, W) mask shaped to broadcast against the source array."""
        return {"NHW": hidden, "NHWC": hidden[..., None], "NCHW": hidden[:, None]}[self.layout]


def _layout(shape: tuple[int, ...], is_tensor: bool, expected: Sequence[int] | None) -> str | None:
    if len(shape) == 3:
        return "NHW"
    if len(shape) != 4:
        return None
    if is_tensor:
        return "NCHW" if shape[1] in CHANNELS else None
    if expected is not None:
        c, h, w = expected
        if shape[1:] == (h, w, c):
            return "NHWC"
        if shape[1:] == (c, h, w):
            return "NCHW"
    if shape[3] in CHANNELS:
        return "NHWC"
    return "NCHW" if shape[1] in CHANNELS else None


def _levels(x: np.ndarray, source: str) -> np.ndarray:
    """uint8 levels of numeric images, refusing values outside the dtype's range."""
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind == "b":
        return x.astype(np.uint8) * np.uint8(255)
    if x.dtype.kind == "f":
        check_finite(x, source)
        low, high = float(x.min()), float(x.max())
        if low < 0 or high > 1:
            raise DataError(f"{source}: float images must lie in [0, 1] (found {low:.3g} to "
                            f"{high:.3g}); or save them as uint8 in [0, 255]")
        return np.round(x * 255).astype(np.uint8)
    low, high = int(x.min()), int(x.max())
    if low < 0 or high > 255:
        raise DataError(f"{source}: integer images must lie in [0, 255] (found {low} to {high})")
    return x.astype(np.uint8)


def _standard_strides(x: np.ndarray) -> np.ndarray:
    # A transposed NHWC array with one channel counts as contiguous to NumPy and torch alike,
    # yet keeps odd strides; convolutions may then take the channels-last path and round
    # differently, so the two layouts would not give identical features. A fresh C-order
    # copy has the standard strides.
    _, c, h, w = x.shape
    item = x.itemsize
    if x.strides != (c * h * w * item, h * w * item, w * item, item):
        x = np.array(x, order="C", copy=True)
    return x


def as_images(x: np.ndarray | torch.Tensor, source: str = "images",
              expected: Sequence[int] | None = None, expected_by: str | None = None) -> ImageStack:
    """Images in any of the user's forms as a canonical `ImageStack`.

    `expected`, one image's (C, H, W), settles NHWC against NCHW. With `expected_by` (e.g.
    "the run makes"), images of another shape are refused in one line; without it the caller
    compares `stack.shape` itself. Raises `DataError` starting with `source`.
    """
    is_tensor = isinstance(x, torch.Tensor)
    array = x.detach().cpu().numpy() if is_tensor else np.asarray(x)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{source}: images must be numbers (uint8 0-255 or floats in [0, 1]), "
                        f"not {array.dtype}")
    layout = _layout(array.shape, is_tensor, expected)
    if layout is None:
        raise DataError(f"{source}: data array has shape {array.shape}; {LAYOUT_HELP}")
    if len(array) == 0:
        raise DataError(f"{source}: holds no images; expected a non-empty stack")
    nchw = {"NHW": lambda a: a[:, None], "NHWC": lambda a: a.transpose(0, 3, 1, 2),
            "NCHW": lambda a: a}[layout](array)
    if expected_by is not None and tuple(nchw.shape[1:]) != tuple(expected):
        raise DataError(f"{source}: images are {describe_shape(nchw.shape[1:])} but {expected_by} "
                        f"{describe_shape(expected)}")
    pixels = _standard_strides(np.ascontiguousarray(_levels(nchw, source)))
    return ImageStack(pixels, layout, array.dtype, source, array)


def as_uint8_nchw(images: np.ndarray | torch.Tensor, source: str = "images") -> torch.Tensor:
    """The canonical uint8 (N, C, H, W) CPU tensor of images in any of the user's forms."""
    return as_images(images, source).tensor()


def images_sha256(images: np.ndarray | torch.Tensor) -> str:
    """sha256 of the canonical uint8 NCHW bytes and shape, so every form hashes the same."""
    x = as_images(images).pixels
    digest = hashlib.sha256(repr(tuple(x.shape)).encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """Model-space NCHW in [-1, 1] to uint8 NHWC (user space), as `Normalizer.from_model` rounds."""
    pixels = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def _points(x: np.ndarray, sample_shape: Sequence[int], source: str) -> torch.Tensor:
    if x.dtype.kind not in "biuf":
        raise DataError(f"{source}: expected numbers, not {x.dtype}")
    if x.ndim != 2 or x.shape[1] != sample_shape[0]:
        raise DataError(f"{source}: samples of shape {x.shape[1:]} but the run models "
                        f"{describe_shape(sample_shape)}")
    if len(x) == 0:
        raise DataError(f"{source}: holds no samples")
    check_finite(x, source)
    return torch.as_tensor(x, dtype=torch.float32)


def to_model_space(x: np.ndarray | torch.Tensor, sample_shape: Sequence[int], normalizer: Any,
                   source: str) -> torch.Tensor:
    """Images or points in a run's model space (images NCHW in [-1, 1], points standardised),
    after checking them against the run's `sample_shape`; one-line `DataError`s name `source`."""
    if len(sample_shape) == 1:
        array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return normalizer.to_model(_points(array, sample_shape, source))
    stack = as_images(x, source, expected=sample_shape, expected_by="the run makes")
    return stack.to_model(normalizer)
