"""Multi-layer perceptrons for low-dimensional data (the 2-D mixtures)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from trilemma.nets.embeddings import ConditionEmbedding


def mlp(d_in: int, d_out: int, width: int = 256, depth: int = 3, spectral: bool = False) -> nn.Sequential:
    """depth hidden layers of SiLU units (LeakyReLU under spectral norm, as in SNGAN's D)."""
    wrap = spectral_norm if spectral else (lambda m: m)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [wrap(nn.Linear(d_in if i == 0 else width, width))]
        layers += [nn.LeakyReLU(0.2) if spectral else nn.SiLU()]
    layers.append(wrap(nn.Linear(width if depth else d_in, d_out)))
    return nn.Sequential(*layers)


class LabelledMLP(nn.Module):
    """An MLP whose input is concatenated with a one-hot label when the model is conditional, and
    optionally first lifted by random Fourier features (`FourierFeatures`)."""

    def __init__(self, d_in: int, d_out: int, num_classes: int = 0, fourier_features: int = 0,
                 fourier_scale: float = 1.0, **kwargs):
        super().__init__()
        self.num_classes = num_classes
        self.fourier = FourierFeatures(d_in, fourier_features, fourier_scale) if fourier_features else None
        width_in = self.fourier.out_dim if self.fourier is not None else d_in
        self.net = mlp(width_in + num_classes, d_out, **kwargs)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.fourier is not None:
            x = self.fourier(x)
        if self.num_classes:
            onehot = torch.zeros(len(x), self.num_classes, device=x.device)
            if labels is not None:
                onehot[torch.arange(len(x)), labels] = 1.0
            x = torch.cat([x, onehot], dim=1)
        return self.net(x)


class FourierFeatures(nn.Module):
    """x -> [x, sin(2π Bx), cos(2π Bx)] with a fixed Gaussian B (Tancik et al. 2020): lets an
    MLP fit the sharp, many-moded functions a low-dimensional denoiser needs in far fewer steps."""

    def __init__(self, dim: int, features: int, scale: float, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("frequencies", torch.randn(dim, features, generator=generator) * scale)
        self.out_dim = dim + 2 * features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = 2 * torch.pi * x @ self.frequencies
        return torch.cat([x, angles.sin(), angles.cos()], dim=1)


class ResidualMLPDenoiser(nn.Module):
    """Denoiser for points: residual MLP blocks conditioned on the time-step embedding."""

    def __init__(self, dim: int, width: int = 256, blocks: int = 3, num_classes: int = 0,
                 fourier_features: int = 0, fourier_scale: float = 1.0, latent_dim: int = 0):
        super().__init__()
        self.embed = ConditionEmbedding(width, num_classes, latent_dim=latent_dim)
        self.fourier = FourierFeatures(dim, fourier_features, fourier_scale) if fourier_features else nn.Identity()
        self.inp = nn.Linear(self.fourier.out_dim if fourier_features else dim, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
            for _ in range(blocks)
        )
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.embed(t, labels, z)
        h = self.inp(self.fourier(x))
        for block in self.blocks:
            h = h + block(h + embedding)
        return self.out(h)
