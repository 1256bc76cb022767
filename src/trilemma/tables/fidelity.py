"""How close a synthetic table's columns and pairs of columns are to the real one's: the figures
of SDV's quality report, defined as `sdmetrics` defines them (the tests hold ours against it).

Column shapes, one score per column in [0, 1] (1: the same distribution), missing cells left out:

- numbers and datetimes: the KS complement, 1 − the two-sample Kolmogorov–Smirnov statistic;
- categorical and boolean: the TV complement, 1 − ½ Σ_v |p_real(v) − p_synthetic(v)|.

Pair trends, one score per pair of columns:

- two numeric columns: correlation similarity, 1 − |ρ_real − ρ_synthetic| / 2 (Pearson, on the
  rows where both are present);
- otherwise: contingency similarity, 1 − ½ Σ |P_real(a, b) − P_synthetic(a, b)| over the joint
  table, a missing cell a value of its own, a numeric column cut into the 10 bins of
  `numpy.histogram_bin_edges` of its real values (the outer edges open).

The thresholded variant (sdmetrics' quality report since 2025) averages only the pairs that are
related in the real table: |ρ_real| > 0.5, or Cramér's V > 0.3.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp, pearsonr
from scipy.stats.contingency import association

from trilemma.tables.columns import Column

BINS = 10
CORRELATION_THRESHOLD, ASSOCIATION_THRESHOLD = 0.5, 0.3


def _as_float(series: pd.Series, column: Column) -> np.ndarray:
    """A numeric or datetime column as float64, missing as NaN (datetimes in nanoseconds)."""
    if column.kind == "datetime":
        return series.astype("datetime64[ns]").astype("int64").where(series.notna()).to_numpy(dtype=np.float64)
    return series.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _values(series: pd.Series, column: Column) -> list[Any]:
    """A discrete column's cells, missing as None (a value of its own in a joint table)."""
    return [None if pd.isna(v) else (bool(v) if column.kind == "boolean" else str(v)) for v in series]


def ks_complement(real: np.ndarray, synthetic: np.ndarray) -> float:
    real, synthetic = real[~np.isnan(real)], synthetic[~np.isnan(synthetic)]
    if not len(real) or not len(synthetic):
        return float("nan")
    return float(1 - ks_2samp(real, synthetic).statistic)


def tv_complement(real: list[Any], synthetic: list[Any]) -> float:
    real = [v for v in real if v is not None]
    synthetic = [v for v in synthetic if v is not None]
    if not real or not synthetic:
        return float("nan")
    p, q = pd.Series(real).value_counts(normalize=True), pd.Series(synthetic).value_counts(normalize=True)
    both = p.index.union(q.index)
    return float(1 - 0.5 * (p.reindex(both, fill_value=0) - q.reindex(both, fill_value=0)).abs().sum())


def column_shapes(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> dict[str, float]:
    """{column: KS or TV complement}."""
    shapes = {}
    for column in columns:
        if column.numeric:
            shapes[column.name] = ks_complement(_as_float(real[column.name], column),
                                                _as_float(synthetic[column.name], column))
        else:
            shapes[column.name] = tv_complement(_values(real[column.name], column), _values(synthetic[column.name], column))
    return shapes


def _discrete(series: pd.Series, column: Column, edges: np.ndarray | None) -> list[Any]:
    if edges is None:
        return _values(series, column)
    values = _as_float(series, column)
    return [None if np.isnan(v) else int(b) for v, b in zip(values, np.digitize(values, edges))]


def _edges(real: pd.Series, column: Column) -> np.ndarray | None:
    if not column.numeric:
        return None
    values = _as_float(real, column)
    edges = np.histogram_bin_edges(values[~np.isnan(values)], bins=BINS)
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def _joint(a: list[Any], b: list[Any]) -> pd.Series:
    return pd.Series(list(zip(a, b))).value_counts(normalize=True)


def contingency(real_a: list[Any], real_b: list[Any], synthetic_a: list[Any], synthetic_b: list[Any]) -> tuple[float, float]:
    """(contingency similarity, the real pair's Cramér's V)."""
    p, q = _joint(real_a, real_b), _joint(synthetic_a, synthetic_b)
    both = p.index.union(q.index)
    score = float(1 - 0.5 * (p.reindex(both, fill_value=0) - q.reindex(both, fill_value=0)).abs().sum())
    def coded(values: list[Any]) -> list[str]:
        return ["\0missing" if v is None else repr(v) for v in values]

    counts = pd.crosstab(pd.Series(coded(real_a)), pd.Series(coded(real_b))).to_numpy()
    cramer = float(association(counts, method="cramer")) if min(counts.shape) >= 2 else float("nan")
    return score, cramer


def correlation(real_a: np.ndarray, real_b: np.ndarray, synthetic_a: np.ndarray, synthetic_b: np.ndarray) -> tuple[float, float]:
    """(correlation similarity, the real pair's Pearson ρ); NaN where a side is constant."""
    def rho(a: np.ndarray, b: np.ndarray) -> float:
        present = ~(np.isnan(a) | np.isnan(b))
        a, b = a[present], b[present]
        if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
            return float("nan")
        return float(pearsonr(a, b).statistic)

    real, synthetic = rho(real_a, real_b), rho(synthetic_a, synthetic_b)
    return 1 - abs(real - synthetic) / 2, real


def pair_trends(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> list[dict[str, Any]]:
    """One record per pair: the columns, the metric, its score, the real pair's relation and
    whether that passes the threshold of the thresholded variant."""
    edges = {c.name: _edges(real[c.name], c) for c in columns}
    pairs = []
    for first, second in itertools.combinations(columns, 2):
        if first.numeric and second.numeric:
            score, relation = correlation(_as_float(real[first.name], first), _as_float(real[second.name], second),
                                          _as_float(synthetic[first.name], first),
                                          _as_float(synthetic[second.name], second))
            related = abs(relation) > CORRELATION_THRESHOLD
            metric = "correlation"
        else:
            # Two discrete columns as they are; a numeric one beside a discrete one in bins.
            a, b = first.name, second.name
            score, relation = contingency(
                _discrete(real[a], first, edges[a]), _discrete(real[b], second, edges[b]),
                _discrete(synthetic[a], first, edges[a]), _discrete(synthetic[b], second, edges[b]))
            related = relation > ASSOCIATION_THRESHOLD
            metric = "contingency"
        pairs.append({"columns": [first.name, second.name], "metric": metric, "score": score,
                      "real_relation": relation, "related": bool(related)})
    return pairs


def _mean(values: list[float]) -> float:
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def fidelity_figures(real: pd.DataFrame, synthetic: pd.DataFrame, columns: list[Column]) -> tuple[dict[str, float], dict[str, Any]]:
    """(figures, details): ``column_shapes``, ``pair_trends``, ``pair_trends_related`` (the
    thresholded variant), their mean ``quality``, and the mean shape of the numeric and of the
    categorical columns apart (``numeric_shapes``, ``category_shapes``: NaN without such a
    column); the per-column and per-pair scores."""
    shapes = column_shapes(real, synthetic, columns)
    pairs = pair_trends(real, synthetic, columns)
    shape, trend = _mean(list(shapes.values())), _mean([p["score"] for p in pairs])
    numeric = [shapes[c.name] for c in columns if c.numeric]
    discrete = [shapes[c.name] for c in columns if not c.numeric]
    figures = {"column_shapes": shape, "pair_trends": trend,
               "numeric_shapes": _mean(numeric), "category_shapes": _mean(discrete),
               "pair_trends_related": _mean([p["score"] for p in pairs if p["related"]]),
               "quality": _mean([shape, trend])}
    return figures, {"column_shapes": shapes, "pair_trends": pairs}
