"""Class statistics of generated samples, read by a domain classifier: the direct measure of
mode collapse on labelled data, and the Inception-score analogue."""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import rel_entr

# Floor that keeps KL finite when samples fall in a class the real data never shows.
KL_EPSILON = 1e-6


def _to_numpy(x: np.ndarray | torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _labels(values: np.ndarray | torch.Tensor, num_classes: int, name: str) -> np.ndarray:
    """Integer labels from labels (n,) or class probabilities (n, C) (their argmax)."""
    array = _to_numpy(values)
    if array.ndim == 2:
        if array.shape[1] != num_classes:
            raise ValueError(f"{name} has {array.shape[1]} columns; expected {num_classes}")
        return array.argmax(axis=1)
    if array.ndim != 1 or (array.size and array.dtype.kind not in "iub"):
        raise ValueError(f"{name} must be integer labels (n,) or probabilities (n, C)")
    if array.size and (array.min() < 0 or array.max() >= num_classes):
        raise ValueError(f"{name} has labels outside [0, {num_classes})")
    return array.astype(np.int64)


def _smoothed(counts: np.ndarray) -> np.ndarray:
    p = counts / counts.sum()
    return (p + KL_EPSILON) / (1 + KL_EPSILON * len(p))


def class_histogram(
    probabilities_or_labels: np.ndarray | torch.Tensor,
    num_classes: int,
    real_labels: np.ndarray | torch.Tensor | None = None,
    min_count: int = 1,
) -> dict:
    """Histogram of the classes the samples fall in, and how far it is from the real one.

    Samples given as class probabilities (n, C) count for their most probable class.

    - ``histogram``: sample count per class (list of int);
    - ``classes_covered``: classes with at least ``min_count`` samples (default 1, the
      Stacked-MNIST convention of VEEGAN and PacGAN);
    - ``kl_to_real`` (nats): KL(q ‖ p) = Σ_c q_c log(q_c / p_c), q the sample class distribution
      and p the real label distribution (uniform when ``real_labels`` is None). p is smoothed
      as (p + ε) / (1 + Cε), ε = 1e-6, so a class absent from the real labels costs a large
      finite amount instead of infinity; classes with q_c = 0 contribute 0;
    - ``n``: number of samples.
    """
    labels = _labels(probabilities_or_labels, num_classes, "samples")
    if labels.size == 0:
        raise ValueError("no samples given")
    counts = np.bincount(labels, minlength=num_classes)
    if real_labels is None:
        real_counts = np.ones(num_classes)
    else:
        real_counts = np.bincount(
            _labels(real_labels, num_classes, "real_labels"), minlength=num_classes
        )
    q = counts / counts.sum()
    p = _smoothed(real_counts.astype(np.float64))
    kl = float(rel_entr(q, p).sum())
    return {
        "histogram": [int(c) for c in counts],
        "classes_covered": int((counts >= min_count).sum()),
        "kl_to_real": kl,
        "n": int(labels.size),
    }


def classifier_score(probabilities: np.ndarray | torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) ‖ p(y))), p(y) the mean of p(y|x) over the samples.

    The Inception score of Salimans et al. 2016 with a domain classifier in place of
    Inception, computed over the whole set (no splits). Between 1 (every sample gets the same
    prediction) and C (confident predictions spread evenly over the C classes). Rows must be
    probability vectors (softmax outputs, not logits).
    """
    p_y_given_x = _to_numpy(probabilities).astype(np.float64)
    if p_y_given_x.ndim != 2 or p_y_given_x.shape[0] == 0:
        raise ValueError("probabilities must be a non-empty (n, C) array")
    if (p_y_given_x < 0).any() or not np.allclose(p_y_given_x.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("each row of probabilities must be non-negative and sum to 1")
    p_y = p_y_given_x.mean(axis=0)
    # rel_entr gives 0 where p(y|x) = 0; where p(y|x) > 0, p(y) > 0 too, so no term is infinite.
    return float(np.exp(rel_entr(p_y_given_x, p_y[None, :]).sum(axis=1).mean()))


CONFIDENT = 0.9  # the shipped mnist classifier names 0.981 of the 1,000 held-out digits this confidently


def confident_fraction(probabilities: np.ndarray | torch.Tensor, threshold: float = CONFIDENT) -> float:
    """Share of samples whose most likely class has probability ≥ `threshold`: a sample the
    classifier cannot name is seldom a clean digit, however diverse the set."""
    p = _to_numpy(probabilities)
    if p.ndim != 2 or p.shape[0] == 0:
        raise ValueError("probabilities must be a non-empty (n, C) array")
    return float((p.max(axis=1) >= threshold).mean())
