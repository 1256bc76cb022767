"""A small U-Net denoiser for images (Ronneberger et al. 2015; as used by Ho et al. 2020), with
optional self-attention at the lowest resolution only (7x7 for 28x28 images on pixels with three
levels, 4x4 on 2x2 blocks), where it is cheap and where the whole image is in view."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.nets.embeddings import ConditionEmbedding


@dataclass
class UNetConfig:
    in_channels: int = 1
    channels: tuple[int, ...] = (32, 64, 64)  # one level per entry; resolution halves between
    blocks_per_level: int = 1
    embedding_dim: int = 128
    latent_dim: int = 0  # > 0: forward also takes a latent vector z (see ConditionEmbedding)
    num_classes: int = 0
    groups: int = 8
    attention_heads: int = 0  # self-attention heads in the middle block (0 = none)
    patch: int = 1  # > 1: work on patch x patch pixel blocks folded into channels (space-to-depth)


class ResidualBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, with the condition added as a per-channel scale and shift."""

    def __init__(self, c_in: int, c_out: int, embedding_dim: int, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.condition = nn.Linear(embedding_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.condition(F.silu(embedding))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return h + self.skip(x)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a feature map, added residually; the output
    projection starts at zero so that the block starts as the identity."""

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.heads = heads  # must divide channels (the diffusion family checks its settings)
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.project = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        attended = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.project(attended.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """Maps (x_t, t[, label]) to a tensor of x_t's shape (ε or v, as the family trains it)."""

    def __init__(self, config: UNetConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.embed = ConditionEmbedding(config.embedding_dim, config.num_classes, latent_dim=config.latent_dim)
        folded = config.in_channels * config.patch**2
        self.stem = nn.Conv2d(folded, c[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_channels = []
        for level, width in enumerate(c):
            blocks = nn.ModuleList()
            c_in = c[max(level - 1, 0)]
            for _ in range(config.blocks_per_level):
                blocks.append(ResidualBlock(c_in, width, config.embedding_dim, config.groups))
                c_in = width
            self.down_blocks.append(blocks)
            skip_channels.append(width)
            last = level == len(c) - 1
            self.downsamples.append(nn.Identity() if last else nn.Conv2d(width, width, 3, 2, 1))
        self.middle = ResidualBlock(c[-1], c[-1], config.embedding_dim, config.groups)
        self.attention = (SelfAttention(c[-1], config.attention_heads, config.groups)
                          if config.attention_heads else nn.Identity())
        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        c_in = c[-1]
        for level in reversed(range(len(c))):
            blocks = nn.ModuleList()
            for i in range(config.blocks_per_level):
                extra = skip_channels[level] if i == 0 else 0
                blocks.append(ResidualBlock(c_in + extra, c[level], config.embedding_dim, config.groups))
                c_in = c[level]
            self.up_blocks.append(blocks)
            self.upsamples.append(nn.Identity() if level == 0 else nn.Conv2d(c_in, c[level - 1], 3, padding=1))
            c_in = c[level] if level == 0 else c[level - 1]
        self.out_norm = nn.GroupNorm(min(config.groups, c[0]), c[0])
        self.out = nn.Conv2d(c[0], folded, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None = None,
                z: torch.Tensor | None = None) -> torch.Tensor:
        embedding = self.embed(t, labels, z)
        if self.config.patch > 1:
            x = F.pixel_unshuffle(x, self.config.patch)
        h = self.stem(x)
        skips = []
        for blocks, downsample in zip(self.down_blocks, self.downsamples):
            for block in blocks:
                h = block(h, embedding)
            skips.append(h)
            h = downsample(h)
        h = self.attention(self.middle(h, embedding))
        for blocks, upsample in zip(self.up_blocks, self.upsamples):
            skip = skips.pop()
            h = blocks[0](torch.cat([h, skip], dim=1), embedding)
            for block in blocks[1:]:
                h = block(h, embedding)
            if not isinstance(upsample, nn.Identity):  # to the next skip's size (7 -> 4 -> 7 rounds)
                h = upsample(F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest"))
        out = self.out(F.silu(self.out_norm(h)))
        return F.pixel_shuffle(out, self.config.patch) if self.config.patch > 1 else out
