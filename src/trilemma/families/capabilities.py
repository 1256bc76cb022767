"""What only some families can do, declared as structural protocols.

Tasks such as inpainting, interpolation or anomaly scoring ask a family whether it implements one
of these (``isinstance(family, Denoiser)``) and pick their method from the answer; nothing tests a
family's name. A family gains a capability by having the methods, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Encoder(Protocol):
    """Maps data to a latent posterior and back: q(z|x) and the mean of p(x|z) (the VAE)."""

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), in model space."""
        ...

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ...


@runtime_checkable
class LatentGenerator(Protocol):
    """Maps a standard-normal latent to data in one deterministic pass (the GAN's generator)."""

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        ...


@runtime_checkable
class Critic(Protocol):
    """Scores how real a sample looks: higher is more real (the GAN's discriminator).
    ``augment=False`` scores the images as given, without the training-time augmentation."""

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None, augment: bool = True) -> torch.Tensor:
        ...


@runtime_checkable
class Denoiser(Protocol):
    """A noise-conditional network over a fixed forward process (diffusion): ``forward_process``
    is a diffusers scheduler holding alphas_cumprod, ``model_output`` the (guided) prediction
    at timestep t, ``make_scheduler`` a fresh sampler of diffusers."""

    forward_process: Any

    def model_output(
        self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, guidance: float
    ) -> tuple[torch.Tensor, int]:
        ...

    def make_scheduler(self, sampler: str) -> Any:
        ...


@dataclass(frozen=True)
class Knob:
    """A sampling option that trades diversity for fidelity, and where it is neutral.

    ``name`` is the option `sample()` takes (``truncation``, ``temperature``, ``guidance``);
    at ``neutral`` the knob does nothing (ψ = 1, T = 1, w = 1: the model's own distribution),
    though a family's default setting may sit elsewhere (diffusion guides at w = 2); moving towards ``sharper`` ("lower" or "higher") should
    raise fidelity (precision) and lower diversity (recall). ``sweep`` are sensible values to
    try, the neutral one included."""

    name: str
    neutral: float
    sharper: str
    sweep: tuple[float, ...]


@runtime_checkable
class FidelityKnob(Protocol):
    """A family with a fidelity/diversity knob: the truncation trick (Brock et al. 2019) for a
    GAN, the prior temperature for a VAE, classifier-free guidance for conditional diffusion.
    ``fidelity_knob()`` is None when this model has none (unconditional diffusion)."""

    def fidelity_knob(self) -> Knob | None:
        ...
