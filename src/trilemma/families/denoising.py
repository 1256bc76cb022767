"""The denoiser interface of the iterative families, in the shape of EDM (Karras et al. 2022).

A family that denoises offers two things (the `Denoiser` protocol in `capabilities.py`):

- a `NoiseSchedule`: the forward process x_t = α_t x0 + σ_t ε, ε ~ N(0, I), at levels t running
  from `clean` (the data, or the level nearest it) to `end` (pure noise, or nearly), and the
  inverses a sampler or an editor needs: a grid of levels, the level a share of the way along,
  the level of a given noise-to-signal ratio σ/α;
- ``denoise(x_t, t, labels, guidance)``: the predicted clean sample x̂0 and the noise
  ε̂ = (x_t − α_t x̂0) / σ_t that goes with it (EDM's preconditioned denoiser D(x; σ), §5).

DDIM steps, inversion, RePaint, SDEdit, ILVR and the denoising-error anomaly score are written
once on these two (`ddim_step` below and `trilemma.capabilities`) and read nothing else of a
family. Diffusion's schedule is the discrete variance-preserving one of its diffusers scheduler
(`VariancePreservingSchedule`); a continuous schedule such as flow matching's α_t = 1 − t,
σ_t = t on t ∈ [0, 1] (Lipman et al. 2023) is another subclass with the same five methods.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch

from trilemma.errors import UnsupportedRequest
from trilemma.families.base import randn

Level = int | float  # a discrete timestep index, or a point of a continuous schedule


@dataclass
class Denoised:
    """A denoiser's answer at x_t: x̂0 and ε̂ (float64, x_t = α_t x̂0 + σ_t ε̂) and the
    network evaluations they cost (2 with classifier-free guidance, else 1)."""

    x0: torch.Tensor
    eps: torch.Tensor
    nfe: int

    def clipped(self, x_t: torch.Tensor, alpha: float, sigma: float) -> Denoised:
        """x̂0 clamped to the image range [−1, 1], with ε̂ recomputed so that the pair still
        explains x_t: what diffusers' samplers do with ``clip_sample`` and
        ``use_clipped_model_output``."""
        x0 = self.x0.clamp(-1, 1)
        return Denoised(x0, (x_t.double() - alpha * x0) / sigma, self.nfe)


class NoiseSchedule(ABC):
    """x_t = α_t x0 + σ_t ε at levels from `clean` to `end`, ascending in noise."""

    clean: Level
    end: Level

    @abstractmethod
    def alpha(self, t: Level) -> float:
        """The signal scale α_t."""

    @abstractmethod
    def sigma(self, t: Level) -> float:
        """The noise scale σ_t."""

    @abstractmethod
    def grid(self, steps: int, end: Level | None = None) -> list[Level]:
        """At most `steps` + 1 levels ascending from `clean` to `end` (default the schedule's
        own), without repeats: the levels a `steps`-step sampler visits."""

    @abstractmethod
    def level_at(self, fraction: float) -> Level:
        """The level a share `fraction` ∈ (0, 1] of the way from `clean` to `end`; never
        `clean` itself, so that there is always some noise to remove."""

    @abstractmethod
    def level_for_ratio(self, ratio: float) -> Level:
        """The level whose noise-to-signal ratio σ_t / α_t is nearest `ratio`: an image plus
        Gaussian noise of std `ratio`, times α_t, is distributed as x_t there."""

    def fraction(self, t: Level) -> float:
        """How far level t lies from `clean` towards `end`, in [0, 1]."""
        return (t - self.clean) / (self.end - self.clean)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: Level) -> torch.Tensor:
        """x_t = α_t x0 + σ_t ε, in float64."""
        return self.alpha(t) * x0.double() + self.sigma(t) * noise.double()

    def transition(self, s: Level, t: Level) -> tuple[float, float]:
        """q(x_t | x_s) for s below t as (α_t|s, σ_t|s): x_t = α_t|s x_s + σ_t|s z, with
        α_t|s = α_t / α_s and σ²_t|s = σ_t² − α²_t|s σ_s² (Kingma et al. 2021, "Variational
        diffusion models", §3.1): how RePaint noises a sample back up."""
        scale = self.alpha(t) / self.alpha(s)
        return scale, math.sqrt(max(0.0, self.sigma(t) ** 2 - scale**2 * self.sigma(s) ** 2))


class VariancePreservingSchedule(NoiseSchedule):
    """The discrete variance-preserving process of DDPM (Ho et al. 2020): α_t = √ᾱ_t,
    σ_t = √(1 − ᾱ_t) at t = 0 … T − 1, with ᾱ (``alphas_cumprod``) taken from a diffusers
    scheduler and kept in float64 for the maths."""

    def __init__(self, alphas_cumprod: torch.Tensor):
        self.alphas_cumprod = alphas_cumprod.detach().to("cpu", torch.float64)
        self.clean, self.end = 0, len(self.alphas_cumprod) - 1

    @classmethod
    def from_scheduler(cls, scheduler: Any) -> VariancePreservingSchedule:
        return cls(scheduler.alphas_cumprod)

    def alpha(self, t: Level) -> float:
        return math.sqrt(float(self.alphas_cumprod[int(t)]))

    def sigma(self, t: Level) -> float:
        return math.sqrt(1 - float(self.alphas_cumprod[int(t)]))

    def grid(self, steps: int, end: Level | None = None) -> list[int]:
        """[0, t_1, …, t_S = end] with t_k = round(k (end + 1) / S) − 1: diffusers' "trailing"
        spacing, which reaches the last timestep (Lin et al. 2024, "Common diffusion noise
        schedules and sample steps are flawed")."""
        if steps < 1:
            raise UnsupportedRequest(f"steps must be at least 1, not {steps}")
        end = self.end if end is None else int(end)
        levels = [0] + [round(k * (end + 1) / steps) - 1 for k in range(1, steps + 1)]
        return sorted({max(0, t) for t in levels})

    def level_at(self, fraction: float) -> int:
        return min(self.end, max(1, round(fraction * self.end)))

    def level_for_ratio(self, ratio: float) -> int:
        a = self.alphas_cumprod
        return int((((1 - a) / a).sqrt() - ratio).abs().argmin())


class LinearPathSchedule(NoiseSchedule):
    """The straight path of flow matching and rectified flow (Lipman et al. 2023; Liu et al.
    2023): x_t = (1 − t) x0 + t ε on continuous t ∈ [0, 1], α_t = 1 − t, σ_t = t. On it a DDIM
    step with η = 0 is exactly an Euler step of the flow's ODE dx/dt = ε̂ − x̂0."""

    clean: float = 0.0
    end: float = 1.0
    smallest: float = 1e-3  # the least noise `level_at` hands out, so there is always some

    def alpha(self, t: Level) -> float:
        return 1.0 - float(t)

    def sigma(self, t: Level) -> float:
        return float(t)

    def grid(self, steps: int, end: Level | None = None) -> list[float]:
        """[0, end/S, 2 end/S, …, end]: evenly spaced in t."""
        if steps < 1:
            raise UnsupportedRequest(f"steps must be at least 1, not {steps}")
        end = self.end if end is None else float(end)
        return [end * k / steps for k in range(steps + 1)]

    def level_at(self, fraction: float) -> float:
        return min(self.end, max(self.smallest, float(fraction)))

    def level_for_ratio(self, ratio: float) -> float:
        """σ/α = t/(1 − t) = r at t = r/(1 + r)."""
        return max(0.0, float(ratio)) / (1.0 + max(0.0, float(ratio)))


def ddim_step(
    schedule: NoiseSchedule, denoised: Denoised, t: Level, s: Level, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """x_s from the denoiser's answer at level t, by DDIM (Song, Meng & Ermon 2021, eq. 12):
    x_s = α_s x̂0 + √(σ_s² − σ_η²) ε̂ + σ_η z, where σ_η is η times the std of the DDPM
    posterior q(x_s | x_t, x0), σ_s / σ_t · σ_t|s. η = 0 is the deterministic sampler (an ODE
    discretisation), η = 1 the ancestral one. s may lie above t: with η = 0 that is DDIM
    inversion (Song et al. 2021, §4.3; Dhariwal & Nichol 2021, app. F). For the
    variance-preserving schedule this is ``diffusers.DDIMScheduler.step`` (the tests check).
    Returns float64."""
    alpha_s, sigma_s = schedule.alpha(s), schedule.sigma(s)
    noise_std = 0.0
    if eta > 0 and s < t:
        _, transition_std = schedule.transition(s, t)
        noise_std = eta * sigma_s / schedule.sigma(t) * transition_std
    x_s = alpha_s * denoised.x0 + math.sqrt(max(0.0, sigma_s**2 - noise_std**2)) * denoised.eps
    if eta > 0:
        if generator is None:
            raise ValueError("a stochastic step (eta > 0) needs a generator")
        x_s = x_s + noise_std * randn(denoised.x0.shape, generator, denoised.x0.device).double()
    return x_s
