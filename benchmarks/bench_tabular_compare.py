"""The default `trilemma compare` on a 6,000-row, 10-column table: wall time (target, issue 21:
within 10 minutes on this 2-core CPU) and every family's table figures.

    python benchmarks/bench_tabular_compare.py [--rows 6000] [--out DIR]

The table is made here (no download): customers with an integer age, a skewed income that
depends on age and city, a bimodal weekly hours column, four cities, a six-plan category with two
rare plans (what a collapsing generator loses first), a yes/no membership with missing cells, a
join date, a 1-5 score, a count of visits, and a high/low label from income (the target).
Figures go to benchmarks/results/tabular-compare.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import matmul_peak_gflops, record, run_compare

COLUMNS = ["age", "income", "hours", "city", "plan", "member", "joined", "score", "visits", "label"]


def write_customers(path: Path, rows: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    cities = ["Paris", "Lyon", "Nice", "Lille"]
    plans = ["basic", "plus", "pro", "family", "student", "legacy"]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for _ in range(rows):
            age = int(rng.integers(18, 80))
            city = rng.choice(cities, p=[0.4, 0.3, 0.2, 0.1])
            income = round(float(np.exp(rng.normal(10.4 + 0.008 * age + (0.25 if city == "Paris" else 0), 0.3))), 2)
            hours = round(float(rng.normal(20, 4) if rng.random() < 0.4 else rng.normal(40, 3)), 1)
            plan = rng.choice(plans, p=[0.45, 0.25, 0.15, 0.1, 0.04, 0.01])
            member = rng.random() < 0.2 + 0.006 * age
            joined = np.datetime64("2015-01-01") + int(rng.integers(0, 3000))
            writer.writerow([age, income, max(hours, 1.0), city, plan,
                             "" if rng.random() < 0.03 else ("yes" if member else "no"), str(joined),
                             int(rng.integers(1, 6)), int(rng.poisson(2 + age / 15)),
                             "high" if income > 60000 else "low"])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6000)
    parser.add_argument("--out", default=None, help="comparison folder (default: a temporary one)")
    args = parser.parse_args()
    peak = matmul_peak_gflops()
    work = Path(tempfile.mkdtemp(prefix="tabular-"))
    table = write_customers(work / "customers.csv", args.rows)
    out = Path(args.out) if args.out else work / "compare"
    results, wall = run_compare(["--data", str(table), "--target", "label"], out)
    keys = ("column_shapes", "pair_trends", "pair_trends_related", "detection_auc", "categories_covered",
            "num_categories", "efficacy_accuracy", "dcr_closer_to_training", "exact_copies", "samples_per_s",
            "steps", "train_seconds")
    rows = {name: {k: entry.get(k) for k in keys} for name, entry in results["families"].items()}
    baselines = {name: {k: entry.get(k) for k in keys if entry.get(k) is not None}
                 for name, entry in results.get("baselines", {}).items()}
    for name, r in baselines.items():
        print(f"{results['baselines'][name]['label']:>22}: shapes {r['column_shapes']:.3f}, trends {r['pair_trends']:.3f}, detection "
              f"AUC {r['detection_auc']:.3f}, train-on-synthetic accuracy {r['efficacy_accuracy']:.3f}, "
              f"exact copies {r['exact_copies']:.3f}")
    for name, r in rows.items():
        print(f"{name:>10}: shapes {r['column_shapes']:.3f}, trends {r['pair_trends']:.3f}, detection AUC "
              f"{r['detection_auc']:.3f}, categories {r['categories_covered']}/{r['num_categories']}, "
              f"train-on-synthetic accuracy {r['efficacy_accuracy']:.3f}, DCR share {r['dcr_closer_to_training']:.3f}, "
              f"{r['steps']:.0f} steps, {r['samples_per_s']:.0f} rows/s")
    efficacy_real = json.loads((Path(results["families"]["vae"]["run_dirs"][0]) / "evaluation.json").read_text())
    real_accuracy = efficacy_real["metrics"].get("efficacy_real_accuracy")
    print(f"compare wall time {wall:.0f} s (target ≤ 600 s); train-on-real accuracy {real_accuracy:.3f}; "
          f"recommended: {results['recommendation']['family']}; matmul peak {peak:.0f} GFLOP/s")
    record("tabular-compare", {"rows": args.rows, "columns": len(COLUMNS), "wall_seconds": wall,
                               "matmul_peak_gflops": peak, "families": rows, "efficacy_real_accuracy": real_accuracy,
                               "recommended": results["recommendation"]["family"], "baselines": baselines,
                               "out": str(out)})


if __name__ == "__main__":
    main()
