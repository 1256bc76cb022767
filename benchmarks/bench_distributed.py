"""Training throughput per family at 1 and 2 processes on this CPU (DDP over gloo, torchrun).

    python benchmarks/bench_distributed.py [--data mnist] [--steps 40] [--repeats 2] [--families vae,gan,diffusion]

Each configuration trains the family's defaults through `trilemma.training.train` for --steps
steps at the same global batch; images/s = steps × global batch / the loop's own clock (rank
0's). Three configurations share the machine's cores differently:

- 1 process × 1 thread    the per-core baseline
- 1 process × N threads   what one process makes of all N cores (intra-op parallelism)
- N processes × 1 thread  DDP: data parallelism over the same N cores

Run it on a quiet machine (check `uptime`): the figures are recorded with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record

ROOT = Path(__file__).resolve().parent.parent


def worker(family: str, data_spec: str, steps: int, out: Path, result_file: Path) -> None:
    """One training run (called in each process that torchrun starts, or in a plain one)."""
    from trilemma import distributed
    from trilemma.data import load_data
    from trilemma.training import Budget, train

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    result = train(family, load_data(data_spec), out, budget=Budget(steps=steps), progress=False, device="cpu")
    if distributed.is_main():
        result_file.write_text(json.dumps({
            "steps": result.steps, "seconds": result.seconds, "images_per_s": result.images_per_second,
            "world_size": distributed.world_size(),
        }))
    distributed.shutdown()


def launch(family: str, data_spec: str, steps: int, processes: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "result.json"
        args = [str(Path(__file__).resolve()), "--worker", family, data_spec, str(steps), f"{tmp}/run",
                str(result_file)]
        if processes > 1:
            command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                       f"--nproc_per_node={processes}", *args]
        else:
            command = [sys.executable, *args]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "BENCH_THREADS": str(threads),
               "PYTHONPATH": str(ROOT / "src")}
        subprocess.run(command, env=env, check=True, timeout=1800)
        return json.loads(result_file.read_text())


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        family, data_spec, steps, out, result_file = sys.argv[2:7]
        worker(family, data_spec, int(steps), Path(out), Path(result_file))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--families", default="vae,gan,diffusion")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds over the configurations; the best of each is kept (load comes and goes)")
    args = parser.parse_args()
    n = args.processes
    load_before = os.getloadavg()
    rows = []
    for family in args.families.split(","):
        row = {"family": family, "data": args.data, "steps": args.steps, "repeats": args.repeats}
        for _ in range(args.repeats):  # interleaved, so a burst of load hits every configuration alike
            for label, processes, threads in (("1x1", 1, 1), (f"1x{n}", 1, n), (f"{n}x1", n, 1)):
                result = launch(family, args.data, args.steps, processes, threads)
                key = f"images_per_s_{label}"
                row[key] = max(row.get(key, 0.0), result["images_per_s"])
        row[f"speedup_{n}x1_over_1x1"] = row[f"images_per_s_{n}x1"] / row["images_per_s_1x1"]
        row[f"speedup_{n}x1_over_1x{n}"] = row[f"images_per_s_{n}x1"] / row[f"images_per_s_1x{n}"]
        rows.append(row)
        print(f"{family:>9} on {args.data}: images/s  1 proc x 1 thread {row['images_per_s_1x1']:7.0f}  "
              f"1 proc x {n} threads {row[f'images_per_s_1x{n}']:7.0f}  "
              f"{n} procs x 1 thread (DDP) {row[f'images_per_s_{n}x1']:7.0f}", flush=True)
    load_after = os.getloadavg()
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} on {os.cpu_count()} cores")
    path = record("distributed", {
        "device": "cpu", "backend": "gloo", "cpu_count": os.cpu_count(),
        "load_average_before": load_before, "load_average_after": load_after, "rows": rows,
    })
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
