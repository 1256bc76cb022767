"""The diffusion variational bound: on Gaussian data, where the best x̂_0 is known in closed
form, it lies just above the exact negative log-likelihood; its strata are unbiased and put the
low, costly levels in strata of their own."""

import itertools
import math

import pytest
import torch
from diffusers import DDPMScheduler

from trilemma.metrics.diffusion_bound import _strata, bound_terms

MEAN, SCALE, DIMS = torch.tensor([0.5, -1.0], dtype=torch.float64), 0.7, 2


def _schedule(name):
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule=name).alphas_cumprod.double()


def _oracle(alphas):
    """E[x_0 | x_t] for x_0 ~ N(MEAN, SCALE² I): the x̂_0 of a perfect denoiser."""
    def predict(x_t, k):
        a = alphas[k]
        return MEAN + (a.sqrt() * SCALE**2 / (a * SCALE**2 + 1 - a)) * (x_t - a.sqrt() * MEAN)
    return predict


def _data(n, seed):
    generator = torch.Generator().manual_seed(seed)
    x0 = MEAN + SCALE * torch.randn(n, DIMS, generator=generator, dtype=torch.float64)
    truth = (0.5 * ((x0 - MEAN) ** 2 / SCALE**2 + math.log(2 * math.pi * SCALE**2))).sum(dim=1)
    return x0, truth, generator


@pytest.mark.parametrize("schedule", ["squaredcos_cap_v2", "linear"])
def test_every_level_summed_the_bound_is_within_0_05_nats_per_dimension_of_the_truth(schedule):
    alphas = _schedule(schedule)
    x0, truth, generator = _data(4000, 0)
    gap = (bound_terms(x0, _oracle(alphas), alphas, 999, generator) - truth).mean() / DIMS
    assert -0.03 < float(gap) < 0.05  # measured 0.020 and 0.021 (± 0.011)


def test_strata_average_to_the_full_sum():
    alphas = _schedule("squaredcos_cap_v2")
    gaps = []
    for seed in range(12):
        x0, truth, generator = _data(500, seed)
        gaps.append(float((bound_terms(x0, _oracle(alphas), alphas, 100, generator) - truth).mean() / DIMS))
    assert abs(sum(gaps) / len(gaps)) < 0.04  # each draw spreads by about 0.036


def test_strata_cover_every_level_once_and_isolate_the_first():
    alphas = _schedule("squaredcos_cap_v2")
    edges = _strata(alphas, 100)
    assert edges[0] == 1 and edges[-1] == 1000 and all(a < b for a, b in itertools.pairwise(edges))
    assert len(edges) - 1 <= 100 and edges[1:4] == [2, 3, 4]  # the lowest levels stand alone
    assert _strata(alphas, 999) == list(range(1, 1001))  # every level its own stratum
    with pytest.raises(ValueError, match="steps must be between 1 and 999"):
        bound_terms(torch.zeros(2, 2), _oracle(alphas), alphas, 0, torch.Generator())


def test_on_8_bit_images_the_bound_is_in_bits_per_dimension_of_dequantised_intensities():
    """Images whose model-space values are Gaussian (quantised to 8 bits), scored through the
    image path (uniform dequantisation, then [0, 256) units) with the Gaussian's exact x̂_0: the
    bound must sit just above that Gaussian's NLL of the dequantised intensities."""
    from types import SimpleNamespace

    from trilemma.data import Normalizer
    from trilemma.metrics.diffusion_bound import diffusion_negative_log_likelihood

    alphas = _schedule("squaredcos_cap_v2")
    mean, scale = 0.1, 0.25

    def x0_of(x_t, k):
        a = alphas[k]
        return mean + (a.sqrt() * scale**2 / (a * scale**2 + 1 - a)) * (x_t.double() - a.sqrt() * mean)

    oracle = SimpleNamespace(forward_process=SimpleNamespace(alphas_cumprod=alphas), device=torch.device("cpu"),
                             denoise=lambda x_t, k, clip: SimpleNamespace(x0=x0_of(x_t, k)))
    generator = torch.Generator().manual_seed(0)
    x_model = mean + scale * torch.randn(3000, 1, 4, 4, generator=generator, dtype=torch.float64)
    images = ((x_model + 1) * 127.5).floor().clamp(0, 255).to(torch.uint8)
    result = diffusion_negative_log_likelihood(oracle, images, Normalizer("image"), steps=999, seed=1)
    # The Gaussian's density of the dequantised intensities y = 127.5 (x + 1), in bits per dimension.
    y = images.double() + torch.rand(images.shape, generator=generator, dtype=torch.float64)
    mean_y, scale_y = 127.5 * (mean + 1), 127.5 * scale
    truth = float((0.5 * ((y - mean_y) / scale_y) ** 2 + 0.5 * math.log(2 * math.pi * scale_y**2)).mean())
    gap = result["bits_per_dim"] - truth / math.log(2)
    assert result["dims"] == 16 and result["space"].startswith("dequantised")
    assert -0.02 < gap < 0.06  # measured 0.0014 bits per dimension (the fixed-variance gap)
