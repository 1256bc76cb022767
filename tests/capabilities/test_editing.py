import pytest
import torch

from trilemma.capabilities.editing import denoise, editing_method, img2img
from trilemma.errors import UnsupportedRequest


def test_denoising_brings_noisy_digits_closer_to_the_clean_ones(families, heldout):
    x, _, _ = heldout
    generator = torch.Generator().manual_seed(0)
    noisy = x + 2 * 0.2 * torch.randn(x.shape, generator=generator)  # σ = 0.2 in [0, 1] pixel units
    out = denoise(families["diffusion"], noisy, 0.2, generator)
    assert (out - x).abs().mean() < 0.85 * (noisy - x).abs().mean()


def test_img2img_changes_more_with_more_strength(families, heldout):
    x, _, _ = heldout
    change = {s: (img2img(families["diffusion"], x, s, torch.Generator().manual_seed(0), steps=20) - x).abs().mean()
              for s in (0.1, 0.9)}
    assert change[0.1] < change[0.9]


def test_vae_counterpart_is_reconstruction(families, heldout):
    vae = families["vae"]
    x, _, _ = heldout
    assert editing_method(vae, "image-to-image") == "reconstruction"
    with torch.no_grad():
        expected = vae.decode(vae.encode(x)[0])
    assert torch.equal(img2img(vae, x, 0.5, torch.Generator()), expected)
    assert torch.equal(denoise(vae, x, 0.1, torch.Generator()), expected)


def test_gan_cannot_edit(families, heldout):
    with pytest.raises(UnsupportedRequest, match="the gan family cannot do image-to-image"):
        img2img(families["gan"], heldout[0], 0.5, torch.Generator())
    with pytest.raises(UnsupportedRequest, match="strength must lie in"):
        img2img(families["diffusion"], heldout[0], 1.5, torch.Generator())
