"""Quality against network evaluations: an iterative model's Fréchet distance and sampling speed
for each of its samplers and step counts, every point drawn with the same seed and scored against the
same real reference, so that the rows differ only in the sampler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trilemma.data import Dataset, Normalizer
from trilemma.data.mixtures import MIXTURES
from trilemma.errors import UnsupportedRequest
from trilemma.evaluation.inputs import builtin_name, check_samples
from trilemma.evaluation.reference import (
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    RAW_COORDINATES,
    Reference,
    reference_set,
)
from trilemma.metrics.features import (
    FeatureCache,
    FeatureExtractor,
    cached_features,
    frechet_name,
)
from trilemma.metrics.frechet import fid
from trilemma.metrics.kernel import kid
from trilemma.metrics.modes import mode_statistics_for

DDPM_EVALUATION_BUDGET = 100_000  # network evaluations (steps × n) one DDPM point may cost
FAST_STEPS = (5, 10, 20, 50)  # any sampler but ancestral DDPM


def default_nfe_steps(
    n: int, ddpm_budget: int = DDPM_EVALUATION_BUDGET
) -> dict[str, tuple[int, ...]]:
    """Step counts per sampler for an FD-against-NFE curve affordable on a 2-core CPU.

    Any sampler at 5, 10, 20 and 50 steps (`FAST_STEPS`); ancestral DDPM, which needs
    hundreds, at 100, 250 and 1000 only where steps × n stays within `ddpm_budget` network
    evaluations (all three for n ≤ 100, only 100 steps for n ≤ 1000, none above).
    """
    return {
        "ddim": FAST_STEPS,
        "dpm-solver++": FAST_STEPS,
        "ddpm": tuple(s for s in (100, 250, 1000) if s * n <= ddpm_budget),
    }


def _plan(samplers: Sequence[str], steps: Mapping[str, Sequence[int]] | Sequence[int] | None,
          n: int) -> dict[str, tuple[int, ...]]:
    if isinstance(steps, Mapping):
        return {s: tuple(steps.get(s, ())) for s in samplers}
    if steps is not None:
        return {s: tuple(steps) for s in samplers}
    defaults = default_nfe_steps(n)
    return {s: defaults.get(s, FAST_STEPS) for s in samplers}


def fid_against_nfe(
    family: Any,
    normalizer: Normalizer,
    dataset: Dataset,
    samplers: Sequence[str] | None = None,
    steps: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
    n: int = 500,
    seed: int = 0,
    *,
    extractor: FeatureExtractor | None = None,
    reference: str = "heldout",
    n_real: int | None = None,
    batch_size: int = 500,
    cache: FeatureCache | None = None,
    clock: str = "wall",
) -> list[dict[str, Any]]:
    """Fréchet distance and sampling speed of an iterative model for each sampler and step count.

    `samplers`: some of the family's own (`Family.samplers`), all of them by default. `clock`:
    what samples/s counts, wall seconds or this process's CPU seconds ("cpu").
    For every (sampler, steps), n samples are drawn with the same `seed` and scored with the
    same extractor against the same real reference (features computed once), so the rows
    differ only in the sampler. `steps` maps sampler → step counts, or gives one list for all
    samplers; by default `default_nfe_steps(n)`. Rows hold sampler, steps, nfe, the FD (under
    ``fid`` and its name), KID, samples/s and the provenance of the numbers. For points the
    FD is on raw coordinates, and a built-in mixture adds modes covered and high-quality
    fraction.
    """
    if not family.samplers:
        raise UnsupportedRequest(f"the {family.name} family samples in one pass; an FD-against-NFE "
                                 "curve needs a family with a choice of samplers and steps")
    samplers = tuple(family.samplers if samplers is None else samplers)
    unknown = [s for s in samplers if s not in family.samplers]
    if unknown:
        raise UnsupportedRequest(f"the {family.name} family has no sampler {', '.join(unknown)} "
                                 f"(its samplers: {', '.join(family.samplers)})")
    from trilemma.sampling import generate

    plan = _plan(samplers, steps, n)
    cache = cache if cache is not None else FeatureCache()
    if dataset.kind == "image" and extractor is None:
        from trilemma.evaluation.features import extractor_for_dataset

        extractor = extractor_for_dataset(dataset)
    real = reference_set(dataset, reference, n_real, seed,
                         extractor if dataset.kind == "image" else None, cache)
    mixture = builtin_name(dataset) if dataset.name in MIXTURES else None
    rows = []
    for sampler in samplers:
        for count in plan[sampler]:
            samples = generate(family, normalizer, n, seed=seed, batch_size=batch_size,
                               sampler=sampler, steps=int(count))
            row = {"sampler": sampler, "steps": int(count), "nfe": int(samples.nfe),
                   **_scores(samples.x, dataset, real, extractor, cache, seed,
                             f"{sampler} at {count} steps"),
                   "samples_per_s": samples.rate(clock), "speed_clock": clock,
                   "seconds": samples.seconds, "cpu_seconds": samples.cpu_seconds,
                   "n_generated": n, "n_real": len(real.x), "reference": reference,
                   "extractor": extractor.name if extractor is not None else RAW_COORDINATES,
                   "extractor_sha256": extractor.weights_sha256 if extractor is not None else None,
                   "seed": seed, "device": str(family.device)}
            if mixture is not None:
                modes = mode_statistics_for(mixture, samples.x)
                row["modes_covered"] = modes["modes_covered"]
                row["high_quality_fraction"] = modes["high_quality_fraction"]
            rows.append(row)
    return rows


def _scores(x: Any, dataset: Dataset, real: Reference, extractor: FeatureExtractor | None,
            cache: FeatureCache, seed: int, source: str) -> dict[str, Any]:
    """One point's FD (under its name and as ``fid``) and KID (images only)."""
    fake = check_samples(x, dataset, source)
    features = cached_features(extractor, fake, cache) if extractor is not None else fake.numpy()
    name = frechet_name(extractor) if extractor is not None else "FD-raw"
    fd = fid(real.features, features)
    kid_mean, kid_std = (kid(real.features, features, KID_SUBSET_SIZE, KID_SUBSETS, seed)
                         if extractor is not None else (None, None))
    return {name: fd, "fid": fd, "fid_name": name, "kid_mean": kid_mean, "kid_std": kid_std}
