"""Evaluation cost at the scale of a real comparison: 10,000 against 10,000 MNIST-sized images.

    OMP_NUM_THREADS=1 python benchmarks/bench_evaluation.py [--n 10000] [--device cpu] [--full]

Times feature extraction with the shipped lenet-mnist extractor (both sets), then the Fréchet
distance, KID (100 subsets of 1,000), precision/recall/density/coverage (k = 5) and the Vendi
score of the second set on those features. Target: 30 s in all on the 2-core development CPU
(issue 20 asks 60 s). While other jobs load the
cores, use one thread: measured under a load of about 3, KID took 1.4 s on one thread and
17 s on two, whose threads then wait on each other at every one of its many small operations.

The two sets are built from the 5,000 MNIST images the package ships (train and held-out
splits together): each set holds every image twice, each copy shifted by an independent
random integer offset of up to ±2 pixels in each direction (zeros enter at the border), with
a different seed per set, and the order shuffled. So both are 10,000 plausible digits, nearly
but not exactly the same distribution, as two good samples of one model would be. With
--full it also times `trilemma.evaluation.evaluate` on the second set against the held-out
split, which adds class statistics, sharpness and memorisation in feature and pixel space.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from trilemma.data import load_data
from trilemma.metrics.features import DomainClassifierExtractor
from trilemma.metrics.frechet import fid
from trilemma.metrics.kernel import kid
from trilemma.metrics.prdc import prdc
from trilemma.metrics.vendi import vendi_score


def shifted_copies(images: np.ndarray, n: int, seed: int, max_shift: int = 2) -> np.ndarray:
    """n images (uint8 NHWC) drawn by cycling through `images`, each rolled by a random offset
    in [-max_shift, max_shift]² with the wrapped-around rows and columns set to zero."""
    rng = np.random.default_rng(seed)
    source = images[np.arange(n) % len(images)]
    out = np.zeros_like(source)
    shifts = rng.integers(-max_shift, max_shift + 1, size=(n, 2))
    height, width = images.shape[1:3]
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            chosen = np.flatnonzero((shifts[:, 0] == dy) & (shifts[:, 1] == dx))
            if chosen.size == 0:
                continue
            rows_from = slice(max(0, -dy), height - max(0, dy))
            rows_to = slice(max(0, dy), height - max(0, -dy))
            columns_from = slice(max(0, -dx), width - max(0, dx))
            columns_to = slice(max(0, dx), width - max(0, -dx))
            out[chosen, rows_to, columns_to] = source[chosen, rows_from, columns_from]
    return out[rng.permutation(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--full", action="store_true", help="also time evaluate() end to end")
    args = parser.parse_args()
    mnist = load_data("mnist")
    pool = torch.cat([mnist.x_train, mnist.x_heldout]).permute(0, 2, 3, 1).numpy()
    real = shifted_copies(pool, args.n, seed=1)
    fake = shifted_copies(pool, args.n, seed=2)
    extractor = DomainClassifierExtractor("mnist", device=args.device)

    timings = {}
    start = time.perf_counter()
    real_features = extractor.features(real)
    fake_features = extractor.features(fake)
    timings["features_s"] = time.perf_counter() - start
    start = time.perf_counter()
    fd = fid(real_features, fake_features)
    timings["fd_s"] = time.perf_counter() - start
    start = time.perf_counter()
    kid_mean, kid_std = kid(real_features, fake_features)
    timings["kid_s"] = time.perf_counter() - start
    start = time.perf_counter()
    scores = prdc(real_features, fake_features, k=5)
    timings["prdc_s"] = time.perf_counter() - start
    start = time.perf_counter()
    vendi = vendi_score(fake_features)
    timings["vendi_s"] = time.perf_counter() - start
    timings["total_s"] = sum(timings.values())
    if args.full:
        from trilemma.evaluation import evaluate

        start = time.perf_counter()
        evaluate(fake, mnist, extractor=extractor, provenance={"sampler": "shifted real images"})
        timings["evaluate_s"] = time.perf_counter() - start

    print(f"{args.n} vs {args.n} 28x28x1 images, {torch.get_num_threads()} threads, "
          f"{extractor.name} on {args.device}")
    for key, value in timings.items():
        print(f"  {key:<12} {value:7.2f}")
    print(f"  FD-lenet-mnist {fd:.3f}, KID {kid_mean:.3g} ± {kid_std:.2g}, Vendi {vendi:.1f}, "
          + ", ".join(f"{k} {v:.3f}" for k, v in scores.items()))
    verdict = "within" if timings["total_s"] <= 30 else "OVER"
    print(f"  {verdict} the 30 s target (issue 20 allows 60 s with Vendi)")
    path = record("evaluation", {
        "n": args.n, "device": args.device, "extractor": extractor.name,
        "extractor_sha256": extractor.weights_sha256, **timings,
        "fd": fd, "kid_mean": kid_mean, "kid_std": kid_std, "vendi": vendi, **scores,
    })
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
