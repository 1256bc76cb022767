"""A CSV file as data: column kinds inferred and overridden, the reversible transform, the
split, the samples written back as CSV, and every bad table refused in one line."""

import csv

import numpy as np
import pandas as pd
import pytest
from tests.tables.table_files import COLUMNS, write_people

from trilemma.data import load_data
from trilemma.errors import DataError
from trilemma.tables.codec import TableCodec
from trilemma.tables.writing import csv_text


@pytest.fixture(scope="module")
def people_file(tmp_path_factory):
    return write_people(tmp_path_factory.mktemp("tables") / "people.csv")


def test_column_kinds_are_inferred_and_recorded(people_file):
    data = load_data(f"{people_file}:target=label")
    kinds = {c["name"]: c["kind"] for c in data.describe()["columns"]}
    assert kinds == {"age": "integer", "income": "continuous", "city": "categorical", "member": "boolean",
                     "joined": "datetime", "score": "categorical", "visits": "integer", "label": "categorical"}
    missing = {c["name"]: c["missing_rate"] for c in data.describe()["columns"]}
    assert 0.03 < missing["age"] < 0.07 and missing["city"] == 0 and 0.01 < missing["member"] < 0.05
    assert data.kind == "table" and data.model_kind == "points" and sorted(data.class_names) == ["high", "low"]
    # The seeded 80/20 split, stratified on the target.
    assert len(data.frame_train) == 1200 and len(data.frame_heldout) == 300
    share = [(frame["label"] == "high").mean() for frame in (data.frame_train, data.frame_heldout)]
    assert abs(share[0] - share[1]) < 0.01
    overridden = load_data(f"{people_file}:columns=visits=categorical,score=integer")
    kinds = {c.name: c.kind for c in overridden.columns}
    assert kinds["visits"] == "categorical" and kinds["score"] == "integer"


def test_the_transform_is_reversible_and_decoded_rows_keep_the_real_columns(people_file):
    data = load_data(str(people_file))
    real = data.frame_train
    back = data.codec.decode(data.codec.encode(real))
    pd.testing.assert_frame_equal(back.drop(columns="income"), real.drop(columns="income"))
    np.testing.assert_allclose(back["income"], real["income"], rtol=1e-6)
    assert list(back.dtypes) == list(real.dtypes) and list(back.columns) == COLUMNS
    # Any rows at all decode into the real columns: known categories, values within the real
    # range, whole integers, dates that parse, missing cells where the real column has them.
    noise = np.random.default_rng(0).normal(0, 3, size=(500, data.codec.width))
    made = data.codec.decode(noise)
    assert set(made["city"].dropna()) <= set(real["city"].dropna())
    assert made["income"].min() >= real["income"].min() and made["income"].max() <= real["income"].max()
    assert made["age"].dropna().between(real["age"].min(), real["age"].max()).all()
    assert made["member"].dtype == "boolean" and str(made["joined"].dtype).startswith("datetime64")
    assert made["city"].notna().all() and made["age"].isna().any()
    text = csv_text(made, data.columns)
    rows = list(csv.reader(text.splitlines()))
    assert rows[0] == COLUMNS and {r[3] for r in rows[1:]} <= {"yes", "no", ""}
    assert all(len(r[4]) == 10 for r in rows[1:]) and all("." not in r[0] for r in rows[1:])
    codec = TableCodec.from_json(data.codec.to_json())
    np.testing.assert_array_equal(codec.encode(real), data.codec.encode(real))


@pytest.mark.parametrize("content, message", [
    ("", "the file is empty"),
    ("a,b,c\n", "a header and no rows"),
    ("a,b\n1,2\n", "1 row; a table needs at least 10"),
    ("a,a\n" + "1,2\n" * 12, "column name 'a' appears twice (columns 1 and 2)"),
    ("a,b\n" + "1,2\n" * 5 + "1,2,3\n" + "1,2\n" * 6, "line 7 has 3 cells, the header 2"),
    ("a,b\n" + "1,\n" * 12, "column 'b' (column 2) has every cell missing"),
    ("a,,c\n" + "1,2,3\n" * 12, "line 1, column 2 has no name"),
])
def test_bad_tables_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match="bad.csv") as refused:
        load_data(str(path))
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert path.read_text() == content  # nothing of the user's is changed


def test_text_that_is_not_utf8_needs_its_encoding(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"ville,n\n" + "".join(f"Orl\u00e9ans,{i}\n" for i in range(12)).encode("latin-1"))
    with pytest.raises(DataError, match=r"line 2, byte \d+ is not UTF-8; .*--encoding"):
        load_data(str(path))
    data = load_data(f"{path}:encoding=latin-1")
    assert set(data.frame_train["ville"]) == {"Orl\u00e9ans"}


@pytest.mark.parametrize("option, message", [
    ("target=nope", "--target nope: .* has no such column"),
    ("target=income", "the target must be categorical or boolean"),
    ("target=age", "the column is integer"),
    ("columns=age=colour", "'colour' for column 'age' is not a kind"),
    ("columns=city=integer", "row .*, column 'city' .*'Paris' is not a number"),
])
def test_bad_table_options_are_refused(people_file, option, message):
    with pytest.raises(DataError, match=message):
        load_data(f"{people_file}:{option}")
