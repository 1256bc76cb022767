"""Which statistics should the VAE's typicality test compare? Re-scores the leave-one-out VAE runs
of `bench_capabilities.py` (or any folder of `loo-vae-C` runs) with several statistic sets.

    python benchmarks/probe_anomaly_statistics.py --work DIR              # DIR from bench_capabilities
    python benchmarks/probe_anomaly_statistics.py --work DIR --data digits  # runs trained on digits

For digits, DIR holds runs made by, for each class C, `trilemma train --family vae
--data digits:classes=<all but C> --out DIR/loo-vae-C --steps 1500`.

Sets compared (Mahalanobis distance from 1,000 of each run's training images, as the CLI does):
(IWAE NLL, log reconstruction error); that plus the KL term of q(z|x) and the posterior entropy
(DoSE's statistics, the CLI's default); (log reconstruction error, KL); (NLL, log reconstruction
error, KL); and the raw statistics. On mnist, each set's AUROC against uniform noise as well.
With `--data mnist` the images are DIR/heldout-and-noise.npz (y = 10 marks noise), else the
data set's held-out split. Appends the AUROCs to benchmarks/results/anomaly-statistics.jsonl.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from trilemma.capabilities.anomaly import encoder_scores, mahalanobis, training_reference
from trilemma.data import load_data
from trilemma.io import to_model_space
from trilemma.sampling import load_run

SETS = {
    "nll+log_rec (the earlier default)": ["nll", "log_rec"],
    "nll+log_rec+kl+entropy (DoSE; the default)": ["nll", "log_rec", "kl", "entropy"],
    "log_rec+kl": ["log_rec", "kl"],
    "nll+log_rec+kl": ["nll", "log_rec", "kl"],
}


def statistics(family, x_model: torch.Tensor) -> dict[str, np.ndarray]:
    columns = encoder_scores(family, x_model)
    return {"nll": columns["nll_nats"], "log_rec": np.log(columns["reconstruction_error"] + 1e-12),
            "kl": columns["kl_nats"], "entropy": columns["posterior_entropy_nats"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", default="mnist")
    args = parser.parse_args()
    if args.data == "mnist":
        held = np.load(args.work / "heldout-and-noise.npz")
        images, labels, dataset = held["x"], held["y"], None
    else:
        dataset = load_data(args.data)
        images, labels = None, np.asarray(dataset.y_heldout)
    digits = labels < 10
    aurocs: dict[str, list[float]] = {}
    noise: dict[str, list[float]] = {}
    runs = sorted(args.work.glob("loo-vae-*[0-9]"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    for run_dir in runs:
        held_out = int(run_dir.name.rsplit("-", 1)[1])
        run = load_run(run_dir, "cpu")
        run.family.eval()
        x = (run.normalizer.to_model(dataset.x_heldout) if dataset is not None else
             to_model_space(images, run.family.config.data.sample_shape, run.normalizer, "images"))
        mine, reference = statistics(run.family, x), statistics(run.family, training_reference(run))
        anomalous = (labels[digits] == held_out).astype(int)
        for name, keys in SETS.items():
            score = mahalanobis(np.stack([mine[k] for k in keys], 1), np.stack([reference[k] for k in keys], 1))
            aurocs.setdefault(name, []).append(roc_auc_score(anomalous, score[digits]))
            if not digits.all():  # uniform noise (label 10) against the normal held-out digits
                normal = labels != held_out
                noise_auroc = roc_auc_score(labels[normal] == 10, score[normal])
                noise.setdefault(name, []).append(noise_auroc)
        for key in ("nll", "log_rec"):
            aurocs.setdefault(f"raw {key}", []).append(roc_auc_score(anomalous, mine[key][digits]))
        print(held_out, {k: round(v[-1], 3) for k, v in aurocs.items()}, flush=True)
    summary = {name: {"per_class": values, "mean": float(np.mean(values)), "min": float(np.min(values))}
               for name, values in aurocs.items()}
    for name, values in noise.items():
        summary[name]["noise_min"] = float(np.min(values))
    for name, row in summary.items():
        against_noise = f"  noise min {row['noise_min']:.3f}" if "noise_min" in row else ""
        print(f"{name:32s} mean {row['mean']:.3f}  min {row['min']:.3f}{against_noise}")
    path = record("anomaly-statistics", {"work": str(args.work), "data": args.data,
                                         "runs": [r.name for r in runs], "aurocs": summary})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
