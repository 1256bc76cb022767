"""Classification Accuracy Score: a classifier trained on generated labelled images, tested on
real held-out ones (Ravuri & Vinyals 2019)."""

import torch

from trilemma.data import load_data
from trilemma.metrics.cas import classification_accuracy_score


def test_cas_is_high_for_correct_labels_and_chance_for_shuffled_ones():
    digits = load_data("digits")
    x, y = digits.x_train[:600], digits.y_train[:600]
    right = classification_accuracy_score(x, y, digits.x_heldout, digits.y_heldout, 10, epochs=60)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]
    wrong = classification_accuracy_score(x, shuffled, digits.x_heldout, digits.y_heldout, 10, epochs=60)
    assert right > 0.85
    assert wrong < 0.3


def test_cas_accepts_sampled_nhwc_arrays():
    digits = load_data("digits")
    nhwc = digits.x_train[:300].permute(0, 2, 3, 1).numpy()
    score = classification_accuracy_score(nhwc, digits.y_train[:300].numpy(), digits.x_heldout,
                                          digits.y_heldout, 10, epochs=30)
    assert 0.5 < score <= 1.0
