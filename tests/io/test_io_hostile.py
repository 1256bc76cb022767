"""Hostile files, case by case: the pixel limit, symbolic link loops, names that are not UTF-8,
infinities, labels that do not fit, pickles, special files, an output inside the input folder,
and the order of complaints about a folder that is too small and holds corrupt files.

Every refusal is one `trilemma: error:` line, exit code 2, with nothing written and every
input unchanged (`snapshot` hashes every file before and after)."""

from __future__ import annotations

import json
import os
import pickle
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hostile_files import (
    assert_one_line_error,
    jpeg_declaring,
    npy_declaring,
    npz_of,
    png_bytes,
    png_declaring,
    snapshot,
)
from PIL import Image

from trilemma.compare import CompareSettings, run_comparison
from trilemma.data import load_data
from trilemma.data.files import MAX_IMAGE_PIXELS
from trilemma.errors import DataError
from trilemma.io import read_label_file
from trilemma.training import Budget, train


def _folder(path: Path, count: int = 9, start: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + count):
        (path / f"img{i}.png").write_bytes(png_bytes(seed=i))
    return path


def _refused(run_cli, root: Path, *args: object, names: tuple = ()) -> str:
    """Run the CLI on hostile input under `root`: one line naming `names`, nothing changed."""
    before = snapshot(root)
    message = assert_one_line_error(*run_cli(*args), *names)
    assert snapshot(root) == before, "something under the inputs' folder changed"
    return message


def _train(data: object, out: object) -> tuple:
    return ("train", "--family", "vae", "--data", data, "--steps", 1, "--out", out, "--quiet")


# -- the pixel limit -------------------------------------------------------------------------

@pytest.mark.parametrize("name, content, pixels", [
    ("bomb.png", png_declaring(60000, 60000), 60000 * 60000),
    ("bomb.jpg", jpeg_declaring(60000, 60000), 60000 * 60000),
    ("rgba.png", png_declaring(60000, 60000, colour_type=6), 60000 * 60000),
    # Above Pillow's warning (89.5 Mpx) but below its error: Pillow alone would decode it.
    ("warned.png", png_declaring(10000, 10000), 10000 * 10000),
    # Above trilemma's limit, below anything Pillow checks.
    ("quiet.png", png_declaring(8400, 8400), 8400 * 8400),
], ids=["png 60000x60000", "jpeg 60000x60000", "rgba 60000x60000", "100 Mpx", "70.6 Mpx"])
def test_an_image_above_the_pixel_limit_is_refused_before_anything_is_allocated(run_cli, tmp_path, name,
                                                                                content, pixels):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / name).write_bytes(content)
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"), names=(folder / name,))
    allocated = Image.core.get_stats()["new_count"]
    with pytest.raises(DataError) as verdict:
        load_data(str(folder))
    assert Image.core.get_stats()["new_count"] == allocated, "Pillow allocated an image for it"
    assert str(verdict.value) == message
    assert message.startswith(f"{folder / name}: image declares {pixels:,} pixels")
    assert f"above the limit of {MAX_IMAGE_PIXELS:,} pixels per image; refused before decoding" in message
    assert not (tmp_path / "run").exists()


def test_the_pixel_limit_holds_when_pillows_own_check_is_switched_off(run_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    folder = _folder(tmp_path / "data")
    (folder / "bomb.png").write_bytes(png_declaring(60000, 60000))
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"), names=(folder / "bomb.png",))
    assert f"above the limit of {MAX_IMAGE_PIXELS:,} pixels per image" in message


def test_an_image_at_the_pixel_limit_is_decoded(tmp_path):
    """Exactly the limit is allowed: the header passes, and the decoder finds the body short."""
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "edge.png").write_bytes(png_declaring(8192, MAX_IMAGE_PIXELS // 8192))
    with pytest.raises(DataError, match=r"edge\.png: corrupt image \(OSError: image file is truncated"):
        load_data(str(folder))


def test_a_folder_or_array_declaring_more_than_memory_holds_is_refused_before_decoding(run_cli, tmp_path,
                                                                                       monkeypatch):
    """The limit is half of physical memory; lowered here so that a few small files exceed it."""
    import trilemma.data.files
    import trilemma.io.npy

    monkeypatch.setattr(trilemma.data.files, "memory_limit", lambda: 300)  # bytes: 2 images of 12x12
    monkeypatch.setattr(trilemma.io.npy, "memory_limit", lambda: 1000)
    folder = _folder(tmp_path / "data")
    allocated = Image.core.get_stats()["new_count"]
    with pytest.raises(DataError) as verdict:
        load_data(str(folder))
    assert str(verdict.value).startswith(f"{folder}: its images declare more than ")
    # Two images decoded (and copied); decoding all nine would take 18 or more.
    assert Image.core.get_stats()["new_count"] - allocated <= 2 * 3, "decoded past the limit"
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8))
    message = _refused(run_cli, tmp_path, *_train(path, tmp_path / "run"))
    assert message.startswith(f"{path}: array 'x' declares an array of shape (20, 8, 8) and dtype uint8 "
                              "(1.25 KiB), more than 50% of this machine's memory"), message


# -- symbolic links, special files, names --------------------------------------------------

def _loop_in_subfolder(folder: Path) -> Path:
    os.symlink("..", folder / "a" / "up")
    return folder / "a" / "up"


def _class_linking_home(folder: Path) -> Path:
    os.symlink(".", folder / "b")
    return folder / "b"


def _two_file_links(folder: Path) -> Path:
    os.symlink("y.png", folder / "a" / "x.png")
    os.symlink("x.png", folder / "a" / "y.png")
    return folder / "a" / "x.png"


@pytest.mark.parametrize("make", [_loop_in_subfolder, _class_linking_home, _two_file_links],
                         ids=["folder link to its parent", "class folder linking to the data folder",
                              "two file links to each other"])
def test_a_symbolic_link_loop_in_a_data_folder_is_named(run_cli, tmp_path, make):
    folder = tmp_path / "data"
    _folder(folder / "a")
    link = make(folder)
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"), names=(link,))
    assert message.startswith(f"{link}: symbolic link loop"), message
    assert not (tmp_path / "run").exists()


def test_a_data_path_that_is_a_link_loop_or_broken_is_named(run_cli, tmp_path):
    os.symlink(tmp_path / "loop", tmp_path / "loop")
    os.symlink(tmp_path / "nowhere", tmp_path / "broken")
    for link in ("loop", "broken"):
        message = _refused(run_cli, tmp_path, *_train(tmp_path / link, tmp_path / "run"))
        assert message == f"{tmp_path / link}: a symbolic link that leads nowhere (broken, or a loop)"
    folder = _folder(tmp_path / "data")
    os.symlink("gone.png", folder / "dangling.png")
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message == f"{folder / 'dangling.png'}: broken symbolic link (to gone.png, which does not exist)"


def test_links_that_do_not_loop_are_followed(tmp_path):
    elsewhere = _folder(tmp_path / "elsewhere", count=4, start=100)
    folder = _folder(tmp_path / "data" / "a", count=4).parent
    os.symlink(elsewhere, folder / "a" / "more")  # a folder link
    os.symlink(elsewhere / "img100.png", folder / "a" / "again.png")  # a file link
    data = load_data(str(folder))
    assert len(data.x_train) + len(data.x_heldout) == 9


def test_folders_nested_beyond_any_use_are_refused(run_cli, tmp_path):
    folder = _folder(tmp_path / "data" / "a").parent
    _folder(folder / "a" / "/".join("d" * 40), count=1)
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message.startswith(f"{folder}/a/d/d/") and message.endswith("folders nested more than 32 deep")


def test_a_pipe_named_like_an_image_is_refused_without_being_opened(run_cli, tmp_path):
    folder = _folder(tmp_path / "data")
    os.mkfifo(folder / "pipe.png")  # opening it for reading would wait for a writer forever
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message == f"{folder / 'pipe.png'}: not a regular file (a pipe, socket or device)"


def test_names_that_are_not_utf8_or_hold_a_newline_are_shown_escaped_on_one_line(run_cli, tmp_path):
    folder = _folder(tmp_path / "data")
    root = os.fsencode(folder)
    with open(os.path.join(root, b"caf\xe9 \xff.png"), "wb") as file:  # Latin-1, and no charset at all
        file.write(b"not an image")
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message == f"{folder}/caf\\xe9 \\xff.png: not a readable image (unknown or corrupt format)"
    os.remove(os.path.join(root, b"caf\xe9 \xff.png"))
    with open(os.path.join(root, b"two\nlines\x1b[31m.png"), "wb") as file:
        file.write(b"")
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message == f"{folder}/two\\nlines\\x1b[31m.png: empty file (0 bytes)"
    # A data folder whose own name is not UTF-8.
    odd = os.path.join(os.fsencode(tmp_path), b"d\xe9ta")
    os.mkdir(odd)
    with open(os.path.join(odd, b"x.png"), "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n")
    message = _refused(run_cli, tmp_path, *_train(os.fsdecode(odd), tmp_path / "run"))
    assert message == (f"{tmp_path}/d\\xe9ta/x.png: not a readable image (unknown or corrupt format); "
                       f"besides, {tmp_path}/d\\xe9ta holds only 1 images and at least 8 are needed")


def test_images_and_class_folders_named_in_no_charset_are_read_and_train(run_cli, tmp_path):
    data = os.fsencode(tmp_path / "data")
    for class_name in (b"caf\xe9", b"plain"):
        os.makedirs(os.path.join(data, class_name))
        for i in range(5):
            with open(os.path.join(data, class_name, b"\xff%d.png" % i), "wb") as file:
                file.write(png_bytes(seed=i))
    loaded = load_data(os.fsdecode(data))
    assert loaded.class_names == ["caf\\xe9", "plain"]
    before = snapshot(tmp_path / "data")
    code, _, err = run_cli(*_train(os.fsdecode(data), tmp_path / "run"))
    assert code == 0, err
    config = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert config["data"]["class_names"] == ["caf\\xe9", "plain"]  # recorded as shown
    assert config["data"]["n_train"] + config["data"]["n_heldout"] == 10
    assert (tmp_path / "run" / "samples.png").is_file()
    assert snapshot(tmp_path / "data") == before


# -- arrays: infinities, labels, pickles ----------------------------------------------------

@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan], ids=["+inf", "-inf", "NaN"])
@pytest.mark.parametrize("kind", ["float32 images", "float64 points", "float16 images"])
def test_infinities_and_nan_in_arrays_are_refused_naming_the_sample(run_cli, tmp_path, bad, kind):
    rng = np.random.default_rng(0)
    if kind == "float64 points":
        x = rng.normal(size=(20, 2))
    else:
        x = rng.random((20, 8, 8)).astype(np.float16 if kind == "float16 images" else np.float32)
    x[13, ..., 1] = bad
    path = tmp_path / "bad.npz"
    np.savez(path, x=x)
    expected = f"{path}: holds NaN or infinite values (first at sample 13)"
    assert _refused(run_cli, tmp_path, *_train(path, tmp_path / "run")) == expected
    assert _refused(run_cli, tmp_path, "evaluate", path, "--data", "digits", "--json", tmp_path / "e.json") == expected
    assert not (tmp_path / "run").exists() and not (tmp_path / "e.json").exists()


@pytest.mark.parametrize("y", [np.arange(19), np.arange(21), np.zeros((20, 1), np.int64),
                               np.arange(20) - 1, np.arange(20) / 2],
                         ids=["too few", "too many", "2-D", "negative", "fractional"])
def test_labels_that_do_not_match_the_images_are_refused(run_cli, tmp_path, y):
    path = tmp_path / "labelled.npz"
    np.savez(path, x=np.zeros((20, 8, 8), np.uint8), y=y)
    expected = (f"{path}: labels 'y' are {y.dtype} of shape {y.shape}; expected 20 non-negative "
                "integers, one per sample")
    assert _refused(run_cli, tmp_path, *_train(path, tmp_path / "run")) == expected
    assert _refused(run_cli, tmp_path, "evaluate", path, "--data", "digits") == expected


def test_an_anomaly_labels_file_of_another_length_is_refused(tmp_path):
    np.save(tmp_path / "labels.npy", np.zeros(19, np.int64))
    (tmp_path / "labels.csv").write_text("label\n" + "0\n" * 21)
    with pytest.raises(DataError, match=r"labels\.npy: 19 labels for 20 images$"):
        read_label_file(tmp_path / "labels.npy", 20)
    with pytest.raises(DataError, match=r"labels\.csv: 21 labels for 20 images$"):
        read_label_file(tmp_path / "labels.csv", 20)


@pytest.mark.parametrize("compressed, reason", [
    (False, "is 3.73 GiB by the zip directory, in a file of"),
    (True, "is 3.73 GiB by the zip directory, from"),
], ids=["stored", "deflated"])
def test_a_zip_directory_that_lies_about_sizes_is_refused_before_anything_is_allocated(run_cli, tmp_path,
                                                                                     compressed, reason):
    """The directory says a member holds 4e9 bytes, as its header does; the file holds a few
    hundred. NumPy would allocate the 4e9 before finding out."""
    header = npy_declaring((4 * 10**9,), "|u1", b"")
    data = bytearray(npz_of({"x.npy": header + b"\0" * 100}, compressed=compressed))
    directory = data.index(b"PK\x01\x02")
    size = 4 * 10**9 + len(header)
    struct.pack_into("<I", data, directory + 24, size)  # the uncompressed size
    if not compressed:  # stored: the compressed size is the size
        struct.pack_into("<I", data, directory + 20, size)
    path = tmp_path / "lying.npz"
    path.write_bytes(bytes(data))
    tracemalloc.start()
    try:
        message = _refused(run_cli, tmp_path, "evaluate", path, "--data", "digits")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert message.startswith(f"{path}: array 'x' {reason}"), message
    assert peak < 256 << 20, f"{peak / 2**20:.0f} MiB"


class _Canary:
    """Unpickling this creates a file: proof, if it ever exists, that a pickle was run."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return open, (self.path, "w")


def test_a_pickle_in_an_array_file_is_never_run(run_cli, tmp_path):
    canary = tmp_path / "canary"
    payload = pickle.dumps(np.array([_Canary(str(canary))], dtype=object), protocol=2)
    (tmp_path / "objects.npy").write_bytes(npy_declaring((1,), "|O", payload))
    (tmp_path / "raw.npy").write_bytes(pickle.dumps(_Canary(str(canary))))
    for name, reason in (("objects.npy", "holds Python objects, which are never unpickled"),
                         ("raw.npy", "is a pickle (Python objects), which is never unpickled")):
        path = tmp_path / name
        assert _refused(run_cli, tmp_path, *_train(path, tmp_path / "run")).startswith(f"{path}: {reason}")
        assert _refused(run_cli, tmp_path, "evaluate", path, "--data", "digits").startswith(f"{path}: {reason}")
    assert not canary.exists()


def test_a_file_that_claims_to_be_another_format_is_not_parsed_as_it(run_cli, tmp_path):
    """Pillow reads only the formats of the accepted extensions: an EPS named .png is never
    handed to Ghostscript."""
    folder = _folder(tmp_path / "data")
    (folder / "script.png").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    message = _refused(run_cli, tmp_path, *_train(folder, tmp_path / "run"))
    assert message == f"{folder / 'script.png'}: not a readable image (unknown or corrupt format)"


# -- too few images, some corrupt ------------------------------------------------------------

def test_a_small_folder_names_its_corrupt_files_first(run_cli, tmp_path):
    one = tmp_path / "one"
    one.mkdir()
    (one / "blank.png").write_bytes(b"")
    message = _refused(run_cli, tmp_path, *_train(one, tmp_path / "run"))
    assert message == (f"{one / 'blank.png'}: empty file (0 bytes); besides, {one} holds only 1 images "
                       "and at least 8 are needed")
    several = _folder(tmp_path / "several", count=2)
    for name in ("a.png", "b.jpg", "c.png", "d.png", "e.gif"):
        (several / name).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    message = _refused(run_cli, tmp_path, *_train(several, tmp_path / "run"))
    assert message.startswith(f"{several / 'a.png'}: ")
    assert "; 4 more unreadable image(s): b.jpg, c.png, d.png, …; besides, " in message
    assert message.endswith(f"{several} holds only 7 images and at least 8 are needed")
    readable = _folder(tmp_path / "readable", count=3)
    assert _refused(run_cli, tmp_path, *_train(readable, tmp_path / "run")) == \
        f"{readable}: only 3 images; at least 8 are needed"


# -- outputs among the inputs ----------------------------------------------------------------

def test_an_output_inside_the_data_folder_is_refused_by_every_command(run_cli, tmp_path):
    folder = _folder(tmp_path / "data")
    os.symlink(folder, tmp_path / "link")
    samples = tmp_path / "samples.npz"
    np.savez(samples, x=np.zeros((20, 8, 8), np.uint8))
    inside = "lies inside the data folder"
    cases = [
        (_train(folder, folder / "run"), inside),
        (_train(f"{folder}:size=8", folder / "deeper" / "run"), inside),
        (_train(folder, tmp_path / "link" / "run"), inside),  # through a link
        (_train(folder, folder), "is the input"),
        (("compare", "--data", folder, "--out", folder / "comparison", "--steps", 1, "--quiet"), inside),
        (("evaluate", samples, "--data", folder, "--json", folder / "e.json"), inside),
        (("evaluate", samples, "--data", "digits", "--json", samples), "is the input"),
        (("inpaint", tmp_path / "no-run", "--images", samples, "--mask", "center", "--out", samples),
         "is the input"),
    ]
    for args, reason in cases:
        message = _refused(run_cli, tmp_path, *args)
        assert reason in message, (args, message)
    assert sorted(p.name for p in folder.iterdir()) == [f"img{i}.png" for i in range(9)]


def test_the_python_api_refuses_a_run_or_comparison_inside_the_data_folder(tmp_path):
    folder = _folder(tmp_path / "data")
    before = snapshot(tmp_path)
    with pytest.raises(DataError, match="lies inside the data folder"):
        train("vae", load_data(str(folder)), folder / "run", budget=Budget(steps=1), progress=False)
    settings = CompareSettings(data=str(folder), families=("vae",), seconds=None, steps=1)
    with pytest.raises(DataError, match="lies inside the data folder"):
        run_comparison(settings, folder / "comparison", progress=False)
    assert snapshot(tmp_path) == before
