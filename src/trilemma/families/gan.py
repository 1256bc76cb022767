"""Generative adversarial network (Goodfellow et al. 2014).

Losses: non-saturating (Goodfellow et al. 2014), hinge (Lim & Ye 2017; Miyato et al. 2018) and
WGAN-GP (Gulrajani et al. 2017). Regularisers: spectral norm in D (Miyato et al. 2018), optional
R1 (Mescheder et al. 2018), DiffAugment for small data (Zhao et al. 2020). Samples come from an
EMA of G (Yazıcı et al. 2019), kept by the training loop.

On a table's rows CTGAN's pieces (Xu et al. 2019) are settings: a Gumbel-softmax head per
categorical block (`table_layout.relaxed_rows`), the conditional vector with training-by-sampling
(`table_conditions`), a PacGAN discriminator that judges `pac` rows at once (Lin et al. 2018),
and WGAN-GP; its mode-specific normalisation is the data's (`--numeric mode-specific`). The table
defaults leave them off, as measured (`defaults`).
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
from trilemma.families.table_conditions import ConditionSampler
from trilemma.families.table_layout import hard_rows, relaxed_rows
from trilemma.nets.conv import ConvConfig, ConvDecoder, ConvDiscriminator
from trilemma.nets.mlp import LabelledMLP

LOSSES = ("hinge", "non-saturating", "wgan-gp")
GP_WEIGHT = 10.0  # λ of WGAN-GP's gradient penalty (Gulrajani et al. 2017)


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
    pac: int = 1  # rows the discriminator judges together (PacGAN); tables only
    gumbel_temperature: float = 0.2  # the categorical heads' Gumbel-softmax temperature (0: raw outputs); tables only
    condition_vector: bool = True  # CTGAN's conditional vector and training-by-sampling; tables only


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
            self.conditions = None
            self.generator = ConvDecoder(conv, out_activation=nn.Tanh())
            self.discriminator = ConvDiscriminator(conv, spectral=config.spectral_norm)
        else:
            dim = data.sample_shape[0]
            if config.pac != 1 and not data.is_table:
                raise UnsupportedRequest(f"pac (rows the discriminator judges together) is for tables; "
                                         f"on {data.kind} it stays 1 (got {config.pac})")
            if config.pac < 1:
                raise UnsupportedRequest(f"pac must be a whole number ≥ 1 (got {config.pac})")
            self.conditions = ConditionSampler(data.layout if config.condition_vector else ()) if data.is_table else None
            cond = self.conditions.width if self.conditions is not None else 0
            self.generator = LabelledMLP(config.latent_dim + cond, dim, data.num_classes, width=config.mlp_width)
            if data.is_table:  # D's input: `pac` rows, each with its conditional vector and class
                self.discriminator = LabelledMLP(config.pac * (dim + cond + data.num_classes), 1,
                                                 width=config.mlp_width, spectral=config.spectral_norm)
            else:
                self.discriminator = LabelledMLP(dim, 1, data.num_classes, width=config.mlp_width,
                                                 spectral=config.spectral_norm)

    @classmethod
    def defaults(cls, data: DataShape) -> GANConfig:
        if data.is_image:
            optim = OptimConfig(batch_size=64, lr=2e-4, ema_max_decay=0.999)
            config = GANConfig(data=data, optim=optim, diffaugment="translation")
        elif data.is_table:
            # CTGAN's pieces are here (WGAN-GP, pac, Gumbel-softmax heads, the conditional vector:
            # `--set loss=wgan-gp --set spectral_norm=false --set pac=10 --set gumbel_temperature=0.2
            # --set condition_vector=true --set latent_dim=128 --set betas=0.5,0.9 --batch-size 500`)
            # but each one lowered the figures at the default 90 s budget, so the default is the
            # points GAN on the encoded rows. Measured on the 6,000-row customers table of
            # benchmarks/bench_tabular_compare.py, one seed (column shapes / pair trends / detection
            # AUC): this default 0.953 / 0.904 / 0.73; + condition vector 0.929 / 0.871 / 0.81;
            # + Gumbel heads 0.910 / 0.825 / 0.89; + pac 10 0.865 / 0.751 / 0.97; WGAN-GP instead
            # of hinge 0.914 / 0.828 / 0.89; all of CTGAN's at once 0.876 / 0.750 / 0.98.
            # CTGAN's mode-specific normalisation is a data option (`--numeric mode-specific`,
            # `trilemma.tables.codec`); 3 seeds: this default 0.952 / 0.908 / 0.731 on the quantile
            # transform against 0.938 / 0.871 / 0.864 on modes, 0.912 / 0.804 / 0.953 with Gumbel
            # heads on them (README, Tables).
            optim = OptimConfig(batch_size=256, lr=2e-4, ema_max_decay=0.999)
            config = GANConfig(data=data, optim=optim, latent_dim=8, gumbel_temperature=0.0,
                               condition_vector=False)
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
               augment: bool = True, condition: torch.Tensor | None = None) -> torch.Tensor:
        """Discriminator logits (higher = more real); `network` is the DDP replica in training,
        `augment` applies the training-time DiffAugment (off to score real images). On a table
        the rows carry their conditional vectors and are judged `pac` at a time: one logit per
        pack, for len(x) // pac packs."""
        if augment and self.config.diffaugment and self.config.data.is_image:
            x = diff_augment(x, self.config.diffaugment)
        if self.config.data.is_table:
            parts = [x, *([condition] if condition is not None else [])]
            if labels is not None:
                parts.append(F.one_hot(labels, self.config.data.num_classes).to(x.dtype))
            packs = len(x) // self.config.pac
            x, labels = torch.cat(parts, dim=1)[:packs * self.config.pac].reshape(packs, -1), None
        out = (network or self.discriminator)(x, labels)
        return out.squeeze(-1) if out.dim() > 1 else out

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None, condition: torch.Tensor | None = None,
                 relaxed: bool = False) -> torch.Tensor:
        """G(z). On a table, from z and the conditional vector (none given: all zeros, asking for
        no category); the raw outputs, which are differentiable (latent optimisation fits them)
        and decode as they are (the largest coordinate of a block wins), or with `relaxed` the
        rows the discriminator sees in training. `sample` snaps them to exact codes."""
        if self.conditions is None:
            return self.generator(z, labels)
        if condition is None:
            condition = z.new_zeros(len(z), self.conditions.width)
        raw = self.generator(torch.cat([z, condition], dim=1), labels)
        if relaxed and self.config.gumbel_temperature > 0:
            return relaxed_rows(raw, self.config.data.layout, self.config.gumbel_temperature)
        return raw

    def fidelity_knob(self) -> Knob:
        """The truncation trick: ψ < 1 pulls z towards its mean (Brock et al. 2019)."""
        return Knob("truncation", 1.0, "lower", (0.25, 0.5, 0.75, 1.0))

    def discriminator_loss(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss == "wgan-gp":  # the critic's Wasserstein estimate, negated; + the penalty
            return fake_logits.mean() - real_logits.mean()
        if self.config.loss == "hinge":
            return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()

    def generator_loss(self, fake_logits: torch.Tensor) -> torch.Tensor:
        if self.config.loss in ("hinge", "wgan-gp"):
            return -fake_logits.mean()
        return F.softplus(-fake_logits).mean()

    def training_step(self, x, labels, optimizers):
        n = len(x)
        d_opt, g_opt = optimizers["discriminator"], optimizers["generator"]
        z = per_sample(lambda m: torch.randn(m, self.config.latent_dim, device=x.device), n)
        condition = chosen = None
        if self.conditions is not None and self.conditions.active():  # training-by-sampling
            condition, chosen, rows = self.conditions.training_pairs(x)
            x, labels = x[rows], None if labels is None else labels[rows]
        raw = self.net("generator")(z if condition is None else torch.cat([z, condition], dim=1), labels)
        layout = self.config.data.layout
        fake = relaxed_rows(raw, layout, self.config.gumbel_temperature) if layout and self.config.gumbel_temperature > 0 else raw
        discriminator = self.net("discriminator")  # DDP-wrapped under torchrun: D's gradients averaged

        # Discriminator step.
        real = x.detach().requires_grad_(self.config.r1_gamma > 0)
        real_logits = self.critic(real, labels, discriminator, condition=condition)
        fake_logits = self.critic(fake.detach(), labels, discriminator, condition=condition)
        d_loss = self.discriminator_loss(real_logits, fake_logits)
        losses = {"d_loss": d_loss.detach()}
        if self.config.loss == "wgan-gp":
            penalty = self.gradient_penalty(real.detach(), fake.detach(), labels, discriminator, condition)
            d_loss = d_loss + GP_WEIGHT * penalty
            losses["gp"] = penalty.detach()
        if self.config.r1_gamma > 0:
            r1 = r1_penalty(real_logits, real)
            d_loss = d_loss + 0.5 * self.config.r1_gamma * r1
            losses["r1"] = r1.detach()
        self.optimize(d_loss, d_opt)

        # Generator step, on the same fakes against the updated discriminator. D is called
        # unwrapped: its weight gradients are not needed, so there is nothing for DDP to average.
        self.discriminator.requires_grad_(False)
        g_loss = self.generator_loss(self.critic(fake, labels, condition=condition))
        if chosen is not None:  # CTGAN: the generated row must have the category it was asked for
            condition_loss = self.conditions.condition_loss(raw, chosen)
            g_loss = g_loss + condition_loss
            losses["condition_loss"] = condition_loss.detach()
        self.optimize(g_loss, g_opt)
        self.discriminator.requires_grad_(True)
        losses["g_loss"] = g_loss.detach()
        losses["d_real"] = real_logits.mean().detach()
        losses["d_fake"] = fake_logits.mean().detach()
        return losses

    def gradient_penalty(self, real, fake, labels, network, condition) -> torch.Tensor:
        """WGAN-GP's E (‖∇ D(x̂)‖ − 1)² at x̂ on the lines between real and fake samples (pairs of
        packs on a table: one mixing weight per pack, so each x̂ is a pack between two packs)."""
        groups = len(real) // self.config.pac if self.config.data.is_table else len(real)
        weight = torch.rand(groups, device=real.device).repeat_interleave(len(real) // groups)
        weight = weight.reshape(-1, *([1] * (real.dim() - 1)))
        real, fake = real[:len(weight)], fake[:len(weight)]
        labels = None if labels is None else labels[:len(weight)]
        condition = None if condition is None else condition[:len(weight)]
        mixed = (weight * real + (1 - weight) * fake).requires_grad_(True)
        logits = self.critic(mixed, labels, network, augment=False, condition=condition)
        (gradient,) = torch.autograd.grad(logits.sum(), mixed, create_graph=True)
        norms = gradient.reshape(len(logits), -1).norm(dim=1)
        return (norms - 1).square().mean()

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
        condition = None
        if self.conditions is not None and self.conditions.active():
            condition = self.conditions.sampling_vectors(n, generator, self.device)
        x = self.generate(z, labels, condition)
        if self.config.data.is_table:
            x = hard_rows(x, self.config.data.layout)
        return SampleOutput(x=x, labels=labels, nfe=1)


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
