"""The untrained baselines of a table comparison: independent marginals keep each column and no
relation, the Gaussian copula keeps the linear relations too, the real rows are copies; and the
privacy priority that tells a copier from a generator."""

import numpy as np
import pytest
from tests.tables.table_files import write_people

from trilemma.compare.scoring import privacy_score, recommend
from trilemma.data import load_data
from trilemma.tables.baselines import GaussianCopula, baseline_rows
from trilemma.tables.codec import as_numbers


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    return load_data(f"{write_people(tmp_path_factory.mktemp('tables') / 'people.csv', rows=3000)}:target=label")


def _correlation(frame, a: str, b: str) -> float:
    kept = frame[[a, b]].dropna()
    return float(np.corrcoef(kept[a].astype(float), kept[b].astype(float))[0, 1])


def test_the_copula_keeps_relations_that_independent_marginals_lose(people):
    real = people.frame_train
    rows = {name: people.decode(baseline_rows(name, people.codec, people.x_train.numpy(), 4000, seed=0))
            for name in ("marginals", "copula")}
    wanted = _correlation(real, "age", "income")
    assert wanted > 0.5
    assert abs(_correlation(rows["copula"], "age", "income") - wanted) < 0.06
    assert abs(_correlation(rows["marginals"], "age", "income")) < 0.05
    # A numeric-categorical relation (Paris adds to income) is kept by the copula only.
    def paris_gap(frame):
        return frame.loc[frame.city == "Paris", "income"].mean() - frame.loc[frame.city != "Paris", "income"].mean()
    assert paris_gap(real) > 10000
    assert paris_gap(rows["copula"]) > 0.5 * paris_gap(real) and abs(paris_gap(rows["marginals"])) < 2000
    for frame in rows.values():
        # Both keep each column's frequencies and missing cells, and only real categories.
        shares = frame["city"].value_counts(normalize=True)
        np.testing.assert_allclose(shares.reindex(["Paris", "Lyon", "Nice", "Lille"]),
                                   real["city"].value_counts(normalize=True).reindex(["Paris", "Lyon", "Nice", "Lille"]),
                                   atol=0.03)
        assert abs(frame["age"].isna().mean() - real["age"].isna().mean()) < 0.015
        assert abs(frame["member"].isna().mean() - real["member"].isna().mean()) < 0.015
        joined = as_numbers(frame["joined"], people.codec.block("joined").column)
        assert np.nanmin(joined) >= np.nanmin(as_numbers(real["joined"], people.codec.block("joined").column))


def test_the_copula_fits_a_valid_correlation_and_real_rows_are_training_rows(people):
    copula = GaussianCopula.fit(people.codec, people.x_train.numpy())
    assert np.allclose(np.diag(copula.correlation), 1) and np.allclose(copula.correlation, copula.correlation.T)
    x = people.x_train.numpy()
    rows = baseline_rows("real", people.codec, x, 500, seed=1)
    assert {tuple(r) for r in rows} <= {tuple(r) for r in x} and len({tuple(r) for r in rows}) > 450
    with pytest.raises(ValueError, match="unknown baseline 'ctgan'"):
        baseline_rows("ctgan", people.codec, x, 10, seed=0)


def test_privacy_scores_a_copier_zero_and_a_generator_one():
    assert privacy_score({"dcr_closer_to_training": 0.5, "exact_copies": 0.0}) == 1.0
    assert privacy_score({"dcr_closer_to_training": 0.42, "exact_copies": 0.0}) == 1.0
    assert privacy_score({"dcr_closer_to_training": 1.0, "exact_copies": 1.0}) == 0.0
    assert privacy_score({"fid": 3.0}) is None
    families = {
        "copier": {"column_shapes": 0.99, "pair_trends": 0.99, "detection_auc": 0.5,
                   "dcr_closer_to_training": 1.0, "exact_copies": 0.9},
        "generator": {"column_shapes": 0.95, "pair_trends": 0.93, "detection_auc": 0.6,
                      "dcr_closer_to_training": 0.51, "exact_copies": 0.0},
    }
    assert recommend({"families": families}, {"fidelity": 1.0})["family"] == "copier"
    chosen = recommend({"families": families}, {"fidelity": 1.0, "privacy": 1.0})
    assert chosen["family"] == "generator" and any("exact copies" in r for r in chosen["reasons"])


def test_the_recommendation_says_where_the_chosen_family_stands_against_the_copula():
    from trilemma.compare.table_baselines import baseline_reason

    copula = {"label": "copula (untrained)", "column_shapes": 0.97, "pair_trends": 0.93, "pair_trends_related": 0.86,
              "detection_auc": 0.67, "efficacy_accuracy": 0.85}
    better = {**copula, "column_shapes": 0.98, "pair_trends_related": 0.95, "detection_auc": 0.58,
              "efficacy_accuracy": 0.98}
    worse = {**copula, "column_shapes": 0.90, "pair_trends_related": 0.80, "detection_auc": 0.80,
             "efficacy_accuracy": 0.80}
    mixed = {**better, "column_shapes": 0.96}
    assert "beats the untrained Gaussian copula on every figure" in baseline_reason("vae", better, {"copula": copula})
    assert "is as good a generator" in baseline_reason("gan", worse, {"copula": copula})
    line = baseline_reason("vae", mixed, {"copula": copula})
    assert "on trends of related pairs 0.950 against 0.860" in line and "not on shapes + trends 1.890 against 1.900" in line
    assert baseline_reason("vae", {"fid": 3.0}, {"copula": copula}) is None
