import pytest

from trilemma.capabilities.inversion import ddim_invert, ddim_sample
from trilemma.errors import UnsupportedRequest
from trilemma.families import DataShape, build_family


def test_level_grid_runs_from_clean_to_the_last_timestep():
    schedule = build_family("diffusion", DataShape("points", (2,))).noise_schedule
    assert schedule.grid(4, 999) == [0, 249, 499, 749, 999]
    assert schedule.grid(1000, 999) == list(range(1000))


def test_ddim_inversion_then_sampling_reconstructs_the_image(families, heldout):
    diffusion = families["diffusion"]
    x, _, _ = heldout
    errors = {}
    for steps in (10, 50):
        noise = ddim_invert(diffusion, x, steps)
        errors[steps] = (ddim_sample(diffusion, noise, steps) - x).abs().mean().item()
    assert abs(noise.std().item() - 1) < 0.3  # it did reach noise ...
    assert errors[50] < 0.04  # ... and comes back: 0.5% of the [-1, 1] range on average ...
    assert errors[50] < errors[10] / 2  # ... with the error of a converging discretisation


def test_inversion_needs_a_denoiser(families, heldout):
    with pytest.raises(UnsupportedRequest, match="the gan family cannot do DDIM inversion"):
        ddim_invert(families["gan"], heldout[0], 5)


def test_noise_level_matches_sigma(families):
    diffusion = families["diffusion"]
    schedule = diffusion.noise_schedule
    t = schedule.level_for_ratio(0.4)
    assert abs(schedule.sigma(t) / schedule.alpha(t) - 0.4) < 0.01
