import pytest
import torch

from trilemma.capabilities.inpainting import inpaint, inpainting_method
from trilemma.capabilities.masks import make_mask
from trilemma.errors import UnsupportedRequest

OPTIONS = {"diffusion": {"steps": 8, "resample": 2}, "vae": {"iterations": 10},
           "gan": {"iterations": 20, "restarts": 2}}


@pytest.mark.parametrize("key, method", [("diffusion", "repaint"), ("vae", "clamped encode-decode"),
                                         ("gan", "latent optimisation")])
@pytest.mark.parametrize("mask_spec", ["center", "random:0.5"])
def test_known_pixels_are_kept_exactly_and_hidden_ones_filled(families, heldout, key, method, mask_spec):
    family = families[key]
    x, _, _ = heldout
    mask = make_mask(mask_spec, len(x), 8, 8, seed=3)
    assert inpainting_method(family) == method
    out = inpaint(family, x, mask, torch.Generator().manual_seed(0), **OPTIONS[key])
    assert out.shape == x.shape and torch.isfinite(out).all()
    known = ~mask.expand_as(x)
    assert torch.equal(out[known], x[known])
    assert not torch.equal(out[~known], x[~known])  # something was generated there
    assert out.min() >= -1 and out.max() <= 1


def test_diffusion_inpainting_is_seeded(families, heldout):
    x, _, _ = heldout
    mask = make_mask("center", len(x), 8, 8)
    runs = [inpaint(families["diffusion"], x, mask, torch.Generator().manual_seed(s), **OPTIONS["diffusion"])
            for s in (1, 1, 2)]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_vae_fill_is_its_own_reconstruction_at_the_fixed_point(families, heldout):
    """After enough passes the hidden pixels are what the VAE decodes from the filled image."""
    vae = families["vae"]
    x, _, _ = heldout
    mask = make_mask("center", len(x), 8, 8)
    out = inpaint(vae, x, mask, torch.Generator(), iterations=200)
    with torch.no_grad():
        again = vae.decode(vae.encode(out)[0])
    hidden = mask.expand_as(x)
    assert (again[hidden] - out[hidden]).abs().max() < 0.05


def test_gan_latent_fit_beats_a_random_latent(families, heldout):
    from trilemma.capabilities.inpainting import fit_latents

    gan = families["gan"]
    x, _, _ = heldout
    known = torch.ones_like(x, dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    z = fit_latents(gan, x, known, generator, iterations=100, restarts=2)
    with torch.no_grad():
        fitted = (gan.generate(z, None) - x).square().mean()
        random = (gan.generate(torch.randn_like(z), None) - x).square().mean()
    assert fitted < 0.7 * random


def test_unknown_option_and_wrong_mask_are_refused(families, heldout):
    x, _, _ = heldout
    with pytest.raises(UnsupportedRequest, match="no option"):
        inpaint(families["vae"], x, make_mask("center", len(x), 8, 8), torch.Generator(), resample=3)
    with pytest.raises(UnsupportedRequest, match="does not fit"):
        inpaint(families["vae"], x, torch.zeros(16, 1, 28, 28, dtype=torch.bool), torch.Generator())


def test_plain_repaint_keeps_known_pixels_too(families, heldout):
    x, _, _ = heldout
    mask = make_mask("left", len(x), 8, 8)
    out = inpaint(families["diffusion"], x, mask, torch.Generator().manual_seed(0), steps=6, resample=3,
                  reconstruction_guidance=0.0)
    assert torch.equal(out[~mask.expand_as(x)], x[~mask.expand_as(x)])


def test_least_risk_choice_is_the_draw_nearest_the_others():
    from trilemma.capabilities.inpainting import _least_risk

    # Per image, three constant draws, 0, 1, 5 (first image) and 5, 4, 0 (second): their summed
    # squared distances to the other two are in the ratio 26 : 17 : 41, so the second draw wins.
    draws = torch.tensor([[0.0, 1.0, 5.0], [5.0, 4.0, 0.0]])[:, :, None, None, None].expand(2, 3, 1, 2, 2)
    chosen = _least_risk(draws)
    assert chosen.shape == (2, 1, 2, 2)
    assert torch.equal(chosen[:, 0, 0, 0], torch.tensor([1.0, 4.0]))


def test_repaint_with_candidates_keeps_known_pixels_and_returns_one_of_its_draws(families, heldout):
    from trilemma.capabilities.inpainting import _least_risk

    x, _, _ = heldout
    x = x[:4]
    mask = make_mask("center", len(x), 8, 8)
    out = inpaint(families["diffusion"], x, mask, torch.Generator().manual_seed(0), candidates=3,
                  **OPTIONS["diffusion"])
    known = ~mask.expand_as(x)
    assert torch.equal(out[known], x[known])
    # The same chains: each image three times in a row, one fill each, with the same seed.
    copies = x.repeat_interleave(3, dim=0)
    draws = inpaint(families["diffusion"], copies, mask[:1].expand(len(copies), -1, -1, -1),
                    torch.Generator().manual_seed(0), **OPTIONS["diffusion"]).view(4, 3, *x.shape[1:])
    assert torch.equal(out, _least_risk(draws))
    assert not torch.equal(draws[:, 0], draws[:, 1])  # the candidates differ
    with pytest.raises(UnsupportedRequest, match="candidates"):
        inpaint(families["diffusion"], x, mask, torch.Generator(), candidates=0)
