"""Generative adversarial network (Goodfellow et al. 2014).

Losses: non-saturating (Goodfellow et al. 2014) and hinge (Lim & Ye 2017; Miyato et al. 2018).
Regularisers: spectral norm in D (Miyato et al. 2018), optional R1 (Mescheder et al. 2018),
DiffAugment for small data (Zhao et al. 2020). Samples come from an EMA of G
(Yazıcı et al. 2019), kept by the training loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.distributed import per_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families.augment import POLICIES, diff_augment
from trilemma.families.base import DataShape, Family, FamilyConfig, OptimConfig, SampleOutput, randn
from trilemma.families.capabilities import Knob
from trilemma.families.registry import register
from trilemma.nets.conv import ConvConfig, ConvDecoder, ConvDiscriminator
from trilemma.nets.mlp import LabelledMLP

LOSSES = ("hinge", "non-saturating")


@dataclass
class GANConfig(FamilyConfig):
    loss: str = "hinge"
    latent_dim: int = 64
    base_width: int = 16  # channels at full resolution; sized for ~3 CPU-minutes on mnist
    mlp_width: int = 256
    spectral_norm: bool = True
    r1_gamma: float = 0.0  # weight of the R1 gradient penalty on real data; 0 turns it off
    diffaugment: str = ""  # e.g. "translation,cutout"; images only
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.0, 0.99)
    truncation: float = 1.0  # z is scaled by ψ at sampling time; ψ = 1 is plain sampling


class GAN(Family):
    name: ClassVar[str] = "gan"
    label: ClassVar[str] = "GAN"
    config_class = GANConfig
    colour: ClassVar[str] = "#d62728"
    provenance_label: ClassVar[str] = "generator"
    folklore: ClassVar[dict[str, str]] = {
        "sharp": "GANs give sharp samples.",
        "collapse": "GANs collapse onto a few modes (low diversity).",
        "unstable": "GANs are unstable and hard to train.",
    }
    in_default_comparison: ClassVar[bool] = True
    gpu_settings: ClassVar[dict] = {"base_width": 64, "batch_size": 128}

    def __init__(self, config: GANConfig):
        super().__init__(config)
        data = config.data
        if config.loss not in LOSSES:
            raise UnsupportedRequest(f"unknown GAN loss '{config.loss}' (known: {', '.join(LOSSES)})")
        unknown = [p for p in filter(None, config.diffaugment.split(",")) if p not in POLICIES]
        if unknown:
            raise UnsupportedRequest(f"unknown DiffAugment policy {unknown} (known: {', '.join(POLICIES)})")
        if data.is_image:
            c, h, w = data.sample_shape
            conv = ConvConfig(c, h, w, config.base_width, config.latent_dim, data.num_classes)
            self.generator = ConvDecoder(conv, out_activation=nn.Tanh())
            self.discriminator = ConvDiscriminator(conv, spectral=config.spectral_norm)
        else:
            dim = data.sample_shape[0]
            self.generator = LabelledMLP(config.latent_dim, dim, data.num_classes, width=config.mlp_width)
            self.discriminator = LabelledMLP(
                dim, 1, data.num_classes, width=config.mlp_width, spectral=config.spectral_norm
            )

    @classmethod
    def defaults(cls, data: DataShape) -> GANConfig:
        if data.is_image:
            optim = OptimConfig(batch_size=64, lr=2e-4, ema_max_decay=0.999)
            config = GANConfig(data=data, optim=optim, diffaugment="translation")
        else:
            optim = OptimConfig(batch_size=256, lr=2e-4, ema_max_decay=0.999)
            config = GANConfig(data=data, optim=optim, latent_dim=8)
        return config

    def build_optimizers(self):
        return adversarial_optimizers(self.generator, self.discriminator, self.config)

    def averaged_network(self) -> nn.Module:
        return self.generator

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def critic(self, x: torch.Tensor, labels: torch.Tensor | None, network: nn.Module | None = None,
               augment: bool = True) -> torch.Tensor:
        """Discriminator logits (higher = more real); `network` is the DDP replica in training,
        `augment` applies the training-time DiffAugment (off to score real images)."""
        if augment and self.config.diffaugment and self.config.data.is_image:
            x = diff_augment(x, self.config.diffaugment)
        out = (network or self.discriminator)(x, labels)
        return out.squeeze(-1) if out.dim() > 1 else out

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return self.generator(z, labels)

    def fidelity_knob(self) -> Knob:
        """The truncation trick: ψ < 1 pulls z towards its mean (Brock et al. 2019)."""
        return Knob("truncation", 1.0, "lower", (0.25, 0.5, 0.75, 1.0))

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "hinge":
            return -fake_logits.mean()
        return F.softplus(-fake_logits).mean()

    def training_step(self, x, labels, optimizers):
        n = len(x)
        d_opt, g_opt = optimizers["discriminator"], optimizers["generator"]
        z = per_sample(lambda m: torch.randn(m, self.config.latent_dim, device=x.device), n)
        fake = self.net("generator")(z, labels)
        discriminator = self.net("discriminator")  # DDP-wrapped under torchrun: D's gradients averaged

        # Discriminator step.
        real = x.detach().requires_grad_(self.config.r1_gamma > 0)
        real_logits = self.critic(real, labels, discriminator)
        fake_logits = self.critic(fake.detach(), labels, discriminator)
        d_loss = self.discriminator_loss(real_logits, fake_logits)
        losses = {"d_loss": d_loss.detach()}
        if self.config.r1_gamma > 0:
            r1 = r1_penalty(real_logits, real)
            d_loss = d_loss + 0.5 * self.config.r1_gamma * r1
            losses["r1"] = r1.detach()
        self.optimize(d_loss, d_opt)

        # Generator step, on the same fakes against the updated discriminator. D is called
        # unwrapped: its weight gradients are not needed, so there is nothing for DDP to average.
        self.discriminator.requires_grad_(False)
        g_loss = self.generator_loss(self.critic(fake, labels))
        self.optimize(g_loss, g_opt)
        self.discriminator.requires_grad_(True)
        losses["g_loss"] = g_loss.detach()
        losses["d_real"] = real_logits.mean().detach()
        losses["d_fake"] = fake_logits.mean().detach()
        return losses

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        truncation = options.pop("truncation", None)
        truncation = self.config.truncation if truncation is None else float(truncation)
        self.reject_options(options, self.name)
        if not 0 <= truncation <= 1:
            raise UnsupportedRequest(f"truncation ψ must lie in [0, 1], not {truncation}")
        labels = self.sample_labels(n, generator, labels)
        # Truncation trick: pull z towards the latent mean (0), as w̄ + ψ(w − w̄) with w̄ = 0.
        z = randn((n, self.config.latent_dim), generator, self.device) * truncation
        return SampleOutput(x=self.generate(z, labels), labels=labels, nfe=1)


def adversarial_optimizers(generator: nn.Module, discriminator: nn.Module, config) -> dict:
    """Adam for G at the optimiser's learning rate and for D at `lr_discriminator`, both with the
    config's `betas`: the two optimisers of a GAN (and of the denoising-diffusion GAN)."""
    betas = tuple(config.betas)
    return {
        "generator": torch.optim.Adam(generator.parameters(), lr=config.optim.lr, betas=betas),
        "discriminator": torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, betas=betas),
    }


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): E ||∇_x D(x)||² on real data (`real` must require grad);
    differentiable, for D's loss with weight γ/2."""
    (gradient,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return gradient.square().flatten(1).sum(1).mean()


register(GAN)
