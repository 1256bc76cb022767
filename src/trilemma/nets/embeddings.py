"""Embeddings of the diffusion time step and of class labels."""

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
    guidance (Ho & Salimans 2022).
    """

    def __init__(self, dim: int, num_classes: int = 0, frequency_dim: int = 64):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.time_mlp = nn.Sequential(nn.Linear(frequency_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label_embedding = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.time_mlp(sinusoidal_embedding(t, self.frequency_dim))
        if self.label_embedding is not None:
            if labels is None:
                labels = torch.full_like(t, self.label_embedding.num_embeddings - 1, dtype=torch.long)
            embedding = embedding + self.label_embedding(labels)
        return embedding
