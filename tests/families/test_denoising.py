"""The denoiser interface of the diffusion family is diffusers' maths: its noise schedule is the
DDPM forward process, its level grid DDIM's "trailing" timesteps, and one `ddim_step` is
`DDIMScheduler.step` (the one DDIM of the project, written on the interface)."""

import pytest
import torch

from trilemma.families import DataShape, build_family
from trilemma.families.base import randn
from trilemma.families.denoising import ddim_step

IMAGE = DataShape("image", (1, 8, 8))


def _perturbed_diffusion(prediction: str):
    """A diffusion model whose (zero-initialised) output layer gives a non-trivial output."""
    torch.manual_seed(0)
    family = build_family("diffusion", IMAGE, prediction=prediction, channels=(8, 16)).eval()
    with torch.no_grad():
        for p in family.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return family


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_the_schedule_is_the_forward_process_of_diffusers(schedule):
    family = build_family("diffusion", IMAGE, schedule=schedule, channels=(8, 16))
    noise_schedule = family.noise_schedule
    x0, noise = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8)
    for t in (0, 1, 250, 999):
        expected = family.forward_process.add_noise(x0, noise, torch.full((4,), t))
        torch.testing.assert_close(noise_schedule.add_noise(x0, noise, t).float(), expected, rtol=0, atol=1e-6)
        assert noise_schedule.alpha(t) ** 2 + noise_schedule.sigma(t) ** 2 == pytest.approx(1.0, abs=1e-12)
    assert (noise_schedule.clean, noise_schedule.end) == (0, 999)
    # The levels a sampler of S steps visits are DDIM's trailing timesteps, and the clean level.
    ddim = family.make_scheduler("ddim")
    for steps in (1, 7, 16, 50):
        ddim.set_timesteps(steps)
        assert noise_schedule.grid(steps) == [0, *sorted(int(t) for t in ddim.timesteps)]


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_one_ddim_step_is_the_ddim_step_of_diffusers(prediction, eta):
    family = _perturbed_diffusion(prediction)
    schedule = family.noise_schedule
    reference = family.make_scheduler("ddim")
    reference.set_timesteps(50)
    clipped = False
    for t, scale in [(999, 1.0), (499, 3.0), (99, 1.0)]:
        s = t - 20  # the previous level of a 50-step trailing grid, on both sides
        assert s in schedule.grid(50) and t in schedule.grid(50)
        x_t = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(t)) * scale
        with torch.no_grad():
            ours = ddim_step(schedule, family.denoise(x_t, t), t, s, eta, torch.Generator().manual_seed(1))
            output, _ = family.model_output(x_t, torch.tensor(t), None, 1.0)
            noise = randn(x_t.shape, torch.Generator().manual_seed(1), x_t.device) if eta else None
            # Our step keeps ε̂ consistent with a clipped x̂0, as diffusers does with this flag.
            expected = reference.step(output, t, x_t, eta=eta, use_clipped_model_output=True,
                                      variance_noise=noise).prev_sample
            clipped |= bool((family.denoise(x_t, t, clip=False).x0.abs() > 1).any())
        torch.testing.assert_close(ours.float(), expected, rtol=1e-5, atol=1e-5)
    assert clipped  # the case where the two could part ways was exercised


def test_denoise_converts_the_network_output_both_ways():
    # Noise a known x0 with a known ε; an ε-model that outputs exactly ε must return x0 back.
    family = build_family("diffusion", IMAGE, prediction="epsilon", channels=(8, 16))
    x0, eps = torch.rand(3, 1, 8, 8) * 2 - 1, torch.randn(3, 1, 8, 8)
    t = 300
    x_t = family.noise_schedule.add_noise(x0, eps, t).float()
    family.model_output = lambda x, t_, labels, guidance: (eps, 1)
    denoised = family.denoise(x_t, t, clip=False)
    torch.testing.assert_close(denoised.x0.float(), x0, rtol=0, atol=1e-5)
    # A v-model that outputs diffusers' velocity (Salimans & Ho 2022) returns the same x0 and ε.
    family.config.prediction = "v"
    v = family.forward_process.get_velocity(x0, eps, torch.full((3,), t))
    family.model_output = lambda x, t_, labels, guidance: (v, 1)
    denoised = family.denoise(x_t, t, clip=False)
    torch.testing.assert_close(denoised.x0.float(), x0, rtol=0, atol=1e-5)
    torch.testing.assert_close(denoised.eps.float(), eps, rtol=0, atol=1e-5)
    assert denoised.nfe == 1
