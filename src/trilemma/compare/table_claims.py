"""The folklore restated for tables and judged with a table's figures.

On a table there are no pictures to be blurry and no modes of a mixture to miss. What the
folklore predicts shows instead as:

- **blur**: numeric columns smoothed, the peaks of a multimodal column filled in, so the numeric
  columns' shapes (their mean KS complement, ``numeric_shapes``) fall behind;
- **collapse**: rare categories lost (``categories_covered``) and the categorical columns'
  frequencies pulled towards the common values (their mean TV complement, ``category_shapes``).

Each rule compares a family with the others of the same comparison; the thresholds are stated
with every verdict. The rules that do not depend on the kind of data (stability, sampling
speed) are those of `trilemma.compare.claims`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Verdict = tuple[str, str]
CLOSE = 0.01  # shape scores within this of the best count as level with it
BEHIND = 0.05  # categorical shapes this far behind the best other count as pulled to common values


def _scores(families: dict[str, Any], key: str) -> dict[str, float]:
    return {n: f[key] for n, f in families.items() if f.get(key) is not None}


def _listed(scores: dict[str, float]) -> str:
    return ", ".join(f"{n} {v:.3f}" for n, v in scores.items())


def _numeric(name: str, families: dict[str, Any]) -> tuple[float | None, dict[str, float], str]:
    scores = _scores(families, "numeric_shapes")
    return scores.get(name), {n: v for n, v in scores.items() if n != name}, (
        f"numeric columns' shapes (mean KS complement): {_listed(scores)}")


def _categories(name: str, families: dict[str, Any]) -> tuple[bool | None, float | None, float | None, str]:
    """(every real category made, its categorical shapes, the best other's, evidence)."""
    f = families[name]
    covered, total = f.get("categories_covered"), f.get("num_categories")
    shapes = _scores(families, "category_shapes")
    others = [v for n, v in shapes.items() if n != name]
    text = (f"categories covered {covered:.0f}/{total:.0f}" if covered is not None else "no categorical column")
    if shapes:
        text += f"; categorical columns' shapes (mean TV complement): {_listed(shapes)}"
    full = None if covered is None else covered >= total
    return full, shapes.get(name), max(others, default=None), text


def _sharp(name: str, families: dict[str, Any]) -> Verdict:
    mine, others, text = _numeric(name, families)
    if mine is None or not others:
        return "not measured", "Needs numeric columns and another family to compare with."
    verdict = ("supported" if mine >= max(others.values()) - CLOSE else
               "contradicted" if mine < min(others.values()) else "mixed")
    return verdict, (f"{text}. On a table blur shows as smoothed numeric columns. Rule: sharp when level "
                     f"with the best other (within {CLOSE}), contradicted when the lowest.")


def _blurry(name: str, families: dict[str, Any]) -> Verdict:
    mine, others, text = _numeric(name, families)
    if mine is None or not others:
        return "not measured", "Needs numeric columns and another family to compare with."
    verdict = ("supported" if mine < min(others.values()) else
               "contradicted" if mine >= max(others.values()) - CLOSE else "mixed")
    return verdict, (f"{text}. On a table blur shows as smoothed numeric columns. Rule: blurry when the "
                     f"lowest, contradicted when level with the best other (within {CLOSE}).")


def _collapse(name: str, families: dict[str, Any]) -> Verdict:
    full, mine, best_other, text = _categories(name, families)
    if full is None:
        return "not measured", text + "."
    behind = mine is not None and best_other is not None and mine < best_other - BEHIND
    level = mine is None or best_other is None or mine >= best_other - CLOSE
    verdict = "supported" if not full or behind else "contradicted" if level else "mixed"
    return verdict, (f"{text}. On a table collapse shows as lost categories. Rule: supported when a real "
                     f"category is never made or the categorical shapes trail the best other by more than "
                     f"{BEHIND}; contradicted when every category is made and they are level (within {CLOSE}).")


def _diverse(name: str, families: dict[str, Any]) -> Verdict:
    full, mine, best_other, text = _categories(name, families)
    if full is None:
        return "not measured", text + "."
    level = mine is None or best_other is None or mine >= best_other - CLOSE
    verdict = "supported" if full and level else "contradicted" if not full else "mixed"
    return verdict, (f"{text}. Rule: supported when every real category is made and the categorical shapes "
                     f"are level with the best other (within {CLOSE}); contradicted when a category is lost.")


def _sharp_and_diverse(name: str, families: dict[str, Any]) -> Verdict:
    sharp, sharp_text = _sharp(name, families)
    diverse, diverse_text = _diverse(name, families)
    verdicts = {sharp, diverse} - {"not measured"}
    verdict = ("not measured" if not verdicts else "supported" if verdicts == {"supported"} else
               "contradicted" if "contradicted" in verdicts else "mixed")
    return verdict, f"Sharp: {sharp} ({sharp_text}) Diverse: {diverse} ({diverse_text})"


def _costly(name: str, families: dict[str, Any]) -> Verdict:
    gflops = _scores(families, "training_gflops_per_image")
    return "not measured", ("On a table every family trains for the same budget and no quality curve is "
                            "compared across families; training GFLOPs per row: " + (_listed(gflops) or "unknown") + ".")


TABLE_RULES: dict[str, Callable[[str, dict[str, Any]], Verdict]] = {
    "sharp": _sharp, "blurry": _blurry, "collapse": _collapse, "diverse": _diverse,
    "sharp_and_diverse": _sharp_and_diverse, "costly": _costly,
}
