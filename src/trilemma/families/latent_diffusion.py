"""Latent diffusion: an autoencoder, and a generative model of its latents (Rombach et al. 2022,
"High-resolution image synthesis with latent diffusion models"; Vahdat et al. 2021, LSGM).

The autoencoder compresses the data to a small latent vector (a KL term with a small weight keeps
the latent space smooth); the latent model is this package's `Flow` family on those vectors, so
sampling runs a cheap MLP a few times and the decoder once, where pixel diffusion runs a U-Net
at every step. The price is the autoencoder's reconstruction error, a floor on fidelity that the
evaluation reports (``reconstruction FD``).

The budget is split in two stages by `autoencoder_fraction`: in the first the autoencoder trains
(and the latent model follows its latents, so that it does not start from scratch); in the
second the autoencoder is frozen and only the latent model trains. The stage is decided by the
share of the budget spent (`Family.training_progress`), so a resumed run switches where an
uninterrupted one does; the split is recorded in config.json with every other setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from trilemma.distributed import randn_like
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, Family, FamilyConfig, OptimConfig, SampleOutput
from trilemma.families.capabilities import Knob
from trilemma.families.flow import Flow, FlowConfig
from trilemma.families.registry import register
from trilemma.nets.conv import ConvConfig, ConvDecoder, ConvEncoder
from trilemma.nets.mlp import LabelledMLP

STATS_MOMENTUM = 0.02  # of the running latent mean and scale, while the autoencoder trains


@dataclass
class LatentDiffusionConfig(FamilyConfig):
    latent_dim: int = 32
    base_width: int = 32  # the autoencoder's channels at full resolution (images)
    mlp_width: int = 256  # the autoencoder's width (points)
    kl_weight: float = 1e-3  # of KL(q(z|x) || N(0, I)) per latent dimension against the per-pixel error
    # Share of the budget in which the autoencoder trains. mnist, 3 minutes' calibrated steps,
    # FD-lenet on 1,000 samples (recall): 0.05 34.9 (0.86), 0.1 28.5 (0.92), 0.15 27.5 (0.94),
    # 0.25 37.9 (0.93), 0.4 47.3 (0.92), 0.6 63.3 (0.91; its calibration taken while tests ran,
    # 1,281 steps); the latent model gains more from the
    # steps than the autoencoder does past a few hundred (the calibration's step counts left
    # 0.15 with 207 CPU-s and 0.1 with 179, so the two are level).
    autoencoder_fraction: float = 0.15
    # The latent model: flow matching with a residual MLP (see trilemma.families.flow).
    prior_width: int = 512
    prior_blocks: int = 4
    prior_fourier_features: int = 0
    time_sampling: str = "uniform"
    sampler: str = "heun"
    sampler_steps: int = 10
    label_dropout: float = 0.1
    guidance: float = 2.0


class LatentDiffusion(Family):
    name: ClassVar[str] = "latent-diffusion"
    label: ClassVar[str] = "latent diffusion model"
    config_class = LatentDiffusionConfig
    colour: ClassVar[str] = "#8c564b"
    samplers: ClassVar[tuple[str, ...]] = Flow.samplers
    default_sampler: ClassVar[str] = "heun"
    provenance_label: ClassVar[str] = "latent flow and decoder"
    folklore: ClassVar[dict[str, str]] = {
        "latent_faster": "Latent diffusion samples faster than pixel diffusion, at some cost in fidelity.",
    }
    hybrid: ClassVar[bool] = True
    gpu_settings: ClassVar[dict] = {"base_width": 64, "batch_size": 128}

    def __init__(self, config: LatentDiffusionConfig):
        super().__init__(config)
        if not 0 < config.autoencoder_fraction < 1:
            raise UnsupportedRequest(f"setting 'autoencoder_fraction' must lie strictly between 0 and 1 "
                                     f"(the autoencoder's share of the budget), not {config.autoencoder_fraction}")
        if config.latent_dim < 1:
            raise UnsupportedRequest(f"setting 'latent_dim' must be at least 1, not {config.latent_dim}")
        data = config.data
        if data.is_image:
            c, h, w = data.sample_shape
            conv = ConvConfig(c, h, w, config.base_width, config.latent_dim)
            self.encoder: nn.Module = ConvEncoder(conv)
            self.decoder: nn.Module = ConvDecoder(conv, out_activation=nn.Tanh())
        else:
            dim = data.sample_shape[0]
            self.encoder = LabelledMLP(dim, 2 * config.latent_dim, width=config.mlp_width)
            self.decoder = LabelledMLP(config.latent_dim, dim, width=config.mlp_width)
        self.prior = Flow(FlowConfig(
            data=DataShape("points", (config.latent_dim,), data.num_classes), optim=config.optim,
            mlp_width=config.prior_width, mlp_blocks=config.prior_blocks,
            fourier_features=config.prior_fourier_features, time_sampling=config.time_sampling,
            sampler=config.sampler, sampler_steps=config.sampler_steps,
            label_dropout=config.label_dropout, guidance=config.guidance))
        # The latents' running mean and scale: the latent model sees (z − mean) / scale.
        self.register_buffer("latent_mean", torch.zeros(config.latent_dim))
        self.register_buffer("latent_scale", torch.ones(()))

    @classmethod
    def defaults(cls, data: DataShape) -> LatentDiffusionConfig:
        if data.is_image:
            optim = OptimConfig(batch_size=64, lr=1e-3, warmup_steps=100, decay="cosine", grad_clip=1.0)
            return LatentDiffusionConfig(data=data, optim=optim)
        optim = OptimConfig(batch_size=1024, lr=1e-3, warmup_steps=100, decay="cosine", grad_clip=1.0)
        return LatentDiffusionConfig(data=data, optim=optim, latent_dim=2, prior_width=256, prior_blocks=3,
                                     prior_fourier_features=64, sampler_steps=12, kl_weight=1e-4)

    def build_optimizers(self):
        autoencoder = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return {"autoencoder": torch.optim.AdamW(autoencoder, lr=self.config.optim.lr, weight_decay=0.0),
                "prior": torch.optim.AdamW(self.prior.velocity.parameters(), lr=self.config.optim.lr,
                                           weight_decay=0.0)}

    def averaged_network(self) -> nn.Module:
        return self.prior.velocity  # the autoencoder is frozen when sampling starts to matter

    def networks(self) -> dict[str, nn.Module]:
        return {"encoder": self.encoder, "decoder": self.decoder, "velocity": self.prior.velocity}

    def install_replicas(self, replicas: dict[str, nn.Module] | None) -> None:
        super().install_replicas(replicas)
        self.prior.install_replicas({"velocity": replicas["velocity"]} if replicas else None)

    # The autoencoder: the Encoder capability.
    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None, network: nn.Module | None = None):
        """Mean and log-variance of q(z|x) (the autoencoder is unconditional)."""
        out = (network or self.encoder)(x)
        return out if isinstance(out, tuple) else out.chunk(2, dim=1)

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)

    @property
    def latent_denoiser(self) -> Flow:
        return self.prior

    def to_prior(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean) / self.latent_scale

    def from_prior(self, u: torch.Tensor) -> torch.Tensor:
        return u * self.latent_scale + self.latent_mean

    def in_first_stage(self) -> bool:
        return self.training_progress < self.config.autoencoder_fraction

    def training_step(self, x, labels, optimizers):
        losses = {"autoencoder": torch.zeros((), device=x.device)}
        if self.in_first_stage():
            mean, log_variance = self.encode(x, network=self.net("encoder"))
            z = mean + (0.5 * log_variance).exp() * randn_like(mean)
            reconstruction = (self.net("decoder")(z) - x).square().mean()
            kl = 0.5 * (mean.square() + log_variance.exp() - 1 - log_variance).mean()
            loss = reconstruction + self.config.kl_weight * kl
            self.optimize(loss, optimizers["autoencoder"])
            latents = mean.detach()
            with torch.no_grad():
                self.latent_mean.lerp_(latents.mean(0), STATS_MOMENTUM)
                self.latent_scale.lerp_((latents - self.latent_mean).std(), STATS_MOMENTUM)
            losses["autoencoder"] = reconstruction.detach()
        else:
            with torch.no_grad():
                latents = self.encode(x)[0]
        prior_loss = self.prior.loss(self.to_prior(latents), labels)
        self.optimize(prior_loss, optimizers["prior"])
        losses["prior"] = prior_loss.detach()
        return losses

    def fidelity_knob(self) -> Knob | None:
        return self.prior.fidelity_knob()

    def sampling_provenance(self, **options):
        return self.prior.sampling_provenance(**options)

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        latent = self.prior.sample(n, generator, labels, **options)
        return SampleOutput(x=self.decode(self.from_prior(latent.x)), labels=latent.labels, nfe=latent.nfe + 1)


register(LatentDiffusion)
