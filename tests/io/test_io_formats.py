"""Every command gives the same verdict on the same file: the same images in any accepted form
are read as the same pixels, and a bad file gets the same one-line error, exit code 2."""

import json

import numpy as np
import pytest

from trilemma.data import load_data

N = 16
FORMS = {  # name: how the uint8 NHWC digits are stored in the file
    "uint8 NHWC": lambda x: x,
    "uint8 NCHW": lambda x: x.transpose(0, 3, 1, 2),
    "float [0, 1] NHWC": lambda x: (x / 255).astype(np.float32),
    "float [0, 1] NCHW": lambda x: (x / 255).transpose(0, 3, 1, 2),
    "uint8 NHW (grey)": lambda x: x[..., 0],
}


@pytest.fixture(scope="module")
def vae_run(trained_run):
    return trained_run("vae-tiny")


@pytest.fixture(scope="module")
def digits_pixels():
    """N held-out digits, uint8 NHWC, and their labels."""
    digits = load_data("digits")
    return digits.x_heldout[:N].permute(0, 2, 3, 1).numpy(), digits.y_heldout[:N].numpy()


def _commands(run, path, out):
    """Each command that reads an image file, asked about the file at `path`."""
    return {
        "evaluate": ("evaluate", path, "--data", "digits", "--json", out / "e.json"),
        "inpaint": ("inpaint", run, "--images", path, "--mask", "center", "--iterations", 2,
                    "--out", out / "i.npz"),
        "img2img": ("img2img", run, "--images", path, "--strength", 0.5, "--out", out / "m.npz"),
        "anomaly": ("anomaly", run, "--images", path, "--reference", "none", "--out", out / "a.csv"),
        "train --data": ("train", "--family", "vae", "--data", path, "--out", out / "new", "--steps", 1),
    }


def _as_nhwc_levels(x: np.ndarray) -> np.ndarray:
    """An output file's images, in whatever form, as uint8 NHWC levels."""
    x = x[..., None] if x.ndim == 3 else x
    x = x.transpose(0, 2, 3, 1) if x.shape[1] == 1 and x.shape[-1] != 1 else x
    return np.round(x * 255).astype(np.uint8) if x.dtype.kind == "f" else x


def _rows(x: np.ndarray, y: np.ndarray | None) -> list[bytes]:
    """A set of images (and labels), as sorted rows: the same data whatever the order."""
    return sorted(bytes(image) + (b"" if y is None else bytes([label])) for image, label in
                  zip(x.reshape(len(x), -1), [0] * len(x) if y is None else y, strict=True))


def _readings(run_cli, run, path, x, tmp_path, labelled):
    """What evaluate, inpaint, img2img, anomaly and --data make of one file, checked for the
    promises each makes (outputs like the source, known pixels exact), for comparison."""
    readings = {}
    data = load_data(str(path))
    x_all = np.concatenate([data.x_train, data.x_heldout])
    y_all = np.concatenate([data.y_train, data.y_heldout]) if labelled else None
    assert (data.y_train is not None) == labelled
    readings["--data"] = _rows(x_all, y_all)
    commands = _commands(run, path, tmp_path)
    for command in ("evaluate", "inpaint", "img2img", "anomaly"):
        code, _, err = run_cli(*commands[command])
        assert code == 0, (command, err)
    readings["evaluate"] = json.loads((tmp_path / "e.json").read_text())["metrics"]
    for command, file in (("inpaint", "i.npz"), ("img2img", "m.npz")):
        written = np.load(tmp_path / file)
        assert written["x"].shape == x.shape and written["x"].dtype == x.dtype, command
        assert ("y" in written) == labelled, command
        readings[command] = _as_nhwc_levels(written["x"])
    readings["anomaly"] = (tmp_path / "a.csv").read_text()
    hidden = np.load(tmp_path / "i.npz")["mask"]
    assert np.array_equal(readings["inpaint"][~hidden], _as_nhwc_levels(x)[~hidden])  # known pixels kept
    return readings


@pytest.mark.parametrize("labelled", [True, False], ids=["with y", "without y"])
def test_every_form_is_read_as_the_same_pixels_by_every_command(run_cli, vae_run, digits_pixels, tmp_path,
                                                                labelled):
    images, labels = digits_pixels
    readings = {}
    for name, form in FORMS.items():
        x = form(images)
        path = tmp_path / "images.npz"
        np.savez(path, x=x, **({"y": labels} if labelled else {}))
        readings[name] = _readings(run_cli, vae_run, path, x, tmp_path, labelled)
    assert readings["uint8 NHWC"]["--data"] == _rows(images.transpose(0, 3, 1, 2), labels if labelled else None)
    first = readings["uint8 NHWC"]
    for name, reading in readings.items():
        for command in ("--data", "evaluate", "anomaly"):
            assert reading[command] == first[command], (name, command)
        for command in ("inpaint", "img2img"):
            np.testing.assert_array_equal(reading[command], first[command], err_msg=f"{name}, {command}")


BAD_FILES = ("NaN", "float out of range", "integers out of range", "object array", "two channels",
             "wrong label count")


def _bad_file(name, images, labels):
    """The arrays of a bad file, and the start of its one error line after the path."""
    nan = (images / 255).astype(np.float32)
    nan[3, 2, 2, 0] = np.nan
    return {
        "NaN": ({"x": nan}, "holds NaN or infinite values (first at sample 3)"),
        "float out of range": ({"x": images / 255 * 1.5}, "float images must lie in [0, 1] (found 0 to 1.5)"),
        "integers out of range": ({"x": images.astype(np.int16) * 2},
                                  "integer images must lie in [0, 255] (found 0 to 510)"),
        "object array": ({"x": np.array([{"pixels": 1}] * N, dtype=object)}, "holds Python objects"),
        "two channels": ({"x": np.repeat(images, 2, axis=3)},
                         f"data array has shape ({N}, 8, 8, 2); images must be (N, H, W), (N, H, W, C)"),
        "wrong label count": ({"x": images, "y": labels[:-1]},
                              f"labels 'y' are int64 of shape ({N - 1},); expected {N} non-negative integers"),
    }[name]


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_gets_the_same_one_line_error_from_every_command(run_cli, vae_run, digits_pixels, tmp_path,
                                                                     name):
    arrays, expected = _bad_file(name, *digits_pixels)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    errors = {}
    for command, args in _commands(vae_run, path, tmp_path).items():
        code, _, err = run_cli(*args)
        assert code == 2 and err.count("\n") == 1, (command, err)
        errors[command] = err
    assert len(set(errors.values())) == 1, errors
    assert errors["evaluate"].startswith(f"trilemma: error: {path}: {expected}"), errors["evaluate"]
    assert not (tmp_path / "new").exists() and not (tmp_path / "i.npz").exists()


def test_images_of_another_size_are_refused_by_every_command_that_knows_the_size(run_cli, vae_run, tmp_path):
    path = tmp_path / "big.npz"
    np.savez(path, x=np.zeros((N, 28, 28, 1), np.uint8))
    commands = _commands(vae_run, path, tmp_path)
    for command in ("inpaint", "img2img", "anomaly"):
        code, _, err = run_cli(*commands[command])
        assert (code, err) == (2, f"trilemma: error: {path}: images are 28x28x1 but the run makes 8x8x1\n")
    code, _, err = run_cli(*commands["evaluate"])
    assert (code, err) == (2, f"trilemma: error: {path}: samples are 28x28x1 but digits images are 8x8x1\n")
