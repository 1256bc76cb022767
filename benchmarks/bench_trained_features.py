"""The feature network trained on a user's folder: its training time, and its sanity ladders.

    python benchmarks/bench_trained_features.py [--sides 32,64] [--images 1500] [--threads 2]

For each side, builds a colour folder of the test shapes (`tests/colour_folders.py`, no class
sub-folders), trains the default recipe's network on its training split
(`trilemma.metrics.features.trained`, not from the cache), then runs the sanity ladders
(`trilemma.evaluation.ladders`) and prints the seconds of each with the figures that failed. The
matmul peak is printed beside them: hosts differ threefold. Figures go to
benchmarks/results/trained-features.jsonl. Take it alone on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from common import matmul_peak_gflops, record

from colour_folders import write_folder
from trilemma.data import load_data
from trilemma.evaluation.ladders import sanity_ladders
from trilemma.metrics.features import FeatureCache
from trilemma.metrics.features import trained as features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="32,64")
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    for side in (int(s) for s in args.sides.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            dataset = load_data(str(write_folder(Path(folder) / "shapes", args.images, seed=3, labelled=False, side=side)))
            recipe = features.recipe_for(dataset.x_train, 0)
            started = time.perf_counter()
            model = features.train_feature_net(dataset.x_train, None, recipe)
            train_seconds = time.perf_counter() - started
            weights = Path(folder) / "net.safetensors"
            weights.write_bytes(features._safetensors_bytes(model))
            extractor = features.TrainedFeatureExtractor(weights, {"recipe": recipe.to_json(), "data_sha256": "0" * 64})
            started = time.perf_counter()
            ladders = sanity_ladders(dataset, extractor, FeatureCache())
            ladder_seconds = time.perf_counter() - started
        blur = ladders["ladders"][0]["figures"]["precision"]
        print(f"{side}x{side}, {len(dataset.x_train)} training images: {recipe.steps} steps of {recipe.batch_size} in "
              f"{train_seconds:.1f} s; ladders ({ladders['n']} images a rung) {ladder_seconds:.1f} s; untrustworthy: "
              f"{', '.join(ladders['untrustworthy']) or 'none'}; precision along the blur ladder "
              f"{' → '.join(f'{v:.3f}' for v in blur)} (matmul peak {peak:.0f} GFLOP/s, {args.threads} threads)")
        record("trained-features", {"side": side, "n_train": len(dataset.x_train), "steps": recipe.steps,
                                    "batch_size": recipe.batch_size, "threads": args.threads,
                                    "train_seconds": train_seconds, "ladder_seconds": ladder_seconds,
                                    "untrustworthy": ladders["untrustworthy"], "blur_precision": blur,
                                    "matmul_peak_gflops": peak})


if __name__ == "__main__":
    main()
