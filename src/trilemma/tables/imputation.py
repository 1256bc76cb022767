"""Imputation: a table's inpainting. The hidden cells of each row are filled conditioned on the
row's known cells by the family's own inpainting method (`trilemma.capabilities.inpainting`:
RePaint for diffusion, clamped encode-decode for a VAE, latent optimisation for a GAN), on the
encoded rows; the known cells are kept exactly.

A hidden cell is its column's whole block: a number's score and mode (its missing-cell flag is
set to "present", since a value is asked for) or a category's one-hot block (whose "missing" category
is never chosen).

`measure_imputation` scores the families against two references on held-out rows with a share
of their known cells hidden at random: mean / mode imputation (the floor) and a k-nearest-
neighbour imputer (scikit-learn's `KNNImputer` on the encoded training rows, k = 5). Numbers are
scored by their RMSE over the column's standard deviation (0 is perfect; mean imputation scores
about 1), categories by the share put back right.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from trilemma.tables.codec import TableCodec, as_numbers

HIDDEN_SHARE = 0.2  # of a held-out row's known cells, hidden for the measurement
NEIGHBOURS = 5
# RePaint's reconstruction guidance on a table's rows: ζ = 8 (the image default) overshoots on
# unclipped scores. On the customers table of benchmarks/bench_tabular_compare.py (90-s diffusion
# model, 300 held-out rows, 20% of cells hidden; income RMSE / SD and label accuracy):
# ζ = 0 0.72 / 0.80, ζ = 1 0.73 / 0.85, ζ = 3 0.97 / 0.78, ζ = 8 1.99 / 0.72.
TABLE_GUIDANCE = 1.0
_NEVER = -1e4  # a "missing" coordinate's value when a category is asked for


def block_mask(codec: TableCodec, hidden: np.ndarray) -> np.ndarray:
    """(n, width) bool: the coordinates of each hidden cell (`hidden`: (n, columns))."""
    mask = np.zeros((len(hidden), codec.width), dtype=bool)
    for j, block in enumerate(codec.blocks):
        mask[:, block.value_coordinates] |= hidden[:, j:j + 1]
    return mask


def encode_known(codec: TableCodec, frame: pd.DataFrame, hidden: np.ndarray) -> np.ndarray:
    """The rows encoded, with each hidden number's flag set to present."""
    x = codec.encode(frame)
    for j, block in enumerate(codec.blocks):
        if block.flag is not None:
            x[hidden[:, j], block.flag] = -1.0
    return x


def decode_filled(codec: TableCodec, frame: pd.DataFrame, filled: np.ndarray, hidden: np.ndarray) -> pd.DataFrame:
    """`frame` with its hidden cells taken from the filled rows (never a "missing" category)."""
    filled = filled.astype(np.float64).copy()
    for block in codec.blocks:
        if not block.numeric and block.has_missing:
            filled[:, block.start + block.width - 1] = _NEVER
    decoded = codec.decode(filled)
    out = frame.copy()
    for j, block in enumerate(codec.blocks):
        name = block.column.name
        rows = hidden[:, j]
        if rows.any():
            out[name] = out[name].where(~rows, decoded[name])
    return out


def impute(family: Any, dataset: Any, frame: pd.DataFrame, hidden: np.ndarray, generator: torch.Generator,
           labels: torch.Tensor | None = None, **options: Any) -> pd.DataFrame:
    """`frame` (the table's columns) with the cells where `hidden` is True filled by `family`."""
    from trilemma.capabilities.inpainting import inpaint, inpainting_method

    if inpainting_method(family) == "repaint":
        options.setdefault("reconstruction_guidance", TABLE_GUIDANCE)
    codec = dataset.codec
    x = torch.from_numpy(encode_known(codec, frame, hidden))
    x_model = dataset.normalizer.to_model(x).to(family.device)
    mask = torch.from_numpy(block_mask(codec, hidden)).to(family.device)
    filled = inpaint(family, x_model, mask, generator, labels, **options)
    return decode_filled(codec, frame, dataset.normalizer.from_model(filled), hidden)


def mean_mode(dataset: Any, frame: pd.DataFrame, hidden: np.ndarray) -> pd.DataFrame:
    """Each hidden cell set to its column's training mean (numbers, dates) or mode."""
    out = frame.copy()
    for j, column in enumerate(dataset.columns):
        rows = hidden[:, j]
        train = dataset.frame_train[column.name]
        if column.numeric:
            value = as_numbers(train, column)
            fill = np.nanmean(value)
            fill = train.dropna().iloc[np.argmin(np.abs(as_numbers(train.dropna(), column) - fill))] \
                if column.kind in ("integer", "datetime") else fill
        else:
            fill = train.mode(dropna=True).iloc[0]
        out.loc[rows, column.name] = fill
    return out


def nearest_neighbours(dataset: Any, frame: pd.DataFrame, hidden: np.ndarray) -> pd.DataFrame:
    """k-NN imputation on the encoded rows: each hidden coordinate the mean of the k training
    rows nearest on the known ones."""
    from sklearn.impute import KNNImputer

    codec = dataset.codec
    x = encode_known(codec, frame, hidden).astype(np.float64)
    x[block_mask(codec, hidden)] = np.nan
    imputer = KNNImputer(n_neighbors=NEIGHBOURS).fit(dataset.x_train.numpy().astype(np.float64))
    return decode_filled(codec, frame, imputer.transform(x), hidden)


def hide_cells(frame: pd.DataFrame, share: float, rng: np.random.Generator) -> np.ndarray:
    """(n, columns) bool: a random `share` of the known cells, at least one per row."""
    known = frame.notna().to_numpy()
    hidden = known & (rng.random(known.shape) < share)
    for i in np.flatnonzero(~hidden.any(1) & known.any(1)):
        hidden[i, rng.choice(np.flatnonzero(known[i]))] = True
    return hidden


def imputation_scores(truth: pd.DataFrame, imputed: pd.DataFrame, hidden: np.ndarray, columns: list[Any]) -> dict[str, Any]:
    """``numeric_nrmse`` (mean over the number and date columns of RMSE / the column's standard
    deviation, over their hidden cells) and ``category_accuracy`` (mean over the categorical and
    boolean columns of the share of hidden cells put back right); per column too."""
    per_column: dict[str, float] = {}
    for j, column in enumerate(columns):
        rows = hidden[:, j]
        if not rows.any():
            continue
        if column.numeric:
            true, made = as_numbers(truth[column.name], column), as_numbers(imputed[column.name], column)
            spread = np.nanstd(true)
            error = np.sqrt(np.nanmean((made[rows] - true[rows]) ** 2))
            per_column[column.name] = float(error / spread) if spread > 0 else 0.0
        else:
            same = [str(a) == str(b) for a, b in zip(truth[column.name][rows], imputed[column.name][rows])]
            per_column[column.name] = float(np.mean(same))
    numeric = [v for c in columns if c.numeric and (v := per_column.get(c.name)) is not None]
    categorical = [v for c in columns if not c.numeric and (v := per_column.get(c.name)) is not None]
    return {"numeric_nrmse": float(np.mean(numeric)) if numeric else None,
            "category_accuracy": float(np.mean(categorical)) if categorical else None,
            "per_column": per_column, "hidden_cells": int(hidden.sum())}


def measure_imputation(families: dict[str, Any], dataset: Any, n: int = 500, seed: int = 0,
                       share: float = HIDDEN_SHARE) -> dict[str, Any]:
    """Every family's imputation of `n` held-out rows with `share` of their known cells hidden,
    beside mean / mode and k-NN imputation of the same cells."""
    from trilemma.device import sampling_generator

    rng = np.random.default_rng(seed)
    index = rng.choice(len(dataset.frame_heldout), min(n, len(dataset.frame_heldout)), replace=False)
    truth = dataset.frame_heldout.iloc[index].reset_index(drop=True)
    hidden = hide_cells(truth, share, rng)
    conditional = any(family.conditional for family in families.values()) and dataset.target is not None
    if conditional:  # a conditional model is told the target: it is never a hidden cell then
        hidden[:, [c.name for c in dataset.columns].index(dataset.target)] = False
    masked = truth.mask(pd.DataFrame(hidden, columns=truth.columns))
    methods = {"mean / mode": mean_mode(dataset, masked, hidden),
               f"k-NN (k = {NEIGHBOURS})": nearest_neighbours(dataset, masked, hidden)}
    for name, family in families.items():
        labels = None
        if family.conditional and conditional:
            labels = torch.from_numpy(dataset.codec.category_codes(dataset.codec.block(dataset.target),
                                                                   truth[dataset.target]))
        with torch.no_grad():
            methods[name] = impute(family, dataset, masked, hidden, sampling_generator(seed), labels)
    return {"rows": len(truth), "share_hidden": share,
            "methods": {name: imputation_scores(truth, imputed, hidden, dataset.columns)
                        for name, imputed in methods.items()}}
