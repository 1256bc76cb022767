"""Generated images against real ones, in the feature space of one extractor: the Fréchet
distance with its bias and its real-data floor, KID, precision / recall / density / coverage,
class statistics and CAS when there are classes, sharpness, and memorisation in features and
in pixels. Every number comes from the reference-tested functions of `trilemma.metrics`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trilemma.data import Dataset
from trilemma.data.streaming import release_pages
from trilemma.evaluation.reference import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    PRDC_K,
    Reference,
    reference_set,
    split_of,
)
from trilemma.metrics.cas import classification_accuracy_score
from trilemma.metrics.classes import class_histogram, classifier_score, confident_fraction
from trilemma.metrics.copying import copying_figures
from trilemma.metrics.features import (
    DomainClassifierExtractor,
    FeatureCache,
    FeatureExtractor,
    StackedDigitsExtractor,
    cached_features,
    frechet_name,
)
from trilemma.metrics.frechet import fid, frechet_bias_estimate
from trilemma.metrics.kernel import kid
from trilemma.metrics.memorisation import memorisation
from trilemma.metrics.modes import categorical_mode_statistics, finite_sample_ceiling
from trilemma.metrics.prdc import prdc
from trilemma.metrics.sharpness import sharpness_against_real
from trilemma.metrics.vendi import vendi_score

STACKED_MODES = 1_000
# A class counts as covered when it holds at least this share of what a uniform spread would
# give it: a 98%-accurate classifier scatters ~2% of the samples over other classes, and at
# min_count = 1 those errors alone would "cover" the classes a collapsed model never makes.
CLASS_COVERAGE_SHARE = 0.1


def evaluate_images(fake: torch.Tensor, fake_y: torch.Tensor | None, dataset: Dataset,
                    extractor: FeatureExtractor, split: str, n_real: int | None, seed: int,
                    cache: FeatureCache, copying: bool = True) -> dict[str, Any]:
    """`evaluate`'s result for uint8 NCHW images `fake` (and the labels asked for, if any)."""
    real = reference_set(dataset, split, n_real, seed, extractor, cache)
    fake_features = cached_features(extractor, fake, cache)
    n, m = len(real.x), len(fake)
    name = frechet_name(extractor)
    metrics, floor = _distances(real, fake_features, dataset, extractor, cache, name, seed)
    details: dict[str, Any] = {}
    metrics.update(vendi=_vendi(fake_features), vendi_real=_vendi(real.features))
    min_count = None
    if isinstance(extractor, DomainClassifierExtractor):
        min_count = max(1, math.ceil(CLASS_COVERAGE_SHARE * m / extractor.num_classes))
        metrics.update(_classes(extractor, real, fake, fake_features, fake_y, min_count, details))
    if isinstance(extractor, StackedDigitsExtractor):
        metrics.update(_stacked_modes(extractor, real, fake, details))
    if fake_y is not None and dataset.y_heldout is not None and dataset.num_classes:
        metrics.update(_classification_accuracy(dataset, fake, fake_y, seed))
    sharpness = sharpness_against_real(real.x, fake)
    metrics["relative_sharpness"] = sharpness["relative"]
    details["laplacian_variance"] = {"real": sharpness["real"], "generated": sharpness["generated"]}
    metrics.update(_memorisation(dataset, extractor, cache, fake, fake_features, details, copying))

    notes = [
        (f"{name} is biased upwards at small n, so it is reported with n and with KID beside "
         f"it: two samples of the reference's own Gaussian, of {n} and {m}, would score about "
         f"{metrics['fid_bias_estimate']:.3g}; real {floor['split']} images score "
         f"{metrics['fid_real_floor']:.3g} (n = {floor['n']})."),
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
        "floor_split": floor["split"],
        "floor_n": floor["n"],
        "kid_subsets": KID_SUBSETS,
        "classes_min_count": min_count,
        "prdc_k": PRDC_K,
    }
    return {"kind": "image", "metrics": metrics, "details": details,
            "provenance": provenance, "notes": notes}


def _distances(real: Reference, fake_features: np.ndarray, dataset: Dataset,
               extractor: FeatureExtractor, cache: FeatureCache, name: str,
               seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """FD (under its name and as ``fid``) with what a perfect model and real data would score
    beside it, KID and PRDC; and the split and n of that real-data floor."""
    n, m = len(real.x), len(fake_features)
    fd = fid(real.features, fake_features)
    metrics: dict[str, Any] = {
        name: fd,
        "fid": fd,
        "fid_name": name,
        "fid_bias_estimate": frechet_bias_estimate(real.features, n, m),
    }
    # Real images of the other split against the same reference: the score of a model that
    # draws from the data distribution itself, at (nearly) the same n.
    other_split = "train" if real.split == "heldout" else "heldout"
    other_x, _ = split_of(dataset, other_split)
    floor_n = min(m, len(other_x))
    floor_index = np.random.default_rng(seed + 1).choice(len(other_x), floor_n, replace=False)
    floor_features = cached_features(extractor, other_x, cache)[np.sort(floor_index)]
    metrics["fid_real_floor"] = fid(real.features, floor_features)
    kid_mean, kid_std = kid(real.features, fake_features, KID_SUBSET_SIZE, KID_SUBSETS, seed)
    metrics.update(kid_mean=kid_mean, kid_std=kid_std)
    metrics["kid_subset_size"] = min(KID_SUBSET_SIZE, n, m)
    metrics.update(prdc(real.features, fake_features, k=PRDC_K))
    return metrics, {"split": other_split, "n": floor_n}


def _classes(extractor: DomainClassifierExtractor, real: Reference, fake: torch.Tensor,
             fake_features: np.ndarray, fake_y: torch.Tensor | None, min_count: int,
             details: dict[str, Any]) -> dict[str, Any]:
    """What the domain classifier sees: classes covered, KL to the real class histogram, the
    classifier score, and whether a conditional model made the classes it was asked for."""
    classes = extractor.num_classes
    fake_p = extractor.probabilities(fake)
    real_p = extractor.probabilities(real.x)
    real_labels = real.y if real.y is not None else real_p.argmax(axis=1)
    histogram = class_histogram(fake_p, classes, real_labels=real_labels, min_count=min_count)
    metrics = {
        "classes_covered": histogram["classes_covered"],
        "num_classes": classes,
        "class_kl_to_real": histogram["kl_to_real"],
        "classifier_score": classifier_score(fake_p),
        "classifier_score_real": classifier_score(real_p),
        "confident_fraction": confident_fraction(fake_p),
        "confident_fraction_real": confident_fraction(real_p),
    }
    details["class_histogram"] = histogram["histogram"]
    # Diversity within each class (by the class asked for, else the classifier's reading).
    predicted = fake_p.argmax(axis=1) if fake_y is None else fake_y.numpy()
    details["vendi_per_class"] = {c: v for c in range(classes)
                                  if (v := _vendi(fake_features[predicted == c])) is not None}
    details["real_class_histogram"] = class_histogram(real_labels, classes)["histogram"]
    if fake_y is not None:
        # A conditional model is asked for a class; the classifier says whether it got one.
        metrics["label_agreement"] = float((fake_p.argmax(axis=1) == fake_y.numpy()).mean())
    return metrics


def _vendi(features: np.ndarray) -> float | None:
    """The Vendi score of the feature rows that have a direction (an all-zero row, which a
    ReLU feature layer can give a blank image, has no cosine similarity); None under 2 rows."""
    rows = features[np.linalg.norm(features, axis=1) > 0]
    return vendi_score(rows) if len(rows) >= 2 else None


def _classification_accuracy(dataset: Dataset, fake: torch.Tensor, fake_y: torch.Tensor,
                             seed: int) -> dict[str, float]:
    """CAS, beside the same classifier trained on as many real training images."""
    m = len(fake)
    real_n = min(m, len(dataset.x_train))
    real_index = np.sort(np.random.default_rng(seed).choice(len(dataset.x_train), real_n,
                                                            replace=False))
    return {
        "cas": classification_accuracy_score(
            fake, fake_y, dataset.x_heldout, dataset.y_heldout, dataset.num_classes, seed=seed),
        "cas_real_baseline": classification_accuracy_score(
            dataset.x_train[real_index], dataset.y_train[real_index], dataset.x_heldout,
            dataset.y_heldout, dataset.num_classes, seed=seed),
    }


def _stacked_modes(extractor: StackedDigitsExtractor, real: Reference, fake: torch.Tensor,
                   details: dict[str, Any]) -> dict[str, float]:
    """Stacked MNIST's 1,000 modes as the classifier reads them, with what a perfect model's
    as many samples would show and what the real reference images do."""
    found = categorical_mode_statistics(extractor.modes(fake), STACKED_MODES)
    ceiling = finite_sample_ceiling(len(fake), STACKED_MODES)
    details["stacked_modes"] = {**ceiling, "real": categorical_mode_statistics(extractor.modes(real.x), STACKED_MODES)}
    return {"modes_covered": found["modes_covered"], "num_modes": STACKED_MODES, "reverse_kl_modes": found["reverse_kl"],
            "modes_floor": ceiling["modes_floor"], "kl_floor": ceiling["kl_floor"]}


def _memorisation(dataset: Dataset, extractor: FeatureExtractor, cache: FeatureCache,
                  fake: torch.Tensor, fake_features: np.ndarray,
                  details: dict[str, Any], copying: bool) -> dict[str, float]:
    """Nearest-training-image distances against held-out images', in features and in pixels;
    with `copying`, AuthPct, C_T and the generalisation gap in features."""
    train_features = cached_features(extractor, dataset.x_train, cache)
    heldout_features = cached_features(extractor, dataset.x_heldout, cache)
    in_features = memorisation(train_features, heldout_features, fake_features)
    copied = copying_figures(train_features, heldout_features, fake_features, details) if copying else {}

    def pixels(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)  # uint8 rows, converted a block at a time (a view of a streamed set)

    in_pixels = memorisation(pixels(dataset.x_train), pixels(dataset.x_heldout), pixels(fake), uint8_scale=1 / 255)
    for part in (dataset.x_train, dataset.x_heldout):
        release_pages(part)  # a streamed set's pages, mapped by the reads above (else nothing)
    details["memorisation_features"] = in_features
    details["memorisation_pixels"] = in_pixels
    return {
        **copied,
        "memorisation_ratio_features": in_features["median_ratio"],
        "near_copy_fraction_features": in_features["near_copy_fraction"],
        "memorisation_ratio_pixels": in_pixels["median_ratio"],
        "near_copy_fraction_pixels": in_pixels["near_copy_fraction"],
    }
