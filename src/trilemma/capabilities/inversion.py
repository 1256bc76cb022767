"""Deterministic DDIM sampling and its inversion for any `Denoiser`, on a respaced schedule.

DDIM (Song, Meng & Ermon 2021, eq. 12): from x_t with prediction (x̂0, ε̂),
x_s = √ᾱ_s x̂0 + √(1 − ᾱ_s − σ²) ε̂ + σ z, with σ = η √((1 − ᾱ_s)/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_s);
η = 0 is the deterministic sampler (an ODE discretisation), η = 1 the DDPM posterior
(Ho et al. 2020). Inversion runs the η = 0 update upwards, from the image to noise
(Song et al. 2021, §4.3; Dhariwal & Nichol 2021, app. F), so that sampling from the
inverted noise gives the image back up to the discretisation error.

The level grid: t_0 = 0 (the clean image stands at the first level) < t_1 < … < t_S, with
t_k = round(k (t_end + 1) / S) − 1 ("trailing" spacing, which reaches t_end = T − 1).
"""

from __future__ import annotations

from itertools import pairwise

import torch

from trilemma.errors import UnsupportedRequest
from trilemma.families.base import randn
from trilemma.families.capabilities import Denoiser


def require_denoiser(family: object, task: str) -> Denoiser:
    if not isinstance(family, Denoiser):
        name = getattr(family, "name", type(family).__name__)
        raise UnsupportedRequest(f"the {name} family cannot do {task}: it has no denoiser (diffusion models do)")
    return family


def num_train_timesteps(family: Denoiser) -> int:
    return int(family.forward_process.config.num_train_timesteps)


def alphas_cumprod(family: Denoiser, device: torch.device) -> torch.Tensor:
    """ᾱ_t of the forward process, float64 for the maths."""
    return family.forward_process.alphas_cumprod.to(device=device, dtype=torch.float64)


def level_grid(steps: int, t_end: int) -> list[int]:
    """[0, t_1, …, t_S = t_end] ascending, without repeats (see the module docstring)."""
    if steps < 1:
        raise UnsupportedRequest(f"steps must be at least 1, not {steps}")
    levels = [0] + [round(k * (t_end + 1) / steps) - 1 for k in range(1, steps + 1)]
    return sorted({max(0, t) for t in levels})


def predict(
    family: Denoiser, x: torch.Tensor, t: int, labels: torch.Tensor | None = None,
    guidance: float = 1.0, clip: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x̂0, ε̂) at level t from the network's output, whatever it predicts.

    With x_t = √ᾱ x0 + √(1−ᾱ) ε and v = √ᾱ ε − √(1−ᾱ) x0 (Salimans & Ho 2022):
    x0 = √ᾱ x_t − √(1−ᾱ) v and ε = √(1−ᾱ) x_t + √ᾱ v. With `clip`, x̂0 is clamped to the
    image range [−1, 1] and ε̂ recomputed from it, so the pair stays consistent with x_t.
    """
    a = alphas_cumprod(family, x.device)[t]
    t_tensor = torch.tensor([t], device=x.device)
    output, _ = family.model_output(x, t_tensor, labels, guidance)
    output = output.double()
    x_t = x.double()
    if family.forward_process.config.prediction_type == "v_prediction":
        x0 = a.sqrt() * x_t - (1 - a).sqrt() * output
        eps = (1 - a).sqrt() * x_t + a.sqrt() * output
    elif family.forward_process.config.prediction_type == "epsilon":
        eps = output
        x0 = (x_t - (1 - a).sqrt() * eps) / a.sqrt()
    else:
        raise UnsupportedRequest(f"prediction type {family.forward_process.config.prediction_type} is not supported")
    if clip:
        x0 = x0.clamp(-1, 1)
        eps = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
    return x0, eps


def ddim_update(
    x0: torch.Tensor, eps: torch.Tensor, a_t: torch.Tensor, a_s: torch.Tensor, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_s from the prediction at level t (DDIM eq. 12); s may lie above t (inversion, η = 0)."""
    sigma = torch.zeros((), dtype=torch.float64, device=x0.device)
    if eta > 0 and a_s > a_t:
        sigma = eta * ((1 - a_s) / (1 - a_t)).sqrt() * (1 - a_t / a_s).sqrt()
    x_s = a_s.sqrt() * x0 + (1 - a_s - sigma**2).clamp(min=0).sqrt() * eps
    if eta > 0:
        if generator is None:
            raise ValueError("a stochastic step (eta > 0) needs a generator")
        x_s = x_s + sigma * randn(x0.shape, generator, x0.device).double()
    return x_s


@torch.no_grad()
def ddim_invert(
    family: Denoiser, x0: torch.Tensor, steps: int = 50, labels: torch.Tensor | None = None,
    t_end: int | None = None, guidance: float = 1.0,
) -> torch.Tensor:
    """The noise x_{t_end} from which deterministic DDIM sampling returns the image x0."""
    family = require_denoiser(family, "DDIM inversion")
    t_end = num_train_timesteps(family) - 1 if t_end is None else t_end
    a = alphas_cumprod(family, x0.device)
    levels = level_grid(steps, t_end)
    x = x0.double()
    for t, s in pairwise(levels):
        x0_hat, eps = predict(family, x.float(), t, labels, guidance)
        x = ddim_update(x0_hat, eps, a[t], a[s])
    return x.float()


@torch.no_grad()
def ddim_sample(
    family: Denoiser, x_t: torch.Tensor, steps: int = 50, labels: torch.Tensor | None = None,
    t_start: int | None = None, guidance: float = 1.0, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The image DDIM reaches from x_t at level t_start (default T − 1) in `steps` steps;
    η = 0 is deterministic. Returns the final x̂0 prediction at level 0, in [−1, 1]."""
    family = require_denoiser(family, "DDIM sampling")
    t_start = num_train_timesteps(family) - 1 if t_start is None else t_start
    a = alphas_cumprod(family, x_t.device)
    levels = level_grid(steps, t_start)
    x = x_t.double()
    for t, s in pairwise(reversed(levels)):
        x0_hat, eps = predict(family, x.float(), t, labels, guidance)
        x = ddim_update(x0_hat, eps, a[t], a[s], eta, generator)
    x0_hat, _ = predict(family, x.float(), 0, labels, guidance)
    return x0_hat.float()


def noise_level_timestep(family: Denoiser, sigma_model: float) -> int:
    """The level t whose noise-to-signal ratio √((1 − ᾱ_t)/ᾱ_t) is closest to sigma_model: an
    image plus Gaussian noise of that std, times √ᾱ_t, is distributed as x_t."""
    a = alphas_cumprod(family, torch.device("cpu"))
    ratio = ((1 - a) / a).sqrt()
    return int((ratio - sigma_model).abs().argmin())
