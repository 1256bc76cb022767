"""Which pixels an inpainting request hides. A mask is a bool tensor (N, 1, H, W): True = hidden
(to be filled in), False = known (kept exactly)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from trilemma.errors import DataError, UnsupportedRequest
from trilemma.io import load_arrays

NAMED = ("center", "left", "right", "top", "bottom")
MASK_HELP = "center, left, right, top, bottom, random:P (0 < P < 1) or MASK.npy"


def named_mask(name: str, height: int, width: int) -> torch.Tensor:
    """(H, W) bool: `center` hides the central half of each side (rows and columns H/4 to 3H/4,
    e.g. 7:21 of 28); `left`, `right`, `top` and `bottom` hide that half of the image."""
    mask = torch.zeros(height, width, dtype=torch.bool)
    if name == "center":
        mask[height // 4: height - height // 4, width // 4: width - width // 4] = True
    elif name == "left":
        mask[:, : width // 2] = True
    elif name == "right":
        mask[:, width // 2:] = True
    elif name == "top":
        mask[: height // 2] = True
    elif name == "bottom":
        mask[height // 2:] = True
    else:
        raise UnsupportedRequest(f"unknown mask '{name}' (known: {MASK_HELP})")
    return mask


def random_mask(probability: float, n: int, height: int, width: int, seed: int) -> torch.Tensor:
    """(N, H, W) bool: each pixel hidden independently with this probability, seeded."""
    if not 0 < probability < 1:
        raise UnsupportedRequest(f"random:P needs 0 < P < 1, not {probability}")
    generator = torch.Generator().manual_seed(seed)
    return torch.rand((n, height, width), generator=generator) < probability


def load_mask_file(path: str | Path, n: int, height: int, width: int) -> torch.Tensor:
    """A .npy of shape (H, W) or (N, H, W), bool or 0/1, True/1 = hidden."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such mask file (masks: {MASK_HELP})")
    arrays = load_arrays(path, "mask file")
    if list(arrays) != ["x"]:
        raise DataError(f"{path}: expected one mask array, found {sorted(arrays)}")
    array = arrays["x"]
    if array.shape not in ((height, width), (n, height, width)):
        raise DataError(f"{path}: mask has shape {array.shape}; expected ({height}, {width}) or "
                        f"({n}, {height}, {width}) for these {n} images")
    if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
        raise DataError(f"{path}: mask values must be bool or 0/1 (1 = hidden)")
    return torch.from_numpy(array.astype(bool))


def make_mask(spec: str, n: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """The (N, 1, H, W) bool mask (True = hidden) a --mask argument names."""
    if spec.startswith("random:"):
        try:
            probability = float(spec.partition(":")[2])
        except ValueError:
            raise UnsupportedRequest(f"mask '{spec}': random:P needs a number P, e.g. random:0.5") from None
        mask = random_mask(probability, n, height, width, seed)
    elif spec.endswith(".npy"):
        mask = load_mask_file(spec, n, height, width)
    else:
        mask = named_mask(spec, height, width)
    if mask.ndim == 2:
        mask = mask.expand(n, height, width)
    return mask[:, None].contiguous()
