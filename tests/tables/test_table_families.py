"""The families on a table's rows: the segment heads (TVAE's likelihood, CTGAN's Gumbel-softmax
heads), CTGAN's conditional vector with training-by-sampling, the PacGAN discriminator and
WGAN-GP, each checked against what it must compute."""

import math

import pytest
import torch
import torch.nn.functional as F
from tests.tables.table_files import write_people

from trilemma.data import load_data
from trilemma.errors import UnsupportedRequest
from trilemma.families import table_layout
from trilemma.families.base import DataShape
from trilemma.families.registry import family_class
from trilemma.families.table_conditions import ConditionSampler

LAYOUT = (("gaussian", 1), ("binary", 1), ("categorical", 3), ("gaussian", 1), ("categorical", 2))


def random_rows(n: int, generator: torch.Generator, layout=LAYOUT) -> torch.Tensor:
    """Rows with valid codes: real scores, ±1 flags, ±1 one-hot blocks."""
    parts = []
    for kind, width in layout:
        if kind == "gaussian":
            parts.append(torch.randn(n, width, generator=generator))
        elif kind == "binary":
            parts.append(torch.where(torch.rand(n, width, generator=generator) < 0.3, 1.0, -1.0))
        else:
            parts.append(table_layout.one_hot_codes(torch.randint(0, width, (n,), generator=generator), width))
    return torch.cat(parts, dim=1)


def test_the_codec_lays_out_a_tables_segments(tmp_path):
    data = load_data(str(write_people(tmp_path / "people.csv", rows=300)))
    layout = data.layout
    assert table_layout.width(layout) == data.codec.width == data.sample_shape[0]
    # age has missing cells (a score and a flag), income none, city 4 categories, member yes/no
    # plus missing, joined a date, score 1-5, visits a count, label high/low.
    assert layout == (("gaussian", 1), ("binary", 1), ("gaussian", 1), ("categorical", 4), ("categorical", 3),
                      ("gaussian", 1), ("categorical", 5), ("gaussian", 1), ("categorical", 2))
    assert data.normalizer.scale == 1.0 and set(data.normalizer.mean) == {0.0}  # model space = codes


def test_the_table_likelihood_is_a_gaussian_a_bernoulli_and_a_softmax_per_segment():
    g = torch.Generator().manual_seed(0)
    x, out = random_rows(64, g), torch.randn(64, 8, generator=g)
    log_scale = torch.randn(8, generator=g) * 0.3
    nll = table_layout.reconstruction_nll(out, x, LAYOUT, log_scale)
    expected = torch.zeros(64)
    for j in (0, 5):
        expected -= torch.distributions.Normal(out[:, j], log_scale[j].exp()).log_prob(x[:, j])
    expected -= torch.distributions.Bernoulli(logits=out[:, 1]).log_prob((x[:, 1] > 0).float())
    expected -= torch.distributions.Categorical(logits=out[:, 2:5]).log_prob(x[:, 2:5].argmax(1))
    expected -= torch.distributions.Categorical(logits=out[:, 6:8]).log_prob(x[:, 6:8].argmax(1))
    torch.testing.assert_close(nll, expected)


def test_draws_follow_the_heads_distribution_and_keep_valid_codes():
    g = torch.Generator().manual_seed(1)
    n = 20000
    out = torch.tensor([[0.5, 1.0, 0.0, math.log(2), math.log(5), -1.0, 0.0, 3.0]]).repeat(n, 1)
    log_scale = torch.full((8,), math.log(0.5))
    rows = table_layout.sample_rows(out, LAYOUT, log_scale, g)
    assert torch.equal(table_layout.hard_rows(rows, LAYOUT), rows)  # codes already exact
    assert abs(rows[:, 0].mean() - 0.5) < 0.02 and abs(rows[:, 0].std() - 0.5) < 0.02
    assert abs((rows[:, 1] > 0).float().mean() - torch.sigmoid(torch.tensor(1.0))) < 0.015
    shares = (rows[:, 2:5] > 0).float().mean(0)
    torch.testing.assert_close(shares, torch.tensor([1, 2, 5]) / 8.0, atol=0.015, rtol=0)


def test_gumbel_heads_are_relaxed_codes_that_sharpen_as_the_temperature_falls():
    torch.manual_seed(0)
    out = torch.randn(4000, 8)
    for temperature in (1.0, 0.2):
        rows = table_layout.relaxed_rows(out, LAYOUT, temperature)
        torch.testing.assert_close(rows[:, [0, 5]], out[:, [0, 5]])
        block = (rows[:, 2:5] + 1) / 2
        torch.testing.assert_close(block.sum(1), torch.ones(4000))  # a point of the simplex
        assert rows[:, 1].abs().max() <= 1
        # The hard-max of a Gumbel-softmax draw is a draw from the softmax.
        shares = F.one_hot(block.argmax(1), 3).float().mean(0)
        torch.testing.assert_close(shares, torch.softmax(out[:, 2:5], 1).mean(0), atol=0.03, rtol=0)
    sharp = (table_layout.relaxed_rows(out, LAYOUT, 0.2)[:, 2:5].max(1).values > 0.8).float().mean()
    soft = (table_layout.relaxed_rows(out, LAYOUT, 1.0)[:, 2:5].max(1).values > 0.8).float().mean()
    assert sharp > soft + 0.2


def test_training_by_sampling_shows_rare_categories_at_their_log_frequency_share():
    g = torch.Generator().manual_seed(2)
    layout = (("gaussian", 1), ("categorical", 3))
    sampler = ConditionSampler(layout)
    frequencies = torch.tensor([0.90, 0.09, 0.01])
    chosen_counts = torch.zeros(3)
    for _ in range(60):
        codes = torch.multinomial(frequencies, 1000, replacement=True, generator=g)
        x = torch.cat([torch.randn(1000, 1, generator=g), table_layout.one_hot_codes(codes, 3)], dim=1)
        vectors, chosen, rows = sampler.training_pairs(x)
        # Every slot's real row has the category its vector asks for.
        assert torch.equal(x[rows, 1:].argmax(1), chosen[:, 1])
        assert torch.equal(vectors.argmax(1), chosen[:, 1]) and torch.equal(vectors.sum(1), torch.ones(1000))
        chosen_counts += torch.bincount(chosen[:, 1], minlength=3)
    counted = sampler.counts / sampler.counts.sum()
    torch.testing.assert_close(counted.float(), frequencies, atol=0.01, rtol=0)
    log_share = torch.log1p(sampler.counts).float()
    torch.testing.assert_close(chosen_counts / chosen_counts.sum(), log_share / log_share.sum(), atol=0.02, rtol=0)
    # Sampling asks for each category at its real frequency.
    asked = sampler.sampling_vectors(20000, torch.Generator().manual_seed(3), torch.device("cpu")).mean(0)
    torch.testing.assert_close(asked, frequencies, atol=0.01, rtol=0)


def test_ctgans_generator_obeys_its_condition_after_training_on_it():
    torch.manual_seed(0)
    layout = (("gaussian", 1), ("categorical", 3), ("categorical", 2))
    gan = family_class("gan").default_config(
        DataShape("points", (6,), 0, layout), loss="wgan-gp", spectral_norm=False, pac=10,
        gumbel_temperature=0.2, condition_vector=True, batch_size=200)
    model = family_class("gan")(gan)
    optimizers = model.build_optimizers()
    g = torch.Generator().manual_seed(4)
    for _ in range(150):
        codes = torch.multinomial(torch.tensor([0.7, 0.2, 0.1]), 200, replacement=True, generator=g)
        x = torch.cat([torch.randn(200, 1, generator=g), table_layout.one_hot_codes(codes, 3),
                       table_layout.one_hot_codes(torch.randint(0, 2, (200,), generator=g), 2)], dim=1)
        losses = model.training_step(x, None, optimizers)
    assert {"gp", "condition_loss", "d_loss", "g_loss"} <= set(losses) and losses["condition_loss"] < 0.3
    with torch.no_grad():
        asked = model.conditions.vector(torch.zeros(300, dtype=torch.long), torch.full((300,), 2))
        made = model.generate(torch.randn(300, gan.latent_dim), None, asked)
    assert (made[:, 1:4].argmax(1) == 2).float().mean() > 0.9  # the rare category, when asked for


class LinearCritic(torch.nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.linear = torch.nn.Linear(width, 1, bias=False)

    def forward(self, x, labels=None):
        return self.linear(x)


def test_the_gradient_penalty_is_zero_for_a_unit_slope_critic_and_counts_per_pack():
    layout = (("gaussian", 1), ("gaussian", 1))
    config = family_class("gan").default_config(DataShape("points", (2,), 0, layout), loss="wgan-gp",
                                                spectral_norm=False, pac=4, gumbel_temperature=0.0)
    model = family_class("gan")(config)
    critic = LinearCritic(8)
    real, fake = torch.randn(40, 2), torch.randn(40, 2)
    with torch.no_grad():
        critic.linear.weight.copy_(torch.ones(1, 8) / math.sqrt(8))  # a linear critic of gradient norm 1
    assert model.gradient_penalty(real, fake, None, critic, None).abs() < 1e-10
    with torch.no_grad():
        critic.linear.weight.mul_(3)
    torch.testing.assert_close(model.gradient_penalty(real, fake, None, critic, None), torch.tensor(4.0))
    assert model.critic(real, None, critic).shape == (10,)  # 40 rows judged 4 at a time
    # A critic of packs scores no single row, so it offers no anomaly score.
    from trilemma.capabilities.anomaly import score_method

    with pytest.raises(UnsupportedRequest, match="judges packs of 4 rows"):
        score_method(model)


def test_wgan_gp_trains_on_images_too():
    torch.manual_seed(0)
    config = family_class("gan").default_config(DataShape("image", (1, 8, 8)), loss="wgan-gp",
                                                spectral_norm=False, base_width=4, latent_dim=8)
    model = family_class("gan")(config)
    losses = model.training_step(torch.rand(16, 1, 8, 8) * 2 - 1, None, model.build_optimizers())
    assert losses["gp"] >= 0 and math.isfinite(float(losses["d_loss"]))


def test_pac_is_refused_off_tables():
    with pytest.raises(UnsupportedRequest, match="pac .* is for tables"):
        family_class("gan")(family_class("gan").default_config(DataShape("points", (2,)), pac=4))


def test_the_tvae_decoder_samples_valid_rows_and_scores_them():
    torch.manual_seed(0)
    config = family_class("vae").default_config(DataShape("points", (8,), 0, LAYOUT), latent_dim=4)
    model = family_class("vae")(config)
    rows = model.sample(500, torch.Generator().manual_seed(0)).x
    assert torch.equal(table_layout.hard_rows(rows, LAYOUT), rows)
    z = torch.randn(3, 4)
    decoded = model.decoder(z)
    nll = model.reconstruction_nll(rows[:3], decoded)
    _, log_scale = model._mean_and_log_scale(decoded)
    torch.testing.assert_close(nll, table_layout.reconstruction_nll(decoded, rows[:3], LAYOUT, log_scale))
    assert torch.equal(table_layout.hard_rows(model.decode(z), LAYOUT), model.decode(z))


def test_tabddpms_multinomial_posterior_is_bayes_rule_averaged_over_the_predicted_x0():
    from trilemma.families.tabddpm import cosine_alpha_bar

    layout = (("gaussian", 1), ("categorical", 3))
    model = family_class("tabddpm")(family_class("tabddpm").default_config(DataShape("points", (4,), 0, layout)))
    alpha_bar = cosine_alpha_bar(1000)
    assert alpha_bar[0] == 1 and torch.all(alpha_bar[1:] < alpha_bar[:-1]) and alpha_bar[-1] < 1e-3
    k, t, s = 3, 700, 450
    x0 = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)  # a predicted distribution of x0
    step = alpha_bar[t] / alpha_bar[s]
    for observed in range(k):
        x_t = F.one_hot(torch.tensor([observed]), k).double()
        # Bayes for each x0 = j: q(x_s | x_t, j) ∝ q(x_t | x_s) q(x_s | j); then averaged over x0.
        likelihood = torch.tensor([step * (i == observed) + (1 - step) / k for i in range(k)], dtype=torch.float64)
        expected = torch.zeros(k, dtype=torch.float64)
        for j in range(k):
            prior = alpha_bar[s] * (torch.arange(k) == j) + (1 - alpha_bar[s]) / k
            expected += x0[0, j] * likelihood * prior / (likelihood * prior).sum()
        got = model._posterior(x_t, x0, torch.tensor([t]), torch.tensor([s]), k)[0]
        torch.testing.assert_close(got, expected)
    # With the exact p(x0 | x_t) the chain ends at the data's shares, for any number of steps.
    shares = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    only = family_class("tabddpm")(family_class("tabddpm").default_config(DataShape("points", (3,), 0,
                                                                                   (("categorical", 3),))))

    def exact(network, numbers, onehots, t, labels):
        a = only.alpha_bar[t][:, None]
        joint = (a * onehots[0].double() + (1 - a) / 3) * shares
        return numbers, [torch.log(joint / joint.sum(1, keepdim=True))]

    only._outputs = exact
    for steps in (1000, 20):
        made = only.sample(20000, torch.Generator().manual_seed(0), steps=steps).x.argmax(1)
        torch.testing.assert_close(torch.bincount(made, minlength=3) / 20000.0, shares.float(), atol=0.012, rtol=0)


def test_tabddpm_learns_category_shares_and_the_numbers_that_go_with_them():
    torch.manual_seed(0)
    layout = (("gaussian", 1), ("binary", 1), ("categorical", 3))
    config = family_class("tabddpm").default_config(DataShape("points", (5,), 0, layout), batch_size=256,
                                                    mlp_width=64, mlp_blocks=2, warmup_steps=0)
    model = family_class("tabddpm")(config)
    optimizers = model.build_optimizers()
    g = torch.Generator().manual_seed(5)

    def rows(n):
        codes = torch.multinomial(torch.tensor([0.7, 0.2, 0.1]), n, replacement=True, generator=g)
        number = torch.tensor([-1.0, 0.5, 2.0])[codes] + 0.3 * torch.randn(n, generator=g)
        flag = torch.where(torch.rand(n, generator=g) < 0.25, 1.0, -1.0)
        return torch.cat([number[:, None], flag[:, None], table_layout.one_hot_codes(codes, 3)], dim=1)

    first = model.training_step(rows(256), None, optimizers)
    for _ in range(800):
        last = model.training_step(rows(256), None, optimizers)
    assert last["loss"] < first["loss"] and {"gaussian", "multinomial"} <= set(last)
    out = model.sample(3000, torch.Generator().manual_seed(1), steps=50)
    assert out.nfe == 50 and torch.equal(table_layout.hard_rows(out.x, layout), out.x)
    codes = out.x[:, 2:].argmax(1)
    torch.testing.assert_close(torch.bincount(codes, minlength=3) / 3000.0, torch.tensor([0.7, 0.2, 0.1]),
                               atol=0.06, rtol=0)
    assert abs((out.x[:, 1] > 0).float().mean() - 0.25) < 0.06
    means = [out.x[codes == c, 0].mean() for c in range(3)]
    assert means[0] < means[1] < means[2]  # each category keeps its own numbers
    with pytest.raises(UnsupportedRequest, match="models table, not points"):
        family_class("tabddpm").default_config(DataShape("points", (2,)))
