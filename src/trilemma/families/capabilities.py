"""What only some families can do, declared as structural protocols.

Tasks such as inpainting, interpolation or anomaly scoring ask a family whether it implements one
of these (``isinstance(family, Denoiser)``) and pick their method from the answer; nothing tests a
family's name. A family gains a capability by having the methods, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import torch

if TYPE_CHECKING:
    from trilemma.families.denoising import Denoised, Level, NoiseSchedule


@runtime_checkable
class Encoder(Protocol):
    """Maps data to a latent posterior and back: q(z|x) and the mean of p(x|z) (the VAE)."""

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z|x), in model space."""
        ...

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ...


@runtime_checkable
class Likelihood(Encoder, Protocol):
    """An `Encoder` whose decoder defines a normalised p(x|z) under a standard normal prior, so
    that log p(x) has an importance-weighted bound (Burda et al. 2016; `metrics.likelihood`):
    ``decoder(z, labels)`` gives the likelihood's parameters and ``reconstruction_nll(x,
    decoded, grey_levels=False)`` −log p(x|z) per sample, in nats; an image model's
    `grey_levels` reads it as a probability of the 256 grey levels (the VAE)."""

    def decoder(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        ...

    def reconstruction_nll(self, x: torch.Tensor, decoded: torch.Tensor, grey_levels: bool = False) -> torch.Tensor:
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
    """An iterative family's denoiser, in the shape of EDM's D(x; σ) (Karras et al. 2022):
    ``noise_schedule`` gives α_t and σ_t of x_t = α_t x0 + σ_t ε and their inverses, and
    ``denoise(x_t, t, labels, guidance)`` the predicted clean sample x̂0 and noise ε̂ there
    (`trilemma.families.denoising`). DDIM sampling and inversion, RePaint, SDEdit, denoising,
    ILVR and the denoising-error anomaly score use these two and nothing else, so a family that
    supplies them has all of those. ``labels=None`` asks a conditional model for its
    unconditional prediction; ``guidance`` w is the classifier-free guidance weight (1 = none);
    ``clip`` clamps x̂0 to [−1, 1]."""

    noise_schedule: NoiseSchedule

    def denoise(
        self, x_t: torch.Tensor, t: Level, labels: torch.Tensor | None = None, guidance: float = 1.0,
        clip: bool = True,
    ) -> Denoised:
        ...


@runtime_checkable
class LatentModel(Encoder, Protocol):
    """An `Encoder` whose latents are modelled by a `Denoiser` (latent diffusion):
    ``latent_denoiser`` denoises ``to_prior(z)``, the encoder's latents standardised as that model
    saw them in training. The anomaly score reads both: how well the autoencoder reconstructs an
    image, and how typical its latent is to the latent model."""

    latent_denoiser: Denoiser

    def to_prior(self, z: torch.Tensor) -> torch.Tensor:
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
