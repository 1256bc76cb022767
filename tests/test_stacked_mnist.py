"""Stacked MNIST: three digits per image from the right split, 1,000 modes read back by the
shipped classifier, figures with their finite-sample ceiling, and the collapse claim's bar."""

import math

import numpy as np
import pytest

from trilemma.compare.claims import _collapse
from trilemma.data import load_data
from trilemma.evaluation import evaluate
from trilemma.metrics.features import extractor_for
from trilemma.metrics.modes import categorical_mode_statistics, finite_sample_ceiling


@pytest.fixture(scope="module")
def stacked():
    return load_data("stacked-mnist")


def test_each_channel_is_a_digit_of_its_own_split(stacked):
    mnist = load_data("mnist")
    assert stacked.x_train.shape == (20_000, 3, 28, 28) and stacked.x_heldout.shape == (5_000, 3, 28, 28)
    train_digits = {bytes(d) for d in mnist.x_train.numpy().reshape(len(mnist.x_train), -1)}
    heldout_digits = {bytes(d) for d in mnist.x_heldout.numpy().reshape(len(mnist.x_heldout), -1)}
    for part, pool in ((stacked.x_train[:200], train_digits), (stacked.x_heldout[:200], heldout_digits)):
        channels = part.numpy().reshape(-1, 28 * 28)
        assert all(bytes(channel) in pool for channel in channels)


def test_the_classifier_reads_real_stacks_as_nearly_uniform_over_1000_modes(stacked):
    extractor = extractor_for("stacked-mnist", stacked.sample_shape)
    assert extractor.name == "lenet-mnist-per-channel" and extractor.dim % 3 == 0
    found = categorical_mode_statistics(extractor.modes(stacked.x_heldout[:3000]), 1000)
    ceiling = finite_sample_ceiling(3000, 1000)
    assert found["modes_covered"] >= ceiling["modes_floor"]
    assert found["reverse_kl"] < ceiling["kl_floor"] + 0.1


def test_the_finite_sample_ceiling_is_the_occupancy_law():
    ceiling = finite_sample_ceiling(3000, 1000, draws=400)
    assert ceiling["modes_expected"] == pytest.approx(1000 * (1 - (1 - 1 / 1000) ** 3000))  # 950.3
    rng = np.random.default_rng(5)
    covered = [len(np.unique(rng.integers(0, 1000, 3000))) for _ in range(2000)]
    assert np.mean(covered) == pytest.approx(ceiling["modes_expected"], abs=0.5)
    assert np.std(covered) == pytest.approx(ceiling["modes_std"], rel=0.1)
    # A model on 100 of the modes, evenly: KL = log(1000 / 100).
    even = categorical_mode_statistics(np.repeat(np.arange(0, 1000, 10), 30), 1000)
    assert even["modes_covered"] == 100 and even["reverse_kl"] == pytest.approx(math.log(10))


def test_a_collapsed_model_is_called_collapsed_and_real_stacks_are_not(stacked):
    real = evaluate(stacked.x_heldout[:3000], stacked, n_real=2000, provenance={}, copying=False)["metrics"]
    collapsed = stacked.x_train[:3000].clone()
    collapsed[:, 0] = stacked.x_train[0, 0]  # red is always the same digit: at most 100 modes
    dull = evaluate(collapsed, stacked, n_real=2000, provenance={}, copying=False)["metrics"]
    assert real["num_modes"] == 1000 and real["modes_covered"] >= real["modes_floor"]
    assert dull["modes_covered"] <= 100 and dull["reverse_kl_modes"] > math.log(10) - 0.1
    families = {name: {**m, "recall": 0.9} for name, m in (("real", real), ("dull", dull))}
    assert _collapse("dull", families)[0] == "supported"
    assert _collapse("real", families)[0] == "contradicted"
