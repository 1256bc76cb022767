"""The comparison's numbers: per family (mean and spread over seeds), with provenance, written
as results.json and results.csv."""

from __future__ import annotations

import csv
import io
import statistics
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from trilemma import __version__
from trilemma.checkpoints import write_json_atomic
from trilemma.compare.settings import CompareSettings
from trilemma.data import Dataset
from trilemma.io import write_text
from trilemma.metrics.catalogue import RESULT_COLUMNS, RESULT_METRICS
from trilemma.metrics.collapse import detect_collapse

# The per-family figures of results.json and results.csv, in this order, and how each is read
# from a family-and-seed record: both declared in trilemma.metrics.catalogue.
COLUMNS = RESULT_COLUMNS


def flatten(record: dict[str, Any]) -> dict[str, Any]:
    """The headline figures of one family-and-seed evaluation record (runner's evaluation.json),
    each read from where its declaration says."""
    return {metric.results_column: metric.read(record) for metric in RESULT_METRICS}


def headline(figures: dict[str, Any]) -> str:
    """A family's main figures in a few words, from its metrics or its results entry."""
    if figures.get("column_shapes") is not None:  # a table
        return (f"shapes {figures['column_shapes']:.3f}, trends {figures['pair_trends']:.3f}, "
                f"detection AUC {figures['detection_auc']:.3f}")
    parts = [f"{figures.get('fid_name') or 'FD'} {figures['fid']:.1f}"]
    parts += [f"{key} {figures[key]:.2f}" for key in ("precision", "recall") if figures.get(key) is not None]
    return ", ".join(parts)


def _spread(values: list[Any]) -> tuple[Any, Any]:
    numbers = [v for v in values if isinstance(v, (int, float)) and v is not None]
    if not numbers or len(numbers) != len(values):
        return (values[0] if values else None), None
    if len(numbers) == 1:
        return numbers[0], None
    mean = statistics.fmean(numbers)
    return mean, (statistics.stdev(numbers) if len(numbers) > 1 else None)


def summarise(records: list[dict[str, Any]], settings: CompareSettings, dataset: Dataset, *,
              device: dict[str, Any], peak_gflops: float, peak_precision: str = "fp32",
              ladders: dict[str, Any] | None = None,
              baselines: dict[str, Any] | None = None) -> dict[str, Any]:
    """results.json's content: per family the mean of every figure over seeds, its standard
    deviation (``FIELD_std``, seeds > 1), the per-seed figures, curves, collapses seen on them,
    divergence rollbacks and provenance; then the claims checked against them and the
    recommendation for the settings' priorities, which leaves out the figures `ladders` (the
    sanity ladders of the image features, if any) found untrustworthy. `baselines`: a table's
    untrained baselines and real-rows ceiling (`compare.table_baselines`), shown beside the
    families and never recommended."""
    from trilemma.compare.claims import check_claims
    from trilemma.compare.contention import warnings
    from trilemma.compare.scoring import recommend

    families: dict[str, Any] = {}
    for name in settings.families:
        mine = sorted((r for r in records if r["family"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        per_seed = [flatten(r) for r in mine]
        entry: dict[str, Any] = {}
        for column in COLUMNS:
            mean, std = _spread([row[column] for row in per_seed])
            entry[column] = mean
            if std is not None:
                entry[f"{column}_std"] = std
        first = mine[0]
        entry.update(
            fid_name=first["metrics"].get("fid_name"),
            fid_cv=(entry.get("fid_std") / entry["fid"]) if entry.get("fid_std") is not None and entry["fid"] else None,
            seeds=[{"seed": r["seed"], **row} for r, row in zip(mine, per_seed)],
            curves=[{"seed": r["seed"], "points": r["curve"]} for r in mine],
            nfe_curve=first.get("nfe_curve"),
            run_dirs=[r["run_dir"] for r in mine],
            provenance=first["provenance"],
            training_provenance={k: first["training"].get(k) for k in
                                 ("budget", "device", "precision", "batch_size", "flops_per_step",
                                  "matmul_peak_gflops", "clock", "threads")},
            # What the machine was like while each seed trained (`compare.contention`).
            contention=[{"seed": r["seed"], **(r.get("contention") or {}),
                         "train_wall_seconds": r["training"].get("wall_seconds")} for r in mine],
            notes=first["notes"],
            sample_grids=[str(Path(r["run_dir"]) / "samples.png") for r in mine],
            # Per seed: collapse seen on the curve (trilemma.metrics.collapse) and rollbacks.
            collapse=[{"seed": r["seed"], **found} for r in mine
                      if (found := detect_collapse(r.get("curve") or [])) is not None],
            rollback_records=[{"seed": r["seed"], **rollback} for r in mine
                              for rollback in r["training"].get("rollbacks") or []],
        )
        families[name] = entry
    results = {
        "trilemma_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "settings": settings.to_json(),
        "data": dataset.describe(),
        "kind": dataset.kind,
        "device": device,
        "matmul_peak_gflops": peak_gflops,
        "matmul_peak_precision": peak_precision,
        "families": families,
        "warnings": warnings(records, peak_gflops if device.get("type", "cpu") == "cpu" else None),
        "ladders": ladders,
        "baselines": baselines or {},
    }
    results["claims"] = check_claims(results)
    results["recommendation"] = recommend(results, settings.priorities)
    return results


def csv_text(results: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["family", "seed", "fid_name", *COLUMNS])
    for name, entry in results["families"].items():
        for row in entry["seeds"]:
            writer.writerow([name, row["seed"], entry["fid_name"], *(_cell(row[c]) for c in COLUMNS)])
        if len(entry["seeds"]) > 1:
            writer.writerow([name, "mean", entry["fid_name"], *(_cell(entry[c]) for c in COLUMNS)])
    for name, entry in (results.get("baselines") or {}).items():
        writer.writerow([name, "untrained" if name != "real" else "ceiling", "",
                         *(_cell(entry.get(c)) for c in COLUMNS)])
    return out.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value


def _without_pictures(results: dict[str, Any]) -> dict[str, Any]:
    """results.json carries numbers; the capability pictures live in the report only."""
    section = results.get("capabilities")
    if not section or "inpainting_grid" not in section:
        return results
    section = {k: v for k, v in section.items() if k != "inpainting_grid"}
    section["interpolation"] = {n: {k: v for k, v in r.items() if k != "strip"}
                                for n, r in section["interpolation"].items()}
    return {**results, "capabilities": section}


def write_results(results: dict[str, Any], out_dir: Path) -> None:
    write_json_atomic(out_dir / "results.json", _without_pictures(results))
    write_text(out_dir / "results.csv", csv_text(results))
