"""From measurements to a recommendation: each family scored on each criterion relative to
the best family of this comparison, weighted by the user's priorities.

Criteria, each in [0, 1] with 1 for the best family here:

* fidelity: the mean of best-FD / FD, precision / best precision, and how close the sharpness
  is to the real images' (min(s, 1/s), relative to the best); for 2-D points, the share of
  high-quality samples replaces sharpness; for tables, column shapes, pair trends and
  2 (1 − detection AUC), each relative to the best.
* diversity: the mean of recall / best recall, coverage / best coverage, and the share of
  classes (images), modes (built-in 2-D mixtures) or categories (tables) covered.
* speed: sampling throughput on a log scale, 1 + log10(samples per s / best) / 3, floored at
  0: a family 10× slower than the fastest scores 0.67, 1,000× slower scores 0.
* stability: 1 − (coefficient of variation of FD across seeds) / 0.5, floored at 0; measured
  only with several seeds, and left out of the weighting otherwise.
* privacy (tables): the mean of 2 (1 − the share of rows closer to a training row than to a
  held-out one), capped at 1 (a share of 0.5 or less: no closer to the training rows than to
  unseen ones), and 1 − the share of rows that copy a training row exactly. Absolute, not
  relative to the best: a family that copies its data scores 0 however the others do.

A family whose FD is more than ``REACH`` times the best FD is "out of reach": it is not
recommended, however fast, while a family within reach exists.

A figure the sanity ladders found untrustworthy on this data (``results["ladders"]``, see
`trilemma.evaluation.ladders`) is left out of every criterion, and an untrustworthy FD sets no
reach rule.
"""

from __future__ import annotations

import math
from typing import Any

CRITERIA = ("fidelity", "diversity", "speed", "stability", "privacy")
REACH = 2.0  # FD within this factor of the best counts as comparable quality


def _ratio(value: float | None, best: float | None, higher_is_better: bool = True) -> float | None:
    if value is None or best is None:
        return None
    if higher_is_better:
        return value / best if best > 0 else None
    return best / value if value > 0 else 1.0


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None and math.isfinite(v)]
    return sum(present) / len(present) if present else None


def _hidden(auc: float | None) -> float | None:
    """How well rows hide among real ones: 2 (1 − AUC), 1 at chance, 0 when always told apart."""
    return None if auc is None else min(1.0, max(0.0, 2 * (1 - auc)))


def criterion_scores(families: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    def best(key: str, higher: bool = True) -> float | None:
        values = [f[key] for f in families.values() if f.get(key) is not None]
        return (max(values) if higher else min(values)) if values else None

    def closeness(s: float | None) -> float | None:
        return min(s, 1 / s) if s else None

    best_fd = best("fid", higher=False)
    best_precision, best_recall, best_coverage = best("precision"), best("recall"), best("coverage")
    best_speed = best("samples_per_s")
    closenesses = {n: closeness(f.get("sharpness")) for n, f in families.items()}
    best_closeness = max((c for c in closenesses.values() if c is not None), default=None)
    best_quality = best("high_quality_fraction")
    best_shapes, best_trends = best("column_shapes"), best("pair_trends")
    best_hidden = max((h for f in families.values() if (h := _hidden(f.get("detection_auc"))) is not None), default=None)
    scores = {}
    for name, f in families.items():
        fidelity = [_ratio(f.get("fid"), best_fd, higher_is_better=False),
                    _ratio(f.get("precision"), best_precision)]
        fidelity.append(_ratio(closenesses[name], best_closeness) if f.get("sharpness") is not None
                        else _ratio(f.get("high_quality_fraction"), best_quality))
        # Tables: SDV's shapes and trends, and how well a classifier fails to tell the rows apart.
        fidelity += [_ratio(f.get("column_shapes"), best_shapes), _ratio(f.get("pair_trends"), best_trends),
                     _ratio(_hidden(f.get("detection_auc")), best_hidden)]
        diversity = [_ratio(f.get("recall"), best_recall), _ratio(f.get("coverage"), best_coverage)]
        if f.get("categories_covered") is not None and f.get("num_categories"):
            diversity.append(f["categories_covered"] / f["num_categories"])
        if f.get("classes_covered") is not None and f.get("num_classes"):
            diversity.append(f["classes_covered"] / f["num_classes"])
        elif f.get("modes_covered") is not None and f.get("num_modes"):
            diversity.append(f["modes_covered"] / f["num_modes"])
        speed = None
        if f.get("samples_per_s") and best_speed:
            speed = max(0.0, 1 + math.log10(f["samples_per_s"] / best_speed) / 3)
        stability = None
        if f.get("fid_cv") is not None:
            stability = max(0.0, 1 - f["fid_cv"] / 0.5)
        scores[name] = {"fidelity": _mean(fidelity), "diversity": _mean(diversity),
                        "speed": speed, "stability": stability, "privacy": privacy_score(f)}
    return scores


def privacy_score(figures: dict[str, Any]) -> float | None:
    """The privacy criterion of one family's (or baseline's) figures; None where unmeasured."""
    share, copies = figures.get("dcr_closer_to_training"), figures.get("exact_copies")
    if share is None:
        return None
    return _mean([min(1.0, max(0.0, 2 * (1 - share))), None if copies is None else 1 - copies])


def recommend(results: dict[str, Any], priorities: dict[str, float]) -> dict[str, Any]:
    """The family with the highest priority-weighted score among those within reach, with the
    reasons: each criterion's leader and figures, and what the choice gives up."""
    untrusted = set((results.get("ladders") or {}).get("untrustworthy") or [])
    families = {name: {k: (None if k in untrusted else v) for k, v in f.items()}
                for name, f in results["families"].items()}
    if not families:
        return {"family": None, "reasons": ["no family was evaluated"], "scores": {}, "ranking": []}
    scores = criterion_scores(families)
    fds = [f["fid"] for f in families.values() if f.get("fid") is not None]
    best_fd = min(fds) if fds else None
    reachable = {n for n, f in families.items() if best_fd is None or f["fid"] <= REACH * best_fd}
    unmeasured = sorted({c for c, w in priorities.items() if w > 0 and
                         all(s.get(c) is None for s in scores.values())})
    totals = {}
    for name, by_criterion in scores.items():
        used = {c: w for c, w in priorities.items() if w > 0 and by_criterion.get(c) is not None}
        weight = sum(used.values())
        totals[name] = sum(w * by_criterion[c] for c, w in used.items()) / weight if weight else 0.0
    ranking = sorted(totals, key=lambda n: (n in reachable, totals[n]), reverse=True)
    choice = ranking[0]
    reasons = _reasons(choice, families, scores, totals, priorities, reachable, best_fd)
    if untrusted:
        reasons.append(f"Left out as untrustworthy on this data (they failed a sanity ladder): "
                       f"{', '.join(sorted(untrusted))}.")
    if results.get("baselines"):
        from trilemma.compare.table_baselines import baseline_reason

        line = baseline_reason(choice, families[choice], results["baselines"])
        if line:
            reasons.append(line)
    if unmeasured:
        reasons.append(f"Not measured in this run, so left out of the weighting: {', '.join(unmeasured)}"
                       + (" (needs --seeds 2 or more)." if "stability" in unmeasured else "."))
    return {
        "family": choice,
        "priorities": dict(priorities),
        "scores": scores,
        "weighted_score": totals,
        "ranking": ranking,
        "within_reach": sorted(reachable),
        "reach_rule": f"FD at most {REACH:g}x the best FD of this comparison",
        "reasons": reasons,
    }


def _reasons(choice: str, families: dict[str, Any], scores: dict[str, dict[str, float | None]],
             totals: dict[str, float], priorities: dict[str, float], reachable: set[str],
             best_fd: float | None) -> list[str]:
    fid_name = families[choice].get("fid_name") or "FD"
    weights = ", ".join(f"{c} {w:g}" for c, w in priorities.items() if w > 0)
    ordered = sorted(totals, key=totals.get, reverse=True)
    lines = [f"With priorities {weights}, {choice} scores {totals[choice]:.2f} "
             f"(" + ", ".join(f"{n} {totals[n]:.2f}" for n in ordered if n != choice) + ")."]
    for criterion in CRITERIA:
        if priorities.get(criterion, 0) <= 0:
            continue
        values = {n: s[criterion] for n, s in scores.items() if s[criterion] is not None}
        if not values:
            continue
        leader = max(values, key=values.get)
        detail = _figure(criterion, families)
        if leader == choice:
            lines.append(f"It leads on {criterion}: {detail}.")
        else:
            lines.append(f"On {criterion} it trails {leader} ({values[choice]:.2f} vs "
                         f"{values[leader]:.2f}): {detail}.")
    out = sorted(set(families) - reachable) if best_fd is not None else []
    if out:
        lines.append(
            f"Out of reach at this budget ({fid_name} more than {REACH:g}x the best, "
            f"{best_fd:.1f}): {', '.join(out)}; not recommended however fast.")
    if best_fd is not None and choice not in reachable:
        lines.append("No family is within reach of the best; this is the best weighted score.")
    return lines


def _figure(criterion: str, families: dict[str, Any]) -> str:
    def each(label: str, key: str, fmt: str) -> str | None:
        values = ", ".join(f"{n} {format(f[key], fmt)}" for n, f in families.items() if f.get(key) is not None)
        return f"{label} {values}" if values else None  # None: unmeasured, or left out as untrustworthy

    def joined(*parts: str | None) -> str:
        return "; ".join(p for p in parts if p) or "no figure left to show"

    if criterion == "fidelity":
        name = next(iter(families.values())).get("fid_name") or "FD"
        return joined(each(name, "fid", ".1f"), each("precision", "precision", ".2f"),
                      each("column shapes", "column_shapes", ".3f"), each("pair trends", "pair_trends", ".3f"),
                      each("detection AUC", "detection_auc", ".3f"))
    if criterion == "diversity":
        return joined(each("recall", "recall", ".2f"), each("coverage", "coverage", ".2f"),
                      each("classes covered", "classes_covered", ".0f"),
                      each("categories covered", "categories_covered", ".0f"))
    if criterion == "speed":
        return joined(each("samples/s", "samples_per_s", ".0f"))
    if criterion == "privacy":
        return joined(each("share of rows closer to training than to held-out rows", "dcr_closer_to_training", ".3f"),
                      each("exact copies", "exact_copies", ".3f"))
    return joined(each("FD coefficient of variation across seeds", "fid_cv", ".2f"))
