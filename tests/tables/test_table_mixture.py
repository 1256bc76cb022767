"""CTGAN's mode-specific normalisation: the batched mixture fit against scikit-learn's, the number
of modes it chooses, and the codec that encodes numbers by their modes (reversible, laid out as a
score and a mode block, read the same way by every figure)."""

import html
import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.mixture import GaussianMixture
from tests.tables.table_files import write_people

from trilemma.data import load_data
from trilemma.errors import DataError
from trilemma.evaluation.tables import evaluate_table
from trilemma.families.base import DataShape
from trilemma.families.registry import family_class
from trilemma.families.table_conditions import ConditionSampler
from trilemma.tables.codec import TableCodec
from trilemma.tables.columns import infer_columns, to_frame
from trilemma.tables.imputation import block_mask, encode_known
from trilemma.tables.mixture import SCALE_FLOOR, fit_modes
from trilemma.tables.reading import read_csv


def columns_of(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "one": rng.normal(5, 2, 4000),
        "two": np.concatenate([rng.normal(20, 4, 1600), rng.normal(45, 3, 2400)]),
        "three": np.concatenate([rng.normal(-10, 1, 1000), rng.normal(0, 1, 2000), rng.normal(10, 1, 1000)]),
    }


def test_the_batched_fit_finds_the_modes_and_matches_scikit_learns_mixture():
    columns = columns_of(np.random.default_rng(0))
    found = dict(zip(columns, fit_modes(list(columns.values()))))
    assert {name: len(m.weights) for name, m in found.items()} == {"one": 1, "two": 2, "three": 3}
    for name, values in columns.items():
        ours = found[name]
        theirs = GaussianMixture(len(ours.weights), random_state=0, n_init=3, tol=1e-8).fit(values[:, None])
        order = np.argsort(theirs.means_.ravel())
        np.testing.assert_allclose(ours.means, theirs.means_.ravel()[order], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(ours.stds, np.sqrt(theirs.covariances_.ravel()[order]), rtol=1e-2)
        np.testing.assert_allclose(ours.weights, theirs.weights_[order], atol=1e-3)
        assert ours.log_likelihood(values) == pytest.approx(theirs.score(values[:, None]), abs=1e-4)
        posterior = ours.posterior(values)
        np.testing.assert_allclose(posterior.sum(1), 1.0)
        np.testing.assert_allclose(posterior, theirs.predict_proba(values[:, None])[:, order], atol=1e-3)


def test_columns_fitted_together_get_the_mixture_each_gets_alone_and_missing_cells_are_left_out():
    columns = columns_of(np.random.default_rng(1))
    together = fit_modes(list(columns.values()))
    holes = columns["two"].copy()
    holes[::7] = np.nan
    for values, mixture in zip(columns.values(), together):
        alone = fit_modes([values])[0]
        np.testing.assert_allclose(mixture.means, alone.means, rtol=1e-9)
        np.testing.assert_allclose(mixture.weights, alone.weights, rtol=1e-9)
    with_holes = fit_modes([holes])[0]
    assert len(with_holes.weights) == 2 and np.isfinite(with_holes.means).all()
    # An integer column's atoms draw narrow components, never zero-width ones.
    counts = np.random.default_rng(2).poisson(3, 3000).astype(float)
    atoms = fit_modes([counts])[0]
    assert atoms.stds.min() >= SCALE_FLOOR * counts.std() * (1 - 1e-9)


@pytest.fixture(scope="module")
def hours_frame(tmp_path_factory):
    """Bimodal weekly hours, ages with a tenth of their cells missing, three cities."""
    rng = np.random.default_rng(3)
    n = 3000
    hours = np.where(rng.random(n) < 0.4, rng.normal(20, 2, n), rng.normal(40, 2, n)).round(1)
    table = pd.DataFrame({"hours": hours, "age": rng.integers(18, 80, n).astype(str),
                          "city": rng.choice(["a", "b", "c"], n)})
    table.loc[::10, "age"] = ""
    path = tmp_path_factory.mktemp("tables") / "hours.csv"
    table.to_csv(path, index=False)
    raw = read_csv(path)
    columns = infer_columns(raw, {})
    return to_frame(raw, columns), columns


def test_mode_specific_codes_are_a_score_and_the_values_mode_and_decode_exactly(hours_frame):
    frame, columns = hours_frame
    codec = TableCodec.fit(frame, columns, "mode-specific")
    hours = codec.block("hours")
    assert hours.mode_count == 2 and codec.numeric_transform == "mode-specific"
    layout = dict(zip(("hours", "hours modes"), codec.layout()[:2]))
    assert layout == {"hours": ("gaussian", 1), "hours modes": ("mode", 2)}
    x = codec.encode(frame)
    # Each value sits in its hump's mode, at α = (x − μ) / 4σ.
    mode = x[:, hours.start + 1:hours.start + 3].argmax(1)
    np.testing.assert_array_equal(mode, (frame["hours"] > 30).to_numpy().astype(int))
    mixture = hours.mixture
    np.testing.assert_allclose(x[:, hours.start], (frame["hours"] - mixture.means[mode]) / (4 * mixture.stds[mode]),
                               rtol=1e-5, atol=1e-6)
    back = codec.decode(x)
    pd.testing.assert_frame_equal(back.drop(columns="hours"), frame.drop(columns="hours"))
    np.testing.assert_allclose(back["hours"], frame["hours"], atol=0.051)
    # The age column's missing flag sits right after its score, its modes after the flag.
    age = codec.block("age")
    assert age.flag == age.start + 1 and age.value_coordinates[0] == age.start
    assert age.value_coordinates[1:] == list(range(age.start + 2, age.start + age.width))
    # Any rows decode within the training range, integers whole.
    made = codec.decode(np.random.default_rng(0).normal(0, 3, (500, codec.width)))
    assert made["hours"].between(frame["hours"].min(), frame["hours"].max()).all()
    assert made["age"].dropna().between(18, 79).all() and str(made["age"].dtype) == "Int64"
    again = TableCodec.from_json(codec.to_json())
    np.testing.assert_array_equal(again.encode(frame), x)


def test_modes_are_not_conditions_and_imputation_hides_score_and_mode(hours_frame):
    frame, columns = hours_frame
    codec = TableCodec.fit(frame, columns, "mode-specific")
    assert ConditionSampler(codec.layout()).width == codec.block("city").width
    hidden = np.zeros((len(frame), 3), dtype=bool)
    hidden[:, 1] = frame["age"].notna()
    mask = block_mask(codec, hidden)
    age = codec.block("age")
    assert mask[:, age.value_coordinates].all(1).sum() == hidden[:, 1].sum()
    assert not mask[:, age.flag].any()
    x = encode_known(codec, frame, hidden)
    assert (x[hidden[:, 1], age.flag] == -1).all()


@pytest.fixture(scope="module")
def people_file(tmp_path_factory):
    return write_people(tmp_path_factory.mktemp("tables") / "people.csv", rows=800)


def test_the_data_spec_chooses_the_transform_and_the_figures_do_not_change_with_it(people_file):
    quantile = load_data(f"{people_file}:target=label")
    modes = load_data(f"{people_file}:target=label:numeric=mode-specific")
    assert modes.info["numeric_transform"] == "mode-specific" and set(modes.info["modes"]) == {
        "age", "income", "joined", "visits"}
    assert "mode" in {kind for kind, _ in modes.layout} and modes.sample_shape[0] == modes.codec.width
    assert modes.reference_codec.width == quantile.codec.width
    # The same rows score the same whichever encoding the families see.
    real = quantile.frame_train.head(400)
    one = evaluate_table(torch.from_numpy(quantile.codec.encode(real)), quantile, "heldout", 0)["metrics"]
    two = evaluate_table(torch.from_numpy(modes.codec.encode(real)), modes, "heldout", 0)["metrics"]
    for key in ("column_shapes", "pair_trends", "detection_auc", "efficacy_accuracy", "dcr_closer_to_training"):
        assert two[key] == pytest.approx(one[key], abs=1e-3), key
    with pytest.raises(DataError, match="numeric=gaussian is not a numeric transform") as refused:
        load_data(f"{people_file}:numeric=gaussian")
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("family", ["gan", "vae", "tabddpm"])
def test_the_table_families_train_on_modes_and_sample_decodable_rows(people_file, family):
    data = load_data(f"{people_file}:numeric=mode-specific")
    cls = family_class(family)
    model = cls(cls.default_config(DataShape("points", data.sample_shape, 0, data.layout), batch_size=128))
    optimizers = model.build_optimizers()
    torch.manual_seed(0)
    for _ in range(3):
        losses = model.training_step(data.x_train[torch.randint(0, len(data.x_train), (128,))], None, optimizers)
    assert all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        rows = model.sample(64, torch.Generator().manual_seed(0)).x
    made = data.decode(rows.numpy())
    assert list(made.columns) == list(data.frame_train.columns) and len(made) == 64
    for block in data.codec.blocks:  # every one-hot block a valid code
        if block.mode_count:
            modes = rows[:, block.start + 1 + block.has_missing:block.start + block.width]
            assert ((modes == 1).sum(1) == 1).all() and ((modes == -1).sum(1) == block.mode_count - 1).all()


def test_numeric_is_refused_off_tables(tmp_path, capsys):
    from trilemma.cli import main

    code = main(["train", "--family", "gan", "--data", "grid25", "--numeric", "mode-specific",
                 "--out", str(tmp_path / "run"), "--steps", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--numeric: only for a .csv table" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_baselines_are_fitted_in_the_reference_encoding_and_score_alike(people_file):
    from trilemma.compare.table_baselines import measure_baselines

    quantile = measure_baselines(load_data(f"{people_file}:target=label"), 300)
    modes = measure_baselines(load_data(f"{people_file}:target=label:numeric=mode-specific"), 300)
    for name in quantile:
        for key in ("column_shapes", "pair_trends", "detection_auc", "exact_copies"):
            assert modes[name][key] == pytest.approx(quantile[name][key], abs=1e-3), (name, key)


def test_compare_with_mode_specific_numbers_says_so_in_its_report(run_cli, people_file, tmp_path):
    out = tmp_path / "compare"
    code, _, stderr = run_cli("compare", "--data", people_file, "--target", "label", "--numeric", "mode-specific",
                              "--families", "gan", "--steps", 20, "--samples", 200, "--quiet", "--out", out)
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["spec"].endswith(":target=label:numeric=mode-specific")
    assert results["data"]["numeric_transform"] == "mode-specific"
    page = html.unescape((out / "report.html").read_text())
    assert "CTGAN's mode-specific normalisation" in page and "modes: age " in page
