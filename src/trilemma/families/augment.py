"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to every image the
discriminator sees, real and generated, so a GAN can train on little data."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from trilemma.distributed import per_sample


def translate(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ratio * size pixels, filling with the background (-1)."""
    n, _, h, w = x.shape
    shift_h, shift_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = per_sample(lambda m: torch.randint(-shift_h, shift_h + 1, (m,), device=x.device), n)
    dx = per_sample(lambda m: torch.randint(-shift_w, shift_w + 1, (m,), device=x.device), n)
    padded = F.pad(x + 1, (shift_w, shift_w, shift_h, shift_h)) - 1
    rows = (torch.arange(h, device=x.device)[None, :] + shift_h - dy[:, None]).clamp(0, h + 2 * shift_h - 1)
    cols = (torch.arange(w, device=x.device)[None, :] + shift_w - dx[:, None]).clamp(0, w + 2 * shift_w - 1)
    index = torch.arange(n, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[index, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Blank one random square of side ratio * size per image."""
    n, _, h, w = x.shape
    size_h, size_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = per_sample(lambda m: torch.randint(0, h + (1 - size_h % 2), (m, 1, 1), device=x.device), n)
    cx = per_sample(lambda m: torch.randint(0, w + (1 - size_w % 2), (m, 1, 1), device=x.device), n)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = ((ys - cy + size_h // 2).clamp(min=0) < size_h) & (ys - cy + size_h // 2 >= 0)
    inside = inside & ((xs - cx + size_w // 2) >= 0) & ((xs - cx + size_w // 2) < size_w)
    return torch.where(inside[:, None], torch.full_like(x, -1.0), x)


def brightness_contrast(x: torch.Tensor) -> torch.Tensor:
    n = len(x)
    x = x + (per_sample(lambda m: torch.rand(m, 1, 1, 1, device=x.device), n) - 0.5) * 0.5
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (per_sample(lambda m: torch.rand(m, 1, 1, 1, device=x.device), n) + 0.5) + mean


POLICIES = {"translation": translate, "cutout": cutout, "color": brightness_contrast}


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Apply the comma-separated policy, e.g. "translation,cutout"; "" leaves x as it is."""
    for name in filter(None, policy.split(",")):
        x = POLICIES[name](x)
    return x
