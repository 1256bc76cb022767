"""Convolutional encoders, decoders, generators and discriminators for small images.

Every image net works at full, 1/2 and 1/4 resolution, so image sides must be multiples of 4
(the data layer guarantees it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class ConvConfig:
    channels: int = 1
    height: int = 28
    width: int = 28
    base_width: int = 32  # channels at full resolution; doubled at each halving
    latent_dim: int = 16
    num_classes: int = 0


def _down_stack(c_in: int, width: int, wrap=lambda m: m, norm: bool = True) -> nn.Sequential:
    def block(a: int, b: int, stride: int) -> list[nn.Module]:
        layers = [wrap(nn.Conv2d(a, b, 4 if stride == 2 else 3, stride, 1))]
        if norm:
            layers.append(nn.GroupNorm(min(8, b), b))
        layers.append(nn.LeakyReLU(0.2) if not norm else nn.SiLU())
        return layers

    return nn.Sequential(
        *block(c_in, width, 1),
        *block(width, 2 * width, 2),
        *block(2 * width, 4 * width, 2),
    )


class ConvEncoder(nn.Module):
    """Image to the mean and log-variance of a diagonal Gaussian q(z|x)."""

    def __init__(self, config: ConvConfig):
        super().__init__()
        w = config.base_width
        self.features = _down_stack(config.channels, w)
        flat = 4 * w * (config.height // 4) * (config.width // 4)
        self.label_embedding = nn.Embedding(config.num_classes, flat) if config.num_classes else None
        self.head = nn.Linear(flat, 2 * config.latent_dim)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None):
        h = self.features(x).flatten(1)
        if self.label_embedding is not None and labels is not None:
            h = h + self.label_embedding(labels)
        mean, log_variance = self.head(h).chunk(2, dim=1)
        return mean, log_variance


class ConvDecoder(nn.Module):
    """Latent vector to an image-shaped tensor (logits or pixel values, as the family uses it).

    Also the GAN generator: same shape of computation, latent in, image out.
    """

    def __init__(self, config: ConvConfig, out_activation: nn.Module | None = None):
        super().__init__()
        w = config.base_width
        self.h4, self.w4 = config.height // 4, config.width // 4
        self.width = 4 * w
        self.label_embedding = (
            nn.Embedding(config.num_classes, config.latent_dim) if config.num_classes else None
        )
        self.project = nn.Linear(config.latent_dim, 4 * w * self.h4 * self.w4)
        self.body = nn.Sequential(
            nn.GroupNorm(8, 4 * w), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(4 * w, 2 * w, 3, padding=1),
            nn.GroupNorm(8, 2 * w), nn.SiLU(),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * w, w, 3, padding=1),
            nn.GroupNorm(min(8, w), w), nn.SiLU(),
            nn.Conv2d(w, config.channels, 3, padding=1),
        )
        self.out_activation = out_activation or nn.Identity()

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_embedding is not None and labels is not None:
            z = z + self.label_embedding(labels)
        h = self.project(z).view(-1, self.width, self.h4, self.w4)
        return self.out_activation(self.body(h))


class ConvDiscriminator(nn.Module):
    """Image to one realness logit, spectrally normalised (Miyato et al. 2018).

    Class-conditional through a projection term <embed(y), features> (Miyato & Koyama 2018).
    """

    def __init__(self, config: ConvConfig, spectral: bool = True):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        w = config.base_width
        self.features = _down_stack(config.channels, w, wrap=wrap, norm=False)
        flat = 4 * w * (config.height // 4) * (config.width // 4)
        self.head = wrap(nn.Linear(flat, 1))
        self.projection = (
            wrap(nn.Embedding(config.num_classes, flat)) if config.num_classes else None
        )

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).flatten(1)
        out = self.head(h).squeeze(1)
        if self.projection is not None and labels is not None:
            out = out + (self.projection(labels) * h).sum(dim=1)
        return out

