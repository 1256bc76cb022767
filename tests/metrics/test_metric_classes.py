"""Class histogram, KL to the real labels and the classifier (Inception-style) score."""

import math

import numpy as np
import pytest
import torch

from trilemma.metrics import class_histogram, classifier_score
from trilemma.metrics.classes import confident_fraction


def test_all_samples_in_one_class() -> None:
    stats = class_histogram(np.full(40, 3), num_classes=10)
    assert stats["classes_covered"] == 1
    assert stats["histogram"] == [0, 0, 0, 40, 0, 0, 0, 0, 0, 0]
    assert stats["kl_to_real"] == pytest.approx(math.log(10), rel=1e-5)
    assert stats["n"] == 40


def test_hand_computed_kl_and_probabilities_input() -> None:
    probabilities = torch.tensor([[0.9, 0.1, 0.0, 0.0]] * 3 + [[0.2, 0.7, 0.1, 0.0]])
    stats = class_histogram(probabilities, num_classes=4)
    assert stats["histogram"] == [3, 1, 0, 0]
    assert stats["classes_covered"] == 2
    # q = (3/4, 1/4, 0, 0) against uniform: 3/4 log 3 + 1/4 log 1.
    assert stats["kl_to_real"] == pytest.approx(0.75 * math.log(3), rel=1e-5)
    assert class_histogram(probabilities, 4, min_count=2)["classes_covered"] == 1


def test_kl_to_real_labels() -> None:
    real = np.array([0] * 60 + [1] * 30 + [2] * 10)
    matching = class_histogram(np.array([0] * 6 + [1] * 3 + [2]), 3, real_labels=real)
    assert matching["kl_to_real"] == pytest.approx(0.0, abs=1e-6)
    even = class_histogram(np.array([0, 1, 2]), 3, real_labels=real)
    expected = sum(1 / 3 * math.log((1 / 3) / p) for p in (0.6, 0.3, 0.1))
    assert even["kl_to_real"] == pytest.approx(expected, rel=1e-5)
    # A class the real data never shows costs a large but finite amount.
    unseen = class_histogram(np.array([0, 3]), 4, real_labels=real)
    assert 5 < unseen["kl_to_real"] < math.inf


def test_classifier_score_extremes_and_hand_value() -> None:
    one_hot = np.eye(10)[np.arange(100) % 10]
    assert classifier_score(one_hot) == pytest.approx(10.0)
    assert classifier_score(np.tile([0.1, 0.6, 0.3], (50, 1))) == pytest.approx(1.0)
    p = np.array([[0.9, 0.1], [0.2, 0.8]])
    marginal = p.mean(axis=0)
    mean_kl = np.mean([(row * np.log(row / marginal)).sum() for row in p])
    assert classifier_score(torch.from_numpy(p)) == pytest.approx(math.exp(mean_kl))


def test_rejects_logits_and_bad_labels() -> None:
    with pytest.raises(ValueError):
        classifier_score(np.array([[2.0, -1.0], [0.5, 0.3]]))
    with pytest.raises(ValueError):
        class_histogram(np.array([0, 5]), num_classes=3)


def test_confident_fraction_counts_rows_whose_top_class_reaches_the_threshold():
    p = np.array([[0.95, 0.05], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    assert confident_fraction(p) == 0.5  # 0.95 and 0.9 (inclusive); 0.6 and 0.7 fall short
    assert confident_fraction(p, threshold=0.6) == 1.0
    with pytest.raises(ValueError):
        confident_fraction(np.zeros((0, 3)))
