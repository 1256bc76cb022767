"""`trilemma interpolate | inpaint | img2img | denoise | upscale`: argument handling, file I/O
and printing only; the work is done by `trilemma.capabilities`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from trilemma.cli.arguments import output_file, positive_int
from trilemma.errors import UnsupportedRequest
from trilemma.io import ImageStack


class Images(NamedTuple):
    """The --images file: its images in canonical form (and how it held them), its labels."""

    stack: ImageStack
    labels: np.ndarray | None


def _common(p: argparse.ArgumentParser, images_help: str, out_help: str | None) -> None:
    p.add_argument("run_dir")
    if out_help:
        p.add_argument("--images", required=True, metavar="FILE.npz", help=images_help)
        p.add_argument("--out", required=True, metavar="OUT.npz", help=out_help)
        p.add_argument("--grid", metavar="PNG", help="also write a picture: inputs above (hidden pixels grey), outputs below")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--class", dest="class_label", type=int, help="class for every image (conditional "
                   "models; default: the file's labels 'y', if any)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")


def add_editing_parsers(commands: Any) -> None:
    """Register the capability commands on the CLI's sub-command parsers."""
    images = ("images: .npz with 'x' (uint8 0-255 or floats in [0, 1]; (N, H, W), (N, H, W, C) or "
              "(N, C, H, W); the run's size) and optional labels 'y', or an .npy of images")
    p = commands.add_parser("interpolate", help="latent-space interpolation paths as a PNG grid, and "
                            "their smoothness")
    _common(p, images, None)
    p.add_argument("--images", metavar="FILE.npz", help="interpolate between consecutive pairs of these "
                   "real images (default: between random latents drawn with --seed)")
    p.add_argument("--pairs", type=positive_int, default=4, help="paths to draw (default 4)")
    p.add_argument("--steps", type=positive_int, default=8, help="images per path (default 8)")
    p.add_argument("--inversion-steps", type=positive_int, default=50, help="diffusion: DDIM steps (default 50)")
    p.add_argument("--out", required=True, metavar="GRID.png", help="the picture: one path per row")
    p.add_argument("--json", dest="json_out", metavar="OUT.json", help="also write the smoothness figures here")
    p.set_defaults(run=cmd_interpolate)

    p = commands.add_parser("inpaint", help="fill the masked pixels of images; known pixels are kept exactly")
    _common(p, images, "the filled images, same shape and dtype as the input, with 'mask' (True = hidden)")
    p.add_argument("--mask", required=True, help="center (the central half of each side), left, right, top, "
                   "bottom, random:P (each pixel hidden with probability P), or MASK.npy: bool or 0/1 of "
                   "shape (H, W) or (N, H, W), True/1 = hidden")
    p.add_argument("--steps", type=positive_int, help="diffusion: RePaint levels (default 50)")
    p.add_argument("--resample", type=positive_int, help="diffusion: RePaint passes per level (default 2)")
    p.add_argument("--reconstruction-guidance", type=float, metavar="ZETA",
                   help="diffusion: pull towards agreement with the known pixels (default 8; 0 = plain RePaint)")
    p.add_argument("--candidates", type=positive_int, metavar="K",
                   help="diffusion: draw K fills per image and keep the one nearest the others (default 1; "
                        "K times the time)")
    p.add_argument("--iterations", type=positive_int, help="VAE: encode/decode passes (default 50); "
                   "GAN: optimiser steps (default 200)")
    p.add_argument("--restarts", type=positive_int, help="GAN: random starts per image (default 4)")
    p.set_defaults(run=cmd_inpaint)

    p = commands.add_parser("img2img", help="image-to-image (SDEdit) with a diffusion model; a VAE reconstructs")
    _common(p, images, "the edited images, same shape and dtype as the input")
    p.add_argument("--strength", type=float, required=True, help="noise level in (0, 1]: how much may change")
    p.add_argument("--steps", type=positive_int, help="DDIM steps for the full strength (default 50)")
    p.set_defaults(run=cmd_img2img)

    p = commands.add_parser("denoise", help="remove Gaussian pixel noise with a diffusion model; a VAE reconstructs")
    _common(p, images, "the denoised images, same shape and dtype as the input")
    p.add_argument("--sigma", type=float, required=True, help="noise std in [0, 1] pixel units")
    p.add_argument("--steps", type=positive_int, help="DDIM steps for the full noise range (default 50)")
    p.set_defaults(run=cmd_denoise)

    p = commands.add_parser("upscale", help="x2 super-resolution (ILVR) with an unconditional diffusion model")
    _common(p, "low-resolution images, half the run's height and width", "the upscaled uint8 images; each "
            "2x2 block averages to its input pixel")
    p.add_argument("--steps", type=positive_int, help="reverse steps (default 100)")
    p.set_defaults(run=cmd_upscale)


# ----------------------------------------------------------------------------- shared steps

def _load(args: argparse.Namespace):
    from trilemma.sampling import load_run

    run = load_run(args.run_dir, args.device)
    if run.family.config.data.kind != "image":
        if run.config.get("data", {}).get("kind") == "table":
            raise UnsupportedRequest(f"{args.run_dir}: `{args.command}` works on image runs; this one models a table "
                                     "(fill its empty cells with `trilemma impute RUN --rows FILE.csv --out FILE.csv`)")
        raise UnsupportedRequest(f"{args.run_dir}: `{args.command}` works on image runs; this one models points")
    return run


def _labels(run, args: argparse.Namespace, n: int, file_labels: np.ndarray | None) -> torch.Tensor | None:
    if args.class_label is not None:
        return torch.full((n,), args.class_label, dtype=torch.long)
    if file_labels is not None and run.family.conditional:
        return torch.from_numpy(file_labels)
    return None


def _options(args: argparse.Namespace, *names: str) -> dict:
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def _read_images(args: argparse.Namespace, shape: tuple[int, ...], expected_by: str) -> Images:
    """The --images file, checked against the (C, H, W) the command needs."""
    from trilemma.io import as_images, read_array_file

    file = read_array_file(args.images)
    return Images(as_images(file.x, str(file.path), expected=shape, expected_by=expected_by), file.y)


def _write(args, run, images: Images, pixels: np.ndarray, extra: dict, started: float, what: str,
           before: np.ndarray | None = None, outputs: np.ndarray | None = None) -> None:
    """The output file: uint8 NHWC `pixels` in the input's layout and dtype (or `outputs`, already
    so), the input's labels, the extra arrays, and how they were made."""
    from trilemma.io import write_npz

    arrays = {"x": images.stack.like_source(pixels) if outputs is None else outputs, **extra}
    if images.labels is not None:
        arrays["y"] = images.labels
    write_npz(Path(args.out), arrays, {
        "command": args.command, "run": str(run.run_dir), "family": run.config["family"], "step": run.step,
        "images": str(args.images), "seed": args.seed,
        **{k: v for k, v in vars(args).items() if k in ("mask", "strength", "sigma", "steps", "resample",
                                                        "iterations", "restarts", "reconstruction_guidance",
                                                        "candidates")
           and v is not None},
    })
    if args.grid:
        _save_before_after(images.stack.nhwc if before is None else before, pixels, args.grid)
    seconds = time.perf_counter() - started
    print(f"{len(pixels)} images {what} by {run.config['family']} ({run.run_dir}, step {run.step}) -> "
          f"{args.out} in {seconds:.1f} s ({seconds / len(pixels):.3f} s per image)")


def _save_before_after(before: np.ndarray, after: np.ndarray, path: str) -> None:
    from trilemma.images import image_grid, save_png

    count = min(len(before), 16)
    grid = image_grid(np.concatenate([before[:count], after[:count]]), columns=count)
    save_png(grid, path, scale=3 if before.shape[1] <= 32 else 1)


# ----------------------------------------------------------------------------- commands

def cmd_inpaint(args: argparse.Namespace) -> None:
    from trilemma.capabilities.inpainting import inpaint, inpainting_method
    from trilemma.capabilities.masks import make_mask
    from trilemma.device import sampling_generator
    from trilemma.io import to_pixels

    output_file(args.out, "--out", ".npz")
    run = _load(args)
    method = inpainting_method(run.family)
    shape = tuple(run.family.config.data.sample_shape)
    images = _read_images(args, shape, "the run makes")
    stack = images.stack
    mask = make_mask(args.mask, len(stack.pixels), shape[1], shape[2], args.seed)
    labels = _labels(run, args, len(stack.pixels), images.labels)
    started = time.perf_counter()
    x = stack.to_model(run.normalizer).to(run.family.device)
    filled = to_pixels(inpaint(run.family, x, mask.to(x.device), sampling_generator(args.seed), labels,
                               **_options(args, "steps", "resample", "iterations", "restarts",
                                          "reconstruction_guidance", "candidates")))
    hidden = mask[:, 0].numpy()
    # Known pixels are the input's own values, exactly, in its own dtype.
    outputs = np.where(stack.mask_like_source(hidden), stack.like_source(filled), stack.original)
    pixels = np.where(hidden[..., None], filled, stack.nhwc)
    masked = np.where(hidden[..., None], np.uint8(128), stack.nhwc)  # hidden shown grey
    _write(args, run, images, pixels, {"mask": hidden}, started, f"inpainted ({method})", masked, outputs)


def cmd_img2img(args: argparse.Namespace) -> None:
    from trilemma.capabilities.editing import editing_method, img2img

    _edit(args, editing_method, "image-to-image",
          lambda family, x, generator, labels: img2img(family, x, args.strength, generator, labels,
                                                       **_options(args, "steps")))


def cmd_denoise(args: argparse.Namespace) -> None:
    from trilemma.capabilities.editing import denoise, editing_method

    _edit(args, editing_method, "denoising",
          lambda family, x, generator, labels: denoise(family, x, args.sigma, generator, labels,
                                                       **_options(args, "steps")))


def _edit(args, editing_method, task: str, work) -> None:
    from trilemma.device import sampling_generator
    from trilemma.io import to_pixels

    output_file(args.out, "--out", ".npz")
    run = _load(args)
    method = editing_method(run.family, task)
    images = _read_images(args, tuple(run.family.config.data.sample_shape), "the run makes")
    labels = _labels(run, args, len(images.stack.pixels), images.labels)
    started = time.perf_counter()
    out = work(run.family, images.stack.to_model(run.normalizer).to(run.family.device),
               sampling_generator(args.seed), labels)
    _write(args, run, images, to_pixels(out), {}, started, f"edited ({task}, {method})")


def cmd_upscale(args: argparse.Namespace) -> None:
    from trilemma.capabilities.inversion import require_denoiser
    from trilemma.capabilities.superresolution import (
        FACTOR,
        consistency_error,
        to_consistent_pixels,
        upscale,
    )
    from trilemma.device import sampling_generator

    output_file(args.out, "--out", ".npz")
    run = _load(args)
    require_denoiser(run.family, "super-resolution")
    c, h, w = run.family.config.data.sample_shape
    if args.class_label is not None:
        raise UnsupportedRequest("upscale uses the model unconditionally; it takes no --class")
    images = _read_images(args, (c, h // FACTOR, w // FACTOR),
                          f"upscaling with {args.run_dir} needs half its size,")
    low_pixels = images.stack.nhwc
    started = time.perf_counter()
    low = images.stack.to_model(run.normalizer).to(run.family.device)
    high = upscale(run.family, low, sampling_generator(args.seed), **_options(args, "steps"))
    pixels = to_consistent_pixels(high, low_pixels)
    error = consistency_error(pixels, low_pixels)
    nearest = np.repeat(np.repeat(low_pixels, FACTOR, 1), FACTOR, 2)  # the inputs, for the picture
    _write(args, run, images, pixels, {}, started, "upscaled x2 (ILVR)", nearest)
    print(f"down-sampling consistency: max |2x2 mean of output - input| = {error:.3f} pixel levels (of 255)")


def cmd_interpolate(args: argparse.Namespace) -> None:
    from trilemma.capabilities.interpolation import interpolate, smoothness, smoothness_extractor
    from trilemma.device import sampling_generator
    from trilemma.images import image_grid, save_png
    from trilemma.io import to_pixels, write_json

    out = output_file(args.out, "--out", ".png")
    run = _load(args)
    family, shape = run.family, tuple(run.family.config.data.sample_shape)
    pairs, labels = None, None
    if args.images:
        images = _read_images(args, shape, "the run makes")
        count = len(images.stack.pixels)
        if count < 2 * args.pairs:
            raise UnsupportedRequest(f"{args.images}: {args.pairs} pairs need {2 * args.pairs} images, "
                                     f"the file has {count}")
        x = images.stack.to_model(run.normalizer)[: 2 * args.pairs].to(family.device)
        pairs = x.view(args.pairs, 2, *shape)
        all_labels = _labels(run, args, count, images.labels)
        labels = None if all_labels is None else all_labels[: 2 * args.pairs: 2]
    elif args.class_label is not None:
        labels = torch.full((args.pairs,), args.class_label, dtype=torch.long)
    path = interpolate(family, sampling_generator(args.seed), images=pairs, pairs=args.pairs, steps=args.steps,
                       labels=labels, inversion_steps=args.inversion_steps)
    pixels = to_pixels(path.images.flatten(0, 1))
    save_png(image_grid(pixels, columns=args.steps), out, scale=3 if shape[1] <= 32 else 1)
    figure = smoothness(pixels.reshape(args.pairs, args.steps, *pixels.shape[1:]),
                        smoothness_extractor(run.config["data"]["name"], shape))
    note = "" if figure.features != "pixels" else " (no domain classifier for this data: pixel distances)"
    print(f"{args.pairs} paths of {args.steps} images ({path.method}) by {run.config['family']} -> {out}")
    print(f"smoothness {figure.smoothness:.3f} (mean/max step under {figure.features} features; 1 = even "
          f"steps, higher is smoother), path ratio {figure.path_ratio:.3f} (1 = straight){note}")
    if args.json_out:
        write_json(args.json_out, {
            "run": str(run.run_dir), "family": run.config["family"], "step": run.step, "method": path.method,
            "pairs": args.pairs, "steps": args.steps, "seed": args.seed, **figure.to_json()})
