"""Sanity ladders: what the features in use can see, shown on the user's own held-out images.

A figure computed in some feature space means something only if that space sees the faults
the figure is meant to catch, on this data. Each ladder degrades real held-out images one rung
at a time and scores every rung against the same reference, a seeded subset of the training
split of the same size, with the evaluation's own functions:

- ``blur``: Gaussian blur of σ = 0.5, 1 and 2 pixels. FD and KID must rise, precision and
  density fall.
- ``noise``: additive Gaussian noise of 8, 16 and 32 grey levels (of 255). The same.
- ``classes``: a quarter, then half of the classes dropped (k-means clusters of the held-out
  features when the data has no labels), every rung of the same size. FD and KID must rise,
  recall and coverage fall.
- ``copies``: fresh held-out images, then training images with noise of 2 grey levels, against
  the other half of the held-out split. Only the memorisation figures should flag them: C_T
  must fall (to ≤ -3, while fresh images stay within ±2), AuthPct fall, and the share of
  near-copies rise.

A figure "moves monotonically" when each rung moves it the expected way: strictly for FD and
KID; for the shares (precision, recall, coverage, density, AuthPct, near-copies), estimated from
n images, no step back by more than one binomial standard error, sqrt(p(1 - p) / n), and the last
rung beyond the first by more than two. A figure that fails any ladder is *untrustworthy* on this data: the report
marks it and the recommendation leaves it out. Figures are named by their results columns
(`trilemma.metrics.catalogue`): ``fid`` is the FD of the extractor in use, ``kid`` KID's mean.
"""

from __future__ import annotations

import math
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from trilemma.data import Dataset
from trilemma.data.streaming import release_pages
from trilemma.evaluation.reference import KID_SUBSET_SIZE, KID_SUBSETS, PRDC_K
from trilemma.metrics.copying import authpct, c_t
from trilemma.metrics.features import FeatureCache, FeatureExtractor, cached_features
from trilemma.metrics.features.degrade import blur_uint8, noise_uint8
from trilemma.metrics.frechet import fid
from trilemma.metrics.kernel import kid
from trilemma.metrics.memorisation import memorisation
from trilemma.metrics.prdc import prdc

BLUR_SIGMAS = (0.5, 1.0, 2.0)
NOISE_LEVELS = (8.0, 16.0, 32.0)  # grey levels of 255
COPY_NOISE = 2.0
MAX_IMAGES = 1000  # held-out images per rung (and reference images)
MIN_IMAGES = 50  # fewer held-out images, and a rung's figures are noise: no ladders
CLUSTERS = 8  # stand-in classes for unlabelled data
C_T_COPYING, C_T_FRESH = -3.0, 2.0

FIDELITY = {"fid": "up", "kid": "up", "precision": "down", "density": "down"}
DIVERSITY = {"fid": "up", "kid": "up", "recall": "down", "coverage": "down"}
COPYING = {"c_t": "down", "authpct": "down", "near_copy_fraction": "up"}
UNBOUNDED = {"fid", "kid"}


def _take(x: torch.Tensor, count: int, rng: np.random.Generator) -> tuple[torch.Tensor, np.ndarray]:
    index = np.sort(rng.choice(len(x), min(count, len(x)), replace=False))
    return x[torch.from_numpy(index)].clone(), index


def _judge(values: list[float], direction: str, strict: bool, n: int) -> bool:
    """Whether `values` move monotonically in `direction`: every step strictly for FD and KID; for a
    share estimated from n images, no step back by more than its standard error and the last rung
    beyond the first by more than two (a share that does not move cannot see the fault)."""
    if any(not math.isfinite(v) for v in values):
        return False
    sign = 1.0 if direction == "up" else -1.0
    steps = [sign * (b - a) for a, b in pairwise(values)]
    if strict:
        return all(s > 0 for s in steps)

    def error(a: float, b: float) -> float:
        p = min(1.0, max(0.0, (a + b) / 2))
        return max(math.sqrt(p * (1 - p) / n), 1.0 / n)

    back = all(s >= -error(a, b) for s, a, b in zip(steps, values, values[1:]))
    return back and sign * (values[-1] - values[0]) > 2 * error(values[0], values[-1])


def _ladder(name: str, what: str, rungs: list[str], figures: dict[str, list[float]],
            expected: dict[str, str], n: int) -> dict[str, Any]:
    scale = {"authpct": 100.0}  # a percentage
    passed = {k: _judge([v / scale.get(k, 1.0) for v in figures[k]], d, k in UNBOUNDED, n)
              for k, d in expected.items()}
    return {"name": name, "what": what, "rungs": rungs, "figures": figures, "expected": expected,
            "passed": passed}


def _scores(reference: np.ndarray, rungs: list[np.ndarray], keys: dict[str, str], seed: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in keys}
    for features in rungs:
        row = {"fid": fid(reference, features),
               "kid": kid(reference, features, KID_SUBSET_SIZE, KID_SUBSETS, seed)[0],
               **prdc(reference, features, k=PRDC_K)}
        for k in keys:
            out[k].append(float(row[k]))
    return out


def sanity_ladders(dataset: Dataset, extractor: FeatureExtractor, cache: FeatureCache | None = None,
                   seed: int = 0, max_images: int = MAX_IMAGES) -> dict[str, Any]:
    """The four ladders of the module docstring for `dataset`'s images in `extractor`'s features."""
    rng = np.random.default_rng(seed)
    n = min(max_images, len(dataset.x_heldout), len(dataset.x_train))
    if n < MIN_IMAGES:
        return {"extractor": extractor.name, "extractor_sha256": extractor.weights_sha256, "n": n,
                "reference": "train", "seed": seed, "ladders": [], "untrustworthy": [],
                "skipped": f"{n} held-out images: at least {MIN_IMAGES} are needed to climb a ladder, so "
                           "nothing shows what the features can see on this data"}
    heldout, held_index = _take(dataset.x_heldout, n, rng)
    reference_x, _ = _take(dataset.x_train, n, rng)
    reference = cached_features(extractor, reference_x, cache)
    base = cached_features(extractor, heldout, cache)

    def features(x: torch.Tensor) -> np.ndarray:
        return cached_features(extractor, x, cache)

    blurred = [features(blur_uint8(heldout, s)) for s in BLUR_SIGMAS]
    noisy = [features(noise_uint8(heldout, level, seed + i)) for i, level in enumerate(NOISE_LEVELS)]
    ladders = [
        _ladder("blur", "Gaussian blur", ["none"] + [f"σ {s:g} px" for s in BLUR_SIGMAS],
                _scores(reference, [base, *blurred], FIDELITY, seed), FIDELITY, n),
        _ladder("noise", "additive Gaussian noise", ["none"] + [f"{v:g} grey levels" for v in NOISE_LEVELS],
                _scores(reference, [base, *noisy], FIDELITY, seed), FIDELITY, n),
    ]
    classes = _classes_ladder(dataset, held_index, base, reference, rng, seed)
    if classes is not None:
        ladders.append(classes)
    ladders.append(_copies_ladder(dataset, extractor, cache, base, rng, seed))
    release_pages(dataset.x_train)
    release_pages(dataset.x_heldout)
    untrustworthy = sorted({k for ladder in ladders for k, ok in ladder["passed"].items() if not ok})
    return {"extractor": extractor.name, "extractor_sha256": extractor.weights_sha256, "n": n,
            "reference": "train", "seed": seed, "ladders": ladders, "untrustworthy": untrustworthy}


def _groups(dataset: Dataset, held_index: np.ndarray, base: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """Each chosen held-out image's class, or its k-means cluster when there are no labels."""
    if dataset.y_heldout is not None and dataset.num_classes >= 2:
        return dataset.y_heldout.numpy()[held_index], "classes"
    from sklearn.cluster import KMeans

    k = min(CLUSTERS, len(base) // 20)
    if k < 2:
        return np.zeros(len(base), dtype=np.int64), "k-means clusters"
    return KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(base), "k-means clusters"


def _classes_ladder(dataset: Dataset, held_index: np.ndarray, base: np.ndarray, reference: np.ndarray,
                    rng: np.random.Generator, seed: int) -> dict[str, Any] | None:
    groups, kind = _groups(dataset, held_index, base, seed)
    present = [int(g) for g in np.unique(groups)]
    if len(present) < 2:
        return None
    order = rng.permutation(present)
    drops = sorted({0, len(present) // 4, len(present) // 2})
    kept = [np.isin(groups, order[d:]) for d in drops]
    size = int(kept[-1].sum())
    if size < MIN_IMAGES // 2:
        return None  # too few images of the classes kept
    rungs = [np.sort(rng.choice(np.flatnonzero(mask), size, replace=False)) for mask in kept]
    names = ["none"] + [f"{d} of {len(present)} {kind} dropped" for d in drops[1:]]
    return _ladder("classes", f"{kind} dropped", names,
                   _scores(reference, [base[r] for r in rungs], DIVERSITY, seed), DIVERSITY, size)


def _copies_ladder(dataset: Dataset, extractor: FeatureExtractor, cache: FeatureCache | None, base: np.ndarray,
                   rng: np.random.Generator, seed: int) -> dict[str, Any]:
    order = rng.permutation(len(base))  # a split may be stored in class order
    half = len(base) // 2
    control, fresh = base[order[:half]], base[order[half:]]
    copies_x, _ = _take(dataset.x_train, len(fresh), rng)
    copies = cached_features(extractor, noise_uint8(copies_x, COPY_NOISE, seed + 10), cache)
    train = cached_features(extractor, dataset.x_train, cache)
    figures: dict[str, list[float]] = {k: [] for k in COPYING}
    for rung in (fresh, copies):
        figures["c_t"].append(float(c_t(train, control, rung)["c_t"]))
        figures["authpct"].append(float(authpct(train, rung)))
        figures["near_copy_fraction"].append(float(memorisation(train, control, rung)["near_copy_fraction"]))
    ladder = _ladder("copies", "near-copies of training images", ["fresh held-out images", f"training images + noise {COPY_NOISE:g}"],
                     figures, COPYING, len(fresh))
    c_t_fresh, c_t_copies = figures["c_t"]
    ladder["passed"]["c_t"] = bool(abs(c_t_fresh) < C_T_FRESH and c_t_copies <= C_T_COPYING)
    return ladder
