"""The user's image files: read and checked against a run, and written back.

Image files are read as `trilemma sample` writes them: an .npz with ``x`` (uint8 N×H×W×C, or
N×H×W for one channel; float arrays in [0, 1] are taken as intensities) and optionally ``y``,
integer class labels. The editing commands write their outputs in the layout and dtype their
input came in; the scoring commands take images straight to the model's space. Every problem
is one `DataError` line that names the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.errors import DataError, UnsupportedRequest
from trilemma.evaluation import describe_shape


@dataclass
class ImageFile:
    """Images read from an .npz: `pixels` uint8 (N, H, W, C); `source_ndim`/`source_dtype` say
    how the file held them (NHW or NHWC, uint8 or floats in [0, 1]) so outputs match."""

    path: Path
    pixels: np.ndarray
    labels: np.ndarray | None
    source_ndim: int
    source_dtype: np.dtype
    original: np.ndarray = field(repr=False)  # the file's own array, for exact known pixels

    def to_model(self) -> torch.Tensor:
        """NCHW floats in [-1, 1]."""
        return torch.from_numpy(self.pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0

    def like_source(self, pixels: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) pixels in the file's own layout and dtype."""
        out = pixels[..., 0] if self.source_ndim == 3 else pixels
        if self.source_dtype.kind == "f":
            return (out.astype(np.float64) / 255.0).astype(self.source_dtype)
        return out.astype(self.source_dtype)


def read_images(path: str | Path, shape: tuple[int, int, int], what: str = "the run") -> ImageFile:
    """Images from an .npz with key `x` (uint8 0-255 or floats in [0, 1], (N, H, W) or
    (N, H, W, C)) and optional labels `y`; `shape` is the expected (C, H, W)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise DataError(f"{path}: images must be an .npz file with key 'x' (as `trilemma sample` writes)")
    x, y = read_image_file(path)
    c, h, w = shape
    if x.ndim not in (3, 4) or len(x) == 0:
        raise DataError(f"{path}: 'x' has shape {x.shape}; expected a non-empty stack (N, H, W) or (N, H, W, C)")
    got = (1, *x.shape[1:]) if x.ndim == 3 else (x.shape[3], x.shape[1], x.shape[2])
    if got[1:] != (h, w):
        raise DataError(f"{path}: images are {got[1]}x{got[2]}; {what} takes {h}x{w}")
    if got[0] != c:
        raise DataError(f"{path}: images have {got[0]} channel(s); {what} takes {c}")
    original = x
    if x.dtype == np.uint8:
        pixels = x
    elif x.dtype.kind == "f":
        if not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
            raise DataError(f"{path}: float images must lie in [0, 1]; or save them as uint8 in [0, 255]")
        pixels = np.round(x * 255).astype(np.uint8)
    else:
        raise DataError(f"{path}: images must be uint8 or floats in [0, 1], not {x.dtype}")
    pixels = pixels[..., None] if pixels.ndim == 3 else pixels
    return ImageFile(path, np.ascontiguousarray(pixels), None if y is None else y.astype(np.int64),
                     x.ndim, x.dtype, original)


def check_output_path(out: str | Path, suffix: str = ".npz") -> Path:
    out = Path(out)
    if out.suffix != suffix:
        raise UnsupportedRequest(f"--out {out}: the output file must end in {suffix}")
    if not out.parent.exists():
        raise UnsupportedRequest(f"--out {out}: folder {out.parent} does not exist")
    return out


def write_npz(out: Path, arrays: dict[str, np.ndarray], provenance: dict) -> None:
    """Atomically write arrays plus a JSON provenance string (never a pickle)."""
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **arrays, provenance=np.array(json.dumps(provenance)))
    os.replace(tmp, out)


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """Model-space NCHW in [-1, 1] to uint8 NHWC, as `Normalizer.from_model` rounds."""
    return ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


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
