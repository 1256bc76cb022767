"""Classification Accuracy Score (Ravuri & Vinyals 2019): train the domain classifier on
generated, labelled samples only, then measure its accuracy on real held-out images.

A conditional model whose samples carry the right class features, in the right variety,
scores close to a classifier trained on as many real images; a model that ignores its labels,
or covers few styles per class, scores far lower. This is the number behind "use generated
data to augment a small data set"."""

from __future__ import annotations

import numpy as np
import torch

from trilemma.nets.classifier import accuracy, train_classifier

CAS_EPOCHS = 30


def _nchw(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 NHWC arrays (what sampling returns) or NCHW tensors (what the data layer holds)."""
    if isinstance(images, torch.Tensor):
        return images
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))


def classification_accuracy_score(
    generated_x: np.ndarray | torch.Tensor,
    generated_y: np.ndarray | torch.Tensor,
    heldout_x: torch.Tensor,
    heldout_y: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = CAS_EPOCHS,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Held-out real accuracy of a classifier trained only on (generated_x, generated_y)."""
    model = train_classifier(_nchw(generated_x), torch.as_tensor(np.asarray(generated_y)), num_classes,
                             epochs=epochs, seed=seed, device=device)
    return accuracy(model, heldout_x, heldout_y)
