"""Column shapes and pair trends against sdmetrics' own metrics, pair by pair."""

import numpy as np
import pandas as pd
import pytest

from trilemma.data import load_data
from trilemma.tables.fidelity import fidelity_figures

sdmetrics = pytest.importorskip("sdmetrics")
from sdmetrics.column_pairs import ContingencySimilarity, CorrelationSimilarity
from sdmetrics.single_column import KSComplement, TVComplement
from tests.tables.table_files import write_people


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return load_data(str(write_people(tmp_path_factory.mktemp("tables") / "people.csv")))


def _scrambled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Each column shuffled on its own (shapes kept, trends lost), then a few cells changed."""
    rng = np.random.default_rng(seed)
    out = pd.DataFrame({c: frame[c].to_numpy()[rng.permutation(len(frame))] for c in frame.columns})
    out.loc[: len(out) // 10, "city"] = "Paris"
    out["income"] = out["income"] * 1.1
    return out


def test_shapes_and_trends_match_sdmetrics(people):
    real, synthetic = people.frame_heldout, _scrambled(people.frame_train, 1)
    figures, details = fidelity_figures(real, synthetic, people.columns)
    numeric = {c.name for c in people.columns if c.kind in ("continuous", "integer", "datetime")}
    for column in people.columns:
        reference = (KSComplement if column.name in numeric else TVComplement).compute(
            real[column.name], synthetic[column.name])
        assert details["column_shapes"][column.name] == pytest.approx(reference, abs=1e-9), column.name
    # sdmetrics groups pairs with missing cells as a value of their own (groupby dropna=False),
    # but pandas drops the missing cells of a nullable boolean column there: given as objects,
    # they are kept, as sdmetrics means them to be and as ours are.
    # Its quality report turns dates into numbers before a pair is scored; so do we, here.
    real, synthetic = (frame.astype({"member": object}).assign(joined=frame["joined"].astype("int64").astype(float))
                       for frame in (real, synthetic))
    for pair in details["pair_trends"]:
        a, b = pair["columns"]
        if pair["metric"] == "correlation":
            reference = CorrelationSimilarity.compute(real[[a, b]], synthetic[[a, b]])
        else:
            reference = ContingencySimilarity.compute(
                real[[a, b]], synthetic[[a, b]], continuous_column_names=[c for c in (a, b) if c in numeric] or None)
        assert pair["score"] == pytest.approx(reference, abs=1e-9), (a, b)
    assert figures["quality"] == pytest.approx((figures["column_shapes"] + figures["pair_trends"]) / 2)


def test_shuffling_columns_keeps_shapes_and_loses_the_related_pairs(people):
    real = people.frame_heldout
    same, _ = fidelity_figures(real, people.frame_train, people.columns)
    shuffled, details = fidelity_figures(real, pd.DataFrame(
        {c: people.frame_train[c].to_numpy()[np.random.default_rng(i).permutation(len(people.frame_train))]
         for i, c in enumerate(people.frame_train.columns)}), people.columns)
    assert abs(shuffled["column_shapes"] - same["column_shapes"]) < 1e-9  # the same values, other rows
    assert same["pair_trends_related"] > 0.9 > shuffled["pair_trends_related"]
    related = {tuple(p["columns"]) for p in details["pair_trends"] if p["related"]}
    assert ("age", "income") in related and ("income", "label") in related


def test_distances_to_the_closest_record_match_sdmetrics(people):
    from sdmetrics.single_table.privacy.dcr_utils import calculate_dcr

    from trilemma.tables.utility import nearest_distances

    synthetic = _scrambled(people.frame_train, 2).iloc[:300]
    kinds = {"continuous": "numerical", "integer": "numerical", "datetime": "datetime",
             "categorical": "categorical", "boolean": "boolean"}
    metadata = {"columns": {c.name: {"sdtype": kinds[c.kind]} for c in people.columns}}
    plain = {"member": object, "age": float}  # sdmetrics cannot take pandas' nullable dtypes here
    reference = calculate_dcr(synthetic.astype(plain), people.frame_heldout.astype(plain), metadata)
    ours = nearest_distances(people.codec, synthetic, people.frame_heldout)[:, 0]
    np.testing.assert_allclose(ours, reference.to_numpy(), rtol=0, atol=1e-9)


def test_copies_of_training_rows_are_flagged_and_fresh_rows_are_not(people):
    from trilemma.tables.utility import privacy

    copies = privacy(people.codec, people.frame_train, people.frame_heldout, people.frame_train)
    fresh = privacy(people.codec, people.frame_train.iloc[:600], people.frame_heldout, people.frame_train.iloc[600:])
    assert copies["exact_copies"] == 1.0 and copies["nndr"] == 0.0
    # n_heldout / n_train = 1/4 of the copies are among the training rows drawn: 0.5 + 0.5/4.
    assert copies["dcr_closer_to_training"] == pytest.approx(0.625, abs=0.05)
    assert fresh["exact_copies"] < 0.05 and abs(fresh["dcr_closer_to_training"] - 0.5) < 0.06 and fresh["nndr"] > 0.5
