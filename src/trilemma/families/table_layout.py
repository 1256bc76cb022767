"""The segments of a table's encoded row, and the output heads that respect them.

A table's row (`trilemma.tables.codec`) is a run of segments, recorded in `DataShape.layout` as
``(kind, width)`` pairs:

- ``gaussian`` (width 1): a number's normal score, real-valued;
- ``binary`` (width 1): a missing-cell flag, +1 missing / −1 present;
- ``categorical`` (width k): a one-hot block, +1 on the category, −1 elsewhere;
- ``mode`` (width k): the one-hot mode of the number before it, under CTGAN's mode-specific
  normalisation. Every head treats it as a categorical block; only CTGAN's conditional vector,
  which conditions on the table's own categories, leaves it out.

Families that know the layout model each segment with its own likelihood or output head (a
softmax per categorical block, as TVAE and CTGAN do) instead of treating ±1 codes as real numbers.
Model space for a table is the codec's own space (`Normalizer.identity`), so these ±1 codes are
exactly what the families see.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F

from trilemma.errors import UnsupportedRequest

SEGMENT_KINDS = ("gaussian", "binary", "categorical", "mode")

Layout = tuple[tuple[str, int], ...]


def segments(layout: Layout) -> Iterator[tuple[str, slice]]:
    """(kind, coordinates) for each segment, in order."""
    start = 0
    for kind, width in layout:
        if kind not in SEGMENT_KINDS:
            raise UnsupportedRequest(f"unknown table segment '{kind}' (known: {', '.join(SEGMENT_KINDS)})")
        yield kind, slice(start, start + width)
        start += width


def width(layout: Layout) -> int:
    return sum(w for _, w in layout)


def gaussian_mask(layout: Layout, device: torch.device | None = None) -> torch.Tensor:
    """True on the real-valued coordinates."""
    mask = torch.zeros(width(layout), dtype=torch.bool, device=device)
    for kind, where in segments(layout):
        mask[where] = kind == "gaussian"
    return mask


def reconstruction_nll(out: torch.Tensor, x: torch.Tensor, layout: Layout, log_scale: torch.Tensor) -> torch.Tensor:
    """−log p(x | out) per row, in nats: a Gaussian of mean `out` and scale exp(`log_scale`) on
    each real coordinate, a Bernoulli of logit `out` on each flag, a categorical of logits `out`
    on each one-hot block (TVAE's decoder likelihood). `log_scale` is per coordinate; only its
    real coordinates are read."""
    nll = torch.zeros(len(x), device=x.device, dtype=out.dtype)
    for kind, where in segments(layout):
        o, t = out[:, where], x[:, where]
        if kind == "gaussian":
            s = log_scale[..., where].expand_as(o)
            nll = nll + (0.5 * ((t - o) / s.exp()).square() + s + 0.5 * math.log(2 * math.pi)).sum(1)
        elif kind == "binary":
            nll = nll + F.binary_cross_entropy_with_logits(o, (t > 0).to(o.dtype), reduction="none").sum(1)
        else:
            nll = nll + F.cross_entropy(o, t.argmax(1), reduction="none")
    return nll


def sample_rows(out: torch.Tensor, layout: Layout, log_scale: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A draw from p(x | out) (the distribution `reconstruction_nll` scores), as encoded rows."""
    rows = torch.empty_like(out)
    for kind, where in segments(layout):
        o = out[:, where]
        if kind == "gaussian":
            noise = torch.randn(o.shape, generator=generator, device=generator.device).to(o.device)
            rows[:, where] = o + noise * log_scale[..., where].exp()
        elif kind == "binary":
            u = torch.rand(o.shape, generator=generator, device=generator.device).to(o.device)
            rows[:, where] = torch.where(u < torch.sigmoid(o), 1.0, -1.0)
        else:
            probs = torch.softmax(o.float(), dim=1)
            if generator.device != probs.device:
                probs = probs.to(generator.device)
            chosen = torch.multinomial(probs, 1, generator=generator).to(o.device)
            rows[:, where] = one_hot_codes(chosen.squeeze(1), o.shape[1], o.dtype)
    return rows


def relaxed_rows(out: torch.Tensor, layout: Layout, temperature: float = 0.2) -> torch.Tensor:
    """A generator's raw output made into rows a discriminator compares with real ones, and
    differentiable: real coordinates as they are, each one-hot block a Gumbel-softmax draw at
    `temperature` (CTGAN's generator head), each flag its two-way form (a binary concrete draw).
    Codes are on the ±1 scale of the real rows."""
    parts = []
    for kind, where in segments(layout):
        o = out[:, where]
        if kind == "gaussian":
            parts.append(o)
        elif kind == "binary":
            u = torch.rand_like(o).clamp(1e-6, 1 - 1e-6)
            parts.append(torch.tanh((o + torch.log(u) - torch.log1p(-u)) / (2 * temperature)))
        else:
            parts.append(2 * F.gumbel_softmax(o, tau=temperature, hard=False, dim=1) - 1)
    return torch.cat(parts, dim=1)


def hard_rows(x: torch.Tensor, layout: Layout) -> torch.Tensor:
    """Rows with every flag and one-hot block snapped to exact ±1 codes (largest wins)."""
    rows = x.clone()
    for kind, where in segments(layout):
        if kind == "binary":
            rows[:, where] = torch.where(x[:, where] > 0, 1.0, -1.0)
        elif kind in ("categorical", "mode"):
            rows[:, where] = one_hot_codes(x[:, where].argmax(1), where.stop - where.start, x.dtype)
    return rows


def one_hot_codes(index: torch.Tensor, count: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """±1 one-hot rows: +1 at `index`, −1 elsewhere."""
    return 2 * F.one_hot(index, count).to(dtype) - 1
