"""`trilemma impute`: a table run fills the empty cells of a user's CSV (a table's inpainting);
and the table form of `trilemma anomaly` (one score per row of a CSV)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from trilemma.cli.arguments import output_file, positive_int
from trilemma.errors import DataError, UnsupportedRequest, printable


def _table_run(run_dir: str, device: str, command: str):
    from trilemma.sampling import load_run
    from trilemma.tables.writing import table_of_run

    run = load_run(run_dir, device)
    if run.config.get("data", {}).get("kind") != "table":
        raise UnsupportedRequest(f"{run_dir}: `trilemma {command}` fills a table run's cells; this run models "
                                 f"{run.family.config.data.kind}s (images: `trilemma inpaint`)")
    return run, table_of_run(run)


def _labels(run, dataset, frame, path) -> Any:
    """A model conditioned on the target is told each row's value of it."""
    import torch

    if not run.family.conditional:
        return None
    column = frame[dataset.target]
    if column.isna().any():
        row = int(np.flatnonzero(column.isna().to_numpy())[0])
        raise DataError(f"{printable(path)}: row {row + 1} has no '{printable(dataset.target)}'; this model is "
                        "conditioned on it, so every row must give it")
    return torch.from_numpy(dataset.codec.category_codes(dataset.codec.block(dataset.target), column))


def cmd_impute(args: argparse.Namespace) -> None:
    from trilemma.capabilities.inpainting import inpainting_method
    from trilemma.device import sampling_generator
    from trilemma.tables.imputation import impute
    from trilemma.tables.writing import read_rows, write_csv

    out = output_file(args.out, "--out", ".csv")
    run, dataset = _table_run(args.run_dir, args.device, "impute")
    frame = read_rows(args.rows, dataset, args.encoding)
    hidden = frame.isna().to_numpy()
    labels = _labels(run, dataset, frame, args.rows)
    started = time.perf_counter()
    options = {k: getattr(args, k) for k in ("steps", "resample", "iterations", "restarts") if getattr(args, k) is not None}
    filled = impute(run.family, dataset, frame, hidden, sampling_generator(args.seed), labels, **options) \
        if hidden.any() else frame
    write_csv(filled, dataset.columns, out)
    seconds = time.perf_counter() - started
    print(f"{int(hidden.sum())} empty cells in {int(hidden.any(1).sum())} of {len(frame)} rows of "
          f"{printable(args.rows)} filled by the {run.family.name} run {run.run_dir} "
          f"({inpainting_method(run.family)}; the other cells kept) -> {out} in {seconds:.1f} s")


def table_anomaly(args: argparse.Namespace, out, json_out) -> None:
    """`trilemma anomaly RUN --images ROWS.csv`: a score per row, higher = more anomalous."""
    import torch

    from trilemma.capabilities.anomaly import anomaly_scores, auroc, draw_reference, score_method
    from trilemma.cli.scoring import _write_scores
    from trilemma.io import read_label_file
    from trilemma.tables.writing import read_rows

    if args.images is None or not str(args.images).lower().endswith(".csv"):
        raise UnsupportedRequest("a table run scores the rows of a CSV file: --images ROWS.csv")
    run, dataset = _table_run(args.run_dir, args.device, "anomaly")
    frame = read_rows(args.images, dataset)
    x = dataset.normalizer.to_model(torch.from_numpy(dataset.codec.encode(frame))).to(run.family.device)
    reference = None if args.reference == "none" else draw_reference(dataset, seed=args.seed).to(run.family.device)
    columns = anomaly_scores(run.family, x, reference=reference, seed=args.seed, k=args.k,
                             timesteps=args.timesteps, batch_size=args.batch_size)
    table = {"row": np.arange(1, len(frame) + 1), **columns}
    anomalous = read_label_file(args.labels, len(frame)) if args.labels else None
    if anomalous is not None:
        table["anomalous"] = anomalous
    _write_scores(out, table)
    method = score_method(run.family, reference is not None)
    print(f"{len(frame)} rows of {printable(args.images)} scored by the {run.family.name} run {run.run_dir} "
          f"({method}; higher = more anomalous) -> {out}")
    result: dict[str, Any] = {"run": str(run.run_dir), "family": run.family.name, "method": method,
                              "source": str(args.images), "n": len(frame), "scores": str(out)}
    if anomalous is not None:
        result["auroc"] = auroc(columns["score"], anomalous)
        print(f"AUROC of the score: {result['auroc']:.4f}")
    if json_out:
        from trilemma.io import write_text

        write_text(json_out, json.dumps(result, indent=2) + "\n")


def add_table_parsers(commands: Any) -> None:
    p = commands.add_parser("impute", help="a table run fills the empty cells of a CSV's rows, "
                            "conditioned on each row's other cells")
    p.add_argument("run_dir")
    p.add_argument("--rows", required=True, metavar="FILE.csv", help="rows with the run's columns (any order); "
                   "empty cells are filled")
    p.add_argument("--out", required=True, metavar="FILLED.csv", help="the rows with every cell filled")
    p.add_argument("--encoding", help="the file's text encoding (default UTF-8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=positive_int, help="diffusion: RePaint levels (default 50)")
    p.add_argument("--resample", type=positive_int, help="diffusion: RePaint passes per level (default 2)")
    p.add_argument("--iterations", type=positive_int, help="VAE: encode/decode passes (default 50); "
                   "GAN: optimiser steps (default 200)")
    p.add_argument("--restarts", type=positive_int, help="GAN: random starts per row (default 4)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_impute)
