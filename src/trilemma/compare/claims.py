"""The folklore about the families, stated as claims and checked against this run.

Each family declares its folklore (`Family.folklore`: rule name to claim sentence); each rule
here takes a family's name and every family's figures and returns a verdict — "supported",
"contradicted", "mixed" or "not measured" — with the figures behind it. The thresholds are
stated in each rule; they are judgement calls, so the figures travel with every verdict for the
reader to judge too.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from trilemma.compare.hybrid_claims import RULES as HYBRID_RULES
from trilemma.compare.table_claims import TABLE_RULES
from trilemma.families import registered

SHARP = 0.7  # relative sharpness (Laplacian variance / real's) from which samples count as sharp
BLURRY = 0.5  # below which they count as blurry
NOISY = 1.5  # above which the extra high frequencies are noise, not detail
REBOUND = 0.10  # an FD rise of more than 10% between curve points counts as a setback
# Any divergence rollback (trilemma.training.divergence: a NaN or exploding loss sent the run
# back to its last checkpoint) counts as instability; collapse seen on the curve
# (trilemma.metrics.collapse) counts as collapse.


def _others(families: dict[str, Any], name: str, key: str) -> dict[str, float]:
    return {n: f[key] for n, f in families.items() if n != name and f.get(key) is not None}


def _coverage(f: dict[str, Any]) -> tuple[int | None, int | None, str]:
    if f.get("classes_covered") is not None:
        return f["classes_covered"], f.get("num_classes"), "classes"
    if f.get("modes_covered") is not None:
        return f["modes_covered"], f.get("num_modes"), "modes"
    return None, None, "classes"


def _setbacks(entry: dict[str, Any]) -> list[float]:
    """Relative FD rises between consecutive curve points, over every seed."""
    rises = []
    for curve in entry.get("curves", []):
        fds = [p["fid"] for p in curve["points"] if p.get("fid") is not None]
        rises += [(b - a) / a for a, b in pairwise(fds) if a > 0]
    return rises


def _time_to_reach(entry: dict[str, Any], target: float) -> float | None:
    """Training seconds until the first curve point at or below FD `target` (mean over seeds)."""
    times = []
    for curve in entry.get("curves", []):
        reached = [p["train_seconds"] for p in curve["points"] if p.get("fid") is not None and p["fid"] <= target]
        if not reached:
            return None
        times.append(min(reached))
    return sum(times) / len(times) if times else None


def _last_fid(entry: dict[str, Any]) -> float | None:
    """The worst (over seeds) FD of the last curve point."""
    last = [c["points"][-1].get("fid") for c in entry.get("curves", []) if c["points"]]
    last = [v for v in last if v is not None]
    return max(last) if last else None


Verdict = tuple[str, str]  # (verdict, evidence)


def check_claims(results: dict[str, Any]) -> list[dict[str, str]]:
    """Every registered family's folklore, judged on the figures of `results`, in the order
    the families appear there. A family this version does not know has no claims."""
    families = results["families"]
    known = registered()
    rules = {**RULES, **TABLE_RULES} if results.get("kind") == "table" else RULES
    claims = []
    for name in families:
        cls = known.get(name)
        for rule, claim in (cls.folklore.items() if cls is not None else ()):
            verdict, evidence = rules[rule](name, families)
            claims.append({"family": name, "claim": claim, "verdict": verdict, "evidence": evidence})
    return claims


def _sharp(name: str, families: dict[str, Any]) -> Verdict:
    s = families[name].get("sharpness")
    if s is None:
        p = families[name].get("precision")
        return ("not measured",
                f"Sharpness is defined for images only; on these points precision is {p:.2f}."
                if p is not None else "Sharpness is defined for images only.")
    others = _others(families, name, "sharpness")
    text = (f"Relative sharpness (Laplacian variance of samples / of real images) {s:.2f}"
            + "".join(f"; {n} {v:.2f}" for n, v in others.items())
            + f". Rule: sharp from {SHARP} to {NOISY} (real = 1; above is noise), blurry under {BLURRY}.")
    verdict = "supported" if SHARP <= s <= NOISY else "contradicted" if s < BLURRY else "mixed"
    return verdict, text


def _collapse(name: str, families: dict[str, Any]) -> Verdict:
    f = families[name]
    covered, total, unit = _coverage(f)
    recall = f.get("recall")
    other_recall = _others(families, name, "recall")
    best_other = max(other_recall.values(), default=None)
    parts = []
    if covered is not None:
        parts.append(f"{unit} covered {covered:.0f}/{total:.0f}")
    if recall is not None:
        parts.append(f"recall {recall:.2f}" + "".join(f" ({n} {v:.2f})" for n, v in other_recall.items()))
    seen = _collapse_seen(f)
    if seen:
        parts.append(seen)
    # With 1,000 modes (stacked-mnist) even a perfect model's n samples miss some: the bar is
    # then what it covers at n, 3 standard deviations low (`metrics.modes.finite_sample_ceiling`).
    bar = f.get("modes_floor") if unit == "modes" and f.get("modes_floor") is not None else total
    if bar is not None and bar != total:
        parts.append(f"a perfect model's as many samples cover ≥ {bar:.0f}")
    if unit == "modes" and f.get("reverse_kl_modes") is not None:
        parts.append(f"KL to uniform {f['reverse_kl_modes']:.3f} nats")
    missing = covered is not None and bar is not None and covered < bar
    low_recall = recall is not None and best_other is not None and recall < 0.8 * best_other
    full = covered is not None and bar is not None and covered >= bar
    fair_recall = recall is not None and (best_other is None or recall >= 0.9 * best_other)
    verdict = ("supported" if missing or low_recall or seen else
               "contradicted" if full and fair_recall else "mixed")
    rule = (f"Rule: supported when {unit} are missing, recall is under 0.8× the best other "
            f"family, or collapse was seen during training (coverage or recall fell from its best); "
            f"contradicted when all {unit} are covered"
            + (" (as many as a perfect model's samples would cover)" if bar != total else "")
            + " and recall is within 0.9×.")
    return verdict, "; ".join(parts) + ". " + rule


def _collapse_seen(f: dict[str, Any]) -> str | None:
    """The collapses seen on the family's curves, as evidence text; None when none was."""
    seen = f.get("collapse") or []
    if not seen:
        return None
    return "; ".join(
        f"collapse seen during training (seed {c['seed']}) from step {c['step']}: "
        + ", ".join(c["signals"]) + (", recovered by the end" if c.get("recovered") else "")
        for c in seen)


def _rollback_evidence(entry: dict[str, Any]) -> tuple[str | None, bool]:
    """Text on the family's divergence rollbacks (None: not counted), and whether it had any."""
    count = entry.get("rollbacks")
    if count is None:
        return None, False
    records = entry.get("rollback_records") or []
    mean = " (mean over seeds)" if entry.get("rollbacks_std") is not None else ""
    where = "".join(f"; step {r['step']} (seed {r['seed']}): {r['reason']}" for r in records[:3])
    return f"divergence rollbacks {count:g}{mean}{where}", count > 0


def _stability_evidence(name: str, families: dict[str, Any]) -> tuple[str, bool | None, bool | None]:
    """Text, whether the family looks unstable, whether it looks stable (None: not measured)."""
    entry = families[name]
    rollback_text, diverged = _rollback_evidence(entry)
    rises = _setbacks(entry)
    worst = max(rises, default=None)
    cv = entry.get("fid_cv")
    other_cv = _others(families, name, "fid_cv")
    parts = []
    if worst is not None:
        parts.append(f"largest FD rise between curve points {100 * max(worst, 0):.0f}%")
    if cv is not None:
        parts.append(f"FD spread across seeds (CV) {cv:.2f}" + "".join(f" ({n} {v:.2f})" for n, v in other_cv.items()))
    else:
        parts.append("one seed, so no spread across seeds (use --seeds 2 or more)")
    if rollback_text:
        parts.append(rollback_text)
    setback = worst is not None and worst > REBOUND
    spread_high = cv is not None and other_cv and cv > max(other_cv.values()) and cv > 0.1
    spread_low = cv is not None and (not other_cv or cv <= min(other_cv.values()))
    if worst is None and cv is None and rollback_text is None:
        return "; ".join(parts), None, None
    unstable = setback or spread_high or diverged
    stable = not setback and not diverged and (cv is None or spread_low)
    return "; ".join(parts) + (f". Rule: a setback is an FD rise over {100 * REBOUND:.0f}%; any divergence "
                               "rollback (a NaN or exploding loss) is instability."), unstable, stable


def _unstable(name: str, families: dict[str, Any]) -> Verdict:
    text, unstable, stable = _stability_evidence(name, families)
    if unstable is None:
        return "not measured", text
    verdict = "supported" if unstable else "contradicted" if stable and families[name].get("fid_cv") is not None else "mixed"
    if verdict == "mixed" and not unstable:
        text += " No setback or rollback at this budget, but one seed cannot show instability across runs."
    return verdict, text


def _stable(name: str, families: dict[str, Any]) -> Verdict:
    text, unstable, stable = _stability_evidence(name, families)
    if unstable is None:
        return "not measured", text
    verdict = "contradicted" if unstable else "supported" if stable else "mixed"
    return verdict, text


def _diverse(name: str, families: dict[str, Any]) -> Verdict:
    f = families[name]
    covered, total, unit = _coverage(f)
    recall = f.get("recall")
    best_other = max(_others(families, name, "recall").values(), default=None)
    parts = [f"{unit} covered {covered:.0f}/{total:.0f}"] if covered is not None else []
    if recall is not None:
        parts.append(f"recall {recall:.2f}" + (f" (best other family {best_other:.2f})" if best_other is not None else ""))
    full = covered is None or covered == total
    verdict = ("supported" if full and recall is not None and (best_other is None or recall >= 0.9 * best_other)
               else "contradicted" if not full or (recall is not None and best_other and recall < 0.7 * best_other)
               else "mixed")
    return verdict, ("; ".join(parts) + ". Rule: supported when every class/mode is covered and "
                     "recall is within 0.9× the best other; contradicted under 0.7× or with gaps.")


def _blurry(name: str, families: dict[str, Any]) -> Verdict:
    s = families[name].get("sharpness")
    if s is None:
        return "not measured", "Sharpness is defined for images only."
    others = _others(families, name, "sharpness")
    text = (f"Relative sharpness {s:.2f}" + "".join(f"; {n} {v:.2f}" for n, v in others.items())
            + f". Rule: blurry when < {BLURRY}, sharp when ≥ {SHARP}.")
    verdict = "supported" if s < BLURRY else "contradicted" if s >= SHARP else "mixed"
    return verdict, text


def _sharp_and_diverse(name: str, families: dict[str, Any]) -> Verdict:
    f = families[name]
    s, recall = f.get("sharpness"), f.get("recall")
    covered, total, unit = _coverage(f)
    best_recall = max((g["recall"] for g in families.values() if g.get("recall") is not None), default=None)
    fd_rank = sorted(families, key=lambda n: families[n]["fid"]).index(name) + 1
    parts = []
    if s is not None:
        parts.append(f"relative sharpness {s:.2f}")
    if recall is not None:
        parts.append(f"recall {recall:.2f} (best {best_recall:.2f})")
    if covered is not None:
        parts.append(f"{unit} covered {covered:.0f}/{total:.0f}")
    parts.append(f"FD rank {fd_rank} of {len(families)}")
    sharp = s is None or SHARP <= s <= NOISY
    diverse = (recall is not None and best_recall is not None and recall >= 0.9 * best_recall
               and (covered is None or covered == total))
    verdict = ("supported" if sharp and diverse else
               "contradicted" if (s is not None and s < BLURRY) or (recall is not None and best_recall and recall < 0.7 * best_recall)
               else "mixed")
    return verdict, ("; ".join(parts) + f". Rule: sharp from {SHARP} to {NOISY}; diverse when recall "
                     "is within 0.9× the best and every class/mode is covered.")


def _slow(name: str, families: dict[str, Any]) -> Verdict:
    f = families[name]
    speed = f["samples_per_s"]
    others = _others(families, name, "samples_per_s")
    if not others:
        return "not measured", f"{speed:.1f} samples/s; no other family to compare."
    fastest = max(others, key=others.get)
    factor = others[fastest] / speed if speed > 0 else float("inf")
    text = (f"{speed:.1f} samples/s at {f['nfe']:.0f} network evaluations per sample; {fastest} "
            f"{others[fastest]:.0f} samples/s ({factor:.0f}× faster). Rule: supported when the "
            "slowest family by 10× or more.")
    verdict = "supported" if factor >= 10 else "contradicted" if factor < 1 else "mixed"
    return verdict, text


def _costly(name: str, families: dict[str, Any]) -> Verdict:
    # Curve points all use the same number of samples (the final FD uses more, so it is lower).
    ends = [_last_fid(f) for f in families.values()]
    if any(e is None for e in ends):
        return "not measured", "No quality curve during training."
    target = max(ends)
    times = {n: _time_to_reach(f, target) for n, f in families.items()}
    gflops = {n: f.get("training_gflops_per_image") for n, f in families.items()}
    fid_name = families[name].get("fid_name") or "FD"
    parts = [f"training seconds to first reach {fid_name} ≤ {target:.1f} (the worst end-of-training curve point): "
             + ", ".join(f"{n} {t:.0f} s" if t is not None else f"{n} never" for n, t in times.items())]
    if all(v is not None for v in gflops.values()):
        parts.append("training GFLOPs per image " + ", ".join(f"{n} {v:.3f}" for n, v in gflops.items()))
    mine = times.get(name)
    others = [t for n, t in times.items() if n != name and t is not None]
    if mine is None or not others:
        verdict = "supported" if mine is None else "not measured"
    else:
        verdict = "supported" if mine > max(others) else "contradicted" if mine <= min(others) else "mixed"
    return verdict, ("; ".join(parts) + ". Every family had the same wall-clock budget; the rule "
                     "compares how soon each reached that quality.")


# The rules a family's folklore may name.
RULES: dict[str, Callable[[str, dict[str, Any]], Verdict]] = {
    "sharp": _sharp, "collapse": _collapse, "unstable": _unstable,
    "stable": _stable, "diverse": _diverse, "blurry": _blurry,
    "sharp_and_diverse": _sharp_and_diverse, "slow": _slow, "costly": _costly,
    **HYBRID_RULES,
}
