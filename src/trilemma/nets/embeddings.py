"""Embeddings of the diffusion time step, of class labels and of a latent vector."""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style sin/cos features of a (possibly fractional) time step (Vaswani et al. 2017)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class ConditionEmbedding(nn.Module):
    """Time step (and optionally class label) to one vector that conditions every block.

    Label index ``num_classes`` is the learned "no label" token used for classifier-free
    guidance (Ho & Salimans 2022). With ``latent_dim`` > 0 a latent vector z (a denoising-diffusion
    GAN's noise input) is projected and added too, so that it modulates every block.
    """

    def __init__(self, dim: int, num_classes: int = 0, frequency_dim: int = 64, latent_dim: int = 0):
        super().__init__()
        self.latent = nn.Sequential(nn.Linear(latent_dim, dim), nn.SiLU(), nn.Linear(dim, dim)) if latent_dim else None
        self.frequency_dim = frequency_dim
        self.time_mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label_embedding = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.time_mlp(sinusoidal_embedding(t, self.frequency_dim))
        if self.latent is not None:
            if z is None:
                raise ValueError("this network takes a latent vector z")
            embedding = embedding + self.latent(z)
        if self.label_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.label_embedding.num_embeddings - 1, dtype=torch.long)
            embedding = embedding + self.label_embedding(labels)
        return embedding
