"""The hybrids' capabilities come through the contract, with no code of their own: flow matching
and the denoising-diffusion GAN are denoisers, latent diffusion an encoder with a latent model."""

import numpy as np
import pytest
import torch

from trilemma.capabilities import anomaly_scores, methods
from trilemma.capabilities.editing import img2img
from trilemma.capabilities.inpainting import inpaint
from trilemma.capabilities.interpolation import interpolate
from trilemma.capabilities.masks import make_mask

HYBRIDS = ("flow", "ddgan", "latent-diffusion")
DENOISER = {"interpolate": "DDIM inversion + slerp", "inpaint": "repaint", "img2img": "sdedit",
            "denoise": "sdedit", "upscale": "ilvr",
            "anomaly score": "typicality of the denoising error averaged over timesteps", "fidelity knob": None}
EXPECTED = {
    "flow": DENOISER,
    "ddgan": DENOISER,
    "latent-diffusion": {"interpolate": "posterior mean + slerp", "inpaint": "clamped encode-decode",
                         "img2img": "reconstruction", "denoise": "reconstruction", "upscale": None,
                         "anomaly score": "typicality of the reconstruction error and latent denoising error",
                         "fidelity knob": None},
}
INPAINT = {"flow": {"steps": 8, "resample": 2}, "ddgan": {"steps": 4, "resample": 2},
           "latent-diffusion": {"iterations": 10}}


@pytest.fixture(scope="module")
def hybrids(loaded_run):
    return {name: loaded_run(name).family for name in HYBRIDS}


@pytest.mark.parametrize("name", HYBRIDS)
def test_each_hybrid_declares_its_methods(hybrids, name):
    assert methods(hybrids[name]) == EXPECTED[name]


@pytest.mark.parametrize("name", HYBRIDS)
def test_inpainting_keeps_known_pixels_and_fills_the_rest(hybrids, heldout, name):
    x, _, _ = heldout
    mask = make_mask("center", len(x), 8, 8, seed=0)
    out = inpaint(hybrids[name], x, mask, torch.Generator().manual_seed(0), **INPAINT[name])
    known = ~mask.expand_as(x)
    assert out.shape == x.shape and torch.equal(out[known], x[known])
    assert not torch.equal(out[~known], x[~known]) and out.abs().max() <= 1


@pytest.mark.parametrize("name", HYBRIDS)
def test_img2img_and_interpolation(hybrids, heldout, name):
    x, _, _ = heldout
    family = hybrids[name]
    edited = img2img(family, x[:4], 0.5, torch.Generator().manual_seed(0), steps=10)
    assert edited.shape == x[:4].shape and torch.isfinite(edited).all()
    path = interpolate(family, torch.Generator().manual_seed(0), images=x[:4].view(2, 2, *x.shape[1:]), steps=5,
                       inversion_steps=10)
    assert path.images.shape[:2] == (2, 5) and torch.isfinite(path.images).all()
    assert not torch.equal(path.images[:, 0], path.images[:, -1])  # it goes somewhere


@pytest.mark.parametrize("name", HYBRIDS)
def test_anomaly_scores_rank_noise_above_digits(hybrids, heldout, digits, name):
    x, _, _ = heldout
    family = hybrids[name]
    noise = torch.rand(len(x), *x.shape[1:], generator=torch.Generator().manual_seed(0)) * 2 - 1
    reference = digits.normalizer.to_model(digits.x_train[:200])
    scores = anomaly_scores(family, torch.cat([x, noise]), reference=reference, timesteps=4)
    assert np.isfinite(scores["score"]).all()
    assert scores["score"][len(x):].mean() > scores["score"][:len(x)].mean()
