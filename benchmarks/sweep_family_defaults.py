"""A family's settings swept at equal compute, scored by the published protocols.

    python benchmarks/sweep_family_defaults.py --family gan --data grid25 --seeds 3 \
        --variant "default:" --variant "ns:loss=non-saturating;spectral_norm=false" [--jobs 2]

Each variant trains under the data's default time budget (45 seconds' worth on 2-D points, 3
minutes' worth on images; `--minutes` for another), which on a CPU is the steps that time runs
on one idle core *for that variant* (`trilemma.training.calibration`): a slower variant gets
fewer steps, so variants are compared at equal compute. The calibrations are taken first, one
at a time, before anything else runs; the training runs then go `--jobs` at a time (their
steps are fixed, so running side by side does not change them). A variant is `NAME:` followed
by `--set` pairs separated by `;`.

Scored on the held-out split: on the 2-D mixtures, modes covered and the share of
high-quality samples (within 3σ of a mode) from 2,500 samples (VEEGAN / PacGAN); on images,
FD in the shipped classifier's features, precision and recall, classes covered and the share
of samples the classifier names with confidence ≥ 0.9, from 2,000 samples; on a table, column
shapes, pair trends, detection AUC and train-on-synthetic accuracy from 2,000 rows (the figures'
encoding is always the quantile one, so a `numeric=mode-specific` data spec is scored alike). Each variant's
mean over the seeds is printed and every run is appended to
benchmarks/results/family-defaults.jsonl.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import record

SCORES = {"points": ("modes_covered", "high_quality_fraction", "recall"),
          "image": ("fid", "precision", "recall", "classes_covered", "confident_fraction"),
          "table": ("column_shapes", "pair_trends", "detection_auc", "efficacy_accuracy")}


def parse_variant(text: str) -> tuple[str, dict]:
    from trilemma.cli.arguments import parse_overrides

    name, _, pairs = text.partition(":")
    return name, parse_overrides([p for p in pairs.split(";") if p])


def run_one(job: tuple) -> dict:
    """Train one (variant, seed) single-threaded under its calibrated budget and score it."""
    family, data_spec, minutes, name, overrides, seed, work, n_samples = job
    import torch

    torch.set_num_threads(1)
    from trilemma.data import load_data
    from trilemma.evaluation import evaluate
    from trilemma.sampling import generate, load_run
    from trilemma.training import Budget, train

    dataset = load_data(data_spec)
    run_dir = Path(work) / f"{name}-seed{seed}"
    budget = Budget(seconds=minutes * 60) if minutes else None
    result = train(family, dataset, run_dir, budget=budget, seed=seed, overrides=overrides,
                   progress=False, threads=1)
    run = load_run(run_dir)
    samples = generate(run.family, run.normalizer, n_samples, seed=seed)
    scores = evaluate(samples.x, dataset, seed=seed, provenance={"seed": seed})["metrics"]
    return {"variant": name, "overrides": overrides, "seed": seed, "steps": result.steps,
            **{k: scores.get(k) for k in SCORES[dataset.kind]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME:KEY=VALUE;KEY=VALUE")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, help="budget (default: the data's default)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", help="folder for the runs (default: a new temporary one)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from trilemma.data import load_data
    from trilemma.training.budget import default_budget
    from trilemma.training.calibration import calibrate

    dataset = load_data(args.data)
    minutes = args.minutes or default_budget(dataset).seconds / 60
    variants = [parse_variant(v) for v in args.variant]
    for name, overrides in variants:  # one at a time, on an otherwise idle machine
        rate = calibrate(args.family, dataset, overrides=overrides).steps_per_cpu_second
        print(f"{name}: {rate:.1f} steps per CPU-second, {rate * minutes * 60:.0f} steps", flush=True)

    work = Path(args.work or tempfile.mkdtemp(prefix="sweep-"))
    n_samples = 2500 if dataset.kind == "points" else 2000  # 2,000 rows of a table, as compare draws
    jobs = [(args.family, args.data, minutes, name, overrides, seed, str(work), n_samples)
            for name, overrides in variants for seed in range(args.seeds)]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        rows = pool.map(run_one, jobs, chunksize=1)

    keys = SCORES[dataset.kind]
    print(f"{args.family} on {args.data}, {minutes:g} minutes' worth, {args.seeds} seeds (mean; min–max)")
    print(f"{'variant':<24} {'steps':>6} " + " ".join(f"{k:>22}" for k in keys))
    for name, overrides in variants:
        mine = [r for r in rows if r["variant"] == name]
        cells = []
        for k in keys:
            values = [r[k] for r in mine if r[k] is not None]
            cells.append(f"{sum(values) / len(values):.3f} ({min(values):.3g}–{max(values):.3g})"
                         if values else "–")
        print(f"{name:<24} {mine[0]['steps']:>6} " + " ".join(f"{c:>22}" for c in cells))
        record("family-defaults", {"family": args.family, "data": args.data, "minutes": minutes,
                                   "variant": name, "overrides": overrides, "runs": mine})


if __name__ == "__main__":
    main()
