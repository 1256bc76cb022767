"""trilemma's GAN and VAE against SDV's CTGAN and TVAE (and its Gaussian copula) on the same
table, the same training rows and the same training time, all scored by trilemma's metrics.

    python benchmarks/bench_tabular_anchor.py [--rows 6000] [--sdv-defaults] [--out DIR]

The table is bench_tabular_compare's customers table (6,000 rows, 10 columns). trilemma trains
its GAN and VAE with their defaults for the default table budget (90 s of one idle core); SDV's
synthesizer of the same family then gets the seconds trilemma's training loop took, as epochs
(`sdv_worker.py` times a fit of 1 and of 3 epochs and takes what fits), on one thread, in a
separate environment (`.venv-sdv`: torch 2.13 CPU first, then `sdv`, which needs pandas < 3;
made here on first use). Both sides fit the same 80% training split and are scored on the same
20% held-out rows, through `trilemma.evaluation.tables.evaluate_table` on 2,000 rows each.
With --sdv-defaults, CTGAN and TVAE are also fitted for SDV's default 300 epochs (and timed).

The target (issue 21): each of trilemma's GAN and VAE beats its SDV counterpart on column
shapes + pair trends at equal time. Figures go to benchmarks/results/tabular-anchor.jsonl.
Run it alone: the times are the budgets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_tabular_compare import write_customers
from common import matmul_peak_gflops, record

ROOT = Path(__file__).resolve().parent.parent
SDV_ENV = ROOT / ".venv-sdv"
SAMPLES = 2000
PAIRS = {"gan": "ctgan", "vae": "tvae"}  # trilemma family: its SDV counterpart


def sdv_python() -> Path:
    """The SDV environment's Python, made on first use (torch pinned first, so sdv keeps it)."""
    python = SDV_ENV / "bin" / "python"
    if not python.exists():
        print(f"making the SDV environment in {SDV_ENV} (torch==2.13.0, then sdv)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(SDV_ENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "sdv"], check=True)
    return python


def trilemma_side(family: str, table: Path, work: Path) -> tuple[Path, dict]:
    from trilemma.metrics.speed import training_cost

    run = work / f"trilemma-{family}"
    cli = [sys.executable, "-m", "trilemma"]
    subprocess.run([*cli, "train", "--family", family, "--data", str(table), "--target", "label", "--out", str(run),
                    "--quiet"], check=True)
    samples = work / f"trilemma-{family}.csv"
    subprocess.run([*cli, "sample", str(run), "--n", str(SAMPLES), "--out", str(samples)], check=True,
                   stdout=subprocess.DEVNULL)
    cost = training_cost(run, count_flops=False)
    return samples, {"train_seconds": cost["train_seconds"], "steps": cost["steps"]}


def sdv_kinds(dataset) -> str:
    """trilemma's column kinds as SDV sdtypes, so that both sides read the columns alike."""
    sdtypes = {"continuous": "numerical", "integer": "numerical", "categorical": "categorical",
               "boolean": "categorical", "datetime": "datetime"}
    return json.dumps({c.name: sdtypes[c.kind] for c in dataset.columns})


def sdv_side(python: Path, synthesizer: str, train_csv: Path, work: Path, kinds: str, *,
             seconds: float | None = None, epochs: int | None = None, tag: str = "") -> tuple[Path, dict]:
    out = work / f"sdv-{synthesizer}{tag}.csv"
    budget = ["--seconds", str(seconds)] if seconds else (["--epochs", str(epochs)] if epochs else [])
    done = subprocess.run([str(python), str(Path(__file__).parent / "sdv_worker.py"), synthesizer, str(train_csv),
                           str(out), "--rows", str(SAMPLES), "--kinds", kinds, *budget],
                          check=True, capture_output=True, text=True)
    return out, json.loads(done.stdout.strip().splitlines()[-1])


def score(samples: Path, dataset) -> dict:
    from trilemma.evaluation.tables import evaluate_table
    from trilemma.tables.writing import read_rows

    frame = read_rows(samples, dataset)
    rows = torch.from_numpy(dataset.codec.encode(frame))
    metrics = evaluate_table(rows, dataset, "heldout", seed=0)["metrics"]
    keys = ("column_shapes", "pair_trends", "pair_trends_related", "detection_auc", "categories_covered",
            "num_categories", "efficacy_accuracy", "dcr_closer_to_training", "exact_copies")
    figures = {k: metrics.get(k) for k in keys}
    figures["shapes_plus_trends"] = figures["column_shapes"] + figures["pair_trends"]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--sdv-defaults", action="store_true", help="also fit CTGAN and TVAE for 300 epochs")
    parser.add_argument("--out", help="folder for the table, runs and samples (default: a temporary one)")
    args = parser.parse_args()
    from trilemma.data import load_data
    from trilemma.tables.writing import write_csv

    peak = matmul_peak_gflops()
    python = sdv_python()
    work = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="anchor-"))
    work.mkdir(parents=True, exist_ok=True)
    table = write_customers(work / "customers.csv", args.rows)
    dataset = load_data(f"{table}:target=label")
    train_csv = write_csv(dataset.frame_train, dataset.columns, work / "train-split.csv")  # what SDV fits
    kinds = sdv_kinds(dataset)
    rows: dict[str, dict] = {}
    for family, counterpart in PAIRS.items():
        samples, cost = trilemma_side(family, table, work)
        rows[f"trilemma {family}"] = {**cost, **score(samples, dataset)}
        samples, done = sdv_side(python, counterpart, train_csv, work, kinds, seconds=cost["train_seconds"])
        rows[f"SDV {counterpart} (equal time)"] = {**done, **score(samples, dataset)}
        if args.sdv_defaults:
            samples, done = sdv_side(python, counterpart, train_csv, work, kinds, epochs=300, tag="-300")
            rows[f"SDV {counterpart} (300 epochs)"] = {**done, **score(samples, dataset)}
    samples, done = sdv_side(python, "copula", train_csv, work, kinds)
    rows["SDV Gaussian copula"] = {**done, **score(samples, dataset)}
    for name, r in rows.items():
        seconds = r.get("train_seconds") or r.get("fit_seconds")
        print(f"{name:>28}: shapes {r['column_shapes']:.3f} + trends {r['pair_trends']:.3f} = "
              f"{r['shapes_plus_trends']:.3f}; related trends {r['pair_trends_related']:.3f}; detection AUC "
              f"{r['detection_auc']:.3f}; categories {r['categories_covered']}/{r['num_categories']}; "
              f"train-on-synthetic {r['efficacy_accuracy']:.3f}; {seconds:.0f} s"
              + (f" ({r['epochs']} epochs)" if r.get("epochs") else ""))
    verdicts = {family: rows[f"trilemma {family}"]["shapes_plus_trends"]
                > rows[f"SDV {counterpart} (equal time)"]["shapes_plus_trends"] for family, counterpart in PAIRS.items()}
    print("target (trilemma beats its SDV counterpart on shapes + trends at equal time): "
          + ", ".join(f"{f} {'met' if ok else 'MISSED'}" for f, ok in verdicts.items())
          + f"; matmul peak {peak:.0f} GFLOP/s")
    record("tabular-anchor", {"rows": args.rows, "samples": SAMPLES, "matmul_peak_gflops": peak, "results": rows,
                              "target_met": verdicts, "out": str(work)})


if __name__ == "__main__":
    main()
