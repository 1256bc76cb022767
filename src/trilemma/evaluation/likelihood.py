"""The held-out likelihood of a run, for the families that have one, in units that let them be
set side by side:

- a VAE (`Likelihood`): the IWAE bound (`trilemma.metrics.likelihood`), with images read as
  probabilities of their 256 grey levels;
- pixel-space diffusion: the variational bound of Ho et al. (`trilemma.metrics.diffusion_bound`)
  on uniformly dequantised images.

Both are upper bounds on −log p of the same held-out data in bits per dimension: of [0, 256)
intensities for images (a discrete 8-bit likelihood and a dequantised density have the same
value there), of the data's own coordinates for points. A GAN has no likelihood; flow matching,
the diffusion GAN and latent diffusion are not bounded here.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

IWAE_K = 32  # importance draws per held-out sample in a comparison
VLB_STEPS = 20  # network evaluations per held-out sample of the diffusion bound in a comparison


def heldout_subset(dataset: Any, seed: int, count: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to `count` held-out samples, a seeded random subset (the split is stored in index
    order, often sorted by class), and their index."""
    count = min(count, len(dataset.x_heldout))
    index = np.sort(np.random.default_rng(seed).choice(len(dataset.x_heldout), count, replace=False))
    index = torch.from_numpy(index)
    return dataset.x_heldout[index], index


def bound_kind(family: Any) -> str | None:
    """"iwae", "diffusion" or None: which bound `heldout_likelihood` computes for this family."""
    from trilemma.families.capabilities import Likelihood
    from trilemma.families.diffusion import Diffusion

    if isinstance(family, Likelihood):
        return "iwae"
    if isinstance(family, Diffusion):
        return "diffusion"
    return None


def heldout_likelihood(family: Any, normalizer: Any, dataset: Any, *, seed: int, n: int = 1000,
                       iwae_k: int = IWAE_K, vlb_steps: int = VLB_STEPS,
                       labels: bool = False) -> dict[str, Any] | None:
    """The bound of `bound_kind(family)` on up to `n` held-out samples (None for a family
    without one), with ``method``, ``split`` and ``standard_error_bits_per_dim`` added. A
    conditional VAE given `labels` bounds log p(x | y); the diffusion bound is unconditional
    (a conditional diffusion model is refused by the caller)."""
    from trilemma.metrics.diffusion_bound import diffusion_negative_log_likelihood
    from trilemma.metrics.likelihood import negative_log_likelihood

    kind = bound_kind(family)
    if kind is None:
        return None
    x, index = heldout_subset(dataset, seed, n)
    if kind == "iwae":
        y = dataset.y_heldout[index] if labels and dataset.y_heldout is not None else None
        result = negative_log_likelihood(family, normalizer.to_model(x), k=iwae_k, labels=y, seed=seed,
                                         normalizer=normalizer, grey_levels=True)
        result["method"] = f"IWAE, k = {iwae_k}"
    else:
        result = diffusion_negative_log_likelihood(family, x, normalizer, steps=vlb_steps, seed=seed)
        result["method"] = f"variational bound, {vlb_steps} strata of the levels"
    result["split"] = "heldout"
    result["standard_error_bits_per_dim"] = result["nll_nats_standard_error"] / (result["dims"] * math.log(2))
    return result
