"""Capabilities measured side by side on mnist: inpainting, interpolation, inversion, upscaling.

    python benchmarks/bench_editing.py [--runs DIR] [--n 200] [--steps-diffusion S --steps-others S]

Trains (or, when DIR/<family> already holds a run, reuses) a diffusion model (and any family with
a choice of samplers: flow, latent diffusion) for 6 minutes and a VAE and a GAN (and ddgan) for
3 minutes each on mnist with default settings, as issue 6 states the target
(`--steps-*` replace the time budgets by step counts). Then, on n held-out digits drawn with a
fixed seed:
- inpainting of the centre 14x14 by each family: the domain classifier's (lenet-mnist) label
  recovery on the filled images (target: >= 85% for diffusion), per sampling seed (--seeds, mean
  and range reported: one seed's figure moves by +-3 points on 200 digits), whether the known
  pixels came back bit-identical, and the seconds per image (`--candidates K`: diffusion draws K
  fills per image and keeps the one nearest the others); for context, the classifier's
  accuracy on the originals and on the masked digits with the centre set to background;
- interpolation smoothness per family (mean/max step under lenet-mnist features; 1 = even) on
  8 pairs of held-out digits, 8 images per path;
- DDIM inversion then sampling (50 steps): mean and max absolute reconstruction error, in pixel
  levels (of 255), on 32 digits;
- x2 upscaling of 14x14 versions (2x2 means, rounded) of 64 digits: PSNR against the originals
  for ILVR and bicubic, and the down-sampling consistency of the uint8 output (max |2x2 mean -
  input| in pixel levels).
The machine's load changes every time figure; the recovery figures do not depend on it.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from trilemma.capabilities.inpainting import inpaint, inpainting_method
from trilemma.capabilities.interpolation import interpolate, smoothness
from trilemma.capabilities.inversion import ddim_invert, ddim_sample
from trilemma.capabilities.masks import make_mask
from trilemma.capabilities.superresolution import (
    bicubic_upsample,
    consistency_error,
    downsample,
    psnr,
    to_consistent_pixels,
    upscale,
)
from trilemma.data import load_data
from trilemma.device import sampling_generator
from trilemma.families import family_class
from trilemma.families.capabilities import Denoiser
from trilemma.io import to_pixels
from trilemma.metrics.features import DomainClassifierExtractor
from trilemma.sampling import load_run


def ensure_run(folder: Path, family: str, minutes: float, steps: int | None) -> dict:
    if (folder / "latest.json").exists():
        return {"trained": "reused"}
    budget = ["--steps", str(steps)] if steps else ["--minutes", str(minutes)]
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "trilemma", "train", "--family", family, "--data", "mnist",
                    "--out", str(folder), "--quiet", *budget], check=True)
    return {"trained": " ".join(budget), "train_seconds": time.perf_counter() - started}


def recovery(classifier: DomainClassifierExtractor, pixels: np.ndarray, labels: np.ndarray) -> float:
    return float((classifier.probabilities(pixels).argmax(1) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="benchmarks/runs/editing", help="folder of the three runs")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--steps-diffusion", type=int, help="train the iterative families (diffusion, flow, "
                        "latent diffusion) for this many steps, not 6 min")
    parser.add_argument("--steps-others", type=int, help="train the VAE and GAN this many steps, not 3 min")
    parser.add_argument("--repaint-steps", type=int, default=50)
    parser.add_argument("--resample", type=int, default=2)
    parser.add_argument("--reconstruction-guidance", type=float, default=8.0)
    parser.add_argument("--candidates", type=int, default=1, help="diffusion: fills drawn per image, "
                        "the one nearest the others kept")
    parser.add_argument("--families", default="diffusion,vae,gan")
    parser.add_argument("--seeds", type=int, default=3, help="inpainting repeats with different noise")
    args = parser.parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    data = load_data("mnist")
    classifier = DomainClassifierExtractor("mnist")
    order = np.random.default_rng(0).permutation(len(data.x_heldout))[: args.n]
    originals = data.x_heldout[order]
    labels = data.y_heldout[order].numpy()
    pixels = originals.permute(0, 2, 3, 1).numpy()
    x = data.normalizer.to_model(originals)
    mask = make_mask("center", len(x), 28, 28)
    hidden = mask[:, 0, :, :, None].numpy()
    background = np.where(hidden, np.uint8(0), pixels)
    payload: dict = {"n": args.n, "mask": "center 14x14", "threads": torch.get_num_threads(),
                     "accuracy_originals": recovery(classifier, pixels, labels),
                     "accuracy_centre_blanked": recovery(classifier, background, labels), "families": {}}
    print(f"lenet-mnist on {args.n} held-out digits: {payload['accuracy_originals']:.3f} on originals, "
          f"{payload['accuracy_centre_blanked']:.3f} with the centre blanked")
    for name in args.families.split(","):
        iterative = bool(family_class(name).samplers)  # diffusion, flow, latent diffusion: 6 minutes
        minutes = 6 if iterative else 3
        steps = args.steps_diffusion if iterative else args.steps_others
        info = ensure_run(runs / name, name, minutes, steps)
        run = load_run(runs / name, "cpu")
        family = run.family
        denoiser = isinstance(family, Denoiser)
        info.update(run=str(runs / name), budget=run.config.get("budget"), step=run.step,
                    method=inpainting_method(family))
        options = {"steps": args.repaint_steps, "resample": args.resample, "candidates": args.candidates,
                   "reconstruction_guidance": args.reconstruction_guidance} if denoiser else {}
        per_seed, identical, identical_model, seconds = [], True, True, 0.0
        for seed in range(args.seeds):
            started = time.perf_counter()
            filled = inpaint(family, x, mask, sampling_generator(seed), **options)
            seconds += time.perf_counter() - started
            identical_model &= bool(torch.equal(filled[~mask.expand_as(x)], x[~mask.expand_as(x)]))
            out = np.where(hidden, to_pixels(filled), pixels)
            identical &= bool(np.array_equal(out[~hidden], pixels[~hidden]))
            per_seed.append(recovery(classifier, out, labels))
        info["inpaint_seconds_per_image"] = seconds / (args.seeds * len(x))
        info["known_pixels_identical_model_space"] = identical_model
        info["known_pixels_identical"] = identical
        info["label_recovery"] = float(np.mean(per_seed))
        info["label_recovery_per_seed"] = per_seed
        info["inpainting_options"] = options
        pairs = min(8, args.n // 2)
        path = interpolate(family, sampling_generator(0), images=x[: 2 * pairs].view(pairs, 2, 1, 28, 28), steps=8)
        figure = smoothness(to_pixels(path.images.flatten(0, 1)).reshape(pairs, 8, 28, 28, 1), classifier)
        info.update(interpolation=path.method, smoothness=figure.smoothness, path_ratio=figure.path_ratio)
        if denoiser:
            sample = x[: min(32, args.n)]
            reconstruction = ddim_sample(family, ddim_invert(family, sample, 50), 50)
            error = (reconstruction - sample).abs() * 127.5
            info.update(inversion_error_mean_levels=float(error.mean()), inversion_error_max_levels=float(error.max()))
            count = min(64, args.n)
            low_pixels = to_pixels(downsample(x[:count]))
            low = torch.from_numpy(low_pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
            started = time.perf_counter()
            high = upscale(family, low, sampling_generator(0))
            info["upscale_seconds_per_image"] = (time.perf_counter() - started) / count
            high_pixels = to_consistent_pixels(high, low_pixels)
            high_model = torch.from_numpy(high_pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
            info.update(upscale_psnr=psnr(high_model, x[:count]), bicubic_psnr=psnr(bicubic_upsample(low), x[:count]),
                        upscale_consistency_max_levels=consistency_error(high_pixels, low_pixels),
                        upscale_label_recovery=recovery(classifier, high_pixels, labels[:count]))
        payload["families"][name] = info
        print(f"{name:>9} (step {run.step}, {info['trained']}): label recovery {info['label_recovery']:.3f} "
              f"(seeds: {', '.join(f'{v:.3f}' for v in per_seed)}), "
              f"known pixels identical {info['known_pixels_identical']}, "
              f"{info['inpaint_seconds_per_image']:.3f} s/image ({info['method']}); smoothness "
              f"{info['smoothness']:.3f}, path ratio {info['path_ratio']:.2f}")
        if denoiser:
            print(f"          DDIM inversion (50 steps): error {info['inversion_error_mean_levels']:.2f} levels mean, "
                  f"{info['inversion_error_max_levels']:.1f} max; upscale x2 PSNR {info['upscale_psnr']:.2f} dB "
                  f"vs bicubic {info['bicubic_psnr']:.2f} dB, consistency {info['upscale_consistency_max_levels']:.3f} "
                  f"levels, label recovery {info['upscale_label_recovery']:.3f}")
    payload["settings"] = {"seeds": args.seeds, "repaint_steps": args.repaint_steps, "resample": args.resample,
                           "reconstruction_guidance": args.reconstruction_guidance}
    print(f"recorded in {record('editing', payload)}")


if __name__ == "__main__":
    main()
