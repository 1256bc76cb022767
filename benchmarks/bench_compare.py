"""The main job, timed: `trilemma compare` with its defaults, from start to report.

    python benchmarks/bench_compare.py [--out DIR] [-- extra compare arguments]

Target (issue 4): the default comparison on mnist finishes within 10 minutes on a 2-core CPU.
It runs the command as a user would (a fresh process, a new output folder), times it wall-clock,
and records the total with each family's headline figures. Run it on a quiet machine.
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
from common import matmul_peak_gflops, record

TARGET_SECONDS = 600.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output folder (default: a new temporary one)")
    parser.add_argument("extra", nargs="*", help="more `trilemma compare` arguments, after --")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="bench-compare-")) / "compare"
    command = [sys.executable, "-m", "trilemma", "compare", "--out", str(out), *args.extra]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    results = json.loads((out / "results.json").read_text())
    families = {
        name: {k: f.get(k) for k in ("fid", "kid", "precision", "recall", "density", "coverage",
                                     "classes_covered", "sharpness", "samples_per_s", "nfe", "steps",
                                     "images_per_s", "train_seconds")}
        for name, f in results["families"].items()
    }
    payload = {
        "command": " ".join(["trilemma", "compare", "--out", "DIR", *args.extra]),
        "wall_seconds": wall,
        "target_seconds": TARGET_SECONDS,
        "within_target": wall <= TARGET_SECONDS,
        "matmul_peak_gflops": matmul_peak_gflops("cpu"),
        "fid_name": next(iter(results["families"].values())).get("fid_name"),
        "families": families,
        "recommendation": results["recommendation"]["family"],
        "out": str(out),
    }
    path = record("compare", payload)
    print(f"trilemma compare {' '.join(args.extra)}: {wall:.0f} s wall clock "
          f"({'within' if wall <= TARGET_SECONDS else 'OVER'} the {TARGET_SECONDS:.0f} s target)")
    for name, f in families.items():
        print(f"  {name:9s} {payload['fid_name']} {f['fid']:.1f}  precision {f['precision']:.2f}  "
              f"recall {f['recall']:.2f}  {f['samples_per_s']:.0f} samples/s  {f['steps']} steps")
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
