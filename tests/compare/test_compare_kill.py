"""`trilemma compare`, as a real process, killed with SIGKILL (its whole process group, so that
any child dies too) at several moments, then rerun until it finishes: the same results as an
uninterrupted run, every curve point once. The moments are read off the output folder, not the
log, so they mean the same however the families are scheduled."""

from __future__ import annotations

import json
import random
import time

import pytest

from killing import Watched, cli_env
from trilemma.io.atomic import is_leftover
from trilemma.metrics.catalogue import RESULT_METRICS

pytestmark = pytest.mark.slow  # real processes: about two minutes

STEPS = 40
ARGS = ["compare", "--data", "digits", "--steps", STEPS, "--samples", 60, "--evaluations", 2,
        "--device", "cpu", "--quiet"]
# Figures of the clock rather than of the models: they differ between any two runs.
TIMED = {"samples_per_s", "train_seconds", "images_per_s", "fraction_of_peak", "peak_memory_bytes"}


def _compare(out) -> Watched:
    return Watched([*ARGS, "--out", out], cli_env())


def _trained(run) -> bool:
    try:
        return json.loads((run / "latest.json").read_text())["step"] == STEPS
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return False


def _figures(results: dict) -> dict:
    """Every family's figures and curve points, less what the clock decides."""
    out = {}
    for name, entry in results["families"].items():
        figures = {m.results_column: entry[m.results_column] for m in RESULT_METRICS
                   if m.results_column not in TIMED}
        curves = [[{k: v for k, v in p.items() if k != "train_seconds"} for p in c["points"]]
                  for c in entry["curves"]]
        out[name] = {**figures, "curves": curves, "collapse": entry["collapse"]}
    return out


def test_compare_killed_at_several_moments_resumes_to_the_same_results(tmp_path):
    code, output = _compare(tmp_path / "reference").finish(timeout=600)
    assert code == 0, output[-3000:]
    reference = json.loads((tmp_path / "reference" / "results.json").read_text())
    second, last = list(reference["families"])[1], list(reference["families"])[-1]
    out = tmp_path / "killed"
    runs, rng, moments = out / "runs", random.Random("compare-kill"), []

    def kill_when(condition, what: str, delay: float = 0.0, required: bool = True) -> None:
        watched = _compare(out)
        assert watched.wait_until(condition, timeout=600), f"{what}: the comparison ended first"
        time.sleep(delay)
        killed = watched.kill()
        assert killed or not required, f"{what}: ended before the kill; {''.join(watched.stderr)[-2000:]}"
        moments.append(f"{what} (+{delay:.2f} s){'' if killed else ': finished first'}")

    kill_when(lambda: (runs / f"{second}-seed0" / "config.json").exists(), f"{second} training",
              rng.uniform(0.0, 0.3))
    curve = runs / f"{second}-seed0" / "curve.jsonl"
    kill_when(lambda: curve.exists() and curve.stat().st_size > 0, f"{second} at its first curve point")
    with open(curve, "a") as f:  # what a kill in the middle of the next append would leave
        f.write('{"step": 40, "fraction": 0.5, "fid": 12')
    last_run = runs / f"{last}-seed0"
    kill_when(lambda: _trained(last_run) and not (last_run / "evaluation.json").exists(),
              f"{last} evaluating", rng.uniform(0.0, 1.0))
    kill_when(lambda: all((r / "evaluation.json").exists() for r in runs.iterdir()),
              "writing the results", rng.uniform(0.0, 0.3), required=False)

    code, output = _compare(out).finish(timeout=600)
    assert code == 0, (moments, output[-3000:])
    results = json.loads((out / "results.json").read_text())
    assert _figures(results) == _figures(reference), moments
    assert results["recommendation"]["family"] == reference["recommendation"]["family"]
    for run in runs.iterdir():  # every line whole, every point once
        points = [json.loads(line) for line in (run / "curve.jsonl").read_text().splitlines()]
        assert [p["fraction"] for p in points] == [0.5], (run.name, points)
    assert not [p for p in out.rglob("*") if is_leftover(p.name) or p.name.startswith(".tmp-")]
