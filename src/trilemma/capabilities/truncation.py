"""The fidelity/diversity knob of each family, swept: precision and recall at each value.

The knob is what the family declares (`FidelityKnob`): the truncation trick ψ for a GAN
(Brock et al. 2019; Kynkäänniemi et al. 2019 measure it with precision and recall, §5), the
prior temperature T for a VAE, the classifier-free guidance weight w for conditional
diffusion (Ho & Salimans 2022). Moving the knob towards its ``sharper`` side should raise
precision (fidelity) and lower recall (diversity); the sweep measures whether it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trilemma.data import Dataset
from trilemma.errors import UnsupportedRequest
from trilemma.families.capabilities import FidelityKnob, Knob
from trilemma.metrics.frechet import frechet_distance, frechet_statistics
from trilemma.metrics.prdc import prdc

PRDC_K = 5


def knob_of(family: Any) -> Knob:
    """The family's declared knob; `UnsupportedRequest` in one line when it has none."""
    knob = family.fidelity_knob() if isinstance(family, FidelityKnob) else None
    if knob is None:
        what = "an unconditional " if not getattr(family, "conditional", True) else "a "
        raise UnsupportedRequest(
            f"{what}{getattr(family, 'name', type(family).__name__)} model has no fidelity/diversity knob"
            + (" (guidance needs a conditional model: train with --conditional)"
               if not getattr(family, "conditional", True) else ""))
    return knob


def _features(dataset: Dataset, extractor: Any, x: Any, cache: Any) -> tuple[np.ndarray, str]:
    from trilemma.evaluation import check_samples
    from trilemma.metrics.features import cached_features

    if dataset.kind == "points":
        return check_samples(x, dataset).numpy(), "raw-coordinates"
    return cached_features(extractor, check_samples(x, dataset), cache), extractor.name


def fidelity_sweep(
    run: Any,
    dataset: Dataset,
    *,
    values: Sequence[float] | None = None,
    n: int = 1000,
    seed: int = 0,
    batch_size: int = 500,
    extractor: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Precision, recall, density, coverage (k = 5) and Fréchet distance of `n` samples of a
    loaded run (`trilemma.sampling.load_run`) at each knob value, against the data's held-out
    split, in the domain classifier's features (raw coordinates for points). Every value uses
    the same sampling seed, so the knob is the only thing that changes.

    Returns ``{"knob", "neutral", "sharper", "rows", "provenance"}``; ``rows`` is one dict per
    value, in the order given: ``value``, ``precision``, ``recall``, ``density``,
    ``coverage``, ``fd``, ``label_agreement`` (conditional runs with a domain classifier, else
    None), ``seconds``. `options` go to sampling (e.g. ``sampler``, ``steps``).
    """
    from trilemma.evaluation.features import extractor_for_dataset
    from trilemma.metrics.features import FeatureCache
    from trilemma.sampling import generate

    family = run.family
    knob = knob_of(family)
    values = list(knob.sweep if values is None else values)
    if not values:
        raise UnsupportedRequest("give at least one knob value")
    if dataset.kind == "image" and extractor is None:
        extractor = extractor_for_dataset(dataset, device=family.device)
    cache = FeatureCache()
    real, extractor_name = _features(dataset, extractor, dataset.x_heldout, cache)
    if n <= PRDC_K or len(real) <= PRDC_K:
        raise UnsupportedRequest(f"the sweep needs more than {PRDC_K} samples and real images")
    real_statistics = frechet_statistics(real)
    rows = []
    for value in values:
        samples = generate(family, run.normalizer, n, seed=seed, batch_size=batch_size,
                           **{**options, knob.name: float(value)})
        fake, _ = _features(dataset, extractor, samples.x, cache)
        row = {"value": float(value), **prdc(real, fake, k=PRDC_K),
               "fd": frechet_distance(*real_statistics, *frechet_statistics(fake)),
               "label_agreement": None, "seconds": samples.seconds}
        if samples.y is not None and hasattr(extractor, "probabilities"):
            # A conditional model: how often the domain classifier reads the class asked for.
            predicted = extractor.probabilities(samples.x).argmax(axis=1)
            row["label_agreement"] = float((predicted == samples.y).mean())
        rows.append(row)
    return {
        "knob": knob.name,
        "neutral": knob.neutral,
        "sharper": knob.sharper,
        "rows": rows,
        "provenance": {"n_generated": n, "n_real": len(real), "reference": "heldout",
                       "extractor": extractor_name, "prdc_k": PRDC_K, "seed": seed,
                       "data": dataset.info.get("spec", dataset.name), "run": str(run.run_dir),
                       "family": family.name, "step": run.step,
                       **{k: v for k, v in options.items() if v is not None}},
    }


def format_sweep(result: dict[str, Any]) -> str:
    """The sweep as a small table."""
    lines = [(f"{result['knob']} (neutral {result['neutral']:g}; {result['sharper']} = sharper), "
             f"{result['provenance']['n_generated']} samples per value against "
             f"{result['provenance']['n_real']} held-out, {result['provenance']['extractor']} features"),
             f"  {result['knob']:>11} {'precision':>9} {'recall':>7} {'density':>7} {'coverage':>8} {'FD':>9} {'agreement':>9}"]
    for row in result["rows"]:
        lines.append(f"  {row['value']:>11g} {row['precision']:>9.3f} {row['recall']:>7.3f} "
                     f"{row['density']:>7.3f} {row['coverage']:>8.3f} {row['fd']:>9.3g} "
                     + (f"{row['label_agreement']:>9.3f}" if row["label_agreement"] is not None else f"{'-':>9}"))
    return "\n".join(lines)
