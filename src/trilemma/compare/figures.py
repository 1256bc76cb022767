"""The report's plots, drawn with matplotlib (Agg, no display) and returned as PNG bytes."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from trilemma.families import registered


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _colour(name: str) -> str:
    """The family's declared colour; grey for a family this version does not know."""
    cls = registered().get(name)
    return cls.colour if cls is not None else "#555555"


def training_curves(results: dict[str, Any]) -> bytes:
    """Quality against the budget's own clock (CPU-seconds on a CPU, where a starved family shows
    as unequal, not merely slow): FD (left), precision and recall (right)."""
    from trilemma.compare.machine_section import clock_of

    xlabel = "training CPU-seconds" if clock_of(results) == "cpu" else "training seconds"
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    fid_name = "FD"
    for name, entry in results["families"].items():
        fid_name = entry.get("fid_name") or fid_name
        for i, curve in enumerate(entry["curves"]):
            points = curve["points"]
            t = [p["train_seconds"] for p in points]
            label = name if i == 0 else None
            left.plot(t, [p.get("fid") for p in points], "o-", color=_colour(name), label=label, alpha=0.9)
            right.plot(t, [p.get("precision") for p in points], "s--", color=_colour(name), alpha=0.8,
                       label=f"{name} precision" if i == 0 else None)
            right.plot(t, [p.get("recall") for p in points], "o-", color=_colour(name), alpha=0.8,
                       label=f"{name} recall" if i == 0 else None)
    left.set(xlabel=xlabel, ylabel=f"{fid_name} (lower is better)", title="Quality during training")
    left.set_yscale("log")
    right.set(xlabel=xlabel, ylabel="precision (dashed), recall (solid)", ylim=(0, 1.02),
              title="Fidelity and diversity during training")
    left.legend(fontsize=8)
    right.legend(fontsize=7, ncol=2)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _png(fig)


def fidelity_diversity(results: dict[str, Any]) -> bytes:
    """Precision against recall, and density against coverage: up and right is better."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, (x_key, y_key) in zip(axes, (("recall", "precision"), ("coverage", "density"))):
        for name, entry in results["families"].items():
            seeds = entry["seeds"]
            ax.scatter([s[x_key] for s in seeds], [s[y_key] for s in seeds], color=_colour(name), alpha=0.35, s=25)
            ax.scatter([entry[x_key]], [entry[y_key]], color=_colour(name), s=120, edgecolor="black", label=name)
            ax.annotate(name, (entry[x_key], entry[y_key]), textcoords="offset points", xytext=(8, 6))
        ax.set(xlabel=f"{x_key} (diversity)", ylabel=f"{y_key} (fidelity)", xlim=(0, 1.05))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 1.05)
    axes[0].set_title("Precision against recall")
    axes[1].set_title("Density against coverage")
    axes[0].legend(fontsize=8)
    return _png(fig)


def speed_quality(results: dict[str, Any]) -> bytes:
    """FD against sampling throughput (log scale); diffusion's samplers at several NFE."""
    fig, ax = plt.subplots(figsize=(7, 4))
    fid_name = "FD"
    for name, entry in results["families"].items():
        fid_name = entry.get("fid_name") or fid_name
        ax.scatter([entry["samples_per_s"]], [entry["fid"]], color=_colour(name), s=120, edgecolor="black",
                   label=f"{name} (NFE {entry['nfe']:.0f})", zorder=3)
        for sampler, rows in _by_sampler(entry.get("nfe_curve")).items():
            ax.plot([r["samples_per_s"] for r in rows], [r["fid"] for r in rows], "--", marker=".",
                    color=_colour(name), alpha=0.6, label=f"{name} {sampler}")
            for r in rows:
                ax.annotate(str(r["nfe"]), (r["samples_per_s"], r["fid"]), fontsize=7,
                            textcoords="offset points", xytext=(3, 3))
    ax.set(xscale="log", yscale="log", xlabel="samples per second (log)",
           ylabel=f"{fid_name} (lower is better)", title="Quality against sampling speed (labels: NFE)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return _png(fig)


def _by_sampler(rows: list[dict[str, Any]] | None) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows or []:
        grouped.setdefault(row["sampler"], []).append(row)
    return {k: sorted(v, key=lambda r: r["nfe"]) for k, v in grouped.items()}


def fid_against_nfe(results: dict[str, Any], only: tuple[str, ...] | None = None) -> bytes | None:
    """FD against network evaluations for every iterative family (or those in `only`)."""
    rows_of = {n: e["nfe_curve"] for n, e in results["families"].items()
               if e.get("nfe_curve") and (only is None or n in only)}
    if not rows_of:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    styles = {"ddpm": ":", "ddim": "--", "dpm-solver++": "-", "euler": "--", "heun": "-"}
    fid_name = "FD"
    for name, rows in rows_of.items():
        fid_name = results["families"][name].get("fid_name") or fid_name
        for sampler, group in _by_sampler(rows).items():
            ax.plot([r["nfe"] for r in group], [r["fid"] for r in group], styles.get(sampler, "-"),
                    marker="o", color=_colour(name), label=f"{name}, {sampler}")
    ax.set(xscale="log", xlabel="network evaluations per sample (NFE, log)",
           ylabel=f"{fid_name} (lower is better)", title="Quality against sampling steps")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def beyond_trilemma(results: dict[str, Any]) -> bytes:
    """Every family on the three axes at once: sampling speed (x), FD (y, fidelity) and recall
    (the marker's size and label, diversity); hybrids as stars, the classic families as circles."""
    fig, ax = plt.subplots(figsize=(7, 4.4))
    fid_name = "FD"
    for name, entry in results["families"].items():
        fid_name = entry.get("fid_name") or fid_name
        cls = registered().get(name)
        hybrid = bool(cls is not None and cls.hybrid)
        recall = entry.get("recall")
        size = 60 + 340 * (recall if recall is not None else 0.3)
        ax.scatter([entry["samples_per_s"]], [entry["fid"]], s=size, marker="*" if hybrid else "o",
                   color=_colour(name), edgecolor="black", zorder=3,
                   label=f"{name}{' (hybrid)' if hybrid else ''}")
        text = f"{name}, recall {recall:.2f}" if recall is not None else name
        ax.annotate(text, (entry["samples_per_s"], entry["fid"]), fontsize=8, textcoords="offset points",
                    xytext=(9, 5))
    ax.set(xscale="log", yscale="log", xlabel="samples per second (log; right is faster)",
           ylabel=f"{fid_name} (log; lower is better)",
           title="Fidelity, diversity (marker size) and speed of every family")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return _png(fig)


def trilemma_triangle(results: dict[str, Any], scores: dict[str, dict[str, float | None]]) -> bytes:
    """The trilemma at a glance: each family's fidelity, diversity and speed scores (1 = best
    here) as a triangle on three axes; a family good at all three fills the outer triangle."""
    axes = ("fidelity", "diversity", "speed")
    angles = [math.pi / 2 + k * 2 * math.pi / 3 for k in range(3)]
    fig, ax = plt.subplots(figsize=(5.2, 5))
    for level in (0.25, 0.5, 0.75, 1.0):
        xs = [level * math.cos(a) for a in angles] + [level * math.cos(angles[0])]
        ys = [level * math.sin(a) for a in angles] + [level * math.sin(angles[0])]
        ax.plot(xs, ys, color="#bbbbbb", lw=0.8)
    for a, label in zip(angles, axes):
        ax.plot([0, math.cos(a)], [0, math.sin(a)], color="#bbbbbb", lw=0.8)
        ax.annotate(label, (1.12 * math.cos(a), 1.12 * math.sin(a)), ha="center", va="center", fontsize=11)
    for name, by_criterion in scores.items():
        radii = [by_criterion.get(c) or 0.0 for c in axes]
        xs = [r * math.cos(a) for r, a in zip(radii, angles)]
        ys = [r * math.sin(a) for r, a in zip(radii, angles)]
        ax.fill(xs, ys, color=_colour(name), alpha=0.18)
        ax.plot(xs + xs[:1], ys + ys[:1], "o-", color=_colour(name), label=name)
    ax.set_aspect("equal")
    ax.set_xlim(-1.3, 1.3)
    ax.set_ylim(-0.8, 1.3)
    ax.axis("off")
    ax.legend(loc="lower center", ncol=min(3, max(1, len(scores))), fontsize=9, bbox_to_anchor=(0.5, -0.05))
    ax.set_title("Fidelity, diversity, speed (1 = best of this comparison)")
    return _png(fig)


def knob_sweeps(sweeps: dict[str, dict[str, Any]]) -> bytes:
    """Precision and recall against each family's fidelity/diversity knob, one panel each."""
    fig, axes = plt.subplots(1, len(sweeps), figsize=(4.2 * len(sweeps), 3.4), squeeze=False)
    for ax, (name, sweep) in zip(axes[0], sweeps.items()):
        rows = sorted(sweep["rows"], key=lambda r: r["value"])
        values = [r["value"] for r in rows]
        ax.plot(values, [r["precision"] for r in rows], "s--", color=_colour(name), label="precision")
        ax.plot(values, [r["recall"] for r in rows], "o-", color=_colour(name), label="recall")
        ax.axvline(sweep["neutral"], color="#999999", lw=0.8)
        ax.set(xlabel=f"{sweep['knob']} ({sweep['sharper']} = sharper)", ylim=(0, 1.02), title=name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _png(fig)
