"""What the command modules share: argument types (a bad value is argparse's one-line usage
error), `--set KEY=VALUE` parsing, and the check of an output path before any work starts."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from trilemma.errors import UnsupportedRequest
from trilemma.tables import NUMERIC_TRANSFORMS


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def float_list(text: str) -> list[float]:
    """'0.25,0.5,1' as [0.25, 0.5, 1.0]."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, not {text}") from None


def parse_overrides(pairs: list[str]) -> dict:
    """`--set KEY=VALUE` pairs as a dict; a VALUE that parses as JSON is taken as that
    (numbers, lists, true/false), anything else as a string. The family checks names and kinds."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UnsupportedRequest(f"--set {pair}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def output_file(path: str | Path | None, option: str = "--out", suffix: str | None = None) -> Path | None:
    """The path an option names, refused before any work if its suffix or folder is wrong."""
    if path is None:
        return None
    out = Path(path)
    if suffix and out.suffix.lower() != suffix:
        raise UnsupportedRequest(f"{option} {out}: the file must end in {suffix}")
    if not out.parent.exists():
        raise UnsupportedRequest(f"{option} {out}: folder {out.parent} does not exist")
    return out


# What a command reads, by argparse destination: data specs (a built-in name, a file or a folder
# of images), and options that may name a single input file (`source` is evaluate's FILE.npz,
# or a run folder, which may be written into). And what it writes.
DATA_SPECS = ("data",)
INPUT_FILES = ("source", "images", "reference", "labels", "mask", "rows")
OUTPUTS = {"out": "--out", "json_out": "--json", "grid": "--grid"}


def check_outputs_apart(args: argparse.Namespace) -> None:
    """No output of a command may be one of its input files, or lie in its data folder:
    refused before any work (`trilemma.data.check_output_apart`)."""
    from trilemma.data import check_output_apart

    for dest, option in OUTPUTS.items():
        output = getattr(args, dest, None)
        if not isinstance(output, str):
            continue
        for name in DATA_SPECS + INPUT_FILES:
            source = getattr(args, name, None)
            if isinstance(source, str):
                check_output_apart(output, source, option, spec=name in DATA_SPECS)


FEATURES_HELP = ("image features: auto (default: the shipped classifier of a built-in set; on a GPU "
                 "DINOv2 or the standard Inception file from torch's hub cache; otherwise a network "
                 "trained on the data's training split, cached), trained, random, dinov2 or inception "
                 "(those hub-cache files, also on a CPU), or the PATH of a DINOv2 or pytorch-fid "
                 "Inception weights file")


def features_choice(text: str, data_kind: str) -> str:
    """A --features value checked before anything runs: a known choice, or a file that exists."""
    from trilemma.errors import UnsupportedRequest
    from trilemma.evaluation.features import CHOICES, features_file

    if text != "auto" and data_kind != "image":
        raise UnsupportedRequest(f"--features {text}: the data holds points, which are compared in "
                                 "their own coordinates")
    if text in CHOICES:
        return text
    return str(features_file(text).resolve())


def add_table_options(p: argparse.ArgumentParser) -> None:
    """--target, --columns, --encoding and --numeric of a .csv table, folded into its data spec."""
    p.add_argument("--target", metavar="COLUMN", help="a .csv table: the categorical column to stratify the "
                   "split on, condition on (--conditional) and predict in the train-on-synthetic scores")
    p.add_argument("--columns", metavar="NAME=KIND,...", help="a .csv table: column kinds that override the "
                   "inference (continuous, integer, categorical, boolean, datetime)")
    p.add_argument("--encoding", help="a .csv table: its text encoding (default UTF-8), e.g. latin-1")
    p.add_argument("--numeric", choices=NUMERIC_TRANSFORMS, help="a .csv table: how numbers and "
                   "dates are encoded for the families: quantile (normal scores, TabDDPM's; the default) or "
                   "mode-specific (CTGAN's Gaussian-mixture modes)")


def fold_table_options(args: argparse.Namespace) -> None:
    """`--data t.csv --target y` becomes the data spec `t.csv:target=y`, which runs record and
    reload; the options are refused for data that is not a table."""
    given = [(key, getattr(args, key, None)) for key in ("target", "columns", "encoding", "numeric")]
    given = [(key, value) for key, value in given if value is not None]
    if not given:
        return
    from trilemma.data import parse_spec
    from trilemma.tables import TABLE_SUFFIXES

    if args.data is None or Path(parse_spec(args.data)[0]).suffix.lower() not in TABLE_SUFFIXES:
        raise UnsupportedRequest(f"--{given[0][0]}: only for a .csv table, not --data {args.data}")
    args.data += "".join(f":{key}={value}" for key, value in given)
