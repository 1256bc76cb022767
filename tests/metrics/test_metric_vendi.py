"""The Vendi score against the `vendi-score` package (its cosine-similarity `score_dual` and
`score_K`) and against the cases its definition fixes."""

import numpy as np
import pytest
from vendi_score import vendi

from trilemma.metrics.vendi import vendi_per_class, vendi_score


@pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")  # inside vendi-score
@pytest.mark.parametrize("n, d", [(200, 16), (30, 64), (500, 3)])
def test_agrees_with_the_reference_implementation(n, d):
    x = np.random.default_rng(n + d).normal(size=(n, d)) + 0.3  # not centred: similarities vary
    assert vendi_score(x) == pytest.approx(vendi.score_dual(x), abs=1e-6)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    assert vendi_score(x) == pytest.approx(vendi.score_K(unit @ unit.T), abs=1e-6)


def test_identical_samples_count_once_and_orthogonal_ones_count_each():
    assert vendi_score(np.tile([[1.0, 2.0, 3.0]], (50, 1))) == pytest.approx(1.0)
    assert vendi_score(np.eye(7)) == pytest.approx(7.0)
    # Two groups of copies, pointing different ways: two distinct samples.
    assert vendi_score(np.repeat(np.eye(2), 20, axis=0)) == pytest.approx(2.0)


def test_per_class_scores_each_class_and_skips_singletons():
    x = np.vstack([np.tile([[1.0, 0.0]], (5, 1)), np.eye(2), [[3.0, 4.0]]])
    scores = vendi_per_class(x, [0] * 5 + [1, 1] + [2])
    assert scores == {0: pytest.approx(1.0), 1: pytest.approx(2.0)}


def test_a_row_of_zeros_is_refused():
    with pytest.raises(ValueError, match="row of zeros"):
        vendi_score(np.array([[1.0, 0.0], [0.0, 0.0]]))
