"""The user's image files for an editing command: read and checked against a run, written back
in the layout and dtype they came in."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from trilemma.errors import DataError, UnsupportedRequest


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
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if "x" not in arrays:
                raise DataError(f"{path}: has no array 'x' (found: {', '.join(arrays.files) or 'none'})")
            x = arrays["x"]
            y = arrays.get("y", None)
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npz file ({error})") from None
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
    if y is not None and (y.ndim != 1 or len(y) != len(x) or y.dtype.kind not in "iu"):
        raise DataError(f"{path}: labels 'y' must be integers of shape ({len(x)},), not {y.dtype} {y.shape}")
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
