"""Memorisation and novelty: how close generated samples sit to the training set, measured
against how close unseen real samples sit to it.

The comparison with held-out data follows the nearest-neighbour test of Meehan et al. 2020
("A non-parametric test to detect data-copying in generative models") and the copy detection
of Carlini et al. 2023 ("Extracting training data from diffusion models"): a model that
generalises puts its samples no closer to the training images than fresh real images are; a
model that memorises puts many of them much closer. Works on any 2-D array: extractor
features, or flattened pixels.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix

Rows = Callable[[torch.Tensor], torch.Tensor]  # a block of stored rows as centred float32 rows


def _nearest_distances(
    queries: torch.Tensor, references: torch.Tensor, chunk_size: int, rows: Rows
) -> torch.Tensor:
    """Euclidean distance from each query to its nearest reference, in blocks of both sets;
    each block made float32 and centred by `rows` when it is used."""
    nearest = torch.full((queries.shape[0],), torch.inf, dtype=torch.float32)
    for start in range(0, queries.shape[0], chunk_size):
        block = rows(queries[start : start + chunk_size])
        best = nearest[start : start + chunk_size]
        for reference_block in references.split(chunk_size):
            distances = torch.cdist(block, rows(reference_block)).min(dim=1).values
            best = torch.minimum(best, distances)
        nearest[start : start + chunk_size] = best
    return nearest


def _uint8_rows(x: ArrayLike, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach())
    if tensor.ndim != 2 or tensor.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (samples, features); got shape {tuple(tensor.shape)}")
    return tensor


def memorisation(
    train: ArrayLike,
    heldout: ArrayLike,
    fake: ArrayLike,
    near_copy_ratio: float = 0.5,
    chunk_size: int = 2048,
    uint8_scale: float | None = None,
) -> dict[str, float]:
    """Nearest-training-sample distances of fakes against those of held-out real samples.

    For each fake and each held-out sample, the Euclidean distance to its nearest training
    sample. A fake is a *near-copy* when that distance is below
    ``near_copy_ratio`` × (median held-out-to-train distance): it sits far closer to some
    training sample than a typical unseen real sample does. The held-out median sets the scale,
    so the threshold adapts to the feature space and needs no tuning per data set; the same
    threshold applied to the held-out set gives the base rate of near-copies to expect from a
    model that has not memorised (``heldout_near_copy_fraction``).

    Returns fake and held-out median and mean nearest-train distances,
    ``median_ratio`` = fake median / held-out median (≈ 1 for a model that generalises,
    → 0 for one that copies), ``near_copy_threshold``, ``near_copy_fraction`` and
    ``heldout_near_copy_fraction``. Computed in float32, chunked; at pixel dimensions the
    rounding of float32 distances is far below the distances that matter here.

    ``uint8_scale``: the three sets are uint8 rows (flattened images) standing for their values
    times this scale (1/255 for pixels in [0, 1]); they are converted a block at a time, so the
    memory used does not grow with the training set (the centre is then summed in float64).
    """
    if uint8_scale is None:
        reference = as_matrix(train, "train", torch.float32)
        unseen = as_matrix(heldout, "heldout", torch.float32)
        generated = as_matrix(fake, "fake", torch.float32)
    else:
        reference, unseen, generated = (_uint8_rows(x, name) for x, name in
                                        ((train, "train"), (heldout, "heldout"), (fake, "fake")))
    if not unseen.shape[1] == generated.shape[1] == reference.shape[1]:
        raise ValueError(
            f"feature dimensions differ: train {reference.shape[1]}, heldout "
            f"{unseen.shape[1]}, fake {generated.shape[1]}"
        )
    if not near_copy_ratio > 0:
        raise ValueError(f"near_copy_ratio must be positive, got {near_copy_ratio}")
    # torch.cdist expands |x|² + |y|² − 2x·y for large inputs; centring keeps the norms near the
    # distances themselves, so float32 cancellation cannot swamp small (copy-sized) distances.
    if uint8_scale is None:
        centre = reference.mean(dim=0)
        reference, unseen, generated = reference - centre, unseen - centre, generated - centre

        def rows(block: torch.Tensor) -> torch.Tensor:
            return block
    else:
        total = sum(block.to(torch.float64).sum(dim=0) for block in reference.split(chunk_size))
        centre = (total * uint8_scale / len(reference)).to(torch.float32)

        def rows(block: torch.Tensor) -> torch.Tensor:
            return block.to(torch.float32) * uint8_scale - centre
    fake_nearest = _nearest_distances(generated, reference, chunk_size, rows).numpy().astype(np.float64)
    heldout_nearest = _nearest_distances(unseen, reference, chunk_size, rows).numpy().astype(np.float64)
    heldout_median = float(np.median(heldout_nearest))
    fake_median = float(np.median(fake_nearest))
    threshold = near_copy_ratio * heldout_median
    return {
        "fake_median_distance": fake_median,
        "fake_mean_distance": float(fake_nearest.mean()),
        "heldout_median_distance": heldout_median,
        "heldout_mean_distance": float(heldout_nearest.mean()),
        "median_ratio": fake_median / heldout_median if heldout_median > 0 else float("nan"),
        "near_copy_threshold": threshold,
        "near_copy_fraction": float((fake_nearest < threshold).mean()),
        "heldout_near_copy_fraction": float((heldout_nearest < threshold).mean()),
    }
