"""The IWAE bound (Burda et al. 2016): its ordering, and its limit on a linear-Gaussian VAE whose
marginal likelihood is known in closed form."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from torch import nn

from trilemma.capabilities.anomaly import encoder_scores
from trilemma.data import Normalizer, load_data
from trilemma.families import DataShape, build_family
from trilemma.metrics.likelihood import importance_log_weights, iwae_bound, negative_log_likelihood


class _LinearEncoder(nn.Module):
    """q(z|x) = N(a·x + c, exp(log_variance)): returns the concatenation the points VAE chunks."""

    def __init__(self, a: torch.Tensor, c: float, log_variance: float):
        super().__init__()
        self.a = nn.Parameter(a.clone())
        self.c = nn.Parameter(torch.tensor([c]))
        self.log_variance = nn.Parameter(torch.tensor([log_variance]))

    def forward(self, x, labels=None):
        mean = x @ self.a[:, None] + self.c
        return torch.cat([mean, self.log_variance.expand(len(x), 1)], dim=1)


class _LinearDecoder(nn.Module):
    """The mean of p(x|z) is w z + b."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor):
        super().__init__()
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(b.clone())

    def forward(self, z, labels=None):
        return z * self.w + self.b


W = torch.tensor([1.5, -0.7])
B = torch.tensor([0.3, 0.2])
SIGMA = torch.tensor([0.4, 0.6])


def _linear_gaussian_vae(encoder_quality: str):
    """trilemma's points VAE, its networks replaced by linear maps set by hand.

    z ~ N(0, 1), x | z ~ N(w z + b, diag σ²), so p(x) = N(b, w wᵀ + diag σ²) exactly, and the
    posterior is Gaussian with precision 1 + wᵀΣ⁻¹w. The VAE's own Gaussian
    reconstruction_nll (with its learned per-coordinate scale) is what gets tested.
    """
    vae = build_family("vae", DataShape("points", (2,)), latent_dim=1)
    precision = 1 + float((W.square() / SIGMA.square()).sum())
    a = W / SIGMA.square() / precision  # exact posterior mean is a·(x − b)
    c = -float(a @ B)
    log_variance = -math.log(precision)
    if encoder_quality == "poor":
        a, c, log_variance = 0.7 * a, c + 0.2, log_variance + 0.8
    vae.encoder = _LinearEncoder(a, c, log_variance)
    vae.decoder = _LinearDecoder(W, B)
    with torch.no_grad():
        vae.log_scale.copy_(SIGMA.log())
    return vae


def _true_log_marginal(x: torch.Tensor) -> np.ndarray:
    covariance = np.outer(W, W) + np.diag(SIGMA.square().numpy())
    return multivariate_normal(B.numpy(), covariance).logpdf(x.double().numpy())


@pytest.fixture(scope="module")
def points():
    return torch.randn(200, 2, generator=torch.Generator().manual_seed(1)) * 1.3 + 0.2


def test_with_the_exact_posterior_every_bound_is_the_log_marginal(points):
    # p(x, z) / q(z|x) = p(x) for every z when q is the true posterior: zero variance, any k.
    vae = _linear_gaussian_vae("exact")
    for k in (1, 7):
        bound = iwae_bound(vae, points, k=k).numpy()
        np.testing.assert_allclose(bound, _true_log_marginal(points), atol=1e-4)


def test_negative_elbo_is_the_negative_log_marginal_with_the_exact_posterior_and_beta_weights_the_kl(points):
    # −ELBO = E_q[−log p(x|z)] + KL(q ‖ p) is −log p(x) when q is the true posterior; one
    # draw of z estimates it, so average many.
    vae = _linear_gaussian_vae("exact")
    draws = 2000  # the estimate's standard error is about 0.02 nats
    torch.manual_seed(0)
    with torch.no_grad():
        estimate = vae.negative_elbo(points[:10].repeat_interleave(draws, dim=0)).view(10, draws).mean(1)
        np.testing.assert_allclose(estimate.numpy(), -_true_log_marginal(points[:10]), atol=0.1)
        vae = _linear_gaussian_vae("poor")
        torch.manual_seed(3)
        reconstruction, kl = vae.elbo_terms(points)
        torch.manual_seed(3)
        weighted = vae.negative_elbo(points, beta=0.25)
        vae.config.beta = 4.0
        torch.manual_seed(3)
        default = vae.negative_elbo(points)
        mean, log_variance = vae.encode(points)
    posterior = torch.distributions.Normal(mean, (0.5 * log_variance).exp())
    prior = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    torch.testing.assert_close(kl, torch.distributions.kl_divergence(posterior, prior).sum(1))
    torch.testing.assert_close(weighted, reconstruction + 0.25 * kl)
    torch.testing.assert_close(default, reconstruction + 4.0 * kl)  # β defaults to the model's own


def test_the_anomaly_score_shares_the_importance_weights_of_the_bound(points):
    # The anomaly statistic draws one noise for all rows, the bound one per row; both go through
    # importance_log_weights, so with the exact posterior both are the log marginal.
    vae = _linear_gaussian_vae("exact")
    scores = encoder_scores(vae, points, k=5)
    np.testing.assert_allclose(-scores["nll_nats"], _true_log_marginal(points), atol=1e-4)
    vae = _linear_gaussian_vae("poor")
    eps = torch.randn(5, 1, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mean, log_variance = vae.encode(points[:7])
        shared = importance_log_weights(vae, points[:7], None, mean, log_variance, eps)
        per_row = importance_log_weights(vae, points[:7], None, mean, log_variance, eps.expand(7, 5, 1))
        alone = importance_log_weights(vae, points[3:4], None, mean[3:4], log_variance[3:4], eps)
    torch.testing.assert_close(shared, per_row, rtol=0, atol=0)
    torch.testing.assert_close(alone, shared[3:4])


def test_with_a_poor_encoder_the_bound_rises_with_k_to_the_log_marginal(points):
    vae = _linear_gaussian_vae("poor")
    truth = _true_log_marginal(points)
    means = {k: float(iwae_bound(vae, points, k=k, seed=2).mean()) for k in (1, 10, 3000)}
    assert means[1] < means[10] < means[3000] <= truth.mean() + 0.005
    assert means[1] < truth.mean() - 0.1  # the encoder is poor enough for the test to matter
    assert means[3000] == pytest.approx(truth.mean(), abs=0.005)
    # Per sample the estimate is noisier, most of all for points far in the tails.
    np.testing.assert_allclose(iwae_bound(vae, points, k=3000, seed=2).numpy(), truth, atol=0.2)


def test_negative_log_likelihood_units_and_the_data_space_jacobian(points):
    vae = _linear_gaussian_vae("exact")
    result = negative_log_likelihood(vae, points, k=4)
    truth = -_true_log_marginal(points).mean()
    assert result["nll_nats"] == pytest.approx(truth, abs=1e-4)
    assert result["bits_per_dim"] == pytest.approx(truth / (2 * math.log(2)), abs=1e-4)
    assert result["negative_elbo_nats"] == pytest.approx(truth, abs=1e-4)
    assert result["likelihood"] == "gaussian" and result["dims"] == 2 and result["n"] == 200
    # Data stored as x = 3 x_model + m has density p(x_model) / 3² in two dimensions.
    normalizer = Normalizer("points", [1.0, 2.0], 3.0)
    scaled = negative_log_likelihood(vae, points, k=4, normalizer=normalizer)
    assert scaled["nll_nats"] == pytest.approx(truth + 2 * math.log(3.0), abs=1e-4)
    assert scaled["space"] == "data"


def test_iwae_on_an_image_vae_is_at_least_the_elbo_and_grows_with_k():
    digits = load_data("digits")
    torch.manual_seed(0)
    vae = build_family("vae", DataShape("image", digits.sample_shape), base_width=8)
    optimizer = torch.optim.Adam(vae.parameters(), lr=2e-3)
    x_all = digits.normalizer.to_model(digits.x_train)
    for step in range(40):
        batch = x_all[(step * 64) % 1400:(step * 64) % 1400 + 64]
        vae.training_step(batch, None, {"vae": optimizer})
    x = digits.normalizer.to_model(digits.x_heldout[:100])
    elbo = float(iwae_bound(vae, x, k=1, seed=0).mean())
    iwae5 = float(iwae_bound(vae, x, k=5, seed=0).mean())
    iwae50 = float(iwae_bound(vae, x, k=50, seed=0).mean())
    assert elbo < iwae5 < iwae50
    result = negative_log_likelihood(vae, x, k=50, seed=0)
    assert result["nll_nats"] == pytest.approx(-iwae50)
    # The ELBO averaged over the same 50 draws sits below the bound, as Jensen requires.
    assert result["negative_elbo_nats"] > result["nll_nats"]
    assert result["likelihood"] == "bernoulli" and result["dims"] == 64
    assert result["binary_data"] is False
    # The same seed gives the same bound; another split of the work only other draws.
    again = iwae_bound(vae, x, k=50, seed=0)
    assert float(again.mean()) == pytest.approx(iwae50, abs=1e-9)
    split = iwae_bound(vae, x, k=50, batch_size=64, seed=0)
    assert float(split.mean()) == pytest.approx(iwae50, abs=0.5)


def test_the_grey_level_normaliser_is_the_sum_over_256_levels():
    from trilemma.families.vae import grey_level_normaliser

    logits = torch.tensor([-900.0, -60.0, -3.0, -1e-4, 0.0, 1e-8, 0.5, 7.0, 80.0, 900.0])
    levels = torch.arange(256, dtype=torch.float64) / 255
    brute = torch.logsumexp(logits.double()[:, None] * levels, dim=1)
    np.testing.assert_allclose(grey_level_normaliser(logits).numpy(), brute.numpy(), rtol=0, atol=1e-9)


def test_a_grey_level_vae_gives_a_probability_of_the_8_bit_images():
    """Decoder logits 0 make every grey level equally likely: with the posterior equal to the prior
    the IWAE bound is then log 256 per pixel exactly, 8 bits per dimension. And for any logits the
    256 levels' probabilities sum to one."""
    digits = load_data("digits")
    vae = build_family("vae", DataShape("image", digits.sample_shape), base_width=8)

    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(()))

        def forward(self, z, labels=None):
            return self.bias.expand(len(z), *digits.sample_shape)

    class Prior(nn.Module):
        def forward(self, x, labels=None):
            return torch.zeros(len(x), vae.config.latent_dim), torch.zeros(len(x), vae.config.latent_dim)

    vae.decoder, vae.encoder = Uniform(), Prior()
    x = digits.normalizer.to_model(digits.x_heldout[:20])
    result = negative_log_likelihood(vae, x, k=3, grey_levels=True)
    assert result["bits_per_dim"] == pytest.approx(8.0, abs=1e-9)
    assert result["likelihood"] == "grey levels" and "[0, 256)" in result["space"]
    bernoulli = negative_log_likelihood(vae, x, k=3)
    assert bernoulli["bits_per_dim"] == pytest.approx(1.0, abs=1e-6)  # log 2 per pixel, not a probability

    logits = torch.tensor([-30.0, -2.0, 0.0, 0.3, 5.0, 40.0]).view(6, 1, 1, 1)  # one pixel a row
    nll = torch.stack([vae.reconstruction_nll(torch.full_like(logits, k / 127.5 - 1), logits, grey_levels=True)
                       for k in range(256)])
    np.testing.assert_allclose(torch.exp(-nll.double()).sum(dim=0).numpy(), 1.0, atol=1e-5)
