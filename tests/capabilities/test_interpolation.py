import numpy as np
import pytest
import torch

from trilemma.capabilities.interpolation import interpolate, slerp, smoothness
from trilemma.errors import UnsupportedRequest
from trilemma.io import to_pixels


def test_slerp_keeps_the_norm_between_equal_norm_ends():
    a, b = torch.randn(3, 16), torch.randn(3, 16)
    b = b / b.norm(dim=1, keepdim=True) * a.norm(dim=1, keepdim=True)
    path = slerp(a, b, torch.linspace(0, 1, 7))
    assert path.shape == (7, 3, 16)
    assert torch.equal(path[0], a) and torch.equal(path[-1], b)
    assert torch.allclose(path.norm(dim=2), a.norm(dim=1).expand(7, 3), rtol=1e-5)


def test_vae_path_ends_are_the_encodings_of_its_images(families, heldout):
    vae = families["vae"]
    x, _, _ = heldout
    pairs = torch.stack([x[:3], x[3:6]], dim=1)
    path = interpolate(vae, torch.Generator(), images=pairs, steps=6)
    with torch.no_grad():
        mean_first, _ = vae.encode(x[:3])
        mean_last, _ = vae.encode(x[3:6])
        # Encoded in one batch of 6 there, in two of 3 here: the convolutions' float32 rounding
        # depends on the batch size, so the two agree to a few float32 ulps, not exactly.
        torch.testing.assert_close(path.latents[:, 0], mean_first, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(path.latents[:, -1], mean_last, rtol=1e-5, atol=1e-5)
        assert torch.allclose(path.images[:, -1], vae.decode(mean_last), atol=1e-6)
    assert path.images.shape == (3, 6, 1, 8, 8)


def test_diffusion_path_ends_reconstruct_their_images(families, heldout):
    x, _, _ = heldout
    pairs = torch.stack([x[:2], x[2:4]], dim=1)
    path = interpolate(families["diffusion"], torch.Generator(), images=pairs, steps=5, inversion_steps=50)
    assert (path.images[:, 0] - x[:2]).abs().mean() < 0.04
    assert (path.images[:, -1] - x[2:4]).abs().mean() < 0.04
    middle = path.images[:, 2]
    assert (middle - x[:2]).abs().mean() > 0.04 and (middle - x[2:4]).abs().mean() > 0.04


def test_gan_paths_from_seeded_latents(families):
    gan = families["gan"]
    a = interpolate(gan, torch.Generator().manual_seed(4), pairs=2, steps=4)
    b = interpolate(gan, torch.Generator().manual_seed(4), pairs=2, steps=4)
    assert torch.equal(a.images, b.images) and a.latents.shape == (2, 4, gan.config.latent_dim)
    with torch.no_grad():
        assert torch.allclose(a.images[:, -1], gan.generate(a.latents[:, -1], None), atol=1e-5)


def test_smoothness_is_one_for_even_steps_and_low_for_a_jump():
    ramp = np.linspace(0, 255, 6).round().astype(np.uint8)
    even = np.broadcast_to(ramp[None, :, None, None, None], (1, 6, 4, 4, 1)).copy()
    jump = np.zeros((1, 6, 4, 4, 1), np.uint8)
    jump[:, 3:] = 255
    assert smoothness(even).smoothness > 0.99 and abs(smoothness(even).path_ratio - 1) < 1e-9
    assert smoothness(jump).smoothness == pytest.approx(0.2)


def test_smoothness_under_domain_classifier_features(families):
    from trilemma.capabilities.interpolation import smoothness_extractor

    extractor = smoothness_extractor("digits", (1, 8, 8))
    assert extractor is not None and smoothness_extractor("digits", (1, 28, 28)) is None
    path = interpolate(families["vae"], torch.Generator().manual_seed(0), pairs=2, steps=5)
    pixels = to_pixels(path.images.flatten(0, 1)).reshape(2, 5, 8, 8, 1)
    figure = smoothness(pixels, extractor)
    assert figure.features == "lenet-digits" and 0 < figure.smoothness <= 1 and figure.path_ratio >= 1


def test_a_path_needs_two_steps(families):
    with pytest.raises(UnsupportedRequest, match="at least 2 steps"):
        interpolate(families["vae"], torch.Generator(), steps=1)
