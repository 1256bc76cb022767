"""Every figure trilemma reports, declared once.

A declaration (`Metric`) says where a number lives, what a reader calls it, how it is written,
which way is better, whether the training curves keep it and which table of the report it
belongs to. Everything that shows figures reads them from `METRICS`:

- `trilemma evaluate`'s printout (labels, formats, the "± std" and "/ total" beside a figure);
- the points of the training curves (`CURVE_KEYS`);
- results.json and results.csv (`RESULT_COLUMNS`, each read from a comparison record by
  `Metric.read`);
- the report's "Every figure" table, grouped by `TABLES`, with ↓ / ↑ from the direction.

So a new figure is one `Metric(...)` below, plus the code that computes it. A test checks that
every key `trilemma.evaluation.evaluate` returns is declared here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from trilemma.metrics.collapse import detect_collapse

EVALUATE_ONLY = "evaluate only"
# The report's tables, in the order it shows them. Figures of EVALUATE_ONLY are printed by
# `trilemma evaluate` and kept in evaluation.json, but are not columns of a comparison's results:
# reference points (what real data or a perfect model would score) and finer breakdowns.
TABLES = ("fidelity", "diversity", "likelihood", "utility", "memorisation", "conditional", "speed", "cost", "stability",
          EVALUATE_ONLY)
DIRECTIONS = {"lower": "↓", "higher": "↑", "one": "best at 1"}

Source = tuple[str, ...] | Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Metric:
    """One figure. `key`: its name in `evaluate()`'s ``metrics``, or, for a figure only a
    comparison has, its name in results.json. `source`: where a comparison record holds it,
    as dotted paths tried in order (the first present wins; default ``metrics.<key>``) or a
    function of the record. `column`: its results.json / results.csv name where that differs
    from `key`. `format`: a format spec, or "mib" for bytes shown in MiB. `better`: "lower",
    "higher", "one" (closest to 1) or None. `out_of` / `spread`: keys of the total written as
    "/ total" and of evaluate's own standard deviation written as "± std" beside the figure.
    `within`: the figure whose row shows this one, which then has no row of its own."""

    key: str
    label: str
    table: str
    format: str = ".4g"
    better: str | None = None
    column: str | None = None
    curve: bool = False
    out_of: str | None = None
    spread: str | None = None
    within: str | None = None
    source: Source | None = None

    def __post_init__(self) -> None:
        if self.table not in TABLES:
            raise ValueError(f"{self.key}: unknown table '{self.table}' (known: {', '.join(TABLES)})")
        if self.better is not None and self.better not in DIRECTIONS:
            raise ValueError(f"{self.key}: better must be one of {', '.join(DIRECTIONS)} or None")

    @property
    def results_column(self) -> str | None:
        """Its name in results.json and results.csv; None for a figure of `evaluate` only."""
        if self.table == EVALUATE_ONLY:
            return None
        return self.column or self.key

    def read(self, record: dict[str, Any]) -> Any:
        """The figure in one comparison record (runner's evaluation.json); None when absent."""
        if callable(self.source):
            return self.source(record)
        for path in self.source or (f"metrics.{self.key}",):
            found, value = _lookup(record, path)
            if found:
                return value
        return None

    def text(self, value: Any) -> str:
        """The figure written with its format (the caller shows a missing one its own way)."""
        if self.format == "mib":
            return f"{value / 2**20:,.0f}"
        try:
            return format(value, self.format)
        except (TypeError, ValueError):
            return str(value)

    def heading(self, fid_name: str) -> str:
        """The label with the direction mark the report puts on it, e.g. 'recall (↑)'."""
        label = self.label.format(fid_name=fid_name)
        return f"{label} ({DIRECTIONS[self.better]})" if self.better else label


def _lookup(record: dict[str, Any], path: str) -> tuple[bool, Any]:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False, None
        value = value[part]
    return True, value


def _training_gflops_per_image(record: dict[str, Any]) -> float | None:
    training = record["training"]
    flops = training.get("flops_per_step")
    return flops / (training.get("batch_size") or 1) / 1e9 if flops else None


def _peak_memory_bytes(record: dict[str, Any]) -> int | None:
    # CUDA's own peak for this family when there is one; on CPU the process's high-water mark.
    memory = record["memory"]
    return memory.get("cuda_peak_bytes") or memory.get("process_peak_rss_bytes")


def _rollbacks(record: dict[str, Any]) -> int | None:
    # Divergence rollbacks of the run (trilemma.training.divergence); None for a record written
    # before they were counted.
    rollbacks = record["training"].get("rollbacks")
    return None if rollbacks is None else len(rollbacks)


def _collapse_step(record: dict[str, Any]) -> int | None:
    found = detect_collapse(record.get("curve") or [])
    return None if found is None else found["step"]


# In this order: results.csv's columns are the declarations that have one, as they come here.
METRICS: tuple[Metric, ...] = (
    Metric("fid", "{fid_name}", "fidelity", better="lower", curve=True),
    Metric("fid_name", "name of the Fréchet distance", EVALUATE_ONLY, format="s", within="fid"),
    Metric("fid_bias_estimate", "FD of a perfect model (bias)", EVALUATE_ONLY),
    Metric("fid_real_floor", "FD of real images", EVALUATE_ONLY),
    Metric("kid_mean", "KID", "fidelity", better="lower", column="kid", curve=True,
           spread="kid_std"),
    Metric("kid_std", "KID's standard deviation over subsets", EVALUATE_ONLY, within="kid_mean"),
    Metric("kid_subset_size", "KID subset size", EVALUATE_ONLY),
    Metric("precision", "precision", "fidelity", ".3f", "higher", curve=True),
    Metric("recall", "recall", "diversity", ".3f", "higher", curve=True),
    Metric("density", "density", "fidelity", ".3f", "higher", curve=True),
    Metric("coverage", "coverage", "diversity", ".3f", "higher", curve=True),
    Metric("classes_covered", "classes covered", "diversity", better="higher", curve=True,
           out_of="num_classes"),
    Metric("num_classes", "classes in the data", "diversity", within="classes_covered"),
    Metric("class_kl_to_real", "class KL to real (nats)", EVALUATE_ONLY, better="lower"),
    Metric("classifier_score", "classifier score", EVALUATE_ONLY, better="higher"),
    Metric("classifier_score_real", "classifier score of real", EVALUATE_ONLY),
    Metric("vendi", "Vendi score (effective number of distinct samples, cosine of features)", EVALUATE_ONLY,
           ".1f", "higher"),
    Metric("vendi_real", "Vendi score of the real reference", EVALUATE_ONLY, ".1f"),
    Metric("confident_fraction", "samples classified with confidence ≥ 0.9", EVALUATE_ONLY, ".3f", "higher"),
    Metric("confident_fraction_real", "real images classified with confidence ≥ 0.9", EVALUATE_ONLY, ".3f"),
    Metric("modes_covered", "modes covered", "diversity", better="higher", curve=True,
           out_of="num_modes"),
    Metric("num_modes", "modes of the mixture", "diversity", within="modes_covered"),
    Metric("high_quality_fraction", "high-quality samples", "fidelity", ".3f", "higher",
           curve=True),
    Metric("real_high_quality_fraction", "high-quality real points", EVALUATE_ONLY, ".3f"),
    Metric("kl_floor", "perfect model's KL", EVALUATE_ONLY, ".3f"),
    Metric("relative_sharpness", "relative sharpness", "fidelity", ".3f", "one",
           column="sharpness", curve=True),
    Metric("samples_per_s", "samples per second", "speed", ".1f", "higher",
           source=("speed.samples_per_s",)),
    Metric("nfe", "network evaluations per sample", "speed", ".0f", "lower",
           source=("speed.nfe",)),
    Metric("train_seconds", "training seconds", "cost", ".0f",
           source=("training.train_seconds",)),
    Metric("steps", "training steps", "cost", ".0f", source=("training.steps",)),
    Metric("images_per_s", "training images per second", "cost", ".0f", "higher",
           source=("training.images_per_s",)),
    Metric("parameters", "parameters", "cost", ",.0f", source=("training.parameters",)),
    Metric("training_gflops_per_image", "training GFLOPs per image", "cost", ".3f", "lower",
           source=_training_gflops_per_image),
    Metric("fraction_of_peak", "training FLOP/s ÷ matmul peak", "cost", ".3f", "higher",
           source=("training.fraction_of_peak",)),
    Metric("peak_memory_bytes", "peak memory (MiB; CPU: the process's high-water mark so far)",
           "cost", "mib", "lower", source=_peak_memory_bytes),
    Metric("training_state_bytes", "training state: weights, gradients, Adam, EMA (MiB)",
           "cost", "mib", "lower", source=("memory.training_state_bytes",)),
    # Images are judged in feature space, points in their coordinates: one column for both.
    Metric("near_copy_fraction", "near copies of training data", "memorisation", ".3f", "lower",
           source=("metrics.near_copy_fraction_features", "metrics.near_copy_fraction")),
    Metric("authpct_heldout", "AuthPct of held-out, %", EVALUATE_ONLY, ".1f"),
    Metric("memorisation_ratio", "nearest-train ratio", EVALUATE_ONLY, ".3f"),
    Metric("memorisation_ratio_features", "nearest-train ratio (features)", EVALUATE_ONLY, ".3f"),
    Metric("near_copy_fraction_features", "near copies (features)", EVALUATE_ONLY, ".3f", "lower"),
    Metric("memorisation_ratio_pixels", "nearest-train ratio (pixels)", EVALUATE_ONLY, ".3f"),
    Metric("near_copy_fraction_pixels", "near copies (pixels)", EVALUATE_ONLY, ".3f", "lower"),
    Metric("label_agreement", "samples classified as the requested class", "conditional", ".3f",
           "higher"),
    Metric("cas", "classification accuracy score (CAS)", "conditional", ".3f", "higher"),
    Metric("cas_real_baseline", "CAS of as many real training images", EVALUATE_ONLY, ".3f"),
    Metric("rollbacks", "divergence rollbacks (NaN or exploding loss: back to the last "
           "checkpoint, learning rate halved)", "stability", ".0f", "lower", source=_rollbacks),
    Metric("collapse_step", "mode collapse seen during training, from step (– none)", "stability",
           ".0f", source=_collapse_step),
    # Latent diffusion: its autoencoder's reconstructions of held-out data, scored as samples
    # (declared last, so that results.csv files keep their older columns in place).
    Metric("reconstruction_fid", "{fid_name} of the autoencoder's reconstructions (fidelity floor)",
           "fidelity", better="lower", source=("reconstruction.fid",)),
    # Stacked MNIST (and the 2-D mixtures' KL): what a perfect model's n samples would cover.
    Metric("reverse_kl_modes", "KL to uniform modes", "diversity", ".3f", "lower"),
    Metric("modes_floor", "perfect model's modes ≥", "diversity", ".0f"),
    # Data copying beyond near-copies (`metrics.copying`), of a run's final samples.
    Metric("c_t", "data-copying C_T", "memorisation", ".2f"),
    Metric("authpct", "authentic (AuthPct), %", "memorisation", ".1f", "higher"),
    Metric("generalisation_gap", "FLD generalisation gap, %", "memorisation",
           ".1f", "lower"),
    # Held-out likelihood bounds of the VAE and pixel diffusion (`evaluation.likelihood`).
    Metric("nll_bits_per_dim", "held-out NLL bound, bits/dim", "likelihood", ".3f", "lower",
           source=("likelihood.bits_per_dim",)),
    # Tables (`evaluation.tables`): SDV's quality figures, detection, train-on-synthetic, privacy.
    Metric("column_shapes", "column shapes (KS / TV complement)", "fidelity", ".3f", "higher"),
    Metric("pair_trends", "pair trends (correlation / contingency)", "fidelity", ".3f", "higher"),
    Metric("pair_trends_related", "pair trends of related pairs", "fidelity", ".3f", "higher"),
    Metric("detection_auc", "real-or-synthetic classifier AUC (0.5: can't tell)", "fidelity", ".3f", "lower"),
    Metric("categories_covered", "categories covered", "diversity", ".0f", "higher", out_of="num_categories"),
    Metric("num_categories", "categories in the real rows", "diversity", within="categories_covered"),
    Metric("efficacy_accuracy", "train-on-synthetic accuracy", "utility", ".3f", "higher"),
    Metric("efficacy_f1", "train-on-synthetic macro F1", "utility", ".3f", "higher"),
    Metric("efficacy_real_accuracy", "train-on-real accuracy", EVALUATE_ONLY, ".3f"),
    Metric("efficacy_real_f1", "train-on-real macro F1", EVALUATE_ONLY, ".3f"),
    Metric("dcr_closer_to_training", "closer to training than held-out rows (0.5: fresh)", "memorisation",
           ".3f", "lower"),
    Metric("exact_copies", "exact copies of training rows", "memorisation", ".3f", "lower"),
    Metric("nndr", "nearest-neighbour distance ratio", EVALUATE_ONLY, ".3f", "higher"),
    Metric("numeric_shapes", "numeric columns' shapes (KS complement)", "fidelity", ".3f", "higher"),
    Metric("category_shapes", "categorical columns' shapes (TV complement)", "fidelity", ".3f", "higher"),
)

BY_KEY: dict[str, Metric] = {metric.key: metric for metric in METRICS}
RESULT_METRICS: tuple[Metric, ...] = tuple(m for m in METRICS if m.results_column is not None)
RESULT_COLUMNS: tuple[str, ...] = tuple(m.results_column for m in RESULT_METRICS)
if len(BY_KEY) != len(METRICS) or len(set(RESULT_COLUMNS)) != len(RESULT_COLUMNS):
    raise ValueError("a metric key or a results column is declared twice")
CURVE_KEYS: tuple[str, ...] = tuple(m.key for m in METRICS if m.curve)

