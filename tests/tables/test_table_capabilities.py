"""The capabilities on a table: imputation (known cells kept, hidden ones filled from the row's
other cells, measured against mean / mode and k-NN), anomaly scores per row, augmentation and
conditional generation on the target's value; and `trilemma impute` / `anomaly` on a CSV."""

import csv
import json

import numpy as np
import pandas as pd
import pytest
import torch
from tests.tables.table_files import COLUMNS, write_people

from trilemma.data import load_data
from trilemma.sampling import load_run
from trilemma.tables.imputation import (
    block_mask,
    hide_cells,
    imputation_scores,
    impute,
    mean_mode,
    measure_imputation,
    nearest_neighbours,
)
from trilemma.tables.row_tasks import anomaly_auroc, augmentation_gain, conditional_agreement


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return write_people(tmp_path_factory.mktemp("tables") / "people.csv", rows=1500)


@pytest.fixture(scope="module")
def trained(people, tmp_path_factory):
    """A VAE conditioned on the label and an unconditional diffusion model, briefly trained."""
    from trilemma.cli import main

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for name, extra in (("vae", ["--conditional", "--steps", 400]), ("diffusion", ["--steps", 300])):
        code = main([str(a) for a in ("train", "--family", name, "--data", people, "--target", "label",
                                      "--out", root / name, "--quiet", *extra)])
        assert code == 0
        runs[name] = load_run(root / name)
    return runs


def test_hidden_cells_cover_whole_blocks_and_known_cells_are_kept(people):
    data = load_data(f"{people}:target=label")
    frame = data.frame_heldout.head(200).reset_index(drop=True)
    hidden = hide_cells(frame, 0.3, np.random.default_rng(0))
    assert hidden.any(1).all() and not (hidden & frame.isna().to_numpy()).any()
    mask = block_mask(data.codec, hidden)
    city = data.codec.block("city")
    np.testing.assert_array_equal(mask[:, city.start:city.start + city.width].all(1), hidden[:, 2])
    masked = frame.mask(pd.DataFrame(hidden, columns=frame.columns))
    for filled in (mean_mode(data, masked, hidden), nearest_neighbours(data, masked, hidden)):
        assert filled.notna().to_numpy()[hidden].all()
        for j, name in enumerate(frame.columns):  # every known cell exactly as it was
            keep = ~hidden[:, j]
            pd.testing.assert_series_equal(filled[name][keep], masked[name][keep])
        assert set(filled["city"]) <= {"Paris", "Lyon", "Nice", "Lille"}
    # Scores: the truth scores 0 error and full accuracy; mean imputation about 1 on numbers.
    perfect = imputation_scores(frame, frame, hidden, data.columns)
    assert perfect["numeric_nrmse"] == 0 and perfect["category_accuracy"] == 1
    floor = imputation_scores(frame, mean_mode(data, masked, hidden), hidden, data.columns)
    assert 0.8 < floor["numeric_nrmse"] < 1.3


def test_families_impute_from_the_rows_other_cells(people, trained):
    data = load_data(f"{people}:target=label")
    result = measure_imputation({n: r.family for n, r in trained.items()}, data, n=300)
    methods = result["methods"]
    assert set(methods) == {"mean / mode", "k-NN (k = 5)", "vae", "diffusion"}
    # Income follows age and city closely: a model of the row predicts it far better than its mean.
    for name in ("k-NN (k = 5)", "vae", "diffusion"):
        assert methods[name]["per_column"]["income"] < 0.8 * methods["mean / mode"]["per_column"]["income"], name
    # The conditional VAE is told the label, which is then never hidden.
    assert "label" not in methods["vae"]["per_column"]


def test_impute_keeps_known_cells_and_anomaly_sees_broken_relations(people, trained):
    data = load_data(f"{people}:target=label")
    frame = data.frame_heldout.head(50).reset_index(drop=True)
    hidden = np.zeros(frame.shape, dtype=bool)
    hidden[:, 1] = True  # every income
    masked = frame.assign(income=np.nan)
    filled = impute(trained["diffusion"].family, data, masked, hidden, torch.Generator().manual_seed(0))
    pd.testing.assert_frame_equal(filled.drop(columns="income"), frame.drop(columns="income"))
    assert filled["income"].notna().all()
    assert np.corrcoef(filled["income"], frame["income"])[0, 1] > 0.5
    for name, run in trained.items():
        assert anomaly_auroc(run.family, data, n=300)["auroc"] > 0.6, name


def test_augmentation_and_conditional_rows(people, trained):
    data = load_data(f"{people}:target=label")
    gain = augmentation_gain({"diffusion": trained["diffusion"].family}, data, "label", n_real=30,
                             n_generated=300, seeds=(0,))
    assert 0.5 < gain["real_only_accuracy"] <= 1 and -1 < gain["families"]["diffusion"]["gain"] < 1
    agreement = conditional_agreement(trained["vae"].family, data, per_value=100)
    assert set(agreement["per_value"]) == {"high", "low"} and agreement["agreement"] > 0.8


def test_impute_and_anomaly_from_the_command_line(run_cli, people, trained, tmp_path):
    rows = tmp_path / "rows.csv"
    lines = people.read_text().splitlines()[:13]
    holes = [lines[0]] + [",".join("" if j == 2 and i % 2 else cell for j, cell in enumerate(line.split(",")))
                          for i, line in enumerate(lines[1:])]
    rows.write_text("\n".join(holes) + "\n")
    out = tmp_path / "filled.csv"
    code, stdout, stderr = run_cli("impute", trained["diffusion"].run_dir, "--rows", rows, "--out", out)
    assert code == 0, stderr
    assert "6 empty cells in 6 of 12 rows" in stdout and "repaint" in stdout
    filled = list(csv.reader(out.open()))
    assert filled[0] == COLUMNS and all(r[2] in {"Paris", "Lyon", "Nice", "Lille"} for r in filled[1:])
    assert [r[1] for r in filled[1:]] == [line.split(",")[1] for line in lines[1:]]
    code, _, stderr = run_cli("impute", trained["vae"].run_dir, "--rows", rows, "--out", rows)
    assert code == 2 and "inputs are only ever read" in stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("age,income,town\n1,2,3\n")
    code, _, stderr = run_cli("impute", trained["vae"].run_dir, "--rows", bad, "--out", tmp_path / "x.csv")
    assert code == 2 and "bad.csv: columns the run does not know: town" in stderr and "\n" not in stderr.strip()
    scores = tmp_path / "scores.csv"
    code, stdout, stderr = run_cli("anomaly", trained["vae"].run_dir, "--images", out, "--out", scores,
                                   "--json", tmp_path / "a.json")
    assert code == 0, stderr
    table = list(csv.DictReader(scores.open()))
    assert len(table) == 12 and all(float(r["score"]) >= 0 for r in table)
    assert json.loads((tmp_path / "a.json").read_text())["n"] == 12
