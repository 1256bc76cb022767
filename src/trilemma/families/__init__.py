"""The three families behind one protocol (`Family` in base.py)."""

from __future__ import annotations

from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, Family, FamilyConfig, OptimConfig, SampleOutput
from trilemma.families.diffusion import Diffusion, DiffusionConfig
from trilemma.families.gan import GAN, GANConfig
from trilemma.families.vae import VAE, VAEConfig

FAMILIES: dict[str, type[Family]] = {"vae": VAE, "gan": GAN, "diffusion": Diffusion}

__all__ = [
    "FAMILIES",
    "GAN",
    "VAE",
    "DataShape",
    "Diffusion",
    "DiffusionConfig",
    "Family",
    "FamilyConfig",
    "GANConfig",
    "OptimConfig",
    "SampleOutput",
    "VAEConfig",
    "build_family",
    "family_class",
]


def family_class(name: str) -> type[Family]:
    try:
        return FAMILIES[name]
    except KeyError:
        raise UnsupportedRequest(f"unknown family '{name}' (known: {', '.join(FAMILIES)})") from None


def build_family(name: str, data: DataShape, **overrides) -> Family:
    """A family with its defaults for this data, changed by any overrides (config field names)."""
    cls = family_class(name)
    return cls(cls.default_config(data, **overrides))
