"""The report's parts for a table: each family's first rows, every column real against
synthetic (histograms for numbers and dates, bars for categories), and how far each family's
correlations are from the real ones (a heatmap of the differences)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trilemma.compare.figures import _colour, _png, plt
from trilemma.tables.codec import as_numbers

PREVIEW_ROWS = 8
MAX_BARS = 12  # categories shown per column (the most frequent real ones)


def _samples(results: dict[str, Any]) -> tuple[dict[str, pd.DataFrame], list[Any]]:
    """Each family's samples.csv (its first seed), read back as the table's columns."""
    from trilemma.data import load_data
    from trilemma.tables.columns import infer_columns, to_frame
    from trilemma.tables.reading import read_csv

    data = load_data(results["data"]["spec"])
    out = {"real (held-out)": data.frame_heldout}
    for name, entry in results["families"].items():
        path = Path(entry["run_dirs"][0]) / "samples.csv"
        if path.exists():
            raw = read_csv(path)
            out[name] = to_frame(raw, infer_columns(raw, {c.name: c.kind for c in data.columns}))
    return out, data.columns


def _preview(name: str, frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape('' if pd.isna(v) else str(v))}</td>" for v in row) + "</tr>"
                   for row in frame.head(PREVIEW_ROWS).itertuples(index=False))
    return f"<h3>{html.escape(name)}</h3><table><tr>{head}</tr>{rows}</table>"


def column_figure(frames: dict[str, pd.DataFrame], columns: list[Any]) -> bytes:
    """One panel per column: real against each family."""
    width = min(4, len(columns))
    rows = int(np.ceil(len(columns) / width))
    fig, axes = plt.subplots(rows, width, figsize=(3.6 * width, 2.8 * rows), squeeze=False)
    names = list(frames)
    for ax, column in zip(axes.flat, columns):
        if column.numeric:
            values = {n: as_numbers(f[column.name], column) for n, f in frames.items()}
            real = values[names[0]][~np.isnan(values[names[0]])]
            edges = np.histogram_bin_edges(real, bins=20)
            for n, v in values.items():
                ax.hist(v[~np.isnan(v)], bins=edges, density=True, histtype="step", linewidth=1.6,
                        color="black" if n == names[0] else _colour(n), label=n)
        else:
            real = frames[names[0]][column.name].astype(str)
            shown = list(real.value_counts().index[:MAX_BARS])
            step = 0.8 / len(names)
            for i, (n, f) in enumerate(frames.items()):
                share = f[column.name].astype(str).value_counts(normalize=True).reindex(shown, fill_value=0)
                ax.bar(np.arange(len(shown)) + i * step, share.to_numpy(), width=step,
                       color="black" if i == 0 else _colour(n), label=n)
            ax.set_xticks(np.arange(len(shown)) + 0.4 - step / 2, shown, rotation=45, fontsize=7)
        ax.set_title(f"{column.name} ({column.kind})", fontsize=9)
    for ax in list(axes.flat)[len(columns):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _correlations(frame: pd.DataFrame, columns: list[Any]) -> np.ndarray:
    """Pearson correlations of every column as numbers (categories as their codes by frequency)."""
    numbers = []
    for column in columns:
        if column.numeric:
            numbers.append(as_numbers(frame[column.name], column))
        else:
            order = {v: i for i, v in enumerate(column.categories)}
            numbers.append(np.array([order.get(str(v).lower() if column.kind == "boolean" else str(v), np.nan)
                                     if not pd.isna(v) else np.nan for v in frame[column.name]], dtype=float))
    return pd.DataFrame(np.array(numbers).T).corr().to_numpy()


def correlation_figure(frames: dict[str, pd.DataFrame], columns: list[Any]) -> bytes:
    """|ρ_synthetic − ρ_real| for every pair of columns, one heatmap per family (0: the same)."""
    names = list(frames)
    real = _correlations(frames[names[0]], columns)
    families = names[1:]
    fig, axes = plt.subplots(1, len(families), figsize=(3.8 * len(families), 3.6), squeeze=False)
    labels = [c.name for c in columns]
    for ax, name in zip(axes.flat, families):
        difference = np.abs(_correlations(frames[name], columns) - real)
        image = ax.imshow(difference, vmin=0, vmax=1, cmap="Reds")
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        ax.set_title(f"{name}: mean {np.nanmean(difference):.3f}", fontsize=9)
    fig.colorbar(image, ax=list(axes.flat), shrink=0.8)
    return _png(fig)


def encoding_note(data: dict[str, Any]) -> str:
    """How the families saw the numbers and dates, and that the figures do not depend on it."""
    if data.get("numeric_transform") == "mode-specific":
        modes = ", ".join(f"{html.escape(str(name))} {count}" for name, count in data.get("modes", {}).items())
        how = ("CTGAN's mode-specific normalisation (a Gaussian mixture per column, chosen by BIC; "
               f"modes: {modes})")
    else:
        how = "a quantile transform to normal scores (TabDDPM's)"
    return (f"<p class=\"note\">The families saw numbers and dates through {how}; every figure reads "
            "the rows through the quantile transform, so figures compare across encodings.</p>")


def render(results: dict[str, Any], img: Any) -> str:
    frames, columns = _samples(results)
    previews = "".join(_preview(n, f) for n, f in frames.items())
    return (encoding_note(results["data"]) + "<h2>Samples: the first rows</h2>" + previews
            + "<h2>Every column, real against synthetic</h2>" + img(column_figure(frames, columns), "columns")
            + "<h2>Correlations: synthetic against real</h2>"
            + "<p class=\"note\">|ρ<sub>synthetic</sub> − ρ<sub>real</sub>| for every pair of columns (categories "
              "as codes ordered by frequency); 0 is a perfect match. Real: the held-out rows.</p>"
            + img(correlation_figure(frames, columns), "correlation differences"))
