"""Property-based fuzzing of every reader of user files: image folders (Pillow, through
`train --data FOLDER`) and array files (through `evaluate FILE --data digits` and
`train --data FILE`), fed random bytes, mutated valid files and forged headers.

Whatever the bytes, each case must end in one `trilemma: error:` line with exit code 2, the
same verdict the Python API gives, nothing written and every input unchanged. Each command is
arranged to fail even on a file that survives its mutation (a folder with too few images,
`--n` beyond any file here, `--set` without a value, checked after the data is read), so a
readable file is read to the end and still costs no training. Derandomised, so that CI sees
the same examples every time; a few dozen per test, so that the file runs in seconds.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_files import (
    assert_one_line_error,
    jpeg_bytes,
    jpeg_declaring,
    npy_bytes,
    npy_declaring,
    npz_bytes,
    npz_of,
    png_bytes,
    png_declaring,
    snapshot,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from trilemma.data import load_data
from trilemma.data.files import MAX_IMAGE_PIXELS, MIN_SAMPLES
from trilemma.errors import DataError, printable
from trilemma.io import read_array_file

FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TOO_MANY = 100_000  # `evaluate --n`: more samples than any file here holds

IMAGES = {
    "png grey": png_bytes("L"),
    "png rgb": png_bytes("RGB", seed=1),
    "png rgba": png_bytes("RGBA", seed=2),
    "jpeg": jpeg_bytes(),
}
SIGNATURES = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00",
              b"RIFF\x00\x00\x00\x00WEBP", b"P5\n", b"%!PS-Adobe-3.0 EPSF-3.0\n"]
_images = np.random.default_rng(0).integers(0, 256, (5, 12, 12), dtype=np.uint8)
ARRAYS = {
    "npz": npz_bytes(x=_images, y=np.arange(5)),
    "npz compressed": npz_bytes(compressed=True, x=_images, y=np.arange(5)),
    "npy uint8": npy_bytes(_images),
    "npy float": npy_bytes((_images / 255).astype(np.float32)),
}
DESCRS = ["|u1", "<f4", ">f8", "<i8", "|b1", "<c8", "|O", "<U3", "|V4", "|S2", "<m8[s]"]


def mutations():
    """Up to four edits of a file: flip a byte, truncate, insert bytes, delete a run. Positions
    are taken modulo the length; hypothesis favours small ones, so headers get hit most."""
    position = st.integers(0, 1 << 20)
    return st.lists(st.one_of(
        st.tuples(st.just("flip"), position, st.integers(1, 255)),
        st.tuples(st.just("truncate"), position),
        st.tuples(st.just("insert"), position, st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("delete"), position, st.integers(1, 64)),
    ), min_size=1, max_size=4)


def mutate(data: bytes, edits) -> bytes:
    data = bytearray(data)
    for kind, at, *rest in edits:
        at %= len(data) + 1
        if kind == "flip" and data:
            data[at % len(data)] ^= rest[0]
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = rest[0]
        elif kind == "delete":
            del data[at:at + rest[0]]
    return bytes(data)


def _workspace(tmp_path: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path))  # one per example: tmp_path is shared by all


def _check_folder(run_cli, root: Path, hostile: Path, good: int = 2) -> tuple[str, int]:
    """`train --data FOLDER` on a folder holding `hostile` beside `good` good images: its
    message, and how many images Pillow allocated for it."""
    folder = hostile.parent
    for seed in range(good):
        (folder / f"good{seed}.png").write_bytes(png_bytes(seed=10 + seed))
    before = snapshot(root)
    code, out, err = run_cli("train", "--family", "vae", "--data", folder, "--steps", 1,
                             "--out", root / "run", "--quiet")
    message = assert_one_line_error(code, out, err, folder)
    allocated = Image.core.get_stats()["new_count"]
    with pytest.raises(DataError) as verdict:
        load_data(str(folder))
    allocated = Image.core.get_stats()["new_count"] - allocated
    assert message == printable(verdict.value), "the CLI and the API disagree"
    if printable(hostile) not in message:  # the file was readable: the folder is too small
        assert message.endswith(f"only {good + 1} images; at least {MIN_SAMPLES} are needed"), message
    assert snapshot(root) == before and not (root / "run").exists()
    return message, allocated


@FUZZ
@given(base=st.sampled_from(sorted(IMAGES)), edits=mutations(), suffix=st.sampled_from([".png", ".jpg"]))
def test_mutated_png_and_jpeg_files_are_refused_in_one_line(run_cli, tmp_path, base, edits, suffix):
    root = _workspace(tmp_path)
    hostile = root / "data" / f"hostile{suffix}"
    hostile.parent.mkdir()
    hostile.write_bytes(mutate(IMAGES[base], edits))
    _check_folder(run_cli, root, hostile)


@FUZZ
@given(signature=st.sampled_from(SIGNATURES), body=st.binary(max_size=2048),
       suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".tif", ".webp", ".pgm"]))
def test_random_bytes_behind_an_image_signature_are_refused_in_one_line(run_cli, tmp_path, signature,
                                                                        body, suffix):
    root = _workspace(tmp_path)
    hostile = root / "data" / f"random{suffix}"
    hostile.parent.mkdir()
    hostile.write_bytes(signature + body)
    _check_folder(run_cli, root, hostile)


@FUZZ
@given(width=st.integers(1, 2**31 - 1), height=st.integers(1, 2**31 - 1),
       colour=st.sampled_from([0, 2, 4, 6]), jpeg=st.booleans())
def test_absurd_declared_image_sizes_are_refused_before_any_pixel_is_allocated(run_cli, tmp_path, width,
                                                                               height, colour, jpeg):
    root = _workspace(tmp_path)
    if jpeg:  # a JPEG's sides are 16-bit
        width, height = width % 65535 + 1, height % 65535 + 1
    hostile = root / "data" / ("declared.jpg" if jpeg else "declared.png")
    hostile.parent.mkdir()
    hostile.write_bytes(jpeg_declaring(width, height) if jpeg else png_declaring(width, height, colour))
    message, allocated = _check_folder(run_cli, root, hostile, good=0)
    if width * height > MAX_IMAGE_PIXELS:
        assert message.startswith(f"{printable(hostile)}: image declares {width * height:,} pixels")
        assert f"above the limit of {MAX_IMAGE_PIXELS:,} pixels per image" in message
        assert allocated == 0, f"Pillow allocated {allocated} image(s) for a refused header"


def _verdicts(path: Path) -> tuple[DataError | None, DataError | None]:
    """What the API makes of an array file, as samples and as data (None: read). Whatever the
    file declares, reading it may allocate no more than a few times its size."""
    verdicts = []
    tracemalloc.start()
    try:
        for read in (read_array_file, lambda p: load_data(str(p))):
            try:
                read(path)
                verdicts.append(None)
            except DataError as error:
                verdicts.append(error)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB allocated for a file of {path.stat().st_size} bytes"
    return verdicts[0], verdicts[1]


def _check_array_file(run_cli, root: Path, path: Path) -> None:
    """`evaluate FILE` and `train --data FILE` on one array file: the API's verdict, in one line."""
    before = snapshot(root)
    as_samples, as_data = _verdicts(path)
    message = assert_one_line_error(*run_cli("evaluate", path, "--data", "digits", "--n", TOO_MANY,
                                             "--json", root / "e.json"))
    if as_samples is not None:
        assert message == printable(as_samples), "evaluate and the API disagree"
        assert message.startswith(printable(path)), message
    else:
        assert message.startswith(f"{path}: --n {TOO_MANY} but the file holds"), message
    message = assert_one_line_error(*run_cli("train", "--family", "vae", "--data", path, "--set", "bogus",
                                             "--steps", 1, "--out", root / "run", "--quiet"))
    if as_data is not None:
        assert message == printable(as_data), "train --data and the API disagree"
    else:
        assert message == "--set bogus: expected KEY=VALUE", message
    assert snapshot(root) == before
    assert not (root / "e.json").exists() and not (root / "run").exists()


@FUZZ
@given(base=st.sampled_from(sorted(ARRAYS)), edits=mutations())
def test_mutated_and_truncated_npz_and_npy_files_are_refused_in_one_line(run_cli, tmp_path, base, edits):
    root = _workspace(tmp_path)
    path = root / ("hostile.npz" if base.startswith("npz") else "hostile.npy")
    path.write_bytes(mutate(ARRAYS[base], edits))
    _check_array_file(run_cli, root, path)


@FUZZ
@given(shape=st.lists(st.integers(0, 2**40), min_size=1, max_size=4).map(tuple),
       descr=st.sampled_from(DESCRS), fortran=st.booleans(), data=st.binary(max_size=512),
       container=st.sampled_from(["npy", "npz", "npz compressed", "npz misnamed"]))
def test_forged_array_headers_are_refused_before_anything_is_allocated(run_cli, tmp_path, shape, descr,
                                                                       fortran, data, container):
    root = _workspace(tmp_path)
    forged = npy_declaring(shape, descr, data, fortran)
    if container == "npy":
        path, content = root / "forged.npy", forged
    else:
        member = "x.txt" if container == "npz misnamed" else "x.npy"
        path, content = root / "forged.npz", npz_of({member: forged}, compressed=container.endswith("compressed"))
    path.write_bytes(content)
    _check_array_file(run_cli, root, path)


@FUZZ
@given(values=st.lists(st.one_of(st.integers(), st.text(max_size=4), st.none(),
                                 st.lists(st.integers(), max_size=2)), min_size=1, max_size=8),
       npz=st.booleans())
def test_object_arrays_are_never_unpickled(run_cli, tmp_path, values, npz):
    root = _workspace(tmp_path)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    path = root / ("objects.npz" if npz else "objects.npy")
    if npz:
        np.savez(path, x=array)
    else:
        np.save(path, array, allow_pickle=True)
    _check_array_file(run_cli, root, path)
    with pytest.raises(DataError, match="holds Python objects, which are never unpickled"):
        read_array_file(path)
