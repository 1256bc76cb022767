"""Does a busy machine change the verdict? The same `trilemma compare` twice, with the same seed:
once on a quiet machine, once with a CPU hog (`python3 -c "while True: pass"`) busy throughout.

    python benchmarks/bench_under_load.py [--minutes 1] [--data mnist] [--work DIR]

Targets (issue 16): each family's training steps agree within 10% between the two runs, and the
recommendation is the same. It prints steps, FD, wall time and the measured throughput loss per
family side by side, with the verdicts, and appends them to benchmarks/results/under-load.jsonl.
Start it on a quiet machine: the first run is the reference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record

STEPS_TOLERANCE = 0.10


def compare(out: Path, minutes: float, data: str, hog: bool) -> tuple[dict, float]:
    command = [sys.executable, "-m", "trilemma", "compare", "--out", str(out), "--minutes", str(minutes),
               "--data", data, "--quiet"]
    hogger = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        started = time.perf_counter()
        subprocess.run(command, check=True)
        wall = time.perf_counter() - started
    finally:
        if hogger is not None:
            hogger.kill()
            hogger.wait()
    return json.loads((out / "results.json").read_text()), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=1.0, help="compare --minutes (default 1)")
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--work", help="folder for the two comparisons (default: a new temporary one)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-under-load-"))
    quiet, quiet_wall = compare(work / "quiet", args.minutes, args.data, hog=False)
    loaded, loaded_wall = compare(work / "loaded", args.minutes, args.data, hog=True)

    rows, steps_agree = {}, True
    print(f"{'family':<10} {'steps quiet':>11} {'loaded':>7} {'Δ':>6} {'FD quiet':>9} {'loaded':>8} "
          f"{'throughput loss quiet':>22} {'loaded':>7}")
    for name in quiet["families"]:
        q, lo = quiet["families"][name], loaded["families"][name]
        change = lo["steps"] / q["steps"] - 1
        steps_agree &= abs(change) <= STEPS_TOLERANCE
        loss_q, loss_l = (_loss(r, name) for r in (quiet, loaded))
        rows[name] = {"steps": [q["steps"], lo["steps"]], "fid": [q["fid"], lo["fid"]],
                      "throughput_loss": [loss_q, loss_l]}
        print(f"{name:<10} {q['steps']:>11.0f} {lo['steps']:>7.0f} {100 * change:>+5.1f}% {q['fid']:>9.1f} "
              f"{lo['fid']:>8.1f} {_percent(loss_q):>22} {_percent(loss_l):>7}")
    verdicts = [quiet["recommendation"]["family"], loaded["recommendation"]["family"]]
    print(f"recommended: {verdicts[0]} (quiet) / {verdicts[1]} (loaded); wall {quiet_wall:.0f} s / "
          f"{loaded_wall:.0f} s")
    print(f"warnings in the loaded report: {len(loaded.get('warnings', []))}; in the quiet one: "
          f"{len(quiet.get('warnings', []))}")
    print(f"steps within {100 * STEPS_TOLERANCE:.0f}%: {'yes' if steps_agree else 'NO'}; same recommendation: "
          f"{'yes' if verdicts[0] == verdicts[1] else 'NO'}")
    path = record("under-load", {
        "minutes": args.minutes, "data": args.data, "families": rows, "recommended": verdicts,
        "wall_seconds": [quiet_wall, loaded_wall], "steps_within_tolerance": steps_agree,
        "warnings": [quiet.get("warnings", []), loaded.get("warnings", [])],
        "clock": quiet["families"][next(iter(quiet["families"]))].get("training_provenance", {}).get("clock"),
        "work": str(work)})
    print(f"recorded in {path}")


def _loss(results: dict, name: str) -> float | None:
    seeds = results["families"][name].get("contention") or [{}]
    return seeds[0].get("throughput_loss")


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


if __name__ == "__main__":
    main()
