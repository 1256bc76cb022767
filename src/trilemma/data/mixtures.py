"""The 2-D Gaussian mixtures of the mode-collapse protocol (VEEGAN, Srivastava et al. 2017;
as implemented by PacGAN, Lin et al. 2018)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Mixture:
    name: str
    centres: np.ndarray  # (modes, 2)
    sigma: float

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n points, each from a uniformly chosen mode with isotropic noise sigma."""
        modes = rng.integers(0, len(self.centres), size=n)
        noise = rng.normal(0.0, self.sigma, size=(n, 2))
        return (self.centres[modes] + noise).astype(np.float32)


def ring8() -> Mixture:
    """8 Gaussians evenly spaced on the unit circle, sigma 0.01."""
    angles = 2 * math.pi * np.arange(8) / 8
    centres = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Mixture("ring8", centres, 0.01)


def grid25() -> Mixture:
    """25 Gaussians at {-4,-2,0,2,4}^2, sigma 0.05."""
    axis = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    centres = np.array([(a, b) for a in axis for b in axis])
    return Mixture("grid25", centres, 0.05)


MIXTURES = {"ring8": ring8, "grid25": grid25}
