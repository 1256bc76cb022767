"""What a synthetic table is worth beyond its columns' shapes: can a classifier tell it from real
rows, does a model trained on it work on real rows, and are its rows copies of training rows.

- **Detection** (classifier two-sample test): a gradient-boosted classifier
  (`HistGradientBoostingClassifier`) told real held-out rows from as many synthetic rows, its ROC
  AUC by 5-fold cross-validation. 0.5: indistinguishable; 1: every row gives itself away.
- **Machine-learning efficacy**: the same classifier trained on synthetic rows to predict the
  target column, tested on the real held-out rows (accuracy and macro F1), beside the one trained on
  as many real training rows ("train on synthetic, test on real" against "train on real").
- **Privacy**: each synthetic row's distance to its nearest training row and to its nearest
  held-out row (as many of each), in a Gower-like distance: per column |a − b| / the real range
  for numbers and dates, 0 or 1 for categories, missing against present 1, averaged over the
  columns (sdmetrics' DCR distance). ``dcr_closer_to_training`` is the share of synthetic rows
  closer to a training row than to a held-out row, against as many of each (0.5: no closer to
  the data it saw than to fresh data; copies of random training rows score 0.5 + 0.5 n_heldout /
  n_train, as only that share of them is among the training rows drawn); ``exact_copies`` the
  share at distance 0 from one of all the training rows; ``nndr`` the mean ratio of the nearest
  to the second-nearest training distance (near 0: a row sits on one training row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from trilemma.tables.codec import TableCodec, as_numbers

FOLDS = 5
MAX_ROWS = 5000  # per side, for the detection and privacy figures


def _classifier(seed: int) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(max_iter=100, random_state=seed)


def _rows(codec: TableCodec, frame: pd.DataFrame, rng: np.random.Generator, limit: int = MAX_ROWS) -> np.ndarray:
    if len(frame) > limit:
        frame = frame.iloc[np.sort(rng.choice(len(frame), limit, replace=False))]
    return codec.encode(frame)


def predict_target(x: np.ndarray, y: np.ndarray, test_x: np.ndarray, seed: int = 0) -> np.ndarray:
    """The classifier of the train-on-synthetic scores, fitted on (x, y), predicting test_x; rows of
    one class teach nothing else, so they predict that class."""
    if len(np.unique(y)) < 2:
        return np.full(len(test_x), y[0])
    return _classifier(seed).fit(x, y).predict(test_x)


def detection_auc(codec: TableCodec, real: pd.DataFrame, synthetic: pd.DataFrame, seed: int = 0) -> float:
    """Cross-validated ROC AUC of a classifier telling real rows from synthetic ones."""
    rng = np.random.default_rng(seed)
    n = min(len(real), len(synthetic), MAX_ROWS)
    x = np.concatenate([_rows(codec, real, rng, n), _rows(codec, synthetic, rng, n)])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    scores = np.zeros(len(x))
    for train, test in StratifiedKFold(FOLDS, shuffle=True, random_state=seed).split(x, y):
        scores[test] = _classifier(seed).fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    return float(roc_auc_score(y, scores))


def efficacy(codec: TableCodec, train: pd.DataFrame, heldout: pd.DataFrame, synthetic: pd.DataFrame,
             target: str, seed: int = 0) -> dict[str, float]:
    """Accuracy and macro F1 on the real held-out rows of a classifier of `target` trained on the
    synthetic rows, and of one trained on as many real training rows."""
    block = codec.block(target)
    features = codec.without(target)
    n = min(len(train), len(synthetic))
    rng = np.random.default_rng(seed)
    real_rows = train.iloc[np.sort(rng.choice(len(train), n, replace=False))]
    test_x, test_y = features.encode(heldout), codec.category_codes(block, heldout[target])
    out = {}
    for name, rows in (("synthetic", synthetic.iloc[:n]), ("real", real_rows)):
        labels = codec.category_codes(block, rows[target])
        predicted = predict_target(features.encode(rows), labels, test_x, seed)
        out[f"{name}_accuracy"] = float(accuracy_score(test_y, predicted))
        out[f"{name}_f1"] = float(f1_score(test_y, predicted, average="macro"))
    return out


def _columns_as_numbers(codec: TableCodec, frame: pd.DataFrame) -> np.ndarray:
    """(rows, columns) float64: numbers and dates as numbers, categories as codes; NaN missing."""
    out = np.empty((len(frame), len(codec.blocks)))
    for i, block in enumerate(codec.blocks):
        series = frame[block.column.name]
        if block.numeric:
            out[:, i] = as_numbers(series, block.column)
        else:
            codes = codec.category_codes(block, series).astype(float)
            out[:, i] = np.where(series.isna().to_numpy(), np.nan, codes)
    return out


def nearest_distances(codec: TableCodec, rows: pd.DataFrame, reference: pd.DataFrame, k: int = 1,
                      chunk: int = 256) -> np.ndarray:
    """(len(rows), k): each row's k smallest Gower-like distances to `reference`'s rows (see the
    module docstring; a number's range is its range in `reference`, as sdmetrics takes it)."""
    xa, xb = _columns_as_numbers(codec, rows), _columns_as_numbers(codec, reference)
    numeric = np.array([block.numeric for block in codec.blocks])
    spans = np.where(numeric, np.nanmax(xb, axis=0) - np.nanmin(xb, axis=0), 1.0)
    out = np.empty((len(xa), k))
    for start in range(0, len(xa), chunk):
        left = xa[start:start + chunk, None, :]
        difference = np.abs(left - xb[None])
        gap = np.where(numeric, np.where(spans > 0, np.minimum(difference / np.where(spans > 0, spans, 1), 1.0),
                                         (difference > 0).astype(float)),
                       (left != xb[None]).astype(float))
        missing_a, missing_b = np.isnan(left), np.isnan(xb[None])
        gap = np.where(missing_a & missing_b, 0.0, np.where(missing_a | missing_b, 1.0, gap))
        out[start:start + chunk] = np.sort(gap.mean(axis=2), axis=1)[:, :k]
    return out


def privacy(codec: TableCodec, train: pd.DataFrame, heldout: pd.DataFrame, synthetic: pd.DataFrame,
            seed: int = 0) -> dict[str, float]:
    """``dcr_closer_to_training``, ``exact_copies``, ``nndr`` and ``dcr_median`` (see the module
    docstring), on at most `MAX_ROWS` synthetic rows."""
    rng = np.random.default_rng(seed)

    def subset(frame: pd.DataFrame, count: int) -> pd.DataFrame:
        return frame.iloc[np.sort(rng.choice(len(frame), min(count, len(frame)), replace=False))]

    fake = subset(synthetic, MAX_ROWS)
    to_train = nearest_distances(codec, fake, train, k=2)
    # Closer to the data it saw than to fresh data, against as many rows of each.
    n = min(len(train), len(heldout))
    to_train_part = nearest_distances(codec, fake, subset(train, n))[:, 0]
    to_heldout = nearest_distances(codec, fake, subset(heldout, n))[:, 0]
    closer = (to_train_part < to_heldout).mean() + 0.5 * (to_train_part == to_heldout).mean()
    return {"dcr_closer_to_training": float(closer),
            "exact_copies": float((to_train[:, 0] == 0).mean()),
            "nndr": float((to_train[:, 0] / np.maximum(to_train[:, 1], 1e-12)).mean()),
            "dcr_median": float(np.median(to_train[:, 0]))}
