"""What only some families can do, declared as structural protocols.

Tasks such as inpainting, interpolation or anomaly scoring ask a family whether it implements one
of these (``isinstance(family, Denoiser)``) and pick their method from the answer; nothing tests a
family's name. A family gains a capability by having the methods, nothing else.
"""

from __future__ import annotations

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
    """Scores how real a sample looks: higher is more real (the GAN's discriminator)."""

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
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
