import numpy as np
import pytest
import torch

from trilemma.capabilities.superresolution import (
    consistency_error,
    downsample,
    project,
    to_consistent_pixels,
    upscale,
)
from trilemma.errors import UnsupportedRequest
from trilemma.io import to_pixels


def test_projection_and_rounding_make_the_output_average_to_its_input():
    generator = torch.Generator().manual_seed(0)
    low_pixels = torch.randint(0, 256, (20, 4, 4, 1), generator=generator, dtype=torch.uint8).numpy()
    low_pixels[0] = 255  # saturated blocks need the box constraint
    low = torch.from_numpy(low_pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    guess = torch.rand((20, 1, 8, 8), generator=generator) * 2 - 1
    high = project(guess, low)
    assert (downsample(high) - low).abs().max() < 1e-5 and high.abs().max() <= 1
    pixels = to_consistent_pixels(high, low_pixels)
    assert pixels.dtype == np.uint8 and consistency_error(pixels, low_pixels) == 0


def test_upscaled_digits_match_their_low_resolution_input(families, heldout):
    x, _, _ = heldout
    low = downsample(x)
    low_pixels = to_pixels(low)
    low = torch.from_numpy(low_pixels).permute(0, 3, 1, 2).float() / 127.5 - 1
    high = upscale(families["diffusion"], low, torch.Generator().manual_seed(0), steps=10)
    assert high.shape == x.shape
    assert consistency_error(to_consistent_pixels(high, low_pixels), low_pixels) == 0


def test_upscale_needs_half_size_and_a_denoiser(families, heldout):
    x, _, _ = heldout
    with pytest.raises(UnsupportedRequest, match="must be 4x4"):
        upscale(families["diffusion"], x, torch.Generator())
    with pytest.raises(UnsupportedRequest, match="the vae family cannot do super-resolution"):
        upscale(families["vae"], downsample(x), torch.Generator())
