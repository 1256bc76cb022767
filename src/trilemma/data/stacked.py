"""Stacked MNIST, the standard mode-collapse protocol for images (Metz et al. 2017, PacGAN,
R3GAN): each image holds three independently drawn digits, one per colour channel, so there are
1,000 modes (100 x red + 10 x green + blue digit), read back by the shipped MNIST classifier.

Built from the 5,000 shipped MNIST digits: the training images only from the digits of mnist's
training split, the held-out images only from its held-out digits, so that a held-out image is
made of digits no model was trained on. The published protocol draws from MNIST's 60,000 digits
(128,000 images in PacGAN); here there are 4,000 training digits, hence 4,000^3 possible
training images, far more than any run sees.
"""

from __future__ import annotations

import numpy as np

STACKED_TRAIN, STACKED_HELDOUT = 20_000, 5_000


def stacked_mnist(digits: np.ndarray, train: np.ndarray, heldout: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """(uint8 (N, 3, 28, 28) images, the training ones first, info) from (n, 1, 28, 28) digits
    and the digit indices of each split."""
    rng = np.random.default_rng(seed)
    parts = []
    for pool, count in ((train, STACKED_TRAIN), (heldout, STACKED_HELDOUT)):
        chosen = rng.choice(pool, size=(count, 3))  # independent draws, with replacement
        parts.append(digits[chosen].reshape(count, 3, 28, 28))  # (count, 3, 1, 28, 28) squeezed
    info = {"source": f"stacked-mnist: {STACKED_TRAIN:,} + {STACKED_HELDOUT:,} images of three MNIST digits "
                      "(one per RGB channel) drawn from mnist's training / held-out digits; 1,000 modes",
            "train_count": STACKED_TRAIN, "heldout_fraction": STACKED_HELDOUT / (STACKED_TRAIN + STACKED_HELDOUT)}
    return np.concatenate(parts), info
