"""The families behind one protocol (`Family` in base.py), listed by one registry (registry.py).

Importing this package registers the built-in families, in the order every listing shows them:
the classic trilemma, VAE, GAN and diffusion, then the hybrids, then TabDDPM (tables only).
"""

from __future__ import annotations

from trilemma.families.base import DataShape, Family, FamilyConfig, OptimConfig, SampleOutput
from trilemma.families.registry import (
    default_comparison,
    family_class,
    family_names,
    hybrid_families,
    register,
    registered,
    unregister,
)

# Each module registers its family when imported; this order is the order of every listing.
# isort: off
from trilemma.families.vae import VAE, VAEConfig
from trilemma.families.gan import GAN, GANConfig
from trilemma.families.diffusion import Diffusion, DiffusionConfig
from trilemma.families.flow import Flow, FlowConfig
from trilemma.families.ddgan import DDGAN, DDGANConfig
from trilemma.families.latent_diffusion import LatentDiffusion, LatentDiffusionConfig
from trilemma.families.tabddpm import TabDDPM, TabDDPMConfig
# isort: on

__all__ = [
    "DDGAN",
    "GAN",
    "VAE",
    "DDGANConfig",
    "DataShape",
    "Diffusion",
    "DiffusionConfig",
    "Family",
    "FamilyConfig",
    "Flow",
    "FlowConfig",
    "GANConfig",
    "LatentDiffusion",
    "LatentDiffusionConfig",
    "OptimConfig",
    "SampleOutput",
    "TabDDPM",
    "TabDDPMConfig",
    "VAEConfig",
    "build_family",
    "default_comparison",
    "family_class",
    "family_names",
    "hybrid_families",
    "register",
    "registered",
    "unregister",
]


def build_family(name: str, data: DataShape, **overrides) -> Family:
    """A family with its defaults for this data, changed by any overrides (config field names)."""
    cls = family_class(name)
    return cls(cls.default_config(data, **overrides))
