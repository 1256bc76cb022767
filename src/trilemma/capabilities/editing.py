"""Image-to-image and denoising.

- `img2img` (SDEdit, Meng et al. 2022): noise the image with the forward process to the level
  a share `strength` of the way to pure noise, then run the reverse process from there; low
  strength keeps the image's layout, high strength keeps little. A `Denoiser` does this; an
  `Encoder` (VAE) answers with its reconstruction decode(E[z|x]), the counterpart that ignores
  strength.
- `denoise`: an image with Gaussian pixel noise of std σ (in [0, 1] pixel units, so 2σ in
  model units) is, scaled by α_t, a sample of x_t at the level where σ_t / α_t = 2σ
  (Kadkhodaie & Simoncelli 2021; the SDEdit view of Meng et al. 2022); the reverse process
  runs from that level. An `Encoder` again answers with its reconstruction.
"""

from __future__ import annotations

from typing import Any

import torch

from trilemma.capabilities._common import batches, check_labels, family_name
from trilemma.capabilities.inversion import ddim_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import randn
from trilemma.families.capabilities import Denoiser, Encoder


def editing_method(family: object, task: str) -> str:
    """'sdedit' for a Denoiser, 'reconstruction' for an Encoder; refuses anything else."""
    if isinstance(family, Denoiser):
        return "sdedit"
    if isinstance(family, Encoder):
        return "reconstruction"
    raise UnsupportedRequest(f"the {family_name(family)} family cannot do {task}: it has no denoiser "
                             "or encoder (diffusion models and VAEs do)")


@torch.no_grad()
def reconstruct(family: Encoder, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """decode(posterior mean of x): the VAE's counterpart of img2img and denoising."""
    mean, _ = family.encode(x, labels)
    return family.decode(mean, labels)


@torch.no_grad()
def img2img(
    family: Any, x: torch.Tensor, strength: float, generator: torch.Generator,
    labels: torch.Tensor | None = None, *, steps: int = 50, eta: float = 0.0, guidance: float = 1.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """SDEdit: forward-noise x to the level `strength` of the way along the schedule (for
    diffusion t = strength · (T − 1)), then `round(steps · strength)` reverse DDIM steps (η = 0
    deterministic after the noising; η = 1 ancestral)."""
    if not 0 < strength <= 1:
        raise UnsupportedRequest(f"strength must lie in (0, 1], not {strength}")
    labels = check_labels(family, labels, len(x))
    if editing_method(family, "image-to-image") == "reconstruction":
        return reconstruct(family, x, labels)
    schedule = family.noise_schedule
    t_start = schedule.level_at(strength)
    out = []
    for part in batches(len(x), batch_size):
        x_t = schedule.add_noise(x[part], randn(x[part].shape, generator, x.device), t_start).float()
        out.append(ddim_sample(family, x_t, max(1, round(steps * strength)),
                               None if labels is None else labels[part], t_start, guidance, eta, generator))
    return torch.cat(out)


@torch.no_grad()
def denoise(
    family: Any, x_noisy: torch.Tensor, sigma: float, generator: torch.Generator,
    labels: torch.Tensor | None = None, *, steps: int = 50, guidance: float = 1.0, batch_size: int = 256,
) -> torch.Tensor:
    """Remove Gaussian noise of std `sigma` (pixel units, images in [0, 1]) from x_noisy
    (model space): DDIM from the matching level, steps scaled by that level's share of the
    schedule."""
    if not sigma > 0:
        raise UnsupportedRequest(f"sigma must be positive, not {sigma}")
    labels = check_labels(family, labels, len(x_noisy))
    if editing_method(family, "denoising") == "reconstruction":
        return reconstruct(family, x_noisy, labels)
    schedule = family.noise_schedule
    t = schedule.level_for_ratio(2.0 * sigma)
    if t == schedule.clean:
        return x_noisy.clone()
    out = []
    for part in batches(len(x_noisy), batch_size):
        x_t = (schedule.alpha(t) * x_noisy[part].double()).float()
        out.append(ddim_sample(family, x_t, max(1, round(steps * schedule.fraction(t))),
                               None if labels is None else labels[part], t, guidance))
    return torch.cat(out)
