"""What `evaluate` accepts: generated samples checked against the data they are compared with.

Images are uint8, NHWC (NumPy) or NCHW (torch); points are (N, D) floats. Anything else is
refused with one `SampleMismatch` line that names the file or the sampler it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.data import BUILTIN_NAMES, Dataset
from trilemma.errors import DataError
from trilemma.metrics.features import as_uint8_nchw

MIN_SAMPLES = 10  # PRDC needs more than k per set; fewer would say nothing anyway
DEFAULT_N = {"image": 2000, "points": 2500}  # 2,500 is the mode protocol's sample count


class SampleMismatch(DataError):
    """Samples that cannot be compared with the data: wrong shape, kind or type."""


def builtin_name(dataset: Dataset) -> str | None:
    """The built-in data set's name (mnist, digits, ring8, grid25), or None for user data.

    A user's file or folder that happens to be called 'mnist' must not be scored as MNIST:
    user data record their path as their source, whose last part is the data set's name.
    """
    source = str(dataset.info.get("source", ""))
    if dataset.name in BUILTIN_NAMES and Path(source).name != dataset.name:
        return dataset.name
    return None


def describe_shape(shape: Sequence[int]) -> str:
    """'28x28x1' for one image of (C, H, W) = (1, 28, 28) (height x width x channels, as users
    say it); '2-D points' for (2,)."""
    if len(shape) == 1:
        return f"{shape[0]}-D points"
    c, h, w = shape
    return f"{h}x{w}x{c}"


def check_samples(samples_x: Any, dataset: Dataset, source: str = "samples") -> Any:
    """Samples in canonical form: uint8 NCHW tensor for image data, float64 (N, D) for points.

    Images come as uint8 NHWC (NumPy; what `generate` returns and `trilemma sample` writes)
    or NCHW (torch; what `Dataset` holds). Raises `SampleMismatch`, one line that starts with
    `source`, when kind, shape or type differ from the data's.
    """
    is_tensor = isinstance(samples_x, torch.Tensor)
    array = samples_x.detach().cpu() if is_tensor else np.asarray(samples_x)
    data_label = dataset.name
    if dataset.kind == "points":
        if array.ndim != 2:
            shape = "x".join(str(side) for side in array.shape[1:])
            raise SampleMismatch(f"{source}: samples are {shape} arrays but "
                                 f"{data_label} holds {dataset.sample_shape[0]}-D points")
        if array.shape[1] != dataset.sample_shape[0]:
            raise SampleMismatch(f"{source}: samples are {array.shape[1]}-D points but "
                                 f"{data_label} points are {dataset.sample_shape[0]}-D")
        points = torch.as_tensor(np.asarray(array, dtype=np.float64))
        if not torch.isfinite(points).all():
            raise SampleMismatch(f"{source}: samples contain NaN or infinite values")
        if len(points) < MIN_SAMPLES:
            raise SampleMismatch(f"{source}: {len(points)} samples are too few to evaluate "
                                 f"(at least {MIN_SAMPLES})")
        return points
    expected = describe_shape(dataset.sample_shape)
    if array.ndim == 2:
        raise SampleMismatch(f"{source}: samples are {array.shape[1]}-D points but "
                             f"{data_label} images are {expected}")
    dtype = array.dtype if not is_tensor else str(array.dtype).removeprefix("torch.")
    if (is_tensor and array.dtype != torch.uint8) or (not is_tensor and array.dtype != np.uint8):
        raise SampleMismatch(f"{source}: samples must be uint8 images (0-255), not {dtype}")
    try:
        images = as_uint8_nchw(array)
    except DataError as error:
        raise SampleMismatch(f"{source}: {error}") from None
    if tuple(images.shape[1:]) != tuple(dataset.sample_shape):
        raise SampleMismatch(f"{source}: samples are {describe_shape(images.shape[1:])} but "
                             f"{data_label} images are {expected}")
    if len(images) < MIN_SAMPLES:
        raise SampleMismatch(f"{source}: {len(images)} samples are too few to evaluate "
                             f"(at least {MIN_SAMPLES})")
    return images
