"""The network settings, the network and the guided output that every family built on a denoising
network shares (diffusion, flow matching, the denoising-diffusion GAN's generator): a U-Net for
images, a residual MLP for points, and classifier-free guidance (Ho & Salimans 2022) around either.

A family's config subclasses `DenoiserNetConfig` (or `GuidedConfig`, with guidance); its defaults start from
`default_network_settings`, which holds what was measured for these networks on this project's
CPU (the comments say where), so that families compared against each other get the same network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from trilemma.distributed import per_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, FamilyConfig, OptimConfig
from trilemma.families.capabilities import Knob
from trilemma.nets.mlp import ResidualMLPDenoiser
from trilemma.nets.unet import UNet, UNetConfig


@dataclass
class DenoiserNetConfig(FamilyConfig):
    # U-Net widths per resolution level. On pixels, on the 2-core CPU (3 minutes, mnist), 16/32/64
    # trained at ~490 images/s against ~220 for 32/64/64 and reached recognisable digits sooner.
    # Images with even sides >= 16 default to 2x2 blocks and 32/64/128 instead (see below).
    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_level: int = 1
    attention_heads: int = 0  # self-attention heads after the U-Net's middle block (0 = none)
    patch: int = 1  # U-Net on patch x patch blocks folded into channels (1 = on pixels)
    mlp_width: int = 256
    mlp_blocks: int = 3
    fourier_features: int = 0  # points: random Fourier features of x_t (0 = raw coordinates)
    fourier_scale: float = 1.0


@dataclass
class GuidedConfig(DenoiserNetConfig):
    """The network settings and classifier-free guidance (Ho & Salimans 2022)."""

    label_dropout: float = 0.1  # conditional models: drop labels to learn p(x) for guidance
    # Classifier-free guidance weight of conditional models (1 = no guidance). Measured with
    # diffusion on mnist (conditional, 300 samples, lenet agreement with the requested class):
    # after 1,500 steps w = 1 gave 0.91 and w = 2 0.997; after 331 steps 0.44 at w = 1, 0.70 at 2.
    guidance: float = 2.0


def default_network_settings(data: DataShape) -> tuple[OptimConfig, dict]:
    """The optimiser and network settings measured for a denoising network on this data."""
    if data.is_image:
        # Batch 64 beat 128 at equal compute on mnist (FD-lenet 94 vs 115 after ~180 CPU-s).
        optim = OptimConfig(batch_size=64, lr=2e-3, warmup_steps=100, decay="cosine", grad_clip=1.0)
        settings: dict = {}
        if all(side >= 16 and side % 2 == 0 for side in data.sample_shape[1:]):
            # On 2x2 pixel blocks, 32/64/128 wide (1.5 M parameters) trained faster than the
            # 16/32/64 U-Net on pixels (0.44 M): 615 against 485 images/s, and after 6 minutes
            # on mnist FD-lenet 42 against 56, centre inpainting 0.831 against 0.815 (1,000
            # digits, 3 sampling seeds; a second training seed gave 0.822 with one).
            settings = {"patch": 2, "channels": (32, 64, 128)}
        return optim, settings
    # Measured on grid25 at 2,000 steps: raw coordinates reach 40% high-quality samples,
    # Fourier features 98%.
    optim = OptimConfig(batch_size=1024, lr=1e-3, warmup_steps=100, decay="cosine", grad_clip=1.0)
    return optim, {"fourier_features": 64, "fourier_scale": 1.0}


def build_denoiser_network(config: DenoiserNetConfig, latent_dim: int = 0) -> nn.Module:
    """net(x, t, labels) for this data: a U-Net on images, a residual MLP on points. `t` is a
    float time in the range of the family's own clock; label `num_classes` means "no label".
    With `latent_dim` > 0 it is net(x, t, labels, z), z modulating every block."""
    data = config.data
    if data.is_image:
        check_unet_settings(config)
        return UNet(UNetConfig(
            in_channels=data.sample_shape[0],
            channels=tuple(config.channels),
            blocks_per_level=config.blocks_per_level,
            attention_heads=config.attention_heads,
            patch=config.patch,
            num_classes=data.num_classes,
            latent_dim=latent_dim,
        ))
    return ResidualMLPDenoiser(
        data.sample_shape[0], config.mlp_width, config.mlp_blocks, data.num_classes,
        config.fourier_features, config.fourier_scale, latent_dim,
    )


def guided_output(
    network: nn.Module, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, guidance: float,
    num_classes: int,
) -> tuple[torch.Tensor, int]:
    """The network's output at (x, t), with classifier-free guidance for labelled requests:
    uncond + w (cond − uncond), w = 1 the plain conditional model; and the evaluations it cost."""
    t_batch = t.expand(len(x)).to(x.device)
    if labels is None or guidance == 1.0:
        return network(x, t_batch, labels), 1
    null = torch.full_like(labels, num_classes)
    both = network(torch.cat([x, x]), torch.cat([t_batch, t_batch]), torch.cat([labels, null]))
    conditional, unconditional = both.chunk(2)
    return unconditional + guidance * (conditional - unconditional), 2


def guidance_knob(conditional: bool) -> Knob | None:
    """Classifier-free guidance weight w (w = 1: the plain conditional model); none without labels."""
    if not conditional:
        return None
    return Knob("guidance", 1.0, "higher", (0.0, 1.0, 2.0, 3.0, 5.0))


def drop_labels(labels: torch.Tensor | None, config: GuidedConfig) -> torch.Tensor | None:
    """Labels with a share `label_dropout` replaced by the "no label" token, so that one network
    also learns p(x) and can be guided."""
    if labels is None or config.label_dropout <= 0:
        return labels
    drop = per_sample(lambda m: torch.rand(m, device=labels.device), len(labels)) < config.label_dropout
    return torch.where(drop, torch.full_like(labels, config.data.num_classes), labels)


def check_unet_settings(config: DenoiserNetConfig) -> None:
    """The U-Net settings that would otherwise fail deep inside torch, refused in one line."""
    sides = config.data.sample_shape[1:]
    if not config.channels or any(width < 1 or width % 8 for width in config.channels):
        raise UnsupportedRequest(f"setting 'channels' needs one or more widths that are multiples of 8 "
                                 f"(group normalisation), not {list(config.channels)}")
    if config.patch < 1 or any(side % config.patch for side in sides):
        raise UnsupportedRequest(f"setting 'patch' must divide the image size {sides[0]}x{sides[1]}, "
                                 f"not {config.patch}")
    if config.attention_heads < 0 or (config.attention_heads and config.channels[-1] % config.attention_heads):
        raise UnsupportedRequest(f"setting 'attention_heads' must divide the last width {config.channels[-1]}, "
                                 f"not {config.attention_heads}")
