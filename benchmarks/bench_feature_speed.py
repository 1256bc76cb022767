"""Images a second through the hub networks a user may have (DINOv2 ViT-S/14 at 224 px, the FID
Inception at 299 px), with random weights of their shapes, beside the network trained on a folder.

    python benchmarks/bench_feature_speed.py [--images 100] [--threads 2]

Why `--features auto` uses the hub files on a GPU only: on this CPU a folder's training split
embedded at these rates takes longer than the families train. Figures go to
benchmarks/results/feature-speed.jsonl. Take it alone on the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "tests" / "metrics"))
from common import matmul_peak_gflops, record
from test_metric_features import _random_inception_state

from trilemma.metrics.features import InceptionV3Extractor
from trilemma.metrics.features.dinov2 import DinoV2Extractor
from trilemma.metrics.features.trained import FeatureNet, TrainedFeatureExtractor, recipe_for
from trilemma.nets.dinov2 import DinoV2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    images = np.random.default_rng(0).integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as folder:
        dinov2, inception, trained = (Path(folder) / name for name in ("d.safetensors", "i.safetensors", "t.safetensors"))
        save_file({k: v.contiguous() for k, v in DinoV2().state_dict().items()}, str(dinov2))
        save_file(_random_inception_state(), str(inception))
        recipe = recipe_for(torch.from_numpy(images).permute(0, 3, 1, 2), 0)
        save_file({k: v.contiguous() for k, v in FeatureNet(recipe).state_dict().items()}, str(trained))
        extractors = {"dinov2-vits14 (224 px)": DinoV2Extractor(dinov2),
                      "inception-v3 (299 px)": InceptionV3Extractor(inception),
                      "trained network (32 px)": TrainedFeatureExtractor(trained, {"recipe": recipe.to_json(),
                                                                                   "data_sha256": "0" * 64})}
        for name, extractor in extractors.items():
            extractor.features(images[:10])  # warm up
            started = time.perf_counter()
            extractor.features(images)
            rate = len(images) / (time.perf_counter() - started)
            print(f"{name}: {rate:,.1f} images/s on {args.threads} threads (matmul peak {peak:.0f} GFLOP/s)")
            record("feature-speed", {"network": name, "images_per_s": rate, "threads": args.threads,
                                     "images": len(images), "matmul_peak_gflops": peak})


if __name__ == "__main__":
    main()
