"""The hybrids against diffusion, measured as a user gets them: `trilemma compare --hybrids`.

    python benchmarks/bench_hybrids.py [--data mnist,grid25] [--minutes 3] [--seeds 1]

Targets (issue 19), on mnist at the 3-minute CPU budget:
- flow: FD within 15% of diffusion's, at no more than half of diffusion's default NFE;
- ddgan: recall within 0.1 of diffusion's at 4 NFE, sampling at least 10x faster than diffusion;
- latent-diffusion: sampling at least 3x faster than pixel diffusion.
On grid25, at the default 2-D budget: each hybrid covers at least 24 of 25 modes, and flow
reaches at least 90% high-quality samples.

Each data set is one comparison of all six families (the classic three and the hybrids) in a
fresh process and a new folder; budgets are calibrated steps, so the figures do not depend on
what else runs, but take sampling speeds on a quiet machine. Figures and verdicts are printed
and appended to benchmarks/results/hybrids.jsonl.
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

KEYS = ("fid", "reconstruction_fid", "precision", "recall", "coverage", "classes_covered", "modes_covered",
        "high_quality_fraction", "confident_fraction", "samples_per_s", "nfe", "steps", "train_seconds")


def targets(data: str, f: dict) -> dict[str, bool | None]:
    """Each target of the issue for this data set, met or not (None: a family is missing)."""
    d = f.get("diffusion")
    if data == "grid25":
        checks = {f"{n} covers >= 24/25 modes": f[n]["modes_covered"] >= 24
                  for n in ("flow", "ddgan", "latent-diffusion") if n in f}
        if "flow" in f:
            checks["flow >= 90% high-quality"] = f["flow"]["high_quality_fraction"] >= 0.9
        return checks
    if d is None:
        return {}
    checks: dict[str, bool | None] = {}
    if "flow" in f:
        checks["flow FD <= 1.15x diffusion's at <= half its NFE"] = (
            f["flow"]["fid"] <= 1.15 * d["fid"] and f["flow"]["nfe"] <= 0.5 * d["nfe"])
    if "ddgan" in f:
        checks["ddgan recall >= diffusion's - 0.1"] = f["ddgan"]["recall"] >= d["recall"] - 0.1
        checks["ddgan samples/s >= 10x diffusion's"] = f["ddgan"]["samples_per_s"] >= 10 * d["samples_per_s"]
    if "latent-diffusion" in f:
        checks["latent-diffusion samples/s >= 3x diffusion's"] = (
            f["latent-diffusion"]["samples_per_s"] >= 3 * d["samples_per_s"])
    return checks


def run(data: str, minutes: float | None, seeds: int, root: Path) -> None:
    out = root / f"hybrids-{data}"
    extra = ["--minutes", str(minutes)] if minutes else []
    command = [sys.executable, "-m", "trilemma", "compare", "--data", data, "--hybrids", "--seeds", str(seeds),
               "--out", str(out), "--quiet", *extra]
    started = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - started
    results = json.loads((out / "results.json").read_text())
    families = {n: {k: e.get(k) for k in KEYS} for n, e in results["families"].items()}
    checks = targets(data, families)
    fid_name = next(iter(results["families"].values())).get("fid_name")
    payload = {
        "command": " ".join(["trilemma", "compare", "--data", data, "--hybrids", "--seeds", str(seeds), *extra]),
        "data": data, "wall_seconds": wall, "matmul_peak_gflops": matmul_peak_gflops("cpu"),
        "fid_name": fid_name, "families": families, "targets": checks,
        "claims": [c for c in results["claims"] if c["family"] in ("flow", "ddgan", "latent-diffusion")],
        "recommendation": results["recommendation"]["family"], "out": str(out),
    }
    path = record("hybrids", payload)
    print(f"{payload['command']}: {wall:.0f} s wall clock")
    for name, f in families.items():
        fid = "–" if f["fid"] is None else f"{f['fid']:.1f}"
        recall = "–" if f["recall"] is None else f"{f['recall']:.2f}"
        extra_figure = (f"modes {f['modes_covered']}/25 HQ {f['high_quality_fraction']:.3f}" if data == "grid25"
                        else f"classes {f['classes_covered']}")
        print(f"  {name:17s} {fid_name} {fid:>7s}  recall {recall}  {extra_figure}  "
              f"{f['samples_per_s']:.0f} samples/s at NFE {f['nfe']:.0f}  {f['steps']:.0f} steps")
    for target, met in checks.items():
        print(f"  {'met   ' if met else 'MISSED'} {target}")
    print(f"recorded in {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist,grid25", help="comma list of data sets")
    parser.add_argument("--minutes", type=float, default=3.0, help="budget on images (points: the 2-D default)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", help="folder for the comparisons (default: a new temporary one)")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="bench-hybrids-"))
    for data in args.data.split(","):
        run(data, None if data in ("grid25", "ring8") else args.minutes, args.seeds, root)


if __name__ == "__main__":
    main()
