"""Why training runs on one thread: a family's training step, timed in CPU time and wall time,
on an idle machine and beside a CPU hog (`python3 -c "while True: pass"`), with one thread, two
threads with OpenMP's default waiting, and two threads with passive waiting.

    python benchmarks/probe_threads_under_load.py [--families diffusion,gan] [--steps 120]

Each configuration runs in a fresh process (OpenMP reads its settings at start-up). Prints steps
per CPU-second and per wall second and appends them to benchmarks/results/threads-under-load.jsonl.
Start it on a quiet machine: it starts the hog itself.
"""

from __future__ import annotations

import argparse
import ast
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record

SETTINGS = {"1 thread": {"OMP_NUM_THREADS": "1"}, "2 threads, default waiting": {"OMP_NUM_THREADS": "2"},
            "2 threads, passive waiting": {"OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}}

STEP = """
import time, torch
from trilemma.data import load_data
from trilemma.families import DataShape, build_family
torch.manual_seed(0)
data = load_data("mnist")
family = build_family("{family}", DataShape("image", data.sample_shape))
optimizers = family.build_optimizers()
x = data.normalizer.to_model(data.x_train[:64])
for _ in range(5):
    family.training_step(x, None, optimizers)
wall, cpu = time.perf_counter(), time.process_time()
for _ in range({steps}):
    family.training_step(x, None, optimizers)
print({{"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "threads": torch.get_num_threads()}})
"""


def measure(family: str, steps: int, environment: dict[str, str], hog: bool) -> dict:
    hogger = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if hog else None
    try:
        out = subprocess.run([sys.executable, "-c", STEP.format(family=family, steps=steps)],
                             env={**os.environ, **environment}, capture_output=True, text=True, check=True)
    finally:
        if hogger is not None:
            hogger.kill()
            hogger.wait()
    timing = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    return {**timing, "steps_per_cpu_s": steps / timing["cpu"], "steps_per_wall_s": steps / timing["wall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="diffusion,gan")
    parser.add_argument("--steps", type=int, default=120)
    args = parser.parse_args()
    rows = []
    for family in args.families.split(","):
        for name, environment in SETTINGS.items():
            idle, busy = (measure(family, args.steps, environment, hog) for hog in (False, True))
            rows.append({"family": family, "setting": name, "idle": idle, "busy": busy})
            print(f"{family:<10} {name:<28} steps/CPU-s {idle['steps_per_cpu_s']:5.2f} -> "
                  f"{busy['steps_per_cpu_s']:5.2f}   steps/wall-s {idle['steps_per_wall_s']:5.2f} -> "
                  f"{busy['steps_per_wall_s']:5.2f}", flush=True)
    print(f"recorded in {record('threads-under-load', {'steps': args.steps, 'rows': rows})}")


if __name__ == "__main__":
    main()
