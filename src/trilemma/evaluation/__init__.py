"""The one evaluation path: generated samples against real data, every number with its
provenance. The CLI's `trilemma evaluate` and the comparison report both call `evaluate`.

Images are scored in the feature space of one extractor (`trilemma.metrics.features`): the
Fréchet distance named after it, KID beside it (FD is biased at small n, KID is not),
precision / recall / density / coverage, class statistics when the extractor is a domain
classifier, sharpness against the same real images, and memorisation against the training
split. 2-D points of a built-in mixture get the mode-collapse protocol of VEEGAN / PacGAN;
every point set gets PRDC on the raw coordinates. Definitions: METRICS.md and the modules of
`trilemma.metrics`.

The package: `inputs` checks the samples, `reference` draws the real side, `images` and
`points` compute the figures, `nfe` the FD-against-NFE curve of a diffusion model. The figures'
labels, formats and directions are declared in `trilemma.metrics.catalogue`.

Every result records how it was computed (``provenance``): extractor name and weights
sha256, n_real, n_generated, reference split, sampler and network evaluations per sample,
the sampling seed and the evaluation seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from trilemma.data import Dataset
from trilemma.evaluation.images import CLASS_COVERAGE_SHARE, evaluate_images
from trilemma.evaluation.inputs import (
    DEFAULT_N,
    MIN_SAMPLES,
    SampleMismatch,
    builtin_name,
    check_samples,
    describe_shape,
)
from trilemma.evaluation.nfe import DDPM_EVALUATION_BUDGET, default_nfe_steps, fid_against_nfe
from trilemma.evaluation.points import evaluate_points
from trilemma.evaluation.reference import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    PRDC_K,
    RAW_COORDINATES,
    REFERENCES,
)
from trilemma.metrics.features import FeatureCache, FeatureExtractor
from trilemma.metrics.frechet import frechet_bias_estimate

__all__ = [
    "CLASS_COVERAGE_SHARE",
    "DDPM_EVALUATION_BUDGET",
    "DEFAULT_N",
    "KID_SUBSETS",
    "KID_SUBSET_SIZE",
    "MIN_SAMPLES",
    "PRDC_K",
    "RAW_COORDINATES",
    "REFERENCES",
    "SampleMismatch",
    "builtin_name",
    "check_samples",
    "default_nfe_steps",
    "describe_shape",
    "evaluate",
    "fid_against_nfe",
    "frechet_bias_estimate",
]


def evaluate(
    samples_x: Any,
    dataset: Dataset,
    *,
    samples_y: np.ndarray | torch.Tensor | None = None,
    extractor: FeatureExtractor | None = None,
    n_real: int | None = None,
    reference: str = "heldout",
    seed: int = 0,
    provenance: Mapping[str, Any],
    cache: FeatureCache | None = None,
    source: str = "samples",
    copying: bool = True,
) -> dict[str, Any]:
    """Every metric of `samples_x` against `dataset`, with the provenance of each number.

    `samples_x`: uint8 NHWC images (NumPy) / NCHW (torch), or float (N, D) points, of the
    data's shape. `samples_y`: the labels a conditional model was asked for, if any.
    `extractor`: image features (default: `extractor_for_dataset`: the shipped domain
    classifier of a built-in set, a network trained on a folder). `n_real`: real reference images, a seeded subset of the
    `reference` split ("heldout", the default, or "train"); all of it when None. `seed`
    drives every random choice of the evaluation (that subset, KID's subsets). `provenance`:
    how the samples were made, e.g. ``{"sampler": "ddim", "steps": 20, "nfe": 20, "seed": 0,
    "run": {...}}``; its ``seed`` is recorded as the sampling seed. `cache` keeps features
    across calls. `copying`: also the data-copying figures of `trilemma.metrics.copying`
    (AuthPct, C_T, the generalisation gap; seconds on a CPU, so a training curve's points leave
    them out).

    Returns ``{"kind", "metrics", "details", "provenance", "notes"}``: ``metrics`` holds the
    scalar numbers (for images ``fid`` with ``fid_name``, also under that name, e.g.
    ``"FD-lenet-mnist"``; every key is declared in `trilemma.metrics.catalogue`), ``details``
    histograms and per-part results. Beside FD:
    ``fid_bias_estimate`` (`frechet_bias_estimate`, what a perfect model would score at these
    n) and ``fid_real_floor`` (real images of the other split against the same reference).
    ``classes_covered`` counts classes holding at least ``provenance["classes_min_count"]``
    samples, 10% of a uniform share, so that classifier errors do not cover a missing class.
    """
    samples = check_samples(samples_x, dataset, source)
    if samples_y is not None:
        samples_y = torch.as_tensor(np.asarray(samples_y), dtype=torch.long)
        if len(samples_y) != len(samples):
            raise SampleMismatch(f"{source}: {len(samples_y)} labels for {len(samples)} samples")
    cache = cache if cache is not None else FeatureCache()
    if dataset.kind == "image":
        if extractor is None:
            from trilemma.evaluation.features import extractor_for_dataset

            extractor = extractor_for_dataset(dataset)
        result = evaluate_images(samples, samples_y, dataset, extractor, reference, n_real,
                                 seed, cache, copying)
    elif dataset.kind == "table":
        from trilemma.evaluation.tables import evaluate_table

        result = evaluate_table(samples, dataset, reference, seed, copying)
    else:
        result = evaluate_points(samples, dataset, reference, n_real, seed, copying)
    caller = dict(provenance)
    sampling_seed = caller.pop("seed", None)
    result["provenance"] = {
        "sampler": None,
        "nfe": None,
        **caller,
        **result["provenance"],
        "data": dataset.info.get("spec", dataset.name),
        "seed": sampling_seed,
        "evaluation_seed": int(seed),
        "n_generated": len(samples),
    }
    return result
