"""Image folders larger than memory: decoded once by worker processes into a memory-mapped
cache on disk, from which training reads its batches.

A folder of `STREAM_FROM` images or more (or any folder with the spec option ``stream=yes``)
takes this path; a smaller one is decoded into memory as before (`data.files`). The first run
lists the folder, fixes the colour mode and the size from a sample of its images (grey only
when every sampled image is grey; the size option, else the most common size among them),
lays the images out in split order (the training images first, then the held-out ones, so
that each part is one contiguous slice of the file and nothing is copied), and has
`workers()` processes decode, convert and resize them in chunks while this process writes the
chunks to the file with plain writes (no mapping, so the build's memory stays bounded). The
file becomes visible under its final name only when whole; its description (JSON) comes last.

The cache is keyed by the folder's content as the file system reports it: every image's
relative path, class, size in bytes and modification time in nanoseconds, with the size
option. Any change to the folder makes a new key, hence a new cache; an unchanged folder is
opened in a fraction of a second. The cache sits in ``$TRILEMMA_CACHE/folders`` (default
``~/.cache/trilemma/folders``); deleting it only costs the next run the decoding.

Training then indexes a private (copy-on-write) read-only-on-disk mapping of the file through
a tensor that shares it. A fault maps more than the page it needs (read-ahead on a cold cache;
on a warm one the kernel maps the whole large folio, measured at about 1 MB for each 12 KB
image on Linux 6.18, so 30 steps of batch 128 made 0.7 GB of a 1.1 GB cache resident). The
mapping is therefore advised as randomly accessed, and `release_pages` drops whatever the
process has mapped of it: `training.batches` calls it after each batch, which costs about
0.3 ms. Those pages stay in the page cache for the next read, and the process's resident
memory does not grow with the folder.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import multiprocessing
import os
import shutil
import weakref
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from trilemma.cache import cache_dir
from trilemma.errors import DataError, printable
from trilemma.io.atomic import write_json

STREAM_FROM = 20_000  # images: a folder at least this large is streamed from a disk cache
MODE_SAMPLE = 500  # images looked at to fix the colour mode and the size
CHUNK = 256  # images per worker task
FORMAT_VERSION = 1

_MAPPINGS: list[tuple[int, int, weakref.ref]] = []  # (first address, end address, mapping)


def cache_root() -> Path:
    return cache_dir() / "folders"


def workers() -> int:
    """Decoding processes: one per core, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def folder_key(folder: Path, entries: list[tuple[Path, int]], size: tuple[int, int] | None) -> str:
    digest = hashlib.sha256(f"v{FORMAT_VERSION} size={size}".encode())
    for path, label in entries:
        info = path.stat()
        digest.update(f"{path.relative_to(folder)}\0{label}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def open_streamed_folder(folder: Path, entries: list[tuple[Path, int]], class_names: list[str],
                         size: tuple[int, int] | None, split: Any) -> tuple[np.ndarray, np.ndarray | None, int, dict]:
    """(the images in split order as a mapped (N, C, H, W) uint8 array (`_mapped`), their labels
    or None, how many of them are training images, the rules applied). `split(labels)` gives
    the (train, held-out) indices of the entries, as for an in-memory folder."""
    key = folder_key(folder, entries, size)
    root = cache_root()
    description = root / f"{key}.json"
    if not description.exists():
        _build(folder, entries, bool(class_names), size, split, root, key)
    meta = json.loads(description.read_text())
    shape = tuple(meta["shape"])
    try:
        pixels = _mapped(root / f"{key}.pixels", shape)
    except (OSError, ValueError) as error:
        raise DataError(f"{printable(root / key)}.pixels: the cache of {printable(folder)} cannot be read "
                        f"({error}); delete it and rerun to rebuild it") from None
    labels = np.asarray(meta["labels"], dtype=np.int64) if class_names else None
    rules = {**meta["rules"], "cache": str(root / f"{key}.pixels"), "storage": "disk"}
    return pixels, labels, int(meta["n_train"]), rules


def _mapped(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """The file as a uint8 array of `shape` over a private mapping: writable in memory (a tensor
    may share it), never written back; advised random so that a fault reads only its page."""
    size = int(np.prod(shape))
    if path.stat().st_size != size:
        raise ValueError(f"{path.stat().st_size} bytes where {size} were expected")
    with open(path, "rb") as file:
        mapping = mmap.mmap(file.fileno(), size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    mapping.madvise(mmap.MADV_RANDOM)
    array = np.frombuffer(mapping, dtype=np.uint8).reshape(shape)
    _MAPPINGS[:] = [entry for entry in _MAPPINGS if entry[2]() is not None]
    _MAPPINGS.append((array.ctypes.data, array.ctypes.data + size, weakref.ref(mapping)))
    return array


def release_pages(x: Any) -> bool:
    """Drop the pages the process holds of the disk cache that array or tensor `x` lies in (a
    later read faults them in again, from the page cache when the kernel kept them). False,
    and nothing done, when `x` is not in a cache's mapping."""
    address = x.data_ptr() if hasattr(x, "data_ptr") else x.ctypes.data
    for first, end, mapping in _MAPPINGS:
        if first <= address < end and (live := mapping()) is not None:
            live.madvise(mmap.MADV_DONTNEED)
            return True
    return False


def _sample_look(entries: list[tuple[Path, int]], size: tuple[int, int] | None) -> tuple[str, tuple[int, int], str]:
    """(colour mode, target (W, H), native size text) from up to MODE_SAMPLE evenly spaced images."""
    from trilemma.data.files import _Decoded, _is_grayscale, _open_image

    step = max(1, len(entries) // MODE_SAMPLE)
    decoded = _Decoded(entries[0][0].parent)
    decoded.limit = float("inf")  # one image at a time: only the per-image limit applies
    grey, sizes = True, Counter()
    for path, _ in entries[::step][:MODE_SAMPLE]:
        with _open_image(path, decoded) as image:
            grey = grey and _is_grayscale(image)
            sizes[image.size] += 1
    native = max(sizes.items(), key=lambda item: (item[1], item[0][0] * item[0][1]))[0]
    target = size or native
    target = (max(8, target[0] // 4 * 4), max(8, target[1] // 4 * 4))
    return ("L" if grey else "RGB"), target, f"{native[0]}x{native[1]}"


def _decode_chunk(task: tuple[int, list[str], str, tuple[int, int]]) -> tuple[int, bytes, list[str]]:
    """In a worker: the chunk's images decoded, converted and resized, as raw NCHW bytes, and
    the error of every image that could not be read."""
    from trilemma.data.files import _converted, _Decoded, _open_image

    start, paths, mode, target = task
    decoded = _Decoded(Path(paths[0]).parent)
    decoded.limit = float("inf")
    channels = 1 if mode == "L" else 3
    out = np.zeros((len(paths), channels, target[1], target[0]), dtype=np.uint8)
    errors = []
    for i, name in enumerate(paths):
        path = Path(name)
        try:
            with _open_image(path, decoded) as image:
                out[i] = _converted(image, path, mode, target)
        except DataError as error:
            errors.append(str(error))
    return start, out.tobytes(), errors


def _build(folder: Path, entries: list[tuple[Path, int]], labelled: bool, size: tuple[int, int] | None, split: Any,
           root: Path, key: str) -> None:
    labels = np.array([label for _, label in entries])
    train, heldout = split(labels if labelled else None)
    order = np.concatenate([train, heldout])
    mode, target, native = _sample_look(entries, size)
    channels = 1 if mode == "L" else 3
    record = channels * target[0] * target[1]
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if free < record * len(order) * 1.05:
        raise DataError(f"{printable(folder)}: its decoded images need {record * len(order) / 2**30:.2f} GiB "
                        f"in the cache {printable(root)}, which has {free / 2**30:.2f} GiB free; "
                        "set TRILEMMA_CACHE to a disk with room")
    partial = root / f".partial-{key}-{os.getpid()}.pixels"
    tasks = [(start, [str(entries[i][0]) for i in order[start:start + CHUNK]], mode, target)
             for start in range(0, len(order), CHUNK)]
    errors: list[str] = []
    try:
        with open(partial, "wb") as file, multiprocessing.get_context("spawn").Pool(workers()) as pool:
            file.truncate(record * len(order))
            for start, data, failed in pool.imap_unordered(_decode_chunk, tasks):
                file.seek(start * record)
                file.write(data)
                errors += failed
            file.flush()
            os.fsync(file.fileno())
        if errors:
            more = f"; {len(errors) - 1} more unreadable image(s)" if len(errors) > 1 else ""
            raise DataError(errors[0] + more)
        os.replace(partial, root / f"{key}.pixels")
    finally:
        partial.unlink(missing_ok=True)
    write_json(root / f"{key}.json", {
        "folder": printable(folder), "shape": [len(order), channels, target[1], target[0]],
        "n_train": len(train), "labels": labels[order].tolist(),
        "rules": {"source": printable(folder), "color_mode": mode, "image_size": [target[1], target[0]],
                  "rules": (f"streamed: decoded once into a disk cache by {workers()} worker processes; "
                            f"converted to {mode} (alpha composited onto white) and resized to "
                            f"{target[0]}x{target[1]} (scale to cover, centre crop, Lanczos); mode and size "
                            f"fixed from {min(MODE_SAMPLE, len(entries))} sampled images, most common "
                            f"native size {native}")}})
