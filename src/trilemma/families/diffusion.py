"""Denoising diffusion (Ho et al. 2020) with a fixed 1000-step forward process.

The forward process and the samplers are Hugging Face diffusers' schedulers (pure maths
objects); this module owns the denoiser, the training objective and the sampling loop that
composes the two. For everything else that denoises (inversion, inpainting, editing, …) the
family offers the generic interface of `trilemma.families.denoising`: its `noise_schedule`,
built once from the diffusers scheduler, and `denoise`, which turns the network's ε or v into
x̂0 and ε̂.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from trilemma.distributed import per_sample, randn_like
from trilemma.errors import UnsupportedRequest
from trilemma.families.base import DataShape, Family, SampleOutput, randn
from trilemma.families.capabilities import Knob
from trilemma.families.denoiser_nets import (
    GuidedConfig,
    build_denoiser_network,
    default_network_settings,
    drop_labels,
    guidance_knob,
    guided_output,
)
from trilemma.families.denoising import Denoised, Level, VariancePreservingSchedule
from trilemma.families.registry import register

SAMPLERS = ("ddpm", "ddim", "dpm-solver++")
SCHEDULES = {"linear": "linear", "cosine": "squaredcos_cap_v2"}
PREDICTIONS = {"epsilon": "epsilon", "v": "v_prediction"}


@dataclass
class DiffusionConfig(GuidedConfig):
    schedule: str = "cosine"  # "linear" (Ho et al. 2020) or "cosine" (Nichol & Dhariwal 2021)
    prediction: str = "v"  # "epsilon" or "v" (Salimans & Ho 2022)
    num_train_timesteps: int = 1000
    min_snr_gamma: float = 5.0  # Min-SNR-γ loss weighting (Hang et al. 2023); 0 turns it off
    sampler: str = "dpm-solver++"
    sampler_steps: int = 20


class Diffusion(Family):
    name: ClassVar[str] = "diffusion"
    label: ClassVar[str] = "diffusion model"
    config_class = DiffusionConfig
    colour: ClassVar[str] = "#2ca02c"
    samplers: ClassVar[tuple[str, ...]] = SAMPLERS
    default_sampler: ClassVar[str] = "dpm-solver++"
    provenance_label: ClassVar[str] = "denoiser"
    folklore: ClassVar[dict[str, str]] = {
        "sharp_and_diverse": "Diffusion samples are both sharp and diverse.",
        "slow": "Diffusion sampling is slow.",
        "costly": "Diffusion is costly to train.",
    }
    in_default_comparison: ClassVar[bool] = True
    # Measured on an H200: the 16/32/64 U-Net on pixels widened to 64/128/256 (see the README).
    gpu_settings: ClassVar[dict] = {"channels": (64, 128, 256), "patch": 1, "batch_size": 128}

    def __init__(self, config: DiffusionConfig):
        super().__init__(config)
        if config.schedule not in SCHEDULES:
            raise UnsupportedRequest(f"unknown noise schedule '{config.schedule}' (known: {', '.join(SCHEDULES)})")
        if config.prediction not in PREDICTIONS:
            raise UnsupportedRequest(f"unknown prediction '{config.prediction}' (known: {', '.join(PREDICTIONS)})")
        self.denoiser = build_denoiser_network(config)
        self.forward_process = self.make_scheduler("ddpm")
        self.noise_schedule = VariancePreservingSchedule.from_scheduler(self.forward_process)
        alphas_cumprod = self.forward_process.alphas_cumprod.float()
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)

    @classmethod
    def defaults(cls, data: DataShape) -> DiffusionConfig:
        optim, network = default_network_settings(data)
        if data.is_image:
            return DiffusionConfig(data=data, optim=optim, sampler_steps=20, **network)
        # Min-SNR down-weights the low noise levels that decide precision on points.
        return DiffusionConfig(data=data, optim=optim, sampler_steps=50, min_snr_gamma=0.0, **network)

    # The maths objects, from diffusers.
    def make_scheduler(self, sampler: str):
        from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler

        common = {
            "num_train_timesteps": self.config.num_train_timesteps,
            "beta_schedule": SCHEDULES[self.config.schedule],
            "prediction_type": PREDICTIONS[self.config.prediction],
        }
        clip = self.config.data.is_image  # images live in [-1, 1]; points are unbounded
        if sampler == "ddpm":
            return DDPMScheduler(**common, clip_sample=clip, variance_type="fixed_small")
        if sampler == "ddim":
            return DDIMScheduler(**common, clip_sample=clip, timestep_spacing="trailing")
        if sampler == "dpm-solver++":
            return DPMSolverMultistepScheduler(
                **common, algorithm_type="dpmsolver++", solver_order=2, lower_order_final=True
            )
        raise UnsupportedRequest(f"unknown sampler '{sampler}' (known: {', '.join(SAMPLERS)})")

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"denoiser": torch.optim.AdamW(self.denoiser.parameters(), lr=self.config.optim.lr, weight_decay=0.0)}

    def averaged_network(self) -> nn.Module:
        return self.denoiser

    def networks(self) -> dict[str, nn.Module]:
        return {"denoiser": self.denoiser}

    def loss(self, x0: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """Weighted denoising loss E_t,ε[w(t) ||net(x_t, t) - target||²]."""
        n = len(x0)
        t = per_sample(lambda m: torch.randint(0, self.config.num_train_timesteps, (m,), device=x0.device), n)
        noise = randn_like(x0)
        x_t = self.forward_process.add_noise(x0, noise, t)
        if self.config.prediction == "v":
            target = self.forward_process.get_velocity(x0, noise, t)
        else:
            target = noise
        labels = drop_labels(labels, self.config)
        prediction = self.net("denoiser")(x_t, t, labels)
        errors = (prediction - target).square().flatten(1).mean(dim=1)
        return (self.loss_weight(t) * errors).mean()

    def loss_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Min-SNR-γ: min(SNR, γ)/SNR for ε-prediction, min(SNR, γ)/(SNR + 1) for v."""
        gamma = self.config.min_snr_gamma
        if gamma <= 0:
            return torch.ones_like(t, dtype=torch.float32)
        alpha_bar = self.alphas_cumprod[t]
        snr = alpha_bar / (1 - alpha_bar)
        clipped = snr.clamp(max=gamma)
        return clipped / (snr + 1) if self.config.prediction == "v" else clipped / snr

    def training_step(self, x, labels, optimizers):
        loss = self.loss(x, labels)
        self.optimize(loss, optimizers["denoiser"])
        return {"loss": loss.detach()}

    def fidelity_knob(self) -> Knob | None:
        """Classifier-free guidance weight w (w = 1: the plain conditional model); none without labels."""
        return guidance_knob(self.conditional)

    def model_output(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None, guidance: float):
        """The denoiser's prediction, with classifier-free guidance for conditional models:
        uncond + w (cond - uncond) (Ho & Salimans 2022); w = 1 is the plain conditional model."""
        return guided_output(self.denoiser, x, t, labels, guidance, self.config.data.num_classes)

    def _sampler_and_steps(self, sampler: str | None, steps: int | None) -> tuple[str, int]:
        """The sampler and step count a request means: the config's sampler by default, all
        1000 steps for ancestral DDPM, the config's step count for the fast samplers."""
        sampler = sampler or self.config.sampler
        if steps is None:
            steps = self.config.num_train_timesteps if sampler == "ddpm" else self.config.sampler_steps
        return sampler, int(steps)

    def sampling_provenance(self, **options):
        sampler, steps = self._sampler_and_steps(options.get("sampler"), options.get("steps"))
        return {"sampler": sampler, "sampler_steps": steps}

    def denoise(
        self, x_t: torch.Tensor, t: Level, labels: torch.Tensor | None = None, guidance: float = 1.0,
        clip: bool = True,
    ) -> Denoised:
        """x̂0 and ε̂ at level t from the network's output, whatever it predicts (lucidrains'
        ``model_predictions``). With x_t = α x0 + σ ε, α² + σ² = 1 and v = α ε − σ x0 (Salimans
        & Ho 2022): x0 = α x_t − σ v and ε = σ x_t + α v; for ε-prediction
        x0 = (x_t − σ ε) / α. With `clip`, an image's x̂0 is clamped to [−1, 1] and ε̂ recomputed
        from it (`Denoised.clipped`), as diffusers' samplers do; points are unbounded and never
        clamped. Differentiable in x_t (reconstruction guidance needs that)."""
        x_t = x_t.float()  # the network's dtype; the maths below uses the very x_t it saw
        alpha, sigma = self.noise_schedule.alpha(t), self.noise_schedule.sigma(t)
        output, nfe = self.model_output(x_t, torch.tensor([int(t)], device=x_t.device), labels, guidance)
        output, x = output.double(), x_t.double()
        if self.config.prediction == "v":
            denoised = Denoised(alpha * x - sigma * output, sigma * x + alpha * output, nfe)
        else:
            denoised = Denoised((x - sigma * output) / alpha, output, nfe)
        return denoised.clipped(x, alpha, sigma) if clip and self.config.data.is_image else denoised

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        sampler, steps = self._sampler_and_steps(options.pop("sampler", None), options.pop("steps", None))
        guidance = options.pop("guidance", None)
        guidance = self.config.guidance if guidance is None else float(guidance)
        self.reject_options(options, self.name)
        if not 1 <= int(steps) <= self.config.num_train_timesteps:
            raise UnsupportedRequest(f"sampler steps must be 1-{self.config.num_train_timesteps}, not {steps}")
        labels = self.sample_labels(n, generator, labels)
        scheduler = self.make_scheduler(sampler)
        scheduler.set_timesteps(int(steps), device=self.device)
        x = randn((n, *self.config.data.sample_shape), generator, self.device) * scheduler.init_noise_sigma
        nfe = 0
        for t in scheduler.timesteps:
            output, evaluations = self.model_output(scheduler.scale_model_input(x, t), t, labels, guidance)
            nfe += evaluations
            x = scheduler.step(output, t, x, generator=generator).prev_sample
        return SampleOutput(x=x, labels=labels, nfe=nfe)


register(Diffusion)
