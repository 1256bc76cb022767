"""The CUDA path: U-Net training images/s and achieved FLOP/s at fp32 and bf16, against the
GPU's measured matmul peak in the same precision. Target: >= 40% of the bf16 peak at batch >= 128.

    python benchmarks/bench_gpu.py [--data mnist] [--batches 128,256] [--seconds 10] [--precisions fp32,bf16]
                                   [--no-compile | --compile-mode MODE]
    python benchmarks/bench_gpu.py --smoke-cpu   # checks the script on the CPU; records nothing

Without a CUDA device it says so and exits (status 0): nothing is measured or recorded.
FLOPs per step are counted by `trilemma.metrics.speed.training_step_flops` (matmuls and
convolutions, forward and backward); the peak is `matmul_peak_gflops` on 8192² products.
"fp32" is strict fp32 (TF32 off, PyTorch's default for matmuls), against the strict fp32 peak.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, record

from trilemma.data import load_data
from trilemma.device import autocast, describe_device, memory_format
from trilemma.families import DataShape, build_family
from trilemma.metrics.speed import training_step_flops

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(data, device: torch.device, batch_size: int, precision: str, compile: str | None,
            seconds: float) -> dict:
    """The training loop's step, as train() runs it: channels-last, autocast, EMA-free."""
    torch.manual_seed(0)
    family = build_family("diffusion", DataShape(data.kind, data.sample_shape), batch_size=batch_size)
    layout = memory_format(data.kind)
    family.to(device, memory_format=layout).train()
    optimizers = family.build_optimizers()
    index = torch.arange(batch_size) % len(data.x_train)
    x = data.normalizer.to_model(data.x_train[index]).to(device).contiguous(memory_format=layout)
    flops = training_step_flops(family, x)
    if compile:
        family.install_replicas({"denoiser": torch.compile(family.denoiser, mode=compile)})
    warmup_started = time.perf_counter()
    for _ in range(5):  # the first compiled steps compile
        with autocast(device, precision):
            family.training_step(x, None, optimizers)
    _synchronize(device)
    warmup = time.perf_counter() - warmup_started
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        with autocast(device, precision):
            family.training_step(x, None, optimizers)
        steps += 1
        if steps % 10 == 0:  # keep the launch queue from running far ahead of the clock
            _synchronize(device)
    _synchronize(device)
    elapsed = time.perf_counter() - start
    family.install_replicas(None)
    return {
        "batch_size": batch_size, "precision": precision, "compile": compile,
        "parameters": sum(p.numel() for p in family.parameters()),
        "images_per_s": steps * batch_size / elapsed, "steps": steps,
        "gflop_per_step": flops / 1e9, "achieved_gflops": flops * steps / elapsed / 1e9,
        "warmup_seconds": warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="mnist")
    parser.add_argument("--batches", default="128,256")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode, e.g. default, max-autotune, reduce-overhead (CUDA graphs)")
    parser.add_argument("--smoke-cpu", action="store_true", help="run tiny versions on the CPU, record nothing")
    args = parser.parse_args()
    if args.smoke_cpu:
        device, sizes, seconds = torch.device("cpu"), [8], 0.5
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA device on this machine; nothing measured (run it where a GPU is lent)")
        return
    else:
        device, sizes, seconds = torch.device("cuda"), [int(b) for b in args.batches.split(",")], args.seconds
        torch.backends.cudnn.benchmark = True  # as the training loop sets it on CUDA
    data = load_data(args.data)
    size = 512 if args.smoke_cpu else 8192
    peaks = {name: matmul_peak_gflops(device, dtype, size=size, repeats=2 if args.smoke_cpu else 20)
             for name, dtype in PRECISIONS.items()}
    print(f"{describe_device(device)['name']}: matmul peak fp32 {peaks['fp32']:.0f} GFLOP/s, "
          f"bf16 {peaks['bf16']:.0f} GFLOP/s (TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'})")
    rows = []
    for precision in args.precisions.split(","):
        if precision not in PRECISIONS:
            parser.error(f"--precisions: unknown precision {precision} (known: {', '.join(PRECISIONS)})")
        for batch_size in sizes:
            for compile in ((None,) if args.no_compile or args.smoke_cpu else (None, args.compile_mode)):
                row = measure(data, device, batch_size, precision, compile, seconds)
                row["fraction_of_peak"] = row["achieved_gflops"] / peaks[precision]
                rows.append(row)
                print(f"U-Net {precision} batch {batch_size:4d} compile {compile or 'off':15}: "
                      f"{row['images_per_s']:9.0f} images/s  {row['achieved_gflops']:9.0f} GFLOP/s "
                      f"= {100 * row['fraction_of_peak']:5.1f}% of the {precision} peak", flush=True)
    if args.smoke_cpu:
        print("smoke run on the CPU: not recorded")
        return
    best = max((r for r in rows if r["precision"] == "bf16" and r["batch_size"] >= 128),
               key=lambda r: r["fraction_of_peak"], default=None)
    target = {"goal": ">= 40% of the bf16 matmul peak at batch >= 128",
              "best_bf16_fraction": best["fraction_of_peak"] if best else None,
              "met": bool(best and best["fraction_of_peak"] >= 0.4)}
    print(f"target {target['goal']}: best {100 * (target['best_bf16_fraction'] or 0):.1f}% -> "
          f"{'met' if target['met'] else 'NOT met'}")
    path = record("gpu", {"device": describe_device(device), "data": data.name, "matmul_peak_gflops": peaks,
                          "allow_tf32": torch.backends.cuda.matmul.allow_tf32, "rows": rows, "target": target})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
