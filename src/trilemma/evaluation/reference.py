"""The real side of every comparison: a split of the data, a seeded subset of it, its features,
and the fixed choices of the protocol that images, points and the NFE curve share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from trilemma.data import Dataset
from trilemma.errors import DataError, UnsupportedRequest
from trilemma.evaluation.inputs import MIN_SAMPLES
from trilemma.metrics.features import FeatureCache, FeatureExtractor, cached_features

REFERENCES = ("heldout", "train")
KID_SUBSET_SIZE = 1000  # torch-fidelity's and torchmetrics' defaults
KID_SUBSETS = 100
PRDC_K = 5  # Kynkäänniemi et al. 2019 and Naeem et al. 2020
RAW_COORDINATES = "raw-coordinates"


@dataclass
class Reference:
    """The real images or points generated samples are compared with, and their features."""

    split: str
    x: torch.Tensor  # uint8 NCHW images or float64 (N, D) points
    y: torch.Tensor | None
    features: np.ndarray  # extractor features, or the raw coordinates for points
    available: int  # size of the whole split


def split_of(dataset: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The samples and labels of the data's "heldout" or "train" split."""
    if split == "heldout":
        return dataset.x_heldout, dataset.y_heldout
    return dataset.x_train, dataset.y_train


def reference_set(dataset: Dataset, split: str, n_real: int | None, seed: int,
                  extractor: FeatureExtractor | None, cache: FeatureCache | None) -> Reference:
    """`n_real` samples of `split` (all of it when None), a subset drawn with `seed`, with their
    features under `extractor` (the raw coordinates when None: points)."""
    if split not in REFERENCES:
        raise UnsupportedRequest(f"unknown reference split '{split}' (known: heldout, train)")
    x, y = split_of(dataset, split)
    available = len(x)
    # Features of the whole split: memorisation needs them anyway, and a cache then serves
    # every subset and every later call.
    if extractor is None:
        features = x.double().numpy()
    else:
        features = cached_features(extractor, x, cache)
    if n_real is not None and n_real < available:
        # A seeded subset without replacement, sorted so that rows keep the split's order.
        index = np.sort(np.random.default_rng(seed).choice(available, n_real, replace=False))
        x, features = x[torch.from_numpy(index)], features[index]
        y = None if y is None else y[torch.from_numpy(index)]
    if len(x) < MIN_SAMPLES:
        raise DataError(f"{dataset.name}: the {split} split has {len(x)} samples; "
                        f"at least {MIN_SAMPLES} are needed")
    return Reference(split, x if extractor is not None else x.double(), y, features, available)
