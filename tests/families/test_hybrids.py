"""The hybrids' own maths: flow matching's straight path and ODE solvers, the denoising-diffusion
GAN's forward process and posterior, latent diffusion's two stages; and their bad settings."""

import math

import pytest
import torch

from trilemma.errors import UnsupportedRequest
from trilemma.families import DataShape, build_family
from trilemma.families.ddgan import cumulative_alphas
from trilemma.families.denoising import Denoised, LinearPathSchedule, ddim_step
from trilemma.families.flow import integrate

POINTS = DataShape("points", (2,))
IMAGE = DataShape("image", (1, 8, 8))
MU, S = 1.5, 0.5  # x0 ~ N(MU, S²) per dimension


def exact_velocity(x: torch.Tensor, t: float):
    """E[ε − x0 | x_t] on the straight path for x0 ~ N(MU, S²), ε ~ N(0, 1): x_t is Gaussian with
    mean (1 − t) MU and variance (1 − t)² S² + t², and both conditional means are linear in x_t."""
    variance = (1 - t) ** 2 * S**2 + t**2
    centred = x - (1 - t) * MU
    x0 = MU + (1 - t) * S**2 / variance * centred
    eps = t / variance * centred
    return eps - x0, 1


def test_linear_path_schedule_inverts_its_ratio_and_ddim_is_an_euler_step():
    schedule = LinearPathSchedule()
    assert schedule.grid(4) == [0.0, 0.25, 0.5, 0.75, 1.0]
    for ratio in (0.1, 1.0, 7.0):
        t = schedule.level_for_ratio(ratio)
        assert schedule.sigma(t) / schedule.alpha(t) == pytest.approx(ratio)
    assert 0 < schedule.level_at(0.0) < 0.01 and schedule.level_at(1.0) == 1.0
    x_t = torch.randn(5, 2, dtype=torch.float64)
    v, _ = exact_velocity(x_t, 0.6)
    denoised = Denoised(x_t - 0.6 * v, x_t + 0.4 * v, 1)
    assert torch.allclose(ddim_step(schedule, denoised, 0.6, 0.35), x_t + (0.35 - 0.6) * v)


def test_heun_transports_a_gaussian_better_than_euler():
    x = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = {}
    for sampler, steps in [("euler", 4), ("heun", 4)]:
        out, nfe = integrate(exact_velocity, x, steps, sampler)
        assert nfe == (4 if sampler == "euler" else 7)  # Heun's last step, to t = 0, is Euler's
        errors[sampler] = abs(out.mean().item() - MU) + abs(out.std().item() - S)
    assert errors["heun"] < 0.08 and errors["heun"] < errors["euler"] / 2
    exact, _ = integrate(exact_velocity, x, 200, "heun")
    assert exact.mean().item() == pytest.approx(MU, abs=0.01) and exact.std().item() == pytest.approx(S, abs=0.01)


def test_flow_denoiser_answer_explains_its_input_at_every_level():
    family = build_family("flow", IMAGE, channels=(8, 16)).eval()
    x_t = torch.randn(3, *IMAGE.sample_shape)
    for t in (0.0, 0.3, 1.0):
        d = family.denoise(x_t, t, clip=False)
        assert torch.allclose((1 - t) * d.x0 + t * d.eps, x_t.double(), atol=1e-6)
    clipped = family.denoise(x_t * 5, 0.5)
    assert clipped.x0.abs().max() <= 1 and torch.allclose(0.5 * clipped.x0 + 0.5 * clipped.eps, 5 * x_t.double(),
                                                        atol=1e-5)


def test_ddgan_forward_process_follows_the_vp_sde_and_its_posterior_is_consistent():
    a = cumulative_alphas(4)
    assert a[0] == 1 and (a.diff() < 0).all() and a[-1] < 0.01
    # ᾱ(s) = exp(−(β_min s + (β_max − β_min) s² / 2)) at s = 1/2
    assert a[2].item() == pytest.approx(math.exp(-(0.1 * 0.5 + 19.9 * 0.25 / 2)))
    family = build_family("ddgan", POINTS)
    n = 400_000
    x0 = torch.full((n, 2), 0.7)
    g = torch.Generator().manual_seed(0)
    for step in (1, 3):
        t = torch.full((n,), step)
        x_t = a[step].sqrt().float() * x0 + (1 - a[step]).sqrt().float() * torch.randn(n, 2, generator=g)
        x_prev = family.posterior_sample(x0, x_t, t, torch.randn(n, 2, generator=g))
        # Marginally over x_t, the posterior's draws are q(x_{t−1} | x0).
        assert x_prev.mean().item() == pytest.approx(a[step - 1].sqrt().item() * 0.7, abs=0.01)
        assert x_prev.var().item() == pytest.approx(1 - a[step - 1].item(), abs=0.01)
    assert family.sample(3, torch.Generator().manual_seed(0)).nfe == 4
    assert build_family("ddgan", POINTS, steps=2).sample(3, torch.Generator().manual_seed(0)).nfe == 2


def test_latent_diffusion_trains_the_autoencoder_then_only_the_latent_model():
    torch.manual_seed(0)
    family = build_family("latent-diffusion", IMAGE, base_width=8, prior_width=32, autoencoder_fraction=0.5)
    optimizers = family.build_optimizers()
    x = torch.rand(16, *IMAGE.sample_shape) * 2 - 1

    def snapshot():
        return {k: v.clone() for k, v in family.state_dict().items()}

    before = snapshot()
    family.training_progress = 0.2
    family.training_step(x, None, optimizers)
    after_first = snapshot()
    assert not torch.equal(before["encoder.head.weight"], after_first["encoder.head.weight"])
    assert not torch.equal(before["latent_scale"], after_first["latent_scale"])
    family.training_progress = 0.7
    losses = family.training_step(x, None, optimizers)
    after_second = snapshot()
    for key in after_first:
        changed = not torch.equal(after_first[key], after_second[key])
        assert changed == key.startswith("prior.velocity") or not changed and not key.startswith("prior"), key
    assert losses["autoencoder"] == 0 and losses["prior"] > 0
    out = family.sample(4, torch.Generator().manual_seed(0), steps=2, sampler="euler")
    assert out.x.shape == (4, *IMAGE.sample_shape) and out.nfe == 3


@pytest.mark.parametrize("name, settings, words", [
    ("ddgan", {"steps": 9}, "setting 'steps'"),
    ("ddgan", {"steps": 0}, "setting 'steps'"),
    ("flow", {"sampler_steps": 0}, "sampler steps must be at least 1"),
    ("flow", {"sampler": "rk4"}, "unknown sampler 'rk4'"),
    ("flow", {"time_sampling": "beta"}, "setting 'time_sampling'"),
    ("latent-diffusion", {"autoencoder_fraction": 1.0}, "setting 'autoencoder_fraction'"),
    ("latent-diffusion", {"latent_dim": 0}, "setting 'latent_dim'"),
])
def test_hybrid_settings_that_make_no_sense_are_refused_by_name(name, settings, words):
    with pytest.raises(UnsupportedRequest, match=words):
        build_family(name, POINTS, **settings)


def test_flow_refuses_zero_sampling_steps_at_sampling_time():
    with pytest.raises(UnsupportedRequest, match="at least 1"):
        build_family("flow", POINTS).sample(2, torch.Generator(), steps=0)


def test_reflow_draws_its_pairs_once_at_the_switch_and_trains_on_them():
    torch.manual_seed(0)
    family = build_family("flow", POINTS, reflow=True, reflow_fraction=0.5, reflow_pairs=64, reflow_steps=2)
    optimizers = family.build_optimizers()
    x = torch.randn(32, 2)
    family.training_progress = 0.2
    family.training_step(x, None, optimizers)
    assert not family.reflow_ready and family.reflow_data.abs().sum() == 0
    family.training_progress = 0.6
    family.training_step(x, None, optimizers)
    assert family.reflow_ready
    pairs = family.reflow_data.clone()
    family.training_step(x, None, optimizers)
    assert torch.equal(family.reflow_data, pairs)  # drawn once
    assert "reflow_data" in family.state_dict()  # so checkpoints hold them
    with pytest.raises(UnsupportedRequest, match="no first stage"):
        build_family("flow", POINTS, reflow=True, reflow_fraction=1.0)
