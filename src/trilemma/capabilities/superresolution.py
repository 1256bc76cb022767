"""×2 super-resolution with an unconditional diffusion model trained at the high resolution,
without training: ILVR (Choi et al. 2021). At each reverse step the low-frequency part of the
sample is replaced by that of the reference noised to the same level,
x ← x − φ(x) + φ(y_s), φ = up ∘ down, y_s = α_s up(y) + σ_s ε,
with down = 2×2 average pooling and up = nearest neighbour, so that down(up(y)) = y. A final
Euclidean projection onto {down(x) = y} ∩ [−1, 1] makes down(output) = y up to float rounding,
and `to_consistent_pixels` rounds to uint8 so that each 2×2 block's mean equals the
low-resolution pixel exactly.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from trilemma.capabilities._common import batches
from trilemma.capabilities.inversion import require_denoiser
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import randn
from trilemma.families.denoising import ddim_step

FACTOR = 2


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2×2 average pooling."""
    return F.avg_pool2d(x, FACTOR)


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour ×2, the right inverse of `downsample`."""
    return F.interpolate(x, scale_factor=FACTOR, mode="nearest")


def bicubic_upsample(x: torch.Tensor) -> torch.Tensor:
    """The training-free baseline: bicubic ×2, clamped to [−1, 1]."""
    return F.interpolate(x, scale_factor=FACTOR, mode="bicubic", align_corners=False).clamp(-1, 1)


def project(x: torch.Tensor, low: torch.Tensor, iterations: int = 60) -> torch.Tensor:
    """The closest image to x (Euclidean) in [−1, 1] whose 2×2 means equal `low`: per block it
    is clamp(x + λ, −1, 1), with the shift λ that gives the block the right mean found by
    bisection (the mean is monotone in λ; the KKT conditions of the projection give this form)."""
    x, low = x.double(), low.double()
    below = torch.full_like(low, -4.0)
    above = torch.full_like(low, 4.0)
    for _ in range(iterations):
        middle = (below + above) / 2
        too_low = downsample((x + upsample(middle)).clamp(-1, 1)) < low
        below = torch.where(too_low, middle, below)
        above = torch.where(too_low, above, middle)
    return (x + upsample((below + above) / 2)).clamp(-1, 1)


@torch.no_grad()
def upscale(
    family: Any, low: torch.Tensor, generator: torch.Generator, *, steps: int = 100, eta: float = 1.0,
    batch_size: int = 256,
) -> torch.Tensor:
    """Images twice the size of `low` (model space NCHW) whose 2×2 means equal `low`; a
    conditional model runs with its "no label" token. `eta` = 1 is ancestral sampling, as in ILVR."""
    family = require_denoiser(family, "super-resolution")
    shape = tuple(family.config.data.sample_shape)
    expected = (shape[0], shape[1] // FACTOR, shape[2] // FACTOR)
    if tuple(low.shape[1:]) != expected or shape[1] % FACTOR or shape[2] % FACTOR:
        raise UnsupportedRequest(f"low-resolution images must be {expected[1]}x{expected[2]} with {expected[0]} "
                                 f"channel(s) (half the run's {shape[1]}x{shape[2]}), not {tuple(low.shape[1:])}")
    schedule = family.noise_schedule
    out = []
    for part in batches(len(low), batch_size):
        reference = upsample(low[part]).double()
        x = randn((len(reference), *shape), generator, low.device).double()
        for t, s in pairwise(reversed(schedule.grid(steps))):
            x = ddim_step(schedule, family.denoise(x, t), t, s, eta, generator)
            noised = schedule.add_noise(reference, randn(x.shape, generator, low.device), s)
            x = x - upsample(downsample(x)) + upsample(downsample(noised))
        x0_hat = family.denoise(x, schedule.clean).x0
        out.append(project(x0_hat, low[part].double()).float())
    return torch.cat(out)


def to_consistent_pixels(high: torch.Tensor, low_pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC of model-space `high` whose 2×2 block means equal the uint8 `low_pixels`
    (N, h, w, C) exactly: each block is floored, then the pixels with the largest remainders get
    +1 until the block sums to 4 × the low pixel (possible whenever high's block mean matches)."""
    values = ((high.detach().double().cpu().clamp(-1, 1) + 1) * 127.5).permute(0, 2, 3, 1).numpy()
    n, h, w, c = values.shape
    blocks = values.reshape(n, h // 2, 2, w // 2, 2, c).transpose(0, 1, 3, 5, 2, 4).reshape(n, h // 2, w // 2, c, 4)
    floors = np.floor(blocks)
    remainder = blocks - floors
    missing = low_pixels.astype(np.int64)[..., None] * 4 - floors.sum(-1, keepdims=True).astype(np.int64)
    rank = np.argsort(np.argsort(-remainder, axis=-1), axis=-1)  # 0 = largest remainder
    rounded = floors + (rank < missing)
    rounded = np.clip(rounded, 0, 255).astype(np.uint8)
    return rounded.reshape(n, h // 2, w // 2, c, 2, 2).transpose(0, 1, 4, 2, 5, 3).reshape(n, h, w, c)


def consistency_error(high_pixels: np.ndarray, low_pixels: np.ndarray) -> float:
    """Max |mean of each 2×2 block of the uint8 output − the uint8 input pixel|, in pixel levels."""
    high = torch.from_numpy(high_pixels).permute(0, 3, 1, 2).double()
    low = torch.from_numpy(low_pixels).permute(0, 3, 1, 2).double()
    return float((downsample(high) - low).abs().max())


def psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of model-space images, peak-to-peak 2 ([−1, 1])."""
    mse = (x.double() - reference.double()).square().flatten(1).mean(1).clamp(min=1e-12)
    return float((10 * torch.log10(4.0 / mse)).mean())
