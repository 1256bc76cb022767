"""Folders larger than memory: decoded once by workers into a memory-mapped disk cache keyed by
the folder's content, and trained from it with the in-memory path's pixels and split."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from trilemma.data import load_data
from trilemma.data.streaming import cache_root
from trilemma.errors import DataError
from trilemma.training import Budget, train


def _write(folder, count, size=(12, 16), start=0, mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(start)
    for i in range(count):
        shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
        Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode).save(folder / f"img{start + i:04d}.png")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("TRILEMMA_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    _write(data / "a", 30, start=0)
    _write(data / "b", 20, size=(16, 20), start=100)  # another size: resized to the most common
    return data


def test_streamed_folder_has_the_in_memory_pixels_labels_and_split(folder):
    streamed = load_data(f"{folder}:stream=yes")
    memory = load_data(f"{folder}:stream=no")
    assert streamed.info["storage"] == "disk" and "storage" not in memory.info
    for part in ("x_train", "y_train", "x_heldout", "y_heldout"):
        assert torch.equal(getattr(streamed, part), getattr(memory, part)), part
    assert streamed.sample_shape == memory.sample_shape == (3, 16, 12)
    assert streamed.class_names == ["a", "b"]
    # The two parts are slices of one map on disk, not copies in memory.
    assert not streamed.x_train.numpy().flags.owndata


def test_pages_of_the_cache_are_released_after_each_batch_and_read_again(folder, monkeypatch):
    import trilemma.training.batches as batches_module
    from trilemma.data.streaming import release_pages

    streamed, memory = load_data(f"{folder}:stream=yes"), load_data(f"{folder}:stream=no")
    cache = next(cache_root().glob("*.pixels"))
    on_disk = cache.read_bytes()
    assert release_pages(streamed.x_train) and release_pages(streamed.x_heldout)
    assert not release_pages(memory.x_train)  # not in a cache's mapping: nothing done
    assert torch.equal(streamed.x_train, memory.x_train)  # dropped pages read back the same
    streamed.x_heldout[0] += 1  # the mapping is private: a write stays in this process
    assert cache.read_bytes() == on_disk

    released, firsts = [], []
    monkeypatch.setattr(batches_module, "release_pages", lambda x: released.append(x) or True)
    streamed = load_data(f"{folder}:stream=yes")  # unwritten
    for dataset, expected in ((streamed, 2), (memory, 0)):
        released.clear()
        batches = batches_module.Batches(dataset, labelled=True, batch_size=8, seed=0, device=torch.device("cpu"),
                                         layout=torch.contiguous_format)
        firsts.append(batches.batch(1)[0])
        batches.batch(2)
        assert len(released) == expected
    assert torch.equal(*firsts)  # the same batch from disk as from memory


def test_the_cache_is_built_once_and_rebuilt_when_the_folder_changes(folder):
    load_data(f"{folder}:stream=yes")
    built = sorted(cache_root().glob("*.pixels"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    again = load_data(f"{folder}:stream=yes")
    assert sorted(cache_root().glob("*.pixels")) == built and built[0].stat().st_mtime_ns == stamp
    _write(folder / "a", 1, start=500)  # one more image
    changed = load_data(f"{folder}:stream=yes")
    assert len(list(cache_root().glob("*.pixels"))) == 2
    assert len(changed.x_train) + len(changed.x_heldout) == len(again.x_train) + len(again.x_heldout) + 1


def test_a_streamed_class_filter_and_grey_folder(folder, tmp_path):
    kept = load_data(f"{folder}:stream=yes:classes=1")
    assert set(kept.y_train.tolist()) == {1} and set(kept.y_heldout.tolist()) == {1}
    grey = tmp_path / "grey"
    _write(grey, 12, mode="L")
    data = load_data(f"{grey}:stream=yes")
    assert data.sample_shape == (1, 16, 12) and data.y_train is None


def test_an_unreadable_image_is_named_and_nothing_is_cached(folder):
    bad = folder / "b" / "img0105.png"
    bad.write_bytes(b"not a png at all")
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    with pytest.raises(DataError, match="img0105.png"):
        load_data(f"{folder}:stream=yes")
    assert not list(cache_root().glob("*.pixels")) and not list(cache_root().glob(".partial-*"))
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before  # the user's files untouched


def test_a_bad_stream_option_is_refused(folder):
    with pytest.raises(DataError, match="stream must be yes or no"):
        load_data(f"{folder}:stream=maybe")


def test_training_reads_its_batches_from_the_disk_cache(folder, tmp_path):
    data = load_data(f"{folder}:stream=yes")
    result = train("vae", data, tmp_path / "run", seed=0, progress=False,
                   budget=Budget(steps=3))
    assert result.steps == 3
    assert os.path.exists(data.info["cache"])
