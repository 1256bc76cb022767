"""Each family: shapes, finite losses that fall, sampling options, the shared protocol."""

import pytest
import torch

from small import SMALL, few_steps
from trilemma.errors import UnsupportedRequest
from trilemma.families import DataShape, build_family, family_names

IMAGE = DataShape("image", (1, 8, 8))
POINTS = DataShape("points", (2,))


def _batch(shape, n=16):
    torch.manual_seed(0)
    return torch.rand(n, *shape) * 2 - 1


@pytest.mark.parametrize("name", family_names("image"))
@pytest.mark.parametrize("data", [IMAGE, POINTS], ids=["image", "points"])
def test_training_step_and_sample_shapes(name, data):
    torch.manual_seed(0)
    family = build_family(name, data, **SMALL.get(name, {}))
    optimizers = family.build_optimizers()
    x = _batch(data.sample_shape)
    losses = family.training_step(x, None, optimizers)
    assert losses and all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    options, nfe = few_steps(name)
    out = family.sample(5, torch.Generator().manual_seed(0), **options)
    assert out.x.shape == (5, *data.sample_shape) and torch.isfinite(out.x).all()
    assert out.labels is None and out.nfe == nfe


@pytest.mark.parametrize("name", family_names("points"))
def test_sampling_is_seeded(name):
    family = build_family(name, POINTS)
    a = family.sample(7, torch.Generator().manual_seed(3)).x
    b = family.sample(7, torch.Generator().manual_seed(3)).x
    c = family.sample(7, torch.Generator().manual_seed(4)).x
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("name", ["vae", "diffusion"])
def test_loss_falls_on_a_fixed_batch(name):
    torch.manual_seed(0)
    family = build_family(name, POINTS)
    optimizers = family.build_optimizers()
    x = torch.randn(256, 2) * torch.tensor([1.0, 0.1]) + torch.tensor([0.5, -0.5])
    first = [family.training_step(x, None, optimizers)["loss"].item() for _ in range(5)]
    for _ in range(150):
        last = family.training_step(x, None, optimizers)["loss"].item()
    assert last < 0.7 * sum(first) / len(first)


def test_vae_per_sample_decoder_variance_is_a_gaussian_likelihood_and_samples_with_its_scale():
    torch.manual_seed(0)
    family = build_family("vae", POINTS, decoder_variance="per_sample").eval()
    x = torch.randn(5, 2)
    decoded = torch.cat([torch.randn(5, 2), torch.randn(5, 2) * 0.3 - 1.0], dim=1)  # mean, log-scale
    mean, log_scale = decoded[:, :2], decoded[:, 2:]
    expected = -torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).sum(1)
    assert torch.allclose(family.reconstruction_nll(x, decoded), expected, atol=1e-5)
    assert family.decode(torch.zeros(3, family.config.latent_dim)).shape == (3, 2)  # the mean only
    tiny = torch.cat([mean, torch.full((5, 2), -20.0)], dim=1)  # the scale is floored at 1e-3
    floored = -torch.distributions.Normal(mean, 1e-3).log_prob(x).sum(1)
    assert torch.allclose(family.reconstruction_nll(x, tiny), floored, rtol=1e-5)
    # Sampling adds the decoder's own noise: a decoder that predicts a tiny scale samples its mean.
    with torch.no_grad():
        family.decoder.net[-1].weight.zero_()
        family.decoder.net[-1].bias.copy_(torch.tensor([0.5, -0.5, -20.0, -20.0]))
    out = family.sample(64, torch.Generator().manual_seed(0)).x
    assert torch.allclose(out, torch.tensor([0.5, -0.5]).expand(64, 2), atol=5e-3)  # scale floored at 1e-3
    with pytest.raises(UnsupportedRequest, match="decoder_variance"):
        build_family("vae", POINTS, decoder_variance="diagonal")


def test_vae_encode_decode_and_elbo_terms():
    family = build_family("vae", IMAGE, latent_dim=4)
    x = _batch(IMAGE.sample_shape, 6)
    mean, log_variance = family.encode(x)
    assert mean.shape == (6, 4) and log_variance.shape == (6, 4)
    decoded = family.decode(mean)
    assert decoded.shape == x.shape and decoded.min() >= -1 and decoded.max() <= 1
    reconstruction, kl = family.elbo_terms(x)
    assert (kl >= 0).all() and (reconstruction > 0).all()
    # β scales the KL term in the loss the optimiser sees.
    family.config.beta = 0.0
    torch.manual_seed(1)
    no_kl = family.training_step(x, None, family.build_optimizers())
    assert no_kl["loss"] == pytest.approx(no_kl["recon"].item(), rel=1e-5)


@pytest.mark.parametrize("loss", ["hinge", "non-saturating"])
def test_gan_losses_and_two_optimisers(loss):
    torch.manual_seed(0)
    family = build_family("gan", IMAGE, loss=loss, diffaugment="translation,cutout", r1_gamma=1.0)
    optimizers = family.build_optimizers()
    assert set(optimizers) == {"generator", "discriminator"}
    g_before = [p.clone() for p in family.generator.parameters()]
    d_before = [p.clone() for p in family.discriminator.parameters()]
    losses = family.training_step(_batch(IMAGE.sample_shape), None, optimizers)
    assert {"d_loss", "g_loss", "r1"} <= set(losses)
    assert any(not torch.equal(a, b) for a, b in zip(g_before, family.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d_before, family.discriminator.parameters()))
    if loss == "hinge":  # untrained D gives logits near 0, so hinge D loss is near 2
        assert losses["d_loss"].item() == pytest.approx(2.0, abs=0.5)


def test_spectral_norm_bounds_discriminator_layers():
    family = build_family("gan", IMAGE)
    optimizers = family.build_optimizers()
    for _ in range(3):
        family.training_step(_batch(IMAGE.sample_shape), None, optimizers)
    family.eval()
    linear = family.discriminator.head
    sigma = torch.linalg.matrix_norm(linear.weight.detach(), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.1)


def test_truncation_one_is_plain_sampling_and_zero_collapses():
    family = build_family("gan", POINTS)
    plain = family.sample(8, torch.Generator().manual_seed(0)).x
    same = family.sample(8, torch.Generator().manual_seed(0), truncation=1.0).x
    collapsed = family.sample(8, torch.Generator().manual_seed(0), truncation=0.0).x
    assert torch.equal(plain, same)
    assert torch.allclose(collapsed, collapsed[:1].expand_as(collapsed))


@pytest.mark.parametrize("prediction", ["epsilon", "v"])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_diffusion_forward_process_and_samplers(prediction, schedule):
    family = build_family("diffusion", POINTS, prediction=prediction, schedule=schedule)
    alpha_bar = family.alphas_cumprod
    assert len(alpha_bar) == 1000 and (alpha_bar.diff() < 0).all()
    assert alpha_bar[-1] < 1e-2  # the last step leaves (almost) no signal
    for sampler, steps, nfe in [("ddpm", 10, 10), ("ddim", 7, 7), ("dpm-solver++", 5, 5)]:
        out = family.sample(4, torch.Generator().manual_seed(0), sampler=sampler, steps=steps)
        assert out.nfe == nfe and torch.isfinite(out.x).all()
    assert family.sample(2, torch.Generator().manual_seed(0), sampler="ddpm").nfe == 1000


def test_min_snr_weights_follow_the_paper():
    family = build_family("diffusion", POINTS, prediction="v", min_snr_gamma=5.0)
    t = torch.tensor([0, 500, 999])
    snr = family.alphas_cumprod[t] / (1 - family.alphas_cumprod[t])
    assert torch.allclose(family.loss_weight(t), snr.clamp(max=5) / (snr + 1))
    family.config.prediction = "epsilon"
    assert torch.allclose(family.loss_weight(t), snr.clamp(max=5) / snr)


def test_conditional_models_take_labels_and_reject_bad_ones():
    data = DataShape("points", (2,), num_classes=3)
    for name in family_names("points"):
        family = build_family(name, data)
        family.training_step(torch.randn(8, 2), torch.arange(8) % 3, family.build_optimizers())
        out = family.sample(4, torch.Generator().manual_seed(0), labels=torch.tensor([0, 1, 2, 2]),
                            **few_steps(name)[0])
        assert out.labels.tolist() == [0, 1, 2, 2]
        with pytest.raises(UnsupportedRequest, match="out of range"):
            family.sample(1, torch.Generator(), labels=torch.tensor([3]))


def test_unknown_sampling_options_are_refused():
    with pytest.raises(UnsupportedRequest, match="no sampling option"):
        build_family("gan", POINTS).sample(2, torch.Generator(), sampler="ddim")
    with pytest.raises(UnsupportedRequest, match="unknown sampler"):
        build_family("diffusion", POINTS).sample(2, torch.Generator(), sampler="euler")


def test_settings_are_checked_against_their_defaults_type():
    config = build_family("gan", IMAGE, betas="0.5,0.9", r1_gamma=1, spectral_norm=False).config
    assert config.betas == (0.5, 0.9) and config.r1_gamma == 1.0 and config.spectral_norm is False
    for key, value, words in [("betas", "fast", "a list of float values"), ("latent_dim", 8.5, "a whole number"),
                              ("spectral_norm", "yes", "true or false"), ("loss", 3, "a word"),
                              ("batch_size", True, "a whole number")]:
        with pytest.raises(UnsupportedRequest, match=f"setting '{key}' takes {words}"):
            build_family("gan", IMAGE, **{key: value})


def test_unet_patches_and_attention_keep_shapes_and_start_as_the_plain_network():
    t = torch.tensor([0, 10, 500, 999])
    mnist_like = DataShape("image", (1, 28, 28))
    for data, settings in [(IMAGE, {}), (IMAGE, {"patch": 2, "channels": (16, 32)}),
                           (IMAGE, {"attention_heads": 4, "channels": (16, 32)}),
                           (mnist_like, {"patch": 2, "channels": (8, 16, 16, 32)})]:  # 14 -> 7 -> 4 -> 2 and back
        x = _batch(data.sample_shape, 4)
        assert build_family("diffusion", data, **settings).denoiser(x, t).shape == x.shape
    attention = build_family("diffusion", IMAGE, attention_heads=4, channels=(16, 32)).denoiser.attention
    h = torch.randn(2, 32, 3, 3)
    assert torch.equal(attention(h), h)  # the zero-initialised output projection: identity at the start
    with pytest.raises(UnsupportedRequest, match="'attention_heads' must divide the last width 32"):
        build_family("diffusion", IMAGE, attention_heads=5, channels=(16, 32))
    with pytest.raises(UnsupportedRequest, match="multiples of 8"):
        build_family("diffusion", IMAGE, channels=(12, 24))
