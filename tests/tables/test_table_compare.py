"""A table from the command line: train, sample to CSV, evaluate, and compare the families with
the table's own report (column plots, correlation differences, the folklore restated)."""

import csv
import html
import json

import pytest
from tests.tables.table_files import COLUMNS, write_people


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_people(tmp_path_factory.mktemp("tables") / "people.csv", rows=500)


def test_train_sample_and_evaluate_a_table(run_cli, people, tmp_path):
    run = tmp_path / "run"
    code, _, stderr = run_cli("train", "--family", "gan", "--data", people, "--target", "label", "--steps", 30,
                              "--out", run, "--quiet")
    assert code == 0, stderr
    config = json.loads((run / "config.json").read_text())
    assert [c["kind"] for c in config["data"]["columns"]][:3] == ["integer", "continuous", "categorical"]
    assert config["data"]["target"] == "label" and config["data"]["spec"].endswith("people.csv:target=label")
    code, _, stderr = run_cli("train", "--family", "gan", "--data", "ring8", "--target", "label", "--out", tmp_path / "x")
    assert code == 2 and "--target: only for a .csv table" in stderr
    out = tmp_path / "rows.csv"
    code, _, stderr = run_cli("sample", run, "--n", 40, "--out", out)
    assert code == 0, stderr
    rows = list(csv.reader(out.open()))
    assert rows[0] == COLUMNS and len(rows) == 41
    assert {r[2] for r in rows[1:]} <= {"Paris", "Lyon", "Nice", "Lille"}
    code, _, stderr = run_cli("sample", run, "--n", 40, "--out", tmp_path / "rows.npz")
    assert code == 2 and "must end in .csv" in stderr
    code, stdout, stderr = run_cli("evaluate", run, "--n", 200)
    assert code == 0, stderr
    assert "column shapes (KS / TV complement)" in stdout and "train-on-synthetic accuracy" in stdout


def test_compare_on_a_table_writes_the_table_report(run_cli, people, tmp_path):
    out = tmp_path / "compare"
    code, stdout, stderr = run_cli("compare", "--data", f"{people}:target=label", "--steps", 40, "--samples", 200,
                                   "--quiet", "--out", out)
    assert code == 0, stderr
    assert "shapes" in stdout and "recommended:" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["kind"] == "table" and list(results["families"]) == ["vae", "gan", "tabddpm"]
    for entry in results["families"].values():
        assert 0 < entry["column_shapes"] <= 1 and 0 <= entry["detection_auc"] <= 1
        assert entry["num_categories"] == 13 and entry["efficacy_accuracy"] is not None
    assert results["recommendation"]["family"] in results["families"]
    # The untrained baselines and the ceiling, scored on as many rows, and never recommended.
    baselines = results["baselines"]
    assert list(baselines) == ["marginals", "copula", "real"]
    assert baselines["real"]["exact_copies"] == 1.0 and baselines["copula"]["exact_copies"] < 0.05
    assert baselines["copula"]["pair_trends_related"] > baselines["marginals"]["pair_trends_related"]
    assert any("the untrained Gaussian copula" in r and "shapes + trends" in r
               for r in results["recommendation"]["reasons"])
    assert "copula,untrained," in (out / "results.csv").read_text()
    page = html.unescape((out / "report.html").read_text())
    assert "copula (untrained)" in page and "real rows (ceiling)" in page
    for heading in ("Samples: the first rows", "Every column, real against synthetic",
                    "Correlations: synthetic against real", "The folklore, checked"):
        assert heading in page
    assert "On a table collapse shows as lost categories" in page
    assert "On a table blur shows as smoothed numeric columns" in page
