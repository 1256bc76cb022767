"""The DINOv2 vision transformer (Oquab et al. 2023), in the layout of the checkpoints torch.hub
keeps (``dinov2_vits14_pretrain.pth``, ``dinov2_vitb14_pretrain.pth``), so that those weights
load key for key. Only the forward pass that gives the normalised class token is built: the
features dgm-eval computes FD, PRDC and the other figures in (Stein et al. 2023).

The network: 14×14 patches embedded by a strided convolution; a class token; learnt positions
for a 37×37 grid (518-pixel images), bicubically resized to other grids with the 0.1 offset of
the reference code; blocks of pre-norm attention and a GELU MLP, each branch scaled by a learnt
per-channel factor (LayerScale); LayerNorm (eps 1e-6) at the end. The variants with register
tokens are not supported.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.errors import DataError

PATCH = 14
VARIANTS = {384: ("vits14", 12, 6), 768: ("vitb14", 12, 12)}  # embed dim -> name, depth, heads


class _Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q kᵀ / sqrt(head dim)) v
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class _Mlp(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Scale(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = _Attention(dim, heads)
        self.ls1 = _Scale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _Mlp(dim)
        self.ls2 = _Scale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class _PatchEmbed(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, PATCH, stride=PATCH)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class DinoV2(nn.Module):
    """`forward(x)`: the normalised class token of float RGB images (ImageNet-normalised)."""

    def __init__(self, dim: int = 384, depth: int = 12, heads: int = 6, grid: int = 37):
        super().__init__()
        self.patch_embed = _PatchEmbed(dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # in the checkpoints; unused here
        self.blocks = nn.ModuleList(_Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def _positions(self, rows: int, cols: int) -> torch.Tensor:
        grid = int(math.sqrt(self.pos_embed.shape[1] - 1))
        if (rows, cols) == (grid, grid):
            return self.pos_embed
        patches = self.pos_embed[:, 1:].float().reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        # The reference code scales by (n + 0.1) / grid, so that rounding lands on n exactly.
        patches = F.interpolate(patches, scale_factor=((rows + 0.1) / grid, (cols + 0.1) / grid), mode="bicubic")
        patches = patches.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat([self.pos_embed[:, :1], patches.to(self.pos_embed.dtype)], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, cols = x.shape[2] // PATCH, x.shape[3] // PATCH
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(len(x), -1, -1), tokens], dim=1)
        tokens = tokens + self._positions(rows, cols)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)[:, 0]


def load_dinov2(path: Path, state: dict[str, torch.Tensor]) -> tuple[DinoV2, str]:
    """A `DinoV2` in eval mode holding `state` (read from `path`), and its variant's name; the
    one-line error naming the file when the keys or shapes are not a supported checkpoint's."""
    if any(key.startswith("register_tokens") for key in state):
        raise DataError(f"{path}: DINOv2 with register tokens is not supported; use dinov2_vits14 or dinov2_vitb14")
    dim = int(state["cls_token"].shape[-1])
    if dim not in VARIANTS:
        raise DataError(f"{path}: DINOv2 of width {dim} is not supported (ViT-S/14: 384, ViT-B/14: 768)")
    name, depth, heads = VARIANTS[dim]
    grid = int(math.sqrt(state["pos_embed"].shape[1] - 1))
    model = DinoV2(dim, depth, heads, grid)
    expected = model.state_dict()
    given = {k: v for k, v in state.items() if k != "mask_token"}
    missing = sorted(set(expected) - set(given) - {"mask_token"})
    unexpected = sorted(set(given) - set(expected))
    wrong = sorted(k for k in set(given) & set(expected) if given[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        problem = (f"missing: {', '.join(missing[:3])}" if missing else
                   f"unexpected: {', '.join(unexpected[:3])}" if unexpected else f"wrong shape: {', '.join(wrong[:3])}")
        raise DataError(f"{path}: not a DINOv2 {name} checkpoint ({problem})")
    model.load_state_dict({**expected, **{k: v.to(torch.float32) for k, v in given.items()}})
    return model.eval(), f"dinov2-{name}"
