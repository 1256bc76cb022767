"""A CSV file as a `Dataset` of kind "table": its rows encoded by a `TableCodec` fitted on the
training split, which every family models as vectors (points), and decoded back into a table.

Spec options (`trilemma.data.parse_spec`), which the CLI's flags fill in:

- ``target=NAME``: a categorical or boolean column the 80/20 split is stratified on; its values
  are the classes of `--conditional` runs and of the train-on-synthetic scores;
- ``columns=NAME=KIND,…``: kinds that override the inference (`trilemma.tables.columns`);
- ``encoding=NAME``: the file's text encoding (default UTF-8);
- ``numeric=quantile|mode-specific``: how the families see numbers and dates
  (`trilemma.tables.codec`); quantile by default.

Two codecs: ``codec`` is the families' space (the numeric transform asked for) and
``reference_codec`` the quantile transform that the figures (detection, train-on-synthetic,
the baselines) always encode with, so that a figure does not change with the families' encoding.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from trilemma.data.dataset import Dataset, Normalizer, split_indices
from trilemma.errors import DataError, printable
from trilemma.tables import NUMERIC_TRANSFORMS
from trilemma.tables.codec import TableCodec
from trilemma.tables.columns import Column, infer_columns, parse_overrides, to_frame
from trilemma.tables.reading import read_csv


class TableData(Dataset):
    """A `Dataset` whose rows are a table's: ``x_*`` are the encoded rows, ``frame_train`` and
    ``frame_heldout`` the rows themselves, ``codec`` the transform between the two."""

    codec: TableCodec
    reference_codec: TableCodec
    frame_train: pd.DataFrame
    frame_heldout: pd.DataFrame
    target: str | None

    @property
    def columns(self) -> list[Column]:
        return self.codec.columns

    @property
    def layout(self) -> tuple[tuple[str, int], ...]:
        return self.codec.layout()

    def decode(self, rows: np.ndarray) -> pd.DataFrame:
        """Rows in the data's units (`Normalizer.from_model`'s) as a table of the real columns."""
        return self.codec.decode(rows)


def load_table(path: Path, options: dict[str, str], spec: str, split_seed: int,
               heldout_fraction: float) -> TableData:
    data = path.read_bytes()
    raw = read_csv(path, options.get("encoding"))
    overrides = parse_overrides(options.get("columns", ""), raw.columns)
    columns = infer_columns(raw, overrides)
    frame = to_frame(raw, columns)
    target = options.get("target")
    labels, class_names = None, []
    if target is not None:
        labels, class_names = _target_labels(path, frame, columns, target)
    train, heldout = split_indices(len(frame), labels, heldout_fraction, split_seed)
    frame_train = frame.iloc[train].reset_index(drop=True)
    frame_heldout = frame.iloc[heldout].reset_index(drop=True)
    numeric = options.get("numeric", "quantile")
    if numeric not in NUMERIC_TRANSFORMS:
        raise DataError(f"data spec '{spec}': numeric={printable(numeric)} is not a numeric transform "
                        f"(known: {', '.join(NUMERIC_TRANSFORMS)})")
    reference = TableCodec.fit(frame_train, columns)
    codec = reference if numeric == "quantile" else TableCodec.fit(frame_train, columns, numeric)
    x_train, x_heldout = codec.encode(frame_train), codec.encode(frame_heldout)
    info = {
        "source": f"{printable(path)}: {len(frame):,} rows, {len(columns)} columns",
        "sha256": hashlib.sha256(data).hexdigest(),
        "columns": [{"name": c.name, "kind": c.kind, "missing_rate": round(c.missing_rate, 6),
                     **({"categories": len(c.categories)} if c.categories else {})} for c in columns],
        "target": target, "encoded_width": codec.width, "numeric_transform": numeric,
        **({"modes": {b.column.name: len(b.modes[0]) for b in codec.blocks if b.modes is not None}}
           if numeric == "mode-specific" else {}),
        "spec": spec, "split_seed": split_seed, "heldout_fraction": heldout_fraction,
    }
    y_train = None if labels is None else torch.from_numpy(labels[train])
    y_heldout = None if labels is None else torch.from_numpy(labels[heldout])
    dataset = TableData(
        name=printable(path.name), kind="table", x_train=torch.from_numpy(x_train), y_train=y_train,
        x_heldout=torch.from_numpy(x_heldout), y_heldout=y_heldout, class_names=class_names,
        normalizer=Normalizer.identity(codec.width), info=info)
    dataset.codec, dataset.reference_codec = codec, reference
    dataset.frame_train, dataset.frame_heldout, dataset.target = frame_train, frame_heldout, target
    return dataset


def _target_labels(path: Path, frame: pd.DataFrame, columns: list[Column], target: str) -> tuple[np.ndarray, list[str]]:
    column = next((c for c in columns if c.name == target), None)
    if column is None:
        raise DataError(f"--target {printable(target)}: {printable(path)} has no such column "
                        f"(it has {', '.join(printable(c.name) for c in columns[:8])}{', …' if len(columns) > 8 else ''})")
    if column.kind not in ("categorical", "boolean"):
        raise DataError(f"--target {printable(target)}: the column is {column.kind}; the target must be "
                        "categorical or boolean (name its kind with --columns if it was read wrongly)")
    if column.missing_rate > 0:
        raise DataError(f"--target {printable(target)}: {column.missing_rate:.1%} of its cells are missing; "
                        "the target must be known in every row")
    texts = [("true" if v else "false") if column.kind == "boolean" else str(v) for v in frame[target]]
    lookup = {name: i for i, name in enumerate(column.categories)}
    return np.array([lookup[t] for t in texts], dtype=np.int64), list(column.categories)
