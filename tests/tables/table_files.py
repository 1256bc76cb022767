"""Tables written for the tests: every column kind, missing cells, and relations between
columns that a generator can keep or lose."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

COLUMNS = ["age", "income", "city", "member", "joined", "score", "visits", "label"]


def write_people(path: Path, rows: int = 1500, seed: int = 0) -> Path:
    """age (integer, 5% missing), income (continuous, two decimals, related to age and city),
    city (4 categories), member (yes/no, 3% missing), joined (ISO dates), score (1-5, read as
    categorical), visits (integer counts, skewed), label (high/low, from income)."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for _ in range(rows):
            age = int(rng.integers(18, 80))
            city = rng.choice(["Paris", "Lyon", "Nice", "Lille"], p=[0.4, 0.3, 0.2, 0.1])
            income = round(20000 + age * 800 + rng.normal(0, 5000) + (15000 if city == "Paris" else 0), 2)
            member = rng.random() < 0.3 + 0.004 * age
            joined = np.datetime64("2015-01-01") + int(rng.integers(0, 3000))
            writer.writerow([age if rng.random() > 0.05 else "", income, city,
                             "" if rng.random() < 0.03 else ("yes" if member else "no"), str(joined),
                             int(rng.integers(1, 6)), int(rng.poisson(3 + age / 20)) + 11,
                             "high" if income > 60000 else "low"])
    return path
