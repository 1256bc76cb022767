"""A table written back as CSV the way the user's file writes it, the table data of a run, and
rows of a run's table read from a user's file.

Cells are written in the file's own forms: a boolean with the file's spellings (yes/no, 1/0…),
a date as YYYY-MM-DD and a timestamp as YYYY-MM-DDTHH:MM:SS, an integer without a decimal
point, a continuous value with at most the decimals the file has, a missing cell empty.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trilemma.errors import DataError, printable
from trilemma.io import write_text
from trilemma.tables.columns import Column


def _cell(value: Any, column: Column) -> str:
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value)):
        return ""
    if column.kind == "boolean":
        return column.true_false[0] if bool(value) else column.true_false[1]
    if column.kind == "datetime":
        return value.strftime("%Y-%m-%dT%H:%M:%S" if column.timestamp else "%Y-%m-%d")
    if column.kind == "integer":
        return str(int(value))
    if column.kind == "continuous":
        text = f"{float(value):.{column.decimals}f}"
        return text.rstrip("0").rstrip(".") if "." in text else text
    return str(value)


def csv_text(frame: pd.DataFrame, columns: list[Column]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in columns])
    series = [frame[c.name].tolist() for c in columns]
    for row in zip(*series):
        writer.writerow([_cell(value, column) for value, column in zip(row, columns)])
    return out.getvalue()


def write_csv(frame: pd.DataFrame, columns: list[Column], path: str | Path) -> Path:
    """`frame` as a CSV file at `path`, written atomically."""
    return write_text(path, csv_text(frame, columns))


def table_of_run(run: Any):
    """The `TableData` a table run was trained on, read again from its file, which must be the
    one the run recorded (its sha256), or the encoding would not be the run's."""
    from trilemma.data import load_data

    data = run.config["data"]
    dataset = load_data(data["spec"])
    if dataset.kind != "table":
        raise DataError(f"{printable(run.run_dir)}: a run on {data.get('name')}, not on a table")
    if data.get("sha256") and dataset.info["sha256"] != data["sha256"]:
        raise DataError(f"{printable(data['spec'])}: the file has changed since {printable(run.run_dir)} was "
                        "trained on it; its rows can no longer be decoded as they were encoded")
    return dataset


def read_rows(path: str | Path, dataset: Any, encoding: str | None = None) -> pd.DataFrame:
    """Rows of a run's table from a user's CSV (for `impute` and `anomaly`): the run's columns,
    in any order, read with the run's column kinds; missing cells stay missing. A column the run
    does not know, or one it lacks, is a one-line `DataError` naming the file."""
    from trilemma.tables.columns import to_frame
    from trilemma.tables.reading import read_csv

    raw = read_csv(path, encoding, training=False)
    known = {c.name: c for c in dataset.columns}
    extra = [name for name in raw.columns if name not in known]
    lacking = [name for name in known if name not in raw.columns]
    if extra or lacking:
        parts = ([f"columns the run does not know: {', '.join(map(printable, extra))}"] if extra else []) + \
                ([f"the run's columns it lacks: {', '.join(map(printable, lacking))}"] if lacking else [])
        raise DataError(f"{printable(path)}: {'; '.join(parts)} (the run was trained on "
                        f"{', '.join(map(printable, known))})")
    frame = to_frame(raw, [known[name] for name in raw.columns])
    return frame[list(known)]
