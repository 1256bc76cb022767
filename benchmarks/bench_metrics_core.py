"""Time FID, KID and PRDC on 10,000 vs 10,000 random feature vectors.

Prints seconds per metric and appends one JSON line per feature dimension to
benchmarks/results/metrics_core.jsonl. Run: python benchmarks/bench_metrics_core.py
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from trilemma.metrics import fid, kid, prdc

RESULTS = Path(__file__).resolve().parent / "results" / "metrics_core.jsonl"


def _seconds(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="samples per set")
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for dim in args.dims:
        real = rng.normal(size=(args.n, dim))
        fake = rng.normal(size=(args.n, dim)) + 0.1
        record = {
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "n_real": args.n,
            "n_fake": args.n,
            "dim": dim,
            "fid_s": _seconds(fid, real, fake),
            "kid_s": _seconds(kid, real, fake),  # 100 subsets of 1,000
            "prdc_float64_s": _seconds(prdc, real, fake, k=5),
            "prdc_float32_s": _seconds(prdc, real, fake, k=5, dtype=torch.float32),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "processor": platform.processor(),
            "machine": platform.machine(),
        }
        print(
            f"n={args.n} d={dim}: FID {record['fid_s']:.2f} s, KID {record['kid_s']:.2f} s, "
            f"PRDC {record['prdc_float64_s']:.2f} s (float64), "
            f"{record['prdc_float32_s']:.2f} s (float32); {record['torch_threads']} threads"
        )
        with args.output.open("a") as file:
            file.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
