"""results.csv, results.json and the report's figure table of a real comparison hold every
declared figure, each as the family's evaluation record gives it."""

from __future__ import annotations

import csv
import html
import json

import pytest

from trilemma.metrics.catalogue import RESULT_METRICS

TABLE_FIGURES = ("column_shapes", "pair_trends", "pair_trends_related", "detection_auc", "categories_covered",
                 "num_categories", "efficacy_accuracy", "efficacy_f1", "dcr_closer_to_training", "exact_copies",
                 "numeric_shapes", "category_shapes")


def test_every_declared_column_is_in_results_csv_as_its_record_holds_it(small_comparison):
    out, _ = small_comparison
    with (out / "results.csv").open() as f:
        header = next(csv.reader(f))
    assert header == ["family", "seed", "fid_name", *(m.results_column for m in RESULT_METRICS)]
    stored = json.loads((out / "results.json").read_text())
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 3
    for row in rows:
        run = out / "runs" / f"{row['family']}-seed{row['seed']}"
        record = json.loads((run / "evaluation.json").read_text())
        entry = stored["families"][row["family"]]
        for metric in RESULT_METRICS:
            value, cell = metric.read(record), row[metric.results_column]
            assert entry[metric.results_column] == value, (row["family"], metric.key)
            if value is None:
                assert cell == "", (row["family"], metric.key)
            else:
                assert float(cell) == pytest.approx(value, rel=1e-5), (row["family"], metric.key)
        # Unconditional image models: all but the conditional figures, those of 2-D mixtures and
        # Stacked MNIST's modes, and the autoencoder floor of latent diffusion.
        # (and the step where collapse was seen, when it was: a few steps and 40 samples a point
        # may well show one)
        # A GAN has no likelihood bound.
        missing = {m.key for m in RESULT_METRICS if m.read(record) is None} - {"collapse_step"}
        assert missing == {"modes_covered", "num_modes", "high_quality_fraction", "reverse_kl_modes",
                           "modes_floor", "label_agreement", "cas", "reconstruction_fid", *TABLE_FIGURES,
                           *(["nll_bits_per_dim"] if row["family"] == "gan" else [])}, row["family"]
        if row["family"] != "gan":
            # bits per dimension, of the order of a uniform model's 8 (not nats per image)
            assert 1 < record["likelihood"]["bits_per_dim"] < 12 and record["likelihood"]["split"] == "heldout"
        assert record["training"]["rollbacks"] == [] and entry["rollbacks"] == 0


def test_report_shows_every_figure_the_families_have(small_comparison):
    out, results = small_comparison
    page = html.unescape((out / "report.html").read_text())
    table = page[page.index("<h2>Every figure</h2>"):page.index("<h2>Can the features see it?")]
    fid_name = results["families"]["vae"]["fid_name"]
    untrusted = set(results["ladders"]["untrustworthy"])
    mark = ' <span class="untrusted">(untrustworthy here: failed a sanity ladder)</span>'
    for metric in RESULT_METRICS:
        has_value = any(f.get(metric.results_column) is not None
                        for f in results["families"].values())
        if metric.within is None:
            shown = mark if metric.results_column in untrusted else ""
            assert (f"<th>{metric.heading(fid_name)}{shown}</th>" in table) == has_value, metric.key
