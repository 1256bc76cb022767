"""`trilemma anomaly | truncation | conditional | augment`: the capabilities that are scored.

Argument handling and printing only; the numbers come from `trilemma.capabilities`.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path
from typing import Any

from trilemma.cli.arguments import float_list, output_file, positive_int
from trilemma.errors import DataError, UnsupportedRequest


def _write_json(path: Path | None, result: dict[str, Any]) -> None:
    if path is not None:
        from trilemma.io import jsonable, write_json

        write_json(path, jsonable(result))
        print(f"results in {path}")


def _load(run_dir: str, device: str, data: str | None):
    """The run and the data it is measured on (default: what it was trained on), shapes checked."""
    from trilemma.data import load_data
    from trilemma.io import describe_shape
    from trilemma.sampling import load_run

    run = load_run(run_dir, device)
    dataset = load_data(data or run.config["data"].get("spec") or run.config["data"]["name"])
    made = tuple(run.family.config.data.sample_shape)
    if made != tuple(dataset.sample_shape):
        raise DataError(f"{run_dir}: the model makes {describe_shape(made)} samples but "
                        f"{dataset.name} holds {describe_shape(dataset.sample_shape)}")
    return run, dataset


def _sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) for name in ("guidance", "truncation", "temperature", "sampler", "steps")
            if getattr(args, name, None) is not None}


# ----------------------------------------------------------------------------- anomaly

def _anomaly_images(args: argparse.Namespace) -> tuple[str, Any, Any]:
    """What to score: the --images file (any form `trilemma.io` reads) or the held-out split of
    --data; its source for messages, the images, and their class labels if any."""
    if args.images is not None:
        from trilemma.io import read_array_file

        file = read_array_file(args.images)
        return str(file.path), file.x, file.y
    from trilemma.data import load_data

    dataset = load_data(args.data)
    y = None if dataset.y_heldout is None else dataset.y_heldout.numpy()
    return f"{args.data} (held-out split)", dataset.x_heldout, y


def _anomalous(args: argparse.Namespace, source: str, n: int, y: Any) -> Any:
    """0/1 per image from --labels or --anomalous-classes, or None."""
    import numpy as np

    from trilemma.data import parse_classes
    from trilemma.io import read_label_file

    if args.labels:
        return read_label_file(args.labels, n)
    if not args.anomalous_classes:
        return None
    if y is None:
        raise DataError(f"{source}: --anomalous-classes needs class labels (an array 'y')")
    try:
        classes = parse_classes(args.anomalous_classes, args.anomalous_classes)
    except DataError:
        raise UnsupportedRequest(f"--anomalous-classes {args.anomalous_classes}: expected classes such "
                                 "as 0 or 0,3-4") from None
    return np.isin(y, classes).astype(np.int64)


def _write_scores(out: Path, table: dict[str, Any]) -> None:
    """The CSV, one row per image; floats as repr, so the file round-trips exactly."""
    from io import StringIO

    import numpy as np

    from trilemma.io import write_text

    text = StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(list(table))
    for row in zip(*table.values(), strict=True):
        writer.writerow([repr(float(v)) if isinstance(v, np.floating) else int(v) for v in row])
    write_text(out, text.getvalue())


def cmd_anomaly(args: argparse.Namespace) -> None:
    import numpy as np

    from trilemma.capabilities.anomaly import auroc, score_images, score_method
    from trilemma.io import read_array_file
    from trilemma.sampling import load_run

    out = output_file(args.out, "--out", ".csv")
    json_out = output_file(args.json_out, "--json")
    if args.images is not None and str(args.images).lower().endswith(".csv"):
        from trilemma.cli.table_tasks import table_anomaly

        return table_anomaly(args, out, json_out)
    if (args.images is None) == (args.data is None):
        raise UnsupportedRequest("give the images to score: --images FILE.npz or --data SPEC (its held-out split)")
    if args.labels and args.anomalous_classes:
        raise UnsupportedRequest("give --labels FILE or --anomalous-classes, not both")
    run = load_run(args.run_dir, args.device)
    score_method(run.family)  # a family without a score says so before any work
    source, x, y = _anomaly_images(args)
    anomalous = _anomalous(args, source, len(x), y)
    typicality = args.reference != "none"
    if args.reference in ("training", "none"):
        reference: Any = None if args.reference == "none" else "training"
    else:
        reference = read_array_file(args.reference).x
    columns = score_images(run, x, source=source, reference=reference,
                           reference_source=f"--reference {args.reference} (the typicality reference)",
                           seed=args.seed, k=args.k, timesteps=args.timesteps, batch_size=args.batch_size)
    table = {"index": np.arange(len(x)), **columns}
    if y is not None:
        table["class"] = y
    if anomalous is not None:
        table["anomalous"] = anomalous
    _write_scores(out, table)
    print(f"{len(x)} images from {source} scored by the {run.family.name} run {run.run_dir} "
          f"({score_method(run.family, typicality)}; higher = more anomalous) -> {out}")
    result: dict[str, Any] = {"run": str(run.run_dir), "family": run.family.name,
                              "method": score_method(run.family, typicality), "reference": args.reference,
                              "source": source, "n": len(x), "scores": str(out), "seed": args.seed,
                              "k": args.k, "timesteps": args.timesteps}
    if anomalous is not None:
        # Every column, oriented so that higher means more anomalous (the critic's logit is not).
        result["auroc"] = {name: auroc(values if name != "critic_logit" else -values, anomalous)
                           for name, values in columns.items()}
        result.update(n_anomalous=int(anomalous.sum()), n_normal=int((1 - anomalous).sum()))
        print(f"AUROC ({result['n_anomalous']} anomalous, {result['n_normal']} normal):")
        for name, value in result["auroc"].items():
            print(f"  {name:<22} {value:.4f}")
    _write_json(json_out, result)


# ----------------------------------------------------------------------------- truncation

def cmd_truncation(args: argparse.Namespace) -> None:
    from trilemma.capabilities.truncation import fidelity_sweep, format_sweep, knob_of

    json_out = output_file(args.json_out, "--json")
    run, dataset = _load(args.run_dir, args.device, args.data)
    knob_of(run.family)
    result = fidelity_sweep(run, dataset, values=args.values, n=args.n, seed=args.seed,
                            batch_size=args.batch_size, **_sampling_options(args))
    print(format_sweep(result))
    _write_json(json_out, result)


# ----------------------------------------------------------------------------- conditional

def cmd_conditional(args: argparse.Namespace) -> None:
    from trilemma.capabilities.conditional import conditional_accuracy, require_conditional

    json_out = output_file(args.json_out, "--json")
    run, dataset = _load(args.run_dir, args.device, args.data)
    require_conditional(run, "conditional")
    result = conditional_accuracy(run, dataset, per_class=args.per_class, seed=args.seed, cas=not args.no_cas,
                                  batch_size=args.batch_size, **_sampling_options(args))
    options = ", ".join(f"{k} {v}" for k, v in result["options"].items()) or "default settings"
    print(f"{result['n']} samples from {run.run_dir} ({run.family.name}, {options}), read by {result['classifier']}:")
    print(f"  agreement with the requested class  {result['agreement']:.4f}")
    print("  per class  " + " ".join(f"{a:.2f}" for a in result["per_class_agreement"]))
    if result["cas"] is not None:
        print(f"  CAS (trained on samples only)      {result['cas']:.4f}   real baseline "
              f"{result['cas_real_baseline']:.4f} ({result['n']} real training images)")
    _write_json(json_out, result)


# ----------------------------------------------------------------------------- augment

def cmd_augment(args: argparse.Namespace) -> None:
    from trilemma.capabilities.augmentation import augmentation_table, format_augmentation
    from trilemma.capabilities.conditional import require_conditional

    json_out = output_file(args.json_out, "--json")
    loaded = [_load(run_dir, args.device, args.data) for run_dir in args.run_dirs]
    for run, _ in loaded:
        require_conditional(run, "augment")
    specs = {dataset.info.get("spec") for _, dataset in loaded}
    if len(specs) > 1:
        raise UnsupportedRequest(f"augment: the runs were trained on different data ({', '.join(sorted(specs))}); "
                                 "give --data SPEC")
    runs, dataset = [run for run, _ in loaded], loaded[0][1]
    result = augmentation_table(runs, dataset, n_real=args.n_real, n_generated=args.n_generated,
                                seeds=range(args.seeds), steps=args.steps)
    print(format_augmentation(result))
    _write_json(json_out, result)


# ----------------------------------------------------------------------------- parsers

def add_scoring_parsers(commands: Any) -> None:
    """Register `anomaly`, `truncation`, `conditional` and `augment` on the CLI's sub-commands."""
    p = commands.add_parser("anomaly", help="anomaly score per image from a trained run, and AUROC")
    p.add_argument("run_dir")
    p.add_argument("--images", metavar="FILE.npz", help="images to score: 'x' uint8 N×H×W×C as `trilemma "
                   "sample` writes (or N×H×W or N×C×H×W; floats in [0, 1]), optional 'y' class labels; "
                   "for a table run, a CSV of rows with its columns")
    p.add_argument("--data", metavar="SPEC", help="score the held-out split of this data instead (e.g. mnist)")
    p.add_argument("--out", required=True, metavar="SCORES.csv",
                   help="CSV, one row per image in input order: index, score (higher = more anomalous), "
                   "the family's own columns, class and anomalous when known")
    p.add_argument("--labels", metavar="FILE", help="0/1 per image (1 = anomalous): .npy, .npz ('labels' or 'y') "
                   "or one value per line; prints the AUROC")
    p.add_argument("--anomalous-classes", metavar="LIST",
                   help="classes that count as anomalous (e.g. 0 or 0,3-4), read from the images' 'y'")
    p.add_argument("--reference", default="training", metavar="training|none|FILE.npz",
                   help="in-distribution images for the typicality test of VAE and diffusion scores (default: "
                   "1,000 images of the run's own training data); none: the raw NLL or denoising error")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the method and AUROCs here")
    p.add_argument("--k", type=positive_int, default=32, help="VAE: importance samples (default 32)")
    p.add_argument("--timesteps", type=positive_int, default=10, help="diffusion: noise levels (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_anomaly)

    def sampling(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", metavar="SPEC", help="real data (default: what the run was trained on)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=positive_int, default=500)
        p.add_argument("--device", default="auto")
        p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the results here")

    p = commands.add_parser("truncation", help="sweep the fidelity/diversity knob (GAN truncation, VAE "
                            "temperature, diffusion guidance): precision and recall per value")
    p.add_argument("run_dir")
    p.add_argument("--values", type=float_list, help="knob values, e.g. 0.25,0.5,0.75,1.0 (default: the family's)")
    p.add_argument("--n", type=positive_int, default=1000, help="samples per value (default 1000)")
    sampling(p)
    p.set_defaults(run=cmd_truncation)

    p = commands.add_parser("conditional", help="a conditional run: agreement of its samples with the "
                            "requested class, and the classification accuracy score")
    p.add_argument("run_dir")
    p.add_argument("--per-class", type=positive_int, default=100, help="samples per class (default 100)")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (diffusion)")
    p.add_argument("--truncation", type=float, help="truncation ψ (GAN)")
    p.add_argument("--temperature", type=float, help="prior temperature (VAE)")
    p.add_argument("--no-cas", action="store_true", help="skip the classification accuracy score")
    sampling(p)
    p.set_defaults(run=cmd_conditional)

    p = commands.add_parser("augment", help="train the domain classifier on a few real images, with and "
                            "without each conditional run's samples; held-out accuracy")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="conditional runs")
    p.add_argument("--n-real", type=positive_int, default=100, help="real labelled images (default 100)")
    p.add_argument("--n-generated", type=positive_int, default=1000, help="generated images per run (default 1000)")
    p.add_argument("--seeds", type=positive_int, default=3, help="repeats, seeds 0..N-1 (default 3)")
    p.add_argument("--steps", type=positive_int, default=600, help="classifier training steps (default 600)")
    sampling(p)
    p.set_defaults(run=cmd_augment)
