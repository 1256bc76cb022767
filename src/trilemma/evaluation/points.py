"""Generated points against real ones, in their own coordinates: for every point set the
Fréchet distance on raw coordinates, PRDC and memorisation, and on a built-in 2-D mixture the
mode-collapse protocol of VEEGAN / PacGAN as well (the Fréchet distance only sees a mixture's
mean and covariance; the modes are what its protocol measures)."""

from __future__ import annotations

import math
from typing import Any

import torch

from trilemma.data import Dataset
from trilemma.data.mixtures import MIXTURES
from trilemma.evaluation.inputs import builtin_name
from trilemma.evaluation.reference import PRDC_K, RAW_COORDINATES, reference_set
from trilemma.metrics.copying import copying_figures
from trilemma.metrics.frechet import fid, frechet_bias_estimate
from trilemma.metrics.memorisation import memorisation
from trilemma.metrics.modes import mode_statistics_for
from trilemma.metrics.prdc import prdc


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def evaluate_points(fake: torch.Tensor, dataset: Dataset, split: str, n_real: int | None,
                    seed: int, copying: bool = True) -> dict[str, Any]:
    """`evaluate`'s result for float64 (N, D) points `fake`."""
    real = reference_set(dataset, split, n_real, seed, None, None)
    fake_points = fake.numpy()
    metrics: dict[str, Any] = {}
    details: dict[str, Any] = {}
    notes = []
    mixture = builtin_name(dataset) if dataset.name in MIXTURES else None
    if mixture is not None and dataset.sample_shape == (2,):
        modes = mode_statistics_for(mixture, fake_points)
        real_modes = mode_statistics_for(mixture, real.features)
        metrics.update(
            modes_covered=modes["modes_covered"],
            num_modes=len(modes["mode_counts"]),
            high_quality_fraction=modes["high_quality_fraction"],
            reverse_kl_modes=_finite(modes["reverse_kl"]),
            real_high_quality_fraction=real_modes["high_quality_fraction"],
        )
        details["mode_counts"] = modes["mode_counts"]
        notes.append(
            f"Mode protocol of VEEGAN / PacGAN on {mixture}: published tables use 2,500 samples "
            f"(here {len(fake_points)}) and average over 5-10 training runs."
        )
    metrics["FD-raw"] = fid(real.features, fake_points)
    metrics["fid"] = metrics["FD-raw"]
    metrics["fid_name"] = "FD-raw"
    metrics["fid_bias_estimate"] = frechet_bias_estimate(real.features, len(real.x), len(fake_points))
    metrics.update(prdc(real.features, fake_points, k=PRDC_K))
    in_coordinates = memorisation(dataset.x_train.numpy(), dataset.x_heldout.numpy(), fake_points)
    metrics["memorisation_ratio"] = in_coordinates["median_ratio"]
    metrics["near_copy_fraction"] = in_coordinates["near_copy_fraction"]
    details["memorisation"] = in_coordinates
    if copying:
        metrics.update(copying_figures(dataset.x_train.numpy(), dataset.x_heldout.numpy(), fake_points, details))
    provenance = {
        "extractor": RAW_COORDINATES,
        "extractor_sha256": None,
        "feature_dim": int(dataset.sample_shape[0]),
        "reference": split,
        "n_real": len(real.x),
        "reference_available": real.available,
        "n_train": len(dataset.x_train),
        "n_heldout": len(dataset.x_heldout),
        "prdc_k": PRDC_K,
    }
    return {"kind": "points", "metrics": metrics, "details": details,
            "provenance": provenance, "notes": notes}
