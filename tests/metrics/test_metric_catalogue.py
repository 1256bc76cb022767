"""The declarations of `trilemma.metrics.catalogue` against what the code produces: every figure
`evaluate` returns is declared, and the printout, the results columns and the report's table
are the ones the declarations describe."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tests.tables.table_files import write_people

from trilemma.cli.evaluate import format_result
from trilemma.compare.report import _metrics_table
from trilemma.compare.results import COLUMNS, flatten
from trilemma.data import load_data
from trilemma.data.mixtures import MIXTURES
from trilemma.evaluation import evaluate
from trilemma.metrics.catalogue import BY_KEY, CURVE_KEYS, METRICS, RESULT_METRICS, TABLES

# results.csv's header and the curve points' keys as files written before the catalogue hold
# them: the declarations must reproduce both, in this order.
COLUMNS_ON_FILE = (
    "fid", "kid", "precision", "recall", "density", "coverage", "classes_covered", "num_classes",
    "modes_covered", "num_modes", "high_quality_fraction", "sharpness", "samples_per_s", "nfe",
    "train_seconds", "steps", "images_per_s", "parameters", "training_gflops_per_image",
    "fraction_of_peak", "peak_memory_bytes", "training_state_bytes", "near_copy_fraction",
    "label_agreement", "cas", "rollbacks", "collapse_step", "reconstruction_fid", "reverse_kl_modes",
    "modes_floor", "c_t", "authpct", "generalisation_gap", "nll_bits_per_dim", "column_shapes",
    "pair_trends", "pair_trends_related", "detection_auc", "categories_covered", "num_categories",
    "efficacy_accuracy", "efficacy_f1", "dcr_closer_to_training", "exact_copies", "numeric_shapes",
    "category_shapes",
)
CURVE_KEYS_ON_FILE = ("fid", "kid_mean", "precision", "recall", "density", "coverage",
                      "classes_covered", "modes_covered", "high_quality_fraction",
                      "relative_sharpness")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """`evaluate` on labelled images (a conditional model's output), on points of a built-in
    mixture, on other points and on a table: between them every figure it can return."""
    digits = load_data("digits")
    images = digits.x_train[:200].permute(0, 2, 3, 1).numpy()
    labelled = evaluate(images, digits, samples_y=digits.y_train[:200].numpy(), provenance={})
    ring = load_data("ring8")
    ring_points = MIXTURES["ring8"]().sample(400, np.random.default_rng(0))
    path = tmp_path_factory.mktemp("blob") / "blob.npy"
    rng = np.random.default_rng(1)
    np.save(path, rng.normal(size=(300, 3)).astype(np.float32))
    blob = load_data(str(path))
    stacked = load_data("stacked-mnist")
    table = load_data(f"{write_people(tmp_path_factory.mktemp('table') / 'people.csv', rows=400)}:target=label")
    return {"table": evaluate(table.x_train.numpy(), table, provenance={}),"images": labelled, "mixture": evaluate(ring_points, ring, provenance={}),
            "points": evaluate(rng.normal(size=(200, 3)), blob, provenance={}),
            "stacked": evaluate(stacked.x_heldout[:300], stacked, n_real=300, provenance={})}


def _figures(result):
    """The keys of `metrics` but the FD's copy under its own name (declared as ``fid``)."""
    metrics = result["metrics"]
    return [key for key in metrics if key != metrics.get("fid_name")]


def test_every_figure_evaluate_returns_is_declared(results):
    for kind, result in results.items():
        undeclared = [key for key in _figures(result) if key not in BY_KEY]
        assert not undeclared, f"{kind}: declare {undeclared} in trilemma.metrics.catalogue"
    # And no declaration of a figure of `evaluate` outlives the figure.
    returned = {key for result in results.values() for key in _figures(result)}
    for metric in METRICS:
        if metric.source is None:
            assert metric.key in returned, f"{metric.key} is declared but never returned"


def test_declarations_point_at_declared_figures():
    for metric in METRICS:
        for other in (metric.out_of, metric.spread, metric.within):
            assert other is None or other in BY_KEY, (metric.key, other)
        assert metric.table in TABLES
    assert all(metric.results_column is not None for metric in RESULT_METRICS)


def test_results_columns_and_curve_keys_are_those_on_file():
    assert COLUMNS == COLUMNS_ON_FILE
    assert CURVE_KEYS == CURVE_KEYS_ON_FILE


def test_printout_shows_each_figure_once_under_its_label(results):
    text = format_result(results["images"])
    rows = {}
    for line in text.splitlines():
        if not line.startswith("  "):
            break
        label, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        assert label not in rows, f"{label} printed twice"
        rows[label] = value
    metrics = results["images"]["metrics"]
    assert rows["FD-lenet-digits"] == format(metrics["fid"], ".4g")
    assert rows["KID"] == f"{metrics['kid_mean']:.4g} ± {metrics['kid_std']:.4g}"
    assert rows["classes covered"] == f"{metrics['classes_covered']} / 10"
    assert rows["classification accuracy score (CAS)"] == f"{metrics['cas']:.3f}"
    shown_alone = {BY_KEY[key].label.format(fid_name="FD-lenet-digits")
                   for key in _figures(results["images"]) if BY_KEY[key].within is None}
    assert set(rows) == shown_alone
    # The mixture's modes come with their total, and the points' FD under its name.
    assert "modes covered                 8 / 8" in format_result(results["mixture"])
    assert format_result(results["points"]).startswith("  FD-raw ")


def _record(**metrics):
    return {
        "metrics": {"fid": 12.5, "fid_name": "FD-lenet-digits", "kid_mean": 0.01, "kid_std": 0.002,
                    "precision": 0.8, "relative_sharpness": 0.6, **metrics},
        "speed": {"samples_per_s": 900.0, "nfe": 20, "seconds": 1.0},
        "training": {"train_seconds": 30.0, "steps": 100, "parameters": 1000,
                     "flops_per_step": 6.4e9, "batch_size": 64, "images_per_s": 200.0},
        "memory": {"cuda_peak_bytes": None, "process_peak_rss_bytes": 3 * 2**30,
                   "training_state_bytes": 20_000},
    }


def test_flatten_reads_each_column_where_the_record_keeps_it():
    images = flatten(_record(near_copy_fraction_features=0.25, near_copy_fraction_pixels=0.5))
    assert list(images) == list(COLUMNS_ON_FILE)
    assert (images["fid"], images["kid"], images["sharpness"]) == (12.5, 0.01, 0.6)
    assert (images["samples_per_s"], images["nfe"], images["steps"]) == (900.0, 20, 100)
    assert images["training_gflops_per_image"] == pytest.approx(0.1)  # 6.4 GFLOP over 64 images
    assert images["peak_memory_bytes"] == 3 * 2**30  # no CUDA: the process's peak
    assert images["near_copy_fraction"] == 0.25  # in feature space, not in pixels
    assert images["recall"] is None and images["cas"] is None
    points = flatten(_record(near_copy_fraction=0.125))
    assert points["near_copy_fraction"] == 0.125


def test_report_table_has_a_row_per_column_grouped_by_table():
    entry = {**flatten(_record(classes_covered=9, num_classes=10, recall=0.7)), "fid_name": "FD-x",
             "fid_std": 1.25}
    html = _metrics_table({"families": {"vae": entry, "gan": {**entry, "fid": 20.0}}})
    headings = re.findall(r"<tr><th>([^<]+)</th><td", html)
    assert headings[:3] == ["FD-x (↓)", "KID (↓)", "precision (↑)"]
    assert "relative sharpness (best at 1)" in headings and "recall (↑)" in headings
    assert "12.5 ± 1.25" in html and "9 / 10" in html
    # Columns that are shown within another's row, or empty for every family, get none.
    assert not any(h.startswith(("classes in the data", "modes")) for h in headings)
    assert "samples classified" not in html
    groups = re.findall(r'<th class="group"[^>]*>([^<]+)</th>', html)
    assert groups == [t for t in TABLES if t in ("fidelity", "diversity", "speed", "cost")]
