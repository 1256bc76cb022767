"""Latent-space interpolation paths and how smooth they look.

Each family walks a spherical path (slerp, Shoemake 1985; as used for generative latents by
White 2016) between two end latents, taken from its own latent space:
- an `Encoder` (VAE) between the posterior means of two real images (or two prior draws);
- a `Denoiser` (diffusion) between the deterministic DDIM inversions of two real images (or
  two Gaussian noises) at the end of its noise schedule, each point sampled back with
  deterministic DDIM (Song et al. 2021);
- a `LatentGenerator` (GAN) between two prior draws (or latents fitted to two real images).
The path's first and last latents are exactly the end latents.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trilemma.capabilities._common import check_labels, family_device, family_name
from trilemma.capabilities.inpainting import fit_latents
from trilemma.capabilities.inversion import ddim_invert, ddim_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import randn
from trilemma.families.capabilities import Denoiser, Encoder, LatentGenerator


@dataclass
class InterpolationPath:
    images: torch.Tensor  # (pairs, steps, C, H, W), model space
    latents: torch.Tensor  # (pairs, steps, *latent shape): the path itself
    method: str


def slerp(a: torch.Tensor, b: torch.Tensor, fractions: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) between batches a and b (N, …) at each fraction:
    (F, N, …). Rows that are (nearly) parallel fall back to linear interpolation."""
    flat_a, flat_b = a.flatten(1).double(), b.flatten(1).double()
    cosine = (flat_a * flat_b).sum(1) / (flat_a.norm(dim=1) * flat_b.norm(dim=1)).clamp(min=1e-12)
    omega = cosine.clamp(-1, 1).acos()
    f = fractions.double().to(a.device)[:, None, None]
    sin_omega = omega.sin()[None, :, None]
    spherical = ((1 - f) * omega[None, :, None]).sin() / sin_omega * flat_a + (f * omega[None, :, None]).sin() / sin_omega * flat_b
    linear = (1 - f) * flat_a + f * flat_b
    out = torch.where(sin_omega.abs() < 1e-6, linear, spherical)
    out[0], out[-1] = flat_a, flat_b  # exact end points, whatever the rounding
    return out.to(a.dtype).view(len(fractions), *a.shape)


def interpolate(
    family: Any, generator: torch.Generator, *, images: torch.Tensor | None = None, pairs: int = 4,
    steps: int = 8, labels: torch.Tensor | None = None, inversion_steps: int = 50,
    fit_iterations: int = 200,
) -> InterpolationPath:
    """Paths of `steps` images between end points: real image pairs `images` (pairs, 2, C, H, W)
    in model space, or `pairs` random end latents. `labels` (pairs,) conditions each path."""
    if steps < 2:
        raise UnsupportedRequest(f"an interpolation path needs at least 2 steps, not {steps}")
    if images is not None:
        if images.ndim != 5 or images.shape[1] != 2:
            raise UnsupportedRequest(f"image pairs must have shape (pairs, 2, C, H, W), not {tuple(images.shape)}")
        pairs = len(images)
    labels = check_labels(family, labels, pairs)
    pair_labels = None if labels is None else labels.repeat(2)  # first ends, then last ends
    device = family_device(family)
    ends = None if images is None else torch.cat([images[:, 0], images[:, 1]]).to(device)
    fractions = torch.linspace(0, 1, steps)

    if isinstance(family, Encoder):
        with torch.no_grad():
            if ends is None:
                z = randn((2 * pairs, family.config.latent_dim), generator, device)
            else:
                z, _ = family.encode(ends, pair_labels)
            path = slerp(z[:pairs], z[pairs:], fractions)
            decoded = family.decode(path.flatten(0, 1), _path_labels(labels, steps))
        method = "slerp between posterior means" if ends is not None else "slerp between prior draws"
    elif isinstance(family, Denoiser):
        shape = family.config.data.sample_shape
        if ends is None:
            noise = randn((2 * pairs, *shape), generator, device)
        else:
            noise = ddim_invert(family, ends, inversion_steps, pair_labels)
        path = slerp(noise[:pairs], noise[pairs:], fractions)
        decoded = ddim_sample(family, path.flatten(0, 1), inversion_steps, _path_labels(labels, steps))
        method = "slerp between DDIM-inverted noises" if ends is not None else "slerp between noises, DDIM"
    elif isinstance(family, LatentGenerator):
        latent_dim = family.config.latent_dim
        if ends is None:
            z = randn((2 * pairs, latent_dim), generator, device)
        else:
            known = torch.ones_like(ends[:, :1], dtype=torch.bool)
            z = fit_latents(family, ends, known, generator, pair_labels, iterations=fit_iterations)
        path = slerp(z[:pairs], z[pairs:], fractions)
        with torch.no_grad():
            decoded = family.generate(path.flatten(0, 1), _path_labels(labels, steps))
        method = "slerp between fitted latents" if ends is not None else "slerp between prior draws"
    else:
        raise UnsupportedRequest(f"the {family_name(family)} family has no latent space to interpolate in")
    images_out = decoded.view(steps, pairs, *decoded.shape[1:]).transpose(0, 1).contiguous()
    return InterpolationPath(images_out, path.transpose(0, 1).contiguous(), method)


def _path_labels(labels: torch.Tensor | None, steps: int) -> torch.Tensor | None:
    return None if labels is None else labels.repeat(steps)  # path index is the outer one


@dataclass
class Smoothness:
    """How evenly a path moves in a perceptual feature space.

    With d_i the feature distance between consecutive images of a path (i = 1…S−1):
    `smoothness` = mean_i d_i / max_i d_i, in (0, 1]; higher is smoother: 1 when every step
    changes the image equally, near 0 when one jump does all the change (a path that
    snaps between modes). `path_ratio` = Σ d_i / ‖f_S − f_1‖ ≥ 1; lower is straighter: 1 when
    the path goes straight from one end to the other in feature space. Both are averaged over
    paths; `per_path` keeps each path's smoothness.
    """

    smoothness: float
    path_ratio: float
    features: str
    per_path: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"smoothness": self.smoothness, "path_ratio": self.path_ratio, "features": self.features,
                "per_path": self.per_path}


def smoothness(paths: np.ndarray, extractor: Any | None = None) -> Smoothness:
    """The smoothness of uint8 image paths (pairs, steps, H, W, C) under `extractor`'s features
    (a `trilemma.metrics.FeatureExtractor`, e.g. `DomainClassifierExtractor('mnist')`), or under
    raw pixels (scaled to [0, 1]) when it is None."""
    paths = np.asarray(paths)
    if paths.ndim != 5 or paths.shape[1] < 2:
        raise UnsupportedRequest(f"paths must have shape (pairs, steps ≥ 2, H, W, C), not {paths.shape}")
    pairs, steps = paths.shape[:2]
    flat = paths.reshape(pairs * steps, *paths.shape[2:])
    if extractor is None:
        features, name = flat.reshape(pairs * steps, -1).astype(np.float64) / 255.0, "pixels"
    else:
        features, name = extractor.features(flat), extractor.name
    features = features.reshape(pairs, steps, -1)
    step_sizes = np.linalg.norm(np.diff(features, axis=1), axis=2)  # (pairs, steps - 1)
    direct = np.linalg.norm(features[:, -1] - features[:, 0], axis=1)
    largest = step_sizes.max(1)
    per_path = np.where(largest > 0, step_sizes.mean(1) / np.maximum(largest, 1e-12), 1.0)
    ratio = np.where(direct > 0, step_sizes.sum(1) / np.maximum(direct, 1e-12), 1.0)
    return Smoothness(float(per_path.mean()), float(ratio.mean()), name, [float(v) for v in per_path])


def smoothness_extractor(data_name: str, image_shape: tuple[int, ...]) -> Any | None:
    """The shipped domain classifier for this data (mnist, digits) if it takes these images;
    None (pixels) otherwise."""
    from trilemma.metrics.features import DomainClassifierExtractor, available_domain_classifiers

    if data_name not in available_domain_classifiers():
        return None
    extractor = DomainClassifierExtractor(data_name)
    return extractor if tuple(image_shape) == extractor.image_shape else None
