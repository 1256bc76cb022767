"""What the training loop costs on a CPU: steps per CPU-second of a family's bare training step
against the same family trained through `trilemma.training.train`.

    python benchmarks/bench_loop_overhead.py [--data mnist] [--seconds 20] [--families vae,gan,diffusion]
    python benchmarks/bench_loop_overhead.py --device cuda   # wall seconds; target ≥ 90% there

Both run single-threaded in this process, as `compare` trains. The bare step repeats
`family.training_step` on one fixed batch (no data order, EMA, budget clock, divergence check,
checkpoint or progress). Through the loop, a run of as many steps as the bare step did in
`--seconds` is timed twice: by the loop's own clock (its steps only) and by the process's CPU
time around the whole `train()` call (start-up, the step-0 and final checkpoints included). The
bare step is measured before and after the loop and averaged, so that a host that changes speed
in between shows as a spread. Target (issue 22): through the loop ≥ 95% of the bare rate on a
CPU. With --device cuda the same comparison runs on the GPU by the wall clock (the bare steps
queued back to back, one synchronisation at the end; the loop reading its losses back once per
window, `trilemma.training.sync`), against a target of 90%.
Run it on a quiet machine; the figures go to benchmarks/results/loop-overhead.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import bare_training_step, matmul_peak_gflops, record, repeat_for

from trilemma.data import load_data
from trilemma.training import Budget, train


def bare_rate(name: str, data, seconds: float, device: torch.device) -> float:
    """Steps per second (CPU seconds on a CPU) of the bare training step on one fixed batch."""
    _, _, step = bare_training_step(name, data, device)
    if device.type == "cuda":
        steps, seconds_taken = repeat_for(seconds, step, finish=torch.cuda.synchronize)
    else:
        steps, seconds_taken = repeat_for(seconds, step, clock=time.process_time)
    return steps / seconds_taken


def loop_rates(name: str, data, steps: int, device: torch.device) -> tuple[float, float]:
    """Steps per second through `train`: by the loop's clock, and around the whole call."""
    clock = time.perf_counter if device.type == "cuda" else time.process_time
    with tempfile.TemporaryDirectory() as work:
        start = clock()
        result = train(name, data, Path(work) / name, budget=Budget(steps=steps), progress=False, threads=1,
                       device=device.type)
        whole = clock() - start
    return result.steps / result.seconds, result.steps / whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--families", default="vae,gan,diffusion")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing measured")
        return
    torch.set_num_threads(1)
    data = load_data(args.data)
    peak = matmul_peak_gflops(device)
    unit = "s" if device.type == "cuda" else "CPU-s"
    print(f"{args.device}; one thread; float32 matmul peak {peak:.1f} GFLOP/s; {args.data}, {args.seconds:g} {unit} "
          "per timing")
    rows = []
    for name in args.families.split(","):
        before = bare_rate(name, data, args.seconds, device)
        by_clock, whole = loop_rates(name, data, max(10, round(before * args.seconds)), device)
        after = bare_rate(name, data, args.seconds, device)
        bare = (before + after) / 2
        row = {"family": name, "device": args.device, "clock": unit,
               "bare_steps_per_cpu_s": [before, after], "loop_steps_per_cpu_s": by_clock,
               "whole_call_steps_per_cpu_s": whole, "loop_fraction": by_clock / bare,
               "whole_call_fraction": whole / bare}
        rows.append(row)
        print(f"{name:>9}: bare {before:6.2f} / {after:6.2f} steps per {unit}; through the loop {by_clock:6.2f} "
              f"({100 * row['loop_fraction']:5.1f}%), the whole call {whole:6.2f} ({100 * row['whole_call_fraction']:5.1f}%)")
    path = record("loop-overhead", {"data": args.data, "seconds": args.seconds, "matmul_peak_gflops": peak,
                                    "rows": rows})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
