"""Train the shipped domain classifiers (feature extractors for FD/KID/PRDC and class metrics).

For each built-in labelled data set it trains `trilemma.nets.classifier.DomainClassifier` on
the TRAIN split only, measures accuracy on the held-out split, and writes
src/trilemma/weights/lenet-<data>.safetensors plus lenet-<data>.json (config, accuracy,
split sizes, seed, command, training settings, sha256 of the weights file).

Deterministic: fixed seed, one CPU thread. Re-running on the same torch build and CPU
reproduces the weights bit for bit (a different CPU instruction set may round differently).

    OMP_NUM_THREADS=1 python scripts/train_domain_classifiers.py [--data mnist digits]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
import time
from pathlib import Path

import torch

from trilemma.data import load_data
from trilemma.nets.classifier import ClassifierConfig, accuracy, save_classifier, train_classifier

OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "trilemma" / "weights"
SEED = 0

# Widths and epochs chosen by held-out accuracy at a CPU cost of well under a minute each;
# the feature dimension is kept at 64 because Fréchet distance bias grows like d²/2n.
SETTINGS = {
    "mnist": {"width": 16, "feature_dim": 64, "epochs": 30, "batch_size": 64, "lr": 2e-3},
    "digits": {"width": 32, "feature_dim": 64, "epochs": 60, "batch_size": 64, "lr": 2e-3},
}


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_one(name: str, out_dir: Path, command: str) -> dict:
    settings = SETTINGS[name]
    data = load_data(name)
    _, channels, height, _ = data.x_train.shape  # square images: height is the side
    config = ClassifierConfig(in_channels=channels, image_size=height,
                              num_classes=data.num_classes, width=settings["width"],
                              feature_dim=settings["feature_dim"])
    start = time.perf_counter()
    model = train_classifier(
        data.x_train, data.y_train, data.num_classes, epochs=settings["epochs"], seed=SEED,
        device="cpu", config=config, batch_size=settings["batch_size"], lr=settings["lr"],
    )
    seconds = time.perf_counter() - start
    heldout = accuracy(model, data.x_heldout, data.y_heldout)
    train = accuracy(model, data.x_train, data.y_train)

    out_dir.mkdir(parents=True, exist_ok=True)
    weights_path = out_dir / f"lenet-{name}.safetensors"
    save_classifier(model, weights_path)
    weights_path.chmod(0o644)  # package data: readable by every user of an installed copy
    record = {
        "name": f"lenet-{name}",
        "data": name,
        "config": config.to_json(),
        "heldout_accuracy": heldout,
        "train_accuracy": train,
        "n_train": int(data.x_train.shape[0]),
        "n_heldout": int(data.x_heldout.shape[0]),
        "split_seed": data.info.get("split_seed"),
        "seed": SEED,
        "training": {**settings, "optimizer": "Adam, cosine decay, weight decay 1e-4",
                     "augmentation": "random integer shifts, +-2 px (28x28) or +-1 px (8x8)"},
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "command": command,
        "sha256": sha256_of(weights_path),
    }
    (out_dir / f"lenet-{name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"{name}: held-out accuracy {heldout:.4f} (train {train:.4f}), "
          f"{record['parameters']} parameters, {weights_path.stat().st_size} bytes, "
          f"{seconds:.1f} s")
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="folder for weights and JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    command = "OMP_NUM_THREADS=1 python scripts/train_domain_classifiers.py"
    if args.data != list(SETTINGS):
        command += " --data " + " ".join(args.data)
    if args.out != OUT_DIR:
        command += " --out " + shlex.quote(str(args.out))
    for name in args.data:
        train_one(name, args.out, command)


if __name__ == "__main__":
    main(sys.argv[1:])
