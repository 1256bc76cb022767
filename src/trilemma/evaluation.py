"""The one evaluation path: generated samples against real data, every number with its
provenance. The CLI's `trilemma evaluate` and the comparison report both call `evaluate`.

Images are scored in the feature space of one extractor (`trilemma.metrics.features`): the
Fréchet distance named after it, KID beside it (FD is biased at small n, KID is not),
precision / recall / density / coverage, class statistics when the extractor is a domain
classifier, sharpness against the same real images, and memorisation against the training
split. 2-D points of a built-in mixture get the mode-collapse protocol of VEEGAN / PacGAN;
every point set gets PRDC on the raw coordinates. Definitions: METRICS.md and the modules of
`trilemma.metrics`.

Every result records how it was computed (``provenance``): extractor name and weights
sha256, n_real, n_generated, reference split, sampler and network evaluations per sample,
the sampling seed and the evaluation seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trilemma.data import BUILTIN_NAMES, Dataset, Normalizer
from trilemma.data.mixtures import MIXTURES
from trilemma.errors import DataError, UnsupportedRequest
from trilemma.io import as_images, describe_shape
from trilemma.metrics.cas import classification_accuracy_score
from trilemma.metrics.classes import class_histogram, classifier_score
from trilemma.metrics.features import (
    DomainClassifierExtractor,
    FeatureCache,
    FeatureExtractor,
    cached_features,
    extractor_for,
    frechet_name,
)
from trilemma.metrics.frechet import frechet_distance, frechet_statistics
from trilemma.metrics.kernel import kid
from trilemma.metrics.memorisation import memorisation
from trilemma.metrics.modes import mode_statistics_for
from trilemma.metrics.prdc import prdc
from trilemma.metrics.sharpness import laplacian_variance

REFERENCES = ("heldout", "train")
KID_SUBSET_SIZE = 1000  # torch-fidelity's and torchmetrics' defaults
KID_SUBSETS = 100
PRDC_K = 5  # Kynkäänniemi et al. 2019 and Naeem et al. 2020
# A class counts as covered when it holds at least this share of what a uniform spread would
# give it: a 98%-accurate classifier scatters ~2% of the samples over other classes, and at
# min_count = 1 those errors alone would "cover" the classes a collapsed model never makes.
CLASS_COVERAGE_SHARE = 0.1
MIN_SAMPLES = 10  # PRDC needs more than k per set; fewer would say nothing anyway
DEFAULT_N = {"image": 2000, "points": 2500}  # 2,500 is the mode protocol's sample count
RAW_COORDINATES = "raw-coordinates"


class SampleMismatch(DataError):
    """Samples that cannot be compared with the data: wrong shape, kind or type."""


# ----------------------------------------------------------------------------- inputs

def builtin_name(dataset: Dataset) -> str | None:
    """The built-in data set's name (mnist, digits, ring8, grid25), or None for user data.

    A user's file or folder that happens to be called 'mnist' must not be scored as MNIST:
    user data record their path as their source, whose last part is the data set's name.
    """
    source = str(dataset.info.get("source", ""))
    if dataset.name in BUILTIN_NAMES and Path(source).name != dataset.name:
        return dataset.name
    return None


def check_samples(samples_x: Any, dataset: Dataset, source: str = "samples") -> Any:
    """Samples in canonical form: uint8 NCHW tensor for image data, float64 (N, D) for points.

    Images come in any form `trilemma.io.as_images` reads (uint8 or floats in [0, 1], NHW,
    NHWC or NCHW), as every command reads them. Raises `SampleMismatch`, one line that starts
    with `source`, when kind, shape or type differ from the data's.
    """
    is_tensor = isinstance(samples_x, torch.Tensor)
    array = samples_x.detach().cpu() if is_tensor else np.asarray(samples_x)
    data_label = dataset.name
    if dataset.kind == "points":
        if array.ndim != 2:
            shape = "x".join(str(side) for side in array.shape[1:])
            raise SampleMismatch(f"{source}: samples are {shape} arrays but "
                                 f"{data_label} holds {dataset.sample_shape[0]}-D points")
        if array.shape[1] != dataset.sample_shape[0]:
            raise SampleMismatch(f"{source}: samples are {array.shape[1]}-D points but "
                                 f"{data_label} points are {dataset.sample_shape[0]}-D")
        points = torch.as_tensor(np.asarray(array, dtype=np.float64))
        if not torch.isfinite(points).all():
            raise SampleMismatch(f"{source}: samples contain NaN or infinite values")
        if len(points) < MIN_SAMPLES:
            raise SampleMismatch(f"{source}: {len(points)} samples are too few to evaluate "
                                 f"(at least {MIN_SAMPLES})")
        return points
    expected = describe_shape(dataset.sample_shape)
    if array.ndim == 2:
        raise SampleMismatch(f"{source}: samples are {array.shape[1]}-D points but "
                             f"{data_label} images are {expected}")
    try:
        images = as_images(array, source, expected=dataset.sample_shape).tensor()
    except DataError as error:
        raise SampleMismatch(str(error)) from None
    if tuple(images.shape[1:]) != tuple(dataset.sample_shape):
        raise SampleMismatch(f"{source}: samples are {describe_shape(images.shape[1:])} but "
                             f"{data_label} images are {expected}")
    if len(images) < MIN_SAMPLES:
        raise SampleMismatch(f"{source}: {len(images)} samples are too few to evaluate "
                             f"(at least {MIN_SAMPLES})")
    return images


@dataclass
class _Reference:
    """The real images or points generated samples are compared with, and their features."""

    split: str
    x: torch.Tensor  # uint8 NCHW images or float64 (N, D) points
    y: torch.Tensor | None
    features: np.ndarray  # extractor features, or the raw coordinates for points
    available: int  # size of the whole split


def _split(dataset: Dataset, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if split == "heldout":
        return dataset.x_heldout, dataset.y_heldout
    return dataset.x_train, dataset.y_train


def _reference(dataset: Dataset, split: str, n_real: int | None, seed: int,
               extractor: FeatureExtractor | None, cache: FeatureCache | None) -> _Reference:
    if split not in REFERENCES:
        raise UnsupportedRequest(f"unknown reference split '{split}' (known: heldout, train)")
    x, y = _split(dataset, split)
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
    return _Reference(split, x if extractor is not None else x.double(), y, features, available)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def frechet_bias_estimate(reference_features: np.ndarray, n_real: int, n_generated: int) -> float:
    """The Fréchet distance expected between two independent samples, of sizes n_real and
    n_generated, of the Gaussian fitted to `reference_features`: FD's bias at these n.

    Second-order expansion with Σ's eigenvalues λ: (1/n_real + 1/n_generated) ·
    [1.25 tr Σ + Σᵢⱼ λᵢλⱼ / (√λᵢ + √λⱼ)²]. For Σ = I in d dimensions that is
    d(d + 5)/4 · (1/n_real + 1/n_generated), the d²/2n of METRICS.md at n_real = n_generated.
    It approximates Gaussian features; real features only roughly.
    """
    _, sigma = frechet_statistics(reference_features)
    eigenvalues = np.clip(np.linalg.eigvalsh((sigma + sigma.T) / 2), 0.0, None)
    roots = np.sqrt(eigenvalues)
    denominator = (roots[:, None] + roots[None, :]) ** 2
    pair = np.divide(np.outer(eigenvalues, eigenvalues), denominator,
                     out=np.zeros_like(denominator), where=denominator > 0)
    return float((1 / n_real + 1 / n_generated) * (1.25 * eigenvalues.sum() + pair.sum()))


def _fd(real: np.ndarray, fake: np.ndarray) -> float:
    return frechet_distance(*frechet_statistics(real), *frechet_statistics(fake))


# ----------------------------------------------------------------------------- the evaluation

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
) -> dict[str, Any]:
    """Every metric of `samples_x` against `dataset`, with the provenance of each number.

    `samples_x`: images in any form `check_samples` reads, or float (N, D) points, of the
    data's shape. `samples_y`: the labels a conditional model was asked for, if any.
    `extractor`: image features (default: `extractor_for` the data, i.e. the shipped domain
    classifier of a built-in set). `n_real`: real reference images, a seeded subset of the
    `reference` split ("heldout", the default, or "train"); all of it when None. `seed`
    drives every random choice of the evaluation (that subset, KID's subsets). `provenance`:
    how the samples were made, e.g. ``{"sampler": "ddim", "steps": 20, "nfe": 20, "seed": 0,
    "run": {...}}``; its ``seed`` is recorded as the sampling seed. `cache` keeps features
    across calls.

    Returns ``{"kind", "metrics", "details", "provenance", "notes"}``: ``metrics`` holds the
    scalar numbers (for images ``fid`` with ``fid_name``, also under that name, e.g.
    ``"FD-lenet-mnist"``), ``details`` histograms and per-part results. Beside FD:
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
            extractor = extractor_for(builtin_name(dataset) or "", dataset.sample_shape)
        result = _evaluate_images(samples, samples_y, dataset, extractor, reference, n_real,
                                  seed, cache)
    else:
        result = _evaluate_points(samples, dataset, reference, n_real, seed)
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


def _evaluate_images(fake: torch.Tensor, fake_y: torch.Tensor | None, dataset: Dataset,
                     extractor: FeatureExtractor, split: str, n_real: int | None, seed: int,
                     cache: FeatureCache) -> dict[str, Any]:
    real = _reference(dataset, split, n_real, seed, extractor, cache)
    fake_features = cached_features(extractor, fake, cache)
    n, m = len(real.x), len(fake)
    name = frechet_name(extractor)
    fd = _fd(real.features, fake_features)
    kid_mean, kid_std = kid(real.features, fake_features, KID_SUBSET_SIZE, KID_SUBSETS, seed)
    metrics: dict[str, Any] = {
        name: fd,
        "fid": fd,
        "fid_name": name,
        "fid_bias_estimate": frechet_bias_estimate(real.features, n, m),
    }
    # Real images of the other split against the same reference: the score of a model that
    # draws from the data distribution itself, at (nearly) the same n.
    other_split = "train" if split == "heldout" else "heldout"
    other_x, _ = _split(dataset, other_split)
    floor_n = min(m, len(other_x))
    floor_index = np.random.default_rng(seed + 1).choice(len(other_x), floor_n, replace=False)
    floor_features = cached_features(extractor, other_x, cache)[np.sort(floor_index)]
    metrics["fid_real_floor"] = _fd(real.features, floor_features)
    metrics.update(kid_mean=kid_mean, kid_std=kid_std)
    metrics["kid_subset_size"] = min(KID_SUBSET_SIZE, n, m)
    metrics.update(prdc(real.features, fake_features, k=PRDC_K))
    details: dict[str, Any] = {}

    min_count = None
    if isinstance(extractor, DomainClassifierExtractor):
        classes = extractor.num_classes
        fake_p = extractor.probabilities(fake)
        real_p = extractor.probabilities(real.x)
        real_labels = real.y if real.y is not None else real_p.argmax(axis=1)
        min_count = max(1, math.ceil(CLASS_COVERAGE_SHARE * m / classes))
        histogram = class_histogram(fake_p, classes, real_labels=real_labels, min_count=min_count)
        metrics.update(
            classes_covered=histogram["classes_covered"],
            num_classes=classes,
            class_kl_to_real=histogram["kl_to_real"],
            classifier_score=classifier_score(fake_p),
            classifier_score_real=classifier_score(real_p),
        )
        details["class_histogram"] = histogram["histogram"]
        details["real_class_histogram"] = class_histogram(real_labels, classes)["histogram"]
        if fake_y is not None:
            # A conditional model is asked for a class; the classifier says whether it got one.
            metrics["label_agreement"] = float((fake_p.argmax(axis=1) == fake_y.numpy()).mean())
    if fake_y is not None and dataset.y_heldout is not None and dataset.num_classes:
        # CAS, beside the same classifier trained on as many real training images.
        real_n = min(m, len(dataset.x_train))
        real_index = np.sort(np.random.default_rng(seed).choice(len(dataset.x_train), real_n, replace=False))
        metrics["cas"] = classification_accuracy_score(
            fake, fake_y, dataset.x_heldout, dataset.y_heldout, dataset.num_classes, seed=seed)
        metrics["cas_real_baseline"] = classification_accuracy_score(
            dataset.x_train[real_index], dataset.y_train[real_index], dataset.x_heldout,
            dataset.y_heldout, dataset.num_classes, seed=seed)

    real_sharpness = float(laplacian_variance(real.x).mean())
    fake_sharpness = float(laplacian_variance(fake).mean())
    metrics["relative_sharpness"] = fake_sharpness / real_sharpness if real_sharpness else None
    details["laplacian_variance"] = {"real": real_sharpness, "generated": fake_sharpness}

    train_features = cached_features(extractor, dataset.x_train, cache)
    heldout_features = cached_features(extractor, dataset.x_heldout, cache)
    in_features = memorisation(train_features, heldout_features, fake_features)

    def pixels(x: torch.Tensor) -> np.ndarray:
        return x.reshape(len(x), -1).numpy().astype(np.float32) / 255.0

    in_pixels = memorisation(pixels(dataset.x_train), pixels(dataset.x_heldout), pixels(fake))
    metrics.update(
        memorisation_ratio_features=in_features["median_ratio"],
        near_copy_fraction_features=in_features["near_copy_fraction"],
        memorisation_ratio_pixels=in_pixels["median_ratio"],
        near_copy_fraction_pixels=in_pixels["near_copy_fraction"],
    )
    details["memorisation_features"] = in_features
    details["memorisation_pixels"] = in_pixels

    notes = [
        (f"{name} is biased upwards at small n, so it is reported with n and with KID beside "
         f"it: two samples of the reference's own Gaussian, of {n} and {m}, would score about "
         f"{metrics['fid_bias_estimate']:.3g}; real {other_split} images score "
         f"{metrics['fid_real_floor']:.3g} (n = {floor_n})."),
        extractor.limits,
    ]
    provenance = {
        "extractor": extractor.name,
        "extractor_sha256": extractor.weights_sha256,
        "feature_dim": extractor.dim,
        "reference": split,
        "n_real": n,
        "reference_available": real.available,
        "n_train": len(dataset.x_train),
        "n_heldout": len(dataset.x_heldout),
        "floor_split": other_split,
        "floor_n": floor_n,
        "kid_subsets": KID_SUBSETS,
        "classes_min_count": min_count,
        "prdc_k": PRDC_K,
    }
    return {"kind": "image", "metrics": metrics, "details": details,
            "provenance": provenance, "notes": notes}


def _evaluate_points(fake: torch.Tensor, dataset: Dataset, split: str, n_real: int | None,
                     seed: int) -> dict[str, Any]:
    real = _reference(dataset, split, n_real, seed, None, None)
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
    else:
        metrics["FD-raw"] = _fd(real.features, fake_points)
        metrics["fid"] = metrics["FD-raw"]
        metrics["fid_name"] = "FD-raw"
        metrics["fid_bias_estimate"] = frechet_bias_estimate(real.features, len(real.x),
                                                             len(fake_points))
    metrics.update(prdc(real.features, fake_points, k=PRDC_K))
    in_coordinates = memorisation(dataset.x_train.numpy(), dataset.x_heldout.numpy(), fake_points)
    metrics["memorisation_ratio"] = in_coordinates["median_ratio"]
    metrics["near_copy_fraction"] = in_coordinates["near_copy_fraction"]
    details["memorisation"] = in_coordinates
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


# ----------------------------------------------------------------------------- quality against NFE

DDPM_EVALUATION_BUDGET = 100_000  # network evaluations (steps × n) one DDPM point may cost


def default_nfe_steps(
    n: int, ddpm_budget: int = DDPM_EVALUATION_BUDGET
) -> dict[str, tuple[int, ...]]:
    """Step counts per sampler for an FD-against-NFE curve affordable on a 2-core CPU.

    DDIM and DPM-Solver++ at 5, 10, 20 and 50 steps; ancestral DDPM at 100, 250 and 1000
    only where steps × n stays within `ddpm_budget` network evaluations (all three for
    n ≤ 100, only 100 steps for n ≤ 1000, none above).
    """
    fast = (5, 10, 20, 50)
    return {
        "ddim": fast,
        "dpm-solver++": fast,
        "ddpm": tuple(s for s in (100, 250, 1000) if s * n <= ddpm_budget),
    }


def fid_against_nfe(
    family: Any,
    normalizer: Normalizer,
    dataset: Dataset,
    samplers: Sequence[str] = ("ddpm", "ddim", "dpm-solver++"),
    steps: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
    n: int = 500,
    seed: int = 0,
    *,
    extractor: FeatureExtractor | None = None,
    reference: str = "heldout",
    n_real: int | None = None,
    batch_size: int = 500,
    cache: FeatureCache | None = None,
) -> list[dict[str, Any]]:
    """Fréchet distance and sampling speed of a diffusion model for each sampler and step count.

    For every (sampler, steps), n samples are drawn with the same `seed` and scored with the
    same extractor against the same real reference (features computed once), so the rows
    differ only in the sampler. `steps` maps sampler → step counts, or gives one list for all
    samplers; by default `default_nfe_steps(n)`. Rows hold sampler, steps, nfe, the FD (under
    ``fid`` and its name), KID, samples/s and the provenance of the numbers. For points the
    FD is on raw coordinates, and a built-in mixture adds modes covered and high-quality
    fraction.
    """
    if getattr(family, "default_sampler", None) is None:
        raise UnsupportedRequest(f"the {family.name} family has no choice of sampler; an "
                                 "FD-against-NFE curve needs a diffusion model")
    from trilemma.sampling import generate

    if isinstance(steps, Mapping):
        plan = {s: tuple(steps.get(s, ())) for s in samplers}
    elif steps is not None:
        plan = {s: tuple(steps) for s in samplers}
    else:
        defaults = default_nfe_steps(n)
        plan = {s: defaults.get(s, ()) for s in samplers}
    cache = cache if cache is not None else FeatureCache()
    if dataset.kind == "image" and extractor is None:
        extractor = extractor_for(builtin_name(dataset) or "", dataset.sample_shape)
    real = _reference(dataset, reference, n_real, seed,
                      extractor if dataset.kind == "image" else None, cache)
    name = frechet_name(extractor) if extractor is not None else "FD-raw"
    mixture = builtin_name(dataset) if dataset.name in MIXTURES else None
    rows = []
    for sampler in samplers:
        for count in plan[sampler]:
            samples = generate(family, normalizer, n, seed=seed, batch_size=batch_size,
                               sampler=sampler, steps=int(count))
            fake = check_samples(samples.x, dataset, f"{sampler} at {count} steps")
            features = (cached_features(extractor, fake, cache) if extractor is not None
                        else fake.numpy())
            fd = _fd(real.features, features)
            kid_mean, kid_std = (kid(real.features, features, KID_SUBSET_SIZE, KID_SUBSETS, seed)
                                 if extractor is not None else (None, None))
            row = {
                "sampler": sampler,
                "steps": int(count),
                "nfe": int(samples.nfe),
                name: fd,
                "fid": fd,
                "fid_name": name,
                "kid_mean": kid_mean,
                "kid_std": kid_std,
                "samples_per_s": samples.samples_per_second,
                "seconds": samples.seconds,
                "n_generated": n,
                "n_real": len(real.x),
                "reference": reference,
                "extractor": extractor.name if extractor is not None else RAW_COORDINATES,
                "extractor_sha256": extractor.weights_sha256 if extractor is not None else None,
                "seed": seed,
                "device": str(family.device),
            }
            if mixture is not None:
                modes = mode_statistics_for(mixture, samples.x)
                row["modes_covered"] = modes["modes_covered"]
                row["high_quality_fraction"] = modes["high_quality_fraction"]
            rows.append(row)
    return rows
