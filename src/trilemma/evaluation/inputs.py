"""What `evaluate` accepts: generated samples checked against the data they are compared with.

Images are read as every command reads them (`trilemma.io`); points are (N, D) floats.
Anything else is refused with one `SampleMismatch` line that names the file or the sampler it
came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.data import BUILTIN_NAMES, Dataset
from trilemma.errors import DataError
from trilemma.io import as_images, describe_shape

MIN_SAMPLES = 10  # PRDC needs more than k per set; fewer would say nothing anyway
DEFAULT_N = {"image": 2000, "points": 2500, "table": 2000}  # 2,500 is the mode protocol's sample count


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


def check_samples(samples_x: Any, dataset: Dataset, source: str = "samples") -> Any:
    """Samples in canonical form: uint8 NCHW tensor for image data, float64 (N, D) for points.

    Images come in any form `trilemma.io.as_images` reads (uint8 or floats in [0, 1], NHW,
    NHWC or NCHW), as every command reads them. Raises `SampleMismatch`, one line that starts
    with `source`, when kind, shape or type differ from the data's.
    """
    is_tensor = isinstance(samples_x, torch.Tensor)
    array = samples_x.detach().cpu() if is_tensor else np.asarray(samples_x)
    data_label = dataset.name
    if dataset.kind in ("points", "table"):  # a table's samples are its encoded rows
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
    try:
        images = as_images(array, source, expected=dataset.sample_shape).tensor()
    except DataError as error:
        raise SampleMismatch(str(error)) from None
    if tuple(images.shape[1:]) != tuple(dataset.sample_shape):
        raise SampleMismatch(f"{source}: samples are {describe_shape(images.shape[1:])} but "
                             f"{data_label} images are {expected}")
    if len(images) < MIN_SAMPLES:
        raise SampleMismatch(f"{source}: {len(images)} samples are too few to evaluate "
                             f"(at least {MIN_SAMPLES})")
    return images
