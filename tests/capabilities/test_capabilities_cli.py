"""The capability commands end to end, as a user runs them, and their one-line refusals."""

import json

import numpy as np
import pytest

FAST = {"diffusion": ["--steps", 5, "--resample", 1, "--candidates", 2], "vae": ["--iterations", 5],
        "gan": ["--iterations", 10, "--restarts", 1]}


@pytest.mark.parametrize("key", ["diffusion", "vae", "gan"])
def test_inpaint_keeps_known_pixels_shape_and_dtype(run_cli, digits_runs, images_file, tmp_path, key):
    out = tmp_path / "filled.npz"
    code, printed, err = run_cli("inpaint", digits_runs[key], "--images", images_file, "--mask", "center",
                                 "--seed", 1, "--out", out, "--grid", tmp_path / "g.png", *FAST[key])
    assert code == 0, err
    assert "16 images inpainted" in printed and (tmp_path / "g.png").exists()
    original = np.load(images_file)
    result = np.load(out)
    assert result["x"].shape == original["x"].shape and result["x"].dtype == np.uint8
    hidden = result["mask"]
    assert hidden.shape == (16, 8, 8) and hidden[:, 2:6, 2:6].all() and hidden.sum() == 16 * 16
    assert np.array_equal(result["x"][~hidden], original["x"][~hidden])
    assert np.array_equal(result["y"], original["y"])


@pytest.mark.parametrize("layout", ["nhw-uint8", "float"])
def test_inpaint_answers_in_the_input_layout(run_cli, digits_runs, heldout, tmp_path, layout):
    _, pixels, _ = heldout
    x = pixels[..., 0] if layout == "nhw-uint8" else pixels.astype(np.float32) / 255
    np.savez(tmp_path / "in.npz", x=x)
    code, _, err = run_cli("inpaint", digits_runs["vae"], "--images", tmp_path / "in.npz", "--mask", "random:0.4",
                           "--out", tmp_path / "out.npz", "--iterations", 3)
    assert code == 0, err
    result = np.load(tmp_path / "out.npz")
    hidden = result["mask"] if layout == "nhw-uint8" else result["mask"][..., None]
    assert result["x"].shape == x.shape and result["x"].dtype == x.dtype
    assert np.array_equal(result["x"][~np.broadcast_to(hidden, x.shape)], x[~np.broadcast_to(hidden, x.shape)])


def test_interpolate_writes_grid_and_smoothness(run_cli, digits_runs, images_file, tmp_path):
    code, printed, err = run_cli("interpolate", digits_runs["vae"], "--images", images_file, "--pairs", 3,
                                 "--steps", 5, "--out", tmp_path / "path.png", "--json", tmp_path / "s.json")
    assert code == 0, err
    figures = json.loads((tmp_path / "s.json").read_text())
    assert figures["features"] == "lenet-digits" and 0 < figures["smoothness"] <= 1 and len(figures["per_path"]) == 3
    assert "smoothness" in printed and (tmp_path / "path.png").exists()
    code, _, err = run_cli("interpolate", digits_runs["diffusion"], "--seed", 2, "--pairs", 2, "--steps", 3,
                           "--inversion-steps", 5, "--out", tmp_path / "d.png")
    assert code == 0, err


@pytest.mark.parametrize("command, flag", [("img2img", ["--strength", "0.5"]), ("denoise", ["--sigma", "0.1"])])
@pytest.mark.parametrize("key", ["diffusion", "vae"])
def test_edit_commands(run_cli, digits_runs, images_file, tmp_path, command, flag, key):
    code, printed, err = run_cli(command, digits_runs[key], "--images", images_file, *flag, "--steps", 10,
                                 "--out", tmp_path / "o.npz") if key == "diffusion" else \
        run_cli(command, digits_runs[key], "--images", images_file, *flag, "--out", tmp_path / "o.npz")
    assert code == 0, err
    assert ("reconstruction" in printed) == (key == "vae")
    assert np.load(tmp_path / "o.npz")["x"].shape == (16, 8, 8, 1)


def test_upscale_output_averages_to_its_input(run_cli, digits_runs, heldout, tmp_path):
    _, pixels, _ = heldout
    low = pixels.reshape(16, 4, 2, 4, 2, 1).mean(axis=(2, 4)).round().astype(np.uint8)
    np.savez(tmp_path / "low.npz", x=low)
    code, printed, err = run_cli("upscale", digits_runs["diffusion"], "--images", tmp_path / "low.npz",
                                 "--steps", 5, "--out", tmp_path / "high.npz", "--grid", tmp_path / "g.png")
    assert code == 0, err
    high = np.load(tmp_path / "high.npz")["x"]
    assert high.shape == (16, 8, 8, 1) and high.dtype == np.uint8
    assert np.array_equal(high.reshape(16, 4, 2, 4, 2, 1).astype(np.int64).sum(axis=(2, 4)), 4 * low.astype(np.int64))
    assert "= 0.000 pixel levels" in printed


@pytest.mark.parametrize(
    "run, args, expected",
    [
        ("diffusion", ["inpaint", "--images", "{big}", "--mask", "center", "--out", "{tmp}/o.npz"],
         "images are 28x28x1 but the run makes 8x8x1"),
        ("vae", ["img2img", "--images", "{rgb}", "--strength", "0.5", "--out", "{tmp}/o.npz"],
         "images are 8x8x3 but the run makes 8x8x1"),
        ("gan", ["inpaint", "--images", "{images}", "--mask", "{badmask}", "--out", "{tmp}/o.npz"],
         "mask has shape (28, 28); expected (8, 8)"),
        ("vae", ["inpaint", "--images", "{images}", "--mask", "center", "--class", "3", "--out", "{tmp}/o.npz"],
         "unconditional; it takes no class"),
        ("vae-conditional", ["inpaint", "--images", "{images}", "--mask", "center", "--class", "12",
                             "--out", "{tmp}/o.npz"], "class 12 is out of range"),
        ("gan", ["upscale", "--images", "{images}", "--out", "{tmp}/o.npz"], "the gan family cannot do super-resolution"),
        ("gan", ["img2img", "--images", "{images}", "--strength", "0.5", "--out", "{tmp}/o.npz"],
         "the gan family cannot do image-to-image"),
        ("gan", ["denoise", "--images", "{images}", "--sigma", "0.1", "--out", "{tmp}/o.npz"],
         "the gan family cannot do denoising"),
        ("diffusion", ["upscale", "--images", "{images}", "--out", "{tmp}/o.npz"], "images are 8x8x1 but upscaling with"),
        ("vae", ["inpaint", "--images", "{images}", "--mask", "center", "--resample", "3", "--out", "{tmp}/o.npz"],
         "has no option(s) resample"),
        ("vae", ["inpaint", "--images", "{tmp}/missing.npz", "--mask", "center", "--out", "{tmp}/o.npz"], "no such file"),
        ("vae", ["inpaint", "--images", "{images}", "--mask", "center", "--out", "{tmp}/o.txt"], "must end in .npz"),
        ("diffusion", ["img2img", "--images", "{images}", "--strength", "2", "--out", "{tmp}/o.npz"], "strength must"),
        ("vae", ["interpolate", "--images", "{images}", "--pairs", "20", "--out", "{tmp}/p.png"], "need 40 images"),
    ],
)
def test_bad_requests_get_one_line(run_cli, digits_runs, images_file, tmp_path, run, args, expected):
    np.savez(tmp_path / "big.npz", x=np.zeros((2, 28, 28), np.uint8))
    np.savez(tmp_path / "rgb.npz", x=np.zeros((2, 8, 8, 3), np.uint8))
    np.save(tmp_path / "badmask.npy", np.zeros((28, 28), bool))
    paths = {"big": tmp_path / "big.npz", "rgb": tmp_path / "rgb.npz", "badmask": tmp_path / "badmask.npy",
             "images": images_file, "tmp": tmp_path}
    command, *rest = args
    code, _, err = run_cli(command, digits_runs[run], *[a.format(**paths) for a in rest])
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and expected in lines[0], err
