"""Deterministic DDIM sampling and its inversion for any `Denoiser`, on its own level grid.

Both walk the family's `noise_schedule.grid(steps)`, clean = t_0 < t_1 < … < t_S, with
`ddim_step` (`trilemma.families.denoising`) on the family's `denoise`. Sampling goes down from
t_S; inversion runs the η = 0 step upwards, from the image to noise (Song et al. 2021, §4.3;
Dhariwal & Nichol 2021, app. F), so that sampling from the inverted noise gives the image
back up to the discretisation error.
"""

from __future__ import annotations

from itertools import pairwise

import torch

from trilemma.errors import UnsupportedRequest
from trilemma.families.capabilities import Denoiser
from trilemma.families.denoising import Level, ddim_step


def require_denoiser(family: object, task: str) -> Denoiser:
    if not isinstance(family, Denoiser):
        name = getattr(family, "name", type(family).__name__)
        raise UnsupportedRequest(f"the {name} family cannot do {task}: it has no denoiser (diffusion models do)")
    return family


@torch.no_grad()
def ddim_invert(
    family: Denoiser, x0: torch.Tensor, steps: int = 50, labels: torch.Tensor | None = None,
    t_end: Level | None = None, guidance: float = 1.0,
) -> torch.Tensor:
    """The noise x_{t_end} (default: the schedule's end) from which deterministic DDIM sampling
    returns the image x0."""
    family = require_denoiser(family, "DDIM inversion")
    schedule = family.noise_schedule
    x = x0.double()
    for t, s in pairwise(schedule.grid(steps, t_end)):
        x = ddim_step(schedule, family.denoise(x, t, labels, guidance), t, s)
    return x.float()


@torch.no_grad()
def ddim_sample(
    family: Denoiser, x_t: torch.Tensor, steps: int = 50, labels: torch.Tensor | None = None,
    t_start: Level | None = None, guidance: float = 1.0, eta: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The image DDIM reaches from x_t at level t_start (default: the schedule's end) in `steps`
    steps; η = 0 is deterministic. Returns the final x̂0 prediction at the clean level, in
    [−1, 1]."""
    family = require_denoiser(family, "DDIM sampling")
    schedule = family.noise_schedule
    x = x_t.double()
    for t, s in pairwise(reversed(schedule.grid(steps, t_start))):
        x = ddim_step(schedule, family.denoise(x, t, labels, guidance), t, s, eta, generator)
    return family.denoise(x, schedule.clean, labels, guidance).x0.float()
