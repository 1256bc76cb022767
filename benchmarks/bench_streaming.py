"""A folder larger than memory: 100,000 colour 64x64 PNGs streamed from a disk cache.

    python benchmarks/bench_streaming.py [--images 100000] [--family diffusion] [--steps 30] \
        [--folder /tmp/trilemma-bench-folder]

Makes the folder once (not timed; kept for later runs, in two class sub-folders of smooth
random shapes, so that the PNGs compress as photographs do rather than as noise), then times
`trilemma train --data FOLDER --steps N` twice in a fresh process each: the first run with an
empty cache (listing, decoding every image into the cache by the worker processes, then
training) and the second reusing the cache. While each runs, the resident memory of the
trainer process, and of the trainer with its decoding workers, is sampled from /proc every
0.1 s; the peaks are reported with the kernel's own high-water mark of the trainer (ru_maxrss).
Target (issue 22): the first run within 5 minutes, peak resident memory under 2 GB.
Run it on a quiet machine; the figures go to benchmarks/results/streaming.jsonl.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, record

PAGE = os.sysconf("SC_PAGE_SIZE")


def make_folder(folder: Path, count: int, size: int = 64) -> None:
    """`count` PNGs of a few random filled shapes on a random background, in two classes."""
    import numpy as np
    from PIL import Image, ImageDraw

    done = folder / ".complete"
    if done.exists() and int(done.read_text()) == count:
        return
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = Image.new("RGB", (size, size), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x0, y0 = rng.integers(0, size - 8, 2)
            x1, y1 = x0 + rng.integers(8, size // 2), y0 + rng.integers(8, size // 2)
            shape = draw.ellipse if i % 2 else draw.rectangle
            shape([int(x0), int(y0), int(x1), int(y1)], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        image.save(folder / ("a" if i % 2 else "b") / f"{i:06d}.png")
    done.write_text(str(count))


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except OSError:
        return 0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def timed_train(folder: Path, family: str, steps: int, out: Path, cache: Path) -> dict:
    env = {**os.environ, "TRILEMMA_CACHE": str(cache)}
    command = [sys.executable, "-m", "trilemma", "train", "--family", family, "--data", f"{folder}:stream=yes",
               "--steps", str(steps), "--out", str(out), "--quiet"]
    errors = out.parent / f"{out.name}.stderr"
    started = time.perf_counter()
    with open(errors, "w") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        trainer_peak = tree_peak = 0
        while process.poll() is None:
            trainer = _rss(process.pid)
            tree = trainer + sum(_rss(child) for child in _children(process.pid))
            trainer_peak, tree_peak = max(trainer_peak, trainer), max(tree_peak, tree)
            time.sleep(0.1)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"train failed ({process.returncode}): {errors.read_text()[-2000:]}")
    maxrss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child so far
    return {"wall_seconds": seconds, "trainer_peak_rss_bytes": trainer_peak, "tree_peak_rss_bytes": tree_peak,
            "children_maxrss_bytes": maxrss}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--family", default="diffusion")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--folder", default=os.path.join(tempfile.gettempdir(), "trilemma-bench-folder"))
    args = parser.parse_args()
    folder = Path(args.folder) / str(args.images)
    started = time.perf_counter()
    make_folder(folder, args.images)
    print(f"folder of {args.images:,} PNGs ready in {time.perf_counter() - started:.0f} s: {folder}")
    peak = matmul_peak_gflops()
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        for run in ("first", "cached"):
            rows[run] = timed_train(folder, args.family, args.steps, work / run, work / "cache")
            r = rows[run]
            print(f"{run:>6} run: {r['wall_seconds']:.1f} s for {args.steps} {args.family} steps; peak RSS "
                  f"trainer {r['trainer_peak_rss_bytes'] / 2**30:.2f} GiB, with workers "
                  f"{r['tree_peak_rss_bytes'] / 2**30:.2f} GiB")
        cache_bytes = sum(p.stat().st_size for p in (work / "cache").rglob("*.pixels"))
    met = rows["first"]["wall_seconds"] <= 300 and rows["first"]["trainer_peak_rss_bytes"] < 2 * 10**9
    print(f"cache {cache_bytes / 2**30:.2f} GiB; target (first run ≤ 5 min, trainer < 2 GB): "
          f"{'met' if met else 'missed'}; matmul peak {peak:.0f} GFLOP/s")
    path = record("streaming", {"images": args.images, "family": args.family, "steps": args.steps,
                                "cpu_count": os.cpu_count(), "matmul_peak_gflops": peak,
                                "cache_bytes": cache_bytes, **{f"{run}": row for run, row in rows.items()}})
    print(f"written to {path}")


if __name__ == "__main__":
    main()
