"""Turning the arrays users hand to a metric into one torch form."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def as_matrix(x: ArrayLike, name: str, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A (n, d) CPU tensor of `dtype` from a NumPy array or a torch tensor.

    Raises ValueError for any other shape, and for NaN or infinite entries, because every
    metric here would silently return NaN on them.
    """
    tensor = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    tensor = tensor.to(device="cpu", dtype=dtype)
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array (samples, features); got shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return tensor
