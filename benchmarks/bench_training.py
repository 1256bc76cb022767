"""Training throughput per family: images/s and achieved GFLOP/s against the measured matmul peak.

    python benchmarks/bench_training.py [--data mnist] [--seconds 20] [--device cpu]

Run it on a quiet machine: anything else using the cores changes the figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import bare_training_step, matmul_peak_gflops, record, repeat_for

from trilemma.data import load_data
from trilemma.device import resolve_device
from trilemma.metrics.speed import training_step_flops


def measure(name: str, data, device: torch.device, seconds: float) -> dict:
    family, x, step = bare_training_step(name, data, device)
    batch_size = len(x)
    flops_per_step = training_step_flops(family, x)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    steps, elapsed = repeat_for(seconds, step, finish=sync)
    return {
        "family": name,
        "data": data.name,
        "batch_size": batch_size,
        "parameters": sum(p.numel() for p in family.parameters()),
        "steps_per_s": steps / elapsed,
        "images_per_s": steps * batch_size / elapsed,
        "gflop_per_step": flops_per_step / 1e9,
        "achieved_gflops": flops_per_step * steps / elapsed / 1e9,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--families", default="vae,gan,diffusion")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data = load_data(args.data)
    peak = matmul_peak_gflops(device)
    print(f"device {device}, {torch.get_num_threads()} threads; float32 matmul peak {peak:.1f} GFLOP/s")
    rows = []
    for name in args.families.split(","):
        row = measure(name, data, device, args.seconds)
        row["fraction_of_peak"] = row["achieved_gflops"] / peak
        rows.append(row)
        print(
            f"{name:>9} on {data.name}: {row['images_per_s']:8.0f} images/s  {row['steps_per_s']:6.1f} steps/s  "
            f"batch {row['batch_size']:4d}  {row['parameters'] / 1e6:5.2f} M params  "
            f"{row['achieved_gflops']:6.1f} GFLOP/s = {100 * row['fraction_of_peak']:4.1f}% of peak"
        )
    path = record("training", {"device": str(device), "matmul_peak_gflops": peak, "rows": rows})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
