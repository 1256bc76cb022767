"""A reversible transform between a table (a DataFrame of `trilemma.tables.columns` kinds) and
the float32 vectors every family trains on.

Per column, fitted on the training rows only:

- numbers (continuous, integer) and datetimes (as days since 1970): a quantile transform to
  normal scores (TabDDPM's choice): the value's empirical quantile, through Φ⁻¹. Decoding takes
  a score back through the same grid, clipped to the grid's ends, so a decoded value never
  leaves the training range; integers are rounded, dates rounded to the day (timestamps to the
  second). Ties get the mean of their quantiles (sklearn's `QuantileTransformer` does the same).
  A column with missing cells adds one coordinate, +1 missing / −1 present, and the missing
  cell's score is 0 (the median).
- categorical and boolean: one coordinate per category (one-hot, ±1), plus one for missing when
  the column has missing cells. Decoding takes the largest, so a decoded table holds only the
  categories of the real one.

With ``numeric="mode-specific"`` numbers and dates are instead encoded as CTGAN's
mode-specific normalisation (Xu et al. 2019, §4.2): a Gaussian mixture is fitted to the column
(`trilemma.tables.mixture`, all columns at once), each value is assigned its most probable mode k
and encoded as α = (x − μ_k) / (4σ_k) followed by a one-hot of k (left out when the column has one
mode); its missing flag, if any, stays right after α. Decoding takes μ_k + 4σ_k·α for the largest
mode coordinate, clipped to the training range, and rounds as above.

`TableCodec.decode(encode(frame))` gives `frame` back: every value of a boolean, categorical,
integer or date column exactly, continuous values to within the grid's interpolation
(exactly at the grid's points), or under mode-specific normalisation to float32 precision.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtri

from trilemma.tables import NUMERIC_TRANSFORMS
from trilemma.tables.columns import Column
from trilemma.tables.mixture import Modes, fit_modes

GRID = 1000  # quantile levels of a numeric column's transform
_EPOCH = pd.Timestamp("1970-01-01")
_DAY_SECONDS = 86_400.0


@dataclass
class Block:
    """Where one column lives in the encoded vector: coordinates start … start + width."""

    column: Column
    start: int
    width: int
    quantiles: list[float] | None = None  # numeric: the values at GRID equally spaced levels
    has_missing: bool = False
    # Mode-specific numeric: the mixture's [weights, means, stds] and the training [min, max].
    modes: list[list[float]] | None = None
    bounds: list[float] | None = None

    @property
    def numeric(self) -> bool:
        return self.column.numeric

    @property
    def mixture(self) -> Modes | None:
        if self.modes is None:
            return None
        return Modes(*(np.asarray(part, dtype=np.float64) for part in self.modes))

    @property
    def mode_count(self) -> int:
        """Mode coordinates of a mode-specific number (0 with one mode, or for other blocks)."""
        count = len(self.modes[0]) if self.modes is not None else 0
        return count if count > 1 else 0

    @property
    def first_mode(self) -> int:
        """Where a mode-specific number's mode block starts: after its score and its flag."""
        return self.start + 1 + self.has_missing

    @property
    def flag(self) -> int | None:
        """A number's missing-cell flag coordinate (None: the column has no missing cells, or is
        categorical, whose missing cells are a category)."""
        return self.start + 1 if self.numeric and self.has_missing else None

    @property
    def value_coordinates(self) -> list[int]:
        """The coordinates that hold the cell's value: a number's score (α and its mode block,
        under mode-specific normalisation), a category's whole one-hot block."""
        if not self.numeric:
            return list(range(self.start, self.start + self.width))
        return [self.start, *range(self.first_mode, self.first_mode + self.mode_count)]

    @property
    def labels(self) -> list[str]:
        """A categorical block's coordinates, in order."""
        return [*self.column.categories, *(["(missing)"] if self.has_missing else [])]


def _levels(count: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, count)


def _scores(count: int) -> np.ndarray:
    # The grid's ends at ±Φ⁻¹(1 − 1e-4) ≈ ±3.7, not ±∞.
    return ndtri(np.clip(_levels(count), 1e-4, 1 - 1e-4))


def as_numbers(series: pd.Series, column: Column) -> np.ndarray:
    if column.kind == "datetime":
        days = (series - _EPOCH) / pd.Timedelta(days=1)
        return days.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


class TableCodec:
    """Encodes a DataFrame into float32 rows and decodes rows into a DataFrame of the same
    columns, order and dtypes. Fit with `fit`; save with `to_json` / `from_json`."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.width = sum(b.width for b in blocks)

    @property
    def numeric_transform(self) -> str:
        return "mode-specific" if any(b.modes is not None for b in self.blocks) else "quantile"

    @property
    def columns(self) -> list[Column]:
        return [b.column for b in self.blocks]

    def block(self, name: str) -> Block:
        return next(b for b in self.blocks if b.column.name == name)

    def without(self, name: str) -> TableCodec:
        """The same transform of every column but `name`, its blocks laid end to end."""
        blocks, start = [], 0
        for b in self.blocks:
            if b.column.name != name:
                blocks.append(replace(b, start=start))
                start += b.width
        return TableCodec(blocks)

    def layout(self) -> tuple[tuple[str, int], ...]:
        """The encoded row's segments (`trilemma.families.table_layout`): a score per number or
        date (with its one-hot mode block under mode-specific normalisation), a ±1 flag per column
        with missing cells, a one-hot block per category column (its missing cells one more
        category)."""
        segments: list[tuple[str, int]] = []
        for b in self.blocks:
            if b.numeric:
                segments += [("gaussian", 1)] + ([("binary", 1)] if b.has_missing else [])
                segments += [("mode", b.mode_count)] if b.mode_count else []
            else:
                segments.append(("categorical", b.width))
        return tuple(segments)

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns: list[Column], numeric: str = "quantile") -> TableCodec:
        """The transform of `columns` fitted on `frame`'s rows; `numeric` is how numbers and dates
        are encoded, one of `NUMERIC_TRANSFORMS`."""
        if numeric not in NUMERIC_TRANSFORMS:
            raise ValueError(f"unknown numeric transform '{numeric}' (known: {', '.join(NUMERIC_TRANSFORMS)})")
        numbers = {c.name: _present(as_numbers(frame[c.name], c)) for c in columns if c.numeric}
        mixtures = dict(zip(numbers, fit_modes(list(numbers.values())))) if numeric == "mode-specific" else {}
        blocks, start = [], 0
        for column in columns:
            has_missing = bool(column.missing_rate > 0)
            if column.name in mixtures:
                found = mixtures[column.name]
                modes = [[float(v) for v in part] for part in (found.weights, found.means, found.stds)]
                values = numbers[column.name]
                block = Block(column, start, 1 + has_missing, None, has_missing, modes,
                              [float(values.min()), float(values.max())])
                block.width += block.mode_count
            elif column.numeric:
                values = numbers[column.name]
                grid = np.quantile(values, _levels(min(GRID, max(2, len(np.unique(values))))))
                block = Block(column, start, 1 + has_missing, [float(q) for q in grid], has_missing)
            else:
                block = Block(column, start, len(column.categories) + has_missing, None, has_missing)
            blocks.append(block)
            start += block.width
        return cls(blocks)

    # Encoding.
    def encode(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.full((len(frame), self.width), -1.0, dtype=np.float64)
        for block in self.blocks:
            series = frame[block.column.name]
            if block.numeric:
                self._encode_numeric(block, series, out)
            else:
                self._encode_categorical(block, series, out)
        return out.astype(np.float32)

    def _encode_numeric(self, block: Block, series: pd.Series, out: np.ndarray) -> None:
        values = as_numbers(series, block.column)
        missing = np.isnan(values)
        encoded = self._mode_scores(block, values, missing, out) if block.modes is not None \
            else self._quantile_scores(block, values, missing)
        out[:, block.start] = np.where(missing, 0.0, encoded)
        if block.has_missing:
            out[:, block.start + 1] = np.where(missing, 1.0, -1.0)

    @staticmethod
    def _quantile_scores(block: Block, values: np.ndarray, missing: np.ndarray) -> np.ndarray:
        grid = np.asarray(block.quantiles)
        scores = _scores(len(grid))
        filled = np.where(missing, np.median(grid), values)
        # Mean of the interpolations from below and from above, so that tied grid points (a
        # value most rows share) give the middle of their quantiles, not the first.
        up = np.interp(filled, grid, scores)
        down = -np.interp(-filled, -grid[::-1], -scores[::-1])
        return 0.5 * (up + down)

    @staticmethod
    def _mode_scores(block: Block, values: np.ndarray, missing: np.ndarray, out: np.ndarray) -> np.ndarray:
        """α = (x − μ_k) / (4σ_k) for the value's most probable mode k, with k's one-hot written
        into `out`; a missing cell sits on the heaviest mode."""
        mixture = block.mixture
        mode = np.full(len(values), int(np.argmax(mixture.weights)))
        if (~missing).any():
            mode[~missing] = mixture.posterior(values[~missing]).argmax(axis=1)
        if block.mode_count:
            out[np.arange(len(values)), block.first_mode + mode] = 1.0
        return (values - mixture.means[mode]) / (4 * mixture.stds[mode])

    def _encode_categorical(self, block: Block, series: pd.Series, out: np.ndarray) -> None:
        codes = self.category_codes(block, series)
        out[np.arange(len(series)), block.start + codes] = 1.0

    def category_codes(self, block: Block, series: pd.Series) -> np.ndarray:
        """Each cell's index among `block.labels` (missing: the last); a category the codec was
        not fitted with counts as missing if the column has missing cells, else the most common."""
        lookup = {label: i for i, label in enumerate(block.column.categories)}
        fallback = len(block.column.categories) if block.has_missing else 0
        texts = _category_texts(series, block.column)
        return np.array([lookup.get(t, fallback) if t is not None else fallback for t in texts], dtype=np.int64)

    # Decoding.
    def decode(self, rows: np.ndarray) -> pd.DataFrame:
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"rows of width {self.width} expected, got shape {rows.shape}")
        return pd.DataFrame({b.column.name: self._decode_block(b, rows) for b in self.blocks})

    def _decode_block(self, block: Block, rows: np.ndarray) -> pd.Series:
        column = block.column
        part = rows[:, block.start:block.start + block.width]
        if block.numeric:
            if block.modes is not None:
                mixture = block.mixture
                modes = rows[:, block.first_mode:block.first_mode + block.mode_count]
                mode = modes.argmax(axis=1) if block.mode_count else np.zeros(len(rows), dtype=np.int64)
                values = np.clip(mixture.means[mode] + 4 * mixture.stds[mode] * part[:, 0], *block.bounds)
            else:
                grid = np.asarray(block.quantiles)
                scores = _scores(len(grid))
                values = np.interp(np.clip(part[:, 0], scores[0], scores[-1]), scores, grid)
            missing = part[:, 1] > 0 if block.has_missing else np.zeros(len(rows), dtype=bool)
            return _numeric_series(values, missing, column)
        codes = part.argmax(axis=1)
        labels = block.labels
        cells = [None if block.has_missing and code == len(labels) - 1 else labels[code] for code in codes]
        if column.kind == "boolean":
            return pd.Series([None if c is None else c == "true" for c in cells], dtype="boolean")
        return pd.Series(cells, dtype=object)

    def to_json(self) -> dict[str, Any]:
        return {"blocks": [{"column": b.column.to_json(), "start": b.start, "width": b.width,
                            "quantiles": b.quantiles, "has_missing": b.has_missing,
                            **({"modes": b.modes, "bounds": b.bounds} if b.modes is not None else {})}
                           for b in self.blocks]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableCodec:
        return cls([Block(Column.from_json(b["column"]), b["start"], b["width"], b["quantiles"], b["has_missing"],
                          b.get("modes"), b.get("bounds")) for b in data["blocks"]])


def _present(values: np.ndarray) -> np.ndarray:
    return values[~np.isnan(values)]


def _category_texts(series: pd.Series, column: Column) -> list[str | None]:
    if column.kind == "boolean":
        return [None if pd.isna(v) else ("true" if bool(v) else "false") for v in series]
    return [None if pd.isna(v) else str(v) for v in series]


def _numeric_series(values: np.ndarray, missing: np.ndarray, column: Column) -> pd.Series:
    if column.kind == "integer":
        series = pd.Series(np.round(values), dtype="float64").astype("Int64")
    elif column.kind == "datetime":  # to the second, or to the day for dates
        seconds = np.round(values * _DAY_SECONDS) if column.timestamp else np.round(values) * _DAY_SECONDS
        series = pd.Series(_EPOCH + pd.to_timedelta(seconds, unit="s"))
    else:
        series = pd.Series(np.round(values, column.decimals), dtype="float64")
    series[missing] = pd.NA if column.kind == "integer" else (pd.NaT if column.kind == "datetime" else np.nan)
    return series

