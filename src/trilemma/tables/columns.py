"""What each column of a table holds, inferred from its cells or named by the user, and the table
as a pandas DataFrame of those kinds.

Kinds (`KINDS`), tried in this order on a column's non-missing cells:

- ``boolean``: two spellings of true and false only (true/false, yes/no, t/f, y/n, 1/0, any case);
- ``datetime``: ISO 8601 dates (2024-05-01) or timestamps (2024-05-01T13:45[:30[.123]], or a
  space instead of the T), every cell;
- numbers with at most `FEW_VALUES` distinct values, and at most one for two cells:
  ``categorical`` (a code, a rating);
- whole numbers: ``integer``; other numbers: ``continuous``;
- anything else: ``categorical`` (text).

`--columns name=kind,…` overrides the inference; a cell that the kind cannot read is an error
naming the column, the line and the cell.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trilemma.errors import DataError, printable
from trilemma.tables.reading import RawTable

KINDS = ("continuous", "integer", "categorical", "boolean", "datetime")
FEW_VALUES = 10
_BOOLEAN_PAIRS = (("true", "false"), ("yes", "no"), ("t", "f"), ("y", "n"), ("1", "0"))
_INTEGER = re.compile(r"^[+-]?\d+$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")


@dataclass
class Column:
    """One column: its kind and what writing its values back needs. `categories` (categorical
    and boolean) are the values as text, most frequent first; `true_false` the file's own
    spellings of a boolean's two values; `timestamp` whether a datetime carries a time of day;
    `decimals` the most decimals a continuous value has in the file."""

    name: str
    kind: str
    missing_rate: float = 0.0
    categories: list[str] = field(default_factory=list)
    true_false: list[str] = field(default_factory=list)
    timestamp: bool = False
    decimals: int = 0

    @property
    def numeric(self) -> bool:
        """Numbers or dates: compared by their values, not as categories."""
        return self.kind in ("continuous", "integer", "datetime")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Column:
        return cls(**data)


def _number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _boolean_spelling(values: set[str]) -> tuple[str, str] | None:
    lowered = {v.lower() for v in values}
    for true, false in _BOOLEAN_PAIRS:
        if lowered <= {true, false}:
            return true, false
    return None


def _most_common(cells: list[str], lowered: str) -> str:
    spellings = [c for c in cells if c.lower() == lowered]
    if not spellings:
        return lowered
    values, counts = np.unique(spellings, return_counts=True)
    return str(values[np.argmax(counts)])


def infer_column(name: str, cells: list[str | None], kind: str | None = None) -> Column:
    """The `Column` of these cells (None: missing); `kind` forces one of `KINDS`."""
    present = [c for c in cells if c is not None]
    missing_rate = 1 - len(present) / len(cells)
    distinct = set(present)
    if kind is None:
        kind = _infer_kind(distinct, len(present))
    column = Column(name, kind, missing_rate)
    if kind == "boolean":
        spelling = _boolean_spelling(distinct) or ("true", "false")
        column.true_false = [_most_common(present, spelling[0]), _most_common(present, spelling[1])]
        column.categories = ["false", "true"]
    elif kind == "categorical":
        values, counts = np.unique(np.asarray(present, dtype=object).astype(str), return_counts=True)
        column.categories = [str(v) for v in values[np.argsort(-counts, kind="stable")]]
    elif kind == "datetime":
        column.timestamp = any(len(v) > 10 for v in distinct)
    elif kind == "continuous":
        column.decimals = max((len(v.partition(".")[2]) for v in distinct if "e" not in v.lower()), default=6)
    return column


def _infer_kind(distinct: set[str], present: int) -> str:
    if _boolean_spelling(distinct) is not None and len(distinct) <= 4:
        return "boolean"
    if all(_ISO.match(v) for v in distinct) and _dates_parse(distinct):
        return "datetime"
    if all(_number(v) is not None for v in distinct):
        if len({_number(v) for v in distinct}) <= min(FEW_VALUES, present // 2):
            return "categorical"
        return "integer" if all(_INTEGER.match(v) for v in distinct) else "continuous"
    return "categorical"


def _dates_parse(values: set[str]) -> bool:
    try:
        pd.to_datetime(pd.Series(sorted(values)), format="ISO8601")
    except (ValueError, TypeError):
        return False
    return True


def parse_overrides(text: str, columns: list[str]) -> dict[str, str]:
    """`--columns age=integer,zip=categorical` as {name: kind}, every name a column, every kind known."""
    overrides = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, kind = part.rpartition("=")
        name, kind = name.strip(), kind.strip()
        if not sep or not name:
            raise DataError(f"--columns {printable(text)}: '{printable(part)}' is not NAME=KIND")
        if kind not in KINDS:
            raise DataError(f"--columns: '{printable(kind)}' for column '{printable(name)}' is not a kind "
                            f"(known: {', '.join(KINDS)})")
        if name not in columns:
            raise DataError(f"--columns: the table has no column '{printable(name)}' "
                            f"(it has {', '.join(printable(c) for c in columns[:8])}{', …' if len(columns) > 8 else ''})")
        overrides[name] = kind
    return overrides


def infer_columns(table: RawTable, overrides: dict[str, str] | None = None) -> list[Column]:
    overrides = overrides or {}
    return [infer_column(name, table.column(i), overrides.get(name)) for i, name in enumerate(table.columns)]


def to_frame(table: RawTable, columns: list[Column]) -> pd.DataFrame:
    """The table's cells as a DataFrame with each column's dtype: float64 (continuous), Int64
    (integer), boolean, datetime64 and object (categorical, the cells' text). A cell its
    column's kind cannot read is a `DataError` with its line."""
    data = {}
    for index, column in enumerate(columns):
        cells = table.column(index)
        data[column.name] = _convert(cells, column, table, index)
    return pd.DataFrame(data)


def _convert(cells: list[str | None], column: Column, table: RawTable, index: int) -> pd.Series:
    def bad(row: int, why: str) -> DataError:
        # the header is line 1; blank lines are not counted, so this is the row's place in the table
        return DataError(f"{printable(table.path)}: row {row + 1}, column '{printable(column.name)}' "
                         f"(column {index + 1}): '{printable(cells[row])}' {why}")

    if column.kind == "categorical":
        return pd.Series(cells, dtype=object)
    if column.kind == "boolean":
        truth = {column.true_false[0].lower(): True, column.true_false[1].lower(): False}
        values = []
        for row, cell in enumerate(cells):
            if cell is not None and cell.lower() not in truth:
                raise bad(row, f"is not {column.true_false[0]} or {column.true_false[1]}")
            values.append(None if cell is None else truth[cell.lower()])
        return pd.Series(values, dtype="boolean")
    if column.kind == "datetime":
        for row, cell in enumerate(cells):
            if cell is not None and not _ISO.match(cell):
                raise bad(row, "is not an ISO 8601 date or timestamp")
        return pd.to_datetime(pd.Series(cells, dtype=object), format="ISO8601")
    numbers = []
    for row, cell in enumerate(cells):
        value = None if cell is None else _number(cell)
        if cell is not None and value is None:
            raise bad(row, "is not a number")
        if column.kind == "integer" and value is not None and not float(value).is_integer():
            raise bad(row, "is not a whole number")
        numbers.append(value)
    series = pd.Series([np.nan if v is None else v for v in numbers], dtype="float64")
    return series.round().astype("Int64") if column.kind == "integer" else series
