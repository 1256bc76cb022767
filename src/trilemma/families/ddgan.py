"""The denoising-diffusion GAN (Xiao, Kreis & Vahdat 2022, "Tackling the generative learning
trilemma with denoising diffusion GANs").

Diffusion in T few, large steps (4 by default): each reverse step q(x_{t−1} | x_t) is far from
Gaussian, so it is learnt adversarially. A generator G(x_t, z, t) proposes x̂0, the posterior
q(x_{t−1} | x_t, x̂0) turns it into x_{t−1}, and a time-conditioned discriminator D(x_{t−1}, x_t, t)
tells those pairs from real ones; losses are the paper's non-saturating ones, with R1 on the real
x_{t−1} available (`r1_gamma`). The defaults depart from the paper where a CPU budget made them:
G's loss adds ||x̂0 − x0||² (`reconstruction_weight`) and R1 is off (see `DDGANConfig`).
Sampling costs T network evaluations.

The forward process is the paper's: the variance-preserving SDE with β(s) = β_min + s (β_max −
β_min), β_min = 0.1, β_max = 20, observed at s = t / T. It is also a `Denoiser` on those T + 1
levels, with G at z = 0 as its x̂0, so the editing capabilities come from `trilemma.capabilities`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.distributed import per_sample, randn_like
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, Family, OptimConfig, SampleOutput, randn
from trilemma.families.denoiser_nets import (
    DenoiserNetConfig,
    build_denoiser_network,
    default_network_settings,
)
from trilemma.families.denoising import Denoised, Level, VariancePreservingSchedule
from trilemma.families.gan import adversarial_optimizers, r1_penalty
from trilemma.families.registry import register
from trilemma.nets.conv import ConvConfig, ConvDiscriminator
from trilemma.nets.mlp import LabelledMLP

BETA_MIN, BETA_MAX = 0.1, 20.0
MAX_STEPS = 8


@dataclass
class DDGANConfig(DenoiserNetConfig):
    steps: int = 4  # T, the denoising steps (1-8); sampling costs T network evaluations
    latent_dim: int = 32  # z, the generator's noise input (the paper: 100 on CIFAR-10)
    # The paper's recipe (R1 0.02-1, G at 1.6e-4 and D at 1.25e-4, pure adversarial loss) is made
    # for hundreds of thousands of steps. On mnist in ~175 CPU-s (2,000 samples, FD-lenet; the
    # sweep in the README) it gave FD 633 and recall 0.03 after 616 steps; what helped, in order:
    # ||x̂0 − x0||² in G's loss (536 with weight 1; 359 with weight 10 and D 16 wide), dropping R1
    # (30% of the step; 261, 1,100 steps), learning rates 5e-4 / 4e-4 (153) and 1e-3 / 8e-4 (142,
    # recall 0.72); a cosine decay hurt (200), a smaller generator (16/32/64) gave 300.
    r1_gamma: float = 0.0  # R1 penalty on real x_{t-1} (the paper: 0.02 on CIFAR-10, 1 on CelebA-HQ)
    lr_discriminator: float = 8e-4
    betas: tuple[float, float] = (0.5, 0.9)
    discriminator_width: int = 16  # base channels of D on images (doubled twice); MLP width on points
    # Weight of ||x̂0 − x0||² in G's loss (0 = the paper's pure adversarial loss): at the noisy
    # steps D barely sees x̂0 through the posterior, and this gives G a signal there.
    reconstruction_weight: float = 10.0
    discriminator_fourier: int = 0  # points: random Fourier features of D's input (0 = raw coordinates)
    discriminator_fourier_scale: float = 1.0


def cumulative_alphas(steps: int) -> torch.Tensor:
    """ᾱ_t for t = 0 … T (ᾱ_0 = 1, the data), float64: ᾱ(s) = exp(−∫₀ˢ β) at s = t / T."""
    s = torch.arange(steps + 1, dtype=torch.float64) / steps
    return torch.exp(-(BETA_MIN * s + 0.5 * (BETA_MAX - BETA_MIN) * s**2))


class DDGAN(Family):
    name: ClassVar[str] = "ddgan"
    label: ClassVar[str] = "denoising-diffusion GAN"
    config_class = DDGANConfig
    colour: ClassVar[str] = "#bcbd22"
    provenance_label: ClassVar[str] = "denoising generator"
    folklore: ClassVar[dict[str, str]] = {
        "fast_and_diverse": "A denoising-diffusion GAN samples nearly as fast as a GAN, with diffusion's diversity.",
    }
    hybrid: ClassVar[bool] = True
    gpu_settings: ClassVar[dict] = {"channels": (64, 128, 256), "patch": 1, "batch_size": 128,
                                    "discriminator_width": 64}

    def __init__(self, config: DDGANConfig):
        super().__init__(config)
        if not 1 <= config.steps <= MAX_STEPS:
            raise UnsupportedRequest(f"setting 'steps' (the denoising steps T) must be 1-{MAX_STEPS}, "
                                     f"not {config.steps}")
        if config.latent_dim < 1:
            raise UnsupportedRequest(f"setting 'latent_dim' must be at least 1, not {config.latent_dim}")
        data = config.data
        self.generator = build_denoiser_network(config, latent_dim=config.latent_dim)
        # D sees (x_{t-1}, x_t) side by side and, by projection, the step (and the class) as one index.
        pair_classes = config.steps * max(1, data.num_classes)
        if data.is_image:
            c, h, w = data.sample_shape
            conv = ConvConfig(2 * c, h, w, config.discriminator_width, num_classes=pair_classes)
            self.discriminator: nn.Module = ConvDiscriminator(conv, spectral=False)
        else:
            self.discriminator = LabelledMLP(2 * data.sample_shape[0], 1, pair_classes,
                                             config.discriminator_fourier, config.discriminator_fourier_scale,
                                             width=config.discriminator_width)
        self.noise_schedule = VariancePreservingSchedule(cumulative_alphas(config.steps))
        self.register_buffer("alphas_cumprod", cumulative_alphas(config.steps).float(), persistent=False)

    @classmethod
    def defaults(cls, data: DataShape) -> DDGANConfig:
        optim, network = default_network_settings(data)
        optim = OptimConfig(batch_size=optim.batch_size if data.is_image else 256, lr=1e-3, ema_max_decay=0.999)
        if data.is_image:
            return DDGANConfig(data=data, optim=optim, **network)
        # grid25, 1,700 steps: raw coordinates into D left it at chance (6 modes, 1% high quality);
        # Fourier features and the reconstruction term gave 15 modes and 9%. Still far from
        # diffusion's 25 and 98%: see the README.
        return DDGANConfig(data=data, optim=optim, discriminator_width=256, latent_dim=8,
                           discriminator_fourier=64, **network)

    def build_optimizers(self):
        return adversarial_optimizers(self.generator, self.discriminator, self.config)

    def averaged_network(self) -> nn.Module:
        return self.generator

    def networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    # The forward process and its posterior, on a batch of steps t ∈ {1 … T}.
    def _scalars(self, values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *[1] * (like.dim() - 1)).to(like.dtype)

    def posterior_sample(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                         noise: torch.Tensor) -> torch.Tensor:
        """x_{t−1} ~ q(x_{t−1} | x_t, x0) (Ho et al. 2020, eq. 7); exact x0 where t = 1."""
        a_bar, a_bar_prev = self.alphas_cumprod[t], self.alphas_cumprod[t - 1]
        alpha = a_bar / a_bar_prev
        beta = 1 - alpha
        mean = (self._scalars(a_bar_prev.sqrt() * beta / (1 - a_bar), x0) * x0
                + self._scalars(alpha.sqrt() * (1 - a_bar_prev) / (1 - a_bar), x0) * x_t)
        std = (beta * (1 - a_bar_prev) / (1 - a_bar)).clamp(min=0).sqrt()
        return mean + self._scalars(std, x0) * noise

    def pair_index(self, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """The discriminator's projection index of step t (and class): (t − 1) K + label."""
        if labels is None:
            return t - 1
        return (t - 1) * self.config.data.num_classes + labels

    def critic_pair(self, x_prev: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor,
                    labels: torch.Tensor | None, network: nn.Module | None = None) -> torch.Tensor:
        out = (network or self.discriminator)(torch.cat([x_prev, x_t], dim=1), self.pair_index(t, labels))
        return out.squeeze(-1) if out.dim() > 1 else out

    def propose(self, x_t: torch.Tensor, t: torch.Tensor, z: torch.Tensor, labels: torch.Tensor | None,
                network: nn.Module | None = None) -> torch.Tensor:
        """G's x̂0 at x_t; the network sees the step as diffusion's timestep, 1000 t / T."""
        return (network or self.generator)(x_t, t.float() * (1000.0 / self.config.steps), labels, z)

    def training_step(self, x, labels, optimizers):
        n, T = len(x), self.config.steps
        t = per_sample(lambda m: torch.randint(1, T + 1, (m,), device=x.device), n)
        a_bar_prev = self.alphas_cumprod[t - 1]
        alpha = self.alphas_cumprod[t] / a_bar_prev
        x_prev = self._scalars(a_bar_prev.sqrt(), x) * x + self._scalars((1 - a_bar_prev).sqrt(), x) * randn_like(x)
        x_t = self._scalars(alpha.sqrt(), x) * x_prev + self._scalars((1 - alpha).sqrt(), x) * randn_like(x)
        z = per_sample(lambda m: torch.randn(m, self.config.latent_dim, device=x.device), n)
        x0_hat = self.propose(x_t, t, z, labels, self.net("generator"))
        fake_prev = self.posterior_sample(x0_hat, x_t, t, randn_like(x))
        discriminator = self.net("discriminator")

        real = x_prev.detach().requires_grad_(self.config.r1_gamma > 0)
        real_logits = self.critic_pair(real, x_t, t, labels, discriminator)
        fake_logits = self.critic_pair(fake_prev.detach(), x_t, t, labels, discriminator)
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        losses = {"d_loss": d_loss.detach()}
        if self.config.r1_gamma > 0:
            r1 = r1_penalty(real_logits, real)
            d_loss = d_loss + 0.5 * self.config.r1_gamma * r1
            losses["r1"] = r1.detach()
        self.optimize(d_loss, optimizers["discriminator"])

        self.discriminator.requires_grad_(False)
        g_loss = F.softplus(-self.critic_pair(fake_prev, x_t, t, labels)).mean()
        if self.config.reconstruction_weight > 0:
            reconstruction = (x0_hat - x).square().mean()
            losses["reconstruction"] = reconstruction.detach()
            g_loss = g_loss + self.config.reconstruction_weight * reconstruction
        self.optimize(g_loss, optimizers["generator"])
        self.discriminator.requires_grad_(True)
        losses["g_loss"] = g_loss.detach()
        return losses

    def denoise(
        self, x_t: torch.Tensor, t: Level, labels: torch.Tensor | None = None, guidance: float = 1.0,
        clip: bool = True,
    ) -> Denoised:
        """G's x̂0 at level t with z = 0 (the centre of its noise input) and the ε̂ that goes with
        it; at level 0, the data level, x_t itself. `guidance` is not used (no guidance here)."""
        t = round(float(t))
        if not 0 <= t <= self.config.steps:
            raise UnsupportedRequest(f"level {t} is outside this model's 0-{self.config.steps}")
        x = x_t.double()
        if t == 0:
            return Denoised(x, torch.zeros_like(x), 0)
        steps = torch.full((len(x_t),), t, device=x_t.device)
        z = torch.zeros(len(x_t), self.config.latent_dim, device=x_t.device)
        x0 = self.propose(x_t.float(), steps, z, labels).double()
        alpha, sigma = self.noise_schedule.alpha(t), self.noise_schedule.sigma(t)
        denoised = Denoised(x0, (x - alpha * x0) / sigma, 1)
        return denoised.clipped(x, alpha, sigma) if clip and self.config.data.is_image else denoised

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        self.reject_options(options, self.name)
        labels = self.sample_labels(n, generator, labels)
        shape = (n, *self.config.data.sample_shape)
        x = randn(shape, generator, self.device)
        for step in range(self.config.steps, 0, -1):
            t = torch.full((n,), step, device=self.device)
            z = randn((n, self.config.latent_dim), generator, self.device)
            x0 = self.propose(x, t, z, labels)
            if self.config.data.is_image:
                x0 = x0.clamp(-1, 1)
            x = self.posterior_sample(x0, x, t, randn(shape, generator, self.device))
        return SampleOutput(x=x, labels=labels, nfe=self.config.steps)


register(DDGAN)
