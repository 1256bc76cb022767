"""`compare --parallel-families` against the sequential comparison: wall time and figures.

    python benchmarks/bench_parallel_families.py [--data mnist] [--families vae,gan] [--steps 300]

Runs the same comparison three times from an empty folder, with P the number of families
(gloo, one CPU thread per process, `--device cpu`; on this 2-core machine two families are the
most that can each have a core of their own):

- `torchrun --nproc_per_node=P compare`: what a user with P devices got before, one family at a
  time, each one DDP model over the P ranks;
- `torchrun --nproc_per_node=P compare --parallel-families`: the families at once, one rank each;
- `compare` in one process, which on a CPU already trains the families side by side, one
  single-threaded process each (`compare.side_by_side`): the reference for the figures.

Reports the wall times, when each family finished (its evaluation.json appeared) in each run,
and whether the parallel run's quality figures equal the one-process run's.
Run it on a quiet machine; the figures go to benchmarks/results/parallel-families.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, record

QUALITY = ("fid", "precision", "recall", "density", "coverage", "classes_covered", "modes_covered",
           "high_quality_fraction", "steps")


def _command(args: argparse.Namespace, out: Path) -> list[str]:
    return ["-m", "trilemma", "compare", "--data", args.data, "--families", args.families, "--steps",
            str(args.steps), "--samples", str(args.samples), "--evaluations", "2", "--device", "cpu", "--quiet",
            "--out", str(out)]


def _run(command: list[str]) -> tuple[float, float]:
    """(wall seconds, the time.time() it started)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started, epoch = time.perf_counter(), time.time()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, epoch


def _figures(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {family: {k: v for k, v in figures["seeds"][0].items() if k in QUALITY}
            for family, figures in results["families"].items()}


def _finished(out: Path, families: list[str], started: float) -> dict[str, float]:
    """Seconds from the launch until each family's evaluation.json was written."""
    from trilemma.compare.family_job import run_dir_of

    return {family: (run_dir_of(out, family, 0) / "evaluation.json").stat().st_mtime - started
            for family in families}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--families", default="vae,gan")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    families = args.families.split(",")
    processes = len(families)
    peak = matmul_peak_gflops()
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
        runs = {"ddp_one_family_at_a_time": [*torchrun, *_command(args, work / "ddp")],
                "parallel_families": [*torchrun, *_command(args, work / "parallel"), "--parallel-families"],
                "one_process": [sys.executable, *_command(args, work / "single")]}
        walls, done = {}, {}
        for name, command in runs.items():
            walls[name], started = _run(command)
            done[name] = _finished(work / command[command.index("--out") + 1], families, started)
            print(f"{name:>25}: {walls[name]:5.0f} s; families done at "
                  + ", ".join(f"{family} {seconds:.0f} s" for family, seconds in done[name].items()))
        same = _figures(work / "single") == _figures(work / "parallel")
    print(f"{args.families} on {args.data}, {args.steps} steps each, {processes} processes: --parallel-families "
          f"{walls['ddp_one_family_at_a_time'] / walls['parallel_families']:.2f}x faster than one DDP family at "
          f"a time; figures {'identical to' if same else 'DIFFERENT from'} the one-process run's; matmul peak "
          f"{peak:.0f} GFLOP/s")
    path = record("parallel-families", {"data": args.data, "families": args.families, "steps": args.steps,
                                        "samples": args.samples, "processes": processes,
                                        "wall_seconds": walls, "families_done_seconds": done,
                                        "figures_identical": same,
                                        "cpu_count": os.cpu_count(), "matmul_peak_gflops": peak})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
