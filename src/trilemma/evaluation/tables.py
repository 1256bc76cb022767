"""Generated rows of a table against real ones: the figures tabular practitioners use
(`trilemma.tables.fidelity` and `trilemma.tables.utility`), on the rows decoded back into the
table's columns."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from trilemma.tables.fidelity import fidelity_figures
from trilemma.tables.utility import detection_auc, efficacy, privacy


def default_target(dataset: Any) -> str | None:
    """The column train-on-synthetic scores predict: the data's target, else its last
    categorical or boolean column (None: the table has none)."""
    if dataset.target is not None:
        return dataset.target
    discrete = [c.name for c in dataset.columns if c.kind in ("categorical", "boolean") and len(c.categories) > 1]
    return discrete[-1] if discrete else None


def categories_covered(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Any]) -> tuple[int, int]:
    """(categories of the real rows' categorical and boolean columns that the synthetic rows hold,
    how many there are): a generator that collapses loses categories first."""
    found = total = 0
    for column in columns:
        if column.kind not in ("categorical", "boolean"):
            continue
        have = set(synthetic[column.name].dropna().astype(str))
        wanted = set(real[column.name].dropna().astype(str))
        total += len(wanted)
        found += len(wanted & have)
    return found, total


def evaluate_table(fake: torch.Tensor, dataset: Any, split: str, seed: int, copying: bool = True) -> dict[str, Any]:
    """`evaluate`'s result for encoded rows `fake` (the data's units) of a table."""
    real = dataset.frame_heldout if split == "heldout" else dataset.frame_train
    synthetic = dataset.decode(fake.numpy())
    figures, details = fidelity_figures(real, synthetic, dataset.columns)
    covered, total = categories_covered(real, synthetic, dataset.columns)
    metrics: dict[str, Any] = {
        "column_shapes": figures["column_shapes"], "pair_trends": figures["pair_trends"],
        "pair_trends_related": _finite(figures["pair_trends_related"]),
        "numeric_shapes": _finite(figures["numeric_shapes"]), "category_shapes": _finite(figures["category_shapes"]),
        "detection_auc": detection_auc(dataset.reference_codec, real, synthetic, seed),
        "categories_covered": covered, "num_categories": total,
    }
    notes = []
    target = default_target(dataset)
    if target is not None:
        scores = efficacy(dataset.reference_codec, dataset.frame_train, dataset.frame_heldout, synthetic, target, seed)
        metrics.update(efficacy_accuracy=scores["synthetic_accuracy"], efficacy_f1=scores["synthetic_f1"],
                       efficacy_real_accuracy=scores["real_accuracy"], efficacy_real_f1=scores["real_f1"])
        details["efficacy_target"] = target
        if dataset.target is None:
            notes.append(f"Train-on-synthetic scores predict '{target}', the table's last categorical column "
                         "(choose another with --target).")
    if copying:
        found = privacy(dataset.reference_codec, dataset.frame_train, dataset.frame_heldout, synthetic, seed)
        metrics.update(dcr_closer_to_training=found["dcr_closer_to_training"], exact_copies=found["exact_copies"],
                       nndr=found["nndr"])
        details["dcr_median"] = found["dcr_median"]
    provenance = {"extractor": "table columns", "extractor_sha256": None, "reference": split,
                  "n_real": len(real), "n_train": len(dataset.frame_train), "n_heldout": len(dataset.frame_heldout),
                  "table_sha256": dataset.info.get("sha256")}
    return {"kind": "table", "metrics": metrics, "details": details, "provenance": provenance, "notes": notes}


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
