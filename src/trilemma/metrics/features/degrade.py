"""The two faults the folklore gives generated images, applied to real ones: Gaussian blur and
additive Gaussian noise. The sanity ladders degrade held-out images with them, and the trained
feature network learns to tell clean images from degraded ones."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """float NCHW images blurred by a Gaussian of `sigma` pixels: a separable kernel of radius
    ⌈3σ⌉, edges mirrored (repeated when an image is narrower than the radius)."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=x.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    mode = "reflect" if radius < min(x.shape[2], x.shape[3]) else "replicate"
    x = F.pad(x, (radius,) * 4, mode=mode)
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def blur_uint8(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """uint8 NCHW images blurred by `gaussian_blur`, rounded back to uint8."""
    return gaussian_blur(images.float(), sigma).round().clamp(0, 255).to(torch.uint8)


def noise_uint8(images: torch.Tensor, level: float, seed: int) -> torch.Tensor:
    """uint8 images plus Gaussian noise of `level` grey levels (seeded), rounded and clipped."""
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator) * level
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def degrade(x: torch.Tensor, generator: torch.Generator, chunks: int = 4) -> torch.Tensor:
    """Model-space images in [-1, 1], each chunk of the batch blurred (σ from 0.3 to 2.5 pixels)
    or noised (2 to 40 grey levels), chosen at random per chunk. Strengths are log-uniform, so
    that faint faults, the hard ones to see, are drawn as often as strong ones."""
    out = []
    for part in x.chunk(chunks):
        u = torch.rand(2, generator=generator).tolist()
        if u[0] < 0.5:
            out.append(gaussian_blur(part, 0.3 * (2.5 / 0.3) ** u[1]))
        else:
            level = 2 * 20 ** u[1] / 127.5
            noise = torch.randn(part.shape, generator=generator).to(part.device)
            out.append((part + level * noise).clamp(-1, 1))
    return torch.cat(out)
