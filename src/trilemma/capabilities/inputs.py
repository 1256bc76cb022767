"""Images a user hands to a scoring command, checked against the run that will score them.

Image files are read as `trilemma sample` writes them (an .npz with ``x``: uint8 N×H×W×C, or
N×H×W for one channel; float arrays in [0, 1] are taken as intensities) and optionally
``y``, integer class labels. Every problem is one `DataError` line that names the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.errors import DataError
from trilemma.evaluation import describe_shape


def run_sample_shape(run_config: dict[str, Any]) -> tuple[int, ...]:
    """One sample's shape, (C, H, W) or (D,), as the run's config.json records it."""
    return tuple(run_config["family_config"]["data"]["sample_shape"])


def to_model_space(x: np.ndarray | torch.Tensor, sample_shape: tuple[int, ...], normalizer: Any,
                   source: str) -> torch.Tensor:
    """Images or points in the model's space (images in [-1, 1] NCHW, points standardised).

    Images: integers (levels 0-255, e.g. uint8) or float in [0, 1]; NHWC, NHW (one channel) or NCHW. Raises a
    one-line `DataError` starting with `source` when the shape or values do not fit.
    """
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if array.dtype.kind not in "uif" or array.dtype == np.bool_:
        raise DataError(f"{source}: expected numbers, not {array.dtype}")
    if len(array) == 0:
        raise DataError(f"{source}: holds no samples")
    if len(sample_shape) == 1:
        if array.ndim != 2 or array.shape[1] != sample_shape[0]:
            raise DataError(f"{source}: samples of shape {array.shape[1:]} but the run models "
                            f"{describe_shape(sample_shape)}")
        points = torch.as_tensor(array, dtype=torch.float32)
        if not torch.isfinite(points).all():
            raise DataError(f"{source}: contains NaN or infinite values")
        return normalizer.to_model(points)
    c, h, w = sample_shape
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4:
        raise DataError(f"{source}: expected images N×H×W×C, got an array of shape {array.shape}")
    if array.shape[1:] == (c, h, w) and array.shape[3] != c:
        array = array.transpose(0, 2, 3, 1)  # NCHW given
    if array.shape[1:] != (h, w, c):
        got = describe_shape((array.shape[3], array.shape[1], array.shape[2]))
        raise DataError(f"{source}: images are {got} but the run makes {describe_shape(sample_shape)} "
                        "images (height x width x channels)")
    values = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if array.dtype.kind in "ui":  # integer images hold levels 0-255
        if values.min() < 0 or values.max() > 255:
            raise DataError(f"{source}: integer images must hold levels 0-255")
        values = values / 255.0
    elif not torch.isfinite(values).all():
        raise DataError(f"{source}: contains NaN or infinite values")
    elif values.min() < 0 or values.max() > 1:
        raise DataError(f"{source}: float images must lie in [0, 1] (found "
                        f"{float(values.min()):.3g}..{float(values.max()):.3g})")
    return values.permute(0, 3, 1, 2).contiguous() * 2 - 1


def read_image_file(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``x`` and, if present, ``y`` of an .npz file (or ``x`` of an .npy file)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            return loaded, None
        with loaded as arrays:
            if "x" not in arrays.files:
                raise DataError(f"{path}: holds no array 'x' (found: {', '.join(arrays.files) or 'nothing'})")
            x = arrays["x"]
            y = arrays["y"] if "y" in arrays.files else None
    except (ValueError, OSError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot read as .npz/.npy ({reason})") from None
    if y is not None and (y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu"):
        raise DataError(f"{path}: 'y' must hold {len(x)} integer labels, not {y.dtype} {y.shape}")
    return x, y


def read_binary_labels(path: str | Path, n: int) -> np.ndarray:
    """0/1 anomaly labels (1 = anomalous), one per image: .npy, .npz (array 'y' or 'labels'),
    or a text/CSV file with one value per line (a non-numeric header line is skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such labels file")
    try:
        if path.suffix.lower() == ".npy":
            labels = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as arrays:
                key = next((k for k in ("labels", "y", "anomalous") if k in arrays.files), None)
                if key is None:
                    raise DataError(f"{path}: holds no array 'labels' or 'y'")
                labels = arrays[key]
        else:
            lines = [line.split(",")[-1].strip() for line in path.read_text().splitlines() if line.strip()]
            if lines and not lines[0].lstrip("-").replace(".", "", 1).isdigit():
                lines = lines[1:]
            labels = np.array([float(v) for v in lines])
    except (ValueError, OSError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path}: cannot read labels ({reason})") from None
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != n:
        raise DataError(f"{path}: {len(labels)} labels for {n} images")
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{path}: labels must be 0 (normal) or 1 (anomalous)")
    return labels.astype(np.int64)
