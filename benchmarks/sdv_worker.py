"""Runs inside the separate SDV environment (`.venv-sdv`, made by bench_tabular_anchor.py):
fits one SDV synthesizer on a CSV for a number of epochs, or for as many as fit in a wall-time
budget, and writes its samples. Prints one JSON line with what it did.

    .venv-sdv/bin/python benchmarks/sdv_worker.py SYNTHESIZER TRAIN.csv OUT.csv --rows N
        [--seconds S | --epochs E] [--kinds JSON]

SYNTHESIZER: ctgan, tvae or copula. With --seconds, fits of 1 and 5 epochs are timed first
(after a warm-up fit), and the epochs are what the budget leaves after the fixed cost of a fit
(its preprocessing: CTGAN's mixture fits) over the cost of one more epoch, at least 1. One CPU
thread, as trilemma trains.
"""

from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch


def build(name: str, metadata, epochs: int):
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    if name == "copula":
        return GaussianCopulaSynthesizer(metadata)
    cls = {"ctgan": CTGANSynthesizer, "tvae": TVAESynthesizer}[name]
    return cls(metadata, epochs=epochs, enable_gpu=False)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("synthesizer", choices=["ctgan", "tvae", "copula"])
    parser.add_argument("train")
    parser.add_argument("out")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--kinds", help='JSON {column: sdtype} that replaces what SDV detects (else it may read '
                        'a city column as personal data and invent city names); "datetime" means %%Y-%%m-%%d')
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from sdv.metadata import Metadata

    frame = pd.read_csv(args.train)
    data = {"table": frame}  # SDV 2 takes a table by name, also for one table

    metadata = Metadata.detect_from_dataframes(data, infer_keys=None)
    for column, sdtype in json.loads(args.kinds or "{}").items():
        extra = {"datetime_format": "%Y-%m-%d"} if sdtype == "datetime" else {}
        metadata.update_column(column_name=column, sdtype=sdtype, table_name="table", **extra)
    epochs, per_epoch = args.epochs or 300, None
    if args.seconds and args.synthesizer != "copula":
        took = {}
        for count in (1, 1, 5):  # the first fit warms up (imports, first calls) and is not used
            started = time.perf_counter()
            build(args.synthesizer, metadata, count).fit(data)
            took[count] = time.perf_counter() - started
        per_epoch = max((took[5] - took[1]) / 4, 1e-3)
        overhead = max(took[1] - per_epoch, 0.0)
        epochs = max(1, int((args.seconds - overhead) / per_epoch))
    synthesizer = build(args.synthesizer, metadata, epochs)
    started = time.perf_counter()
    synthesizer.fit(data)
    fit_seconds = time.perf_counter() - started
    made = synthesizer.sample(num_rows=args.rows)
    (made["table"] if isinstance(made, dict) else made).to_csv(args.out, index=False)
    print(json.dumps({"synthesizer": args.synthesizer, "epochs": None if args.synthesizer == "copula" else epochs,
                      "one_epoch_seconds": per_epoch, "fit_seconds": fit_seconds}))


if __name__ == "__main__":
    main()
