"""The denoiser interface is enough: a family that supplies only a noise schedule and `denoise`
gets inversion, inpainting, image-to-image, denoising, super-resolution, interpolation and the
anomaly score through the public capability functions, with no code of its own for any of them.

The family here needs no training: its data are Gaussian, x0 ~ N(μ, C), so on a
variance-preserving schedule the posterior mean it returns is closed-form,
E[x0 | x_t] = μ + α C (α² C + σ² I)⁻¹ (x_t − α μ). C = r² I + s² 11ᵀ gives every image a
brightness offset shared by its pixels, so what is hidden can be inferred from what is known.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from trilemma.capabilities import anomaly_scores, auroc, methods
from trilemma.capabilities.editing import denoise, img2img
from trilemma.capabilities.inpainting import inpaint
from trilemma.capabilities.interpolation import interpolate
from trilemma.capabilities.inversion import ddim_invert, ddim_sample
from trilemma.capabilities.superresolution import downsample, upsample, upscale
from trilemma.families import DataShape
from trilemma.families.capabilities import Denoiser
from trilemma.families.denoising import Denoised, VariancePreservingSchedule

SHAPE = (1, 8, 8)
D = 64
PIXEL_STD, OFFSET_STD = 0.2, 0.2  # r and s


class GaussianDenoiser(nn.Module):
    """The exact denoiser of N(mean, covariance) on the linear DDPM schedule (Ho et al. 2020)."""

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor):
        super().__init__()
        self.config = SimpleNamespace(data=DataShape("image", SHAPE))  # what every family states
        alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)
        self.noise_schedule = VariancePreservingSchedule(alphas_cumprod)
        self.mean, self.covariance = mean.double(), covariance.double()

    def denoise(self, x_t, t, labels=None, guidance=1.0, clip=True):
        alpha, sigma = self.noise_schedule.alpha(t), self.noise_schedule.sigma(t)
        x = x_t.double().flatten(1)
        system = alpha**2 * self.covariance + sigma**2 * torch.eye(D, dtype=torch.float64)
        gain = torch.linalg.solve(system, alpha * self.covariance)  # symmetric: (α C (α²C + σ²I)⁻¹)ᵀ
        x0 = self.mean + (x - alpha * self.mean) @ gain
        denoised = Denoised(x0.view(x_t.shape), ((x - alpha * x0) / sigma).view(x_t.shape), 1)
        return denoised.clipped(x_t, alpha, sigma) if clip else denoised


MEAN = 0.1 * torch.sin(torch.arange(D) / 3.0)
COVARIANCE = PIXEL_STD**2 * torch.eye(D) + OFFSET_STD**2 * torch.ones(D, D)


def _draw(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    offset = torch.randn(n, 1, generator=generator) * OFFSET_STD
    return (MEAN + offset + torch.randn(n, D, generator=generator) * PIXEL_STD).view(n, *SHAPE)


@pytest.fixture(scope="module")
def family():
    return GaussianDenoiser(MEAN, COVARIANCE)


def test_the_interface_alone_offers_every_denoiser_capability(family):
    assert isinstance(family, Denoiser)
    offered = methods(family)
    assert offered["inpaint"] == "repaint" and offered["img2img"] == offered["denoise"] == "sdedit"
    assert offered["upscale"] == "ilvr" and offered["interpolate"] == "DDIM inversion + slerp"
    assert offered["anomaly score"].startswith("typicality of the denoising error")


def test_inversion_reaches_noise_and_sampling_comes_back(family):
    x = _draw(32, 1)
    errors = {}
    for steps in (50, 200):
        noise = ddim_invert(family, x, steps)
        errors[steps] = (ddim_sample(family, noise, steps) - x).abs().mean().item()
    assert abs(noise.std().item() - 1) < 0.1 and abs(noise.mean().item()) < 0.1
    assert errors[200] < 0.02 and errors[200] < errors[50] / 2


def test_inpainting_keeps_the_known_pixels_and_infers_the_hidden_ones_from_them(family):
    x = _draw(32, 2)
    mask = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    mask[..., 2:6, 2:6] = True
    filled = inpaint(family, x, mask, torch.Generator().manual_seed(3))
    hidden = mask.flatten()
    assert torch.equal(filled.flatten(1)[:, ~hidden], x.flatten(1)[:, ~hidden])
    # Gaussian conditioning gives E[hidden | known]; the fills follow each image's offset.
    known = x.flatten(1)[:, ~hidden].double()
    gain = torch.linalg.solve(COVARIANCE[~hidden][:, ~hidden], COVARIANCE[~hidden][:, hidden]).double()
    expected = MEAN[hidden] + (known - MEAN[~hidden]) @ gain
    fill = filled.flatten(1)[:, hidden].double()
    correlation = np.corrcoef(fill.mean(1).numpy(), expected.mean(1).numpy())[0, 1]
    assert correlation > 0.9


def test_img2img_keeps_more_of_the_image_the_lower_the_strength(family):
    x = _draw(32, 4)
    change = [(img2img(family, x, strength, torch.Generator().manual_seed(5)) - x).abs().mean().item()
              for strength in (0.02, 0.3, 1.0)]
    assert change[0] < change[1] < change[2] and change[0] < change[2] / 4
    # At full strength the output is as far from the input as an independent draw of the data.
    independent = (2 * (PIXEL_STD**2 + OFFSET_STD**2)) ** 0.5 * (2 / np.pi) ** 0.5  # E|N(0, 2v)|
    assert change[2] == pytest.approx(independent, rel=0.2)


def test_denoising_comes_near_the_best_possible_estimate(family):
    x = _draw(32, 6)
    noisy = x + 0.4 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))  # σ = 0.2 in [0, 1]
    cleaned = denoise(family, noisy, 0.2, torch.Generator().manual_seed(8))
    # The minimum mean squared error estimate from the noisy image, by Gaussian conditioning.
    gain = torch.linalg.solve(COVARIANCE + 0.16 * torch.eye(D), COVARIANCE)
    best = MEAN + (noisy.flatten(1) - MEAN) @ gain
    rms = lambda estimate: (estimate.flatten(1) - x.flatten(1)).square().mean().sqrt().item()
    assert rms(cleaned) < 1.2 * rms(best) and rms(cleaned) < 0.6 * rms(noisy)


def test_upscaling_matches_the_low_resolution_image_and_adds_data_like_detail(family):
    x = _draw(32, 9)
    high = upscale(family, downsample(x), torch.Generator().manual_seed(10), steps=50)
    torch.testing.assert_close(downsample(high), downsample(x), rtol=0, atol=1e-5)
    detail = lambda images: (images - upsample(downsample(images))).std().item()
    assert 0.6 * detail(x) < detail(high) < 1.2 * detail(x)


def test_interpolation_paths_end_at_their_images(family):
    x = _draw(8, 11)
    path = interpolate(family, torch.Generator().manual_seed(12), images=torch.stack([x[:4], x[4:]], 1),
                       steps=5, inversion_steps=100)
    assert path.images.shape == (4, 5, *SHAPE)
    assert (path.images[:, 0] - x[:4]).abs().mean() < 0.03 and (path.images[:, -1] - x[4:]).abs().mean() < 0.03


def test_the_anomaly_score_tells_data_from_noise(family):
    normal = _draw(32, 13)
    anomalous = torch.rand(32, *SHAPE, generator=torch.Generator().manual_seed(14)) * 2 - 1
    scores = anomaly_scores(family, torch.cat([normal, anomalous]), reference=_draw(64, 15))
    assert auroc(scores["score"], np.r_[np.zeros(32), np.ones(32)]) > 0.95
    # The score of an image does not depend on the batch it came in.
    alone = anomaly_scores(family, anomalous[:5], reference=None)
    np.testing.assert_allclose(alone["denoising_error"], scores["denoising_error"][32:37], rtol=1e-10)
