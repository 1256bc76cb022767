"""What the training loop costs: steps per second of a family's bare training step against the
same family trained through `trilemma.training.train`, measured in pairs.

    python benchmarks/bench_loop_overhead.py [--data mnist] [--seconds 20] [--families vae,gan,diffusion]
    python benchmarks/bench_loop_overhead.py --device cuda   # wall seconds; target ≥ 90% there

Both run single-threaded in this process, as `compare` trains. The bare step repeats
`family.training_step` of a second copy of the family on one fixed batch (no data order, EMA,
budget clock, divergence check, checkpoint or progress). A shared host drifts by several per
cent within a minute (measured here: the same bare step at 81 and 92 ms a few seconds apart,
and bare rates of 14 and 19 steps per CPU-second in one run), so timings taken one after the
other compare the host's moods as much as the loop. The two are therefore interleaved: the
loop trains for about `--seconds` of its own clock, and after each of its windows of steps (one
step on a CPU, `trilemma.training.sync`), inside the `on_step` callback whose time the loop
does not count, the bare step runs as many times as the window had steps and is timed on the
same clock (CPU seconds of this process on a CPU; on a GPU wall seconds with a synchronisation
either side). The loop's figure is its own clock, which leaves out start-up and the step-0 and
final checkpoints; the whole call's figure is the CPU time around `train()` less the bare
steps', which keeps them. Target (issue 22): through the loop ≥ 95% of the bare rate on a CPU,
≥ 90% on a GPU. Run it on a quiet machine; the figures go to benchmarks/results/loop-overhead.jsonl.
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


def paired_rates(name: str, data, seconds: float, device: torch.device) -> dict:
    """The loop's and the bare step's rates over the same stretch of time, interleaved."""
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.process_time
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    _, _, step = bare_training_step(name, data, device)
    probe_steps, probe_seconds = repeat_for(min(2.0, seconds / 4), step, clock=clock, finish=sync)
    steps = max(10, round(probe_steps / probe_seconds * seconds))
    bare = {"steps": 0, "seconds": 0.0, "last": 0}

    def bare_steps(done: int, *_) -> None:
        sync()
        start = clock()
        for _ in range(done - bare["last"]):
            step()
        sync()
        bare["seconds"] += clock() - start
        bare["steps"] += done - bare["last"]
        bare["last"] = done

    with tempfile.TemporaryDirectory() as work:
        start = clock()
        result = train(name, data, Path(work) / name, budget=Budget(steps=steps), progress=False, threads=1,
                       device=device.type, on_step=bare_steps)
        whole = clock() - start - bare["seconds"]
    bare_rate = bare["steps"] / bare["seconds"]
    return {"family": name, "device": device.type, "steps": result.steps,
            "bare_steps_per_s": bare_rate, "loop_steps_per_s": result.steps / result.seconds,
            "whole_call_steps_per_s": result.steps / whole,
            "loop_fraction": result.steps / result.seconds / bare_rate,
            "whole_call_fraction": result.steps / whole / bare_rate}


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
    print(f"{args.device}; one thread; float32 matmul peak {peak:.1f} GFLOP/s; {args.data}, about "
          f"{args.seconds:g} {unit} of the loop, each window followed by as many bare steps")
    rows = []
    for name in args.families.split(","):
        row = {**paired_rates(name, data, args.seconds, device), "clock": unit}
        rows.append(row)
        print(f"{name:>9}: bare {row['bare_steps_per_s']:7.2f} steps per {unit}; through the loop "
              f"{row['loop_steps_per_s']:7.2f} ({100 * row['loop_fraction']:5.1f}%), the whole call "
              f"{row['whole_call_steps_per_s']:7.2f} ({100 * row['whole_call_fraction']:5.1f}%)")
    path = record("loop-overhead", {"data": args.data, "seconds": args.seconds, "method": "paired",
                                    "matmul_peak_gflops": peak, "rows": rows})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
