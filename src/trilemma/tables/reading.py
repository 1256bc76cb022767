"""A CSV file read as a table of text cells, every problem a `DataError` naming the file and,
where there is one, the line and the column.

The file is only read. Cells stay text here; `trilemma.tables.columns` decides what each column
holds. A cell that is empty or one of `MISSING_TOKENS` is missing (None).

Size: a file of more than `MAX_BYTES` is refused rather than streamed. A table's transform is
fitted on all of it, and a synthetic table of a few hundred megabytes is already more than a
2-core machine trains on in a session; split or sample it first.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from trilemma.errors import DataError, printable

MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
MIN_ROWS = 10  # the 80/20 split needs rows on both sides, and the metrics more than a handful
MAX_BYTES = 512 * 2**20


@dataclass
class RawTable:
    """The header and the rows' cells (None: missing), as the file holds them."""

    path: Path
    columns: list[str]
    rows: list[list[str | None]]

    def column(self, index: int) -> list[str | None]:
        return [row[index] for row in self.rows]


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(path: Path, data: bytes, encoding: str | None) -> str:
    name = encoding or "utf-8-sig"  # a byte-order mark, which spreadsheets write, is not a column name
    try:
        codecs.lookup(name)
    except LookupError:
        raise DataError(f"--encoding {printable(encoding)}: unknown text encoding") from None
    try:
        return data.decode(name)
    except UnicodeDecodeError as bad:
        where = f"line {_line_of(data, bad.start)}, byte {bad.start}"
        if encoding:
            raise DataError(f"{printable(path)}: {where} is not valid {encoding}") from None
        raise DataError(f"{printable(path)}: {where} is not UTF-8; if the file is in another encoding, "
                        "name it with --encoding (e.g. --encoding latin-1)") from None


def read_csv(path: str | Path, encoding: str | None = None, *, training: bool = True) -> RawTable:
    """The table in `path` (comma-separated, a header line first), or a `DataError` saying what
    is wrong: empty, a header only, a ragged row, a duplicated or empty column name, text that is
    not in the encoding; and for a table to train on (`training`), fewer than `MIN_ROWS` rows or
    a column with every cell missing (rows given to a trained model may be few, with gaps)."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise DataError(f"{printable(path)}: {size / 2**20:,.0f} MiB is more than the {MAX_BYTES // 2**20} MiB "
                        "a table may have here (it is read whole); sample or split it first")
    text = _decode(path, path.read_bytes(), encoding)
    if not text.strip():
        raise DataError(f"{printable(path)}: the file is empty")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    numbered = []  # (the line a record ends on, its cells); blank lines carry no row
    try:
        for cells in reader:
            if any(cell.strip() for cell in cells):
                numbered.append((reader.line_num, cells))
    except csv.Error as bad:
        raise DataError(f"{printable(path)}: line {reader.line_num} is not CSV ({bad})") from None
    (header_line, header), body = numbered[0], numbered[1:]
    columns = [name.strip() for name in header]
    _check_header(path, header_line, columns)
    if not body:
        raise DataError(f"{printable(path)}: a header and no rows")
    rows = []
    for number, cells in body:
        if len(cells) != len(columns):
            raise DataError(f"{printable(path)}: line {number} has {len(cells)} cells, the header "
                            f"{len(columns)} ({', '.join(columns[:6])}{', …' if len(columns) > 6 else ''})")
        rows.append([None if cell.strip().lower() in MISSING_TOKENS else cell.strip() for cell in cells])
    if training and len(rows) < MIN_ROWS:
        raise DataError(f"{printable(path)}: {len(rows)} row{'s' if len(rows) != 1 else ''}; "
                        f"a table needs at least {MIN_ROWS} to split and to measure")
    table = RawTable(path, columns, rows)
    for index, name in enumerate(columns if training else []):
        if all(cell is None for cell in table.column(index)):
            raise DataError(f"{printable(path)}: column '{printable(name)}' (column {index + 1}) has "
                            "every cell missing; drop it")
    return table


def _check_header(path: Path, line: int, columns: list[str]) -> None:
    for index, name in enumerate(columns):
        if not name:
            raise DataError(f"{printable(path)}: line {line}, column {index + 1} has no name")
    seen: dict[str, int] = {}
    for index, name in enumerate(columns):
        if name in seen:
            raise DataError(f"{printable(path)}: line {line}: column name '{printable(name)}' appears twice "
                            f"(columns {seen[name] + 1} and {index + 1})")
        seen[name] = index
