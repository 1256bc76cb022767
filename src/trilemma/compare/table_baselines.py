"""The untrained baselines and the real-rows ceiling of a table comparison
(`trilemma.tables.baselines`), scored through the one evaluation path on as many rows as each
family's samples, and what they say about the recommended family."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from trilemma.tables.baselines import BASELINES, baseline_rows


def measure_baselines(dataset: Any, n: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per baseline: its results-column figures (as a family's entry has them), its label and
    the seconds it took to fit and draw its rows."""
    from trilemma.evaluation.tables import evaluate_table
    from trilemma.metrics.catalogue import RESULT_METRICS

    out = {}
    training_rows = reference_rows(dataset)
    for name, label in BASELINES.items():
        started = time.perf_counter()
        rows = reference_to_model(dataset, baseline_rows(name, dataset.reference_codec, training_rows, n, seed))
        seconds = time.perf_counter() - started
        record = evaluate_table(torch.from_numpy(rows), dataset, "heldout", seed)
        # The figures an evaluation holds (a baseline has no training, speed or curve to read).
        figures = {m.results_column: record["metrics"][m.key] for m in RESULT_METRICS
                   if m.source is None and record["metrics"].get(m.key) is not None}
        out[name] = {"label": label, **figures, "fit_and_sample_seconds": seconds}
    return out


def reference_rows(dataset: Any) -> np.ndarray:
    """The training rows in the reference (quantile) encoding, which the baselines are fitted in."""
    if dataset.reference_codec is dataset.codec:
        return dataset.x_train.numpy()
    return dataset.reference_codec.encode(dataset.frame_train)


def reference_to_model(dataset: Any, rows: np.ndarray) -> np.ndarray:
    """Rows of the reference encoding in the families' (the one evaluation path decodes)."""
    if dataset.reference_codec is dataset.codec:
        return rows
    return dataset.codec.encode(dataset.reference_codec.decode(rows))


def fidelity_sum(figures: dict[str, Any]) -> float:
    """Column shapes + pair trends: SDV's quality score, doubled (2 at best)."""
    return figures["column_shapes"] + figures["pair_trends"]


# The figures the recommended family is set against the copula on: (label, key, higher is better).
VERSUS = (("shapes + trends", None, True), ("trends of related pairs", "pair_trends_related", True),
          ("detection AUC", "detection_auc", False), ("train-on-synthetic accuracy", "efficacy_accuracy", True))


def baseline_reason(choice: str, family: dict[str, Any], baselines: dict[str, dict[str, Any]]) -> str | None:
    """One line of the recommendation: where the recommended family beats the untrained Gaussian
    copula and where it does not, and where the ceiling and the floor lie."""
    copula = baselines.get("copula")
    if copula is None or family.get("column_shapes") is None:
        return None
    ahead, behind = [], []
    for label, key, higher in VERSUS:
        mine, theirs = (fidelity_sum(family), fidelity_sum(copula)) if key is None else (family.get(key), copula.get(key))
        if mine is None or theirs is None:
            continue
        better = mine > theirs if higher else mine < theirs
        (ahead if better else behind).append(f"{label} {mine:.3f} against {theirs:.3f}")
    listed = "; ".join(f"{b['label']} shapes {b['column_shapes']:.3f}, trends {b['pair_trends']:.3f}, "
                       f"detection AUC {b['detection_auc']:.3f}" for b in baselines.values())
    if not behind:
        verdict = f"{choice} beats the untrained Gaussian copula on every figure ({'; '.join(ahead)})."
    elif not ahead:
        verdict = (f"{choice} does not beat the untrained Gaussian copula ({'; '.join(behind)}): at this budget "
                   "a copula, which needs no training, is as good a generator of these columns.")
    else:
        verdict = (f"{choice} beats the untrained Gaussian copula on {'; '.join(ahead)}; not on "
                   f"{'; '.join(behind)}.")
    return f"{verdict} Baselines: {listed}."
