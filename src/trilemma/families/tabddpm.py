"""TabDDPM (Kotelnikov et al. 2023): diffusion on a table's rows with Gaussian diffusion on the
numbers' normal scores and multinomial diffusion (Hoogeboom et al. 2021) on each categorical
column, one MLP denoising both.

A row (`trilemma.families.table_layout`) is split into its real coordinates and its categorical
variables: each one-hot block, and each missing-cell flag as a variable of two values. With the
cosine schedule ᾱ_t (Nichol & Dhariwal 2021) shared by both parts:

- numbers: x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε; the network predicts ε, trained by mean squared error;
- categories: q(x_t | x0) = Cat(ᾱ_t x0 + (1 − ᾱ_t)/K), the posterior
  q(x_s | x_t, x0) ∝ (ᾱ_t/ᾱ_s x_t + (1 − ᾱ_t/ᾱ_s)/K) ⊙ (ᾱ_s x0 + (1 − ᾱ_s)/K); the network
  predicts a distribution p̂(x0 | x_t) and p(x_s | x_t) = Σ_j p̂(j | x_t) q(x_s | x_t, x0 = j)
  (`_posterior`), trained by the KL between the true posterior and it (−log p(x0 | x1) at
  t = 1, where ᾱ_0 = 1), averaged over the variables, plus `x0_weight` times the cross-entropy
  of p̂(x0 | x_t) (the hybrid loss of Austin et al. 2021): the one-step KL barely trains the x0
  head, on which a sampler with large steps relies.

Sampling runs the ancestral chain on `steps` evenly spaced levels (the posteriors above hold
for any s < t). Neither part is the Gaussian denoiser of the other capabilities, so a TabDDPM
run samples and is scored, but does not impute or score anomalies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from trilemma.distributed import per_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, Family, FamilyConfig, OptimConfig, SampleOutput, randn
from trilemma.families.registry import register
from trilemma.families.table_layout import one_hot_codes, segments
from trilemma.nets.mlp import ResidualMLPDenoiser

_EPS = 1e-30
SCORE_RANGE = 4.0  # |x̂0| of a number's score at most this (the codec's scores lie within ±3.72)


@dataclass
class TabDDPMConfig(FamilyConfig):
    timesteps: int = 1000
    sampler_steps: int = 100
    mlp_width: int = 256
    mlp_blocks: int = 3
    x0_weight: float = 0.01  # λ of the auxiliary −log p̂(x0 | x_t) of the categories (D3PM's hybrid loss)


def cosine_alpha_bar(timesteps: int, offset: float = 0.008) -> torch.Tensor:
    """ᾱ_0 … ᾱ_T (ᾱ_0 = 1), float64, from the cosine schedule with each β capped at 0.999."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)])


class TabDDPM(Family):
    name: ClassVar[str] = "tabddpm"
    label: ClassVar[str] = "TabDDPM"
    config_class = TabDDPMConfig
    data_kinds: ClassVar[tuple[str, ...]] = ("table",)
    colour: ClassVar[str] = "#9467bd"
    samplers: ClassVar[tuple[str, ...]] = ("ancestral",)
    default_sampler: ClassVar[str] = "ancestral"
    provenance_label: ClassVar[str] = "ancestral"
    folklore: ClassVar[dict[str, str]] = {
        "sharp_and_diverse": "Diffusion models are sharp and diverse.",
        "costly": "Diffusion models are slow to train and to sample.",
    }

    def __init__(self, config: TabDDPMConfig):
        super().__init__(config)
        data = config.data
        self.real, self.variables = [], []  # coordinates of numbers; (coordinates, K, is a flag)
        for kind, where in segments(data.layout):
            if kind == "gaussian":
                self.real.append(where.start)
            else:
                self.variables.append((where, 2 if kind == "binary" else where.stop - where.start, kind == "binary"))
        self.width = len(self.real) + sum(k for _, k, _ in self.variables)
        self.network = ResidualMLPDenoiser(self.width, config.mlp_width, config.mlp_blocks, data.num_classes)
        self.register_buffer("alpha_bar", cosine_alpha_bar(config.timesteps), persistent=False)

    @classmethod
    def defaults(cls, data: DataShape) -> TabDDPMConfig:
        optim = OptimConfig(batch_size=1024, lr=1e-3, warmup_steps=50, decay="cosine", grad_clip=1.0)
        return TabDDPMConfig(data=data, optim=optim)

    def build_optimizers(self):
        return {"network": torch.optim.AdamW(self.network.parameters(), lr=self.config.optim.lr, weight_decay=1e-5)}

    def averaged_network(self) -> nn.Module:
        return self.network

    def networks(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    # The row in the network's form: numbers, then each variable one-hot (0/1).
    def _split(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        numbers = x[:, self.real]
        codes = [(x[:, where] > 0).long().squeeze(1) if flag else x[:, where].argmax(1)
                 for where, _, flag in self.variables]
        return numbers, codes

    def _join(self, numbers: torch.Tensor, codes: list[torch.Tensor]) -> torch.Tensor:
        rows = torch.empty(len(numbers), self.config.data.sample_shape[0], device=numbers.device)
        rows[:, self.real] = numbers
        for (where, k, flag), code in zip(self.variables, codes, strict=True):
            rows[:, where] = torch.where(code == 1, 1.0, -1.0)[:, None] if flag else one_hot_codes(code, k)
        return rows

    def _network_input(self, numbers: torch.Tensor, onehots: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([numbers, *onehots], dim=1)

    def _outputs(self, network, numbers, onehots, t, labels):
        out = network(self._network_input(numbers, onehots), t.float(), labels)
        eps, start, logits = out[:, :len(self.real)], len(self.real), []
        for _, k, _ in self.variables:
            logits.append(out[:, start:start + k])
            start += k
        return eps, logits

    def _posterior(self, x_t: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor, k: int) -> torch.Tensor:
        """Σ_j x0_j q(x_s | x_t, x0 = j): the posterior of one-hot x_t (rows) and x0 = j, averaged
        over a distribution x0 of k values (D3PM's x0-parametrisation, Austin et al. 2021, eq. 4;
        plugging the distribution into the one-hot formula instead, as multinomial diffusion
        does, biases a sampler whose x0 is a calibrated prediction). s < t.

        With L = (ᾱ_t/ᾱ_s) x_t + (1 − ᾱ_t/ᾱ_s)/k, the likelihood of x_t for each x_s, and
        Z_j = ᾱ_s L_j + (1 − ᾱ_s) ΣL/k, that of x_t given x0 = j, it is
        L ⊙ (ᾱ_s w + (1 − ᾱ_s) Σw/k) with w = x0 / Z, which sums to 1."""
        a_t, a_s = self.alpha_bar[t][:, None], self.alpha_bar[s][:, None]
        step = a_t / a_s
        likelihood = step * x_t + (1 - step) / k
        evidence = a_s * likelihood + (1 - a_s) * likelihood.sum(1, keepdim=True) / k
        w = x0 / evidence
        return likelihood * (a_s * w + (1 - a_s) * w.sum(1, keepdim=True) / k)

    def training_step(self, x, labels, optimizers):
        n = len(x)
        t = per_sample(lambda m: torch.randint(1, self.config.timesteps + 1, (m,), device=x.device), n)
        a_t = self.alpha_bar[t][:, None].float()
        numbers, codes = self._split(x)
        noise = per_sample(lambda m: torch.randn(m, len(self.real), device=x.device), n)
        noisy_numbers = a_t.sqrt() * numbers + (1 - a_t).sqrt() * noise
        noisy, true_onehots = [], []
        for (_, k, _), code in zip(self.variables, codes, strict=True):
            x0 = F.one_hot(code, k).double()
            probabilities = self.alpha_bar[t][:, None] * x0 + (1 - self.alpha_bar[t][:, None]) / k
            noisy.append(F.one_hot(torch.multinomial(probabilities.float(), 1).squeeze(1), k).float())
            true_onehots.append(x0)
        eps, logits = self._outputs(self.net("network"), noisy_numbers, noisy, t, labels)
        gaussian = F.mse_loss(eps, noise) if self.real else eps.new_zeros(())
        kl = cross_entropy = eps.new_zeros(())
        for (_, k, _), x_t, x0, logit in zip(self.variables, noisy, true_onehots, logits, strict=True):
            true = self._posterior(x_t.double(), x0, t, t - 1, k)
            predicted = self._posterior(x_t.double(), torch.softmax(logit.double(), 1), t, t - 1, k)
            kl = kl + (true * (torch.log(true + _EPS) - torch.log(predicted + _EPS))).sum(1).mean().float()
            cross_entropy = cross_entropy + F.cross_entropy(logit, x0.argmax(1))
        multinomial = (kl + self.config.x0_weight * cross_entropy) / max(1, len(self.variables))
        loss = gaussian + multinomial
        self.optimize(loss, optimizers["network"])
        return {"loss": loss.detach(), "gaussian": gaussian.detach(), "multinomial": multinomial.detach()}

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        sampler = options.pop("sampler", None) or "ancestral"
        steps = options.pop("steps", None) or self.config.sampler_steps
        self.reject_options(options, self.name)
        if sampler != "ancestral":
            raise UnsupportedRequest(f"the tabddpm family samples with the ancestral chain, not '{sampler}'")
        if not 1 <= int(steps) <= self.config.timesteps:
            raise UnsupportedRequest(f"sampler steps must be 1-{self.config.timesteps}, not {steps}")
        labels = self.sample_labels(n, generator, labels)
        levels = torch.linspace(self.config.timesteps, 0, int(steps) + 1).round().long().to(self.device)
        numbers = randn((n, len(self.real)), generator, self.device)
        codes = [torch.randint(0, k, (n,), generator=generator, device=generator.device).to(self.device)
                 for _, k, _ in self.variables]
        for t_value, s_value in pairwise(levels):
            t, s = t_value.expand(n), s_value.expand(n)
            onehots = [F.one_hot(c, k).float() for c, (_, k, _) in zip(codes, self.variables, strict=True)]
            eps, logits = self._outputs(self.network, numbers, onehots, t, labels)
            numbers = self._gaussian_step(numbers, eps, t_value, s_value, generator)
            codes = [self._draw(self._posterior(x.double(), torch.softmax(logit.double(), 1), t, s, k), generator)
                     for x, logit, (_, k, _) in zip(onehots, logits, self.variables, strict=True)]
        return SampleOutput(x=self._join(numbers, codes), labels=labels, nfe=int(steps))

    def _gaussian_step(self, x_t, eps, t, s, generator) -> torch.Tensor:
        """The DDPM posterior q(x_s | x_t, x̂0) on the respaced levels, drawn (its mean at s = 0).
        x̂0 is clipped to the scores' range (the codec's grid ends at ±3.72): at the noisiest
        levels, where √ᾱ_t is near 0, an error in ε̂ would otherwise blow x̂0 up."""
        a_t, a_s = self.alpha_bar[t].float(), self.alpha_bar[s].float()
        x0 = ((x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-SCORE_RANGE, SCORE_RANGE)
        beta = 1 - a_t / a_s
        mean = (a_s.sqrt() * beta / (1 - a_t)) * x0 + ((a_t / a_s).sqrt() * (1 - a_s) / (1 - a_t)) * x_t
        if s == 0:
            return mean
        variance = beta * (1 - a_s) / (1 - a_t)
        return mean + variance.sqrt() * randn(x_t.shape, generator, x_t.device)

    @staticmethod
    def _draw(probabilities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        drawn = torch.multinomial(probabilities.float().to(generator.device), 1, generator=generator)
        return drawn.squeeze(1).to(probabilities.device)

    def sampling_provenance(self, **options):
        return {"sampler": "ancestral", "sampler_steps": int(options.get("steps") or self.config.sampler_steps)}


register(TabDDPM)
